#!/usr/bin/env python3
"""The herd after a fan-out: thousands of long-polls held over HTTP/1.1
through lighttpd as shipped, one publish, and every subscriber asks again
the moment its answer arrives, round after round. Each asks with a JSONP
callback and a cursor of its own, so that an answer that reached another
request than its own (a connection mixed up with another: a security
defect, not a slow path) is caught, as are answers that repeat or skip a
message, error answers, and subscribers left unanswered.

The clients are tests/bench/bench (C, epoll), `bench herd`. Runs in a
network namespace of its own, where net.core.somaxconn is raised so that
the listen queue holds the herd (see listen-backlog in
lighttpd/comet-fcgi.conf)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

N = 4000
ROUNDS = 3


def setUpModule():
    global BENCH
    harness.require_private_network(2 * N + 500)
    BENCH = harness.build_tool("bench", "-lm", "-lcrypto")


class Herd(unittest.TestCase):
    def herd(self, srv, *extra):
        r = subprocess.run(
            [BENCH, "herd", "-q", "-p", str(srv.port), "-n", str(N), "--rounds", str(ROUNDS),
             "--ready-timeout", "60", "--answer-timeout", "60"] + list(extra),
            capture_output=True, text=True, timeout=600)
        rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        self.assertTrue(rows, r.stdout + r.stderr)
        return rows[0], r

    def check(self, *extra):
        with harness.Server("lighttpd") as srv:
            res, r = self.herd(srv, *extra)
            where = "%s\n%s\n%s" % (json.dumps(res), r.stderr[-2000:], srv.read_logs()[-3000:])
            self.assertEqual(len(res["rounds"]), ROUNDS, where)
            for rd in res["rounds"]:
                # Never another request's answer: the one defect here that
                # is a leak, not a delay.
                self.assertEqual(rd["foreign"], 0, where)
                # Every subscriber held again before each publish, and each
                # answered with exactly the message published, its own
                # cursor moving to it.
                self.assertEqual(rd["held"], N, where)
                self.assertEqual(rd["right"], N, where)
                self.assertEqual(rd["non200"] + rd["without_message"] + rd["bad_cursor"] +
                                 rd["failed"] + rd["unanswered"] + rd["early"], 0, where)
            self.assertEqual(r.returncode, 0, where)
            self.assertEqual(len(srv.program_pids()), 1, where)
            # Nothing the program itself found wrong on a connection.
            self.assertNotIn("FastCGI:", srv.read_logs(), where)

    def test_keep_alive_clients_ask_again_at_once(self):
        self.check()

    def test_new_connections_ask_again_at_once(self):
        self.check("--fresh")


if __name__ == "__main__":
    unittest.main()
