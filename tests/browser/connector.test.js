"use strict";
// www/comet-echo.js in node, under the real laravel-echo (1.x and 2.x, their
// CommonJS builds), against a small in-memory comet-fcgi and authorization
// endpoint behind a scripted fetch: what the browser tests cannot easily
// arrange. More private channels than one request carries; a channel
// comet-fcgi refuses failing alone while the rest resume from their cursor;
// an authorization endpoint that fails for a while; whispers waiting for
// their channel's authorization; Echo 1.x's constructor probe. No browser,
// no server.

const { test, before, beforeEach, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

require(path.join(__dirname, "..", "..", "www", "comet.js"));
const CometEcho = require(path.join(__dirname, "..", "..", "www", "comet-echo.js"));
const Echos = {};

/* Where an installed package is: under NODE_PATH (run.py's), or node's own
 * search path. */
function moduleDir(name) {
  const dirs = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean).concat(module.paths);
  for (const d of dirs)
    if (fs.existsSync(path.join(d, name, "package.json"))) return path.join(d, name);
  throw new Error(`${name} is not installed (cd tests/browser && npm ci)`);
}

before(async () => {
  Echos[1] = require(path.join(moduleDir("laravel-echo-1"), "dist", "echo.common.js")).default;
  // 2.x's CommonJS build cannot be required by node (its package says
  // "type": "module"); its ES module, as bundlers take it.
  Echos[2] = (await import(pathToFileURL(path.join(moduleDir("laravel-echo-2"), "dist", "echo.js")))).default;
});

const real = { fetch: globalThis.fetch, random: Math.random, warn: console.warn };
let srv;

beforeEach(() => {
  Math.random = () => 0;          // backoff: no wait
  srv = fakeServer();
});
afterEach(() => {
  globalThis.fetch = real.fetch;
  Math.random = real.random;
  console.warn = real.warn;
});

