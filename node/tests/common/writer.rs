//! A cluster-aware writer for failover and slot-migration tests: it writes
//! without pause through any topology change (following MOVED and ASK,
//! retrying TRYAGAIN, waiting out CLUSTERDOWN and refused connections),
//! records every acknowledged write, and checks at the end that all of them
//! survived.
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
    /// `-ASK` redirections followed (ASKING + the command on the target).
    pub asks: u64,
    /// `-TRYAGAIN` replies, each retried.
    pub tryagains: u64,
    /// `-MOVED` redirections followed.
    pub moved: u64,
    /// The first few error replies and I/O errors in full, with the time
    /// since the writer started and the key.
    pub first_errors: Vec<String>,
}

/// A routing client: slot map from CLUSTER SLOTS, MOVED updates it; ASK
/// is followed once (ASKING, then the command, on a connection to the
/// named node) without touching the map; TRYAGAIN is retried.
pub struct Router {
    seeds: Vec<String>,
    slots: Vec<Option<String>>,
    conns: HashMap<String, Conn>,
    /// `-ASK` redirections followed.
    pub asks: u64,
    /// `-TRYAGAIN` replies seen (each retried after a short pause).
    pub tryagains: u64,
    /// `-MOVED` redirections followed.
    pub moved: u64,
    /// The node the last reply (or I/O error) came from.
    pub last_addr: String,
}

/// How long [`Router::call`] keeps retrying `-TRYAGAIN` before it returns
/// it as the reply.
const TRYAGAIN_FOR: Duration = Duration::from_secs(5);

