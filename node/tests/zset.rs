//! Sorted sets: differential tests against redis-server 7.0 (raw reply
//! bytes compared) and behaviour tests (blocking pops, ZSCAN guarantees,
//! encodings).

mod common;

use std::time::{Duration, Instant};

use common::{parse_reply, Conn, Reply, Server};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
}

const KEYS: &[&str] = &[
    "{z}a", "{z}b", "{z}c", "{z}d", "{z}str", "{z}none", "{z}lex",
];

fn member(r: &mut Rng) -> String {
    match r.below(30) {
        0 => "x".repeat(65 + r.below(5)),
        1 => String::new(),
        2 => format!("{}", r.below(20)),
        _ => format!("m{}", r.below(16)),
    }
}

fn score(r: &mut Rng, valid_only: bool) -> String {
    let valid = [
        "0",
        "1",
        "2",
        "3",
        "-1",
        "1.5",
        "-2.25",
        "10",
        "100",
        "0.1",
        "inf",
        "-inf",
        "+inf",
        "-0",
        "1e300",
        "-1e300",
        "1e-7",
        "3.0",
        "5",
        "7",
        "1e17",
        "123456789012",
        "0x10",
        "1e-320",
        ".5",
        "5.",
    ];
    let invalid = [
        "abc", "nan", "", " 1", "1 ", "1e400", "1e-400", "--1", "1e", "inf1",
    ];
    if !valid_only && r.chance(6) {
        r.pick(&invalid).to_string()
    } else if r.chance(30) {
        format!("{}", r.below(10) as i64 - 3)
    } else {
        r.pick(&valid).to_string()
    }
}

fn range_item(r: &mut Rng) -> String {
    let items = [
        "-inf", "+inf", "inf", "0", "1", "(1", "2", "(2", "5", "(5", "-1", "(-inf", "(+inf", "1.5",
        "(1.5", "10", "100", "abc", "(", "", " 3", "(nan", "1e400", "0x2",
    ];
    r.pick(&items).to_string()
}

fn lex_item(r: &mut Rng) -> String {
    let items = [
        "-", "+", "[m1", "(m1", "[m5", "(m5", "[m", "(m", "[", "(", "[x", "[m12", "(m3", "m1",
        "--", "++", "[1", "(9", "[zz",
    ];
    r.pick(&items).to_string()
}

fn int_arg(r: &mut Rng) -> String {
    let items = [
        "0",
        "1",
        "2",
        "3",
        "-1",
        "-2",
        "-3",
        "5",
        "10",
        "100",
        "-100",
        "x",
        "1.5",
        "9223372036854775807",
        "-9223372036854775808",
        "99999999999999999999",
    ];
    r.pick(&items).to_string()
}

/// Lexicographic commands are only defined when all scores are equal (with
/// mixed scores redis's skiplist answer depends on its random levels), so
/// they run on a key whose members all have score 0.
fn lex_key(r: &mut Rng) -> String {
    r.pick(&[
        "{z}lex",
        "{z}lex",
        "{z}lex",
        "{z}lex",
        "{z}lexstr",
        "{z}lexnone",
    ])
    .to_string()
}

fn key(r: &mut Rng) -> String {
    // Mostly sorted sets that exist.
    let k = if r.chance(70) {
        KEYS[r.below(4)]
    } else {
        KEYS[r.below(KEYS.len() - 1)]
    };
    k.to_string()
}

/// How to compare a command's replies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Exact,
    /// ZRANDMEMBER: random elements; compare shape only.
    Random,
    /// ZSCAN: compare the set of elements of a full scan.
    Scan,
}

