"use strict";
// (c) A page on another origin subscribes with comet.js when that origin is
// in COMET_CORS_ORIGIN, over an event stream and over long-polling, and
// publishes with Comet.publish (a JSON body: a preflighted request). A page
// on an origin not in the list gets errors and no message.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, pageServer, artifact, WAIT } = require("./lib");

let browser, allowed, other;
before(async () => {
  browser = await launch();
  allowed = await pageServer();   // origin in COMET_CORS_ORIGIN
  other = await pageServer();     // another origin, not in it
});
after(async () => {
  if (browser) await browser.close();
  for (const s of [allowed, other]) if (s) await s.closeAll();
});

async function subscriber(origin, srv, channel, transport) {
  const page = await newPage(browser);
  const q = new URLSearchParams({ base: srv.comet, channel, transport });
  await page.goto(`${origin}/subscriber.html?${q}`);
  return page;
}

for (const kind of ["lighttpd", "apache"]) {
  for (const transport of ["sse", "longpoll"]) {
    if (kind === "apache" && transport === "longpoll") continue;   // the basic case only
    test(`cross-origin subscriber (${kind}, ${transport})`, async () => {
      const srv = await Server.start(kind, {
        // Two allowed origins, so the server must pick the right one.
        COMET_CORS_ORIGIN: `http://127.0.0.1:1 ${allowed.origin}`,
      });
      try {
        const channel = `cors-${transport}`;
        const good = await subscriber(allowed.origin, srv, channel, transport);
        const bad = await subscriber(other.origin, srv, channel, transport);
        await good.waitForSelector('body[data-state="open"]', { state: "attached", timeout: WAIT });
        // The refused page reports an error (and keeps retrying).
        await bad.waitForFunction(() => window.errors.length >= 1, null, { timeout: WAIT });

        const ack = await srv.publish(channel, { text: "over CORS" });
        await good.waitForFunction((id) => window.seen.some((m) => m.id === id), ack.id,
                                   { timeout: WAIT });
        // From the page itself: application/json and a preflight.
        const own = await good.evaluate(([base, ch]) =>
          Comet.publish(base, ch, { text: "from the page" }), [srv.comet, channel]);
        assert.equal(own.channel, channel);
        await good.waitForFunction((id) => window.seen.some((m) => m.id === id), own.id,
                                   { timeout: WAIT });
        const seen = await good.evaluate(() => window.seen.map((m) => [m.id, m.data]));
        assert.deepEqual(seen, [[ack.id, { text: "over CORS" }], [own.id, { text: "from the page" }]]);
        assert.deepEqual(await good.evaluate(() => window.errors), []);
        assert.equal(await good.evaluate(() => window.sub.transport), transport);

        // The other origin: nothing got through and it never was open; nor
        // can it publish JSON (the preflight is not answered for it, so the
        // browser never sends the POST).
        assert.deepEqual(await bad.evaluate(() => window.seen), []);
        assert.ok(!(await bad.evaluate(() => window.states)).includes("open"));
        const refused = await bad.evaluate(([base, ch]) =>
          Comet.publish(base, ch, { text: "x" }).then(() => "sent", (e) => e.status),
          [srv.comet, channel]);
        assert.equal(refused, 0);
        const log = await (await fetch(`${srv.comet}/sub?channel=${channel}&since=0&timeout=0`)).json();
        assert.deepEqual(log.messages.map((m) => m.id), [ack.id, own.id]);

        // What the server answered the allowed origin.
        const res = await fetch(`${srv.comet}/sub?channel=${channel}&since=0&timeout=0`,
                                { headers: { Origin: allowed.origin } });
        assert.equal(res.headers.get("access-control-allow-origin"), allowed.origin);
        const res2 = await fetch(`${srv.comet}/sub?channel=${channel}&since=0&timeout=0`,
                                 { headers: { Origin: other.origin } });
        assert.equal(res2.headers.get("access-control-allow-origin"), null);

        await good.screenshot({ path: artifact(`cors-${kind}-${transport}.png`) });
        for (const p of [good, bad]) {
          assert.deepEqual(p.errors, []);
          await p.context().close();
        }
      } finally {
        await srv.stop();
      }
    });
  }
}
