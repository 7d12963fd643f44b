"use strict";
// (a) The chat demo in two browser pages: one sends through the form
// (send.php -> comet.php -> comet-fcgi), the other shows it, over an event
// stream and over forced long-polling, under lighttpd and under Apache.
// And who is online: pages with a name are members of presence-chat
// (presence.php's tokens), one per person however many tabs, gone within
// the grace when their page closes; without a token key there is no list.

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
        // No token key on this server: no list, and the chat works on.
        await p.waitForSelector('body[data-presence="off"]', { state: "attached", timeout: WAIT });
        assert.ok(await p.locator("#online").isHidden());
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

/* A chat page of a person whose name the page knows (as after an earlier
 * visit); ctx: a browser context of an earlier page, for another tab. */
async function openAs(srv, transport, name, ctx) {
  const page = ctx ? await ctx.newPage() : await newPage(browser);
  if (!ctx) await page.context().addInitScript((n) => localStorage.setItem("chat-name", n), name);
  await page.goto(`${srv.base}/chat/?transport=${transport}`);
  await page.waitForSelector('body[data-state="open"]', { timeout: WAIT });
  await page.waitForSelector('body[data-presence="on"]', { state: "attached", timeout: WAIT });
  return page;
}

/* Waits until the page's list of who is online is names (in its order:
 * by name), this tab's own person marked. */
async function waitOnline(page, names, me, timeout = WAIT) {
  await page.waitForFunction(([want, self]) => {
    const lis = [...document.querySelectorAll("#members li")];
    return JSON.stringify(lis.map((li) => li.textContent)) === JSON.stringify(want) &&
      lis.filter((li) => li.classList.contains("me")).map((li) => li.textContent).join() === self;
  }, [names, me], { timeout });
}

for (const transport of ["sse", "longpoll"]) {
  test(`chat: who is online (lighttpd, ${transport})`, async (t) => {
    const GRACE = 2;
    const srv = await Server.start("lighttpd", {
      COMET_TOKEN_KEY: "chat-test-token-key",
      COMET_PRESENCE_GRACE: String(GRACE),
    });
    try {
      const ann = await openAs(srv, transport, "Ann");
      await waitOnline(ann, ["Ann"], "Ann");
      assert.ok(await ann.locator("#online").isVisible());
      const bob = await openAs(srv, transport, "Bob");
      await waitOnline(bob, ["Ann", "Bob"], "Bob");
      await waitOnline(ann, ["Ann", "Bob"], "Ann");
      // Ann in a second tab: still one Ann.
      const ann2 = await openAs(srv, transport, "Ann", ann.context());
      await waitOnline(ann2, ["Ann", "Bob"], "Ann");
      // The list is not the chat: the log shows only what was said.
      await send(bob, "Bob", "hi all");
      await waitForText(ann, "hi all");
      assert.deepEqual(await ann.$$eval("#log li .who", (els) => els.map((e) => e.textContent)), ["Bob"]);
      await ann.screenshot({ path: artifact(`chat-online-${transport}.png`) });
      // Ann's second tab closes: she is still there in her first. Bob
      // closes his page: he is gone within the grace (long-polling: plus
      // the hold of the request he left behind, when the web server does
      // not notice him leaving).
      await ann2.close();
      const t0 = Date.now();
      await bob.context().close();
      await waitOnline(ann, ["Ann"], "Ann", WAIT + 30000);
      const took = (Date.now() - t0) / 1000;
      t.diagnostic(`Bob was gone from Ann's list ${took} s after his page closed`);
      assert.ok(took <= GRACE + (transport === "longpoll" ? 25 : 0) + 3, `${took} s`);
      assert.deepEqual(ann.errors, []);
      assert.deepEqual(bob.errors, []);
      await ann.context().close();
    } finally {
      await srv.stop();
    }
  });
}
