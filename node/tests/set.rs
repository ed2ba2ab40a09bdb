//! Set commands: differential tests against redis-server 7.0 and behaviour
//! tests.

mod common;
mod hashset_diff;

use std::collections::HashSet;

use common::{Reply, Server};
use hashset_diff::{b, bulks, servers, Pair};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Set keys, spread over both shards.
const SKEYS: &[&str] = &["s1", "s2", "{x}s3", "s4", "dst"];
const OTHER: &[&str] = &["str", "h1", "nokey"];

fn pick<'a>(rng: &mut StdRng, v: &[&'a str]) -> &'a str {
    v[rng.gen_range(0..v.len())]
}

fn member(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..30) {
        0 => b(""),
        1 => b("9223372036854775807"),
        2 => b("-9223372036854775808"),
        3 => b("70000"),
        4 => b("-40000"),
        5 => b("5000000000"),
        6 => b("01"),
        7 => vec![b'm'; 63 + rng.gen_range(0..4)],
        8..=11 => format!("{}", (b'a' + rng.gen_range(0..6)) as char).into_bytes(),
        12 => format!("w{}", rng.gen_range(0..300)).into_bytes(),
        _ => rng.gen_range(-5i64..25).to_string().into_bytes(),
    }
}

fn key(rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_range(0..12) == 0 {
        b(pick(rng, OTHER))
    } else {
        b(pick(rng, SKEYS))
    }
}

/// Whether redis replies with a deterministic order for this key.
fn ordered(p: &mut Pair, key: &[u8]) -> bool {
    p.redis_encoding(key) != "hashtable"
}

