//! Differential tests of the list commands: seeded random command
//! sequences run against shardline and redis-server 7.0, raw reply bytes
//! compared, in RESP2 and RESP3. Blocking commands appear with short
//! timeouts (and inside MULTI, where they never block).

mod common;

use common::{Conn, Server};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const KEYS: &[&str] = &["l1", "l2", "{l}3", "l4", "str", "nokey"];

fn key(r: &mut StdRng) -> String {
    let w = r.gen_range(0..100);
    let k = match w {
        0..=34 => "l1",
        35..=64 => "l2",
        65..=79 => "{l}3",
        80..=89 => "l4",
        90..=95 => "str",
        _ => "nokey",
    };
    k.to_string()
}

fn val(r: &mut StdRng) -> Vec<u8> {
    match r.gen_range(0..100) {
        0..=29 => r.gen_range(-5i64..20).to_string().into_bytes(),
        30..=59 => ["a", "b", "c", "abc", "b"][r.gen_range(0..5)]
            .as_bytes()
            .to_vec(),
        60..=64 => b"".to_vec(),
        65..=69 => ["007", "-0", "+1", " 1", "1.5", "0x10"][r.gen_range(0..6)]
            .as_bytes()
            .to_vec(),
        70..=74 => [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "-9223372036854775809",
            "127",
            "128",
            "-128",
            "-129",
            "32767",
            "32768",
            "2147483648",
        ][r.gen_range(0..11)]
        .as_bytes()
        .to_vec(),
        75..=89 => {
            let n = r.gen_range(60..300);
            vec![b'a' + r.gen_range(0..3u8); n]
        }
        90..=96 => {
            let n = r.gen_range(4000..9000);
            vec![b'x' + r.gen_range(0..2u8); n]
        }
        _ => format!("v{}", r.gen_range(0..1000)).into_bytes(),
    }
}

fn int_arg(r: &mut StdRng) -> String {
    match r.gen_range(0..100) {
        0..=69 => r.gen_range(-12i64..12).to_string(),
        70..=79 => r.gen_range(-400i64..400).to_string(),
        80..=84 => "9223372036854775807".into(),
        85..=89 => "-9223372036854775808".into(),
        90..=92 => "x".into(),
        93..=94 => "1.5".into(),
        95..=96 => "9223372036854775808".into(),
        _ => "".into(),
    }
}

fn count_arg(r: &mut StdRng) -> String {
    match r.gen_range(0..100) {
        0..=59 => r.gen_range(0i64..6).to_string(),
        60..=74 => r.gen_range(6i64..500).to_string(),
        75..=79 => "-1".into(),
        80..=84 => "9223372036854775807".into(),
        85..=89 => "x".into(),
        90..=94 => "0".into(),
        _ => "-9223372036854775808".into(),
    }
}

fn side(r: &mut StdRng) -> String {
    let n = if r.gen_bool(0.95) { 4 } else { 5 };
    ["LEFT", "RIGHT", "left", "Right", "middle"][r.gen_range(0..n)].into()
}

fn timeout_arg(r: &mut StdRng, in_multi: bool) -> String {
    match r.gen_range(0..100) {
        0..=79 => "0.01".into(),
        80..=84 if in_multi => "0".into(),
        85..=87 => "-1".into(),
        88..=90 => "x".into(),
        91..=92 => "inf".into(),
        93..=94 => "-0.5".into(),
        95..=96 => "1e100".into(),
        _ => ".005".into(),
    }
}

