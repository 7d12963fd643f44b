"use strict";
// comet.js against the rest of the protocol, over an event stream and over
// long-polling (a page on another origin, COMET_CORS_ORIGIN set): gap and
// reset notices, limit/more, private channels with tokens, fatal errors,
// a cursor persisted across a reload; and comet.mjs as an ES module.

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
    COMET_RETAIN: "3",
    COMET_TOKEN_KEY: TOKEN_KEY,
  });
});
after(async () => {
  if (srv) await srv.stop();
  if (browser) await browser.close();
  if (pages) await pages.closeAll();
});

function token(channel, expiry) {
  const mac = crypto.createHmac("sha256", TOKEN_KEY).update(`${channel}:${expiry}`).digest("hex");
  return `${expiry}.${mac}`;
}

async function open(params, page) {
  page = page || await newPage(browser);
  const q = new URLSearchParams({ base: srv.comet, ...params });
  await page.goto(`${pages.origin}/subscriber.html?${q}`);
  return page;
}

const seenIds = (page) => page.evaluate(() => window.seen.map((m) => m.id));
const waitSeen = (page, n) =>
  page.waitForFunction((k) => window.seen.length >= k, n, { timeout: WAIT });

for (const transport of ["sse", "longpoll"]) {
  test(`gap: retention dropped messages after the cursor (${transport})`, async () => {
    const ch = `gap-${transport}`;
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push((await srv.publish(ch, `m${i}`)).id);
    // COMET_RETAIN 3 kept the last three; the cursor is at the first.
    const page = await open({ channel: ch, transport, since: ids[0] });
    await waitSeen(page, 3);
    assert.deepEqual(await seenIds(page), ids.slice(3));
    const gaps = await page.evaluate(() => window.gaps);
    assert.equal(gaps.length, 1);
    assert.equal(gaps[0].cursor, ids[0]);
    await page.context().close();
  });

  test(`reset: the cursor is ahead of the log (${transport})`, async () => {
    const ch = `reset-${transport}`;
    const first = await srv.publish(ch, "before");
    const page = await open({ channel: ch, transport, since: first.id + 1000 });
    await page.waitForFunction(() => window.resets.length >= 1, null, { timeout: WAIT });
    const resets = await page.evaluate(() => window.resets);
    assert.equal(resets.length, 1);
    assert.ok(resets[0].last_id >= first.id && resets[0].last_id < first.id + 1000, resets);
    assert.equal(await page.evaluate(() => window.sub.cursor >= 0 && window.sub.cursor < 1e6), true);
    // From the server's cursor on, new messages arrive (not the old one).
    const next = await srv.publish(ch, "after");
    await waitSeen(page, 1);
    assert.deepEqual(await seenIds(page), [next.id]);
    await page.context().close();
  });

  test(`limit 1: more answers follow at once, in order (${transport})`, async () => {
    const ch = `more-${transport}`;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await srv.publish(ch, { n: i })).id);
    const page = await open({ channel: ch, transport, since: 0, limit: 1 });
    await waitSeen(page, 3);
    assert.deepEqual(await seenIds(page), ids);
    await page.context().close();
  });

  test(`private channel: a token opens it, a bad one stops with 403 (${transport})`, async () => {
    const ch = `private-${transport}`;
    const now = Math.floor(Date.now() / 1000);
    const msg = await srv.publish(ch, "secret");
    const good = await open({ channel: ch, transport, since: 0, token: token(ch, now + 300) });
    await waitSeen(good, 1);
    assert.deepEqual(await seenIds(good), [msg.id]);
    assert.deepEqual(await good.evaluate(() => window.errors), []);

    for (const bad of [token(ch, now - 10), token(ch + "x", now + 300), `${now + 300}.${"0".repeat(64)}`]) {
      const page = await open({ channel: ch, transport, since: 0, token: bad });
      await page.waitForFunction(() => window.states.includes("closed"), null, { timeout: WAIT });
      const errors = await page.evaluate(() => window.errors);
      assert.deepEqual(errors.map((e) => [e.status, e.fatal]), [[403, true]]);
      assert.deepEqual(await page.evaluate(() => window.seen), []);
      await page.context().close();
    }
    await good.context().close();
  });

  test(`a bad channel name is fatal, not retried (${transport})`, async () => {
    const page = await open({ channel: "no spaces", transport });
    await page.waitForFunction(() => window.states.includes("closed"), null, { timeout: WAIT });
    const errors = await page.evaluate(() => window.errors);
    assert.deepEqual(errors.map((e) => [e.status, e.fatal]), [[400, true]]);
    await page.context().close();
  });

  test(`persist: the cursor survives a reload (${transport})`, async () => {
    const ch = `persist-${transport}`;
    const a = await srv.publish(ch, "one");
    const b = await srv.publish(ch, "two");
    const params = { channel: ch, transport, since: 0, persist: `cursor-${ch}` };
    const page = await open(params);
    await waitSeen(page, 2);
    assert.deepEqual(await seenIds(page), [a.id, b.id]);
    // Same context (same localStorage): the new page starts after "two".
    await open(params, page);
    const c = await srv.publish(ch, "three");
    await waitSeen(page, 1);
    assert.deepEqual(await seenIds(page), [c.id]);
    assert.equal(await page.evaluate((k) => localStorage.getItem(k), `cursor-${ch}`), String(c.id));
    await page.context().close();
  });
}

test("comet.mjs: the same client as an ES module", async () => {
  const page = await newPage(browser);
  await page.goto(`${pages.origin}/module.html`);
  await page.waitForFunction(() => window.moduleLoaded, null, { timeout: WAIT });
  assert.deepEqual(await page.evaluate(() => window.moduleLoaded),
                   { same: true, subscribe: true, publish: true });
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
