"""The program outside a web server: --help/--version, start-up errors,
CGI mode, `publish` from the command line, and the standalone --listen
mode spoken to by a minimal FastCGI client (as mod_proxy_fcgi would)."""

import hashlib
import hmac
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fcgiproto  # noqa: E402

SRCDIR = os.environ.get("COMET_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.environ.get("COMET_FCGI") or os.path.join(SRCDIR, "src", "comet-fcgi")


def cgi(env, body=b"", timeout=20):
    """Runs one CGI request; returns (status, headers, body)."""
    # No settings file of this machine's (a `make install` makes one).
    full = {"PATH": os.environ.get("PATH", ""), "GATEWAY_INTERFACE": "CGI/1.1",
            "COMET_CONFIG": ""}
    full.update(env)
    if body:
        full["CONTENT_LENGTH"] = str(len(body))
    p = subprocess.run([PROGRAM], input=body, env=full, capture_output=True, timeout=timeout)
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    headers = {}
    for line in head.decode().split("\r\n"):
        k, _, v = line.partition(": ")
        headers[k.lower()] = v
    status = int(headers.get("status", "0").split()[0])
    return status, headers, rest, p.stderr.decode()


def fcgi_request(addr, params, body=b"", timeout=20):
    """A minimal FastCGI responder request over TCP; returns the raw stdout."""
    s = socket.create_connection(addr, timeout=timeout)
    s.sendall(fcgiproto.request(params, body))
    out, recs = b"", fcgiproto.Records()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        for rtype, content in recs.feed(chunk):
            if rtype == fcgiproto.STDOUT:
                out += content
            elif rtype == fcgiproto.END_REQUEST:
                s.close()
                return out
    s.close()
    return out


class CommandLine(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="comet-cli-")
        self.db = os.path.join(self.dir, "comet.db")
        self.env = {"COMET_DB": self.db, "REMOTE_ADDR": "127.0.0.1",
                    "COMET_PUBLISH_LOOPBACK": "on"}

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def run_prog(self, args, env=None, input=None):
        full = {"PATH": os.environ.get("PATH", ""), "COMET_DB": self.db, "COMET_CONFIG": ""}
        full.update(env or {})
        return subprocess.run([PROGRAM] + args, env=full, input=input, capture_output=True,
                              timeout=20)

    def test_help_and_version(self):
        p = self.run_prog(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout.decode(), r"^comet-fcgi \d+\.\d+\.\d+")
        p = self.run_prog(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("COMET_MAX_TIMEOUT", p.stdout.decode())
        p = self.run_prog(["--bogus"])
        self.assertEqual(p.returncode, 2)

    def test_bad_setting_stops_start_naming_the_variable(self):
        for name, value in [("COMET_TIMEOUT", "soon"), ("COMET_RETAIN", "0"),
                            ("COMET_SYNC", "maybe"), ("COMET_MAX_MESSAGE", "-5")]:
            p = self.run_prog([], env={name: value, "GATEWAY_INTERFACE": "CGI/1.1",
                                       "REQUEST_METHOD": "GET"})
            self.assertEqual(p.returncode, 2, name)
            self.assertIn(name, p.stderr.decode())
            self.assertEqual(p.stdout, b"", "no answer may be written")
        conf = os.path.join(self.dir, "comet.conf")
        with open(conf, "w") as f:
            f.write("COMET_KEEPALIVE = often\n")
        p = self.run_prog(["publish", "c", "x"], env={"COMET_CONFIG": conf})
        self.assertEqual(p.returncode, 2)
        self.assertIn("COMET_KEEPALIVE", p.stderr.decode())

    @unittest.skipUnless(os.geteuid() == 0, "needs root to play two users")
    def test_publish_as_the_wrong_user_says_so(self):
        # The database directory is the web server's user's (here nobody):
        # root publishing there would leave files nobody cannot open.
        nobody = pwd.getpwnam("nobody")
        d = os.path.join(self.dir, "state")
        os.mkdir(d)
        os.chmod(self.dir, 0o755)
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        db = os.path.join(d, "comet.db")
        p = self.run_prog(["publish", "c", "x"], env={"COMET_DB": db})
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sudo -u nobody comet-fcgi publish", p.stderr.decode())
        self.assertEqual(os.listdir(d), [], "files were made anyway")
        # As its owner it works.
        p = subprocess.run([PROGRAM, "publish", "c", "x"], capture_output=True,
                           env={"PATH": os.environ.get("PATH", ""), "COMET_DB": db,
                                "COMET_CONFIG": ""},
                           preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertEqual(json.loads(p.stdout)["channel"], "c")
        # The other way round: a log root made (a web server that ran the
        # program as root), published to as nobody. The fix is to give the
        # log to the web server's user, never to publish as root.
        rootdir = os.path.join(self.dir, "rootstate")
        os.mkdir(rootdir)
        os.chmod(rootdir, 0o755)
        rootdb = os.path.join(rootdir, "comet.db")
        self.assertEqual(self.run_prog(["publish", "c", "x"], env={"COMET_DB": rootdb}).returncode, 0)
        p = subprocess.run([PROGRAM, "publish", "c", "x"], capture_output=True,
                           env={"PATH": os.environ.get("PATH", ""), "COMET_DB": rootdb,
                                "COMET_CONFIG": ""},
                           preexec_fn=lambda: (os.setgid(nobody.pw_gid), os.setuid(nobody.pw_uid)))
        self.assertNotEqual(p.returncode, 0)
        err = p.stderr.decode()
        self.assertIn("chown -R nobody: %s" % rootdir, err)
        self.assertIn("sudo -u nobody comet-fcgi publish", err)
        self.assertNotIn("sudo -u root", err)

    def test_publish_command(self):
        p = self.run_prog(["publish", "chat", "hello"])
        self.assertEqual(p.returncode, 0, p.stderr)
        ack = json.loads(p.stdout)
        self.assertEqual((ack["id"], ack["channel"]), (1, "chat"))
        p = self.run_prog(["publish", "--type", "application/json", "chat"], input=b'{"a": [1]}')
        self.assertEqual(json.loads(p.stdout)["id"], 2)
        p = self.run_prog(["publish", "--type", "application/json", "chat", "{bad"])
        self.assertNotEqual(p.returncode, 0)
        p = self.run_prog(["publish", "bad channel", "x"])
        self.assertEqual(p.returncode, 2)
        st, _, body, _ = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/sub",
                                  QUERY_STRING="channel=chat&since=0"))
        msgs = json.loads(body)["messages"]
        self.assertEqual([m["data"] for m in msgs], ["hello", {"a": [1]}])

    def test_cgi_forbidden_from_elsewhere_without_key(self):
        env = dict(self.env, REQUEST_METHOD="POST", SCRIPT_NAME="/comet/pub",
                   QUERY_STRING="channel=c", CONTENT_TYPE="text/plain", REMOTE_ADDR="192.0.2.7")
        st, h, body, _ = cgi(env, b"x")
        self.assertEqual(st, 403)
        self.assertEqual(json.loads(body), {"error": json.loads(body)["error"], "status": 403})
        env["REMOTE_ADDR"] = "::1"
        self.assertEqual(cgi(env, b"x")[0], 201)
        for path in ("/comet/stats", "/comet/metrics"):
            st, _, _, _ = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME=path,
                                   REMOTE_ADDR="198.51.100.1"))
            self.assertEqual(st, 403)

    def test_closed_by_default_without_key(self):
        # The default: no key, no COMET_PUBLISH_LOOPBACK: nobody publishes,
        # not even loopback (behind a reverse proxy on the same host every
        # visitor is loopback); reading is open.
        closed = dict(self.env)
        del closed["COMET_PUBLISH_LOOPBACK"]
        for addr in ("127.0.0.1", "::1", "192.0.2.7"):
            env = dict(closed, REQUEST_METHOD="POST", SCRIPT_NAME="/comet/pub",
                       QUERY_STRING="channel=c", CONTENT_TYPE="text/plain", REMOTE_ADDR=addr)
            st, _, body, _ = cgi(env, b"x")
            self.assertEqual(st, 403, addr)
            self.assertIn("COMET_PUBLISH_KEY", json.loads(body)["error"])
            for path in ("/comet/stats", "/comet/metrics"):
                st, _, _, _ = cgi(dict(closed, REQUEST_METHOD="GET", SCRIPT_NAME=path,
                                       REMOTE_ADDR=addr))
                self.assertEqual(st, 403, (addr, path))
        st, _, _, _ = cgi(dict(closed, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/sub",
                               QUERY_STRING="channel=c&timeout=0"))
        self.assertEqual(st, 200)

    def test_private_channels_need_tokens(self):
        def token(chan, expiry, key=b"tk"):
            mac = hmac.new(key, ("%s:%d" % (chan, expiry)).encode(), hashlib.sha256).hexdigest()
            return "%d.%s" % (expiry, mac)

        def sub(query, key="tk"):
            env = dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/sub",
                       QUERY_STRING=query + "&timeout=0")
            if key:
                env["COMET_TOKEN_KEY"] = key
            st, _, body, _ = cgi(env)
            return st, json.loads(body)

        later, past = int(time.time()) + 600, int(time.time()) - 1
        p = self.run_prog(["publish", "private-room", "secret"])
        self.assertEqual(p.returncode, 0)
        st, body = sub("channel=private-room&since=0&token=" + token("private-room", later))
        self.assertEqual(st, 200)
        self.assertEqual(body["messages"][0]["data"], "secret")
        refusals = [
            "channel=private-room&since=0",                                     # no token
            "channel=private-room&since=0&token=" + token("private-room", past),  # expired
            "channel=private-room&since=0&token=" + token("private-hall", later),  # other channel
            "channel=private-room&since=0&token=" + token("private-room", later, b"wrong"),
            # one token per private channel: a second private channel needs its own
            "channel=private-room,private-hall&since=0&token=" + token("private-room", later),
        ]
        for q in refusals:
            st, body = sub(q)
            self.assertEqual((st, body["status"]), (403, 403), q)
        st, body = sub("channel=private-room,private-hall,public&since=0&token=%s,%s" % (
            token("private-room", later), token("private-hall", later)))
        self.assertEqual(st, 200)
        st, body = sub("channel=private-room&token=" + token("private-room", later), key=None)
        self.assertEqual(st, 403)
        self.assertIn("COMET_TOKEN_KEY", body["error"])
        st, body = sub("channel=private-room&token=<script>")
        self.assertEqual(st, 400)

    def test_batch_publish(self):
        def pub(body, query=""):
            env = dict(self.env, REQUEST_METHOD="POST", SCRIPT_NAME="/comet/pub",
                       QUERY_STRING=query, CONTENT_TYPE="application/json")
            st, _, out, _ = cgi(env, body.encode())
            return st, json.loads(out)

        st, acks = pub(json.dumps([{"channel": "a", "data": "one"},
                                   {"channel": "b", "data": {"n": [1, 2]}},
                                   {"channel": "a", "data": "<b>", "type": "text/html"}]))
        self.assertEqual(st, 201)
        self.assertEqual([(x["id"], x["channel"]) for x in acks["messages"]],
                         [(1, "a"), (2, "b"), (3, "a")])
        st, _, out, _ = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/sub",
                                 QUERY_STRING="channel=a,b&since=0"))
        msgs = json.loads(out)["messages"]
        self.assertEqual([(m["type"], m["data"]) for m in msgs],
                         [("text/plain", "one"), ("application/json", {"n": [1, 2]}),
                          ("text/html", "<b>")])
        # An array posted to a channel is one JSON message, not a batch.
        st, ack = pub("[1, 2]", "channel=c")
        self.assertEqual((st, ack["id"]), (201, 4))
        bad = [("[]", 400), ("[1]", 400), ('[{"channel": "a"}]', 400),
               ('[{"channel": "a b", "data": "x"}]', 400),
               ('[{"channel": "a", "data": 5, "type": "text/plain"}]', 400),
               ('[{"channel": "a", "data": "x\\u0000"}]', 415),
               ('[{"channel": "a\\u0000b", "data": "x"}]', 415),
               # Not Unicode text, rather than stored as bytes that are not UTF-8.
               ('[{"channel": "a", "data": "\\ud800"}]', 400),
               # SQLite 3.40 takes {["k"]: 1} for JSON (and renders it as garbage).
               ('[{"channel": "a", "data": {["k"]: 1}}]', 415),
               ('[{"channel": "a", "data": "x"}', 415)]
        for body, status in bad:
            st, err = pub(body)
            self.assertEqual((st, err["status"]), (status, status), body)
        # Nothing of a refused batch was stored: all or nothing.
        st, _, out, _ = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/stats"))
        self.assertEqual(json.loads(out)["last_id"], 4)
        st, err = pub(json.dumps([{"channel": "a", "data": "x"}] * 1001))
        self.assertEqual(st, 400)

    def test_schema_migrates_from_version_1(self):
        import sqlite3
        con = sqlite3.connect(self.db)
        con.executescript("""
            CREATE TABLE msg(id INTEGER PRIMARY KEY AUTOINCREMENT, channel TEXT NOT NULL,
                time INTEGER NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL);
            CREATE INDEX msg_channel_id ON msg(channel, id);
            CREATE TABLE dropped(channel TEXT PRIMARY KEY, id INTEGER NOT NULL) WITHOUT ROWID;
            CREATE INDEX dropped_id ON dropped(id);
            PRAGMA user_version=1;""")
        now = int(time.time() * 1000)
        con.executemany("INSERT INTO msg(channel,time,type,data) VALUES(?,?,?,?)",
                        [("old", now, "text/plain", "m%d" % i) for i in range(5)])
        con.commit()
        con.close()
        # The count limit applies to what was there before the migration.
        p = self.run_prog(["publish", "old", "new"], env={"COMET_RETAIN": "3"})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["id"], 6)
        con = sqlite3.connect(self.db)
        self.assertEqual(con.execute("PRAGMA user_version").fetchone()[0], 3)
        self.assertIn("origin", [r[1] for r in con.execute("PRAGMA table_info(msg)")])
        self.assertEqual([r[0] for r in con.execute("SELECT data FROM msg ORDER BY id")],
                         ["m3", "m4", "new"])
        self.assertEqual(con.execute("SELECT n FROM chan WHERE name='old'").fetchone()[0], 3)
        con.close()
        con = sqlite3.connect(self.db)
        con.execute("PRAGMA user_version=99")
        con.commit()
        con.close()
        p = self.run_prog(["publish", "old", "x"])
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("newer than this program", p.stderr.decode())

    def test_cgi_storage_unavailable_is_503(self):
        env = {"COMET_DB": "/nonexistent-dir/comet.db", "REQUEST_METHOD": "POST",
               "SCRIPT_NAME": "/comet/pub", "QUERY_STRING": "channel=c",
               "CONTENT_TYPE": "text/plain", "REMOTE_ADDR": "127.0.0.1",
               "COMET_PUBLISH_LOOPBACK": "on"}
        st, h, body, err = cgi(env, b"x")
        self.assertEqual(st, 503)
        self.assertEqual(h.get("retry-after"), "1")
        self.assertEqual(json.loads(body)["status"], 503)
        self.assertIn("nonexistent-dir", err)

    def test_cgi_held_request_woken_by_command_line_publish(self):
        self.run_prog(["publish", "w", "first"])
        result = {}

        def sub():
            result["r"] = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/sub",
                                   QUERY_STRING="channel=w&timeout=15"))
        t = threading.Thread(target=sub)
        t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, _, body, _ = cgi(dict(self.env, REQUEST_METHOD="GET", SCRIPT_NAME="/comet/stats"))
            if json.loads(body)["waiting"] == 1:
                break
        self.assertEqual(json.loads(body)["waiting"], 1)
        start = time.monotonic()
        self.run_prog(["publish", "w", "second"])
        t.join(10)
        self.assertLess(time.monotonic() - start, 5)
        st, _, body, _ = result["r"]
        got = json.loads(body)
        self.assertEqual([m["data"] for m in got["messages"]], ["second"])
        self.assertEqual(got["last_id"], 2)


