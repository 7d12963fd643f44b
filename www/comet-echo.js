/*
 * comet-echo.js: a Laravel Echo connector for comet-fcgi, built on comet.js
 * (load that first). No other dependency, plain ES2017. As a classic
 * <script> it defines the global `CometEcho`; comet-echo.mjs next to it
 * exports the same class as an ES module (and imports comet.mjs itself).
 *
 *   import Echo from "laravel-echo";           // 1.x or 2.x
 *   import CometEcho from "./comet-echo.mjs";
 *   window.Echo = new Echo({
 *     broadcaster: CometEcho,     // Echo calls new CometEcho(options)
 *     cometUrl: "/comet",         // where comet-fcgi is mounted (default /comet)
 *     transport: "auto",          // "sse" (event stream), "longpoll" or "auto"
 *     authEndpoint: "/broadcasting/auth",     // Echo's default
 *     auth: { headers: {}, params: {} },      // sent with every authorization
 *     csrfToken: null, bearerToken: null,     // as Echo: X-CSRF-TOKEN, Authorization
 *     namespace: "App.Events",    // Echo's event namespace (false: none)
 *     key: "...",                 // accepted for drop-in configurations; unused
 *     withCredentials: false,     // cookies to a comet-fcgi on another origin
 *     timeout: 25, keepalive: 15000,          // comet.js's, for the subscription
 *   });
 *
 * Then everything Echo gives an application on Pusher: Echo.channel(name),
 * .private(name), .join(name) (presence), .listen(), .leave(name),
 * .leaveChannel(name), .leaveAllChannels(), .socketId(), .disconnect(),
 * .connectionStatus() and .onConnectionChange() (Echo 2.x); channels with
 * listen() (Echo's event names: "OrderShipped" is App\Events\OrderShipped
 * under the default namespace, ".name" or "\\Full\\Name" as given),
 * listenToAll(), stopListening(), stopListeningToAll(), subscribed(),
 * error(), on(), notification(), stopListeningForNotification(),
 * listenForWhisper(), stopListeningForWhisper(), whisper() (private and
 * presence), and here(), joining(), leaving() (presence). Encrypted private
 * channels are not supported (comet-fcgi never sees the key they need).
 *
 * How it maps onto comet-fcgi (SPEC, "The frameworks' own protocols"):
 * - One socket id per connector ("<digits>.<digits>", random), from the
 *   start: socketId() has it at once, so Echo's axios, jQuery, Vue and
 *   Turbo interceptors send it as X-Socket-ID and Laravel's toOthers()
 *   works; every subscription carries it, so such an event never comes
 *   back to this page.
 * - private-* and presence-* channels are authorized by the application,
 *   as Pusher's client does: a form POST of socket_id and channel_name to
 *   authEndpoint with auth.headers (Echo adds X-CSRF-TOKEN from the page's
 *   csrf-token meta tag, and Authorization for bearerToken), answered
 *   {"auth": ...} or, for presence, {"auth": ..., "channel_data": ...}.
 *   Pusher's authorizer(channel, options) and
 *   channelAuthorization.customHandler options are honoured too. A refusal
 *   (a 4xx answer) fails the channel: error() callbacks get
 *   {type: "AuthError", error, status}; a network failure or 5xx is
 *   retried with comet.js's backoff. After the connection failed and came
 *   back, the channels are authorized again (kept as they were when the
 *   endpoint cannot be reached), so a user who lost the right loses the
 *   channel, as on Pusher after a reconnect.
 * - All of a page's channels share one comet.js subscription (one
 *   connection: browsers on HTTP/1.1 allow 6 per host) whose channel list
 *   changes as channels are joined and left; more only beyond what one
 *   request carries (32 channels, 8 private or presence ones, or a query
 *   string of about 6 KB). A channel joined later starts from then, like a
 *   Pusher subscription; after a reconnect (a server restart, a network
 *   loss) the subscription resumes from the id of the last message it
 *   had, so no event is missed or delivered twice.
 * - Events are the messages of type application/x-pusher-event+json
 *   ({event, data}; data that is JSON text is parsed, as pusher-js does);
 *   other messages on the same channels are not Echo events and are passed
 *   over. Presence: here() gets the members (this page's user among them),
 *   joining() and leaving() each other member once, however many tabs it
 *   has; a member leaves COMET_PRESENCE_GRACE seconds after its last
 *   connection ended (on Pusher: at once).
 * - whisper() posts to comet-fcgi's .../whisper with the channel's
 *   authorization; the others' listenForWhisper() get the data as given.
 *   Failures (e.g. 429 beyond 10 a second) are logged with console.warn,
 *   as pusher-js logs a client event it cannot send.
 */
