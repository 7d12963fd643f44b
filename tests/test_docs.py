"""The settings table (comet-fcgi --help) and the documents agree: every
variable is documented in the README (and in the man page once there is
one), every variable SPEC.md names is in the table, and the README opens
with the two commands. And the tarball carries the test harness: every
module of tests/harness/ is listed in Makefile.am."""

import os
import re
import subprocess
import sys
import unittest

SRCDIR = os.environ.get("COMET_SRCDIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = os.environ.get("COMET_FCGI") or os.path.join(SRCDIR, "src", "comet-fcgi")


def table_names():
    out = subprocess.run([PROGRAM, "--help"], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^  (COMET_[A-Z_]+)\s", out, re.M)


# Names the README uses that are not the program's settings: the settings
# file's variable, and variables of the shipped configurations, of `make
# install` and of the tests. Each is named where it is used.
NOT_SETTINGS = {
    "COMET_CONFIG",         # the settings file
    "COMET_BACKEND",        # apache/comet-proxy-fcgi.conf: the daemon's address
    "COMET_HTTP_ADDR",      # lighttpd/comet-beside-apache.conf (and its unit)
    "COMET_HTTP_PORT",
    "COMET_USER",           # make install COMET_USER=...
    "COMET_FCGI",           # the tests: the program to run
    "COMET_KEEP_SCRATCH",   # the tests: keep scratch directories
    "COMET_TEST_DEB",       # tests/test_deb.py may install the .deb
}


# Settings SPEC.md names that belong to open issues, not built yet.
NOT_YET = {
    # The SPEC's settings of work not landed yet; the test below fails
    # once one of them is in the table and still here.
}


class Docs(unittest.TestCase):
    def setUp(self):
        self.names = table_names()
        self.assertGreater(len(self.names), 5, "no settings found in --help")

    def test_readme_opens_with_the_two_commands(self):
        with open(os.path.join(SRCDIR, "README")) as f:
            text = f.read()
        cmds = re.findall(r"^    (\./bootstrap.*)$", text, re.M)
        self.assertEqual(cmds[:2], ["./bootstrap && make demo", "./bootstrap && make check"])
        first = text.index("./bootstrap && make demo")
        self.assertLess(first, 400, "the two commands must come first")

    def test_readme_documents_every_setting(self):
        with open(os.path.join(SRCDIR, "README")) as f:
            text = f.read()
        for n in self.names:
            self.assertRegex(text, r"\b%s\b" % n, "%s missing from README" % n)
        documented = set(re.findall(r"\bCOMET_[A-Z_]+\b", text)) - NOT_SETTINGS
        self.assertEqual(documented - set(self.names), set(),
                         "README names settings the program does not have")
        # Each setting in the README's table, once.
        rows = re.findall(r"^\| (COMET_[A-Z_]+) \|", text, re.M)
        self.assertEqual(sorted(rows), sorted(set(rows)), "a setting twice in the table")
        self.assertEqual(set(rows), set(self.names), "the settings table and --help differ")

    def test_man_page_documents_every_setting(self):
        man = os.path.join(SRCDIR, "src", "comet-fcgi.8.in")
        if not os.path.exists(man):
            self.skipTest("no man page yet")
        with open(man) as f:
            text = f.read().replace("\\_", "_").replace("\\-", "-")
        for n in self.names + ["COMET_CONFIG"]:
            self.assertIn(n, text, "%s missing from the man page" % n)

    def test_spec_settings_are_in_the_table(self):
        spec = os.path.join(SRCDIR, "..", "shared", "SPEC.md")
        if not os.path.exists(spec):
            self.skipTest("shared/SPEC.md is not beside this tree")
        with open(spec) as f:
            text = f.read()
        section = text[text.index("## Configuration"):text.index("## Ways to run")]
        wanted = set(re.findall(r"`(COMET_[A-Z_]+)`", section)) - {"COMET_CONFIG"}
        self.assertEqual(wanted - set(self.names) - set(NOT_YET), set())
        self.assertEqual(set(NOT_YET) & set(self.names), set(),
                         "implemented: take it off NOT_YET")


class Dist(unittest.TestCase):
    def test_makefile_lists_every_harness_module(self):
        # EXTRA_DIST takes no wildcards: a module added to the package and
        # not to HARNESS would be missing from `make dist` and the .deb.
        with open(os.path.join(SRCDIR, "Makefile.am")) as f:
            text = f.read()
        m = re.search(r"^HARNESS =((?:.*\\\n)*.*)$", text, re.M)
        self.assertIsNotNone(m, "Makefile.am has no HARNESS list")
        listed = set(m.group(1).replace("\\\n", " ").split())
        package = os.path.join(SRCDIR, "tests", "harness")
        here = {"tests/harness/" + n for n in os.listdir(package) if n.endswith(".py")}
        self.assertEqual(listed, here)


if __name__ == "__main__":
    unittest.main(verbosity=2)
