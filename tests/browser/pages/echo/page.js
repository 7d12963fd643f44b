"use strict";
// The Echo tests' page: start(Echo, CometEcho) makes window.Echo as an
// application would, with options from the query (transport, timeout), and
// with the HTTP clients whose interceptors Echo registers (axios, jQuery,
// Turbo) stood in for, so that the test can see the X-Socket-ID they send.
// The test then drives Echo through page.evaluate; record(kind) makes a
// callback that notes what it was called with in window.seen.
(function () {
  var q = new URLSearchParams(location.search);
  window.seen = [];
  window.record = function (kind) {
    return function () {
      window.seen.push([kind].concat(Array.prototype.slice.call(arguments)));
    };
  };
  window.kinds = function (kind) {
    return window.seen.filter(function (s) { return s[0] === kind; }).map(function (s) { return s.slice(1); });
  };

  // What Echo's registerInterceptors() looks for.
  window.axios = function () {};
  window.axios.interceptors = { request: { use: function (f) { window.axios.intercept = f; } } };
  window.jQuery = function () {};
  window.jQuery.ajax = function () {};
  window.jQuery.ajaxPrefilter = function (f) { window.jQuery.intercept = f; };
  window.Turbo = {};

  window.start = function (Echo, CometEcho) {
    var options = {
      broadcaster: CometEcho,
      key: "the-app-key",
      cometUrl: "/comet",
      authEndpoint: "/echo/auth.php",
      transport: q.get("transport") || "auto"
    };
    if (q.has("timeout")) options.timeout = Number(q.get("timeout"));
    window.EchoClass = Echo;
    window.Echo = new Echo(options);
    window.Echo.connector.onConnectionChange &&
      window.Echo.connector.onConnectionChange(window.record("status"));
    document.getElementById("status").textContent = "ready";
    document.body.dataset.ready = "1";
  };
})();
