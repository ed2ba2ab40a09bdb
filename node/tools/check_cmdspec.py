#!/usr/bin/env python3
"""Compares Shardline's COMMAND replies with a running redis-server 7.0.

Usage (from the repository root):
    redis-server --port 23456 --save '' --appendonly no &
    python3 node/tools/check_cmdspec.py 23456

Sends the same requests to redis and, through the ignored Rust test
`cmdspec::tests::dump_for_check`, to our reply_command, in RESP2 and RESP3,
and reports every difference. Replies are compared byte for byte, except
where redis's order is a per-process hash order (the subcommands of a
container, and the no-argument COMMAND / COMMAND DOCS / COMMAND LIST
forms), which are compared as sorted collections.
"""
import os
import subprocess
import sys
import tempfile

import resp_client as rc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
# Subcommands left out of our table on purpose (see gen_cmdspec.py).
EXCLUDED = {"client|caching", "client|getredir", "client|tracking",
            "client|trackinginfo", "client|unblock"}


def parse_bytes(raw):
    p = rc.Conn.__new__(rc.Conn)
    p.buf, p.pos = raw, 0

    def fill():
        raise ValueError("truncated reply %r" % raw[:200])
    p._fill = fill
    v = p._parse()
    assert p.pos == len(raw), "trailing bytes"
    return v


def name_of(v):
    if v[0] == "array" and v[1] and v[1][0][0] == "bulk":
        return v[1][0][1]
    return b""


def canon(v, ours):
    """Sorts the hash-ordered parts; drops what our table leaves out."""
    k = v[0]
    if k in ("array", "set", "push"):
        items = [canon(x, ours) for x in v[1]]
        if len(items) == 10 and items[0][0] == "bulk" and items[9][0] == "array":
            subs = [s for s in items[9][1] if name_of(s).decode() not in EXCLUDED]
            items[9] = ("array", sorted(subs, key=repr))
        # RESP2 flattens maps: treat [.., "summary", x, "subcommands", [..]].
        for i in range(0, len(items) - 1):
            if items[i] == ("bulk", b"summary"):
                items[i + 1] = ("bulk", b"<summary>")
            flat = items[i + 1][1] if items[i + 1][0] == "array" else []
            if (items[i] == ("bulk", b"subcommands") and len(flat) % 2 == 0
                    and all(x[0] == "bulk" for x in flat[::2])):
                pairs = [(flat[j], flat[j + 1]) for j in range(0, len(flat), 2)
                         if flat[j][1].decode() not in EXCLUDED]
                items[i + 1] = ("pairs", sorted(pairs, key=repr))
        return (k, items)
    if k == "map":
        out = []
        for a, b in v[1]:
            if a == ("bulk", b"summary"):
                # Summaries are our own wording, not redis's.
                b = ("bulk", b"<summary>")
            if a == ("bulk", b"subcommands"):
                b = ("map", sorted([(x, canon(y, ours)) for x, y in b[1]
                                    if x[1].decode() not in EXCLUDED], key=repr))
            out.append((a, canon(b, ours)))
        return (k, out)
    return v


