/*
 * comet.js: the browser client of comet-fcgi (README, comet-fcgi(8)). No
 * dependencies, plain ES2017. As a classic <script> it defines the global `Comet`;
 * comet.mjs next to it re-exports the same object as an ES module.
 *
 *   const sub = Comet.subscribe("/comet", ["chat"], {
 *     onMessage(msg) { ... msg.id, msg.channel, msg.time, msg.type, msg.data },
 *     onGap(info)    { ... retention dropped messages after info.cursor },
 *     onReset(info)  { ... the log was replaced; the cursor is now info.last_id },
 *     onError(err)   { ... err.status, err.fatal, err.retryIn },
 *     onState(state) { ... "connecting" | "open" | "reconnecting" | "closed" },
 *     transport: "auto",   // "sse" (EventSource), "longpoll", or "auto"
 *     since: 0,            // start after this id; omitted: from now
 *     persist: "chat-cursor", // keep the cursor in localStorage (wins over since)
 *     token: "1763700000.ab12...", // private-* channels: a token, an array
 *                                  // of them (one per private channel), or a
 *                                  // function: see "Tokens" below
 *     timeout: 25,         // long-poll hold in seconds
 *     limit: 100,          // long-poll: messages per answer (the rest follow at once)
 *     keepalive: 15000,    // event stream: ms between the server's pings
 *                          // (COMET_KEEPALIVE); 0: no watchdog
 *     withCredentials: false, // send cookies cross-origin
 *   });
 *   sub.close();
 *
 * Guarantees: every message is delivered at most once and in id order (ids
 * at or below the cursor are dropped); after every error it retries (below),
 * a server restart or a network loss, the client resumes from its cursor,
 * so nothing acknowledged to a publisher is skipped unless the server
 * reports a gap.
 *
 * Retried with exponential backoff and full jitter (1 s doubling, capped
 * at 30 s, reset after a success; a Retry-After is honoured): no answer
 * (network down, server gone, a timeout), 408, 425, 429, every 5xx, an
 * answer that is not the server's JSON, a token function that throws or
 * rejects. A connection that goes dead without closing is given up and
 * retried the same way: a long-poll after its timeout + 20 s, an event
 * stream when nothing (no message, no "ping") came for 2 keepalive
 * intervals + 5 s.
 *
 * Ends the subscription (onError with err.fatal true, then state "closed"):
 * every other 4xx answer, since asking again cannot change it: 400 (a bad
 * channel name or parameter), 401, 403 (a private channel without a valid
 * token, or private channels not enabled on the server), 404 (wrong base
 * URL), 405, 413, 415 -- except the 403 that a token function can mend:
 *
 * Tokens. A private channel's token expires. With `token` a function
 * (channels) -> token(s) or a Promise of them, e.g.
 *     token: (channels) => fetch("/comet-token?c=" + channels.join(","))
 *                            .then((r) => r.text()),
 * it is called when the subscription starts and again whenever the server
 * answers 403, and the subscription resumes at once from its cursor with
 * the new token(s), missing nothing (no onError for that 403). Only if the
 * server refuses the token(s) just fetched too (another 403 before any
 * success) does the subscription end. A token given as a string or array cannot be renewed:
 * its 403 ends the subscription.
 */
