//! Differential tests: shardline-node and redis-server 7.0 run side by side
//! and receive the same randomized command sequences (fixed seeds); the raw
//! reply bytes must be identical.
//!
//! Intentional differences, normalized before comparing:
//!
//! 1. KEYS: the order of keys is unspecified; both replies are sorted.
//! 2. SCAN: cursors are opaque and differ (the node's cursor is a slot
//!    number). A SCAN step here iterates to the end on both servers and
//!    compares the sorted set of keys; error replies are compared raw.
//! 3. PTTL / PEXPIRETIME / EXPIRETIME: the two servers receive a command a
//!    few microseconds apart, so millisecond TTLs may differ slightly; they
//!    are compared with a tolerance (1 s for PTTL/PEXPIRETIME, 1 for
//!    EXPIRETIME). Expiry amounts are chosen far from rounding boundaries
//!    so TTL (seconds) is compared exactly. SET ... EXAT/PXAT with a time
//!    in the past is not generated: redis 7.0 stores the key and leaves it
//!    to lazy or active expiry, so whether it still exists depends on when
//!    each server's expiry cycle ran.
//! 4. RANDOMKEY: only whether a key was returned is compared.
//! 5. Not generated at all: INFO, CLIENT, CONFIG, DEBUG, MEMORY USAGE,
//!    OBJECT IDLETIME/FREQ (implementation specific or timing dependent),
//!    COMMAND (being rewritten), and sub-second expiry times (timing).
//! 6. INCRBYFLOAT: redis computes in `long double`; the node in `f64`, so
//!    sums that are inexact in binary (0.1 + 0.2) print differently and
//!    sums beyond f64's range (1.7e308 + 1.7e308) overflow only on the
//!    node. Replies are compared as numbers (relative error 1e-15) and,
//!    when the text differs, redis's text is stored on both servers
//!    (SET key value KEEPTTL) so later steps stay comparable. Increments
//!    stay far from f64's limits.
//! 7. WRONGTYPE: the node has no command yet that creates a non-string
//!    value, so no cases need another type.

#![allow(clippy::unwrap_used)]

mod common;

use common::{parse_reply, Conn, Reply, Server};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const SEEDS: &[u64] = &[1, 2, 3, 42, 1234, 99_991, 7_777_777, 0xdead_beef];
const STEPS: usize = 2000;

/// Commands the cmdspec stub knows.
const STUB_CMDS: &[&str] = &[
    "GET", "SET", "DEL", "MGET", "MSET", "INCR", "EXPIRE", "TTL", "PTTL", "EXISTS", "KEYS", "SCAN",
    "DBSIZE", "FLUSHDB", "SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "ECHO", "PING",
];

/// Every string and generic key command of the node.
const ALL_CMDS: &[&str] = &[
    "GET",
    "SET",
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "MGET",
    "MSET",
    "MSETNX",
    "APPEND",
    "STRLEN",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "GETRANGE",
    "SUBSTR",
    "SETRANGE",
    "DEL",
    "UNLINK",
    "EXISTS",
    "TYPE",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "TTL",
    "PTTL",
    "EXPIRETIME",
    "PEXPIRETIME",
    "PERSIST",
    "RENAME",
    "RENAMENX",
    "COPY",
    "TOUCH",
    "OBJECT",
    "KEYS",
    "SCAN",
    "RANDOMKEY",
    "DBSIZE",
    "FLUSHDB",
    "SWAPDB",
    "SELECT",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "ECHO",
    "PING",
];

/// Commands that are not generated inside MULTI because their replies need
/// normalization (which would have to look inside the EXEC array).
const NOT_IN_MULTI: &[&str] = &[
    "INCRBYFLOAT",
    "KEYS",
    "SCAN",
    "RANDOMKEY",
    "PTTL",
    "PEXPIRETIME",
    "EXPIRETIME",
];

struct Gen {
    rng: StdRng,
    /// An absolute unix time (s) in the future, shared by both servers.
    future_s: i64,
    /// Use glob classes and escapes (the glob.rs stub lacks them).
    full_glob: bool,
}

