"""Start real lighttpd / Apache (mod_fcgid) servers running comet-fcgi from the
shipped configurations, and talk to them. Python 3 standard library only.

    with harness.Server("lighttpd", env={"COMET_MAX_MESSAGE": "1024"}) as srv:
        r = srv.publish("chat", "hello")
        r = srv.get("/comet/sub", query={"channel": "chat", "since": 0})
        print(r.status, r.json)

The shipped files are used unchanged: lighttpd/lighttpd.conf (which includes
lighttpd/comet-fcgi.conf) and apache/httpd.conf (which includes
apache/comet-fcgid.conf) take every port and path from the environment the
server is started with (lighttpd's env.NAME, Apache's ${NAME}). Both serve
the site in www/ (comet.js, comet.php, the chat demo; PHP via php-cgi) as the
document root, so srv.url("/chat/") is the chat demo. The only
generated file is, for Apache, <scratch>/comet-env.conf holding FcgidInitialEnv
lines for the optional COMET_* settings a test asks for, COMET_DB (which
apache/comet-fcgid.conf passes only under a Define) and COMET_STATE_DIR;
lighttpd copies those from its own environment (bin-copy-environment). The
program reads no settings file of this machine's (COMET_CONFIG is empty
unless a test gives one): a `make install` or a package on the machine
must not change what the tests see. Server("lighttpd",
config=<another shipped configuration>, server_env={...}) runs one that
includes the same snippet, such as lighttpd/comet-beside-apache.conf, with
the further variables it reads from lighttpd's environment.

Environment:
    COMET_FCGI          the program (default: src/comet-fcgi of the build tree)
    COMET_WWW_DIR       the document root (default: www/ of the source tree)
    LIGHTTPD, APACHE2   server binaries (default: found on PATH or /usr/sbin)
    COMET_KEEP_SCRATCH  if set, scratch directories are kept (and printed)
"""

import atexit
import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.path.dirname(TESTS_DIR)
LIGHTTPD_CONF = os.path.join(TOP_SRCDIR, "lighttpd", "lighttpd.conf")
LIGHTTPD_SNIPPET = os.path.join(TOP_SRCDIR, "lighttpd", "comet-fcgi.conf")
WWW_DIR = os.path.join(TOP_SRCDIR, "www")
# lighttpd/lighttpd.conf starts PHP from here (lighttpd will not start
# without it); apache/httpd.conf serves PHP only when it exists.
PHP_CGI = "/usr/bin/php-cgi"
APACHE_DIR = os.path.join(TOP_SRCDIR, "apache")
APACHE_CONF = "httpd.conf"  # relative to APACHE_DIR, which becomes ServerRoot

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def private_network(somaxconn=65535):
    """Moves this process (call it before starting any thread or server) into
    a network namespace of its own, with the loopback interface up and the
    listen-queue cap net.core.somaxconn raised there: the kernel caps every
    listen backlog at it (4096 by default), and a herd of thousands of
    subscribers connects at once. Every server and client started afterwards
    runs in it; nothing outside is touched. Returns None, or why it could
    not (not root, no user of namespaces here), for a test to skip with."""
    import ctypes
    import fcntl
    import struct
    CLONE_NEWNET = 0x40000000
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifr)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    try:
        with open("/proc/sys/net/core/somaxconn", "w") as f:
            f.write(str(somaxconn))
    except OSError as e:
        return "net.core.somaxconn: %s" % e
    return None


class HarnessError(Exception):
    pass


# Log lines meaning a comet-fcgi process died or misbehaved. Both lighttpd and
# mod_fcgid quietly start a new process after a crash, so "the next request
# works" alone would not notice one.
CRASH_RE = re.compile(
    r"child signalled|child exited"
    r"|End of script output before headers|FastCGI server closed connection"
    r"|get unexpected signal|AddressSanitizer|LeakSanitizer|runtime error:"
    r"|Segmentation fault|core dumped|Assertion .* failed")


def _find_exe(envname, name):
    v = os.environ.get(envname)
    if v:
        return v
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    return found or os.path.join("/usr/sbin", name)


def program_path():
    """The comet-fcgi binary: $COMET_FCGI, else src/comet-fcgi of the build
    tree (the current directory when run by `make check`), else the one next
    to this source tree."""
    v = os.environ.get("COMET_FCGI")
    if v:
        return os.path.abspath(v)
    for cand in (os.path.join(os.getcwd(), "src", "comet-fcgi"),
                 os.path.join(TOP_SRCDIR, "src", "comet-fcgi")):
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return os.path.join(TOP_SRCDIR, "src", "comet-fcgi")


