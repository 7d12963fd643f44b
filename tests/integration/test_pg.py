#!/usr/bin/env python3
"""comet-fcgi on a PostgreSQL log shared by several hosts (SPEC.md: Model,
COMET_DB, COMET_STATE_DIR), against real PostgreSQL clusters the tests start
themselves (harness.PostgreSQL: initdb in a scratch directory, fsync on, a
role `comet` owning its database and nothing more; the program creates its
schema on first use).

A "host" here is one web server with a state directory of its own
(COMET_STATE_DIR: its wake-up word and its local copy of the log); two hosts
share nothing but the PostgreSQL database.

1. The contract cases of test_lighttpd.py and test_apache.py (comet_cases),
   each class on a fresh database. Cases that open the SQLite file itself
   are SQLite-only (comet_cases.sqlite_only) and skip here.
2. Two hosts, lighttpd and Apache (mod_fcgid): a held long-poll and an event
   stream on one are answered by a publish on the other; the cross-host
   wake-up (publish ack -> the held subscriber's answer) is measured.
3. kill -9 of the program on both hosts during concurrent publishing on
   both: every acknowledged message is in the log once, in id order, as
   published, on both hosts; a live follower on each host never goes back
   and misses nothing.
4. PostgreSQL stopped, and killed: publishing answers 503 with Retry-After,
   never 201; long-polls held before stay held and get the first message
   after PostgreSQL is back; nothing is restarted.
5. Failover: a synchronous standby, both hosts on a multi-host URI with
   target_session_attrs=read-write; the primary is killed mid-publishing and
   the standby promoted: publishing resumes by itself, nothing acknowledged
   is lost, ids go on increasing.
6. Each host in a network namespace of its own, reaching PostgreSQL over a
   veth pair; one host cut off the network (packets lost, not refused):
   the other publishes on, the one cut off answers 503 in bounded time and
   keeps serving readers, its held long-poll stays held and gets what the
   other published once the link is back (needs root; skipped otherwise).

Skipped (77) only when PostgreSQL's server programs are not installed
(bootstrap installs them).
"""

import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402
import test_apache  # noqa: E402  (modules, not classes: their tests run there)
import test_lighttpd  # noqa: E402
from comet_cases import MaxMessageCases, PublishKeyCases, channel, stop_checked  # noqa: E402

# ------------------------------------------------------------------ fixture

_shared = None
_shared_lock = threading.Lock()