def run_ours(requests):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in"), os.path.join(d, "out")
        with open(fin, "w") as f:
            for proto, args in requests:
                f.write("\t".join([str(proto)] + [a.encode().hex() for a in args]) + "\n")
        env = dict(os.environ, CMDSPEC_CHECK_IN=fin, CMDSPEC_CHECK_OUT=fout)
        r = subprocess.run(
            ["cargo", "test", "-q", "-p", "shardline-node", "--lib",
             "cmdspec::tests::dump_for_check", "--", "--ignored", "--exact"],
            cwd=ROOT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(r.stdout + r.stderr)
        with open(fout) as f:
            return [bytes.fromhex(l.strip()) for l in f]


GETKEYS = """
get k|set k v|set k v get|set k v GET px 10|mset a 1 b 2|mget a b c|del a b c
zunionstore d 2 a b|zunionstore d 1abc a|zunionstore d 0 a|zunionstore d -1 a
zunionstore d 3 a b|zinterstore d 1 a weights 1|zdiffstore d 2 a b
zunion 2 a b|zinter 1 a withscores|zdiff 2 a b|zintercard 2 a b|zintercard 0 a
sintercard 2 a b limit 3|sintercard x a|lmpop 2 a b left|lmpop 3 a b left
lmpop 1abc a left|blmpop 0 2 a b left|blmpop 0 0 a left|zmpop 1 a min
bzmpop 1 1 a max count 2|sort k|sort k store x|sort k store x store y
sort k by p get g limit 0 1 store s|sort k get store|sort k limit store x
sort_ro k|sort_ro k by x get y|migrate h p k 0 5|migrate h p  0 5 keys a b
migrate h p  0 5 copy replace auth pw keys a|migrate h p k 0 5 keys a
migrate h p  0 5 auth2 u keys keys a|object encoding k|object freq k
object foo k|object help|memory usage k|memory usage k samples 5|memory stats
get a b|get|ping|nosuch|config get x|client list|blpop a b 0|brpop a 0
blmove a b left right 0|brpoplpush a b 0|lmove a b left right|rpoplpush a b
smove a b m|sunionstore d a b|sinterstore d a|sdiffstore d a b c|copy a b
copy a b db 1|rename a b|renamenx a b|restore k 0 v|restore-asking k 0 v
dump k|move k 1|touch a b|unlink a|exists a b|watch a b
zrangestore d s 0 -1|bzpopmin a b 0|bzpopmax a 0|getex k px 10|getdel k
hset h f v|hmset h f v g w|msetnx a 1 b 2|expire k 10|getrange k 0 1
subscribe a|publish c m|spublish c m|ssubscribe a b|sunsubscribe|sunsubscribe a
pubsub numsub a|exec|wait 0 0|debug object k|lpos l e rank 1
""".replace("\n", "|").split("|")

OTHER = """
COMMAND COUNT|COMMAND COUNT x|COMMAND foo|COMMAND INFO nosuch get|COMMAND INFO get|nosuch|COMMAND INFO config|get
COMMAND INFO get|x|COMMAND INFO CONFIG|GET|COMMAND DOCS nosuch|COMMAND DOCS get nosuch set
COMMAND DOCS CONFIG|GET object|COMMAND LIST FILTERBY foo bar|COMMAND LIST x
COMMAND LIST FILTERBY MODULE m|COMMAND LIST FILTERBY ACLCAT nosuch
COMMAND LIST FILTERBY ACLCAT transaction|COMMAND LIST FILTERBY ACLCAT PubSub
COMMAND LIST FILTERBY PATTERN z*store|COMMAND LIST FILTERBY PATTERN config|*
COMMAND LIST FILTERBY PATTERN [a-c]l*|COMMAND LIST FILTERBY PATTERN *|*
COMMAND LIST FILTERBY PATTERN nosuch|COMMAND LIST FILTERBY PATTERN x y
COMMAND GETKEYS|COMMAND INFO|COMMAND DOCS|COMMAND LIST|COMMAND
"""


def canon_item(x):
    if isinstance(x[0], tuple):  # a (key, value) map entry
        return (x[0], canon(x[1], True))
    return canon(x, True)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
    conns = {2: rc.Conn(port, proto=2), 3: rc.Conn(port, proto=3)}
    requests = []
    # Per-command INFO and DOCS for everything in our table.
    listing = run_ours([(2, ["COMMAND", "LIST"])])[0]
    ours = sorted(rc.plain(parse_bytes(listing)))
    for n in ours:
        for p in (2, 3):
            requests.append((p, ["COMMAND", "INFO", n]))
            requests.append((p, ["COMMAND", "DOCS", n]))
    for g in GETKEYS:
        g = g.strip()
        if g:
            args = g.split(" ")
            for p in (2, 3):
                requests.append((p, ["COMMAND", "GETKEYS"] + args))
                requests.append((p, ["COMMAND", "GETKEYSANDFLAGS"] + args))
    for line in OTHER.strip().split("\n"):
        for req in line.split("|COMMAND"):
            req = req if req.startswith("COMMAND") else "COMMAND" + req
            for p in (2, 3):
                requests.append((p, req.split(" ")))
    mine = run_ours(requests)
    ours_set = set(ours)
    bad = 0
    for (p, args), got in zip(requests, mine):
        _, want = conns[p].call_raw(*args)
        if got == want:
            continue
        whole = args in (["COMMAND"], ["COMMAND", "INFO"], ["COMMAND", "DOCS"],
                         ["COMMAND", "LIST"]) or args[:3] == ["COMMAND", "LIST", "FILTERBY"]
        w, g = parse_bytes(want), parse_bytes(got)
        if whole:
            # redis knows more commands than our table: keep only ours.
            w, g = list(w[1]), list(g[1])
            if args[:2] == ["COMMAND", "DOCS"]:
                if p == 2:
                    w = [(w[j], w[j + 1]) for j in range(0, len(w), 2)]
                    g = [(g[j], g[j + 1]) for j in range(0, len(g), 2)]
                w = [e for e in w if e[0][1].decode() in ours_set]
            else:
                w = [e for e in w
                     if (e[1].decode() if e[0] == "bulk" else name_of(e).decode()) in ours_set]
            w = sorted(repr(canon_item(x)) for x in w)
            g = sorted(repr(canon_item(x)) for x in g)
        else:
            w, g = canon(w, True), canon(g, True)
        if w == g:
            continue
        if args == ["COMMAND", "COUNT"] or args[:2] == ["COMMAND", "HELP"]:
            continue
        bad += 1
        print("DIFF resp%d %s\n  redis: %r\n  ours:  %r" % (p, " ".join(args), want[:600], got[:600]))
    print("%d requests, %d differences" % (len(requests), bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
