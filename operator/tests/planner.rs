//! Planner tests over synthetic observed states, and a small simulated
//! cluster that applies the planner's actions until it converges.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use shardline_operator::action::{Action, Plan};
use shardline_operator::crd::RedisClusterSpec;
use shardline_operator::model::{
    ClusterNode, Member, MemberName, MemberView, Observed, PlatformMember, Replication, Role,
    SlotMove, SlotRange, SLOTS,
};
use shardline_operator::planner::{desired_members, even_range, plan, to_ranges, PlanInput};

fn spec(masters: i32, replicas: i32) -> RedisClusterSpec {
    serde_yaml::from_str(&format!(
        "masters: {masters}\nreplicasPerMaster: {replicas}\nimage: shardline-node\n"
    ))
    .expect("spec")
}

fn name(s: u32, i: u32) -> MemberName {
    MemberName::new(s, i)
}

/// A simulated node: the truth the views are made from.
#[derive(Clone, Debug)]
struct Node {
    id: String,
    addr: String,
    running: bool,
    up_to_date: bool,
    master_of: Option<String>,
    slots: BTreeSet<u16>,
    epoch: u64,
    migrating: Vec<(u16, String)>,
    importing: Vec<(u16, String)>,
    offset: i64,
    /// IDs this node knows (besides itself) and at which address.
    knows: BTreeMap<String, String>,
}

/// A simulated cluster with instant gossip among nodes that know each
/// other.
#[derive(Clone, Debug, Default)]
struct World {
    nodes: BTreeMap<MemberName, Node>,
    /// Nodes that are no member but appear in views (id → addr, failed).
    strangers: BTreeMap<String, (String, bool, BTreeSet<u16>)>,
    next_id: u64,
    next_ip: u32,
    epoch: u64,
    /// Every action applied, in order.
    log: Vec<Action>,
}

impl World {
    fn new_id(&mut self) -> String {
        self.next_id += 1;
        format!("{:040x}", self.next_id)
    }

    fn add(&mut self, m: MemberName) {
        let id = self.new_id();
        self.next_ip += 1;
        let addr = format!("127.0.0.{}:7000", self.next_ip);
        self.nodes.insert(
            m,
            Node {
                id,
                addr,
                running: true,
                up_to_date: true,
                master_of: None,
                slots: BTreeSet::new(),
                epoch: 0,
                migrating: vec![],
                importing: vec![],
                offset: 0,
                knows: BTreeMap::new(),
            },
        );
    }

    fn by_id(&self, id: &str) -> Option<MemberName> {
        self.nodes.iter().find(|(_, n)| n.id == id).map(|(k, _)| *k)
    }

    /// A healthy cluster: shard s's index 0 is master of its even range.
    fn healthy(masters: u32, replicas: u32) -> World {
        let mut w = World::default();
        for s in 0..masters {
            for i in 0..=replicas {
                w.add(name(s, i));
            }
        }
        let all: Vec<(String, String)> = w
            .nodes
            .values()
            .map(|n| (n.id.clone(), n.addr.clone()))
            .collect();
        for s in 0..masters {
            let (lo, hi) = even_range(s, masters);
            let master_id = w.nodes[&name(s, 0)].id.clone();
            w.epoch += 1;
            let epoch = w.epoch;
            let m = w.nodes.get_mut(&name(s, 0)).expect("master");
            m.slots = (lo..=hi).collect();
            m.epoch = epoch;
            for i in 1..=replicas {
                let r = w.nodes.get_mut(&name(s, i)).expect("replica");
                r.master_of = Some(master_id.clone());
            }
        }
        for n in w.nodes.values_mut() {
            n.knows = all.iter().filter(|(id, _)| *id != n.id).cloned().collect();
        }
        w
    }

