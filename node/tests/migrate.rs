//! DUMP, RESTORE, RESTORE-ASKING and MIGRATE against redis-server 7.0:
//! payloads made by one server are restored by the other (every type and
//! encoding), RESTORE's and MIGRATE's errors are compared with redis's
//! replies to the same commands, and MIGRATE moves keys both ways (KEYS,
//! COPY, REPLACE, AUTH, AUTH2, destination db, cached connections, retry
//! after a dropped connection, timeouts, atomicity, replication).

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{free_port, wait_until, Conn, Reply, Server};

/// A key's content as the server reports it: type, OBJECT ENCODING,
/// canonical content (sorted where unordered) and PTTL.
#[derive(Debug, Clone, PartialEq)]
struct Snap {
    ty: String,
    encoding: String,
    content: Vec<Vec<u8>>,
    pttl: i64,
}

fn bulks(r: &Reply) -> Vec<Vec<u8>> {
    r.array()
        .iter()
        .map(|x| match x {
            Reply::Bulk(b) => b.clone(),
            other => panic!("not a bulk: {other:?}"),
        })
        .collect()
}

fn snap(c: &mut Conn, key: &str) -> Option<Snap> {
    let ty = c.cmd(&["TYPE", key]).text();
    let content = match ty.as_str() {
        "none" => return None,
        "string" => match c.cmd(&["GET", key]) {
            Reply::Bulk(b) => vec![b],
            other => panic!("GET {key}: {other:?}"),
        },
        "list" => bulks(&c.cmd(&["LRANGE", key, "0", "-1"])),
        "hash" => {
            let v = bulks(&c.cmd(&["HGETALL", key]));
            let mut pairs: Vec<Vec<u8>> = v
                .chunks(2)
                .map(|p| [p[0].as_slice(), b"=", p[1].as_slice()].concat())
                .collect();
            pairs.sort();
            pairs
        }
        "set" => {
            let mut v = bulks(&c.cmd(&["SMEMBERS", key]));
            v.sort();
            v
        }
        "zset" => bulks(&c.cmd(&["ZRANGE", key, "0", "-1", "WITHSCORES"])),
        other => panic!("unexpected type {other}"),
    };
    let encoding = c.cmd(&["OBJECT", "ENCODING", key]).text();
    let pttl = c.cmd(&["PTTL", key]).int();
    Some(Snap {
        ty,
        encoding,
        content,
        pttl,
    })
}

