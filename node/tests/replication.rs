//! Replication end to end: our master and replica, redis-server 7.0 on
//! either side, partial resynchronization after a dropped link, WAIT,
//! continuity across promotion, and corrupt transfers.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{info_field, info_int, wait_until, Conn, Reply, Server};

/// Everything a dataset holds, per `db:key`: type, content, expiry.
type Dump = BTreeMap<String, (String, Vec<String>, i64)>;

fn texts(r: &Reply) -> Vec<String> {
    r.array().iter().map(|x| x.text()).collect()
}

fn dump(c: &mut Conn, dbs: usize) -> Dump {
    let mut out = Dump::new();
    for db in 0..dbs {
        c.cmd(&["SELECT", &db.to_string()]);
        let keys = texts(&c.cmd(&["KEYS", "*"]));
        for k in keys {
            let ty = c.cmd(&["TYPE", &k]).text();
            let content = match ty.as_str() {
                "string" => vec![c.cmd(&["GET", &k]).text()],
                "hash" => {
                    let v = texts(&c.cmd(&["HGETALL", &k]));
                    let mut pairs: Vec<String> =
                        v.chunks(2).map(|p| format!("{}={}", p[0], p[1])).collect();
                    pairs.sort();
                    pairs
                }
                "list" => texts(&c.cmd(&["LRANGE", &k, "0", "-1"])),
                "set" => {
                    let mut v = texts(&c.cmd(&["SMEMBERS", &k]));
                    v.sort();
                    v
                }
                "zset" => texts(&c.cmd(&["ZRANGE", &k, "0", "-1", "WITHSCORES"])),
                "none" => continue,
                other => panic!("unexpected type {other}"),
            };
            let ttl = c.cmd(&["PEXPIRETIME", &k]).int();
            out.insert(format!("{db}:{k}"), (ty, content, ttl));
        }
    }
    c.cmd(&["SELECT", "0"]);
    out
}

/// Writes every data type, in two databases, until stopped.
fn writer(port: u16, stop: Arc<AtomicBool>, seed: u64) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        let mut n = seed;
        let mut ops = 0u64;
        while !stop.load(Ordering::Relaxed) {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (n >> 33) % 200;
            let v = (n >> 20) % 1000;
            let (ks, vs) = (k.to_string(), v.to_string());
            let db = if k % 7 == 0 { "1" } else { "0" };
            c.cmd(&["SELECT", db]);
            match (n >> 40) % 14 {
                0 => c.cmd(&["SET", &format!("s{ks}"), &format!("value-{vs}")]),
                1 => c.cmd(&["INCRBY", &format!("n{ks}"), &vs]),
                2 => c.cmd(&["APPEND", &format!("s{ks}"), "+"]),
                3 => c.cmd(&["HSET", &format!("h{ks}"), &format!("f{vs}"), &vs]),
                4 => c.cmd(&["HINCRBY", &format!("h{ks}"), "counter", "3"]),
                5 => c.cmd(&["LPUSH", &format!("l{ks}"), &vs, "x"]),
                6 => c.cmd(&["RPOP", &format!("l{ks}")]),
                7 => c.cmd(&["SADD", &format!("t{ks}"), &vs, &format!("m{vs}")]),
                8 => c.cmd(&["SREM", &format!("t{ks}"), &vs]),
                9 => c.cmd(&["ZADD", &format!("z{ks}"), &vs, &format!("m{}", v % 50)]),
                10 => c.cmd(&["ZINCRBY", &format!("z{ks}"), "1.5", "m1"]),
                11 => c.cmd(&["DEL", &format!("s{ks}"), &format!("h{}", v % 200)]),
                12 => c.cmd(&["EXPIRE", &format!("h{ks}"), "100000"]),
                _ => {
                    c.cmd(&["MULTI"]);
                    c.cmd(&["INCR", "tx-counter"]);
                    c.cmd(&["LPUSH", "tx-list", &vs]);
                    c.cmd(&["EXEC"])
                }
            };
            ops += 1;
        }
        ops
    })
}