fn gen(r: &mut Rng) -> (Vec<String>, Cmp) {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let mut c: Vec<String>;
    let mut cmp = Cmp::Exact;
    match r.below(44) {
        0..=7 => {
            c = s(&["ZADD"]);
            c.push(key(r));
            let opts = ["NX", "XX", "GT", "LT", "CH", "INCR", "nx", "ch"];
            let nopts = if r.chance(50) { 0 } else { r.below(3) };
            for _ in 0..nopts {
                c.push(r.pick(&opts).to_string());
            }
            let pairs = if r.chance(80) { 1 + r.below(4) } else { 0 };
            for _ in 0..pairs {
                c.push(score(r, false));
                c.push(member(r));
            }
            if r.chance(5) {
                c.push(score(r, true));
            }
        }
        8 => {
            c = s(&["ZINCRBY"]);
            c.push(key(r));
            c.push(score(r, false));
            c.push(member(r));
        }
        9 | 10 => {
            c = s(&["ZREM"]);
            c.push(key(r));
            for _ in 0..1 + r.below(3) {
                c.push(member(r));
            }
        }
        11 => {
            c = vec!["ZSCORE".into(), key(r), member(r)];
        }
        12 => {
            c = vec!["ZMSCORE".into(), key(r)];
            for _ in 0..1 + r.below(3) {
                c.push(member(r));
            }
        }
        13 => c = vec!["ZCARD".into(), key(r)],
        14 => c = vec!["ZCOUNT".into(), key(r), range_item(r), range_item(r)],
        15 => c = vec!["ZLEXCOUNT".into(), lex_key(r), lex_item(r), lex_item(r)],
        16..=19 => {
            let kind = r.below(3);
            c = vec!["ZRANGE".into(), if kind == 2 { lex_key(r) } else { key(r) }];
            match kind {
                0 => {
                    c.push(int_arg(r));
                    c.push(int_arg(r));
                }
                1 => {
                    c.push(range_item(r));
                    c.push(range_item(r));
                }
                _ => {
                    c.push(lex_item(r));
                    c.push(lex_item(r));
                }
            }
            let mut opts: Vec<String> = Vec::new();
            if kind == 1 || r.chance(10) {
                opts.push("BYSCORE".into());
            }
            if kind == 2 || (kind == 0 && r.chance(10)) {
                opts.push("BYLEX".into());
            }
            if r.chance(40) {
                opts.push("REV".into());
            }
            if r.chance(40) {
                opts.push("WITHSCORES".into());
            }
            if r.chance(30) {
                opts.push("LIMIT".into());
                opts.push(int_arg(r));
                opts.push(int_arg(r));
            }
            // Shuffle option order a bit.
            if opts.len() > 1 && r.chance(30) {
                let i = r.below(opts.len());
                let x = opts.remove(i);
                opts.push(x);
            }
            c.extend(opts);
        }
        20 => {
            c = vec!["ZRANGESTORE".into(), key(r), key(r)];
            if r.chance(50) {
                c.push(range_item(r));
                c.push(range_item(r));
                c.push("BYSCORE".into());
            } else {
                c.push(int_arg(r));
                c.push(int_arg(r));
            }
            if r.chance(30) {
                c.push("REV".into());
            }
            if r.chance(20) {
                c.push("LIMIT".into());
                c.push(int_arg(r));
                c.push(int_arg(r));
            }
            if r.chance(5) {
                c.push("WITHSCORES".into());
            }
        }
        21 | 22 => {
            let name = r.pick(&["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]);
            c = vec![name.into(), key(r), range_item(r), range_item(r)];
            if r.chance(40) {
                c.push("WITHSCORES".into());
            }
            if r.chance(40) {
                c.push("LIMIT".into());
                c.push(int_arg(r));
                c.push(int_arg(r));
            }
        }
        23 => {
            let name = r.pick(&["ZRANGEBYLEX", "ZREVRANGEBYLEX"]);
            c = vec![name.into(), lex_key(r), lex_item(r), lex_item(r)];
            if r.chance(40) {
                c.push("LIMIT".into());
                c.push(int_arg(r));
                c.push(int_arg(r));
            }
            if r.chance(5) {
                c.push("WITHSCORES".into());
            }
        }
        24 => {
            c = vec!["ZREVRANGE".into(), key(r), int_arg(r), int_arg(r)];
            if r.chance(40) {
                c.push("WITHSCORES".into());
            }
        }
        25 => {
            let name = r.pick(&["ZRANK", "ZREVRANK"]);
            // WITHSCORE is redis 7.2's: `zrank_withscore_as_redis_7_2`.
            c = vec![name.into(), key(r), member(r)];
        }
        26 | 27 => {
            let name = r.pick(&["ZPOPMIN", "ZPOPMAX"]);
            c = vec![name.into(), key(r)];
            if r.chance(50) {
                c.push(int_arg(r));
            }
            if r.chance(3) {
                c.push("1".into());
            }
        }
        28 => {
            c = vec!["ZMPOP".into()];
            let n = r.below(4);
            c.push(if r.chance(10) {
                int_arg(r)
            } else {
                n.to_string()
            });
            for _ in 0..n {
                c.push(key(r));
            }
            c.push(r.pick(&["MIN", "MAX", "min", "foo"]).into());
            if r.chance(40) {
                c.push("COUNT".into());
                c.push(int_arg(r));
            }
        }
        29 => {
            let name = r.pick(&["BZPOPMIN", "BZPOPMAX"]);
            c = vec![name.into()];
            for _ in 0..1 + r.below(2) {
                c.push(key(r));
            }
            c.push(r.pick(&["0.01", "0.01", "-1", "abc"]).into());
        }
        30 => {
            c = vec!["BZMPOP".into(), r.pick(&["0.01", "0.01", "-1", "x"]).into()];
            let n = 1 + r.below(2);
            c.push(n.to_string());
            for _ in 0..n {
                c.push(key(r));
            }
            c.push(r.pick(&["MIN", "MAX"]).into());
            if r.chance(40) {
                c.push("COUNT".into());
                c.push(int_arg(r));
            }
        }
        31 => {
            c = vec![
                "ZREMRANGEBYSCORE".into(),
                key(r),
                range_item(r),
                range_item(r),
            ]
        }
        32 => c = vec!["ZREMRANGEBYRANK".into(), key(r), int_arg(r), int_arg(r)],
        33 => {
            if r.chance(50) {
                c = vec![
                    "ZREMRANGEBYLEX".into(),
                    lex_key(r),
                    lex_item(r),
                    lex_item(r),
                ];
            } else {
                c = vec!["ZADD".into(), "{z}lex".into()];
                for _ in 0..1 + r.below(4) {
                    c.push("0".into());
                    c.push(member(r));
                }
            }
        }
        34..=37 => {
            let name = r.pick(&[
                "ZUNION",
                "ZINTER",
                "ZDIFF",
                "ZUNIONSTORE",
                "ZINTERSTORE",
                "ZDIFFSTORE",
                "ZINTERCARD",
            ]);
            c = vec![name.into()];
            let store = name.ends_with("STORE");
            if store {
                c.push(key(r));
            }
            let n = 1 + r.below(3);
            c.push(if r.chance(5) {
                int_arg(r)
            } else {
                n.to_string()
            });
            for _ in 0..n {
                c.push(key(r));
            }
            if r.chance(30) {
                c.push("WEIGHTS".into());
                let w = ["1", "2", "0", "-1", "0.5", "inf", "x", "3"];
                let nw = if r.chance(90) { n } else { n + 1 };
                for _ in 0..nw {
                    c.push(r.pick(&w).into());
                }
            }
            if r.chance(30) {
                c.push("AGGREGATE".into());
                c.push(r.pick(&["SUM", "MIN", "MAX", "max", "avg"]).into());
            }
            if r.chance(40) {
                c.push("WITHSCORES".into());
            }
            if r.chance(20) {
                c.push("LIMIT".into());
                c.push(int_arg(r));
            }
        }
        38 => {
            cmp = Cmp::Random;
            c = vec!["ZRANDMEMBER".into(), key(r)];
            if r.chance(80) {
                c.push(int_arg(r));
                if r.chance(50) {
                    c.push(r.pick(&["WITHSCORES", "withscores", "foo"]).into());
                }
            }
        }
        39 => {
            cmp = Cmp::Scan;
            c = vec!["ZSCAN".into(), key(r), "0".into()];
            if r.chance(30) {
                c.push("MATCH".into());
                c.push(r.pick(&["m1*", "*", "x*", "[0-9]", "*1"]).into());
            }
            if r.chance(30) {
                c.push("COUNT".into());
                c.push(r.pick(&["1", "5", "100"]).into());
            }
        }
        40 => c = vec!["OBJECT".into(), "ENCODING".into(), key(r)],
        41 => c = vec!["TYPE".into(), key(r)],
        42 => {
            if r.chance(30) {
                c = vec!["DEL".into(), key(r)];
            } else {
                c = vec!["EXISTS".into(), key(r)];
            }
        }
        _ => {
            c = vec!["ZSCAN".into(), key(r), r.pick(&["x", "+", " 1", ""]).into()];
            if c[2].is_empty() {
                // "" is cursor 0: a full scan.
                cmp = Cmp::Scan;
            }
        }
    }
    (c, cmp)
}

fn call(c: &mut Conn, args: &[String]) -> Vec<u8> {
    let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
    c.call_raw(&a)
}

fn decode(raw: &[u8]) -> Reply {
    parse_reply(raw, 0).expect("parse").expect("complete").0
}

/// Runs a full ZSCAN iteration, returning the sorted (member, score) pairs
/// (or the error text).
/// (member, score text) pairs.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn full_scan(c: &mut Conn, args: &[String]) -> Result<Pairs, String> {
    let mut cursor = args[2].clone();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..100_000 {
        let mut a = args.to_vec();
        a[2] = cursor.clone();
        let r = decode(&call(c, &a));
        if let Reply::Error(e) = r {
            return Err(e);
        }
        let parts = r.array().to_vec();
        cursor = parts[0].text();
        let items = parts[1].array();
        for pair in items.chunks(2) {
            let m = match &pair[0] {
                Reply::Bulk(b) => b.clone(),
                other => panic!("bad member {other:?}"),
            };
            let s = match &pair[1] {
                Reply::Bulk(b) => b.clone(),
                other => panic!("bad score {other:?}"),
            };
            seen.insert(m, s);
        }
        if cursor == "0" {
            break;
        }
    }
    Ok(seen.into_iter().collect())
}

fn random_shape(reply: &Reply) -> String {
    match reply {
        Reply::Array(v) => {
            let inner: Vec<String> = v.iter().map(random_shape).collect();
            format!("[{}]", inner.join(","))
        }
        Reply::Bulk(_) => "b".into(),
        Reply::Double(_) => "d".into(),
        Reply::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

fn differential(seed: u64, steps: usize, resp3: bool) {
    let node = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let mut a = node.conn();
    let mut b = redis.conn();
    let mut r = Rng(seed);
    let setup: Vec<Vec<String>> = vec![
        vec![
            "CONFIG".into(),
            "SET".into(),
            "zset-max-listpack-entries".into(),
            (4 + r.below(12)).to_string(),
        ],
        vec!["SET".into(), "{z}str".into(), "hello".into()],
        vec!["SET".into(), "{z}lexstr".into(), "hello".into()],
    ];
    for cmd in &setup {
        let x = call(&mut a, cmd);
        let y = call(&mut b, cmd);
        assert_eq!(x, y, "setup {cmd:?}");
    }
    if resp3 {
        let h: Vec<String> = vec!["HELLO".into(), "3".into()];
        call(&mut a, &h);
        call(&mut b, &h);
    }
    let mut log: Vec<String> = Vec::new();
    for step in 0..steps {
        let (cmd, cmp) = gen(&mut r);
        log.push(cmd.join(" "));
        if log.len() > 30 {
            log.remove(0);
        }
        let last = cmd.join(" ");
        let ctx = || {
            format!(
                "seed {seed} resp3 {resp3} step {step}: {last}\nhistory:\n{}",
                log.join("\n")
            )
        };
        match cmp {
            Cmp::Exact => {
                let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
                a.send(&common::encode(&args));
                let x = match a.try_read_raw() {
                    Ok(x) => x,
                    Err(e) => panic!("{e}: {}\nserver log:\n{}", ctx(), node.log_text()),
                };
                let y = call(&mut b, &cmd);
                if x != y {
                    panic!(
                        "mismatch:\n shardline: {:?}\n redis:     {:?}\n{}",
                        String::from_utf8_lossy(&x),
                        String::from_utf8_lossy(&y),
                        ctx()
                    );
                }
            }
            Cmp::Random => {
                // Random selection: compare the shape (lengths, types) and
                // that every returned member belongs to the set.
                let x = decode(&call(&mut a, &cmd));
                let y = decode(&call(&mut b, &cmd));
                assert_eq!(random_shape(&x), random_shape(&y), "{}", ctx());
                let all: Vec<String> =
                    vec!["ZRANGE".into(), cmd[1].clone(), "0".into(), "-1".into()];
                if let Reply::Array(items) = &x {
                    let members = decode(&call(&mut a, &all));
                    if let Reply::Array(ms) = members {
                        for it in items {
                            let m = match it {
                                Reply::Array(p) => p[0].clone(),
                                other => other.clone(),
                            };
                            if matches!(m, Reply::Bulk(_)) && !ms.contains(&m) {
                                // scores in RESP2 are bulks too: accept
                                // parseable numbers
                                let t = m.text();
                                assert!(
                                    t.parse::<f64>().is_ok() || t == "inf" || t == "-inf",
                                    "{t} not a member {}",
                                    ctx()
                                );
                            }
                        }
                    }
                }
            }
            Cmp::Scan => {
                let x = full_scan(&mut a, &cmd);
                let y = full_scan(&mut b, &cmd);
                assert_eq!(x, y, "{}", ctx());
            }
        }
    }
    // Final state must match.
    for k in KEYS {
        let cmd: Vec<String> = vec![
            "ZRANGE".into(),
            k.to_string(),
            "0".into(),
            "-1".into(),
            "WITHSCORES".into(),
        ];
        assert_eq!(call(&mut a, &cmd), call(&mut b, &cmd), "final {k}");
    }
}

/// Number of seeds per protocol (ZSET_DIFF_SEEDS overrides, for soaking).
fn seeds(default: u64) -> u64 {
    std::env::var("ZSET_DIFF_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn differential_resp2() {
    for seed in 1..=seeds(3) {
        differential(seed * 7919 + 1, 2000, false);
    }
}

#[test]
fn differential_resp3() {
    for seed in 1..=seeds(2) {
        differential(seed * 104729 + 5, 2000, true);
    }
}

/// Fixed edge cases (doubles, errors, encodings) compared byte for byte.
#[test]
fn differential_edge_cases() {
    let node = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let mut a = node.conn();
    let mut b = redis.conn();
    let script = [
        "ZADD d 0.1 a 1e-7 b 1.5e300 c 3.0 d -0.0 e 1e16 f 1e17 g 2.5e-5 h -inf i inf j",
        "ZRANGE d 0 -1 WITHSCORES",
        "ZSCAN d 0",
        "ZSCORE d e",
        "OBJECT ENCODING d",
        "ZADD d2 -0.0 x",
        "ZSCORE d2 x",
        "ZADD d2 INCR -0.0 y",
        "ZINCRBY d2 -0.0 x",
        "CONFIG SET zset-max-listpack-entries 0",
        "ZADD sk -0.0 x 0.1 y 1e17 z",
        "OBJECT ENCODING sk",
        "ZSCORE sk x",
        "ZINCRBY sk -0.0 x",
        "CONFIG SET zset-max-listpack-entries 128",
        "ZADD n inf a",
        "ZINCRBY n -inf a",
        "ZADD n INCR -inf a",
        "ZADD n XX NX 1 a",
        "ZADD n GT LT 1 a",
        "ZADD n NX GT 1 a",
        "ZADD n INCR 1 a 2 b",
        "ZADD n 1",
        "ZADD n nan a",
        "ZADD n 1 a 2",
        "ZADD n XX CH 5 a 6 b",
        "ZADD n GT CH 10 a",
        "ZADD n LT CH 20 a",
        "ZADD n GT INCR -1 a",
        "ZADD n XX INCR 1 nope",
        "ZADD nokey XX 1 a",
        "ZADD nokey XX INCR 1 a",
        "EXISTS nokey",
        "ZRANGEBYSCORE n (1 (1",
        "ZRANGEBYSCORE n 1 0",
        "ZRANGEBYSCORE n x 1",
        "ZRANGEBYLEX n a b",
        "ZRANGEBYLEX n - +",
        "ZRANGE n 0 -1 BYLEX WITHSCORES",
        "ZRANGE n 0 -1 LIMIT 0 1",
        "ZRANGE n (1 +inf BYSCORE LIMIT 0 1 WITHSCORES",
        "ZRANGE n +inf -inf BYSCORE REV",
        "ZRANGE n + - BYLEX REV",
        "ZRANGESTORE dst n 0 -1 WITHSCORES",
        "ZRANGESTORE dst n 0 -1",
        "OBJECT ENCODING dst",
        "ZRANGESTORE dst nokey 0 -1",
        "EXISTS dst",
        "ZPOPMIN n -1",
        "ZPOPMIN n 0",
        "ZPOPMIN n 1 2",
        "ZMPOP 0 n MIN",
        "ZMPOP 1 n MIN COUNT 0",
        "ZMPOP 1 n MIN COUNT 1 COUNT 1",
        "ZMPOP 5 n MIN",
        "ZUNION 0 n",
        "ZUNIONSTORE out 0 n",
        "ZINTERCARD 0 n",
        "ZINTERCARD 1 n LIMIT -1",
        "ZUNION 1 n WEIGHTS",
        "ZUNION 1 n WEIGHTS x",
        "ZDIFF 1 n WEIGHTS 1",
        "ZUNIONSTORE out 1 n WITHSCORES",
        "ZRANDMEMBER n -9223372036854775808",
        "ZRANDMEMBER n 9223372036854775807 WITHSCORES",
        "ZRANDMEMBER n 5 WITHSCORES extra",
        "ZSCAN n x",
        "ZSCAN n 0 COUNT 0",
        "ZSCAN nokey 0 COUNT 0",
        "ZADD l 0 a 0 b 0 c 0 d 0 e",
        "ZLEXCOUNT l [b (d",
        "ZLEXCOUNT l - +",
        "ZLEXCOUNT l + -",
        "ZREMRANGEBYLEX l (a [c",
        "ZRANGE l 0 -1",
        "ZREMRANGEBYRANK l 0 -1",
        "EXISTS l",
        "ZADD w 1 a 2 b",
        "ZADD v 10 b 20 c",
        "ZUNION 2 w v WITHSCORES",
        "ZINTER 2 w v WEIGHTS 2 3 AGGREGATE MAX WITHSCORES",
        "ZDIFF 2 w v WITHSCORES",
        "ZUNION 2 w v WEIGHTS inf -inf WITHSCORES",
        "ZINTER 2 w w WITHSCORES",
        "ZDIFF 2 w w",
        "ZINTERSTORE w2 2 w v",
        "ZRANGE w2 0 -1 WITHSCORES",
        "SET s x",
        "ZUNION 2 w s",
        "ZADD s 1 a",
        "ZRANGE s 0 -1",
        "ZMPOP 2 nokey s MIN",
        "ZMPOP 2 w s MIN",
        "BZPOPMIN s 0.01",
        "BZPOPMIN nokey s 0.01",
        "BZPOPMIN nokey 0.01",
        "BZPOPMIN w -1",
        "BZPOPMIN w x",
        "BZMPOP 0.01 1 nokey MIN",
        "BZMPOP x 1 w MIN",
        "BZMPOP 0 0 w MIN",
        "ZREVRANK w b",
    ];
    for proto in ["2", "3"] {
        let h = ["HELLO", proto];
        a.cmd(&h);
        b.cmd(&h);
        for line in script {
            let args: Vec<String> = line.split(' ').map(String::from).collect();
            let x = call(&mut a, &args);
            let y = call(&mut b, &args);
            assert_eq!(
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y),
                "proto {proto}: {line}"
            );
        }
        a.cmd(&["FLUSHALL"]);
        b.cmd(&["FLUSHALL"]);
    }
}

/// ZRANK / ZREVRANK WITHSCORE, which redis added in 7.2 (7.0 answers
/// with an arity error): the reply is [rank, score], where the rank and
/// the score must be what redis-server 7.0 answers to ZRANK and ZSCORE of
/// the same member, in RESP2 and RESP3, for compact and skiplist sets.
#[test]
fn zrank_withscore_as_redis_7_2() {
    let node = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let mut a = node.conn();
    let mut b = redis.conn();
    let argv = |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>();
    let mut big = String::from("ZADD big");
    for i in 0..200 {
        big.push_str(&format!(" {} m{i}", f64::from(i) * 0.5 - 7.25));
    }
    for line in [
        "ZADD small 1.5 a 2 b -inf c 1e300 d",
        big.as_str(),
        "SET str x",
    ] {
        assert_eq!(
            call(&mut a, &argv(line)),
            call(&mut b, &argv(line)),
            "{line}"
        );
    }
    assert_eq!(
        call(&mut a, &argv("OBJECT ENCODING small")),
        b"$8\r\nlistpack\r\n"
    );
    assert_eq!(
        call(&mut a, &argv("OBJECT ENCODING big")),
        b"$8\r\nskiplist\r\n"
    );
    for proto in ["2", "3"] {
        a.cmd(&["HELLO", proto]);
        b.cmd(&["HELLO", proto]);
        for (key, member) in [
            ("small", "a"),
            ("small", "c"),
            ("small", "d"),
            ("big", "m0"),
            ("big", "m150"),
            ("big", "m199"),
        ] {
            for cmd in ["ZRANK", "ZREVRANK", "zrevrank"] {
                let got = call(&mut a, &argv(&format!("{cmd} {key} {member} WithScore")));
                let mut want = b"*2\r\n".to_vec();
                want.extend(call(&mut b, &argv(&format!("{cmd} {key} {member}"))));
                want.extend(call(&mut b, &argv(&format!("ZSCORE {key} {member}"))));
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "proto {proto}: {cmd} {key} {member} WITHSCORE"
                );
            }
        }
        let null_array: &[u8] = if proto == "2" { b"*-1\r\n" } else { b"_\r\n" };
        for line in ["ZRANK small nosuch WITHSCORE", "ZREVRANK nokey a WITHSCORE"] {
            assert_eq!(
                call(&mut a, &argv(line)),
                null_array,
                "proto {proto}: {line}"
            );
        }
        assert_eq!(
            call(&mut a, &argv("ZRANK small a WITHSCORES")),
            b"-ERR syntax error\r\n"
        );
        assert_eq!(
            call(&mut a, &argv("ZREVRANK small a WITHSCORE x")),
            b"-ERR wrong number of arguments for 'zrevrank' command\r\n"
        );
        assert_eq!(
            call(&mut a, &argv("ZRANK str a WITHSCORE")),
            call(&mut b, &argv("ZRANK str a"))
        );
    }
}

/// Encoding conversions at the limits, compared with redis.
#[test]
fn encodings_follow_redis() {
    let node = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let mut a = node.conn();
    let mut b = redis.conn();
    let mut both = |args: &[String]| {
        let x = call(&mut a, args);
        let y = call(&mut b, args);
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "{args:?}"
        );
    };
    let v = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    for i in 0..130 {
        both(&v(&format!("ZADD e {i} m{i}")));
        if (126..=130).contains(&i) {
            both(&v("OBJECT ENCODING e"));
        }
    }
    both(&v("ZREMRANGEBYRANK e 0 100"));
    both(&v("OBJECT ENCODING e"));
    both(&v("ZUNIONSTORE e2 1 e"));
    both(&v("OBJECT ENCODING e2"));
    both(&v("ZRANGESTORE e3 e 0 -1"));
    both(&v("OBJECT ENCODING e3"));
    let long = "y".repeat(65);
    both(&v(&format!("ZADD f 1 {long}")));
    both(&v("OBJECT ENCODING f"));
    both(&v(&format!("ZADD g 1 {}", "y".repeat(64))));
    both(&v("OBJECT ENCODING g"));
    both(&v(&format!("ZADD g 2 {long}")));
    both(&v("OBJECT ENCODING g"));
    both(&v("ZRANGE g 0 -1 WITHSCORES"));
    both(&v("ZINTERSTORE g2 1 g"));
    both(&v("OBJECT ENCODING g2"));
    both(&v("ZDIFFSTORE g3 1 g"));
    both(&v("ZREM g3 nothing"));
    both(&v("ZREMRANGEBYLEX g3 - +"));
    both(&v("EXISTS g3"));
}

// ---------------------------------------------------------------------------
// Behaviour tests
// ---------------------------------------------------------------------------

#[test]
fn blocking_pops_wake_and_time_out() {
    let node = Server::start(&["--shards", "2"]);
    let mut c1 = node.conn();
    let mut c2 = node.conn();
    // Timeout.
    let t = Instant::now();
    assert_eq!(c1.cmd(&["BZPOPMIN", "q1", "q2", "0.2"]), Reply::Nil);
    assert!(t.elapsed() >= Duration::from_millis(150));
    // RESP3 timeout reply is a null.
    let mut c3 = node.conn();
    c3.cmd(&["HELLO", "3"]);
    c3.send(&common::encode(&[b"BZMPOP", b"0.1", b"1", b"q1", b"MIN"]));
    assert_eq!(c3.read_raw(), b"_\r\n");

    // Wake-up by ZADD from another client.
    c1.send(&common::encode(&[b"BZPOPMAX", b"q1", b"q2", b"0"]));
    assert!(c1.nothing_within(Duration::from_millis(100)));
    assert_eq!(c2.cmd(&["ZADD", "q2", "1", "a", "2", "b"]).int(), 2);
    assert_eq!(
        c1.read(),
        Reply::Array(vec![Reply::bulk("q2"), Reply::bulk("b"), Reply::bulk("2")])
    );
    assert_eq!(c2.cmd(&["ZCARD", "q2"]).int(), 1);

    // BZMPOP with COUNT, woken by ZADD creating the key.
    c1.send(&common::encode(&[
        b"BZMPOP", b"0", b"2", b"q3", b"q4", b"MIN", b"COUNT", b"5",
    ]));
    assert!(c1.nothing_within(Duration::from_millis(100)));
    c2.cmd(&["ZADD", "q4", "3", "x", "1", "y"]);
    let r = c1.read();
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::bulk("q4"),
            Reply::Array(vec![
                Reply::Array(vec![Reply::bulk("y"), Reply::bulk("1")]),
                Reply::Array(vec![Reply::bulk("x"), Reply::bulk("3")]),
            ])
        ])
    );
    assert_eq!(c2.cmd(&["EXISTS", "q4"]).int(), 0);

    // FIFO order between two blocked clients.
    let mut c4 = node.conn();
    c1.send(&common::encode(&[b"BZPOPMIN", b"f", b"0"]));
    assert!(c1.nothing_within(Duration::from_millis(50)));
    c4.send(&common::encode(&[b"BZPOPMIN", b"f", b"0"]));
    assert!(c4.nothing_within(Duration::from_millis(50)));
    c2.cmd(&["ZADD", "f", "1", "first"]);
    assert_eq!(c1.read().array()[1], Reply::bulk("first"));
    c2.cmd(&["ZADD", "f", "2", "second"]);
    assert_eq!(c4.read().array()[1], Reply::bulk("second"));

    // ZINCRBY and ZUNIONSTORE also wake waiters.
    c1.send(&common::encode(&[b"BZPOPMIN", b"g", b"0"]));
    assert!(c1.nothing_within(Duration::from_millis(50)));
    c2.cmd(&["ZINCRBY", "g", "5", "inc"]);
    assert_eq!(c1.read().array()[1], Reply::bulk("inc"));
    c2.cmd(&["ZADD", "src", "1", "u"]);
    c1.send(&common::encode(&[b"BZPOPMIN", b"h", b"0"]));
    assert!(c1.nothing_within(Duration::from_millis(50)));
    c2.cmd(&["ZUNIONSTORE", "h", "1", "src"]);
    assert_eq!(c1.read().array()[1], Reply::bulk("u"));

    // Wrong type while blocked keys exist.
    c2.cmd(&["SET", "s", "x"]);
    assert!(c1.cmd(&["BZPOPMIN", "s", "0"]).is_error());
}