fn step(p: &mut Pair, rng: &mut StdRng) {
    let k = key(rng);
    match rng.gen_range(0..100) {
        0..=17 => {
            let mut a = vec![b("SADD"), k];
            let n = match rng.gen_range(0..40) {
                0 => rng.gen_range(100..600),
                1 => rng.gen_range(100..200),
                _ => rng.gen_range(1..4),
            };
            let ints_only = rng.gen_bool(0.5);
            for _ in 0..n {
                if n > 50 && ints_only {
                    a.push(rng.gen_range(-1000i64..1000).to_string().into_bytes());
                } else if n > 50 {
                    a.push(format!("bulk{}", rng.gen_range(0..1000)).into_bytes());
                } else {
                    a.push(member(rng));
                }
            }
            p.exact(&a);
        }
        18..=27 => {
            let mut a = vec![b("SREM"), k];
            for _ in 0..rng.gen_range(1..4) {
                a.push(member(rng));
            }
            p.exact(&a);
        }
        28..=31 => {
            let a = [b("SMEMBERS"), k.clone()];
            if ordered(p, &k) {
                p.exact(&a);
            } else {
                p.unordered(&a, false);
            }
        }
        32..=36 => {
            p.exact(&[b("SISMEMBER"), k, member(rng)]);
        }
        37..=39 => {
            let mut a = vec![b("SMISMEMBER"), k];
            for _ in 0..rng.gen_range(1..4) {
                a.push(member(rng));
            }
            p.exact(&a);
        }
        40..=42 => {
            p.exact(&[b("SCARD"), k]);
        }
        43..=47 => spop(p, rng, k),
        48..=53 => srandmember(p, rng, k),
        54..=58 => {
            let dst = key(rng);
            p.exact(&[b("SMOVE"), k, dst, member(rng)]);
        }
        59..=68 => {
            let cmd = ["SUNION", "SINTER", "SDIFF"][rng.gen_range(0..3)];
            let mut a = vec![b(cmd), k];
            for _ in 0..rng.gen_range(0..3) {
                a.push(key(rng));
            }
            p.unordered(&a, false);
        }
        69..=76 => {
            let cmd = ["SUNIONSTORE", "SINTERSTORE", "SDIFFSTORE"][rng.gen_range(0..3)];
            let mut a = vec![b(cmd), key(rng), k];
            for _ in 0..rng.gen_range(0..3) {
                a.push(key(rng));
            }
            p.exact(&a);
            p.exact(&[b("OBJECT"), b("ENCODING"), a[1].clone()]);
        }
        77..=80 => {
            let n = rng.gen_range(1..4);
            let mut a = vec![b("SINTERCARD")];
            a.push(match rng.gen_range(0..15) {
                0 => b("0"),
                1 => b("x"),
                2 => b("9"),
                _ => n.to_string().into_bytes(),
            });
            a.push(k);
            for _ in 1..n {
                a.push(key(rng));
            }
            if rng.gen_bool(0.4) {
                a.push(b("LIMIT"));
                a.push(b(["0", "1", "2", "-1", "x"][rng.gen_range(0..5)]));
            }
            if rng.gen_range(0..20) == 0 {
                a.push(b("BOGUS"));
            }
            p.exact(&a);
        }
        81..=85 => {
            let mut opts = Vec::new();
            if rng.gen_bool(0.3) {
                opts.push(b("MATCH"));
                opts.push(b(["1*", "*", "[a-c]", "w1?"][rng.gen_range(0..4)]));
            }
            if rng.gen_bool(0.3) {
                opts.push(b("COUNT"));
                opts.push(b(["1", "5", "0", "x"][rng.gen_range(0..4)]));
            }
            let cursor = b(["0", "0", "0", "x", "5"][rng.gen_range(0..5)]);
            let mut a = vec![b("SSCAN"), k.clone(), cursor.clone()];
            a.extend(opts.iter().cloned());
            let enc = p.redis_encoding(&k);
            let probe = p.redis.call(&a.iter().map(|x| &x[..]).collect::<Vec<_>>());
            if enc != "hashtable" || probe.is_error() {
                p.exact(&a);
            } else if cursor == b"0" {
                p.full_scan("SSCAN", &k, false, &opts);
            }
        }
        86..=89 => {
            p.exact(&[b("OBJECT"), b("ENCODING"), k]);
        }
        90..=91 => {
            p.exact(&[b("TYPE"), k]);
        }
        92 => {
            p.exact(&[b("DEL"), k]);
        }
        93..=94 => {
            let cmd = [
                "SADD",
                "SREM",
                "SISMEMBER",
                "SMOVE",
                "SINTERCARD",
                "SSCAN",
                "SMISMEMBER",
                "SUNIONSTORE",
            ][rng.gen_range(0..8)];
            let mut a = vec![b(cmd)];
            if rng.gen_bool(0.5) {
                a.push(k);
            }
            p.exact(&a);
        }
        _ => {
            p.exact(&[b("EXISTS"), k]);
        }
    }
}