impl Router {
    pub fn new(seeds: Vec<String>) -> Router {
        let mut r = Router {
            seeds,
            slots: vec![None; 16384],
            conns: HashMap::new(),
            asks: 0,
            tryagains: 0,
            moved: 0,
            last_addr: String::new(),
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

    /// The slot map's node for `slot` (refreshing the map if it has none).
    fn addr_of(&mut self, slot: usize) -> String {
        if let Some(a) = &self.slots[slot] {
            return a.clone();
        }
        self.refresh();
        self.slots[slot]
            .clone()
            .unwrap_or_else(|| self.seeds[0].clone())
    }

    /// A cached connection to `addr` (2 s reply timeout).
    fn conn_to(&mut self, addr: &str) -> Result<&mut Conn, String> {
        if !self.conns.contains_key(addr) {
            let mut c = Conn::try_connect_addr(addr).map_err(|e| format!("connect {addr}: {e}"))?;
            c.set_timeout(Duration::from_secs(2));
            self.conns.insert(addr.to_string(), c);
        }
        Ok(self.conns.get_mut(addr).expect("just inserted"))
    }

    /// Sends one command to the owner of `key`'s slot. Follows MOVED
    /// (updating the slot map) and ASK (ASKING then the command on the
    /// named node, map unchanged); retries TRYAGAIN for up to 5 s. Returns
    /// the final reply, or Err on an I/O error (the command may or may not
    /// have run).
    pub fn call(&mut self, key: &str, args: &[&str]) -> Result<Reply, String> {
        let slot = key_slot(key.as_bytes()) as usize;
        let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
        let started = Instant::now();
        let mut ask: Option<String> = None;
        let mut redirections = 0;
        loop {
            let asking = ask.is_some();
            let addr = match ask.take() {
                Some(a) => a,
                None => self.addr_of(slot),
            };
            self.last_addr.clone_from(&addr);
            let res = match self.conn_to(&addr) {
                Err(e) => Err(e),
                Ok(conn) if asking => {
                    let mut req = super::encode(&[b"ASKING"]);
                    req.extend_from_slice(&super::encode(&a));
                    let exchange = |conn: &mut Conn| -> std::io::Result<Reply> {
                        conn.try_send(&req)?;
                        let asking_reply = conn.try_read()?;
                        let r = conn.try_read()?;
                        Ok(if asking_reply == Reply::ok() {
                            r
                        } else {
                            asking_reply
                        })
                    };
                    exchange(conn).map_err(|e| format!("{addr}: {e}"))
                }
                Ok(conn) => conn.try_call(&a).map_err(|e| format!("{addr}: {e}")),
            };
            match res {
                Ok(Reply::Error(e)) if e.starts_with("MOVED ") => {
                    let to = e.split(' ').nth(2).unwrap_or_default().to_string();
                    self.slots[slot] = Some(to);
                    self.moved += 1;
                    redirections += 1;
                }
                Ok(Reply::Error(e)) if e.starts_with("ASK ") => {
                    ask = Some(e.split(' ').nth(2).unwrap_or_default().to_string());
                    self.asks += 1;
                    redirections += 1;
                }
                Ok(Reply::Error(e)) if e.starts_with("TRYAGAIN") => {
                    self.tryagains += 1;
                    if started.elapsed() > TRYAGAIN_FOR {
                        return Ok(Reply::Error(e));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.conns.remove(&addr);
                    if !asking {
                        self.slots[slot] = None;
                    }
                    return Err(e);
                }
            }
            if redirections > 10 {
                return Err(format!("too many redirections for {key}"));
            }
        }
    }

    /// SETs every `(key, value)` pair: pipelined (chunks of 500) to the
    /// owner of each key's slot in the current map; a pair whose pipelined
    /// reply is not `+OK` (a stale map, a slot in migration) is sent again
    /// one by one with [`Router::call`]. Err if any pair ends unacknowledged.
    pub fn set_many(&mut self, pairs: &[(String, String)]) -> Result<(), String> {
        let mut by_node: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, (k, _)) in pairs.iter().enumerate() {
            let addr = self.addr_of(key_slot(k.as_bytes()) as usize);
            by_node.entry(addr).or_default().push(i);
        }
        let mut again = Vec::new();
        for (addr, idx) in by_node {
            for chunk in idx.chunks(500) {
                let conn = self.conn_to(&addr)?;
                let mut req = Vec::new();
                for &i in chunk {
                    let (k, v) = &pairs[i];
                    req.extend_from_slice(&super::encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
                }
                conn.try_send(&req).map_err(|e| format!("{addr}: {e}"))?;
                for &i in chunk {
                    match conn.try_read().map_err(|e| format!("{addr}: {e}"))? {
                        r if r == Reply::ok() => {}
                        _ => again.push(i),
                    }
                }
            }
        }
        for i in again {
            let (k, v) = &pairs[i];
            match self.call(k, &["SET", k, v])? {
                r if r == Reply::ok() => {}
                other => return Err(format!("SET {k}: {other:?}")),
            }
        }
        Ok(())
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
        Writer::start_paced(seeds, prefix, Duration::ZERO)
    }

    /// [`Writer::start`], pausing `pace` after every acknowledged write
    /// (to bound the number of keys a long test writes).
    pub fn start_paced(seeds: Vec<String>, prefix: &str, pace: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let (s, a, p) = (stop.clone(), acks.clone(), prefix.to_string());
        let handle = std::thread::spawn(move || run(seeds, p, s, a, pace));
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

fn run(
    seeds: Vec<String>,
    prefix: String,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    pace: Duration,
) -> Record {
    let mut router = Router::new(seeds);
    let mut rec = Record {
        prefix: prefix.clone(),
        incr_acked: vec![0; COUNTERS as usize],
        incr_uncertain: vec![0; COUNTERS as usize],
        ..Default::default()
    };
    let started = Instant::now();
    let mut last_ack = started;
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
                if rec.first_errors.len() < 10 {
                    rec.first_errors.push(format!(
                        "{:?} {key} on {}: -{e}",
                        started.elapsed(),
                        router.last_addr
                    ));
                }
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
                if rec.first_errors.len() < 10 {
                    rec.first_errors.push(format!(
                        "{:?} {key} on {}: {e}",
                        started.elapsed(),
                        router.last_addr
                    ));
                }
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
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
        } else if skip {
            // An INCR that failed cleanly is retried; an uncertain one is
            // not (next operation).
            i += 1;
        }
    }
    rec.asks = router.asks;
    rec.tryagains = router.tryagains;
    rec.moved = router.moved;
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
