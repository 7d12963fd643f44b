"""The Server fixture: a real lighttpd or Apache (mod_fcgid) running
comet-fcgi from the shipped configurations, on 127.0.0.1 and a free port, in
a scratch directory of its own; and the requests a test makes to it.

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
the further variables it reads from lighttpd's environment;
Server("apache", defines=[...]) starts Apache with -D NAME for the
<IfDefine> sections of apache/httpd.conf (COMET_PROXY: mod_proxy_fcgi).

Other launches extend Server through its public hooks rather than its
insides: prepare() (called once the scratch directory is ready, before the
server starts: another database path, a backend to start first), ready()
(when the server counts as started: by default /comet/stats answers;
listening() for a server whose program is expected to fail) and
finished() (once it has stopped, before its directory goes: what to keep
of it). error_log_paths(), program_pids() and stop() may be extended too.

Environment:
    COMET_FCGI          the program (default: src/comet-fcgi of the build tree)
    COMET_WWW_DIR       the document root (default: www/ of the source tree)
    LIGHTTPD, APACHE2   server binaries (default: found on PATH or /usr/sbin)
    COMET_KEEP_SCRATCH  if set, scratch directories are kept (and printed)
"""

import grp
import http.client
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

from . import live
from .netns import NetnsHTTPConnection
from .postgresql import is_postgresql_uri
from .stream import EventStream
from .traffic import read_all
from .util import (APACHE_CONF, APACHE_DIR, CRASH_RE, LIGHTTPD_CONF, PHP_CGI, START_TIMEOUT,
                   STOP_TIMEOUT, WWW_DIR, HarnessError, Response, accessible_by_others,
                   chown_tree, find_exe, free_port, kill_session, parse_header_block,
                   port_open, program_path, readable_by_others, session_members,
                   signal_and_wait, snippet_forwarded_vars, wait_until)