def shared_cluster():
    """One cluster for the tests that do not stop or kill PostgreSQL; each
    user takes a database of its own from it."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = harness.PostgreSQL(name="shared").start()
        return _shared


def tearDownModule():
    global _shared
    if _shared is not None:
        _shared.destroy()
        _shared = None


class PgBackend:
    """Put first in the bases: the comet_cases classes on PostgreSQL."""

    BACKEND = "postgresql"

    @classmethod
    def server_args(cls):
        pg = shared_cluster()
        return {"db": pg.uri(pg.create_database())}


class PgLockCases:
    """PostgreSQL's counterpart of test_lighttpd's SQLite-only
    test_503_when_database_locked: another session holds the row every
    publish must update (comet_state, see src/pglog.c) longer than the
    program waits."""

    def test_503_when_log_locked(self):
        ch = channel("locked")
        before = self.publish(ch, "before")
        database = urllib.parse.urlsplit(self.srv.db).path.lstrip("/")
        with shared_cluster().session(database) as s:
            s.run("BEGIN; SELECT 1 FROM comet_state FOR UPDATE;")
            self.assert_publish_refused_alone(ch, delete=True)
            r = self.assert_publish_refused_alone(ch)
            # Answered within the program's wait (5 s), not a multiple of it.
            self.assertLess(r.elapsed, 8.0, r)
            report("%s, comet_state locked: publish answered 503 after %.2f s"
                   % (self.KIND, r.elapsed))
            s.run("ROLLBACK;")
        after = self.publish(ch, "after")
        d = self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
        self.assertEqual([(m["id"], m["data"]) for m in d["messages"]],
                         [(before["id"], "before"), (after["id"], "after")])
        self.assert_still_serving()


class PgGroupedWrites(unittest.TestCase):
    """Publishes that reach a host while it waits for comet_state's row
    (another host committing) go into the one transaction it is waiting to
    make, not into one each after it, once the process has had publishes
    queued behind one another (src/commit.c, grow); a process that has not
    sends its publish at once, as one serving a request at a time must."""

    def test_publishes_queued_behind_the_row_share_one_commit(self):
        pg = shared_cluster()
        database = pg.create_database()
        srv = harness.Server("lighttpd", db=pg.uri(database)).start()
        try:
            ch = channel("grouped")
            first = srv.publish(ch, "first")
            self.assertEqual(first.status, 201, first)

            def psql(sql):
                return int(pg.psql(sql, database)[0][0])

            def rev():
                return psql("SELECT rev FROM comet_state")

            def queued(n):
                def check():
                    r = srv.get("/comet/metrics", headers=srv.auth_headers())
                    m = re.search(r"^comet_writes_queued (\d+)$", r.body.decode(), re.M)
                    return m and int(m.group(1)) >= n
                # Within the program's 5 s wait for the row, after which it
                # would refuse them.
                harness.wait_until(check, 4, "%d publishes waiting for the log" % n)

            def waiting_for_row():
                return psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock' AND datname = current_database()") > 0

            answers = []

            def publish(data):
                t = threading.Thread(target=lambda: answers.append(srv.publish(ch, data)))
                t.start()
                return t

            def behind_the_row(first_alone, names):
                before = rev()
                with pg.session(database) as s:
                    s.run("BEGIN; SELECT 1 FROM comet_state FOR UPDATE;")
                    threads = []
                    if first_alone:
                        threads.append(publish(names[0]))
                        harness.wait_until(waiting_for_row, 4, "the publish waiting for the row")
                        names = names[1:]
                    threads += [publish(n) for n in names]
                    queued(len(threads))
                    s.run("ROLLBACK;")
                for t in threads:
                    t.join(30)
                return rev() - before

            # Not crowded yet: the first publish goes at once and waits for
            # the row alone; the four queued behind it are one group after.
            self.assertEqual(behind_the_row(True, ["a0", "a1", "a2", "a3", "a4"]), 2)
            # Now crowded: all five wait for the row together.
            self.assertEqual(behind_the_row(False, ["b0", "b1", "b2", "b3", "b4"]), 1,
                             "publishes queued behind the row: one transaction for all")
            self.assertEqual(len(answers), 10)
            for r in answers:
                self.assertEqual(r.status, 201, r)
            ids = sorted(r.json["id"] for r in answers)
            self.assertEqual(ids, list(range(ids[0], ids[0] + 10)))
            d = srv.sub(ch, since=first.json["id"], timeout=0)
            self.assertEqual(sorted(m["data"] for m in d.json["messages"]),
                             sorted("%s%d" % (p, i) for p in "ab" for i in range(5)))

            # A process stopped once the row is its own holds up the other
            # hosts for a second, not until it runs again: PostgreSQL ends
            # its session, and its publish is refused, not lost unsaid.
            stopped = []
            try:
                with pg.session(database) as s:
                    s.run("BEGIN; SELECT 1 FROM comet_state FOR UPDATE;")
                    t = publish("c0")
                    harness.wait_until(waiting_for_row, 4, "the publish waiting for the row")
                    for pid in srv.program_pids():
                        os.kill(pid, signal.SIGSTOP)
                        stopped.append(pid)
                    s.run("ROLLBACK;")
                t0 = time.monotonic()
                pg.psql("SET lock_timeout = '4s'; SELECT 1 FROM comet_state FOR UPDATE", database)
                held = time.monotonic() - t0
                report("lighttpd, its process stopped holding comet_state's row: another "
                       "writer waited %.2f s" % held)
                self.assertLess(held, 3.0)
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
            t.join(30)
            # Refused when the process had taken the row first (crowded: the
            # b group within CROWDED_MS) and PostgreSQL ended its session; a
            # publish sent whole (10 s later, as under ASan) commits without
            # the process. Either way the log holds it exactly when a 201
            # said so.
            c0 = answers[-1]
            self.assertIn(c0.status, (201, 503), c0)
            self.assertEqual(srv.publish(ch, "after").status, 201)
            d = srv.sub(ch, since=first.json["id"], timeout=0)
            self.assertEqual("c0" in [m["data"] for m in d.json["messages"]],
                             c0.status == 201, (c0, d.json))
        finally:
            stop_checked(srv)


# ------------------------------------------------------------------ helpers

TEXT = {"Content-Type": "text/plain"}


def post(srv, ch, data, timeout=15):
    """One publish on a connection of its own (no process spawned: what is
    timed is the request). Returns a harness.Response."""
    return srv.post("/comet/pub", query={"channel": ch}, body=data,
                    headers=dict(TEXT, **srv.auth_headers()), timeout=timeout)


def read_all(test, srv, channels, limit=1000):
    """Every retained message on channels, paged from since=0 with limit
    and more. Checks on the way that ids strictly increase."""
    def check(r, cursor, out):
        test.assertEqual(r.status, 200, r)
        d = r.json
        test.assertNotIn("gap", d, r)
        test.assertNotIn("reset", d, r)
        for m in d["messages"]:
            test.assertGreater(m["id"], out[-1]["id"] if out else cursor,
                               "%s: ids not strictly increasing: %r" % (srv.kind, r))
        test.assertGreaterEqual(d["last_id"], cursor, r)
    return srv.read_all(channels, limit=limit, check=check, http_timeout=30, max_pages=100000)


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def figures(values):
    return "p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)" % (
        pct(values, 50) * 1000, pct(values, 99) * 1000, max(values) * 1000, len(values))


def report(line):
    sys.stderr.write("FIGURE: %s\n" % line)
    sys.stderr.flush()


# Log lines that a kill -9 of the program by the test itself leaves behind
# (lighttpd: "child signalled: 9"; mod_fcgid: "get unexpected signal 9", and
# the requests that were in flight on the killed process).
KILLED_RE = re.compile(r"signalled: 9\b|signal 9\b|End of script output before headers"
                       r"|FastCGI server closed connection|closed connection|child exited")


def crashes_besides_kills(srv):
    return [line for line in srv.crash_lines() if not KILLED_RE.search(line)]


def held(srv, chans, since, timeout, out, key):
    """Thread body: one long-poll; out[key] = (Response or exception, when)."""
    try:
        r = srv.sub(chans, since=since, timeout=timeout, http_timeout=timeout + 30)
    except Exception as e:      # reported by the test that reads out[key]
        r = e
    out[key] = (r, time.monotonic())


def start_held(srv, chans, since, timeout, out, key):
    """Starts held() and returns once the server holds one subscriber more
    than the fewest it held meanwhile: a subscriber of an earlier test that
    times out while this one is taken must not hide it."""
    low = [srv.stats()["waiting"]]
    t = threading.Thread(target=held, args=(srv, chans, since, timeout, out, key), daemon=True)
    t.start()

    def one_more():
        n = srv.stats()["waiting"]
        low[0] = min(low[0], n)
        return n >= low[0] + 1
    harness.wait_until(one_more, 20, "one more waiting subscriber on %s" % srv.kind)
    t.held_on, t.held_before = srv, low[0]
    return t


def join_held(t, timeout):
    """Joins a start_held() thread, then waits until its server no longer
    counts the answered request as waiting. The gauge drops just after the
    answer is sent, so a client can read its answer first; the next
    start_held() on that server must not take the late drop for the old
    subscriber's place being taken by its own (both within one poll)."""
    t.join(timeout)
    srv, before = t.held_on, t.held_before
    harness.wait_until(lambda: srv.stats()["waiting"] <= before, 20,
                       "the answered subscriber no longer counted on %s" % srv.kind)


# ======================================================= 1. the contract cases

class PgLighttpd(PgBackend, PgLockCases, test_lighttpd.Lighttpd):
    pass


class PgLighttpdClientGone(PgBackend, test_lighttpd.LighttpdClientGone):
    pass


class PgLighttpdMaxMessage(PgBackend, MaxMessageCases, unittest.TestCase):
    KIND = "lighttpd"


class PgLighttpdPublishKey(PgBackend, PublishKeyCases, unittest.TestCase):
    KIND = "lighttpd"


class PgApache(PgBackend, PgLockCases, test_apache.Apache):
    pass


