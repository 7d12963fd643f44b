#!/usr/bin/env python3
"""comet-fcgi as a standalone daemon (--listen) behind Apache's
mod_proxy_fcgi, started from apache/httpd.conf + apache/comet-proxy-fcgi.conf
as shipped (with -DCOMET_PROXY): the same cases as under mod_fcgid."""

import os
import signal
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comet_cases import CometCases, PublishKeyCases  # noqa: E402
import harness  # noqa: E402


class ProxyServer(harness.Server):
    """Apache with mod_proxy_fcgi in front of `comet-fcgi --listen`."""

    def __init__(self, env=None):
        super().__init__("apache", env=env)
        self.daemon = None
        self.backend = None

    def _prepare_scratch(self):
        super()._prepare_scratch()
        self.backend = harness.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
        env["COMET_CONFIG"] = ""     # no settings file of this machine's
        env.update(self.extra_env)
        env["COMET_DB"] = self.db
        out = open(os.path.join(self.scratch, "daemon.out"), "ab")
        self.daemon = subprocess.Popen(
            [self.program, "--listen", "127.0.0.1:%d" % self.backend], env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()

        def listening():
            if self.daemon.poll() is not None:
                raise harness.HarnessError("comet-fcgi --listen exited: %s"
                                           % self.daemon.returncode)
            try:
                socket.create_connection(("127.0.0.1", self.backend), timeout=1).close()
                return True
            except OSError:
                return False
        harness.wait_until(listening, 10, "comet-fcgi --listen")

    def _server_env(self):
        env = super()._server_env()
        env["COMET_BACKEND"] = "127.0.0.1:%d" % self.backend
        return env

    def _command(self):
        return super()._command() + ["-DCOMET_PROXY"]

    def error_log_paths(self):
        return super().error_log_paths() + [os.path.join(self.scratch or "", "daemon.out")]

    def program_pids(self):
        return [self.daemon.pid] if self.daemon and self.daemon.poll() is None else []

    def stop(self):
        # The daemon first: it answers what Apache's workers are waiting
        # on, so Apache can then stop at once.
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(5)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        super().stop()


class ApacheProxy(CometCases, unittest.TestCase):
    KIND = "apache"
    # One daemon holds them all; Apache spends a worker thread on each.
    WAITERS = 200

    @classmethod
    def setUpClass(cls):
        cls.srv = ProxyServer().start()

    def test_one_daemon_serves_everything(self):
        self.assertEqual(self.srv.publish("proxy-one", "x").status, 201)
        self.assertEqual(len(self.srv.program_pids()), 1)


class ApacheProxyPublishKey(PublishKeyCases, unittest.TestCase):
    """mod_proxy_fcgi passes the Authorization header on."""
    KIND = "apache"

    @classmethod
    def setUpClass(cls):
        cls.srv = ProxyServer(env={"COMET_PUBLISH_KEY": cls.KEY}).start()


if __name__ == "__main__":
    harness.main()
