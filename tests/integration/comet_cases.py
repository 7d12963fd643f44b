"""Integration tests shared by test_lighttpd.py and test_apache.py: what a
user of comet-fcgi sees through a real web server started from the shipped
configuration (see tests/harness/ and SPEC.md)."""

import functools
import itertools
import json
import os
import re
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

_counter = itertools.count(1)


def channel(prefix="c"):
    """A channel name no other test uses."""
    return "%s-%d-%s" % (prefix, next(_counter), uuid.uuid4().hex[:8])


def stop_checked(srv):
    """Stop srv; fail if its logs show a program process crashed meanwhile."""
    crashes = srv.crash_lines()
    srv.stop()
    if crashes:
        raise AssertionError("%s logged a crashed comet-fcgi process:\n%s"
                             % (srv.kind, "\n".join(crashes[:20])))


def sqlite_only(test):
    """A case that reaches past HTTP into the SQLite file (srv.db): skipped
    when the class runs on another backend (BACKEND, see Backend)."""
    @functools.wraps(test)
    def run(self, *args, **kw):
        if self.BACKEND != "sqlite":
            self.skipTest("SQLite only: opens the SQLite file itself")
        return test(self, *args, **kw)
    return run


class Backend:
    """Where the log is. The cases run on a SQLite file of the server's own
    (the default); tests/integration/test_pg.py runs them again on
    PostgreSQL by setting BACKEND and server_args()."""

    BACKEND = "sqlite"

    @classmethod
    def server_args(cls):
        """More keyword arguments for harness.Server (db=... for PostgreSQL)."""
        return {}


