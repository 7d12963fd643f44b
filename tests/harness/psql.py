"""The PsqlSession fixture: one psql process of a PostgreSQL cluster's
superuser kept open across requests, to hold a lock or a transaction while
the program is asked to work around it; PostgreSQL.session() makes one.

    with pg.session() as s:
        s.run("BEGIN; SELECT 1 FROM comet_state FOR UPDATE;")
        ...                     # the program meets the lock
        s.run("ROLLBACK;")
"""

import queue
import subprocess
import threading
import time

from .util import HarnessError


class PsqlSession:
    """One psql process kept open; see PostgreSQL.session()."""

    def __init__(self, pg, database):
        self.name = pg.name
        self.proc = subprocess.Popen(
            [pg.bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", pg.sockdir, "-p", str(pg.port), "-U", pg.SUPERUSER, "-d", database],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1)
        self.lines = queue.Queue()
        self.n = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def run(self, sql, timeout=30):
        """sql, then wait until psql has done it; its output lines."""
        self.n += 1
        marker = "--done %d--" % self.n
        self.proc.stdin.write(sql.rstrip() + "\n\\echo '%s'\n" % marker)
        self.proc.stdin.flush()
        out, deadline = [], time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise HarnessError("psql (%s): no answer to %r within %.0f s; so far %r"
                                   % (self.name, sql, timeout, out))
            if line is None:
                raise HarnessError("psql (%s) ended: %r" % (self.name, out))
            if line == marker:
                return out
            out.append(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("\\q\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
