#!/usr/bin/env python3
"""Who limits the throughput: CPU per request of the server and of the
client (redis-benchmark), for redis-server 7.0, shardline-node, and
shardline-node with busy polling off.

    cargo build --release -p shardline-node
    python3 scripts/bench-cpu.py                    # GET, no pipelining
    TEST=get P=16 N=3000000 ROUNDS=3 python3 scripts/bench-cpu.py
    TEST=mset P=1 N=500000 python3 scripts/bench-cpu.py

Runs `redis-benchmark -c 50 -n N -P P -t TEST` against the three servers
in turn, ROUNDS times, so that a slow phase of the machine hits all three.
For each run it prints requests per second, p99, and CPU time per request:
the server's from /proc/PID/stat (user + system), the client's from the
rusage of the finished redis-benchmark. A process whose CPU per request
times the requests per second is close to 1.0 used a whole core and is
the bottleneck; a polling server always shows a whole core, so compare
its row with the one of `busy-poll-us 0`. All three servers are killed at
the end, even on failure.
"""
import csv
import io
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE = os.path.join(ROOT, "target", "release", "shardline-node")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_util import call, cleanup, free_port, wait  # noqa: E402


def env_int(name, default):
    value = os.environ.get(name, default)
    if not value.isdigit() or int(value) < 1:
        raise SystemExit("%s must be a positive integer, not %r" % (name, value))
    return int(value)


TEST = os.environ.get("TEST", "get")
P = env_int("P", "1")
N = env_int("N", "500000")
ROUNDS = env_int("ROUNDS", "4")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """User + system CPU seconds of a process (all its threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench(port):
    """One redis-benchmark run: (rps, p99 ms, client CPU seconds)."""
    before = children_cpu()
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-c", "50", "-n", str(N),
         "-P", str(P), "-t", TEST, "--csv"],
        capture_output=True, text=True, timeout=600, check=True).stdout
    cpu = children_cpu() - before
    for row in csv.reader(io.StringIO(out)):
        if row and row[0].upper().startswith(TEST.upper()):
            return float(row[1]), float(row[6]), cpu
    raise SystemExit("no %s row in redis-benchmark output:\n%s" % (TEST, out))


def main():
    if not os.path.exists(NODE):
        raise SystemExit("build first: cargo build --release -p shardline-node")
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            raise SystemExit(tool + " not found: run the README's test command first")
    procs, dirs, servers = [], [], []
    try:
        configs = [
            ("redis-server", ["redis-server", "--save", "", "--appendonly", "no"]),
            ("shardline-node", [NODE, "--loglevel", "warning"]),
            ("shardline-node, busy-poll-us 0",
             [NODE, "--loglevel", "warning", "--busy-poll-us", "0"]),
        ]
        for name, argv in configs:
            d = tempfile.mkdtemp(prefix="bench-cpu-")
            dirs.append(d)
            port = free_port("127.0.0.1")
            p = subprocess.Popen(argv + ["--port", str(port), "--dir", d],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            procs.append(p)
            wait(name + " to start",
                 lambda: call("127.0.0.1:%d" % port, "PING", timeout=1) == "PONG")
            servers.append((name, port, p.pid))
        runs = {name: [] for name, _, _ in servers}
        print("# redis-benchmark -c 50 -n %d -P %d -t %s, %d rounds (%d cores, %s)"
              % (N, P, TEST, ROUNDS, os.cpu_count(), time.strftime("%Y-%m-%d")))
        print()
        print("| round | server | rps | p99 ms | server CPU µs/request | client CPU µs/request |")
        print("|---|---|---|---|---|---|")
        for r in range(1, ROUNDS + 1):
            for name, port, pid in servers:
                s0 = proc_cpu(pid)
                rps, p99, client = bench(port)
                server = proc_cpu(pid) - s0
                runs[name].append((rps, server, client))
                print("| %d | %s | %.0f | %.3f | %.2f | %.2f |"
                      % (r, name, rps, p99, server * 1e6 / N, client * 1e6 / N),
                      flush=True)
        print()
        print("| server | median rps | ratio to redis-server | median client CPU µs/request |")
        print("|---|---|---|---|")
        base = statistics.median(x[0] for x in runs["redis-server"])
        for name, rows in runs.items():
            med = statistics.median(x[0] for x in rows)
            cli = statistics.median(x[2] for x in rows) * 1e6 / N
            print("| %s | %.0f | %.2fx | %.2f |" % (name, med, med / base, cli))
    finally:
        cleanup(procs, dirs)


if __name__ == "__main__":
    main()