class CometCases(Backend):
    """Mixin; subclasses set KIND ("lighttpd"/"apache") and WAITERS."""

    KIND = None
    WAITERS = 20
    # All WAITERS must be held within this many seconds of connecting. Under
    # mod_fcgid that takes the spawn tuning of apache/comet-fcgid.conf: with
    # mod_fcgid's default spawn scores 20 new subscribers need ~11 s.
    WAITING_WITHIN = 8

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server(cls.KIND, **cls.server_args()).start()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.srv)

    # ------------------------------------------------------------ helpers

    def publish(self, ch, data, content_type="text/plain", srv=None, **kw):
        srv = srv or self.srv
        r = srv.publish(ch, data, content_type, **kw)
        self.assertEqual(r.status, 201, r)
        return r.json

    def last_id(self):
        return self.srv.stats()["last_id"]

    def assert_sub_answer(self, r):
        """A well-formed 200 answer of /comet/sub; returns its JSON."""
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        self.assertEqual(r.headers.get("Cache-Control"), "no-store", r)
        d = r.json
        self.assertIsInstance(d, dict, r)
        self.assertIsInstance(d.get("last_id"), int, r)
        self.assertIsInstance(d.get("messages"), list, r)
        self.assertIsInstance(d.get("more"), bool, r)
        for flag in ("gap", "reset"):
            if flag in d:
                self.assertIs(d[flag], True, "%s present but not true: %r" % (flag, r))
        for m in d["messages"]:
            self.assertEqual(set(m), {"id", "channel", "time", "type", "data"}, r)
        return d

    def assert_publish_refused_alone(self, ch, timeout=60, delete=False):
        """Publishes to ch (with delete, DELETEs its messages) while the
        test holds the log's write lock elsewhere: the write is answered 503
        with Retry-After, and every other request meanwhile, before it.
        Returns the 503."""
        result = {}

        def write():
            if delete:
                result["r"] = self.srv.request("DELETE", "/comet/pub", query={"channel": ch},
                                               headers=self.srv.auth_headers(), timeout=timeout)
            else:
                result["r"] = self.srv.publish(ch, "during", timeout=timeout)
        t = threading.Thread(target=write, daemon=True)
        t.start()
        # The publish waits for the lock (5 s) in the commit thread; the
        # process keeps answering everything else meanwhile, so each answer
        # comes while the write still waits. (No fixed line below 5 s: under
        # Apache the first may wait for mod_fcgid to spawn a process, 1 s,
        # and for that process to start; ci35 saw 2.03 s on a quiet machine.)
        for _ in range(3):
            t0 = time.monotonic()
            self.assertEqual(self.srv.get("/comet/stats").status, 200)
            self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
            took = time.monotonic() - t0
            self.assertTrue(t.is_alive() and took < 4.5,
                            "blocked behind the locked write: %.2f s" % took)
        t.join(timeout)
        r = result["r"]
        self.assert_error(r, 503)
        retry = r.headers.get("Retry-After")
        self.assertTrue(retry and retry.strip().isdigit(), r.headers.items())
        return r

    def assert_error(self, r, status):
        """An error answer per SPEC.md: JSON {"error": text, "status": N}."""
        self.assertEqual(r.status, status, r)
        self.assertTrue(r.content_type.startswith("application/json"),
                        "error without JSON Content-Type: %r" % (r,))
        d = r.json
        self.assertIsInstance(d, dict, r)
        self.assertIsInstance(d.get("error"), str, r)
        self.assertTrue(d["error"].strip(), r)
        self.assertEqual(d.get("status"), status, r)

    def assert_still_serving(self, srv=None):
        """After a bad request the server still answers good ones at once."""
        srv = srv or self.srv
        self.assertEqual(srv.crash_lines(), [], "a comet-fcgi process crashed")
        r = srv.get("/comet/stats", headers=srv.auth_headers(), timeout=10)
        self.assertEqual(r.status, 200, r)
        r = srv.sub(channel("alive"), since=0, timeout=0, http_timeout=10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["messages"], [], r)

    # -------------------------------------------------------------- tests

    def test_stats(self):
        r = self.srv.get("/comet/stats")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        d = r.json
        for k in ("version", "uptime", "messages", "last_id", "waiting",
                  "published", "delivered"):
            self.assertIn(k, d, r)
        self.assertEqual(d["version"], "0.1.0")
        for k in ("uptime", "messages", "last_id", "waiting", "published", "delivered"):
            self.assertIsInstance(d[k], int, "%s: %r" % (k, r))
            self.assertGreaterEqual(d[k], 0)
        m = self.publish(channel(), "x")
        self.assertEqual(m["id"], d["last_id"] + 1)
        after = self.srv.stats()
        self.assertEqual(after["last_id"], m["id"])
        self.assertEqual(after["messages"], d["messages"] + 1)
        self.assertGreaterEqual(after["published"], 1)

    def metrics(self):
        r = self.srv.get("/comet/metrics", headers=self.srv.auth_headers())
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.content_type.startswith("text/plain"), r)
        samples = {}
        for line in r.body.decode().splitlines():
            if line.startswith("#"):
                self.assertRegex(line, r"^# (HELP|TYPE) comet_[a-z_]+ ")
                continue
            m = re.match(r'^(comet_[a-z_]+(?:\{[a-z]+="[^"]*"\})?) (\S+)$', line)
            self.assertIsNotNone(m, "not a sample line: %r" % line)
            samples[m.group(1)] = float(m.group(2))
        return samples

    def test_metrics(self):
        # Prometheus text format; the counters are of every process on the
        # database (mod_fcgid: many), like stats.
        before = self.metrics()
        for k in ("comet_waiting", "comet_published_total", "comet_delivered_total",
                  "comet_dropped_total", "comet_storage_errors_total", "comet_writes_queued",
                  'comet_answers_total{status="201"}', 'comet_answers_total{status="404"}',
                  'comet_publish_commit_seconds_bucket{le="+Inf"}',
                  "comet_publish_commit_seconds_count", "comet_publish_commit_seconds_sum"):
            self.assertIn(k, before)
        self.publish(channel(), "x")
        self.assertEqual(self.srv.get("/comet/nothing").status, 404)
        after = self.metrics()
        self.assertEqual(after["comet_published_total"], before["comet_published_total"] + 1)
        self.assertEqual(after["comet_log_last_id"], before["comet_log_last_id"] + 1)
        for k in ('comet_answers_total{status="201"}', 'comet_answers_total{status="404"}',
                  "comet_publish_commit_seconds_count"):
            self.assertGreaterEqual(after[k], before[k] + 1, k)
        # Buckets are cumulative and end at the count.
        buckets = [v for k, v in after.items() if k.startswith("comet_publish_commit_seconds_bucket")]
        self.assertEqual(buckets, sorted(buckets))
        self.assertEqual(buckets[-1], after["comet_publish_commit_seconds_count"])

    def test_publish_answer(self):
        ch = channel()
        t0 = int(time.time() * 1000)
        r = self.srv.publish(ch, "hello")
        t1 = int(time.time() * 1000)
        self.assertEqual(r.status, 201, r)
        self.assertTrue(r.content_type.startswith("application/json"), r)
        self.assertEqual(r.headers.get("Cache-Control"), "no-store", r)
        self.assertEqual(set(r.json), {"id", "channel", "time"}, r)
        self.assertEqual(r.json["channel"], ch)
        self.assertIsInstance(r.json["id"], int)
        self.assertGreater(r.json["id"], 0)
        # Unix milliseconds, taken while the request was in flight
        self.assertTrue(t0 - 2000 <= r.json["time"] <= t1 + 2000, (t0, r.json, t1))
        r2 = self.srv.publish(channel(), "again")
        self.assertEqual(r2.json["id"], r.json["id"] + 1, "ids are one sequence")

    def test_backlog_since_zero(self):
        ch = channel()
        ids = [self.publish(ch, "m%d" % i)["id"] for i in range(3)]
        r = self.srv.sub(ch, since=0)
        d = self.assert_sub_answer(r)
        self.assertLess(r.elapsed, 5, "backlog must be answered at once")
        self.assertEqual([m["id"] for m in d["messages"]], ids)
        self.assertEqual([m["data"] for m in d["messages"]], ["m0", "m1", "m2"])
        for m in d["messages"]:
            self.assertEqual(m["channel"], ch)
            self.assertEqual(m["type"], "text/plain")
            self.assertIsInstance(m["time"], int)
        self.assertEqual(d["last_id"], ids[-1])
        self.assertIs(d["more"], False)

    def test_json_and_form_publish(self):
        ch = channel()
        j = self.publish(ch, json.dumps({"text": "hi", "n": [1, 2]}), "application/json")
        f = self.srv.publish(None, "channel=%s&data=caf%%C3%%A9+au+lait&type=text%%2Fx-note" % ch,
                             "application/x-www-form-urlencoded")
        self.assertEqual(f.status, 201, f)
        self.assertEqual(f.json["channel"], ch)
        d = self.assert_sub_answer(self.srv.sub(ch, since=j["id"] - 1))
        self.assertEqual(len(d["messages"]), 2, d)
        m1, m2 = d["messages"]
        self.assertEqual(m1["type"], "application/json")
        self.assertEqual(m1["data"], {"text": "hi", "n": [1, 2]}, "JSON data is embedded")
        self.assertEqual(m2["data"], "caf\u00e9 au lait")
        self.assertEqual(m2["type"], "text/x-note")

    def test_wakeup_on_publish(self):
        # WAITERS long-polls on connections of their own, read by one
        # selector: a thread each took Python 8-21 s just to schedule 2,000.
        import selectors
        import socket
        n = self.WAITERS
        ch = channel("wake")
        since = self.last_id()
        # A base taken while a stream an earlier test closed is still counted
        # would wait for one subscriber too many (as test_mercure's did in
        # ci): start once none is held. Apache notices a closed stream at the
        # second keep-alive write (COMET_KEEPALIVE, 15 s by default).
        self.srv.wait_for_none_waiting(60,
                                       "the subscribers of the tests before to end")
        req = ("GET /comet/sub?channel=%s&since=%d&timeout=30 HTTP/1.0\r\n"
               "Host: 127.0.0.1\r\n\r\n" % (ch, since)).encode()
        socks, sel = [], selectors.DefaultSelector()
        try:
            t_start = time.monotonic()
            for _ in range(n):
                s = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
                s.sendall(req)
                s.setblocking(False)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, [b"", None])
            # An ASan build starts each process (under mod_fcgid, each
            # subscriber) several times slower: its run checks memory
            # safety, the normal build the timing.
            slow = 3 if harness.sanitized() else 1
            self.srv.wait_for_waiting(n, timeout=25 * slow)
            self.assertLess(time.monotonic() - t_start, self.WAITING_WITHIN * slow,
                            "%d subscribers took too long to be held" % n)
            self.assertEqual(sel.select(0), [],
                             "a subscriber was answered before anything was published")
            t_pub = time.monotonic()
            msg = self.publish(ch, "wake up")
            answered = []
            while sel.get_map() and time.monotonic() < t_pub + 40:
                for key, _ in sel.select(timeout=1):
                    chunk = key.fileobj.recv(65536)
                    if chunk:
                        key.data[0] += chunk
                        continue
                    key.data[1] = time.monotonic() - t_pub
                    answered.append(key.data)
                    sel.unregister(key.fileobj)
            self.assertEqual(len(answered), n, "a subscriber got no answer")
            elapsed = max(a[1] for a in answered)
            self.assertLess(elapsed, 10, "subscribers were not woken promptly")
            for raw, _ in answered:
                head, _, body = raw.partition(b"\r\n\r\n")
                self.assertRegex(head.split(b"\r\n")[0], rb"^HTTP/1\.[01] 200 ", raw[:300])
                self.assertIn(b"Cache-Control: no-store", head)
                d = json.loads(body)
                self.assertEqual([(m["id"], m["data"]) for m in d["messages"]],
                                 [(msg["id"], "wake up")], d)
                self.assertEqual(d["last_id"], msg["id"])
        finally:
            sel.close()
            for s in socks:
                s.close()

    def test_timeout_answer(self):
        ch = channel()
        before = self.last_id()
        r = self.srv.sub(ch, timeout=1)
        d = self.assert_sub_answer(r)
        self.assertEqual(d["messages"], [])
        self.assertGreaterEqual(d["last_id"], before)
        self.assertGreaterEqual(r.elapsed, 0.9, "timeout=1 answered before waiting")
        self.assertLess(r.elapsed, 6, "timeout=1 held far too long")

    def test_timeout_zero_polls(self):
        ch = channel()
        r = self.srv.sub(ch, timeout=0)
        d = self.assert_sub_answer(r)
        self.assertEqual(d["messages"], [])
        self.assertLess(r.elapsed, 3)

    def test_resume_by_since(self):
        ch = channel()
        a = self.publish(ch, "one")
        b = self.publish(ch, "two")
        d = self.assert_sub_answer(self.srv.sub(ch, since=a["id"]))
        self.assertEqual([m["id"] for m in d["messages"]], [b["id"]])
        self.assertEqual(d["last_id"], b["id"])
        # nothing newer: a poll with the returned cursor is empty
        d = self.assert_sub_answer(self.srv.sub(ch, since=d["last_id"], timeout=0))
        self.assertEqual(d["messages"], [])

    def test_resume_by_last_event_id(self):
        ch = channel()
        a = self.publish(ch, "one")
        b = self.publish(ch, "two")
        c = self.publish(ch, "three")
        r = self.srv.sub(ch, headers={"Last-Event-ID": str(a["id"])})
        d = self.assert_sub_answer(r)
        self.assertEqual([m["id"] for m in d["messages"]], [b["id"], c["id"]])
        # an explicit since wins over the header
        r = self.srv.sub(ch, since=b["id"], headers={"Last-Event-ID": str(a["id"])})
        d = self.assert_sub_answer(r)
        self.assertEqual([m["id"] for m in d["messages"]], [c["id"]])

    def test_several_channels_one_cursor(self):
        a, b, c = channel("a"), channel("b"), channel("c")
        start = self.last_id()
        a1 = self.publish(a, "a1")
        b1 = self.publish(b, "b1")
        self.publish(c, "c1")
        a2 = self.publish(a, "a2")
        c2 = self.publish(c, "c2")
        want = [(a1["id"], "a1"), (b1["id"], "b1"), (a2["id"], "a2")]
        for query in ([a, b], ["%s,%s" % (a, b)]):
            d = self.assert_sub_answer(self.srv.sub(query, since=start))
            self.assertEqual([(m["id"], m["data"]) for m in d["messages"]], want, query)
            self.assertEqual([m["channel"] for m in d["messages"]], [a, b, a])
            # the cursor may pass over c's messages, never beyond the log
            self.assertGreaterEqual(d["last_id"], a2["id"])
            self.assertLessEqual(d["last_id"], self.last_id())
            d2 = self.assert_sub_answer(self.srv.sub(query, since=d["last_id"], timeout=0))
            self.assertEqual(d2["messages"], [])
        # only c has news after a2: the answer is empty but last_id moves on
        d = self.assert_sub_answer(self.srv.sub([a, b], since=a2["id"], timeout=0))
        self.assertEqual(d["messages"], [])
        self.assertGreaterEqual(d["last_id"], a2["id"])
        self.assertLessEqual(d["last_id"], self.last_id())
        self.assertGreaterEqual(self.last_id(), c2["id"])

    def test_limit_and_more(self):
        ch = channel()
        start = self.last_id()
        ids = [self.publish(ch, "p%d" % i)["id"] for i in range(5)]
        d = self.assert_sub_answer(self.srv.sub(ch, since=start, limit=2))
        self.assertEqual([m["id"] for m in d["messages"]], ids[:2])
        self.assertIs(d["more"], True)
        self.assertEqual(d["last_id"], ids[1])
        d = self.assert_sub_answer(self.srv.sub(ch, since=d["last_id"], limit=2))
        self.assertEqual([m["id"] for m in d["messages"]], ids[2:4])
        self.assertIs(d["more"], True)
        self.assertEqual(d["last_id"], ids[3])
        d = self.assert_sub_answer(self.srv.sub(ch, since=d["last_id"], limit=2))
        self.assertEqual([m["id"] for m in d["messages"]], ids[4:])
        self.assertIs(d["more"], False)
        self.assertEqual(d["last_id"], ids[4])

    def test_jsonp(self):
        ch = channel()
        m = self.publish(ch, "x")
        r = self.srv.sub(ch, since=m["id"] - 1, extra=[("callback", "app.cb_1")])
        self.assertEqual(r.status, 200, r)
        # SPEC.md: application/javascript. lighttpd 1.4.69 rewrites that
        # Content-Type from a backend to text/javascript (RFC 9239), so accept
        # both JavaScript types, nothing else.
        self.assertTrue(r.content_type.startswith(("application/javascript",
                                                   "text/javascript")), r)
        body = r.body.decode().strip()
        self.assertTrue(body.startswith("app.cb_1(") and body.endswith(");"), body)
        d = json.loads(body[len("app.cb_1("):-2])
        self.assertEqual([x["id"] for x in d["messages"]], [m["id"]])

    def test_channel_info_and_delete(self):
        ch = channel()
        ids = [self.publish(ch, "i%d" % i)["id"] for i in range(3)]
        r = self.srv.get("/comet/pub", query={"channel": ch})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(set(r.json), {"channel", "last_id", "first_id", "messages"}, r)
        self.assertEqual(r.json["channel"], ch)
        self.assertEqual(r.json["messages"], 3)
        self.assertEqual(r.json["first_id"], ids[0])
        self.assertEqual(r.json["last_id"], ids[-1])
        other = channel()
        keep = self.publish(other, "stays")
        r = self.srv.request("DELETE", "/comet/pub", query={"channel": ch})
        self.assertTrue(200 <= r.status < 300, r)
        d = self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
        self.assertEqual(d["messages"], [], "deleted messages still delivered")
        r = self.srv.get("/comet/pub", query={"channel": ch})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["messages"], 0, r)
        d = self.assert_sub_answer(self.srv.sub(other, since=0, timeout=0))
        self.assertEqual([m["id"] for m in d["messages"]], [keep["id"]],
                         "DELETE of one channel touched another")

    def test_event_stream_is_not_buffered(self):
        # The server must pass each event on as it is written (lighttpd:
        # server.stream-response-body; mod_fcgid: FcgidOutputBufferSize 0).
        ch = channel("sse")
        first = self.publish(ch, "before")
        with self.srv.open_stream("/comet/sub", {"channel": ch},
                                  {"Accept": "text/event-stream",
                                   "Last-Event-ID": str(first["id"] - 1)}) as st:
            st.read_head()
            self.assertEqual(st.status, 200)
            self.assertTrue(st.headers.get("Content-Type", "").startswith("text/event-stream"),
                            st.headers.items())
            self.assertEqual(st.headers.get("X-Accel-Buffering"), "no")
            # retry: first, then the backlog from Last-Event-ID
            head = st.read_until(b"\n\n", timeout=5)
            self.assertTrue(head.startswith(b"retry: "), head)
            ev = st.read_until(b"\n\n", timeout=5).decode()
            self.assertIn("id: %d\n" % first["id"], ev)
            data = json.loads(ev.split("data: ", 1)[1].split("\n", 1)[0])
            self.assertEqual((data["id"], data["data"]), (first["id"], "before"))
            # a new message arrives on the open stream at once
            t0 = time.monotonic()
            m = self.publish(ch, "live")
            ev = st.read_until(b"\n\n", timeout=5).decode()
            self.assertLess(time.monotonic() - t0, 5)
            self.assertIn("id: %d\n" % m["id"], ev)
            self.assertIn('"live"', ev)
            self.assertFalse(st.closed, "the stream ended after one event")

    # ------------------------------------------------------------- errors

    BAD_SUB_QUERIES = [
        "",                                     # no channel at all
        "since=0",                              # still no channel
        "channel=",                             # empty name
        "channel=a%20b",                        # space
        "channel=a/b",                          # slash
        "channel=%C3%A4",                       # non-ASCII
        "channel=" + "x" * 129,                 # too long
        "channel=a,,b",                         # empty name in a list
        "channel=" + ",".join("c%d" % i for i in range(33)),  # 33 channels
        "channel=a&since=abc",
        "channel=a&since=-1",
        "channel=a&since=99999999999999999999999",
        "channel=a&since=1.5",
        "channel=a&limit=0",
        "channel=a&limit=abc",
        "channel=a&timeout=abc",
        "channel=a&timeout=-1",
        "channel=a&callback=alert(1)",
        "channel=a&callback=1abc",
        "channel=a&callback=a-b",
        "channel=a&callback=" + "a" * 65,
        "channel=%zz",                          # malformed percent-encoding
        "channel=a%2",
        "channel=a&since=%G1",
    ]

    def test_400_bad_sub_parameters(self):
        for q in self.BAD_SUB_QUERIES:
            with self.subTest(query=q):
                path = "/comet/sub" + ("?" + q if q else "")
                try:
                    r = self.srv.get(path, timeout=8)
                except TimeoutError:
                    self.fail("GET %s was held as a valid long-poll instead of "
                              "answering 400" % path)
                self.assert_error(r, 400)
                self.assertLess(r.elapsed, 5, "a bad request must be answered at once")
                self.assert_still_serving()

    def test_400_bad_publish(self):
        cases = [
            ("/comet/pub", "no channel"),
            ("/comet/pub?channel=a%20b", "bad channel"),
            ("/comet/pub?channel=%zz", "bad percent-encoding"),
        ]
        for path, why in cases:
            with self.subTest(path=path, why=why):
                r = self.srv.post(path, body=b"x", headers={"Content-Type": "text/plain"})
                self.assert_error(r, 400)
                self.assert_still_serving()
        r = self.srv.publish(None, "data=nochannel", "application/x-www-form-urlencoded")
        self.assert_error(r, 400)
        self.assert_still_serving()

    def test_stalled_body_holds_up_no_one(self):
        # Content-Length 100, 10 bytes sent, the connection kept open: every
        # other request is answered as if it were not there.
        import socket
        stalled = socket.create_connection(("127.0.0.1", self.srv.port), timeout=10)
        try:
            head = ("POST /comet/pub?channel=%s HTTP/1.1\r\nHost: x\r\n"
                    "Content-Type: text/plain\r\nContent-Length: 100\r\n" % channel("stall"))
            for k, v in self.srv.auth_headers().items():
                head += "%s: %s\r\n" % (k, v)
            stalled.sendall((head + "\r\n0123456789").encode())
            ch = channel("past-stall")
            for _ in range(3):
                t0 = time.monotonic()
                self.publish(ch, "through", timeout=5)
                r = self.srv.sub(ch, since=0, timeout=0, http_timeout=5)
                self.assertEqual([m["data"] for m in r.json["messages"]][-1:], ["through"])
                self.assertLess(time.monotonic() - t0, 2, "held up behind a stalled body")
        finally:
            stalled.close()

    def test_400_bad_batch(self):
        # SPEC POST: a batch element that is not an object is a 400 naming
        # the element (counted from 0); a string holding JSON text is not
        # read as an object. Nothing of a refused batch is stored.
        ch = channel("batch")
        before = self.last_id()
        cases = [
            ('["x"]', 0),
            ('[""]', 0),
            (json.dumps([{"channel": ch, "data": 1},
                         json.dumps({"channel": ch, "data": 1})]), 1),
            (json.dumps([[{"channel": ch, "data": 1}]]), 0),
            (json.dumps([{"channel": ch, "data": 1}, {"data": 1}]), 1),
            (json.dumps([{"channel": ch}]), 0),
            ("[]", None),
        ]
        for body, element in cases:
            with self.subTest(body=body):
                r = self.srv.publish(None, body, "application/json")
                self.assert_error(r, 400)
                if element is not None:
                    self.assertIn("element %d " % element, r.json["error"], r)
        self.assertEqual(self.last_id(), before, "a refused batch stored something")
        r = self.srv.publish(None, json.dumps([{"channel": ch, "data": "a"},
                                               {"channel": ch, "data": {"b": 1}}]),
                             "application/json")
        self.assertEqual(r.status, 201, r)
        d = self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
        self.assertEqual([m["data"] for m in d["messages"]], ["a", {"b": 1}])
        self.assert_still_serving()

    def test_404_unknown_endpoint(self):
        for path in ("/comet/nope", "/comet/subx", "/comet/sub/extra"):
            with self.subTest(path=path):
                r = self.srv.get(path + "?channel=a")
                self.assert_error(r, 404)
                self.assert_still_serving()

    def test_405_wrong_method(self):
        cases = [("PUT", "/comet/sub?channel=a", "GET"),
                 ("DELETE", "/comet/sub?channel=a", "GET"),
                 ("POST", "/comet/stats", "GET"),
                 ("PUT", "/comet/pub?channel=a", "POST")]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                r = self.srv.request(method, path, body=b"x",
                                     headers={"Content-Type": "text/plain"})
                self.assert_error(r, 405)
                allow = r.headers.get("Allow")
                self.assertTrue(allow, "405 without Allow: %r" % (r,))
                self.assertIn(allowed, [a.strip() for a in allow.split(",")], allow)
                self.assertNotIn(method, [a.strip() for a in allow.split(",")], allow)
                self.assert_still_serving()

    def test_415_invalid_body(self):
        ch = channel()
        cases = [
            (b'{"a":', "application/json", "truncated JSON"),
            (b"{'a': 1}", "application/json", "not JSON"),
            (b"", "application/json", "empty JSON"),
            (b'{["a"]: 1}', "application/json", "a key that is not a string"),
            (b"\xff\xfe", "text/plain", "not UTF-8"),
            (b"caf\xc3", "text/plain", "truncated UTF-8"),
            (b"\xc0\xaf", "text/plain", "overlong UTF-8"),
            (b"\xed\xa0\x80", "text/plain", "UTF-16 surrogate in UTF-8"),
        ]
        for body, ctype, why in cases:
            with self.subTest(why=why):
                r = self.srv.publish(ch, body, ctype)
                self.assert_error(r, 415)
                self.assert_still_serving()
        d = self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
        self.assertEqual(d["messages"], [], "a refused message was stored")

    def test_403_non_loopback_client(self):
        self.skipTest("needs a non-loopback client address; the tests only use "
                      "127.0.0.1, and faking one would change the shipped config")


