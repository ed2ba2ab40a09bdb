"""A minimal RESP client shared by the benchmark scripts (no pip packages).

    c = Conn("127.0.0.1:7000")   # or Conn(7000) for 127.0.0.1
    c.call("SET", "k", "v")      # -> "OK"; error replies raise RuntimeError
"""
import socket


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    """One reply from a binary file object: str, int, None or list."""
    line = f.readline()
    if not line:
        raise ConnectionError("connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return rest.decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"$":
        n = int(rest)
        if n < 0:
            return None
        return f.read(n + 2)[:-2].decode(errors="replace")
    if t == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise RuntimeError("unexpected reply %r" % line)


class Conn:
    def __init__(self, addr, timeout=30.0):
        if isinstance(addr, int):
            host, port = "127.0.0.1", addr
        else:
            host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.f = self.s.makefile("rb")

    def call(self, *args):
        self.s.sendall(encode(args))
        return read_reply(self.f)

    def read(self):
        return read_reply(self.f)

    def close(self):
        self.s.close()
