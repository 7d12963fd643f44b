#!/usr/bin/env python3
"""A wrong setting in the shipped configurations shows up as a clear error
in the web server's logs and a prompt error answer, never as a browser
left hanging: a bad COMET_* value (the program refuses to start, naming
the variable), and a database directory the program cannot write."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402


class Misconfigured(harness.Server):
    """Started without waiting for a healthy /comet/stats: only for the web
    server itself to listen."""

    def ready(self):
        return self.listening()


class Misconfig:
    KIND = None

    def logs_of(self, srv):
        return srv.read_logs()

    def test_bad_setting_is_named_and_answered(self):
        with Misconfigured(self.KIND, env={"COMET_MAX_TIMEOUT": "soon"}) as srv:
            t0 = time.monotonic()
            r = srv.get("/comet/sub", query={"channel": "c"}, timeout=30)
            self.assertLess(time.monotonic() - t0, 10, "the browser was left hanging")
            self.assertGreaterEqual(r.status, 500, r)
            logs = harness.wait_until(
                lambda: (lambda t: t if "COMET_MAX_TIMEOUT" in t else None)(self.logs_of(srv)),
                10, "the setting's name in the logs")
            self.assertIn("'soon' is not a whole number", logs)

    def test_unwritable_database_directory(self):
        with Misconfigured(self.KIND, db="/nonexistent-comet-dir/comet.db") as srv:
            r = srv.get("/comet/sub", query={"channel": "c"}, timeout=30)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json["status"], 503)
            self.assertIn("retry-after", {k.lower() for k in r.headers.keys()})
            r = srv.publish("c", "x")
            self.assertEqual(r.status, 503, r)
            logs = harness.wait_until(
                lambda: (lambda t: t if "/nonexistent-comet-dir" in t else None)(self.logs_of(srv)),
                10, "the database path in the logs")
            self.assertIn("storage unavailable", logs)
            # What to do, for whom: the user the program runs as.
            user = srv.run_user()[0] if self.KIND == "apache" or os.geteuid() == 0 else None
            self.assertIn("install -d -o", logs)
            if user and self.KIND == "apache":
                self.assertIn("install -d -o %s /nonexistent-comet-dir" % user, logs)
            # Told once per process, not with every request it refuses.
            for _ in range(3):
                self.assertEqual(srv.get("/comet/sub", query={"channel": "c"}).status, 503)
            told = self.logs_of(srv).count("storage unavailable: /nonexistent-comet-dir")
            procs = max(1, len(srv.program_pids()))
            self.assertGreaterEqual(told, 1)
            self.assertLessEqual(told, procs, "logged again for every request")


class ReadOnly:
    """A database file the program may read and not write (chmod a-w):
    subscribers are served, publishes and DELETEs answered 503 saying the
    file is read-only, and the log says which file and what to do."""
    KIND = None

    def test_read_only_database_file(self):
        with harness.Server(self.KIND) as srv:
            if srv.run_user()[0] == "root" or (self.KIND == "lighttpd" and os.geteuid() == 0):
                self.skipTest("the program runs as root, whom no file mode stops")
            first = srv.publish("ro", "before")
            self.assertEqual(first.status, 201, first)
            try:
                srv.restart(while_stopped=lambda: os.chmod(srv.db, 0o444))
                r = srv.sub(["ro"], since=0, timeout=0)
                self.assertEqual(r.status, 200, r)
                self.assertEqual([m["data"] for m in r.json["messages"]], ["before"], r)
                for r in (srv.publish("ro", "after"),
                          srv.request("DELETE", "/comet/pub", query={"channel": "ro"},
                                      headers=srv.auth_headers())):
                    self.assertEqual(r.status, 503, r)
                    self.assertIn("read-only", r.json["error"], r)
                    self.assertIn("retry-after", {k.lower() for k in r.headers.keys()})
                logs = harness.wait_until(
                    lambda: (lambda t: t if "not writable" in t else None)(srv.read_logs()),
                    10, "the reason in the logs")
                self.assertIn(srv.db, logs)
                self.assertEqual(srv.stats()["last_id"], first.json["id"])
            finally:
                os.chmod(srv.db, 0o644)


class LighttpdReadOnly(ReadOnly, unittest.TestCase):
    KIND = "lighttpd"


class ApacheReadOnly(ReadOnly, unittest.TestCase):
    KIND = "apache"


class LighttpdMisconfig(Misconfig, unittest.TestCase):
    KIND = "lighttpd"


class ApacheMisconfig(Misconfig, unittest.TestCase):
    KIND = "apache"


if __name__ == "__main__":
    harness.main()