    fn cluster_node(&self, n: &Node, myself: bool, fail: bool) -> ClusterNode {
        ClusterNode {
            id: n.id.clone(),
            addr: n.addr.clone(),
            myself,
            master: n.master_of.is_none(),
            fail,
            master_id: n.master_of.clone(),
            config_epoch: n.epoch,
            connected: !fail,
            slots: to_ranges(n.slots.iter().copied()),
            migrating: if myself { n.migrating.clone() } else { vec![] },
            importing: if myself { n.importing.clone() } else { vec![] },
            ..ClusterNode::default()
        }
    }

    fn observe(&self) -> Observed {
        let mut members = BTreeMap::new();
        for (&m, n) in &self.nodes {
            let view = n.running.then(|| {
                let mut nodes = vec![self.cluster_node(n, true, false)];
                for (id, addr) in &n.knows {
                    if let Some(other) = self.by_id(id).map(|k| &self.nodes[&k]) {
                        let mut cn = self.cluster_node(other, false, !other.running);
                        cn.addr = addr.clone();
                        nodes.push(cn);
                    } else if let Some((saddr, failed, slots)) = self.strangers.get(id) {
                        nodes.push(ClusterNode {
                            id: id.clone(),
                            addr: saddr.clone(),
                            master: true,
                            fail: *failed,
                            slots: to_ranges(slots.iter().copied()),
                            ..ClusterNode::default()
                        });
                    }
                }
                let master_offset = n
                    .master_of
                    .as_deref()
                    .and_then(|id| self.by_id(id))
                    .map(|k| self.nodes[&k].offset);
                MemberView {
                    nodes,
                    state_ok: true,
                    current_epoch: self.epoch,
                    repl: Replication {
                        role: if n.master_of.is_some() {
                            Role::Replica
                        } else {
                            Role::Master
                        },
                        master_addr: None,
                        link_up: n.master_of.is_some(),
                        offset: master_offset.unwrap_or(n.offset),
                        replicas: vec![],
                    },
                    keys_in_slot: BTreeMap::new(),
                    migrateslots: true,
                }
            });
            members.insert(
                m,
                Member {
                    platform: PlatformMember {
                        name: m,
                        addr: n.addr.clone(),
                        running: n.running,
                        up_to_date: n.up_to_date,
                        host: None,
                        zone: None,
                    },
                    node_id: Some(n.id.clone()),
                    view,
                },
            );
        }
        Observed { members }
    }

