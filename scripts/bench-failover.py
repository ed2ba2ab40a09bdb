#!/usr/bin/env python3
"""Failover benchmarks: shardline-node and redis-server 7.0 side by side.

    cargo build --release -p shardline-node
    python3 scripts/bench-failover.py
    ROUNDS_MANUAL=4 ROUNDS_AUTO=2 python3 scripts/bench-failover.py   # quicker

For each kind, a cluster of 3 masters + 3 replicas on its own loopback
addresses (127.0.150.x ours, 127.0.151.x redis), cluster-node-timeout 2000,
and one writer doing SET in a loop on the shard under test (following
MOVED, retrying refused connections and CLUSTERDOWN), which records the time
of every acknowledged write:
  * manual failover (CLUSTER FAILOVER, default mode), alternating between the
    two nodes of the shard: the duration from the command until the new
    master acknowledges a write, and the longest gap between two
    acknowledged writes around it (the write pause clients see);
  * automatic failover: SIGKILL of the shard's master, then the time until
    writes are acknowledged again; the killed node is restarted (it rejoins
    as a replica) before the next round.
Prints a Markdown table with medians, worst cases and ratios.
"""
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
ROUNDS_MANUAL = int(os.environ.get("ROUNDS_MANUAL", "10"))
ROUNDS_AUTO = int(os.environ.get("ROUNDS_AUTO", "3"))
TIMEOUT = 2000
PROCS = []
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_client import Conn  # noqa: E402
from bench_util import call, cleanup, free_port, wait  # noqa: E402
DIRS = []




class Node:
    def __init__(self, kind, ip):
        self.kind, self.ip = kind, ip
        self.port = free_port(ip)
        self.dir = tempfile.mkdtemp(prefix="bench-fo-")
        DIRS.append(self.dir)
        self.proc = None
        self.start()

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    def start(self):
        args = ["--port", str(self.port), "--bind", self.ip, "--dir", self.dir,
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(TIMEOUT), "--save", "", "--appendonly", "no",
                "--logfile", os.path.join(self.dir, "log")]
        if self.kind == "shardline":
            cmd = [NODE] + args
        else:
            cmd = ["redis-server"] + args + ["--protected-mode", "no",
                                             "--bind-source-addr", self.ip]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        PROCS.append(self.proc)
        for _ in range(500):
            try:
                call(self.addr, "PING")
                return
            except (OSError, RuntimeError):
                time.sleep(0.01)
        sys.exit("%s did not start" % self.addr)

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def myid(self):
        return call(self.addr, "CLUSTER", "MYID")

    def nodes(self):
        out = {}
        for line in call(self.addr, "CLUSTER", "NODES").splitlines():
            f = line.split()
            out[f[0]] = (f[2], f[3])  # flags, master
        return out



def build(kind, net):
    nodes = [Node(kind, "127.0.%d.%d" % (net, i + 1)) for i in range(6)]
    for i in range(3):
        a, b = i * 16384 // 3, (i + 1) * 16384 // 3 - 1
        call(nodes[i].addr, "CLUSTER", "ADDSLOTSRANGE", a, b)
    for n in nodes[1:]:
        call(nodes[0].addr, "CLUSTER", "MEET", n.ip, n.port)
    ids = [n.myid() for n in nodes]
    wait("every node to know every other",
         lambda: all(len(n.nodes()) == 6 and not any("handshake" in f for f, _ in n.nodes().values())
                     for n in nodes))
    for i in range(3):
        call(nodes[3 + i].addr, "CLUSTER", "REPLICATE", ids[i])
    settled(nodes, {ids[3 + i]: ids[i] for i in range(3)})
    return nodes


def settled(nodes, pairs):
    """Every running node sees `pairs` (replica id -> master id), no failure
    flags, and the replicas' links are up."""
    def ok():
        for n in nodes:
            if n.proc.poll() is not None:
                continue
            view = n.nodes()
            for r, m in pairs.items():
                flags, master = view.get(r, ("", ""))
                if "slave" not in flags or master != m:
                    return False
            if any("fail" in f for f, _ in view.values()):
                return False
            if "cluster_state:ok" not in call(n.addr, "CLUSTER", "INFO"):
                return False
        for n in nodes:
            if n.myid() in pairs and "master_link_status:up" not in call(n.addr, "INFO", "replication"):
                return False
        return True
    wait("the layout to settle", ok, within=90)


