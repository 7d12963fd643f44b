#!/usr/bin/env python3
"""comet-fcgi under a real lighttpd (mod_fastcgi, one program process),
started from lighttpd/lighttpd.conf + lighttpd/comet-fcgi.conf as shipped."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comet_cases import CometCases, MaxMessageCases, PublishKeyCases  # noqa: E402
import harness  # noqa: E402


class Lighttpd(CometCases, unittest.TestCase):
    KIND = "lighttpd"
    # One comet-fcgi process holds them all.
    WAITERS = 250

    def test_one_program_process(self):
        ch = "one-proc"
        self.srv.publish(ch, "x")
        self.assertEqual(self.srv.get("/comet/stats").status, 200)
        self.assertEqual(len(self.srv.program_pids()), 1,
                         "max-procs 1: exactly one comet-fcgi process")


class LighttpdMaxMessage(MaxMessageCases, unittest.TestCase):
    KIND = "lighttpd"


class LighttpdPublishKey(PublishKeyCases, unittest.TestCase):
    KIND = "lighttpd"


if __name__ == "__main__":
    harness.main()