/// SPOP removes random members, so the two servers would diverge: the
/// reply is compared by shape against redis popping from a copy of the key
/// (and by membership), then the key is rebuilt identically on both from
/// what shardline has left.
fn spop(p: &mut Pair, rng: &mut StdRng, k: Vec<u8>) {
    let mut a = vec![b("SPOP"), k.clone()];
    if rng.gen_bool(0.7) {
        a.push(b(
            ["0", "1", "2", "5", "40", "1000", "-1", "x"][rng.gen_range(0..8)]
        ));
    }
    let typ = p.redis_type(&k);
    if typ != "set" {
        p.exact(&a);
        return;
    }
    let before = p.redis.call(&[b"SMEMBERS", &k]);
    let mut members = Vec::new();
    bulks(&before, &mut members);
    let members: HashSet<Vec<u8>> = members.into_iter().collect();
    assert_eq!(
        p.redis.cmd(&[
            "COPY",
            std::str::from_utf8(&k).unwrap_or(""),
            "__tmp",
            "REPLACE"
        ]),
        Reply::Int(1)
    );
    let mut ra = a.clone();
    ra[1] = b("__tmp");
    let rr = p.redis.call(&ra.iter().map(|x| &x[..]).collect::<Vec<_>>());
    p.redis.cmd(&["DEL", "__tmp"]);
    let refs: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
    let oo = p.ours.call(&refs);
    assert_eq!(
        hashset_diff::shape(&rr),
        hashset_diff::shape(&oo),
        "SPOP shape differs for {a:?}"
    );
    let mut popped = Vec::new();
    bulks(&oo, &mut popped);
    let uniq: HashSet<_> = popped.iter().cloned().collect();
    assert_eq!(uniq.len(), popped.len(), "SPOP returned a member twice");
    for m in &popped {
        assert!(members.contains(m), "SPOP returned a non-member");
    }
    // Whole-set pops reply in redis's deterministic order when all
    // members are integers (an intset built from them).
    if popped.len() == members.len()
        && popped.len() <= 512
        && popped.iter().all(|m| {
            std::str::from_utf8(m)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .is_some_and(|v| v.to_string().as_bytes() == &m[..])
        })
    {
        assert_eq!(rr, oo, "whole-set SPOP order");
    }
    // Resynchronise.
    let left = p.ours.call(&[b"SMEMBERS", &k]);
    let mut left_m = Vec::new();
    bulks(&left, &mut left_m);
    left_m.sort();
    for m in &popped {
        assert!(!left_m.contains(m));
    }
    assert_eq!(left_m.len() + popped.len(), members.len());
    p.note_only(&a);
    p.redis.call(&[b"DEL", &k]);
    p.ours.call(&[b"DEL", &k]);
    if !left_m.is_empty() {
        let mut add = vec![b("SADD"), k];
        add.extend(left_m);
        p.exact(&add);
    }
}

/// SRANDMEMBER: deterministic forms compared exactly, random ones by
/// shape and membership.
fn srandmember(p: &mut Pair, rng: &mut StdRng, k: Vec<u8>) {
    let mut a = vec![b("SRANDMEMBER"), k.clone()];
    let count = if rng.gen_range(0..5) == 0 {
        None
    } else {
        Some(rng.gen_range(-10i64..15))
    };
    if let Some(c) = count {
        a.push(c.to_string().into_bytes());
        match rng.gen_range(0..15) {
            0 => a[2] = b("x"),
            1 => a[2] = b("-9223372036854775808"),
            2 => a.push(b("extra")),
            _ => {}
        }
    }
    if p.redis_type(&k) != "set" {
        p.exact(&a);
        return;
    }
    let len = p.redis.call(&[b"SCARD", &k]).int();
    if count.is_some_and(|c| c == 0 || c >= len) {
        if ordered(p, &k) {
            p.exact(&a);
        } else {
            p.unordered(&a, false);
        }
        return;
    }
    let mut members = Vec::new();
    bulks(&p.redis.call(&[b"SMEMBERS", &k]), &mut members);
    let members: HashSet<Vec<u8>> = members.into_iter().collect();
    let (_, ours) = p.same_shape(&a);
    let mut got = Vec::new();
    bulks(&ours, &mut got);
    for g in &got {
        assert!(members.contains(g), "SRANDMEMBER returned a non-member");
    }
    if count.is_some_and(|c| c > 0) && a.len() == 3 {
        let uniq: HashSet<_> = got.iter().collect();
        assert_eq!(uniq.len(), got.len(), "SRANDMEMBER positive count repeated");
    }
}

fn run_seed(seed: u64, small_limits: bool, steps: usize) {
    eprintln!("seed {seed} small_limits={small_limits}");
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    if small_limits {
        for (name, v) in [
            ("set-max-intset-entries", "8"),
            ("set-max-listpack-entries", "4"),
            ("set-max-listpack-value", "8"),
        ] {
            assert_eq!(p.ours_only(&["CONFIG", "SET", name, v]), Reply::ok());
            // Redis 7.0 has no listpack sets (nor their settings).
            if !name.contains("listpack") {
                assert_eq!(p.redis_only(&["CONFIG", "SET", name, v]), Reply::ok());
            }
        }
    }
    p.exact(&[b("SET"), b("str"), b("x")]);
    p.exact(&[b("HSET"), b("h1"), b("f"), b("v")]);
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..steps {
        if i % 89 == 0 {
            let resp3 = rng.gen_bool(0.5);
            p.set_proto(resp3);
        }
        step(&mut p, &mut rng);
    }
    for k in SKEYS {
        let k = b(k);
        p.exact(&[b("OBJECT"), b("ENCODING"), k.clone()]);
        p.unordered(&[b("SMEMBERS"), k], false);
    }
    assert!(p.checked >= steps / 2);
}

