#!/usr/bin/env python3
"""Hostile clients: "one client never holds up another" (SPEC.md, Model).

One scenario is played at the same time against comet-fcgi under lighttpd as
shipped (HTTP) and against the standalone daemon (`comet-fcgi --listen`,
spoken to directly over FastCGI as a web server that streams request bodies
would), while probes on channels of their own subscribe, publish, read and
ask for stats throughout and must each be answered within 1 s:

  hostile  200 event streams that never read (small SO_RCVBUF) on a channel
           that gets 100 messages of 60 KB, with COMET_OUTPUT_MAX=262144;
           5 long-polls with since=0, limit=1000 that never read, on a
           channel with a 15 MB backlog (75 MB asked for in all); and 100
           request bodies that stall (Content-Length 100, 10 bytes sent, or
           FCGI_STDIN records that stop short), each to be answered 408
           after COMET_BODY_TIMEOUT (2 s) and its connection closed.
  locked   another process holds the SQLite write lock (BEGIN EXCLUSIVE)
           longer than the busy timeout (5 s): publishes answer 503 with
           Retry-After within 5 + 1 s (not a multiple of it); stats and
           subscribes within 1 s.
  (check)  every acknowledged message is in the log exactly once, in order.
  replaced last, checked on its own: a fresh empty SQLite file is renamed
           over the database (its old -wal/-shm removed): subscribers held
           across it get `reset: true` or 503, never silence; every 2xx
           acknowledgement given afterwards names a message that a later
           read returns, both at once and after a restart.

The resident memory of every comet-fcgi process stays within a bound derived
from the settings (printed). The result of each case is its own test method,
so that one failing case does not hide the others; the scenario runs once.
Clients are plain sockets; readiness is polled (harness.wait_until, the
program's own counts), the clock only measures (and paces the probes)."""

import collections
import json
import os
import resource
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import fcgiproto  # noqa: E402
import harness  # noqa: E402

BODY_TIMEOUT = 2            # COMET_BODY_TIMEOUT, seconds
OUTPUT_MAX = 262144         # COMET_OUTPUT_MAX, bytes
BUSY_TIMEOUT = 5.0          # the storage busy timeout (SPEC: 503 "within it")
# A subscriber whose socket takes nothing for COMET_KEEPALIVE seconds while
# output waits for it is disconnected (what "leaves it unread" means: one
# that reads slowly is sent the rest from the log, and keeps its place).
KEEPALIVE = 2
KEY = "hostile-publish-key"
ENV = {
    "COMET_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "COMET_OUTPUT_MAX": str(OUTPUT_MAX),
    "COMET_KEEPALIVE": str(KEEPALIVE),
    "COMET_PUBLISH_KEY": KEY,
    "COMET_RETAIN": "100000",
}

N_STALLED = 100
N_STREAMS = 200
N_LONGPOLLS = 5
BUSY_MESSAGES = 100
BIG = 60 * 1024             # bytes of one large message
BACKLOG = 250               # large messages on the backlog channel (15 MB)
RCVBUF = 4096               # SO_RCVBUF of the clients that never read
N_LOCKED_PUBS = 4           # concurrent publishes while the database is locked
N_HELD_REPLACED = 5
N_PUBS_REPLACED = 5


# An ASan build (harness.sanitized()) is checked for memory safety under this
# load, with the time limits stretched and no bound on resident memory.
SLOW = 3 if harness.sanitized() else 1
PROBE_LIMIT = 1.0 * SLOW    # every probe answered within this (seconds)
GIVE_UP = 3.0 * SLOW        # a probe still unanswered then counts as unanswered
PACE = 0.1                  # seconds between probe rounds (load shaping)
STALL_SLACK = 1.5 * SLOW    # a 408 comes in [BODY_TIMEOUT - 0.2, BODY_TIMEOUT + this]
REPLACED_WITHIN = 5.0 * SLOW  # held subscribers told of a replacement within this
DRAIN_READ = 5              # seconds to read what dropped subscribers still get
DROP_BOUND = 60.0 * SLOW    # only ends the test: see hostile()

# What one comet-fcgi process may hold beyond its idle size: for every
# subscriber that does not read, what waits for its socket (at most
# COMET_OUTPUT_MAX and one message more, framing included: long-poll answers
# stay within the bound, and a stream that falls further behind is sent the
# rest from the log as it reads); a page of the log being rendered, in up to
# three copies; and 16 MiB for everything else (SQLite caches, the stalled
# bodies and the probes). And a quarter of the subscribers' share for the
# allocator: answers of many sizes made and freed in a burst leave free
# holes inside glibc's heaps, resident until the hub gives them back (per
# 8 MiB freed). Measured with both cores busy (mallinfo2 in a scratch
# build): at most 62 MB in use, up to 22 MB of holes beside it. Without
# this share RSS went past the bound in 2 of about 40 such runs (97.7 MB
# before the give-back, 103.2 MB with it, against 95.6), at most 84 MB in
# the others.
PER_SUBSCRIBER = OUTPUT_MAX + BIG + 4096
SUBSCRIBERS = (N_STREAMS + N_LONGPOLLS) * PER_SUBSCRIBER
RSS_ALLOWANCE = SUBSCRIBERS + SUBSCRIBERS // 4 + 3 * OUTPUT_MAX + (16 << 20)


def now():
    return time.monotonic()





def big_data(tag):
    return (tag + ":").ljust(BIG, "x")


def tag_of(data):
    if isinstance(data, str):
        return data.split(":", 1)[0]
    return None


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