fn preload(c: &mut Conn) {
    // Enough values of every encoding for the snapshot to carry.
    for i in 0..300 {
        let i = i.to_string();
        c.cmd(&["SET", &format!("pre:s{i}"), &"x".repeat(100)]);
        c.cmd(&["RPUSH", "pre:list", &i]);
        c.cmd(&["SADD", "pre:ints", &i]);
        c.cmd(&["SADD", "pre:strs", &format!("m{i}")]);
        c.cmd(&["HSET", "pre:bighash", &format!("f{i}"), &i]);
        c.cmd(&["ZADD", "pre:bigzset", &i, &format!("m{i}")]);
    }
    c.cmd(&["HSET", "pre:small", "a", "1", "b", "2"]);
    c.cmd(&["ZADD", "pre:smallz", "1.5", "a", "-2", "b"]);
    c.cmd(&["SET", "pre:ttl", "v", "EX", "100000"]);
    c.cmd(&["SELECT", "2"]);
    c.cmd(&["SET", "db2key", "in db 2"]);
    c.cmd(&["SELECT", "0"]);
}

fn offset_of(c: &mut Conn, field: &str) -> i64 {
    info_field(&c.cmd(&["INFO", "replication"]), field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

fn wait_link_up(replica: &mut Conn) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            info_field(&replica.cmd(&["INFO", "replication"]), "master_link_status").as_deref()
                == Some("up")
        }),
        "replica link never came up: {}",
        replica.cmd(&["INFO", "replication"]).text()
    );
}

fn wait_caught_up(master: &mut Conn, replica: &mut Conn) {
    assert!(
        wait_until(Duration::from_secs(20), || {
            let m = offset_of(master, "master_repl_offset");
            let r = offset_of(replica, "slave_repl_offset");
            m > 0 && m == r
        }),
        "replica never caught up: master {} replica {}",
        master.cmd(&["INFO", "replication"]).text(),
        replica.cmd(&["INFO", "replication"]).text()
    );
}

/// The chain test shared by the three pairings.
fn chain(master: &Server, replica: &Server) {
    let mut m = master.conn();
    let mut r = replica.conn();
    preload(&mut m);
    let stop = Arc::new(AtomicBool::new(false));
    let w1 = writer(master.port, stop.clone(), 1);
    let w2 = writer(master.port, stop.clone(), 2);
    std::thread::sleep(Duration::from_millis(300));
    r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    wait_link_up(&mut r);
    std::thread::sleep(Duration::from_millis(500));
    let full_before = info_int(&mut m, "stats", "sync_full");
    let partial_before = info_int(&mut m, "stats", "sync_partial_ok");
    assert_eq!(full_before, 1, "one full synchronization");
    // Drop the link under load: the replica comes back with PSYNC.
    let killed = r.cmd(&["CLIENT", "KILL", "TYPE", "master"]).int();
    assert_eq!(killed, 1);
    std::thread::sleep(Duration::from_millis(300));
    wait_link_up(&mut r);
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let ops = w1.join().unwrap() + w2.join().unwrap();
    assert!(ops > 100, "the writers ran ({ops} ops)");
    wait_caught_up(&mut m, &mut r);
    assert_eq!(
        info_int(&mut m, "stats", "sync_partial_ok"),
        partial_before + 1,
        "the resync after the dropped link was partial"
    );
    assert_eq!(
        info_int(&mut m, "stats", "sync_full"),
        full_before,
        "no new full synchronization"
    );
    let dm = dump(&mut m, 3);
    let dr = dump(&mut r, 3);
    assert!(dm.len() > 300, "dataset has {} keys", dm.len());
    if dm != dr {
        let only_m: Vec<_> = dm
            .iter()
            .filter(|(k, v)| dr.get(*k) != Some(v))
            .take(5)
            .collect();
        let only_r: Vec<_> = dr
            .iter()
            .filter(|(k, v)| dm.get(*k) != Some(v))
            .take(5)
            .collect();
        panic!("datasets differ: master has {only_m:?}; replica has {only_r:?}");
    }
    // The replica refuses writes.
    let e = r.cmd(&["SET", "x", "y"]);
    assert!(
        e.text().starts_with("READONLY"),
        "write on a replica: {e:?}"
    );
}