#[test]
fn differential_random_default_limits() {
    for seed in [1, 2, 3] {
        run_seed(seed, false, 2000);
    }
}

#[test]
fn differential_random_small_limits() {
    for seed in [21, 22] {
        run_seed(seed, true, 2000);
    }
}

#[test]
fn differential_edge_cases() {
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    let cases: Vec<Vec<&str>> = vec![
        vec!["SADD", "i", "3", "1", "2", "-70000", "5000000000"],
        vec!["SMEMBERS", "i"],
        vec!["OBJECT", "ENCODING", "i"],
        vec!["SSCAN", "i", "5"],
        vec!["SSCAN", "i", "18446744073709551615", "MATCH", "1"],
        vec!["SSCAN", "i", "-1"],
        vec!["SSCAN", "i", "+0", "COUNT", "1"],
        vec!["SSCAN", "i", " 1"],
        vec!["SSCAN", "nokey", "0", "COUNT", "0"],
        vec!["SSCAN", "str", "0", "foo"],
        vec!["SRANDMEMBER", "i", "100"],
        vec!["SRANDMEMBER", "i", "0"],
        vec!["SRANDMEMBER", "i", "-9223372036854775808"],
        vec!["SRANDMEMBER", "nokey"],
        vec!["SRANDMEMBER", "nokey", "3"],
        vec!["SRANDMEMBER", "str", "0"],
        vec!["SRANDMEMBER", "i", "1", "2"],
        vec!["SPOP", "nokey"],
        vec!["SPOP", "nokey", "3"],
        vec!["SPOP", "i", "0"],
        vec!["SPOP", "i", "-1"],
        vec!["SPOP", "str", "0"],
        vec!["SPOP", "str", "x"],
        vec!["SPOP", "i", "1", "2"],
        vec!["SADD", "a", "1", "2", "3", "x"],
        vec!["SADD", "b", "1", "2", "3", "y"],
        vec!["SINTERSTORE", "d", "a", "b"],
        vec!["OBJECT", "ENCODING", "d"],
        vec!["SMEMBERS", "d"],
        vec!["SUNIONSTORE", "e", "a", "b"],
        vec!["OBJECT", "ENCODING", "e"],
        vec!["SREM", "a", "x"],
        vec!["SREM", "b", "y"],
        vec!["OBJECT", "ENCODING", "a"],
        vec!["SUNIONSTORE", "e", "a", "b"],
        vec!["OBJECT", "ENCODING", "e"],
        vec!["SMEMBERS", "e"],
        vec!["SUNION", "a", "b", "i"],
        vec!["SDIFF", "i", "a"],
        vec!["SDIFFSTORE", "f", "a", "b"],
        vec!["EXISTS", "f"],
        vec!["SDIFF", "nokey", "a"],
        vec!["SDIFF", "nokey", "str"],
        vec!["SINTER", "nokey", "str"],
        vec!["SUNION", "nokey", "str"],
        vec!["SINTERSTORE", "d", "nokey"],
        vec!["EXISTS", "d"],
        vec!["SINTERSTORE", "str2", "a", "a"],
        vec!["SINTERCARD", "0", "a"],
        vec!["SINTERCARD", "x", "a"],
        vec!["SINTERCARD", "3", "a"],
        vec!["SINTERCARD", "1", "a", "LIMIT", "-1"],
        vec!["SINTERCARD", "1", "a", "LIMIT", "x"],
        vec!["SINTERCARD", "1", "a", "LIMIT", "1", "LIMIT", "2"],
        vec!["SINTERCARD", "1", "a", "foo"],
        vec!["SINTERCARD", "2", "a", "b", "LIMIT", "1"],
        vec!["SINTERCARD", "1", "str"],
        vec!["SINTERCARD", "1", "nokey"],
        vec!["SINTERCARD", "9223372036854775808", "a"],
        vec!["SMOVE", "nokey", "str", "1"],
        vec!["SMOVE", "a", "str", "1"],
        vec!["SMOVE", "str", "a", "1"],
        vec!["SMOVE", "a", "a", "1"],
        vec!["SMOVE", "a", "a", "9"],
        vec!["SMOVE", "a", "new", "1"],
        vec!["OBJECT", "ENCODING", "new"],
        vec!["SMOVE", "a", "new2", "2"],
        vec!["SMOVE", "a", "new2", "3"],
        vec!["EXISTS", "a"],
        vec!["SMOVE", "b", "new3", "xyz"],
        vec!["SMISMEMBER", "nokey", "1", "2"],
        vec!["SMISMEMBER", "str", "1"],
        vec!["SADD", "str", "1"],
        vec!["SREM", "str", "1"],
        vec!["SCARD", "str"],
        vec!["SISMEMBER", "str", "1"],
    ];
    for resp3 in [false, true] {
        p.set_proto(resp3);
        p.exact(&[b("FLUSHALL")]);
        p.exact(&[b("SET"), b("str"), b("v")]);
        for c in &cases {
            let a: Vec<Vec<u8>> = c.iter().map(|s| b(s)).collect();
            p.exact(&a);
        }
    }
}