    fn owner_of(&self, slot: u16) -> Vec<MemberName> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.slots.contains(&slot))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Applies one action as the cluster would, checking the planner's
    /// safety promises.
    fn apply(&mut self, action: &Action) {
        self.log.push(action.clone());
        match action {
            Action::CreateMember { member } => {
                assert!(
                    !self.nodes.contains_key(member),
                    "create of existing {member}"
                );
                self.add(*member);
            }
            Action::StartMember { member } => {
                let n = self.nodes.get_mut(member).expect("start of unknown member");
                n.running = true;
            }
            Action::ReplaceMember { member } => {
                let n = self
                    .nodes
                    .get_mut(member)
                    .expect("replace of unknown member");
                assert!(n.slots.is_empty(), "replaced {member} while it owns slots");
                n.up_to_date = true;
            }
            Action::DeleteMember { member } => {
                let n = self.nodes.remove(member).expect("delete of unknown member");
                assert!(n.slots.is_empty(), "deleted {member} while it owns slots");
                self.strangers
                    .insert(n.id.clone(), (n.addr.clone(), true, BTreeSet::new()));
            }
            Action::Meet { on, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .find(|(_, n)| &n.addr == addr)
                    .map(|(k, _)| *k)
                    .expect("meet of an unknown address");
                // Gossip: the two clusters merge.
                let mut group: BTreeSet<MemberName> = [*on, target].into();
                for k in [*on, target] {
                    for id in self.nodes[&k].knows.keys() {
                        if let Some(m) = self.by_id(id) {
                            group.insert(m);
                        }
                    }
                }
                let entries: Vec<(String, String)> = group
                    .iter()
                    .map(|k| (self.nodes[k].id.clone(), self.nodes[k].addr.clone()))
                    .collect();
                for k in &group {
                    let n = self.nodes.get_mut(k).expect("node");
                    for (id, addr) in &entries {
                        if *id != n.id {
                            n.knows.insert(id.clone(), addr.clone());
                        }
                    }
                }
            }
            Action::AddSlots { on, ranges } => {
                for s in ranges.iter().flat_map(|&(a, b)| a..=b) {
                    assert!(self.owner_of(s).is_empty(), "slot {s} assigned twice");
                }
                self.epoch += 1;
                let epoch = self.epoch;
                let n = self.nodes.get_mut(on).expect("node");
                assert!(n.master_of.is_none(), "ADDSLOTS on replica {on}");
                n.slots.extend(ranges.iter().flat_map(|&(a, b)| a..=b));
                n.epoch = epoch;
            }
            Action::Replicate { on, master } => {
                let n = self.nodes.get_mut(on).expect("node");
                assert!(n.slots.is_empty(), "REPLICATE on {on} which owns slots");
                assert!(
                    n.knows.contains_key(master),
                    "{on} replicates an unknown node"
                );
                n.master_of = Some(master.clone());
            }
            Action::Forget { node } => {
                assert!(
                    self.by_id(node).is_none_or(|m| !self.nodes[&m].running),
                    "forgot a running member"
                );
                for n in self.nodes.values_mut() {
                    assert_ne!(
                        n.master_of.as_deref(),
                        Some(node.as_str()),
                        "forgot a master"
                    );
                    n.knows.remove(node);
                }
                self.strangers.remove(node);
            }
            Action::StableSlot { on, slot } => {
                let n = self.nodes.get_mut(on).expect("node");
                n.migrating.retain(|(s, _)| s != slot);
                n.importing.retain(|(s, _)| s != slot);
            }
            Action::MoveSlots { from, to, slots } => {
                assert!(self.nodes[to].master_of.is_none(), "move to replica {to}");
                self.epoch += 1;
                let epoch = self.epoch;
                for s in slots.iter().flat_map(|&(a, b)| a..=b) {
                    let owners = self.owner_of(s);
                    assert!(
                        owners.is_empty() || owners == vec![*from] || owners == vec![*to],
                        "slot {s} moved from {from} but owned by {owners:?}"
                    );
                    for k in [from, to] {
                        let n = self.nodes.get_mut(k).expect("node");
                        n.slots.remove(&s);
                        n.migrating.retain(|(x, _)| *x != s);
                        n.importing.retain(|(x, _)| *x != s);
                    }
                    self.nodes.get_mut(to).expect("node").slots.insert(s);
                }
                self.nodes.get_mut(to).expect("node").epoch = epoch;
            }
            Action::Failover { on } => {
                let old = self.nodes[on]
                    .master_of
                    .clone()
                    .expect("failover on a master");
                let old_name = self.by_id(&old).expect("master is a member");
                let slots = std::mem::take(&mut self.nodes.get_mut(&old_name).expect("m").slots);
                let new_id = self.nodes[on].id.clone();
                self.epoch += 1;
                let epoch = self.epoch;
                for n in self.nodes.values_mut() {
                    if n.master_of.as_deref() == Some(old.as_str()) || n.id == old {
                        n.master_of = Some(new_id.clone());
                    }
                }
                let n = self.nodes.get_mut(on).expect("node");
                n.master_of = None;
                n.slots = slots;
                n.epoch = epoch;
            }
        }
    }

    /// Plans and applies until the plan is empty; returns the rounds.
    fn converge(&mut self, spec: &RedisClusterSpec) -> usize {
        for round in 0..100 {
            let obs = self.observe();
            let p = plan(&PlanInput {
                spec,
                observed: &obs,
                in_flight: &[],
                down_for: &BTreeMap::new(),
            });
            if p.is_converged() {
                return round;
            }
            assert!(!p.steps.is_empty(), "stuck waiting: {:?}", p.waiting);
            for s in &p.steps {
                assert!(!s.reason.is_empty());
                self.apply(&s.action);
            }
        }
        panic!(
            "did not converge in 100 rounds; last actions {:?}",
            self.log.iter().rev().take(5).collect::<Vec<_>>()
        );
    }

    /// The invariants of a cluster that matches `spec`.
    fn assert_matches(&self, spec: &RedisClusterSpec) {
        let want = desired_members(spec);
        let have: BTreeSet<MemberName> = self.nodes.keys().copied().collect();
        assert_eq!(have, want, "members");
        let n = spec.masters as u32;
        for s in 0..n {
            let masters: Vec<&MemberName> = self
                .nodes
                .iter()
                .filter(|(k, v)| k.shard == s && v.master_of.is_none())
                .map(|(k, _)| k)
                .collect();
            assert_eq!(masters.len(), 1, "shard {s} masters: {masters:?}");
            let master = &self.nodes[masters[0]];
            let (lo, hi) = even_range(s, n);
            let share = usize::from(hi - lo + 1);
            assert!(
                master.slots.len().abs_diff(share) <= share / 100,
                "shard {s} has {} slots, share {share}",
                master.slots.len()
            );
            for (k, v) in &self.nodes {
                if k.shard == s && v.master_of.is_some() {
                    assert_eq!(v.master_of.as_deref(), Some(master.id.as_str()));
                }
            }
        }
        for slot in 0..SLOTS {
            assert_eq!(self.owner_of(slot).len(), 1, "slot {slot} owners");
        }
        for n in self.nodes.values() {
            assert_eq!(
                n.knows.len(),
                self.nodes.len() - 1,
                "{} knows {:?}",
                n.addr,
                n.knows
            );
        }
    }
}