#[test]
fn our_replica_of_our_master() {
    let master = Server::start(&[]);
    let replica = Server::start(&[]);
    chain(&master, &replica);
    // ROLE on both sides.
    let mut m = master.conn();
    let role = m.cmd(&["ROLE"]);
    assert_eq!(role.array()[0].text(), "master");
    assert_eq!(role.array()[2].array().len(), 1);
    let mut r = replica.conn();
    let role = r.cmd(&["ROLE"]);
    let role = role.array();
    assert_eq!(role[0].text(), "slave");
    assert_eq!(role[1].text(), "127.0.0.1");
    assert_eq!(role[2].int(), i64::from(master.port));
    assert_eq!(role[3].text(), "connected");
    assert!(role[4].int() > 0);
}

#[test]
fn our_replica_of_redis_master() {
    let master = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]);
    let replica = Server::start(&[]);
    chain(&master, &replica);
}

#[test]
fn redis_replica_of_our_master() {
    let master = Server::start(&[]);
    let replica = Server::start_redis();
    chain(&master, &replica);
}

#[test]
fn redis_replica_through_disk_transfer() {
    // With repl-diskless-sync off our master sends a length-prefixed RDB.
    let master = Server::start(&["--repl-diskless-sync", "no"]);
    let replica = Server::start_redis();
    let mut m = master.conn();
    preload(&mut m);
    let mut r = replica.conn();
    r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    wait_link_up(&mut r);
    wait_caught_up(&mut m, &mut r);
    assert_eq!(dump(&mut m, 3), dump(&mut r, 3));
}

#[test]
fn wait_counts_acknowledging_replicas() {
    let master = Server::start(&[]);
    let r1 = Server::start(&[]);
    let r2 = Server::start_redis();
    let mut m = master.conn();
    for r in [&r1, &r2] {
        let mut c = r.conn();
        c.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        wait_link_up(&mut c);
    }
    assert!(wait_until(Duration::from_secs(10), || info_int(
        &mut m,
        "replication",
        "connected_slaves"
    ) == 2));
    m.cmd(&["SET", "k", "v"]);
    assert_eq!(m.cmd(&["WAIT", "2", "5000"]).int(), 2);
    // More than there are: the timeout decides, and the answer is 2.
    m.cmd(&["SET", "k", "v2"]);
    let t = std::time::Instant::now();
    assert_eq!(m.cmd(&["WAIT", "3", "300"]).int(), 2);
    assert!(t.elapsed() >= Duration::from_millis(280));
    // Errors as redis.
    assert!(m.cmd(&["WAIT", "x", "0"]).is_error());
    assert_eq!(
        m.cmd(&["WAIT", "1", "-1"]).text(),
        "ERR timeout is negative"
    );
    let mut c = r1.conn();
    assert!(c
        .cmd(&["WAIT", "0", "0"])
        .text()
        .starts_with("ERR WAIT cannot be used with replica instances"));
}

#[test]
fn promoted_replica_continues_its_siblings_partially() {
    let a = Server::start(&[]);
    let b = Server::start(&[]);
    let c = Server::start(&[]);
    let mut ma = a.conn();
    preload(&mut ma);
    let mut cb = b.conn();
    let mut cc = c.conn();
    for conn in [&mut cb, &mut cc] {
        conn.cmd(&["REPLICAOF", "127.0.0.1", &a.port.to_string()]);
        wait_link_up(conn);
    }
    for i in 0..200 {
        ma.cmd(&["INCR", &format!("k{}", i % 10)]);
    }
    wait_caught_up(&mut ma, &mut cb);
    wait_caught_up(&mut ma, &mut cc);
    // Failover by hand: B becomes the master, C follows it.
    let old_id = info_field(&cb.cmd(&["INFO", "replication"]), "master_replid").unwrap();
    assert_eq!(cb.cmd(&["REPLICAOF", "NO", "ONE"]), Reply::ok());
    let info = cb.cmd(&["INFO", "replication"]);
    assert_eq!(info_field(&info, "master_replid2").unwrap(), old_id);
    assert_ne!(info_field(&info, "master_replid").unwrap(), old_id);
    cc.cmd(&["REPLICAOF", "127.0.0.1", &b.port.to_string()]);
    wait_link_up(&mut cc);
    cb.cmd(&["SET", "after", "promotion"]);
    wait_caught_up(&mut cb, &mut cc);
    assert_eq!(info_int(&mut cb, "stats", "sync_full"), 0);
    assert_eq!(info_int(&mut cb, "stats", "sync_partial_ok"), 1);
    assert_eq!(dump(&mut cb, 3), dump(&mut cc, 3));
    assert_eq!(cc.cmd(&["GET", "after"]).text(), "promotion");
}

