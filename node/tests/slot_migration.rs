//! Slot migration with real processes (cluster-node-timeout 2000):
//! redis-cli add-node / rebalance / reshard / del-node under writes, on our
//! nodes and on a cluster mixing ours with redis-server 7.0, with a monitor
//! checking that no slot is ever claimed by two masters; an interrupted
//! migration (target or source killed) repaired by `redis-cli --cluster
//! fix`; redis-py's and the `redis` crate's cluster clients through a
//! reshard; ASK, TRYAGAIN, ASKING and the errors of CLUSTER SETSLOT
//! compared with redis-server 7.0; a blocked client redirected when its
//! slot moves away.
//!
//! Addresses: 127.0.143.x .. 127.0.149.x (141 and 142 are shutdown.rs's).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::cluster::{
    agreed, cli_check, key_slot, need, parse_node_line, redis_cli, scan_keys, slot_share, Cluster,
    Kind, Layout, CLI,
};
use common::writer::{verify, Record, Router, Writer};
use common::{Conn, Reply};

use Kind::{Ours, Redis};

const NODE_TIMEOUT: u64 = 2000;

/// Runs redis-cli; panics with its output unless it exits 0.
fn cli(args: &[&str]) -> String {
    let (ok, out) = redis_cli(args);
    assert!(ok, "redis-cli {args:?} failed:\n{}", tail_chars(&out, 4000));
    out
}

/// The last `n` characters of `s` (for long redis-cli outputs).
fn tail_chars(s: &str, n: usize) -> String {
    let skip = s.chars().count().saturating_sub(n);
    s.chars().skip(skip).collect()
}

fn addrs(c: &Cluster, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|&i| c[i].addr()).collect()
}

/// Waits until the nodes `idx` agree (see [`agreed`]); returns the layout.
fn wait_agreed(c: &Cluster, idx: &[usize], what: &str) -> Layout {
    let mut layout = Layout::new();
    c.wait_for(what, Duration::from_secs(30), |c| {
        layout = agreed(c, idx)?;
        Ok(())
    });
    layout
}

fn slot_count(layout: &Layout, id: &str) -> usize {
    layout.get(id).map_or(0, |(_, slots)| {
        slots
            .iter()
            .map(|&(a, b)| usize::from(b) - usize::from(a) + 1)
            .sum()
    })
}