fn plan_for(spec: &RedisClusterSpec, obs: &Observed) -> Plan {
    plan(&PlanInput {
        spec,
        observed: obs,
        in_flight: &[],
        down_for: &BTreeMap::new(),
    })
}

fn actions(p: &Plan) -> Vec<&Action> {
    p.steps.iter().map(|s| &s.action).collect()
}

#[test]
fn a_healthy_cluster_needs_nothing() {
    let w = World::healthy(3, 1);
    let p = plan_for(&spec(3, 1), &w.observe());
    assert!(p.is_converged(), "{p:?}");
}

#[test]
fn builds_a_new_cluster_from_nothing() {
    let s = spec(3, 1);
    let mut w = World::default();
    let p = plan_for(&s, &w.observe());
    assert_eq!(p.steps.len(), 6, "{p:?}");
    assert!(p
        .steps
        .iter()
        .all(|s| matches!(s.action, Action::CreateMember { .. })));
    w.converge(&s);
    w.assert_matches(&s);
    // Slots were assigned once, in even ranges, after everyone met.
    let adds: Vec<&Action> = w
        .log
        .iter()
        .filter(|a| matches!(a, Action::AddSlots { .. }))
        .collect();
    assert_eq!(adds.len(), 3);
    let first_add = w
        .log
        .iter()
        .position(|a| matches!(a, Action::AddSlots { .. }));
    let last_meet = w.log.iter().rposition(|a| matches!(a, Action::Meet { .. }));
    assert!(
        last_meet < first_add,
        "slots assigned before the mesh formed"
    );
}

#[test]
fn scales_out_and_back_in_evenly() {
    let mut w = World::healthy(3, 1);
    let five = spec(5, 1);
    w.converge(&five);
    w.assert_matches(&five);
    let three = spec(3, 1);
    w.converge(&three);
    w.assert_matches(&three);
    // The departing members were deleted only after they were emptied.
    assert!(w
        .log
        .iter()
        .any(|a| matches!(a, Action::DeleteMember { member } if member.shard == 4)));
}

