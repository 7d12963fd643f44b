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


if __name__ == "__main__":
    harness.main()
