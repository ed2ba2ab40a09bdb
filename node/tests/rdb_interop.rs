#![allow(clippy::unwrap_used)]
//! RDB and DUMP/RESTORE compatibility with redis-server 7.0, both ways:
//! redis's SAVE output and DUMP payloads are loaded by `rdb::load` /
//! `rdb::restore_payload`, and what `RdbWriter` / `dump_payload` produce is
//! loaded by redis at startup / accepted by RESTORE. Values are compared
//! through redis's commands (HGETALL, LRANGE, SMEMBERS, ZRANGE WITHSCORES,
//! GET, PEXPIRETIME).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;

use common::Server;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shardline_node::engine::types::hash::HashObj;
use shardline_node::engine::types::list::ListObj;
use shardline_node::engine::types::set::SetObj;
use shardline_node::engine::types::zset::ZSetObj;
use shardline_node::engine::types::EncodingLimits;
use shardline_node::engine::{Object, Value, ValueRef};
use shardline_node::rdb::{self, Item, RdbWriter};

/// A value as redis reports it.
#[derive(Debug, Clone, PartialEq)]
enum RVal {
    Str(Vec<u8>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    /// In ZRANGE order: ascending (score, member).
    ZSet(Vec<(Vec<u8>, f64)>),
}

/// (db, key) -> (value, expire in unix ms).
type Db = BTreeMap<(usize, Vec<u8>), (RVal, Option<i64>)>;

const FAR: i64 = 4_000_000_000_000;

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "12",
    "13",
    "127",
    "128",
    "-128",
    "-129",
    "255",
    "4095",
    "4096",
    "-4096",
    "-4097",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "8388607",
    "8388608",
    "-8388608",
    "-8388609",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "12345678901",
    "007",
    "+1",
    "1.5",
    "-0",
    " 1",
];

fn rand_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.gen()).collect()
}

/// A short element (at most 64 bytes) of a random kind.
fn small_elem(rng: &mut StdRng) -> Vec<u8> {
    match rng.gen_range(0..6) {
        0 => INTS[rng.gen_range(0..INTS.len())].as_bytes().to_vec(),
        1 => rng.gen::<i64>().to_string().into_bytes(),
        2 => rng.gen_range(-40000i64..40000).to_string().into_bytes(),
        3 => {
            let n = rng.gen_range(0..30);
            (0..n).map(|_| rng.gen_range(b'a'..=b'z')).collect()
        }
        4 => {
            let n = rng.gen_range(0..20);
            rand_bytes(rng, n)
        }
        _ => format!("el{}", rng.gen_range(0..100000)).into_bytes(),
    }
}

fn elem(rng: &mut StdRng) -> Vec<u8> {
    if rng.gen_range(0..20) == 0 {
        let n = rng.gen_range(65..300);
        rand_bytes(rng, n)
    } else {
        small_elem(rng)
    }
}

fn zset(mut m: BTreeMap<Vec<u8>, f64>) -> RVal {
    let mut v: Vec<(Vec<u8>, f64)> = std::mem::take(&mut m).into_iter().collect();
    v.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
    RVal::ZSet(v)
}

