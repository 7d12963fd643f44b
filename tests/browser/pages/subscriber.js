"use strict";
// Subscribes with comet.js as the query says (base, channel, transport,
// since, limit, token, persist, keepalive) and records what happens: window.seen
// (messages), window.gaps, window.resets, window.errors, window.states.
(function () {
  var q = new URLSearchParams(location.search);
  var log = document.getElementById("log");
  window.seen = [];
  window.gaps = [];
  window.resets = [];
  window.errors = [];
  window.states = [];
  window.sub = Comet.subscribe(q.get("base"), (q.get("channel") || "").split(","), {
    transport: q.get("transport") || "auto",
    since: q.has("since") ? Number(q.get("since")) : undefined,
    limit: q.has("limit") ? Number(q.get("limit")) : undefined,
    token: q.has("token") ? q.get("token").split(",") : undefined,
    persist: q.get("persist") || undefined,
    keepalive: q.has("keepalive") ? Number(q.get("keepalive")) : undefined,
    onMessage: function (m) {
      window.seen.push(m);
      var li = document.createElement("li");
      li.dataset.id = String(m.id);
      li.textContent = JSON.stringify(m.data);
      log.appendChild(li);
    },
    onGap: function (info) { window.gaps.push(info); },
    onReset: function (info) { window.resets.push(info); },
    onError: function (e) {
      window.errors.push({ message: e.message, status: e.status, fatal: e.fatal });
    },
    onState: function (s) {
      window.states.push(s);
      document.body.dataset.state = s;
    }
  });
})();
