#!/usr/bin/env python3
"""Generates node/src/cmdspec_data.rs from a running redis-server 7.0.

Usage:
    redis-server --port 23456 --save '' --appendonly no &
    python3 node/tools/gen_cmdspec.py 23456

Factual metadata (arity, flags, key specs, ACL categories, tips,
subcommands, doc group/since/complexity/history and argument trees) is read
from COMMAND INFO / COMMAND DOCS over RESP3. Command summaries are NOT taken
from redis: they come from cmdspec_summaries.txt next to this script, which
is written by hand; the generator fails if one is missing.

CLUSTER MYSHARDID (a redis 7.2 subcommand the node also serves) is not in
redis 7.0's table: after regenerating, re-add its entry by hand (see git
history of cmdspec_data.rs).

The output is deterministic: commands and subcommands are sorted by name
(redis itself serves subcommands in per-process random dict order).
"""
import os
import subprocess
import sys

import resp_client as rc

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "cmdspec_data.rs")
SUMMARIES = os.path.join(HERE, "cmdspec_summaries.txt")

COMMANDS = """
get set setnx setex psetex getset getdel getex mget mset msetnx append strlen
incr decr incrby decrby incrbyfloat getrange setrange substr
del unlink exists type expire pexpire expireat pexpireat ttl pttl expiretime
pexpiretime persist rename renamenx copy keys scan randomkey dbsize flushdb
flushall touch object memory dump restore restore-asking migrate move sort
sort_ro
hset hsetnx hget hmget hmset hgetall hdel hexists hlen hkeys hvals hincrby
hincrbyfloat hstrlen hscan hrandfield
lpush rpush lpushx rpushx lpop rpop lrange llen lindex lset lrem ltrim linsert
lpos lmove rpoplpush lmpop blpop brpop blmove brpoplpush blmpop
sadd srem smembers sismember smismember scard spop srandmember smove sunion
sinter sdiff sunionstore sinterstore sdiffstore sintercard sscan
bzmpop bzpopmax bzpopmin zadd zcard zcount zdiff zdiffstore zincrby zinter
zintercard zinterstore zlexcount zmpop zmscore zpopmax zpopmin zrandmember
zrange zrangebylex zrangebyscore zrangestore zrank zrem zremrangebylex
zremrangebyrank zremrangebyscore zrevrange zrevrangebylex zrevrangebyscore
zrevrank zscan zscore zunion zunionstore
multi exec discard watch unwatch
subscribe unsubscribe psubscribe punsubscribe publish pubsub ssubscribe
sunsubscribe spublish
ping echo quit hello auth select client info command time lastsave shutdown
debug slowlog monitor config save bgsave bgrewriteaof role replicaof slaveof
sync psync replconf wait failover readonly readwrite asking cluster swapdb
lolwut reset
""".split()

# Containers whose subcommand list we restrict (None / absent = all of
# redis's subcommands). CLIENT leaves out the tracking family and UNBLOCK.
SUBCOMMANDS = {
    "client": ["id", "setname", "getname", "list", "info", "kill", "pause",
               "unpause", "reply", "no-evict", "help"],
}

# Bit order = the order redis prints them in COMMAND INFO.
CMD_FLAGS = ["write", "readonly", "denyoom", "module", "admin", "pubsub",
             "noscript", "blocking", "loading", "stale", "skip_monitor",
             "skip_slowlog", "asking", "fast", "no_auth", "may_replicate",
             "no_mandatory_keys", "no_async_loading", "no_multi",
             "movablekeys", "allow_busy"]
KEY_FLAGS = ["RO", "RW", "OW", "RM", "access", "update", "insert", "delete",
             "not_key", "incomplete", "variable_flags"]
DOC_FLAGS = ["deprecated", "syscmd"]
ARG_FLAGS = ["optional", "multiple", "multiple_token"]


def const(name):
    return name.upper()


def rstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def opt(s):
    return "None" if s is None else "Some(%s)" % rstr(s)


def bits(names, table, prefix):
    for n in names:
        if n not in table:
            sys.exit("unknown flag %r" % n)
    if list(names) != sorted(names, key=table.index):
        sys.exit("flags %r not in expected order" % (names,))
    return " | ".join("%s::%s" % (prefix, const(n)) for n in names) or "0"


def kv(m, expected):
    """RESP3 map -> dict, asserting the keys appear in `expected` order."""
    assert m[0] == "map", m
    keys = [rc.plain(k) for k, _ in m[1]]
    want = [k for k in expected if k in keys]
    if keys != want:
        sys.exit("unexpected map keys %r (want order %r)" % (keys, expected))
    return {rc.plain(k): v for k, v in m[1]}


