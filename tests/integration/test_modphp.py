#!/usr/bin/env python3
"""A site on Apache with mod_php (prefork MPM, MaxRequestWorkers 20) stays
responsive while 1,000 subscribers are held, because they are held by
lighttpd with comet-fcgi beside it, run from lighttpd/comet-beside-apache.conf
as shipped (README, "Sites on mod_php").

Debian's apache2 with libapache2-mod-php runs from a configuration this test
writes to a scratch directory: Listen 127.0.0.1:<free port>, a static
index.html, publish.php (www/comet.php publishing to the lighttpd URL with
the key from the settings file COMET_CONFIG names, as the package's
/etc/comet-fcgi/comet-fcgi.conf would give it), a page that subscribes with
comet.js from the lighttpd side. Then:

1. 1,000 event streams held on lighttpd (a child process of this file with
   non-blocking sockets; /comet/stats counts them), and for 10 s the Apache
   page and publish.php, alternately, each on a fresh connection: every
   answer within 100 ms at the 99th percentile, none over 1 s (p50/p99/max
   printed); every publish reaches every
   held stream, the payloads of a sample checked.
2. Chromium opens the page on Apache, subscribes cross-origin (CORS) to
   lighttpd, over an event stream and over long-polling, and receives what
   the page's own request to publish.php publishes (tests/browser/
   modphp.test.js, run with tests/browser/run.py's helpers).
3. The control: 20 subscribers held by Apache itself (a PHP page waiting on
   a long-poll, what a site without this set-up does) take every prefork
   child, and the page no longer answers within 100 ms: step 1 would fail
   if the subscribers went to Apache.

Skipped (77) when Apache's mod_php is not installed (bootstrap installs
libapache2-mod-php); step 2 is skipped without node or chromium.
"""

import glob
import http.client
import importlib.util
import json
import math
import os
import pwd
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

CONFIG = os.path.join(harness.TOP_SRCDIR, "lighttpd", "comet-beside-apache.conf")
COMET_PHP = os.path.join(harness.WWW_DIR, "comet.php")
SUBSCRIBER_JS = os.path.join(harness.TESTS_DIR, "browser", "pages", "subscriber.js")
RUN_PY = os.path.join(harness.TESTS_DIR, "browser", "run.py")
MODULES = "/usr/lib/apache2/modules"
MOD_PHP = sorted(glob.glob(os.path.join(MODULES, "libphp*.so")))
APACHE2 = harness.find_exe("APACHE2", "apache2")

N = 1000                # subscribers held on lighttpd
MEASURE = 10.0          # seconds of page and publish.php requests
PERIOD = 0.05           # one request per PERIOD, page and publish.php in turn
# Each must answer within this (stretched for an ASan build of the program,
# which publish.php's publishes go through).
LIMIT = 0.100 * (3 if harness.sanitized() else 1)
WORKERS = 20            # MaxRequestWorkers of the prefork Apache
CHANNEL = "live"
KEY = "modphp-test-publish-key"