class Writer(threading.Thread):
    """SET in a loop on keys of slot range [0, 5000] (shard 0)."""

    def __init__(self, seeds):
        super().__init__(daemon=True)
        self.seeds = seeds
        self.target = seeds[0]
        # A hash tag whose slot lies in shard 0 (slots 0-5460).
        for n in range(1000):
            self.tag = "s%d" % n
            self.slot = call(seeds[0], "CLUSTER", "KEYSLOT", self.tag)
            if self.slot < 5000:
                break
        self.acks = []  # (time, addr)
        self.stop = False
        self.lock = threading.Lock()

    def owner(self, dead):
        """The slot's master as any live node sees it (None if unknown)."""
        for a in self.seeds:
            if a == dead:
                continue
            try:
                for r in call(a, "CLUSTER", "SLOTS"):
                    if r[0] <= self.slot <= r[1]:
                        return "%s:%d" % (r[2][0], r[2][1])
            except (OSError, RuntimeError):
                continue
        return None

    def run(self):
        conn, addr, i = None, self.target, 0
        while not self.stop:
            try:
                if conn is None:
                    conn = Conn(addr, timeout=1.0)
                conn.call("SET", "{%s}:%d" % (self.tag, i % 1000), i)
                with self.lock:
                    self.acks.append((time.perf_counter(), addr))
                i += 1
            except RuntimeError as e:
                msg = str(e)
                if msg.startswith("MOVED"):
                    addr = msg.split()[2]
                    if conn:
                        conn.close()
                    conn = None
                else:
                    time.sleep(0.001)
            except OSError:
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.005)
                addr = self.owner(addr) or addr

    def first_ack_after(self, t0, addr, within=30):
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            with self.lock:
                for t, a in reversed(self.acks):
                    if t < t0:
                        break
                    if a == addr:
                        first = [x for x in self.acks if x[0] >= t0 and x[1] == addr][0][0]
                        return first
            time.sleep(0.002)
        return None

    def longest_gap(self, t0, t1):
        with self.lock:
            ts = [t for t, _ in self.acks if t0 <= t <= t1]
        if len(ts) < 2:
            return t1 - t0
        return max(b - a for a, b in zip(ts, ts[1:]))


def bench(kind, net):
    nodes = build(kind, net)
    ids = [n.myid() for n in nodes]
    pairs = {ids[3 + i]: ids[i] for i in range(3)}
    # Shard 0 (slots 0-5460, where the writer's keys live).
    master, replica = nodes[0], nodes[3]
    manual, manual_gap, auto, auto_gap = [], [], [], []
    w = Writer([n.addr for n in nodes])
    w.start()
    time.sleep(0.5)
    for _ in range(ROUNDS_MANUAL):
        t0 = time.perf_counter()
        call(replica.addr, "CLUSTER", "FAILOVER")
        t1 = w.first_ack_after(t0, replica.addr)
        if t1 is None:
            sys.exit("%s: manual failover did not complete" % kind)
        time.sleep(0.3)
        manual.append(t1 - t0)
        manual_gap.append(w.longest_gap(t0 - 0.2, time.perf_counter()))
        del pairs[replica.myid()]
        pairs[master.myid()] = replica.myid()
        master, replica = replica, master
        settled(nodes, pairs)
        # redis masters vote about one master at most once in twice the
        # node timeout: space the rounds so both kinds can run each one.
        time.sleep(2 * TIMEOUT / 1000 + 0.5)
    for _ in range(ROUNDS_AUTO):
        t0 = time.perf_counter()
        master.kill()
        t1 = w.first_ack_after(t0, replica.addr, within=60)
        if t1 is None:
            sys.exit("%s: automatic failover did not complete" % kind)
        auto.append(t1 - t0)
        auto_gap.append(w.longest_gap(t0 - 0.2, t1 + 0.2))
        master.start()
        del pairs[replica.myid()]
        pairs[master.myid()] = replica.myid()
        master, replica = replica, master
        settled(nodes, pairs)
    w.stop = True
    w.join()
    for n in nodes:
        n.kill()
    return manual, manual_gap, auto, auto_gap


def ms(x):
    return "%.0f ms" % (x * 1000)


def main():
    if not os.path.exists(NODE):
        sys.exit("build first: cargo build --release -p shardline-node")
    try:
        results = {}
        for kind, net in (("shardline", 150), ("redis", 151)):
            results[kind] = bench(kind, net)
        print("\n| measure | shardline-node | redis-server 7.0 | ratio (ours/redis) |")
        print("|---|---|---|---|")
        names = ["manual failover: command to first write on the new master",
                 "manual failover: longest write gap",
                 "automatic failover: SIGKILL to first write on the new master",
                 "automatic failover: longest write gap"]
        for k, name in enumerate(names):
            a, b = results["shardline"][k], results["redis"][k]
            ma, mb = statistics.median(a), statistics.median(b)
            print("| %s, median (worst) | %s (%s) | %s (%s) | %.2f |" % (
                name, ms(ma), ms(max(a)), ms(mb), ms(max(b)), ma / mb if mb else 0))
        print("\nrounds: %d manual, %d automatic; cluster-node-timeout %d" %
              (ROUNDS_MANUAL, ROUNDS_AUTO, TIMEOUT))
    finally:
        cleanup(PROCS, DIRS)


if __name__ == "__main__":
    main()