/// The id of the master owning `slot` in `layout`.
fn owner_in(layout: &Layout, slot: u16) -> &str {
    layout
        .iter()
        .find(|(_, (_, slots))| slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
        .map(|(id, _)| id.as_str())
        .expect("every slot has an owner")
}

/// The `[slot->-id]` / `[slot-<-id]` entries of the `myself` line of a
/// CLUSTER NODES text, space-separated ("" when none).
fn open_marks(nodes_text: &str) -> String {
    nodes_text
        .lines()
        .find(|l| {
            l.split(' ')
                .nth(2)
                .is_some_and(|f| f.split(',').any(|x| x == "myself"))
        })
        .map(|l| {
            l.split(' ')
                .filter(|f| f.starts_with('['))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A hash tag (without braces) whose slot `pick` accepts.
fn tag_where(prefix: &str, pick: impl Fn(u16) -> bool) -> String {
    (0..1_000_000)
        .map(|n| format!("{prefix}{n}"))
        .find(|t| pick(key_slot(t.as_bytes())))
        .expect("some tag hashes there")
}

// ---------------------------------------------------------------------
// The ownership monitor.

/// What a node claims about itself in one poll.
struct Claim {
    id: String,
    addr: String,
    line: String,
    slots: Vec<(u16, u16)>,
    /// Slots it shows as `[slot->-target]`.
    migrating: HashMap<u16, String>,
}

fn claim_of(addr: &str, text: &str) -> Option<Claim> {
    let line = text.lines().find(|l| {
        l.split(' ')
            .nth(2)
            .is_some_and(|f| f.split(',').any(|x| x == "myself"))
    })?;
    let parsed = parse_node_line(line).ok()?;
    if !parsed.has_flag("master") {
        return None;
    }
    let migrating = line
        .split(' ')
        .filter_map(|f| f.strip_prefix('[')?.strip_suffix(']')?.split_once("->-"))
        .filter_map(|(s, to)| Some((s.parse().ok()?, to.to_string())))
        .collect();
    Some(Claim {
        id: parsed.id.clone(),
        addr: addr.to_string(),
        line: line.chars().take(300).collect(),
        slots: parsed.slots,
        migrating,
    })
}

/// What the monitor saw.
#[derive(Debug, Default)]
struct MonitorReport {
    rounds: u64,
    /// Polls that failed (a node restarting or slow).
    poll_errors: u64,
    longest_round: Duration,
    /// (slot, node pair) double claims seen in a single round only: the
    /// polls of one round are not simultaneous, so a slot handed over
    /// between two polls is seen on both sides.
    transient: u64,
    /// Double claims where the old owner showed the slot `[slot->-new]`:
    /// the instant between the target's and the source's SETSLOT NODE.
    handover: u64,
    /// Double claims seen in two consecutive rounds (>= 50 ms apart)
    /// without the old owner migrating the slot to the other, or a
    /// handover lasting more than a second.
    violations: Vec<String>,
}

/// Polls CLUSTER NODES of every address about every 50 ms and looks for a
/// slot claimed by two different nodes as `myself,master`.
struct Monitor {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<MonitorReport>>,
}

impl Monitor {
    fn start(addrs: Vec<String>) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || monitor_loop(&addrs, &s));
        Monitor {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) -> MonitorReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map(|h| h.join().expect("monitor thread"))
            .unwrap_or_default()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn monitor_loop(addrs: &[String], stop: &AtomicBool) -> MonitorReport {
    let started = Instant::now();
    let mut rep = MonitorReport::default();
    let mut conns: HashMap<String, Conn> = HashMap::new();
    // (slot, id, id) -> when first seen, in consecutive rounds.
    let mut prev: HashMap<(u16, String, String), Duration> = HashMap::new();
    let mut reported: HashSet<(u16, String, String)> = HashSet::new();
    while !stop.load(Ordering::Relaxed) {
        let round = Instant::now();
        let now = started.elapsed();
        let mut claims = Vec::new();
        for a in addrs {
            if !conns.contains_key(a) {
                match Conn::try_connect_addr(a) {
                    Ok(mut c) => {
                        c.set_timeout(Duration::from_secs(1));
                        conns.insert(a.clone(), c);
                    }
                    Err(_) => {
                        rep.poll_errors += 1;
                        continue;
                    }
                }
            }
            let conn = conns.get_mut(a).expect("connected");
            match conn.try_call(&[b"CLUSTER", b"NODES"]) {
                Ok(r @ (Reply::Bulk(_) | Reply::Verbatim(..))) => {
                    if let Some(cl) = claim_of(a, &r.text()) {
                        claims.push(cl);
                    }
                }
                _ => {
                    rep.poll_errors += 1;
                    conns.remove(a);
                }
            }
        }
        let mut owner: Vec<Option<usize>> = vec![None; 16384];
        let mut seen: HashMap<(u16, String, String), Duration> = HashMap::new();
        for (ci, cl) in claims.iter().enumerate() {
            for &(a, b) in &cl.slots {
                for s in a..=b {
                    let Some(o) = owner[usize::from(s)] else {
                        owner[usize::from(s)] = Some(ci);
                        continue;
                    };
                    let (x, y) = (&claims[o], cl);
                    let handover =
                        x.migrating.get(&s) == Some(&y.id) || y.migrating.get(&s) == Some(&x.id);
                    let key = if x.id < y.id {
                        (s, x.id.clone(), y.id.clone())
                    } else {
                        (s, y.id.clone(), x.id.clone())
                    };
                    let since = prev.get(&key).copied();
                    seen.insert(key.clone(), since.unwrap_or(now));
                    let bad = match since {
                        None => {
                            if handover {
                                rep.handover += 1;
                            } else {
                                rep.transient += 1;
                            }
                            false
                        }
                        Some(first) => !handover || now - first > Duration::from_secs(1),
                    };
                    if bad && reported.insert(key) && rep.violations.len() < 20 {
                        rep.violations.push(format!(
                            "at {now:?} (since {:?}): slot {s} claimed by {} and {}:\n  {}\n  {}",
                            since.unwrap_or(now),
                            x.addr,
                            y.addr,
                            x.line,
                            y.line
                        ));
                    }
                }
            }
        }
        prev = seen;
        rep.rounds += 1;
        rep.longest_round = rep.longest_round.max(round.elapsed());
        if let Some(left) = Duration::from_millis(50).checked_sub(round.elapsed()) {
            std::thread::sleep(left);
        }
    }
    rep
}

// ---------------------------------------------------------------------
// 1, 2: redis-cli add-node, rebalance, reshard, del-node under writes.

/// Keys pre-loaded before the rebalance.
const PRELOAD: usize = 20_000;

fn record_line(name: &str, r: &Record) -> String {
    format!(
        "{name}: {} SETs, INCRs acked {}, uncertain {}, errors {:?} {:?}, MOVED {}, ASK {}, TRYAGAIN {}, longest gap {:?}",
        r.sets,
        r.incr_acked.iter().sum::<u64>(),
        r.incr_uncertain.iter().sum::<u64>(),
        r.errors,
        r.first_errors,
        r.moved,
        r.asks,
        r.tryagains,
        r.longest_gap
    )
}

/// Masters 0, 1, 2 (of `kinds`) formed; node 3 is added with redis-cli,
/// filled by a rebalance and a reshard, emptied by a rebalance with weight
/// 0 and deleted, all under two writers (one spread over every slot, one
/// in a single slot that surely moves) and the ownership monitor.
fn add_rebalance_reshard_del(k: u8, kinds: [Kind; 4]) {
    need(CLI);
    let t0 = Instant::now();
    // (phase, started at since the test began, duration)
    let mut timings: Vec<(&str, Duration, Duration)> = Vec::new();
    let mut c = Cluster::new(k, NODE_TIMEOUT);
    for kind in kinds {
        c.add(kind, &[], &[]);
    }
    c.assign_slots(&[0, 1, 2]);
    c.meet(0, 1);
    c.meet(0, 2);
    wait_agreed(&c, &[0, 1, 2], "the three masters to agree");
    let seeds = addrs(&c, &[0, 1, 2]);
    let seed = c[0].addr();
    let ids: Vec<String> = (0..4).map(|i| c[i].myid()).collect();
    timings.push(("cluster formed", Duration::ZERO, t0.elapsed()));

    let t = Instant::now();
    let pre: Vec<(String, String)> = (0..PRELOAD)
        .map(|i| (format!("pre:{i}"), i.to_string()))
        .collect();
    Router::new(seeds.clone()).set_many(&pre).expect("pre-load");
    timings.push(("pre-load", t - t0, t.elapsed()));

    let monitor = Monitor::start(addrs(&c, &[0, 1, 2, 3]));
    // The hot writer's slot is among node 0's lowest: the rebalance or
    // the reshard (both take a source's lowest slots first) moves it to
    // node 3, and the final rebalance moves it away again.
    let hot_tag = tag_where("hot", |s| s < 64);
    let hot_slot = key_slot(hot_tag.as_bytes());
    let spread = Writer::start_paced(seeds.clone(), "w", Duration::from_millis(1));
    let hot = Writer::start_paced(
        seeds.clone(),
        &format!("{{{hot_tag}}}"),
        Duration::from_millis(1),
    );
    timings.push(("writers started", t0.elapsed(), Duration::ZERO));
    assert!(spread.wait_acks(200, Duration::from_secs(10)));
    assert!(hot.wait_acks(200, Duration::from_secs(10)));

    let t = Instant::now();
    cli(&["--cluster", "add-node", &c[3].addr(), &seed]);
    wait_agreed(&c, &[0, 1, 2, 3], "the new node to join");
    timings.push(("add-node", t - t0, t.elapsed()));

    let t = Instant::now();
    let out = cli(&[
        "--cluster",
        "rebalance",
        &seed,
        "--cluster-use-empty-masters",
    ]);
    let layout = wait_agreed(&c, &[0, 1, 2, 3], "agreement after the rebalance");
    timings.push(("rebalance onto the new master", t - t0, t.elapsed()));
    let after_rebalance = slot_count(&layout, &ids[3]);
    assert!(
        (4000..=4200).contains(&after_rebalance),
        "node 3 has {after_rebalance} slots after the rebalance\n{}",
        tail_chars(&out, 2000)
    );

    let t = Instant::now();
    cli(&[
        "--cluster",
        "reshard",
        &seed,
        "--cluster-from",
        &ids[0],
        "--cluster-to",
        &ids[3],
        "--cluster-slots",
        "500",
        "--cluster-yes",
    ]);
    let layout = wait_agreed(&c, &[0, 1, 2, 3], "agreement after the reshard");
    timings.push(("reshard of 500 slots", t - t0, t.elapsed()));
    assert_eq!(slot_count(&layout, &ids[3]), after_rebalance + 500);
    assert_eq!(
        owner_in(&layout, hot_slot),
        ids[3],
        "the hot slot {hot_slot} should be on node 3 by now"
    );

    let t = Instant::now();
    cli(&[
        "--cluster",
        "rebalance",
        &seed,
        "--cluster-weight",
        &format!("{}=0", ids[3]),
    ]);
    let layout = wait_agreed(&c, &[0, 1, 2, 3], "agreement after emptying node 3");
    timings.push(("rebalance off node 3 (weight 0)", t - t0, t.elapsed()));
    assert_eq!(slot_count(&layout, &ids[3]), 0, "{layout:?}");

    let t = Instant::now();
    cli(&["--cluster", "del-node", &seed, &ids[3]]);
    wait_agreed(&c, &[0, 1, 2], "the three masters without node 3");
    timings.push(("del-node", t - t0, t.elapsed()));

    assert!(
        spread.wait_acks(200, Duration::from_secs(10))
            && hot.wait_acks(200, Duration::from_secs(10)),
        "writes do not flow after the del-node\n{}",
        c.dump()
    );
    let (spread, hot) = (spread.stop(), hot.stop());
    let report = monitor.stop();
    eprintln!("{}", record_line("spread writer", &spread));
    eprintln!(
        "{}",
        record_line(&format!("hot writer (slot {hot_slot})"), &hot)
    );
    eprintln!(
        "monitor: {} rounds (longest {:?}), {} poll errors, {} transient and {} handover double claims, violations: {}",
        report.rounds,
        report.longest_round,
        report.poll_errors,
        report.transient,
        report.handover,
        report.violations.len()
    );

    // Zero acknowledged writes lost.
    let t = Instant::now();
    verify(&spread, seeds.clone()).unwrap_or_else(|e| panic!("spread writer lost writes: {e}"));
    verify(&hot, seeds.clone()).unwrap_or_else(|e| panic!("hot writer lost writes: {e}"));
    timings.push(("verify", t - t0, t.elapsed()));
    assert!(
        report.violations.is_empty(),
        "a slot was claimed by two masters:\n{}",
        report.violations.join("\n")
    );
    assert!(
        hot.asks > 0,
        "the hot writer never met -ASK although its slot moved: {hot:?}"
    );

    // Every key on exactly one node, the owner of its slot.
    let layout = agreed(&c, &[0, 1, 2]).unwrap();
    let mut total = 0;
    let mut distinct = BTreeSet::new();
    let mut misplaced = Vec::new();
    for i in 0..4 {
        let keys = scan_keys(&c[i], "*");
        total += keys.len();
        for key in keys {
            if i == 3 || owner_in(&layout, key_slot(key.as_bytes())) != ids[i] {
                misplaced.push(format!("{key} on {}", c[i].name()));
            }
            distinct.insert(key);
        }
    }
    assert!(
        misplaced.is_empty(),
        "{} keys outside their slot's owner, e.g. {:?}",
        misplaced.len(),
        &misplaced[..misplaced.len().min(10)]
    );
    assert_eq!(total, distinct.len(), "some key exists on two nodes");
    let missing: Vec<&String> = pre
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !distinct.contains(*k))
        .collect();
    assert!(
        missing.is_empty(),
        "{} pre-loaded keys lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let writer_keys = (spread.sets + hot.sets) as usize;
    assert!(
        distinct.len() >= PRELOAD + writer_keys && distinct.len() <= PRELOAD + writer_keys + 32,
        "{} keys, expected {PRELOAD} pre-loaded + {writer_keys} SET + at most 32 counters",
        distinct.len()
    );

    c.wait_for(
        "redis-cli --cluster check to be clean",
        Duration::from_secs(15),
        |_| cli_check(&seed).map(|_| ()),
    );
    let check = cli_check(&seed).unwrap();
    assert!(
        check.contains(&format!("[OK] {} keys in 3 masters.", distinct.len())),
        "{check}"
    );
    timings.push(("total", Duration::ZERO, t0.elapsed()));
    eprintln!(
        "timings ({kinds:?}, nodes {:?}): {timings:?}",
        addrs(&c, &[0, 1, 2, 3])
    );
}

#[test]
fn redis_cli_reshard_rebalance_add_and_del_node_on_our_nodes_under_writes() {
    add_rebalance_reshard_del(143, [Ours, Ours, Ours, Ours]);
}

#[test]
fn redis_cli_reshard_rebalance_add_and_del_node_on_a_mixed_cluster_under_writes() {
    add_rebalance_reshard_del(144, [Ours, Redis, Ours, Redis]);
}

// ---------------------------------------------------------------------
// 3: an interrupted migration repaired by redis-cli --cluster fix.

/// Opens a slot of `src` towards `dst` by hand, MIGRATEs half of its 40
/// keys, kills and restarts the target (`kill_target`) or the source, and
/// repairs with `redis-cli --cluster fix`. Our nodes have no persistence
/// yet (docs/compatibility.md), so the keys the killed process held are
/// gone; every other key of the slot must end readable, exactly once, on
/// the slot's owner.
fn interrupt_and_fix(c: &mut Cluster, src: usize, dst: usize, kill_target: bool) {
    let other = 3 - src - dst;
    let (lo, hi) = slot_share(src, 3);
    let tag = tag_where(&format!("fix{src}{dst}-"), |s| (lo..=hi).contains(&s));
    let slot = key_slot(tag.as_bytes());
    let keys: Vec<String> = (0..40).map(|i| format!("{{{tag}}}k{i}")).collect();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c[src].cmd(&["SET", k, &format!("v{i}")]), Reply::ok());
    }
    let (sid, did) = (c[src].myid(), c[dst].myid());
    let s = slot.to_string();
    assert_eq!(
        c[dst].cmd(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &sid]),
        Reply::ok()
    );
    assert_eq!(
        c[src].cmd(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &did]),
        Reply::ok()
    );
    let port = c[dst].port.to_string();
    let mut mig = vec!["MIGRATE", &c[dst].ip, &port, "", "0", "5000", "KEYS"];
    mig.extend(keys[..20].iter().map(String::as_str));
    assert_eq!(c[src].cmd(&mig), Reply::ok());
    assert_eq!(
        open_marks(&c[src].nodes_text().unwrap()),
        format!("[{slot}->-{did}]")
    );
    assert_eq!(
        open_marks(&c[dst].nodes_text().unwrap()),
        format!("[{slot}-<-{sid}]")
    );

    let victim = if kill_target { dst } else { src };
    let mark = if kill_target {
        format!("[{slot}-<-{sid}]")
    } else {
        format!("[{slot}->-{did}]")
    };
    // The open slot reaches nodes.conf (redis writes it before replying).
    let conf = c[victim].dir.join("nodes.conf");
    c.wait_for(
        "the open slot in nodes.conf",
        Duration::from_secs(2),
        |_| {
            let text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
            text.contains(&mark)
                .then_some(())
                .ok_or_else(|| format!("nodes.conf lacks {mark}:\n{text}"))
        },
    );
    let vid = c[victim].myid();
    c[victim].kill();
    c[victim].start().unwrap();
    assert_eq!(c[victim].myid(), vid, "nodes.conf not reloaded");
    assert_eq!(
        open_marks(&c[victim].nodes_text().unwrap()),
        mark,
        "the restarted node lost its open slot"
    );
    wait_agreed(c, &[0, 1, 2], "the restarted node to rejoin");

    let seed = c[other].addr();
    let (ok, out) = redis_cli(&["--cluster", "fix", &seed]);
    assert!(ok, "redis-cli --cluster fix failed:\n{out}");
    eprintln!(
        "fix after killing the {}: {}",
        if kill_target { "target" } else { "source" },
        out.lines()
            .filter(|l| {
                ["Case", "Fixing", "Found keys", "Configuring"]
                    .iter()
                    .any(|w| l.contains(w))
            })
            .map(|l| l
                .replace("\x1b[0m", "")
                .replace("\x1b[29;1m", "")
                .replace("\x1b[33;1m", ""))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    c.wait_for(
        "redis-cli --cluster check to be clean",
        Duration::from_secs(15),
        |_| cli_check(&seed).map(|_| ()),
    );

    let layout = wait_agreed(c, &[0, 1, 2], "agreement after the fix");
    let owner = owner_in(&layout, slot).to_string();
    let (survivors, lost) = if kill_target {
        (&keys[20..], &keys[..20])
    } else {
        (&keys[..20], &keys[20..])
    };
    let mut holders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..3 {
        let r = c[i].cmd(&["CLUSTER", "GETKEYSINSLOT", &s, "1000"]);
        for k in r.array() {
            holders.entry(k.text()).or_default().push(c[i].myid());
        }
    }
    for (i, k) in keys.iter().enumerate() {
        let want: Vec<String> = if survivors.contains(k) {
            vec![owner.clone()]
        } else {
            Vec::new()
        };
        assert_eq!(
            holders.get(k).cloned().unwrap_or_default(),
            want,
            "{k} (lost with the killed process: {})",
            lost.contains(k)
        );
        if survivors.contains(k) {
            let mut r = Router::new(addrs(c, &[0, 1, 2]));
            assert_eq!(r.call(k, &["GET", k]), Ok(Reply::bulk(&format!("v{i}"))));
        }
    }
    assert_eq!(holders.len(), survivors.len(), "{holders:?}");
}

#[test]
fn interrupted_migration_is_repaired_by_redis_cli_fix() {
    need(CLI);
    let t0 = Instant::now();
    let mut c = Cluster::start(145, NODE_TIMEOUT, &[Ours; 3]);
    c.form();
    // (a) the target dies mid-migration; (b) the source does.
    interrupt_and_fix(&mut c, 0, 1, true);
    interrupt_and_fix(&mut c, 2, 0, false);
    eprintln!("interrupted migrations: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------
// 4, 5: cluster clients through a reshard.

/// Reshards `n` slots from node `from` to node `to` with redis-cli.
fn reshard(c: &Cluster, from: usize, to: usize, n: usize) {
    cli(&[
        "--cluster",
        "reshard",
        &c[0].addr(),
        "--cluster-from",
        &c[from].myid(),
        "--cluster-to",
        &c[to].myid(),
        "--cluster-slots",
        &n.to_string(),
        "--cluster-yes",
    ]);
    wait_agreed(c, &[0, 1, 2], "agreement after the reshard");
}

/// Kills a child process on drop.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const PY_CLIENT: &str = r#"
import json, logging, os, random, sys, time
from collections import Counter
from redis.cluster import RedisCluster, ClusterNode

host, port, ready_path, stop_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
redirects = Counter()

class Count(logging.Handler):
    def emit(self, record):
        redirects[str(record.msg)] += 1

log = logging.getLogger("redis.cluster")
log.addHandler(Count())
log.propagate = False
log.setLevel(logging.ERROR)

rc = RedisCluster(startup_nodes=[ClusterNode(host, port)], decode_responses=True,
                  socket_timeout=5)
N = 3000
rng = random.Random(1)
expected = {}
stats = Counter()
errors = []

def note(what):
    if len(errors) < 20:
        errors.append(what)

i = 0
started = time.time()
while True:
    k = "py:%d" % (i % N)
    v = str(i)
    try:
        rc.set(k, v)
        expected[k] = v
        stats["sets"] += 1
    except Exception as e:
        expected.pop(k, None)
        stats["exceptions"] += 1
        note("SET %s: %r" % (k, e))
    k2 = "py:%d" % rng.randrange(N)
    if k2 in expected:
        try:
            got = rc.get(k2)
            stats["gets"] += 1
            if got != expected[k2]:
                stats["mismatches"] += 1
                note("GET %s = %r, last SET %r" % (k2, got, expected[k2]))
        except Exception as e:
            stats["exceptions"] += 1
            note("GET %s: %r" % (k2, e))
    i += 1
    if i == N:
        open(ready_path, "w").close()
    if i % 50 == 0 and (os.path.exists(stop_path) or time.time() - started > 150):
        break
for k, v in expected.items():
    try:
        got = rc.get(k)
        stats["final_gets"] += 1
        if got != v:
            stats["mismatches"] += 1
            note("final GET %s = %r, last SET %r" % (k, got, v))
    except Exception as e:
        stats["exceptions"] += 1
        note("final GET %s: %r" % (k, e))
print(json.dumps({"stats": stats, "redirects": redirects, "errors": errors}))
sys.exit(0 if stats["exceptions"] == 0 and stats["mismatches"] == 0 else 1)
"#;

/// Digits following `"name": ` in a JSON text (0 when absent).
fn json_count(text: &str, name: &str) -> u64 {
    text.split(&format!("\"{name}\": "))
        .nth(1)
        .map(|r| {
            r.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

#[test]
fn redis_py_cluster_client_keeps_working_through_a_reshard() {
    need(CLI);
    need("/usr/bin/python3");
    let t0 = Instant::now();
    let c = Cluster::start(146, NODE_TIMEOUT, &[Ours; 3]);
    c.form();
    let root = c.root().to_path_buf();
    let script = root.join("client.py");
    std::fs::write(&script, PY_CLIENT).unwrap();
    let (ready, stop, out, err) = (
        root.join("ready"),
        root.join("stop"),
        root.join("py.out"),
        root.join("py.err"),
    );
    let child = Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(&c[0].ip)
        .arg(c[0].port.to_string())
        .arg(&ready)
        .arg(&stop)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run /usr/bin/python3");
    let mut child = ChildGuard(child);
    c.wait_for("the client's first pass", Duration::from_secs(60), |_| {
        if let Ok(Some(st)) = child.0.try_wait() {
            panic!(
                "the python client exited early ({st}): {}{}",
                std::fs::read_to_string(&out).unwrap_or_default(),
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        ready.exists().then_some(()).ok_or("not yet".to_string())
    });
    let t = Instant::now();
    reshard(&c, 0, 1, 3000);
    reshard(&c, 1, 2, 1000);
    let took = t.elapsed();
    std::fs::write(&stop, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the python client did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&out).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    eprintln!("redis-py: {}", stdout.trim());
    eprintln!(
        "redis-py: resharding 4000 slots took {took:?}, test {:?}",
        t0.elapsed()
    );
    assert!(
        status.success(),
        "the python client failed ({status}):\n{stdout}\n{}",
        tail_chars(&stderr, 3000)
    );
    assert_eq!(json_count(&stdout, "exceptions"), 0, "{stdout}");
    assert_eq!(json_count(&stdout, "mismatches"), 0, "{stdout}");
    assert!(json_count(&stdout, "sets") > 3000, "{stdout}");
    assert!(json_count(&stdout, "final_gets") > 2900, "{stdout}");
    assert!(
        json_count(&stdout, "MovedError") > 0,
        "the client never saw the slots move: {stdout}"
    );
}

/// What the `redis` crate client saw.
#[derive(Debug, Default)]
struct CrateReport {
    sets: u64,
    gets: u64,
    final_gets: u64,
    errors: Vec<String>,
    error_count: u64,
    mismatches: u64,
}

const CRATE_KEYS: u64 = 3000;

fn note(rep: &mut CrateReport, what: String) {
    rep.error_count += 1;
    if rep.errors.len() < 20 {
        rep.errors.push(what);
    }
}

fn crate_client(
    seed: String,
    ready: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) -> CrateReport {
    use redis::cluster::ClusterClient;
    let client = ClusterClient::builder(vec![format!("redis://{seed}/")])
        .response_timeout(Duration::from_secs(5))
        .connection_timeout(Duration::from_secs(5))
        .build()
        .expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    let mut rep = CrateReport::default();
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut rng_state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut i: u64 = 0;
    loop {
        let k = format!("rs:{}", i % CRATE_KEYS);
        let v = i.to_string();
        match redis::cmd("SET")
            .arg(&k)
            .arg(&v)
            .query::<redis::Value>(&mut con)
        {
            Ok(redis::Value::Okay) => {
                expected.insert(k.clone(), v);
                rep.sets += 1;
            }
            Ok(r) => {
                expected.remove(&k);
                note(&mut rep, format!("SET {k}: {r:?}"));
            }
            Err(e) => {
                expected.remove(&k);
                note(&mut rep, format!("SET {k}: {e}"));
            }
        }
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let k2 = format!("rs:{}", rng_state % CRATE_KEYS);
        if let Some(want) = expected.get(&k2) {
            match redis::cmd("GET").arg(&k2).query::<Option<String>>(&mut con) {
                Ok(got) => {
                    rep.gets += 1;
                    if got.as_deref() != Some(want.as_str()) {
                        rep.mismatches += 1;
                        note(&mut rep, format!("GET {k2} = {got:?}, last SET {want}"));
                    }
                }
                Err(e) => note(&mut rep, format!("GET {k2}: {e}")),
            }
        }
        i += 1;
        ops.fetch_add(1, Ordering::Relaxed);
        if i == CRATE_KEYS {
            ready.store(true, Ordering::Relaxed);
        }
        if (i >= CRATE_KEYS && stop.load(Ordering::Relaxed)) || i > 2_000_000 {
            break;
        }
    }
    for (k, want) in &expected {
        match redis::cmd("GET").arg(k).query::<Option<String>>(&mut con) {
            Ok(got) => {
                rep.final_gets += 1;
                if got.as_deref() != Some(want.as_str()) {
                    rep.mismatches += 1;
                    note(
                        &mut rep,
                        format!("final GET {k} = {got:?}, last SET {want}"),
                    );
                }
            }
            Err(e) => note(&mut rep, format!("final GET {k}: {e}")),
        }
    }
    rep
}

#[test]
fn redis_crate_cluster_client_keeps_working_through_a_reshard() {
    need(CLI);
    let t0 = Instant::now();
    let c = Cluster::start(147, NODE_TIMEOUT, &[Ours; 3]);
    c.form();
    let (ready, stop, ops) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let handle = {
        let (seed, r, s, o) = (c[0].addr(), ready.clone(), stop.clone(), ops.clone());
        std::thread::spawn(move || crate_client(seed, r, s, o))
    };
    c.wait_for("the client's first pass", Duration::from_secs(60), |_| {
        assert!(!handle.is_finished(), "the client thread ended early");
        ready
            .load(Ordering::Relaxed)
            .then_some(())
            .ok_or("not yet".to_string())
    });
    let before = ops.load(Ordering::Relaxed);
    let t = Instant::now();
    reshard(&c, 0, 1, 3000);
    reshard(&c, 1, 2, 1000);
    let took = t.elapsed();
    let during = ops.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let rep = handle.join().expect("client thread");
    eprintln!(
        "redis crate: {} ops during the reshard of 4000 slots ({took:?}); {rep:?}; test {:?}",
        during,
        t0.elapsed()
    );
    assert_eq!(rep.error_count, 0, "{rep:?}");
    assert_eq!(rep.mismatches, 0, "{rep:?}");
    assert!(during > 0, "the client made no progress during the reshard");
    assert!(rep.final_gets > 2900, "{rep:?}");
}

// ---------------------------------------------------------------------
// 6: ASK, TRYAGAIN, ASKING and SETSLOT errors, compared with redis.

/// One side of the comparison: a source and a target master (slots 0-8191
/// and 8192-16383) and a replica of the source.
struct Side {
    src: usize,
    dst: usize,
    replica: usize,
}

/// One step: which node ("src", "dst", "rep"), the command (placeholders
/// substituted), and what our node must reply (`None`: only compared with
/// redis).
type Step = (&'static str, &'static str, Option<&'static str>);

const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef01234567";

const STEPS: &[Step] = &[
    ("src", "SET {T}present v", Some("+OK")),
    // SETSLOT errors, slot still stable.
    ("dst", "CLUSTER SETSLOT <S> MIGRATING <SRC>", Some("-ERR I'm not the owner of hash slot <S>")),
    ("src", "CLUSTER SETSLOT <S> IMPORTING <DST>", Some("-ERR I'm already the owner of hash slot <S>")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING <UNKNOWN>", Some("-ERR I don't know about node <UNKNOWN>")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING abc", Some("-ERR I don't know about node abc")),
    ("dst", "CLUSTER SETSLOT <S> IMPORTING <UNKNOWN>", Some("-ERR I don't know about node <UNKNOWN>")),
    ("src", "CLUSTER SETSLOT <S> NODE <UNKNOWN>", Some("-ERR Unknown node <UNKNOWN>")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING <REP>", Some("-ERR Target node is not a master")),
    ("dst", "CLUSTER SETSLOT <S> IMPORTING <REP>", Some("-ERR Target node is not a master")),
    ("src", "CLUSTER SETSLOT <S> NODE <REP>", Some("-ERR Target node is not a master")),
    ("src", "CLUSTER SETSLOT <S> NODE <DST>", Some("-ERR Can't assign hashslot <S> to a different node while I still hold keys for this hash slot.")),
    ("src", "CLUSTER SETSLOT <S> FOO <DST>", Some("-ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")),
    ("src", "CLUSTER SETSLOT <S> STABLE extra", Some("-ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING", Some("-ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")),
    ("src", "CLUSTER SETSLOT <S> NODE", Some("-ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP")),
    ("src", "CLUSTER SETSLOT <S>", None),
    ("src", "CLUSTER SETSLOT 16384 STABLE", Some("-ERR Invalid or out of range slot")),
    ("src", "CLUSTER SETSLOT -1 STABLE", Some("-ERR Invalid or out of range slot")),
    ("src", "CLUSTER SETSLOT abc STABLE", Some("-ERR Invalid or out of range slot")),
    ("rep", "CLUSTER SETSLOT <S> STABLE", Some("-ERR Please use SETSLOT only with masters.")),
    ("rep", "CLUSTER SETSLOT 99999 FOO", Some("-ERR Please use SETSLOT only with masters.")),
    ("rep", "CLUSTER SETSLOT <S> MIGRATING <DST>", Some("-ERR Please use SETSLOT only with masters.")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING <SRC>", None),
    ("src", "CLUSTER SETSLOT <S> STABLE", Some("+OK")),
    ("dst", "CLUSTER SETSLOT <S> IMPORTING <DST>", None),
    ("dst", "CLUSTER SETSLOT <S> STABLE", Some("+OK")),
    ("src", "CLUSTER SETSLOT <S> STABLE", Some("+OK")),
    // Open the slot.
    ("dst", "CLUSTER SETSLOT <S> IMPORTING <SRC>", Some("+OK")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING <DST>", Some("+OK")),
    ("src", "MARKS", Some("[<S>->-<DST>]")),
    ("dst", "MARKS", Some("[<S>-<-<SRC>]")),
    // The source serves what it has, sends the rest to the target.
    ("src", "GET {T}present", Some("$v")),
    ("src", "GET {T}missing", Some("-ASK <S> <DST_ADDR>")),
    ("src", "SET {T}missing x", Some("-ASK <S> <DST_ADDR>")),
    ("src", "EXISTS {T}missing", Some("-ASK <S> <DST_ADDR>")),
    ("src", "MGET {T}present {T}missing", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    ("src", "MSET {T}present 1 {T}missing 2", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    ("src", "DEL {T}missing {T}present", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    ("src", "MGET {T}present {T}present", Some("[$v, $v]")),
    ("src", "MGET {T}missing {T}missing2", Some("-ASK <S> <DST_ADDR>")),
    ("src", "CLUSTER SETSLOT <S> NODE <DST>", Some("-ERR Can't assign hashslot <S> to a different node while I still hold keys for this hash slot.")),
    ("src", "CLUSTER COUNTKEYSINSLOT <S>", Some(":1")),
    // The target: MOVED without ASKING; ASKING lasts one command.
    ("dst", "GET {T}missing", Some("-MOVED <S> <SRC_ADDR>")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "GET {T}missing", Some("nil")),
    ("dst", "GET {T}missing", Some("-MOVED <S> <SRC_ADDR>")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "SET {T}new n", Some("+OK")),
    ("dst", "GET {T}new", Some("-MOVED <S> <SRC_ADDR>")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "GET {T}new", Some("$n")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "MGET {T}new {T}missing", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "MGET {T}new {T}new", Some("[$n, $n]")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "MSET {T}new2 1 {T}new3 2", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "PING", Some("+PONG")),
    ("dst", "GET {T}new", Some("-MOVED <S> <SRC_ADDR>")),
    // ASKING before MULTI covers the whole transaction.
    ("dst", "ASKING", Some("+OK")),
    ("dst", "MULTI", Some("+OK")),
    ("dst", "SET {T}tx 1", Some("+QUEUED")),
    ("dst", "INCR {T}tx", Some("+QUEUED")),
    ("dst", "EXEC", Some("[+OK, :2]")),
    ("dst", "GET {T}tx", Some("-MOVED <S> <SRC_ADDR>")),
    // A transaction over keys split between the nodes cannot run.
    ("dst", "ASKING", Some("+OK")),
    ("dst", "MULTI", Some("+OK")),
    ("dst", "GET {T}new", Some("+QUEUED")),
    ("dst", "GET {T}missing", Some("+QUEUED")),
    ("dst", "EXEC", Some("-TRYAGAIN Multiple keys request during rehashing of slot")),
    // ASKING inside MULTI is only queued.
    ("dst", "MULTI", Some("+OK")),
    ("dst", "ASKING", None),
    ("dst", "SET {T}tx2 1", None),
    ("dst", "EXEC", None),
    ("dst", "CLUSTER COUNTKEYSINSLOT <S>", Some(":2")),
    // The last key moves; the slot is handed over, target first.
    ("src", "MIGRATE <DST_IP> <DST_PORT> {T}present 0 5000", Some("+OK")),
    ("src", "GET {T}present", Some("-ASK <S> <DST_ADDR>")),
    ("dst", "ASKING", Some("+OK")),
    ("dst", "GET {T}present", Some("$v")),
    ("dst", "CLUSTER SETSLOT <S> NODE <DST>", Some("+OK")),
    ("dst", "MARKS", Some("")),
    ("dst", "GET {T}present", Some("$v")),
    ("src", "CLUSTER SETSLOT <S> NODE <DST>", Some("+OK")),
    ("src", "MARKS", Some("")),
    ("src", "GET {T}present", Some("-MOVED <S> <DST_ADDR>")),
    ("src", "CLUSTER SETSLOT <S> MIGRATING <DST>", Some("-ERR I'm not the owner of hash slot <S>")),
    ("dst", "CLUSTER SETSLOT <S> IMPORTING <SRC>", Some("-ERR I'm already the owner of hash slot <S>")),
    ("dst", "CLUSTER COUNTKEYSINSLOT <S>", Some(":3")),
];

/// A reply in a short, comparable form.
fn show(r: &Reply) -> String {
    match r {
        Reply::Status(s) => format!("+{s}"),
        Reply::Error(e) => format!("-{e}"),
        Reply::Int(n) => format!(":{n}"),
        Reply::Bulk(b) => format!("${}", String::from_utf8_lossy(b)),
        Reply::Nil => "nil".into(),
        Reply::Array(v) => format!("[{}]", v.iter().map(show).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// Runs [`STEPS`] on one side; returns (step, normalized reply) pairs.
fn run_steps(c: &Cluster, side: &Side, tag: &str, slot: u16) -> Vec<(String, String)> {
    let ids = [
        (c[side.src].myid(), "<SRC>"),
        (c[side.dst].myid(), "<DST>"),
        (c[side.replica].myid(), "<REP>"),
    ];
    let sub = |s: &str| {
        let mut s = s
            .replace("{T}", &format!("{{{tag}}}"))
            .replace("<S>", &slot.to_string())
            .replace("<UNKNOWN>", UNKNOWN_ID)
            .replace("<DST_IP>", &c[side.dst].ip)
            .replace("<DST_PORT>", &c[side.dst].port.to_string());
        for (id, name) in &ids {
            s = s.replace(name, id);
        }
        s
    };
    let norm = |s: &str| {
        let mut s = s
            .replace(&c[side.src].addr(), "<SRC_ADDR>")
            .replace(&c[side.dst].addr(), "<DST_ADDR>")
            .replace(UNKNOWN_ID, "<UNKNOWN>");
        for (id, name) in &ids {
            s = s.replace(id, name);
        }
        s.replace(&slot.to_string(), "<S>")
    };
    let mut conns: HashMap<&str, Conn> = HashMap::new();
    conns.insert("src", c[side.src].conn());
    conns.insert("dst", c[side.dst].conn());
    conns.insert("rep", c[side.replica].conn());
    let mut out = Vec::new();
    for &(on, cmd, _) in STEPS {
        let conn = conns.get_mut(on).expect("known node");
        let reply = if cmd == "MARKS" {
            open_marks(&conn.cmd(&["CLUSTER", "NODES"]).text())
        } else {
            let line = sub(cmd);
            let args: Vec<&str> = line.split(' ').collect();
            show(&conn.cmd(&args))
        };
        out.push((format!("{on}: {cmd}"), norm(&reply)));
    }
    out
}

/// Masters `side.src` (slots 0-8191) and `side.dst` (the rest), replica
/// `side.replica` of the source; waits until they agree.
fn build_side(c: &Cluster, side: &Side) {
    for (m, (a, b)) in [(side.src, (0, 8191)), (side.dst, (8192, 16383))] {
        let r = c[m].cmd(&["CLUSTER", "ADDSLOTSRANGE", &a.to_string(), &b.to_string()]);
        assert_eq!(r, Reply::ok());
    }
    c.meet(side.src, side.dst);
    c.meet(side.src, side.replica);
    let idx = [side.src, side.dst, side.replica];
    c.wait_for("the nodes to meet", Duration::from_secs(30), |c| {
        for &i in &idx {
            let lines = c[i].nodes()?;
            if lines.len() != 3 {
                return Err(format!("{} knows {}", c[i].name(), lines.len()));
            }
            common::cluster::healthy(&c[i].name(), &lines)?;
        }
        Ok(())
    });
    let id = c[side.src].myid();
    assert_eq!(
        c[side.replica].cmd(&["CLUSTER", "REPLICATE", &id]),
        Reply::ok()
    );
    wait_agreed(c, &idx, "the replica to be known everywhere");
}

#[test]
fn asking_ask_and_tryagain_redirections() {
    need(CLI);
    let t0 = Instant::now();
    let mut c = Cluster::new(148, NODE_TIMEOUT);
    for k in [Ours, Ours, Ours, Redis, Redis, Redis] {
        c.add(k, &[], &[]);
    }
    let ours = Side {
        src: 0,
        dst: 1,
        replica: 2,
    };
    let redis = Side {
        src: 3,
        dst: 4,
        replica: 5,
    };
    build_side(&c, &ours);
    build_side(&c, &redis);
    // A slot number unlikely to occur inside other replies.
    let tag = tag_where("ask", |s| (1000..8192).contains(&s));
    let slot = key_slot(tag.as_bytes());
    let a = run_steps(&c, &ours, &tag, slot);
    let b = run_steps(&c, &redis, &tag, slot);
    let mut problems = String::new();
    for (((step, got), (_, theirs)), (_, _, want)) in a.iter().zip(&b).zip(STEPS) {
        if let Some(w) = want {
            if got != w {
                let _ = writeln!(problems, "{step}: ours {got:?}, expected {w:?}");
            }
        }
        if got != theirs {
            let _ = writeln!(problems, "{step}: ours {got:?}, redis {theirs:?}");
        }
    }
    assert!(problems.is_empty(), "slot {slot}:\n{problems}");
    // After the hand-over both sides agree on the new owner.
    let src = c[ours.src].myid();
    let dst = c[ours.dst].myid();
    let layout = wait_agreed(&c, &[0, 1, 2], "agreement after the hand-over");
    assert_eq!(owner_in(&layout, slot), dst, "slot {slot}");
    assert_eq!(owner_in(&layout, 0), src);
    eprintln!("ASK/TRYAGAIN/ASKING and SETSLOT errors: {:?}", t0.elapsed());
}

// ---------------------------------------------------------------------
// 7: blocked clients on a slot that moves away.

/// A client blocked in `BLPOP key 0` on node `i`, once the node counts
/// it among its blocked clients.
fn block_on(c: &Cluster, i: usize, key: &str) -> Conn {
    let before = blocked_clients(c, i);
    let mut conn = c[i].conn();
    conn.send(&common::encode(&[b"BLPOP", key.as_bytes(), b"0"]));
    c.wait_for("the client to block", Duration::from_secs(5), |c| {
        let n = blocked_clients(c, i);
        (n > before)
            .then_some(())
            .ok_or(format!("blocked_clients:{n}"))
    });
    conn
}

fn blocked_clients(c: &Cluster, i: usize) -> i64 {
    let mut conn = c[i].conn();
    common::info_int(&mut conn, "clients", "blocked_clients")
}

/// Reads the blocked client's reply; returns it and how long it took.
fn await_reply(conn: &mut Conn, within: Duration) -> (Reply, Duration) {
    let t = Instant::now();
    conn.set_timeout(within);
    let r = conn
        .try_read()
        .unwrap_or_else(|e| panic!("no reply within {within:?}: {e}"));
    (r, t.elapsed())
}

fn setslot(c: &Cluster, on: usize, slot: u16, action: &str, id: &str) {
    let r = c[on].cmd(&["CLUSTER", "SETSLOT", &slot.to_string(), action, id]);
    assert_eq!(
        r,
        Reply::ok(),
        "SETSLOT {slot} {action} on {}",
        c[on].name()
    );
}

#[test]
fn blocked_client_is_redirected_when_its_slot_moves() {
    let t0 = Instant::now();
    let c = Cluster::start(149, NODE_TIMEOUT, &[Ours; 3]);
    c.form();
    let (a, b) = (0, 1);
    let (lo, hi) = slot_share(a, 3);
    let in_a = |s: u16| (lo..=hi).contains(&s);
    let ka = common::cluster::key_where("blk-x", in_a);
    let ky = common::cluster::key_where("blk-y", |s| in_a(s) && s != key_slot(ka.as_bytes()));
    let kz = common::cluster::key_where("blk-z", |s| {
        in_a(s) && s != key_slot(ka.as_bytes()) && s != key_slot(ky.as_bytes())
    });
    let (sx, sy, sz) = (
        key_slot(ka.as_bytes()),
        key_slot(ky.as_bytes()),
        key_slot(kz.as_bytes()),
    );
    let (ida, idb) = (c[a].myid(), c[b].myid());
    let b_addr = c[b].addr();

    let mut x = block_on(&c, a, &ka);
    let mut y = block_on(&c, a, &ky);
    let mut z = block_on(&c, a, &kz);

    // X: the slot is handed over by hand on both sides.
    setslot(&c, b, sx, "IMPORTING", &ida);
    setslot(&c, a, sx, "MIGRATING", &idb);
    // Z's slot is only opened: its client must stay blocked.
    setslot(&c, b, sz, "IMPORTING", &ida);
    setslot(&c, a, sz, "MIGRATING", &idb);
    setslot(&c, b, sx, "NODE", &idb);
    setslot(&c, a, sx, "NODE", &idb);
    let (r, took_x) = await_reply(&mut x, Duration::from_secs(5));
    assert_eq!(r, Reply::Error(format!("MOVED {sx} {b_addr}")));
    assert!(
        took_x < Duration::from_millis(2500),
        "MOVED after {took_x:?}"
    );
    assert_eq!(x.cmd(&["PING"]), Reply::Status("PONG".into()));

    // Y: only the target is told; the source learns from its gossip.
    setslot(&c, b, sy, "IMPORTING", &ida);
    setslot(&c, a, sy, "MIGRATING", &idb);
    setslot(&c, b, sy, "NODE", &idb);
    let (r, took_y) = await_reply(&mut y, Duration::from_secs(8));
    assert_eq!(r, Reply::Error(format!("MOVED {sy} {b_addr}")));
    assert!(took_y < Duration::from_secs(5), "MOVED after {took_y:?}");

    // Z stayed blocked while its slot was only migrating (X's and Y's
    // redirections show the node has looked at its blocked clients).
    assert!(
        z.pending().is_empty() && z.nothing_within(Duration::from_millis(200)),
        "the client blocked on a migrating slot was unblocked: {:?}",
        String::from_utf8_lossy(z.pending())
    );
    setslot(&c, b, sz, "NODE", &idb);
    setslot(&c, a, sz, "NODE", &idb);
    let (r, took_z) = await_reply(&mut z, Duration::from_secs(5));
    assert_eq!(r, Reply::Error(format!("MOVED {sz} {b_addr}")));
    eprintln!(
        "blocked clients redirected after {took_x:?} (both told), {took_y:?} (gossip), {took_z:?}; test {:?}",
        t0.elapsed()
    );
}
