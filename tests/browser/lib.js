"use strict";
// Shared by the browser tests: a comet-fcgi web server (serve.py over
// tests/harness/), Debian's chromium driven by playwright-core, a second
// origin serving the test pages, publishing, and artifacts.

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const HERE = __dirname;
const TOP = path.resolve(HERE, "..", "..");
const WWW = path.join(TOP, "www");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = process.env.COMET_ARTIFACTS || path.join(process.cwd(), "test-artifacts", "browser");
// How long any one condition may take before the test fails.
const WAIT = 20000;

/* One HTTP request on a connection of its own (never one kept from before a
 * restart, which the restarted server has closed: a request on it would
 * fail as if cut off). Resolves to {status, json}; rejects with the socket
 * error (err.code, e.g. ECONNREFUSED) when there is no answer. */
function request(url, { method, body, headers = {} }) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        try {
          resolve({ status: res.statusCode, json: JSON.parse(text) });
        } catch (e) {
          reject(new Error(`${method} ${url}: ${res.statusCode}, not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.on("error", reject);
    req.end(body);
  });
}

/* A real web server running comet-fcgi; commands go to serve.py. */
class Server {
  /* www: another document root than www/ (harness.Server's www). */
  static async start(kind, env = {}, { www } = {}) {
    const args = [path.join(HERE, "serve.py"), kind];
    if (www) args.push("--www", www);
    for (const [k, v] of Object.entries(env)) args.push(`${k}=${v}`);
    const proc = spawn(process.env.PYTHON3 || "python3", args, {
      stdio: ["pipe", "pipe", "inherit"],
    });
    const srv = new Server(kind, proc);
    const first = await srv._next();
    if (!first || !first.ok) throw new Error(`${kind} did not start`);
    srv.base = first.base;            // http://127.0.0.1:PORT
    srv.comet = first.base + "/comet";
    return srv;
  }

  constructor(kind, proc) {
    this.kind = kind;
    this.proc = proc;
    this.waiting = [];
    this.lines = [];
    this.exited = false;
    readline.createInterface({ input: proc.stdout }).on("line", (line) => {
      const msg = JSON.parse(line);
      const w = this.waiting.shift();
      if (w) w.resolve(msg); else this.lines.push(msg);
    });
    proc.on("exit", (code) => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w.reject(new Error(`serve.py exited (${code})`));
    });
  }

  _next() {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    if (this.exited) return Promise.reject(new Error("serve.py has exited"));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  async command(cmd) {
    this.proc.stdin.write(cmd + "\n");
    const ans = await this._next();
    if (!ans.ok) throw new Error(`${this.kind} ${cmd}: ${ans.error}`);
    return ans;
  }

  restart() { return this.command("restart"); }
  killProgram() { return this.command("kill-program"); }

  /* Stop; fails when the server logged a crashed comet-fcgi process, other
   * than the kill -9s of killProgram() when killed is true. */
  async stop({ killed = false } = {}) {
    if (this.exited) return;
    let { lines } = await this.command("crashes");
    this.proc.stdin.end("stop\n");
    await new Promise((resolve) => this.proc.on("exit", resolve));
    if (killed) lines = lines.filter((l) => !/child signalled: 9$/.test(l));
    if (lines.length)
      throw new Error(`${this.kind} logged crashed comet-fcgi processes:\n${lines.join("\n")}`);
  }

  /* POST a message; resolves to the ack {id, channel, time}. */
  async publish(channel, data, type) {
    const body = typeof data === "string" ? data : JSON.stringify(data);
    const { status, json } = await request(`${this.comet}/pub?channel=${encodeURIComponent(channel)}`, {
      method: "POST",
      body,
      headers: { "Content-Type": type || (typeof data === "string" ? "text/plain" : "application/json") },
    });
    if (status !== 201) throw new Error(`publish: ${status} ${JSON.stringify(json)}`);
    return json;
  }

  /* GET a JSON answer of the server: {status, json}. */
  getJson(pathAndQuery) {
    return request(`${this.base}${pathAndQuery}`, { method: "GET" });
  }

  /* publish(), retried while the server is down (connection refused or
   * reset before an answer): for publishing across a restart. A request
   * that reached the server is never retried, so nothing is sent twice. */
  async publishSurely(channel, data) {
    const deadline = Date.now() + WAIT;
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      try {
        return await this.publish(channel, data);
      } catch (e) {
        if (e.code !== "ECONNREFUSED" || Date.now() > deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, delay));   // back off, then retry
    }
  }
}

/* Chromium from Debian, headless, as root; a fresh profile per launch
 * (playwright makes a temporary --user-data-dir and removes it). */
async function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/* A page in its own context (its own cookies and localStorage), failing the
 * test on uncaught page errors, which are collected in page.errors. */
async function newPage(browser) {
  const ctx = await browser.newContext({ viewport: { width: 900, height: 700 } });
  const page = await ctx.newPage();
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.dialogs = [];
  page.on("dialog", (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  return page;
}

/* Static files for the second origin: tests/browser/pages/ at /, and
 * www/comet.js and comet.mjs at /. Listens on 127.0.0.1; origin is its URL. */
async function pageServer() {
  const js = "text/javascript; charset=utf-8";
  const types = { ".html": "text/html; charset=utf-8", ".js": js, ".mjs": js };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    let file = null;
    if (url.pathname === "/comet.js" || url.pathname === "/comet.mjs") file = path.join(WWW, url.pathname);
    else if (/^\/[a-z0-9-]+\.(html|js)$/.test(url.pathname)) file = path.join(HERE, "pages", url.pathname);
    fs.readFile(file || "/nonexistent", (err, data) => {
      if (err) {
        res.writeHead(404, { "Content-Type": "text/plain" });
        res.end("not found");
        return;
      }
      res.writeHead(200, { "Content-Type": types[path.extname(file)], "Cache-Control": "no-store" });
      res.end(data);
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  server.origin = `http://127.0.0.1:${server.address().port}`;
  server.closeAll = () => new Promise((resolve) => {
    server.closeAllConnections && server.closeAllConnections();
    server.close(resolve);
  });
  return server;
}

function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/* The ids the chat page shows, in order. */
function shownIds(page) {
  return page.$$eval("#log li[data-id]", (lis) => lis.map((li) => Number(li.dataset.id)));
}

module.exports = { Server, launch, newPage, pageServer, artifact, shownIds, WAIT, WWW, CHROMIUM };
