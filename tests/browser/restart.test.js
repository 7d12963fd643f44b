"use strict";
// (b) The server goes away in the middle of a stream of published messages:
// the whole web server is restarted on the same port, or the comet-fcgi
// process is killed (kill -9) and the web server starts a new one. The chat
// page must end up showing exactly the messages of the log, each once, in id
// order: nothing lost, nothing twice. Event stream and long-poll.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, artifact, shownIds, WAIT } = require("./lib");

let browser;
before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

const BEFORE = 10;   // messages acknowledged before the outage starts
const AFTER = 10;    // ... and after the server is back

const cases = [
  ["lighttpd", "sse", "restart"], ["lighttpd", "longpoll", "restart"],
  ["lighttpd", "sse", "kill-program"], ["lighttpd", "longpoll", "kill-program"],
  ["apache", "sse", "restart"], ["apache", "longpoll", "restart"],
];

for (const [kind, transport, outage] of cases) {
  test(`resume after ${outage} (${kind}, ${transport})`, async () => {
    // Retention far above what the test publishes: a publish cut off in
    // flight may still have been stored, and those are not counted below.
    const srv = await Server.start(kind, { COMET_RETAIN: "100000" });
    try {
      const page = await newPage(browser);
      const subs = [];      // when each request to /comet/sub started
      page.on("request", (r) => {
        if (new URL(r.url()).pathname === "/comet/sub") subs.push(Date.now());
      });
      await page.goto(`${srv.base}/chat/?transport=${transport}`);
      await page.waitForSelector('body[data-state="open"]', { timeout: WAIT });

      // Publish continuously; after BEFORE acks, set off the outage without
      // waiting for it, and go on until AFTER more were acknowledged once
      // the server was back. A publish refused while the server is down is
      // retried; one cut off in flight is not (it may or may not have been
      // stored: the log decides, below).
      const acked = [];
      let outageStart = null, outageDone = null, afterCount = 0, cutOff = 0;
      let outagePromise = null;
      for (let n = 1; afterCount < AFTER; n++) {
        if (acked.length === BEFORE && !outagePromise) {
          outageStart = Date.now();
          outagePromise = (outage === "restart" ? srv.restart() : srv.killProgram())
            .then(() => { outageDone = Date.now(); });
        }
        try {
          const ack = await srv.publishSurely("chat", { name: "pub", text: `message ${n}` });
          acked.push(ack.id);
          if (outageDone) afterCount++;
        } catch (e) {
          if (!outagePromise || outageDone) throw e;   // only during the outage
          cutOff++;
          // As a site would: not thousands of attempts a second at a
          // server that is going away.
          await new Promise((r) => setTimeout(r, 20));
        }
        if (outagePromise && !outageDone && acked.length > BEFORE + 2000)
          throw new Error("outage never ended");
      }
      await outagePromise;

      // The log is the truth: every acknowledged message is in it.
      const log = [];
      for (let since = 0, more = true; more;) {
        const { json: answer } =
          await srv.getJson(`/comet/sub?channel=chat&since=${since}&timeout=0&limit=1000`);
        assert.ok(!answer.gap && !answer.reset, JSON.stringify(answer).slice(0, 300));
        log.push(...answer.messages.map((m) => m.id));
        more = answer.more;
        since = answer.last_id;
      }
      for (const id of acked)
        assert.ok(log.includes(id), `acknowledged ${id} not in the log: acked ${acked}; ` +
                  `log ${log}; cut off ${cutOff}`);
      assert.ok(log.length >= BEFORE + AFTER);

      // The page shows exactly the log, once each, in order.
      // The page may still be waiting on a request the old server took and
      // never answered (comet.js gives up on a long-poll after its timeout
      // + 20 s: 45 s here), then sleeping out its backoff (full jitter,
      // capped at 30 s), before it asks the new server.
      await page.waitForFunction((n) => document.querySelectorAll("#log li[data-id]").length >= n,
                                 log.length, { timeout: WAIT + 75000 });
      assert.deepEqual(await shownIds(page), log);
      assert.deepEqual(page.errors, []);
      // And it really had to come back: a request after the outage began.
      assert.ok(subs.some((t) => t >= outageStart),
                `no request to /comet/sub after the ${outage} (cut off: ${cutOff})`);
      await page.screenshot({ path: artifact(`resume-${outage}-${kind}-${transport}.png`) });
      await page.context().close();
    } finally {
      // The kill -9 is logged as a crash, on purpose.
      await srv.stop({ killed: outage === "kill-program" });
    }
  });
}