impl Gen {
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v.choose(&mut self.rng).expect("non-empty")
    }
    fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }
    fn key(&mut self) -> String {
        self.pick(&["a", "b", "c", "n", "f", "{t}1", "{t}2", "s", "missing"])
            .to_string()
    }
    fn value(&mut self) -> String {
        let long = "x".repeat(50);
        let v = [
            "",
            "0",
            "1",
            "-1",
            "42",
            "10",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775806",
            "-9223372036854775807",
            "3.5",
            "-0.5",
            "1e3",
            "abc",
            "hello world",
            " 1",
            "01",
            "+1",
            "0x10",
            "inf",
            "12345678901234567890123",
            "123456789012345678901",
            "18446744073709551615",
            long.as_str(),
            "ñ\u{0}\r\nz",
        ];
        (*v.choose(&mut self.rng).expect("non-empty")).to_string()
    }
    fn int(&mut self) -> String {
        self.pick(&[
            "0",
            "1",
            "-1",
            "2",
            "5",
            "-3",
            "100",
            "-100",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775806",
            "abc",
            "1.5",
            "",
            " 3",
            "03",
            "99999999999999999999",
        ])
        .to_string()
    }
    fn float(&mut self) -> String {
        self.pick(&[
            "0", "1", "-1", "0.5", "1.5", "-2.25", "3.0", "1e2", "abc", "", "inf", "-inf", "nan",
            "5e-1", " 1", "0x10", "+1.5", ".5",
        ])
        .to_string()
    }
    /// Seconds for relative expiry: far from rounding boundaries, or <= 0.
    fn secs(&mut self) -> String {
        self.pick(&[
            "100",
            "1000",
            "5000",
            "0",
            "-1",
            "abc",
            "9223372036854775807",
            "922337203685477580",
            "-9223372036854775808",
        ])
        .to_string()
    }
    fn millis(&mut self) -> String {
        self.pick(&[
            "100000",
            "2000000",
            "0",
            "-5",
            "abc",
            "9223372036854775807",
            "9223372036854775",
        ])
        .to_string()
    }
    fn unix_s(&mut self) -> String {
        let f = self.future_s;
        let opts = [
            f.to_string(),
            (f + 500).to_string(),
            "1000".to_string(),
            "0".to_string(),
            "-1".to_string(),
            "abc".to_string(),
            "9223372036854775807".to_string(),
        ];
        opts.choose(&mut self.rng).expect("non-empty").clone()
    }
    fn unix_ms(&mut self) -> String {
        let f = self.future_s * 1000;
        let opts = [
            f.to_string(),
            (f + 123_456).to_string(),
            "1000".to_string(),
            "-1".to_string(),
            "xyz".to_string(),
        ];
        opts.choose(&mut self.rng).expect("non-empty").clone()
    }
    fn expire_flags(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while self.chance(0.35) {
            v.push(
                self.pick(&["NX", "XX", "GT", "LT", "nx", "gt", "FOO"])
                    .to_string(),
            );
        }
        v
    }
    fn keys(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.gen_range(1..=max);
        (0..n).map(|_| self.key()).collect()
    }

    fn set_options(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        let n = self.rng.gen_range(0..=3);
        for _ in 0..n {
            match self.rng.gen_range(0..10) {
                0 => v.push(self.pick(&["NX", "nx"]).to_string()),
                1 => v.push("XX".into()),
                2 => v.push(self.pick(&["GET", "get"]).to_string()),
                3 => v.push("KEEPTTL".into()),
                4 => {
                    v.push("EX".into());
                    v.push(self.secs());
                }
                5 => {
                    v.push("PX".into());
                    v.push(self.millis());
                }
                // Not in the past: redis 7.0 stores such a key and leaves it
                // to lazy/active expiry, whose timing differs between the
                // two servers (see note 3 above).
                6 => {
                    v.push("EXAT".into());
                    v.push(self.pick(&["0", "abc", "-1"]).into());
                    if self.chance(0.7) {
                        let l = v.len();
                        v[l - 1] = (self.future_s + 77).to_string();
                    }
                }
                7 => {
                    v.push("PXAT".into());
                    v.push((self.future_s * 1000 + 1234).to_string());
                }
                8 => v.push(self.pick(&["EX", "PX", "BOGUS"]).to_string()),
                _ => v.push(self.pick(&["ex", "Px"]).to_string()),
            }
        }
        v
    }

    fn command(&mut self, name: &str) -> Vec<String> {
        let mut a = vec![name.to_string()];
        match name {
            "GET" | "GETDEL" | "STRLEN" | "INCR" | "DECR" | "TYPE" | "TTL" | "PTTL"
            | "EXPIRETIME" | "PEXPIRETIME" | "PERSIST" => a.push(self.key()),
            "SET" => {
                a.push(self.key());
                a.push(self.value());
                a.extend(self.set_options());
            }
            "SETNX" | "GETSET" | "APPEND" => {
                a.push(self.key());
                a.push(self.value());
            }
            "SETEX" => {
                a.push(self.key());
                a.push(self.secs());
                a.push(self.value());
            }
            "PSETEX" => {
                a.push(self.key());
                a.push(self.millis());
                a.push(self.value());
            }
            "GETEX" => {
                a.push(self.key());
                match self.rng.gen_range(0..9) {
                    0 => {}
                    1 => a.push("PERSIST".into()),
                    2 => a.extend(["EX".into(), self.secs()]),
                    3 => a.extend(["PX".into(), self.millis()]),
                    4 => a.extend(["EXAT".into(), self.unix_s()]),
                    5 => a.extend(["PXAT".into(), self.unix_ms()]),
                    6 => a.extend(["EX".into(), self.secs(), "PERSIST".into()]),
                    7 => a.push("EX".into()),
                    _ => a.push("KEEPTTL".into()),
                }
            }
            "MGET" | "DEL" | "UNLINK" | "EXISTS" | "TOUCH" | "WATCH" => a.extend(self.keys(4)),
            "MSET" | "MSETNX" => {
                let n = self.rng.gen_range(1..=3);
                for _ in 0..n {
                    a.push(self.key());
                    a.push(self.value());
                }
            }
            "INCRBY" | "DECRBY" => {
                a.push(self.key());
                a.push(self.int());
            }
            "INCRBYFLOAT" => {
                a.push(self.key());
                a.push(self.float());
            }
            "GETRANGE" | "SUBSTR" => {
                a.push(self.key());
                a.push(self.int());
                a.push(self.int());
            }
            "SETRANGE" => {
                a.push(self.key());
                a.push(
                    self.pick(&["0", "1", "3", "20", "-1", "abc", "1000", "536870912"])
                        .to_string(),
                );
                a.push(self.pick(&["", "X", "abc", "0"]).to_string());
            }
            "EXPIRE" => {
                a.push(self.key());
                a.push(self.secs());
                a.extend(self.expire_flags());
            }
            "PEXPIRE" => {
                a.push(self.key());
                a.push(self.millis());
                a.extend(self.expire_flags());
            }
            "EXPIREAT" => {
                a.push(self.key());
                a.push(self.unix_s());
                a.extend(self.expire_flags());
            }
            "PEXPIREAT" => {
                a.push(self.key());
                a.push(self.unix_ms());
                a.extend(self.expire_flags());
            }
            "RENAME" | "RENAMENX" => {
                a.push(self.key());
                a.push(self.key());
            }
            "COPY" => {
                a.push(self.key());
                a.push(self.key());
                while self.chance(0.4) {
                    match self.rng.gen_range(0..4) {
                        0 => a.push("REPLACE".into()),
                        1 => a.extend([
                            "DB".into(),
                            self.pick(&["0", "1", "2", "16", "-1", "x"]).into(),
                        ]),
                        2 => a.push("DB".into()),
                        _ => a.push("BOGUS".into()),
                    }
                }
            }
            "OBJECT" => {
                let sub = self.pick(&["ENCODING", "encoding", "REFCOUNT", "BOGUS", "HELP"]);
                a.push(sub.into());
                if sub != "HELP" {
                    a.push(self.key());
                }
            }
            "KEYS" => {
                let p = if self.full_glob {
                    self.pick(&["*", "{t}*", "?", "[ab]", "m*g", "\\*", "[^a]*"])
                } else {
                    self.pick(&["*", "{t}*", "?", "m*g", "*i*"])
                };
                a.push(p.into());
            }
            "SCAN" => {
                a.push("0".into());
                while self.chance(0.3) {
                    match self.rng.gen_range(0..5) {
                        0 => a.extend(["MATCH".into(), self.pick(&["*", "{t}*", "?"]).into()]),
                        1 => a.extend([
                            "COUNT".into(),
                            self.pick(&["1", "5", "0", "-1", "x"]).into(),
                        ]),
                        2 => a.extend([
                            "TYPE".into(),
                            self.pick(&["string", "list", "STRING"]).into(),
                        ]),
                        3 => a.push("COUNT".into()),
                        _ => a.push("BOGUS".into()),
                    }
                }
            }
            "SELECT" => a.push(self.pick(&["0", "0", "1", "2", "16", "-1", "x"]).into()),
            "SWAPDB" => {
                a.push(self.pick(&["0", "1", "2", "16", "x"]).into());
                a.push(self.pick(&["0", "1", "2", "-1"]).into());
            }
            "FLUSHDB" if self.chance(0.3) => {
                a.push(self.pick(&["ASYNC", "SYNC", "BOGUS"]).into());
            }
            "ECHO" => a.push(self.value()),
            "PING" if self.chance(0.5) => a.push(self.value()),
            _ => {}
        }
        // Wrong arity: drop or add arguments now and then.
        if self.chance(0.05) && a.len() > 1 {
            let keep = self.rng.gen_range(1..a.len());
            a.truncate(keep);
        } else if self.chance(0.03) {
            a.push("extra".into());
            if self.chance(0.5) {
                a.push("extra2".into());
            }
        }
        a
    }
}