/// Keys of every type in each encoding redis 7.0 uses, some with a TTL.
fn populate(c: &mut Conn) -> Vec<String> {
    let mut keys = Vec::new();
    let mut run = |c: &mut Conn, key: &str, args: Vec<Vec<u8>>| {
        let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
        let r = c.call(&a);
        assert!(!r.is_error(), "{key}: {r:?}");
        if !keys.contains(&key.to_string()) {
            keys.push(key.to_string());
        }
    };
    let s = |x: &str| x.as_bytes().to_vec();
    let raw = "r".repeat(100);
    run(c, "s:raw", vec![s("SET"), s("s:raw"), s(&raw)]);
    run(c, "s:int", vec![s("SET"), s("s:int"), s("123456")]);
    run(
        c,
        "s:bigint",
        vec![s("SET"), s("s:bigint"), s("-9223372036854775808")],
    );
    run(
        c,
        "s:embstr",
        vec![s("SET"), s("s:embstr"), s("hello world")],
    );
    let binary: Vec<u8> = (0..=255u8).collect();
    run(c, "s:bin", vec![s("SET"), s("s:bin"), binary]);
    run(c, "s:empty", vec![s("SET"), s("s:empty"), Vec::new()]);
    let compressible = "abc".repeat(400);
    run(c, "s:long", vec![s("SET"), s("s:long"), s(&compressible)]);
    run(
        c,
        "s:ttl",
        vec![s("SET"), s("s:ttl"), s("v"), s("PX"), s("500000")],
    );

    run(
        c,
        "l:small",
        vec![s("RPUSH"), s("l:small"), s("a"), s("1"), s("-7"), s("zz")],
    );
    let mut big = vec![s("RPUSH"), s("l:large")];
    for i in 0..400 {
        big.push(if i % 7 == 0 {
            format!("{i}-{}", "x".repeat(90)).into_bytes()
        } else {
            i.to_string().into_bytes()
        });
    }
    run(c, "l:large", big);
    run(c, "l:large", vec![s("PEXPIRE"), s("l:large"), s("900000")]);

    run(
        c,
        "h:small",
        vec![s("HSET"), s("h:small"), s("f1"), s("v1"), s("n"), s("42")],
    );
    let mut hbig = vec![s("HSET"), s("h:large")];
    for i in 0..600 {
        hbig.push(format!("field{i}").into_bytes());
        hbig.push(format!("value{}", i * 3).into_bytes());
    }
    run(c, "h:large", hbig);
    run(
        c,
        "h:longval",
        vec![s("HSET"), s("h:longval"), s("f"), s(&"v".repeat(100))],
    );

    let mut iset = vec![s("SADD"), s("set:int")];
    for i in [-5, 0, 3, 70000, 9_000_000_000i64] {
        iset.push(i.to_string().into_bytes());
    }
    run(c, "set:int", iset);
    run(
        c,
        "set:small",
        vec![s("SADD"), s("set:small"), s("a"), s("b"), s("12")],
    );
    let mut sbig = vec![s("SADD"), s("set:large")];
    for i in 0..600 {
        sbig.push(format!("m{i}").into_bytes());
    }
    run(c, "set:large", sbig);
    let mut ibig = vec![s("SADD"), s("set:manyints")];
    for i in 0..600 {
        ibig.push((i * 11).to_string().into_bytes());
    }
    run(c, "set:manyints", ibig);
    run(
        c,
        "set:small",
        vec![s("PEXPIRE"), s("set:small"), s("700000")],
    );

    run(
        c,
        "z:small",
        vec![
            s("ZADD"),
            s("z:small"),
            s("1.5"),
            s("a"),
            s("-inf"),
            s("b"),
            s("inf"),
            s("c"),
            s("3"),
            s("d"),
        ],
    );
    let mut zbig = vec![s("ZADD"), s("z:large")];
    for i in 0..300 {
        zbig.push(format!("{}", f64::from(i) / 7.0).into_bytes());
        zbig.push(format!("member{i}").into_bytes());
    }
    run(c, "z:large", zbig);
    run(
        c,
        "z:longval",
        vec![s("ZADD"), s("z:longval"), s("2"), s(&"m".repeat(80))],
    );
    run(c, "z:large", vec![s("PEXPIRE"), s("z:large"), s("800000")]);
    keys
}

fn assert_same(key: &str, a: &Snap, b: &Snap) {
    assert_eq!(a.ty, b.ty, "{key}: type");
    assert_eq!(a.content, b.content, "{key}: content");
    assert_eq!(a.encoding, b.encoding, "{key}: encoding");
    if a.pttl < 0 || b.pttl < 0 {
        assert_eq!(a.pttl, b.pttl, "{key}: pttl");
    } else {
        assert!((a.pttl - b.pttl).abs() < 5000, "{key}: pttl {a:?} vs {b:?}");
    }
}

/// DUMP every key on `from`, RESTORE it on `to` (with the remaining TTL),
/// and compare both sides.
fn round_trip(from: &mut Conn, to: &mut Conn) {
    let keys = populate(from);
    assert_eq!(keys.len(), 20);
    for k in &keys {
        let payload = match from.cmd(&["DUMP", k]) {
            Reply::Bulk(b) => b,
            other => panic!("DUMP {k}: {other:?}"),
        };
        let pttl = from.cmd(&["PTTL", k]).int().max(0).to_string();
        let r = to.call(&[b"RESTORE", k.as_bytes(), pttl.as_bytes(), &payload]);
        assert_eq!(r, Reply::ok(), "RESTORE {k}");
        let a = snap(from, k).unwrap();
        let b = snap(to, k).unwrap();
        assert_same(k, &a, &b);
        // And the other way back: the restored value dumps to a payload
        // the first server restores identically.
        let again = match to.cmd(&["DUMP", k]) {
            Reply::Bulk(b) => b,
            other => panic!("DUMP {k} again: {other:?}"),
        };
        let copy = format!("{k}:back");
        let r = from.call(&[b"RESTORE", copy.as_bytes(), b"0", &again]);
        assert_eq!(r, Reply::ok(), "RESTORE {copy}");
        let c = snap(from, &copy).unwrap();
        assert_eq!(c.content, a.content, "{copy}");
        assert_eq!(c.encoding, a.encoding, "{copy}");
        assert_eq!(c.pttl, -1, "{copy}");
    }
    // Expected encodings of a few, so the data really covers them.
    let enc = |c: &mut Conn, k: &str| c.cmd(&["OBJECT", "ENCODING", k]).text();
    for (k, e) in [
        ("s:raw", "raw"),
        ("s:int", "int"),
        ("s:embstr", "embstr"),
        ("l:small", "quicklist"),
        ("set:small", "hashtable"),
        ("l:large", "quicklist"),
        ("h:small", "listpack"),
        ("h:large", "hashtable"),
        ("set:int", "intset"),
        ("set:large", "hashtable"),
        ("z:small", "listpack"),
        ("z:large", "skiplist"),
    ] {
        assert_eq!(enc(to, k), e, "{k}");
    }
}