APACHE_CONF = """# written by tests/integration/test_modphp.py: a site on mod_php
DefaultRuntimeDir "%(dir)s"
PidFile "%(dir)s/httpd.pid"
ErrorLog "%(dir)s/error.log"
LogLevel warn
ServerName 127.0.0.1

# What libapache2-mod-php brings: the prefork MPM (mod_php is not thread
# safe), one process per request in progress.
LoadModule mpm_prefork_module %(modules)s/mod_mpm_prefork.so
LoadModule php_module %(mod_php)s
LoadModule authz_core_module %(modules)s/mod_authz_core.so
LoadModule mime_module %(modules)s/mod_mime.so
LoadModule dir_module %(modules)s/mod_dir.so
LoadModule env_module %(modules)s/mod_env.so
%(user)s
Listen 127.0.0.1:%(port)d

StartServers 5
MinSpareServers 5
MaxSpareServers 10
ServerLimit %(workers)d
MaxRequestWorkers %(workers)d
MaxConnectionsPerChild 0

<Directory />
    AllowOverride None
    Require all denied
</Directory>
DocumentRoot "%(dir)s/site"
<Directory "%(dir)s/site">
    Options -Indexes
    Require all granted
</Directory>
TypesConfig /etc/mime.types
AddType "text/javascript; charset=utf-8" .js
DirectoryIndex index.html index.php
<FilesMatch "\\.php$">
    SetHandler application/x-httpd-php
</FilesMatch>
# comet.php reads the keys from here (the package's file on a real site).
SetEnv COMET_CONFIG "%(dir)s/comet-fcgi.conf"

LogFormat "%%h %%t \\"%%r\\" %%>s %%b %%D" timed
CustomLog "%(dir)s/access.log" timed
"""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>a site on mod_php</title></head>
<body><p>static page of the site (modphp-index)</p></body></html>
"""

# What a site's PHP does: publish with comet.php to comet-fcgi on lighttpd.
PUBLISH_PHP = """<?php
require %(comet_php)s;
header('Content-Type: application/json');
try {
    $comet = new Comet\\Client(%(comet_url)s);   // the key: from COMET_CONFIG's file
    $text = (string)($_GET['text'] ?? '');
    $id = $comet->publish((string)($_GET['channel'] ?? 'live'), ['text' => $text]);
    echo json_encode(['id' => $id, 'text' => $text]);
} catch (Comet\\Exception $e) {
    http_response_code(502);
    echo json_encode(['error' => $e->getMessage(), 'status' => $e->getStatus()]);
}
"""

# The control: a subscriber held by Apache itself (a PHP page waiting for
# the next message), what a mod_php site without lighttpd beside it does.
HOLD_PHP = """<?php
$ch = urlencode((string)($_GET['channel'] ?? 'held'));
$answer = file_get_contents(%(comet_url)s . "/sub?channel=$ch&timeout=30");
header('Content-Type: application/json');
echo $answer === false ? '{"error":"no answer"}' : $answer;
"""

# The page of the site that subscribes cross-origin: comet.js from the
# lighttpd side, the test pages' subscriber.js (query: base, channel,
# transport) from the site.
SUBSCRIBER_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>comet.js on a mod_php site</title>
<script src="%(comet_js)s"></script></head>
<body data-state="loading">
<ol id="log"></ol>
<script src="/subscriber.js"></script>
</body>
</html>
"""


