#!/usr/bin/env python3
"""Laravel Broadcasting's server side against the real thing: the Pusher
Channels HTTP API as npm's `pusher` package (Pusher's own server SDK for
Node, which nobody here wrote) calls it, under lighttpd and under Apache
with mod_fcgid as shipped (the snippets mount /apps/ at the site's root);
requests signed by hand where tampering is the point; subscribers that
authorize private and presence channels the way Laravel's
/broadcasting/auth answers; presence joins and leaves across processes
(mod_fcgid holds each subscriber in a process of its own) including a
process killed with SIGKILL.

Readiness is polled (the program's own counts); nothing sleeps to
synchronise."""

import hashlib
import hmac
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

APP_ID, KEY, SECRET = "4711", "comet-app-key", "comet-app-secret-0123456789"
GRACE = 2
ENV = {"COMET_PUSHER_APP_ID": APP_ID, "COMET_PUSHER_KEY": KEY,
       "COMET_PUSHER_SECRET": SECRET, "COMET_PRESENCE_GRACE": str(GRACE),
       "COMET_TOKEN_KEY": "comet-token-key", "COMET_PUBLISH_KEY": "comet-publish-key"}
NODE_DIR = os.path.join(harness.TESTS_DIR, "browser")


def have_pusher_sdk():
    """npm's pusher from tests/browser/package-lock.json, installed with
    `npm ci` when it is not there yet (as tests/browser/run.py does)."""
    where = os.path.join(NODE_DIR, "node_modules", "pusher")
    if not os.path.isdir(where) and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund"],
                       cwd=NODE_DIR, timeout=600)
    return os.path.isdir(where)