# ------------------------------------------------------------------ clients

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers      # lower-case names
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.json = None

    def __repr__(self):
        return "<%s %r>" % (self.status, self.body[:200])


def parse_head(head, cgi):
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {}
    status = 200
    if not cgi:
        status = int(lines[0].split()[1])
        lines = lines[1:]
    for line in lines:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if cgi and "status" in headers:
        status = int(headers["status"].split()[0])
    return status, headers


class HttpTarget:
    """comet-fcgi behind lighttpd as shipped: HTTP/1.0 requests (the answer
    ends when lighttpd closes), as a browser or curl would send them."""
    name = "lighttpd"
    cgi = False

    def __init__(self, srv):
        self.srv = srv

    @property
    def port(self):
        return self.srv.port

    @property
    def db(self):
        return self.srv.db

    def pids(self):
        return self.srv.program_pids()

    def restart(self):
        self.srv.restart()

    def crash_lines(self):
        return self.srv.crash_lines()

    def logs(self):
        return self.srv.read_logs()

    def encode(self, method, ep, query, body, headers, content_length, end_body):
        path = "/comet/" + ep
        if query:
            path += "?" + urllib.parse.urlencode(query)
        lines = ["%s %s HTTP/1.0" % (method, path), "Host: 127.0.0.1:%d" % self.port]
        lines += ["%s: %s" % kv for kv in headers.items()]
        if method == "POST" or body:
            lines.append("Content-Length: %d" % (len(body) if content_length is None
                                                 else content_length))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class FcgiTarget:
    """The standalone daemon, spoken to over FastCGI the way a web server
    that streams request bodies does (one connection per request)."""
    name = "daemon"
    cgi = True

    def __init__(self, daemon):
        self.d = daemon

    @property
    def port(self):
        return self.d.port

    @property
    def db(self):
        return self.d.db

    def pids(self):
        return [self.d.pid] if self.d.pid else []

    def restart(self):
        self.d.stop()
        self.d.start()

    def crash_lines(self):
        return [l for l in self.logs().splitlines() if harness.CRASH_RE.search(l)]

    def logs(self):
        return self.d.read_log()

    def encode(self, method, ep, query, body, headers, content_length, end_body):
        qs = urllib.parse.urlencode(query) if query else ""
        params = {
            "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": method, "SCRIPT_NAME": "/comet/" + ep, "QUERY_STRING": qs,
            "REQUEST_URI": "/comet/" + ep + ("?" + qs if qs else ""),
            "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
        }
        if method == "POST" or body:
            params["CONTENT_LENGTH"] = str(len(body) if content_length is None
                                           else content_length)
        for k, v in headers.items():
            if k.lower() == "content-type":
                params["CONTENT_TYPE"] = v
            else:
                params["HTTP_" + k.upper().replace("-", "_")] = v
        out = fcgiproto.record(fcgiproto.BEGIN_REQUEST, b"\0\x01\0\0\0\0\0\0")
        out += fcgiproto.record(fcgiproto.PARAMS, b"".join(
            fcgiproto.name_value(k, v) for k, v in params.items()))
        out += fcgiproto.record(fcgiproto.PARAMS, b"")
        for i in range(0, len(body), 65528):
            out += fcgiproto.record(fcgiproto.STDIN, body[i:i + 65528])
        if end_body:
            out += fcgiproto.record(fcgiproto.STDIN, b"")
        return out


class Call:
    """One request on a connection of its own. The answer is read by wait()
    (blocking, with a deadline) or by pump() for many at once. Keeps at
    most `keep` bytes of it; counts all."""

    def __init__(self, target, method, ep, query=None, body=b"", headers=None,
                 rcvbuf=None, content_length=None, end_body=True, keep=1 << 20):
        self.target, self.keep = target, keep
        self.cgi = target.cgi
        self.kept = b""
        self.nbytes = 0         # answer bytes received (FastCGI: STDOUT content)
        self.eof = False        # the program (or lighttpd) closed the connection
        self.ended = False      # FastCGI END_REQUEST seen
        self.done = False
        self.error = None
        self.t_done = None
        self.records = fcgiproto.Records() if self.cgi else None
        self.http_length = None
        self.head_len = 0
        if isinstance(body, str):
            body = body.encode("utf-8")
        data = target.encode(method, ep, query, body, dict(headers or {}),
                             content_length, end_body)
        self.t0 = now()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(10)
        try:
            self.sock.connect(("127.0.0.1", target.port))
            self.sock.sendall(data)
        except OSError as e:
            self.error = e
            self._finish()

    def _finish(self):
        if not self.done:
            self.done = True
            self.t_done = now()

    @property
    def elapsed(self):
        return (self.t_done if self.done else now()) - self.t0

    def take(self, data):
        if not data:
            self.eof = True
            self._finish()
            return
        if not self.cgi:
            self.nbytes += len(data)
            if len(self.kept) < self.keep:
                self.kept += data[:self.keep - len(self.kept)]
            # Complete once Content-Length bytes are in: what the user has
            # then is the whole answer, whether or not lighttpd closes.
            if self.http_length is None and b"\r\n\r\n" in self.kept:
                head, _, _ = self.kept.partition(b"\r\n\r\n")
                self.head_len = len(head) + 4
                try:
                    self.http_length = int(parse_head(head, False)[1].get(
                        "content-length", -1))
                except (ValueError, IndexError):
                    self.http_length = -1
            if self.http_length is not None and self.http_length >= 0 and \
                    self.nbytes - self.head_len >= self.http_length:
                self._finish()
            return
        for rtype, content in self.records.feed(data):
            if rtype == fcgiproto.STDOUT:
                self.nbytes += len(content)
                if len(self.kept) < self.keep:
                    self.kept += content[:self.keep - len(self.kept)]
            elif rtype == fcgiproto.END_REQUEST:
                self.ended = True
                self._finish()

    def read_once(self, blocking_timeout=None):
        try:
            if blocking_timeout is not None:
                self.sock.settimeout(blocking_timeout)
            data = self.sock.recv(262144)
        except (BlockingIOError, socket.timeout):
            return False
        except OSError:
            data = b""
        self.take(data)
        return True

    def wait(self, timeout):
        """The Response once complete, None if not within timeout."""
        deadline = now() + timeout
        while not self.done:
            left = deadline - now()
            if left <= 0 or not self.read_once(left):
                return None
        return self.response()

    def response(self):
        """What has arrived, parsed (None before the header block)."""
        head, sep, body = self.kept.partition(b"\r\n\r\n")
        if not sep:
            return None
        try:
            status, headers = parse_head(head, self.cgi)
        except (ValueError, IndexError):
            return None
        return Response(status, headers, body)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pump(calls, deadline):
    """Reads the answers of many calls at once until each is done or the
    deadline passes."""
    sel = selectors.DefaultSelector()
    try:
        for c in calls:
            if not c.done:
                c.sock.setblocking(False)
                sel.register(c.sock, selectors.EVENT_READ, c)
        while sel.get_map() and now() < deadline:
            for key, _ in sel.select(timeout=min(0.2, max(0.0, deadline - now()))):
                c = key.data
                c.read_once()
                if c.done:
                    sel.unregister(c.sock)
    finally:
        sel.close()
        for c in calls:
            try:
                c.sock.setblocking(True)
            except OSError:
                pass


