#!/usr/bin/env python3
"""The Debian package, as an admin meets it: `dpkg-buildpackage -us -uc -b`
on a copy of the source tree builds comet-fcgi_<version>_<arch>.deb, lintian
finds no error in it, and `dpkg -i` installs it (this machine's own dpkg:
root only). Then: the settings file with two generated keys, root:www-data
0640; the state directory the web server's; `a2enconf comet-fcgi` accepted
by Debian's apache2 (apache2ctl -t) and refused without mod_fcgid;
`lighty-enable-mod comet-fcgi` and Debian's own lighttpd.conf (on a loopback
port of the test's) serving /comet/ and /comet.js, PHP's comet.php
publishing with the keys it reads from the settings file; the standalone
unit installed but not enabled. Last, `dpkg -r` disables the web servers'
configurations and `dpkg -P` leaves nothing behind. Skipped (77) when not
root or when dpkg-buildpackage, debhelper or lintian is missing."""

import glob
import grp
import functools
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SRCDIR = harness.TOP_SRCDIR
CONF = "/etc/comet-fcgi/comet-fcgi.conf"
STATE = "/var/lib/comet-fcgi"
A2_CONF = "/etc/apache2/conf-available/comet-fcgi.conf"
LT_CONF = "/etc/lighttpd/conf-available/15-comet-fcgi.conf"
LT_ENABLED = "/etc/lighttpd/conf-enabled/15-comet-fcgi.conf"

# Debian's lighttpd with what lighty-enable-mod enabled (conf-enabled/), as
# its lighttpd.conf has it, but on a loopback port of the test's: the
# stock lighttpd.conf also binds port 80 on every address.
LIGHTTPD_WRAPPER = """server.modules = ( "mod_indexfile", "mod_access", "mod_alias" )
server.document-root = "%(dir)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.username = "www-data"
server.groupname = "www-data"
server.pid-file = "%(dir)s/lighttpd.pid"
server.errorlog = "%(dir)s/error.log"
include_shell "/usr/share/lighttpd/create-mime.conf.pl"
include "/etc/lighttpd/conf-enabled/*.conf"
"""


def get(base, path, headers=None):
    req = urllib.request.Request(base + path, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run(cmd, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(cmd), p.returncode,
                                                      p.stdout[-3000:], p.stderr[-3000:]))
    return p


