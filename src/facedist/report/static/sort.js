/* Pages that list faces: sort the faces of this page by quality (data-quality) or back to the
   order they were found in (data-order). The buttons show only where this script runs. */
(function () {
  "use strict";
  var bar = document.querySelector("p.sort");
  var list = document.querySelector("div.faces");
  if (!bar || !list) { return; }
  bar.hidden = false;
  var key = {
    "order": function (f) { return parseFloat(f.getAttribute("data-order")); },
    "quality-desc": function (f) { return -parseFloat(f.getAttribute("data-quality")); },
    "quality-asc": function (f) { return parseFloat(f.getAttribute("data-quality")); }
  };
  function sortBy(how) {
    var faces = Array.prototype.slice.call(list.querySelectorAll("figure.face"));
    faces.sort(function (a, b) { return key[how](a) - key[how](b) || key.order(a) - key.order(b); });
    faces.forEach(function (f) { list.appendChild(f); });
    bar.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.getAttribute("data-sort") === how));
    });
  }
  bar.addEventListener("click", function (e) {
    var how = e.target.getAttribute && e.target.getAttribute("data-sort");
    if (how && key[how]) { sortBy(how); }
  });
})();