#[test]
fn dump_restore_node_to_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    round_trip(&mut node.conn(), &mut redis.conn());
}

#[test]
fn dump_restore_redis_to_node() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    round_trip(&mut redis.conn(), &mut node.conn());
}

/// A DUMP payload of `body` (type byte and object) with a valid footer.
fn payload_of(body: &[u8], version: u16) -> Vec<u8> {
    let mut p = body.to_vec();
    p.extend_from_slice(&version.to_le_bytes());
    let crc = shardline_node::rdb::crc64(&p);
    p.extend_from_slice(&crc.to_le_bytes());
    p
}

/// Runs `cases` on both servers (each case after a FLUSHALL) and expects
/// identical replies, except where a reply is time-dependent (`approx`).
fn same_replies(node: &Server, redis: &Server, cases: &[Vec<Vec<Vec<u8>>>]) {
    let (mut a, mut b) = (node.conn(), redis.conn());
    for case in cases {
        assert_eq!(a.cmd(&["FLUSHALL"]), Reply::ok());
        assert_eq!(b.cmd(&["FLUSHALL"]), Reply::ok());
        for cmd in case {
            let args: Vec<&[u8]> = cmd.iter().map(|x| x.as_slice()).collect();
            let (ra, rb) = (a.call(&args), b.call(&args));
            let shown: Vec<String> = cmd
                .iter()
                .map(|x| String::from_utf8_lossy(x).chars().take(40).collect())
                .collect();
            match (&ra, &rb) {
                // PTTL / OBJECT IDLETIME: the same within a second.
                (Reply::Int(x), Reply::Int(y)) if (x - y).abs() <= 1000 && *x > 1 => {}
                _ => assert_eq!(ra, rb, "{shown:?}"),
            }
        }
    }
}

fn args(parts: &[&[u8]]) -> Vec<Vec<u8>> {
    parts.iter().map(|p| p.to_vec()).collect()
}

