#!/usr/bin/env python3
"""www/comet.php, the PHP helper, run by php-cli against comet-fcgi under a
real lighttpd (tests/harness/): publish, types, the publish key, errors,
info(), private-channel and presence tokens. Every case runs twice: through the curl
extension and, with `php -n` (no php.ini, so no curl), through PHP's http://
streams. Skipped (77) when php-cli is not installed."""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

COMET_PHP = os.path.join(harness.WWW_DIR, "comet.php")
PHP = shutil.which("php")
PUBLISH_KEY = "php-test-publish-key"
TOKEN_KEY = "php-test-token-key"

# Runs the snippet in $code with a Comet\Client in $c and prints what it
# returns, or the exception it throws, as JSON.
PRELUDE = r"""<?php
require getenv('COMET_PHP');
$opts = ['token_key' => getenv('T_TOKEN_KEY') ?: null];
if (getenv('T_TRANSPORT')) $opts['transport'] = getenv('T_TRANSPORT');
try {
    $c = new Comet\Client(getenv('T_BASE'), getenv('T_KEY') ?: null, $opts);
    $out = ['transport' => $c->transport(), 'result' => (function ($c) {
%s
    })($c)];
} catch (Comet\Exception $e) {
    $out = ['transport' => isset($c) ? $c->transport() : null, 'exception' => get_class($e),
            'message' => $e->getMessage(), 'status' => $e->getStatus(), 'code' => $e->getCode()];
}
echo json_encode($out), "\n";
"""


def php_literal(value):
    """value (JSON-able) as a PHP expression: json_decode of its JSON."""
    return "json_decode('%s', true)" % json.dumps(value).replace("\\", "\\\\").replace("'", "\\'")