def auth(extra=None):
    h = {"Authorization": "Bearer " + KEY}
    h.update(extra or {})
    return h


def request(target, method, ep, query=None, body=b"", headers=None, timeout=GIVE_UP, **kw):
    """(Response or None, Call) of one request; the connection is closed."""
    c = Call(target, method, ep, query, body, headers, **kw)
    try:
        return c.wait(timeout), c
    finally:
        c.close()


def publish(target, channel, data, timeout=GIVE_UP):
    return request(target, "POST", "pub", [("channel", channel)], data,
                   auth({"Content-Type": "text/plain"}), timeout)


def stats(target, timeout=GIVE_UP):
    r, _ = request(target, "GET", "stats", headers=auth(), timeout=timeout)
    if r is None or r.status != 200 or not isinstance(r.json, dict):
        raise OSError("stats: %r" % (r,))
    return r.json


def sse_ids(body):
    """Ids of the complete events of an event-stream body."""
    ids = []
    for ev in body.split(b"\n\n")[:-1]:
        for line in ev.split(b"\n"):
            if line.startswith(b"id:"):
                ids.append(int(line[3:].strip()))
    return ids


# ------------------------------------------------------------------ daemon

class Daemon(harness.Daemon):
    """Started once it answers /stats over FastCGI."""

    def __init__(self, env):
        super().__init__(env=env, log_name="daemon.log", prefix="comet-hostile-daemon-")

    def ready(self):
        return stats(FcgiTarget(self), 2)


# ------------------------------------------------------------------ scenario

class State:
    """One target's record of what happened."""

    def __init__(self, target):
        self.t = target
        self.stream_ids = []    # event ids each never-reading stream got
        self.acked = collections.defaultdict(list)   # channel -> [(id, tag)]
        self.lock = threading.Lock()
        self.probes = []        # (phase, kind, latency or None, ok, detail)
        self.fail = collections.defaultdict(list)    # case -> [reason]
        self.info = {}
        self.rss_base = None
        self.rss_max = 0
        self.rss_max_phase = None
        self.cursor = {}

    def ack(self, channel, r, tag):
        with self.lock:
            self.acked[channel].append((r.json["id"], tag))

    def probe(self, phase, kind, call, ok, detail=""):
        lat = call.t_done - call.t0 if call is not None and call.done else None
        self.probes.append((phase, kind, lat, ok, detail))


