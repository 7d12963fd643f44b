"use strict";
// Mercure subscribers as Symfony apps have them: the browser's own
// EventSource on /.well-known/mercure (no library of ours), public updates
// through a URI template selector, private ones by the mercureAuthorization
// cookie's subscribe claim, and a web server restart in the middle, after
// which EventSource comes back with its Last-Event-ID: every update shown
// once, in order.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const http = require("node:http");
const { Server, launch, newPage, WAIT } = require("./lib");

const SECRET = "!ChangeThisMercureHubJWTSecretKey!";
const b64 = (b) => Buffer.from(b).toString("base64url");
function jwt(claims) {
  const head = b64(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64(JSON.stringify(claims));
  const sig = crypto.createHmac("sha256", SECRET).update(`${head}.${body}`).digest();
  return `${head}.${body}.${b64(sig)}`;
}
const PUBLISHER = jwt({ mercure: { publish: ["*"] } });

/* A publish as Symfony's Mercure component sends it: resolves to the id,
 * or null when the server is not answering (a restart). */
function publish(base, topic, data, priv) {
  const form = new URLSearchParams({ topic, data });
  if (priv) form.append("private", "on");
  const body = form.toString();
  return new Promise((resolve) => {
    const req = http.request(`${base}/.well-known/mercure`, {
      method: "POST",
      headers: { Authorization: `Bearer ${PUBLISHER}`, "Content-Type":
                 "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) },
    }, (res) => {
      let text = "";
      res.on("data", (c) => { text += c; });
      res.on("end", () => resolve(res.statusCode === 200 ? text : null));
    });
    req.on("error", () => resolve(null));
    req.end(body);
  });
}

let browser;
before(async () => { browser = await launch(); });
after(async () => { if (browser) await browser.close(); });

test("EventSource: templates, private updates by cookie, resume after a restart", async () => {
  const srv = await Server.start("lighttpd", { COMET_MERCURE_JWT_KEY: SECRET });
  try {
    const page = await newPage(browser);
    const url = new URL(srv.base);
    await page.context().addCookies([{
      name: "mercureAuthorization", value: jwt({ mercure: { subscribe: ["https://example.com/users/7/{x}"] } }),
      domain: url.hostname, path: "/.well-known/mercure",
    }]);
    await page.goto(`${srv.base}/comet.js`);
    await page.evaluate((hub) => {
      window.got = [];
      window.opened = 0;
      const u = new URL(hub, location.href);
      u.searchParams.append("topic", "https://example.com/books/{id}");
      u.searchParams.append("topic", "https://example.com/users/7/{x}");
      const es = new EventSource(u, { withCredentials: true });
      es.onopen = () => { window.opened++; };
      es.onmessage = (e) => window.got.push({ id: e.lastEventId, data: e.data });
    }, `${srv.base}/.well-known/mercure`);
    await page.waitForFunction(() => window.opened === 1, null, { timeout: WAIT });

    const want = [];
    want.push(await publish(srv.base, "https://example.com/books/1", "book 1"));
    assert.equal(typeof (await publish(srv.base, "https://example.com/authors/1", "not for us")), "string");
    want.push(await publish(srv.base, "https://example.com/users/7/inbox", "private to 7", true));
    assert.equal(typeof (await publish(srv.base, "https://example.com/users/8/inbox", "private to 8", true)), "string");
    await page.waitForFunction((n) => window.got.length >= n, want.length, { timeout: WAIT });

    // The web server goes away and comes back; what is published meanwhile
    // (once it answers again) reaches the page after EventSource resumes.
    await srv.restart();
    for (let i = 0; i < 3; i++)
      want.push(await publish(srv.base, `https://example.com/books/${10 + i}`, `after ${i}`));
    await page.waitForFunction((n) => window.got.length >= n, want.length, { timeout: WAIT });
    const got = await page.evaluate(() => window.got);
    assert.deepEqual(got.map((e) => e.id), want, "every update once, in order");
    assert.deepEqual(got.map((e) => e.data),
                     ["book 1", "private to 7", "after 0", "after 1", "after 2"]);
    assert.ok(await page.evaluate(() => window.opened) >= 2, "EventSource reconnected");
    assert.deepEqual(page.errors, []);
  } finally {
    await srv.stop();
  }
});