#[test]
fn scale_in_drains_before_deleting() {
    let w = World::healthy(4, 1);
    let p = plan_for(&spec(3, 1), &w.observe());
    let acts = actions(&p);
    assert!(!acts.is_empty());
    assert!(
        acts.iter()
            .all(|a| matches!(a, Action::MoveSlots { from, .. } if from.shard == 3)),
        "{acts:?}"
    );
}

#[test]
fn a_stopped_master_is_restarted_only_after_its_replica_took_over() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.nodes.get_mut(&name(1, 0)).expect("m").running = false;
    let obs = w.observe();
    let p = plan_for(&s, &obs);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.waiting[0].contains("waiting for its replica"), "{p:?}");
    // Past the patience window it is restarted anyway.
    let down = BTreeMap::from([(name(1, 0), Duration::from_secs(60))]);
    let p = plan(&PlanInput {
        spec: &s,
        observed: &obs,
        in_flight: &[],
        down_for: &down,
    });
    assert_eq!(
        actions(&p),
        vec![&Action::StartMember { member: name(1, 0) }]
    );
    // Once the cluster has failed over, it is started and stays a replica.
    w.apply(&Action::Failover { on: name(1, 1) });
    w.log.clear();
    let p = plan_for(&s, &w.observe());
    assert_eq!(
        actions(&p),
        vec![&Action::StartMember { member: name(1, 0) }]
    );
    w.converge(&s);
    w.assert_matches(&s);
    assert!(w.nodes[&name(1, 0)].master_of.is_some());
}

#[test]
fn a_stopped_replica_is_started() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.nodes.get_mut(&name(2, 1)).expect("r").running = false;
    let p = plan_for(&s, &w.observe());
    assert_eq!(
        actions(&p),
        vec![&Action::StartMember { member: name(2, 1) }]
    );
}

#[test]
fn an_unreachable_member_blocks_cluster_changes() {
    let s = spec(3, 1);
    let w = World::healthy(3, 1);
    let mut obs = w.observe();
    obs.members.get_mut(&name(0, 1)).expect("m").view = None;
    let p = plan_for(&s, &obs);
    assert!(p.steps.is_empty());
    assert!(p.waiting[0].contains("shard-0-1"), "{p:?}");
}

#[test]
fn open_slots_are_finished_toward_the_importer() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    let a = w.nodes[&name(0, 0)].id.clone();
    let b = w.nodes[&name(1, 0)].id.clone();
    w.nodes.get_mut(&name(0, 0)).expect("a").migrating = vec![(100, b)];
    w.nodes.get_mut(&name(1, 0)).expect("b").importing = vec![(100, a)];
    let p = plan_for(&s, &w.observe());
    assert_eq!(
        actions(&p),
        vec![&Action::MoveSlots {
            from: name(0, 0),
            to: name(1, 0),
            slots: vec![(100, 100)]
        }]
    );
    // Then balance brings slot 100 back to its shard.
    w.converge(&s);
    w.assert_matches(&s);
}

#[test]
fn open_slots_without_a_counterpart_are_closed() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    let b = w.nodes[&name(1, 0)].id.clone();
    let c = w.nodes[&name(2, 0)].id.clone();
    // Migrating to a node that does not import: the source keeps the slot.
    w.nodes.get_mut(&name(0, 0)).expect("a").migrating = vec![(7, b.clone())];
    // The target already owns a slot it still marks importing.
    w.nodes.get_mut(&name(2, 0)).expect("c").importing = vec![(11000, b)];
    w.nodes.get_mut(&name(1, 0)).expect("b").importing = vec![(12000, c)];
    let p = plan_for(&s, &w.observe());
    // Slot 7: source owns, target not importing → the move is finished.
    assert!(actions(&p).contains(&&Action::MoveSlots {
        from: name(0, 0),
        to: name(1, 0),
        slots: vec![(7, 7)]
    }));
    assert!(actions(&p).contains(&&Action::StableSlot {
        on: name(2, 0),
        slot: 11000
    }));
    w.converge(&s);
    w.assert_matches(&s);
}