class Server:
    """A real web server (kind "lighttpd" or "apache") serving comet-fcgi at
    /comet/ on 127.0.0.1:<free port>, in a fresh scratch directory."""

    def __init__(self, kind, env=None, program=None, www=None, port=None,
                 config=None, server_env=None, db=None, netns=None, defines=()):
        if kind not in ("lighttpd", "apache"):
            raise ValueError("kind must be lighttpd or apache")
        if config and kind != "lighttpd":
            raise ValueError("config: lighttpd only")
        if defines and kind != "apache":
            raise ValueError("defines: apache only")
        self.kind = kind
        # Another shipped lighttpd configuration than lighttpd/lighttpd.conf
        # (one that includes the same snippet), and the variables it reads
        # from lighttpd's environment besides the ones set here (prepare()
        # may add to them).
        self.config = os.path.abspath(config) if config else None
        # Apache: names passed as -D NAME, for apache/httpd.conf's
        # <IfDefine> sections.
        self.defines = list(defines)
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
        # The log: a SQLite file in the scratch directory (default), db=
        # another SQLite file's path, or db= a postgresql:// URI shared with
        # other servers (each server is then a host of its own:
        # COMET_STATE_DIR is its scratch directory).
        self.db_arg = db
        # A harness.NetNS to run in (its own 127.0.0.1), or None.
        self.netns = netns
        self.db = db if is_postgresql_uri(db) else None
        self.logs = ""
        self._stopped = False
        self._last_answer = None     # the default ready()'s, for a start that fails
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

    def run_user(self):
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
            user, group = self.run_user()
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
            user, group = self.run_user()
            env["COMET_RUN_USER"] = user
            env["COMET_RUN_GROUP"] = group
        return env

    def _write_apache_env(self):
        path = os.path.join(self.scratch, "comet-env.conf")
        with open(path, "w") as f:
            f.write("# written by tests/harness/server.py: settings for this test\n")
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
            user, _ = self.run_user()
            pw = pwd.getpwnam(user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _command(self):
        # `ip netns exec` execs the server: its pid stays the server's.
        pre = self.netns.exec_prefix() if self.netns else []
        if self.kind == "lighttpd":
            return pre + [find_exe("LIGHTTPD", "lighttpd"), "-D", "-f",
                          self.config or LIGHTTPD_CONF]
        return pre + [find_exe("APACHE2", "apache2"), "-d", APACHE_DIR,
                      "-f", APACHE_CONF, "-DFOREGROUND"] + ["-D" + d for d in self.defines]

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

    def prepare(self):
        """A hook for launches other than the shipped one's: start() calls it
        once the scratch directory is ready (self.scratch; self.db chosen;
        the program and the site reachable by the user the server runs
        as) and before the server's settings are written and it is
        started. Here self.db, self.server_env and self.extra_env may
        still be changed, and what the server needs made or started first
        (a file system for the database, a FastCGI backend). It may raise:
        the server is then stopped as after a failed start. Does nothing
        by default."""

    def ready(self):
        """Whether the server counts as started: start() and restart() poll
        it (for START_TIMEOUT) until it says True. By default, once the
        program answers GET /comet/stats (200, or its own JSON 403 when
        publishing is closed). A launch that expects the program not to be
        healthy overrides it, e.g. with listening(). What it raises as
        OSError or HTTPException counts as not yet."""
        r = self.get("/comet/stats", headers=self.auth_headers(), timeout=5)
        self._last_answer = r
        # 403 from the program itself: up, with publishing closed.
        return r.status == 200 or (r.status == 403 and isinstance(r.json, dict))

    def listening(self):
        """Whether the web server itself accepts connections (whatever the
        program behind it does): for ready()."""
        if self.netns:
            try:
                self.netns.create_connection(("127.0.0.1", self.port), 1).close()
                return True
            except OSError:
                return False
        return port_open(self.port)

    def start(self):
        if self.proc:
            raise HarnessError("already started")
        live.add(live.servers, self)
        try:
            self._prepare_scratch()
            self.prepare()
            if self.kind == "apache":
                self._write_apache_env()
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
        """Start the server; True once ready() says so, False if it exited
        because the port was taken; raises on anything else."""
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
        last = self._last_answer = None
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
                if self.ready():
                    return True
                last = self._last_answer
            except (OSError, http.client.HTTPException) as e:
                last = e
            if time.monotonic() >= deadline:
                raise HarnessError("%s not ready after %.0f s (last answer or error: %r)\n%s"
                                   % (self.kind, START_TIMEOUT, last, self.read_logs()))
            time.sleep(interval)
            interval = min(interval * 1.5, 0.2)

    def _reap_session(self):
        """SIGKILL whatever is left of the session the server was started in
        (the server, its workers, comet-fcgi processes). Returns the count."""
        return kill_session(self.proc) if self.proc else 0

    def _halt(self):
        """SIGTERM the server, wait for it and its children, SIGKILL what is
        left of its session."""
        if self.proc and self.proc.poll() is None:
            self._note_web_pids()
            if not signal_and_wait(self.proc, signal.SIGTERM, STOP_TIMEOUT):
                sys.stderr.write("harness: %s did not stop on SIGTERM within %.0f s\n"
                                 % (self.kind, STOP_TIMEOUT))
        if self.proc:
            # The server is gone; give its children a moment to follow,
            # then kill any that are left.
            try:
                wait_until(lambda: not session_members(self.proc.pid),
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

    def finished(self):
        """A hook: stop() calls it once the server and every process it
        started have ended, before the scratch directory is removed, for a
        launch that keeps something of it (make demo keeps the logs). Does
        nothing by default."""

    def stop(self):
        """Stop the server (SIGTERM, then SIGKILL of its whole session),
        keep its logs in self.logs, and remove the scratch directory."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._halt()
            if self.scratch:
                self.finished()
        finally:
            self.logs = live.finish(self, live.servers)

    def _note_web_pids(self):
        for pid in session_members(self.proc.pid):
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
        for pid in session_members(self.proc.pid):
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
            conn = NetnsHTTPConnection(self.netns, "127.0.0.1", self.port, timeout)
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

    def read_all(self, channels, limit=1000, check=None, http_timeout=None, max_pages=1000):
        """Every retained message of channels, paged from since=0 with
        limit (harness.read_all, which says what check is)."""
        return read_all(lambda cursor: self.sub(channels, since=cursor, timeout=0, limit=limit,
                                                http_timeout=http_timeout),
                        check=check, max_pages=max_pages, what=repr(channels))

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

    def wait_for_none_waiting(self, timeout, what):
        """Poll /comet/stats until it reports no held subscriber: what the
        caller waits for (the subscribers it or a test before let go)."""
        return wait_until(lambda: self.stats()["waiting"] == 0, timeout, what)

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
        status, reason, msg = parse_header_block(head)
        return Response(status, reason, msg, body, time.monotonic() - t0)