#[test]
fn restore_errors_match_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    // A payload made by redis itself.
    let mut rc = redis.conn();
    rc.cmd(&["RPUSH", "src", "a", "b", "c"]);
    let good = match rc.cmd(&["DUMP", "src"]) {
        Reply::Bulk(b) => b,
        other => panic!("{other:?}"),
    };
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut bad_body = good.clone();
    bad_body[3] ^= 0x55;
    let truncated = good[..good.len() - 1].to_vec();
    let tiny = good[good.len() - 9..].to_vec();
    // A string of declared length 5 holding 2 bytes, with a valid footer.
    // (Redis reads an object past its body into the footer: the declared
    // length must exceed both.)
    let short_str = payload_of(b"\x00\x30ab", 10);
    let unknown_type = payload_of(b"\x63\x01a", 10);
    let newer = payload_of(b"\x00\x01a", 11);
    let older = payload_of(b"\x00\x03abc", 9);
    let empty_list = payload_of(b"\x12\x00", 10);
    let g = good.as_slice();
    let k = b"k".as_slice();
    let far = (common_now_ms() + 600_000).to_string();
    let cases: Vec<Vec<Vec<Vec<u8>>>> = vec![
        vec![
            args(&[b"RESTORE", k, b"0", g]),
            args(&[b"LRANGE", k, b"0", b"-1"]),
            args(&[b"RESTORE", k, b"0", g]),
            args(&[b"RESTORE", k, b"0", g, b"REPLACE"]),
            args(&[b"RESTORE", k, b"-1", g]),
            args(&[b"RESTORE", k, b"abc", b"junk"]),
            args(&[b"RESTORE", k, b"0", b"junk", b"BOGUS"]),
            args(&[b"PTTL", k]),
        ],
        vec![
            args(&[b"RESTORE", k, b"0", &bad_crc]),
            args(&[b"RESTORE", k, b"0", &bad_body]),
            args(&[b"RESTORE", k, b"0", &truncated]),
            args(&[b"RESTORE", k, b"0", &tiny]),
            args(&[b"RESTORE", k, b"0", b""]),
            args(&[b"RESTORE", k, b"0", &newer]),
            args(&[b"RESTORE", k, b"0", &short_str]),
            args(&[b"RESTORE", k, b"0", &unknown_type]),
            args(&[b"RESTORE", k, b"0", &empty_list]),
            args(&[b"RESTORE", k, b"0", &older]),
            args(&[b"GET", k]),
            args(&[b"EXISTS", k]),
        ],
        vec![
            // Order of checks: TTL before the payload, BUSYKEY before TTL.
            args(&[b"RESTORE", k, b"-5", &bad_crc]),
            args(&[b"RESTORE", k, b"x", &bad_crc]),
            args(&[b"SET", k, b"v"]),
            args(&[b"RESTORE", k, b"-5", &bad_crc]),
            args(&[b"RESTORE", k, b"0", &bad_crc, b"REPLACE"]),
            args(&[b"GET", k]),
        ],
        vec![
            // TTLs: relative, absolute in the future, absolute in the past.
            args(&[b"RESTORE", k, b"100000", g]),
            args(&[b"PTTL", k]),
            args(&[b"RESTORE", b"abs", far.as_bytes(), g, b"ABSTTL"]),
            args(&[b"PEXPIRETIME", b"abs"]),
            args(&[b"RESTORE", b"past", b"1", g, b"ABSTTL"]),
            args(&[b"EXISTS", b"past"]),
            args(&[b"RESTORE", k, b"1", g, b"ABSTTL"]),
            args(&[b"RESTORE", k, b"1", g, b"ABSTTL", b"REPLACE"]),
            args(&[b"EXISTS", k]),
            args(&[b"RESTORE", b"zero", b"0", g, b"ABSTTL"]),
            args(&[b"PTTL", b"zero"]),
        ],
        vec![
            args(&[b"RESTORE", k, b"0", g, b"IDLETIME", b"-1"]),
            args(&[b"RESTORE", k, b"0", g, b"IDLETIME", b"abc"]),
            args(&[b"RESTORE", k, b"0", g, b"IDLETIME"]),
            args(&[b"RESTORE", k, b"0", g, b"FREQ", b"256"]),
            args(&[b"RESTORE", k, b"0", g, b"FREQ", b"-1"]),
            args(&[b"RESTORE", k, b"0", g, b"FREQ"]),
            args(&[b"RESTORE", k, b"0", g, b"IDLETIME", b"10", b"FREQ", b"5"]),
            args(&[b"RESTORE", k, b"0", g, b"FREQ", b"5", b"IDLETIME", b"10"]),
            args(&[b"RESTORE", k, b"0", b"junk", b"IDLETIME", b"-1"]),
            args(&[b"EXISTS", k]),
            args(&[b"RESTORE", k, b"0", g, b"IDLETIME", b"1000"]),
            args(&[b"OBJECT", b"IDLETIME", k]),
            args(&[b"RESTORE", b"f", b"0", g, b"FREQ", b"200"]),
            args(&[b"EXISTS", b"f"]),
            args(&[
                b"RESTORE",
                b"r",
                b"0",
                g,
                b"replace",
                b"absttl",
                b"idletime",
                b"5",
            ]),
            args(&[b"LLEN", b"r"]),
        ],
        vec![
            args(&[b"RESTORE", k, b"0"]),
            args(&[b"RESTORE-ASKING", k, b"0"]),
            args(&[b"RESTORE-ASKING", k, b"0", g]),
            args(&[b"LRANGE", k, b"0", b"-1"]),
            args(&[b"RESTORE-ASKING", k, b"0", g]),
            args(&[b"DUMP"]),
            args(&[b"DUMP", k, b"x"]),
            args(&[b"DUMP", b"missing"]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"k", b"0"]),
        ],
        vec![
            // MIGRATE's own errors, found before any connection is made.
            args(&[
                b"MIGRATE",
                b"127.0.0.1",
                b"1",
                b"k",
                b"0",
                b"1000",
                b"BOGUS",
            ]),
            args(&[
                b"MIGRATE",
                b"127.0.0.1",
                b"1",
                b"k",
                b"0",
                b"1000",
                b"KEYS",
                b"a",
            ]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"", b"0", b"1000", b"KEYS"]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"k", b"0", b"abc"]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"k", b"x", b"1000"]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"k", b"0", b"1000", b"AUTH"]),
            args(&[
                b"MIGRATE",
                b"127.0.0.1",
                b"1",
                b"k",
                b"0",
                b"1000",
                b"AUTH2",
                b"u",
            ]),
            args(&[b"MIGRATE", b"127.0.0.1", b"1", b"k", b"0", b"1000"]),
            args(&[
                b"MIGRATE",
                b"127.0.0.1",
                b"1",
                b"",
                b"0",
                b"1000",
                b"KEYS",
                b"a",
                b"b",
            ]),
            args(&[
                b"MIGRATE",
                b"127.0.0.1",
                b"1",
                b"k",
                b"0",
                b"1000",
                b"COPY",
                b"REPLACE",
            ]),
        ],
    ];
    same_replies(&node, &redis, &cases);

    // The exact texts, so the comparison above cannot pass vacuously.
    let mut c = node.conn();
    c.cmd(&["FLUSHALL"]);
    let e = |r: Reply| match r {
        Reply::Error(e) => e,
        other => panic!("expected an error, got {other:?}"),
    };
    assert_eq!(
        e(c.call(&[b"RESTORE", b"x", b"0", &bad_crc])),
        "ERR DUMP payload version or checksum are wrong"
    );
    assert_eq!(
        e(c.call(&[b"RESTORE", b"x", b"0", &short_str])),
        "ERR Bad data format"
    );
    assert_eq!(c.call(&[b"RESTORE", b"x", b"0", g]), Reply::ok());
    assert_eq!(
        e(c.call(&[b"RESTORE", b"x", b"0", g])),
        "BUSYKEY Target key name already exists."
    );
    assert_eq!(
        e(c.call(&[b"RESTORE", b"y", b"-1", g])),
        "ERR Invalid TTL value, must be >= 0"
    );
    assert_eq!(
        e(c.call(&[b"RESTORE", b"y", b"0", g, b"IDLETIME", b"-2"])),
        "ERR Invalid IDLETIME value, must be >= 0"
    );
    assert_eq!(
        e(c.call(&[b"RESTORE", b"y", b"0", g, b"FREQ", b"300"])),
        "ERR Invalid FREQ value, must be >= 0 and <= 255"
    );
}

