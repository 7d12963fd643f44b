"use strict";
// (a) The chat demo in two browser pages: one sends through the form
// (send.php -> comet.php -> comet-fcgi), the other shows it, over an event
// stream and over forced long-polling, under lighttpd and under Apache.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, artifact, shownIds, WAIT } = require("./lib");

let browser;
before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

/* Opens the chat with the given transport; records the page's requests to
 * /comet/sub by kind ("eventsource" or "fetch"). */
async function openChat(srv, transport) {
  const page = await newPage(browser);
  page.subRequests = [];
  page.on("request", (r) => {
    if (new URL(r.url()).pathname === "/comet/sub") page.subRequests.push(r.resourceType());
  });
  await page.goto(`${srv.base}/chat/?transport=${transport}`);
  await page.waitForSelector('body[data-state="open"]', { timeout: WAIT });
  assert.equal(await page.getAttribute("body", "data-transport"), transport);
  return page;
}

async function send(page, name, text) {
  await page.fill("#name", name);
  await page.fill("#text", text);
  await page.click("#go");
}

/* Waits until the page shows a message with exactly this text. */
async function waitForText(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#log li .text")].some((e) => e.textContent === t),
    text, { timeout: WAIT });
}

for (const [kind, transport] of [["lighttpd", "sse"], ["lighttpd", "longpoll"],
                                 ["apache", "sse"], ["apache", "longpoll"]]) {
  test(`chat: two pages talk (${kind}, ${transport})`, async () => {
    const srv = await Server.start(kind);
    try {
      const earlier = await srv.publish("chat", { name: "server", text: "history" });
      const a = await openChat(srv, transport);
      const b = await openChat(srv, transport);
      for (const p of [a, b]) {
        // The retained history first.
        await waitForText(p, "history");
        // Really the transport asked for.
        const kinds = new Set(p.subRequests);
        if (transport === "sse") assert.ok(kinds.has("eventsource"), [...kinds].join());
        else assert.ok(!kinds.has("eventsource") && kinds.has("fetch"), [...kinds].join());
      }

      // Markup in a message is shown as text, never run.
      const hello = `hello from A <img src=x onerror="window.__xss=1"> ${kind} ${transport}`;
      await send(a, "Ann <b>", hello);
      await waitForText(b, hello);
      await waitForText(a, hello);
      await send(b, "Bob", "hi Ann");
      await waitForText(a, "hi Ann");
      await waitForText(b, "hi Ann");

      for (const p of [a, b]) {
        assert.equal(await p.locator("#log img, #log b").count(), 0, "markup became elements");
        assert.equal(await p.evaluate(() => window.__xss), undefined);
        assert.deepEqual(p.errors, []);
        const names = await p.$$eval("#log li .who", (els) => els.map((e) => e.textContent));
        assert.deepEqual(names, ["server", "Ann <b>", "Bob"]);
      }
      // Both show the same messages, in the log's order, once each.
      const ids = await shownIds(a);
      assert.deepEqual(await shownIds(b), ids);
      assert.equal(ids[0], earlier.id);
      assert.deepEqual([...ids].sort((x, y) => x - y), ids);
      assert.equal(new Set(ids).size, 3);

      // send.php published {name, text} as JSON.
      const log = await (await fetch(`${srv.comet}/sub?channel=chat&since=0&timeout=0`)).json();
      assert.deepEqual(log.messages.map((m) => [m.id, m.type, m.data]), [
        [ids[0], "application/json", { name: "server", text: "history" }],
        [ids[1], "application/json", { name: "Ann <b>", text: hello }],
        [ids[2], "application/json", { name: "Bob", text: "hi Ann" }],
      ]);

      await a.screenshot({ path: artifact(`chat-${kind}-${transport}-a.png`) });
      await b.screenshot({ path: artifact(`chat-${kind}-${transport}-b.png`) });
      await a.context().close();
      await b.context().close();
    } finally {
      await srv.stop();
    }
  });
}
