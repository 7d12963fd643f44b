#!/usr/bin/env python3
"""comet-fcgi as a standalone daemon (--listen) behind Apache's
mod_proxy_fcgi, started from apache/httpd.conf + apache/comet-proxy-fcgi.conf
as shipped (with -DCOMET_PROXY): the same cases as under mod_fcgid."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comet_cases import CometCases, PublishKeyCases  # noqa: E402
import harness  # noqa: E402


class ProxyServer(harness.Server):
    """Apache with mod_proxy_fcgi in front of `comet-fcgi --listen`."""

    def __init__(self, env=None):
        super().__init__("apache", env=env, defines=["COMET_PROXY"])
        self.daemon = None

    def prepare(self):
        # The daemon runs in the server's directory, on its database, with
        # the settings the test asked for; Apache is told its address.
        self.daemon = harness.Daemon(env=self.extra_env, db=self.db, program=self.program,
                                     scratch=self.scratch).start()
        self.server_env["COMET_BACKEND"] = "127.0.0.1:%d" % self.daemon.port

    def error_log_paths(self):
        return super().error_log_paths() + ([self.daemon.log_path] if self.daemon else [])

    def program_pids(self):
        return [self.daemon.pid] if self.daemon and self.daemon.pid else []

    def stop(self):
        # The daemon first: it answers what Apache's workers are waiting
        # on, so Apache can then stop at once.
        if self.daemon:
            self.daemon.stop(timeout=5)
        super().stop()
        if self.daemon:
            self.daemon.destroy()


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