class Scenario:
    phase = "setup"

    def __init__(self):
        self.stop_probes = threading.Event()
        self.stop_rss = threading.Event()
        self.threads = []

    # ---- probes

    def probe_pubsub(self, st):
        t, ch = st.t, "probe-ps"
        cursor = st.cursor[ch]
        for n in range(100000):
            if self.stop_probes.is_set():
                return
            phase = self.phase
            tag = "ps%d" % n
            sub = Call(t, "GET", "sub", [("channel", ch), ("since", cursor), ("timeout", 10)])
            pub = Call(t, "POST", "pub", [("channel", ch)], tag + ":",
                       auth({"Content-Type": "text/plain"}))
            try:
                r = pub.wait(BUSY_TIMEOUT + 3 if phase == "locked" else GIVE_UP)
                ok = r is not None and (r.status == 201 or phase == "locked" and r.status == 503)
                st.probe(phase, "pub", pub, ok, "answer %r" % (r,))
                if r is None or r.status != 201:
                    continue
                st.ack(ch, r, tag)
                mid = r.json["id"]
                deadline = pub.t_done + GIVE_UP
                got, s = False, None
                for _ in range(3):
                    s = sub.wait(max(0.0, deadline - now()))
                    if s is None or s.status != 200 or not isinstance(s.json, dict):
                        break
                    if any(m.get("id") == mid for m in s.json.get("messages", [])):
                        got = True
                        break
                    # Answered with an earlier message (a publish that was
                    # given up on and committed later): ask on from there.
                    sub.close()
                    sub = Call(t, "GET", "sub", [("channel", ch),
                                                 ("since", s.json.get("last_id", cursor)),
                                                 ("timeout", 10)])
                lat = max(0.0, sub.t_done - pub.t_done) if got else None
                st.probes.append((phase, "sub", lat, got,
                                  "" if got else "held subscriber not sent message %d: %r"
                                  % (mid, s)))
                cursor = mid
            finally:
                sub.close()
                pub.close()
                self.stop_probes.wait(PACE)

    def probe_reader(self, st):
        t = st.t
        for n in range(100000):
            if self.stop_probes.is_set():
                return
            phase = self.phase
            r, c = request(t, "GET", "stats", headers=auth())
            st.probe(phase, "stats", c, r is not None and r.status == 200, "answer %r" % (r,))
            r, c = request(t, "GET", "sub", [("channel", "probe-r"), ("since", 0),
                                             ("timeout", 0)])
            ok = (r is not None and r.status == 200 and isinstance(r.json, dict)
                  and len(r.json.get("messages", [])) == 1)
            st.probe(phase, "read", c, ok, "answer %r" % (r,))
            self.stop_probes.wait(PACE)

    # ---- memory

    def rss_loop(self, states):
        pids = {}
        for n in range(100000):
            if self.stop_rss.is_set():
                return
            for st in states:
                if n % 10 == 0 or st.t.name not in pids:
                    pids[st.t.name] = st.t.pids()
                # The bound is per process: each one serves all the clients.
                rss = max([vmrss(pid) for pid in pids[st.t.name]] or [0])
                if rss > st.rss_max:
                    st.rss_max, st.rss_max_phase = rss, self.phase
            self.stop_rss.wait(0.05)

    def spawn(self, fn, *args):
        th = threading.Thread(target=fn, args=args, daemon=True)
        th.start()
        self.threads.append(th)
        return th


def vmrss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def read_all(target, channel, timeout=15):
    """Every retained message of channel from since=0: [(id, tag)], or
    raises AssertionError saying why not."""
    def page(cursor):
        r, _ = request(target, "GET", "sub", [("channel", channel), ("since", cursor),
                                              ("timeout", 0), ("limit", 1000)],
                       timeout=timeout, keep=64 << 20)
        return r
    return [(m["id"], tag_of(m.get("data"))) for m in harness.read_all(page, what=channel)]


def check_acked(acked, read, sequential=True):
    """Reasons the read log does not hold every acknowledged (id, tag)
    exactly once, in order (acked in the order a single publisher got
    them, when sequential)."""
    why = []
    ids = [i for i, _ in read]
    if ids != sorted(set(ids)):
        why.append("ids repeat or go backwards")
    have = collections.Counter(read)
    lost = [a for a in acked if have[a] == 0]
    twice = [a for a in acked if have[a] > 1]
    if lost:
        why.append("%d acknowledged message(s) missing, e.g. %s" % (len(lost), lost[:5]))
    if twice:
        why.append("%d acknowledged message(s) there more than once, e.g. %s"
                   % (len(twice), twice[:5]))
    order = [i for i, _ in acked]
    if sequential and order != sorted(order):
        why.append("one publisher's acknowledged ids go backwards")
    return why


class Hostile(unittest.TestCase):
    S = None

    @classmethod
    def setUpClass(cls):
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 4 * (N_STALLED + N_STREAMS + N_LONGPOLLS) + 200
        if hard != resource.RLIM_INFINITY and hard < need:
            raise unittest.SkipTest("hard RLIMIT_NOFILE %d < %d" % (hard, need))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        cls.srv = cls.daemon = None
        try:
            cls.srv = harness.Server("lighttpd", env=ENV).start()
            cls.daemon = Daemon(ENV)
            cls.daemon.start()
            cls.states = [State(HttpTarget(cls.srv)), State(FcgiTarget(cls.daemon))]
            cls.t_start = now()
            cls.S = Scenario()
            play(cls.S, cls.states)
            cls.runtime = now() - cls.t_start
            summary(cls.states, cls.runtime)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.S:
            cls.S.stop_probes.set()
            cls.S.stop_rss.set()
        if cls.daemon:
            # Its log is printed with the web servers' when a test failed.
            cls.daemon.destroy()
            cls.daemon = None
        if cls.srv:
            cls.srv.stop()
            cls.srv = None

    def each(self, case, extra=None):
        for st in self.states:
            with self.subTest(target=st.t.name):
                why = st.fail.get(case, [])
                if extra:
                    why = why + extra(st)
                if why:
                    self.fail("%s (%s):\n  - %s" % (case, st.t.name, "\n  - ".join(why)))

    def test_1_stalled_bodies_answered_408(self):
        self.each("stalled")

    def test_2_streams_that_never_read_are_disconnected(self):
        self.each("streams")

    def test_3_long_polls_that_never_read(self):
        self.each("longpolls")

    def test_4_probes_answered_within_1s(self):
        self.each("probes", probe_failures)

    def test_5_memory_within_bound(self):
        if SLOW > 1:
            self.skipTest("an AddressSanitizer build keeps freed memory in quarantine")

        def rss(st):
            bound = st.rss_base + RSS_ALLOWANCE
            if st.rss_max > bound:
                return ["VmRSS reached %.1f MB (in phase %s), above the bound %.1f MB = "
                        "idle %.1f MB + 1.25 x (%d streams + %d long-polls) x "
                        "(COMET_OUTPUT_MAX + a message) + 3 x COMET_OUTPUT_MAX + 16 MiB"
                        % (st.rss_max / 1e6, st.rss_max_phase, bound / 1e6,
                           st.rss_base / 1e6, N_STREAMS, N_LONGPOLLS)]
            return []
        self.each("memory", rss)

    def test_6_locked_database_503_within_busy_timeout(self):
        self.each("locked")

    def test_7_nothing_acknowledged_lost(self):
        self.each("lost")

    def test_8_database_replaced(self):
        self.each("replaced")

    def test_9_no_crash(self):
        self.each("crash", lambda st: ["crash in the logs: %s" % l
                                       for l in st.t.crash_lines()[:5]])


