//! A full synchronization of a large dataset (2 GB by default;
//! SHARDLINE_BIG_SYNC_MB changes it) while clients keep writing: the
//! master keeps serving, its worst latency during the sync is recorded,
//! and the replica ends with the master's dataset, compared key by key.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{info_field, wait_until, Conn, Server};

const VALUE_LEN: usize = 1000;

fn value_for(i: u64) -> Vec<u8> {
    let mut v = format!("{i:020}").into_bytes();
    v.resize(VALUE_LEN, b'a' + (i % 26) as u8);
    v
}

/// Loads `n` keys with pipelined MSETs on a raw connection.
fn fill(port: u16, n: u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut r = s.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        // Each MSET answers +OK\r\n (5 bytes).
        let batches = n.div_ceil(100);
        let mut left = batches * 5;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let got = r.read(&mut buf).unwrap();
            assert!(got > 0, "server closed during fill");
            assert!(!buf[..got].contains(&b'-'), "error during fill");
            left -= got as u64;
        }
    });
    let mut out = Vec::with_capacity(4 << 20);
    let mut i = 0;
    while i < n {
        let end = (i + 100).min(n);
        let mut args: Vec<Vec<u8>> = vec![b"MSET".to_vec()];
        for k in i..end {
            args.push(format!("big:{k}").into_bytes());
            args.push(value_for(k));
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        out.extend_from_slice(&common::encode(&refs));
        if out.len() > (2 << 20) {
            s.write_all(&out).unwrap();
            out.clear();
        }
        i = end;
    }
    s.write_all(&out).unwrap();
    reader.join().unwrap();
}

/// Compares both datasets key by key: SCAN on the master, MGET on both.
fn compare(master: &mut Conn, replica: &mut Conn) -> u64 {
    let mut cursor = "0".to_string();
    let mut seen = 0u64;
    loop {
        let r = master.cmd(&["SCAN", &cursor, "COUNT", "300"]);
        let parts = r.array();
        cursor = parts[0].text();
        let keys: Vec<String> = parts[1].array().iter().map(|k| k.text()).collect();
        if !keys.is_empty() {
            let mut args = vec!["MGET"];
            args.extend(keys.iter().map(|k| k.as_str()));
            let a = master.cmd(&args);
            let b = replica.cmd(&args);
            assert!(a == b, "values differ in a batch starting at {}", keys[0]);
            seen += keys.len() as u64;
        }
        if cursor == "0" {
            break;
        }
    }
    seen
}

#[test]
fn full_sync_of_a_large_dataset_under_writes() {
    let mb: u64 = std::env::var("SHARDLINE_BIG_SYNC_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let n = mb * 1024 * 1024 / VALUE_LEN as u64;
    let master = Server::start(&[]);
    let replica = Server::start(&[]);
    let t = Instant::now();
    fill(master.port, n);
    let mut m = master.conn();
    assert_eq!(m.cmd(&["DBSIZE"]).int() as u64, n);
    eprintln!("filled {n} keys ({mb} MB of values) in {:?}", t.elapsed());

    // A client keeps writing and timing its requests throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let port = master.port;
    let writer = std::thread::spawn(move || {
        let mut c = Conn::connect(port);
        let mut worst = Duration::ZERO;
        let mut lat = Vec::new();
        let mut i = 0u64;
        while !st.load(Ordering::Relaxed) {
            let t = Instant::now();
            c.cmd(&["SET", &format!("big:{}", i % n), "overwritten-during-sync"]);
            c.cmd(&["INCR", "writes"]);
            let d = t.elapsed();
            worst = worst.max(d);
            lat.push(d);
            i += 1;
        }
        lat.sort();
        let p99 = lat.get(lat.len() * 99 / 100).copied().unwrap_or_default();
        (i, worst, p99)
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut r = replica.conn();
    let t = Instant::now();
    r.cmd(&["REPLICAOF", "127.0.0.1", &master.port.to_string()]);
    assert!(
        wait_until(Duration::from_secs(600), || {
            info_field(&r.cmd(&["INFO", "replication"]), "master_link_status").as_deref()
                == Some("up")
        }),
        "sync did not finish"
    );
    let sync_time = t.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (writes, worst, p99) = writer.join().unwrap();
    eprintln!(
        "full sync of {mb} MB: {:.1}s ({:.0} MB/s); master served {writes} write pairs meanwhile, worst latency {worst:?}, p99 {p99:?}",
        sync_time.as_secs_f64(),
        mb as f64 / sync_time.as_secs_f64()
    );
    assert!(
        writes > 100,
        "the master kept serving writes during the sync"
    );
    assert!(
        worst < Duration::from_secs(2),
        "the master stalled for {worst:?} during the sync"
    );
    assert!(wait_until(Duration::from_secs(60), || {
        let a = info_field(&m.cmd(&["INFO", "replication"]), "master_repl_offset");
        let b = info_field(&r.cmd(&["INFO", "replication"]), "slave_repl_offset");
        a.is_some() && a == b
    }));
    assert_eq!(m.cmd(&["GET", "writes"]), r.cmd(&["GET", "writes"]));
    assert_eq!(m.cmd(&["DBSIZE"]), r.cmd(&["DBSIZE"]));
    let compared = compare(&mut m, &mut r);
    assert!(compared >= n, "compared {compared} keys");
    let cow = info_field(&m.cmd(&["INFO", "persistence"]), "rdb_last_cow_size").unwrap();
    eprintln!("peak snapshot buffer during the sync: {cow} bytes");
}
