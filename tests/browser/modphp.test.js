"use strict";
// A page of a site on Apache with mod_php subscribes cross-origin to
// comet-fcgi under lighttpd beside it (lighttpd/comet-beside-apache.conf),
// with comet.js loaded from the lighttpd side, and receives what the site's
// publish.php (comet.php under mod_php) publishes when the page asks it to.
// Run by tests/integration/test_modphp.py, which starts both servers and
// passes MODPHP_SITE (the Apache origin) and MODPHP_COMET (lighttpd's
// http://127.0.0.1:PORT/comet).

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { launch, newPage, artifact, WAIT } = require("./lib");

const SITE = process.env.MODPHP_SITE;
const COMET = process.env.MODPHP_COMET;
const skip = !(SITE && COMET) && "run by tests/integration/test_modphp.py";

let browser;
before(async () => { if (!skip) browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

for (const transport of ["sse", "longpoll"]) {
  test(`a mod_php site's page subscribes to lighttpd (${transport})`, { skip }, async () => {
    const page = await newPage(browser);
    const channel = `modphp-${transport}`;
    const q = new URLSearchParams({ base: COMET, channel, transport });
    await page.goto(`${SITE}/subscriber.html?${q}`);
    await page.waitForSelector('body[data-state="open"]', { state: "attached", timeout: WAIT });
    assert.equal(await page.evaluate(() => location.origin), SITE);

    // The page asks its own site (Apache, same origin) to publish.
    const ack = await page.evaluate(async (ch) => {
      const r = await fetch(`/publish.php?channel=${ch}&text=from+mod_php`);
      return { status: r.status, body: await r.json() };
    }, channel);
    assert.equal(ack.status, 200, JSON.stringify(ack.body));
    assert.equal(typeof ack.body.id, "number", JSON.stringify(ack.body));
    await page.waitForFunction((id) => window.seen.some((m) => m.id === id), ack.body.id,
                               { timeout: WAIT });
    const seen = await page.evaluate(() => window.seen.map((m) => [m.id, m.channel, m.data]));
    assert.deepEqual(seen, [[ack.body.id, channel, { text: "from mod_php" }]]);
    assert.deepEqual(await page.evaluate(() => window.errors), []);
    assert.equal(await page.evaluate(() => window.sub.transport), transport);
    await page.screenshot({ path: artifact(`modphp-${transport}.png`) });
    assert.deepEqual(page.errors, []);
    await page.context().close();
  });
}