#[test]
fn differential_encoding_boundaries() {
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    for i in 0..515 {
        p.exact(&[b("SADD"), b("s"), i.to_string().into_bytes()]);
        if i > 500 {
            p.exact(&[b("OBJECT"), b("ENCODING"), b("s")]);
        }
    }
    p.unordered(&[b("SMEMBERS"), b("s")], false);
    // Widths: 16 → 32 → 64 bit members keep the order.
    for m in [
        "1",
        "40000",
        "-3000000000",
        "9223372036854775807",
        "-9223372036854775808",
    ] {
        p.exact(&[b("SADD"), b("w"), b(m)]);
        p.exact(&[b("SMEMBERS"), b("w")]);
    }
    for m in ["40000", "1", "-9223372036854775808"] {
        p.exact(&[b("SREM"), b("w"), b(m)]);
        p.exact(&[b("SMEMBERS"), b("w")]);
    }
    // "01" and "+1" are not integers.
    p.exact(&[b("SADD"), b("n"), b("1"), b("01")]);
    p.exact(&[b("OBJECT"), b("ENCODING"), b("n")]);
    p.exact(&[b("SADD"), b("n2"), b("+1")]);
    p.exact(&[b("OBJECT"), b("ENCODING"), b("n2")]);
}

// ---------------------------------------------------------------------------
// Behaviour tests.

fn members(c: &mut common::Conn, key: &str) -> HashSet<String> {
    c.cmd(&["SMEMBERS", key])
        .array()
        .iter()
        .map(|r| r.text())
        .collect()
}

/// SPOP with a count close to the size rebuilds the rest of the set like
/// redis does (back to intset when all remaining members are integers);
/// a small count leaves the encoding alone.
#[test]
fn spop_count_encodings() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let mut args: Vec<String> = vec!["SADD".into(), "s".into()];
    for i in 0..600 {
        args.push(i.to_string());
    }
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    c.cmd(&refs);
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "s"]),
        Reply::bulk("hashtable")
    );
    let r = c.cmd(&["SPOP", "s", "10"]);
    assert_eq!(r.array().len(), 10);
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "s"]),
        Reply::bulk("hashtable")
    );
    let r = c.cmd(&["SPOP", "s", "500"]);
    assert_eq!(r.array().len(), 500);
    assert_eq!(c.cmd(&["SCARD", "s"]), Reply::Int(90));
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "s"]), Reply::bulk("intset"));
    let r = c.cmd(&["SPOP", "s", "1000"]);
    assert_eq!(r.array().len(), 90);
    assert_eq!(c.cmd(&["EXISTS", "s"]), Reply::Int(0));
}

