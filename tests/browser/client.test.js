"use strict";
// comet.js's long-poll loop in node against a scripted fetch, with the
// timers and Math.random under the test's control: backoff (exponential,
// full jitter, capped, reset after success, Retry-After), fatal errors,
// at-most-once in-order delivery, more, reset. No browser, no server.

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
