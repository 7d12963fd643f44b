#!/usr/bin/env python3
"""comet-fcgi under a real lighttpd (mod_fastcgi, one program process),
started from lighttpd/lighttpd.conf + lighttpd/comet-fcgi.conf as shipped."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comet_cases import (Backend, CometCases, MaxMessageCases, PublishKeyCases,  # noqa: E402
                         channel, sqlite_only)
import harness  # noqa: E402


class Lighttpd(CometCases, unittest.TestCase):
    KIND = "lighttpd"
    # One comet-fcgi process holds them all.
    WAITERS = 2000
    WAITING_WITHIN = 20

    def test_one_program_process(self):
        ch = "one-proc"
        self.srv.publish(ch, "x")
        self.assertEqual(self.srv.get("/comet/stats").status, 200)
        self.assertEqual(len(self.srv.program_pids()), 1,
                         "max-procs 1: exactly one comet-fcgi process")

    @sqlite_only
    def test_503_when_database_locked(self):
        # Another process holds the SQLite write lock longer than the program
        # waits: 503 with Retry-After, nothing half-written, fine afterwards.
        # (lighttpd only: here the program runs as the test's own user, so
        # opening its database from the test cannot leave files it may not
        # write.)
        ch = channel("locked")
        before = self.publish(ch, "before")
        db = sqlite3.connect(self.srv.db, isolation_level=None, timeout=5)
        try:
            db.execute("BEGIN EXCLUSIVE")
            self.assert_publish_refused_alone(ch)
            # A DELETE waits in the write thread too, never in the one that
            # reads every other request.
            self.assert_publish_refused_alone(ch, delete=True)
        finally:
            db.execute("ROLLBACK")
            db.close()
        after = self.publish(ch, "after")
        d = self.assert_sub_answer(self.srv.sub(ch, since=0, timeout=0))
        self.assertEqual([(m["id"], m["data"]) for m in d["messages"]],
                         [(before["id"], "before"), (after["id"], "after")])
        self.assert_still_serving()


class LighttpdClientGone(Backend, unittest.TestCase):
    """On a server of its own, so that no other test's waiters come or go."""

    def test_stream_client_gone_is_freed(self):
        """A browser that leaves an event stream is let go at once
        (tcp-fin-propagate), not at its next keepalive or its end."""
        with harness.Server("lighttpd", env={"COMET_KEEPALIVE": "60"},
                            **self.server_args()) as srv:
            streams = [srv.open_stream("/comet/sub", query={"channel": "gone"},
                                       headers={"Accept": "text/event-stream"})
                       for _ in range(5)]
            srv.wait_for_waiting(5)
            for s in streams:
                s.close()
            srv.wait_for_none_waiting(5,
                                      "held streams of departed clients to be freed")
            self.assertEqual(srv.publish("gone", "x").status, 201)


    def test_http2_long_poll_client_gone_is_freed(self):
        """Over HTTP/2 (how browsers reach a site over HTTPS), a browser that
        leaves a held long-poll is let go at once: lighttpd resets the
        stream and closes its backend connection, and the program's epoll
        sees the hang-up. (Over HTTP/1.1, lighttpd 1.4.69 notices only some
        of the time; see README, Limits.)"""
        if not shutil.which("curl"):
            self.skipTest("no curl")
        with harness.Server("lighttpd", **self.server_args()) as srv:
            url = srv.url("/comet/sub", {"channel": "h2gone", "timeout": "60"})
            clients = [subprocess.Popen(["curl", "-s", "--http2-prior-knowledge", url],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for _ in range(5)]
            try:
                srv.wait_for_waiting(5)
                for c in clients:
                    c.kill()
                    c.wait()
                srv.wait_for_none_waiting(5,
                                          "held long-polls of departed HTTP/2 clients to be freed")
            finally:
                for c in clients:
                    if c.poll() is None:
                        c.kill()
                        c.wait()
            self.assertEqual(srv.publish("h2gone", "x").status, 201)


class LighttpdMaxMessage(MaxMessageCases, unittest.TestCase):
    KIND = "lighttpd"


class LighttpdPublishKey(PublishKeyCases, unittest.TestCase):
    KIND = "lighttpd"


if __name__ == "__main__":
    harness.main()
