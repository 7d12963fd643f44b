"""What every fixture of the harness shares: the source tree's paths, the
time limits, the error a fixture raises, polling (wait_until), the HTTP
answer (Response), finding programs, files and free ports, the processes a
server leaves behind (by session or parent), and compiling the C tools of
tests/bench.

Nothing here starts a server; the fixtures (server.py, daemon.py,
postgresql.py, netns.py, stream.py) are built from it."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

# This file is tests/harness/util.py: the tests' directory is two up.
TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def find_exe(envname, name):
    """A server binary: $envname, else name on PATH or in /usr/sbin, /sbin."""
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


def port_open(port, host="127.0.0.1"):
    """Whether something accepts TCP connections on host:port now."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


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


def build_tool(name, *libs):
    """tests/bench/<name>.c compiled (-O2, $CC or gcc) into a fresh
    temporary directory; returns the program's path. For the tests that
    drive a server with the benchmark's client or compare it with a
    trivial responder."""
    src = os.path.join(TESTS_DIR, "bench", name + ".c")
    exe = os.path.join(tempfile.mkdtemp(prefix="comet-%s-" % name), name)
    subprocess.run([os.environ.get("CC", "gcc"), "-O2", "-o", exe, src] + list(libs),
                   check=True, timeout=120)
    return exe


# ------------------------------------------------------------------ answers

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


def parse_header_block(raw):
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


# ---------------------------------------------------------------- processes

def session_members(sid):
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


def alive(pid):
    """pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def descendants(root):
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


def signal_and_wait(proc, sig, timeout):
    """Sends sig to proc (a subprocess.Popen) if it still runs, and waits
    up to timeout seconds for it to end; whether it has."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
    return True


def kill_session(proc):
    """SIGKILL whatever is left of the session proc (a subprocess.Popen
    started with start_new_session) leads: it, and every worker and program
    process it started. Waits for proc; returns how many were killed."""
    killed = 0
    for pid in session_members(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    return killed
