"""The test harness: real web servers, daemons, databases and network
namespaces running comet-fcgi for the integration tests, started from the
shipped configurations and ended at exit whatever happens. Python 3
standard library only. Tests put tests/ on sys.path and `import harness`;
every public name is here:

    server.py      Server: lighttpd or Apache (mod_fcgid, or mod_proxy_fcgi
                   in front of a daemon) running the program, and requests to it
    daemon.py      Daemon: `comet-fcgi --listen`, the standalone FastCGI daemon
    postgresql.py  PostgreSQL: a cluster of a test's own, with standbys
    psql.py        PsqlSession: a psql kept open (to hold a lock)
    netns.py       NetNS: a host in a network namespace of its own;
                   private_network() for a herd of connections
    stream.py      EventStream: a streaming answer read as it arrives
    traffic.py     read_all (the log, paged) and Publishers (in the background)
    live.py        what is running, ended at exit; main() prints the logs
                   of the servers when a test failed
    util.py        paths, time limits, HarnessError, wait_until, Response,
                   processes, free ports, building tests/bench's tools

    with harness.Server("lighttpd", env={"COMET_MAX_MESSAGE": "1024"}) as srv:
        r = srv.publish("chat", "hello")
        r = srv.get("/comet/sub", query={"channel": "chat", "since": 0})
        print(r.status, r.json)

Each module's docstring says how its fixture is used. A launch the
fixtures do not cover extends one through its public hooks (Server's
prepare() and ready(); Daemon's ready()), not its private methods.
"""

from .daemon import Daemon
from .live import dump_logs, finished_logs, keep_logs, main
from .netns import NetNS, private_network, require_private_network
from .postgresql import PostgreSQL, is_postgresql_uri, pg_bindir
from .psql import PsqlSession
from .server import Server
from .stream import EventStream
from .traffic import Publishers, read_all
from .util import (APACHE_CONF, APACHE_DIR, CRASH_RE, LIGHTTPD_CONF, LIGHTTPD_SNIPPET, PHP_CGI,
                   START_TIMEOUT, STOP_TIMEOUT, TESTS_DIR, TOP_SRCDIR, WWW_DIR, HarnessError,
                   Response, accessible_by_others, alive, build_tool, chown_tree, descendants,
                   find_exe, free_port, kill_session, parse_header_block, port_open,
                   program_path, readable_by_others, sanitized, session_members,
                   signal_and_wait, snippet_forwarded_vars, wait_until)

__all__ = [
    "Daemon", "dump_logs", "finished_logs", "keep_logs", "main", "NetNS", "private_network",
    "require_private_network", "PostgreSQL", "is_postgresql_uri", "pg_bindir",
    "PsqlSession", "Server", "EventStream", "Publishers", "read_all", "APACHE_CONF",
    "APACHE_DIR", "CRASH_RE", "LIGHTTPD_CONF", "LIGHTTPD_SNIPPET", "PHP_CGI",
    "START_TIMEOUT", "STOP_TIMEOUT", "TESTS_DIR", "TOP_SRCDIR", "WWW_DIR", "HarnessError",
    "Response", "accessible_by_others", "alive", "build_tool", "chown_tree", "descendants",
    "find_exe", "free_port", "kill_session", "parse_header_block", "port_open",
    "program_path", "readable_by_others", "sanitized", "session_members",
    "signal_and_wait", "snippet_forwarded_vars", "wait_until",
]

# The names tests reached before the harness was a package (private ones
# and a module it happened to import), for branches written against it.
_find_exe = find_exe
_session_members = session_members
_finished_logs = finished_logs
import tempfile  # noqa: E402,F401