#[test]
fn blocking_pops_inside_multi() {
    let node = Server::start(&["--shards", "2"]);
    let mut c = node.conn();
    c.cmd(&["MULTI"]);
    c.cmd(&["BZPOPMIN", "empty", "0"]);
    c.cmd(&["BZMPOP", "0", "1", "empty", "MAX"]);
    c.cmd(&["ZADD", "full", "1", "a"]);
    c.cmd(&["BZPOPMAX", "full", "0"]);
    let r = c.cmd(&["EXEC"]);
    assert_eq!(
        r,
        Reply::Array(vec![
            Reply::Nil,
            Reply::Nil,
            Reply::Int(1),
            Reply::Array(vec![
                Reply::bulk("full"),
                Reply::bulk("a"),
                Reply::bulk("1")
            ]),
        ])
    );
}

#[test]
fn zscan_returns_every_element_while_the_set_changes() {
    let node = Server::start(&["--shards", "2"]);
    let mut c = node.conn();
    // Start big (skiplist) and keep adding/removing during the scan.
    for chunk in 0..20 {
        let mut args: Vec<String> = vec!["ZADD".into(), "big".into()];
        for i in 0..100 {
            let n = chunk * 100 + i;
            args.push(n.to_string());
            args.push(format!("e{n}"));
        }
        call(&mut c, &args);
    }
    assert_eq!(c.cmd(&["OBJECT", "ENCODING", "big"]).text(), "skiplist");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = "0".to_string();
    let mut extra = 0;
    let mut calls = 0;
    loop {
        let r = c.cmd(&["ZSCAN", "big", &cursor, "COUNT", "20"]);
        calls += 1;
        let parts = r.array();
        cursor = parts[0].text();
        for pair in parts[1].array().chunks(2) {
            seen.insert(pair[0].text());
        }
        // Grow (forcing index resizes) and shrink elements outside the
        // stable range e0..e999.
        for _ in 0..30 {
            let m = format!("new{extra}");
            c.cmd(&["ZADD", "big", "0", &m]);
            extra += 1;
        }
        if calls % 3 == 0 {
            let lo = 1000 + calls * 10;
            c.cmd(&[
                "ZREMRANGEBYSCORE",
                "big",
                &lo.to_string(),
                &(lo + 60).to_string(),
            ]);
        }
        if cursor == "0" {
            break;
        }
        assert!(calls < 10_000);
    }
    for i in 0..1000 {
        assert!(seen.contains(&format!("e{i}")), "e{i} missed");
    }
}

