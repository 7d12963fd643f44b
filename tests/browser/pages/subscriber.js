"use strict";
// Subscribes with comet.js as the query says and records what happens:
// window.seen (messages), window.errors, window.states; the log shows ids.
(function () {
  var q = new URLSearchParams(location.search);
  var log = document.getElementById("log");
  window.seen = [];
  window.errors = [];
  window.states = [];
  window.sub = Comet.subscribe(q.get("base"), (q.get("channel") || "").split(","), {
    transport: q.get("transport") || "auto",
    since: q.has("since") ? Number(q.get("since")) : undefined,
    onMessage: function (m) {
      window.seen.push(m);
      var li = document.createElement("li");
      li.dataset.id = String(m.id);
      li.textContent = JSON.stringify(m.data);
      log.appendChild(li);
    },
    onError: function (e) {
      window.errors.push({ message: e.message, status: e.status, fatal: e.fatal });
    },
    onState: function (s) {
      window.states.push(s);
      document.body.dataset.state = s;
    }
  });
})();