fn send(c: &mut Conn, args: &[String]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.call_raw(&a)
}

fn try_send(c: &mut Conn, args: &[String]) -> std::io::Result<Vec<u8>> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.try_send(&common::encode(&a))?;
    c.try_read_raw()
}

fn decode(raw: &[u8]) -> Reply {
    parse_reply(raw, 0)
        .expect("valid reply")
        .expect("complete reply")
        .0
}

fn sorted_keys(raw: &[u8]) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    match decode(raw) {
        Reply::Array(items) => {
            let mut v: Vec<Vec<u8>> = items
                .into_iter()
                .map(|r| match r {
                    Reply::Bulk(b) => b,
                    other => panic!("non-bulk key {other:?}"),
                })
                .collect();
            v.sort();
            Ok(v)
        }
        _ => Err(raw.to_vec()),
    }
}

/// Runs a full SCAN iteration; Ok(sorted keys) or Err(raw error reply).
fn scan_all(c: &mut Conn, args: &[String]) -> Result<Vec<Vec<u8>>, Vec<u8>> {
    let mut cursor = b"0".to_vec();
    let mut keys = Vec::new();
    for _ in 0..100_000 {
        let mut a: Vec<&[u8]> = vec![b"SCAN", &cursor];
        a.extend(args[2..].iter().map(|s| s.as_bytes()));
        let raw = c.call_raw(&a);
        match decode(&raw) {
            Reply::Array(parts) => {
                let Reply::Bulk(next) = &parts[0] else {
                    panic!("bad cursor")
                };
                for k in parts[1].array() {
                    if let Reply::Bulk(b) = k {
                        keys.push(b.clone());
                    }
                }
                if next == b"0" {
                    keys.sort();
                    keys.dedup();
                    return Ok(keys);
                }
                cursor = next.clone();
            }
            _ => return Err(raw),
        }
    }
    panic!("SCAN did not terminate");
}

