"""Minimal RESP2/RESP3 client used by the cmdspec tools (no dependencies).

Replies are parsed into typed tuples so the generator can tell RESP3 maps,
sets and arrays apart:
  ('int', n) ('bulk', bytes) ('simple', str) ('err', str) ('null',)
  ('array', [..]) ('set', [..]) ('map', [(k, v), ..]) ('bool', b)
  ('double', str) ('verbatim', bytes)
"""
import socket


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, host="127.0.0.1", proto=2):
        self.sock = socket.create_connection((host, port))
        self.buf = b""
        self.raw_start = 0
        if proto == 3:
            self.call("HELLO", "3")

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise EOFError("connection closed")
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = self.buf[self.pos:i]
                self.pos = i + 2
                return line
            self._fill()

    def _exact(self, n):
        while len(self.buf) < self.pos + n + 2:
            self._fill()
        data = self.buf[self.pos:self.pos + n]
        self.pos += n + 2
        return data

    def _parse(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return ("simple", rest.decode())
        if t == b"-":
            return ("err", rest.decode())
        if t == b":":
            return ("int", int(rest))
        if t == b"$":
            n = int(rest)
            return ("null",) if n < 0 else ("bulk", self._exact(n))
        if t == b"=":
            return ("verbatim", self._exact(int(rest)))
        if t == b"_":
            return ("null",)
        if t == b"#":
            return ("bool", rest == b"t")
        if t == b",":
            return ("double", rest.decode())
        if t in (b"*", b"~", b">"):
            n = int(rest)
            if n < 0:
                return ("null",)
            kind = {b"*": "array", b"~": "set", b">": "push"}[t]
            return (kind, [self._parse() for _ in range(n)])
        if t == b"%":
            n = int(rest)
            return ("map", [(self._parse(), self._parse()) for _ in range(n)])
        raise ValueError("bad reply type %r" % line)

    def call_raw(self, *args):
        """Sends a command; returns (typed reply, exact reply bytes)."""
        self.sock.sendall(encode(args))
        self.pos = 0
        reply = self._parse()
        raw = self.buf[:self.pos]
        self.buf = self.buf[self.pos:]
        return reply, raw

    def call(self, *args):
        return self.call_raw(*args)[0]


def plain(v):
    """Typed reply -> plain python (maps become dicts keeping order)."""
    k = v[0]
    if k in ("bulk", "verbatim"):
        return v[1].decode()
    if k in ("simple", "int", "bool", "double", "err"):
        return v[1]
    if k == "null":
        return None
    if k in ("array", "set", "push"):
        return [plain(x) for x in v[1]]
    if k == "map":
        return {plain(a): plain(b) for a, b in v[1]}
    raise ValueError(k)