/// SSCAN returns every member present for the whole scan while the set
/// grows and shrinks.
#[test]
fn sscan_guarantee_under_concurrent_changes() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    for i in 0..3000 {
        c.cmd(&["SADD", "s", &format!("stable{i}")]);
    }
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let r = c.cmd(&["SSCAN", "s", &cursor, "COUNT", "25"]);
        let v = r.array();
        cursor = v[0].text();
        for m in v[1].array() {
            seen.insert(m.text());
        }
        round += 1;
        if round % 3 != 0 {
            let mut a: Vec<String> = vec!["SADD".into(), "s".into()];
            for j in 0..400 {
                a.push(format!("tmp{round}-{j}"));
            }
            let refs: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
            c.cmd(&refs);
        } else {
            let tmp: Vec<String> = members(&mut c, "s")
                .into_iter()
                .filter(|m| m.starts_with("tmp"))
                .collect();
            let mut a: Vec<&str> = vec!["SREM", "s"];
            a.extend(tmp.iter().map(|s| s.as_str()));
            if a.len() > 2 {
                c.cmd(&a);
            }
        }
        if cursor == "0" {
            break;
        }
        assert!(round < 10_000);
    }
    for i in 0..3000 {
        assert!(
            seen.contains(&format!("stable{i}")),
            "stable{i} never returned"
        );
    }
}

/// Set algebra over keys on different shards.
#[test]
fn cross_shard_algebra() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    // Find two keys on different slots (any pair works with 2 shards as
    // long as the slots differ in parity; try a few).
    let keys = ["a", "b", "c", "d", "e", "f", "g"];
    for (i, k) in keys.iter().enumerate() {
        for j in 0..=i {
            c.cmd(&["SADD", k, &format!("m{j}")]);
        }
    }
    let r = c.cmd(&["SINTER", "a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(r.array().len(), 1);
    let r = c.cmd(&["SUNIONSTORE", "u", "a", "b", "c", "d", "e", "f", "g"]);
    assert_eq!(r, Reply::Int(7));
    let r = c.cmd(&["SDIFF", "g", "a", "b"]);
    assert_eq!(r.array().len(), 5);
    assert_eq!(
        c.cmd(&["SINTERCARD", "3", "e", "f", "g", "LIMIT", "2"]),
        Reply::Int(2)
    );
    assert_eq!(c.cmd(&["SMOVE", "g", "a", "m6"]), Reply::Int(1));
    assert_eq!(c.cmd(&["SISMEMBER", "a", "m6"]), Reply::Int(1));
}

/// A set with thousands of members: random sampling without repeats and
/// deletion when emptied.
#[test]
fn large_set_lifecycle() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let mut args: Vec<String> = vec!["SADD".into(), "big".into()];
    for i in 0..5000 {
        args.push(format!("member:{i}"));
    }
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    assert_eq!(c.cmd(&refs), Reply::Int(5000));
    let r = c.cmd(&["SRANDMEMBER", "big", "3000"]);
    let got: HashSet<String> = r.array().iter().map(|x| x.text()).collect();
    assert_eq!(got.len(), 3000);
    let r = c.cmd(&["SRANDMEMBER", "big", "-10000"]);
    assert_eq!(r.array().len(), 10000);
    let mut popped = HashSet::new();
    for _ in 0..5000 {
        let m = c.cmd(&["SPOP", "big"]).text();
        assert!(popped.insert(m));
    }
    assert_eq!(c.cmd(&["EXISTS", "big"]), Reply::Int(0));
    assert_eq!(c.cmd(&["SPOP", "big"]), Reply::Nil);
}