def sanitized():
    """Whether the program is an ASan build (configure --enable-sanitizers),
    where tests that measure time stretch their limits: that run checks
    memory safety, the normal build the figures."""
    with open(program_path(), "rb") as f:
        return b"__asan_init" in f.read()


def accessible_by_others(path):
    """Can an unrelated user execute path (every directory searchable)?"""
    p = os.path.abspath(path)
    try:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
        d = os.path.dirname(p)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def readable_by_others(path):
    """Can an unrelated user read path (every directory searchable)?"""
    p = os.path.abspath(path)
    try:
        return bool(os.stat(p).st_mode & stat.S_IROTH) and accessible_by_others(os.path.dirname(p))
    except OSError:
        return False


def chown_tree(top, uid, gid):
    """chown -R: top and everything below it."""
    for root, dirs, files in os.walk(top):
        for n in dirs + files:
            os.chown(os.path.join(root, n), uid, gid)
    os.chown(top, uid, gid)


def free_port():
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.01):
    """Poll predicate() until it returns a true value (returned), or raise
    HarnessError after timeout seconds. Backs off from 10 ms to 100 ms."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = predicate()
            if v:
                return v
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            raise HarnessError("timed out after %.1f s waiting for %s%s" % (
                timeout, what, " (last error: %r)" % (last_exc,) if last_exc else ""))
        time.sleep(interval)
        interval = min(interval * 1.5, 0.1)


def snippet_forwarded_vars():
    """Names the lighttpd snippet copies from lighttpd's environment."""
    with open(LIGHTTPD_SNIPPET) as f:
        text = f.read()
    m = re.search(r'"bin-copy-environment"\s*=>\s*\((.*?)\)', text, re.S)
    if not m:
        return set()
    body = "\n".join(line.split("#", 1)[0] for line in m.group(1).splitlines())
    return set(re.findall(r'"([A-Za-z0-9_]+)"', body))


class Response:
    def __init__(self, status, reason, headers, body, elapsed):
        self.status = status
        self.reason = reason
        self.headers = headers      # email.message.Message: case-insensitive .get()
        self.body = body            # bytes
        self.elapsed = elapsed      # seconds
        try:
            self.json = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            self.json = None

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def __repr__(self):
        body = self.body[:300]
        return "<Response %d %s %r>" % (self.status, self.content_type, body)


def _parse_header_block(raw):
    """Parse an HTTP/1.x header block (bytes) as written by curl -D -."""
    lines = raw.decode("iso-8859-1").split("\r\n")
    status_line = lines[0]
    parts = status_line.split(" ", 2)
    status = int(parts[1])
    reason = parts[2] if len(parts) > 2 else ""
    msg = http.client.HTTPMessage()
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        msg[k.strip()] = v.strip()
    return status, reason, msg


# Every server started and not yet stopped, stopped at interpreter exit even
# after a failure; and the logs of stopped servers, for printing on failure.
_live = []
_finished_logs = []
_live_lock = threading.Lock()


def _stop_all():
    # Web servers first, then the databases they use, then the network
    # namespaces either may listen in.
    for live, end, what in ((_live, "stop", "stopping %s"),
                            (_live_pg, "destroy", "stopping PostgreSQL %s"),
                            (_live_netns, "destroy", "removing namespace %s")):
        with _live_lock:
            items = list(live)
        for it in items:
            try:
                getattr(it, end)()
            except Exception as e:  # keep stopping the others
                sys.stderr.write(("harness: " + what + ": %r\n")
                                 % (getattr(it, "name", None) or it.kind, e))


atexit.register(_stop_all)


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


def _session_members(sid):
    """PIDs of processes in session sid (the server and everything it started
    that did not start its own session)."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                data = f.read()
        except OSError:
            continue
        # comm may contain spaces/parens: fields after the last ')'
        rest = data.rsplit(")", 1)[1].split()
        # rest[0]=state, [1]=ppid, [2]=pgrp, [3]=session
        if int(rest[3]) == sid and rest[0] != "Z":
            pids.append(int(d))
    return pids


def _alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _descendants(root):
    """PIDs of every living descendant of root (by parent pid)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if rest[0] != "Z":
            children.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _finish(obj, live):
    """A stopped server or database: its logs kept for the report, taken
    off live, its scratch directory removed (unless COMET_KEEP_SCRATCH).
    Returns the logs."""
    logs = obj.read_logs()
    if logs:
        _finished_logs.append(logs)
    with _live_lock:
        if obj in live:
            live.remove(obj)
    if obj.scratch:
        if os.environ.get("COMET_KEEP_SCRATCH"):
            sys.stderr.write("harness: kept %s\n" % obj.scratch)
        else:
            shutil.rmtree(obj.scratch, ignore_errors=True)
    return logs