(function (root) {
  "use strict";

  var BACKOFF_BASE = 1000;
  var BACKOFF_CAP = 30000;
  var DEFAULT_TIMEOUT = 25;
  var DEFAULT_KEEPALIVE = 15000;   // ms; COMET_KEEPALIVE's default (15 s)
  var KEEPALIVE_MARGIN = 5000;     // ms of lateness allowed on top of 2 pings
  // Statuses worth retrying; any other 4xx is fatal.
  var RETRY_4XX = { 408: true, 425: true, 429: true };

  function CometError(message, status, fatal, body) {
    var e = new Error(message);
    e.name = "CometError";
    e.status = status || 0;       // HTTP status; 0: no answer (network)
    e.fatal = !!fatal;            // true: the subscription has stopped
    e.body = body === undefined ? null : body;
    e.retryIn = null;             // ms until the next attempt (set when retrying)
    return e;
  }

  /* base + "/" + endpoint + "?" + params (an array of [name, value]). */
  function endpointUrl(base, endpoint, params) {
    var url = String(base).replace(/\/+$/, "") + "/" + endpoint;
    var q = [];
    for (var i = 0; i < params.length; i++) {
      if (params[i][1] === undefined || params[i][1] === null) continue;
      q.push(encodeURIComponent(params[i][0]) + "=" + encodeURIComponent(String(params[i][1])));
    }
    return q.length ? url + "?" + q.join("&") : url;
  }

  /* Full jitter: a uniform delay in [0, min(cap, base * 2^attempt)). */
  function backoff(attempt) {
    var ceiling = Math.min(BACKOFF_CAP, BACKOFF_BASE * Math.pow(2, Math.min(attempt, 16)));
    return Math.floor(Math.random() * ceiling);
  }

  function toList(x) {
    if (x === undefined || x === null || x === "") return [];
    if (Array.isArray(x)) return x.map(String);
    return String(x).split(",").map(function (s) { return s.trim(); }).filter(Boolean);
  }

  /* A user callback must not break the client: report its exception
   * asynchronously (so it still reaches the console) and go on. */
  function call(fn, arg) {
    if (typeof fn !== "function") return;
    try {
      fn(arg);
    } catch (e) {
      setTimeout(function () { throw e; }, 0);
    }
  }

  function storage() {
    try {
      return root.localStorage || null;
    } catch (e) {         // disabled storage throws on access
      return null;
    }
  }

  /* fetch() that gives up after ms, or when signal (the subscription's)
   * aborts; answers the parsed JSON of a 2xx, throws a CometError otherwise. */
  async function fetchJSON(url, init, ms, outer) {
    var ctl = typeof AbortController === "function" ? new AbortController() : null;
    var timer = null;
    var onAbort = function () { if (ctl) ctl.abort(); };
    if (ctl) {
      init.signal = ctl.signal;
      if (ms) timer = setTimeout(onAbort, ms);
      if (outer) outer.push(onAbort);
    }
    var res, text;
    try {
      res = await fetch(url, init);
      text = await res.text();
    } catch (e) {
      throw CometError(ctl && ctl.signal.aborted ? "request timed out or was aborted"
                       : "network error: " + (e && e.message ? e.message : e), 0, false);
    } finally {
      if (timer) clearTimeout(timer);
      if (outer) {
        var i = outer.indexOf(onAbort);
        if (i >= 0) outer.splice(i, 1);
      }
    }
    var body = null;
    try {
      body = JSON.parse(text);
    } catch (e) {
      body = null;
    }
    if (res.status < 200 || res.status > 299 || body === null) {
      var msg = body && typeof body.error === "string" ? body.error
        : "HTTP " + res.status + (body === null ? " (not JSON)" : "");
      var fatal = res.status >= 400 && res.status < 500 && !RETRY_4XX[res.status];
      var err = CometError(msg, res.status, fatal, body);
      var ra = parseInt(res.headers.get("Retry-After") || "", 10);
      if (ra > 0) err.retryAfter = ra * 1000;
      throw err;
    }
    return body;
  }

  function Subscription(base, channels, options) {
    var o = options || {};
    this.base = base;
    this.channels = toList(channels);
    if (!this.channels.length) throw new TypeError("Comet.subscribe: no channel");
    this.options = o;
    var t = o.transport || "auto";
    if (t !== "auto" && t !== "sse" && t !== "longpoll")
      throw new TypeError("Comet.subscribe: transport must be auto, sse or longpoll");
    this.transport = t === "auto"
      ? (typeof root.EventSource === "function" ? "sse" : "longpoll") : t;
    this.auto = t === "auto";
    var to = o.timeout === undefined || o.timeout === null ? DEFAULT_TIMEOUT : Number(o.timeout);
    if (!(to >= 0)) throw new TypeError("Comet.subscribe: bad timeout");
    this._timeout = Math.floor(to);
    this._limit = o.limit === undefined || o.limit === null ? null : Math.floor(Number(o.limit));
    if (this._limit !== null && !(this._limit >= 1 && this._limit <= 1000))
      throw new TypeError("Comet.subscribe: limit must be 1 to 1000");
    var ka = o.keepalive === undefined || o.keepalive === null ? DEFAULT_KEEPALIVE : Number(o.keepalive);
    if (!(ka >= 0)) throw new TypeError("Comet.subscribe: bad keepalive");
    // An event stream silent this long is dead (0: never).
    this._silence = ka ? 2 * ka + KEEPALIVE_MARGIN : 0;
    this.state = "connecting";
    this.closed = false;
    this.cursor = null;
    this._attempt = 0;
    this._sseFailures = 0;
    this._tokenCache = null;  // what the token function gave last
    this._tokenFresh = false; // it was asked after a 403, nothing succeeded since
    this._aborts = [];        // functions aborting requests in flight
    this._es = null;
    this._wake = null;        // ends the current backoff sleep early
    var saved = null;
    if (o.persist) {
      var st = storage();
      var v = st && st.getItem(String(o.persist));
      if (v !== null && v !== undefined && /^\d+$/.test(v)) saved = Number(v);
    }
    if (saved !== null) this.cursor = saved;
    else if (o.since !== undefined && o.since !== null) {
      var n = Number(o.since);
      if (!(n >= 0) || Math.floor(n) !== n) throw new TypeError("Comet.subscribe: bad since");
      this.cursor = n;
    }
    var self = this;
    this._online = function () { if (self._wake) self._wake(); };
    if (typeof root.addEventListener === "function") root.addEventListener("online", this._online);
    this._run();
  }

  Subscription.prototype.close = function () {
    if (this.closed) return;
    this.closed = true;
    if (this._es) {
      this._es.close();
      if (this._esDone) this._esDone("closed");
    }
    this._aborts.slice().forEach(function (f) { f(); });
    if (this._wake) this._wake();
    if (typeof root.removeEventListener === "function") root.removeEventListener("online", this._online);
    this._setState("closed");
  };

  Subscription.prototype._setState = function (s) {
    if (this.state === s || (this.state === "closed")) return;
    this.state = s;
    call(this.options.onState, s);
  };

  Subscription.prototype._setCursor = function (id) {
    this.cursor = id;
    if (this.options.persist) {
      var st = storage();
      try {
        if (st) st.setItem(String(this.options.persist), String(id));
      } catch (e) { /* quota or disabled: the cursor still lives in memory */ }
    }
  };

  Subscription.prototype._deliver = function (m) {
    if (this.closed || !m || typeof m.id !== "number") return;
    if (this.cursor !== null && m.id <= this.cursor) return;   // seen already
    this._setCursor(m.id);
    call(this.options.onMessage, m);
  };

  /* The token(s) for the request: the option's, or what its function gave
   * (asked once, then again only after a 403: see _renewToken). */
  Subscription.prototype._tokens = async function () {
    var t = this.options.token;
    if (typeof t !== "function") return toList(t);
    if (this._tokenCache === null) {
      var got = toList(await t(this.channels.slice()));
      if (this.closed) return got;
      this._tokenCache = got;
    }
    return this._tokenCache;
  };

  /* A 403: true when the token function is to be asked for fresh token(s)
   * and the request made again at once; false when the 403 is final (no
   * function, or the server refused what it gave just now). */
  Subscription.prototype._renewToken = function (err) {
    if (err.status !== 403 || typeof this.options.token !== "function" || this._tokenFresh)
      return false;
    this._tokenCache = null;
    this._tokenFresh = true;
    return true;
  };

  /* The server took the request: the token (if any) is good. */
  Subscription.prototype._accepted = function () {
    this._tokenFresh = false;
  };

  Subscription.prototype._params = async function (extra) {
    var p = this.channels.map(function (c) { return ["channel", c]; });
    if (this.cursor !== null) p.push(["since", this.cursor]);
    (await this._tokens()).forEach(function (t) { p.push(["token", t]); });
    return p.concat(extra || []);
  };

  /* One long-poll request (timeout seconds; 0 answers at once), handled.
   * quiet: a check on the way to an event stream, which is not "open" yet. */
  Subscription.prototype._poll = async function (timeout, quiet) {
    var url = endpointUrl(this.base, "sub",
                          await this._params([["timeout", timeout], ["limit", this._limit]]));
    var init = { method: "GET", cache: "no-store", headers: { Accept: "application/json" },
                 credentials: this.options.withCredentials ? "include" : "same-origin" };
    var ans = await fetchJSON(url, init, (timeout + 20) * 1000, this._aborts);
    if (this.closed) return;
    this._accepted();
    if (!quiet) {
      this._attempt = 0;
      this._setState("open");
    }
    this._answer(ans);
  };

  Subscription.prototype._answer = function (ans) {
    if (typeof ans.last_id !== "number" || !Array.isArray(ans.messages))
      throw CometError("malformed answer", 200, false, ans);
    if (ans.reset) {
      this._setCursor(ans.last_id);
      call(this.options.onReset, { last_id: ans.last_id });
    } else if (ans.gap) {
      call(this.options.onGap, { cursor: this.cursor, last_id: ans.last_id });
    }
    for (var i = 0; i < ans.messages.length && !this.closed; i++) this._deliver(ans.messages[i]);
    // last_id may pass over messages on channels not asked for. (more:
    // true needs nothing special: the next request follows at once.)
    if (!this.closed && !ans.reset && (this.cursor === null || ans.last_id > this.cursor))
      this._setCursor(ans.last_id);
  };

  /* One event stream, from open to end. Resolves "ended" when a stream that
   * was open ends (lifetime, reset, server gone, or silent too long: see
   * alive()); rejects when it never opened. */
  Subscription.prototype._stream = async function () {
    var url = endpointUrl(this.base, "sub", await this._params());
    var self = this;
    if (this.closed) return "closed";
    return new Promise(function (resolve, reject) {
      var opened = false;
      var watchdog = null;
      var es = new root.EventSource(url, { withCredentials: !!self.options.withCredentials });
      self._es = es;
      var done = function (how, err) {
        if (watchdog) clearTimeout(watchdog);
        watchdog = null;
        es.close();
        if (self._es === es) { self._es = null; self._esDone = null; }
        if (err) reject(err); else resolve(how);
      };
      self._esDone = done;
      // The watchdog: the server sends a "ping" every keepalive interval,
      // so a stream that brought nothing (open, message, ping) for two of
      // them and a margin is on a connection that died without closing
      // (a NAT or proxy dropped it, the server hangs, the network went).
      // Give it up as if it had failed: a new one from the cursor, after
      // the backoff.
      var alive = function () {
        if (!self._silence) return;
        if (watchdog) clearTimeout(watchdog);
        watchdog = setTimeout(function () {
          watchdog = null;
          if (opened) done("ended");
          else done(null, CometError("event stream did not open within " +
                                     self._silence + " ms", 0, false));
        }, self._silence);
      };
      alive();
      es.addEventListener("ping", alive);
      es.onopen = function () {
        alive();
        opened = true;
        self._accepted();
        self._attempt = 0;
        self._sseFailures = 0;
        self._setState("open");
      };
      es.onmessage = function (e) {
        alive();
        var m;
        try { m = JSON.parse(e.data); } catch (x) { return; }
        self._deliver(m);
      };
      es.addEventListener("gap", function (e) {
        alive();
        var d = {};
        try { d = JSON.parse(e.data); } catch (x) { /* keep {} */ }
        call(self.options.onGap, { cursor: self.cursor, last_id: d.last_id });
      });
      es.addEventListener("reset", function (e) {
        alive();
        var d;
        try { d = JSON.parse(e.data); } catch (x) { return; }
        if (typeof d.last_id !== "number") return;
        self._setCursor(d.last_id);
        call(self.options.onReset, { last_id: d.last_id });
        // The server ends the stream now; come back from the new cursor.
      });
      es.onerror = function () {
        // Always take over from the browser's own reconnection: a new
        // EventSource carries since=<cursor>, with our backoff.
        if (opened) done("ended");
        else done(null, CometError("event stream failed to open", 0, false));
      };
    });
  };

  Subscription.prototype._sleep = function (ms) {
    var self = this;
    return new Promise(function (resolve) {
      var t = setTimeout(finish, ms);
      function finish() {
        clearTimeout(t);
        if (self._wake === finish) self._wake = null;
        resolve();
      }
      self._wake = finish;
    });
  };

  Subscription.prototype._retryAfter = async function (err) {
    var delay = Math.max(backoff(this._attempt++), err && err.retryAfter || 0);
    if (err) {
      err.retryIn = delay;
      call(this.options.onError, err);
    }
    this._setState("reconnecting");
    await this._sleep(delay);
    if (!this.closed) this._setState("connecting");
  };

  Subscription.prototype._run = async function () {
    while (!this.closed) {
      try {
        if (this.cursor === null) {
          // "From now": learn the newest id first, so that a reconnect
          // later resumes from it instead of skipping what came between.
          await this._poll(0, this.transport === "sse");
          continue;
        }
        if (this.transport === "sse") {
          var how;
          try {
            how = await this._stream();
          } catch (sseErr) {
            if (this.closed) return;
            // EventSource does not say why. A plain request from the same
            // cursor tells (and catches up meanwhile); if that works but
            // streams keep failing, auto mode falls back to long-polling.
            await this._poll(0, true);
            this._sseFailures++;
            if (this.auto && this._sseFailures >= 2) {
              this.transport = "longpoll";
              continue;
            }
            throw sseErr;
          }
          if (how === "ended" && !this.closed) await this._retryAfter(null);
        } else {
          // Until a request has succeeded (at start, after an error) ask
          // with timeout 0: the answer comes at once, so the state is known
          // and the catch-up done before holding requests.
          await this._poll(this.state === "open" ? this._timeout : 0);
        }
      } catch (err) {
        if (this.closed) return;
        if (!err || err.name !== "CometError") {       // a bug or a broken callback
          err = CometError(String(err && err.message || err), 0, false);
        }
        if (err.fatal && this._renewToken(err)) continue;  // at once, same cursor
        if (err.fatal) {
          call(this.options.onError, err);
          this.close();
          return;
        }
        await this._retryAfter(err);
      }
    }
  };

  /* Publish from the browser (needs the publish key when the server has one;
   * don't ship a key to browsers you do not trust). Resolves to the ack
   * {id, channel, time}; rejects with a CometError. */
  async function publish(base, channel, data, options) {
    var o = options || {};
    var type = o.type;
    var body = data;
    if (typeof data !== "string") {
      body = JSON.stringify(data);
      type = type || "application/json";
    }
    var headers = { "Content-Type": type || "text/plain" };
    if (o.key) headers.Authorization = "Bearer " + o.key;
    return fetchJSON(endpointUrl(base, "pub", [["channel", channel]]), {
      method: "POST", body: body, headers: headers, cache: "no-store",
      credentials: o.withCredentials ? "include" : "same-origin"
    }, (o.timeout || 30) * 1000, null);
  }

  var Comet = {
    version: "1.0",
    subscribe: function (base, channels, options) {
      return new Subscription(base, channels, options);
    },
    publish: publish,
    Subscription: Subscription,
    _backoff: backoff
  };

  root.Comet = Comet;
  if (typeof module === "object" && module && module.exports) module.exports = Comet;
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this);