#[test]
fn large_sets_rank_and_ranges() {
    let node = Server::start(&["--shards", "2"]);
    let redis = Server::start_redis();
    let mut a = node.conn();
    let mut b = redis.conn();
    let mut r = Rng(99);
    for _ in 0..20 {
        let mut args: Vec<String> = vec!["ZADD".into(), "L".into()];
        for _ in 0..250 {
            args.push((r.below(5000) as f64 / 4.0).to_string());
            args.push(format!("k{}", r.below(10000)));
        }
        assert_eq!(call(&mut a, &args), call(&mut b, &args));
    }
    let checks = [
        "ZCARD L",
        "ZRANK L k17",
        "ZREVRANK L k17",
        "ZRANGE L 100 120 WITHSCORES",
        "ZRANGE L -50 -1",
        "ZREVRANGE L 1000 1010 WITHSCORES",
        "ZRANGEBYSCORE L (100 200 LIMIT 3 7 WITHSCORES",
        "ZREVRANGEBYSCORE L 600 (500 LIMIT 2 5",
        "ZCOUNT L 10 (900",
        "ZRANGE L [k1 (k2 BYLEX LIMIT 0 10",
        "ZREMRANGEBYSCORE L 200 300",
        "ZREMRANGEBYRANK L 10 500",
        "ZCARD L",
        "ZPOPMIN L 3",
        "ZPOPMAX L 3",
        "ZRANGE L 0 -1 WITHSCORES",
    ];
    for line in checks {
        let args: Vec<String> = line.split(' ').map(String::from).collect();
        let x = call(&mut a, &args);
        let y = call(&mut b, &args);
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "{line}"
        );
    }
}

