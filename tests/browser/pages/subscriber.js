"use strict";
// Subscribes with comet.js as the query says (base, channel, transport,
// since, limit, timeout, token, tokenurl, persist, keepalive) and records
// what happens: window.seen (messages), window.gaps, window.resets,
// window.errors, window.states; window.tokens: what the token function
// (tokenurl: fetched from this origin, as a site's page would) gave.
(function () {
  var q = new URLSearchParams(location.search);
  var log = document.getElementById("log");
  window.tokens = [];
  var token = q.has("token") ? q.get("token").split(",") : undefined;
  if (q.has("tokenurl")) {
    token = function (channels) {
      return fetch(q.get("tokenurl") + "?channel=" + encodeURIComponent(channels.join(",")),
                   { cache: "no-store" })
        .then(function (r) { return r.text(); })
        .then(function (t) { window.tokens.push(t); return t; });
    };
  }
  window.seen = [];
  window.gaps = [];
  window.resets = [];
  window.errors = [];
  window.states = [];
  window.sub = Comet.subscribe(q.get("base"), (q.get("channel") || "").split(","), {
    transport: q.get("transport") || "auto",
    since: q.has("since") ? Number(q.get("since")) : undefined,
    limit: q.has("limit") ? Number(q.get("limit")) : undefined,
    timeout: q.has("timeout") ? Number(q.get("timeout")) : undefined,
    token: token,
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
