"""The PostgreSQL fixture: a cluster of a test's own (initdb in a scratch
directory, run as an unprivileged user, fsync on), with its streaming
standbys, for the program's shared log (COMET_DB=postgresql://...); and
pg_bindir(), which says whether there are PostgreSQL server programs here
at all. PsqlSession (psql.py) is its long-lived psql."""

import csv
import io
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.parse

from . import live
from .psql import PsqlSession
from .util import (START_TIMEOUT, STOP_TIMEOUT, HarnessError, alive, descendants, free_port,
                   signal_and_wait, wait_until)


def pg_bindir():
    """The directory of PostgreSQL's server programs (initdb, postgres,
    pg_ctl, pg_basebackup): $PG_BINDIR, else the newest
    /usr/lib/postgresql/<version>/bin (Debian), else the one of initdb on
    PATH. None when there is none."""
    v = os.environ.get("PG_BINDIR")
    if v:
        return v if os.path.isfile(os.path.join(v, "initdb")) else None
    root = "/usr/lib/postgresql"
    try:
        versions = sorted((d for d in os.listdir(root)
                           if os.path.isfile(os.path.join(root, d, "bin", "initdb"))),
                          key=lambda d: [int(x) if x.isdigit() else 0 for x in d.split(".")])
    except OSError:
        versions = []
    if versions:
        return os.path.join(root, versions[-1], "bin")
    found = shutil.which("initdb")
    return os.path.dirname(found) if found else None


def is_postgresql_uri(db):
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


