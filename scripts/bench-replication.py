#!/usr/bin/env python3
"""Replication benchmarks: shardline-node and redis-server 7.0 side by side.

    cargo build --release -p shardline-node
    python3 scripts/bench-replication.py          # 1024 MB dataset
    MB=256 python3 scripts/bench-replication.py   # quicker

For each kind (our master and replica; redis master and replica with
repl-diskless-sync yes and no delay):
  * full sync: the master is filled with MB megabytes of 1000-byte values
    (redis-benchmark SET -r, pipelined), then the replica runs REPLICAOF;
    time until master_link_status:up, as MB/s of values and keys/s;
  * the master's latency during the sync: one client doing SET in a loop,
    p99 and worst;
  * replication lag under load: redis-benchmark SET (100-byte values, 8
    clients, pipeline 16) on the master while the offsets of master and
    replica are sampled every 20 ms: mean and max lag in bytes, and the time
    to catch up once the load stops.
Prints a Markdown table. Every process is killed on exit.
"""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
MB = int(os.environ.get("MB", "1024"))
PROCS = []
DIRS = []
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resp_client import Conn  # noqa: E402


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def info(port, field):
    c = Conn(port)
    text = c.call("INFO", "replication")
    c.s.close()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def start(kind):
    port = free_port()
    d = tempfile.mkdtemp(prefix="bench-repl-")
    DIRS.append(d)
    if kind == "shardline":
        cmd = [NODE, "--port", str(port), "--bind", "127.0.0.1", "--dir", d,
               "--logfile", os.path.join(d, "log")]
    else:
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
               "--dir", d, "--save", "", "--appendonly", "no",
               "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
               "--logfile", os.path.join(d, "log")]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    for _ in range(200):
        try:
            Conn(port).call("PING")
            return port
        except OSError:
            time.sleep(0.02)
    sys.exit("server did not start")


def bench(kind):
    master, replica = start(kind), start(kind)
    keys = MB * 1024 * 1024 // 1000
    subprocess.run(["redis-benchmark", "-p", str(master), "-t", "set", "-n", str(keys * 2),
                    "-r", str(keys), "-d", "1000", "-P", "64", "-c", "4", "-q"],
                   stdout=subprocess.DEVNULL, check=True)
    dbsize = Conn(master).call("DBSIZE")
    stop = threading.Event()
    lat = []

    def probe():
        c = Conn(master)
        i = 0
        while not stop.is_set():
            t = time.perf_counter()
            c.call("SET", "probe:%d" % (i % 1000), "x")
            lat.append(time.perf_counter() - t)
            i += 1

    th = threading.Thread(target=probe)
    th.start()
    time.sleep(0.5)
    lat.clear()
    t0 = time.perf_counter()
    Conn(replica).call("REPLICAOF", "127.0.0.1", master)
    while info(replica, "master_link_status") != "up":
        time.sleep(0.02)
    sync = time.perf_counter() - t0
    stop.set()
    th.join()
    lat.sort()
    p99 = lat[len(lat) * 99 // 100] * 1000 if lat else 0
    worst = lat[-1] * 1000 if lat else 0

    # Lag under a write load.
    load = subprocess.Popen(["redis-benchmark", "-p", str(master), "-t", "set", "-n", "2000000",
                             "-r", "1000000", "-d", "100", "-P", "16", "-c", "8", "-q"],
                            stdout=subprocess.DEVNULL)
    lags = []
    while load.poll() is None:
        m = int(info(master, "master_repl_offset"))
        r = int(info(replica, "slave_repl_offset") or 0)
        lags.append(max(0, m - r))
        time.sleep(0.02)
    t1 = time.perf_counter()
    while info(master, "master_repl_offset") != info(replica, "slave_repl_offset"):
        time.sleep(0.005)
    catchup = (time.perf_counter() - t1) * 1000
    for p in PROCS:
        p.kill()
        p.wait()
    PROCS.clear()
    return {
        "sync_s": sync,
        "mb_s": MB / sync,
        "keys_s": dbsize / sync,
        "p99_ms": p99,
        "worst_ms": worst,
        "lag_mean": sum(lags) / max(1, len(lags)),
        "lag_max": max(lags) if lags else 0,
        "catchup_ms": catchup,
    }


def main():
    if not os.path.exists(NODE):
        sys.exit("build first: cargo build --release -p shardline-node")
    try:
        res = {k: bench(k) for k in ("shardline", "redis")}
    finally:
        for p in PROCS:
            p.kill()
        for d in DIRS:
            shutil.rmtree(d, ignore_errors=True)
    print(f"Dataset: {MB} MB of 1000-byte values\n")
    print("| measure | shardline-node | redis-server 7.0 | ratio |")
    print("|---|---|---|---|")
    rows = [
        ("full sync time (s)", "sync_s", "{:.2f}"),
        ("full sync throughput (MB/s of values)", "mb_s", "{:.0f}"),
        ("full sync throughput (keys/s)", "keys_s", "{:.0f}"),
        ("master p99 latency during sync (ms)", "p99_ms", "{:.2f}"),
        ("master worst latency during sync (ms)", "worst_ms", "{:.1f}"),
        ("replication lag under load, mean (bytes)", "lag_mean", "{:.0f}"),
        ("replication lag under load, max (bytes)", "lag_max", "{:.0f}"),
        ("catch-up after the load stops (ms)", "catchup_ms", "{:.1f}"),
    ]
    for name, k, fmt in rows:
        a, b = res["shardline"][k], res["redis"][k]
        ratio = a / b if b else float("nan")
        print(f"| {name} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