/// A fake master that sends `rdb` (with an EOF mark) after the handshake;
/// returns how many sync attempts it saw within the time given.
fn fake_master(
    listener: std::net::TcpListener,
    rdb: Vec<u8>,
    truncate: bool,
    attempts: usize,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut seen = 0;
        listener.set_nonblocking(false).unwrap();
        while seen < attempts {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Answer commands until PSYNC arrives.
            loop {
                let n = match s.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let mut replies = Vec::new();
                let mut pos = 0;
                let mut psync = false;
                while let Ok(Some((r, next))) = common::parse_reply(&buf, pos) {
                    pos = next;
                    let first = r.array()[0].text().to_ascii_uppercase();
                    match first.as_str() {
                        "PING" => replies.extend_from_slice(b"+PONG\r\n"),
                        "PSYNC" => psync = true,
                        _ => replies.extend_from_slice(b"+OK\r\n"),
                    }
                }
                buf.drain(..pos);
                s.write_all(&replies).unwrap();
                if psync {
                    seen += 1;
                    let mark = "m".repeat(40);
                    let mut out =
                        format!("+FULLRESYNC {} 0\r\n$EOF:{mark}\r\n", "f".repeat(40)).into_bytes();
                    if truncate {
                        out.extend_from_slice(&rdb[..rdb.len() / 2]);
                    } else {
                        out.extend_from_slice(&rdb);
                        out.extend_from_slice(mark.as_bytes());
                    }
                    let _ = s.write_all(&out);
                    if truncate {
                        drop(s);
                    } else {
                        // Keep the connection until the replica gives up.
                        let _ = s.read(&mut chunk);
                    }
                    break;
                }
            }
        }
        seen
    })
}

/// A valid RDB holding `a` = `b`, built by hand.
fn tiny_rdb(break_checksum: bool) -> Vec<u8> {
    let mut v = b"REDIS0010".to_vec();
    v.extend_from_slice(&[0xfe, 0x00, 0x00, 0x01, b'a', 0x01, b'b', 0xff]);
    let crc = crc64_redis(&v);
    let crc = if break_checksum { crc ^ 1 } else { crc };
    v.extend_from_slice(&crc.to_le_bytes());
    v
}

/// CRC-64/Jones as redis computes it (reflected, poly 0xad93d23594c935a9).
fn crc64_redis(data: &[u8]) -> u64 {
    let poly: u64 = 0x95ac9329ac4bc9b5; // reflected 0xad93d23594c935a9
    let mut crc: u64 = 0;
    for &b in data {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ poly
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[test]
fn corrupt_or_truncated_transfers_keep_the_old_dataset() {
    assert_eq!(crc64_redis(b"123456789"), 0xe9c6d914c4b8d9ca);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("checksum", tiny_rdb(true), false),
        ("truncated", tiny_rdb(false), true),
        (
            "garbage",
            b"REDIS0010\xfe\x00\x07\x01a\x01b\xff\x00\x00\x00\x00\x00\x00\x00\x00".to_vec(),
            false,
        ),
        ("bad magic", b"NOTREDIS!".to_vec(), false),
    ];
    for (name, rdb, truncate) in cases {
        let node = Server::start(&[]);
        let mut c = node.conn();
        c.cmd(&["SET", "old", "data"]);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = fake_master(listener, rdb, truncate, 2);
        c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()]);
        // Two attempts: the first failed and the replica retried.
        let seen = fake.join().unwrap();
        assert_eq!(seen, 2, "{name}: the replica retried");
        assert_eq!(
            c.cmd(&["GET", "old"]).text(),
            "data",
            "{name}: old dataset kept"
        );
        assert_eq!(c.cmd(&["DBSIZE"]).int(), 1, "{name}");
        let log = node.log_text();
        assert!(
            log.contains("failed to load the RDB from master"),
            "{name}: log explains: {log}"
        );
        c.cmd(&["REPLICAOF", "NO", "ONE"]);
    }
    // And a good one loads.
    let node = Server::start(&[]);
    let mut c = node.conn();
    c.cmd(&["SET", "old", "data"]);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _fake = fake_master(listener, tiny_rdb(false), false, 1);
    c.cmd(&["REPLICAOF", "127.0.0.1", &port.to_string()]);
    assert!(wait_until(Duration::from_secs(10), || c.cmd(&["GET", "a"])
        == Reply::bulk("b")));
    assert_eq!(c.cmd(&["EXISTS", "old"]).int(), 0);
}