class PostgreSQL(live.Restartable):
    """A PostgreSQL cluster of its own for a test: initdb in a fresh scratch
    directory, run as an unprivileged user (the `postgres` system user when
    the tests run as root, else the current user), listening on 127.0.0.1
    (plus `listen`, e.g. a veth address) on a free port and on a Unix socket
    inside the scratch directory. fsync stays on: durability is what the
    tests are about; memory is kept small.

    The superuser (`postgres`) is reachable only over the Unix socket (trust,
    for .psql() and replication); over TCP only the role `comet` (LOGIN,
    password, not a superuser) may connect, and it owns the database
    `comet` (and any made with .create_database()).

        pg = harness.PostgreSQL().start()
        pg.uri()                  # postgresql://comet:PW@127.0.0.1:PORT/comet
        pg.psql("SELECT 1")       # [("1",)]
        pg.stop(); pg.start()     # fast shutdown, then the same data and port
        pg.kill(); pg.start()     # SIGKILL of every process: a crash
        sb = pg.standby()         # synchronous streaming replica
        sb.promote()
        pg.destroy()              # stop and remove (also done at exit)
    """

    SUPERUSER = "postgres"
    LIVE = live.databases

    def __init__(self, name="pg", port=None, listen=(), max_connections=200,
                 settings=None, _data_from=None):
        self.bindir = pg_bindir()
        if not self.bindir:
            raise HarnessError("no PostgreSQL server programs (initdb) found: "
                               "install postgresql, or set PG_BINDIR")
        self.name = name
        self.kind = "postgresql"
        self.port = port or free_port()
        self.listen = ["127.0.0.1"] + [a for a in listen if a != "127.0.0.1"]
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.password = "pw-" + os.urandom(12).hex()
        self.proc = None
        self.scratch = None
        self._initialised = False
        self._data_from = _data_from     # (primary, ) for a standby
        self.primary = None

    # ------------------------------------------------------------ paths

    @property
    def datadir(self):
        return os.path.join(self.scratch, "data")

    @property
    def sockdir(self):
        return os.path.join(self.scratch, "sock")

    @property
    def logfile(self):
        return os.path.join(self.scratch, "postgresql.log")

    def _user(self):
        """(uid, gid, name) the cluster runs as."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise HarnessError("running as root and there is no `postgres` user "
                               "to run PostgreSQL as")
        return pw.pw_uid, pw.pw_gid, "postgres"

    def _as_user(self, cmd):
        """cmd run as the cluster's user (setpriv when we are root)."""
        if os.geteuid() != 0:
            return cmd
        uid, gid, _ = self._user()
        return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid, "--clear-groups",
                "--"] + cmd

    def bin(self, name):
        """The path of one of PostgreSQL's programs (psql, pg_ctl, ...)."""
        return os.path.join(self.bindir, name)

    def _run(self, cmd, what, as_user=True, timeout=120, input=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        p = subprocess.run(self._as_user(cmd) if as_user else cmd, env=env,
                           cwd=self.scratch, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise HarnessError("%s failed (%d): %s\n%s" % (
                what, p.returncode, " ".join(cmd),
                (p.stdout + p.stderr).decode(errors="replace")))
        return p.stdout.decode(errors="replace")

    # ------------------------------------------------------------ setup

    def _make_scratch(self):
        base = "/tmp" if os.geteuid() == 0 else None
        self.scratch = tempfile.mkdtemp(prefix="comet-pg-%s-" % self.name, dir=base)
        os.mkdir(self.sockdir, 0o700)
        uid, gid, _ = self._user()
        os.chown(self.scratch, uid, gid)
        os.chown(self.sockdir, uid, gid)
        os.chmod(self.scratch, 0o755)

    def _initdb(self):
        self._run([self.bin("initdb"), "-D", self.datadir, "-U", self.SUPERUSER,
                   "--no-locale", "-E", "UTF8", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "--no-sync", "--no-instructions"],
                  "initdb")
        conf = {
            "fsync": "on",
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "shared_buffers": "16MB",
            "max_connections": str(self.max_connections),
            "wal_level": "replica",
            "max_wal_senders": "10",
            "hot_standby": "on",
            "password_encryption": "scram-sha-256",
            "logging_collector": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
            "log_connections": "off",
            "log_min_messages": "warning",
            "dynamic_shared_memory_type": "posix",
        }
        conf.update(self.settings)
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# tests/harness/postgresql.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# tests/harness/postgresql.py: the superuser over the Unix socket only;\n"
                    "# over TCP, the role comet with its password, nothing else.\n"
                    "local all %s trust\n"
                    "local replication %s trust\n"
                    "host all comet 0.0.0.0/0 scram-sha-256\n"
                    "host all comet ::/0 scram-sha-256\n"
                    % (self.SUPERUSER, self.SUPERUSER))

    def _basebackup(self):
        primary = self._data_from
        self._run([self.bin("pg_basebackup"), "-h", primary.sockdir, "-p", str(primary.port),
                   "-U", self.SUPERUSER, "-D", self.datadir, "-R", "-X", "stream",
                   "-c", "fast", "--no-sync"], "pg_basebackup")

    def start(self):
        """Start the cluster (initdb first, the first time); returns once it
        accepts connections."""
        if self.destroyed:
            raise HarnessError("start: %s was destroyed" % self.name)
        if self.proc and self.proc.poll() is None:
            raise HarnessError("start: %s is running" % self.name)
        first = not self._initialised
        if first:
            self._make_scratch()
            live.add(live.databases, self)
            try:
                if self._data_from:
                    self._basebackup()
                else:
                    self._initdb()
            except BaseException:
                self.destroy()
                raise
            self._initialised = True
        cmd = [self.bin("postgres"), "-D", self.datadir,
               "-c", "port=%d" % self.port,
               "-c", "listen_addresses=%s" % ",".join(self.listen),
               "-c", "unix_socket_directories=%s" % self.sockdir,
               "-c", "cluster_name=%s" % self.name]
        log = open(self.logfile, "ab")
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            env["LC_ALL"] = "C"
            self.proc = subprocess.Popen(self._as_user(cmd), cwd=self.scratch, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        try:
            self.wait_ready()
            if first and not self._data_from:
                self.psql("CREATE ROLE comet LOGIN PASSWORD '%s' NOSUPERUSER NOCREATEDB "
                          "NOCREATEROLE NOREPLICATION" % self.password, database="postgres")
                self.create_database("comet")
        except BaseException:
            self.destroy()
            raise
        return self

    def wait_ready(self, timeout=START_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                raise HarnessError("postgres (%s) exited with status %s\n%s"
                                   % (self.name, self.proc.returncode, self.read_logs()))
            return subprocess.run([self.bin("pg_isready"), "-q", "-h", self.sockdir,
                                   "-p", str(self.port), "-U", self.SUPERUSER,
                                   "-d", "postgres"]).returncode == 0
        wait_until(ready, timeout, "PostgreSQL %s to accept connections" % self.name)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.destroy()

    # ------------------------------------------------------------ use

    def uri(self, database="comet", hosts=None, **params):
        """postgresql://comet:PW@127.0.0.1:PORT/DATABASE?params. hosts: a
        list of (host, port) for a multi-host URI (the password is the same
        on a standby, which is a copy)."""
        hosts = hosts or [(self.listen[0], self.port)]
        netloc = ",".join("%s:%d" % hp for hp in hosts)
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return "postgresql://comet:%s@%s/%s%s" % (self.password, netloc, database, q)

    def psql(self, sql, database="comet", timeout=60):
        """Run sql as the superuser over the Unix socket; the rows of the
        last statement, as tuples of strings (NULL: None)."""
        out = self._run([self.bin("psql"), "-X", "-q", "--csv", "-t", "-v", "ON_ERROR_STOP=1",
                         "-P", "null=\x01", "-h", self.sockdir, "-p", str(self.port),
                         "-U", self.SUPERUSER, "-d", database, "-c", sql],
                        "psql (%s)" % self.name, as_user=False, timeout=timeout)
        return [tuple(None if c == "\x01" else c for c in row)
                for row in csv.reader(io.StringIO(out)) if row]

    def session(self, database="comet"):
        """A psql session of the superuser that stays open (to hold a lock
        or a transaction across requests): .run(sql) -> output lines."""
        return PsqlSession(self, database)

    def create_database(self, name=None):
        """A new empty database owned by comet; returns its name."""
        name = name or "comet_%s" % os.urandom(4).hex()
        self.psql('CREATE DATABASE "%s" OWNER comet' % name, database="postgres")
        # Least privilege: nobody else may connect or create in it.
        self.psql('REVOKE ALL ON DATABASE "%s" FROM PUBLIC' % name, database="postgres")
        return name

    def in_recovery(self):
        return self.psql("SELECT pg_is_in_recovery()", database="postgres") == [("t",)]

    # ------------------------------------------------------------ life cycle

    def pids(self):
        """Every process of the cluster: the postmaster and its children
        (each of which is a session of its own, PostgreSQL's doing)."""
        if not self.proc or self.proc.poll() is not None:
            return []
        return [self.proc.pid] + descendants(self.proc.pid)

    def stop(self):
        """Fast shutdown (SIGINT): sessions are ended, the data kept."""
        if not self.proc:
            return
        if not signal_and_wait(self.proc, signal.SIGINT, STOP_TIMEOUT * 3):
            sys.stderr.write("harness: postgres %s ignored a fast shutdown; killing\n"
                             % self.name)
        self.kill()

    def kill(self):
        """SIGKILL the postmaster and every child at once: a crash of the
        database server (or the loss of its host)."""
        if not self.proc:
            return
        pm = self.proc.pid
        victims = []
        if self.proc.poll() is None:
            # Stopped first, so that it forks nothing between the listing
            # of its children and the kill.
            try:
                os.kill(pm, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            victims = [pm] + descendants(pm)
            for pid in victims:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass

        def gone():
            return not any(alive(p) for p in victims)
        try:
            wait_until(gone, STOP_TIMEOUT, "postgres %s processes to exit" % self.name)
        except HarnessError as e:
            sys.stderr.write("harness: %s\n" % e)

    def read_logs(self):
        try:
            with open(self.logfile, "rb") as f:
                data = f.read()
        except (OSError, TypeError):
            return ""
        if len(data) > 20000:
            data = b"[...]\n" + data[-20000:]
        return "----- postgresql.log (%s)\n%s" % (self.name, data.decode("utf-8", "replace"))

    # ------------------------------------------------------------ replication

    def standby(self, name=None, timeout=30):
        """A streaming replica of this cluster (pg_basebackup -R), on a port
        of its own, made this one's synchronous standby (every commit
        waits for it). Returns it, running."""
        sb = PostgreSQL(name=name or self.name + "-standby", listen=self.listen,
                        max_connections=self.max_connections, settings=self.settings,
                        _data_from=self)
        sb.password = self.password
        sb.primary = self
        sb.start()
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '\"%s\"'" % sb.name,
                  database="postgres")
        self.psql("ALTER SYSTEM SET synchronous_commit = 'on'", database="postgres")
        self.psql("SELECT pg_reload_conf()", database="postgres")
        wait_until(lambda: self.psql(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = '%s'"
            % sb.name, database="postgres") == [("sync",)],
            timeout, "%s to stream synchronously from %s" % (sb.name, self.name))
        return sb

    def promote(self, timeout=30):
        """pg_ctl promote; returns once the standby accepts writes."""
        self._run([self.bin("pg_ctl"), "promote", "-D", self.datadir, "-W"],
                  "pg_ctl promote")
        wait_until(lambda: not self.in_recovery(), timeout,
                   "%s to leave recovery" % self.name)
        return self
