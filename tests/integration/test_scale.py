#!/usr/bin/env python3
"""Ten thousand held subscribers in one comet-fcgi process under lighttpd as
shipped, all answered by one publish, twice (the second wave is the herd of
re-subscribes a fan-out causes).

The subscribers are HTTP/2 streams, eight per connection (lighttpd's limit),
as browsers send them to a site over HTTPS: 1,250 client connections. Over
HTTP/1.1 lighttpd needs two descriptors per held request, more than this
test may assume a machine allows (its hard RLIMIT_NOFILE); over HTTP/2 it
needs one per request plus one per connection. The clients are
tests/bench/bench (C, epoll). Runs in a network namespace of its own, where
net.core.somaxconn is raised so that the listen queue holds the herd
(see listen-backlog in lighttpd/comet-fcgi.conf)."""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

N = 10000
STREAMS = 8


def setUpModule():
    global BENCH
    harness.require_private_network(N + N // STREAMS + 200)
    BENCH = harness.build_tool("bench", "-lm", "-lcrypto")


class TenThousand(unittest.TestCase):
    def fanout(self, srv):
        r = subprocess.run(
            [BENCH, "fanout", "-q", "-p", str(srv.port), "-n", str(N),
             "--h2", str(STREAMS), "--check", "--batch", str(N),
             "--ready-timeout", "30", "--answer-timeout", "30"],
            capture_output=True, text=True, timeout=180)
        rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertTrue(rows, r.stdout + r.stderr)
        return rows[0], r.stderr

    def test_ten_thousand_held_and_answered(self):
        with harness.Server("lighttpd") as srv:
            for wave in (1, 2):
                res, err = self.fanout(srv)
                where = "wave %d: %s\n%s\n%s" % (wave, json.dumps(res), err[-1500:],
                                                 srv.read_logs()[-3000:])
                # The program's own count of held requests reached N before
                # the publish, nobody was answered early or refused ...
                self.assertEqual(res["held"], N, where)
                self.assertEqual(res["early"], 0, where)
                self.assertEqual(res["connect_failed"], 0, where)
                self.assertEqual(res["pub_status"], 201, where)
                # ... and the one publish answered every one of them with
                # the message (200, its text in the body).
                self.assertEqual(res["answered"], N, where)
                self.assertEqual(res["wrong"] + res["non200"] + res["failed_after"], 0, where)
                self.assertEqual(len(srv.program_pids()), 1, where)
                self.assertEqual(srv.stats()["waiting"], 0, where)


if __name__ == "__main__":
    unittest.main()
