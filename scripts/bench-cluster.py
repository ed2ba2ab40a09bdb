#!/usr/bin/env python3
"""Cluster bus benchmarks: shardline-node and redis-server 7.0 side by side.

    cargo build --release -p shardline-node
    python3 scripts/bench-cluster.py            # 6 and 30 nodes
    SIZES=6 python3 scripts/bench-cluster.py    # quicker

For each server kind and cluster size it measures, on loopback addresses
127.0.K.x (one address per node, like pods):
  * convergence: time from the last CLUSTER MEET until every node lists every
    node (no handshake, no failure flag, all links connected) with identical
    slot owners and epochs, and cluster_state:ok;
  * failure detection (cluster-node-timeout 2000): time from SIGSTOP of one
    master until every other node flags it `fail` (polled every 20 ms);
  * bus traffic at steady state: messages and bytes sent per node per
    second over 10 s (bytes: `ss -ti` bytes_sent of every bus socket whose
    local address is the node's, summed per node).
Prints a Markdown table. Every process is killed on exit.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
TIMEOUT = 2000
PROCS = []
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_client import Conn  # noqa: E402


def call(host, port, *args, timeout=2.0):
    c = Conn("%s:%d" % (host, port), timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def free_port():
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        if p < 55000:
            return p


def start(kind, ip, tmp):
    port = free_port()
    d = os.path.join(tmp, "%s-%s" % (ip, port))
    os.makedirs(d)
    common = ["--port", str(port), "--bind", ip, "--dir", d,
              "--cluster-enabled", "yes", "--cluster-node-timeout", str(TIMEOUT)]
    if kind == "redis":
        cmd = ["redis-server"] + common + ["--bind-source-addr", ip, "--save", "",
                                           "--appendonly", "no"]
    else:
        cmd = [NODE] + common + ["--loglevel", "warning"]
    log = open(os.path.join(d, "log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=d)
    PROCS.append(p)
    for _ in range(200):
        try:
            if call(ip, port, "PING") == "PONG":
                return (ip, port, p)
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("%s on %s:%d did not start" % (kind, ip, port))


def nodes_view(ip, port):
    text = call(ip, port, "CLUSTER", "NODES")
    view = {}
    for line in text.splitlines():
        f = line.split()
        view[f[0]] = (f[2], f[6], f[7], tuple(f[8:]))
    return view


def agreed(nodes):
    ref = None
    for ip, port, _ in nodes:
        try:
            v = nodes_view(ip, port)
            state = call(ip, port, "CLUSTER", "INFO")
        except (OSError, RuntimeError):
            return False
        if len(v) != len(nodes) or "cluster_state:ok" not in state:
            return False
        for flags, epoch, link, slots in v.values():
            if any(x in flags for x in ("handshake", "fail", "noaddr")) or link != "connected":
                return False
        shape = {k: (e, s) for k, (f, e, l, s) in v.items()}
        if ref is None:
            ref = shape
        elif shape != ref:
            return False
    return True


def form(kind, n, tmp, net):
    nodes = [start(kind, "127.0.%d.%d" % (net, i + 1), tmp) for i in range(n)]
    masters = min(n, 6) if n <= 6 else n // 2
    per = 16384 // masters
    for i in range(masters):
        ip, port, _ = nodes[i]
        a = i * per
        b = 16383 if i == masters - 1 else a + per - 1
        call(ip, port, "CLUSTER", "ADDSLOTSRANGE", a, b)
        call(ip, port, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
    ip0, port0, _ = nodes[0]
    for ip, port, _ in nodes[1:]:
        call(ip0, port0, "CLUSTER", "MEET", ip, port)
    t0 = time.time()
    while not agreed(nodes):
        if time.time() - t0 > 120:
            raise RuntimeError("%s: %d nodes did not converge" % (kind, n))
        time.sleep(0.02)
    return nodes, time.time() - t0


def failure_detection(nodes):
    ip, port, victim = nodes[1]
    myid = call(ip, port, "CLUSTER", "MYID")
    os.kill(victim.pid, signal.SIGSTOP)
    t0 = time.time()
    try:
        while True:
            done = 0
            for oip, oport, p in nodes:
                if p is victim:
                    continue
                line = [l for l in call(oip, oport, "CLUSTER", "NODES").splitlines()
                        if l.startswith(myid)]
                if line and "fail" in line[0].split()[2].split(","):
                    done += 1
            if done == len(nodes) - 1:
                return time.time() - t0
            if time.time() - t0 > 30:
                raise RuntimeError("no FAIL agreement")
            time.sleep(0.02)
    finally:
        os.kill(victim.pid, signal.SIGCONT)


def bus_bytes(nodes):
    """bytes_sent of every established bus socket, per local IP."""
    cports = {port + 10000 for _, port, _ in nodes}
    out = subprocess.run(["ss", "-tinH", "state", "established"],
                         capture_output=True, text=True, check=True).stdout
    per_ip = {}
    cur = None
    for line in out.splitlines():
        if not line.startswith((" ", "\t")):
            f = line.split()
            local, remote = f[-2], f[-1]
            lip, lport = local.rsplit(":", 1)
            rport = int(remote.rsplit(":", 1)[1])
            cur = lip if (int(lport) in cports or rport in cports) else None
        elif cur is not None:
            for tok in line.split():
                if tok.startswith("bytes_sent:"):
                    per_ip[cur] = per_ip.get(cur, 0) + int(tok.split(":")[1])
    return per_ip


def msgs_sent(ip, port):
    for line in call(ip, port, "CLUSTER", "INFO").splitlines():
        if line.startswith("cluster_stats_messages_sent:"):
            return int(line.split(":")[1])
    return 0


def traffic(nodes, secs=10):
    m0 = [msgs_sent(ip, port) for ip, port, _ in nodes]
    b0 = bus_bytes(nodes)
    time.sleep(secs)
    m1 = [msgs_sent(ip, port) for ip, port, _ in nodes]
    b1 = bus_bytes(nodes)
    n = len(nodes)
    msgs = sum(b - a for a, b in zip(m0, m1)) / n / secs
    byts = sum(b1.get(ip, 0) - b0.get(ip, 0) for ip, _, _ in nodes) / n / secs
    return msgs, byts


def stop_all():
    for p in PROCS:
        try:
            p.kill()
            p.wait(timeout=5)
        except Exception:
            pass
    PROCS.clear()


def main():
    if not os.path.exists(NODE):
        sys.exit("build first: cargo build --release -p shardline-node")
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found: run the README's test command first")
    sizes = [int(x) for x in os.environ.get("SIZES", "6,30").split(",")]
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-cluster-")
    try:
        net = 200
        for n in sizes:
            for kind in ("redis", "node"):
                net += 1
                nodes, conv = form(kind, n, tmp, net)
                time.sleep(2)
                msgs, byts = traffic(nodes)
                fd = failure_detection(nodes)
                rows.append((kind, n, conv, fd, msgs, byts))
                print("%s %d nodes: converge %.2fs, fail %.2fs, %.1f msg/s, %.0f B/s per node"
                      % (kind, n, conv, fd, msgs, byts), file=sys.stderr)
                stop_all()
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print("| server | nodes | MEET→agreement s | SIGSTOP→FAIL everywhere s | bus msgs/s/node | bus bytes/s/node |")
    print("|---|---|---|---|---|---|")
    for kind, n, conv, fd, msgs, byts in rows:
        name = "redis-server 7.0" if kind == "redis" else "shardline-node"
        print("| %s | %d | %.2f | %.2f | %.1f | %.0f |" % (name, n, conv, fd, msgs, byts))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        stop_all()
