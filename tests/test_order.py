"""No message missed or repeated: concurrent publishers (separate
connections, so separate processes under mod_fcgid) and subscribers that
follow one cursor across two channels, with small pages; every subscriber
must see exactly the acknowledged ids, each once, in increasing order."""

import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PUBLISHERS = 3
EACH = 40
SUBSCRIBERS = 8


class Order:
    KIND = None

    def test_exactly_once_in_order(self):
        with harness.Server(self.KIND) as srv:
            acked, errors = [], []
            lock = threading.Lock()
            seen = {}
            done = threading.Event()

            def publisher(p):
                for i in range(EACH):
                    ch = "o1" if i % 2 else "o2"
                    r = srv.post("/comet/pub", query={"channel": ch}, body="%d-%d" % (p, i),
                                 headers={"Content-Type": "text/plain"})
                    if r.status != 201:
                        errors.append(r)
                        return
                    with lock:
                        acked.append((r.json["id"], ch))

            def subscriber(k, chans):
                cursor, got = 0, []
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    r = srv.sub(chans, since=cursor, timeout=3, limit=7)
                    if r.status != 200:
                        errors.append(r)
                        return
                    got += [m["id"] for m in r.json["messages"]]
                    self.assertGreaterEqual(r.json["last_id"], cursor)
                    cursor = r.json["last_id"]
                    if done.is_set() and not r.json["more"] and cursor >= max(a for a, _ in acked):
                        break
                seen[k] = (chans, got)

            subs = [threading.Thread(target=subscriber, args=(k, ["o1", "o2"] if k % 2 else ["o1"]))
                    for k in range(SUBSCRIBERS)]
            for t in subs:
                t.start()
            pubs = [threading.Thread(target=publisher, args=(p,)) for p in range(PUBLISHERS)]
            for t in pubs:
                t.start()
            for t in pubs:
                t.join()
            done.set()
            for t in subs:
                t.join(90)
            self.assertEqual(errors, [])
            self.assertEqual(len(acked), PUBLISHERS * EACH)
            ids = sorted(a for a, _ in acked)
            self.assertEqual(len(set(ids)), len(ids), "an id was given twice")
            for k, (chans, got) in seen.items():
                want = sorted(a for a, ch in acked if ch in chans)
                self.assertEqual(got, want, "subscriber %d (%s)" % (k, chans))
            self.assertEqual(len(seen), SUBSCRIBERS)


class LighttpdOrder(Order, unittest.TestCase):
    KIND = "lighttpd"


class ApacheOrder(Order, unittest.TestCase):
    KIND = "apache"


if __name__ == "__main__":
    unittest.main(verbosity=2)
