"use strict";
// The event stream's keepalive in Chromium, through lighttpd to the real
// program (COMET_KEEPALIVE=1, comet.js's keepalive option to match):
// pings are named events that never reach a page's onmessage; they keep a
// quiet stream open; and a stream whose connection goes half-open (a relay
// between the browser and lighttpd stops forwarding without closing,
// as a NAT or a dead network would) is given up after 2 keepalives + 5 s
// and replaced from the last id, so a message published meanwhile arrives.

const net = require("node:net");
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, pageServer, WAIT } = require("./lib");

const KEEPALIVE = 1000;                         // ms; COMET_KEEPALIVE=1
const SILENCE = 2 * KEEPALIVE + 5000;           // comet.js gives a stream up after

/* A TCP relay to 127.0.0.1:port. Each connection records what the client
 * asked (the request head) and counts the pings it carried to the client;
 * freeze() makes every connection open at the time stop forwarding, both
 * ways, without closing (what a half-open connection looks like from
 * either end). Connections made later are forwarded as usual. */
async function relay(port) {
  const conns = [];
  const server = net.createServer((down) => {
    const up = net.connect(port, "127.0.0.1");
    const c = { down, up, head: "", pings: 0, tail: "", frozen: false, closed: false };
    conns.push(c);
    const close = () => { c.closed = true; down.destroy(); up.destroy(); };
    down.on("data", (d) => {
      if (c.frozen) return;
      if (c.head.length < 4096) c.head += d.toString("latin1");
      up.write(d);
    });
    up.on("data", (d) => {
      if (c.frozen) return;
      // Pings counted across chunk boundaries: keep the tail of a line.
      const text = c.tail + d.toString("latin1");
      c.pings += (text.match(/event: ping\r?\n/g) || []).length;
      c.tail = text.slice(Math.max(0, text.lastIndexOf("\n") + 1)).slice(-64);
      down.write(d);
    });
    for (const s of [down, up]) {
      s.on("error", close);
      s.on("close", close);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.origin = `http://127.0.0.1:${server.address().port}`;
  server.conns = conns;
  server.streams = () => conns.filter((c) => /^GET \/comet\/sub\?[^\r\n]*\r\n/.test(c.head) &&
                                        /^accept: text\/event-stream\r?$/im.test(c.head));
  server.freeze = () => { for (const c of conns) c.frozen = true; };
  server.closeAll = () => new Promise((resolve) => {
    server.close(resolve);
    for (const c of conns) { c.down.destroy(); c.up.destroy(); }
  });
  return server;
}

/* Polls cond (sync or async) until it is true; fails after ms. */
async function until(cond, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let browser, pages, srv, hop;
before(async () => {
  browser = await launch();
  pages = await pageServer();
  srv = await Server.start("lighttpd", {
    COMET_KEEPALIVE: String(KEEPALIVE / 1000),
    COMET_CORS_ORIGIN: pages.origin,
  });
  hop = await relay(Number(new URL(srv.base).port));
});
after(async () => {
  if (hop) await hop.closeAll();
  if (srv) await srv.stop();
  if (browser) await browser.close();
  if (pages) await pages.closeAll();
});

test("a ping is a named event: EventSource never hands it to onmessage", async () => {
  const page = await newPage(browser);
  await page.goto(`${srv.base}/comet.js`);    // any page of the server's origin
  const first = await srv.publish("ping-raw", "first");
  const url = `${srv.comet}/sub?channel=ping-raw&since=${first.id - 1}`;
  const got = await page.evaluate(({ url, wait }) => new Promise((resolve, reject) => {
    const es = new EventSource(url);
    const r = { messages: [], pings: [] };
    es.onmessage = (e) => r.messages.push(JSON.parse(e.data).id);
    es.addEventListener("ping", (e) => {
      r.pings.push(e.data);
      if (r.pings.length === 2) { es.close(); resolve(r); }
    });
    setTimeout(() => { es.close(); reject(new Error(`no 2 pings: ${JSON.stringify(r)}`)); }, wait);
  }), { url, wait: WAIT });
  assert.deepEqual(got, { messages: [first.id], pings: ["{}", "{}"] });
  await page.context().close();
});

test("a half-open event stream is replaced within 2 keepalives + 5 s, from the last id", async (t) => {
  const ch = "half-open";
  const m1 = await srv.publish(ch, "before");
  const page = await newPage(browser);
  const q = new URLSearchParams({ base: `${hop.origin}/comet`, channel: ch, transport: "sse",
                                  since: String(m1.id - 1), keepalive: String(KEEPALIVE) });
  await page.goto(`${pages.origin}/subscriber.html?${q}`);
  await page.waitForFunction(() => window.seen.length >= 1, null, { timeout: WAIT });

  // Quiet but alive: pings for longer than the silence comet.js allows,
  // and the stream is kept; none of them reaches onMessage.
  assert.equal(hop.streams().length, 1);
  const [first] = hop.streams();
  await until(() => first.pings >= SILENCE / KEEPALIVE + 2, WAIT, `${SILENCE / KEEPALIVE + 2} pings`);
  assert.equal(hop.streams().length, 1, "a stream carrying pings was given up");
  assert.deepEqual(await page.evaluate(() => window.seen.map((m) => m.id)), [m1.id]);
  assert.deepEqual(await page.evaluate(() => window.states), ["open"]);

  // Half-open: nothing passes any more, and nothing closes.
  const t0 = Date.now();
  hop.freeze();
  const m2 = await srv.publish(ch, "after");
  await page.waitForFunction((id) => window.seen.some((m) => m.id === id), m2.id,
                             { timeout: WAIT });
  const took = Date.now() - t0;
  t.diagnostic(`replaced ${took} ms after the freeze`);
  // The last ping came at most a keepalive before the freeze; then the
  // silence, a backoff of under 1 s (the stream had been open), the catch-up.
  assert.ok(took >= SILENCE - KEEPALIVE - 500, `given up after ${took} ms: too early`);
  assert.ok(took <= SILENCE + 1000 + 2000, `given up after ${took} ms: too late`);

  assert.deepEqual(await page.evaluate(() => window.seen.map((m) => m.id)), [m1.id, m2.id]);
  assert.deepEqual(await page.evaluate(() => window.errors), [], "a dead stream is not an error");
  assert.deepEqual(await page.evaluate(() => window.states),
                   ["open", "reconnecting", "connecting", "open"]);
  const streams = hop.streams();
  assert.equal(streams.length, 2);
  assert.match(streams[1].head, new RegExp(`^GET /comet/sub\\?[^ ]*since=${m1.id}[& ]`));
  // comet.js closed the dead one (the browser let go of its socket).
  await until(() => first.closed, WAIT, "the half-open connection to be closed by the browser");
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
