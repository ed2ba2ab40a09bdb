#!/usr/bin/env python3
"""Slot migration benchmark: moving half the slots, with their keys, from
one master to a new one.

    cargo build --release -p shardline-node
    python3 scripts/bench-migration.py
    KEYS_SMALL=100000 KEYS_BIG=10000 python3 scripts/bench-migration.py   # quicker
    BIG_SIZE=4096 ...                                                     # other value size

Two datasets: KEYS_SMALL (1,000,000) keys of 16-byte values, and KEYS_BIG
(100,000) keys of BIG_SIZE (16384) bytes (random bytes, so that the DUMP
payloads do not compress). Keys are `key:<i>`, spread over all slots.

Three systems per dataset, one after another, each on its own loopback
addresses (127.0.160.x, .161.x, .162.x), cluster-node-timeout 5000, no
persistence:
  * `redis-cli --cluster rebalance A --cluster-use-empty-masters` over
    redis-server 7.0 (the baseline);
  * the same over shardline-node;
  * `MIGRATESLOTS <B> <port> 60000 SLOTSRANGE ...` sent to A (our fast path),
    over shardline-node, for the very slots the baseline's rebalance moved.

For each: master A owns all 16384 slots, empty master B joins, the dataset
is loaded into A (pipelined SETs), then the move is timed (wall clock of the
redis-cli process, or of the MIGRATESLOTS call). Meanwhile a probe thread
does GET of random loaded keys against the cluster, one at a time, following
MOVED and ASK (with ASKING), and records each request's latency (redirects
included) and errors. Afterwards: DBSIZE(A)+DBSIZE(B) must equal the keys
loaded, and `redis-cli --cluster check` must be clean.

keys/s = DBSIZE(B) / seconds; MB/s = DBSIZE(B) x value size / 1e6 / seconds
(values only: keys, DUMP framing and protocol overhead are not counted).
redis-cli, the servers and the probe share the machine's cores.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
KEYS_SMALL = int(os.environ.get("KEYS_SMALL", "1000000"))
KEYS_BIG = int(os.environ.get("KEYS_BIG", "100000"))
SMALL_SIZE = 16
BIG_SIZE = int(os.environ.get("BIG_SIZE", "16384"))
TIMEOUT = 5000
MIGRATE_TIMEOUT = 60000
PROCS = []
DIRS = []
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_client import Conn  # noqa: E402
from bench_util import call, cleanup, free_port, wait  # noqa: E402



def _crc16_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


CRC_TABLE = _crc16_table()


def key_slot(key):
    """Cluster hash slot of a key without hash tag (CRC16-XMODEM mod 16384)."""
    crc = 0
    for b in key:
        crc = ((crc << 8) & 0xFFFF) ^ CRC_TABLE[((crc >> 8) ^ b) & 0xFF]
    return crc & 16383


_KPS = {}


def keys_per_slot(n):
    """How many of key:0..key:n-1 fall in each slot."""
    if n not in _KPS:
        c = [0] * 16384
        for i in range(n):
            c[key_slot(b"key:%d" % i)] += 1
        _KPS[n] = c
    return _KPS[n]



def spawn(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    PROCS.append(p)
    return p


class Node:
    def __init__(self, kind, ip):
        self.kind, self.ip = kind, ip
        self.port = free_port(ip)
        self.dir = tempfile.mkdtemp(prefix="bench-mig-")
        DIRS.append(self.dir)
        args = ["--port", str(self.port), "--bind", self.ip, "--dir", self.dir,
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(TIMEOUT), "--save", "", "--appendonly", "no",
                "--logfile", os.path.join(self.dir, "log")]
        if kind == "shardline":
            cmd = [NODE] + args
        else:
            cmd = ["redis-server"] + args + ["--protected-mode", "no",
                                             "--bind-source-addr", self.ip]
        self.proc = spawn(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                call(self.addr, "PING")
                return
            except (OSError, RuntimeError):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
        raise SystemExit("%s (%s) did not start" % (self.addr, kind))

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def myid(self):
        return call(self.addr, "CLUSTER", "MYID")

    def nodes(self):
        """id -> (flags, slot ranges [(a, b)])."""
        out = {}
        for line in call(self.addr, "CLUSTER", "NODES").splitlines():
            f = line.split()
            ranges = []
            for r in f[8:]:
                if r.startswith("["):
                    continue
                a, _, b = r.partition("-")
                ranges.append((int(a), int(b or a)))
            out[f[0]] = (f[2], ranges)
        return out

    def dbsize(self):
        return call(self.addr, "DBSIZE")



def agreed(nodes, owners):
    """Every node knows every node (no handshake, no failure flags), sees the
    slot ownership `owners` (id -> ranges) and reports cluster_state:ok."""
    for n in nodes:
        view = n.nodes()
        if len(view) != len(nodes):
            return False
        for flags, _ in view.values():
            if "handshake" in flags or "fail" in flags or "noaddr" in flags:
                return False
        for nid, ranges in owners.items():
            if nid not in view or view[nid][1] != ranges:
                return False
        if "cluster_state:ok" not in call(n.addr, "CLUSTER", "INFO"):
            return False
    return True


def load(addr, n, size, rnd):
    """SET key:0..key:n-1 on addr, pipelined over one socket. Values are
    `size` bytes: random bytes (one random block, the key's number written
    at its start) so that DUMP payloads are not compressible."""
    block = rnd.randbytes(size) if size > 32 else None
    per_batch = max(1, min(10000, (16 << 20) // (size + 64)))
    s = socket.create_connection(addr.rsplit(":", 1), timeout=120)
    try:
        i = 0
        while i < n:
            m = min(per_batch, n - i)
            parts = []
            for j in range(i, i + m):
                k = b"key:%d" % j
                if block is None:
                    v = b"%0*d" % (size, j)
                else:
                    tag = b"%d:" % j
                    v = tag + block[len(tag):]
                parts.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
            s.sendall(b"".join(parts))
            buf = b""
            while buf.count(b"\r\n") < m:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise SystemExit("connection closed while loading")
                buf += chunk
            if buf != b"+OK\r\n" * m:
                bad = [ln for ln in buf.split(b"\r\n") if ln and ln != b"+OK"]
                raise SystemExit("load error on %s: %r" % (addr, bad[:3]))
            i += m
    finally:
        s.close()


class Probe(threading.Thread):
    """GET of random loaded keys, one at a time, following MOVED and ASK."""

    def __init__(self, seed_addr, nkeys):
        super().__init__(daemon=True)
        self.route = [seed_addr] * 16384
        self.nkeys = nkeys
        self.conns = {}
        self.lat = []
        self.worst, self.worst_at = 0.0, 0.0
        self.errors = {}
        self.misses = 0
        self.moved = self.asks = 0
        self.stop = False
        self.rnd = random.Random(7)

    def conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            c = self.conns[addr] = Conn(addr, timeout=30.0)
        return c

    def drop(self, addr):
        c = self.conns.pop(addr, None)
        if c:
            c.close()

    def error(self, msg):
        msg = msg[:60]
        self.errors[msg] = self.errors.get(msg, 0) + 1

    def get(self, key):
        slot = key_slot(key.encode())
        addr, asking = self.route[slot], False
        for _ in range(5):
            try:
                c = self.conn(addr)
                if asking:
                    c.s.sendall(b"*1\r\n$6\r\nASKING\r\n*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n"
                                % (len(key), key.encode()))
                    c.read()
                    v = c.read()
                else:
                    v = c.call("GET", key)
                if v is None:
                    self.misses += 1
                return
            except RuntimeError as e:
                msg = str(e)
                if msg.startswith("MOVED "):
                    self.moved += 1
                    addr, asking = msg.split()[2], False
                    self.route[slot] = addr
                elif msg.startswith("ASK "):
                    self.asks += 1
                    addr, asking = msg.split()[2], True
                else:
                    self.error(msg)
                    return
            except OSError as e:
                self.drop(addr)
                self.error("%s: %s" % (type(e).__name__, e))
                return
        self.error("too many redirections")

    def run(self):
        t_start = time.perf_counter()
        while not self.stop:
            key = "key:%d" % self.rnd.randrange(self.nkeys)
            t0 = time.perf_counter()
            self.get(key)
            d = time.perf_counter() - t0
            if d > self.worst:
                self.worst, self.worst_at = d, t0 - t_start
            self.lat.append(d)
        for a in list(self.conns):
            self.drop(a)

    def summary(self):
        lat = sorted(self.lat)
        if not lat:
            return 0, 0.0, 0.0
        return len(lat), lat[-1], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def fmt_ranges(ranges):
    return " ".join("%d-%d" % r if r[0] != r[1] else str(r[0]) for r in ranges)


def cluster_check(addr):
    out = subprocess.run(["redis-cli", "--cluster", "check", addr],
                         capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    bad = [ln for ln in text.splitlines() if "[ERR]" in ln or "[WARNING]" in ln]
    return bad, text


def run_system(label, kind, net, nkeys, size, slots_hint, notes):
    rnd = random.Random(1)
    a = Node(kind, "127.0.%d.1" % net)
    b = Node(kind, "127.0.%d.2" % net)
    try:
        call(a.addr, "CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        call(a.addr, "CLUSTER", "MEET", b.ip, b.port)
        ida, idb = a.myid(), b.myid()
        wait("%s: A and B to agree" % label,
             lambda: agreed([a, b], {ida: [(0, 16383)], idb: []}))
        t0 = time.perf_counter()
        load(a.addr, nkeys, size, rnd)
        if a.dbsize() != nkeys:
            raise SystemExit("%s: loaded %d keys, expected %d" % (label, a.dbsize(), nkeys))
        load_s = time.perf_counter() - t0
        la0 = os.getloadavg()[0]
        probe = Probe(a.addr, nkeys)
        probe.start()
        time.sleep(0.2)
        if kind == "redis" or "rebalance" in label:
            cmdline = ["redis-cli", "--cluster", "rebalance", a.addr, "--cluster-use-empty-masters"]
            log = os.path.join(a.dir, "redis-cli.out")
            with open(log, "w") as lf:
                t0 = time.perf_counter()
                p = spawn(cmdline, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                rc = p.wait()
                secs = time.perf_counter() - t0
            with open(log) as lf:
                cli_out = lf.read()
            shown = " ".join(cmdline)
            odd = [ln for ln in cli_out.splitlines()
                   if "[ERR]" in ln or "[WARNING]" in ln or "ERR" in ln or "rror" in ln]
            if rc != 0 or odd:
                notes.append("%s: redis-cli exited %d; suspicious lines: %s\n    last output: %s"
                             % (label, rc, odd[:10], cli_out[-1500:]))
        else:
            args = ["MIGRATESLOTS", b.ip, b.port, MIGRATE_TIMEOUT, "SLOTSRANGE"]
            for r in slots_hint:
                args += [r[0], r[1]]
            shown = " ".join(str(x) for x in args)
            t0 = time.perf_counter()
            try:
                reply = call(a.addr, *args, timeout=3600)
            except RuntimeError as e:
                reply = None
                notes.append("%s: MIGRATESLOTS failed: %s" % (label, e))
            secs = time.perf_counter() - t0
            notes.append("%s: MIGRATESLOTS replied %r" % (label, reply))
        time.sleep(0.2)
        probe.stop = True
        probe.join()
        da, db = a.dbsize(), b.dbsize()
        if da + db != nkeys:
            notes.append("%s: DBSIZE(A)+DBSIZE(B) = %d+%d = %d != %d loaded"
                         % (label, da, db, da + db, nkeys))
        view = b.nodes()
        moved_ranges = view.get(idb, ("", []))[1]
        nslots = sum(y - x + 1 for x, y in moved_ranges)
        counts = keys_per_slot(nkeys)
        expected = sum(sum(counts[x:y + 1]) for x, y in moved_ranges)
        if expected != db:
            notes.append("%s: B holds %d keys but its slots hold %d of the loaded keys"
                         % (label, db, expected))
        bad, text = cluster_check(a.addr)
        if bad:
            # Once more after gossip had time to spread the last changes.
            time.sleep(3)
            bad2, text2 = cluster_check(a.addr)
            notes.append("%s: `redis-cli --cluster check` right after the move was not clean:\n%s%s"
                         % (label, text,
                            "    (3 s later: clean)" if not bad2 else
                            "    3 s later, still not clean:\n" + text2))
        n, worst, p99 = probe.summary()
        errs = sum(probe.errors.values())
        notes.append("%s: load average %.2f before the move, %.2f after; loaded in %.1f s; move: `%s`; B got %d slots (%s), %d keys; "
                     "probe: %d GETs, %d MOVED, %d ASK, %d nil, errors %s, worst at +%.1f s"
                     % (label, la0, os.getloadavg()[0], load_s, shown, nslots, fmt_ranges(moved_ranges), db, n,
                        probe.moved, probe.asks, probe.misses, probe.errors or "none",
                        probe.worst_at))
        return {"label": label, "secs": secs, "keys": db, "size": size,
                "worst": worst, "p99": p99, "errors": errs + probe.misses,
                "ranges": moved_ranges, "cmd": shown}
    finally:
        a.kill()
        b.kill()


def dataset(title, nkeys, size):
    print("\n== %s: %d keys of %d-byte values ==" % (title, nkeys, size), flush=True)
    notes = []
    rows = []
    systems = [("redis-cli rebalance on redis-server 7.0", "redis", 160),
               ("redis-cli rebalance on shardline-node", "shardline", 161),
               ("MIGRATESLOTS on shardline-node (fast path)", "shardline", 162)]
    hint = [(8192, 16383)]
    for label, kind, net in systems:
        print("  running: %s ..." % label, flush=True)
        r = run_system(label, kind, net, nkeys, size, hint, notes)
        if kind == "redis" and r["ranges"]:
            hint = r["ranges"]  # the fast path moves the very same slots
        rows.append(r)
        print("  done in %.2f s" % r["secs"], flush=True)
    base = rows[0]
    print("\n### %s: %s keys of %s-byte values\n" % (title, format(nkeys, ","), format(size, ",")))
    print("| system | seconds | keys/s | MB/s (values) | probe worst latency | probe p99 | probe errors | speed vs redis-cli on redis-server |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        kps = r["keys"] / r["secs"] if r["secs"] else 0
        mbs = r["keys"] * r["size"] / 1e6 / r["secs"] if r["secs"] else 0
        ratio = base["secs"] / r["secs"] if r["secs"] else 0
        print("| %s | %.2f | %s | %.2f | %.1f ms | %.2f ms | %d | %.2fx |" % (
            r["label"], r["secs"], format(int(kps), ","), mbs, r["worst"] * 1000,
            r["p99"] * 1000, r["errors"], ratio))
    print()
    for n in notes:
        print("- " + n)
    sys.stdout.flush()


def on_term(signum, frame):
    raise SystemExit("terminated by signal %d" % signum)


def main():
    if not os.path.exists(NODE):
        sys.exit("build first: cargo build --release -p shardline-node")
    signal.signal(signal.SIGTERM, on_term)
    try:
        print("command: %s%s" % (
            " ".join("%s=%s" % (k, os.environ[k]) for k in ("KEYS_SMALL", "KEYS_BIG", "BIG_SIZE")
                     if k in os.environ) + (" " if any(k in os.environ for k in ("KEYS_SMALL", "KEYS_BIG", "BIG_SIZE")) else ""),
            " ".join(["python3"] + sys.argv)))
        print("redis-server: %s" % subprocess.run(["redis-server", "--version"], capture_output=True,
                                                   text=True).stdout.strip())
        if KEYS_SMALL > 0:
            dataset("small values", KEYS_SMALL, SMALL_SIZE)
        if KEYS_BIG > 0:
            dataset("big values", KEYS_BIG, BIG_SIZE)
        print("\ncluster-node-timeout %d, no persistence; MB = 1e6 bytes of values "
              "(keys and protocol overhead not counted); probe = one client doing GET of "
              "random loaded keys, following MOVED/ASK, latency per request including "
              "redirects; probe errors = error replies + nil replies + connection errors."
              % TIMEOUT)
    finally:
        cleanup(PROCS, DIRS)


if __name__ == "__main__":
    main()
