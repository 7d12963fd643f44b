"use strict";
// Laravel Echo on comet-fcgi: the real laravel-echo from npm (1.x as the
// classic scripts a page includes, 2.x as the ES modules a bundler takes)
// with www/comet-echo.js as its broadcaster, in Chromium, against lighttpd
// running comet-fcgi with the Pusher keys. Events are published with npm's
// pusher (Pusher's own server SDK for Node), as Laravel's pusher driver
// publishes them; private and presence channels are authorized by
// pages/echo/auth.php, which answers as Laravel's /broadcasting/auth (a
// session's user, the CSRF token Echo takes from the page, Pusher's
// signatures). The document root is www/ with the test pages and the two
// laravel-echo builds beside it. What is asserted is what an application
// sees: its callbacks, called with the payloads it was sent.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const Pusher = require("pusher");
const { Server, launch, newPage, artifact, WAIT, WWW } = require("./lib");

const APP = { appId: "4242", key: "echo-test-key", secret: "echo-test-secret" };
const GRACE = 2;          // COMET_PRESENCE_GRACE, seconds
// laravel-echo 1.x with the classic scripts and long-polling (held 5 s,
// so that a closed page's last request ends soon: lighttpd does not always
// notice a long-poll's client leaving); 2.x with ES modules and an event
// stream.
const VARIANTS = [
  { echo: "1", form: "script", transport: "longpoll", timeout: "5" },
  { echo: "2", form: "module", transport: "sse" },
];

let browser, srv, pusher, scratch;

/* Where an installed package is (its exports allow no require.resolve of
 * package.json): under NODE_PATH (run.py's), or node's own search path. */
function moduleDir(name) {
  const dirs = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean).concat(module.paths);
  for (const d of dirs)
    if (fs.existsSync(path.join(d, name, "package.json"))) return path.join(d, name);
  throw new Error(`${name} is not installed (cd tests/browser && npm ci)`);
}

/* The document root: www/ (comet.js, comet-echo.js, ...), echo/ (the
 * test pages) and vendor/echo1, vendor/echo2 (laravel-echo's dist/); next
 * to it the PHP sessions and the Pusher keys for auth.php. */
function docroot() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "comet-echo-"));
  const root = path.join(dir, "www");
  fs.mkdirSync(root);
  for (const name of fs.readdirSync(WWW)) fs.symlinkSync(path.join(WWW, name), path.join(root, name));
  fs.symlinkSync(path.join(__dirname, "pages", "echo"), path.join(root, "echo"));
  fs.mkdirSync(path.join(root, "vendor"));
  for (const v of ["1", "2"]) {
    const dir = moduleDir(`laravel-echo-${v}`);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
    assert.equal(pkg.name, "laravel-echo");
    assert.equal(pkg.version.split(".")[0], v);
    fs.symlinkSync(path.join(dir, "dist"), path.join(root, "vendor", `echo${v}`));
  }
  fs.mkdirSync(path.join(dir, "sessions"));
  fs.writeFileSync(path.join(dir, "pusher.json"), JSON.stringify({ key: APP.key, secret: APP.secret }));
  return dir;
}

