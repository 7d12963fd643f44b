#!/usr/bin/env python3
"""`make demo`: serve comet-fcgi under a real lighttpd (or Apache with
--apache) on 127.0.0.1, with its SQLite log in a scratch directory, and the
site in www/ (the chat demo at /chat/, PHP via php-cgi), until Ctrl-C. Uses
the shipped configuration through tests/harness/. Its logs are kept in
demo-logs/ of the current directory (the build tree) when it stops."""

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


LOGS_DIR = os.path.join(os.getcwd(), "demo-logs")


class DemoServer(harness.Server):
    """Keeps its logs when it stops (the scratch directory, database and
    all, is still removed)."""

    kept = None

    def finished(self):
        dst = os.path.join(LOGS_DIR, time.strftime("%Y%m%d-%H%M%S"))
        for p in self.error_log_paths():
            if os.path.exists(p) and os.path.getsize(p):
                os.makedirs(dst, exist_ok=True)
                shutil.copy(p, dst)
        if os.path.isdir(dst):
            self.kept = dst


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--apache", action="store_true",
                    help="use Apache + mod_fcgid instead of lighttpd")
    ap.add_argument("--port", type=int, default=0,
                    help="port on 127.0.0.1 (default: a free one)")
    args = ap.parse_args()

    kind = "apache" if args.apache else "lighttpd"
    # A token key of its own, so that the chat shows who is online
    # (chat/presence.php mints presence tokens with it).
    srv = DemoServer(kind, port=args.port or None,
                     env={"COMET_TOKEN_KEY": secrets.token_hex(16)})
    try:
        srv.start()
    except harness.HarnessError as e:
        sys.stderr.write("demo: %s\n" % e)
        return 1

    sub = srv.url("/comet/sub", "channel=demo&since=0")
    print("comet-fcgi %s under %s at %s/comet/"
          % (srv.stats().get("version", "?"), kind, srv.base_url))
    print("SQLite log: %s" % srv.db)
    if kind == "lighttpd":
        print("Logs: comet-fcgi's lines in %s, lighttpd's in %s"
              % (os.path.join(srv.scratch, "comet-fcgi.log"), os.path.join(srv.scratch, "error.log")))
    else:
        print("Logs: Apache's and comet-fcgi's lines in %s" % os.path.join(srv.scratch, "error.log"))
    print("      (copied to %s/ when the demo stops)" % LOGS_DIR)
    print("No publish key: publishing is open to loopback clients only "
          "(COMET_PUBLISH_LOOPBACK=on, a demo's setting; the default is closed).")
    print()
    print("Chat (open it in several tabs; ?transport=longpoll forces long-polling;")
    print("who is online: presence-chat, with a random COMET_TOKEN_KEY for this demo):")
    print("  %s" % srv.url("/chat/"))
    print("Subscribe (long-poll; repeat with since=<last_id> from the answer):")
    print("  curl '%s'" % sub)
    print("Event stream:")
    print("  curl -N -H 'Accept: text/event-stream' '%s'" % srv.url("/comet/sub", "channel=demo"))
    print("Publish:")
    print("  curl -X POST -H 'Content-Type: text/plain' --data-binary 'hello' '%s'"
          % srv.url("/comet/pub", "channel=demo"))
    print("Publish to the chat:")
    print("  curl -H 'Content-Type: application/json' -d '{\"name\": \"curl\", "
          "\"text\": \"hello\"}' '%s'" % srv.url("/comet/pub", "channel=chat"))
    print("Stats:")
    print("  curl '%s'" % srv.url("/comet/stats"))
    print()
    print("Ctrl-C stops %s, keeps the logs and removes the rest of the scratch directory."
          % kind)
    sys.stdout.flush()

    stop = []
    signal.signal(signal.SIGINT, lambda s, f: stop.append(s))
    signal.signal(signal.SIGTERM, lambda s, f: stop.append(s))
    status = 0
    try:
        while not stop:
            # Wait on the server process, waking once a second to notice a
            # Ctrl-C (the server runs in its own session, so the terminal's
            # SIGINT reaches only this script).
            try:
                srv.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                continue
            sys.stderr.write("demo: %s exited unexpectedly (status %s)\n%s\n"
                             % (kind, srv.proc.returncode, srv.read_logs()))
            status = 1
            break
    finally:
        print("\nstopping %s ..." % kind)
        srv.stop()
        if srv.kept:
            print("logs kept in %s" % srv.kept)
    return status


if __name__ == "__main__":
    sys.exit(main())