#[test]
fn importing_with_keys_from_a_non_owner_waits_for_a_human() {
    let s = spec(3, 1);
    let w = World::healthy(3, 1);
    let c = w.nodes[&name(2, 0)].id.clone();
    let mut obs = w.observe();
    let v = obs
        .members
        .get_mut(&name(1, 0))
        .and_then(|m| m.view.as_mut())
        .expect("view");
    v.nodes[0].importing = vec![(5, c)];
    v.keys_in_slot.insert(5, 3);
    let p = plan_for(&s, &obs);
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.waiting.iter().any(|w| w.contains("slot 5")), "{p:?}");
}

#[test]
fn recorded_moves_are_resumed() {
    let s = spec(3, 1);
    let w = World::healthy(3, 1);
    let mv = SlotMove {
        from: name(0, 0),
        to: name(2, 0),
        slots: vec![(0, 9)],
    };
    let obs = w.observe();
    let p = plan(&PlanInput {
        spec: &s,
        observed: &obs,
        in_flight: &[mv],
        down_for: &BTreeMap::new(),
    });
    assert_eq!(
        actions(&p),
        vec![&Action::MoveSlots {
            from: name(0, 0),
            to: name(2, 0),
            slots: vec![(0, 9)]
        }]
    );
}

#[test]
fn orphan_master_in_a_shard_becomes_a_replica() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.nodes.get_mut(&name(1, 1)).expect("r").master_of = None;
    let p = plan_for(&s, &w.observe());
    let master = w.nodes[&name(1, 0)].id.clone();
    assert_eq!(
        actions(&p),
        vec![&Action::Replicate {
            on: name(1, 1),
            master
        }]
    );
}

#[test]
fn a_replica_of_the_wrong_master_is_moved() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    let wrong = w.nodes[&name(0, 0)].id.clone();
    w.nodes.get_mut(&name(2, 1)).expect("r").master_of = Some(wrong);
    let p = plan_for(&s, &w.observe());
    let right = w.nodes[&name(2, 0)].id.clone();
    assert_eq!(p.steps.len(), 1);
    assert_eq!(
        p.steps[0].action,
        Action::Replicate {
            on: name(2, 1),
            master: right
        }
    );
    assert!(
        p.steps[0].reason.contains("shard-0-0"),
        "{}",
        p.steps[0].reason
    );
}

#[test]
fn unknown_failed_nodes_are_forgotten_live_slot_owners_are_not() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    let ghost = "f".repeat(40);
    let live = "e".repeat(40);
    w.strangers.insert(
        ghost.clone(),
        ("127.0.9.9:7000".into(), true, BTreeSet::new()),
    );
    for n in w.nodes.values_mut() {
        n.knows.insert(ghost.clone(), "127.0.9.9:7000".into());
    }
    let p = plan_for(&s, &w.observe());
    assert_eq!(
        actions(&p),
        vec![&Action::Forget {
            node: ghost.clone()
        }]
    );

    // A live stranger that owns slots is left alone (and blocks balance).
    let mut w = World::healthy(3, 1);
    let moved: BTreeSet<u16> = (0..10).collect();
    w.nodes
        .get_mut(&name(0, 0))
        .expect("m")
        .slots
        .retain(|s| !moved.contains(s));
    w.strangers
        .insert(live.clone(), ("127.0.9.8:7000".into(), false, moved));
    for n in w.nodes.values_mut() {
        n.knows.insert(live.clone(), "127.0.9.8:7000".into());
    }
    let p = plan_for(&s, &w.observe());
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.waiting.iter().any(|m| m.contains("owns slots")), "{p:?}");
}

#[test]
fn two_claimants_for_one_slot_wait_for_the_epoch_to_settle() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.nodes.get_mut(&name(1, 0)).expect("m").slots.insert(0);
    let p = plan_for(&s, &w.observe());
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(
        p.waiting.iter().any(|m| m.contains("claimed by two")),
        "{p:?}"
    );
}

