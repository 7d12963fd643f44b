#!/usr/bin/env python3
"""A web server running comet-fcgi (tests/harness/), driven over stdin and
stdout by the browser tests (lib.js), one JSON object per line.

    serve.py lighttpd|apache [--www DIR] [NAME=VALUE ...]
                                  optional COMET_* settings; DIR: another
                                  document root than www/ (the Echo tests')

First line out: {"ok": true, "base": "http://127.0.0.1:PORT", "kind": ...}.
Then one answer per command line read:
    restart        stop the web server and start it again on the same port
    kill-program   SIGKILL every comet-fcgi process; wait until one answers
    stats          {"ok": true, "stats": {...}}
    crashes        {"ok": true, "lines": [...]}: log lines of crashed processes
    stop           stop the server and exit (so does end of input)
Errors answer {"ok": false, "error": "..."}; a start failure exits 1.
"""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def kill_program(srv):
    pids = srv.program_pids()
    if not pids:
        raise harness.HarnessError("no comet-fcgi process to kill")
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    harness.wait_until(lambda: not set(srv.program_pids()) & set(pids), 10,
                       "killed comet-fcgi processes to be gone")
    # The web server starts a new one for the next request.
    harness.wait_until(lambda: srv.get("/comet/stats", headers=srv.auth_headers(),
                                       timeout=5).status == 200,
                       15, "comet-fcgi to answer again after kill -9")
    return pids


def main():
    kind = sys.argv[1]
    args = sys.argv[2:]
    www = None
    if args[:1] == ["--www"]:
        www, args = args[1], args[2:]
    env = dict(a.split("=", 1) for a in args)
    srv = harness.Server(kind, env=env, www=www)
    try:
        srv.start()
    except harness.HarnessError as e:
        sys.stderr.write("serve.py: %s\n" % e)
        return 1
    say({"ok": True, "base": srv.base_url, "port": srv.port, "kind": kind})
    try:
        for line in sys.stdin:
            cmd = line.strip()
            if not cmd:
                continue
            try:
                if cmd == "stop":
                    break
                elif cmd == "restart":
                    srv.restart()
                    say({"ok": True})
                elif cmd == "kill-program":
                    say({"ok": True, "killed": kill_program(srv)})
                elif cmd == "stats":
                    say({"ok": True, "stats": srv.stats()})
                elif cmd == "crashes":
                    say({"ok": True, "lines": srv.crash_lines()})
                else:
                    say({"ok": False, "error": "unknown command %r" % cmd})
            except (harness.HarnessError, OSError) as e:
                say({"ok": False, "error": str(e)})
    finally:
        srv.stop()
    say({"ok": True, "stopped": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