#[test]
fn replication_errors_match_redis() {
    let ours = Server::start(&[]);
    let redis = Server::start_redis();
    let mut a = ours.conn();
    let mut b = redis.conn();
    for cmd in [
        vec!["REPLICAOF", "127.0.0.1", "notaport"],
        vec!["REPLICAOF", "127.0.0.1"],
        vec!["REPLCONF", "listening-port"],
        vec!["REPLCONF", "nosuchoption", "1"],
        vec!["WAIT", "1"],
        vec!["WAIT", "1", "x"],
        vec!["WAIT", "0", "0"],
        vec!["REPLICAOF", "NO", "ONE"],
        vec!["ROLE"],
    ] {
        let ra = a.cmd(&cmd);
        let rb = b.cmd(&cmd);
        match (&ra, &rb) {
            (Reply::Array(x), Reply::Array(y)) => assert_eq!(x.len(), y.len(), "{cmd:?}"),
            _ => assert_eq!(ra, rb, "{cmd:?}"),
        }
    }
}

#[test]
fn auth_min_replicas_and_expiry_by_the_master() {
    let master = Server::start(&["--requirepass", "s3cret"]);
    let replica = Server::start(&["--masterauth", "s3cret"]);
    let mut m = master.conn();
    m.cmd(&["AUTH", "s3cret"]);
    // No replica yet: min-replicas-to-write refuses writes.
    m.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    assert_eq!(
        m.cmd(&["SET", "k", "v"]).text(),
        "NOREPLICAS Not enough good replicas to write."
    );
    m.cmd(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    m.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    m.cmd(&["SET", "short", "lived", "PX", "300"]);
    let mut r = replica.conn();
    r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    wait_link_up(&mut r);
    m.cmd(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    assert!(wait_until(Duration::from_secs(5), || m
        .cmd(&["SET", "k", "v"])
        == Reply::ok()));
    // The replica hides an expired key but keeps it until the master's DEL.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(r.cmd(&["GET", "short"]), Reply::Nil);
    assert_eq!(r.cmd(&["DBSIZE"]).int(), 2, "still stored on the replica");
    // The master expires it on access and propagates a DEL.
    assert_eq!(m.cmd(&["GET", "short"]), Reply::Nil);
    assert!(wait_until(Duration::from_secs(5), || r
        .cmd(&["DBSIZE"])
        .int()
        == 1));
}

#[test]
fn a_replica_that_does_not_read_is_dropped() {
    let master = Server::start(&[]);
    let mut m = master.conn();
    m.cmd(&[
        "CONFIG",
        "SET",
        "client-output-buffer-limit",
        "replica 1mb 0 0",
    ]);
    // The limit reaches the stream within a second.
    std::thread::sleep(Duration::from_millis(1100));
    // A replica that asks for the stream and never reads it.
    let mut fake = std::net::TcpStream::connect(("127.0.0.1", master.port)).unwrap();
    fake.write_all(&common::encode(&[b"PSYNC", b"?", b"-1"]))
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || {
        info_int(&mut m, "replication", "connected_slaves") == 1
    }));
    let big = "x".repeat(64 * 1024);
    for i in 0..300 {
        m.cmd(&["SET", &format!("k{i}"), &big]);
    }
    assert!(
        wait_until(Duration::from_secs(10), || {
            info_int(&mut m, "replication", "connected_slaves") == 0
        }),
        "the slow replica was dropped"
    );
    assert!(master.log_text().contains("client-output-buffer-limit"));
    // The master is fine.
    assert_eq!(m.cmd(&["DBSIZE"]).int(), 300);
}

