#!/usr/bin/env python3
"""A guard on the publish path: comet-fcgi's publish rate under lighttpd as
shipped against a trivial libfcgi responder (tests/bench/trivial-fcgi.c:
reads the body, answers 201) under the same configuration, measured in
the same run, round by round alternated, so that a slow or busy machine
slows both alike. Below half of the trivial responder's rate, the path has
regressed (issue 21: a buffer mapped and unmapped per publish cut it
tenfold). And in the steady state, with 2,000 long-polls held, the program
maps, unmaps and gives back no memory per publish (strace counts it, where
strace is installed: each munmap or madvise stops every other thread's CPU). Figures, not just
the verdict, are printed: tests/bench/run measures them properly."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

ROUNDS = 3
SECONDS = 2
CONNS = 16
FLOOR = 0.5
HELD = 2000


def setUpModule():
    global BENCH, TRIVIAL
    if harness.sanitized():
        raise unittest.SkipTest("an AddressSanitizer build is slower by design")
    BENCH = harness.build_tool("bench", "-lm", "-lcrypto")
    TRIVIAL = harness.build_tool("trivial-fcgi", "-lfcgi")


def rate(srv, seconds=SECONDS):
    r = subprocess.run([BENCH, "rate", "-q", "-p", str(srv.port), "-c", str(CONNS),
                        "-d", str(seconds), "--pub-path", "/comet/pub?channel=rate"],
                       capture_output=True, text=True, timeout=60 + seconds)
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    if r.returncode != 0 or not rows:
        raise AssertionError("bench rate: %s %s" % (r.stdout, r.stderr))
    return rows[0]


def rate_held(srv, held, seconds):
    """The publish rate on one channel while `held` long-polls wait on
    another (bench fanout, which then answers them all with one message)."""
    r = subprocess.run([BENCH, "fanout", "-q", "-p", str(srv.port), "-n", str(held),
                        "--preset", "comet", "-c", str(CONNS),
                        "--rate-while-held", str(seconds),
                        "--rate-path", "/comet/pub?channel=rate"],
                       capture_output=True, text=True, timeout=120 + seconds)
    rows = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    rows = [row for row in rows if row.get("measure") == "rate_held"]
    if r.returncode != 0 or not rows:
        raise AssertionError("bench fanout: %s %s" % (r.stdout, r.stderr))
    return rows[0]


class PublishRate(unittest.TestCase):
    def test_publish_rate_against_the_fastcgi_floor(self):
        comet, trivial = [], []
        for _ in range(ROUNDS):
            for program, out in ((None, comet), (TRIVIAL, trivial)):
                with harness.Server("lighttpd", program=program) as srv:
                    row = rate(srv)
                    self.assertEqual(row.get("non2xx", 0) + row.get("errors", 0), 0, row)
                    out.append(row["msg_per_s"])
        c, t = statistics.median(comet), statistics.median(trivial)
        sys.stderr.write("\nFIGURE: publish, %d connections, nothing held: comet-fcgi %.0f "
                         "msg/s (rounds %s), trivial-fcgi %.0f msg/s (rounds %s): %.0f %%\n"
                         % (CONNS, c, [round(x) for x in comet], t,
                            [round(x) for x in trivial], 100 * c / t))
        self.assertGreaterEqual(c / t, FLOOR, "comet-fcgi publishes at %.0f %% of a trivial "
                                "responder's rate under the same lighttpd" % (100 * c / t))

    @unittest.skipUnless(shutil.which("strace"), "strace is not installed")
    def test_no_memory_mapped_per_publish(self):
        """Publishing while HELD long-polls wait on another channel (where
        glibc's own trimming once shrank a heap ~150 times a second)."""
        with harness.Server("lighttpd") as srv:
            rate(srv, 1)    # the steady state: buffers and caches made
            pid = srv.program_pids()[0]
            out = os.path.join(srv.scratch, "strace.txt")
            st = subprocess.Popen(["strace", "-f", "-c", "-e", "trace=mmap,munmap,madvise",
                                   "-o", out, "-p", str(pid)], stderr=subprocess.DEVNULL)
            try:
                harness.wait_until(lambda: len(os.listdir("/proc/%d/task" % pid)) and
                                   subprocess.run(["grep", "-q", "TracerPid:\\s*[1-9]",
                                                   "/proc/%d/status" % pid]).returncode == 0,
                                   10, "strace to attach")
                row = rate_held(srv, HELD, 2)
            finally:
                st.terminate()
                st.wait(10)
            calls = {}
            with open(out) as f:
                for line in f:
                    p = line.split()
                    if p and p[-1] in ("mmap", "munmap", "madvise"):
                        calls[p[-1]] = int(p[3])
            published = row["published"]
            sys.stderr.write("\nFIGURE: %d publishes while %d held, under strace: %s\n"
                             % (published, row["held"], calls))
            self.assertEqual(row["held"], HELD, row)
            self.assertGreater(published, 100, row)
            self.assertLess(calls.get("munmap", 0), published / 100, calls)
            self.assertLess(calls.get("madvise", 0), published / 100, calls)

if __name__ == "__main__":
    unittest.main()
