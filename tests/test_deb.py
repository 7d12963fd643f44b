#!/usr/bin/env python3
"""The Debian package, as an admin meets it: `dpkg-buildpackage -us -uc -b`
on a copy of the source tree builds comet-fcgi_<version>_<arch>.deb, lintian
finds no error in it, and `dpkg -i` installs it (this machine's own dpkg:
root only). Then: the settings file with two generated keys, root:www-data
0640; the state directory the web server's; `a2enconf comet-fcgi` accepted
by Debian's apache2 (apache2ctl -t) and refused without mod_fcgid;
`lighty-enable-mod comet-fcgi` (without enabling 10-fastcgi) and Debian's
own lighttpd.conf (on a loopback port of the test's) serving /comet/ and
/comet.js, PHP's comet.php publishing with the keys it reads from the
settings file; a key changed in that file taken without a restart; the
standalone unit and the beside-Apache unit installed but not enabled, the
latter's lighttpd run as its unit says (www-data, on a loopback port),
after which `sudo -u www-data comet-fcgi publish` works and root is told to
run it so. Last, `dpkg -r` disables the web servers' configurations and
`dpkg -P` leaves nothing behind.

It installs and purges a package on this machine, so it runs only when
asked: COMET_TEST_DEB=1 (.ci/run sets it, on a throwaway machine). Skipped
(77) otherwise, when not root, or when dpkg-buildpackage, debhelper or
lintian is missing."""

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


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}


def run(cmd, check=True, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s: exit %d\n%s\n%s" % (" ".join(cmd), p.returncode,
                                                      p.stdout[-3000:], p.stderr[-3000:]))
    return p


def source_files():
    """The files of the source tree (git's list in a checkout)."""
    if os.path.exists(os.path.join(SRCDIR, ".git")):   # a directory, or a worktree's file
        out = run(["git", "-C", SRCDIR, "ls-files", "-z"]).stdout
        return [f for f in out.split("\0") if f]
    raise unittest.SkipTest("not a git checkout: cannot tell sources from build products")


class DebianPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("COMET_TEST_DEB") != "1":
            raise unittest.SkipTest("installs and purges the .deb on this machine: run it "
                                    "with COMET_TEST_DEB=1 (as .ci/run does)")
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
                     "./usr/share/comet-fcgi/lighttpd/comet-beside-apache.conf",
                     "/systemd/system/comet-fcgi.service",
                     "/systemd/system/comet-beside-apache.service"):
            self.assertIn(path, files)

        run(["dpkg", "-i", self.deb])
        type(self).installed = True
        self.check_installed()
        self.check_apache()
        self.check_lighttpd()
        self.check_beside_apache()
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
        p = run(["comet-fcgi", "publish", "c", "x"], check=False, env=clean_env())
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sudo -u www-data", p.stderr)
        # The units: installed, not enabled; COMET_DB left to the file.
        for unit in ("comet-fcgi.service", "comet-beside-apache.service"):
            with open("/lib/systemd/system/" + unit) as f:
                text = f.read()
            self.assertNotRegex(text, r"(?m)^Environment=.*COMET_DB", unit)
            self.assertNotIn("/usr/local", re.sub(r"(?m)^#.*\n", "", text), unit)
            self.assertEqual(glob.glob("/etc/systemd/system/*.wants/" + unit), [])

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
        # lighttpd's environment as a service's: no COMET_* of the test's.
        proc = subprocess.Popen(["lighttpd", "-D", "-f", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env=clean_env())
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
        if not self.fastcgi_was:
            # Nothing to undo at removal: the package's file loads
            # mod_fastcgi itself.
            self.assertFalse(os.path.lexists("/etc/lighttpd/conf-enabled/10-fastcgi.conf"),
                             p.stdout)
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
            # A new key in the settings file: taken by the running program.
            new = "%064x" % int.from_bytes(os.urandom(32), "big")
            self.set_key(new)
            try:
                def new_key_works():
                    return get("/comet/stats", {"Authorization": "Bearer " + new})[0] == 200
                harness.wait_until(new_key_works, 10, "the new key taken without a restart")
                self.assertEqual(get("/comet/stats", {"Authorization": "Bearer " + key})[0], 401)
            finally:
                self.set_key(key)
            # 10-fastcgi enabled as well (as for PHP): loaded twice, fine.
            run(["lighty-enable-mod", "fastcgi"], check=False)
            p = run(["lighttpd", "-tt", "-f", "/etc/lighttpd/lighttpd.conf"], check=False)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            if not self.fastcgi_was:
                run(["lighty-disable-mod", "fastcgi"], check=False)
        finally:
            proc.terminate()
            proc.wait(10)

    def set_key(self, key):
        """COMET_PUBLISH_KEY in the settings file, as an admin edits it."""
        with open(CONF) as f:
            text = f.read()
        text = re.sub(r"(?m)^COMET_PUBLISH_KEY = .*$", "COMET_PUBLISH_KEY = " + key, text)
        with open(CONF, "w") as f:
            f.write(text)

    def check_beside_apache(self):
        """comet-beside-apache.service's lighttpd, run as the unit says:
        www-data, the unit's environment, its runtime directory made first
        (here a scratch one, and a loopback port of the test's)."""
        unit = "/lib/systemd/system/comet-beside-apache.service"
        with open(unit) as f:
            text = f.read()
        self.assertRegex(text, r"(?m)^User=www-data$")
        self.assertRegex(text, r"(?m)^StateDirectory=comet-fcgi$")
        self.assertRegex(text, r"(?m)^RuntimeDirectory=comet-beside-apache$")
        env = dict(re.findall(r"(?m)^Environment=(\w+)=(.*)$", text))
        cmd = re.search(r"(?m)^ExecStart=(.*)$", text).group(1).split()
        www = pwd.getpwnam("www-data")
        rundir = tempfile.mkdtemp(prefix="comet-deb-beside-", dir=self.tmp)
        os.chmod(self.tmp, 0o755)
        os.chown(rundir, www.pw_uid, www.pw_gid)
        port = harness.free_port()
        env.update(COMET_HTTP_ADDR="127.0.0.1", COMET_HTTP_PORT=str(port),
                   COMET_LIGHTTPD_DIR=rundir, PATH=os.environ.get("PATH", ""))

        def as_www():
            os.setgid(www.pw_gid)
            os.setgroups([])
            os.setuid(www.pw_uid)
        # Without the site's origin it refuses to start, naming it.
        p = subprocess.run([cmd[0], "-tt"] + cmd[2:], env=env, capture_output=True, text=True,
                           preexec_fn=as_www, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("COMET_CORS_ORIGIN", p.stdout + p.stderr)
        env["COMET_CORS_ORIGIN"] = "http://www.example.org"
        out = open(os.path.join(rundir, "server.out"), "wb")
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=as_www)
        out.close()
        base = "http://127.0.0.1:%d" % port
        key = self.keys["COMET_PUBLISH_KEY"]
        try:
            harness.wait_until(lambda: get(base, "/comet.js")[0] == 200, 20,
                               "the beside-Apache lighttpd")
            self.assertEqual(get(base, "/comet/stats", {"Authorization": "Bearer " + key})[0],
                             200)
            if shutil.which("php"):
                self.publish_from_php(base, "beside", "from php")
        finally:
            proc.terminate()
            proc.wait(10)
        with open(os.path.join(rundir, "server.out"), "rb") as f:
            logs = f.read().decode("utf-8", "replace")
        # The log is www-data's: publishing as www-data works, as root is
        # refused with the command to use.
        self.assertEqual(os.stat(os.path.join(STATE, "comet.db")).st_uid, www.pw_uid, logs)
        p = subprocess.run(["comet-fcgi", "publish", "beside", "from the shell"],
                           env=clean_env(), capture_output=True, text=True, preexec_fn=as_www)
        self.assertEqual(p.returncode, 0, p.stderr + logs)
        p = run(["comet-fcgi", "publish", "beside", "x"], check=False, env=clean_env())
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("sudo -u www-data comet-fcgi publish", p.stderr)

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
    if os.environ.get("COMET_TEST_DEB") != "1":
        # Said once, and a SKIP for make check (exit 77), not a pass.
        print("SKIP: tests/test_deb.py installs and purges the .deb on this machine: "
              "run it with COMET_TEST_DEB=1 (as .ci/run does)")
        sys.exit(77)
    harness.main()
