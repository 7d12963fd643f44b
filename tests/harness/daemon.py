"""The Daemon fixture: comet-fcgi as a standalone FastCGI daemon
(`comet-fcgi --listen 127.0.0.1:PORT`), the way mod_proxy_fcgi or nginx
reach it, with no web server of the harness's in front: a test speaks
FastCGI to it itself, or puts a Server in front (Server("apache",
defines=["COMET_PROXY"]) with COMET_BACKEND set to the daemon's address).

    d = harness.Daemon(env={"COMET_PUBLISH_KEY": "k"}).start()
    d.port, d.db, d.log_path
    d.stop(); d.start()       # the same port, log and database
    d.destroy()               # stop, and remove its directory (also at exit)

It runs in a new session with the environment of the tests minus every
COMET_* variable, plus an empty COMET_CONFIG (no settings file of this
machine's), env and COMET_DB; its output goes to log_path.
start() returns once ready() says so: by default when its port accepts
connections; a test that wants more (an answer to /stats) overrides
ready()."""

import os
import signal
import subprocess
import tempfile

from . import live
from .util import (START_TIMEOUT, STOP_TIMEOUT, HarnessError, free_port, port_open,
                   program_path, signal_and_wait, wait_until)


class Daemon(live.Restartable):
    """`comet-fcgi --listen 127.0.0.1:<port>` (see the module's docstring)."""

    LIVE = live.daemons

    def __init__(self, env=None, db=None, program=None, scratch=None,
                 log_name="daemon.out", prefix="comet-daemon-"):
        """env: COMET_* settings; db: COMET_DB (default: comet.db in its
        directory); scratch: a directory to run in that someone else owns
        (a Server's: the daemon then neither removes it nor reports its
        log, which the owner's logs hold), else one of its own, made with
        prefix."""
        self.kind = "daemon"
        self.name = "comet-fcgi --listen"
        self.env = {k: str(v) for k, v in (env or {}).items()}
        self.program = program or program_path()
        self.own_scratch = scratch is None
        self.scratch = tempfile.mkdtemp(prefix=prefix) if scratch is None else scratch
        self.db = db or os.path.join(self.scratch, "comet.db")
        self.log_path = os.path.join(self.scratch, log_name)
        self.port = free_port()
        self.proc = None
        live.add(self.LIVE, self)

    def environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
        env["COMET_CONFIG"] = ""     # no settings file of this machine's
        env.update(self.env)
        env["COMET_DB"] = self.db
        return env

    def ready(self):
        """Whether the daemon counts as started (start() polls it): by
        default, its port accepts connections."""
        return port_open(self.port)

    def start(self):
        if self.destroyed:
            raise HarnessError("start: the daemon was destroyed")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.program, "--listen", "127.0.0.1:%d" % self.port], env=self.environment(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise HarnessError("comet-fcgi --listen exited: %s\n%s"
                                   % (self.proc.returncode, self.read_log()))
            return self.ready()
        wait_until(up, START_TIMEOUT, "comet-fcgi --listen on port %d" % self.port)
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    @property
    def pid(self):
        """The daemon's process id while it runs, else None."""
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (the program answers what it holds and exits), SIGKILL
        after timeout seconds. The directory, log and port stay."""
        if self.proc and not signal_and_wait(self.proc, signal.SIGTERM, timeout):
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def forget(self):
        """After destroy(): its own directory is removed, its log kept for
        the report; another's is left to its owner."""
        if self.own_scratch:
            super().forget()
        else:
            live.remove(self.LIVE, self)

    def read_log(self):
        """The end of the daemon's output."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-20000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def read_logs(self):
        """Its log, headed, for the report when a test failed (nothing when
        it runs in another's directory: the owner reports it)."""
        if not self.own_scratch:
            return ""
        log = self.read_log()
        return "----- %s (%s)\n%s" % (os.path.basename(self.log_path), self.name, log) if log else ""

    def __repr__(self):
        return "<Daemon 127.0.0.1:%d %s>" % (self.port, "running" if self.pid else "stopped")