def sdk(srv, script, secret=SECRET):
    """Runs script (an async function body with `p`, the SDK's client) with
    node; returns what it printed as JSON lines."""
    js = ("const Pusher = require('pusher');\n"
          "const p = new Pusher({appId: %s, key: %s, secret: %s, host: '127.0.0.1', "
          "port: '%d', useTLS: false});\n"
          "const out = (x) => console.log(JSON.stringify(x));\n"
          "async function answer(r) { return {status: r.status, body: await r.json()}; }\n"
          "(async () => { try {\n%s\n} catch (e) { out({error: e.status || String(e), "
          "body: e.body}); } })();\n"
          % (json.dumps(APP_ID), json.dumps(KEY), json.dumps(secret), srv.port, script))
    r = subprocess.run(["node", "-e", js], cwd=NODE_DIR, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("node: %s %s" % (r.stdout, r.stderr))
    return [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]


def signed(method, path, body=b"", params=None, timestamp=None, secret=SECRET, order=None):
    """A query string signed as Pusher's libraries sign (path from /apps/);
    order, when given, is the order the parameters are sent in."""
    q = dict(params or {})
    q.update({"auth_key": KEY, "auth_timestamp": str(timestamp or int(time.time())),
              "auth_version": "1.0"})
    if body:
        q["body_md5"] = hashlib.md5(body).hexdigest()
    to_sign = "&".join("%s=%s" % (k, q[k]) for k in sorted(q))
    q["auth_signature"] = hmac.new(secret.encode(), ("%s\n%s\n%s" % (method, path, to_sign))
                                   .encode(), hashlib.sha256).hexdigest()
    keys = order(list(q)) if order else list(q)
    return "&".join("%s=%s" % (k, urllib.parse.quote(q[k], safe="")) for k in keys)


def laravel_auth(socket_id, channel, channel_data=None):
    """What Laravel's PusherBroadcaster answers at /broadcasting/auth."""
    msg = "%s:%s" % (socket_id, channel) + (":" + channel_data if channel_data else "")
    return KEY + ":" + hmac.new(SECRET.encode(), msg.encode(), hashlib.sha256).hexdigest()


def presence_params(socket_id, channel, user_id, info):
    cd = json.dumps({"user_id": user_id, "user_info": info})
    return [("socket_id", socket_id), ("auth", laravel_auth(socket_id, channel, cd)),
            ("channel_data", cd)]


class Held(threading.Thread):
    """A long-poll held in a thread of its own; .answer once it ends."""

    def __init__(self, srv, channels, since, extra=(), timeout=20):
        super().__init__(daemon=True)
        self.args = (srv, channels, since, list(extra), timeout)
        self.answer = None
        self.start()

    def run(self):
        srv, channels, since, extra, timeout = self.args
        self.answer = srv.sub(channels, since=since, timeout=timeout, extra=extra)


class PusherApi:
    KIND = None

    @classmethod
    def setUpClass(cls):
        if not shutil.which("node"):
            raise unittest.SkipTest("node is not installed (make check installs it)")
        if not have_pusher_sdk():
            raise AssertionError("npm ci in tests/browser did not install npm's pusher")
        # A short keep-alive: Apache learns of a closed stream only from a
        # failed write, the second keep-alive after the close.
        cls.srv = harness.Server(cls.KIND, env=dict(ENV, COMET_KEEPALIVE="1")).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        # hold() counts from a base: one taken while a stream the test
        # before closed was still counted waited for one too many (ci36).
        self.srv.wait_for_none_waiting(25,
                                       "the subscribers of the test before to end")

    def last_id(self):
        return self.srv.stats()["last_id"]

    def hold(self, channels, extra=(), n=1):
        before = self.srv.stats()["waiting"]
        held = [Held(self.srv, channels, self.last_id(), extra) for _ in range(n)]
        self.srv.wait_for_waiting(before + n)
        return held

    def test_trigger_reaches_held_subscribers(self):
        ch = "orders.%d" % time.monotonic_ns()
        (h,) = self.hold([ch])
        (r,) = sdk(self.srv, "out(await answer(await p.trigger(%s, 'App\\\\Events\\\\Shipped', "
                   "{order: 42})));" % json.dumps(ch))
        self.assertEqual(r, {"status": 200, "body": {}})
        h.join(20)
        ms = h.answer.json["messages"]
        self.assertEqual([(m["channel"], m["type"], m["data"]) for m in ms],
                         [(ch, "application/x-pusher-event+json",
                           {"event": "App\\Events\\Shipped", "data": '{"order":42}'})])

    def test_many_channels_and_batches_are_one_sequence(self):
        a, b = "many-a.%d" % time.monotonic_ns(), "many-b.%d" % time.monotonic_ns()
        since = self.last_id()
        rows = sdk(self.srv, "out(await answer(await p.trigger([%s, %s], 'ev', 'text')));"
                   "out(await answer(await p.triggerBatch([{channel: %s, name: 'x', data: {n: 1}},"
                   " {channel: %s, name: 'y', data: {n: 2}}])));"
                   % (json.dumps(a), json.dumps(b), json.dumps(a), json.dumps(b)))
        self.assertEqual([r["status"] for r in rows], [200, 200], rows)
        got = self.srv.sub([a, b], since=since, timeout=0).json["messages"]
        self.assertEqual([(m["channel"], m["data"]["event"], m["data"]["data"]) for m in got],
                         [(a, "ev", "text"), (b, "ev", "text"), (a, "x", '{"n":1}'),
                          (b, "y", '{"n":2}')])
        ids = [m["id"] for m in got]
        self.assertEqual(ids, list(range(ids[0], ids[0] + 4)), "one sequence, in order")

    def test_socket_id_is_not_delivered_back(self):
        ch = "toothers.%d" % time.monotonic_ns()
        since = self.last_id()
        (mine,) = self.hold([ch], extra=[("socket_id", "1234.5678")])
        (other,) = self.hold([ch], extra=[("socket_id", "99.1")])
        sdk(self.srv, "out(await answer(await p.trigger(%s, 'said', {t: 'mine'}, "
            "{socket_id: '1234.5678'})));" % json.dumps(ch))
        other.join(20)
        self.assertEqual([m["data"]["data"] for m in other.answer.json["messages"]],
                         ['{"t":"mine"}'])
        sdk(self.srv, "out(await answer(await p.trigger(%s, 'said', {t: 'theirs'})));"
            % json.dumps(ch))
        mine.join(20)
        self.assertEqual([m["data"]["data"] for m in mine.answer.json["messages"]],
                         ['{"t":"theirs"}'], "the sender's own event came back to it")
        # Nor when it reads the log later.
        got = self.srv.sub([ch], since=since, timeout=0,
                           extra=[("socket_id", "1234.5678")]).json["messages"]
        self.assertEqual([m["data"]["data"] for m in got], ['{"t":"theirs"}'])

    def test_tampering_and_replay_refused(self):
        path = "/apps/%s/events" % APP_ID
        body = json.dumps({"name": "x", "channel": "tamper", "data": "{}"}).encode()
        headers = {"Content-Type": "application/json"}

        def post(query, data=body):
            return self.srv.request("POST", path + "?" + query, body=data, headers=headers)
        ok = post(signed("POST", path, body))
        self.assertEqual((ok.status, ok.json), (200, {}), ok)
        # The parameters sent in another order: the signature sorts them.
        r = post(signed("POST", path, body, order=lambda k: list(reversed(k))))
        self.assertEqual(r.status, 200, r)
        for what, query, data in (
                ("a wrong secret", signed("POST", path, body, secret="guess"), body),
                ("a changed body", signed("POST", path, body), body.replace(b"x", b"y")),
                ("an old timestamp", signed("POST", path, body,
                                            timestamp=int(time.time()) - 601), body),
                ("a changed parameter", signed("POST", path, body).replace(
                    "auth_version=1.0", "auth_version=1.0&extra=1"), body),
                ("no signature at all", "auth_key=" + KEY, body)):
            with self.subTest(what):
                r = post(query, data)
                self.assertEqual(r.status, 401, r)
                self.assertEqual(r.json["status"], 401, r)
        r = self.srv.request("GET", "/apps/%s/events?%s" % (APP_ID, signed("GET", path)))
        self.assertEqual(r.status, 405, r)
        r = self.srv.request("POST", "/apps/999/events?" + signed("POST", "/apps/999/events", body),
                             body=body, headers=headers)
        self.assertEqual(r.status, 404, r)
        (r,) = sdk(self.srv, "out(await answer(await p.trigger('c', 'x', {})));", secret="nope")
        self.assertEqual(r["error"], 401, r)

    def test_private_channel_needs_laravels_auth(self):
        ch = "private-App.Models.User.%d" % (time.monotonic_ns() % 1000000)
        sid = "5.6"
        r = self.srv.sub([ch], timeout=0, extra=[("socket_id", sid),
                                                 ("auth", laravel_auth(sid, ch))])
        self.assertEqual(r.status, 200, r)
        for extra in ([("socket_id", sid), ("auth", laravel_auth("7.8", ch))],
                      [("socket_id", sid), ("auth", KEY + ":" + "0" * 64)], []):
            r = self.srv.sub([ch], timeout=0, extra=extra)
            self.assertEqual(r.status, 403, r)

    def test_presence_members_and_the_users_api(self):
        ch = "presence-room.%d" % (time.monotonic_ns() % 1000000)
        extra = presence_params("10.1", ch, 7, {"name": "Ann"})
        # Two tabs of one member, streaming (a stream stays open when the
        # member's own join arrives on it).
        tabs = [self.srv.open_stream("/comet/sub", [("channel", ch)] + extra,
                                     {"Accept": "text/event-stream"}) for _ in range(2)]
        for t in tabs:
            t.read_head()
            self.assertEqual(t.status, 200)
        members = harness.wait_until(
            lambda: (lambda r: r.json["members"] if r.json["members"] else None)(
                self.srv.get("/comet/presence", query=[("channel", ch)] + extra)),
            10, "Ann on %s" % ch)
        self.assertEqual(members, [{"id": "7", "info": {"name": "Ann"}}])
        harness.wait_until(lambda: self.srv.get(
            "/comet/presence", query=[("channel", ch)],
            headers=self.srv.auth_headers()).json["members"], 10, "the key sees Ann too")
        rows = harness.wait_until(lambda: (lambda rows: rows if rows[2]["body"].get(
            "subscription_count") == 2 else None)(sdk(
                self.srv,
                "out(await answer(await p.get({path: '/channels', params: "
                "{filter_by_prefix: 'presence-', info: 'user_count'}})));"
                "out(await answer(await p.get({path: '/channels/%s/users'})));"
                "out(await answer(await p.get({path: '/channels/%s', params: "
                "{info: 'user_count,subscription_count'}})));" % (ch, ch))),
            10, "both tabs counted")
        info = self.srv.get("/comet/pub", query={"channel": ch}, headers=self.srv.auth_headers())
        self.assertEqual((info.json["members"], info.json["subscriptions"]), (1, 2), info)
        metrics = self.srv.get("/comet/metrics", headers=self.srv.auth_headers()).body.decode()
        self.assertRegex(metrics, r"(?m)^comet_presence_members [1-9]")
        self.assertRegex(metrics, r"(?m)^comet_presence_subscriptions [1-9]")
        self.assertEqual(rows[0]["body"]["channels"][ch], {"user_count": 1}, rows)
        self.assertEqual(rows[1]["body"], {"users": [{"id": "7"}]}, rows)
        self.assertEqual(rows[2]["body"], {"occupied": True, "user_count": 1,
                                           "subscription_count": 2}, rows)
        # One join however many subscriptions; the log says so in order.
        log = self.srv.sub([ch], since=0, timeout=0,
                           headers=self.srv.auth_headers()).json["messages"]
        self.assertEqual([(m["type"], m["data"]["event"], m["data"]["member"]) for m in log],
                         [("application/x-comet-presence+json", "join",
                           {"id": "7", "info": {"name": "Ann"}})])
        for t in tabs:
            t.close()


class PusherLighttpd(PusherApi, unittest.TestCase):
    KIND = "lighttpd"


class PusherApache(PusherApi, unittest.TestCase):
    KIND = "apache"


class Presence:
    """Who is on a presence channel, across the processes that hold its
    subscribers: one join for several tabs, no leave and join again for a
    long-poll that asks again within the grace, a leave once the last tab
    closed and the grace passed, and a leave for members whose process was
    killed."""
    KIND = None

    def setUp(self):
        self.srv = harness.Server(self.KIND, env=ENV).start()
        self.ch = "presence-lobby"

    def tearDown(self):
        self.srv.stop()

    def events(self):
        """The channel's joins and leaves so far (read with the publish key,
        as nobody; after a process was killed the web server may answer
        503 for a moment: asked again)."""
        r = harness.wait_until(lambda: (lambda r: r if r.status == 200 else None)(
            self.srv.sub([self.ch], since=0, timeout=0, headers=self.srv.auth_headers())),
            20, "an answer")
        return [(m["data"]["event"], m["data"]["member"]["id"]) for m in r.json["messages"]]

    def holder_of(self, member):
        """The pid of the process holding member's subscription (the log's
        presence table names it: host:pid)."""
        import sqlite3
        con = sqlite3.connect("file:%s?mode=ro" % self.srv.db, uri=True)
        try:
            row = con.execute("SELECT owner FROM presence WHERE channel=? AND member=?",
                              (self.ch, member)).fetchone()
        finally:
            con.close()
        return int(row[0].rsplit(":", 1)[1]) if row else None

    def test_join_once_no_flicker_then_leave(self):
        ann = presence_params("1.1", self.ch, "ann", {"n": 1})
        (tab1, tab2) = [Held(self.srv, [self.ch], 0, ann, timeout=1) for _ in range(2)]
        harness.wait_until(lambda: self.events() == [("join", "ann")], 10, "ann's join")
        # Both long-polls end by their timeout and ask again at once, for a
        # while: ann stays, with no leave and no second join.
        t_end = time.monotonic() + 3 * GRACE
        cursor = 1
        while time.monotonic() < t_end:
            r = self.srv.sub([self.ch], since=cursor, timeout=1, extra=ann)
            self.assertEqual(r.status, 200, r)
            cursor = r.json["last_id"]
        tab1.join(10)
        tab2.join(10)
        self.assertEqual(self.events(), [("join", "ann")], "a re-poll within the grace")
        # The last tab closed: ann leaves within the grace (and a reap).
        t0 = time.monotonic()
        harness.wait_until(lambda: self.events() == [("join", "ann"), ("leave", "ann")],
                           GRACE + 10, "ann's leave")
        sys.stderr.write("\nFIGURE: %s presence: leave %.1f s after the last long-poll ended "
                         "(COMET_PRESENCE_GRACE %d)\n" % (self.KIND, time.monotonic() - t0, GRACE))
        r = self.srv.get("/comet/presence", query=[("channel", self.ch)] + ann)
        self.assertEqual(r.json["members"], [])

    def test_killed_process_lets_its_members_go(self):
        bob = presence_params("2.2", self.ch, "bob", None)
        stream = self.srv.open_stream("/comet/sub", [("channel", self.ch)] + bob,
                                      {"Accept": "text/event-stream"})
        stream.read_head()
        harness.wait_until(lambda: self.events() == [("join", "bob")], 10, "bob's join")
        victim = harness.wait_until(lambda: self.holder_of("bob"), 10, "bob's process")
        self.assertIn(victim, self.srv.program_pids())
        os.kill(victim, signal.SIGKILL)
        # Another process reaps him: any that holds presence subscriptions
        # reaps on its timer. Carol comes, as a browser would, asking again
        # while the web server answers 503 for the killed process.
        carol = presence_params("3.3", self.ch, "carol", None)

        def carol_held():
            st = self.srv.open_stream("/comet/sub", [("channel", self.ch)] + carol,
                                      {"Accept": "text/event-stream"})
            st.read_head()
            if st.status == 200:
                return st
            st.close()
            return None
        carol_stream = harness.wait_until(carol_held, 20, "carol's stream")
        harness.wait_until(lambda: ("leave", "bob") in self.events(), GRACE + 45,
                           "bob's leave after his process was killed")
        self.assertNotIn(("leave", "carol"), self.events())
        carol_stream.close()
        stream.close()


class PresenceLighttpd(Presence, unittest.TestCase):
    KIND = "lighttpd"


class PresenceApache(Presence, unittest.TestCase):
    KIND = "apache"


if __name__ == "__main__":
    unittest.main()