#[test]
fn memory_usage_and_type() {
    let node = Server::start(&["--shards", "2"]);
    let mut c = node.conn();
    c.cmd(&["ZADD", "k", "1", "a"]);
    assert_eq!(c.cmd(&["TYPE", "k"]).text(), "zset");
    assert!(c.cmd(&["MEMORY", "USAGE", "k"]).int() > 0);
}

/// Plain sets as inputs of ZUNION/ZINTER/ZDIFF count with score 1. Skipped
/// while the node has no set commands (they live in another module).
#[test]
fn sets_as_inputs() {
    let node = Server::start(&["--shards", "2"]);
    let mut a = node.conn();
    if a.cmd(&["SADD", "probe", "x"]).is_error() {
        return;
    }
    let redis = Server::start_redis();
    let mut b = redis.conn();
    let script = [
        "SADD s1 a b c",
        "SADD si 1 2 3",
        "ZADD z 1 a 5 b 2 3",
        "ZUNION 2 z s1 WITHSCORES",
        "ZINTER 2 z s1 WEIGHTS 2 3 WITHSCORES",
        "ZINTER 2 s1 z AGGREGATE MAX WITHSCORES",
        "ZDIFF 2 s1 z WITHSCORES",
        "ZDIFF 1 si WITHSCORES",
        "ZUNIONSTORE d 2 si z",
        "ZRANGE d 0 -1 WITHSCORES",
        "OBJECT ENCODING d",
        "ZINTERCARD 2 s1 z",
        "ZINTERSTORE d2 2 si s1",
        "EXISTS d2",
        "ZDIFFSTORE d3 2 si z",
        "ZRANGE d3 0 -1 WITHSCORES",
    ];
    for line in script {
        let args: Vec<String> = line.split(' ').map(String::from).collect();
        let x = call(&mut a, &args);
        let y = call(&mut b, &args);
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "{line}"
        );
    }
}

