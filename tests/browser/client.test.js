"use strict";
// comet.js's long-poll loop in node against a scripted fetch, with the
// timers and Math.random under the test's control: backoff (exponential,
// full jitter, capped, reset after success, Retry-After), fatal errors,
// at-most-once in-order delivery, more, reset; a dead connection given up
// (the event stream's keepalive watchdog, against a fake EventSource, and
// the long-poll's deadline). No browser, no server.

const { test, beforeEach, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const Comet = require(path.join(__dirname, "..", "..", "www", "comet.js"));

const real = { setTimeout, clearTimeout, random: Math.random, fetch: globalThis.fetch };
let sleeps;         // backoff delays asked for, in order

beforeEach(() => {
  sleeps = [];
  Math.random = () => 0.5;
  // Backoff sleeps end at once (recorded); request deadlines never fire.
  globalThis.setTimeout = (fn, ms) => {
    if (ms >= 20000) return { deadline: ms };   // (timeout + 20) s
    sleeps.push(ms);
    return real.setTimeout(fn, 0);
  };
  globalThis.clearTimeout = (t) => { if (t && !t.deadline) real.clearTimeout(t); };
});
afterEach(() => {
  globalThis.setTimeout = real.setTimeout;
  globalThis.clearTimeout = real.clearTimeout;
  Math.random = real.random;
  globalThis.fetch = real.fetch;
});

function answer(status, body, headers = {}) {
  return {
    status,
    headers: { get: (k) => headers[k.toLowerCase()] ?? null },
    text: async () => (typeof body === "string" ? body : JSON.stringify(body)),
  };
}
const ok = (last_id, ids = [], extra = {}) =>
  answer(200, { last_id, messages: ids.map((id) => ({ id, channel: "c", time: 0, type: "text/plain", data: `m${id}` })), more: false, ...extra });
const down = () => { throw new TypeError("fetch failed"); };

/* Runs a subscription against the scripted answers (answers, or functions
 * returning one or throwing); resolves once all were used, with what
 * happened. */
function run(script, options = {}) {
  sleeps = [];
  return new Promise((resolve) => {
    const urls = [];
    const got = { messages: [], errors: [], gaps: [], resets: [], urls, sleeps };
    let sub;
    globalThis.fetch = (url, init) => {
      urls.push(url);
      const step = script.shift();
      if (!step) {
        // Done: hold this request until close() aborts it.
        real.setTimeout(() => { sub.close(); resolve(got); }, 0);
        return new Promise((_, reject) =>
          init.signal.addEventListener("abort", () => reject(new Error("aborted"))));
      }
      return Promise.resolve().then(typeof step === "function" ? step : () => step);
    };
    sub = Comet.subscribe("http://127.0.0.1:1/comet", ["c"], {
      transport: "longpoll",
      onMessage: (m) => got.messages.push(m.id),
      onError: (e) => {
        got.errors.push([e.status, e.fatal]);
        if (e.fatal) real.setTimeout(() => resolve(got), 0);
      },
      onGap: (g) => got.gaps.push(g),
      onReset: (r) => got.resets.push(r),
      ...options,
    });
    got.sub = sub;
  });
}

test("backoff doubles with full jitter up to 30 s, and resets after a success", async () => {
  const got = await run([ok(0), down, down, down, down, down, down, down, ok(0), down, ok(0)]);
  // Math.random() = 0.5: half of min(30 s, 1 s * 2^attempt).
  assert.deepEqual(got.sleeps, [500, 1000, 2000, 4000, 8000, 15000, 15000, 500]);
  assert.equal(got.errors.length, 8);
  assert.ok(got.errors.every(([status, fatal]) => status === 0 && !fatal));
  for (const r of [0, 0.999]) {
    Math.random = () => r;
    for (let a = 0; a < 20; a++) {
      const d = Comet._backoff(a);
      assert.ok(d >= 0 && d < Math.min(30000, 1000 * 2 ** a), `attempt ${a}: ${d}`);
    }
  }
});

test("5xx is retried and honours Retry-After; 4xx is fatal", async () => {
  let got = await run([ok(0), () => answer(503, { error: "busy", status: 503 }, { "retry-after": "7" }),
                       () => answer(502, "<html>bad gateway</html>"), ok(0)]);
  assert.deepEqual(got.sleeps, [7000, 1000]);
  assert.deepEqual(got.errors, [[503, false], [502, false]]);
  got = await run([ok(0), () => answer(403, { error: "token expired", status: 403 })]);
  assert.deepEqual(got.errors, [[403, true]]);
  assert.equal(got.sub.state, "closed");
  assert.deepEqual(got.sleeps, []);
});

test("each message once, in id order, whatever the answers repeat", async () => {
  const got = await run([ok(2, [1, 2]), ok(3, [2, 3]), ok(5, [5, 4]), ok(6, [1, 6])], { since: 0 });
  assert.deepEqual(got.messages, [1, 2, 3, 5, 6]);
  // The cursor goes out with every request.
  assert.deepEqual(got.urls.map((u) => new URL(u).searchParams.get("since")),
                   ["0", "2", "3", "5", "6"]);
});

test("from now: the first request learns the cursor; later ones carry it", async () => {
  const got = await run([ok(41), down, ok(43, [42, 43])]);
  const since = got.urls.map((u) => new URL(u).searchParams.get("since"));
  assert.deepEqual(since, [null, "41", "41", "43"]);
  assert.deepEqual(got.messages, [42, 43]);
});

test("more: the next request follows at once; last_id past other channels", async () => {
  const got = await run([ok(1, [1], { more: true }), ok(9, [2])], { since: 0, limit: 1 });
  assert.deepEqual(got.sleeps, []);
  assert.deepEqual(got.messages, [1, 2]);
  assert.equal(new URL(got.urls[2]).searchParams.get("since"), "9");
  assert.equal(new URL(got.urls[1]).searchParams.get("limit"), "1");
});

test("gap and reset are reported; reset moves the cursor back", async () => {
  const got = await run([ok(8, [7, 8], { gap: true }), ok(3, [], { reset: true }), ok(4, [4])], { since: 2 });
  assert.deepEqual(got.gaps, [{ cursor: 2, last_id: 8 }]);
  assert.deepEqual(got.resets, [{ last_id: 3 }]);
  assert.deepEqual(got.messages, [7, 8, 4]);
  assert.equal(new URL(got.urls[2]).searchParams.get("since"), "3");
});

test("tokens and channels go into the query", async () => {
  const got = await run([ok(0)], { since: 0, token: () => ["1.aa", "2.bb"] });
  const q = new URL(got.urls[0]).searchParams;
  assert.deepEqual(q.getAll("token"), ["1.aa", "2.bb"]);
  assert.deepEqual(q.getAll("channel"), ["c"]);
  assert.equal(q.get("timeout"), "0");
});

// ---------------------------------------------------------------------------
// The event stream's watchdog, and the long-poll's deadline, with a clock
// the test moves: a fake EventSource, timers that fire only when the test
// advances the clock past them.

/* What comet.js sees of an EventSource, driven by the test. As in a
 * browser, a named event ("ping", "gap") goes only to the listeners of its
 * name, never to onmessage. */
class FakeEventSource {
  constructor(url, init) {
    this.url = url;
    this.init = init;
    this.closed = false;
    this.listeners = {};
    FakeEventSource.all.push(this);
  }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  close() { this.closed = true; }
  emit(type, data, lastEventId = "") {
    assert.ok(!this.closed, `${type} on a closed EventSource`);
    const ev = { type, data, lastEventId };
    if (type === "message" && this.onmessage) this.onmessage(ev);
    for (const fn of this.listeners[type] || []) fn(ev);
  }
  open() { this.onopen({ type: "open" }); }
  message(id) {
    this.emit("message", JSON.stringify({ id, channel: "c", time: 0, type: "text/plain", data: `m${id}` }), String(id));
  }
  ping() { this.emit("ping", "{}"); }
  since() { return new URL(this.url).searchParams.get("since"); }
}

/* Timers on a clock of the test's: advance(ms) fires, in order, those due
 * by then, letting the promises they settle run in between. */
function fakeClock() {
  const clock = { now: 0, timers: new Map(), next: 1 };
  globalThis.setTimeout = (fn, ms) => {
    const id = clock.next++;
    clock.timers.set(id, { fn, at: clock.now + (ms || 0) });
    return id;
  };
  globalThis.clearTimeout = (id) => { clock.timers.delete(id); };
  const settle = () => new Promise((r) => real.setTimeout(r, 0));
  clock.advance = async (ms) => {
    const end = clock.now + ms;
    for (;;) {
      await settle();
      let due = null;
      for (const [id, t] of clock.timers)
        if (t.at <= end && (!due || t.at < due[1].at)) due = [id, t];
      if (!due) break;
      clock.timers.delete(due[0]);
      clock.now = due[1].at;
      due[1].fn();
    }
    clock.now = end;
    await settle();
  };
  return clock;
}

function stream(options = {}) {
  FakeEventSource.all = [];
  globalThis.EventSource = FakeEventSource;
  const got = { messages: [], errors: [], states: [], fetched: [] };
  globalThis.fetch = async (url) => {          // the check after a failed open
    got.fetched.push(url);
    return ok(Number(new URL(url).searchParams.get("since")));
  };
  got.sub = Comet.subscribe("http://127.0.0.1:1/comet", ["c"], {
    transport: "sse",
    since: 5,
    keepalive: 1000,                           // dead after 2 * 1 s + 5 s
    onMessage: (m) => got.messages.push(m.id),
    onError: (e) => got.errors.push([e.status, e.fatal]),
    onState: (s) => got.states.push(s),
    ...options,
  });
  return got;
}

test("event stream: nothing for 2 keepalives + 5 s, and a new one follows from the last id", async (t) => {
  t.after(() => { delete globalThis.EventSource; });
  const clock = fakeClock();
  const got = stream();
  await clock.advance(0);
  const [es] = FakeEventSource.all;
  assert.equal(es.since(), "5");
  es.open();
  es.message(6);
  es.message(7);
  await clock.advance(6999);
  assert.ok(!es.closed, "given up before 2 keepalives + 5 s of silence");
  await clock.advance(1);
  assert.ok(es.closed, "a silent stream was kept");
  assert.equal(got.sub.state, "reconnecting");
  assert.equal(FakeEventSource.all.length, 1, "reconnected without the backoff");
  await clock.advance(500);                  // backoff(0) with Math.random() = 0.5
  assert.equal(FakeEventSource.all.length, 2);
  const es2 = FakeEventSource.all[1];
  assert.equal(es2.since(), "7");
  es2.open();
  es2.message(8);
  assert.deepEqual(got.messages, [6, 7, 8]);
  assert.deepEqual(got.errors, [], "a dead stream is replaced like an ended one, not reported");
  assert.deepEqual(got.fetched, []);
  got.sub.close();
  assert.ok(es2.closed);
  assert.equal(clock.timers.size, 0, "a watchdog outlived close()");
});

test("event stream: pings and messages keep it open; pings never reach onMessage", async (t) => {
  t.after(() => { delete globalThis.EventSource; });
  const clock = fakeClock();
  const got = stream();
  await clock.advance(0);
  const [es] = FakeEventSource.all;
  es.open();
  // Each just inside the 7 s: only the ping or message before it can have
  // kept the stream.
  for (let i = 0; i < 10; i++) {
    await clock.advance(6900);
    if (i === 4) es.message(6); else es.ping();
  }
  assert.ok(!es.closed);
  assert.equal(FakeEventSource.all.length, 1);
  assert.deepEqual(got.messages, [6]);
  assert.deepEqual(got.states, ["open"]);
  // gap and reset notices count as signs of life too.
  await clock.advance(6900);
  es.emit("gap", JSON.stringify({ last_id: 9 }));
  await clock.advance(6900);
  assert.ok(!es.closed);
  await clock.advance(100);
  assert.ok(es.closed);
  got.sub.close();
});

test("event stream: one that never opens is given up after the same silence, checked, retried", async (t) => {
  t.after(() => { delete globalThis.EventSource; });
  const clock = fakeClock();
  const got = stream();
  await clock.advance(6999);
  const [es] = FakeEventSource.all;
  assert.ok(!es.closed);
  await clock.advance(1);
  assert.ok(es.closed);
  // As after any failure to open: a plain request from the cursor, then
  // the backoff, reported.
  assert.equal(got.fetched.length, 1);
  assert.equal(new URL(got.fetched[0]).searchParams.get("since"), "5");
  assert.deepEqual(got.errors, [[0, false]]);
  await clock.advance(500);
  assert.equal(FakeEventSource.all.length, 2);
  assert.equal(FakeEventSource.all[1].since(), "5");
  got.sub.close();
  assert.equal(clock.timers.size, 0);
});

test("event stream: keepalive 0 turns the watchdog off; a bad keepalive is refused", async (t) => {
  t.after(() => { delete globalThis.EventSource; });
  const clock = fakeClock();
  const got = stream({ keepalive: 0 });
  await clock.advance(0);
  const [es] = FakeEventSource.all;
  es.open();
  assert.equal(clock.timers.size, 0);
  await clock.advance(3600 * 1000);
  assert.ok(!es.closed);
  got.sub.close();
  assert.throws(() => stream({ keepalive: -1 }), TypeError);
  assert.throws(() => stream({ keepalive: "often" }), TypeError);
});

test("long-poll: a request that never answers, or whose body stalls, is given up after timeout + 20 s", async () => {
  const clock = fakeClock();
  const urls = [];
  const hang = (init) => new Promise((_, reject) =>
    init.signal.addEventListener("abort", () => reject(new Error("aborted"))));
  const script = [
    () => ok(0),                                           // timeout=0: open
    (init) => hang(init),                                  // no answer at all
    () => ok(0),
    (init) => ({ status: 200, headers: { get: () => null }, text: () => hang(init) }),
    () => ok(0),
  ];
  globalThis.fetch = async (url, init) => {
    urls.push(new URL(url).searchParams.get("timeout"));
    const step = script.shift();
    return step ? step(init) : hang(init);
  };
  const errors = [];
  const sub = Comet.subscribe("http://127.0.0.1:1/comet", ["c"], {
    transport: "longpoll", since: 0, timeout: 25,
    onError: (e) => errors.push([e.status, e.fatal]),
  });
  await clock.advance(0);
  assert.deepEqual(urls, ["0", "25"]);
  await clock.advance(44999);
  assert.deepEqual(errors, []);
  await clock.advance(1);                                  // 25 + 20 s
  assert.deepEqual(errors, [[0, false]]);
  await clock.advance(500);                                // backoff, then timeout=0
  assert.deepEqual(urls, ["0", "25", "0", "25"]);
  await clock.advance(45000);
  assert.deepEqual(errors, [[0, false], [0, false]]);
  await clock.advance(500);
  assert.deepEqual(urls, ["0", "25", "0", "25", "0", "25"]);
  sub.close();
});

test("a token function: asked once, again after a 403, and the subscription resumes at once", async () => {
  let calls = 0;
  const token = async (channels) => { calls++; assert.deepEqual(channels, ["c"]); return `t${calls}`; };
  const expired = () => answer(403, { error: "a valid, unexpired token is required for c", status: 403 });
  const got = await run([ok(0), ok(5, [5]), expired, ok(6, [6]), ok(7, [7])], { since: 0, token });
  const q = got.urls.map((u) => new URL(u).searchParams);
  assert.deepEqual(q.map((p) => p.get("token")), ["t1", "t1", "t1", "t2", "t2", "t2"]);
  // The request after the 403 carries the cursor: nothing is missed.
  assert.deepEqual(q.map((p) => p.get("since")), ["0", "0", "5", "5", "6", "7"]);
  assert.deepEqual(got.messages, [5, 6, 7]);
  assert.deepEqual(got.errors, []);
  assert.deepEqual(got.sleeps, []);
  assert.equal(calls, 2);
});

test("a token function whose fresh token is refused too: the 403 ends it", async () => {
  let calls = 0;
  const refused = () => answer(403, { error: "private channels are not enabled", status: 403 });
  const got = await run([ok(0), refused, refused], { since: 0, token: () => { calls++; return "x"; } });
  assert.equal(calls, 2);
  assert.deepEqual(got.errors, [[403, true]]);
  assert.equal(got.sub.state, "closed");
  // A later 403, after a success, may be mended again.
  calls = 0;
  const again = await run([ok(0), refused, ok(1), refused, ok(2)], { since: 0, token: () => { calls++; return "y"; } });
  assert.equal(calls, 3);
  assert.deepEqual(again.errors, []);
});

test("a token function that fails is retried with backoff, not fatal", async () => {
  let calls = 0;
  const token = () => { calls++; if (calls === 1) throw new Error("token endpoint down"); return "ok"; };
  const got = await run([ok(0)], { since: 0, token });
  assert.deepEqual(got.errors, [[0, false]]);
  assert.deepEqual(got.sleeps, [500]);
  assert.equal(calls, 2);
});
