//! Deterministic tests of the cluster state machine: many nodes, a
//! simulated network (delay, loss, duplication, partitions, stopped
//! processes) and a simulated clock. No sockets, no sleeping: a run is a
//! pure function of its seed.

#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use shardline_node::cluster::machine::{Action, LinkId, Machine, Settings};
use shardline_node::cluster::nodes_conf;
use shardline_node::cluster::wire::{
    self, msgtype, nflag, Body, Gossip, Header, Message, NodeName, SlotBitmap,
};

const T0: u64 = 1_800_000_000_000;

enum Ev {
    Tick(usize),
    Deliver {
        to: usize,
        link: LinkId,
        bytes: Bytes,
    },
    Up(usize, LinkId),
    Down(usize, LinkId),
    /// A master's writes are paused and drained (manual failover).
    Drained(usize),
    /// A failover wake-up the machine asked for (`next_wakeup`).
    Poll(usize),
}

struct SimNode {
    m: Machine,
    ip: String,
    cport: u16,
    stopped: bool,
    /// Added to the simulated time this node's machine sees.
    skew: i64,
    /// Emulated replication offset: a master's grows while it takes
    /// writes; a replica copies its master's while it can reach it.
    offset: u64,
    /// Writes paused (PauseWrites until Unpause).
    paused: bool,
    /// A replica whose offset must not advance (a stuck link).
    frozen: bool,
    /// A replica whose replication link is down (the bus still works).
    link_cut: bool,
    /// Replica link: last data, and since when it is down.
    last_io: u64,
    down_since: Option<u64>,
    /// Pending Poll event time (simulated clock), if any.
    poll_at: Option<u64>,
    /// Actions seen, for the tests' checks.
    paused_count: u64,
    unpaused_count: u64,
}

struct Sim {
    nodes: Vec<SimNode>,
    now: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: HashMap<u64, Ev>,
    seq: u64,
    pairs: HashMap<(usize, LinkId), (usize, LinkId)>,
    rng: StdRng,
    loss: f64,
    dup: f64,
    delay: (u64, u64),
    cut: HashSet<(usize, usize)>,
    delivered: u64,
    bytes_sent: u64,
    published: Vec<(usize, Bytes)>,
    /// Election wins seen: (node, epoch) in order.
    wins: Vec<(usize, u64)>,
    /// DropSlotKeys actions seen: (node, slots).
    dropped: Vec<(usize, Vec<u16>)>,
    /// Votes granted: (node, epoch).
    votes: Vec<(usize, u64)>,
    /// Invariant violations found while running.
    violations: Vec<String>,
}

impl Sim {
    fn new(n: usize, node_timeout: u64, seed: u64) -> Sim {
        let mut sim = Sim {
            nodes: Vec::new(),
            now: T0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            seq: 0,
            pairs: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            loss: 0.0,
            dup: 0.0,
            delay: (1, 5),
            cut: HashSet::new(),
            delivered: 0,
            bytes_sent: 0,
            published: Vec::new(),
            wins: Vec::new(),
            dropped: Vec::new(),
            votes: Vec::new(),
            violations: Vec::new(),
        };
        for i in 0..n {
            let ip = format!("10.0.{}.{}", i / 200, i % 200 + 1);
            let settings = Settings {
                node_timeout,
                port: 6379,
                cport: 16379,
                announce_ip: String::new(),
                ..Settings::default()
            };
            let mut m = Machine::new(settings, T0, seed.wrapping_mul(1000) + i as u64);
            m.set_my_ip(&ip);
            sim.nodes.push(SimNode {
                m,
                ip,
                cport: 16379,
                stopped: false,
                skew: 0,
                offset: 0,
                paused: false,
                frozen: false,
                link_cut: false,
                last_io: T0,
                down_since: None,
                poll_at: None,
                paused_count: 0,
                unpaused_count: 0,
            });
            // Stagger the crons like real processes started at different
            // moments.
            let first = T0 + 1 + (i as u64 * 37) % 100;
            sim.at(first, Ev::Tick(i));
        }
        for i in 0..n {
            sim.flush(i);
        }
        sim
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.events.insert(self.seq, ev);
        self.queue.push(Reverse((t, self.seq)));
    }

    fn delay(&mut self) -> u64 {
        self.rng.gen_range(self.delay.0..=self.delay.1)
    }