/// One random command.
fn gen(r: &mut StdRng, in_multi: bool) -> Vec<Vec<u8>> {
    let mut a: Vec<Vec<u8>> = Vec::new();
    let s = |x: &str| x.as_bytes().to_vec();
    let which = r.gen_range(0..31);
    match which {
        0..=3 => {
            a.push(s(["LPUSH", "RPUSH"][which % 2]));
            a.push(s(&key(r)));
            let n = if r.gen_bool(0.1) {
                r.gen_range(20..120)
            } else {
                r.gen_range(1..5)
            };
            for _ in 0..n {
                a.push(val(r));
            }
        }
        4 => {
            a.push(s(["LPUSHX", "RPUSHX"][r.gen_range(0..2)]));
            a.push(s(&key(r)));
            for _ in 0..r.gen_range(1..4) {
                a.push(val(r));
            }
        }
        5 | 6 => {
            a.push(s(["LPOP", "RPOP"][r.gen_range(0..2)]));
            a.push(s(&key(r)));
            if r.gen_bool(0.5) {
                a.push(s(&count_arg(r)));
            }
            if r.gen_bool(0.03) {
                a.push(s("1"));
            }
        }
        7..=9 => {
            a.push(s("LRANGE"));
            a.push(s(&key(r)));
            a.push(s(&int_arg(r)));
            a.push(s(&int_arg(r)));
        }
        10 => {
            a.push(s("LLEN"));
            a.push(s(&key(r)));
        }
        11 | 12 => {
            a.push(s("LINDEX"));
            a.push(s(&key(r)));
            a.push(s(&int_arg(r)));
        }
        13 => {
            a.push(s("LSET"));
            a.push(s(&key(r)));
            a.push(s(&int_arg(r)));
            a.push(val(r));
        }
        14 => {
            a.push(s("LREM"));
            a.push(s(&key(r)));
            a.push(s(&int_arg(r)));
            a.push(val(r));
        }
        15 => {
            a.push(s("LTRIM"));
            a.push(s(&key(r)));
            if r.gen_bool(0.7) {
                a.push(s(&r.gen_range(0..3).to_string()));
                a.push(s(&r.gen_range(-3..-1).to_string()));
            } else {
                a.push(s(&int_arg(r)));
                a.push(s(&int_arg(r)));
            }
        }
        16 => {
            a.push(s("LINSERT"));
            a.push(s(&key(r)));
            a.push(s(["BEFORE", "AFTER", "after", "middle"][r.gen_range(0..4)]));
            a.push(val(r));
            a.push(val(r));
        }
        17 | 18 => {
            a.push(s("LPOS"));
            a.push(s(&key(r)));
            a.push(val(r));
            for _ in 0..r.gen_range(0..4) {
                match r.gen_range(0..10) {
                    0..=2 => {
                        a.push(s("RANK"));
                        a.push(s(&int_arg(r)));
                    }
                    3..=5 => {
                        a.push(s("COUNT"));
                        a.push(s(&count_arg(r)));
                    }
                    6..=8 => {
                        a.push(s("MAXLEN"));
                        a.push(s(&count_arg(r)));
                    }
                    _ => a.push(s(["rank", "FOO", "count"][r.gen_range(0..3)])),
                }
            }
        }
        19 | 20 => {
            a.push(s("LMOVE"));
            a.push(s(&key(r)));
            a.push(s(&key(r)));
            a.push(s(&side(r)));
            a.push(s(&side(r)));
        }
        21 => {
            a.push(s("RPOPLPUSH"));
            a.push(s(&key(r)));
            a.push(s(&key(r)));
        }
        22 | 23 => {
            let blocking = which == 23;
            a.push(s(if blocking { "BLMPOP" } else { "LMPOP" }));
            if blocking {
                a.push(s(&timeout_arg(r, in_multi)));
            }
            let n = r.gen_range(1..4);
            let declared = match r.gen_range(0..20) {
                0 => "0".to_string(),
                1 => (n + 1).to_string(),
                2 => "x".to_string(),
                3 => "-1".to_string(),
                _ => n.to_string(),
            };
            a.push(s(&declared));
            for _ in 0..n {
                a.push(s(&key(r)));
            }
            a.push(s(&side(r)));
            match r.gen_range(0..10) {
                0..=4 => {}
                5..=8 => {
                    a.push(s("COUNT"));
                    a.push(s(&count_arg(r)));
                }
                _ => a.push(s(["COUNT", "FOO"][r.gen_range(0..2)])),
            }
        }
        24 => {
            a.push(s(["BLPOP", "BRPOP"][r.gen_range(0..2)]));
            for _ in 0..r.gen_range(1..4) {
                a.push(s(&key(r)));
            }
            a.push(s(&timeout_arg(r, in_multi)));
        }
        25 => {
            a.push(s("BLMOVE"));
            a.push(s(&key(r)));
            a.push(s(&key(r)));
            a.push(s(&side(r)));
            a.push(s(&side(r)));
            a.push(s(&timeout_arg(r, in_multi)));
        }
        26 => {
            a.push(s("BRPOPLPUSH"));
            a.push(s(&key(r)));
            a.push(s(&key(r)));
            a.push(s(&timeout_arg(r, in_multi)));
        }
        27 => {
            a.push(s(["TYPE", "OBJECT", "EXISTS"][r.gen_range(0..3)]));
            if a[0] == b"OBJECT" {
                a.push(s("ENCODING"));
            }
            a.push(s(&key(r)));
        }
        28 => {
            if r.gen_bool(0.5) {
                a.push(s("SET"));
                a.push(s("str"));
                a.push(s("value"));
            } else {
                a.push(s("DEL"));
                a.push(s(&key(r)));
            }
        }
        29 => {
            // Wrong arity.
            let c = [
                "LPUSH", "LRANGE", "LINDEX", "LSET", "LPOS", "BLPOP", "LMPOP", "LINSERT",
            ];
            a.push(s(c[r.gen_range(0..c.len())]));
            a.push(s(&key(r)));
        }
        _ => {
            a.push(s("LRANGE"));
            a.push(s(&key(r)));
            a.push(s("0"));
            a.push(s("-1"));
        }
    }
    a
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            if a.len() > 40 {
                format!("<{} bytes>", a.len())
            } else {
                String::from_utf8_lossy(a).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn call(c: &mut Conn, args: &[Vec<u8>]) -> Vec<u8> {
    let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    c.call_raw(&refs)
}

fn run_seed(sl: &Server, rd: &Server, seed: u64, resp3: bool, fill: &str) {
    let mut a = sl.conn();
    let mut b = rd.conn();
    for c in [&mut a, &mut b] {
        c.cmd(&["FLUSHALL"]);
        c.cmd(&["CONFIG", "SET", "list-max-listpack-size", fill]);
        if resp3 {
            c.cmd(&["HELLO", "3"]);
        }
    }
    let mut r = StdRng::seed_from_u64(seed);
    let mut history: Vec<String> = Vec::new();
    let mut i = 0;
    while i < 2000 {
        let mut batch = Vec::new();
        if r.gen_bool(0.03) {
            batch.push(vec![b"MULTI".to_vec()]);
            for _ in 0..r.gen_range(1..5) {
                batch.push(gen(&mut r, true));
            }
            batch.push(vec![b"EXEC".to_vec()]);
        } else {
            batch.push(gen(&mut r, false));
        }
        for cmd in batch {
            i += 1;
            history.push(show(&cmd));
            let x = call(&mut a, &cmd);
            let y = call(&mut b, &cmd);
            if x != y {
                let from = history.len().saturating_sub(15);
                panic!(
                    "seed {seed} resp3 {resp3} fill {fill} command #{i}: {}\nshardline: {:?}\nredis:     {:?}\nrecent:\n{}",
                    show(&cmd),
                    String::from_utf8_lossy(&x),
                    String::from_utf8_lossy(&y),
                    history[from..].join("\n")
                );
            }
        }
    }
    // Final state, key by key.
    for k in KEYS {
        let cmd = vec![
            b"LRANGE".to_vec(),
            k.as_bytes().to_vec(),
            b"0".to_vec(),
            b"-1".to_vec(),
        ];
        assert_eq!(call(&mut a, &cmd), call(&mut b, &cmd), "final {k}");
    }
}

#[test]
fn differential_random() {
    let sl = Server::start(&["--shards", "4"]);
    let rd = Server::start_redis();
    for (seed, resp3, fill) in [
        (1, false, "-2"),
        (2, true, "-2"),
        (3, false, "-1"),
        (4, true, "4"),
        (5, false, "1"),
        (6, false, "-5"),
    ] {
        run_seed(&sl, &rd, seed, resp3, fill);
    }
}

#[test]
fn differential_edge_cases() {
    let sl = Server::start(&["--shards", "4"]);
    let rd = Server::start_redis();
    let mut a = sl.conn();
    let mut b = rd.conn();
    let script: &[&[&str]] = &[
        &["RPUSH", "l", "a", "b", "c", "1", "2", "3", "a"],
        &["SET", "s", "x"],
        &["LPOP", "l", "0"],
        &["LPOP", "nokey", "0"],
        &["LPOP", "s", "0"],
        &["LPOP", "nokey", "-1"],
        &["LPOP", "s", "-1"],
        &["LPOP", "l", "1", "2"],
        &["LINDEX", "nokey", "x"],
        &["LINDEX", "s", "x"],
        &["LINDEX", "l", "x"],
        &["LSET", "nokey", "x", "v"],
        &["LSET", "l", "x", "v"],
        &["LSET", "s", "x", "v"],
        &["LREM", "nokey", "x", "v"],
        &["LTRIM", "nokey", "x", "0"],
        &["LRANGE", "s", "x", "0"],
        &["LRANGE", "s", "0", "1"],
        &["LINSERT", "s", "middle", "a", "b"],
        &["LINSERT", "s", "before", "a", "b"],
        &["LPOS", "s", "a", "RANK", "0"],
        &["LPOS", "nokey", "a", "COUNT", "0"],
        &["LPOS", "l", "a", "RANK", "-9223372036854775808"],
        &[
            "LPOS",
            "l",
            "a",
            "RANK",
            "-9223372036854775808",
            "COUNT",
            "1",
        ],
        &[
            "LPOS",
            "l",
            "a",
            "RANK",
            "9223372036854775807",
            "COUNT",
            "0",
        ],
        &["LPOS", "l", "a", "COUNT", "0", "MAXLEN", "1"],
        &["LPOS", "l", "a", "RANK", "-1", "COUNT", "5"],
        &["LMOVE", "nokey", "s", "LEFT", "LEFT"],
        &["LMOVE", "l", "s", "LEFT", "LEFT"],
        &["LMOVE", "s", "l", "LEFT", "LEFT"],
        &["LMOVE", "l", "l", "LEFT", "RIGHT"],
        &["LMOVE", "l", "l", "RIGHT", "RIGHT"],
        &["LRANGE", "l", "0", "-1"],
        &["RPUSH", "one", "x"],
        &["LMOVE", "one", "one", "LEFT", "RIGHT"],
        &["LRANGE", "one", "0", "-1"],
        &["LMPOP", "9223372036854775807", "l", "LEFT"],
        &["LMPOP", "2", "nokey", "s", "LEFT"],
        &["LMPOP", "2", "l", "s", "LEFT"],
        &["LMPOP", "1", "l", "LEFT", "COUNT", "9223372036854775807"],
        &["BLMPOP", "x", "0", "l", "LEFT"],
        &["BLMPOP", "0.01", "0", "l", "LEFT"],
        &["BLPOP", "nokey", "s", "0"],
        &["BLPOP", "nokey", "inf"],
        &["BLPOP", "nokey", "-0.5"],
        &["BLPOP", "nokey", "0.0001"],
        &["BLPOP", "nokey", "9223372036854776"],
        &["BLMOVE", "nokey", "s", "LEFT", "LEFT", "0.01"],
        &["BLMOVE", "s", "x", "LEFT", "LEFT", "0.01"],
        &["BLMOVE", "nokey", "x", "UP", "LEFT", "x"],
        &["BLMOVE", "nokey", "x", "LEFT", "LEFT", "x"],
        &["BRPOPLPUSH", "nokey", "x", "0.01"],
        &["MULTI"],
        &["BLPOP", "nokey", "0"],
        &["BLMOVE", "nokey", "x", "LEFT", "LEFT", "0"],
        &["BLMPOP", "0", "1", "nokey", "LEFT"],
        &["BRPOPLPUSH", "nokey", "x", "0"],
        &["RPUSH", "nokey", "v"],
        &["BLPOP", "nokey", "0"],
        &["EXEC"],
        &["HELLO", "3"],
        &["LPOP", "nokey"],
        &["LPOP", "nokey", "1"],
        &["LPOS", "nokey", "a"],
        &["LPOS", "l", "zz"],
        &["LMPOP", "1", "nokey", "LEFT"],
        &["BLPOP", "nokey", "0.01"],
        &["BLMOVE", "nokey", "x", "LEFT", "LEFT", "0.01"],
        &["MULTI"],
        &["BLPOP", "nokey", "0"],
        &["BRPOPLPUSH", "nokey", "x", "0"],
        &["EXEC"],
        &["LRANGE", "nokey", "0", "-1"],
        &["OBJECT", "ENCODING", "l"],
        &["TYPE", "l"],
    ];
    for (i, cmd) in script.iter().enumerate() {
        let x = a.cmd(cmd);
        let y = b.cmd(cmd);
        if cmd[0] == "HELLO" {
            continue;
        }
        assert_eq!(x, y, "step {i}: {cmd:?}");
    }
    // Raw bytes for the reply shapes.
    let mut a = sl.conn();
    let mut b = rd.conn();
    for proto in ["2", "3"] {
        a.cmd(&["HELLO", proto]);
        b.cmd(&["HELLO", proto]);
        for cmd in script.iter().filter(|c| c[0] != "HELLO") {
            let args: Vec<&[u8]> = cmd.iter().map(|s| s.as_bytes()).collect();
            let x = a.call_raw(&args);
            let y = b.call_raw(&args);
            assert_eq!(
                String::from_utf8_lossy(&x),
                String::from_utf8_lossy(&y),
                "proto {proto}: {cmd:?}"
            );
        }
    }
}

/// Long lists spanning many nodes: indexes from both ends, trims, inserts
/// and removals in the middle, compared with redis.
#[test]
fn differential_big_lists() {
    let sl = Server::start(&["--shards", "2"]);
    let rd = Server::start_redis();
    let mut a = sl.conn();
    let mut b = rd.conn();
    let mut r = StdRng::seed_from_u64(99);
    let mut both = |args: Vec<String>| {
        let refs: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let x = a.call_raw(&refs);
        let y = b.call_raw(&refs);
        assert_eq!(
            String::from_utf8_lossy(&x),
            String::from_utf8_lossy(&y),
            "{:?}",
            &args[..args.len().min(6)]
        );
    };
    for chunk in 0..20 {
        let mut cmd = vec![
            if chunk % 2 == 0 { "RPUSH" } else { "LPUSH" }.to_string(),
            "big".into(),
        ];
        for j in 0..500 {
            cmd.push(if j % 3 == 0 {
                (chunk * 1000 + j).to_string()
            } else {
                format!("elem-{chunk}-{j}-{}", "p".repeat(j % 40))
            });
        }
        both(cmd);
    }
    for _ in 0..600 {
        let i: i64 = r.gen_range(-11000..11000);
        let j: i64 = r.gen_range(-11000..11000);
        let cmd: Vec<String> = match r.gen_range(0..9) {
            0 => vec!["LINDEX".into(), "big".into(), i.to_string()],
            1 => vec![
                "LRANGE".into(),
                "big".into(),
                i.to_string(),
                (i + r.gen_range(0..700)).to_string(),
            ],
            2 => vec![
                "LSET".into(),
                "big".into(),
                i.to_string(),
                format!("set{j}"),
            ],
            3 => vec![
                "LINSERT".into(),
                "big".into(),
                "BEFORE".into(),
                format!("elem-{}-{}-{}", j.rem_euclid(20), 1, "p"),
                "ins".into(),
            ],
            4 => vec![
                "LREM".into(),
                "big".into(),
                r.gen_range(-3..4).to_string(),
                ["ins", "set1", "7003"][r.gen_range(0..3)].into(),
            ],
            5 => vec![
                "LPOS".into(),
                "big".into(),
                "ins".into(),
                "RANK".into(),
                ["1", "-1", "3", "-2"][r.gen_range(0..4)].into(),
                "COUNT".into(),
                r.gen_range(0..5).to_string(),
            ],
            6 => vec!["LPOP".into(), "big".into(), r.gen_range(0..30).to_string()],
            7 => vec!["RPOP".into(), "big".into(), r.gen_range(0..30).to_string()],
            _ => vec!["LLEN".into(), "big".into()],
        };
        both(cmd);
    }
    both(vec![
        "LTRIM".into(),
        "big".into(),
        "100".into(),
        "-100".into(),
    ]);
    both(vec!["LRANGE".into(), "big".into(), "0".into(), "-1".into()]);
    both(vec!["LTRIM".into(), "big".into(), "5".into(), "2".into()]);
    both(vec!["EXISTS".into(), "big".into()]);
}