def probe_failures(st):
    """Probes not answered as they must be, grouped by phase and kind: every
    probe answered (and rightly), and 99 % of them within PROBE_LIMIT. A
    single late answer is the machine's as often as the program's (a
    client thread not scheduled, lighttpd busy writing megabytes to the
    streams): the p99 is what the program's turns decide."""
    bad = collections.defaultdict(list)
    timed = [l for p, k, l, ok, _ in st.probes
             if ok and l is not None and not (k == "pub" and p == "locked")]
    p99 = percentile(timed, 99) if timed else 0.0
    for phase, kind, lat, ok, detail in st.probes:
        locked_pub = kind == "pub" and phase == "locked"
        if not ok or lat is None or (locked_pub and lat > BUSY_TIMEOUT + 1):
            bad[(phase, kind)].append((lat, ok, detail))
    if p99 > PROBE_LIMIT:
        bad[("all", "p99 %.2f s" % p99)] = [(l, True, "") for l in timed if l > PROBE_LIMIT]
    out = []
    for (phase, kind), rows in sorted(bad.items()):
        n = sum(1 for p, k, *_ in st.probes if p == phase and k == kind)
        lats = [l for l, _, _ in rows if l is not None]
        unanswered = sum(1 for l, _, _ in rows if l is None)
        wrong = [d for l, ok, d in rows if not ok and l is not None]
        out.append("phase %s, %s: %d of %d late or wrong (%s%d unanswered when given "
                   "up on%s)" % (
                       phase, kind, len(rows), n,
                       "slowest answer %.2f s, " % max(lats) if lats else "", unanswered,
                       ", e.g. " + wrong[0][:200] if wrong else ""))
    if not st.probes:
        out.append("no probe ran")
    if out:
        out.append("(limits: %.0f s; publishes while the database is locked %.0f s; a "
                   "probe is given up on after %.0f s, %.0f s while locked)"
                   % (PROBE_LIMIT, BUSY_TIMEOUT + 1, GIVE_UP, BUSY_TIMEOUT + 3))
    return out


def summary(states, runtime):
    parts = []
    for st in states:
        lats = [l for p, k, l, ok, _ in st.probes
                if l is not None and not (k == "pub" and p == "locked")]
        late = sum(1 for p, k, l, ok, _ in st.probes
                   if not (k == "pub" and p == "locked") and (l is None or l > PROBE_LIMIT))
        parts.append("%s: probes n=%d p50 %.0f ms p99 %.0f ms late %d; max RSS %.1f MB "
                     "(idle %.1f, bound %.1f)" % (
                         st.t.name, len(st.probes), percentile(lats, 50) * 1000,
                         percentile(lats, 99) * 1000, late, st.rss_max / 1e6,
                         (st.rss_base or 0) / 1e6, ((st.rss_base or 0) + RSS_ALLOWANCE) / 1e6))
    sys.stderr.write("\nhostile: %s; %.0f s\n" % ("; ".join(parts), runtime))
    for st in states:
        for k, v in sorted(st.info.items()):
            sys.stderr.write("hostile: %s: %s: %s\n" % (st.t.name, k, v))
    sys.stderr.flush()


# ------------------------------------------------------------------ phases

def in_threads(fn, states):
    """fn(st) for every target at once; an exception is a failure of case
    "crash" (the scenario itself could not go on) rather than a hang."""
    def run(st):
        try:
            fn(st)
        except Exception as e:  # noqa: BLE001 -- reported, not swallowed
            st.fail["crash"].append("%s: %r" % (fn.__name__, e))
    ths = [threading.Thread(target=run, args=(st,)) for st in states]
    for th in ths:
        th.start()
    for th in ths:
        th.join(120)


def play(S, states):
    in_threads(setup, states)
    for st in states:
        st.rss_base = max([vmrss(p) for p in st.t.pids()] or [0])
    S.spawn(S.rss_loop, states)
    for st in states:
        S.spawn(S.probe_pubsub, st)
        S.spawn(S.probe_reader, st)
    # The probes are running before anything hostile starts.
    harness.wait_until(lambda: all(len(st.probes) >= 6 for st in states), 20,
                       "the probes to get going")
    S.phase = "hostile"
    hostile(S, states)
    S.phase = "locked"
    in_threads(locked, states)
    S.phase = "after-lock"
    S.stop_probes.set()
    S.stop_rss.set()
    for th in S.threads:
        th.join(BUSY_TIMEOUT + 10)
    in_threads(check_lost, states)
    S.phase = "replaced"
    in_threads(replaced, states)


