"""Helpers shared by the cluster benchmarks (bench-failover.py,
bench-migration.py): one-shot commands, free port pairs, waiting."""
import socket
import time

from resp_client import Conn


def call(addr, *args, timeout=5.0):
    """Sends one command on a fresh connection and returns its reply."""
    c = Conn(addr, timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def free_port(ip):
    """A port free on `ip` whose cluster bus port (+10000) is free too."""
    while True:
        s = socket.socket()
        s.bind((ip, 0))
        p = s.getsockname()[1]
        s.close()
        if p + 10000 > 65535:
            continue
        b = socket.socket()
        try:
            b.bind((ip, p + 10000))
            return p
        except OSError:
            continue
        finally:
            b.close()


def wait(what, pred, within=60, step=0.02):
    """Polls `pred` until it is true; exits the benchmark after `within`
    seconds. Connection errors count as not yet."""
    deadline = time.time() + within
    while time.time() < deadline:
        try:
            if pred():
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(step)
    raise SystemExit("timed out waiting for " + what)


def cleanup(procs, dirs):
    """Kills every process still running and removes the directories."""
    import shutil
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
