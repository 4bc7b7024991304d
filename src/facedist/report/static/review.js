// facedist review: the page of `facedist review OUT`. Names and paths go in as text only; the
// page speaks plain words: ids and scores stay in data attributes, never in the text.
"use strict";
(function () {
  const base = location.pathname.replace(/[^/]*$/, "");
  let current = null, sending = false, pastDone = false;
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function who(side) {
    if (side.name) return side.name;
    return side.person >= 0 ? "Not named yet" : "In no group";
  }
  function faces(ids) {
    const box = el("div", "thumbs");
    for (const id of ids) {
      const img = el("img");
      img.src = base + "face/" + Number(id) + ".jpg";
      img.alt = "a face";
      img.dataset.face = String(Number(id));
      img.width = 112; img.height = 112;
      box.appendChild(img);
    }
    return box;
  }
  // "which of these are not this person?": each face a toggle
  function pickable(ids, onChange) {
    const box = el("div", "thumbs pick");
    for (const id of ids) {
      const b = el("button", "face");
      b.type = "button";
      b.dataset.face = String(Number(id));
      b.setAttribute("aria-pressed", "false");
      const img = el("img");
      img.src = base + "face/" + Number(id) + ".jpg";
      img.alt = "a face"; img.width = 112; img.height = 112;
      b.appendChild(img);
      b.addEventListener("click", () => {
        b.setAttribute("aria-pressed", b.getAttribute("aria-pressed") === "true" ? "false" : "true");
        onChange();
      });
      box.appendChild(b);
    }
    return box;
  }
  function picked() {
    return Array.from(document.querySelectorAll("#question .pick button[aria-pressed=true]"))
      .map((b) => Number(b.dataset.face));
  }
  function action(text, cls, onClick) {
    const b = el("button", cls, text);
    b.type = "button";
    b.addEventListener("click", onClick);
    return b;
  }
  function side(s, title) {
    const d = el("div", "side card");
    d.dataset.person = String(s.person);
    d.appendChild(el("h3", null, title));
    d.appendChild(el("p", "name", who(s)));
    if (s.faces !== undefined) d.appendChild(el("p", "facts", s.faces + " face" + (s.faces === 1 ? "" : "s")));
    d.appendChild(faces(s.show || []));
    return d;
  }
  function names(list) {
    const d = $("names");
    d.textContent = "";
    for (const n of list || []) { const o = el("option"); o.value = n; d.appendChild(o); }
  }
  function done(p, box) {
    const s = p.summary || {};
    box.appendChild(el("h2", null, "The people are done"));
    box.appendChild(el("p", null, "The rest of the questions are unlikely to change anything."));
    if (s.people !== undefined)
      box.appendChild(el("p", "facts", s.people + " people with two or more faces (" + s.faces + " faces), " + s.named + " of them named, after " + p.answered + " answers."));
    for (const b of ["yes", "no", "skip", "ignore"]) $(b).hidden = true;
    if (p.rest) box.appendChild(action("Keep going (" + p.rest + " more question" + (p.rest === 1 ? "" : "s") + ", strangers to hide first)", "more", () => { pastDone = true; load(); }));
  }
  function render(state) {
    const p = state.progress;
    names(state.names);
    $("progress").textContent = p.done && !pastDone ? p.answered + " answered · done"
      : p.answered + " answered · " + (p.done ? p.rest + " more, past done" : p.left + " to go");
    $("busy").hidden = !state.busy;
    $("busy").textContent = state.busy ? "Busy: " + state.busy + " — answers wait until it ends." : "";
    const box = $("question");
    box.textContent = "";
    // a page with no question carries no question's ids: scripts must not read a stale one
    for (const k of ["question", "kind", "value", "distance"]) delete box.dataset[k];
    current = state.questions[0] || null;
    for (const b of ["yes", "no", "skip", "ignore"]) $(b).disabled = !current || !!state.busy;
    // "yes" only where the question takes it: never a far suggestion, never nobody named
    const yes = !!current && current.answers.includes("yes");
    $("yes").hidden = !yes;
    $("yes").disabled = $("yes").disabled || !yes;
    $("yes-label").textContent = current && current.kind === "who" && yes ? "Yes, " + current.options[0].name : "Yes";
    $("undo").disabled = !p.undoable;
    if (!current && p.done && !pastDone) { done(p, box); return; }
    if (!current) { box.appendChild(el("p", null, "Nothing left to ask: the people are as sure as the distances make them.")); return; }
    // the yes/no keys fit "same person?", "who is this?" and "is this face one of them?";
    // "which are not this person?" and "hide these strangers?" have their own buttons
    const own = current.kind === "split" || current.kind === "strangers";
    $("no").hidden = own;
    $("skip").hidden = $("ignore").hidden = false;
    if (own) $("yes").hidden = true;
    if (current.kind === "strangers") $("ignore").hidden = true;
    const q = current;
    box.dataset.question = q.id;
    box.dataset.kind = q.kind;
    box.dataset.value = String(q.value);
    box.dataset.distance = String(q.distance);
    const pair = el("div", "pair");
    const reason = q.reason ? el("p", "reason", "Asked because " + q.reason + ".") : null;
    if (q.kind === "same") {
      box.appendChild(el("h2", null, "Same person?"));
      if (reason) box.appendChild(reason);
      pair.appendChild(side(q.left, "This person"));
      pair.appendChild(side(q.right, "and this one"));
    } else if (q.kind === "who") {
      box.appendChild(el("h2", null, "Who is this?"));
      if (reason) box.appendChild(reason);
      pair.appendChild(side(q.left, "This person"));
      const opts = el("div", "side card");
      let title = "Nobody is named yet: give a name";
      if (q.options.length) title = q.near ? "Is this " + q.options[0].name + "?" : "Nobody named looks close: pick one only if you are sure, or give a name";
      opts.appendChild(el("h3", null, title));
      if (q.options.length && !q.near) opts.appendChild(el("p", "facts", "The y key does nothing here: none of these looks like this person."));
      q.options.forEach((o, i) => {
        const b = el("button", "suggestion", (i === 0 && q.near ? "Yes, it is " : "It is ") + o.name);
        b.type = "button";
        b.dataset.person = String(o.person);
        b.dataset.distance = String(o.distance);
        b.addEventListener("click", () => send({person: o.person}));
        opts.appendChild(b);
        opts.appendChild(faces(o.show.slice(0, 3)));
      });
      for (const n of q.names || []) {  // the names the photos' tags give, unless a person's above
        if (q.options.some((o) => o.name === n)) continue;
        const b = el("button", "suggestion", "It is " + n);
        b.type = "button";
        b.addEventListener("click", () => send({name: n}));
        opts.appendChild(b);
      }
      const form = el("form", "name");
      const input = el("input"); input.name = "name"; input.placeholder = "a name"; input.id = "name";
      input.setAttribute("list", "names"); input.autocomplete = "off";
      const save = el("button", null, "Name"); save.type = "submit";
      form.appendChild(input); form.appendChild(save);
      form.addEventListener("submit", (e) => { e.preventDefault(); if (input.value.trim()) send({name: input.value}); });
      opts.appendChild(form);
      pair.appendChild(opts);
    } else if (q.kind === "split") {
      box.appendChild(el("h2", null, "Which of these are not this person?"));
      box.appendChild(el("p", "facts", "Pick the faces of someone else: each becomes a person of its own."));
      const d = el("div", "side card wide");
      d.dataset.person = String(q.left.person);
      d.appendChild(el("p", "name", who(q.left)));
      d.appendChild(el("p", "facts", q.left.faces + " faces; the ones shown first are the most typical"));
      const apart = action("Set the picked faces apart", "apart", () => send({not: picked()}));
      apart.disabled = true;
      d.appendChild(pickable(q.left.show, () => { apart.disabled = picked().length === 0; }));
      const row = el("p", "buttons");
      row.appendChild(apart);
      row.appendChild(action("They are all this person", "none", () => send("none")));
      d.appendChild(row);
      pair.appendChild(d);
    } else if (q.kind === "strangers") {
      box.appendChild(el("h2", null, "Hide these strangers?"));
      box.appendChild(el("p", null, "These " + q.left.faces + " faces appear once and look like no one else. Hidden faces leave the people and the look-alikes; undo brings them back."));
      const d = el("div", "side card wide");
      d.appendChild(faces(q.left.show));
      const row = el("p", "buttons");
      row.appendChild(action("Hide them", "hide", () => send("yes")));
      row.appendChild(action("Keep them", "keep", () => send("no")));
      d.appendChild(row);
      pair.appendChild(d);
    } else {
      box.appendChild(el("h2", null, "Is this face one of them?"));
      const f = side(q.left, "This face");
      f.appendChild(el("p", "facts path", q.left.path));
      pair.appendChild(f);
      pair.appendChild(side(q.right, q.left.inside ? "the person it is in" : "this person"));
    }
    box.appendChild(pair);
  }
  function fail(msg) { $("error").hidden = !msg; $("error").textContent = msg || ""; }
  async function call(method, path, body) {
    const r = await fetch(base + path, {method, headers: body ? {"Content-Type": "application/json"} : {},
                                        body: body ? JSON.stringify(body) : undefined, cache: "no-store"});
    const data = await r.json();
    if (r.status === 409) { $("busy").hidden = false; $("busy").textContent = "Busy: " + data.busy; return null; }
    if (!r.ok) { fail(data.error || r.statusText); return null; }
    fail(null);
    return data;
  }
  const query = () => pastDone ? "?all=1" : "";
  async function load() { const s = await call("GET", "api/questions?n=1" + (pastDone ? "&all=1" : "")); if (s) render(s); }
  async function send(answer) {
    if (!current || sending) return;
    sending = true;
    try {
      const s = await call("POST", "api/answer" + query(), {question: current.id, answer});
      if (s) { $("last").textContent = s.done.said; render(s); }
      else if (!$("error").hidden) {
        // answered meanwhile (another tab, the command line): nothing was changed; the
        // question as it stands now replaces it
        const why = $("error").textContent;
        await load();
        fail(why + " — nothing changed; the next question is shown.");
      }
    } finally { sending = false; }
  }
  async function undo() {
    if (sending) return;
    sending = true;
    try {
      const s = await call("POST", "api/undo" + query(), {});
      if (s) { $("last").textContent = s.undone ? "Undone: " + s.undone.said + " (asked again)" : "Nothing to undo"; render(s); }
    } finally { sending = false; }
  }
  document.addEventListener("DOMContentLoaded", () => {
    for (const b of ["yes", "no", "skip", "ignore"]) $(b).addEventListener("click", () => send(b));
    $("undo").addEventListener("click", undo);
    document.addEventListener("keydown", (e) => {
      if (e.target && e.target.tagName === "INPUT") return;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      const k = {y: "yes", n: "no", s: "skip", i: "ignore"}[e.key];
      if (k && !$(k).disabled && !$(k).hidden) { e.preventDefault(); send(k); }
      else if (e.key === "u") { e.preventDefault(); undo(); }
    });
    load();
    setInterval(() => { if (!sending) load(); }, 15000);  // Busy comes and goes with runs
  });
})();
