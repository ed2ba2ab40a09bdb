//! A cluster-aware writer for failover tests: it writes without pause
//! through any topology change (following MOVED, waiting out CLUSTERDOWN
//! and refused connections), records every acknowledged write, and checks
//! at the end that all of them survived.
//!
//! Two kinds of writes: `SET <p>:s:<i> <i>` with unique keys, and
//! `INCR <p>:c:<j>` on a few counters. A SET is retried until acknowledged
//! (it is idempotent); an INCR whose reply was lost is counted as
//! uncertain and not retried, so a counter must end between its
//! acknowledged increments and those plus the uncertain ones. A counter
//! below that means a lost write, which is also what two masters accepting
//! writes for one slot would cause.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cluster::key_slot;
use super::{Conn, Reply};

const COUNTERS: u64 = 16;

/// What the writer saw.
#[derive(Debug, Default)]
pub struct Record {
    pub prefix: String,
    /// Acknowledged SETs: ids 0..sets.
    pub sets: u64,
    pub incr_acked: Vec<u64>,
    pub incr_uncertain: Vec<u64>,
    /// Error replies and I/O errors by kind (first word).
    pub errors: BTreeMap<String, u64>,
    /// The longest time between two acknowledged writes.
    pub longest_gap: Duration,
}

/// A routing client: slot map from CLUSTER SLOTS, MOVED updates it.
pub struct Router {
    seeds: Vec<String>,
    slots: Vec<Option<String>>,
    conns: HashMap<String, Conn>,
}

impl Router {
    pub fn new(seeds: Vec<String>) -> Router {
        let mut r = Router {
            seeds,
            slots: vec![None; 16384],
            conns: HashMap::new(),
        };
        r.refresh();
        r
    }

    /// Reloads the slot map from the first seed that answers.
    pub fn refresh(&mut self) {
        for s in self.seeds.clone() {
            let Ok(mut c) = Conn::try_connect_addr(&s) else {
                continue;
            };
            c.set_timeout(Duration::from_secs(1));
            let Ok(Reply::Array(ranges)) = c.try_call(&[b"CLUSTER", b"SLOTS"]) else {
                continue;
            };
            for r in ranges {
                let Reply::Array(f) = r else { continue };
                let (Some(Reply::Int(a)), Some(Reply::Int(b)), Some(Reply::Array(m))) =
                    (f.first(), f.get(1), f.get(2))
                else {
                    continue;
                };
                let (Some(ip), Some(Reply::Int(port))) = (m.first(), m.get(1)) else {
                    continue;
                };
                let addr = format!("{}:{port}", ip.text());
                for s in *a..=*b {
                    if let Some(x) = self.slots.get_mut(s as usize) {
                        *x = Some(addr.clone());
                    }
                }
            }
            return;
        }
    }

    /// Sends one command to the owner of `key`'s slot. Follows MOVED;
    /// returns the final reply, or Err on an I/O error (the command may or
    /// may not have run).
    pub fn call(&mut self, key: &str, args: &[&str]) -> Result<Reply, String> {
        let slot = key_slot(key.as_bytes()) as usize;
        for _ in 0..5 {
            let addr = match &self.slots[slot] {
                Some(a) => a.clone(),
                None => {
                    self.refresh();
                    self.slots[slot]
                        .clone()
                        .unwrap_or_else(|| self.seeds[0].clone())
                }
            };
            let conn = match self.conns.get_mut(&addr) {
                Some(c) => c,
                None => {
                    let mut c = Conn::try_connect_addr(&addr).map_err(|e| {
                        self.slots[slot] = None;
                        format!("connect {addr}: {e}")
                    })?;
                    c.set_timeout(Duration::from_secs(2));
                    self.conns.entry(addr.clone()).or_insert(c)
                }
            };
            let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
            match conn.try_call(&a) {
                Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                    let to = e.split(' ').nth(2).unwrap_or_default().to_string();
                    self.slots[slot] = Some(to);
                }
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.conns.remove(&addr);
                    self.slots[slot] = None;
                    return Err(format!("{addr}: {e}"));
                }
            }
        }
        Err("too many redirections".into())
    }
}

/// A background writer.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    handle: Option<JoinHandle<Record>>,
}

impl Writer {
    /// Starts writing keys named `<prefix>:...` into the cluster reachable
    /// through `seeds`.
    pub fn start(seeds: Vec<String>, prefix: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let (s, a, p) = (stop.clone(), acks.clone(), prefix.to_string());
        let handle = std::thread::spawn(move || run(seeds, p, s, a));
        Writer {
            stop,
            acks,
            handle: Some(handle),
        }
    }