/// Keys of every type in every encoding redis 7.0 uses.
fn spec() -> Db {
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut db: Db = BTreeMap::new();
    let mut put = |d: usize, k: &[u8], v: RVal, e: Option<i64>| {
        db.insert((d, k.to_vec()), (v, e));
    };
    // Strings.
    for (i, s) in INTS.iter().enumerate() {
        put(
            0,
            format!("int:{i}").as_bytes(),
            RVal::Str(s.as_bytes().to_vec()),
            None,
        );
    }
    put(0, b"s:hello", RVal::Str(b"hello".to_vec()), Some(FAR));
    put(0, b"s:empty", RVal::Str(Vec::new()), None);
    put(0, b"s:lzf", RVal::Str(b"abcdefgh".repeat(5000)), None);
    put(
        0,
        b"s:lzf2",
        RVal::Str(b"0123456789ABCDEFGHIJ".repeat(3)),
        Some(FAR + 1),
    );
    let r = rand_bytes(&mut rng, 2000);
    put(0, b"s:rand", RVal::Str(r), None);
    let r = rand_bytes(&mut rng, 50);
    put(0, b"\x00bin\xff\r\n", RVal::Str(r), None);
    // Hashes.
    let h: BTreeMap<_, _> = (0..20)
        .map(|i| {
            let f = if i % 3 == 0 {
                INTS[i % INTS.len()].as_bytes().to_vec()
            } else {
                format!("f{i}").into_bytes()
            };
            (f, small_elem(&mut rng))
        })
        .collect();
    put(0, b"h:small", RVal::Hash(h), Some(FAR + 2));
    let h: BTreeMap<_, _> = [
        (b"a".to_vec(), b"1".to_vec()),
        (b"b".to_vec(), vec![b'v'; 100]),
        (b"c".to_vec(), b"-70000".to_vec()),
    ]
    .into_iter()
    .collect();
    put(0, b"h:bigvalue", RVal::Hash(h), None);
    let h: BTreeMap<_, _> = (0..1000)
        .map(|i| (format!("field:{i}").into_bytes(), elem(&mut rng)))
        .collect();
    put(0, b"h:large", RVal::Hash(h), Some(FAR + 3));
    // Lists.
    let l: Vec<_> = (0..10).map(|_| small_elem(&mut rng)).collect();
    put(0, b"l:small", RVal::List(l), None);
    let l: Vec<_> = (0..20000).map(|_| elem(&mut rng)).collect();
    put(0, b"l:long", RVal::List(l), Some(FAR + 4));
    let l: Vec<_> = (0..12)
        .map(|i| {
            if i % 2 == 0 {
                let n = 10_000 + i;
                rand_bytes(&mut rng, n)
            } else {
                small_elem(&mut rng)
            }
        })
        .collect();
    put(0, b"l:bigelems", RVal::List(l), None);
    let l: Vec<_> = INTS.iter().map(|s| s.as_bytes().to_vec()).collect();
    put(0, b"l:ints", RVal::List(l), None);
    // Sets.
    let s: BTreeSet<_> = (0..100)
        .map(|_| rng.gen::<i16>().to_string().into_bytes())
        .collect();
    put(0, b"set:ints", RVal::Set(s), Some(FAR + 5));
    let s: BTreeSet<_> = (0..50)
        .map(|_| rng.gen::<i64>().to_string().into_bytes())
        .collect();
    put(0, b"set:ints64", RVal::Set(s), None);
    let s: BTreeSet<_> = (0..30)
        .map(|_| rng.gen::<i32>().to_string().into_bytes())
        .collect();
    put(0, b"set:ints32", RVal::Set(s), None);
    let s: BTreeSet<_> = (0..2000)
        .map(|_| {
            rng.gen_range(-1_000_000i64..1_000_000)
                .to_string()
                .into_bytes()
        })
        .collect();
    put(0, b"set:intsbig", RVal::Set(s), None);
    let s: BTreeSet<_> = (0..50).map(|_| small_elem(&mut rng)).collect();
    put(0, b"set:strs", RVal::Set(s), None);
    let s: BTreeSet<_> = (0..1000).map(|_| elem(&mut rng)).collect();
    put(0, b"set:strsbig", RVal::Set(s), None);
    // Sorted sets.
    let specials = [
        1.5,
        -2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.0,
        1e300,
        -1e-300,
        std::f64::consts::PI,
        0.1,
        4_503_599_627_370_496.0,
        9_007_199_254_740_993.0,
        -123456.0,
    ];
    let z: BTreeMap<_, _> = (0..20)
        .map(|i| (small_elem(&mut rng), specials[i % specials.len()]))
        .collect();
    put(0, b"z:small", zset(z), Some(FAR + 6));
    let z: BTreeMap<_, _> = (0..1000)
        .map(|_| {
            let s = if rng.gen() {
                f64::from(rng.gen_range(-1000i32..1000))
            } else {
                rng.gen_range(-1e6..1e6)
            };
            (elem(&mut rng), s)
        })
        .collect();
    put(0, b"z:large", zset(z), None);
    let z: BTreeMap<_, _> = [(vec![b'm'; 100], 1.0), (b"x".to_vec(), 2.5)]
        .into_iter()
        .collect();
    put(0, b"z:longmember", zset(z), None);
    // Database 3.
    put(3, b"d3:s", RVal::Str(b"in db 3".to_vec()), Some(FAR + 7));
    let h: BTreeMap<_, _> = [(b"k".to_vec(), b"v".to_vec())].into_iter().collect();
    put(3, b"d3:h", RVal::Hash(h), None);
    put(
        3,
        b"d3:l",
        RVal::List(vec![b"a".to_vec(), b"1".to_vec()]),
        None,
    );
    let s: BTreeSet<_> = [b"1".to_vec(), b"x".to_vec()].into_iter().collect();
    put(3, b"d3:set", RVal::Set(s), None);
    let z: BTreeMap<_, _> = [(b"m".to_vec(), 3.0)].into_iter().collect();
    put(3, b"d3:z", zset(z), None);
    db
}