def strs(v, kind):
    assert v[0] == "set", v
    for x in v[1]:
        assert x[0] == kind, x
    return [rc.plain(x) for x in v[1]]


def gen_keyspec(m):
    d = kv(m, ["notes", "flags", "begin_search", "find_keys"])
    notes = rc.plain(d["notes"]) if "notes" in d else None
    flags = bits(strs(d["flags"], "simple"), KEY_FLAGS, "key")
    bs = kv(d["begin_search"], ["type", "spec"])
    bt, bspec = rc.plain(bs["type"]), rc.plain(bs["spec"])
    if bt == "index":
        assert list(bspec) == ["index"]
        b = "BeginSearch::Index(%d)" % bspec["index"]
    elif bt == "keyword":
        assert list(bspec) == ["keyword", "startfrom"]
        b = "BeginSearch::Keyword { keyword: %s, startfrom: %d }" % (
            rstr(bspec["keyword"]), bspec["startfrom"])
    else:
        assert bt == "unknown" and bspec == {}, bs
        b = "BeginSearch::Unknown"
    fk = kv(d["find_keys"], ["type", "spec"])
    ft, fspec = rc.plain(fk["type"]), rc.plain(fk["spec"])
    if ft == "range":
        assert list(fspec) == ["lastkey", "keystep", "limit"]
        f = "FindKeys::Range { lastkey: %d, keystep: %d, limit: %d }" % (
            fspec["lastkey"], fspec["keystep"], fspec["limit"])
    elif ft == "keynum":
        assert list(fspec) == ["keynumidx", "firstkey", "keystep"]
        f = "FindKeys::Keynum { keynumidx: %d, firstkey: %d, keystep: %d }" % (
            fspec["keynumidx"], fspec["firstkey"], fspec["keystep"])
    else:
        assert ft == "unknown" and fspec == {}, fk
        f = "FindKeys::Unknown"
    return ("KeySpec { notes: %s, flags: %s, begin_search: %s, find_keys: %s }"
            % (opt(notes), flags, b, f))


ARG_KEYS = ["name", "type", "key_spec_index", "token", "summary", "since",
            "deprecated_since", "flags", "arguments"]


def gen_args(v, ind):
    assert v[0] == "array", v
    if not v[1]:
        return "&[]"
    out = ["&["]
    for a in v[1]:
        d = kv(a, ARG_KEYS)
        assert "summary" not in d, "argument summaries are not modelled"
        typ = rc.plain(d["type"])
        has_children = typ in ("oneof", "block")
        assert has_children == ("arguments" in d), d
        out.append("%s    Arg { name: %s, typ: %s, key_spec_index: %d, token: %s, since: %s, "
                   "deprecated_since: %s, flags: %s, arguments: %s },"
                   % (ind, rstr(rc.plain(d["name"])), rstr(typ),
                      rc.plain(d["key_spec_index"]) if "key_spec_index" in d else -1,
                      opt(rc.plain(d["token"]) if "token" in d else None),
                      opt(rc.plain(d["since"]) if "since" in d else None),
                      opt(rc.plain(d["deprecated_since"]) if "deprecated_since" in d else None),
                      bits(strs(d["flags"], "simple"), ARG_FLAGS, "arg") if "flags" in d else "0",
                      gen_args(d["arguments"], ind + "    ") if has_children else "&[]"))
    out.append(ind + "]")
    return "\n".join(out)


DOC_KEYS = ["summary", "since", "group", "module", "complexity", "doc_flags",
            "deprecated_since", "replaced_by", "history", "arguments",
            "subcommands"]


def gen_docs(m, fullname, summaries, ind):
    d = kv(m, DOC_KEYS)
    assert "module" not in d
    if fullname not in summaries:
        sys.exit("no summary for %r in %s" % (fullname, SUMMARIES))
    hist = []
    if "history" in d:
        assert d["history"][0] == "set"
        for h in d["history"][1]:
            ver, txt = rc.plain(h)
            hist.append("(%s, %s)" % (rstr(ver), rstr(txt)))
    return ("&CommandDocs {\n"
            "%s    summary: %s,\n%s    since: %s,\n%s    group: %s,\n"
            "%s    complexity: %s,\n%s    doc_flags: %s,\n"
            "%s    deprecated_since: %s,\n%s    replaced_by: %s,\n"
            "%s    history: &[%s],\n%s    arguments: %s,\n%s}"
            % (ind, rstr(summaries[fullname]),
               ind, opt(rc.plain(d["since"]) if "since" in d else None),
               ind, rstr(rc.plain(d["group"])),
               ind, opt(rc.plain(d["complexity"]) if "complexity" in d else None),
               ind, bits(strs(d["doc_flags"], "simple"), DOC_FLAGS, "doc") if "doc_flags" in d else "0",
               ind, opt(rc.plain(d["deprecated_since"]) if "deprecated_since" in d else None),
               ind, opt(rc.plain(d["replaced_by"]) if "replaced_by" in d else None),
               ind, ", ".join(hist),
               ind, gen_args(d["arguments"], ind + "    ") if "arguments" in d else "&[]",
               ind))