    /// Acknowledged writes so far.
    pub fn acks(&self) -> u64 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Waits until `n` more writes were acknowledged (or `within` passes).
    pub fn wait_acks(&self, n: u64, within: Duration) -> bool {
        let target = self.acks() + n;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.acks() >= target {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    pub fn stop(mut self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("writer thread"))
            .unwrap_or_default()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn kind(e: &str) -> String {
    e.split([' ', ':']).next().unwrap_or("?").to_string()
}

fn run(seeds: Vec<String>, prefix: String, stop: Arc<AtomicBool>, acks: Arc<AtomicU64>) -> Record {
    let mut router = Router::new(seeds);
    let mut rec = Record {
        prefix: prefix.clone(),
        incr_acked: vec![0; COUNTERS as usize],
        incr_uncertain: vec![0; COUNTERS as usize],
        ..Default::default()
    };
    let mut last_ack = Instant::now();
    let mut i: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let counter = i % COUNTERS;
        let is_incr = i % 2 == 1;
        let key = if is_incr {
            format!("{prefix}:c:{counter}")
        } else {
            format!("{prefix}:s:{}", rec.sets)
        };
        let val = rec.sets.to_string();
        let res = if is_incr {
            router.call(&key, &["INCR", &key])
        } else {
            router.call(&key, &["SET", &key, &val])
        };
        let mut skip = false;
        let acked = match res {
            Ok(Reply::Status(s)) if s == "OK" && !is_incr => {
                rec.sets += 1;
                true
            }
            Ok(Reply::Int(_)) if is_incr => {
                rec.incr_acked[counter as usize] += 1;
                true
            }
            Ok(Reply::Error(e)) => {
                *rec.errors.entry(kind(&e)).or_default() += 1;
                std::thread::sleep(Duration::from_millis(10));
                router.refresh();
                false
            }
            Ok(other) => {
                *rec.errors
                    .entry(format!("unexpected {other:?}"))
                    .or_default() += 1;
                false
            }
            Err(e) => {
                *rec.errors.entry("io".into()).or_default() += 1;
                let _ = e;
                if is_incr {
                    rec.incr_uncertain[counter as usize] += 1;
                    skip = true;
                }
                std::thread::sleep(Duration::from_millis(10));
                router.refresh();
                false
            }
        };
        if acked {
            let now = Instant::now();
            rec.longest_gap = rec.longest_gap.max(now - last_ack);
            last_ack = now;
            acks.fetch_add(1, Ordering::Relaxed);
            i += 1;
        } else if skip {
            // An INCR that failed cleanly is retried; an uncertain one is
            // not (next operation).
            i += 1;
        }
    }
    rec
}

/// Reads every acknowledged write back through `seeds`; Err lists what is
/// missing or wrong.
pub fn verify(rec: &Record, seeds: Vec<String>) -> Result<(), String> {
    let mut router = Router::new(seeds);
    let mut problems = Vec::new();
    let read = |router: &mut Router, key: &str| -> Result<Reply, String> {
        for _ in 0..50 {
            match router.call(key, &["GET", key]) {
                Ok(Reply::Error(e)) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                    router.refresh();
                }
                Ok(r) => return Ok(r),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(100));
                    router.refresh();
                }
            }
        }
        Err(format!("could not read {key}"))
    };
    for i in 0..rec.sets {
        let key = format!("{}:s:{i}", rec.prefix);
        match read(&mut router, &key)? {
            Reply::Bulk(v) if v == i.to_string().as_bytes() => {}
            other => problems.push(format!("{key}: {other:?}")),
        }
        if problems.len() > 10 {
            break;
        }
    }
    for c in 0..COUNTERS as usize {
        let key = format!("{}:c:{c}", rec.prefix);
        let (lo, hi) = (rec.incr_acked[c], rec.incr_acked[c] + rec.incr_uncertain[c]);
        let v = match read(&mut router, &key)? {
            Reply::Bulk(v) => String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0),
            Reply::Nil => 0,
            other => {
                problems.push(format!("{key}: {other:?}"));
                continue;
            }
        };
        if v < lo || v > hi {
            problems.push(format!("{key} = {v}, acknowledged {lo}, at most {hi}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} acknowledged SETs, problems: {problems:?}",
            rec.sets
        ))
    }
}
