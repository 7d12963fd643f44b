#!/usr/bin/env python3
"""comet-fcgi under a real Apache 2.4 + mod_fcgid, started from
apache/httpd.conf + apache/comet-fcgid.conf as shipped."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comet_cases import CometCases, MaxMessageCases, PublishKeyCases  # noqa: E402
import harness  # noqa: E402


class Apache(CometCases, unittest.TestCase):
    KIND = "apache"
    # Under mod_fcgid each held subscriber is a whole process: 200 of them,
    # spawned in a burst, all held and all answered by one publish.
    WAITERS = 200
    WAITING_WITHIN = 20


class ApacheMaxMessage(MaxMessageCases, unittest.TestCase):
    KIND = "apache"


class ApachePublishKey(PublishKeyCases, unittest.TestCase):
    KIND = "apache"


PROXY_CONF = """
server.modules = ( "mod_proxy" )
server.document-root = "%(dir)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.errorlog = "%(dir)s/error.log"
proxy.server = ( "" => ( ( "host" => "127.0.0.1", "port" => %(backend)d ) ) )
"""


class BehindReverseProxy(unittest.TestCase):
    """A reverse proxy on the same host (lighttpd's mod_proxy) in front of
    Apache: every visitor reaches comet-fcgi from 127.0.0.1. Without a
    publish key the default refuses publishing to all of them; only
    COMET_PUBLISH_LOOPBACK=on (never behind such a proxy) would let every
    visitor publish."""

    def proxied(self, loopback):
        import shutil
        import subprocess
        import tempfile
        import urllib.request
        srv = harness.Server("apache", env={"COMET_PUBLISH_LOOPBACK": loopback}).start()
        tmp = tempfile.mkdtemp(prefix="comet-front-")
        front = None
        try:
            port = harness.free_port()
            conf = os.path.join(tmp, "proxy.conf")
            with open(conf, "w") as f:
                f.write(PROXY_CONF % {"dir": tmp, "port": port, "backend": srv.port})
            front = subprocess.Popen([harness.find_exe("LIGHTTPD", "lighttpd"), "-D", "-f", conf])
            url = "http://127.0.0.1:%d/comet/" % port

            def answers():   # any HTTP answer: the proxy is up
                try:
                    with urllib.request.urlopen(url + "stats", timeout=2):
                        return True
                except urllib.error.HTTPError:
                    return True
            harness.wait_until(answers, 10, "the reverse proxy")
            results = {}
            for path, body in (("pub?channel=proxied", b"from a visitor"), ("stats", None)):
                req = urllib.request.Request(url + path, data=body,
                                             headers={"Content-Type": "text/plain"})
                try:
                    with urllib.request.urlopen(req, timeout=10) as r:
                        results[path] = r.status
                except urllib.error.HTTPError as e:
                    results[path] = e.code
            return results
        finally:
            if front:
                front.terminate()
                front.wait(10)
            srv.stop()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_visitor_cannot_publish_by_default(self):
        self.assertEqual(self.proxied("off"), {"pub?channel=proxied": 403, "stats": 403})

    def test_loopback_setting_opens_it_to_every_visitor(self):
        # Why COMET_PUBLISH_LOOPBACK is off by default.
        self.assertEqual(self.proxied("on"), {"pub?channel=proxied": 201, "stats": 200})


if __name__ == "__main__":
    harness.main()