class PgApacheMaxMessage(PgBackend, MaxMessageCases, unittest.TestCase):
    KIND = "apache"


class PgApachePublishKey(PgBackend, PublishKeyCases, unittest.TestCase):
    KIND = "apache"


# ============================================================ 2. two hosts

class TwoHosts(unittest.TestCase):
    """lighttpd and Apache, nothing shared but the PostgreSQL database."""

    ROUNDS = 50

    @classmethod
    def setUpClass(cls):
        pg = shared_cluster()
        uri = pg.uri(pg.create_database())
        cls.lt = harness.Server("lighttpd", db=uri).start()
        try:
            cls.ap = harness.Server("apache", db=uri).start()
        except BaseException:
            cls.lt.stop()
            raise
        assert cls.lt.state_dir != cls.ap.state_dir

    @classmethod
    def tearDownClass(cls):
        try:
            stop_checked(cls.lt)
        finally:
            stop_checked(cls.ap)

    def pairs(self):
        return [(self.lt, self.ap), (self.ap, self.lt)]

    def test_same_log_on_both_hosts(self):
        ch = channel("both")
        acks = []
        for i in range(6):
            srv = (self.lt, self.ap)[i % 2]
            r = post(srv, ch, "m%d via %s" % (i, srv.kind))
            self.assertEqual(r.status, 201, r)
            acks.append(r.json)
        ids = [a["id"] for a in acks]
        self.assertEqual(ids, sorted(set(ids)), "one sequence across hosts")
        want = [(a["id"], "m%d via %s" % (i, ("lighttpd", "apache")[i % 2]))
                for i, a in enumerate(acks)]
        for srv in (self.lt, self.ap):
            with self.subTest(host=srv.kind):
                # Every host answers from the same log at once.
                got = harness.wait_until(
                    lambda: (lambda ms: ms if len(ms) == len(want) else None)(
                        read_all(self, srv, ch)), 5, "the log on %s" % srv.kind)
                self.assertEqual([(m["id"], m["data"]) for m in got], want)
                info = srv.get("/comet/pub", query={"channel": ch}, headers=srv.auth_headers())
                self.assertEqual(info.status, 200, info)
                self.assertEqual((info.json["first_id"], info.json["last_id"],
                                  info.json["messages"]), (ids[0], ids[-1], 6), info)

    def test_held_long_poll_answered_from_other_host(self):
        for src, dst in self.pairs():
            with self.subTest(publish_on=src.kind, held_on=dst.kind):
                ch = channel("x")
                first = post(src, ch, "before")
                self.assertEqual(first.status, 201, first)
                out = {}
                t = start_held(dst, ch, first.json["id"], 30, out, "r")
                self.assertNotIn("r", out, "answered before anything was published")
                r = post(src, ch, "from %s" % src.kind)
                self.assertEqual(r.status, 201, r)
                t.join(40)
                ans, _ = out["r"]
                self.assertIsInstance(ans, harness.Response, ans)
                self.assertEqual(ans.status, 200, ans)
                self.assertEqual([(m["id"], m["channel"], m["data"]) for m in ans.json["messages"]],
                                 [(r.json["id"], ch, "from %s" % src.kind)], ans)
                self.assertEqual(ans.json["last_id"], r.json["id"], ans)

    def test_event_stream_gets_other_hosts_publish(self):
        for src, dst in self.pairs():
            with self.subTest(publish_on=src.kind, stream_on=dst.kind):
                ch = channel("sse")
                with dst.open_stream("/comet/sub", {"channel": ch},
                                     {"Accept": "text/event-stream"}) as st:
                    st.read_head()
                    self.assertEqual(st.status, 200)
                    self.assertTrue(st.headers.get("Content-Type", "").startswith(
                        "text/event-stream"), st.headers.items())
                    self.assertTrue(st.read_until(b"\n\n", timeout=5).startswith(b"retry: "))
                    dst.wait_for_waiting(1)
                    acks = [post(src, ch, "ev%d" % i) for i in range(3)]
                    for a in acks:
                        self.assertEqual(a.status, 201, a)
                    for a in acks:
                        ev = st.read_until(b"\n\n", timeout=10).decode()
                        while ev.startswith("event: ping"):
                            ev = st.read_until(b"\n\n", timeout=10).decode()
                        self.assertIn("id: %d\n" % a.json["id"], ev)
                        data = json.loads(ev.split("data: ", 1)[1].split("\n", 1)[0])
                        self.assertEqual((data["id"], data["channel"]), (a.json["id"], ch))

    def test_cursor_ahead_of_the_shared_log_is_reset(self):
        """SPEC "reset": a cursor above the shared log's last id (from a log
        since made anew) is told reset on every host, with the log's real
        last id, by a poll, a held long-poll and an event stream alike;
        never held, never its own cursor echoed back."""
        ch = channel("reset")
        last = post(self.lt, ch, "one").json["id"]
        last = post(self.ap, ch, "two").json["id"]
        for srv in (self.lt, self.ap):
            for timeout in (0, 20):
                with self.subTest(host=srv.kind, timeout=timeout):
                    t0 = time.monotonic()
                    r = srv.sub([ch], since=999999999, timeout=timeout)
                    self.assertEqual(r.status, 200, r)
                    self.assertTrue(r.json.get("reset"), r.json)
                    self.assertGreaterEqual(r.json["last_id"], last, r.json)
                    self.assertLess(r.json["last_id"], 999999999, r.json)
                    self.assertLess(time.monotonic() - t0, 5, "held instead of reset")
            with self.subTest(host=srv.kind, stream=True):
                with srv.open_stream("/comet/sub", {"channel": ch},
                                     {"Accept": "text/event-stream",
                                      "Last-Event-ID": "999999999"}) as st:
                    st.read_head()
                    self.assertEqual(st.status, 200)
                    self.assertTrue(st.read_until(b"\n\n", timeout=5).startswith(b"retry: "))
                    ev = st.read_until(b"\n\n", timeout=10).decode()
                    self.assertTrue(ev.startswith("event: reset\n"), ev)
                    data = json.loads(ev.split("data: ", 1)[1].split("\n", 1)[0])
                    self.assertGreaterEqual(data["last_id"], last, ev)
        # A cursor the other host handed out is served at once, never reset.
        for src, dst in self.pairs():
            with self.subTest(cursor_from=src.kind, asked_of=dst.kind):
                a = post(src, ch, "fresh on %s" % src.kind).json["id"]
                r = dst.sub([ch], since=a - 1, timeout=20)
                self.assertEqual(r.status, 200, r)
                self.assertFalse(r.json.get("reset"), r.json)
                self.assertEqual([m["id"] for m in r.json["messages"]], [a], r.json)

    def test_cross_host_wakeup_latency(self):
        """ROUNDS in each direction: a long-poll held on one host, a publish
        on the other; from the publish's 201 to the held request's answer."""
        lat = {}
        for src, dst in self.pairs():
            ch = channel("lat")
            since = post(src, ch, "start").json["id"]
            from_ack, from_send = [], []
            for i in range(self.ROUNDS):
                out = {}
                t = start_held(dst, ch, since, 30, out, "r")
                t0 = time.monotonic()
                r = post(src, ch, "round %d" % i)
                t_ack = time.monotonic()
                self.assertEqual(r.status, 201, r)
                join_held(t, 40)
                ans, t_ans = out["r"]
                self.assertIsInstance(ans, harness.Response, ans)
                self.assertEqual(ans.status, 200, ans)
                self.assertEqual([m["id"] for m in ans.json["messages"]], [r.json["id"]], ans)
                since = r.json["id"]
                # The answer may come before the publisher has read its 201.
                from_ack.append(max(0.0, t_ans - t_ack))
                from_send.append(t_ans - t0)
            lat[(src.kind, dst.kind)] = (from_ack, from_send)
            report("cross-host wake-up, publish on %s -> held on %s: from the 201: %s; "
                   "from sending the publish: %s" % (src.kind, dst.kind, figures(from_ack),
                                                     figures(from_send)))
        for (s, d), (from_ack, _) in lat.items():
            self.assertLess(pct(from_ack, 99), 1.0, "%s -> %s: %s" % (s, d, figures(from_ack)))