    fn blocked(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&(a, b)) || self.cut.contains(&(b, a))
    }

    fn find(&self, ip: &str, cport: u16) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.ip == ip && n.cport == cport)
    }

    /// Carries out what node `i` asked for.
    fn flush(&mut self, i: usize) {
        let out = self.nodes[i].m.take_output();
        for a in out.actions {
            match a {
                Action::Connect { link, ip, cport } => {
                    let d = self.delay();
                    match self.find(&ip, cport) {
                        Some(j) if !self.blocked(i, j) && j != i => {
                            let lj = self.nodes[j].m.new_link_id();
                            let (ipi, ipj) = (self.nodes[i].ip.clone(), self.nodes[j].ip.clone());
                            let now = self.node_now(j);
                            self.nodes[j].m.accept(lj, &ipi, &ipj, now);
                            self.pairs.insert((i, link), (j, lj));
                            self.pairs.insert((j, lj), (i, link));
                            self.at(self.now + d, Ev::Up(i, link));
                        }
                        _ => self.at(self.now + d + 50, Ev::Down(i, link)),
                    }
                }
                Action::Send { link, bytes } => {
                    self.bytes_sent += bytes.len() as u64;
                    let Some(&(j, lj)) = self.pairs.get(&(i, link)) else {
                        continue;
                    };
                    if self.blocked(i, j) {
                        continue;
                    }
                    if self.rng.gen_bool(self.loss) {
                        // TCP loses data only with the connection: reset
                        // the link under both ends.
                        self.pairs.remove(&(i, link));
                        self.pairs.remove(&(j, lj));
                        self.at(self.now + 1, Ev::Down(i, link));
                        self.at(self.now + 1, Ev::Down(j, lj));
                        continue;
                    }
                    let d = self.delay();
                    self.at(
                        self.now + d,
                        Ev::Deliver {
                            to: j,
                            link: lj,
                            bytes: bytes.clone(),
                        },
                    );
                    if self.rng.gen_bool(self.dup) {
                        let d = self.delay();
                        self.at(
                            self.now + d,
                            Ev::Deliver {
                                to: j,
                                link: lj,
                                bytes,
                            },
                        );
                    }
                }
                Action::Close { link } => {
                    if let Some((j, lj)) = self.pairs.remove(&(i, link)) {
                        self.pairs.remove(&(j, lj));
                        self.at(self.now + 1, Ev::Down(j, lj));
                    }
                }
                Action::Resolve { .. } => {}
                Action::DropSlotKeys(slots) => self.dropped.push((i, slots)),
                Action::Unpause => {
                    self.nodes[i].paused = false;
                    self.nodes[i].unpaused_count += 1;
                }
                Action::PauseWrites { .. } => {
                    self.nodes[i].paused = true;
                    self.nodes[i].paused_count += 1;
                    self.at(self.now + 1, Ev::Drained(i));
                }
                Action::Deliver { channel, .. } => self.published.push((i, channel)),
            }
        }
        self.check(i);
        // The wake-up the machine asked for, in simulated-clock terms.
        let local = self.node_now(i);
        if let Some(w) = self.nodes[i].m.next_wakeup(local) {
            let at = self.now + w.saturating_sub(local).max(1);
            if self.nodes[i].poll_at.is_none_or(|p| at < p) {
                self.nodes[i].poll_at = Some(at);
                self.at(at, Ev::Poll(i));
            }
        }
    }

    /// The time node `i`'s machine sees (its clock may be skewed).
    fn node_now(&self, i: usize) -> u64 {
        (self.now as i64 + self.nodes[i].skew) as u64
    }

    /// Records elections won and votes granted by node `i`, and checks
    /// that no epoch was won twice and no node voted twice in one epoch.
    fn check(&mut self, i: usize) {
        let won = self.nodes[i].m.stats.elections_won;
        let seen = self.wins.iter().filter(|(n, _)| *n == i).count() as u64;
        if won > seen {
            let epoch = self.nodes[i].m.me().config_epoch;
            if let Some((other, _)) = self.wins.iter().find(|(n, e)| *e == epoch && *n != i) {
                self.violations
                    .push(format!("nodes {other} and {i} both won epoch {epoch}"));
            }
            self.wins.push((i, epoch));
        }
        let granted = self.nodes[i].m.stats.votes_granted;
        let seen = self.votes.iter().filter(|(n, _)| *n == i).count() as u64;
        if granted > seen {
            let epoch = self.nodes[i].m.last_vote_epoch;
            if self.votes.contains(&(i, epoch)) {
                self.violations
                    .push(format!("node {i} voted twice in epoch {epoch}"));
            }
            self.votes.push((i, epoch));
        }
    }

    /// Emulated replication, before node `i`'s tick.
    fn replicate_step(&mut self, i: usize) {
        let now = self.node_now(i);
        let me = self.nodes[i].m.me().clone();
        if me.is_master() {
            self.nodes[i].frozen = false;
            if !self.nodes[i].paused {
                self.nodes[i].offset += 100;
            }
            self.nodes[i].down_since = None;
        } else if let Some(master) = me.slaveof {
            self.nodes[i].paused = false;
            let j = (0..self.nodes.len()).find(|&j| self.nodes[j].m.myself == master);
            let reachable = j.filter(|&j| {
                !self.nodes[j].stopped && !self.blocked(i, j) && !self.nodes[i].link_cut
            });
            match reachable {
                Some(j) => {
                    if !self.nodes[i].frozen {
                        self.nodes[i].offset = self.nodes[i].offset.max(self.nodes[j].offset);
                    }
                    self.nodes[i].last_io = now;
                    self.nodes[i].down_since = None;
                }
                None => {
                    if self.nodes[i].down_since.is_none() {
                        self.nodes[i].down_since = Some(now);
                    }
                }
            }
        }
        let n = &mut self.nodes[i];
        n.m.set_repl_offset(n.offset);
        match n.down_since {
            None => n.m.set_repl_link(true, n.last_io, 0),
            Some(d) => n.m.set_repl_link(false, n.last_io, d),
        }
    }

    fn step(&mut self) -> bool {
        let Some(Reverse((t, seq))) = self.queue.pop() else {
            return false;
        };
        let Some(ev) = self.events.remove(&seq) else {
            return true;
        };
        self.now = self.now.max(t);
        let gnow = self.now;
        match ev {
            Ev::Tick(i) => {
                if !self.nodes[i].stopped {
                    self.replicate_step(i);
                    let now = self.node_now(i);
                    self.nodes[i].m.tick(now);
                    self.flush(i);
                }
                self.at(gnow + 100, Ev::Tick(i));
            }
            Ev::Poll(i) => {
                if self.nodes[i].poll_at == Some(gnow) {
                    self.nodes[i].poll_at = None;
                }
                if !self.nodes[i].stopped {
                    let n = &mut self.nodes[i];
                    n.m.set_repl_offset(n.offset);
                    let now = self.node_now(i);
                    self.nodes[i].m.poll_failover(now);
                    self.flush(i);
                }
            }
            Ev::Deliver { to, link, bytes } => {
                if self.nodes[to].stopped {
                    return true;
                }
                self.delivered += 1;
                let now = self.node_now(to);
                match wire::decode(&bytes) {
                    Ok(msg) => self.nodes[to].m.receive(link, msg, now),
                    Err(_) => self.nodes[to].m.bad_packet(link),
                }
                self.flush(to);
            }
            Ev::Up(i, link) => {
                let now = self.node_now(i);
                if !self.nodes[i].m.link_up(link, now) {
                    // Unwanted: close the far end too.
                    if let Some((j, lj)) = self.pairs.remove(&(i, link)) {
                        self.pairs.remove(&(j, lj));
                        self.at(now + 1, Ev::Down(j, lj));
                    }
                }
                self.flush(i);
            }
            Ev::Down(i, link) => {
                let now = self.node_now(i);
                self.nodes[i].m.link_down(link, now);
                self.flush(i);
            }
            Ev::Drained(i) => {
                if !self.nodes[i].stopped {
                    let n = &mut self.nodes[i];
                    n.m.set_repl_offset(n.offset);
                    let now = self.node_now(i);
                    self.nodes[i].m.mf_drained(now);
                    self.flush(i);
                }
            }
        }
        true
    }

    /// Runs for `ms` of simulated time.
    fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        while let Some(Reverse((t, _))) = self.queue.peek() {
            if *t > end {
                break;
            }
            self.step();
        }
        self.now = end;
    }

    /// Runs until `pred` holds (checked every 100 ms); the elapsed time.
    fn run_until(&mut self, max_ms: u64, mut pred: impl FnMut(&Sim) -> bool) -> Option<u64> {
        let start = self.now;
        while self.now - start <= max_ms {
            if pred(self) {
                return Some(self.now - start);
            }
            self.run(100);
        }
        None
    }

    fn name(&self, i: usize) -> NodeName {
        self.nodes[i].m.myself
    }

    fn call<R>(&mut self, i: usize, f: impl FnOnce(&mut Machine, u64) -> R) -> R {
        let now = self.node_now(i);
        let r = f(&mut self.nodes[i].m, now);
        self.flush(i);
        r
    }

    /// Splits the slots evenly over the first `masters` nodes and gives
    /// each a distinct config epoch, as `redis-cli --cluster create` does.
    fn assign_slots(&mut self, masters: usize, distinct_epochs: bool) {
        let per = 16384 / masters;
        for i in 0..masters {
            let a = i * per;
            let b = if i == masters - 1 { 16383 } else { a + per - 1 };
            let slots: Vec<u16> = (a as u16..=b as u16).collect();
            self.call(i, |m, now| m.add_slots(&slots, now)).unwrap();
            if distinct_epochs {
                self.call(i, |m, _| m.set_config_epoch(i as i64 + 1))
                    .unwrap();
            }
        }
    }

    fn meet(&mut self, from: usize, to: usize) {
        let (ip, cport) = (self.nodes[to].ip.clone(), self.nodes[to].cport);
        self.call(from, |m, now| m.meet(&ip, 6379, cport, now))
            .unwrap();
    }

    /// Every listed node knows exactly the listed nodes (no handshake, no
    /// failure flags), agrees on every slot owner and every configEpoch,
    /// and is in state ok.
    fn agree(&self, members: &[usize]) -> Result<(), String> {
        let names: BTreeSet<NodeName> = members.iter().map(|i| self.name(*i)).collect();
        let reference = &self.nodes[members[0]].m;
        for &i in members {
            let m = &self.nodes[i].m;
            let known: BTreeSet<NodeName> = m.nodes.keys().copied().collect();
            if known != names {
                return Err(format!(
                    "node {i} knows {} nodes, want {}",
                    known.len(),
                    names.len()
                ));
            }
            for p in m.nodes.values() {
                if p.has(nflag::HANDSHAKE | nflag::PFAIL | nflag::FAIL) {
                    return Err(format!("node {i} flags {:#x} on a peer", p.flags));
                }
                let epoch = reference.nodes.get(&p.name).map(|r| r.config_epoch);
                if epoch != Some(p.config_epoch) {
                    return Err(format!("node {i} disagrees on an epoch"));
                }
            }
            if m.owners() != reference.owners() {
                return Err(format!("node {i} disagrees on slot owners"));
            }
            if !m.state_ok {
                return Err(format!("node {i} state is fail"));
            }
        }
        Ok(())
    }

    fn flags_of(&self, observer: usize, target: usize) -> u16 {
        let t = self.name(target);
        self.nodes[observer].m.nodes.get(&t).map_or(0, |p| p.flags)
    }
}

fn form(n: usize, masters: usize, seed: u64) -> Sim {
    let mut sim = Sim::new(n, 2000, seed);
    sim.assign_slots(masters, true);
    for j in 1..n {
        sim.meet(0, j);
    }
    let all: Vec<usize> = (0..n).collect();
    let t = sim.run_until(30_000, |s| s.agree(&all).is_ok());
    assert!(
        t.is_some(),
        "{n} nodes did not converge: {:?}",
        sim.agree(&all)
    );
    sim
}

