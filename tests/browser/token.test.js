"use strict";
// A private channel's token expires while a page is subscribed: comet.js
// asks its token function (here a fetch() to the page's own site, as a
// site would mint tokens in PHP) for a fresh one when the server answers
// 403, and resumes from its cursor: every message once, in order, no error.
// A token function whose fresh token is refused too ends the subscription.
// Over an event stream (streams end every 2 s here) and long-polling.

const crypto = require("node:crypto");
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, pageServer, WAIT } = require("./lib");

const TOKEN_KEY = "browser-test-token-key";
let browser, pages, srv;
before(async () => {
  browser = await launch();
  pages = await pageServer();
  srv = await Server.start("lighttpd", {
    COMET_CORS_ORIGIN: pages.origin,
    COMET_TOKEN_KEY: TOKEN_KEY,
    // Streams end (and reconnect with a token) every 2 s.
    COMET_STREAM_MAX: "2",
    COMET_KEEPALIVE: "1",
  });
});
after(async () => {
  if (srv) await srv.stop();
  if (browser) await browser.close();
  if (pages) await pages.closeAll();
});

const now = () => Math.floor(Date.now() / 1000);
function token(channel, expiry) {
  const mac = crypto.createHmac("sha256", TOKEN_KEY).update(`${channel}:${expiry}`).digest("hex");
  return `${expiry}.${mac}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* A page whose token function fetches /token from its own origin, answered
 * by mint(channel) for each call (recorded in minted). */
async function open(channel, transport, mint) {
  const page = await newPage(browser);
  const minted = [];
  await page.route(`${pages.origin}/token?*`, (route) => {
    const ch = new URL(route.request().url()).searchParams.get("channel");
    const t = mint(ch, minted.length);
    minted.push(t);
    route.fulfill({ status: 200, contentType: "text/plain", body: t });
  });
  const q = new URLSearchParams({ base: srv.comet, channel, transport, since: 0, timeout: 1,
                                  tokenurl: `${pages.origin}/token` });
  await page.goto(`${pages.origin}/subscriber.html?${q}`);
  return { page, minted };
}

for (const transport of ["sse", "longpoll"]) {
  test(`an expired token is renewed by the token function, nothing missed (${transport})`, async () => {
    const ch = `private-renew-${transport}`;
    // The first token expires in 7 s (a few streams and long-polls with it);
    // the next ones in 5 minutes.
    const first = now() + 7;
    const { page, minted } = await open(ch, transport,
                                        (c, n) => token(c, n === 0 ? first : now() + 300));
    const a = await srv.publish(ch, "before expiry");
    await page.waitForFunction((id) => window.seen.some((m) => m.id === id), a.id, { timeout: WAIT });
    // Streams reconnect (every 2 s), long-polls come back (every 1 s): with
    // the token it has, as long as that is good.
    while (now() < first - 1) await sleep(100);
    assert.equal(minted.length, 1, "asked once while its token is good");
    // Expired now; the page's next request (a stream's reconnect, the next
    // long-poll) is refused. A message published meanwhile is not lost.
    while (now() <= first) await sleep(100);
    const b = await srv.publish(ch, "after expiry");
    await page.waitForFunction((id) => window.seen.some((m) => m.id === id), b.id, { timeout: WAIT });
    // The stream open at the expiry may still be the one that brought b;
    // the next one (within 2 s) or the next long-poll is refused, and the
    // function is asked for a new token.
    for (const t0 = Date.now(); minted.length < 2 && Date.now() - t0 < WAIT; ) await sleep(100);
    const c = await srv.publish(ch, "with the new token");
    await page.waitForFunction((id) => window.seen.some((m) => m.id === id), c.id, { timeout: WAIT });
    assert.deepEqual(await page.evaluate(() => window.seen.map((m) => m.data)),
                     ["before expiry", "after expiry", "with the new token"]);
    assert.deepEqual(await page.evaluate(() => window.errors), []);
    assert.equal(minted.length, 2, "asked again once, after the 403");
    assert.deepEqual(await page.evaluate(() => window.tokens), minted);
    assert.ok(!(await page.evaluate(() => window.states)).includes("closed"));
    await page.context().close();
  });

  test(`a token function whose fresh token is refused too: the subscription ends (${transport})`, async () => {
    const ch = `private-refused-${transport}`;
    // Tokens for another channel: refused every time.
    const { page, minted } = await open(ch, transport, () => token("private-other", now() + 300));
    await page.waitForFunction(() => window.states.includes("closed"), null, { timeout: WAIT });
    const errors = await page.evaluate(() => window.errors);
    assert.deepEqual(errors.map((e) => [e.status, e.fatal]), [[403, true]]);
    assert.equal(minted.length, 2, "asked once more after the first 403, then given up");
    assert.deepEqual(await page.evaluate(() => window.seen), []);
    await page.context().close();
  });
}
