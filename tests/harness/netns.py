"""Network namespaces. The NetNS fixture: a namespace of a test's own,
joined to the root namespace by a veth pair, for a host that can drop off
the network (servers run in it with Server(..., netns=ns)). And
private_network(), which moves the whole test process into a fresh
namespace with room for a herd of connections (require_private_network()
is the setUpModule of the tests that need one)."""

import ctypes
import fcntl
import http.client
import os
import re
import resource
import shutil
import socket
import struct
import subprocess
import unittest

from . import live
from .util import HarnessError

CLONE_NEWNET = 0x40000000


def private_network(somaxconn=65535):
    """Moves this process (call it before starting any thread or server) into
    a network namespace of its own, with the loopback interface up and the
    listen-queue cap net.core.somaxconn raised there: the kernel caps every
    listen backlog at it (4096 by default), and a herd of thousands of
    subscribers connects at once. Every server and client started afterwards
    runs in it; nothing outside is touched. Returns None, or why it could
    not (not root, no user of namespaces here), for a test to skip with."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        return "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
        flags = struct.unpack("16sH14x", ifr)[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    try:
        with open("/proc/sys/net/core/somaxconn", "w") as f:
            f.write(str(somaxconn))
    except OSError as e:
        return "net.core.somaxconn: %s" % e
    return None


def require_private_network(nofile):
    """For a test module's setUpModule: raises unittest.SkipTest unless
    this process can have nofile descriptors open (the hard limit allows
    it) and a network namespace of its own (private_network(), which needs
    root); moves the process into that namespace otherwise."""
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root for a network namespace of its own")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < nofile:
        raise unittest.SkipTest("hard RLIMIT_NOFILE %d < %d" % (hard, nofile))
    why = private_network()
    if why:
        raise unittest.SkipTest(why)


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if check and p.returncode != 0:
        raise HarnessError("ip %s: %s" % (" ".join(args), p.stderr.decode(errors="replace").strip()))
    return p


class NetNS:
    """A network namespace of the test's own (`ip netns add`), joined to the
    root namespace by a veth pair: `root_addr` on the root side, `addr`
    inside, a /30 picked at random in 10.213.0.0/16 (none of the machine's
    own); lo is up inside. A server started with Server(..., netns=ns) runs
    under `ip netns exec` and listens on the namespace's 127.0.0.1, which
    the harness's clients reach by making their sockets inside it
    (setns(2) on the calling thread only). Needs root. Removed, with its
    link, by destroy() and at exit.

        ns = harness.NetNS("a").create()
        pg = harness.PostgreSQL(listen=[ns.root_addr]).start()
        srv = harness.Server("lighttpd", netns=ns,
                             db=pg.uri(hosts=[(ns.root_addr, pg.port)])).start()
        ns.link(False)     # the host drops off the network (and back: True)
    """

    def __init__(self, tag="h"):
        rnd = os.urandom(3).hex()
        self.name = "comet-%s-%s" % (tag, rnd)
        self.root_if = "cv%sr" % rnd      # at most 15 characters
        self.ns_if = "cv%sn" % rnd
        self.root_addr = self.addr = None
        self._created = False

    @staticmethod
    def unavailable():
        """None, or why namespaces cannot be made here."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if not shutil.which("ip", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            return "no ip (iproute2)"
        return None

    def _pick_subnet(self):
        used = _ip("-4", "-o", "addr", "show").stdout.decode()
        for _ in range(100):
            b = os.urandom(2)
            base = "10.213.%d.%d" % (b[0], (b[1] & 0xfc))
            net = base.rsplit(".", 1)[0] + "."
            last = int(base.rsplit(".", 1)[1])
            cand = (net + str(last + 1), net + str(last + 2))
            if not any(re.search(r"\binet %s/" % re.escape(c), used) for c in cand):
                return cand
        raise HarnessError("no free /30 in 10.213.0.0/16")

    def create(self):
        why = self.unavailable()
        if why:
            raise HarnessError(why)
        live.add(live.namespaces, self)
        self._created = True
        try:
            self.root_addr, self.addr = self._pick_subnet()
            _ip("netns", "add", self.name)
            _ip("link", "add", self.root_if, "type", "veth", "peer", "name", self.ns_if)
            _ip("link", "set", self.ns_if, "netns", self.name)
            _ip("addr", "add", self.root_addr + "/30", "dev", self.root_if)
            _ip("link", "set", self.root_if, "up")
            for args in (("link", "set", "lo", "up"),
                         ("addr", "add", self.addr + "/30", "dev", self.ns_if),
                         ("link", "set", self.ns_if, "up")):
                _ip("-n", self.name, *args)
        except BaseException:
            self.destroy()
            raise
        return self

    def __enter__(self):
        return self.create()

    def __exit__(self, *exc):
        self.destroy()

    def link(self, up):
        """Bring the root side of the veth pair up or down: the namespace
        is on the network, or cut off from it (packets are dropped, not
        refused)."""
        _ip("link", "set", self.root_if, "up" if up else "down")

    def exec_prefix(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, fn):
        """fn() with this thread in the namespace (sockets made there stay
        there), then back."""
        libc = ctypes.CDLL(None, use_errno=True)
        with open("/proc/thread-self/ns/net") as home, \
                open("/run/netns/%s" % self.name) as there:
            if libc.setns(there.fileno(), CLONE_NEWNET) != 0:
                raise HarnessError("setns %s: %s" % (self.name, os.strerror(ctypes.get_errno())))
            try:
                return fn()
            finally:
                if libc.setns(home.fileno(), CLONE_NEWNET) != 0:
                    # This thread cannot go home: nothing it does is trustworthy.
                    os._exit(70)

    def socket(self):
        return self.run(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))

    def create_connection(self, addr, timeout):
        s = self.socket()
        try:
            s.settimeout(timeout)
            s.connect(addr)
        except BaseException:
            s.close()
            raise
        return s

    def destroy(self):
        if not self._created:
            return
        self._created = False
        # Deleting the namespace deletes its end of the pair and with it
        # the other; the explicit delete is for a half-made pair.
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.root_if, check=False)
        live.remove(live.namespaces, self)


class NetnsHTTPConnection(http.client.HTTPConnection):
    """http.client's connection, its socket made inside a namespace."""

    def __init__(self, netns, host, port, timeout):
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self):
        self.sock = self.netns.create_connection((self.host, self.port), self.timeout)