#[test]
fn six_nodes_converge_from_meets() {
    let mut sim = Sim::new(6, 2000, 1);
    sim.assign_slots(6, true);
    for j in 1..6 {
        sim.meet(0, j);
    }
    let all: Vec<usize> = (0..6).collect();
    let t = sim
        .run_until(10_000, |s| s.agree(&all).is_ok())
        .unwrap_or_else(|| panic!("no agreement: {:?}", sim.agree(&all)));
    println!("6 nodes agreed {t} ms after the MEETs");
    // Each node's view is what every other node sees.
    for i in 0..6 {
        assert_eq!(sim.nodes[i].m.size(), 6);
        assert_eq!(sim.nodes[i].m.current_epoch, 6);
    }
}

#[test]
fn thirty_nodes_converge_despite_loss_delay_and_duplicates() {
    let mut sim = Sim::new(30, 2000, 7);
    sim.loss = 0.05;
    sim.dup = 0.05;
    sim.delay = (1, 80);
    sim.assign_slots(15, true);
    // A chain of MEETs: the rest of the mesh must come from gossip.
    for j in 1..30 {
        sim.meet(j - 1, j);
    }
    let all: Vec<usize> = (0..30).collect();
    let t = sim
        .run_until(60_000, |s| s.agree(&all).is_ok())
        .unwrap_or_else(|| panic!("no agreement: {:?}", sim.agree(&all)));
    println!("30 nodes agreed {t} ms after the MEETs (5% loss, 5% dup)");
}

#[test]
fn config_epoch_collisions_resolve_to_distinct_epochs() {
    let mut sim = Sim::new(5, 2000, 3);
    sim.assign_slots(5, false);
    for j in 1..5 {
        sim.meet(0, j);
    }
    let all: Vec<usize> = (0..5).collect();
    let ok = sim.run_until(30_000, |s| {
        let epochs: BTreeSet<u64> = (0..5).map(|i| s.nodes[i].m.me().config_epoch).collect();
        epochs.len() == 5 && s.agree(&all).is_ok()
    });
    assert!(ok.is_some(), "epochs did not become distinct");
    // The node with the largest name never moves.
    let largest = (0..5).max_by_key(|i| sim.name(*i)).unwrap();
    assert_eq!(sim.nodes[largest].m.me().config_epoch, 0);
}

#[test]
fn stopped_master_is_failed_within_twice_the_timeout_and_cleared_after() {
    let mut sim = form(6, 3, 11);
    let victim = 1;
    sim.nodes[victim].stopped = true;
    let others: Vec<usize> = (0..6).filter(|i| *i != victim).collect();
    let t = sim
        .run_until(10_000, |s| {
            others
                .iter()
                .all(|o| s.flags_of(*o, victim) & nflag::FAIL != 0)
        })
        .expect("victim never flagged fail everywhere");
    println!("FAIL everywhere {t} ms after the stop");
    assert!(t <= 4000, "took {t} ms, node timeout 2000");
    for o in &others {
        assert!(
            !sim.nodes[*o].m.state_ok,
            "slots uncovered: state must be fail"
        );
    }
    sim.nodes[victim].stopped = false;
    let all: Vec<usize> = (0..6).collect();
    let t = sim
        .run_until(15_000, |s| s.agree(&all).is_ok())
        .unwrap_or_else(|| panic!("not cleared: {:?}", sim.agree(&all)));
    // A master with slots is only un-failed after 2 x node timeout.
    println!("cleared {t} ms after the resume");
}

#[test]
fn minority_side_of_a_partition_goes_down_and_recovers() {
    let mut sim = form(5, 5, 21);
    for j in 1..5 {
        sim.cut.insert((0, j));
    }
    let majority: Vec<usize> = (1..5).collect();
    sim.run_until(10_000, |s| {
        majority
            .iter()
            .all(|o| s.flags_of(*o, 0) & nflag::FAIL != 0)
            && !s.nodes[0].m.state_ok
    })
    .expect("majority did not fail the isolated node, or it stayed up");
    // The isolated node never gathers a quorum to fail the others.
    for j in 1..5 {
        assert_eq!(sim.flags_of(0, j) & nflag::FAIL, 0);
    }
    sim.cut.clear();
    let all: Vec<usize> = (0..5).collect();
    sim.run_until(20_000, |s| s.agree(&all).is_ok())
        .unwrap_or_else(|| panic!("no recovery: {:?}", sim.agree(&all)));
}

#[test]
fn forgotten_node_stays_out_while_blacklisted() {
    let mut sim = form(4, 4, 5);
    let gone = sim.name(3);
    sim.nodes[3].stopped = true;
    let g = gone;
    sim.call(0, |m, now| m.forget(&g, now)).unwrap();
    // Others keep gossiping about node 3: node 0 must not re-learn it.
    sim.run(20_000);
    assert!(!sim.nodes[0].m.nodes.contains_key(&gone));
    assert!(sim.nodes[1].m.nodes.contains_key(&gone));
}

#[test]
fn meet_twice_makes_one_entry() {
    let mut sim = Sim::new(2, 2000, 9);
    sim.meet(0, 1);
    sim.meet(0, 1);
    sim.run(5000);
    assert_eq!(sim.nodes[0].m.nodes.len(), 2);
    assert_eq!(sim.nodes[1].m.nodes.len(), 2);
}

#[test]
fn publish_reaches_every_other_node_once() {
    let mut sim = form(4, 2, 13);
    sim.call(2, |m, _| {
        m.publish(
            Bytes::from_static(b"news"),
            Bytes::from_static(b"hi"),
            false,
        )
    });
    sim.run(500);
    let mut got: Vec<usize> = sim.published.iter().map(|(i, _)| *i).collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 3]);
}

/// A hand-built PING from `sender` with `gossip`.
fn ping(sender: NodeName, slots: SlotBitmap, epoch: u64, gossip: Vec<Gossip>) -> Message {
    Message {
        header: Header {
            ty: msgtype::PING,
            port: 6379,
            current_epoch: epoch,
            config_epoch: epoch,
            offset: 0,
            sender,
            myslots: slots,
            slaveof: None,
            myip: String::new(),
            pport: 0,
            cport: 16379,
            flags: nflag::MASTER,
            state: 0,
            mflags: 0,
        },
        body: Body::Ping {
            gossip,
            exts: Vec::new(),
        },
    }
}

#[test]
fn gossip_from_a_stranger_is_answered_but_ignored() {
    let mut sim = form(3, 3, 17);
    let stranger = wire::random_name();
    let other_cluster: Vec<Gossip> = (0..5)
        .map(|k| Gossip {
            name: wire::random_name(),
            ping_sent: 0,
            pong_received: 0,
            ip: format!("192.168.9.{k}"),
            port: 7000,
            cport: 17000,
            flags: nflag::MASTER,
            pport: 0,
        })
        .collect();
    let before = sim.nodes[0].m.nodes.len();
    let link = sim.nodes[0].m.new_link_id();
    let now = sim.now;
    sim.nodes[0].m.accept(link, "192.168.9.9", "10.0.0.1", now);
    sim.nodes[0].m.receive(
        link,
        ping(stranger, SlotBitmap::new(), 99, other_cluster),
        now,
    );
    let out = sim.nodes[0].m.take_output();
    let pong = out.actions.iter().find_map(|a| match a {
        Action::Send { link: l, bytes } if *l == link => wire::decode(bytes).ok(),
        _ => None,
    });
    assert_eq!(pong.map(|m| m.header.ty), Some(msgtype::PONG));
    sim.run(5000);
    assert_eq!(sim.nodes[0].m.nodes.len(), before);
    // Nor did its epoch leak in.
    assert!(sim.nodes[0].m.current_epoch < 99);
}

#[test]
fn stale_slot_claim_is_answered_with_an_update() {
    let mut sim = form(3, 3, 19);
    // Node 1 claims node 2's first slot with an older epoch.
    let owner = sim.name(2);
    let stale_sender = sim.name(1);
    let slot = (0..16384u16)
        .find(|s| sim.nodes[0].m.owner(*s) == Some(owner))
        .unwrap();
    let mut claim = SlotBitmap::new();
    claim.set(slot, true);
    let owner_epoch = sim.nodes[0].m.nodes[&owner].config_epoch;
    assert!(owner_epoch > 0);
    // Deliver on node 0's inbound link from node 1.
    let link = sim.nodes[0]
        .m
        .nodes
        .get(&stale_sender)
        .and_then(|p| p.inbound)
        .expect("inbound link from node 1");
    let now = sim.now;
    sim.nodes[0]
        .m
        .receive(link, ping(stale_sender, claim, 0, Vec::new()), now);
    let out = sim.nodes[0].m.take_output();
    let update = out
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => wire::decode(bytes).ok(),
            _ => None,
        })
        .find(|m| m.header.ty == msgtype::UPDATE)
        .expect("an UPDATE message");
    match update.body {
        Body::Update {
            config_epoch,
            name,
            slots,
        } => {
            assert_eq!(name, owner);
            assert_eq!(config_epoch, owner_epoch);
            assert!(slots.get(slot));
        }
        other => panic!("unexpected body {other:?}"),
    }
    // Ownership did not move to the stale claimer.
    assert_eq!(sim.nodes[0].m.owner(slot), Some(owner));
}