class MaxMessageCases(Backend):
    """413: a server started with COMET_MAX_MESSAGE=1024."""

    KIND = None

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server(cls.KIND, env={"COMET_MAX_MESSAGE": "1024"},
                                 **cls.server_args()).start()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.srv)

    def test_413_and_limit_boundary(self):
        ch = channel()
        r = self.srv.publish(ch, "x" * 1024)
        self.assertEqual(r.status, 201, "exactly COMET_MAX_MESSAGE bytes is allowed: %r" % (r,))
        for size in (1025, 4096, 200000):
            with self.subTest(size=size):
                r = self.srv.publish(ch, "y" * size)
                CometCases.assert_error(self, r, 413)
                CometCases.assert_still_serving(self)
        r = self.srv.publish(None, "channel=%s&data=%s" % (ch, "z" * 1100),
                             "application/x-www-form-urlencoded")
        CometCases.assert_error(self, r, 413)
        r = self.srv.sub(ch, since=0, timeout=0)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([len(m["data"]) for m in r.json["messages"]], [1024])


class PublishKeyCases(Backend):
    """401: a server started with COMET_PUBLISH_KEY."""

    KIND = None
    KEY = "k3y-for-tests-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server(cls.KIND, env={"COMET_PUBLISH_KEY": cls.KEY},
                                 **cls.server_args()).start()

    @classmethod
    def tearDownClass(cls):
        stop_checked(cls.srv)

    def assert_401(self, r):
        CometCases.assert_error(self, r, 401)
        self.assertTrue(r.headers.get("WWW-Authenticate", "").startswith("Bearer"), r)

    def test_401_without_or_with_wrong_key(self):
        ch = channel()
        bad = [None, "Bearer wrong", "Bearer " + self.KEY[:-1], "Bearer " + self.KEY + "x",
               "Basic " + self.KEY, self.KEY]
        for auth in bad:
            with self.subTest(auth=auth):
                hdrs = {"Authorization": auth} if auth else {}
                self.assert_401(self.srv.publish(ch, "no", auth=False, headers=hdrs))
                self.assert_401(self.srv.get("/comet/stats", headers=hdrs))
                self.assert_401(self.srv.get("/comet/pub", query={"channel": ch}, headers=hdrs))
                self.assert_401(self.srv.request("DELETE", "/comet/pub",
                                                 query={"channel": ch}, headers=hdrs))
        CometCases.assert_still_serving(self)
        d = self.srv.sub(ch, since=0, timeout=0).json
        self.assertEqual(d["messages"], [], "an unauthorised publish was stored")

    def test_201_with_right_key_and_sub_needs_none(self):
        ch = channel()
        r = self.srv.publish(ch, "yes", auth=False,
                             headers={"Authorization": "Bearer " + self.KEY})
        self.assertEqual(r.status, 201, r)
        # subscribing needs no key
        r = self.srv.sub(ch, since=0, timeout=0)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([m["data"] for m in r.json["messages"]], ["yes"])
