#!/usr/bin/env python3
"""Symfony's Mercure on comet-fcgi, tried with clients nobody here wrote:
Debian's php-symfony-mercure publishing (its Hub and Update, with a token
factory of the application's as its FactoryTokenProvider takes one, HS256
and RS256), and subscribers that speak the protocol as EventSource does
(the event-stream format, Last-Event-ID), under lighttpd and Apache as
shipped (/.well-known/mercure): topic selectors (exact, *, URI templates),
private updates only for a matching mercure.subscribe claim (header,
cookie, authorization parameter), Last-Event-ID and lastEventID and
earliest, the Last-Event-ID response header, and hostile JWTs refused with
401 at no cost to the others."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import harness  # noqa: E402

SECRET = "!ChangeThisMercureHubJWTSecretKey!"
MERCURE = "/usr/share/php/Symfony/Component/Mercure/autoload.php"
HUB = "/.well-known/mercure"


def b64(x):
    return base64.urlsafe_b64encode(x).rstrip(b"=").decode()


def hs256(claims, secret=SECRET, header=None):
    """claims: a dict, or JSON text as it stands."""
    h = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    p = b64((claims if isinstance(claims, str) else json.dumps(claims)).encode())
    sig = hmac.new(secret.encode(), (h + "." + p).encode(), hashlib.sha256).digest()
    return h + "." + p + "." + b64(sig)


def rs256(claims, key_file):
    h = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    p = b64(json.dumps(claims).encode())
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key_file],
                         input=(h + "." + p).encode(), capture_output=True, check=True).stdout
    return h + "." + p + "." + b64(sig)


def symfony_publish(srv, token, topics, data, private=False, upd_id=None):
    """Publishes with php-symfony-mercure's Hub; returns the id it gives."""
    php = r"""
require %s;
use Symfony\Component\Mercure\Hub;
use Symfony\Component\Mercure\Update;
use Symfony\Component\Mercure\Jwt\FactoryTokenProvider;
use Symfony\Component\Mercure\Jwt\TokenFactoryInterface;
// The application's token factory (the component's LcobucciFactory needs
// lcobucci/jwt, which Debian does not package): a fixed JWT here.
final class Given implements TokenFactoryInterface {
    public function create(?array $subscribe = [], ?array $publish = [],
                           array $additionalClaims = []): string { return %s; }
}
$hub = new Hub(%s, new FactoryTokenProvider(new Given()));
echo $hub->publish(new Update(%s, %s, %s, %s));
""" % (json.dumps(MERCURE), json.dumps(token), json.dumps(srv.url(HUB)), json.dumps(topics),
       json.dumps(data), "true" if private else "false", json.dumps(upd_id))
    r = subprocess.run(["php", "-r", php], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise AssertionError("php: %s %s" % (r.stdout, r.stderr))
    return r.stdout.strip()


def post(srv, body, headers):
    h = {"Content-Type": "application/x-www-form-urlencoded"}
    h.update(headers)
    return srv.request("POST", HUB, body=urllib.parse.urlencode(body, doseq=True).encode(),
                       headers=h)


def events(stream, n, timeout=10):
    """The next n events of a Mercure stream as dicts (comments skipped)."""
    out = []
    while len(out) < n:
        raw = stream.read_until(b"\n\n", timeout=timeout).decode()
        ev = {}
        for line in raw.splitlines():
            if not line or line.startswith(":") or line.startswith("retry: "):
                continue
            k, _, v = line.partition(": ")
            ev[k] = ev[k] + "\n" + v if k in ev else v
        if "data" in ev:
            out.append(ev)
    return out


class Mercure:
    KIND = None

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(MERCURE):
            raise unittest.SkipTest("php-symfony-mercure is not installed (make check does)")
        # Apache learns that a client left only when a write to it fails, the
        # second keep-alive after the close: a short one lets each test start
        # with the streams of the test before gone.
        cls.srv = harness.Server(cls.KIND, env={"COMET_MERCURE_JWT_KEY": SECRET,
                                                "COMET_KEEPALIVE": "1"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        # Counting held streams from a base taken while a closed one was
        # still counted waited for one too many (ci, lighttpd): start at none.
        self.srv.wait_for_none_waiting(20,
                                       "the streams of the test before to end")

    def stream(self, topics, headers=None, query=(), token=None):
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        st = self.srv.open_stream(HUB, [("topic", t) for t in topics] + list(query), h)
        st.read_head()
        return st

    def held(self, n):
        self.srv.wait_for_waiting(n)

    def test_symfony_publishes_and_selectors_match(self):
        pub = hs256({"mercure": {"publish": ["*"]}})
        sub = hs256({"mercure": {"subscribe": []}})
        exact = self.stream(["https://example.com/books/1"], token=sub)
        template = self.stream(["https://example.com/books/{id}"], token=sub)
        anything = self.stream(["*"], token=sub)
        other = self.stream(["https://example.com/authors/{id}"], token=sub)
        self.held(4)
        uid = symfony_publish(self.srv, pub, ["https://example.com/books/1",
                                              "https://example.com/books/2"], '{"n": 1}')
        self.assertTrue(uid.startswith("urn:uuid:"), uid)
        for name, st in (("exact", exact), ("template", template), ("*", anything)):
            with self.subTest(selector=name):
                (ev,) = events(st, 1)
                self.assertEqual((ev["id"], ev["data"]), (uid, '{"n": 1}'), ev)
        own = symfony_publish(self.srv, pub, "https://example.com/authors/9", "a\nb",
                              upd_id="my-own-id")
        self.assertEqual(own, "my-own-id")
        # Delivered once although two of its topics matched; multi-line data
        # as several data: lines; the update not for books passed over.
        (ev,) = events(other, 1)
        self.assertEqual((ev["id"], ev["data"]), ("my-own-id", "a\nb"))
        (ev,) = events(anything, 1)
        self.assertEqual(ev["id"], "my-own-id")
        for st in (exact, template, anything, other):
            st.close()

    def test_private_updates_need_the_subscribe_claim(self):
        pub = hs256({"mercure": {"publish": ["*"]}})
        topic = "https://example.com/users/%d/secret" % time.monotonic_ns()
        yes = hs256({"mercure": {"subscribe": ["https://example.com/users/{id}/secret"]}})
        no = hs256({"mercure": {"subscribe": ["https://example.com/other"]}})
        by_header = self.stream([topic], token=yes)
        by_cookie = self.stream([topic], headers={"Cookie": "mercureAuthorization=" + yes})
        by_query = self.stream([topic], query=[("authorization", yes)])
        refused = self.stream([topic], token=no)
        self.held(4)
        symfony_publish(self.srv, pub, topic, "private one", private=True)
        public = symfony_publish(self.srv, pub, topic, "public one")
        for name, st in (("header", by_header), ("cookie", by_cookie), ("query", by_query)):
            with self.subTest(jwt_in=name):
                self.assertEqual([e["data"] for e in events(st, 2)],
                                 ["private one", "public one"])
        (ev,) = events(refused, 1)
        self.assertEqual((ev["id"], ev["data"]), (public, "public one"))
        for st in (by_header, by_cookie, by_query, refused):
            st.close()

    def test_resume_from_last_event_id_and_earliest(self):
        pub = hs256({"mercure": {"publish": ["*"]}})
        sub = hs256({"mercure": {"subscribe": []}})
        topic = "urn:comet:resume:%d" % time.monotonic_ns()
        ids = [symfony_publish(self.srv, pub, topic, "m%d" % i) for i in range(3)]
        for how in ("header", "param"):
            with self.subTest(last_event_id=how):
                if how == "header":
                    st = self.stream([topic], token=sub, headers={"Last-Event-ID": ids[0]})
                else:
                    st = self.stream([topic], token=sub, query=[("lastEventID", ids[0])])
                self.assertEqual(st.headers.get("Last-Event-ID"), ids[0])
                self.assertEqual([e["data"] for e in events(st, 2)], ["m1", "m2"])
                st.close()
        st = self.stream([topic], token=sub, query=[("lastEventID", "earliest")])
        self.assertEqual([e["data"] for e in events(st, 3)], ["m0", "m1", "m2"])
        st.close()

    def test_publish_refused_as_the_protocol_says(self):
        body = [("topic", "https://example.com/x"), ("data", "d")]
        cases = [
            ("no JWT", {}, 401),
            ("a wrong signature", {"Authorization": "Bearer " +
                                   hs256({"mercure": {"publish": ["*"]}}, secret="x" * 40)}, 401),
            ("expired", {"Authorization": "Bearer " + hs256(
                {"mercure": {"publish": ["*"]}, "exp": int(time.time()) - 10})}, 401),
            ("alg none", {"Authorization": "Bearer " + b64(b'{"alg":"none","typ":"JWT"}') + "." +
                          b64(b'{"mercure":{"publish":["*"]}}') + "."}, 401),
            ("malformed", {"Authorization": "Bearer not.a.jwt"}, 401),
            ("huge", {"Authorization": "Bearer " + "a" * 7000}, 401),
            ("a nesting bomb", {"Authorization": "Bearer " + hs256(
                '{"mercure":{"publish":["*"]},"x":' + "[" * 2000 + "]" * 2000 + "}")}, 401),
            ("a claim without the topic", {"Authorization": "Bearer " + hs256(
                {"mercure": {"publish": ["https://example.com/other"]}})}, 403),
            ("a cookie from anywhere", {"Cookie": "mercureAuthorization=" + hs256(
                {"mercure": {"publish": ["*"]}}), "Origin": "https://evil.example"}, 403),
        ]
        for what, headers, status in cases:
            with self.subTest(what):
                r = post(self.srv, body, headers)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.json["status"], status, r)
                if status == 401:
                    self.assertIn("bearer", r.headers.get("WWW-Authenticate", "").lower())
        # Larger than the web servers take in a header: refused before us.
        r = post(self.srv, body, {"Authorization": "Bearer " + "a" * 20000})
        self.assertIn(r.status, (400, 431), r)
        # Nobody else waited meanwhile.
        t0 = time.monotonic()
        self.assertEqual(self.srv.get("/comet/sub", query={"channel": "c", "timeout": 0}).status,
                         200)
        self.assertLess(time.monotonic() - t0, 1.0)
        r = post(self.srv, [("data", "no topic")], {"Authorization": "Bearer " + hs256(
            {"mercure": {"publish": ["*"]}})})
        self.assertEqual(r.status, 400, r)

    def test_subscribers_need_a_jwt_by_default(self):
        st = self.srv.request("GET", HUB + "?topic=*", headers={"Accept": "text/event-stream"})
        self.assertEqual(st.status, 401, st)


class MercureLighttpd(Mercure, unittest.TestCase):
    KIND = "lighttpd"


class MercureApache(Mercure, unittest.TestCase):
    KIND = "apache"


class MercureRS256(unittest.TestCase):
    """A PEM public key file: RS256 tokens verify, an HS256 token keyed
    with the public key's text (key confusion) does not."""

    def test_rs256_and_key_confusion(self):
        if not os.path.exists(MERCURE):
            self.skipTest("php-symfony-mercure is not installed")
        d = tempfile.mkdtemp(prefix="comet-mercure-")
        key, pem = os.path.join(d, "key.pem"), os.path.join(d, "pub.pem")
        subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", pem], check=True,
                       capture_output=True)
        os.chmod(d, 0o755)
        os.chmod(pem, 0o644)
        with harness.Server("lighttpd", env={"COMET_MERCURE_JWT_KEY": pem}) as srv:
            tok = rs256({"mercure": {"publish": ["*"], "subscribe": ["*"]}}, key)
            base = srv.stats()["waiting"]
            st = srv.open_stream(HUB, [("topic", "*")], {"Accept": "text/event-stream",
                                                         "Authorization": "Bearer " + tok})
            st.read_head()
            srv.wait_for_waiting(base + 1)
            uid = symfony_publish(srv, tok, "https://example.com/rs", "signed")
            (ev,) = events(st, 1)
            self.assertEqual((ev["id"], ev["data"]), (uid, "signed"))
            st.close()
            with open(pem) as f:
                confused = hs256({"mercure": {"publish": ["*"]}}, secret=f.read())
            r = post(srv, [("topic", "https://example.com/rs"), ("data", "x")],
                     {"Authorization": "Bearer " + confused})
            self.assertEqual(r.status, 401, r)


if __name__ == "__main__":
    unittest.main()