#[test]
fn nodes_conf_round_trip_keeps_identity_slots_and_epochs() {
    let sim = form(3, 3, 23);
    let m = &sim.nodes[1].m;
    let text = nodes_conf::render(&m.to_conf());
    let conf = nodes_conf::parse(&text).expect("parse our own nodes.conf");
    let back = Machine::from_conf(m.settings.clone(), &conf, sim.now, 1).expect("load");
    assert_eq!(back.myself, m.myself);
    assert_eq!(back.owners(), m.owners());
    assert_eq!(back.current_epoch, m.current_epoch);
    for (name, p) in &m.nodes {
        let q = &back.nodes[name];
        assert_eq!(
            (q.config_epoch, &q.ip, q.port),
            (p.config_epoch, &p.ip, p.port)
        );
    }
}

#[test]
fn a_peer_whose_connection_hangs_is_resolved_again_by_hostname() {
    // A peer known from nodes.conf, with a hostname, whose old IP swallows
    // connection attempts (a vanished pod): no reply at all.
    let me = "a".repeat(40);
    let peer = "b".repeat(40);
    let text = format!(
        "{me} 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-8191\n\
         {peer} 10.0.0.2:6379@16379,node-b.example master - 0 0 2 connected 8192-16383\n\
         vars currentEpoch 2 lastVoteEpoch 0\n"
    );
    let conf = nodes_conf::parse(&text).unwrap();
    let settings = Settings {
        node_timeout: 15000,
        ..Settings::default()
    };
    let mut m = Machine::from_conf(settings, &conf, T0, 1).unwrap();
    m.tick(T0 + 100);
    let out = m.take_output();
    let link = out
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Connect { link, ip, .. } if ip == "10.0.0.2" => Some(*link),
            _ => None,
        })
        .expect("a connection attempt to the old address");
    // The attempt hangs: within about a second (long before the 15 s node
    // timeout) the hostname is resolved again.
    let mut resolved_at = None;
    for t in (200..3000).step_by(100) {
        m.tick(T0 + t);
        let out = m.take_output();
        if out
            .actions
            .iter()
            .any(|a| matches!(a, Action::Resolve { hostname, .. } if hostname == "node-b.example"))
        {
            resolved_at = Some(t);
            break;
        }
    }
    let t = resolved_at.expect("no re-resolution while the connection hangs");
    assert!(t <= 1300, "re-resolved only after {t} ms");
    // The new address replaces the old one and the hanging attempt.
    let name = shardline_node::cluster::machine::parse_name(&peer).unwrap();
    m.resolved(&name, &["10.0.7.2".to_string()]);
    let out = m.take_output();
    assert!(out.actions.contains(&Action::Close { link }));
    m.tick(T0 + 3000);
    let out = m.take_output();
    assert!(out
        .actions
        .iter()
        .any(|a| matches!(a, Action::Connect { ip, .. } if ip == "10.0.7.2")));
}

/// The Send actions of node `i`'s machine, decoded (they are not
/// delivered).
fn sent(m: &mut Machine) -> Vec<Message> {
    m.take_output()
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { bytes, .. } => wire::decode(bytes).ok(),
            _ => None,
        })
        .collect()
}

#[test]
fn a_replica_announces_its_master_and_follows_the_new_owner_of_its_slots() {
    use shardline_node::cluster::machine::ReplTarget;
    let mut sim = form(4, 3, 29);
    let (m0, m1, r) = (sim.name(0), sim.name(1), sim.name(3));
    assert_eq!(sim.nodes[3].m.repl_target(), ReplTarget::Master);

    // Errors first: unknown, myself, a master with slots.
    let zeros = "0".repeat(40);
    let e = sim.call(3, |m, now| m.replicate(zeros.as_bytes(), false, now));
    assert_eq!(e.unwrap_err().0, format!("ERR Unknown node {zeros}"));
    let me = wire::name_str(&r).to_string();
    let e = sim.call(3, |m, now| m.replicate(me.as_bytes(), false, now));
    assert_eq!(e.unwrap_err().0, "ERR Can't replicate myself");
    let m1s = wire::name_str(&m1).to_string();
    let e = sim.call(0, |m, now| m.replicate(m1s.as_bytes(), false, now));
    assert_eq!(
        e.unwrap_err().0,
        "ERR To set a master the node must be empty and without assigned slots."
    );
    let e = sim.call(3, |m, now| m.replicate(m1s.as_bytes(), true, now));
    assert!(e.is_err(), "a master with keys must not replicate");

    let m0s = wire::name_str(&m0).to_string();
    sim.call(3, |m, now| m.replicate(m0s.as_bytes(), false, now))
        .unwrap();
    assert!(sim.nodes[3].m.me().is_replica());
    assert_eq!(sim.nodes[3].m.me().slaveof, Some(m0));
    assert_eq!(
        sim.nodes[3].m.repl_target(),
        ReplTarget::Addr(sim.nodes[0].ip.clone(), 6379)
    );
    // A replica cannot be replicated.
    let rs = me.clone();
    let t = sim.run_until(10_000, |s| {
        (0..3).all(|i| s.nodes[i].m.nodes.get(&r).is_some_and(|p| p.is_replica()))
    });
    assert!(t.is_some(), "peers did not learn that node 3 is a replica");
    let e = sim.call(2, |m, now| m.replicate(rs.as_bytes(), false, now));
    assert_eq!(
        e.unwrap_err().0,
        "ERR I can only replicate a master, not a replica."
    );
    for i in 0..3 {
        assert_eq!(sim.nodes[i].m.nodes[&r].slaveof, Some(m0), "node {i}");
    }
    // nodes.conf keeps the role.
    let conf = nodes_conf::render(&sim.nodes[3].m.to_conf());
    assert!(
        conf.lines()
            .any(|l| l.starts_with(&me) && l.contains(&format!("myself,slave {m0s} "))),
        "{conf}"
    );
    let back = Machine::from_conf(
        sim.nodes[3].m.settings.clone(),
        &nodes_conf::parse(&conf).unwrap(),
        sim.now,
        3,
    )
    .unwrap();
    assert!(back.me().is_replica());
    assert_eq!(back.me().slaveof, Some(m0));
    assert_eq!(
        back.repl_target(),
        ReplTarget::Addr(sim.nodes[0].ip.clone(), 6379)
    );

    // Its header: SLAVE, slaveof, its master's slots and our offset.
    // The emulated replication stops at 4242.
    sim.nodes[3].offset = 4242;
    sim.nodes[3].frozen = true;
    sim.call(3, |m, _| m.set_repl_offset(4242));
    sim.run(100);
    let now = sim.now + 3000;
    sim.nodes[3].m.tick(now);
    let msgs = sent(&mut sim.nodes[3].m);
    let h = &msgs
        .iter()
        .find(|m| m.header.ty == msgtype::PING)
        .expect("a PING from the replica")
        .header;
    assert!(h.flags & nflag::SLAVE != 0 && h.flags & nflag::MASTER == 0);
    assert_eq!(h.slaveof, Some(m0));
    assert_eq!(h.offset, 4242);
    let first = (0..16384u16)
        .find(|s| sim.nodes[3].m.owner(*s) == Some(m0))
        .unwrap();
    assert!(h.myslots.get(first));
    sim.run(3000);
    assert_eq!(sim.nodes[1].m.nodes[&r].repl_offset, 4242);

    // Node 1 takes every slot of node 0 with a higher epoch: the replica
    // follows node 1.
    let mut taken = SlotBitmap::new();
    for s in 0..16384u16 {
        if sim.nodes[3].m.owner(s) == Some(m0) || sim.nodes[3].m.owner(s) == Some(m1) {
            taken.set(s, true);
        }
    }
    let link = sim.nodes[3]
        .m
        .nodes
        .get(&m1)
        .and_then(|p| p.inbound)
        .expect("inbound link from node 1");
    let mut update = ping(m1, taken.clone(), 50, Vec::new());
    update.header.ty = msgtype::UPDATE;
    // The header carries the sender's old epoch; the body the new claim.
    update.header.config_epoch = 0;
    update.body = Body::Update {
        config_epoch: 50,
        name: m1,
        slots: taken,
    };
    let now = sim.now;
    sim.nodes[3].m.receive(link, update, now);
    assert_eq!(sim.nodes[3].m.owner(first), Some(m1));
    assert_eq!(sim.nodes[3].m.me().slaveof, Some(m1));
    assert_eq!(
        sim.nodes[3].m.repl_target(),
        ReplTarget::Addr(sim.nodes[1].ip.clone(), 6379)
    );
}