/// INCRBYFLOAT replies: errors identical, numbers within 1e-15 relative.
fn same_float(a: &[u8], b: &[u8]) -> bool {
    match (decode(a), decode(b)) {
        (Reply::Bulk(x), Reply::Bulk(y)) => {
            let p = |v: &[u8]| String::from_utf8_lossy(v).parse::<f64>().ok();
            match (p(&x), p(&y)) {
                (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-15 * x.abs().max(y.abs()),
                _ => false,
            }
        }
        _ => a == b,
    }
}

fn close_ints(a: &[u8], b: &[u8], tol: i64) -> bool {
    match (decode(a), decode(b)) {
        (Reply::Int(x), Reply::Int(y)) => {
            if x < 0 || y < 0 {
                x == y
            } else {
                (x - y).abs() <= tol
            }
        }
        _ => a == b,
    }
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        format!("{}...", &s[..300])
    } else {
        s.into_owned()
    }
}

fn run_seed(node: &Server, redis: &Server, seed: u64, cmds: &[&str], full_glob: bool) {
    let mut n = node.conn();
    let mut r = redis.conn();
    assert_eq!(n.run("FLUSHALL"), Reply::ok());
    assert_eq!(r.run("FLUSHALL"), Reply::ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        future_s: now + 10_000,
        full_glob,
    };
    let mut in_multi = false;
    let mut history: Vec<String> = Vec::new();
    for step in 0..STEPS {
        let name = loop {
            let c = g.pick(cmds);
            if in_multi && NOT_IN_MULTI.contains(&c) {
                continue;
            }
            // Keep transactions and database switches occasional.
            if matches!(c, "MULTI" | "FLUSHDB" | "SWAPDB" | "SELECT") && !g.chance(0.3) {
                continue;
            }
            break c;
        };
        let args = g.command(name);
        history.push(args.join(" "));
        let upper = args[0].to_ascii_uppercase();
        let (a, b, same) = if upper == "SCAN" && !in_multi && args.len() >= 2 {
            let a = scan_all(&mut n, &args);
            let b = scan_all(&mut r, &args);
            let same = a == b;
            let f = |x: Result<Vec<Vec<u8>>, Vec<u8>>| match x {
                Ok(keys) => format!(
                    "keys {:?}",
                    keys.iter().map(|k| show(k)).collect::<Vec<_>>()
                ),
                Err(raw) => show(&raw),
            };
            (f(a), f(b), same)
        } else {
            let a = try_send(&mut n, &args).unwrap_or_else(|e| {
                panic!(
                    "seed {seed} step {step}: node: {e} after\n  {}",
                    history.join("\n  ")
                )
            });
            let b = try_send(&mut r, &args).unwrap_or_else(|e| {
                panic!(
                    "seed {seed} step {step}: redis: {e} after\n  {}",
                    history.join("\n  ")
                )
            });
            let same = match upper.as_str() {
                _ if in_multi => a == b,
                "KEYS" => sorted_keys(&a) == sorted_keys(&b),
                "PTTL" | "PEXPIRETIME" => close_ints(&a, &b, 1000),
                "EXPIRETIME" => close_ints(&a, &b, 1),
                "RANDOMKEY" => (decode(&a) == Reply::Nil) == (decode(&b) == Reply::Nil),
                "INCRBYFLOAT" => same_float(&a, &b),
                _ => a == b,
            };
            if same && upper == "INCRBYFLOAT" && a != b {
                // Note 6: store redis's text on both so later steps compare.
                if let Reply::Bulk(v) = decode(&b) {
                    let k = args[1].as_bytes();
                    n.call_raw(&[b"SET", k, &v, b"KEEPTTL"]);
                    r.call_raw(&[b"SET", k, &v, b"KEEPTTL"]);
                }
            }
            if same {
                match upper.as_str() {
                    "MULTI" if b == b"+OK\r\n" => in_multi = true,
                    "EXEC" | "DISCARD" => in_multi = false,
                    _ => {}
                }
            }
            (show(&a), show(&b), same)
        };
        if !same {
            let start = history.len().saturating_sub(15);
            panic!(
                "seed {seed} step {step}: replies differ for {:?}\n node:  {a:?}\n redis: {b:?}\nrecent commands:\n  {}",
                args,
                history[start..].join("\n  ")
            );
        }
    }
    // Final state: every key of every touched database is identical.
    for db in ["0", "1", "2"] {
        n.cmd(&["SELECT", db]);
        r.cmd(&["SELECT", db]);
        if in_multi {
            n.run("DISCARD");
            r.run("DISCARD");
            in_multi = false;
        }
        let kn = sorted_keys(&n.call_raw(&[b"KEYS", b"*"])).expect("keys");
        let kr = sorted_keys(&r.call_raw(&[b"KEYS", b"*"])).expect("keys");
        assert_eq!(kn, kr, "seed {seed}: keys of db {db} differ");
        for k in kn {
            assert_eq!(
                n.call_raw(&[b"GET", &k]),
                r.call_raw(&[b"GET", &k]),
                "seed {seed}: value of {} differs",
                show(&k)
            );
            assert_eq!(
                n.call_raw(&[b"TTL", &k]),
                r.call_raw(&[b"TTL", &k]),
                "seed {seed}: TTL of {} differs",
                show(&k)
            );
        }
    }
}

