"use strict";
// (d) JSONP: a plain callback name is answered as a script that calls it;
// callbacks trying to inject script are refused with 400 (JSON, not
// JavaScript), so the browser runs nothing of them.

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { Server, launch, newPage, pageServer, WAIT } = require("./lib");

let browser, pages;
before(async () => {
  browser = await launch();
  pages = await pageServer();
});
after(async () => {
  if (browser) await browser.close();
  if (pages) await pages.closeAll();
});

const EVIL = {
  call: "alert(document.domain)//",
  assign: "window.pwned=1;ok",
  trailing: "ok;window.pwned=1",
  tag: "</script><script>window.pwned=1</script>",
  parens: "ok(1);window.pwned=1//",
  digit: "1ok",
  newline: "ok\nwindow.pwned=1",
  linesep: "ok\u2028window.pwned=1",
  long: "o".repeat(65),
};

for (const kind of ["lighttpd", "apache"]) {
  test(`JSONP callbacks (${kind})`, async () => {
    const srv = await Server.start(kind);
    try {
      const channel = "jsonp";
      // Data that would break out of a naive HTML/JS embedding.
      const tricky = "</script><script>window.pwned=2</script>\u2028\u2029\"'";
      const ack = await srv.publish(channel, tricky);

      const page = await newPage(browser);
      const q = new URLSearchParams({ base: srv.comet, channel });
      await page.goto(`${pages.origin}/jsonp.html?${q}`);
      const cases = [["valid", "ok"], ...Object.entries(EVIL)];
      const results = await page.evaluate((c) => window.loadAll(c), cases);

      const expected = { valid: "load" };
      for (const name of Object.keys(EVIL)) expected[name] = "error";
      assert.deepEqual(results, expected);
      assert.equal(await page.evaluate(() => window.pwned), undefined, "injected script ran");
      assert.deepEqual(page.dialogs, []);
      assert.deepEqual(page.errors, []);
      // The valid callback ran once, with the message intact.
      const got = await page.evaluate(() => window.got);
      assert.equal(got.length, 1);
      assert.deepEqual(got[0].messages.map((m) => [m.id, m.data]), [[ack.id, tricky]]);

      // What the server answered.
      const url = (cb) => `${srv.comet}/sub?channel=${channel}&since=0&timeout=0&callback=${encodeURIComponent(cb)}`;
      const good = await fetch(url("ok"));
      assert.equal(good.status, 200);
      // comet-fcgi sends application/javascript; lighttpd 1.4.69 passes it
      // on as text/javascript (RFC 9239's name for the same type).
      assert.match(good.headers.get("content-type"), /^(application|text)\/javascript/);
      assert.match(await good.text(), /^ok\(\{.*\}\);\s*$/s);
      let fromProgram = 0;
      for (const [name, cb] of Object.entries(EVIL)) {
        const res = await fetch(url(cb));
        assert.equal(res.status, 400, name);
        const type = res.headers.get("content-type");
        assert.doesNotMatch(type, /javascript/, name);
        const text = await res.text();
        assert.ok(!text.includes("pwned"), `${name}: the callback is echoed: ${text}`);
        // lighttpd refuses control characters in a URL itself (its own
        // text/html 400); everything else is the program's JSON error.
        if (kind === "lighttpd" && /[\x00-\x1f]/.test(cb)) continue;
        fromProgram++;
        assert.match(type, /^application\/json/, name);
        assert.equal(res.headers.get("x-content-type-options"), "nosniff", name);
        assert.equal(JSON.parse(text).status, 400, name);
      }
      assert.ok(fromProgram >= 7);
      await page.context().close();
    } finally {
      await srv.stop();
    }
  });
}