before(async () => {
  browser = await launch();
  scratch = docroot();
  srv = await Server.start("lighttpd", {
    COMET_PUSHER_APP_ID: APP.appId,
    COMET_PUSHER_KEY: APP.key,
    COMET_PUSHER_SECRET: APP.secret,
    COMET_PRESENCE_GRACE: String(GRACE),
  }, { www: path.join(scratch, "www") });
  const port = new URL(srv.base).port;
  pusher = new Pusher({ ...APP, host: "127.0.0.1", port, useTLS: false });
});
after(async () => {
  if (srv) await srv.stop();
  if (browser) await browser.close();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

/* Publishes as Laravel's pusher driver does; Pusher answers 200. */
async function trigger(channel, event, data, params) {
  const res = await pusher.trigger(channel, event, data, params);
  assert.equal(res.status, 200, `trigger ${event} on ${channel}`);
}

/* A page of user `user` with window.Echo made from laravel-echo as the
 * variant says; page.subs: the /comet/sub requests it made, as URLs. */
async function open(v, user) {
  const page = await newPage(browser);
  page.subs = [];
  page.subsOpen = 0;        // sent and not yet ended
  page.subsFailed = 0;      // ended without an answer (cut off, refused)
  const isSub = (r) => new URL(r.url()).pathname === "/comet/sub";
  page.on("request", (r) => {
    if (!isSub(r)) return;
    page.subs.push(new URL(r.url()));
    page.subsOpen++;
  });
  page.on("requestfinished", (r) => { if (isSub(r)) page.subsOpen--; });
  page.on("requestfailed", (r) => {
    if (!isSub(r)) return;
    page.subsOpen--;
    page.subsFailed++;
  });
  const q = new URLSearchParams({ user: String(user), echo: v.echo, form: v.form, transport: v.transport });
  if (v.timeout) q.set("timeout", v.timeout);
  await page.goto(`${srv.base}/echo/index.php?${q}`);
  await page.waitForSelector('body[data-ready="1"]', { state: "attached", timeout: WAIT });
  // Really the laravel-echo asked for: 2.x has connectionStatus(), 1.x not.
  assert.equal(await page.evaluate(() => typeof Echo.connectionStatus),
               v.echo === "2" ? "function" : "undefined");
  return page;
}

/* What the callbacks made by record(kind) were called with, in order. */
function seen(page, kind) {
  return page.evaluate((k) => kinds(k), kind);
}

/* Waits until record(kind) was called n times; answers the calls. */
async function waitSeen(page, kind, n = 1) {
  await page.waitForFunction(([k, c]) => kinds(k).length >= c, [kind, n], { timeout: WAIT });
  return seen(page, kind);
}

/* Polls cond() (of the test's own state) until true; fails after WAIT. */
async function waitUntil(cond, what) {
  const deadline = Date.now() + WAIT;
  for (let delay = 5; !cond(); delay = Math.min(delay * 2, 100)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

async function done(...pages) {
  for (const p of pages) {
    assert.deepEqual(p.errors, [], "errors on the page");
    if (!p.isClosed()) await p.context().close();
  }
}

for (const v of VARIANTS) {
  const tag = `echo ${v.echo}.x, ${v.form}, ${v.transport}`;
  const sfx = `v${v.echo}`;             // each variant's own channels

  test(`public channel: listen() with Echo's event names, listenToAll(), stopListening() (${tag})`, async () => {
    const a = await open(v, 1);
    await a.evaluate((ch) => {
      Echo.channel(ch)
        .subscribed(record("subscribed"))
        .listen("OrderShipped", record("shipped"))
        .listen(".custom.name", record("custom"))
        .listen("\\Other\\Ns\\Thing", record("other"))
        .listenToAll(record("all"));
    }, `orders-${sfx}`);
    await waitSeen(a, "subscribed");
    await trigger(`orders-${sfx}`, "App\\Events\\OrderShipped", { order: { id: 1, total: "9.50" } });
    await trigger(`orders-${sfx}`, "custom.name", "plain text");
    await trigger(`orders-${sfx}`, "Other\\Ns\\Thing", [1, 2]);
    await waitSeen(a, "other");
    assert.deepEqual(await seen(a, "shipped"), [[{ order: { id: 1, total: "9.50" } }]]);
    assert.deepEqual(await seen(a, "custom"), [["plain text"]]);
    assert.deepEqual(await seen(a, "other"), [[[1, 2]]]);
    assert.deepEqual(await seen(a, "all"), [
      ["OrderShipped", { order: { id: 1, total: "9.50" } }],
      [".custom.name", "plain text"],
      [".Other\\Ns\\Thing", [1, 2]],
    ]);
    // Not listening any more: the next OrderShipped reaches nobody, the
    // event after it still comes.
    await a.evaluate((ch) => { Echo.channel(ch).stopListening("OrderShipped"); }, `orders-${sfx}`);
    await trigger(`orders-${sfx}`, "App\\Events\\OrderShipped", { order: { id: 2 } });
    await trigger(`orders-${sfx}`, "custom.name", "after");
    await waitSeen(a, "custom", 2);
    assert.equal((await seen(a, "shipped")).length, 1);
    assert.deepEqual(await seen(a, "subscribed"), [[]]);
    await a.screenshot({ path: artifact(`echo-${sfx}-public.png`) });
    await done(a);
  });

  test(`private channels: authorized by the application; refusals reach error() (${tag})`, async () => {
    const a = await open(v, 1);
    const auths = [];
    a.on("request", (r) => {
      if (new URL(r.url()).pathname === "/echo/auth.php") auths.push(r);
    });
    await a.evaluate((s) => {
      Echo.private(`orders.1`).subscribed(record("sub-mine")).listen("OrderShipped", record("mine"));
      Echo.private(`orders.2`).error(record("err-theirs")).listen("OrderShipped", record("theirs"));
      Echo.private(`forbidden.${s}`).error(record("err-forbidden"));
      Echo.private(`badsig.${s}`).error(record("err-badsig")).subscribed(record("sub-badsig"));
    }, sfx);
    const [[theirs]] = await waitSeen(a, "err-theirs");
    assert.equal(theirs.type, "AuthError");
    assert.equal(theirs.status, 403);
    const [[forbidden]] = await waitSeen(a, "err-forbidden");
    assert.equal(forbidden.status, 403);
    // The application signed it wrongly: comet-fcgi refuses it (403), and
    // only it: the other channel goes on.
    const [[badsig]] = await waitSeen(a, "err-badsig");
    assert.equal(badsig.type, "AuthError");
    assert.equal(badsig.status, 403);
    assert.match(badsig.error, /private-badsig/);
    await waitSeen(a, "sub-mine");
    await trigger("private-orders.2", "App\\Events\\OrderShipped", { order: 2 });
    await trigger("private-orders.1", "App\\Events\\OrderShipped", { order: 1 });
    assert.deepEqual(await waitSeen(a, "mine"), [[{ order: 1 }]]);
    assert.deepEqual(await seen(a, "theirs"), []);
    assert.deepEqual(await seen(a, "sub-badsig"), []);
    // As Pusher's client asks: a form with socket_id and channel_name, the
    // page's CSRF token in X-CSRF-TOKEN.
    const csrf = await a.getAttribute('meta[name="csrf-token"]', "content");
    const sid = await a.evaluate(() => Echo.socketId());
    assert.ok(auths.length >= 4);
    for (const r of auths) {
      assert.equal(r.method(), "POST");
      assert.equal((await r.allHeaders())["x-csrf-token"], csrf);
      const form = new URLSearchParams(r.postData());
      assert.equal(form.get("socket_id"), sid);
      assert.match(form.get("channel_name"), /^private-/);
    }
    // A refused channel is never asked for.
    assert.ok(a.subs.every((u) => !u.searchParams.getAll("channel").includes("private-orders.2")));
    await done(a);
  });

  test(`presence: here(), joining(), leaving(), whisper() between two pages (${tag})`, async (t) => {
    const room = `room.${sfx}`;
    const join = (r) => {
      Echo.join(r)
        .here(record("here"))
        .joining(record("joining"))
        .leaving(record("leaving"))
        .listenForWhisper("typing", record("typing"));
    };
    const ann = { id: 1, name: "Ann" }, bob = { id: 2, name: "Bob" };
    const a = await open(v, 1);
    await a.evaluate(join, room);
    assert.deepEqual(await waitSeen(a, "here"), [[[ann]]]);
    const b = await open(v, 2);
    await b.evaluate(join, room);
    assert.deepEqual(await waitSeen(b, "here"), [[[ann, bob]]]);
    assert.deepEqual(await waitSeen(a, "joining"), [[bob]]);
    // Ann in a second tab: one member, however many tabs; its here() has
    // her once, and the others hear of no join.
    const a2 = await open(v, 1);
    await a2.evaluate(join, room);
    assert.deepEqual(await waitSeen(a2, "here"), [[[ann, bob]]]);

    // Whispers reach the others, never their sender: Bob's comes to Ann,
    // then Ann answers; when Bob has her answer, his own would have come
    // before it.
    await b.evaluate((r) => { Echo.join(r).whisper("typing", { name: "Bob", n: 1 }); }, room);
    assert.deepEqual(await waitSeen(a, "typing"), [[{ name: "Bob", n: 1 }]]);
    await a.evaluate((r) => { Echo.join(r).whisper("typing", { name: "Ann" }); }, room);
    assert.deepEqual(await waitSeen(b, "typing"), [[{ name: "Ann" }]]);
    assert.deepEqual(await waitSeen(a2, "typing", 2), [[{ name: "Bob", n: 1 }], [{ name: "Ann" }]]);
    assert.deepEqual(await seen(a, "typing"), [[{ name: "Bob", n: 1 }]]);

    // Bob closes his page: he leaves within the grace (plus, long-polling,
    // the hold of the request he left behind).
    const t0 = Date.now();
    await b.context().close();
    assert.deepEqual(await waitSeen(a, "leaving"), [[bob]]);
    const took = (Date.now() - t0) / 1000;
    const bound = GRACE + (v.transport === "longpoll" ? Number(v.timeout) : 0) + 3;
    t.diagnostic(`Bob's leaving() came ${took} s after his page closed`);
    assert.ok(took <= bound, `left after ${took} s (more than ${bound} s)`);
    assert.deepEqual(await waitSeen(a2, "leaving"), [[bob]]);
    assert.deepEqual(await seen(a, "joining"), [[bob]]);
    assert.deepEqual(await seen(a2, "joining"), []);
    // The list the connector keeps, as Pusher's Members.
    const members = await a.evaluate((r) => Echo.connector.channels[`presence-${r}`].members.members, room);
    assert.deepEqual(members, { 1: ann });
    await a.screenshot({ path: artifact(`echo-${sfx}-presence.png`) });
    await done(a, a2, b);
  });

  test(`whisper on a private channel reaches the other page, not the sender (${tag})`, async () => {
    const ch = `chat.${sfx}`;
    const listen = (c) => {
      Echo.private(c).subscribed(record("subscribed"))
        .listenForWhisper("typing", record("typing")).listen(".marker", record("marker"));
    };
    const a = await open(v, 1);
    const b = await open(v, 2);
    await a.evaluate(listen, ch);
    await b.evaluate(listen, ch);
    await waitSeen(a, "subscribed");
    await waitSeen(b, "subscribed");
    await a.evaluate((c) => { Echo.private(c).whisper("typing", "Ann is typing"); }, ch);
    assert.deepEqual(await waitSeen(b, "typing"), [["Ann is typing"]]);
    await trigger(`private-${ch}`, "marker", {});
    await waitSeen(a, "marker");
    assert.deepEqual(await seen(a, "typing"), []);
    await done(a, b);
  });

  test(`notification(): BroadcastNotificationCreated on the user's channel (${tag})`, async () => {
    const a = await open(v, 1);
    await a.evaluate(() => {
      Echo.private("App.Models.User.1").subscribed(record("subscribed")).notification(record("note"));
    });
    await waitSeen(a, "subscribed");
    // What Laravel's BroadcastNotificationCreated carries.
    const note = { id: "9a1f6c2e-8b7d-4a51-9e0c-3d2b1a0f9e8d", type: "App\\Notifications\\InvoicePaid",
                   invoice: 17, amount: "42.00" };
    await trigger("private-App.Models.User.1",
                  "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated", note);
    assert.deepEqual(await waitSeen(a, "note"), [[note]]);
    await done(a);
  });

  test(`toOthers: an event sent with a page's socket id reaches the others, not it (${tag})`, async () => {
    const ch = `feed-${sfx}`;
    const listen = (c) => {
      Echo.channel(c).subscribed(record("subscribed")).listen(".posted", record("posted"));
    };
    const a = await open(v, 1);
    const b = await open(v, 2);
    await a.evaluate(listen, ch);
    await b.evaluate(listen, ch);
    await waitSeen(a, "subscribed");
    await waitSeen(b, "subscribed");
    const sid = await a.evaluate(() => Echo.socketId());
    assert.match(sid, /^\d+\.\d+$/);
    assert.notEqual(await b.evaluate(() => Echo.socketId()), sid);
    // Echo's interceptors send it with the page's requests, as X-Socket-ID
    // (Laravel's toOthers() reads it): axios, jQuery, Turbo.
    const sent = await a.evaluate(() => {
      const out = {};
      out.axios = axios.intercept({ headers: {} }).headers["X-Socket-Id"];
      jQuery.intercept({}, {}, { setRequestHeader: (k, val) => { out.jquery = [k, val]; } });
      const detail = { fetchOptions: { headers: {} } };
      document.dispatchEvent(new CustomEvent("turbo:before-fetch-request", { detail }));
      out.turbo = detail.fetchOptions.headers["X-Socket-Id"];
      return out;
    });
    assert.deepEqual(sent, { axios: sid, jquery: ["X-Socket-Id", sid], turbo: sid });
    // Every subscription request carries it.
    assert.ok(a.subs.length && a.subs.every((u) => u.searchParams.get("socket_id") === sid));
    await trigger(ch, "posted", { by: "Ann", n: 1 }, { socket_id: sid });
    await trigger(ch, "posted", { by: "server", n: 2 });
    assert.deepEqual(await waitSeen(b, "posted", 2), [[{ by: "Ann", n: 1 }], [{ by: "server", n: 2 }]]);
    assert.deepEqual(await waitSeen(a, "posted"), [[{ by: "server", n: 2 }]]);
    await done(a, b);
  });

  test(`leave(): nothing more from a channel left; one connection for the rest (${tag})`, async () => {
    const a = await open(v, 1);
    await a.evaluate((s) => {
      Echo.channel(`news-${s}`).subscribed(record("sub-news")).listen(".item", record("news"));
      Echo.channel(`sport-${s}`).subscribed(record("sub-sport")).listen(".item", record("sport"));
      Echo.private("orders.1").subscribed(record("sub-orders")).listen(".item", record("orders"));
    }, sfx);
    await waitSeen(a, "sub-news");
    await waitSeen(a, "sub-sport");
    await waitSeen(a, "sub-orders");
    // All three on one request.
    const last = a.subs[a.subs.length - 1].searchParams.getAll("channel").sort();
    assert.deepEqual(last, ["news-" + sfx, "private-orders.1", "sport-" + sfx]);
    await trigger(`news-${sfx}`, "item", { n: 1 });
    await waitSeen(a, "news");
    const before = a.subs.length;
    await a.evaluate((s) => { Echo.leave(`news-${s}`); Echo.leave("orders.1"); }, sfx);
    await trigger(`news-${sfx}`, "item", { n: 2 });
    await trigger("private-orders.1", "item", { n: 2 });
    await trigger(`sport-${sfx}`, "item", { n: 1 });
    await waitSeen(a, "sport");
    assert.deepEqual(await seen(a, "news"), [[{ n: 1 }]]);
    assert.deepEqual(await seen(a, "orders"), []);
    assert.deepEqual(await a.evaluate(() => Object.keys(Echo.connector.channels)), [`sport-${sfx}`]);
    await a.waitForFunction(() => true);
    const after = a.subs.slice(before).map((u) => u.searchParams.getAll("channel"));
    assert.ok(after.length >= 1);
    assert.deepEqual(after[after.length - 1], [`sport-${sfx}`]);
    await done(a);
  });

  test(`a server restart: every event once, in order, nothing lost (${tag})`, async () => {
    const ch = `ticker-${sfx}`;
    const a = await open(v, 1);
    await a.evaluate((c) => {
      Echo.channel(c).subscribed(record("subscribed")).listen(".tick", record("tick"));
      Echo.private("orders.1").subscribed(record("sub-orders")).listen(".item", record("orders"));
    }, ch);
    await waitSeen(a, "subscribed");
    await waitSeen(a, "sub-orders");
    for (let n = 1; n <= 5; n++) await trigger(ch, "tick", { n });
    await waitSeen(a, "tick", 5);
    // The restart cuts a request the page has open: wait for its next poll
    // (a stream is open all along).
    const failedBefore = a.subsFailed;
    await waitUntil(() => a.subsOpen > 0, "a subscription request open");
    await srv.restart();
    // At once, while the page is still finding the server again: only the
    // resume from the last id it had brings these.
    for (let n = 6; n <= 10; n++) await trigger(ch, "tick", { n });
    await trigger("private-orders.1", "item", { n: 1 });
    await a.waitForFunction(() => kinds("tick").length >= 10 && kinds("orders").length >= 1, null,
                            { timeout: 2 * WAIT });
    assert.deepEqual((await seen(a, "tick")).map(([d]) => d.n), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(await seen(a, "orders"), [[{ n: 1 }]]);
    // The connection status went through it whenever a request was cut off:
    // always a stream. A poll begun before the restart may still reach the
    // new server and fail nowhere (ci40: "connecting,connected" alone).
    const states = (await seen(a, "status")).map(([s]) => s);
    if (v.transport === "sse" || a.subsFailed > failedBefore)
      assert.ok(states.includes("reconnecting"), states.join());
    await a.waitForFunction(() => Echo.connector.connectionStatus() === "connected", null, { timeout: WAIT });
    // Subscribed once: a resumed subscription is the same subscription.
    assert.deepEqual(await seen(a, "subscribed"), [[]]);
    await done(a);
  });
}
