/* The chat demo: shows channel "chat" through comet.js, sends through
 * send.php. Text is only ever put into the page with textContent. */
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

  var sub = Comet.subscribe(body.dataset.comet, [body.dataset.channel], {
    transport: transport,
    since: 0,                 // the retained history, then live
    onMessage: show,
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

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var name = nameInput.value.trim();
    var text = textInput.value.trim();
    if (!name || !text) return;
    store("chat-name", name);
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
