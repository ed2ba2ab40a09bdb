//! Hash commands: differential tests against redis-server 7.0 and
//! behaviour tests.

mod common;
mod hashset_diff;

use std::collections::HashSet;

use common::{Reply, Server};
use hashset_diff::{b, bulks, servers, Pair};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HKEYS: &[&str] = &["h1", "h2", "{x}h3", "h4"];
/// Keys of other types (and a missing one) for WRONGTYPE / empty cases.
const OTHER: &[&str] = &["str", "s1", "nokey"];

fn pick<'a>(rng: &mut StdRng, v: &[&'a str]) -> &'a str {
    v[rng.gen_range(0..v.len())]
}

fn field(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..20) {
        0 => b(""),
        1 => b("1"),
        2 => b("-1"),
        3 => b("12345678901"),
        4 => b("01"),
        5 => vec![b'F'; 63 + rng.gen_range(0..4)],
        6 => format!("big{}", rng.gen_range(0..200)).into_bytes(),
        _ => format!("f{}", rng.gen_range(0..10)).into_bytes(),
    }
}

fn value(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..24) {
        0 => b(""),
        1 => b("9223372036854775807"),
        2 => b("-9223372036854775808"),
        3 => b("1.5"),
        4 => b("0.1"),
        5 => b("-2.25"),
        6 => b("1e3"),
        7 => b("abc"),
        8 => vec![b'v'; 62 + rng.gen_range(0..5)],
        9 => b(" 1"),
        10 => b("inf"),
        11..=15 => rng.gen_range(-300i64..300).to_string().into_bytes(),
        16 => rng.gen_range(i64::MIN..i64::MAX).to_string().into_bytes(),
        _ => format!("val{}", rng.gen_range(0..1000)).into_bytes(),
    }
}

fn float_arg(rng: &mut StdRng) -> Vec<u8> {
    let pool = [
        "0.1",
        "0.2",
        "-0.3",
        "1",
        "1.5",
        "-10",
        "3.0e3",
        "1e-5",
        "1.123456789012345678",
        "abc",
        "inf",
        "-inf",
        "1e4000",
        "0x10",
        ".5",
        "5.",
        "+2",
        "",
        " 1",
        "1e300",
        "-1e300",
        "0.000000000000000015",
        "123456789.987654321",
    ];
    b(pool[rng.gen_range(0..pool.len())])
}

fn int_arg(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..10) {
        0 => b("x"),
        1 => b("9223372036854775807"),
        2 => b("-9223372036854775808"),
        3 => b("1.5"),
        _ => rng.gen_range(-1000i64..1000).to_string().into_bytes(),
    }
}

/// What to compare for the key's current state.
fn ordered(p: &mut Pair, key: &[u8]) -> bool {
    p.redis_encoding(key) != "hashtable"
}