def setup(st):
    """Channels the probes use, and the backlog (BACKLOG x 60 KB)."""
    t = st.t
    for ch in ("probe-ps", "probe-r"):
        r, _ = publish(t, ch, "start:")
        if r is None or r.status != 201:
            raise AssertionError("setup publish on %s: %r" % (ch, r))
        st.ack(ch, r, "start")
        st.cursor[ch] = r.json["id"]
    t0 = now()
    for i in range(BACKLOG):
        tag = "backlog%d" % i
        r, _ = publish(t, "backlog", big_data(tag), timeout=10)
        if r is None or r.status != 201:
            raise AssertionError("backlog publish %d: %r" % (i, r))
        st.ack("backlog", r, tag)
    st.info["backlog"] = "%d x %d B published in %.1f s" % (BACKLOG, BIG, now() - t0)


def hostile(S, states):
    calls = {st.t.name: {} for st in states}
    try:
        # 200 event streams that never read, "from now" on the busy channel.
        for st in states:
            calls[st.t.name]["streams"] = [
                Call(st.t, "GET", "sub", [("channel", "busy")],
                     headers={"Accept": "text/event-stream"}, rcvbuf=RCVBUF, keep=8 << 20)
                for _ in range(N_STREAMS)]
        for st in states:
            try:
                harness.wait_until(lambda: stats(st.t, 2)["waiting"] >= N_STREAMS, 15,
                                   "%d held event streams" % N_STREAMS)
            except harness.HarnessError as e:
                st.fail["streams"].append("the streams were never all held: %s" % e)
        # 5 long-polls from since=0 on the backlog, never read.
        for st in states:
            calls[st.t.name]["longpolls"] = [
                Call(st.t, "GET", "sub", [("channel", "backlog"), ("since", 0),
                                          ("limit", 1000)],
                     rcvbuf=RCVBUF, keep=65536)
                for _ in range(N_LONGPOLLS)]
        # 100 stalled bodies each, and the busy channel's 100 x 60 KB.
        for st in states:
            calls[st.t.name]["stalled"] = [
                Call(st.t, "POST", "pub", [("channel", "stalled")], b"0123456789",
                     auth({"Content-Type": "text/plain"}), content_length=100,
                     end_body=False, keep=65536)
                for _ in range(N_STALLED)]
        busy = [threading.Thread(target=busy_publisher, args=(st,)) for st in states]
        for th in busy:
            th.start()
        stalled = [c for st in states for c in calls[st.t.name]["stalled"]]
        pump(stalled, now() + BODY_TIMEOUT + STALL_SLACK + 2)
        for st in states:
            check_stalled(st, calls[st.t.name]["stalled"])
        for c in stalled:
            c.close()
        for th in busy:
            th.join(60)
        # Every stream got far more than COMET_OUTPUT_MAX it did not read:
        # the program lets them go (its count of held subscribers falls),
        # each once its own socket took nothing for COMET_KEEPALIVE. How long
        # until a socket stops taking is not the program's: lighttpd and the
        # kernel buffer what they buffer, and a slower machine fills it
        # later. So the bound is only there to end the test, and the time
        # is reported.
        for st in states:
            t0 = now()
            try:
                harness.wait_until(lambda: stats(st.t, 2 * SLOW)["waiting"] < N_STREAMS // 10,
                                   DROP_BOUND, "the streams that never read to be dropped")
                st.info["dropped after"] = "%.1f s" % (now() - t0)
                dropped = stats(st.t, 2).get("dropped", 0)
                if dropped < N_STREAMS * 9 // 10:
                    st.fail["streams"].append("stats count %d dropped subscribers, not %d"
                                              % (dropped, N_STREAMS))
            except harness.HarnessError as e:
                st.fail["streams"].append(str(e))
        # Every answer to a client that never reads was written in full
        # (into lighttpd, which holds the rest for its client) or given up
        # on: the program has nothing of theirs left to write.
        for st in states:
            try:
                harness.wait_until(lambda: stats(st.t, 2 * SLOW)["draining"] == 0, DROP_BOUND,
                                   "no answer left being written")
            except harness.HarnessError as e:
                st.fail["longpolls"].append(str(e))
        # What the kernel (and lighttpd) had taken before the drop still
        # reaches the client, then the end, but when is the kernel's: a
        # receiver that stalled long with a tiny window is probed at a
        # backed-off interval. Read for a while; what must hold is that the
        # program closed its end (the daemon's sockets are ours to check).
        everything = [c for st in states for k in ("streams", "longpolls")
                      for c in calls[st.t.name][k]]
        pump(everything, now() + DRAIN_READ)
        closed = server_closed()
        for st in states:
            check_streams(st, calls[st.t.name]["streams"], closed)
            check_longpolls(st, calls[st.t.name]["longpolls"], closed)
    finally:
        for per in calls.values():
            for cs in per.values():
                for c in cs:
                    c.close()


def busy_publisher(st):
    deadline = now() + 40
    refused = []
    for i in range(BUSY_MESSAGES):
        if now() > deadline:
            st.fail["streams"].append("only %d of %d busy messages published in 40 s"
                                      % (i, BUSY_MESSAGES))
            break
        tag = "busy%d" % i
        r, c = publish(st.t, "busy", big_data(tag), timeout=5)
        if r is not None and r.status == 201:
            st.ack("busy", r, tag)
        else:
            refused.append(r)
    st.info["busy"] = "%d of %d big messages acknowledged%s" % (
        len(st.acked["busy"]), BUSY_MESSAGES,
        ", refused or unanswered: %r" % refused[:3] if refused else "")