// ----- failover -----

use shardline_node::cluster::machine::{CantFailover, FailoverMode};

/// `masters` masters with slots and `per` replicas each: replica number
/// `masters + k` replicates master `k % masters`. Waits until every node
/// agrees on the roles.
fn form_with_replicas(masters: usize, per: usize, seed: u64) -> Sim {
    let n = masters * (1 + per);
    let mut sim = form(n, masters, seed);
    for k in 0..masters * per {
        let (r, m) = (masters + k, k % masters);
        make_replica(&mut sim, r, m);
    }
    let t = sim.run_until(20_000, |s| {
        (0..masters * per).all(|k| {
            let (r, m) = (masters + k, k % masters);
            let (rn, mn) = (s.name(r), s.name(m));
            (0..n).all(|o| {
                s.nodes[o]
                    .m
                    .nodes
                    .get(&rn)
                    .is_some_and(|p| p.slaveof == Some(mn))
            })
        })
    });
    assert!(t.is_some(), "replica roles did not spread");
    sim
}

fn make_replica(sim: &mut Sim, r: usize, m: usize) {
    let name = wire::name_str(&sim.name(m)).to_string();
    sim.call(r, |mc, now| mc.replicate(name.as_bytes(), false, now))
        .unwrap();
}

impl Sim {
    /// Every node of `members` has the same slot owners, every slot is
    /// owned, each owner is a member that sees itself as the master of
    /// exactly those slots, and every member's state is ok.
    fn owners_agree(&self, members: &[usize]) -> Result<(), String> {
        let reference = self.nodes[members[0]].m.owners().to_vec();
        for &i in members {
            let m = &self.nodes[i].m;
            if m.owners() != reference.as_slice() {
                return Err(format!("node {i} disagrees on slot owners"));
            }
            if !m.state_ok {
                return Err(format!("node {i} state is fail"));
            }
        }
        for (slot, o) in reference.iter().enumerate() {
            let Some(o) = o else {
                return Err(format!("slot {slot} unowned"));
            };
            let Some(&j) = members.iter().find(|&&j| self.name(j) == *o) else {
                return Err(format!("slot {slot} owned by a node not running"));
            };
            let me = self.nodes[j].m.me();
            if !me.is_master() || self.nodes[j].m.owner(slot as u16) != Some(*o) {
                return Err(format!("owner {j} of slot {slot} does not claim it"));
            }
        }
        Ok(())
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| !self.nodes[*i].stopped)
            .collect()
    }

    /// Node `i` is master of slot `slot` in the view of every running node.
    fn owns_everywhere(&self, i: usize, slot: u16) -> bool {
        let name = self.name(i);
        self.running()
            .iter()
            .all(|&o| self.nodes[o].m.owner(slot) == Some(name))
    }

    fn isolate(&mut self, group: &[usize]) {
        for &a in group {
            for b in 0..self.nodes.len() {
                if !group.contains(&b) {
                    self.cut.insert((a, b));
                }
            }
        }
    }
}

fn first_slot_of(sim: &Sim, master: usize) -> u16 {
    let name = sim.name(master);
    (0..16384u16)
        .find(|s| sim.nodes[master].m.owner(*s) == Some(name))
        .expect("master owns a slot")
}

#[test]
fn a_stopped_master_is_replaced_by_its_replica() {
    for seed in 0..10 {
        let mut sim = form_with_replicas(3, 1, 100 + seed);
        let slot = first_slot_of(&sim, 0);
        sim.run(1000);
        sim.nodes[0].stopped = true;
        let t = sim
            .run_until(10_000, |s| {
                s.owns_everywhere(3, slot) && s.owners_agree(&s.running()).is_ok()
            })
            .unwrap_or_else(|| {
                panic!(
                    "seed {seed}: no takeover: {:?}",
                    sim.owners_agree(&sim.running())
                )
            });
        assert!(t <= 6000, "seed {seed}: takeover took {t} ms");
        assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        // The old master comes back and follows the winner.
        sim.nodes[0].stopped = false;
        let all: Vec<usize> = (0..6).collect();
        let back = sim.run_until(20_000, |s| {
            s.nodes[0].m.me().slaveof == Some(s.name(3)) && s.owners_agree(&all).is_ok()
        });
        assert!(
            back.is_some(),
            "seed {seed}: old master did not rejoin as a replica"
        );
    }
}

#[test]
fn the_replica_with_the_newest_offset_wins() {
    for seed in 0..8 {
        // Master 0 has replicas 3 and 6; 6 lags.
        let mut sim = form_with_replicas(3, 2, 200 + seed);
        sim.nodes[6].frozen = true;
        sim.run(2000);
        assert!(sim.nodes[3].offset > sim.nodes[6].offset);
        let slot = first_slot_of(&sim, 0);
        sim.nodes[0].stopped = true;
        sim.run_until(10_000, |s| {
            s.owns_everywhere(3, slot) || s.owns_everywhere(6, slot)
        })
        .unwrap_or_else(|| panic!("seed {seed}: no takeover"));
        assert!(
            sim.owns_everywhere(3, slot),
            "seed {seed}: the lagging replica won"
        );
        // The loser follows the winner.
        let t = sim.run_until(10_000, |s| s.nodes[6].m.me().slaveof == Some(s.name(3)));
        assert!(t.is_some(), "seed {seed}: the other replica did not follow");
        assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    }
}

#[test]
fn chaos_never_leaves_two_masters_for_a_slot() {
    let mut total_wins = 0;
    for seed in 0..6u64 {
        let mut sim = form_with_replicas(5, 1, 300 + seed);
        sim.loss = 0.01;
        sim.dup = 0.05;
        sim.delay = (1, 50);
        let mut rng = StdRng::seed_from_u64(seed);
        for i in 0..10 {
            sim.nodes[i].skew = rng.gen_range(-300..=300);
        }
        for round in 0..6 {
            if rng.gen_bool(0.5) {
                // Stop a node for a while.
                let v = rng.gen_range(0..10);
                sim.nodes[v].stopped = true;
                sim.run(rng.gen_range(1000..8000));
                sim.nodes[v].stopped = false;
            } else {
                // Cut a minority of two off for a while.
                let a = rng.gen_range(0..10);
                let b = (a + rng.gen_range(1..10)) % 10;
                sim.isolate(&[a, b]);
                sim.run(rng.gen_range(1000..8000));
                sim.cut.clear();
            }
            let all: Vec<usize> = (0..10).collect();
            let t = sim.run_until(90_000, |s| s.owners_agree(&all).is_ok());
            assert!(
                t.is_some(),
                "seed {seed} round {round}: no agreement: {:?}",
                sim.owners_agree(&all)
            );
            assert!(
                sim.violations.is_empty(),
                "seed {seed} round {round}: {:?}",
                sim.violations
            );
            // Every master of slots has its replica back (or a replica
            // took over and the old master follows it): 5 masters, 5
            // replicas, each replica of a master with slots.
            let masters = (0..10).filter(|&i| sim.nodes[i].m.me().is_master()).count();
            assert_eq!(masters, 5, "seed {seed} round {round}: {masters} masters");
        }
        println!("seed {seed}: {} elections won", sim.wins.len());
        total_wins += sim.wins.len();
    }
    assert!(
        total_wins >= 6,
        "the chaos caused only {total_wins} elections"
    );
}