def source_files():
    """The files of the source tree (git's list in a checkout)."""
    if os.path.isdir(os.path.join(SRCDIR, ".git")):
        out = run(["git", "-C", SRCDIR, "ls-files", "-z"]).stdout
        return [f for f in out.split("\0") if f]
    raise unittest.SkipTest("not a git checkout: cannot tell sources from build products")


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("installs a package: needs root")
        for tool in ("dpkg-buildpackage", "dh", "lintian", "a2enconf", "apache2ctl",
                     "lighty-enable-mod", "lighttpd"):
            if not shutil.which(tool):
                raise unittest.SkipTest("%s is not installed" % tool)
        if os.path.exists("/usr/bin/comet-fcgi") or os.path.exists(CONF):
            raise unittest.SkipTest("comet-fcgi is installed on this machine already")
        cls.tmp = tempfile.mkdtemp(prefix="comet-deb-")
        tree = os.path.join(cls.tmp, "comet-fcgi")
        for f in source_files():
            os.makedirs(os.path.dirname(os.path.join(tree, f)), exist_ok=True)
            shutil.copy2(os.path.join(SRCDIR, f), os.path.join(tree, f))
        # The unit tests run in `make check`; the build need not repeat them.
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck parallel=2")
        cls.build = run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env)
        debs = [d for d in glob.glob(os.path.join(cls.tmp, "comet-fcgi_*.deb"))]
        if len(debs) != 1:
            raise AssertionError("expected one comet-fcgi_*.deb, found %r" % debs)
        cls.deb = debs[0]
        cls.installed = False
        # What the test enables in the web servers, to put back after.
        cls.fastcgi_was = os.path.lexists("/etc/lighttpd/conf-enabled/10-fastcgi.conf")
        cls.fcgid_was = os.path.exists("/etc/apache2/mods-enabled/fcgid.load")

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "installed", False):
            run(["dpkg", "-P", "comet-fcgi"], check=False)
        if hasattr(cls, "fastcgi_was") and not cls.fastcgi_was:
            run(["lighty-disable-mod", "fastcgi"], check=False)
        if hasattr(cls, "fcgid_was") and not cls.fcgid_was:
            run(["a2dismod", "-q", "-f", "fcgid"], check=False)
        if hasattr(cls, "tmp"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_package(self):
        # One test, in the order an admin goes: each step needs the last.
        self.assertRegex(os.path.basename(self.deb), r"^comet-fcgi_[0-9.]+(-\d+)?_[a-z0-9]+\.deb$")
        lint = run(["lintian", "--fail-on", "error", self.deb], check=False)
        self.assertEqual(lint.returncode, 0, "lintian:\n" + lint.stdout + lint.stderr)
        self.assertNotRegex(lint.stdout, r"(?m)^E: ", lint.stdout)
        files = run(["dpkg-deb", "-c", self.deb]).stdout
        for path in ("./usr/bin/comet-fcgi", "./usr/share/man/man8/comet-fcgi.8.gz",
                     "./etc/apache2/conf-available/comet-fcgi.conf",
                     "./etc/lighttpd/conf-available/15-comet-fcgi.conf",
                     "./usr/share/comet-fcgi/www/comet.js", "./usr/share/comet-fcgi/www/comet.php",
                     "./usr/share/comet-fcgi/apache/comet-fcgid.conf",
                     "/systemd/system/comet-fcgi.service"):
            self.assertIn(path, files)

        run(["dpkg", "-i", self.deb])
        type(self).installed = True
        self.check_installed()
        self.check_apache()
        self.check_lighttpd()
        if harness.pg_bindir():
            self.check_postgresql()

        run(["dpkg", "-r", "comet-fcgi"])
        self.assertFalse(os.path.exists("/usr/bin/comet-fcgi"))
        self.assertFalse(os.path.lexists(LT_ENABLED), "lighttpd would include what is gone")
        self.assertFalse(os.path.lexists("/etc/apache2/conf-enabled/comet-fcgi.conf"))
        self.assertTrue(os.path.exists(CONF), "remove keeps the settings (purge removes them)")
        run(["dpkg", "-P", "comet-fcgi"])
        type(self).installed = False
        for path in (CONF, "/etc/comet-fcgi", STATE, A2_CONF, LT_CONF):
            self.assertFalse(os.path.exists(path), "%s left after purge" % path)
        status = run(["dpkg-query", "-W", "-f=${Status}", "comet-fcgi"], check=False).stdout
        self.assertNotIn("installed", status.replace("not-installed", ""))

    def check_installed(self):
        st = os.stat(CONF)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o640)
        self.assertEqual((pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name),
                         ("root", "www-data"))
        with open(CONF) as f:
            text = f.read()
        keys = dict(re.findall(r"(?m)^(COMET_(?:PUBLISH|TOKEN)_KEY) = ([0-9a-f]{64})$", text))
        self.assertEqual(set(keys), {"COMET_PUBLISH_KEY", "COMET_TOKEN_KEY"}, text)
        self.assertNotEqual(keys["COMET_PUBLISH_KEY"], keys["COMET_TOKEN_KEY"])
        self.keys = keys
        self.assertEqual(pwd.getpwuid(os.stat(STATE).st_uid).pw_name, "www-data")
        # The program reads the file by itself (no COMET_CONFIG needed).
        p = run(["comet-fcgi", "--help"])
        self.assertIn("COMET_PUBLISH_LOOPBACK", p.stdout)
        # Root publishing into www-data's log is refused, and says how.
        p = run(["comet-fcgi", "publish", "c", "x"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sudo -u www-data", p.stderr)
        # The daemon's unit: installed, not enabled.
        self.assertTrue(os.path.exists("/lib/systemd/system/comet-fcgi.service"))
        self.assertEqual(glob.glob("/etc/systemd/system/*.wants/comet-fcgi.service"), [])

    def check_apache(self):
        run(["a2dismod", "-q", "-f", "fcgid"], check=False)
        # The conf depends on mod_fcgid, not the package: a2enconf says so.
        p = run(["a2enconf", "comet-fcgi"], check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("fcgid", p.stdout + p.stderr)
        run(["a2enmod", "-q", "fcgid"])
        run(["a2enconf", "-q", "comet-fcgi"])
        p = run(["apache2ctl", "-t"], check=False)
        self.assertIn("Syntax OK", p.stdout + p.stderr)

    def start_lighttpd(self):
        """Debian's lighttpd with what is enabled, on a loopback port:
        (process, base URL)."""
        d = tempfile.mkdtemp(prefix="comet-deb-lighttpd-", dir=self.tmp)
        os.chmod(self.tmp, 0o755)
        os.chmod(d, 0o777)
        os.makedirs("/run/lighttpd", exist_ok=True)
        www = pwd.getpwnam("www-data")
        os.chown("/run/lighttpd", www.pw_uid, www.pw_gid)
        port = harness.free_port()
        conf = os.path.join(d, "wrapper.conf")
        with open(conf, "w") as f:
            f.write(LIGHTTPD_WRAPPER % {"port": port, "dir": d})
        proc = subprocess.Popen(["lighttpd", "-D", "-f", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        base = "http://127.0.0.1:%d" % port
        try:
            harness.wait_until(lambda: get(base, "/comet.js")[0] == 200, 20,
                               "Debian's lighttpd")
        except BaseException:
            proc.terminate()
            proc.wait(10)
            raise
        return proc, base

    def publish_from_php(self, base, channel, data):
        """Publishes as a site's PHP would, the keys read from the file."""
        code = ("require '/usr/share/comet-fcgi/www/comet.php';"
                "$c = new Comet\\Client('%s/comet');"
                "echo json_encode([$c->publish('%s', '%s'), "
                "$c->token('private-deb', 60)]);" % (base, channel, data))
        p = run([shutil.which("php"), "-r", code],
                env={k: v for k, v in os.environ.items() if not k.startswith("COMET_")})
        return json.loads(p.stdout)

    def check_lighttpd(self):
        p = run(["lighty-enable-mod", "comet-fcgi"], check=False)
        self.assertTrue(os.path.lexists(LT_ENABLED), p.stdout + p.stderr)
        proc, base = self.start_lighttpd()
        key = self.keys["COMET_PUBLISH_KEY"]
        try:
            get = functools.partial(globals()["get"], base)
            st, body = get("/comet/stats")
            self.assertEqual(st, 401, "the generated key is required")
            st, body = get("/comet/stats", {"Authorization": "Bearer " + key})
            self.assertEqual(st, 200, body)
            # PHP as a site would call it: no key given, read from the file.
            php = shutil.which("php")
            if php:
                msg_id, token = self.publish_from_php(base, "deb", "installed")
                st, body = get("/comet/sub?channel=deb&since=%d&timeout=0" % (msg_id - 1))
                self.assertEqual([m["data"] for m in json.loads(body)["messages"]], ["installed"])
                st, body = get("/comet/sub?channel=private-deb&timeout=0&token=" + token)
                self.assertEqual(st, 200, body)
        finally:
            proc.terminate()
            proc.wait(10)

    def check_postgresql(self):
        # The README's "More than one web server" on the package: a
        # database owned by its role, COMET_DB in the settings file, and
        # nothing else changed.
        with harness.PostgreSQL(name="deb") as pg:
            with open(CONF) as f:
                before = f.read()
            try:
                with open(CONF, "a") as f:
                    f.write("COMET_DB = %s\n" % pg.uri())
                proc, base = self.start_lighttpd()
                try:
                    if shutil.which("php"):
                        msg_id, _ = self.publish_from_php(base, "deb-pg", "shared")
                    else:
                        st, body = get(base, "/comet/pub?channel=deb-pg", None)
                    rows = pg.psql("SELECT id, convert_from(data, 'UTF8') FROM comet_msg "
                                   "WHERE channel = 'deb-pg'")
                    self.assertEqual([r[1] for r in rows], ["shared"])
                    st, body = get(base, "/comet/sub?channel=deb-pg&since=0&timeout=0")
                    self.assertEqual([m["data"] for m in json.loads(body)["messages"]],
                                     ["shared"])
                    # The host's own files, in the package's state directory.
                    copy = "/var/lib/comet-fcgi/copy.db"
                    self.assertEqual(os.stat(copy).st_uid, pwd.getpwnam("www-data").pw_uid)
                finally:
                    proc.terminate()
                    proc.wait(10)
            finally:
                with open(CONF, "w") as f:
                    f.write(before)


if __name__ == "__main__":
    harness.main()