class PresenceTwoHosts(unittest.TestCase):
    """Presence on a shared log: a member held on one host is on the channel
    for the other (GET presence, the Pusher users API), one join however
    many hosts hold its tabs, and its leave after the grace once the last
    tab closed, in the log of both; a Pusher event's socket_id is not
    delivered back on either host."""

    def setUp(self):
        import test_pusher
        self.tp = test_pusher
        pg = shared_cluster()
        uri = pg.uri(pg.create_database())
        # Apache's tab is seen closed at a write (the ping at the latest):
        # 2 s pings keep that inside the leave's wait, on a slow machine too.
        env = dict(test_pusher.ENV, COMET_KEEPALIVE="2")
        self.a = harness.Server("lighttpd", db=uri, env=env).start()
        try:
            self.b = harness.Server("apache", db=uri, env=env).start()
        except BaseException:
            self.a.stop()
            raise

    def tearDown(self):
        try:
            stop_checked(self.a)
        finally:
            stop_checked(self.b)

    def events(self, srv, ch):
        r = srv.sub([ch], since=0, timeout=0, headers=srv.auth_headers())
        self.assertEqual(r.status, 200, r)
        return [(m["data"]["event"], m["data"]["member"]["id"]) for m in r.json["messages"]
                if m["type"] == "application/x-comet-presence+json"]

    def members(self, srv, ch):
        r = srv.get("/comet/presence", query=[("channel", ch)], headers=srv.auth_headers())
        self.assertEqual(r.status, 200, r)
        return [m["id"] for m in r.json["members"]]

    def test_member_on_one_host_is_on_both(self):
        ch = "presence-shared"
        ann = self.tp.presence_params("1.1", ch, "ann", {"n": 1})
        tabs = []
        for srv in (self.a, self.b):
            st = srv.open_stream("/comet/sub", [("channel", ch)] + ann,
                                 {"Accept": "text/event-stream"})
            st.read_head()
            self.assertEqual(st.status, 200)
            tabs.append(st)
        for srv in (self.a, self.b):
            with self.subTest(host=srv.kind):
                harness.wait_until(lambda: self.members(srv, ch) == ["ann"], 10,
                                   "ann on %s" % srv.kind)
                harness.wait_until(lambda: self.events(srv, ch) == [("join", "ann")], 10,
                                   "ann's one join in %s's copy" % srv.kind)
        # socket_id exclusion holds across hosts too.
        self.tp.sdk(self.a, "out(await answer(await p.trigger(%s, 'x', {}, "
                    "{socket_id: '1.1'})));" % json.dumps(ch))
        got = self.b.sub([ch], since=0, timeout=0, extra=ann).json["messages"]
        self.assertEqual([m for m in got if m["type"] == "application/x-pusher-event+json"], [])
        for st in tabs:
            st.close()
        for srv in (self.a, self.b):
            with self.subTest(host=srv.kind):
                harness.wait_until(lambda: self.events(srv, ch) == [("join", "ann"),
                                                                    ("leave", "ann")],
                                   self.tp.GRACE + 20, "ann's leave on %s" % srv.kind)
                self.assertEqual(self.members(srv, ch), [])


# ============================================== 2b. a fresh database, at once

