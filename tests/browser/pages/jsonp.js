"use strict";
// window.loadAll([[name, callback], ...]) adds one <script> per case asking
// comet-fcgi (query: base, channel) for JSONP with that callback, and
// resolves to {name: "load" | "error"}. A valid answer calls window.ok.
window.got = [];
window.ok = function (d) { window.got.push(d); };
window.loadAll = function (cases) {
  var q = new URLSearchParams(location.search);
  var results = {};
  return cases.reduce(function (prev, c) {
    return prev.then(function () {
      return new Promise(function (resolve) {
        var s = document.createElement("script");
        s.src = q.get("base") + "/sub?channel=" + encodeURIComponent(q.get("channel")) +
          "&since=0&timeout=0&callback=" + encodeURIComponent(c[1]);
        s.onload = function () { results[c[0]] = "load"; resolve(); };
        s.onerror = function () { results[c[0]] = "error"; resolve(); };
        document.head.appendChild(s);
      });
    });
  }, Promise.resolve()).then(function () { return results; });
};