const until = async (what, pred) => {
  for (let i = 0; i < 1000; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.fail(`timed out waiting for ${what}`);
};

function answer(status, body) {
  return { status, headers: { get: () => null }, text: async () => JSON.stringify(body) };
}

/* comet-fcgi's /sub (long-poll), /whisper, and the application's
 * /broadcasting/auth, in memory. A private channel's authorization is
 * "key:<socket id>:<channel>"; comet-fcgi checks it as the real one checks
 * its HMAC, and refuses more than 8 in one request as the real one does. */
function fakeServer() {
  const s = { log: [], held: [], subs: [], whispers: [], auths: [], authFails: {} };
  s.head = () => (s.log.length ? s.log[s.log.length - 1].id : 0);
  s.publish = (channel, event, data, socketId) => {
    s.log.push({ id: s.head() + 1, channel, time: 0, type: "application/x-pusher-event+json",
                 data: { event, data: JSON.stringify(data) }, origin: socketId });
    for (const wake of s.held.splice(0)) wake();
  };
  const error = (status, msg) => answer(status, { error: msg, status });
  const page = (q) => {
    const chans = q.getAll("channel");
    const since = q.has("since") ? Number(q.get("since")) : s.head();
    const sid = q.get("socket_id");
    return { last_id: s.head(), more: false,
             messages: s.log.filter((m) => m.id > since && chans.includes(m.channel) && m.origin !== sid) };
  };
  globalThis.fetch = async (url, init) => {
    const u = new URL(url, "http://site.example");
    const q = u.searchParams;
    if (u.pathname === "/broadcasting/auth") {
      const form = new URLSearchParams(init.body);
      const ch = form.get("channel_name");
      s.auths.push(ch);
      if (ch.startsWith("private-no")) return answer(403, { message: "" });
      if (s.authFails[ch] > 0) {
        s.authFails[ch]--;
        return answer(500, { message: "Server Error" });
      }
      const who = ch.startsWith("private-bad") ? "forged" : form.get("socket_id");
      return answer(200, { auth: `key:${who}:${ch}` });
    }
    const auths = q.getAll("auth");
    if (auths.length > 8) return error(400, "at most 8 auth and channel_data of 1 KB each");
    const chans = u.pathname.endsWith("/sub") || u.pathname.endsWith("/whisper") ? q.getAll("channel") : [];
    for (const c of chans)
      if (c.startsWith("private-") && !auths.includes(`key:${q.get("socket_id")}:${c}`))
        return error(403, `a valid, unexpired token (or Pusher auth) is required for ${c}`);
    if (u.pathname.endsWith("/whisper")) {
      s.whispers.push({ channel: q.get("channel"), body: JSON.parse(init.body) });
      return answer(201, { id: 1 });
    }
    s.subs.push(q);
    if (q.get("timeout") === "0" || page(q).messages.length) return answer(200, page(q));
    return new Promise((resolve, reject) => {
      s.held.push(() => resolve(answer(200, page(q))));
      init.signal.addEventListener("abort", () => reject(new Error("aborted")));
    });
  };
  return s;
}

function echo(v = 2) {
  const Echo = Echos[v];
  return new Echo({ broadcaster: CometEcho, cometUrl: "http://comet.example/comet", transport: "longpoll" });
}

for (const v of [1, 2]) {
  test(`laravel-echo ${v}.x takes it as broadcaster; nothing is asked for before a channel`, async () => {
    const e = echo(v);
    assert.ok(e.connector instanceof CometEcho);
    assert.match(e.socketId(), /^\d+\.\d+$/);
    assert.equal(e.socketId(), e.connector.socketId());
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(srv.subs.length + srv.auths.length, 0);
    e.disconnect();
  });
}

test("ten private channels: two subscriptions, at most 8 authorizations each, every event delivered", async () => {
  const e = echo();
  const got = [];
  for (let i = 0; i < 10; i++)
    e.private(`room.${i}`).subscribed(() => got.push(`sub ${i}`)).listen(".said", (d) => got.push(d.i));
  await until("all subscribed", () => got.length === 10);
  const carried = new Set();
  for (const q of srv.subs) {
    assert.ok(q.getAll("auth").length <= 8);
    q.getAll("channel").forEach((c) => carried.add(c));
  }
  assert.equal(carried.size, 10);
  assert.equal(e.connector._groups.length, 2);
  for (let i = 0; i < 10; i++) srv.publish(`private-room.${i}`, "said", { i });
  await until("ten events", () => got.length === 20);
  assert.deepEqual(got.slice(10).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  e.disconnect();
});

test("a channel comet-fcgi refuses fails alone; the others resume from their cursor", async () => {
  const e = echo();
  const got = [], errors = [];
  e.channel("news").subscribed(() => got.push("subscribed")).listen(".item", (d) => got.push(d.n));
  await until("subscribed", () => got.length === 1);
  srv.publish("news", "item", { n: 1 });
  await until("n 1", () => got.length === 2);
  let at = null;
  e.private("bad.1").error((err) => { errors.push(err); at = srv.subs.length; })
    .subscribed(() => got.push("bad subscribed"));
  await until("the refusal", () => errors.length === 1);
  assert.equal(errors[0].type, "AuthError");
  assert.equal(errors[0].status, 403);
  assert.match(errors[0].error, /private-bad\.1/);
  srv.publish("news", "item", { n: 2 });
  await until("n 2", () => got.length === 3);
  assert.deepEqual(got, ["subscribed", 1, 2]);
  // After the refusal: news alone, from where it was (not from now).
  const next = srv.subs[at];
  assert.deepEqual(next.getAll("channel"), ["news"]);
  assert.equal(next.get("since"), "1");
  e.disconnect();
});

test("the authorization endpoint failing for a while is retried; a refusal is final", async () => {
  const e = echo();
  srv.authFails["private-flaky"] = 2;
  const states = [], errors = [];
  const flaky = e.private("flaky").subscribed(() => states.push("subscribed"));
  // Whispers wait for the authorization; to a refused channel they never go.
  flaky.whisper("typing", { who: "me" });
  const warned = [];
  console.warn = (m) => warned.push(m);
  e.private("no").error((err) => errors.push(err)).whisper("typing", "x");
  await until("subscribed", () => states.length === 1);
  await until("the whisper", () => srv.whispers.length === 1);
  assert.deepEqual(srv.auths.filter((c) => c === "private-flaky").length, 3);
  assert.deepEqual(srv.whispers, [{ channel: "private-flaky", body: { event: "client-typing", data: { who: "me" } } }]);
  await until("the refusal", () => errors.length === 1);
  assert.equal(errors[0].status, 403);
  assert.deepEqual(srv.auths.filter((c) => c === "private-no").length, 1);
  await until("the warning", () => warned.length === 1);
  assert.match(warned[0], /client-typing on private-no/);
  e.disconnect();
});

test("an event sent with this socket id does not come back; others' do", async () => {
  const e = echo();
  const got = [];
  e.channel("feed").subscribed(() => got.push("subscribed")).listen(".posted", (d) => got.push(d.by));
  await until("subscribed", () => got.length === 1);
  srv.publish("feed", "posted", { by: "me" }, e.socketId());
  srv.publish("feed", "posted", { by: "other" }, "1.2");
  await until("other", () => got.length === 2);
  assert.deepEqual(got, ["subscribed", "other"]);
  assert.ok(srv.subs.every((q) => q.get("socket_id") === e.socketId()));
  e.disconnect();
});
