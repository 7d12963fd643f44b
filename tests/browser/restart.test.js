"use strict";
// (b) The server goes away in the middle of a stream of published messages:
// the whole web server is restarted on the same port, or the comet-fcgi
// process is killed (kill -9) and the web server starts a new one. The chat
// page must have shown exactly the messages of the log, each once, in id
// order: nothing lost, nothing twice; and it ends up showing the last of
// them that it keeps. Event stream and long-poll.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, artifact, shownIds, WAIT } = require("./lib");

let browser;
before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

const BEFORE = 10;   // messages acknowledged before the outage starts
const AFTER = 10;    // ... and after the server is back
const KEEP = 300;    // messages the chat page keeps (www/chat/chat.js)
// While the outage lasts, at most one publish per PACE ms, and after a
// failed one a pause doubling up to 1 s: as a site would, not as fast as a
// half-started server answers. (Unpaced, the new Apache acknowledged
// hundreds in the second mod_fcgid took to spawn a process for the
// harness's own check, and the log passed what the page keeps.)
const PACE = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cases = [
  ["lighttpd", "sse", "restart"], ["lighttpd", "longpoll", "restart"],
  ["lighttpd", "sse", "kill-program"], ["lighttpd", "longpoll", "kill-program"],
  ["apache", "sse", "restart"], ["apache", "longpoll", "restart"],
];

for (const [kind, transport, outage] of cases) {
  test(`resume after ${outage} (${kind}, ${transport})`, async (t) => {
    // Retention far above what the test publishes: a publish cut off in
    // flight may still have been stored, and those are not counted below.
    const srv = await Server.start(kind, { COMET_RETAIN: "100000" });
    try {
      const page = await newPage(browser);
      // Every message the page puts in its log, in order, also those it
      // has dropped since (it keeps the last KEEP).
      await page.addInitScript(() => {
        window.appended = [];
        new MutationObserver((records) => {
          for (const r of records)
            for (const n of r.addedNodes)
              if (n.nodeType === 1 && n.matches("li[data-id]")) window.appended.push(Number(n.dataset.id));
        }).observe(document, { childList: true, subtree: true });
      });
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
      let outageStart = null, outageDone = null, outageError = null;
      let afterCount = 0, cutOff = 0, failures = 0;
      let outagePromise = null;
      for (let n = 1; afterCount < AFTER; n++) {
        if (acked.length === BEFORE && !outagePromise) {
          outageStart = Date.now();
          outagePromise = (outage === "restart" ? srv.restart() : srv.killProgram())
            .then(() => { outageDone = Date.now(); }, (e) => { outageError = e; });
        }
        if (outageError) throw outageError;
        const during = outagePromise && !outageDone;
        const t0 = Date.now();
        try {
          const ack = await srv.publishSurely("chat", { name: "pub", text: `message ${n}` });
          acked.push(ack.id);
          failures = 0;
          if (outageDone) afterCount++;
        } catch (e) {
          // Only one sent during the outage may fail, even if its answer
          // (lighttpd's 500 for a dead backend) comes after the outage.
          if (!during) throw e;
          cutOff++;
          failures++;
        }
        if (during) {
          const pause = failures ? Math.min(PACE * 2 ** failures, 1000) : PACE;
          await sleep(pause - (Date.now() - t0));
        }
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

      // The page catches up with the log. It may still be waiting on a
      // request the old server took and never answered (comet.js gives up
      // on a long-poll after its timeout + 20 s: 45 s here), then sleeping
      // out its backoff (full jitter, capped at 30 s), before it asks the
      // new server.
      const t1 = Date.now();
      await page.waitForFunction((last) => {
        const lis = document.querySelectorAll("#log li[data-id]");
        return lis.length > 0 && Number(lis[lis.length - 1].dataset.id) >= last;
      }, log[log.length - 1], { timeout: WAIT + 75000 });
      t.diagnostic(`${acked.length} acked (${cutOff} cut off), ${log.length} in the log; ` +
                   `outage ${outageDone - outageStart} ms; page current ${Date.now() - t1} ms later`);
      // It showed exactly the log, once each, in order, and shows the last
      // KEEP of it.
      assert.deepEqual(await page.evaluate(() => window.appended), log);
      assert.deepEqual(await shownIds(page), log.slice(-KEEP));
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