#[test]
fn lost_slots_are_covered_by_the_emptiest_master() {
    let s = spec(3, 0);
    let mut w = World::healthy(3, 0);
    let lost: Vec<u16> = (0..100).collect();
    w.nodes
        .get_mut(&name(0, 0))
        .expect("m")
        .slots
        .retain(|s| !lost.contains(s));
    let p = plan_for(&s, &w.observe());
    assert_eq!(
        actions(&p),
        vec![&Action::AddSlots {
            on: name(0, 0),
            ranges: vec![(0, 99)]
        }]
    );
}

#[test]
fn all_ips_changed_are_met_again() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    // Every member restarted on a new address; the views still carry the
    // old ones.
    for (k, n) in w.nodes.iter_mut() {
        n.addr = format!("127.0.1.{}:7000", k.shard * 2 + k.index + 1);
    }
    let obs = w.observe();
    let p = plan_for(&s, &obs);
    assert_eq!(p.steps.len(), 5, "{p:?}");
    for st in &p.steps {
        let Action::Meet { on, addr } = &st.action else {
            panic!("{st:?}");
        };
        assert_eq!(*on, name(0, 0));
        assert!(addr.starts_with("127.0.1."));
        assert!(st.reason.contains("now at"), "{}", st.reason);
    }
    // After meeting, addresses are current everywhere and nothing is left.
    for st in &p.steps {
        w.apply(&st.action);
    }
    let addrs: BTreeMap<String, String> = w
        .nodes
        .values()
        .map(|n| (n.id.clone(), n.addr.clone()))
        .collect();
    for n in w.nodes.values_mut() {
        for (id, a) in n.knows.iter_mut() {
            *a = addrs[id].clone();
        }
    }
    assert!(plan_for(&s, &w.observe()).is_converged());
}

#[test]
fn rolling_update_goes_replicas_first_and_fails_over_masters() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    for n in w.nodes.values_mut() {
        n.up_to_date = false;
    }
    w.converge(&s);
    w.assert_matches(&s);
    assert!(w.nodes.values().all(|n| n.up_to_date));
    let first_failover = w
        .log
        .iter()
        .position(|a| matches!(a, Action::Failover { .. }))
        .expect("a failover");
    // Every original replica was replaced before the first failover.
    for k in 0..3 {
        let replaced = w
            .log
            .iter()
            .position(|a| *a == Action::ReplaceMember { member: name(k, 1) })
            .expect("replica replaced");
        assert!(replaced < first_failover);
    }
    // Each original master was failed away from before its replacement.
    for k in 0..3 {
        let failover = w
            .log
            .iter()
            .position(|a| *a == Action::Failover { on: name(k, 1) })
            .expect("failover");
        let replaced = w
            .log
            .iter()
            .position(|a| *a == Action::ReplaceMember { member: name(k, 0) })
            .expect("master replaced");
        assert!(failover < replaced);
    }
    assert_eq!(
        w.log
            .iter()
            .filter(|a| matches!(a, Action::ReplaceMember { .. }))
            .count(),
        6
    );
}

#[test]
fn rolling_update_waits_for_lagging_replicas() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.nodes.get_mut(&name(0, 1)).expect("r").up_to_date = false;
    let mut obs = w.observe();
    obs.members
        .get_mut(&name(1, 1))
        .and_then(|m| m.view.as_mut())
        .expect("view")
        .repl
        .offset -= 10 << 20;
    let p = plan_for(&s, &obs);
    assert!(p.steps.is_empty());
    assert!(p.waiting[0].contains("behind"), "{p:?}");
}