fn run_all(cmds: &[&str], args: &[&str], full_glob: bool) {
    let node = Server::start(args);
    let redis = Server::start_redis();
    for &seed in SEEDS {
        run_seed(&node, &redis, seed, cmds, full_glob);
    }
}

#[test]
fn stub_commands_match_redis() {
    run_all(STUB_CMDS, &[], false);
}

#[test]
fn stub_commands_match_redis_with_four_shards() {
    run_all(STUB_CMDS, &["--shards", "4"], false);
}

#[test]
fn full_commands_match_redis() {
    run_all(ALL_CMDS, &[], true);
}

#[test]
fn full_commands_match_redis_with_four_shards() {
    run_all(ALL_CMDS, &["--shards", "4"], true);
}

/// Hand-picked edge cases, compared raw.
fn edge_cases(cases: &[&[&str]]) {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    let mut n = node.conn();
    let mut r = redis.conn();
    for case in cases {
        let a: Vec<String> = case.iter().map(|s| s.to_string()).collect();
        let x = send(&mut n, &a);
        let y = send(&mut r, &a);
        assert_eq!(show(&x), show(&y), "command {case:?}");
    }
}

#[test]
fn stub_edge_cases_match_redis() {
    edge_cases(&[
        &["SET", "k", "9223372036854775807"],
        &["INCR", "k"],
        &["SET", "k", "-9223372036854775808"],
        &["INCR", "k"],
        &["GET", "k"],
        &["SET", "k", "v", "EX", "9223372036854775807"],
        &["SET", "k", "v", "PX", "9223372036854775807"],
        &["SET", "k", "v", "EXAT", "9223372036854775807"],
        &["SET", "k", "v", "GET", "NX"],
        &["SET", "k", "v", "nx", "GET"],
        &["EXPIRE", "k", "9223372036854775807"],
        &["EXPIRE", "k", "-9223372036854775808"],
        &["EXISTS", "k", "k", "k"],
        &["DEL", "k", "k"],
        &["MGET", "k"],
        &["MSET", "a"],
        &["MSET"],
        &["SELECT", "0"],
        &["SELECT", "00"],
        &["SELECT", "1.0"],
        &["SELECT", "16"],
        &["UNWATCH", "x"],
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["WATCH", "x"],
        &["SELECT", "1"],
        &["NOSUCH", "a"],
        &["EXEC"],
        &["SCAN", "18446744073709551616"],
        &["SCAN", " 1"],
        &["SCAN", "1x"],
        &["SCAN", "0", "MATCH"],
        &["KEYS"],
        &["PING", "a", "b"],
        &["ECHO"],
        &["FLUSHDB", "ASYNC", "x"],
        &["DBSIZE", "x"],
        &["TTL", "k", "x"],
        &["get"],
        &["NOSUCH"],
        &["", "x"],
    ]);
}