class Standalone(unittest.TestCase):
    """comet-fcgi --listen HOST:PORT, as mod_proxy_fcgi uses it."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="comet-listen-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = {"PATH": os.environ.get("PATH", ""), "COMET_DB": os.path.join(self.dir, "c.db"),
               "COMET_PUBLISH_LOOPBACK": "on", "COMET_CONFIG": ""}
        self.proc = subprocess.Popen([PROGRAM, "--listen", "127.0.0.1:%d" % self.port], env=env,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.02)  # polling for the listener to appear

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def req(self, method, script, query="", body=b"", ctype="text/plain"):
        params = {"REQUEST_METHOD": method, "SCRIPT_NAME": script, "QUERY_STRING": query,
                  "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": ctype,
                  "CONTENT_LENGTH": str(len(body))}
        out = fcgi_request(("127.0.0.1", self.port), params, body)
        head, _, rest = out.partition(b"\r\n\r\n")
        return int(head.split(b"\r\n")[0].split()[1]), rest

    def test_publish_and_held_subscribers(self):
        results = []

        def sub():
            results.append(self.req("GET", "/sub", "channel=x&timeout=15"))
        threads = [threading.Thread(target=sub) for _ in range(20)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, body = self.req("GET", "/stats")
            if json.loads(body)["waiting"] == 20:
                break
        self.assertEqual(json.loads(body)["waiting"], 20)
        st, body = self.req("POST", "/pub", "channel=x", b"hey")
        self.assertEqual(st, 201)
        for t in threads:
            t.join(10)
        self.assertEqual(len(results), 20)
        for st, body in results:
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(body)["messages"][0]["data"], "hey")

    def test_oversized_body_gets_its_413(self):
        # Read and dropped (to a bound) before the answer, so that the
        # client, still sending, is not reset and sees the 413.
        st, body = self.req("POST", "/pub", "channel=x", b"x" * (6 << 20))
        self.assertEqual((st, json.loads(body)["status"]), (413, 413))
        st, body = self.req("POST", "/pub", "channel=x", b"small")
        self.assertEqual(st, 201)

    def test_oversized_parameters_get_their_431(self):
        # A 1 MB query string or Authorization header: more than the
        # program keeps (256 KB of parameters), read to its end and
        # answered with a JSON error, logged once; the next request is
        # served as usual.
        for name, value in (("QUERY_STRING", "channel=x&pad=" + "p" * (1 << 20)),
                            ("HTTP_AUTHORIZATION", "Bearer " + "k" * (1 << 20))):
            with self.subTest(parameter=name):
                params = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "/sub",
                          "QUERY_STRING": "channel=x&timeout=0", "REMOTE_ADDR": "127.0.0.1"}
                params[name] = value
                out = fcgi_request(("127.0.0.1", self.port), params)
                head, _, rest = out.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"Status: 431 "), out[:200])
                self.assertIn(b"application/json", head)
                self.assertEqual(json.loads(rest)["status"], 431)
                st, body = self.req("GET", "/sub", "channel=x&timeout=0")
                self.assertEqual(st, 200, body)

    def test_sigterm_answers_held_requests_and_exits(self):
        results = []

        def sub():
            results.append(self.req("GET", "/sub", "channel=t&timeout=60"))
        threads = [threading.Thread(target=sub) for _ in range(10)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            st, body = self.req("GET", "/stats")
            if json.loads(body)["waiting"] == 10:
                break
        self.assertEqual(json.loads(body)["waiting"], 10)
        start = time.monotonic()
        self.proc.terminate()
        self.proc.wait(5)
        self.assertLess(time.monotonic() - start, 2.5, "exits within 2 s")
        self.assertEqual(self.proc.returncode, 0)
        for t in threads:
            t.join(5)
        self.assertEqual(len(results), 10)
        for st, body in results:
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(body)["messages"], [])


class SettingsFileReread(unittest.TestCase):
    """A key changed in the settings file takes effect in a running program
    (the daemon, as under mod_proxy_fcgi; the same code serves every way of
    running); a bad file keeps the keys in use and is logged once. The log
    goes to a file of its own (COMET_LOG)."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="comet-reread-")
        self.conf = os.path.join(self.dir, "comet-fcgi.conf")
        self.log = os.path.join(self.dir, "comet-fcgi.log")
        self.write("COMET_PUBLISH_KEY = first-key\n")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        env = {"PATH": os.environ.get("PATH", ""), "COMET_DB": os.path.join(self.dir, "c.db"),
               "COMET_CONFIG": self.conf, "COMET_LOG": self.log}
        self.proc = subprocess.Popen([PROGRAM, "--listen", "127.0.0.1:%d" % self.port], env=env)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.02)  # polling for the listener to appear

    def tearDown(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, text):
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.conf)

    def publish(self, key):
        params = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/pub", "QUERY_STRING": "channel=k",
                  "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "text/plain",
                  "CONTENT_LENGTH": "1", "HTTP_AUTHORIZATION": "Bearer " + key}
        out = fcgi_request(("127.0.0.1", self.port), params, b"x")
        return int(out.split(b"\r\n")[0].split()[1])

    def until(self, pred, what, seconds=6):
        deadline = time.monotonic() + seconds
        while not pred():
            if time.monotonic() > deadline:
                self.fail("not within %d s: %s" % (seconds, what))
            time.sleep(0.2)  # the program looks at the file once a second

    def logged(self):
        with open(self.log) as f:
            return f.read()

    def test_key_changed_without_restart(self):
        self.assertEqual(self.publish("first-key"), 201)
        self.write("COMET_PUBLISH_KEY = second-key\nCOMET_TIMEOUT = 5\n")
        self.until(lambda: self.publish("second-key") == 201, "the new key taken")
        self.assertEqual(self.publish("first-key"), 401)
        log = self.logged()
        self.assertIn("now in effect: COMET_PUBLISH_KEY", log)
        self.assertIn("in effect at the next start: COMET_TIMEOUT", log)
        self.assertNotIn("second-key", log, "a key in the log")
        # A bad file: the key in use stays, and the log says so once.
        self.write("COMET_PUBLISH_KEY = third-key\nCOMET_TIMOUT = 5\n")
        # (Looked at from the request path: it takes requests.)
        self.until(lambda: self.publish("second-key") == 201 and "COMET_TIMOUT" in self.logged(),
                   "the bad file logged")
        for _ in range(12):
            self.assertEqual(self.publish("second-key"), 201)
            time.sleep(0.2)
        self.assertEqual(self.publish("third-key"), 401)
        self.assertEqual(self.logged().count("COMET_TIMOUT"), 1, self.logged())
        self.assertEqual(self.proc.poll(), None)


if __name__ == "__main__":
    unittest.main(verbosity=2)