#[test]
fn a_master_without_replicas_is_not_restarted() {
    let s = spec(3, 0);
    let mut w = World::healthy(3, 0);
    w.nodes.get_mut(&name(0, 0)).expect("m").up_to_date = false;
    let p = plan_for(&s, &w.observe());
    assert!(p.steps.is_empty(), "{p:?}");
    assert!(p.waiting[0].contains("no replica"), "{p:?}");
}

#[test]
fn a_replaced_member_with_a_new_id_rejoins_and_its_old_id_is_forgotten() {
    let s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    // shard-2-1 lost its data: it comes back with a new ID, knowing nobody.
    let old = w.nodes[&name(2, 1)].id.clone();
    let new = w.new_id();
    let addr = w.nodes[&name(2, 1)].addr.clone();
    {
        let n = w.nodes.get_mut(&name(2, 1)).expect("r");
        n.id = new;
        n.master_of = None;
        n.knows.clear();
    }
    w.strangers
        .insert(old.clone(), (addr, true, BTreeSet::new()));
    w.converge(&s);
    w.assert_matches(&s);
    assert!(w.log.contains(&Action::Forget { node: old }));
}

#[test]
fn scaling_replicas_up_and_down() {
    let mut w = World::healthy(3, 0);
    let two = spec(3, 2);
    w.converge(&two);
    w.assert_matches(&two);
    let one = spec(3, 1);
    w.converge(&one);
    w.assert_matches(&one);
}

#[test]
fn even_ranges_cover_every_slot_once() {
    for n in 1..=20u32 {
        let mut next = 0u32;
        for k in 0..n {
            let (lo, hi) = even_range(k, n);
            assert_eq!(u32::from(lo), next);
            next = u32::from(hi) + 1;
        }
        assert_eq!(next, u32::from(SLOTS));
    }
    let r: Vec<SlotRange> = to_ranges([1, 2, 3, 7, 9, 10]);
    assert_eq!(r, vec![(1, 3), (7, 7), (9, 10)]);
}

#[test]
fn failback_returns_mastership_to_the_first_member_when_asked() {
    let mut s = spec(3, 1);
    let mut w = World::healthy(3, 1);
    w.apply(&Action::Failover { on: name(1, 1) });
    // Not asked: the new layout stands.
    assert!(plan_for(&s, &w.observe()).is_converged());
    s.failback = true;
    let p = plan_for(&s, &w.observe());
    assert_eq!(actions(&p), vec![&Action::Failover { on: name(1, 0) }]);
    assert!(
        p.steps[0].reason.contains("failback"),
        "{}",
        p.steps[0].reason
    );
    w.converge(&s);
    w.assert_matches(&s);
    assert!(w.nodes[&name(1, 0)].master_of.is_none());
}

#[test]
fn status_reports_a_replica_sharing_its_masters_host() {
    use shardline_operator::crd::{ConditionStatus, ConditionType, RedisClusterStatus};
    use shardline_operator::status;
    let s = spec(3, 1);
    let w = World::healthy(3, 1);
    let degraded = |obs: &Observed| {
        let st = status::build(&s, obs, &plan_for(&s, obs), &RedisClusterStatus::default());
        st.conditions
            .into_iter()
            .find(|c| c.type_ == ConditionType::Degraded)
            .map(|c| (c.status == ConditionStatus::True, c.message))
            .expect("Degraded condition")
    };
    // One host for everything (a single machine): nothing to report.
    let mut obs = w.observe();
    for m in obs.members.values_mut() {
        m.platform.host = Some("localhost".into());
    }
    assert_eq!(degraded(&obs), (false, String::new()));
    // Spread over hosts, but shard 1's master and replica share one.
    for (k, m) in obs.members.iter_mut() {
        m.platform.host = Some(format!("host-{}", k.shard * 2 + k.index));
    }
    obs.members.get_mut(&name(1, 1)).expect("r").platform.host = Some("host-2".into());
    let (on, message) = degraded(&obs);
    assert!(on, "{message}");
    assert!(
        message.contains("shard-1-1") && message.contains("host-2"),
        "{message}"
    );
}
