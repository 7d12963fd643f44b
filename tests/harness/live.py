"""Every fixture started and not yet ended, so that none outlives the test
run: they are ended at interpreter exit (and on SIGTERM/SIGHUP from make or
a CI timeout) even after a failure, web servers first, then daemons, then
the databases they use, then the network namespaces any of them listen in.
The logs of the ones already ended are kept here, and printed by main()
when a test failed."""

import atexit
import os
import shutil
import signal
import sys
import threading
import unittest

# One list per kind of fixture, in the order they are ended: each entry is
# (list, the method that ends one, what to call it in a warning).
servers = []
daemons = []
databases = []
namespaces = []
_ORDER = ((servers, "stop", "stopping %s"),
          (daemons, "destroy", "stopping daemon %s"),
          (databases, "destroy", "stopping PostgreSQL %s"),
          (namespaces, "destroy", "removing namespace %s"))
# The logs of every ended fixture (and those a test keeps: keep_logs).
finished_logs = []
lock = threading.Lock()


def add(live, obj):
    with lock:
        live.append(obj)


def remove(live, obj):
    with lock:
        if obj in live:
            live.remove(obj)


def keep_logs(text):
    """Keep text (the logs of something a test started itself) to be
    printed with the servers' logs when a test fails."""
    if text:
        finished_logs.append(text)


def finish(obj, live):
    """A stopped server, daemon or database: its logs kept for the report,
    taken off live, its scratch directory removed (unless
    COMET_KEEP_SCRATCH). Returns the logs."""
    logs = obj.read_logs()
    keep_logs(logs)
    remove(live, obj)
    if obj.scratch:
        if os.environ.get("COMET_KEEP_SCRATCH"):
            sys.stderr.write("harness: kept %s\n" % obj.scratch)
        else:
            shutil.rmtree(obj.scratch, ignore_errors=True)
    return logs


class Restartable:
    """The end shared by the fixtures that stop() to be started again (a
    daemon, a database) and are destroy()ed for good. LIVE is the list
    they are on."""

    LIVE = None
    destroyed = False

    def destroy(self):
        """Stop for good (once), then forget()."""
        if self.destroyed:
            return
        self.destroyed = True
        try:
            self.stop()
        finally:
            self.forget()

    def forget(self):
        """Off the live list, the logs kept and the scratch directory
        removed (finish())."""
        finish(self, self.LIVE)


def stop_all():
    for live, end, what in _ORDER:
        with lock:
            items = list(live)
        for it in items:
            try:
                getattr(it, end)()
            except Exception as e:  # keep stopping the others
                sys.stderr.write(("harness: " + what + ": %r\n")
                                 % (getattr(it, "name", None) or it.kind, e))


atexit.register(stop_all)


def _sigterm(signum, frame):
    # Turn SIGTERM/SIGHUP (from make, CI timeouts) into SystemExit so that the
    # atexit handler stops the servers.
    raise SystemExit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGHUP):
    try:
        if signal.getsignal(_sig) in (signal.SIG_DFL, None):
            signal.signal(_sig, _sigterm)
    except (ValueError, OSError):  # not the main thread
        pass


def dump_logs(stream=sys.stderr):
    """Write the logs of every server stopped so far, and of live ones."""
    with lock:
        live = list(servers) + list(daemons) + list(databases)
    chunks = list(finished_logs) + [s.read_logs() for s in live]
    for c in chunks:
        stream.write(c + "\n")
    stream.flush()


def main():
    """unittest.main() that prints the servers' logs when something failed
    and exits non-zero then."""
    prog = unittest.main(exit=False, verbosity=2)
    ok = prog.result.wasSuccessful()
    if not ok:
        sys.stderr.write("\n===== server logs =====\n")
        dump_logs()
    stop_all()
    sys.exit(0 if ok else 1)