(function (root) {
  "use strict";

  var PUSHER_TYPE = "application/x-pusher-event+json";
  var NOTIFICATION = ".Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";
  // What one subscription request carries (comet-fcgi's limits, and room
  // under web servers' 8 KB request line for the rest of the query).
  var MAX_CHANNELS = 32;
  var MAX_AUTH = 8;
  var MAX_QUERY = 6000;
  // Answers from the authorization endpoint worth asking again.
  var RETRY = { 0: true, 408: true, 425: true, 429: true };

  function comet() {
    var C = root.Comet;
    if (!C && typeof module === "object" && module && module.exports && typeof require === "function")
      C = require("./comet.js");
    if (!C || typeof C.subscribe !== "function")
      throw new Error("CometEcho: load comet.js before comet-echo.js");
    return C;
  }

  /* A user callback must not break the connector: report its exception
   * asynchronously (so it still reaches the console) and go on. */
  function call(fn, args) {
    try {
      fn.apply(null, args);
    } catch (e) {
      setTimeout(function () { throw e; }, 0);
    }
  }

  function warn(text) {
    if (root.console && typeof root.console.warn === "function") root.console.warn("CometEcho: " + text);
  }

  /* "<digits>.<digits>", as Pusher's socket ids and Pusher's libraries'
   * checks of them. */
  function newSocketId() {
    var n = [0, 0];
    var c = root.crypto;
    if (c && typeof c.getRandomValues === "function") {
      var a = new Uint32Array(2);
      c.getRandomValues(a);
      n = [a[0], a[1]];
    } else {
      n = [Math.floor(Math.random() * 4294967296), Math.floor(Math.random() * 4294967296)];
    }
    return n[0] + "." + n[1];
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function authError(message, status) {
    return { type: "AuthError", error: message, status: status };
  }

  /* Echo's EventFormatter: "OrderShipped" -> "App\Events\OrderShipped";
   * a leading "." or "\" means the name as given. */
  function formatEvent(namespace, event) {
    event = String(event);
    if (event.charAt(0) === "." || event.charAt(0) === "\\") return event.substring(1);
    if (namespace) event = namespace + "." + event;
    return event.replace(/\./g, "\\");
  }

  function csrfToken(options) {
    if (root.Laravel && root.Laravel.csrfToken) return root.Laravel.csrfToken;
    if (options.csrfToken) return options.csrfToken;
    var doc = root.document;
    if (doc && typeof doc.querySelector === "function") {
      var meta = doc.querySelector('meta[name="csrf-token"]');
      if (meta) return meta.getAttribute("content");
    }
    return null;
  }

  // ------------------------------------------------------------ channels

  /* A public channel: what Echo's PusherChannel gives, on comet-fcgi. */
  function Channel(connector, name) {
    this.name = name;
    this.connector = connector;
    this.options = connector.options;
    this.notificationCreatedEvent = NOTIFICATION;
    this._bindings = {};       // event -> callbacks
    this._global = [];         // [callback, wrapper] of listenToAll
    this._state = "new";       // new, authorizing, subscribing, subscribed, failed, left
    this._group = null;
    this.subscribe();
  }

  Channel.prototype.needsAuth = false;

  Channel.prototype.subscribe = function () {
    if (this._state !== "new" && this._state !== "left") return;
    this._state = "subscribing";
    this.connector._add(this);
  };

  Channel.prototype.unsubscribe = function () {
    if (this._state === "left") return;
    this._state = "left";
    this.connector._remove(this);
  };

  Channel.prototype.listen = function (event, callback) {
    return this.on(formatEvent(this.options.namespace, event), callback);
  };

  Channel.prototype.listenToAll = function (callback) {
    var ns = String(this.options.namespace || "").replace(/\./g, "\\");
    var wrapper = function (event, data) {
      if (event.indexOf("pusher:") === 0) return;
      callback(event.indexOf(ns) === 0 ? event.substring(ns.length + 1) : "." + event, data);
    };
    this._global.push([callback, wrapper]);
    return this;
  };

  Channel.prototype.stopListening = function (event, callback) {
    var name = formatEvent(this.options.namespace, event);
    if (!callback) delete this._bindings[name];
    else if (this._bindings[name])
      this._bindings[name] = this._bindings[name].filter(function (f) { return f !== callback; });
    return this;
  };

  Channel.prototype.stopListeningToAll = function (callback) {
    this._global = callback ? this._global.filter(function (g) { return g[0] !== callback; }) : [];
    return this;
  };

  Channel.prototype.subscribed = function (callback) {
    return this.on("pusher:subscription_succeeded", function () { callback(); });
  };

  Channel.prototype.error = function (callback) {
    return this.on("pusher:subscription_error", function (status) { callback(status); });
  };

  Channel.prototype.on = function (event, callback) {
    (this._bindings[event] = this._bindings[event] || []).push(callback);
    return this;
  };

  Channel.prototype.notification = function (callback) {
    return this.listen(NOTIFICATION, callback);
  };

  Channel.prototype.stopListeningForNotification = function (callback) {
    return this.stopListening(NOTIFICATION, callback);
  };

  Channel.prototype.listenForWhisper = function (event, callback) {
    return this.listen(".client-" + event, callback);
  };

  Channel.prototype.stopListeningForWhisper = function (event, callback) {
    return this.stopListening(".client-" + event, callback);
  };

  Channel.prototype._emit = function (event, data) {
    if (this._state === "left") return;
    (this._bindings[event] || []).slice().forEach(function (f) { call(f, [data]); });
    this._global.slice().forEach(function (g) { call(g[1], [event, data]); });
  };

  /* The subscription carries this channel from now on. */
  Channel.prototype._live = function () {
    if (this._state !== "subscribing") return;
    this._state = "subscribed";
    this._emit("pusher:subscription_succeeded", {});
  };

  Channel.prototype._fail = function (error) {
    if (this._state === "left" || this._state === "failed") return;
    this._state = "failed";
    this._emit("pusher:subscription_error", error);
  };

  /* A private channel: authorized by the application; whispers. */
  function PrivateChannel(connector, name) {
    this._auth = null;         // {auth, channel_data?} from the application
    this._stale = false;       // authorize again before the next request
    this._waiting = [];        // whisper()s waiting for the authorization
    Channel.call(this, connector, name);
  }
  PrivateChannel.prototype = Object.create(Channel.prototype);
  PrivateChannel.prototype.constructor = PrivateChannel;
  PrivateChannel.prototype.needsAuth = true;

  PrivateChannel.prototype.subscribe = function () {
    if (this._state !== "new" && this._state !== "left") return;
    this._state = "authorizing";
    var self = this;
    this.connector._authorizeUntilDone(this).then(function (result) {
      if (self._state !== "authorizing") return;     // left meanwhile
      if (result.error) {
        self._fail(result.error);
        return;
      }
      self._setAuth(result.auth);
      self._state = "subscribing";
      self._settle();
      self.connector._add(self);
    });
  };

  PrivateChannel.prototype.unsubscribe = function () {
    Channel.prototype.unsubscribe.call(this);
    this._settle();
  };

  PrivateChannel.prototype._fail = function (error) {
    Channel.prototype._fail.call(this, error);
    this._settle();
  };

  /* The authorization is known, or will never be: the waiting whispers go. */
  PrivateChannel.prototype._settle = function () {
    var a = this._state === "subscribing" || this._state === "subscribed" ? this._auth : null;
    this._waiting.splice(0).forEach(function (resolve) { resolve(a); });
  };

  PrivateChannel.prototype._setAuth = function (a) {
    this._auth = a;
    this._stale = false;
  };

  PrivateChannel.prototype.whisper = function (event, data) {
    var self = this;
    var body = JSON.stringify({ event: "client-" + event, data: data === undefined ? null : data });
    this._whenAuthorized().then(function (a) {
      if (!a) {
        warn("not sent: client-" + event + " on " + self.name + ", which is not subscribed");
        return null;
      }
      var q = [["channel", self.name], ["socket_id", self.connector._socketId], ["auth", a.auth]];
      if (a.channel_data) q.push(["channel_data", a.channel_data]);
      return root.fetch(self.connector._url("whisper", q), {
        method: "POST", body: body, cache: "no-store",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        credentials: self.options.withCredentials ? "include" : "same-origin"
      }).then(function (res) {
        if (res.status !== 201)
          return res.text().then(function (t) {
            warn("client-" + event + " on " + self.name + " refused: " + res.status + " " + t);
          });
      });
    }).catch(function (e) {
      warn("client-" + event + " on " + self.name + " not sent: " + (e && e.message || e));
    });
    return this;
  };

  /* The authorization once there is one; null when the channel failed or
   * was left first. */
  PrivateChannel.prototype._whenAuthorized = function () {
    var self = this;
    return new Promise(function (resolve) {
      if (self._state === "authorizing") self._waiting.push(resolve);
      else resolve(self._state === "subscribing" || self._state === "subscribed" ? self._auth : null);
    });
  };

  /* A presence channel: who is there. The members are comet.js's (GET
   * .../presence, then the joins and leaves after it), with this page's
   * user kept among them as Pusher does: its own join is no news, and it
   * does not leave while this page is on the channel. */
  function PresenceChannel(connector, name) {
    this.members = null;       // Pusher's Members: {members: {id: info}, count, me, myID}
    PrivateChannel.call(this, connector, name);
  }
  PresenceChannel.prototype = Object.create(PrivateChannel.prototype);
  PresenceChannel.prototype.constructor = PresenceChannel;

  PresenceChannel.prototype.here = function (callback) {
    return this.on("pusher:subscription_succeeded", function (data) {
      callback(Object.keys(data.members).map(function (k) { return data.members[k]; }));
    });
  };

  PresenceChannel.prototype.joining = function (callback) {
    return this.on("pusher:member_added", function (member) { callback(member.info); });
  };

  PresenceChannel.prototype.leaving = function (callback) {
    return this.on("pusher:member_removed", function (member) { callback(member.info); });
  };

  PresenceChannel.prototype._setAuth = function (a) {
    PrivateChannel.prototype._setAuth.call(this, a);
    var me = { id: null, info: null };
    try {
      var cd = JSON.parse(a.channel_data);
      me = { id: String(cd.user_id), info: cd.user_info === undefined ? null : cd.user_info };
    } catch (e) { /* comet-fcgi refuses it; the error comes from there */ }
    this._me = me;
  };

  /* Subscribed when the member list has come, as on Pusher, whose
   * subscription_succeeded carries it. */
  PresenceChannel.prototype._live = function () {};

  PresenceChannel.prototype._presence = function (ev) {
    if (this._state !== "subscribing" && this._state !== "subscribed") return;
    var me = this._me;
    if (ev.event === "here") {
      var list = {};
      ev.members.forEach(function (m) { list[m.id] = m.info; });
      if (me.id !== null && !(me.id in list)) list[me.id] = me.info;
      this.members = { members: list, count: Object.keys(list).length, me: me, myID: me.id };
      this._state = "subscribed";
      // On Pusher a subscription succeeds again after every reconnect;
      // here only after a gap or reset, when the list is asked for again.
      this._emit("pusher:subscription_succeeded", this.members);
      return;
    }
    if (!this.members) return;
    var id = ev.member.id, had = id in this.members.members;
    if (ev.event === "join") {
      this.members.members[id] = ev.member.info;
      if (!had && id !== me.id) this._emit("pusher:member_added", { id: id, info: ev.member.info });
    } else if (ev.event === "leave" && had && id !== me.id) {
      delete this.members.members[id];
      this._emit("pusher:member_removed", { id: id, info: ev.member.info });
    }
    this.members.count = Object.keys(this.members.members).length;
  };

  // -------------------------------------------------------------- groups

  /* Channels sharing one comet.js subscription. */
  function Group(connector) {
    this.connector = connector;
    this.names = [];
    this.sub = null;
    this.state = "connecting";
    this._scheduled = false;
  }

  /* Whether channel ch fits into this group's requests too. */
  Group.prototype.fits = function (ch) {
    if (this.names.length >= MAX_CHANNELS) return false;
    var chans = this.channels().concat([ch]);
    var auths = chans.filter(function (c) { return c.needsAuth; });
    if (auths.length > MAX_AUTH) return false;
    var q = this.connector._query(chans.map(function (c) { return c.name; }));
    var len = 0;
    q.forEach(function (p) { len += encodeURIComponent(p[1]).length + p[0].length + 2; });
    return len <= MAX_QUERY && this.connector._dataOf(chans).length <= MAX_AUTH;
  };

  Group.prototype.channels = function () {
    var all = this.connector.channels;
    return this.names.map(function (n) { return all[n]; }).filter(Boolean);
  };

  /* Applies the channel list at the next turn (so that channels joined
   * together go in one change). */
  Group.prototype.schedule = function () {
    if (this._scheduled) return;
    this._scheduled = true;
    var self = this;
    Promise.resolve().then(function () {
      self._scheduled = false;
      self.apply();
    });
  };

  Group.prototype.apply = function () {
    var c = this.connector;
    if (!this.names.length) {
      if (this.sub) this.sub.close();
      this.sub = null;
      c._dropGroup(this);
      return;
    }
    if (!this.sub) this.start(this.names.slice(), null);
    else this.watch(this.sub, this.sub.setChannels(this.names.slice()));
  };

  /* A new subscription: from now, or (since) where an earlier one was. */
  Group.prototype.start = function (names, since) {
    var self = this, c = this.connector, o = c.options;
    var sub = comet().subscribe(c._base(), names, {
      transport: o.transport || "auto",
      since: since === null ? undefined : since,
      timeout: o.timeout,
      keepalive: o.keepalive,
      withCredentials: !!o.withCredentials,
      params: function (chans) { return c._params(chans, self); },
      onMessage: function (m) { if (self.sub === sub) c._message(m); },
      onPresence: function (ev) {
        var ch = c.channels[ev.channel];
        if (self.sub === sub && ch && ch._presence && ch._group === self) ch._presence(ev);
      },
      onError: function (err) {
        if (self.sub !== sub) return;
        if (err.fatal) self.failed(sub, err);
        else if (err.channel) self.noMembers(err);
        else self.channels().forEach(function (ch) { if (ch.needsAuth) ch._stale = true; });
      },
      onState: function (s) {
        if (self.sub !== sub || s === "closed") return;
        self.state = s;
        c._status();
      }
    });
    this.sub = sub;
    this.watch(sub, sub.live());
  };

  Group.prototype.watch = function (sub, live) {
    var self = this;
    live.then(function (ok) {
      if (!ok || self.sub !== sub) return;
      self.channels().forEach(function (ch) { if (ch._group === self) ch._live(); });
    });
  };

  /* A presence channel's members could not be had (comet.js gave up
   * asking: an answer that cannot get better): the channel fails. */
  Group.prototype.noMembers = function (err) {
    var ch = this.connector.channels[err.channel];
    if (err.retryIn !== null || !ch || ch._group !== this) return;
    this.connector._remove(ch);
    ch._fail(err.status === 401 || err.status === 403 ? authError(err.message, err.status)
             : { type: "CometError", error: err.message, status: err.status });
  };

  /* comet-fcgi refused the subscription (comet.js has closed it). A 403
   * names the channel it refused: that one fails and the rest go on from
   * where they were; a 403 that names none (private channels not enabled)
   * fails the private and presence ones; anything else fails them all. */
  Group.prototype.failed = function (sub, err) {
    var c = this.connector;
    var m = err.status === 403 && /required for (\S+)$/.exec(err.message || "");
    var refused;
    if (m) {
      // (One this group no longer carries, such as a channel refused again
      // on the way: nothing more to fail.)
      refused = this.names.indexOf(m[1]) >= 0 ? [m[1]] : [];
    } else {
      refused = err.status === 403 ? this.channels().filter(function (ch) { return ch.needsAuth; })
        .map(function (ch) { return ch.name; }) : [];
      if (!refused.length) refused = this.names.slice();
    }
    var why = err.status === 401 || err.status === 403 ? authError(err.message, err.status)
      : { type: "CometError", error: err.message, status: err.status };
    this.sub = null;
    this.names = this.names.filter(function (n) { return refused.indexOf(n) < 0; });
    refused.forEach(function (n) {
      var ch = c.channels[n];
      if (ch && ch._group === this) {
        ch._group = null;
        ch._fail(why);
      }
    }, this);
    if (!this.names.length) {
      c._dropGroup(this);
      return;
    }
    // The live ones resume from the cursor; the others start from now.
    var live = this.channels().filter(function (ch) { return ch._state === "subscribed"; })
      .map(function (ch) { return ch.name; });
    if (live.length && sub.cursor !== null) {
      this.start(live, sub.cursor);
      if (live.length !== this.names.length) this.watch(this.sub, this.sub.setChannels(this.names.slice()));
    } else {
      this.start(this.names.slice(), null);
    }
  };

  // ----------------------------------------------------------- connector

  var DEFAULTS = {
    authEndpoint: "/broadcasting/auth",
    csrfToken: null,
    bearerToken: null,
    key: null,
    namespace: "App.Events",
    cometUrl: "/comet",
    transport: "auto"
  };

  function CometEcho(options) {
    // Echo 1.x checks that a broadcaster is a constructor by calling it
    // without arguments: do nothing then.
    if (!options) return;
    var o = {};
    Object.keys(DEFAULTS).forEach(function (k) { o[k] = DEFAULTS[k]; });
    Object.keys(options).forEach(function (k) { if (options[k] !== undefined) o[k] = options[k]; });
    var auth = options.auth || {};
    o.auth = { headers: Object.assign({}, auth.headers), params: Object.assign({}, auth.params) };
    var token = csrfToken(o);
    if (token) o.auth.headers["X-CSRF-TOKEN"] = token;
    if (o.bearerToken) o.auth.headers.Authorization = "Bearer " + o.bearerToken;
    this.options = o;
    this.channels = {};
    this._socketId = newSocketId();
    this._groups = [];
    this._listeners = [];      // onConnectionChange callbacks
    this._lastStatus = null;
    this._disconnected = false;
    comet();                   // fail early when comet.js is missing
  }

  CometEcho.prototype.connect = function () {
    if (!this._disconnected) return;
    this._disconnected = false;
    var self = this;
    Object.keys(this.channels).forEach(function (n) {
      var ch = self.channels[n];
      if (ch._state === "subscribing" || ch._state === "subscribed") {
        ch._state = "subscribing";
        self._add(ch);
      }
    });
    this._status();
  };

  CometEcho.prototype.listen = function (name, event, callback) {
    return this.channel(name).listen(event, callback);
  };

  /* The channel of that name, made on first use. Its kind goes by the name,
   * as in Pusher's client: channel("private-x") is private too, since
   * comet-fcgi asks for an authorization by the name. */
  CometEcho.prototype._channel = function (name) {
    if (!this.channels[name]) {
      var Kind = name.indexOf("presence-") === 0 ? PresenceChannel
        : name.indexOf("private-") === 0 ? PrivateChannel : Channel;
      this.channels[name] = new Kind(this, name);
    }
    return this.channels[name];
  };

  CometEcho.prototype.channel = function (name) {
    return this._channel(name);
  };

  CometEcho.prototype.privateChannel = function (name) {
    return this._channel("private-" + name);
  };

  CometEcho.prototype.encryptedPrivateChannel = function () {
    throw new Error("CometEcho: encrypted private channels are not supported by comet-fcgi");
  };

  CometEcho.prototype.presenceChannel = function (name) {
    return this._channel("presence-" + name);
  };

  CometEcho.prototype.leave = function (name) {
    var self = this;
    [name, "private-" + name, "private-encrypted-" + name, "presence-" + name].forEach(function (n) {
      self.leaveChannel(n);
    });
  };

  CometEcho.prototype.leaveChannel = function (name) {
    var ch = this.channels[name];
    if (!ch) return;
    ch.unsubscribe();
    delete this.channels[name];
  };

  CometEcho.prototype.socketId = function () {
    return this._socketId;
  };

  /* Echo 2.x's connection states, from the subscriptions': connected when
   * every one is open (or there is none yet: nothing is waiting). */
  CometEcho.prototype.connectionStatus = function () {
    if (this._disconnected) return "disconnected";
    var states = this._groups.map(function (g) { return g.state; });
    if (states.indexOf("reconnecting") >= 0) return "reconnecting";
    if (states.indexOf("connecting") >= 0) return "connecting";
    return "connected";
  };

  CometEcho.prototype.onConnectionChange = function (callback) {
    var listeners = this._listeners;
    listeners.push(callback);
    return function () {
      var i = listeners.indexOf(callback);
      if (i >= 0) listeners.splice(i, 1);
    };
  };

  CometEcho.prototype._status = function () {
    var s = this.connectionStatus();
    if (s === this._lastStatus) return;
    this._lastStatus = s;
    this._listeners.slice().forEach(function (f) { call(f, [s]); });
  };

  CometEcho.prototype.disconnect = function () {
    if (this._disconnected) return;
    this._disconnected = true;
    this._groups.forEach(function (g) {
      if (g.sub) g.sub.close();
      g.sub = null;
      g.channels().forEach(function (ch) { ch._group = null; });
    });
    this._groups = [];
    this._status();
  };

  CometEcho.prototype.signin = function () {
    warn("Pusher user authentication (signin) is not supported by comet-fcgi");
  };

  // ------------------------------------------------------------ internal

  CometEcho.prototype._base = function () {
    return String(this.options.cometUrl).replace(/\/+$/, "");
  };

  CometEcho.prototype._url = function (endpoint, pairs) {
    return this._base() + "/" + endpoint + "?" + pairs.map(function (p) {
      return encodeURIComponent(p[0]) + "=" + encodeURIComponent(p[1]);
    }).join("&");
  };

  /* The distinct channel_data of these channels (members of several
   * presence channels as one user send it once). */
  CometEcho.prototype._dataOf = function (chans) {
    var out = [];
    chans.forEach(function (ch) {
      var d = ch._auth && ch._auth.channel_data;
      if (d && out.indexOf(d) < 0) out.push(d);
    });
    return out;
  };

  /* The query parameters that authorize these channels. */
  CometEcho.prototype._query = function (names) {
    var self = this;
    var chans = names.map(function (n) { return self.channels[n]; }).filter(function (ch) {
      return ch && ch.needsAuth && ch._auth;
    });
    var q = [["socket_id", this._socketId]];
    chans.forEach(function (ch) { q.push(["auth", ch._auth.auth]); });
    this._dataOf(chans).forEach(function (d) { q.push(["channel_data", d]); });
    return q;
  };

  /* comet.js's params for a group's requests. Channels whose connection
   * failed and came back are authorized again first (a refusal fails the
   * channel; an endpoint that cannot be reached leaves the authorization
   * as it was). */
  CometEcho.prototype._params = async function (names, group) {
    var self = this;
    var stale = names.map(function (n) { return self.channels[n]; }).filter(function (ch) {
      return ch && ch._stale && ch._group === group;
    });
    await Promise.all(stale.map(function (ch) {
      return self._authorizeOnce(ch).then(function (a) {
        ch._setAuth(a);
      }, function (e) {
        ch._stale = false;
        if (e && e.type === "AuthError" && !RETRY[e.status] && e.status < 500) {
          self._remove(ch);
          ch._fail(e);
        }
      });
    }));
    return this._query(names);
  };

  /* One authorization of channel ch by the application: resolves to
   * {auth, channel_data?}; rejects with {type: "AuthError", error, status}. */
  CometEcho.prototype._authorizeOnce = function (ch) {
    var o = this.options, sid = this._socketId;
    var ca = o.channelAuthorization || {};
    var custom = typeof o.authorizer === "function"
      ? function (cb) { o.authorizer({ name: ch.name }, o).authorize(sid, cb); }
      : typeof ca.customHandler === "function"
        ? function (cb) { ca.customHandler({ socketId: sid, channelName: ch.name }, cb); }
        : null;
    var check = function (data) {
      if (!data || typeof data.auth !== "string")
        throw authError("no auth string for " + ch.name + " in " + JSON.stringify(data), 200);
      if (ch instanceof PresenceChannel && typeof data.channel_data !== "string")
        throw authError("no channel_data for " + ch.name, 200);
      return data;
    };
    if (custom)
      return new Promise(function (resolve, reject) {
        custom(function (err, data) {
          if (err) reject(authError(String(err && err.message || err), err && err.status || 0));
          else resolve(data);
        });
      }).then(check);
    var endpoint = ca.endpoint || o.authEndpoint;
    var body = new URLSearchParams();
    body.append("socket_id", sid);
    body.append("channel_name", ch.name);
    var params = Object.assign({}, o.auth.params, ca.params);
    Object.keys(params).forEach(function (k) { body.append(k, params[k]); });
    var headers = Object.assign({ "Content-Type": "application/x-www-form-urlencoded",
                                  Accept: "application/json" }, o.auth.headers, ca.headers);
    return root.fetch(endpoint, {
      method: "POST", body: body.toString(), headers: headers, cache: "no-store",
      credentials: o.withCredentials ? "include" : "same-origin"
    }).then(function (res) {
      return res.text().then(function (text) {
        if (res.status !== 200)
          throw authError("Unable to retrieve auth string from channel-authorization endpoint - " +
                          "received status: " + res.status + " from " + endpoint, res.status);
        var data;
        try { data = JSON.parse(text); } catch (e) {
          throw authError("JSON returned from channel-authorization endpoint was invalid: " +
                          text.slice(0, 200), 200);
        }
        return check(data);
      });
    }, function (e) {
      throw authError("channel-authorization endpoint " + endpoint + " could not be reached: " +
                      (e && e.message || e), 0);
    });
  };

  /* Authorizes ch, retrying what may get better (no answer, 5xx, 408,
   * 429) with comet.js's backoff. Resolves {auth} or {error}. */
  CometEcho.prototype._authorizeUntilDone = async function (ch) {
    for (var attempt = 0; ; attempt++) {
      try {
        return { auth: await this._authorizeOnce(ch) };
      } catch (e) {
        if (ch._state !== "authorizing") return { error: e };
        if (!(RETRY[e.status] || e.status >= 500)) return { error: e };
        await sleep(comet()._backoff(attempt));
        if (ch._state !== "authorizing") return { error: e };
      }
    }
  };

  CometEcho.prototype._add = function (ch) {
    if (this._disconnected || ch._group) return;
    var g = null;
    for (var i = 0; i < this._groups.length && !g; i++)
      if (this._groups[i].fits(ch)) g = this._groups[i];
    if (!g) {
      g = new Group(this);
      this._groups.push(g);
    }
    ch._group = g;
    g.names.push(ch.name);
    g.schedule();
    this._status();
  };

  CometEcho.prototype._remove = function (ch) {
    var g = ch._group;
    if (!g) return;
    ch._group = null;
    g.names = g.names.filter(function (n) { return n !== ch.name; });
    g.schedule();
  };

  CometEcho.prototype._dropGroup = function (g) {
    var i = this._groups.indexOf(g);
    if (i >= 0) this._groups.splice(i, 1);
    this._status();
  };

  CometEcho.prototype._message = function (m) {
    var ch = this.channels[m.channel];
    var d = m.data;
    if (!ch || m.type !== PUSHER_TYPE || !d || typeof d.event !== "string") return;
    var data = d.data;
    // The application's events carry JSON text (Pusher's libraries encode
    // the data), parsed as pusher-js does; client events carry JSON as is.
    if (typeof data === "string" && d.event.indexOf("client-") !== 0) {
      try { data = JSON.parse(data); } catch (e) { /* keep the text */ }
    }
    ch._emit(d.event, data);
  };

  CometEcho.Channel = Channel;
  CometEcho.PrivateChannel = PrivateChannel;
  CometEcho.PresenceChannel = PresenceChannel;
  CometEcho.version = "1.0";

  root.CometEcho = CometEcho;
  if (typeof module === "object" && module && module.exports) module.exports = CometEcho;
})(typeof globalThis !== "undefined" ? globalThis : typeof self !== "undefined" ? self : this);