class Server:
    """A real web server (kind "lighttpd" or "apache") serving comet-fcgi at
    /comet/ on 127.0.0.1:<free port>, in a fresh scratch directory."""

    def __init__(self, kind, env=None, program=None, www=None, port=None,
                 config=None, server_env=None, db=None, netns=None):
        if kind not in ("lighttpd", "apache"):
            raise ValueError("kind must be lighttpd or apache")
        if config and kind != "lighttpd":
            raise ValueError("config: lighttpd only")
        self.kind = kind
        # Another shipped lighttpd configuration than lighttpd/lighttpd.conf
        # (one that includes the same snippet), and the variables it reads
        # from lighttpd's environment besides the ones set here.
        self.config = os.path.abspath(config) if config else None
        self.server_env = {k: str(v) for k, v in (server_env or {}).items()}
        self.extra_env = {k: str(v) for k, v in (env or {}).items()}
        for k in self.extra_env:
            if not k.startswith("COMET_") or k == "COMET_DB":
                raise ValueError("env may only set optional COMET_* settings: %s" % k)
        if kind == "lighttpd":
            missing = set(self.extra_env) - snippet_forwarded_vars()
            if missing:
                raise ValueError("lighttpd/comet-fcgi.conf does not forward %s"
                                 % ", ".join(sorted(missing)))
        self.program = program or program_path()
        self.www = os.path.abspath(www or os.environ.get("COMET_WWW_DIR") or WWW_DIR)
        self.publish_key = self.extra_env.get("COMET_PUBLISH_KEY")
        # Without a key, publishing is closed by default; the tests' clients
        # are on loopback, so a server without a key lets loopback in unless
        # the test says otherwise (the secure default is tested on its own).
        if not self.publish_key:
            self.extra_env.setdefault("COMET_PUBLISH_LOOPBACK", "on")
        self.proc = None
        self.scratch = None
        self.fixed_port = port       # None: a free one
        self.port = None
        # The log: a SQLite file in the scratch directory (default), or
        # db= a postgresql:// URI shared with other servers (each server is
        # then a host of its own: COMET_STATE_DIR is its scratch directory).
        self.db_arg = db
        # A harness.NetNS to run in (its own 127.0.0.1), or None.
        self.netns = netns
        self.db = db if is_postgresql_uri(db) else None
        self.logs = ""
        self._stopped = False
        # Apache's own worker processes, as seen before each stop: their
        # exits are Apache's, not the program's (crash_lines).
        self._web_pids = set()

    # ---------------------------------------------------------------- setup

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def storage(self):
        """"postgresql" or "sqlite": what the program's COMET_DB names.
        (Not "backend": tests/integration/test_proxy.py's server has its
        FastCGI backend's port under that name.)"""
        return "postgresql" if is_postgresql_uri(self.db) else "sqlite"

    @property
    def state_dir(self):
        """This host's own directory (COMET_STATE_DIR): the scratch one."""
        return self.scratch

    def _run_user(self):
        """(user, group) the workers and the program run as."""
        if os.geteuid() != 0:
            return (pwd.getpwuid(os.geteuid()).pw_name,
                    grp.getgrgid(os.getegid()).gr_name)
        for user in ("www-data", "nobody"):
            try:
                pw = pwd.getpwnam(user)
            except KeyError:
                continue
            return user, grp.getgrgid(pw.pw_gid).gr_name
        raise HarnessError("no www-data or nobody user to run Apache as")

    def _prepare_scratch(self):
        self.scratch = tempfile.mkdtemp(prefix="comet-%s-" % self.kind)
        if (self.kind == "apache" and os.geteuid() == 0
                and not accessible_by_others(os.path.dirname(self.scratch))):
            # $TMPDIR is closed to the user Apache will run as; use /tmp.
            os.rmdir(self.scratch)
            self.scratch = tempfile.mkdtemp(prefix="comet-%s-" % self.kind, dir="/tmp")
        if not self.db_arg:
            self.db = os.path.join(self.scratch, "comet.db")
        elif not is_postgresql_uri(self.db_arg):
            self.db = os.path.abspath(self.db_arg)
        if not (os.path.isfile(self.program) and os.access(self.program, os.X_OK)):
            raise HarnessError("comet-fcgi program not found or not executable: %s "
                               "(build it, or set COMET_FCGI)" % self.program)
        if not os.path.isdir(self.www):
            raise HarnessError("document root not found: %s (set COMET_WWW_DIR)" % self.www)
        if (self.kind == "lighttpd" and not self.config
                and not os.access(PHP_CGI, os.X_OK)):
            raise HarnessError("lighttpd/lighttpd.conf runs PHP with %s: install php-cgi"
                               % PHP_CGI)
        if self.kind == "apache" and os.geteuid() == 0:
            # Apache serves as COMET_RUN_USER: the program must be reachable
            # and the scratch directory (DB, -notify, WAL, fcgid sockets)
            # writable for that user.
            user, group = self._run_user()
            pw = pwd.getpwnam(user)
            if not accessible_by_others(self.program):
                bindir = os.path.join(self.scratch, "bin")
                os.mkdir(bindir)
                dst = os.path.join(bindir, "comet-fcgi")
                shutil.copy2(self.program, dst)
                self.program = dst
            if not readable_by_others(os.path.join(self.www, "comet.js")):
                # The site is readable only by root here; serve a copy.
                dst = os.path.join(self.scratch, "www")
                shutil.copytree(self.www, dst)
                self.www = dst
            chown_tree(self.scratch, pw.pw_uid, pw.pw_gid)
        os.chmod(self.scratch, 0o755)

    def _server_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
        env.update({
            "COMET_HTTP_PORT": str(self.port),
            # lighttpd's own files (lighttpd/*.conf), and the program's
            # (this host's state, with PostgreSQL).
            "COMET_LIGHTTPD_DIR": self.scratch,
            "COMET_STATE_DIR": self.scratch,
            "COMET_CONFIG": "",
            "COMET_FCGI": self.program,
            "COMET_DB": self.db,
            "COMET_WWW_DIR": self.www,
        })
        env.update(self.server_env)
        if self.kind == "lighttpd":
            env.update(self.extra_env)
        else:
            user, group = self._run_user()
            env["COMET_RUN_USER"] = user
            env["COMET_RUN_GROUP"] = group
        return env

    def _write_apache_env(self):
        path = os.path.join(self.scratch, "comet-env.conf")
        with open(path, "w") as f:
            f.write("# written by tests/harness.py: settings for this test\n")
            env = dict(self.extra_env)
            # mod_fcgid passes the program nothing of Apache's environment:
            # this host's state directory (lighttpd copies it, see
            # lighttpd/comet-fcgi.conf), and the log: apache/comet-fcgid.conf
            # passes COMET_DB only under a `Define COMET_DB` (a URI holds a
            # password), which an environment variable is not.
            env["COMET_STATE_DIR"] = self.scratch
            env["COMET_DB"] = self.db
            env.setdefault("COMET_CONFIG", "")
            for k, v in sorted(env.items()):
                v = v.replace("\\", "\\\\").replace('"', '\\"')
                f.write('FcgidInitialEnv %s "%s"\n' % (k, v))
        if os.geteuid() == 0:
            user, _ = self._run_user()
            pw = pwd.getpwnam(user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _command(self):
        # `ip netns exec` execs the server: its pid stays the server's.
        pre = self.netns.exec_prefix() if self.netns else []
        if self.kind == "lighttpd":
            return pre + [_find_exe("LIGHTTPD", "lighttpd"), "-D", "-f",
                          self.config or LIGHTTPD_CONF]
        return pre + [_find_exe("APACHE2", "apache2"), "-d", APACHE_DIR,
                      "-f", APACHE_CONF, "-DFOREGROUND"]

    def error_log_paths(self):
        if not self.scratch:
            return []
        # comet-fcgi.log: the programs' stderr (lighttpd.conf's
        # server.breakagelog).
        return [os.path.join(self.scratch, n)
                for n in ("server.out", "error.log", "comet-fcgi.log", "access.log")]

    def read_logs(self):
        out = []
        for p in self.error_log_paths():
            try:
                with open(p, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if len(data) > 20000:
                data = b"[...]\n" + data[-20000:]
            out.append("----- %s (%s)\n%s" % (os.path.basename(p), self.kind,
                                              data.decode("utf-8", "replace")))
        return "\n".join(out)

    def start(self):
        if self.proc:
            raise HarnessError("already started")
        self._prepare_scratch()
        if self.kind == "apache":
            self._write_apache_env()
        with _live_lock:
            _live.append(self)
        try:
            for attempt in range(1 if self.fixed_port else 3):
                self.port = self.fixed_port or free_port()
                if self._spawn_and_wait():
                    return self
            if self.fixed_port:
                raise HarnessError("%s: port %d is in use\n%s"
                                   % (self.kind, self.fixed_port, self.read_logs()))
            raise HarnessError("%s: could not bind a port after 3 attempts\n%s"
                               % (self.kind, self.read_logs()))
        except BaseException:
            self.stop()
            raise

    def _spawn_and_wait(self):
        """Start the server; True once /comet/stats answers (200, or the
        program's 403 when publishing is closed), False if it
        exited because the port was taken; raises on anything else."""
        out = open(os.path.join(self.scratch, "server.out"), "ab")
        try:
            self.proc = subprocess.Popen(
                self._command(), cwd=self.scratch, env=self._server_env(),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + START_TIMEOUT
        interval = 0.01
        last = None
        while True:
            if self.proc.poll() is not None:
                status = self.proc.returncode
                self._reap_session()
                self.proc = None
                logs = self.read_logs()
                if "in use" in logs or "(98)" in logs:
                    return False
                raise HarnessError("%s exited with status %s during start\n%s"
                                   % (self.kind, status, logs))
            try:
                r = self.get("/comet/stats", headers=self.auth_headers(), timeout=5)
                # 403 from the program itself: up, with publishing closed.
                if r.status == 200 or (r.status == 403 and isinstance(r.json, dict)):
                    return True
                last = r
            except (OSError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() >= deadline:
                raise HarnessError("%s not ready after %.0f s (last answer to GET "
                                   "/comet/stats: %r)\n%s" % (self.kind, START_TIMEOUT,
                                                              last, self.read_logs()))
            time.sleep(interval)
            interval = min(interval * 1.5, 0.2)

    def _reap_session(self):
        """SIGKILL whatever is left of the session the server was started in
        (the server, its workers, comet-fcgi processes). Returns the count."""
        if not self.proc:
            return 0
        sid = self.proc.pid
        killed = 0
        for pid in _session_members(sid):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        return killed

    def _halt(self):
        """SIGTERM the server, wait for it and its children, SIGKILL what is
        left of its session."""
        if self.proc and self.proc.poll() is None:
            self._note_web_pids()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                sys.stderr.write("harness: %s did not stop on SIGTERM within %.0f s\n"
                                 % (self.kind, STOP_TIMEOUT))
        if self.proc:
            # The server is gone; give its children a moment to follow,
            # then kill any that are left.
            try:
                wait_until(lambda: not _session_members(self.proc.pid),
                           STOP_TIMEOUT / 2, "%s children to exit" % self.kind)
            except HarnessError:
                pass
            left = self._reap_session()
            if left:
                sys.stderr.write("harness: killed %d leftover process(es) of %s\n"
                                 % (left, self.kind))

    def restart(self, while_stopped=None):
        """Stop the web server (and with it every comet-fcgi process) and
        start it again on the same port, with the same scratch directory and
        database: what clients see when a site's server is restarted.
        while_stopped() runs in between (to change the files, say).
        Returns once /comet/stats answers again."""
        if not self.proc or self._stopped:
            raise HarnessError("restart: %s is not running" % self.kind)
        self._halt()
        self.proc = None
        if while_stopped:
            while_stopped()
        # The port was ours a moment ago; another process taking it in
        # between would be a fluke, but say so rather than hang.
        if not self._spawn_and_wait():
            raise HarnessError("restart: port %d was taken meanwhile\n%s"
                               % (self.port, self.read_logs()))
        return self

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL of its whole session),
        keep its logs in self.logs, and remove the scratch directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._halt()
        finally:
            self.logs = _finish(self, _live)

    def _note_web_pids(self):
        for pid in _session_members(self.proc.pid):
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                continue
            if os.path.basename(exe).startswith("apache2"):
                self._web_pids.add(pid)

    def crash_lines(self):
        """Lines of the server's logs that report a crashed program process.
        Apache's "AH00052: child pid N exit signal" is about one of its own
        worker processes (mod_fcgid logs its programs' ends itself): not the
        program's, when N was an apache2 process of this server."""
        out = []
        for p in self.error_log_paths():
            try:
                with open(p, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for line in text.splitlines():
                m = re.search(r"AH00052: child pid (\d+) exit signal", line)
                if m and int(m.group(1)) in self._web_pids:
                    sys.stderr.write("harness: an Apache worker, not the program: %s\n" % line)
                    continue
                if CRASH_RE.search(line):
                    out.append(line)
        return out

    def program_pids(self):
        """PIDs of the comet-fcgi processes this server is running."""
        if not self.proc:
            return []
        want = os.path.realpath(self.program)
        pids = []
        for pid in _session_members(self.proc.pid):
            try:
                exe = os.readlink("/proc/%d/exe" % pid)
            except OSError:
                continue
            if exe == want:
                pids.append(pid)
        return pids

    # -------------------------------------------------------------- requests

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.port

    def url(self, path, query=None):
        return self.base_url + self.path(path, query)

    @staticmethod
    def path(path, query=None):
        if query:
            if isinstance(query, str):
                q = query
            else:
                q = urllib.parse.urlencode(query, doseq=True)
            path += ("&" if "?" in path else "?") + q
        return path

    def auth_headers(self):
        if self.publish_key:
            return {"Authorization": "Bearer " + self.publish_key}
        return {}

    def request(self, method, path, query=None, body=None, headers=None, timeout=10):
        """One HTTP/1.1 request on a fresh connection. path is sent as given
        (so malformed percent-encoding reaches the server); query (dict, list
        of pairs or string) is appended. Returns a Response."""
        if self.netns:
            conn = _NetnsHTTPConnection(self.netns, "127.0.0.1", self.port, timeout)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        t0 = time.monotonic()
        try:
            hdrs = {"Connection": "close"}
            hdrs.update(headers or {})
            if isinstance(body, str):
                body = body.encode("utf-8")
            conn.request(method, self.path(path, query), body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, resp.reason, resp.msg, data,
                            time.monotonic() - t0)
        finally:
            conn.close()

    def get(self, path, query=None, **kw):
        return self.request("GET", path, query=query, **kw)

    def post(self, path, query=None, body=b"", **kw):
        return self.request("POST", path, query=query, body=body, **kw)

    def sub(self, channels, since=None, timeout=None, limit=None, headers=None,
            extra=None, http_timeout=None):
        """GET /comet/sub with the given parameters (channels: str or list)."""
        q = []
        for c in ([channels] if isinstance(channels, str) else channels):
            q.append(("channel", c))
        if since is not None:
            q.append(("since", str(since)))
        if timeout is not None:
            q.append(("timeout", str(timeout)))
        if limit is not None:
            q.append(("limit", str(limit)))
        q.extend(extra or [])
        if http_timeout is None:
            http_timeout = (timeout if timeout is not None else 25) + 15
        return self.get("/comet/sub", query=q, headers=headers, timeout=http_timeout)

    def open_stream(self, path, query=None, headers=None):
        """Start a streaming GET (HTTP/1.0, so the body is not chunked and
        ends when the server closes). Returns an EventStream."""
        return EventStream(self.port, self.path(path, query), headers or {}, self.netns)

    def stats(self):
        r = self.get("/comet/stats", headers=self.auth_headers())
        if r.status != 200 or not isinstance(r.json, dict):
            raise HarnessError("GET /comet/stats: %r" % (r,))
        return r.json

    def wait_for_waiting(self, n, timeout=20):
        """Poll /comet/stats until it reports at least n held subscribers."""
        def check():
            st = self.stats()
            return st if st.get("waiting", 0) >= n else None
        return wait_until(check, timeout, "%d waiting subscribers on %s" % (n, self.kind))

    def publish(self, channel, data, content_type="text/plain", headers=None,
                auth=True, timeout=15):
        """POST data to /comet/pub?channel=... with curl, the way a site's
        backend would (a separate process). Returns a Response."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        cmd = (self.netns.exec_prefix() if self.netns else []) + [
               "curl", "-sS", "-D", "-", "--max-time", str(timeout),
               "-X", "POST", "--data-binary", "@-",
               "-H", "Expect:"]  # no 100-continue round trip for big bodies
        if content_type is not None:
            cmd += ["-H", "Content-Type: " + content_type]
        else:
            cmd += ["-H", "Content-Type:"]
        hdrs = dict(self.auth_headers()) if auth else {}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            cmd += ["-H", "%s: %s" % (k, v)]
        q = urllib.parse.urlencode({"channel": channel}) if channel is not None else None
        cmd.append(self.url("/comet/pub", q))
        t0 = time.monotonic()
        p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout + 5)
        if p.returncode != 0:
            raise HarnessError("curl failed (%d): %s" % (p.returncode,
                                                         p.stderr.decode(errors="replace")))
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        status, reason, msg = _parse_header_block(head)
        return Response(status, reason, msg, body, time.monotonic() - t0)



# ------------------------------------------------------------------ PostgreSQL

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


_live_pg = []


class PostgreSQL:
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
        self._destroyed = False
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

    def _bin(self, name):
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
        self._run([self._bin("initdb"), "-D", self.datadir, "-U", self.SUPERUSER,
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
            f.write("\n# tests/harness.py\n")
            for k, v in conf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("# tests/harness.py: the superuser over the Unix socket only;\n"
                    "# over TCP, the role comet with its password, nothing else.\n"
                    "local all %s trust\n"
                    "local replication %s trust\n"
                    "host all comet 0.0.0.0/0 scram-sha-256\n"
                    "host all comet ::/0 scram-sha-256\n"
                    % (self.SUPERUSER, self.SUPERUSER))

    def _basebackup(self):
        primary = self._data_from
        self._run([self._bin("pg_basebackup"), "-h", primary.sockdir, "-p", str(primary.port),
                   "-U", self.SUPERUSER, "-D", self.datadir, "-R", "-X", "stream",
                   "-c", "fast", "--no-sync"], "pg_basebackup")

    def start(self):
        """Start the cluster (initdb first, the first time); returns once it
        accepts connections."""
        if self._destroyed:
            raise HarnessError("start: %s was destroyed" % self.name)
        if self.proc and self.proc.poll() is None:
            raise HarnessError("start: %s is running" % self.name)
        first = not self._initialised
        if first:
            self._make_scratch()
            with _live_lock:
                _live_pg.append(self)
            try:
                if self._data_from:
                    self._basebackup()
                else:
                    self._initdb()
            except BaseException:
                self.destroy()
                raise
            self._initialised = True
        cmd = [self._bin("postgres"), "-D", self.datadir,
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
            return subprocess.run([self._bin("pg_isready"), "-q", "-h", self.sockdir,
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
        import csv
        import io
        out = self._run([self._bin("psql"), "-X", "-q", "--csv", "-t", "-v", "ON_ERROR_STOP=1",
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
        return [self.proc.pid] + _descendants(self.proc.pid)

    def stop(self):
        """Fast shutdown (SIGINT): sessions are ended, the data kept."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT * 3)
            except subprocess.TimeoutExpired:
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
            victims = [pm] + _descendants(pm)
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
            return not any(_alive(p) for p in victims)
        try:
            wait_until(gone, STOP_TIMEOUT, "postgres %s processes to exit" % self.name)
        except HarnessError as e:
            sys.stderr.write("harness: %s\n" % e)

    def destroy(self):
        """Stop for good and remove the scratch directory."""
        if self._destroyed:
            return
        self._destroyed = True
        try:
            self.stop()
        finally:
            _finish(self, _live_pg)

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
        self._run([self._bin("pg_ctl"), "promote", "-D", self.datadir, "-W"],
                  "pg_ctl promote")
        wait_until(lambda: not self.in_recovery(), timeout,
                   "%s to leave recovery" % self.name)
        return self



class PsqlSession:
    """One psql process kept open; see PostgreSQL.session()."""

    def __init__(self, pg, database):
        import queue
        self.name = pg.name
        self.proc = subprocess.Popen(
            [pg._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
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
        import queue
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


# ------------------------------------------------------------ network namespaces

_live_netns = []
CLONE_NEWNET = 0x40000000


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise HarnessError("ip %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
    return p


class NetNS:
    """A network namespace of the test's own (`ip netns add`), joined to the
    root namespace by a veth pair: `root_addr` on the root side, `addr`
    inside, a /30 picked at random in 10.213.0.0/16 (none of the machine's
    own); lo is up inside. A server started with Server(..., netns=ns) runs
    under `ip netns exec` and listens on the namespace's 127.0.0.1, which
    the harness's clients reach by making their sockets inside it
    (setns(2) on the calling thread only). Needs root. Removed, with its
    link, by destroy() and at exit.

        ns = harness.NetNS("a").create()
        pg = harness.PostgreSQL(listen=[ns.root_addr]).start()
        srv = harness.Server("lighttpd", netns=ns,
                             db=pg.uri(hosts=[(ns.root_addr, pg.port)])).start()
        ns.link(False)     # the host drops off the network (and back: True)
    """

    def __init__(self, tag="h"):
        rnd = os.urandom(3).hex()
        self.name = "comet-%s-%s" % (tag, rnd)
        self.root_if = "cv%sr" % rnd      # at most 15 characters
        self.ns_if = "cv%sn" % rnd
        self.root_addr = self.addr = None
        self._created = False

    @staticmethod
    def unavailable():
        """None, or why namespaces cannot be made here."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if not shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return "no ip (iproute2)"
        return None

    def _pick_subnet(self):
        used = _ip("-4", "-o", "addr", "show").stdout.decode()
        for _ in range(100):
            b = os.urandom(2)
            base = "10.213.%d.%d" % (b[0], (b[1] & 0xfc))
            net = base.rsplit(".", 1)[0] + "."
            last = int(base.rsplit(".", 1)[1])
            cand = (net + str(last + 1), net + str(last + 2))
            if not any(re.search(r"\binet %s/" % re.escape(c), used) for c in cand):
                return cand
        raise HarnessError("no free /30 in 10.213.0.0/16")

    def create(self):
        why = self.unavailable()
        if why:
            raise HarnessError(why)
        with _live_lock:
            _live_netns.append(self)
        self._created = True
        try:
            self.root_addr, self.addr = self._pick_subnet()
            _ip("netns", "add", self.name)
            _ip("link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", self.root_addr + "/30", "dev", self.root_if)
            _ip("link", "set", self.root_if, "up")
            for args in (("link", "set", "lo", "up"),
                         ("addr", "add", self.addr + "/30", "dev", self.ns_if),
                         ("link", "set", self.ns_if, "up")):
                _ip("-n", self.name, *args)
        except BaseException:
            self.destroy()
            raise
        return self

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()

    def link(self, up):
        """Bring the root side of the veth pair up or down: the namespace
        is on the network, or cut off from it (packets are dropped, not
        refused)."""
        _ip("link", "set", self.root_if, "up" if up else "down")

    def exec_prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, fn):
        """fn() with this thread in the namespace (sockets made there stay
        there), then back."""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, \
                open("/run/netns/%s" % self.name) as there:
            if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise HarnessError("setns %s: %s" % (self.name, os.strerror(ctypes.get_errno())))
            try:
                return fn()
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    # This thread cannot go home: nothing it does is trustworthy.
                    os._exit(70)

    def socket(self):
        return self.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def create_connection(self, addr, timeout):
        s = self.socket()
        try:
            s.settimeout(timeout)
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        return s

    def destroy(self):
        if not self._created:
            return
        self._created = False
        # Deleting the namespace deletes its end of the pair and with it
        # the other; the explicit delete is for a half-made pair.
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.root_if, check=False)
        with _live_lock:
            if self in _live_netns:
                _live_netns.remove(self)


class _NetnsHTTPConnection(http.client.HTTPConnection):
    """http.client's connection, its socket made inside a namespace."""

    def __init__(self, netns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self):
        self.sock = self.netns.create_connection((self.host, self.port), self.timeout)


class EventStream:
    """A raw streaming response: .status, .headers once read_head() is done,
    then read_until() for body bytes as they arrive."""

    def __init__(self, port, path, headers, netns=None):
        if netns:
            self.sock = netns.create_connection(("127.0.0.1", port), 10)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = ["GET %s HTTP/1.0" % path, "Host: 127.0.0.1:%d" % port]
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.buf = b""
        self.closed = False
        self.status = None
        self.headers = None

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("stream: nothing new in time; have %r" % self.buf[-300:])
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("stream: nothing new in time; have %r" % self.buf[-300:])
        if not data:
            self.closed = True
        self.buf += data

    def read_head(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.closed:
                raise HarnessError("stream closed before headers: %r" % self.buf)
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status, _, self.headers = _parse_header_block(head)
        return self

    def read_until(self, needle, timeout=10):
        """Body bytes up to and including needle (consumed)."""
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            if self.closed:
                raise HarnessError("stream closed before %r: %r" % (needle, self.buf))
            self._fill(deadline)
        i = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def dump_logs(stream=sys.stderr):
    """Write the logs of every server stopped so far, and of live ones."""
    with _live_lock:
        live = list(_live) + list(_live_pg)
    chunks = list(_finished_logs) + [s.read_logs() for s in live]
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
    _stop_all()
    sys.exit(0 if ok else 1)
