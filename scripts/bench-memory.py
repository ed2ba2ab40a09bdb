#!/usr/bin/env python3
"""Memory of small collections: shardline-node against redis-server 7.0.

    cargo build --release -p shardline-node
    python3 scripts/bench-memory.py hash 100000   # HSET hash:%08d f0..f9 -> 10-byte values
    python3 scripts/bench-memory.py zset 100000   # ZADD zset:%08d 50 members member:%04d, scores 0..49

Starts each server on a free port in a temporary directory, records RSS
(/proc/PID/status VmRSS), loads the keys with pipelined requests, waits a
second and records RSS again, then once more after SETTLE seconds (default
15; 0 skips it), when both allocators have returned the pages freed during
the load. Prints total RSS and growth per key for both, their ratios, and
the allocator's own count (INFO used_memory) per key. Both processes are
killed at the end.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_client import encode  # noqa: E402


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_up(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server on port %d did not start" % port)


SETTLE = int(os.environ.get("SETTLE", "15"))


def used_memory(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(encode(["INFO", "memory"]))
    f = s.makefile("rb")
    size = int(f.readline()[1:])
    body = f.read(size + 2).decode()
    s.close()
    for line in body.split("\r\n"):
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return 0


def load(port, kind, n):
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")
    batch = []
    for i in range(n):
        if kind == "hash":
            args = ["HSET", "hash:%08d" % i]
            for j in range(10):
                args += ["f%d" % j, "v%09d" % j]
        else:
            args = ["ZADD", "zset:%08d" % i]
            for j in range(50):
                args += [str(j), "member:%04d" % j]
        batch.append(encode(args))
        if len(batch) == 500 or i == n - 1:
            s.sendall(b"".join(batch))
            for _ in batch:
                line = f.readline()
                if line.startswith(b"-"):
                    raise RuntimeError(line.decode())
            batch = []
    s.close()


def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "hash"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100000
    if kind not in ("hash", "zset"):
        sys.exit("usage: bench-memory.py hash|zset [count]")
    res = {}
    for name in ("redis-server", "shardline-node"):
        port = free_port()
        d = tempfile.mkdtemp(prefix="bench-memory-")
        if name == "redis-server":
            cmd = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", d]
        else:
            cmd = [NODE, "--port", str(port), "--dir", d]
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
        try:
            wait_up(port)
            before = rss(p.pid)
            used0 = used_memory(port)
            load(port, kind, n)
            time.sleep(1)
            after = rss(p.pid)
            settled = after
            if SETTLE > 0:
                time.sleep(SETTLE)
                settled = rss(p.pid)
            used = used_memory(port) - used0
        finally:
            p.kill()
            p.wait()
            shutil.rmtree(d, ignore_errors=True)
        res[name] = (before, after, settled)
        print("%s: RSS %.1f MB -> %.1f MB after 1 s (%.0f bytes/key of growth), %.1f MB after %d s"
              " (%.0f bytes/key); allocator %.0f bytes/key"
              % (name, before / 1e6, after / 1e6, (after - before) / n, settled / 1e6, SETTLE,
                 (settled - before) / n, used / n))
    r, s = res["redis-server"], res["shardline-node"]
    print("after 1 s: total RSS ratio %.2fx, growth ratio %.2fx"
          % (s[1] / r[1], (s[1] - s[0]) / (r[1] - r[0])))
    if SETTLE > 0:
        print("after %d s: total RSS ratio %.2fx, growth ratio %.2fx"
              % (SETTLE, s[2] / r[2], (s[2] - s[0]) / (r[2] - r[0])))


if __name__ == "__main__":
    main()