fn common_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// RESTORE's FREQ under an LFU policy, on both servers.
#[test]
fn restore_freq_under_lfu_matches_redis() {
    let node = Server::start(&["--maxmemory-policy", "allkeys-lfu"]);
    let redis = Server::start_redis_with(&["--maxmemory-policy", "allkeys-lfu"]);
    let g = payload_of(b"\x00\x03abc", 10);
    let cases = vec![vec![
        args(&[b"RESTORE", b"k", b"0", &g, b"FREQ", b"200"]),
        args(&[b"OBJECT", b"FREQ", b"k"]),
        args(&[b"RESTORE", b"j", b"0", &g, b"IDLETIME", b"50"]),
        args(&[b"OBJECT", b"FREQ", b"j"]),
        args(&[b"GET", b"j"]),
    ]];
    same_replies(&node, &redis, &cases);
    assert_eq!(node.conn().cmd(&["OBJECT", "FREQ", "k"]), Reply::Int(200));
}

/// A replica of our node receives RESTORE with an absolute TTL, and the
/// DELs of a MIGRATE.
#[test]
fn restore_and_migrate_are_replicated() {
    let master = Server::start(&[]);
    let port = master.port.to_string();
    let replica = Server::start(&["--replicaof", "127.0.0.1", &port]);
    let redis = Server::start_redis();
    let mut m = master.conn();
    let mut r = replica.conn();
    let payload = payload_of(b"\x00\x03abc", 10);
    assert_eq!(
        m.call(&[b"RESTORE", b"k", b"100000", &payload]),
        Reply::ok()
    );
    assert_eq!(m.call(&[b"RESTORE", b"p", b"0", &payload]), Reply::ok());
    m.cmd(&["SET", "gone", "x"]);
    assert_eq!(
        m.call(&[b"RESTORE", b"gone", b"1", &payload, b"ABSTTL", b"REPLACE"]),
        Reply::ok()
    );
    m.cmd(&["SET", "sync-mark", "1"]);
    assert!(
        wait_until(Duration::from_secs(15), || r.cmd(&["GET", "sync-mark"])
            == Reply::bulk("1")),
        "replica did not catch up"
    );
    let exp_m = m.cmd(&["PEXPIRETIME", "k"]).int();
    let exp_r = r.cmd(&["PEXPIRETIME", "k"]).int();
    assert!(exp_m > 0);
    assert_eq!(exp_m, exp_r, "the replica got the absolute expiry");
    assert_eq!(r.cmd(&["GET", "p"]), Reply::bulk("abc"));
    assert_eq!(r.cmd(&["PTTL", "p"]), Reply::Int(-1));
    assert_eq!(r.cmd(&["EXISTS", "gone"]), Reply::Int(0));

    let rp = redis.port.to_string();
    assert_eq!(
        m.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &rp,
            "",
            "0",
            "5000",
            "KEYS",
            "k",
            "p"
        ]),
        Reply::ok()
    );
    m.cmd(&["SET", "sync-mark", "2"]);
    assert!(wait_until(Duration::from_secs(15), || r
        .cmd(&["GET", "sync-mark"])
        == Reply::bulk("2")));
    assert_eq!(r.cmd(&["EXISTS", "k", "p"]), Reply::Int(0));
    assert_eq!(redis.conn().cmd(&["EXISTS", "k", "p"]), Reply::Int(2));
}

