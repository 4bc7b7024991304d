/* face.html: a face's nearest faces. The data comes from data/neighbours-C.js files beside this
   page (script elements work from disk, fetch() does not), and every text goes in through
   textContent, so names and paths stay text. */
(function () {
  "use strict";
  var view = document.getElementById("neighbours-view");
  var chunks = JSON.parse(view.getAttribute("data-chunks"));
  var size = parseInt(view.getAttribute("data-chunk-size"), 10);
  var loaded = {};
  var tried = {};

  window.facedistChunk = function (c, data) { loaded[c] = data; };

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function wanted() {
    var h = window.location.hash.replace(/^#/, "");
    var q = new URLSearchParams(window.location.search).get("face");
    var s = h || q || "";
    return /^[0-9]+$/.test(s) ? parseInt(s, 10) : null;
  }

  function say(text) {
    view.replaceChildren(el("p", {}, text));
  }

  /* a person's page, or the unclear faces' page; an ignored face links nowhere */
  function personLink(person, name) {
    if (person >= 0) { return el("a", { href: "person-" + person + ".html" }, name); }
    if (name === "ignored") { return el("span", {}, name); }
    return el("a", { href: "unclear.html" }, name);
  }

  function render(id, f) {
    var query = el("div", { "class": "query" });
    query.appendChild(el("img", { src: f.thumb, width: "160", height: "160", alt: "face " + id }));
    var about = el("div");
    about.appendChild(el("h2", {}, "face " + id));
    var who = el("p");
    who.appendChild(personLink(f.person, f.name));
    who.appendChild(document.createTextNode(" · quality " + f.quality.toFixed(2)));
    about.appendChild(who);
    var photo = el("p");
    photo.appendChild(el("a", { href: f.url, "class": "photo" }, f.path));
    about.appendChild(photo);
    query.appendChild(about);
    var table = el("table", { "class": "neighbours" });
    var head = el("tr");
    ["#", "face", "distance", "person"].forEach(function (t) { head.appendChild(el("th", {}, t)); });
    table.appendChild(head);
    f.near.forEach(function (n, i) {
      var row = el("tr");
      row.appendChild(el("td", { "class": "num" }, String(i + 1)));
      var cell = el("td");
      var link = el("a", { href: "#" + n[0], title: "face " + n[0] });
      link.appendChild(el("img", { src: n[2], width: "56", height: "56", loading: "lazy", alt: "face " + n[0] }));
      cell.appendChild(link);
      row.appendChild(cell);
      row.appendChild(el("td", { "class": "num dist" }, n[1].toFixed(3)));
      var same = n[3] === f.person && f.person >= 0;
      var person = el("td", { "class": same ? "same" : "other" });
      person.appendChild(personLink(n[3], n[4]));
      if (same) { person.appendChild(document.createTextNode(" (same person)")); }
      row.appendChild(person);
      table.appendChild(row);
    });
    view.replaceChildren(query, f.near.length ? table : el("p", {}, "No other face to compare."));
    document.title = "face " + id + " · facedist";
  }

  function show() {
    var id = wanted();
    if (id === null) { say("Click a face anywhere in the report, or give a face id."); return; }
    var c = Math.floor(id / size);
    if (chunks.indexOf(c) < 0) { say("No face " + id + " in this report."); return; }
    if (loaded[c]) {
      if (loaded[c][String(id)]) { render(id, loaded[c][String(id)]); } else { say("No face " + id + " in this report."); }
      return;
    }
    if (tried[c]) { say("The neighbour data of this report is damaged: run facedist report again."); return; }
    tried[c] = true;
    var s = el("script", { src: "data/neighbours-" + c + ".js" });
    s.onload = show;
    s.onerror = function () { say("The neighbour data of this report is missing: run facedist report again."); };
    document.body.appendChild(s);
  }

  window.addEventListener("hashchange", show);
  show();
})();