class FreshDatabase(unittest.TestCase):
    """The program makes its schema on first use. Both hosts are started on
    an empty database at once, and each is sent a burst of publishes the
    moment it is up: every one is acknowledged, in one gap-free sequence
    (the connections of each process and of both hosts race to make the
    schema, and race it with the first publishes). A race: a round shows
    a fault only sometimes, hence several rounds."""

    ROUNDS = 8

    def burst(self, hosts, n=8):
        results = []
        lock = threading.Lock()

        def one(h, i):
            try:
                r = post(h, "fresh", "%s %d" % (h.kind, i))
            except Exception as e:
                r = e
            with lock:
                results.append((h.kind, r))
        threads = [threading.Thread(target=one, args=(h, i)) for i in range(n) for h in hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    def test_first_publishes_on_a_fresh_database(self):
        pg = shared_cluster()
        for rnd in range(self.ROUNDS):
            with self.subTest(round=rnd):
                uri = pg.uri(pg.create_database())
                hosts, results, errors = [], [], []
                lock = threading.Lock()

                def host(kind):
                    # Up, then at once a burst: both hosts at the same time.
                    try:
                        h = harness.Server(kind, db=uri)
                        with lock:
                            hosts.append(h)
                        h.start()
                        r = self.burst([h])
                        with lock:
                            results.extend(r)
                    except Exception as e:
                        errors.append(e)
                try:
                    threads = [threading.Thread(target=host, args=(k,))
                               for k in ("lighttpd", "apache")]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(120)
                    self.assertEqual(errors, [])
                    bad = [(k, r) for k, r in results
                           if not isinstance(r, harness.Response) or r.status != 201]
                    self.assertEqual(bad, [], "first publishes on a fresh database")
                    ids = sorted(r.json["id"] for _, r in results)
                    self.assertEqual(ids, list(range(1, len(ids) + 1)))
                    for h in hosts:
                        harness.wait_until(
                            lambda: [m["id"] for m in read_all(self, h, "fresh")] == ids, 10,
                            "every message on %s" % h.kind)
                finally:
                    for h in hosts:
                        h.stop()


# ================================================= 3. kill -9 during publishing

class Publishers(harness.Publishers):
    """THREADS publishers per host until stop; every 201 recorded with what
    was sent. Each body is unique, so a message in the log names its
    request."""

    THREADS = 3
    CHANNELS = ("order-a", "order-b", "order-c")

    def __init__(self, hosts, seed=7):
        super().__init__(hosts, self.CHANNELS, threads=self.THREADS, seed=seed, timeout=20,
                         pause=0.02)


class Follower:
    """A live subscriber on one host: long-polls with since=<last_id> on
    every channel until it has passed `target`. It must never see an id
    that is not above the last one it saw."""

    def __init__(self, srv, channels):
        self.srv, self.channels = srv, list(channels)
        self.seen = []           # ids in the order received
        self.messages = {}
        self.cursor = 0
        self.errors = []         # what went wrong at the HTTP level (allowed while killing)
        self.violations = []     # what must never happen
        self.target = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        deadline = None
        while True:
            if self.target is not None:
                if deadline is None:
                    deadline = time.monotonic() + 60
                if self.cursor >= self.target or time.monotonic() > deadline:
                    break
            try:
                r = self.srv.sub(self.channels, since=self.cursor, timeout=3, limit=1000,
                                 http_timeout=30)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
                self.done.wait(0.05)
                continue
            if r.status != 200 or not isinstance(r.json, dict):
                self.errors.append("%d %r" % (r.status, r.body[:200]))
                self.done.wait(0.05)
                continue
            d = r.json
            if d.get("gap") or d.get("reset"):
                self.violations.append("since=%d: %r" % (self.cursor, r))
            for m in d["messages"]:
                last = self.seen[-1] if self.seen else self.cursor
                if m["id"] <= max(last, self.cursor):
                    self.violations.append("since=%d: id %d after %d: %r"
                                           % (self.cursor, m["id"], last, r))
                self.seen.append(m["id"])
                self.messages[m["id"]] = (m["channel"], m["data"])
            if d["last_id"] < self.cursor:
                self.violations.append("last_id went back from %d: %r" % (self.cursor, r))
            else:
                self.cursor = d["last_id"]
        self.done.set()

    def start(self):
        self.thread.start()
        return self

    def finish(self, target):
        self.target = target
        self.thread.join(90)


class CrashOrdering(unittest.TestCase):
    RUN_SECONDS = 8
    KILL_ROUNDS = 6

    def test_kill_9_on_both_hosts_during_publishing(self):
        pg = shared_cluster()
        uri = pg.uri(pg.create_database())
        env = {"COMET_RETAIN": "1000000"}
        hosts = []
        try:
            hosts.append(harness.Server("lighttpd", db=uri, env=env).start())
            hosts.append(harness.Server("apache", db=uri, env=env).start())
            chans = Publishers.CHANNELS
            followers = [Follower(h, chans).start() for h in hosts]
            kills = {h.kind: 0 for h in hosts}
            rounds_with_kills = {h.kind: 0 for h in hosts}
            with Publishers(hosts) as pub:
                harness.wait_until(lambda: pub.count() >= 20, 30, "the first publishes")
                t_end = time.monotonic() + self.RUN_SECONDS
                for i in range(self.KILL_ROUNDS):
                    # Pace the kills over the run (load shaping, not
                    # synchronisation): a few on each host.
                    pub.stop.wait(max(0.0, (t_end - time.monotonic()) / (self.KILL_ROUNDS - i + 1)))
                    h = hosts[i % 2]
                    n = 0
                    # lighttpd starts its one process again only on a
                    # request after its disable time: wait for one to kill.
                    pids = harness.wait_until(h.program_pids, 20,
                                              "a comet-fcgi process on %s" % h.kind)
                    for pid in pids:
                        try:
                            os.kill(pid, signal.SIGKILL)
                            n += 1
                        except ProcessLookupError:
                            pass
                    kills[h.kind] += n
                    rounds_with_kills[h.kind] += n > 0
                # Publishing goes on after the last kill, on both hosts.
                t_last = time.monotonic()
                for h in hosts:
                    harness.wait_until(
                        lambda: any(e[0] > t_last and e[3] == 201 and e[2] == h.kind
                                    for e in list(pub.events)),
                        30, "a publish on %s acknowledged after the last kill" % h.kind)
                pub.stop.wait(max(0.0, t_end - time.monotonic()))
            acked = dict(pub.acked)
            report("kill -9 on two hosts: %d kills (%s), %d acknowledged, answers %s"
                   % (sum(kills.values()), kills, len(acked),
                      {str(k): v for k, v in sorted(pub.statuses.items(), key=str)}))
            self.assertEqual(pub.dup_acks, [], "an id was acknowledged to two publishes")
            for h in hosts:
                self.assertEqual(rounds_with_kills[h.kind], self.KILL_ROUNDS // 2,
                                 "%s: a round found nothing to kill: %r" % (h.kind, kills))
            self.assertGreater(len(acked), 100, "too few publishes got through to mean anything")
            for status in pub.statuses:
                self.assertIn(status, (201, 500, 502, 503, None),
                              "unexpected answer to a publish: %r" % (pub.statuses,))
            top = max(acked)
            for f in followers:
                f.finish(top)
            for h in hosts:
                with self.subTest(reader=h.kind):
                    log = read_all(self, h, list(chans))
                    ids = [m["id"] for m in log]
                    self.assertEqual(len(ids), len(set(ids)), "an id appears twice")
                    by_id = {m["id"]: (m["channel"], m["data"]) for m in log}
                    missing = sorted(set(acked) - set(by_id))
                    self.assertEqual(missing, [], "acknowledged messages missing on %s "
                                     "(%d of %d)" % (h.kind, len(missing), len(acked)))
                    wrong = {i: (acked[i], by_id[i]) for i in acked if by_id[i] != acked[i]}
                    self.assertEqual(wrong, {}, "messages differ from what was published")
                    datas = [m["data"] for m in log]
                    self.assertEqual(len(datas), len(set(datas)), "a publish stored twice")
                    strangers = [m for m in log if pub.sent.get(m["data"]) != m["channel"]]
                    self.assertEqual(strangers, [], "messages nobody published")
            for f in followers:
                with self.subTest(follower=f.srv.kind):
                    self.assertTrue(f.done.is_set(), "the follower on %s did not reach id %d "
                                    "(at %d)" % (f.srv.kind, top, f.cursor))
                    self.assertEqual(f.violations, [], "follower on %s" % f.srv.kind)
                    missed = sorted(set(acked) - set(f.seen))
                    self.assertEqual(missed, [], "the follower on %s passed over acknowledged "
                                     "messages" % f.srv.kind)
                    for i in acked:
                        self.assertEqual(f.messages[i], acked[i])
                    report("follower on %s: %d messages, %d failed requests while killing"
                           % (f.srv.kind, len(f.seen), len(f.errors)))
            for h in hosts:
                self.assertEqual(crashes_besides_kills(h), [], "%s: a crash the test did not "
                                 "cause" % h.kind)
        finally:
            for h in hosts:
                h.stop()


# ============================================================= 4. PG outage

class Outage(unittest.TestCase):
    """PostgreSQL goes away under both hosts, then comes back; nothing else
    is touched. Each test on a cluster and hosts of its own, so that what
    one outage leaves behind (connections it broke) is not another's."""

    def setUp(self):
        self.pg = harness.PostgreSQL(name="outage").start()
        uri = self.pg.uri()
        self.lt = self.ap = None
        try:
            self.lt = harness.Server("lighttpd", db=uri).start()
            self.ap = harness.Server("apache", db=uri).start()
        except BaseException:
            self.tearDown()
            raise

    def tearDown(self):
        try:
            for srv in (self.lt, self.ap):
                if srv:
                    stop_checked(srv)
        finally:
            self.pg.destroy()

    def outage(self, down):
        hosts = (self.lt, self.ap)
        ch = channel("outage")
        before = {}
        for h in hosts:
            r = post(h, ch, "before, via %s" % h.kind)
            self.assertEqual(r.status, 201, r)
            before[h.kind] = r.json["id"]
        since = max(before.values())
        lt_pids = self.lt.program_pids()
        web_pids = [h.proc.pid for h in hosts]
        out, threads = {}, []
        for h in hosts:
            threads.append(start_held(h, ch, since, 120, out, h.kind))
        t_down = time.monotonic()
        down()
        refused = {}
        for h in hosts:
            for i in range(3):
                r = post(h, ch, "during %d, via %s" % (i, h.kind), timeout=30)
                self.assertEqual(r.status, 503, "%s, PostgreSQL down: %r" % (h.kind, r))
                self.assertEqual(r.json and r.json.get("status"), 503, r)
                retry = r.headers.get("Retry-After")
                self.assertTrue(retry and retry.strip().isdigit(),
                                "503 without Retry-After: %r" % (r.headers.items(),))
                refused.setdefault(h.kind, []).append(r.elapsed)
        report("PostgreSQL %s: publishes answered 503 in %s"
               % (down.__name__, {k: ["%.0f ms" % (x * 1000) for x in v]
                                  for k, v in refused.items()}))
        for h in hosts:
            self.assertNotIn(h.kind, out, "a held long-poll was answered while PostgreSQL "
                             "was down: %r" % (out.get(h.kind),))
        self.pg.start()
        t_up = time.monotonic()
        # Publishing comes back by itself; until then, only 503.
        acks = {}
        for h in hosts:
            def try_publish():
                r = post(h, ch, "after, via %s" % h.kind, timeout=30)
                self.assertIn(r.status, (201, 503), "%s recovering: %r" % (h.kind, r))
                return r if r.status == 201 else None
            acks[h.kind] = harness.wait_until(try_publish, 30,
                                              "publishing on %s to resume" % h.kind)
            report("PostgreSQL %s: publishing on %s resumed %.2f s after PostgreSQL was up "
                   "(%.1f s outage)" % (down.__name__, h.kind, time.monotonic() - t_up,
                                        t_up - t_down))
        first_after = min(a.json["id"] for a in acks.values())
        for t in threads:
            t.join(60)
        for h in hosts:
            ans, _ = out[h.kind]
            self.assertIsInstance(ans, harness.Response, ans)
            self.assertEqual(ans.status, 200, "the long-poll held on %s during the outage: %r"
                             % (h.kind, ans))
            msgs = ans.json["messages"]
            self.assertTrue(msgs, ans)
            self.assertEqual(msgs[0]["id"], first_after, ans)
            self.assertTrue(msgs[0]["data"].startswith("after, via "), ans)
        # Every 201 in the log on both hosts (each host's copy follows the
        # other's publishes within moments); none of the refused ones.
        want = sorted(list(before.values()) + [a.json["id"] for a in acks.values()])
        for h in hosts:
            log = harness.wait_until(
                lambda: (lambda ms: ms if [m["id"] for m in ms] == want else None)(
                    read_all(self, h, ch)),
                10, "every acknowledged id on %s (%r)" % (h.kind, want))
            self.assertFalse([m for m in log if m["data"].startswith("during")],
                             "a publish answered 503 was stored")
        # Nothing was restarted: the web servers are the same, and so is
        # lighttpd's one program process.
        self.assertEqual([h.proc.pid for h in hosts], web_pids)
        self.assertEqual(self.lt.program_pids(), lt_pids)
        # What the program logged about the outage names no password.
        for h in hosts:
            self.assertNotIn(self.pg.password, h.read_logs(),
                             "%s: the database password is in the logs" % h.kind)

    def test_1_postgresql_stopped(self):
        def stopped():
            self.pg.stop()
        self.outage(stopped)

    def test_2_postgresql_killed(self):
        def killed():
            self.pg.kill()
        self.outage(killed)

    def test_3_restart_while_nobody_publishes(self):
        """PostgreSQL restarted (a minor upgrade, a reboot of its host)
        while the hosts are quiet: once it is back, publishing works at once,
        on every process; a connection that the restart closed while it was
        idle is not a reason for a 503 (SPEC: 503 means storage unavailable;
        it is not)."""
        ch = channel("quiet")
        hosts = (self.lt, self.ap)
        # Writer connections open on several processes of each host.
        for h in hosts:
            self.publish_burst(h, ch, "before")
        for restart in (self.pg.stop, self.pg.kill):
            with self.subTest(restart=restart.__name__):
                restart()
                self.pg.start()
                for h in hosts:
                    results = self.publish_burst(h, ch, "after " + restart.__name__)
                    self.assertEqual([r.status for r in results], [201] * len(results),
                                     "%s: publishes after PostgreSQL was back: %r"
                                     % (h.kind, [r for r in results if r.status != 201]))

    def publish_burst(self, h, ch, what, n=12):
        """n publishes at once, so that several processes of the host
        (mod_fcgid: one request per process) take part."""
        results = [None] * n

        def one(i):
            try:
                results[i] = post(h, ch, "%s %d via %s" % (what, i, h.kind))
            except Exception as e:
                results[i] = e
        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        for r in results:
            self.assertIsInstance(r, harness.Response, r)
        return results


# ============================================================= 5. failover

class Failover(unittest.TestCase):
    def test_kill_primary_promote_standby(self):
        primary = harness.PostgreSQL(name="primary").start()
        standby = None
        hosts = []
        try:
            standby = primary.standby(name="standby")
            uri = primary.uri(hosts=[("127.0.0.1", primary.port), ("127.0.0.1", standby.port)],
                              target_session_attrs="read-write")
            env = {"COMET_RETAIN": "1000000"}
            hosts.append(harness.Server("lighttpd", db=uri, env=env).start())
            hosts.append(harness.Server("apache", db=uri, env=env).start())
            with Publishers(hosts, seed=11) as pub:
                harness.wait_until(lambda: pub.count() >= 100, 30, "publishes before failover")
                t_kill = time.monotonic()
                primary.kill()
                # Every process of the primary is gone from here on (a
                # publish sent while kill() was at work may still have been
                # committed, and replicated first: it is acknowledged).
                t_dead = time.monotonic()
                before_max = max(e[4] for e in list(pub.events) if e[3] == 201)
                # Publishes are tried, on both hosts, with no primary at all.
                for h in hosts:
                    harness.wait_until(
                        lambda: sum(1 for e in list(pub.events) if e[0] > t_dead
                                    and e[2] == h.kind) >= 3,
                        30, "publishes on %s answered with no primary" % h.kind)
                t_promote = time.monotonic()
                standby.promote()
                t_promoted = time.monotonic()
                for h in hosts:
                    harness.wait_until(
                        lambda: any(e[0] > t_promoted and e[3] == 201 and e[2] == h.kind
                                    for e in list(pub.events)),
                        30, "publishing on %s to resume after the promotion" % h.kind)
                n = pub.count()
                harness.wait_until(lambda: pub.count() >= n + 50, 30, "publishes after failover")
            events = list(pub.events)
            acked = dict(pub.acked)
            for h in hosts:
                first = min(e[1] for e in events if e[3] == 201 and e[2] == h.kind
                            and e[0] > t_dead)
                report("failover: publishing on %s resumed %.2f s after pg_ctl promote "
                       "(promotion took %.2f s; %.2f s without a primary before it)"
                       % (h.kind, first - t_promote, t_promoted - t_promote,
                          t_promote - t_dead))
            report("failover: %d acknowledged, answers %s" % (
                len(acked), {str(k): v for k, v in sorted(pub.statuses.items(), key=str)}))
            self.assertEqual(pub.dup_acks, [], "an id was acknowledged to two publishes")
            # No 201 for a publish sent while there was no primary, and
            # only 503 (storage unavailable) for those.
            orphans = [e for e in events if t_dead < e[0] and e[1] < t_promote]
            self.assertTrue(orphans)
            self.assertEqual([e for e in orphans if e[3] != 503], [],
                             "with no writable primary, publishes answer 503")
            # Ids go on increasing after the failover.
            after = [e[4] for e in events if e[3] == 201 and e[0] > t_promoted]
            self.assertTrue(after)
            self.assertGreater(min(after), before_max)
            # Each host's copy takes the last publishes of the other from
            # its follower, a few milliseconds after their 201.
            top = max(acked)
            for h in hosts:
                harness.wait_until(
                    lambda: h.sub(list(Publishers.CHANNELS), since=top - 1,
                                  timeout=0).json["last_id"] >= top,
                    10, "%s's copy to reach id %d" % (h.kind, top))
            for h in hosts:
                with self.subTest(reader=h.kind):
                    log = read_all(self, h, list(Publishers.CHANNELS))
                    by_id = {m["id"]: (m["channel"], m["data"]) for m in log}
                    self.assertEqual(len(by_id), len(log), "an id appears twice")
                    missing = sorted(set(acked) - set(by_id))
                    self.assertEqual(missing, [], "acknowledged messages lost in the failover "
                                     "(%d of %d) on %s" % (len(missing), len(acked), h.kind))
                    self.assertEqual({i: by_id[i] for i in acked}, acked)
            for h in hosts:
                self.assertEqual(h.crash_lines(), [], "%s: a program process crashed" % h.kind)
        finally:
            for h in hosts:
                h.stop()
            if standby:
                standby.destroy()
            primary.destroy()


# ================================================== 6. hosts in namespaces

class NetnsHosts(unittest.TestCase):
    """Each host in a network namespace of its own (harness.NetNS), reaching
    PostgreSQL over a veth pair as another machine would: lighttpd in one,
    Apache in the other, PostgreSQL in the root namespace listening on the
    two veth addresses. Then a host is cut off the network (its link down:
    packets lost, not refused) and comes back."""

    @classmethod
    def setUpClass(cls):
        why = harness.NetNS.unavailable()
        if why:
            raise unittest.SkipTest(why)
        cls.ns, cls.hosts, cls.pg = [], [], None
        try:
            cls.ns = [harness.NetNS("lt").create(), harness.NetNS("ap").create()]
            cls.pg = harness.PostgreSQL(name="netns",
                                        listen=[n.root_addr for n in cls.ns]).start()
            for kind, ns in zip(("lighttpd", "apache"), cls.ns):
                uri = cls.pg.uri(hosts=[(ns.root_addr, cls.pg.port)])
                cls.hosts.append(harness.Server(kind, db=uri, netns=ns).start())
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for h in cls.hosts:
                stop_checked(h)
        finally:
            try:
                if cls.pg:
                    cls.pg.destroy()
            finally:
                for n in cls.ns:
                    n.destroy()

    def test_1_hosts_are_apart(self):
        for h, ns in zip(self.hosts, self.ns):
            with self.subTest(host=h.kind):
                want = os.stat("/run/netns/%s" % ns.name).st_ino
                pids = h.program_pids()
                self.assertTrue(pids)
                for pid in pids:
                    self.assertEqual(os.stat("/proc/%d/ns/net" % pid).st_ino, want,
                                     "%s: program %d not in its namespace" % (h.kind, pid))
                r = post(h, channel("apart"), "hello from %s" % h.kind)
                self.assertEqual(r.status, 201, r)
        clients = {row[0] for row in self.pg.psql(
            "SELECT DISTINCT host(client_addr) FROM pg_stat_activity WHERE usename = 'comet'",
            database="postgres")}
        self.assertEqual(clients, {ns.addr for ns in self.ns},
                         "PostgreSQL is reached from each namespace's address, from nowhere else")
        for src, dst in (self.hosts, self.hosts[::-1]):
            with self.subTest(publish_on=src.kind, held_on=dst.kind):
                ch = channel("nsx")
                out = {}
                t = start_held(dst, ch, None, 30, out, "r")
                r = post(src, ch, "across")
                self.assertEqual(r.status, 201, r)
                t.join(40)
                ans, _ = out["r"]
                self.assertIsInstance(ans, harness.Response, ans)
                self.assertEqual([(m["id"], m["data"]) for m in ans.json["messages"]],
                                 [(r.json["id"], "across")], ans)

    def test_2_host_cut_off(self):
        for i in (0, 1):
            with self.subTest(cut_off=self.hosts[i].kind):
                self.cut_off(self.hosts[i], self.hosts[1 - i], self.ns[i])

    def cut_off(self, h, other, ns):
        ch = channel("cut")
        first = post(h, ch, "before, via %s" % h.kind)
        self.assertEqual(first.status, 201, first)
        out = {}
        held_t = start_held(h, ch, first.json["id"], 120, out, "r")
        ns.link(False)
        t_cut = time.monotonic()
        try:
            # The other host goes on as if nothing happened.
            other_acks = []
            for k in range(3):
                r = post(other, ch, "during %d, via %s" % (k, other.kind))
                self.assertEqual(r.status, 201, "%s while %s is cut off: %r"
                                 % (other.kind, h.kind, r))
                other_acks.append(r.json["id"])
            # The host cut off refuses publishes within a bounded time, and
            # keeps answering readers from its copy meanwhile.
            pending = {}
            t = threading.Thread(target=lambda: pending.update(
                r=post(h, ch, "refused, via %s" % h.kind, timeout=60)), daemon=True)
            t.start()
            for _ in range(3):
                r = h.sub(ch, since=0, timeout=0, http_timeout=10)
                self.assertEqual(r.status, 200, r)
                self.assertLess(r.elapsed, 2.0, "a poll on %s waited behind a publish to "
                                "a database it cannot reach" % h.kind)
                self.assertEqual(r.json["messages"][0]["id"], first.json["id"], r)
            t.join(60)
            refused = [pending["r"]]
            for k in range(2):
                refused.append(post(h, ch, "refused %d, via %s" % (k, h.kind), timeout=60))
            for r in refused:
                self.assertEqual(r.status, 503, "%s cut off from PostgreSQL: %r" % (h.kind, r))
                retry = r.headers.get("Retry-After")
                self.assertTrue(retry and retry.strip().isdigit(), r.headers.items())
            report("%s cut off: publishes answered 503 after %s"
                   % (h.kind, ", ".join("%.2f s" % r.elapsed for r in refused)))
            for r in refused:
                self.assertLess(r.elapsed, 10.0, "503 only after %.1f s" % r.elapsed)
            self.assertNotIn("r", out, "the long-poll held on %s was answered while it was "
                             "cut off: %r" % (h.kind, out.get("r")))
        finally:
            ns.link(True)
        t_heal = time.monotonic()
        attempts = []

        def publish_again():
            r = post(h, ch, "after, via %s" % h.kind, timeout=60)
            attempts.append("%d in %.2f s" % (r.status, r.elapsed))
            self.assertIn(r.status, (201, 503), r)
            return r if r.status == 201 else None
        after = harness.wait_until(publish_again, 60, "publishing on %s to resume" % h.kind)
        t_pub = time.monotonic()
        held_t.join(60)
        ans, t_ans = out["r"]
        report("%s back on the network: publishes answered %s" % (h.kind, ", ".join(attempts)))
        self.assertIsInstance(ans, harness.Response, ans)
        self.assertEqual(ans.status, 200, ans)
        self.assertEqual(ans.json["messages"][0]["id"], other_acks[0],
                         "the long-poll held on %s gets what %s published meanwhile: %r"
                         % (h.kind, other.kind, ans))
        report("%s cut off for %.1f s: its held long-poll answered %.2f s after the link "
               "came back, its publishing resumed after %.2f s"
               % (h.kind, t_heal - t_cut, t_ans - t_heal, t_pub - t_heal))
        want = [first.json["id"]] + other_acks + [after.json["id"]]
        for srv in (h, other):
            harness.wait_until(
                lambda: [m["id"] for m in read_all(self, srv, ch)] == want, 20,
                "every acknowledged message on %s" % srv.kind)


if __name__ == "__main__":
    if not harness.pg_bindir():
        print("SKIP: PostgreSQL's server programs (initdb, postgres) are not installed "
              "(apt-get install postgresql)")
        sys.exit(77)
    harness.main()