def check_stalled(st, calls):
    lo, hi = BODY_TIMEOUT - 0.2, BODY_TIMEOUT + STALL_SLACK
    by = collections.Counter()
    times = []
    for c in calls:
        r = c.response()
        if c.error:
            by["could not send: %s" % c.error] += 1
        elif r is None:
            by["no answer within %.1f s" % c.elapsed] += 1
        elif r.status != 408:
            by["answered %d (not 408): %r" % (r.status, r.body[:120])] += 1
        else:
            t = c.t_done - c.t0 if c.done else None
            times.append(t if t is not None else c.elapsed)
            if not c.done or (c.cgi and not c.ended):
                by["408 sent but the request not ended (no %s)"
                   % ("END_REQUEST" if c.cgi else "close")] += 1
            elif not lo <= t <= hi:
                by["408 after %.2f s, outside [%.1f, %.1f] s" % (t, lo, hi)] += 1
            elif not isinstance(r.json, dict) or r.json.get("status") != 408:
                by["408 without the JSON error body: %r" % r.body[:120]] += 1
    st.info["stalled"] = "%d of %d answered 408%s" % (
        len(times), len(calls), " in %.2f..%.2f s" % (min(times), max(times)) if times else "")
    for why, n in by.most_common():
        st.fail["stalled"].append("%d of %d stalled bodies: %s" % (n, len(calls), why))


def server_closed():
    """Client ports of the loopback TCP connections whose server end has
    closed (FIN sent, or queued behind data): a client that stalled for
    long with a tiny receive buffer may take minutes to be sent the rest
    (TCP's zero-window probes back off), but the end is decided."""
    out = subprocess.run(["ss", "-tnH", "state", "fin-wait-1", "state", "fin-wait-2",
                          "state", "closing", "state", "last-ack", "state", "time-wait"],
                         capture_output=True, text=True).stdout
    ports = set()
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4:
            ports.add(int(f[-1].rsplit(":", 1)[1]))
    return ports


def check_streams(st, calls, closed):
    by = collections.Counter()
    got = []
    for c in calls:
        r = c.response()
        if c.error:
            by["could not connect: %s" % c.error] += 1
            continue
        if r is None:
            by["no header block at all (%d bytes)" % c.nbytes] += 1
            continue
        if r.status != 200:
            by["answered %d" % r.status] += 1
            continue
        ids = sse_ids(r.body)
        got.append(len(ids))
        st.stream_ids.append(ids)
        # Under lighttpd the program's end is the FastCGI socket, gone
        # with the drop (stats say so); lighttpd goes on writing what it
        # had buffered to its client until that client reads or its write
        # timeout passes, as it should.
        if not c.done and st.t.cgi and c.sock.getsockname()[1] not in closed:
            by["still open after %d s of reading, and not closed by the server "
               "(had %d events, %d MB)" % (DRAIN_READ, len(ids), c.nbytes >> 20)] += 1
    st.info["streams"] = "%d streams; events received before the end: %s" % (
        len(calls), "%d..%d" % (min(got), max(got)) if got else "none")
    for why, n in by.most_common():
        st.fail["streams"].append("%d of %d streams: %s" % (n, len(calls), why))


def check_longpolls(st, calls, closed):
    by = collections.Counter()
    for c in calls:
        r = c.response()
        if c.error:
            by["could not connect: %s" % c.error] += 1
        elif r is None:
            by["no header block (%d bytes)" % c.nbytes] += 1
        elif r.status != 200:
            by["answered %d: %r" % (r.status, r.body[:120])] += 1
        elif not c.done and st.t.cgi and c.sock.getsockname()[1] not in closed:
            by["still open after %d s of reading, and not closed by the server (%d bytes)"
               % (DRAIN_READ, c.nbytes)] += 1
    st.info["longpolls"] = "bytes received: %s" % [c.nbytes for c in calls]
    for why, n in by.most_common():
        st.fail["longpolls"].append("%d of %d: %s" % (n, len(calls), why))