class PhpCases:
    """Mixin: STREAMS False runs php with the curl extension, True with -n."""

    STREAMS = None
    FORCE = None     # a transport to ask for; None: comet.php's own choice

    @classmethod
    def setUpClass(cls):
        if not PHP:
            raise unittest.SkipTest("php-cli is not installed")
        cls.open_srv = harness.Server("lighttpd").start()
        cls.keyed_srv = harness.Server("lighttpd", env={
            "COMET_PUBLISH_KEY": PUBLISH_KEY, "COMET_TOKEN_KEY": TOKEN_KEY}).start()

    @classmethod
    def tearDownClass(cls):
        for s in (cls.open_srv, cls.keyed_srv):
            crashes = s.crash_lines()
            s.stop()
            if crashes:
                raise AssertionError("crashed program process:\n" + "\n".join(crashes))

    def php(self, code, srv=None, key=None, base=None, token_key=None, extra_env=None):
        """Run code (the body of a function of $c) and return its JSON."""
        srv = srv or self.open_srv
        env = dict(os.environ, COMET_PHP=COMET_PHP,
                   T_BASE=base or srv.url("/comet"), T_KEY=key or "",
                   T_TOKEN_KEY=token_key or "", T_TRANSPORT=self.FORCE or "")
        # No configuration file of this machine's: only what a case gives.
        env["COMET_CONFIG"] = ""
        env.pop("COMET_PUBLISH_KEY", None)
        env.pop("COMET_TOKEN_KEY", None)
        env.update(extra_env or {})
        cmd = [PHP]
        if self.STREAMS:
            cmd.append("-n")   # no php.ini: no curl extension, the streams path
        p = subprocess.run(cmd, input=(PRELUDE % code).encode(), env=env,
                           capture_output=True, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "php failed:\n%s\n%s" % (out, p.stderr.decode()))
        d = json.loads(out)
        if d["transport"] is not None:   # None: the constructor threw
            self.assertEqual(d["transport"], "stream" if self.STREAMS else "curl", d)
        return d

    def result(self, code, **kw):
        d = self.php(code, **kw)
        self.assertNotIn("exception", d, d)
        return d["result"]

    def exception(self, code, status, **kw):
        d = self.php(code, **kw)
        self.assertEqual(d.get("exception"), "Comet\\Exception", d)
        self.assertEqual(d["status"], status, d)
        self.assertEqual(d["code"], status, d)
        return d

    def channel(self, prefix):
        return "%s-%s-%d" % (prefix, "s" if self.STREAMS else "c", time.monotonic_ns())

    # ---------------------------------------------------------------- cases

    def test_publish_returns_increasing_ids_readable_via_sub(self):
        ch = self.channel("ids")
        ids = self.result("""
            $ids = [];
            foreach (['one', 'two', 'three'] as $t) $ids[] = $c->publish('%s', $t);
            return $ids;""" % ch)
        self.assertEqual(len(ids), 3)
        self.assertTrue(all(isinstance(i, int) for i in ids), ids)
        self.assertEqual(ids, sorted(set(ids)), "ids must strictly increase")
        r = self.open_srv.sub(ch, since=ids[0] - 1, timeout=0)
        self.assertEqual(r.status, 200, r)
        self.assertEqual([(m["id"], m["data"]) for m in r.json["messages"]],
                         list(zip(ids, ["one", "two", "three"])))

    def test_json_and_text_types(self):
        ch = self.channel("types")
        ids = self.result(r"""
            return [
              $c->publish('%s', ['name' => 'ann', 'text' => "caf\u{e9} <b>"]),
              $c->publish('%s', 'plain words'),
              $c->publish('%s', '{"raw": [1, 2]}', 'application/json'),
              $c->publish('%s', (object)['n' => 1.0, 'e' => []]),
              $c->publish('%s', 42),
              $c->publish('%s', '<p>hi</p>', 'text/html'),
            ];""" % ((ch,) * 6))
        r = self.open_srv.sub(ch, since=ids[0] - 1, timeout=0)
        got = [(m["type"], m["data"]) for m in r.json["messages"]]
        self.assertEqual(got, [
            ("application/json", {"name": "ann", "text": "caf\u00e9 <b>"}),
            ("text/plain", "plain words"),
            ("application/json", {"raw": [1, 2]}),
            ("application/json", {"n": 1.0, "e": []}),
            ("application/json", 42),
            ("text/html", "<p>hi</p>"),
        ])
        self.assertEqual([m["id"] for m in r.json["messages"]], ids)

    def test_publish_with_key(self):
        ch = self.channel("keyed")
        i = self.result("return $c->publish('%s', 'with key');" % ch,
                        srv=self.keyed_srv, key=PUBLISH_KEY)
        r = self.keyed_srv.sub(ch, since=i - 1, timeout=0)
        self.assertEqual([m["data"] for m in r.json["messages"]], ["with key"])

    def test_publish_without_key_throws_401(self):
        ch = self.channel("nokey")
        d = self.exception("return $c->publish('%s', 'x');" % ch, 401, srv=self.keyed_srv)
        direct = self.keyed_srv.publish(ch, "x", auth=False)
        self.assertEqual(direct.status, 401)
        self.assertEqual(d["message"], direct.json["error"])
        d = self.exception("return $c->publish('%s', 'x');" % ch, 401,
                           srv=self.keyed_srv, key="wrong-key")
        self.assertTrue(d["message"])
        self.exception("return $c->info('%s');" % ch, 401, srv=self.keyed_srv)
        info = self.keyed_srv.get("/comet/pub", query={"channel": ch},
                                  headers=self.keyed_srv.auth_headers()).json
        self.assertEqual(info["messages"], 0, "nothing was published without the key")

    def test_bad_channel_throws_400_with_server_message(self):
        d = self.exception("return $c->publish('no spaces allowed', 'x');", 400)
        direct = self.open_srv.publish("no spaces allowed", "x")
        self.assertEqual(direct.status, 400)
        self.assertEqual(d["message"], direct.json["error"])
        self.exception("return $c->publish(str_repeat('a', 129), 'x');", 400)
        self.exception("return $c->publish('ok', \"bad \\xff utf-8\");", 415)

    def test_info(self):
        ch = self.channel("info")
        d = self.result("""
            $before = $c->info('%s');
            $a = $c->publish('%s', 'a');
            $b = $c->publish('%s', ['b' => true]);
            return ['before' => $before, 'ids' => [$a, $b], 'after' => $c->info('%s')];
            """ % (ch, ch, ch, ch))
        self.assertEqual(d["before"]["channel"], ch)
        self.assertEqual(d["before"]["messages"], 0)
        a, b = d["ids"]
        self.assertEqual(d["after"]["channel"], ch)
        self.assertEqual(d["after"]["messages"], 2)
        self.assertEqual(d["after"]["first_id"], a)
        self.assertEqual(d["after"]["last_id"], b)

    def test_token_accepted_and_expired_refused(self):
        ch = "private-" + self.channel("tok")
        tok = self.result("return $c->token('%s', 60);" % ch,
                          srv=self.keyed_srv, token_key=TOKEN_KEY)
        m = re.fullmatch(r"(\d+)\.([0-9a-f]{64})", tok)
        self.assertTrue(m, tok)
        self.assertAlmostEqual(int(m.group(1)), time.time() + 60, delta=30)
        # The key given to token() itself, and the static form, agree.
        same = self.result("return Comet\\Client::makeToken('%s', '%s', %s);"
                           % (TOKEN_KEY, ch, m.group(1)), srv=self.keyed_srv)
        self.assertEqual(same, tok)
        i = self.result("return $c->publish('%s', 'secret');" % ch,
                        srv=self.keyed_srv, key=PUBLISH_KEY)
        srv = self.keyed_srv
        r = srv.sub(ch, since=i - 1, timeout=0, extra=[("token", tok)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual([m["data"] for m in r.json["messages"]], ["secret"])
        # Expired (ttl in the past), made with the wrong key, for another
        # channel, or absent: refused.
        expired = self.result("return $c->token('%s', -5, '%s');" % (ch, TOKEN_KEY),
                              srv=self.keyed_srv)
        wrong_key = self.result("return $c->token('%s', 60, 'not-the-key');" % ch,
                                srv=self.keyed_srv)
        other = self.result("return $c->token('%s', 60);" % (ch + "x"),
                            srv=self.keyed_srv, token_key=TOKEN_KEY)
        for bad in (expired, wrong_key, other, None):
            r = srv.sub(ch, since=0, timeout=0, extra=[("token", bad)] if bad else [])
            self.assertEqual(r.status, 403, (bad, r))

    def test_presence_token_names_the_member(self):
        ch = "presence-" + self.channel("room")
        info = {"name": "Ann \u00e9/<b>", "n": 1}
        tok = self.result("return $c->presenceToken('%s', 'u42', %s, 60);"
                          % (ch, php_literal(info)), srv=self.keyed_srv, token_key=TOKEN_KEY)
        m = re.fullmatch(r"(\d+)\.([A-Za-z0-9_-]+)\.([0-9a-f]{64})", tok)
        self.assertTrue(m, tok)
        self.assertAlmostEqual(int(m.group(1)), time.time() + 60, delta=30)
        member = m.group(2)
        self.assertEqual(json.loads(base64.urlsafe_b64decode(member + "=" * (-len(member) % 4))),
                         {"id": "u42", "info": info})
        mac = hmac.new(TOKEN_KEY.encode(), ("%s:%s:%s" % (ch, m.group(1), member)).encode(),
                       hashlib.sha256).hexdigest()
        self.assertEqual(m.group(3), mac)
        same = self.result("return Comet\\Client::makePresenceToken('%s', '%s', %s, 'u42', %s);"
                           % (TOKEN_KEY, ch, m.group(1), php_literal(info)), srv=self.keyed_srv)
        self.assertEqual(same, tok)
        # comet-fcgi takes it: the subscriber is that member.
        srv = self.keyed_srv
        r = srv.sub(ch, since=0, timeout=0, extra=[("token", tok)])
        self.assertEqual(r.status, 200, r)
        # Presence is written by the commit thread after the answer: poll.
        def members():
            r = srv.get("/comet/presence", query={"channel": ch, "token": tok})
            self.assertEqual(r.status, 200, r)
            return r.json["members"] or None
        self.assertEqual(harness.wait_until(members, 10, "u42 on " + ch),
                         [{"id": "u42", "info": info}])
        # Expired, another key, another channel, a member changed: refused.
        expired = self.result("return $c->presenceToken('%s', 'u42', null, -5, '%s');"
                              % (ch, TOKEN_KEY), srv=srv)
        wrong_key = self.result("return $c->presenceToken('%s', 'u42', null, 60, 'not-the-key');"
                                % ch, srv=srv)
        other = self.result("return $c->presenceToken('%s', 'u42', null, 60);" % (ch + "x"),
                            srv=srv, token_key=TOKEN_KEY)
        forged = base64.urlsafe_b64encode(b'{"id":"admin","info":null}').decode().rstrip("=")
        changed = "%s.%s.%s" % (m.group(1), forged, m.group(3))
        for bad in (expired, wrong_key, other, changed):
            r = srv.sub(ch, since=0, timeout=0, extra=[("token", bad)])
            self.assertEqual(r.status, 403, (bad, r))
        # Only presence channels, and members of at most 1024 bytes of JSON.
        self.exception("return $c->presenceToken('private-x', 'u1');", 0, token_key=TOKEN_KEY)
        self.exception("return $c->presenceToken('%s', 'u1', str_repeat('x', 1100));" % ch, 0,
                       token_key=TOKEN_KEY)
        d = self.exception("return $c->presenceToken('%s', 'u1');" % ch, 0)
        self.assertIn("no token key", d["message"])

    def test_no_token_key_is_an_error(self):
        d = self.exception("return $c->token('private-x', 60);", 0)
        self.assertIn("no token key", d["message"])

    def test_keys_come_from_the_configuration_file(self):
        # As the package installs it: the program and PHP read one file, so
        # the keys need not be in PHP's environment.
        tmp = tempfile.mkdtemp(prefix="comet-php-conf-")
        try:
            path = os.path.join(tmp, "comet-fcgi.conf")
            with open(path, "w") as f:
                f.write("# written by the package\nCOMET_PUBLISH_KEY = %s\n"
                        "COMET_TOKEN_KEY = '%s'\nCOMET_DB = /nowhere\n" % (PUBLISH_KEY, TOKEN_KEY))
            ch = self.channel("private-conf")
            got = self.result("return [$c->publish('%s', 'from conf'), $c->token('%s', 60)];"
                              % (ch, ch), srv=self.keyed_srv, extra_env={"COMET_CONFIG": path})
            self.assertIsInstance(got[0], int, got)
            r = self.keyed_srv.sub(ch, since=got[0] - 1, timeout=0, extra=[("token", got[1])])
            self.assertEqual([m["data"] for m in r.json["messages"]], ["from conf"], r)
            # Without the file: no key, and the keyed server says so.
            self.exception("return $c->publish('%s', 'x');" % ch, 401, srv=self.keyed_srv)
            # A file that is there and cannot be read (here: a directory)
            # is a Comet\Exception naming it, not a PHP warning or error.
            d = self.exception("return 1;", 0, extra_env={"COMET_CONFIG": tmp})
            self.assertIn(tmp, d["message"])
            # Bad arguments are Comet\Exception too.
            d = self.exception("return 1;", 0, base="ftp://127.0.0.1/comet")
            self.assertIn("base URL", d["message"])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_unreachable_server_throws_status_0(self):
        port = harness.free_port()   # nothing listens there
        d = self.exception("return $c->publish('x', 'y');", 0,
                           base="http://127.0.0.1:%d/comet" % port)
        self.assertIn("cannot reach", d["message"])

    def test_not_json_answers_throw(self):
        # A 404 page from the web server, not from comet-fcgi.
        d = self.exception("return $c->publish('x', 'y');", 404,
                           base=self.open_srv.url("/no-such-dir"))
        self.assertTrue(d["message"])
        # A 200 that is not JSON: comet.js, a static file ("?" makes the
        # endpoint part of the query string).
        d = self.exception("return $c->info('x');", 200,
                           base=self.open_srv.url("/comet.js?"))
        self.assertIn("malformed", d["message"])


@unittest.skipUnless(PHP, "php-cli is not installed")
class WithCurl(PhpCases, unittest.TestCase):
    STREAMS = False

    @classmethod
    def setUpClass(cls):
        probe = subprocess.run([PHP, "-r", "echo extension_loaded('curl') ? 1 : 0;"],
                               capture_output=True, text=True)
        if probe.stdout.strip() != "1":
            raise unittest.SkipTest("php's curl extension is not installed (php-curl)")
        super().setUpClass()


@unittest.skipUnless(PHP, "php-cli is not installed")
class WithStreams(PhpCases, unittest.TestCase):
    STREAMS = True

    @classmethod
    def setUpClass(cls):
        # php -n loads no extensions from php.ini, so comet.php finds no curl
        # and falls back by itself; a PHP with curl built in needs telling.
        probe = subprocess.run([PHP, "-n", "-r", "echo extension_loaded('curl') ? 1 : 0;"],
                               capture_output=True, text=True)
        if probe.stdout.strip() == "1":
            cls.FORCE = "stream"
        super().setUpClass()


if __name__ == "__main__":
    if not PHP:
        print("SKIP: php-cli is not installed")
        sys.exit(77)
    harness.main()