#[test]
fn manual_failover_waits_for_the_paused_offset() {
    for seed in 0..5 {
        let mut sim = form_with_replicas(3, 1, 400 + seed);
        sim.run(1500);
        let slot = first_slot_of(&sim, 0);
        sim.call(3, |m, now| m.manual_failover(FailoverMode::Default, now))
            .unwrap();
        // Event by event: the whole handover takes a few milliseconds.
        let deadline = sim.now + 3000;
        while !sim.nodes[3].m.mf.can_start && sim.now < deadline {
            sim.step();
        }
        assert!(sim.nodes[3].m.mf.can_start, "seed {seed}: never ready");
        assert_eq!(sim.nodes[0].paused_count, 1, "the master paused once");
        assert!(sim.nodes[0].paused, "still paused until the new config");
        assert_eq!(
            sim.nodes[3].m.me().repl_offset,
            sim.nodes[0].offset,
            "seed {seed}: the replica starts at exactly the paused offset"
        );
        sim.run_until(3000, |s| s.owns_everywhere(3, slot))
            .unwrap_or_else(|| panic!("seed {seed}: manual failover did not complete"));
        sim.run_until(2000, |s| s.nodes[0].m.me().slaveof == Some(s.name(3)))
            .expect("old master follows the winner");
        assert!(!sim.nodes[0].paused && sim.nodes[0].unpaused_count >= 1);
        assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    }
}

#[test]
fn manual_failover_errors_force_and_takeover() {
    let mut sim = form_with_replicas(3, 1, 500);
    let e = sim.call(0, |m, now| m.manual_failover(FailoverMode::Default, now));
    assert_eq!(
        e.unwrap_err().0,
        "ERR You should send CLUSTER FAILOVER to a replica"
    );
    // FORCE while the master is stopped (not failed yet): the other
    // masters vote (FORCEACK).
    let slot = first_slot_of(&sim, 0);
    sim.nodes[0].stopped = true;
    sim.call(3, |m, now| m.manual_failover(FailoverMode::Force, now))
        .unwrap();
    let t = sim.run_until(2000, |s| s.owns_everywhere(3, slot));
    assert!(t.is_some(), "FORCE did not complete");
    // Default mode on a replica whose master failed: refused.
    let slot1 = first_slot_of(&sim, 1);
    sim.nodes[1].stopped = true;
    sim.run_until(10_000, |s| s.nodes[4].m.nodes[&s.name(1)].has(nflag::FAIL))
        .expect("master 1 failed");
    let e = sim.call(4, |m, now| m.manual_failover(FailoverMode::Default, now));
    assert!(
        e.is_err_and(|e| e.0 == "ERR Master is down or failed, please use CLUSTER FAILOVER FORCE")
            || sim.nodes[4].m.me().is_master()
    );
    sim.run_until(10_000, |s| s.owns_everywhere(4, slot1))
        .expect("automatic failover of 1");
    // TAKEOVER with everyone else out of reach: no votes needed.
    let slot2 = first_slot_of(&sim, 2);
    sim.isolate(&[5]);
    sim.call(5, |m, now| m.manual_failover(FailoverMode::Takeover, now))
        .unwrap();
    assert_eq!(sim.nodes[5].m.owner(slot2), Some(sim.name(5)));
    sim.cut.clear();
    sim.run_until(10_000, |s| s.owns_everywhere(5, slot2))
        .expect("the cluster adopts the takeover");
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
}

#[test]
fn manual_failover_times_out_and_the_master_resumes() {
    let mut sim = form_with_replicas(3, 1, 600);
    sim.nodes[3].frozen = true;
    sim.run(1500);
    sim.call(3, |m, now| m.manual_failover(FailoverMode::Default, now))
        .unwrap();
    sim.run(1000);
    assert!(sim.nodes[0].paused);
    sim.run(4500);
    assert_eq!(sim.nodes[3].m.mf.end, 0, "the replica gave up");
    sim.run(5000);
    assert!(!sim.nodes[0].paused, "the master resumed");
    assert!(sim.nodes[0].m.me().is_master());
    assert!(sim.nodes[3].m.me().is_replica());
    assert_eq!(sim.nodes[3].m.stats.manual_failovers_timed_out, 1);
}

#[test]
fn validity_factor_and_no_failover_keep_a_replica_out() {
    // A replica whose link has been down for long does not run.
    let mut sim = form_with_replicas(3, 1, 700);
    sim.nodes[3].m.settings.replica_validity_factor = 1;
    sim.nodes[3].m.settings.repl_ping_period_ms = 100;
    sim.nodes[3].link_cut = true;
    sim.run(10_000);
    let slot = first_slot_of(&sim, 0);
    sim.nodes[0].stopped = true;
    sim.run(8000);
    assert!(!sim.owns_everywhere(3, slot));
    assert_eq!(sim.nodes[3].m.election.cant, Some(CantFailover::DataAge));
    // With factor 0 it may.
    sim.nodes[3].m.settings.replica_validity_factor = 0;
    sim.run_until(5000, |s| s.owns_everywhere(3, slot))
        .expect("factor 0: failover");

    // cluster-replica-no-failover: no automatic election; FORCE works.
    let mut sim = form_with_replicas(3, 1, 701);
    sim.call(3, |m, _| {
        m.settings.replica_no_failover = true;
        m.refresh_myself();
    });
    let slot = first_slot_of(&sim, 0);
    sim.nodes[0].stopped = true;
    sim.run(8000);
    assert!(!sim.owns_everywhere(3, slot));
    assert_eq!(sim.nodes[3].m.election.cant, Some(CantFailover::Disabled));
    sim.call(3, |m, now| m.manual_failover(FailoverMode::Force, now))
        .unwrap();
    sim.run_until(3000, |s| s.owns_everywhere(3, slot))
        .expect("FORCE despite no-failover");
}

#[test]
fn replica_migration_respects_the_barrier() {
    for barrier in [1usize, 2] {
        // Masters 0..3, replicas 3 -> 0, 4 -> 1, 5 -> 2, 6 -> 0.
        let mut sim = form(7, 3, 800 + barrier as u64);
        for i in 0..7 {
            sim.nodes[i].m.settings.migration_barrier = barrier;
        }
        for (r, m) in [(3, 0), (4, 1), (5, 2), (6, 0)] {
            make_replica(&mut sim, r, m);
        }
        sim.run(5000);
        sim.nodes[4].stopped = true;
        let spare = if sim.name(3) < sim.name(6) { 3 } else { 6 };
        let one = sim.name(1);
        let moved = sim.run_until(20_000, |s| s.nodes[spare].m.me().slaveof == Some(one));
        if barrier == 1 {
            let t = moved.expect("the spare replica migrates");
            assert!(t >= 5000, "migrated after {t} ms, before the 5 s delay");
            let other = if spare == 3 { 6 } else { 3 };
            assert_eq!(sim.nodes[other].m.me().slaveof, Some(sim.name(0)));
        } else {
            assert!(moved.is_none(), "migrated despite the barrier");
        }
    }
}