fn conn(s: &Server) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap()
}

fn select(c: &mut redis::Connection, db: usize) {
    let _: () = redis::cmd("SELECT").arg(db).query(c).unwrap();
}

fn fmt_score(s: f64) -> String {
    format!("{s:e}")
}

/// Writes `spec` into redis with commands.
fn populate(c: &mut redis::Connection, spec: &Db) {
    for ((db, key), (v, exp)) in spec {
        select(c, *db);
        let cmd = match v {
            RVal::Str(s) => {
                let mut c = redis::cmd("SET");
                c.arg(key).arg(s);
                c
            }
            RVal::Hash(h) => {
                let mut c = redis::cmd("HSET");
                c.arg(key);
                for (f, v) in h {
                    c.arg(f).arg(v);
                }
                c
            }
            RVal::List(l) => {
                let mut c = redis::cmd("RPUSH");
                c.arg(key);
                for e in l {
                    c.arg(e);
                }
                c
            }
            RVal::Set(s) => {
                let mut c = redis::cmd("SADD");
                c.arg(key);
                for e in s {
                    c.arg(e);
                }
                c
            }
            RVal::ZSet(z) => {
                let mut c = redis::cmd("ZADD");
                c.arg(key);
                for (m, s) in z {
                    c.arg(fmt_score(*s)).arg(m);
                }
                c
            }
        };
        let _: redis::Value = cmd.query(c).unwrap();
        if let Some(ms) = exp {
            let _: i64 = redis::cmd("PEXPIREAT").arg(key).arg(*ms).query(c).unwrap();
        }
    }
}

fn pairs(v: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    v.chunks(2).map(|p| (p[0].clone(), p[1].clone())).collect()
}