/// Effects reach the write stream in their deterministic form: blocking and
/// multi-key pops as ZPOPMIN/ZPOPMAX, no-ops and reads not at all. Checked
/// through the stream offset (INFO replication master_repl_offset).
#[test]
fn propagation_forms() {
    let node = Server::start(&["--shards", "2"]);
    let mut c = node.conn();
    let offset = |c: &mut Conn| common::info_int(c, "replication", "master_repl_offset");
    c.cmd(&["ZADD", "k", "1", "a", "2", "b", "3", "c"]);
    let expect = |c: &mut Conn, cmd: &[&str], propagated: &[&[u8]]| {
        let before = offset(c);
        c.cmd(cmd);
        let delta = offset(c) - before;
        let want = if propagated.is_empty() {
            0
        } else {
            common::encode(propagated).len() as i64
        };
        assert_eq!(delta, want, "{cmd:?}");
    };
    expect(
        &mut c,
        &["BZPOPMIN", "nokey", "k", "0"],
        &[b"ZPOPMIN", b"k"],
    );
    expect(&mut c, &["ZADD", "k", "XX", "5", "nope"], &[]);
    expect(&mut c, &["ZADD", "k", "2", "b"], &[]);
    expect(&mut c, &["ZRANDMEMBER", "k", "-5"], &[]);
    expect(
        &mut c,
        &["ZMPOP", "2", "nokey", "k", "MAX", "COUNT", "5"],
        &[b"ZPOPMAX", b"k", b"2"],
    );
    c.cmd(&["ZADD", "k", "1", "a", "2", "b"]);
    expect(
        &mut c,
        &["BZMPOP", "0", "1", "k", "MIN"],
        &[b"ZPOPMIN", b"k", b"1"],
    );
    expect(&mut c, &["ZPOPMAX", "k", "3"], &[b"ZPOPMAX", b"k", b"3"]);
    expect(&mut c, &["ZPOPMAX", "k", "3"], &[]);
}