#[test]
fn a_winner_does_not_vote_in_the_epoch_it_won() {
    // Replica 3 of master 0 wins an epoch by FORCE; right after, replica 4
    // (of master 1) asks it for a vote in that same epoch with FORCEACK.
    // The winner spent its own vote when it ran: no AUTH_ACK.
    let mut sim = form_with_replicas(3, 1, 650);
    sim.run(1500);
    let slot = first_slot_of(&sim, 0);
    sim.nodes[0].stopped = true;
    sim.call(3, |m, now| m.manual_failover(FailoverMode::Force, now))
        .unwrap();
    sim.run_until(2000, |s| s.nodes[3].m.stats.elections_won == 1)
        .expect("replica 3 won");
    assert_eq!(sim.nodes[3].m.owner(slot), Some(sim.name(3)));
    let epoch = sim.nodes[3].m.current_epoch;
    assert_eq!(sim.nodes[3].m.me().config_epoch, epoch);

    let (r4, m1) = (sim.name(4), sim.name(1));
    let m1_epoch = sim.nodes[3].m.nodes[&m1].config_epoch;
    let mut m1_slots = SlotBitmap::new();
    for s in 0..16384u16 {
        if sim.nodes[3].m.owner(s) == Some(m1) {
            m1_slots.set(s, true);
        }
    }
    let mut req = ping(r4, m1_slots, epoch, Vec::new());
    req.header.ty = msgtype::AUTH_REQUEST;
    req.header.config_epoch = m1_epoch;
    req.header.flags = nflag::SLAVE;
    req.header.slaveof = Some(m1);
    req.header.mflags = wire::mflag::FORCEACK;
    req.body = Body::Empty;
    let link = sim.nodes[3].m.nodes[&r4]
        .inbound
        .expect("inbound link from replica 4");
    let granted = sim.nodes[3].m.stats.votes_granted;
    let _ = sent(&mut sim.nodes[3].m);
    let now = sim.now;
    sim.nodes[3].m.receive(link, req.clone(), now);
    let out = sent(&mut sim.nodes[3].m);
    assert!(
        !out.iter().any(|m| m.header.ty == msgtype::AUTH_ACK),
        "voted in the epoch it won"
    );
    assert_eq!(sim.nodes[3].m.stats.votes_granted, granted);
    // The same request one epoch later is a fair vote.
    req.header.current_epoch = epoch + 1;
    sim.nodes[3].m.receive(link, req, now);
    let out = sent(&mut sim.nodes[3].m);
    assert!(out.iter().any(|m| m.header.ty == msgtype::AUTH_ACK));
    assert_eq!(sim.nodes[3].m.stats.votes_granted, granted + 1);
}

// ----- slot migration (CLUSTER SETSLOT) -----

use shardline_node::cluster::machine::SetSlot;

fn id_of(sim: &Sim, i: usize) -> Vec<u8> {
    wire::name_str(&sim.name(i)).as_bytes().to_vec()
}

/// Moves `slot` from `from` to `to` as redis-cli does (IMPORTING on the
/// target, MIGRATING on the source, NODE on the target, then the source),
/// with no other node told: gossip must carry the change.
fn move_slot(sim: &mut Sim, slot: u16, from: usize, to: usize) {
    let (fid, tid) = (id_of(sim, from), id_of(sim, to));
    sim.call(to, |m, now| {
        m.set_slot(slot, &SetSlot::Importing(fid), 0, now)
    })
    .unwrap();
    sim.call(from, |m, now| {
        m.set_slot(slot, &SetSlot::Migrating(tid.clone()), 0, now)
    })
    .unwrap();
    sim.run(50);
    sim.call(to, |m, now| {
        m.set_slot(slot, &SetSlot::Node(tid.clone()), 0, now)
    })
    .unwrap();
    sim.call(from, |m, now| m.set_slot(slot, &SetSlot::Node(tid), 0, now))
        .unwrap();
}

#[test]
fn a_slot_moved_by_setslot_reaches_every_node_by_gossip() {
    let mut sim = form(6, 3, 41);
    let slot = first_slot_of(&sim, 0);
    let epoch_before = sim.nodes[1].m.me().config_epoch;
    move_slot(&mut sim, slot, 0, 1);
    // The target bumped its configEpoch above everyone's, so its claim
    // wins on nodes that still think the source owns the slot.
    let e = sim.nodes[1].m.me().config_epoch;
    assert!(e > epoch_before);
    for i in 0..6 {
        if i != 1 {
            assert!(sim.nodes[i].m.me().config_epoch < e, "node {i}");
        }
    }
    let all: Vec<usize> = (0..6).collect();
    let t = sim.run_until(10_000, |s| {
        s.owns_everywhere(1, slot) && s.agree(&all).is_ok()
    });
    assert!(t.is_some(), "{:?}", sim.agree(&all));
    // No slot stays open.
    for i in 0..6 {
        let (mig, imp) = sim.nodes[i].m.open_slots();
        assert!(mig.is_empty() && imp.is_empty(), "node {i}");
    }
}

#[test]
fn a_hand_assignment_without_an_epoch_bump_loses_to_the_owners_claim() {
    let mut sim = form(3, 3, 42);
    let slot = first_slot_of(&sim, 0);
    let fid = id_of(&sim, 0);
    sim.call(1, |m, now| {
        m.set_slot(slot, &SetSlot::Importing(fid), 0, now)
    })
    .unwrap();
    // Node 2 wrongly assigns the slot to node 1 by hand (no epoch bump,
    // node 1 never took it): node 0's pings, with a newer configEpoch than
    // node 1's, take it back there; node 1 stays importing.
    let tid = id_of(&sim, 1);
    sim.call(2, |m, now| m.set_slot(slot, &SetSlot::Node(tid), 0, now))
        .unwrap();
    sim.run(5_000);
    assert_eq!(sim.nodes[2].m.owner(slot), Some(sim.name(0)));
    assert_eq!(sim.nodes[1].m.owner(slot), Some(sim.name(0)));
    let (_, imp) = sim.nodes[1].m.open_slots();
    assert_eq!(imp, vec![slot]);
    // STABLE closes it.
    sim.call(1, |m, now| m.set_slot(slot, &SetSlot::Stable, 0, now))
        .unwrap();
    assert!(sim.nodes[1].m.open_slots().1.is_empty());
}

#[test]
fn setslot_refusals_follow_redis() {
    let mut sim = form_with_replicas(2, 1, 43);
    let slot0 = first_slot_of(&sim, 0);
    let slot1 = first_slot_of(&sim, 1);
    let (id0, id1) = (id_of(&sim, 0), id_of(&sim, 1));
    let replica = (2..4).find(|&r| sim.nodes[r].m.me().is_replica()).unwrap();
    let rid = id_of(&sim, replica);
    let err = |sim: &mut Sim, i: usize, slot: u16, a: SetSlot, keys: usize| {
        sim.call(i, |m, now| m.set_slot(slot, &a, keys, now))
            .unwrap_err()
            .0
    };
    assert_eq!(
        err(&mut sim, 0, slot1, SetSlot::Migrating(id1.clone()), 0),
        format!("ERR I'm not the owner of hash slot {slot1}")
    );
    assert_eq!(
        err(&mut sim, 0, slot0, SetSlot::Importing(id1.clone()), 0),
        format!("ERR I'm already the owner of hash slot {slot0}")
    );
    assert_eq!(
        err(
            &mut sim,
            0,
            slot0,
            SetSlot::Migrating(b"nosuchnode".to_vec()),
            0
        ),
        "ERR I don't know about node nosuchnode"
    );
    assert_eq!(
        err(&mut sim, 0, slot0, SetSlot::Migrating(rid.clone()), 0),
        "ERR Target node is not a master"
    );
    assert_eq!(
        err(&mut sim, 0, slot0, SetSlot::Node(b"nosuchnode".to_vec()), 0),
        "ERR Unknown node nosuchnode"
    );
    assert_eq!(
        err(&mut sim, 0, slot0, SetSlot::Node(id1.clone()), 3),
        format!(
            "ERR Can't assign hashslot {slot0} to a different node while I still hold keys for this hash slot."
        )
    );
    assert_eq!(
        err(&mut sim, replica, slot0, SetSlot::Stable, 0),
        "ERR Please use SETSLOT only with masters."
    );
    assert_eq!(
        SetSlot::parse(&[b"node".as_slice()]).unwrap_err().0,
        "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
    );
    assert_eq!(
        SetSlot::parse(&[b"stable".as_slice(), b"x".as_slice()])
            .unwrap_err()
            .0,
        "ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP"
    );
    // Nothing was opened by the refusals.
    let (mig, imp) = sim.nodes[0].m.open_slots();
    assert!(mig.is_empty() && imp.is_empty());
    let _ = id0;
}