/// A key's value as redis reports it.
fn fetch(c: &mut redis::Connection, key: &[u8]) -> RVal {
    let t: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    match t.as_str() {
        "string" => RVal::Str(redis::cmd("GET").arg(key).query(c).unwrap()),
        "hash" => {
            let v: Vec<Vec<u8>> = redis::cmd("HGETALL").arg(key).query(c).unwrap();
            RVal::Hash(pairs(v).into_iter().collect())
        }
        "list" => RVal::List(
            redis::cmd("LRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query(c)
                .unwrap(),
        ),
        "set" => {
            let v: Vec<Vec<u8>> = redis::cmd("SMEMBERS").arg(key).query(c).unwrap();
            RVal::Set(v.into_iter().collect())
        }
        "zset" => {
            let v: Vec<Vec<u8>> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(c)
                .unwrap();
            RVal::ZSet(
                pairs(v)
                    .into_iter()
                    .map(|(m, s)| (m, std::str::from_utf8(&s).unwrap().parse().unwrap()))
                    .collect(),
            )
        }
        other => panic!("unexpected type {other}"),
    }
}

fn fetch_expire(c: &mut redis::Connection, key: &[u8]) -> Option<i64> {
    let t: i64 = redis::cmd("PEXPIRETIME").arg(key).query(c).unwrap();
    (t >= 0).then_some(t)
}

/// Everything redis holds in databases 0 ..= 15.
fn fetch_all(c: &mut redis::Connection) -> Db {
    let mut out = BTreeMap::new();
    for db in 0..16 {
        select(c, db);
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        for k in keys {
            let v = fetch(c, &k);
            let e = fetch_expire(c, &k);
            out.insert((db, k), (v, e));
        }
    }
    out
}

fn to_rval(v: &Value) -> RVal {
    match v {
        Value::Str(s) => RVal::Str(s.clone()),
        Value::Obj(Object::Hash(h)) => {
            let mut m = BTreeMap::new();
            h.for_each(|k, v| {
                m.insert(k.to_vec(), v.to_vec());
            });
            RVal::Hash(m)
        }
        Value::Obj(Object::List(l)) => RVal::List(l.iter_from(0).map(|e| e.to_vec()).collect()),
        Value::Obj(Object::Set(s)) => RVal::Set(s.members().into_iter().collect()),
        Value::Obj(Object::ZSet(z)) => RVal::ZSet(z.entries()),
    }
}

fn to_value(v: &RVal, limits: &EncodingLimits) -> Value {
    match v {
        RVal::Str(s) => Value::Str(s.clone()),
        RVal::Hash(m) => {
            let mut h = HashObj::default();
            for (k, v) in m {
                h.set(k, v, limits);
            }
            Value::Obj(Object::Hash(h))
        }
        RVal::List(l) => {
            let mut o = ListObj::new();
            for e in l {
                o.push(e, false, limits.list_max_listpack_size);
            }
            Value::Obj(Object::List(o))
        }
        RVal::Set(s) => Value::Obj(Object::Set(SetObj::build(s.iter().map(|m| &m[..]), limits))),
        RVal::ZSet(z) => {
            let mut o = ZSetObj::default();
            for (m, s) in z {
                o.insert_new(m, *s, limits);
            }
            Value::Obj(Object::ZSet(o))
        }
    }
}

fn as_ref(v: &Value) -> ValueRef<'_> {
    match v {
        Value::Str(s) => ValueRef::Str(s),
        Value::Obj(o) => ValueRef::Obj(o),
    }
}

fn encoding(c: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(c)
        .unwrap()
}

