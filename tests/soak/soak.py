#!/usr/bin/env python3
"""Soak (outside make check): N event-stream subscribers held for M minutes
while messages are published at R per second, against `comet-fcgi --listen`
(the standalone daemon, as mod_proxy_fcgi or nginx use it), spoken to as
FastCGI directly so that no web server's limits stand in the way. Reports
the daemon's RSS, open descriptors and held count at the start, every
interval and at the end, and checks that every subscriber received every
message of its channel exactly once, in order.

    tests/soak/soak.py [--subscribers 10000] [--minutes 10] [--rate 100]
                       [--channels 100] [--program src/comet-fcgi]

Everything runs on 127.0.0.1 and stops by itself."""

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests"))
import fcgiproto  # noqa: E402


def request_bytes(method, script, query="", body=b"", headers=None):
    params = {"REQUEST_METHOD": method, "SCRIPT_NAME": script, "QUERY_STRING": query,
              "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)),
              "CONTENT_TYPE": "text/plain"}
    params.update(headers or {})
    return fcgiproto.request(params, body)


async def one_request(port, method, script, query="", body=b""):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(request_bytes(method, script, query, body))
    out, recs, done = b"", fcgiproto.Records(), False
    while not done:
        data = await r.read(65536)
        if not data:
            break
        for rtype, content in recs.feed(data):
            if rtype == 6:
                out += content
            if rtype == 3:
                done = True
    w.close()
    head, _, body = out.partition(b"\r\n\r\n")
    return int(head.split(b"\r\n")[0].split()[1]), body


class Subscriber:
    def __init__(self, channel):
        self.channel = channel
        self.ids = []
        self.dup_or_back = 0
        self.ended = False

    async def run(self, port, ready):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(request_bytes("GET", "/sub", "channel=%s" % self.channel,
                              headers={"HTTP_ACCEPT": "text/event-stream"}))
        ready.release()
        recs, text = fcgiproto.Records(), b""
        while True:
            data = await r.read(65536)
            if not data:
                break
            for rtype, content in recs.feed(data):
                if rtype == 6:
                    text += content
                elif rtype == 3:
                    self.ended = True
            while b"\n\n" in text:
                ev, _, text = text.partition(b"\n\n")
                for line in ev.split(b"\n"):
                    if line.startswith(b"id: "):
                        i = int(line[4:])
                        if self.ids and i <= self.ids[-1]:
                            self.dup_or_back += 1
                        self.ids.append(i)
        w.close()


def proc_figures(pid):
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--subscribers", type=int, default=10000)
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=100, help="messages per second")
    ap.add_argument("--channels", type=int, default=100)
    ap.add_argument("--interval", type=float, default=60, help="seconds between reports")
    ap.add_argument("--program", default=os.environ.get("COMET_FCGI",
                                                        os.path.join(TOP, "src", "comet-fcgi")))
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.subscribers + 100 > hard:
        sys.exit("soak: RLIMIT_NOFILE %d is too small for %d subscribers" % (hard, args.subscribers))

    scratch = tempfile.mkdtemp(prefix="comet-soak-")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update({"COMET_DB": os.path.join(scratch, "comet.db"),
                "COMET_STREAM_MAX": str(int(args.minutes * 60 + 600)),
                "COMET_RETAIN": "100000", "COMET_PUBLISH_LOOPBACK": "on",
                "COMET_CONFIG": ""})
    daemon = subprocess.Popen([args.program, "--listen", "127.0.0.1:%d" % port], env=env,
                              stderr=open(os.path.join(scratch, "daemon.err"), "wb"))
    try:
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                await asyncio.sleep(0.02)  # polling for the listener
        print("soak: daemon pid %d on 127.0.0.1:%d; db in %s" % (daemon.pid, port, scratch))
        base_rss, base_fds = proc_figures(daemon.pid)

        subs = [Subscriber("soak%d" % (i % args.channels)) for i in range(args.subscribers)]
        ready = asyncio.Semaphore(0)
        tasks = [asyncio.ensure_future(sb.run(port, ready)) for sb in subs]
        for _ in subs:
            await ready.acquire()

        async def waiting():
            st, body = await one_request(port, "GET", "/stats")
            return json.loads(body)["waiting"]
        deadline = time.monotonic() + 120
        while await waiting() < args.subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.2)  # polling the server's own count
        held = await waiting()
        rss0, fds0 = proc_figures(daemon.pid)
        print("soak: start: %d held; daemon RSS %d kB (%.0f B per held over the idle %d kB), "
              "%d fds" % (held, rss0, (rss0 - base_rss) * 1024 / max(held, 1), base_rss, fds0))

        published = {}       # channel -> [ids]
        errors = 0
        t_end = time.monotonic() + args.minutes * 60
        next_report = time.monotonic() + args.interval
        period = 1.0 / args.rate
        t_next = time.monotonic()
        rng = random.Random(7)
        count = 0
        while time.monotonic() < t_end:
            ch = "soak%d" % rng.randrange(args.channels)
            st, body = await one_request(port, "POST", "/pub", "channel=" + ch,
                                         b"m%d" % count)
            if st == 201:
                published.setdefault(ch, []).append(json.loads(body)["id"])
            else:
                errors += 1
            count += 1
            t_next += period
            delay = t_next - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)   # pacing the publish rate
            if time.monotonic() >= next_report:
                rss, fds = proc_figures(daemon.pid)
                print("soak: %4.0f s: %d published, %d held, RSS %d kB, %d fds" % (
                    args.minutes * 60 - (t_end - time.monotonic()), count, await waiting(),
                    rss, fds), flush=True)
                next_report += args.interval
        rss1, fds1 = proc_figures(daemon.pid)
        held1 = await waiting()
        # Let the last events arrive: every subscriber has its channel's last id.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(not published.get(sb.channel) or
                   (sb.ids and sb.ids[-1] >= published[sb.channel][-1]) for sb in subs):
                break
            await asyncio.sleep(0.1)  # polling the subscribers' progress
        wrong = sum(1 for sb in subs if sb.ids != published.get(sb.channel, []))
        dup = sum(sb.dup_or_back for sb in subs)
        delivered = sum(len(sb.ids) for sb in subs)
        print("soak: end after %.1f min: %d published (%.1f/s), %d refused; %d held at the end"
              % (args.minutes, count, count / (args.minutes * 60), errors, held1))
        print("soak: daemon RSS %d kB -> %d kB, fds %d -> %d" % (rss0, rss1, fds0, fds1))
        print("soak: %d events delivered; subscribers with a wrong sequence: %d; "
              "duplicates or reorders: %d" % (delivered, wrong, dup))
        daemon.terminate()
        daemon.wait(5)
        for t in tasks:
            t.cancel()
        ok = wrong == 0 and dup == 0 and errors == 0 and held >= args.subscribers
        print("soak: %s" % ("PASS" if ok else "FAIL"))
        return 0 if ok else 1
    finally:
        if daemon.poll() is None:
            daemon.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
