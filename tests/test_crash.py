"""Trust under failure: kill -9 of comet-fcgi processes and a web server
restart during sustained concurrent publishing (Apache with mod_fcgid,
where every request is its own process), and a full disk. Afterwards every
acknowledged message is in the log exactly once, ids strictly increase, a
reader from 0 sees each once in order, and the server keeps answering."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RUN_SECONDS = 6
PUBLISHERS = 4


def read_all(srv, channel):
    """The id of every retained message of channel, paging from 0."""
    return [m["id"] for m in srv.read_all(channel)]


class Crash(unittest.TestCase):
    def check_log(self, srv, channel, acked):
        self.assertGreater(len(acked), 20, "too few publishes got through to mean anything")
        self.assertEqual(len(set(acked)), len(acked), "an id was acknowledged twice")
        ids = read_all(srv, channel)
        self.assertEqual(ids, sorted(set(ids)), "ids repeat or go backwards")
        missing = set(acked) - set(ids)
        self.assertEqual(missing, set(), "acknowledged messages lost")

    def test_kill_9_during_publishing(self):
        with harness.Server("apache", env={"COMET_RETAIN": "1000000"}) as srv:
            srv.publish("crash", "start")
            kills = 0
            rng = random.Random(1)
            with harness.Publishers([srv], ["crash"], threads=PUBLISHERS) as pub:
                deadline = time.monotonic() + RUN_SECONDS
                while time.monotonic() < deadline:
                    pids = srv.program_pids()
                    if pids:
                        try:
                            os.kill(rng.choice(pids), signal.SIGKILL)
                            kills += 1
                        except ProcessLookupError:
                            pass
                    # Pace the kills (load shaping, not synchronisation).
                    time.sleep(rng.uniform(0.02, 0.15))
            self.assertGreater(kills, 10)
            # The survivors (and new processes) answer promptly.
            start = time.monotonic()
            r = srv.get("/comet/stats", timeout=10)
            self.assertEqual(r.status, 200)
            self.assertLess(time.monotonic() - start, 2.0)
            self.check_log(srv, "crash", pub.ids)
            print("kill -9: %d kills, %d acked, %d failed publishes"
                  % (kills, len(pub.ids), pub.failed), file=sys.stderr)

    def test_web_server_restart_during_publishing(self):
        with harness.Server("apache", env={"COMET_RETAIN": "1000000"}) as srv:
            srv.publish("restart", "start")
            with harness.Publishers([srv], ["restart"], threads=PUBLISHERS) as pub:
                harness.wait_until(lambda: len(pub.ids) > 20, 20, "publishes before restart")
                os.kill(srv.proc.pid, signal.SIGHUP)    # Apache: restart now
                before = len(pub.ids)
                harness.wait_until(lambda: len(pub.ids) > before + 20, 30,
                                   "publishes after the restart")
            self.check_log(srv, "restart", pub.ids)


class DiskFull(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("mounting a small filesystem needs root")

    def test_full_disk_answers_503_and_recovers(self):
        mounts = []

        class SmallDisk(harness.Server):
            def prepare(self):
                d = os.path.join(self.scratch, "small")
                os.mkdir(d)
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k,mode=0777", "tmpfs", d],
                               check=True)
                mounts.append(d)
                self.db = os.path.join(d, "comet.db")

        try:
            with SmallDisk("lighttpd", env={"COMET_RETAIN": "1000000"}) as srv:
                filler = os.path.join(mounts[0], "filler")
                with open(filler, "wb") as f:
                    f.write(b"\0" * (512 * 1024))
                acked, refused = [], None
                body = "x" * 8000
                for i in range(1000):
                    r = srv.post("/comet/pub", query={"channel": "full"}, body=body,
                                 headers={"Content-Type": "text/plain"})
                    if r.status == 201:
                        acked.append(r.json["id"])
                        continue
                    refused = r
                    break
                self.assertIsNotNone(refused, "the disk never filled")
                self.assertEqual(refused.status, 503)
                self.assertEqual(refused.json["status"], 503)
                self.assertIn("retry-after", {k.lower() for k in refused.headers.keys()})
                # Reads keep working; nothing acknowledged is lost.
                self.assertEqual(read_all(srv, "full"), acked)
                # Space returns: publishing resumes by itself.
                os.unlink(filler)
                r = harness.wait_until(
                    lambda: (lambda x: x if x.status == 201 else None)(
                        srv.post("/comet/pub", query={"channel": "full"}, body="after",
                                 headers={"Content-Type": "text/plain"})),
                    10, "publishing to resume")
                self.assertGreater(r.json["id"], acked[-1])
                self.assertEqual(read_all(srv, "full"), acked + [r.json["id"]])
                db = srv.db
            con = sqlite3.connect(db)
            self.assertEqual(con.execute("PRAGMA integrity_check").fetchone()[0], "ok")
            con.close()
        finally:
            for d in mounts:
                subprocess.run(["umount", "-l", d])


if __name__ == "__main__":
    unittest.main(verbosity=2)