#[test]
fn redis_save_is_loaded() {
    let spec = spec();
    let server =
        Server::start_redis_with(&["--rdbcompression", "yes", "--enable-debug-command", "yes"]);
    let mut c = conn(&server);
    // Elements of 1000 bytes or more go to PLAIN quicklist nodes.
    let _: () = redis::cmd("DEBUG")
        .arg("QUICKLIST-PACKED-THRESHOLD")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    populate(&mut c, &spec);
    let from_redis = fetch_all(&mut c);
    assert_eq!(from_redis, spec, "the harness stores what the spec says");
    // The spec covers every encoding redis 7.0 writes.
    select(&mut c, 0);
    for (k, enc) in [
        ("h:small", "listpack"),
        ("h:large", "hashtable"),
        ("h:bigvalue", "hashtable"),
        ("l:long", "quicklist"),
        ("set:ints", "intset"),
        ("set:ints64", "intset"),
        ("set:intsbig", "hashtable"),
        ("set:strs", "hashtable"),
        ("z:small", "listpack"),
        ("z:large", "skiplist"),
        ("z:longmember", "skiplist"),
    ] {
        assert_eq!(encoding(&mut c, k), enc, "{k}");
    }
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();

    let path = server.dir().join("dump.rdb");
    let raw = std::fs::read(&path).unwrap();
    assert!(
        !raw.windows(80).any(|w| w == b"abcdefgh".repeat(10)),
        "s:lzf is stored compressed"
    );
    let file = std::fs::File::open(&path).unwrap();
    let file_len = file.metadata().unwrap().len();
    let mut r = BufReader::new(file);
    let mut loaded: Db = BTreeMap::new();
    let mut aux = BTreeMap::new();
    let summary = rdb::load(&mut r, &EncodingLimits::default(), &mut |item| {
        match item {
            Item::Entry {
                db,
                key,
                value,
                expire_ms,
            } => {
                loaded.insert((db, key), (to_rval(&value), expire_ms));
            }
            Item::Aux { key, value } => {
                aux.insert(key, value);
            }
            _ => {}
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(summary.bytes, file_len);
    assert_eq!(summary.version, 10);
    assert_ne!(summary.checksum, 0);
    assert_eq!(summary.keys as usize, spec.len());
    assert_eq!(
        aux.get(&b"redis-ver"[..]).map(Vec::as_slice),
        Some(&b"7.0.15"[..])
    );
    for (k, v) in &from_redis {
        assert_eq!(loaded.get(k), Some(v), "key {k:?}");
    }
    assert_eq!(loaded, from_redis);
}

#[test]
fn our_rdb_is_loaded_by_redis() {
    let spec = spec();
    let limits = EncodingLimits::default();
    let values: Vec<_> = spec
        .iter()
        .map(|((db, k), (v, e))| (*db, k.clone(), to_value(v, &limits), *e))
        .collect();
    for compress in [false, true] {
        let mut w = RdbWriter::new().with_compression(compress);
        let mut out = Vec::new();
        w.header(
            &mut out,
            &[
                ("redis-ver", b"7.0.15"),
                ("redis-bits", b"64"),
                ("ctime", b"1700000000"),
                ("used-mem", b"1000000"),
                ("aof-base", b"0"),
            ],
        );
        for db in [0, 3] {
            let n = values.iter().filter(|v| v.0 == db).count() as u64;
            let e = values.iter().filter(|v| v.0 == db && v.3.is_some()).count() as u64;
            w.select_db(&mut out, db);
            w.resize_db(&mut out, n, e);
            for (_, k, v, exp) in values.iter().filter(|v| v.0 == db) {
                w.entry(&mut out, k, as_ref(v), *exp);
            }
        }
        w.finish(&mut out);
        let server =
            Server::start_redis_with_files(&[("dump.rdb", &out)], &["--dbfilename", "dump.rdb"]);
        let mut c = conn(&server);
        let got = fetch_all(&mut c);
        for (k, v) in &spec {
            assert_eq!(got.get(k), Some(v), "key {k:?} (compress {compress})");
        }
        assert_eq!(got, spec);
        // Redis keeps the compact encodings for small values.
        select(&mut c, 0);
        for (k, enc) in [
            ("h:small", "listpack"),
            ("z:small", "listpack"),
            ("set:ints", "intset"),
            ("l:small", "quicklist"),
        ] {
            assert_eq!(encoding(&mut c, k), enc, "{k}");
        }
    }
}

#[test]
fn dump_restore_both_ways() {
    let spec = spec();
    let limits = EncodingLimits::default();
    let server = Server::start_redis();
    let mut c = conn(&server);
    populate(&mut c, &spec);
    // Redis's DUMP -> restore_payload.
    for ((db, key), (v, _)) in &spec {
        select(&mut c, *db);
        let payload: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut c).unwrap();
        let value = rdb::restore_payload(&payload, &limits)
            .unwrap_or_else(|e| panic!("restore of {key:?}: {e}"));
        assert_eq!(&to_rval(&value), v, "key {key:?}");
    }
    // dump_payload -> redis's RESTORE.
    select(&mut c, 5);
    for ((_, key), (v, _)) in &spec {
        let payload = rdb::dump_payload(as_ref(&to_value(v, &limits)));
        let _: () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(&payload)
            .query(&mut c)
            .unwrap_or_else(|e| panic!("RESTORE of {key:?}: {e}"));
        assert_eq!(&fetch(&mut c, key), v, "key {key:?}");
        // And redis's own DUMP of it round-trips through us again.
        let again: Vec<u8> = redis::cmd("DUMP").arg(key).query(&mut c).unwrap();
        assert_eq!(&to_rval(&rdb::restore_payload(&again, &limits).unwrap()), v);
    }
}