/// Moves keys from `src` to `dst` (ports), checking both sides. Used in
/// both directions.
fn migrate_between(src: &Server, dst: &Server) {
    let mut s = src.conn();
    let mut d = dst.conn();
    let dp = dst.port.to_string();
    let keys = populate(&mut s);
    let before: Vec<(String, Snap)> = keys
        .iter()
        .map(|k| (k.clone(), snap(&mut s, k).unwrap()))
        .collect();

    // Single key.
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "s:raw", "0", "5000"]),
        Reply::ok()
    );
    assert_eq!(s.cmd(&["EXISTS", "s:raw"]), Reply::Int(0));
    assert_same("s:raw", &before[0].1, &snap(&mut d, "s:raw").unwrap());

    // Missing keys only.
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "nokey", "0", "5000"]),
        Reply::Status("NOKEY".into())
    );
    assert_eq!(
        s.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &dp,
            "",
            "0",
            "5000",
            "KEYS",
            "n1",
            "n2"
        ]),
        Reply::Status("NOKEY".into())
    );

    // KEYS form, with missing keys among them.
    let mut cmd: Vec<&str> = vec!["MIGRATE", "127.0.0.1", &dp, "", "0", "5000", "KEYS"];
    let rest: Vec<&str> = keys[1..].iter().map(String::as_str).collect();
    cmd.extend(rest.iter().copied());
    cmd.push("missing");
    assert_eq!(s.cmd(&cmd), Reply::ok());
    for (k, b) in &before {
        assert_eq!(
            s.cmd(&["EXISTS", k]),
            Reply::Int(0),
            "{k} left on the source"
        );
        let got = snap(&mut d, k).unwrap_or_else(|| panic!("{k} not on the target"));
        assert_same(k, b, &got);
    }
    assert_eq!(d.cmd(&["EXISTS", "missing"]), Reply::Int(0));

    // COPY keeps the source; without REPLACE the target's key is kept.
    s.cmd(&["SET", "c", "source"]);
    s.cmd(&["SET", "c2", "source2"]);
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000", "COPY"]),
        Reply::ok()
    );
    assert_eq!(s.cmd(&["GET", "c"]), Reply::bulk("source"));
    assert_eq!(d.cmd(&["GET", "c"]), Reply::bulk("source"));
    s.cmd(&["SET", "c", "newer"]);
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000"]),
        Reply::Error(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        )
    );
    assert_eq!(s.cmd(&["GET", "c"]), Reply::bulk("newer"));
    assert_eq!(d.cmd(&["GET", "c"]), Reply::bulk("source"));
    // One key refused, the other moved: only the moved one is deleted.
    assert_eq!(
        s.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &dp,
            "",
            "0",
            "5000",
            "KEYS",
            "c",
            "c2"
        ]),
        Reply::Error(
            "ERR Target instance replied with error: BUSYKEY Target key name already exists."
                .into()
        )
    );
    assert_eq!(s.cmd(&["GET", "c"]), Reply::bulk("newer"));
    assert_eq!(s.cmd(&["EXISTS", "c2"]), Reply::Int(0));
    assert_eq!(d.cmd(&["GET", "c2"]), Reply::bulk("source2"));
    assert_eq!(
        s.cmd(&[
            "MIGRATE",
            "127.0.0.1",
            &dp,
            "c",
            "0",
            "5000",
            "COPY",
            "REPLACE"
        ]),
        Reply::ok()
    );
    assert_eq!(d.cmd(&["GET", "c"]), Reply::bulk("newer"));
    assert_eq!(s.cmd(&["GET", "c"]), Reply::bulk("newer"));
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "c", "0", "5000", "REPLACE"]),
        Reply::ok()
    );
    assert_eq!(s.cmd(&["EXISTS", "c"]), Reply::Int(0));

    // Another database, then back to 0 on the same cached connection.
    s.cmd(&["SET", "in3", "x"]);
    s.cmd(&["SET", "in0", "y"]);
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "in3", "3", "0"]),
        Reply::ok()
    );
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "in0", "0", "5000"]),
        Reply::ok()
    );
    assert_eq!(d.cmd(&["EXISTS", "in3"]), Reply::Int(0));
    assert_eq!(d.cmd(&["GET", "in0"]), Reply::bulk("y"));
    d.cmd(&["SELECT", "3"]);
    assert_eq!(d.cmd(&["GET", "in3"]), Reply::bulk("x"));
    d.cmd(&["SELECT", "0"]);
    // A database the target lacks.
    s.cmd(&["SET", "bad", "x"]);
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "bad", "99", "5000"]),
        Reply::Error("ERR Target instance replied with error: ERR DB index is out of range".into())
    );
    assert_eq!(s.cmd(&["GET", "bad"]), Reply::bulk("x"));

    // The cached connection is killed by the target: MIGRATE retries on a
    // new one.
    let killed = d.cmd(&["CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"]);
    assert!(killed.int() >= 1, "no migrate connection to kill");
    s.cmd(&["SET", "after-kill", "z"]);
    assert_eq!(
        s.cmd(&["MIGRATE", "127.0.0.1", &dp, "after-kill", "0", "5000"]),
        Reply::ok()
    );
    assert_eq!(d.cmd(&["GET", "after-kill"]), Reply::bulk("z"));
}