fn step(p: &mut Pair, rng: &mut StdRng) {
    let key = if rng.gen_range(0..10) == 0 {
        pick(rng, OTHER)
    } else {
        pick(rng, HKEYS)
    };
    let k = b(key);
    match rng.gen_range(0..100) {
        0..=14 => {
            let n = if rng.gen_range(0..25) == 0 {
                rng.gen_range(40..90)
            } else {
                rng.gen_range(1..4)
            };
            let mut a = vec![b(if rng.gen_bool(0.8) { "HSET" } else { "HMSET" }), k];
            for _ in 0..n {
                a.push(field(rng));
                a.push(value(rng));
            }
            if rng.gen_range(0..30) == 0 {
                a.pop();
            }
            p.exact(&a);
        }
        15..=18 => {
            p.exact(&[b("HSETNX"), k, field(rng), value(rng)]);
        }
        19..=26 => {
            p.exact(&[b("HGET"), k, field(rng)]);
        }
        27..=29 => {
            let mut a = vec![b("HMGET"), k];
            for _ in 0..rng.gen_range(1..5) {
                a.push(field(rng));
            }
            p.exact(&a);
        }
        30..=33 => {
            let cmd = ["HGETALL", "HKEYS", "HVALS"][rng.gen_range(0..3)];
            let a = [b(cmd), k.clone()];
            if ordered(p, &k) {
                p.exact(&a);
            } else {
                p.unordered(&a, cmd == "HGETALL");
            }
        }
        34..=41 => {
            let mut a = vec![b("HDEL"), k];
            for _ in 0..rng.gen_range(1..4) {
                a.push(field(rng));
            }
            p.exact(&a);
        }
        42..=45 => {
            p.exact(&[b("HEXISTS"), k, field(rng)]);
        }
        46..=48 => {
            p.exact(&[b("HLEN"), k]);
        }
        49..=51 => {
            p.exact(&[b("HSTRLEN"), k, field(rng)]);
        }
        52..=59 => {
            p.exact(&[b("HINCRBY"), k, field(rng), int_arg(rng)]);
        }
        60..=67 => {
            p.exact(&[b("HINCRBYFLOAT"), k, field(rng), float_arg(rng)]);
        }
        68..=72 => {
            let mut opts = Vec::new();
            if rng.gen_bool(0.3) {
                opts.push(b("MATCH"));
                opts.push(b(["f*", "*1*", "big1?", "[a-f]*"][rng.gen_range(0..4)]));
            }
            if rng.gen_bool(0.3) {
                opts.push(b("COUNT"));
                opts.push(b(["1", "3", "100", "0", "x"][rng.gen_range(0..5)]));
            }
            if rng.gen_range(0..20) == 0 {
                opts.push(b("BOGUS"));
            }
            let cursor = b(["0", "0", "0", "x", "-1", "7"][rng.gen_range(0..6)]);
            let enc = p.redis_encoding(&k);
            let mut a = vec![b("HSCAN"), k.clone(), cursor.clone()];
            a.extend(opts.iter().cloned());
            let valid_opts = p.redis.call(&a.iter().map(|x| &x[..]).collect::<Vec<_>>());
            if enc != "hashtable" || valid_opts.is_error() {
                p.exact(&a);
            } else if cursor == b"0" {
                p.full_scan("HSCAN", &k, true, &opts);
            }
        }
        73..=80 => hrandfield(p, rng, k),
        81..=84 => {
            p.exact(&[b("OBJECT"), b("ENCODING"), k]);
        }
        85..=86 => {
            p.exact(&[b("TYPE"), k]);
        }
        87 => {
            p.exact(&[b("DEL"), k]);
        }
        88..=89 => {
            // Arity errors.
            let cmd = [
                "HSET", "HGET", "HMSET", "HINCRBY", "HSTRLEN", "HSETNX", "HDEL", "HSCAN",
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

/// HRANDFIELD: deterministic forms compared exactly; random forms by
/// shape and membership (redis's picks are random).
fn hrandfield(p: &mut Pair, rng: &mut StdRng, k: Vec<u8>) {
    let mut a = vec![b("HRANDFIELD"), k.clone()];
    let count: Option<i64> = if rng.gen_range(0..6) == 0 {
        None
    } else {
        Some(rng.gen_range(-8..12))
    };
    if let Some(c) = count {
        a.push(c.to_string().into_bytes());
        match rng.gen_range(0..12) {
            0..=4 => a.push(b("WITHVALUES")),
            5 => a.push(b("WITHVALUE")),
            6 => a[2] = b("x"),
            7 => a[2] = b("-9223372036854775808"),
            _ => {}
        }
    }
    let typ = p.redis_type(&k);
    if typ != "hash" {
        p.exact(&a);
        return;
    }
    let len = p.redis.call(&[b"HLEN", &k]).int();
    let whole = count.is_some_and(|c| c >= len || c == 0);
    if whole {
        if ordered(p, &k) {
            p.exact(&a);
        } else {
            p.unordered(&a, a.len() == 4);
        }
        return;
    }
    let all = p.redis.call(&[b"HGETALL", &k]);
    let mut members = HashSet::new();
    let mut flat = Vec::new();
    bulks(&all, &mut flat);
    for pair in flat.chunks(2) {
        members.insert(pair[0].clone());
        members.insert(pair[1].clone());
    }
    let (_, ours) = p.same_shape(&a);
    let mut got = Vec::new();
    bulks(&ours, &mut got);
    for g in got {
        assert!(
            members.contains(&g),
            "HRANDFIELD returned a non-member {g:?}"
        );
    }
    if let Some(c) = count {
        if c > 0 && a.len() == 3 {
            let mut got = Vec::new();
            bulks(&ours, &mut got);
            let uniq: HashSet<_> = got.iter().collect();
            assert_eq!(
                uniq.len(),
                got.len(),
                "HRANDFIELD positive count repeated a field"
            );
        }
    }
}

fn run_seed(seed: u64, small_limits: bool, steps: usize) {
    eprintln!("seed {seed} small_limits={small_limits}");
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    if small_limits {
        for (name, v) in [
            ("hash-max-listpack-entries", "4"),
            ("hash-max-listpack-value", "8"),
        ] {
            assert_eq!(p.ours_only(&["CONFIG", "SET", name, v]), Reply::ok());
            assert_eq!(p.redis_only(&["CONFIG", "SET", name, v]), Reply::ok());
        }
    }
    p.exact(&[b("SET"), b("str"), b("x")]);
    p.exact(&[b("SADD"), b("s1"), b("a")]);
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..steps {
        if i % 97 == 0 {
            let resp3 = rng.gen_bool(0.5);
            p.set_proto(resp3);
        }
        step(&mut p, &mut rng);
    }
    // Final state: every key identical.
    for k in HKEYS {
        let k = b(k);
        p.exact(&[b("OBJECT"), b("ENCODING"), k.clone()]);
        if ordered(&mut p, &k) {
            p.exact(&[b("HGETALL"), k]);
        } else {
            p.unordered(&[b("HGETALL"), k], true);
        }
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
    for seed in [11, 12, 13] {
        run_seed(seed, true, 2000);
    }
}

#[test]
fn differential_edge_cases() {
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    let long = "x".repeat(65);
    let cases: Vec<Vec<&str>> = vec![
        vec!["HSET", "h", "f", "v"],
        vec!["HSETNX", "h", "f", &long],
        vec!["OBJECT", "ENCODING", "h"],
        vec!["HINCRBY", "h", &long, "1"],
        vec!["OBJECT", "ENCODING", "h"],
        vec!["HSET", "h2", "a", "1"],
        vec!["HSCAN", "h2", "", "MATCH", "?"],
        vec!["HSCAN", "h2", "7", "MATCH", "*", "COUNT", "1"],
        vec!["HINCRBYFLOAT", "h2", "a", "1e100"],
        vec!["OBJECT", "ENCODING", "h2"],
        vec!["HINCRBYFLOAT", "h2", "b", "0.1"],
        vec!["HINCRBYFLOAT", "h2", "b", "0.2"],
        vec!["HINCRBYFLOAT", "h2", "c", "0.000003814697265625"],
        vec!["HINCRBYFLOAT", "h2", "c", "-0.000003814697265625"],
        vec!["HSET", "h2", "n", "nan"],
        vec!["HINCRBYFLOAT", "h2", "n", "1"],
        vec!["HSET", "h2", "i", "inf"],
        vec!["HINCRBYFLOAT", "h2", "i", "1"],
        vec!["HINCRBYFLOAT", "h2", "m", "1.18e4932"],
        vec!["HINCRBYFLOAT", "h2", "m", "1.18e4932"],
        vec!["HINCRBYFLOAT", "h2", "d", "4.9e-4951"],
        vec!["HINCRBYFLOAT", "h2", "e", "3.4e-4932"],
        vec!["HINCRBYFLOAT", "h2", "e", "0x1.8p-3"],
        vec!["HINCRBYFLOAT", "nokey", "f", "x"],
        vec!["HINCRBYFLOAT", "str", "f", "x"],
        vec!["HINCRBY", "str", "f", "x"],
        vec!["HRANDFIELD", "h2", "-9223372036854775807", "WITHVALUES"],
        vec!["HRANDFIELD", "h2", "4611686018427387904", "WITHVALUES"],
        vec!["HRANDFIELD", "nokey"],
        vec!["HRANDFIELD", "nokey", "5"],
        vec!["HSCAN", "h2", "0", "COUNT", "0"],
        vec!["HSCAN", "h2", "18446744073709551616"],
        vec!["HSCAN", "nokey", "0", "BOGUS"],
        vec!["HSCAN", "str", "0"],
        vec!["HSCAN", "str", "x"],
        vec!["HSET", "h3"],
        vec!["HMSET", "h3", "a", "b", "c"],
        vec!["HDEL", "h2", "a", "b", "c", "d", "e", "i", "n", "m"],
        vec!["EXISTS", "h2"],
        vec!["HSTRLEN", "h", &long],
    ];
    for resp3 in [false, true] {
        p.set_proto(resp3);
        p.exact(&[b("FLUSHALL")]);
        p.exact(&[b("SET"), b("str"), b("v")]);
        for c in &cases {
            let a: Vec<Vec<u8>> = c.iter().map(|s| b(s)).collect();
            p.exact(&a);
        }
        p.unordered(&[b("HGETALL"), b("h2")], true);
        p.unordered(&[b("HRANDFIELD"), b("h2"), b("100"), b("WITHVALUES")], true);
    }
}

/// The listpack → hashtable boundary, step by step, in both directions of
/// the value-length limit.
#[test]
fn differential_encoding_boundaries() {
    let (ours, redis) = servers();
    let mut p = Pair::new(&ours, &redis);
    for i in 0..130 {
        p.exact(&[b("HSET"), b("h"), format!("f{i}").into_bytes(), b("v")]);
        p.exact(&[b("OBJECT"), b("ENCODING"), b("h")]);
    }
    for len in [63, 64, 65] {
        let k = format!("v{len}").into_bytes();
        p.exact(&[b("HSET"), k.clone(), b("f"), vec![b'a'; len]]);
        p.exact(&[b("OBJECT"), b("ENCODING"), k.clone()]);
        let k2 = format!("k{len}").into_bytes();
        p.exact(&[b("HSET"), k2.clone(), vec![b'a'; len], b("v")]);
        p.exact(&[b("OBJECT"), b("ENCODING"), k2]);
    }
    // Deleting never converts back.
    for i in 0..125 {
        p.exact(&[b("HDEL"), b("h"), format!("f{i}").into_bytes()]);
    }
    p.exact(&[b("OBJECT"), b("ENCODING"), b("h")]);
}

// ---------------------------------------------------------------------------
// Behaviour tests.

fn all_fields(c: &mut common::Conn, key: &str) -> HashSet<Vec<u8>> {
    let mut v = Vec::new();
    bulks(&c.cmd(&["HKEYS", key]), &mut v);
    v.into_iter().collect()
}

/// Every field present for the whole scan is returned, while the hash
/// grows (resizes) and shrinks between the calls.
#[test]
fn hscan_guarantee_under_concurrent_changes() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    for i in 0..2000 {
        c.cmd(&["HSET", "h", &format!("stable{i}"), "v"]);
    }
    let mut seen = HashSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let r = c.cmd(&["HSCAN", "h", &cursor, "COUNT", "20"]);
        let v = r.array();
        cursor = v[0].text();
        for pair in v[1].array().chunks(2) {
            seen.insert(pair[0].text());
        }
        round += 1;
        if round % 2 == 0 {
            for j in 0..300 {
                c.cmd(&["HSET", "h", &format!("tmp{round}-{j}"), "v"]);
            }
        } else {
            let fields = all_fields(&mut c, "h");
            for f in fields.iter().filter(|f| f.starts_with(b"tmp")) {
                c.call(&[b"HDEL", b"h", f]);
            }
        }
        if cursor == "0" {
            break;
        }
        assert!(round < 10_000);
    }
    for i in 0..2000 {
        assert!(
            seen.contains(&format!("stable{i}")),
            "stable{i} never returned"
        );
    }
}

/// HINCRBYFLOAT is propagated as HSET with the final value; SPOP-like
/// randomness does not apply. Checked through MULTI/EXEC results and a
/// replica-independent read back.
#[test]
fn hincrbyfloat_result_is_stored_verbatim() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    assert_eq!(
        c.cmd(&["HINCRBYFLOAT", "h", "f", "0.1"]),
        Reply::bulk("0.1")
    );
    assert_eq!(
        c.cmd(&["HINCRBYFLOAT", "h", "f", "0.2"]),
        Reply::bulk("0.3")
    );
    assert_eq!(c.cmd(&["HGET", "h", "f"]), Reply::bulk("0.3"));
    assert_eq!(c.cmd(&["HINCRBYFLOAT", "h", "f", "-0.3"]), Reply::bulk("0"));
}

/// Commands inside MULTI/EXEC and WATCH invalidation by a hash change.
#[test]
fn watch_and_multi() {
    let s = Server::start(&["--shards", "2"]);
    let mut a = s.conn();
    let mut other = s.conn();
    a.cmd(&["HSET", "h", "f", "1"]);
    a.cmd(&["WATCH", "h"]);
    other.cmd(&["HINCRBY", "h", "f", "1"]);
    a.cmd(&["MULTI"]);
    a.cmd(&["HGET", "h", "f"]);
    assert_eq!(a.cmd(&["EXEC"]), Reply::Nil);
    a.cmd(&["MULTI"]);
    a.cmd(&["HSET", "h", "g", "2"]);
    a.cmd(&["HGETALL", "h"]);
    let r = a.cmd(&["EXEC"]);
    assert_eq!(r.array()[0], Reply::Int(1));
    assert_eq!(r.array()[1].array().len(), 4);
}

/// A large hash deleted with DEL goes away and HLEN reports 0.
#[test]
fn large_hash_lifecycle() {
    let s = Server::start(&["--shards", "2"]);
    let mut c = s.conn();
    let mut args: Vec<String> = vec!["HSET".into(), "big".into()];
    for i in 0..5000 {
        args.push(format!("field:{i}"));
        args.push(format!("{i}"));
    }
    let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    assert_eq!(c.cmd(&refs), Reply::Int(5000));
    assert_eq!(
        c.cmd(&["OBJECT", "ENCODING", "big"]),
        Reply::bulk("hashtable")
    );
    assert_eq!(c.cmd(&["HGET", "big", "field:4321"]), Reply::bulk("4321"));
    assert_eq!(c.cmd(&["HLEN", "big"]), Reply::Int(5000));
    let r = c.cmd(&["HRANDFIELD", "big", "-20000"]);
    assert_eq!(r.array().len(), 20000);
    let r = c.cmd(&["HRANDFIELD", "big", "4000", "WITHVALUES"]);
    let flat = r.array();
    assert_eq!(flat.len(), 8000);
    let uniq: HashSet<String> = flat.chunks(2).map(|p| p[0].text()).collect();
    assert_eq!(uniq.len(), 4000);
    for p in flat.chunks(2) {
        assert_eq!(p[0].text(), format!("field:{}", p[1].text()));
    }
    for i in 0..5000 {
        c.cmd(&["HDEL", "big", &format!("field:{i}")]);
    }
    assert_eq!(c.cmd(&["EXISTS", "big"]), Reply::Int(0));
}