#[test]
fn full_edge_cases_match_redis() {
    edge_cases(&[
        &["SET", "n", "9223372036854775807"],
        &["INCRBY", "n", "1"],
        &["DECRBY", "n", "-9223372036854775808"],
        &["INCRBY", "n", "-9223372036854775808"],
        &["SET", "n", "-9223372036854775808"],
        &["DECR", "n"],
        &["DECRBY", "n", "9223372036854775807"],
        &["SET", "s", "Hello World"],
        &["GETRANGE", "s", "0", "-1"],
        &["GETRANGE", "s", "-3", "-1"],
        &["GETRANGE", "s", "-1", "-3"],
        &["GETRANGE", "s", "5", "3"],
        &["GETRANGE", "s", "-100", "-50"],
        &["GETRANGE", "s", "20", "30"],
        &["GETRANGE", "s", "0", "-100"],
        &[
            "GETRANGE",
            "s",
            "-9223372036854775808",
            "9223372036854775807",
        ],
        &["GETRANGE", "nokey", "0", "-1"],
        &["SETRANGE", "s", "-1", "x"],
        &["SETRANGE", "s", "536870912", "x"],
        &["SETRANGE", "nokey", "0", ""],
        &["EXISTS", "nokey"],
        &["SETRANGE", "s", "100", ""],
        &["STRLEN", "s"],
        &["SET", "i", "12"],
        &["OBJECT", "ENCODING", "i"],
        &["APPEND", "i", "3"],
        &["OBJECT", "ENCODING", "i"],
        &["GET", "i"],
        &["SETRANGE", "i", "0", "9"],
        &["OBJECT", "ENCODING", "i"],
        &["INCR", "i"],
        &["OBJECT", "ENCODING", "i"],
        &["SET", "e", "short"],
        &["OBJECT", "ENCODING", "e"],
        &["SET", "e", "0123456789012345678901234567890123456789012345"],
        &["OBJECT", "ENCODING", "e"],
        &["SET", "e", "12345678901234567890"],
        &["OBJECT", "ENCODING", "e"],
        &["OBJECT", "REFCOUNT", "i"],
        &["SET", "small", "5"],
        &["OBJECT", "REFCOUNT", "small"],
        &["OBJECT", "ENCODING", "nokey"],
        &["OBJECT", "HELP"],
        &["OBJECT", "NOPE", "x"],
        &["OBJECT", "ENCODING"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["INCRBYFLOAT", "f", "-1.5"],
        &["INCRBYFLOAT", "f", "1e2"],
        &["INCRBYFLOAT", "f", "inf"],
        &["INCRBYFLOAT", "f", "5.0e3"],
        &["OBJECT", "ENCODING", "f"],
        &["OBJECT", "REFCOUNT", "f"],
        &["SET", "f", " 1"],
        &["INCRBYFLOAT", "f", "1"],
        &["MSETNX", "m1", "a", "m1", "b"],
        &["GET", "m1"],
        &["MSETNX", "m1", "a", "m2"],
        &["GETEX", "m1", "EX", "0"],
        &["GETEX", "m1", "PX", "-1"],
        &["GETEX", "m1", "PERSIST", "EX", "10"],
        &["GETEX", "nokey", "EX", "10"],
        &["GETEX", "m1", "EXAT", "1"],
        &["EXISTS", "m1"],
        &["SETEX", "k", "0", "v"],
        &["SETEX", "k", "-1", "v"],
        &["PSETEX", "k", "0", "v"],
        &["SETEX", "k", "abc", "v"],
        &["SET", "src", "v"],
        &["COPY", "src", "src"],
        &["COPY", "src", "src", "DB", "0"],
        &["COPY", "src", "dst", "DB", "16"],
        &["COPY", "src", "dst", "DB"],
        &["COPY", "nokey", "dst"],
        &["RENAME", "nokey", "x"],
        &["RENAME", "src", "src"],
        &["RENAMENX", "src", "src"],
        &["RENAMENX", "nokey", "src"],
        &["EXPIRE", "src", "100", "NX", "XX"],
        &["EXPIRE", "src", "100", "GT", "LT"],
        &["EXPIRE", "src", "100", "NX", "GT"],
        &["EXPIRE", "src", "100", "XX", "GT"],
        &["EXPIRE", "src", "100", "lt"],
        &["TTL", "src"],
        &["PEXPIRE", "src", "9223372036854775807"],
        &["EXPIREAT", "src", "9223372036854775807"],
        &["PEXPIREAT", "src", "-1"],
        &["EXISTS", "src"],
        &["PERSIST", "nokey"],
        &["EXPIRETIME", "nokey"],
        &["SET", "p", "v"],
        &["EXPIRETIME", "p"],
        &["PEXPIRETIME", "p"],
        &["EXPIREAT", "p", "99999999999"],
        &["EXPIRETIME", "p"],
        &["PEXPIREAT", "p", "99999999999700"],
        &["EXPIRETIME", "p"],
        &["PEXPIREAT", "p", "99999999999300"],
        &["EXPIRETIME", "p"],
        &["PEXPIRETIME", "p"],
        &["PERSIST", "p"],
        &["TYPE", "p"],
        &["TYPE", "nokey"],
        &["TOUCH", "p", "p", "nokey"],
        &["UNLINK", "p", "p"],
        &["SWAPDB", "0", "x"],
        &["SWAPDB", "x", "0"],
        &["SWAPDB", "0", "16"],
        &["RANDOMKEY", "x"],
        &["SUBSTR", "s", "0", "2"],
        &["GETDEL", "s"],
        &["GETDEL", "s"],
        &["GETSET", "s", "x"],
        &["APPEND", "s", ""],
        &["STRLEN", "nokey"],
        &["SETNX", "s", "y"],
    ]);
}