#[test]
fn chained_replicas_pass_the_stream_on() {
    // redis master -> our replica -> redis replica, and our replica's
    // sub-replica attached while writes flow.
    let a = Server::start_redis_with(&["--repl-diskless-sync-delay", "0"]);
    let b = Server::start(&[]);
    let c = Server::start_redis();
    let mut ma = a.conn();
    preload(&mut ma);
    let mut cb = b.conn();
    cb.cmd(&["REPLICAOF", "127.0.0.1", &a.port.to_string()]);
    wait_link_up(&mut cb);
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(a.port, stop.clone(), 3);
    std::thread::sleep(Duration::from_millis(200));
    let mut cc = c.conn();
    cc.cmd(&["REPLICAOF", "127.0.0.1", &b.port.to_string()]);
    wait_link_up(&mut cc);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    wait_caught_up(&mut ma, &mut cb);
    wait_caught_up(&mut ma, &mut cc);
    let da = dump(&mut ma, 3);
    assert_eq!(da, dump(&mut cb, 3));
    assert_eq!(da, dump(&mut cc, 3));
}

#[test]
fn messages_published_on_the_master_reach_replica_subscribers() {
    for redis_replica in [false, true] {
        let master = Server::start(&[]);
        let replica = if redis_replica {
            Server::start_redis()
        } else {
            Server::start(&[])
        };
        let mut r = replica.conn();
        r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
        wait_link_up(&mut r);
        let mut sub = replica.conn();
        sub.cmd(&["SUBSCRIBE", "news"]);
        let mut m = master.conn();
        m.cmd(&["PUBLISH", "news", "hello"]);
        let msg = sub.read();
        assert_eq!(
            msg.array().iter().map(|x| x.text()).collect::<Vec<_>>(),
            ["message", "news", "hello"],
            "redis replica: {redis_replica}"
        );
    }
}

#[test]
fn pipelined_bursts_replicate_exactly() {
    // Large pipelined bursts reach the replica in big reads, which it
    // applies by shard in parallel: the result must equal the master's.
    let master = Server::start(&["--shards", "4"]);
    let replica = Server::start(&["--shards", "4"]);
    let mut r = replica.conn();
    r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    wait_link_up(&mut r);
    let mut m = master.conn();
    for round in 0..3 {
        let mut burst = Vec::new();
        let mut n = 0;
        for i in 0..20_000u32 {
            let k = format!("k{}", i % 3000);
            let cmd: Vec<Vec<u8>> = match i % 5 {
                0 => vec![b"INCR".to_vec(), k.into_bytes()],
                1 => vec![
                    b"RPUSH".to_vec(),
                    format!("l{}", i % 100).into_bytes(),
                    i.to_string().into_bytes(),
                ],
                2 => vec![
                    b"HINCRBY".to_vec(),
                    format!("h{}", i % 50).into_bytes(),
                    format!("f{}", i % 7).into_bytes(),
                    b"1".to_vec(),
                ],
                3 => vec![
                    b"MSET".to_vec(),
                    format!("a{i}").into_bytes(),
                    b"1".to_vec(),
                    format!("b{i}").into_bytes(),
                    b"2".to_vec(),
                ],
                _ => vec![
                    b"ZINCRBY".to_vec(),
                    b"z".to_vec(),
                    b"1".to_vec(),
                    format!("m{}", i % 30).into_bytes(),
                ],
            };
            let refs: Vec<&[u8]> = cmd.iter().map(|a| &a[..]).collect();
            burst.extend_from_slice(&common::encode(&refs));
            n += 1;
        }
        if round == 1 {
            burst.extend_from_slice(&common::encode(&[b"SELECT", b"1"]));
            for i in 0..500 {
                let k = format!("in-db1:{}", i % 40);
                burst.extend_from_slice(&common::encode(&[b"INCR", k.as_bytes()]));
            }
            burst.extend_from_slice(&common::encode(&[b"SELECT", b"0"]));
            n += 502;
        }
        m.send(&burst);
        for _ in 0..n {
            m.read();
        }
    }
    wait_caught_up(&mut m, &mut r);
    assert_eq!(dump(&mut m, 2), dump(&mut r, 2));
}