#[test]
fn migrate_node_to_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    migrate_between(&node, &redis);
}

#[test]
fn migrate_redis_to_node() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    migrate_between(&redis, &node);
}

#[test]
fn migrate_node_to_node_with_shards() {
    let a = Server::start(&["--shards", "4"]);
    let b = Server::start(&["--shards", "4"]);
    migrate_between(&a, &b);
}

/// AUTH and AUTH2 to a target with a password, compared with redis's own
/// MIGRATE replies to the same target.
#[test]
fn migrate_auth_matches_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    for target in [
        Server::start_redis_with(&["--requirepass", "s3cret"]),
        Server::start(&["--requirepass", "s3cret"]),
    ] {
        let tp = target.port.to_string();
        let mut t = target.conn();
        assert_eq!(t.cmd(&["AUTH", "s3cret"]), Reply::ok());
        t.cmd(&["FLUSHALL"]);
        for (src, name) in [(&node, "node"), (&redis, "redis")] {
            let mut s = src.conn();
            s.cmd(&["SET", "ka", name]);
            s.cmd(&["SET", "kb", name]);
            let noauth = s.cmd(&["MIGRATE", "127.0.0.1", &tp, "ka", "0", "5000"]);
            let wrong = s.cmd(&[
                "MIGRATE",
                "127.0.0.1",
                &tp,
                "ka",
                "0",
                "5000",
                "AUTH",
                "nope",
            ]);
            let wrong2 = s.cmd(&[
                "MIGRATE",
                "127.0.0.1",
                &tp,
                "ka",
                "0",
                "5000",
                "AUTH2",
                "default",
                "nope",
            ]);
            assert_eq!(s.cmd(&["EXISTS", "ka"]), Reply::Int(1));
            let ok = s.cmd(&[
                "MIGRATE",
                "127.0.0.1",
                &tp,
                "ka",
                "0",
                "5000",
                "AUTH",
                "s3cret",
            ]);
            let ok2 = s.cmd(&[
                "MIGRATE",
                "127.0.0.1",
                &tp,
                "kb",
                "0",
                "5000",
                "AUTH2",
                "default",
                "s3cret",
            ]);
            assert_eq!(ok, Reply::ok(), "{name}");
            assert_eq!(ok2, Reply::ok(), "{name}");
            assert_eq!(t.cmd(&["GET", "ka"]), Reply::bulk(name));
            assert_eq!(t.cmd(&["GET", "kb"]), Reply::bulk(name));
            assert_eq!(s.cmd(&["EXISTS", "ka", "kb"]), Reply::Int(0));
            t.cmd(&["DEL", "ka", "kb"]);
            assert_eq!(
                noauth,
                Reply::Error(
                    "ERR Target instance replied with error: NOAUTH Authentication required."
                        .into()
                ),
                "{name}"
            );
            let wrongpass = Reply::Error(
                "ERR Target instance replied with error: WRONGPASS invalid username-password pair or user is disabled."
                    .into(),
            );
            assert_eq!(wrong, wrongpass, "{name}");
            assert_eq!(wrong2, wrongpass, "{name}");
        }
    }
}

