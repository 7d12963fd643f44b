"""The FastCGI wire format, as much as the tests' clients need: a request
(BEGIN_REQUEST, PARAMS, STDIN) as bytes, and a splitter of the records
that come back. Python 3 standard library only."""

import struct

BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 3, 4, 5, 6


def record(rtype, content, rid=1):
    pad = (8 - len(content) % 8) % 8
    return struct.pack("!BBHHBB", 1, rtype, rid, len(content), pad, 0) + content + b"\0" * pad


def name_value(k, v):
    k, v = k.encode(), v.encode()
    enc = lambda n: bytes([n]) if n < 128 else struct.pack("!I", n | 0x80000000)
    return enc(len(k)) + enc(len(v)) + k + v


def request(params, body=b""):
    """One responder request: the bytes a web server would send."""
    out = record(BEGIN_REQUEST, struct.pack("!HB5x", 1, 0))
    pairs = b"".join(name_value(k, v) for k, v in params.items())
    for i in range(0, len(pairs), 65528):
        out += record(PARAMS, pairs[i:i + 65528])
    out += record(PARAMS, b"")
    for i in range(0, len(body), 65535):
        out += record(STDIN, body[i:i + 65535])
    return out + record(STDIN, b"")


class Records:
    """Splits a FastCGI byte stream into (type, content) records."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data
        while len(self.buf) >= 8:
            _, rtype, _, clen, plen, _ = struct.unpack("!BBHHBB", self.buf[:8])
            if len(self.buf) < 8 + clen + plen:
                return
            yield rtype, self.buf[8:8 + clen]
            self.buf = self.buf[8 + clen + plen:]