LOCKER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
con.execute("ROLLBACK")
"""


def locked(st):
    """Another process holds the write lock until every publish made
    during it has been answered (or could no longer be in time)."""
    t = st.t
    calls = []
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, t.db], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = read_line(locker.stdout, 10)
        if line != b"locked\n":
            raise AssertionError("the locking process did not lock: %r %r"
                                 % (line, locker.stderr.read1(4096) if locker.poll() is not None else b""))
        t_lock = now()
        calls += [Call(t, "POST", "pub", [("channel", "locked")], "locked%d:" % i,
                       auth({"Content-Type": "text/plain"})) for i in range(N_LOCKED_PUBS)]
        pump(calls, now() + BUSY_TIMEOUT + 3)
        held = now() - t_lock
    finally:
        locker.stdin.close()
        try:
            locker.wait(10)
        except subprocess.TimeoutExpired:
            locker.kill()
            locker.wait(5)
        locker.stdout.close()
        locker.stderr.close()
    times = []
    for i, c in enumerate(calls):
        r = c.response() if c.done else None
        if r is None:
            st.fail["locked"].append("publish %d: no answer within %.1f s (the lock was held "
                                     "%.1f s)" % (i, c.elapsed, held))
            continue
        times.append(c.elapsed)
        if r.status != 503:
            st.fail["locked"].append("publish %d: answered %d (not 503) after %.2f s while "
                                     "the lock was held" % (i, r.status, c.elapsed))
        elif not r.headers.get("retry-after", "").isdigit():
            st.fail["locked"].append("publish %d: 503 without a Retry-After: %r"
                                     % (i, r.headers))
        elif not isinstance(r.json, dict) or r.json.get("status") != 503:
            st.fail["locked"].append("publish %d: 503 without the JSON error: %r"
                                     % (i, r.body[:120]))
        if c.elapsed > BUSY_TIMEOUT + 1:
            st.fail["locked"].append("publish %d: answered after %.2f s, more than the busy "
                                     "timeout %.0f s + 1 s" % (i, c.elapsed, BUSY_TIMEOUT))
        if r.status == 201:
            st.ack("locked", r, "locked%d" % i)
    for c in calls:
        c.close()
    st.info["locked"] = "%d concurrent publishes answered in %s s; lock held %.1f s" % (
        len(calls), ", ".join("%.2f" % x for x in times), held)
    # Fine afterwards.
    r, c = publish(t, "locked", "after:")
    if r is None or r.status != 201 or c.elapsed > PROBE_LIMIT:
        st.fail["locked"].append("publish after the lock: %r in %.2f s" % (r, c.elapsed))
    else:
        st.ack("locked", r, "after")


def read_line(f, timeout):
    sel = selectors.DefaultSelector()
    sel.register(f, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return b""
        return f.readline()
    finally:
        sel.close()


def check_lost(st):
    t = st.t
    for ch, acked in sorted(st.acked.items()):
        try:
            read = read_all(t, ch)
        except AssertionError as e:
            st.fail["lost"].append(str(e))
            continue
        for why in check_acked(acked, read, sequential=ch != "locked"):
            st.fail["lost"].append("%s: %s" % (ch, why))
    # What each never-reading stream got is a run of the busy channel's
    # messages in order, without holes (its EventSource resumes from the
    # last id; anything skipped would be lost to it).
    try:
        log = [i for i, _ in read_all(t, "busy")]
        holes = 0
        for ids in st.stream_ids:
            k = log.index(ids[0]) if ids and ids[0] in log else 0
            if ids and ids != log[k:k + len(ids)]:
                holes += 1
        if holes:
            st.fail["streams"].append(
                "%d of %d streams: the events received are not consecutive messages of "
                "the busy channel in order (skipped or repeated)" % (holes, len(st.stream_ids)))
    except AssertionError as e:
        st.fail["streams"].append(str(e))
    try:
        stalled = read_all(t, "stalled")
        if stalled:
            st.fail["lost"].append("a stalled body was published: %s" % stalled[:3])
    except AssertionError as e:
        st.fail["lost"].append(str(e))
    st.info["rss"] = "max %.1f MB in phase %s" % (st.rss_max / 1e6, st.rss_max_phase)
    st.info["acked"] = "%d messages acknowledged before the replacement" % sum(
        len(v) for v in st.acked.values())


def replaced(st):
    """Last, on its own: a fresh empty database renamed over the log."""
    t = st.t
    fail = st.fail["replaced"]
    r, _ = publish(t, "repl", "before:")
    if r is None or r.status != 201:
        fail.append("publish before the replacement: %r" % (r,))
        return
    cursor = r.json["id"]
    acks = []
    held = [Call(t, "GET", "sub", [("channel", "repl"), ("since", cursor), ("timeout", 30)])
            for _ in range(N_HELD_REPLACED)]
    try:
        try:
            harness.wait_until(lambda: stats(t, 2)["waiting"] >= N_HELD_REPLACED, 10,
                               "%d held subscribers" % N_HELD_REPLACED)
        except harness.HarnessError as e:
            fail.append(str(e))
        fresh = t.db + ".fresh"
        con = sqlite3.connect(fresh)
        con.executescript("CREATE TABLE t(x); DROP TABLE t;")
        con.close()
        os.rename(fresh, t.db)
        for suffix in ("-wal", "-shm"):
            try:
                os.unlink(t.db + suffix)
            except FileNotFoundError:
                pass
        t_replace = now()
        for i in range(N_PUBS_REPLACED):
            for ch in ("repl", "repl2"):
                tag = "after%d" % i
                r, c = publish(t, ch, tag + ":", timeout=BUSY_TIMEOUT + 2)
                if r is not None and 200 <= r.status < 300:
                    acks.append((ch, r.json["id"], tag))
                elif r is None or r.status != 503:
                    fail.append("publish after the replacement: %r after %.2f s (not 2xx "
                                "or 503)" % (r, c.elapsed))
        pump(held, t_replace + REPLACED_WITHIN)
        by = collections.Counter()
        for c in held:
            a = c.response() if c.done else None
            if a is None:
                by["no answer within %.0f s of the replacement" % REPLACED_WITHIN] += 1
            elif a.status == 503:
                pass
            elif a.status != 200 or not isinstance(a.json, dict):
                by["answered %d: %r" % (a.status, a.body[:100])] += 1
            elif a.json.get("reset") is True:
                pass
            elif a.json.get("messages"):
                by["answered with messages %s without reset: true" % [
                    (m.get("id"), m.get("data")) for m in a.json["messages"]][:3]] += 1
            else:
                by["answered without messages and without reset: true (silence)"] += 1
        for why, n in by.most_common():
            fail.append("%d of %d subscribers held across the replacement: %s"
                        % (n, len(held), why))
    finally:
        for c in held:
            c.close()
    st.info["replaced"] = "%d of %d publishes afterwards acknowledged: %s" % (
        len(acks), 2 * N_PUBS_REPLACED, [(ch, i) for ch, i, _ in acks])

    def verify(when):
        for ch in ("repl", "repl2"):
            want = [(i, tag) for c, i, tag in acks if c == ch]
            try:
                read = read_all(t, ch)
            except AssertionError as e:
                fail.append("%s: %s" % (when, e))
                continue
            for why in check_acked(want, read):
                fail.append("%s, %s: acknowledged after the replacement: %s" % (when, ch, why))
    verify("read at once")
    t.restart()
    verify("read after a restart")


if __name__ == "__main__":
    harness.main()