/// Connection refused, and a target that accepts but never answers.
#[test]
fn migrate_io_errors_match_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis();
    let closed = free_port().to_string();
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port().to_string();
    // Keep accepted connections open, reading and discarding.
    std::thread::spawn(move || {
        for s in silent.incoming() {
            let Ok(mut s) = s else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    for src in [&node, &redis] {
        let mut s = src.conn();
        s.cmd(&["SET", "k", "v"]);
        // Redis connects without blocking: a refused connection shows as
        // a failed write (after one retry).
        let r = s.cmd(&["MIGRATE", "127.0.0.1", &closed, "k", "0", "1000"]);
        assert_eq!(
            r,
            Reply::Error("IOERR error or timeout writing to target instance".into())
        );
        // An address that does not resolve.
        let r = s.cmd(&["MIGRATE", "", "1", "k", "0", "1000"]);
        assert_eq!(
            r,
            Reply::Error("IOERR error or timeout connecting to the client".into())
        );
        let r = s.cmd(&["MIGRATE", "127.0.0.1", "-1", "k", "0", "1000"]);
        assert_eq!(
            r,
            Reply::Error("IOERR error or timeout connecting to the client".into())
        );
        let t0 = Instant::now();
        let r = s.cmd(&["MIGRATE", "127.0.0.1", &silent_port, "k", "0", "300"]);
        assert_eq!(
            r,
            Reply::Error("IOERR error or timeout reading to target instance".into())
        );
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(s.cmd(&["GET", "k"]), Reply::bulk("v"));
    }
}

/// While a MIGRATE waits for the target, a client reading the key waits
/// too, and then finds it gone: never on both servers, never on neither.
#[test]
fn migrate_is_atomic_for_other_clients() {
    let node = Server::start(&[]);
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_port = slow.local_addr().unwrap().port().to_string();
    let target = std::thread::spawn(move || {
        let (mut s, _) = slow.accept().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        // SELECT 0 and RESTORE k: wait for the whole RESTORE.
        while !String::from_utf8_lossy(&got).contains("RESTORE") || !got.ends_with(b"\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        std::thread::sleep(Duration::from_millis(800));
        s.write_all(b"+OK\r\n+OK\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(200));
        String::from_utf8_lossy(&got).into_owned()
    });
    let mut c = node.conn();
    c.cmd(&["SET", "k", "v"]);
    c.cmd(&["SET", "other", "o"]);
    let port = node.port;
    let mig = std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        let t0 = Instant::now();
        let r = c.cmd(&["MIGRATE", "127.0.0.1", &slow_port, "k", "0", "5000"]);
        (r, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let got = c.cmd(&["GET", "k"]);
    let waited = t0.elapsed();
    let (r, took) = mig.join().unwrap();
    assert_eq!(r, Reply::ok());
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert_eq!(got, Reply::Nil, "the key was read while being migrated");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    let sent = target.join().unwrap();
    assert!(sent.contains("RESTORE"), "{sent}");
    assert!(sent.contains("SELECT"), "{sent}");
    assert_eq!(c.cmd(&["GET", "other"]), Reply::bulk("o"));
}

/// DEBUG DIGEST-VALUE (which `redis-cli --cluster fix` uses to compare a
/// key left on two nodes) gives redis's digest for every type and
/// encoding, with and without a TTL, and zeros for a missing key.
#[test]
fn debug_digest_value_matches_redis() {
    let node = Server::start(&[]);
    let redis = Server::start_redis_with(&["--enable-debug-command", "yes"]);
    let (mut a, mut b) = (node.conn(), redis.conn());
    let mut keys = populate(&mut a);
    assert_eq!(populate(&mut b), keys);
    for c in [&mut a, &mut b] {
        assert_eq!(c.cmd(&["SET", "ttl", "v", "EX", "1000"]), Reply::ok());
        assert_eq!(
            c.cmd(&["ZADD", "zf", "0.1", "a", "1e20", "b", "-3.25", "c"])
                .int(),
            3
        );
    }
    keys.extend(["ttl".to_string(), "zf".to_string(), "missing".to_string()]);
    let mut args = vec!["DEBUG", "DIGEST-VALUE"];
    args.extend(keys.iter().map(String::as_str));
    let (ours, theirs) = (a.cmd(&args), b.cmd(&args));
    assert_eq!(ours.array().len(), keys.len());
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(ours.array()[i], theirs.array()[i], "digest of {k}");
    }
    // Different values have different digests.
    assert_ne!(ours.array()[0], ours.array()[1]);
}