def gen_command(info, docs, summaries, ind, only_subs=None):
    assert info[0] == "array" and len(info[1]) == 10, info
    name, arity, flags, first, last, step, acl, tips, specs, subs = info[1]
    name = rc.plain(name)
    doc_map = kv(docs, DOC_KEYS)
    sub_docs = {}
    if "subcommands" in doc_map:
        sub_docs = {rc.plain(k): v for k, v in doc_map["subcommands"][1]}
    sub_infos = {rc.plain(s[1][0]): s for s in subs[1]}
    assert set(sub_infos) == set(sub_docs), name
    names = sorted(sub_infos)
    if only_subs is not None:
        want = ["%s|%s" % (name, s) for s in only_subs]
        missing = set(want) - set(names)
        assert not missing, missing
        names = sorted(want)
    sub_code = "&[]"
    if names:
        sub_code = "&[\n" + "".join(
            "%s    %s,\n" % (ind, gen_command(sub_infos[n], sub_docs[n], summaries, ind + "    "))
            for n in names) + ind + "]"
    ks = [gen_keyspec(s) for s in specs[1]]
    assert specs[0] == "set"
    ks_code = "&[]" if not ks else "&[\n" + "".join(
        "%s        %s,\n" % (ind, k) for k in ks) + ind + "    ]"
    acl_names = strs(acl, "simple")
    tip_names = strs(tips, "bulk")
    return ("CommandSpec {\n"
            "%s    name: %s,\n%s    arity: %d,\n%s    flags: %s,\n"
            "%s    first_key: %d,\n%s    last_key: %d,\n%s    step: %d,\n"
            "%s    acl_categories: &[%s],\n%s    key_specs: %s,\n"
            "%s    subcommands: %s,\n%s    docs: %s,\n%s    tips: &[%s],\n%s}"
            % (ind, rstr(name), ind, rc.plain(arity),
               ind, bits(strs(flags, "simple"), CMD_FLAGS, "flag"),
               ind, rc.plain(first), ind, rc.plain(last), ind, rc.plain(step),
               ind, ", ".join(rstr(a) for a in acl_names), ind, ks_code,
               ind, sub_code.replace("\n", "\n    ") if False else sub_code,
               ind, gen_docs(docs, name, summaries, ind + "    "),
               ind, ", ".join(rstr(t) for t in tip_names), ind))


def load_summaries():
    out = {}
    with open(SUMMARIES) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, summary = line.split("\t", 1)
            assert name not in out, name
            out[name] = summary.strip()
    return out


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 6379
    c = rc.Conn(port, proto=3)
    version = rc.plain(c.call("INFO", "server"))
    version = [l for l in version.splitlines() if l.startswith("redis_version:")][0]
    summaries = load_summaries()
    names = sorted(set(COMMANDS))
    assert len(names) == len(COMMANDS), "duplicate command in list"
    parts = []
    used = set()
    for n in names:
        info = c.call("COMMAND", "INFO", n)
        assert info[0] == "array" and len(info[1]) == 1 and info[1][0][0] == "array", (n, info)
        docs = c.call("COMMAND", "DOCS", n)
        assert docs[0] == "map" and len(docs[1]) == 1, (n, docs)
        parts.append("    " + gen_command(info[1][0], docs[1][0][1], summaries, "    ",
                                          SUBCOMMANDS.get(n)) + ",\n")
    unused = set(summaries) - set(names) - {
        k for k in summaries if "|" in k and k.split("|")[0] in names}
    assert not unused, "summaries for unknown commands: %r" % sorted(unused)
    with open(OUT, "w") as f:
        f.write("// @generated by node/tools/gen_cmdspec.py from redis-server (%s).\n"
                "// Do not edit by hand: edit the generator or cmdspec_summaries.txt\n"
                "// and regenerate.\n\n"
                "use super::{arg, doc, flag, key, Arg, BeginSearch, CommandDocs, CommandSpec, FindKeys, KeySpec};\n\n"
                "pub(super) static COMMANDS: &[CommandSpec] = &[\n" % version)
        f.write("".join(parts))
        f.write("];\n")
    # Keep the committed file in the shape `cargo fmt` gives it.
    subprocess.run(["rustfmt", "--edition", "2021", OUT], check=True)
    print("wrote %d commands to %s" % (len(names), OUT))


if __name__ == "__main__":
    main()