#[test]
fn a_master_that_gives_away_its_last_slot_becomes_a_replica_of_the_taker() {
    let mut sim = form(3, 3, 44);
    let name0 = sim.name(0);
    let slots: Vec<u16> = (0..16384u16)
        .filter(|s| sim.nodes[0].m.owner(*s) == Some(name0))
        .collect();
    let (fid, tid) = (id_of(&sim, 0), id_of(&sim, 2));
    for &s in &slots {
        sim.call(2, |m, now| {
            m.set_slot(s, &SetSlot::Importing(fid.clone()), 0, now)
        })
        .unwrap();
        sim.call(0, |m, now| {
            m.set_slot(s, &SetSlot::Migrating(tid.clone()), 0, now)
        })
        .unwrap();
        sim.call(2, |m, now| {
            m.set_slot(s, &SetSlot::Node(tid.clone()), 0, now)
        })
        .unwrap();
        sim.call(0, |m, now| {
            m.set_slot(s, &SetSlot::Node(tid.clone()), 0, now)
        })
        .unwrap();
    }
    let me = sim.nodes[0].m.me();
    assert!(me.is_replica() && me.slaveof == Some(sim.name(2)));
    let t = sim.run_until(10_000, |s| {
        (0..3).all(|i| {
            s.nodes[i]
                .m
                .nodes
                .get(&name0)
                .is_some_and(|p| p.is_replica())
        }) && s.owners_agree(&[1, 2]).is_ok()
    });
    assert!(t.is_some());
}

#[test]
fn keys_of_a_lost_slot_go_after_a_grace_period_unless_it_is_in_migration() {
    // Node 1 takes three of node 0's slots with a bumped epoch (as
    // redis-cli --cluster fix does when it picks an owner). Node 0 was
    // migrating one; another comes back to it before the grace period
    // ends. Only the third one's keys are dropped, and not at once.
    let mut sim = form(3, 3, 45);
    let a = first_slot_of(&sim, 0);
    let (b, back) = (a + 1, a + 2);
    let tid = id_of(&sim, 1);
    sim.call(0, |m, now| m.set_slot(a, &SetSlot::Migrating(tid), 0, now))
        .unwrap();
    // DELSLOTS, ADDSLOTS, BUMPEPOCH on node 1, as redis-cli does.
    sim.call(1, |m, now| {
        m.del_slots(&[a, b, back], now)?;
        m.add_slots(&[a, b, back], now)?;
        Ok::<_, shardline_node::cluster::machine::ClusterError>(m.bump_epoch())
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    let t = sim.run_until(10_000, |s| {
        s.owns_everywhere(1, a) && s.owns_everywhere(1, b) && s.owns_everywhere(1, back)
    });
    assert!(t.is_some());
    let dropped = |sim: &Sim| -> Vec<u16> {
        sim.dropped
            .iter()
            .filter(|(n, _)| *n == 0)
            .flat_map(|(_, s)| s.clone())
            .collect()
    };
    assert!(
        dropped(&sim).is_empty(),
        "dropped at once: {:?}",
        dropped(&sim)
    );
    // `back` returns to node 0 (ADDSLOTS + BUMPEPOCH there after node 1
    // lets it go).
    sim.call(1, |m, now| m.del_slots(&[back], now)).unwrap();
    sim.call(0, |m, now| {
        m.del_slots(&[back], now)?;
        m.add_slots(&[back], now)?;
        Ok::<_, shardline_node::cluster::machine::ClusterError>(m.bump_epoch())
    })
    .unwrap_or_else(|e| panic!("{e:?}"));
    sim.run(10_000);
    assert_eq!(dropped(&sim), vec![b]);
}

/// A ping the source built before it heard of the handover still claims
/// the slot. When the source's configEpoch is the newer one (it bumped it
/// for another slot of the same repair, as `redis-cli --cluster fix` does
/// slot after slot), that stale claim used to take the slot back from the
/// target, which then gave it away: each node believed the other owned it.
/// The target now ignores the source's claims of a slot it just took over,
/// for a moment; after that, claims count as usual.
/// A ping from node `from` to node `to` claiming `slot` besides the slots
/// `from` owns, with configEpoch `epoch`: what a node sends when it has not
/// yet heard that the slot moved.
/// Node 0 claims `slot`, which node 1 just took, with a configEpoch newer
/// than any node 1 knows: node 1 must keep the slot. Returns that epoch.
fn stale_claim_is_ignored(sim: &mut Sim, slot: u16) -> u64 {
    let newer = sim.nodes[1].m.current_epoch + 5;
    deliver_stale_claim(sim, 0, 1, slot, newer);
    sim.flush(1);
    assert_eq!(
        sim.nodes[1].m.owner(slot),
        Some(sim.name(1)),
        "the stale claim took the slot back"
    );
    newer
}

fn deliver_stale_claim(sim: &mut Sim, from: usize, to: usize, slot: u16, epoch: u64) {
    let (link, msg) = stale_claim(sim, from, to, slot, epoch);
    let now = sim.node_now(to);
    sim.nodes[to].m.receive(link, msg, now);
}

fn stale_claim(sim: &Sim, from: usize, to: usize, slot: u16, epoch: u64) -> (LinkId, Message) {
    let a = sim.name(from);
    let mut claim = SlotBitmap::new();
    for s in 0..16384u16 {
        if sim.nodes[from].m.owner(s) == Some(a) {
            claim.set(s, true);
        }
    }
    claim.set(slot, true);
    let peer = &sim.nodes[to].m.nodes[&a];
    let mut msg = ping(a, claim, epoch, Vec::new());
    msg.header.port = peer.port;
    msg.header.cport = peer.cport;
    (peer.inbound.expect("inbound link from the claimant"), msg)
}

/// redis-cli's fix of a slot that two nodes hold open makes one of them
/// the owner with DELSLOTS, ADDSLOTS and BUMPEPOCH, and only then sends the
/// other one DELSLOTS. A ping the other built in between still claims the
/// slot, and if its configEpoch is newer (it bumped it for another slot of
/// the same repair), that claim took the slot from the new owner, which then
/// dropped its keys while the other node, told to forget the slot, believed
/// the new owner had it. The node that ADDSLOTS made the owner now ignores
/// other claims of the slot for a moment; after that they count as usual.
#[test]
fn a_stale_claim_does_not_undo_an_addslots() {
    let mut sim = form(2, 2, 44);
    let slot = first_slot_of(&sim, 0);
    let (a, b) = (sim.name(0), sim.name(1));
    sim.call(1, |m, now| m.del_slots(&[slot], now)).unwrap();
    sim.call(1, |m, now| m.add_slots(&[slot], now)).unwrap();
    assert_eq!(sim.nodes[1].m.owner(slot), Some(b));
    // The other holder's ping, built before its DELSLOTS, with an epoch
    // newer than anything the new owner knows.
    let newer = stale_claim_is_ignored(&mut sim, slot);
    // The other holder gets its DELSLOTS and learns the new owner.
    sim.call(0, |m, now| m.del_slots(&[slot], now)).unwrap();
    let t = sim.run_until(10_000, |s| s.owns_everywhere(1, slot));
    assert!(t.is_some(), "the slot did not settle on the new owner");
    // Past the guard, a newer claim by another node counts again.
    sim.run(3_000);
    deliver_stale_claim(&mut sim, 0, 1, slot, newer);
    assert_eq!(sim.nodes[1].m.owner(slot), Some(a));
}

#[test]
fn a_stale_claim_from_the_source_does_not_undo_a_handover() {
    let mut sim = form(2, 2, 43);
    let slot = first_slot_of(&sim, 0);
    let (a, b) = (sim.name(0), sim.name(1));
    let (aid, bid) = (id_of(&sim, 0), id_of(&sim, 1));
    sim.call(1, |m, now| {
        m.set_slot(slot, &SetSlot::Importing(aid), 0, now)
    })
    .unwrap();
    sim.call(0, |m, now| {
        m.set_slot(slot, &SetSlot::Migrating(bid.clone()), 0, now)
    })
    .unwrap();
    sim.run(50);
    sim.call(1, |m, now| {
        m.set_slot(slot, &SetSlot::Node(bid.clone()), 0, now)
    })
    .unwrap();
    assert_eq!(sim.nodes[1].m.owner(slot), Some(b));
    // The source's ping, built before its SETSLOT NODE, with an epoch
    // newer than anything the target knows.
    let newer = stale_claim_is_ignored(&mut sim, slot);
    // The source hears of the handover: both agree on the target.
    sim.call(0, |m, now| m.set_slot(slot, &SetSlot::Node(bid), 0, now))
        .unwrap();
    let t = sim.run_until(10_000, |s| s.owns_everywhere(1, slot));
    assert!(t.is_some(), "the slot did not settle on the target");
    // Past the guard, a newer claim by the old source counts again.
    sim.run(3_000);
    deliver_stale_claim(&mut sim, 0, 1, slot, newer);
    assert_eq!(sim.nodes[1].m.owner(slot), Some(a));
}
