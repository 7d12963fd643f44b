/* The chat demo: shows channel "chat" through comet.js, sends through
 * send.php, and shows who is online on the presence channel "presence-chat"
 * (on the same subscription, with a token from presence.php). Text is only
 * ever put into the page with textContent. */
(function () {
  "use strict";

  var body = document.body;
  var log = document.getElementById("log");
  var form = document.getElementById("send");
  var nameInput = document.getElementById("name");
  var textInput = document.getElementById("text");
  var button = document.getElementById("go");
  var status = document.getElementById("status");
  var errorBox = document.getElementById("error");
  var KEEP = 300;   // messages kept on the page

  var params = new URLSearchParams(location.search);
  var transport = params.get("transport") || "auto";

  function store(k, v) {
    try {
      if (v === undefined) return localStorage.getItem(k);
      localStorage.setItem(k, v);
    } catch (e) { /* storage disabled */ }
    return null;
  }

  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function append(li) {
    var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 40;
    log.appendChild(li);
    while (log.children.length > KEEP) log.removeChild(log.firstChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function note(text) {
    var li = document.createElement("li");
    li.className = "note";
    li.textContent = text;
    append(li);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function show(msg) {
    // (The presence channel's joins and leaves come through onPresence.)
    if (msg.channel !== body.dataset.channel) return;
    var d = msg.data;
    if (!d || typeof d !== "object") d = { name: "?", text: String(d) };
    var li = document.createElement("li");
    li.dataset.id = String(msg.id);
    var when = new Date(msg.time);
    var time = document.createElement("time");
    time.dateTime = when.toISOString();
    time.textContent = pad(when.getHours()) + ":" + pad(when.getMinutes());
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = String(d.name === undefined ? "?" : d.name);
    var text = document.createElement("span");
    text.className = "text";
    text.textContent = String(d.text === undefined ? "" : d.text);
    li.append(time, who, text);
    append(li);
  }

  // Who is online. This tab is a member once it has a name: presence.php
  // mints the token (one member per browser and name, so that the tabs of
  // one person are one member), and the presence channel joins the
  // subscription. Without a token key on the server the list stays hidden.
  var presence = "presence-" + body.dataset.channel;
  var online = document.getElementById("online");
  var memberList = document.getElementById("members");
  var me = null;              // {id, name} of this tab's member
  var ready = null;           // the token fetched when going online

  function browserId() {
    var id = store("chat-browser");
    if (!id || !/^[0-9a-f]{16,64}$/.test(id)) {
      var a = new Uint8Array(12);
      crypto.getRandomValues(a);
      id = Array.prototype.map.call(a, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
      store("chat-browser", id);
    }
    return id;
  }

  function presenceToken(name) {
    return fetch("presence.php", {
      method: "POST",
      body: new URLSearchParams({ browser: browserId(), name: name }),
      headers: { Accept: "application/json" }
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (ans) {
        if (!res.ok || typeof ans.token !== "string") throw new Error(ans.error || "HTTP " + res.status);
        return ans;
      });
    });
  }

  /* comet.js asks when the presence channel joins the subscription, and
   * again when the server refuses an expired token. */
  function tokens(channels) {
    if (!me || channels.indexOf(presence) < 0) return [];
    if (ready) {
      var t = ready;
      ready = null;
      return t;
    }
    return presenceToken(me.name).then(function (ans) { return ans.token; });
  }

  function goOnline(name) {
    if (me && me.name === name) return;
    presenceToken(name).then(function (ans) {
      me = { id: ans.id, name: name };
      ready = ans.token;
      // A new name is a new member: off the channel, then on again.
      sub.setChannels([body.dataset.channel]);
      sub.setChannels([body.dataset.channel, presence]);
      online.hidden = false;
      body.dataset.presence = "on";
    }, function (e) {
      body.dataset.presence = "off";
      online.title = e.message;
    });
  }

  function showMembers(members) {
    memberList.textContent = "";
    members.map(function (m) {
      return { id: m.id, name: String(m.info && m.info.name !== undefined ? m.info.name : "?") };
    }).sort(function (x, y) {
      return x.name.localeCompare(y.name);
    }).forEach(function (m) {
      var li = document.createElement("li");
      li.textContent = m.name;
      if (me && m.id === me.id) {
        li.className = "me";
        li.title = "you";
      }
      memberList.appendChild(li);
    });
    body.dataset.online = String(members.length);
  }

  var sub = Comet.subscribe(body.dataset.comet, [body.dataset.channel], {
    transport: transport,
    since: 0,                 // the retained history, then live
    token: tokens,
    onMessage: show,
    onPresence: function (ev) {
      if (ev.channel === presence) showMembers(ev.members);
    },
    onGap: function () { note("(some older messages were dropped)"); },
    onReset: function () {
      log.textContent = "";
      note("(the chat log was reset)");
    },
    onError: function (err) {
      status.textContent = err.fatal ? "stopped: " + err.message
        : "reconnecting (" + err.message + ")";
    },
    onState: function (state) {
      body.dataset.state = state;
      if (state === "open") status.textContent = "live";
      else if (state === "connecting") status.textContent = "connecting";
      else if (state === "closed") status.textContent = status.textContent || "closed";
    }
  });
  document.getElementById("transport").textContent = sub.transport;
  body.dataset.transport = sub.transport;

  nameInput.value = store("chat-name") || "";
  (nameInput.value ? textInput : nameInput).focus();
  if (nameInput.value) goOnline(nameInput.value.trim());

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = nameInput.value.trim();
    var text = textInput.value.trim();
    if (!name || !text) return;
    store("chat-name", name);
    goOnline(name);
    button.disabled = true;
    showError("");
    fetch("send.php", {
      method: "POST",
      body: new URLSearchParams({ name: name, text: text }),
      headers: { Accept: "application/json" }
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (ans) {
        if (!res.ok) throw new Error(ans.error || "HTTP " + res.status);
        textInput.value = "";   // it shows up through the subscription
      });
    }).catch(function (e) {
      showError("Not sent: " + e.message);
    }).then(function () {
      button.disabled = false;
      textInput.focus();
    });
  });
})();
