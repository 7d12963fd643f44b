"""The EventStream fixture: one raw streaming GET (HTTP/1.0, so the body is
not chunked and ends when the server closes) on a socket of its own, read
as it arrives; Server.open_stream() makes one. For event streams
(text/event-stream) and for watching an answer come in pieces."""

import socket
import time

from .util import HarnessError, parse_header_block


class EventStream:
    """A raw streaming response: .status, .headers once read_head() is done,
    then read_until() for body bytes as they arrive."""

    def __init__(self, port, path, headers, netns=None):
        if netns:
            self.sock = netns.create_connection(("127.0.0.1", port), 10)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        lines = ["GET %s HTTP/1.0" % path, "Host: 127.0.0.1:%d" % port]
        lines += ["%s: %s" % kv for kv in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        self.buf = b""
        self.closed = False
        self.status = None
        self.headers = None

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("stream: nothing new in time; have %r" % self.buf[-300:])
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("stream: nothing new in time; have %r" % self.buf[-300:])
        if not data:
            self.closed = True
        self.buf += data

    def read_head(self, timeout=10):
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            if self.closed:
                raise HarnessError("stream closed before headers: %r" % self.buf)
            self._fill(deadline)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status, _, self.headers = parse_header_block(head)
        return self

    def read_until(self, needle, timeout=10):
        """Body bytes up to and including needle (consumed)."""
        deadline = time.monotonic() + timeout
        while needle not in self.buf:
            if self.closed:
                raise HarnessError("stream closed before %r: %r" % (needle, self.buf))
            self._fill(deadline)
        i = self.buf.index(needle) + len(needle)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