def percentile(sorted_values, p):
    """The p-th percentile (nearest rank) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100.0 * len(sorted_values)) - 1))
    return sorted_values[k]


def http_get(port, path, timeout):
    """GET on a connection of its own: (status, body, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, body, time.monotonic() - t0
    finally:
        conn.close()


class ModPhpApache:
    """Debian's apache2 with mod_php, prefork, from a configuration written
    to a scratch directory, serving a site that publishes to comet_url."""

    def __init__(self, port, scratch, comet_url, comet_js):
        self.port = port
        self.dir = scratch
        self.comet_url = comet_url
        self.comet_js = comet_js
        self.proc = None

    def write(self):
        site = os.path.join(self.dir, "site")
        os.makedirs(site, exist_ok=True)
        comet_php = COMET_PHP
        if not harness.readable_by_others(comet_php):
            comet_php = os.path.join(self.dir, "comet.php")
            shutil.copy(COMET_PHP, comet_php)
        user = ""
        if os.geteuid() == 0:
            user = "User www-data\nGroup www-data"
        files = {
            "httpd.conf": APACHE_CONF % {
                "dir": self.dir, "modules": MODULES, "mod_php": MOD_PHP[-1],
                "port": self.port, "workers": WORKERS, "user": user},
            "comet-fcgi.conf": "# the keys, as /etc/comet-fcgi/comet-fcgi.conf has them\n"
                               "COMET_PUBLISH_KEY = %s\n" % KEY,
            "site/index.html": INDEX_HTML,
            "site/publish.php": PUBLISH_PHP % {"comet_php": "'%s'" % comet_php,
                                               "comet_url": "'%s'" % self.comet_url},
            "site/hold.php": HOLD_PHP % {"comet_url": "'%s'" % self.comet_url},
            "site/subscriber.html": SUBSCRIBER_HTML % {"comet_js": self.comet_js},
        }
        for name, text in files.items():
            with open(os.path.join(self.dir, name), "w") as f:
                f.write(text)
        shutil.copy(SUBSCRIBER_JS, os.path.join(site, "subscriber.js"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("www-data")
            harness.chown_tree(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)

    def start(self):
        self.write()
        out = open(os.path.join(self.dir, "server.out"), "ab")
        try:
            self.proc = subprocess.Popen(
                [APACHE2, "-d", self.dir, "-f", "httpd.conf", "-DFOREGROUND"],
                cwd=self.dir, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={k: v for k, v in os.environ.items() if not k.startswith("COMET_")})
        finally:
            out.close()

        def up():
            if self.proc.poll() is not None:
                raise harness.HarnessError("apache2 exited (%s)\n%s"
                                           % (self.proc.returncode, self.logs()))
            return http_get(self.port, "/", 5)[0] == 200
        harness.wait_until(up, harness.START_TIMEOUT, "apache2 with mod_php")

    def logs(self):
        out = []
        for n in ("server.out", "error.log"):
            try:
                with open(os.path.join(self.dir, n), "rb") as f:
                    out.append("----- %s (apache2, mod_php)\n%s"
                               % (n, f.read()[-10000:].decode("utf-8", "replace")))
            except OSError:
                pass
        return "\n".join(out)

    def stop(self):
        if not self.proc:
            return
        harness.signal_and_wait(self.proc, signal.SIGTERM, harness.STOP_TIMEOUT)
        harness.kill_session(self.proc)
        self.proc = None
        # Printed with the other servers' logs when a test failed.
        harness.keep_logs(self.logs())


# ------------------------------------------------------------ the subscribers

def hold_main(port, n, channel):
    """Child process: n event streams on 127.0.0.1:port, read without
    blocking. Prints {"ready": ...} once every one has its headers, then
    keeps reading; given {"expect": {id: text}} on stdin, waits (bounded)
    until every stream has every id, prints the tally and exits."""
    def say(obj):
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1000), hard))
    request = ("GET /comet/sub?channel=%s HTTP/1.0\r\nHost: 127.0.0.1:%d\r\n"
               "Accept: text/event-stream\r\n\r\n" % (channel, port)).encode()
    sel = selectors.DefaultSelector()
    subs = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        sub = {"i": i, "sock": s, "head": None, "buf": b"", "ids": set(),
               "data": {}, "closed": False}
        subs.append(sub)
        sel.register(s, selectors.EVENT_READ, sub)
    sample = set(range(0, n, n // 10 or 1))     # whose payloads are kept
    id_re = re.compile(rb"^id: (\d+)$", re.M)
    data_re = re.compile(rb"^id: (\d+)\ndata: (.*)$", re.M)

    def read(sub):
        try:
            chunk = sub["sock"].recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            sub["closed"] = True
            sel.unregister(sub["sock"])
            return
        sub["buf"] += chunk
        if sub["head"] is None:
            if b"\r\n\r\n" not in sub["buf"]:
                return
            sub["head"], _, sub["buf"] = sub["buf"].partition(b"\r\n\r\n")
        end = sub["buf"].rfind(b"\n\n")
        if end < 0:
            return
        events, sub["buf"] = sub["buf"][:end + 2], sub["buf"][end + 2:]
        sub["ids"].update(int(m) for m in id_re.findall(events))
        if sub["i"] in sample:
            for m in data_re.finditer(events):
                sub["data"][int(m.group(1))] = json.loads(m.group(2))["data"]

    def pump(timeout):
        for key, _ in sel.select(timeout):
            if key.data == "stdin":
                return os.read(0, 1 << 20)
            read(key.data)
        return None

    deadline = time.monotonic() + 30
    while any(s["head"] is None and not s["closed"] for s in subs):
        if time.monotonic() > deadline:
            break
        pump(0.5)
    heads = [s["head"] for s in subs if s["head"] is not None]
    ok = sum(1 for h in heads if h.startswith(b"HTTP/1.0 200")
             and b"text/event-stream" in h.lower())
    bad = [h.decode("latin-1") for h in heads if not h.startswith(b"HTTP/1.0 200")][:3]
    say({"ready": ok, "headers": len(heads), "bad": bad})

    sel.register(0, selectors.EVENT_READ, "stdin")
    line = b""
    while b"\n" not in line:
        got = pump(1.0)
        if got is not None:
            if not got:
                return
            line += got
    expect = {int(k): v for k, v in json.loads(line.decode())["expect"].items()}
    want = set(expect)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if all(want <= s["ids"] for s in subs if not s["closed"]):
            break
        pump(0.2)
    complete = [s for s in subs if want <= s["ids"]]
    wrong = [(s["i"], k) for s in subs for k, v in s["data"].items()
             if k in expect and v != expect[k]]
    incomplete = [s for s in subs if not want <= s["ids"]]
    say({"complete": len(complete), "closed": sum(s["closed"] for s in subs),
         "sampled": len(sample), "payloads_checked": sum(len(s["data"]) for s in subs),
         "wrong_payloads": wrong[:5],
         "first_incomplete": [{"i": s["i"], "missing": sorted(want - s["ids"])[:10],
                               "closed": s["closed"]} for s in incomplete[:3]]})
    for s in subs:
        s["sock"].close()


# ------------------------------------------------------------------- the test

class SiteOnModPhp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(APACHE2):
            raise unittest.SkipTest("apache2 is not installed")
        cls.apache = None
        cls.scratch = tempfile.mkdtemp(prefix="comet-modphp-", dir="/tmp")
        apache_port = harness.free_port()
        cls.origin = "http://127.0.0.1:%d" % apache_port
        try:
            # The shipped role configuration, CORS for the Apache site only.
            cls.srv = harness.Server(
                "lighttpd", config=CONFIG,
                env={"COMET_CORS_ORIGIN": cls.origin, "COMET_PUBLISH_KEY": KEY,
                     "COMET_CONFIG": os.path.join(cls.scratch, "comet-fcgi.conf")},
                server_env={"COMET_HTTP_ADDR": "127.0.0.1"})
            # The settings file exists before lighttpd starts the program.
            with open(os.path.join(cls.scratch, "comet-fcgi.conf"), "w") as f:
                f.write("COMET_PUBLISH_KEY = %s\n" % KEY)
            cls.srv.start()
            cls.comet = cls.srv.base_url + "/comet"
            cls.apache = ModPhpApache(apache_port, cls.scratch, cls.comet,
                                      cls.srv.base_url + "/comet.js")
            cls.apache.start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "apache", None):
            cls.apache.stop()
        if getattr(cls, "srv", None):
            cls.srv.stop()
        if getattr(cls, "scratch", None):
            if os.environ.get("COMET_KEEP_SCRATCH"):
                sys.stderr.write("kept %s\n" % cls.scratch)
            else:
                shutil.rmtree(cls.scratch, ignore_errors=True)

    def publish_php(self, text, channel=CHANNEL, timeout=5):
        q = urllib.parse.urlencode({"channel": channel, "text": text})
        return http_get(self.apache.port, "/publish.php?" + q, timeout)

    def test_1_site_answers_with_a_thousand_held(self):
        st, body, _ = http_get(self.srv.port, "/comet.js", 5)
        self.assertEqual(st, 200, "lighttpd serves comet.js")
        st, body, _ = http_get(self.srv.port, "/comet-fcgi.conf", 5)
        self.assertEqual(st, 403, "and nothing else")
        st, body, _ = self.publish_php("first")
        self.assertEqual(st, 200, body)

        child = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--hold",
             str(self.srv.port), str(N), CHANNEL],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            ready = json.loads(child.stdout.readline() or "{}")
            self.assertEqual(ready.get("ready"), N, ready)
            st = self.srv.wait_for_waiting(N, timeout=20)
            self.assertGreaterEqual(st["waiting"], N)

            times = {"page": [], "publish.php": []}
            errors = []
            expect = {}
            t_end = time.monotonic() + MEASURE
            next_at = time.monotonic()
            i = 0
            while time.monotonic() < t_end:
                kind = "page" if i % 2 == 0 else "publish.php"
                try:
                    if kind == "page":
                        st, body, dt = http_get(self.apache.port, "/", 5)
                        good = st == 200 and b"modphp-index" in body
                    else:
                        st, body, dt = self.publish_php("m%d" % i)
                        ack = json.loads(body) if st == 200 else {}
                        good = isinstance(ack.get("id"), int)
                        if good:
                            expect[ack["id"]] = {"text": "m%d" % i}
                    times[kind].append(dt)
                    if not good:
                        errors.append((kind, st, body[:200]))
                except (OSError, http.client.HTTPException) as e:
                    errors.append((kind, "no answer", repr(e)))
                i += 1
                # Pacing, not synchronisation: one request every PERIOD.
                next_at += PERIOD
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            held = self.srv.stats()["waiting"]

            child.stdin.write(json.dumps({"expect": expect}) + "\n")
            child.stdin.flush()
            tally = json.loads(child.stdout.readline() or "{}")
        finally:
            child.stdin.close()
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            child.stdout.close()

        report = []
        for kind, ts in times.items():
            s = sorted(ts)
            report.append("%s: %d answers, p50 %.1f ms, p99 %.1f ms, max %.1f ms"
                          % (kind, len(s), percentile(s, 50) * 1000,
                             percentile(s, 99) * 1000, s[-1] * 1000 if s else float("nan")))
        # The program's own time from a publish's arrival to its commit, and
        # the machine's load: a slow answer on a machine busy with other
        # work shows there too.
        commit = {}
        for line in self.srv.get("/comet/metrics", headers=self.srv.auth_headers()
                                 ).body.decode().splitlines():
            m = re.match(r"comet_publish_commit_seconds_(sum|count) (\S+)$", line)
            if m:
                commit[m.group(1)] = float(m.group(2))
        sys.stderr.write("\nwith %d held on lighttpd (%d at the end):\n  %s\n"
                         "  delivery: %s\n  publish to commit in the program: mean %.1f ms;"
                         " load average %.1f\n"
                         % (N, held, "\n  ".join(report), json.dumps(tally),
                            1000 * commit.get("sum", 0) / max(1, commit.get("count", 1)),
                            os.getloadavg()[0]))
        self.assertEqual(errors, [])
        self.assertGreaterEqual(held, N, "the subscribers were held throughout")
        # What the site's own servers decide is the common answer: p99
        # within LIMIT. A single slow answer is as often the machine's (a
        # busy core, this client not scheduled) as theirs, so it fails only
        # past ten times that, when the site would be stuck, not slow.
        for kind, ts in times.items():
            self.assertGreater(len(ts), MEASURE / PERIOD / 2 * 0.8, kind)
            s = sorted(ts)
            self.assertLessEqual(percentile(s, 99), LIMIT, "%s: p99 %.1f ms, over %d ms"
                                 % (kind, percentile(s, 99) * 1000, LIMIT * 1000))
            stuck = [round(t * 1000, 1) for t in ts if t > 10 * LIMIT]
            self.assertEqual(stuck, [], "%s answers slower than %d ms (ms)"
                             % (kind, 10 * LIMIT * 1000))
        # Every publish reached every held stream; payloads of a sample.
        self.assertEqual(tally.get("complete"), N, tally)
        self.assertEqual(tally.get("closed"), 0, tally)
        self.assertEqual(tally.get("wrong_payloads"), [], tally)
        self.assertGreaterEqual(tally.get("payloads_checked", 0),
                                tally.get("sampled", 0) * len(expect), tally)

    def test_2_browser_subscribes_cross_origin(self):
        chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
        node = os.environ.get("NODE") or shutil.which("node") or shutil.which("nodejs")
        if not node:
            self.skipTest("node is not installed")
        if not (os.path.isfile(chromium) and os.access(chromium, os.X_OK)):
            self.skipTest("%s is not installed" % chromium)
        spec = importlib.util.spec_from_file_location("browser_run", RUN_PY)
        run_py = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(run_py)
        modules = run_py.ensure_modules()
        self.assertTrue(modules, "playwright-core could not be installed (npm ci)")
        env = dict(os.environ)
        env.update({
            "NODE_PATH": os.path.join(modules, "node_modules"),
            "CHROMIUM": chromium,
            "COMET_ARTIFACTS": os.environ.get("COMET_ARTIFACTS") or os.path.join(
                os.getcwd(), "test-artifacts", "browser"),
            "MODPHP_SITE": self.origin,
            "MODPHP_COMET": self.comet,
        })
        self.assertTrue(run_py.run_file(node, "modphp", env), "tests/browser/modphp.test.js")

    def test_3_control_subscribers_on_apache_starve_it(self):
        # What step 1 would meet if the site held its subscribers itself:
        # WORKERS PHP pages each waiting for a message take every child.
        self.srv.wait_for_none_waiting(20,
                                       "the streams of step 1 to be gone")
        results = []

        def hold():
            try:
                results.append(http_get(self.apache.port, "/hold.php?channel=held", 40)[0])
            except (OSError, http.client.HTTPException) as e:
                results.append(repr(e))
        threads = [threading.Thread(target=hold) for _ in range(WORKERS)]
        for t in threads:
            t.start()
        try:
            self.srv.wait_for_waiting(WORKERS, timeout=30)
            t0 = time.monotonic()
            try:
                st, _, dt = http_get(self.apache.port, "/", 1.0)
            except socket.timeout:
                st, dt = None, time.monotonic() - t0
            sys.stderr.write("\ncontrol: with %d held by Apache, the page: %s after %.0f ms\n"
                             % (WORKERS, "no answer" if st is None else st, dt * 1000))
            self.assertGreater(dt, LIMIT, "the page answered although every child was held")
        finally:
            # The message that lets them go.
            r = self.srv.publish("held", "released")
            self.assertEqual(r.status, 201, r)
            for t in threads:
                t.join(60)
        self.assertEqual(results, [200] * WORKERS)
        st, body, dt = http_get(self.apache.port, "/", 10)
        self.assertEqual(st, 200)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--hold":
        hold_main(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        sys.exit(0)
    if not MOD_PHP:
        print("SKIP: Apache's mod_php is not installed (apt-get install libapache2-mod-php)")
        sys.exit(77)
    harness.main()
