"""Traffic a test drives at a running server and checks afterwards: the
whole log read back, page by page (read_all; Server.read_all for a Server),
and publishers in the background (Publishers), whose acknowledgements are
then looked for in what read_all returns."""

import http.client
import random
import threading
import time


def read_all(page, check=None, max_pages=1000, what="the log"):
    """Every retained message, paged from since=0 until an answer says
    more is false. page(cursor) returns the answer to one GET .../sub with
    since=cursor and timeout=0 (anything with .status and .json: a
    Response, or a test's own). check(answer, cursor, so_far) judges each
    answer before it is used, and raises when it is wrong; without it, an
    answer must be a 200 with a JSON object. Returns the messages (dicts),
    in order; raises AssertionError when an answer is wrong or the paging
    does not end within max_pages."""
    out, cursor = [], 0
    for _ in range(max_pages):
        r = page(cursor)
        if check:
            check(r, cursor, out)
        elif r is None or r.status != 200 or not isinstance(r.json, dict):
            raise AssertionError("reading %s from since=%d: %r" % (what, cursor, r))
        d = r.json
        out += d["messages"]
        cursor = d["last_id"]
        if not d.get("more"):
            return out
    raise AssertionError("reading %s: paging did not end" % what)


class Publishers:
    """Publishers on their own threads: `threads` per server, each POSTing
    text bodies of its own ("<kind>-<thread>-<n>", unique in the run) to a
    channel picked from `channels` by a seeded generator, until stop is set
    (leaving the with block sets it and joins them). Every answer is
    recorded, under lock:

        acked       {id: (channel, data)}, in the order acknowledged
        ids         every acknowledged id in that order, repeats included
        sent        {data: channel} of every publish sent
        events      [(t_sent, t_answered, server kind, status or None, id or None)]
        dup_acks    [(id, (channel, data) first acknowledged, the second)]
        statuses    {status, or None for no answer: count}
        failed      publishes not acknowledged (any other answer, or none)

    After a publish that was not acknowledged a thread waits `pause`
    seconds (load shaping while a process restarts, not synchronisation).
    publish() is the hook for another way of publishing."""

    def __init__(self, servers, channels, threads=1, seed=0, timeout=10, pause=0.0):
        self.servers = list(servers)
        self.channels = tuple(channels)
        self.timeout = timeout
        self.pause = pause
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}
        self.ids = []
        self.sent = {}
        self.events = []
        self.dup_acks = []
        self.statuses = {}
        self.failed = 0
        self.threads = [threading.Thread(target=self.run,
                                         args=(srv, j * threads + k, seed * 100 + 10 * j + k),
                                         daemon=True)
                        for j, srv in enumerate(self.servers) for k in range(threads)]

    def publish(self, srv, channel, data):
        """One publish on a connection of its own (no process spawned: what
        is timed is the request); the Response."""
        return srv.post("/comet/pub", query={"channel": channel}, body=data,
                        headers=dict({"Content-Type": "text/plain"}, **srv.auth_headers()),
                        timeout=self.timeout)

    def run(self, srv, k, seed):
        rng = random.Random(seed)
        i = 0
        while not self.stop.is_set():
            ch = rng.choice(self.channels)
            data = "%s-%d-%d" % (srv.kind, k, i)
            i += 1
            with self.lock:
                self.sent[data] = ch
            t0 = time.monotonic()
            try:
                r = self.publish(srv, ch, data)
                status = r.status
            except (OSError, http.client.HTTPException):
                r, status = None, None
            t1 = time.monotonic()
            with self.lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                mid = None
                if status == 201:
                    mid = r.json["id"]
                    if mid in self.acked:
                        self.dup_acks.append((mid, self.acked[mid], (ch, data)))
                    self.acked[mid] = (ch, data)
                    self.ids.append(mid)
                else:
                    self.failed += 1
                self.events.append((t0, t1, srv.kind, status, mid))
            if status != 201 and self.pause:
                self.stop.wait(self.pause)

    def count(self):
        """Publishes acknowledged so far."""
        with self.lock:
            return len(self.acked)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        # A thread is at most one request (timeout) from seeing stop.
        for t in self.threads:
            t.join(3 * self.timeout)
