//! The planner: from the spec and what was observed to the next actions.
//!
//! Pure: no I/O, no clock (the caller passes how long stopped members have
//! been down). Level-triggered: it looks only at the present state (and the
//! slot moves recorded as in flight), so running it again after any step,
//! or after the operator restarts, picks up where things stand.
//!
//! The work goes in phases; a phase that has something to do (or must wait)
//! ends the plan, so later phases only ever see a cluster in which the
//! earlier ones hold:
//!
//! 1. **members**: create missing members, start stopped ones (after the
//!    cluster has failed over a stopped master), delete departed empty ones;
//! 2. **membership**: MEET members the cluster does not know (or knows at an
//!    old address), FORGET nodes that are not members;
//! 3. **open slots**: finish or close slots left migrating/importing;
//! 4. **coverage**: assign slots to a new cluster, cover lost slots;
//! 5. **roles**: one master per shard, the shard's other members its
//!    replicas;
//! 6. **balance**: move slots so that each shard of the spec holds its even
//!    share and departing shards hold none;
//! 7. **rolling update**: restart members whose binary or config is stale,
//!    replicas first, a master only after a confirmed failover to an
//!    in-sync replica, one member at a time, each only once every member is
//!    ready;
//! 8. **failback** (when the spec asks for it): hand each shard back to its
//!    first member once that member is an in-sync replica.
//!
//! Never planned: stopping or deleting a member that owns slots.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::action::{ranges_text, Action, Plan, Step};
use crate::crd::{RedisClusterSpec, UpdateStrategyType};
use crate::model::{
    ClusterNode, Member, MemberName, MemberView, NodeId, Observed, Role, SlotMove, SlotRange, SLOTS,
};

/// How far (bytes) a replica's offset may trail its master's and still
/// count as caught up: the two offsets are read at slightly different
/// moments, so under writes they are never equal.
pub const CAUGHT_UP_BYTES: i64 = 1 << 20;

/// Everything the planner looks at.
pub struct PlanInput<'a> {
    pub spec: &'a RedisClusterSpec,
    pub observed: &'a Observed,
    /// Slot moves the operator started and has not seen finish.
    pub in_flight: &'a [SlotMove],
    /// How long each stopped member has been seen stopped.
    pub down_for: &'a BTreeMap<MemberName, Duration>,
}

/// The members the spec asks for.
pub fn desired_members(spec: &RedisClusterSpec) -> BTreeSet<MemberName> {
    let masters = u32::try_from(spec.masters.max(0)).unwrap_or(0);
    let per_shard = u32::try_from(spec.replicas_per_master.max(0)).unwrap_or(0) + 1;
    (0..masters)
        .flat_map(|s| (0..per_shard).map(move |i| MemberName::new(s, i)))
        .collect()
}

/// Shard `k` of `n` gets slots `[k*16384/n, (k+1)*16384/n)`.
pub fn even_range(k: u32, n: u32) -> SlotRange {
    let total = u32::from(SLOTS);
    let lo = k * total / n;
    let hi = (k + 1) * total / n - 1;
    (lo as u16, hi as u16)
}

fn target_count(k: u32, n: u32) -> u32 {
    let (lo, hi) = even_range(k, n);
    u32::from(hi) - u32::from(lo) + 1
}

/// Collapses sorted slots into ranges.
pub fn to_ranges(slots: impl IntoIterator<Item = u16>) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for s in slots {
        match out.last_mut() {
            Some((_, hi)) if u32::from(*hi) + 1 == u32::from(s) => *hi = s,
            _ => out.push((s, s)),
        }
    }
    out
}

fn expand(ranges: &[SlotRange]) -> impl Iterator<Item = u16> + '_ {
    ranges.iter().flat_map(|&(a, b)| a..=b)
}

/// Derived facts about one observation.
struct Ctx<'a> {
    spec: &'a RedisClusterSpec,
    obs: &'a Observed,
    desired: BTreeSet<MemberName>,
    /// Node ID → member, for members whose ID is known.
    by_id: BTreeMap<&'a str, MemberName>,
    /// The reachable member whose view the planner trusts for nodes it
    /// cannot ask: the lowest-named one owning slots, else the lowest-named.
    seed: Option<MemberName>,
    /// Owner of each slot: the highest-epoch claim, members' claims about
    /// themselves first.
    owner: Vec<Option<NodeId>>,
    /// Slots that two reachable masters each claim for themselves.
    conflicts: Vec<u16>,
}

impl<'a> Ctx<'a> {
    fn new(spec: &'a RedisClusterSpec, obs: &'a Observed) -> Self {
        let desired = desired_members(spec);
        let mut by_id = BTreeMap::new();
        for (name, m) in &obs.members {
            if let Some(id) = m.myself().map(|n| n.id.as_str()).or(m.node_id.as_deref()) {
                by_id.insert(id, *name);
            }
        }
        let reachable = || obs.members.values().filter(|m| m.myself().is_some());
        let seed = reachable()
            .find(|m| m.myself().is_some_and(|n| n.master && !n.slots.is_empty()))
            .or_else(|| reachable().next())
            .map(Member::name);

        // Self-claims: what each reachable master says it owns.
        let mut best: Vec<Option<(u64, &str)>> = vec![None; usize::from(SLOTS)];
        let mut conflicts = BTreeSet::new();
        for m in reachable() {
            let Some(me) = m.myself() else { continue };
            if !me.master {
                continue;
            }
            for slot in expand(&me.slots) {
                let cell = &mut best[usize::from(slot)];
                match cell {
                    Some((epoch, id)) if *id != me.id => {
                        conflicts.insert(slot);
                        if me.config_epoch > *epoch {
                            *cell = Some((me.config_epoch, &me.id));
                        }
                    }
                    _ => *cell = Some((me.config_epoch, &me.id)),
                }
            }
        }
        // Slots nobody reachable claims: the views' word for them.
        let self_claimed: Vec<bool> = best.iter().map(Option::is_some).collect();
        for m in reachable() {
            let Some(view) = &m.view else { continue };
            for n in view.nodes.iter().filter(|n| n.master && !n.myself) {
                for slot in expand(&n.slots) {
                    if self_claimed[usize::from(slot)] {
                        continue;
                    }
                    let cell = &mut best[usize::from(slot)];
                    if cell.is_none_or(|(epoch, _)| n.config_epoch > epoch) {
                        *cell = Some((n.config_epoch, &n.id));
                    }
                }
            }
        }
        Ctx {
            spec,
            obs,
            desired,
            by_id,
            seed,
            owner: best
                .into_iter()
                .map(|c| c.map(|(_, id)| id.to_string()))
                .collect(),
            conflicts: conflicts.into_iter().collect(),
        }
    }

    fn member(&self, name: MemberName) -> Option<&'a Member> {
        self.obs.members.get(&name)
    }

    fn id_of(&self, name: MemberName) -> Option<&'a str> {
        let m = self.member(name)?;
        m.myself().map(|n| n.id.as_str()).or(m.node_id.as_deref())
    }

    fn view(&self, name: MemberName) -> Option<&'a MemberView> {
        self.member(name)?.view.as_ref()
    }

    fn seed_view(&self) -> Option<&'a MemberView> {
        self.view(self.seed?)
    }

    fn reachable(&self) -> impl Iterator<Item = &'a Member> + '_ {
        self.obs.members.values().filter(|m| m.myself().is_some())
    }

    /// Slots owned by `id`.
    fn slots_of(&self, id: &str) -> Vec<u16> {
        (0..SLOTS)
            .filter(|&s| self.owner[usize::from(s)].as_deref() == Some(id))
            .collect()
    }

    fn owns_any(&self, id: &str) -> bool {
        self.owner.iter().any(|o| o.as_deref() == Some(id))
    }

    /// Does any view show `id` owning slots?
    fn anyone_says_owns(&self, id: &str) -> bool {
        self.reachable().any(|m| {
            m.view.as_ref().is_some_and(|v| {
                v.nodes
                    .iter()
                    .any(|n| n.id == id && n.master && !n.slots.is_empty())
            })
        })
    }

    fn shard_members(&self, shard: u32) -> impl Iterator<Item = &'a Member> + '_ {
        self.obs
            .members
            .values()
            .filter(move |m| m.name().shard == shard)
    }

    fn shards(&self) -> BTreeSet<u32> {
        self.obs
            .members
            .keys()
            .map(|m| m.shard)
            .chain(self.desired.iter().map(|m| m.shard))
            .collect()
    }

    fn is_desired(&self, name: MemberName) -> bool {
        self.desired.contains(&name)
    }

    fn shard_desired(&self, shard: u32) -> bool {
        shard < u32::try_from(self.spec.masters.max(0)).unwrap_or(0)
    }

    /// The member that is, or is to be, the master of `shard`: the one
    /// owning slots (most, if several); else a reachable master the shard's
    /// replicas follow; else the lowest-named reachable master.
    fn shard_master(&self, shard: u32) -> Option<MemberName> {
        let members: Vec<&Member> = self.shard_members(shard).collect();
        let owning = members
            .iter()
            .filter_map(|m| {
                let id = self.id_of(m.name())?;
                let n = self.slots_of(id).len();
                (n > 0).then_some((n, m.name()))
            })
            .max_by_key(|&(n, name)| (n, std::cmp::Reverse(name)));
        if let Some((_, name)) = owning {
            return Some(name);
        }
        let masters: Vec<&Member> = members
            .iter()
            .copied()
            .filter(|m| m.myself().is_some_and(|n| n.master))
            .collect();
        let followed = masters.iter().find(|m| {
            let Some(id) = self.id_of(m.name()) else {
                return false;
            };
            members.iter().any(|r| {
                r.myself()
                    .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(id))
            })
        });
        followed.or(masters.first()).map(|m| m.name())
    }

    /// Does `viewer` know `id` as an established node (address known, not
    /// in handshake)?
    fn knows(&self, viewer: &MemberView, id: &str, addr: &str) -> bool {
        viewer
            .node(id)
            .is_some_and(|n| !n.handshake && !n.noaddr && n.addr == addr)
    }

    /// Every reachable member knows every other reachable member.
    fn mesh_gaps(&self) -> Vec<String> {
        let mut gaps = Vec::new();
        for a in self.reachable() {
            let Some(view) = &a.view else { continue };
            for b in self.reachable() {
                if a.name() == b.name() {
                    continue;
                }
                let Some(me) = b.myself() else { continue };
                if !self.knows(view, &me.id, &b.platform.addr) {
                    gaps.push(format!("{} does not know {} yet", a.name(), b.name()));
                }
            }
        }
        gaps
    }

    /// Adds the mesh gaps to `plan.waiting`; true when there were any.
    fn wait_for_mesh(&self, plan: &mut Plan) -> bool {
        let gaps = self.mesh_gaps();
        let any = !gaps.is_empty();
        plan.waiting.extend(gaps);
        any
    }

    fn open_slots_anywhere(&self) -> bool {
        self.reachable().any(|m| {
            m.myself()
                .is_some_and(|n| !n.migrating.is_empty() || !n.importing.is_empty())
        })
    }
}

/// One phase of planning.
type Phase = fn(&Ctx<'_>, &PlanInput<'_>) -> Plan;

/// Plans the next steps.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let ctx = Ctx::new(input.spec, input.observed);
    let phases: [Phase; 8] = [
        members_phase,
        membership_phase,
        open_slots_phase,
        coverage_phase,
        roles_phase,
        balance_phase,
        rolling_phase,
        failback_phase,
    ];
    for phase in phases {
        let plan = phase(&ctx, input);
        if !plan.is_converged() {
            return plan;
        }
    }
    Plan::default()
}

fn step(action: Action, reason: impl Into<String>) -> Step {
    Step {
        action,
        reason: reason.into(),
    }
}

/// Phase 1: members exist and run; departed empty members are deleted.
fn members_phase(ctx: &Ctx<'_>, input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    for &name in &ctx.desired {
        if ctx.member(name).is_none() {
            plan.steps.push(step(
                Action::CreateMember { member: name },
                "the spec asks for it and it does not exist",
            ));
        }
    }
    for (&name, m) in &ctx.obs.members {
        let id = ctx.id_of(name);
        let owns = id.is_some_and(|id| ctx.owns_any(id) || ctx.anyone_says_owns(id));
        // A departing member goes once its whole shard holds nothing (its
        // replicas keep the shard's data safe while slots drain away).
        let shard_owns = ctx.shard_members(name.shard).any(|o| {
            ctx.id_of(o.name())
                .is_some_and(|id| ctx.owns_any(id) || ctx.anyone_says_owns(id))
        });
        let deletable = if ctx.shard_desired(name.shard) {
            !owns
        } else {
            !shard_owns
        };
        if !ctx.is_desired(name) && deletable {
            plan.steps.push(step(
                Action::DeleteMember { member: name },
                "the spec no longer asks for it and it owns no slots",
            ));
            continue;
        }
        if m.platform.running {
            continue;
        }
        // A stopped master with slots: let the cluster promote its replica
        // first, so the restarted member comes back as a replica instead
        // of a master with a stale copy.
        let down = input.down_for.get(&name).copied().unwrap_or_default();
        let patience = Duration::from_millis(
            u64::try_from(ctx.spec.node_timeout_ms.max(0)).unwrap_or(0) * 3 + 2000,
        );
        let has_replica = id.is_some_and(|id| {
            ctx.shard_members(name.shard).any(|r| {
                r.myself()
                    .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(id))
            })
        });
        if id.is_some_and(|id| ctx.owns_any(id)) && has_replica && down < patience {
            plan.waiting.push(format!(
                "{name} is down while owning slots; waiting for its replica to take over \
                 (down {:.1}s of {:.1}s)",
                down.as_secs_f64(),
                patience.as_secs_f64()
            ));
            continue;
        }
        plan.steps.push(step(
            Action::StartMember { member: name },
            if has_replica && id.is_some_and(|id| ctx.owns_any(id)) {
                "it stopped while owning slots and no replica took over in time"
            } else {
                "its process is not running"
            },
        ));
    }
    plan
}

/// Phase 2: every member is in the cluster at its current address, and
/// nodes that are not members are forgotten.
fn membership_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let unreachable: Vec<String> = ctx
        .obs
        .members
        .values()
        .filter(|m| m.view.is_none())
        .map(|m| m.name().to_string())
        .collect();
    if !unreachable.is_empty() {
        plan.waiting
            .push(format!("waiting for {} to answer", unreachable.join(", ")));
        return plan;
    }
    let (Some(seed), Some(seed_view)) = (ctx.seed, ctx.seed_view()) else {
        return plan;
    };
    for m in ctx.reachable() {
        if m.name() == seed {
            continue;
        }
        let Some(me) = m.myself() else { continue };
        if ctx.knows(seed_view, &me.id, &m.platform.addr) {
            continue;
        }
        let in_handshake = seed_view
            .nodes
            .iter()
            .any(|n| n.handshake && n.addr == m.platform.addr);
        if in_handshake {
            plan.waiting
                .push(format!("{seed} is in handshake with {}", m.name()));
            continue;
        }
        let reason = match seed_view.node(&me.id) {
            Some(n) if n.addr != m.platform.addr => format!(
                "{seed} knows {} at {}, but it is now at {}",
                m.name(),
                if n.addr.is_empty() {
                    "no address"
                } else {
                    &n.addr
                },
                m.platform.addr
            ),
            _ => format!("{seed} does not know {}", m.name()),
        };
        plan.steps.push(step(
            Action::Meet {
                on: seed,
                addr: m.platform.addr.clone(),
            },
            reason,
        ));
    }
    if !plan.is_converged() {
        return plan;
    }

    // Nodes in some view that are no member: forget them everywhere, unless
    // they might be a member whose ID we have not learnt (a node at a
    // member's address that is not failed), are alive and own slots, or
    // are still some member's master (the roles phase moves that replica
    // first).
    let member_addrs: BTreeSet<&str> = ctx
        .obs
        .members
        .values()
        .map(|m| m.platform.addr.as_str())
        .collect();
    let mut strangers: BTreeMap<&str, &ClusterNode> = BTreeMap::new();
    for m in ctx.reachable() {
        let Some(view) = &m.view else { continue };
        for n in &view.nodes {
            if n.myself || n.handshake || ctx.by_id.contains_key(n.id.as_str()) {
                continue;
            }
            strangers.entry(n.id.as_str()).or_insert(n);
        }
    }
    for (id, n) in strangers {
        let failed = ctx.reachable().any(|m| {
            m.view
                .as_ref()
                .and_then(|v| v.node(id))
                .is_some_and(|n| n.fail || n.noaddr)
        });
        if member_addrs.contains(n.addr.as_str()) && !failed {
            plan.waiting.push(format!(
                "node {id} at {} is not known as a member yet",
                n.addr
            ));
            continue;
        }
        if ctx.owns_any(id) && !failed {
            plan.waiting.push(format!(
                "node {id} at {} is not a member but owns slots; leaving it alone",
                n.addr
            ));
            continue;
        }
        let followed = ctx.reachable().any(|m| {
            m.myself()
                .is_some_and(|me| me.master_id.as_deref() == Some(id))
        });
        if followed {
            continue;
        }
        plan.steps.push(step(
            Action::Forget {
                node: id.to_string(),
            },
            format!(
                "node {id} ({}) is not a member{}",
                if n.addr.is_empty() {
                    "no address"
                } else {
                    &n.addr
                },
                if failed { " and has failed" } else { "" }
            ),
        ));
    }
    plan
}

/// Phase 3: no slot is left open.
fn open_slots_phase(ctx: &Ctx<'_>, input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let mut moves: BTreeMap<(MemberName, MemberName), BTreeSet<u16>> = BTreeMap::new();
    let mut stable: BTreeSet<(MemberName, u16)> = BTreeSet::new();
    let master_owning = |name: MemberName, slot: u16| {
        ctx.member(name)
            .and_then(Member::myself)
            .is_some_and(|n| n.master && n.owns(slot))
    };
    let reachable_master = |name: MemberName| {
        ctx.member(name)
            .and_then(Member::myself)
            .is_some_and(|n| n.master)
    };

    // Moves the operator recorded: finish them first.
    for mv in input.in_flight {
        let left: Vec<u16> = expand(&mv.slots)
            .filter(|&s| !master_owning(mv.to, s))
            .collect();
        if left.is_empty() {
            continue;
        }
        if reachable_master(mv.from) && reachable_master(mv.to) {
            moves.entry((mv.from, mv.to)).or_default().extend(left);
        } else {
            plan.waiting.push(format!(
                "the recorded move of slots {} from {} to {} waits for both to be masters",
                ranges_text(&to_ranges(left)),
                mv.from,
                mv.to
            ));
        }
    }

    for m in ctx.reachable() {
        let Some(me) = m.myself() else { continue };
        let name = m.name();
        for (slot, to_id) in &me.migrating {
            let slot = *slot;
            if moves.values().any(|s| s.contains(&slot)) {
                continue;
            }
            match ctx.by_id.get(to_id.as_str()).copied() {
                Some(to) if master_owning(to, slot) => {
                    stable.insert((name, slot));
                }
                Some(to) if reachable_master(to) && me.owns(slot) => {
                    moves.entry((name, to)).or_default().insert(slot);
                }
                _ => {
                    if me.owns(slot) {
                        stable.insert((name, slot));
                    } else {
                        plan.waiting.push(format!(
                            "slot {slot} is migrating on {name}, which does not own it, \
                             to a node that is not a master member"
                        ));
                    }
                }
            }
        }
        for (slot, from_id) in &me.importing {
            let slot = *slot;
            if moves.values().any(|s| s.contains(&slot)) {
                continue;
            }
            if me.owns(slot) {
                stable.insert((name, slot));
                continue;
            }
            match ctx.by_id.get(from_id.as_str()).copied() {
                Some(from) if master_owning(from, slot) && me.master => {
                    moves.entry((from, name)).or_default().insert(slot);
                }
                _ => {
                    let keys = m
                        .view
                        .as_ref()
                        .and_then(|v| v.keys_in_slot.get(&slot))
                        .copied()
                        .unwrap_or(0);
                    if keys == 0 {
                        stable.insert((name, slot));
                    } else {
                        plan.waiting.push(format!(
                            "slot {slot} is importing on {name} with {keys} keys from a node \
                             that does not own it; repair by hand \
                             (redis-cli --cluster fix)"
                        ));
                    }
                }
            }
        }
    }
    for ((from, to), slots) in moves {
        let ranges = to_ranges(slots);
        plan.steps.push(step(
            Action::MoveSlots {
                from,
                to,
                slots: ranges.clone(),
            },
            format!(
                "slots {} were left moving from {from} to {to}: finishing the move",
                ranges_text(&ranges)
            ),
        ));
    }
    for (on, slot) in stable {
        plan.steps.push(step(
            Action::StableSlot { on, slot },
            format!("slot {slot} is open on {on} with nothing left to move"),
        ));
    }
    plan
}

/// Phase 4: every slot has an owner.
fn coverage_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    let uncovered: Vec<u16> = (0..SLOTS)
        .filter(|&s| ctx.owner[usize::from(s)].is_none())
        .collect();
    if uncovered.is_empty() {
        return plan;
    }
    if ctx.wait_for_mesh(&mut plan) {
        return plan;
    }
    let n = u32::try_from(ctx.spec.masters.max(1)).unwrap_or(1);
    if uncovered.len() == usize::from(SLOTS) {
        // A new cluster: even ranges to the shards' masters.
        let mut masters = Vec::new();
        for k in 0..n {
            match ctx.shard_master(k) {
                Some(m) => masters.push(m),
                None => {
                    plan.waiting
                        .push(format!("waiting for a master of shard {k} to assign slots"));
                }
            }
        }
        if !plan.waiting.is_empty() {
            return plan;
        }
        for (k, m) in masters.into_iter().enumerate() {
            let range = even_range(k as u32, n);
            plan.steps.push(step(
                Action::AddSlots {
                    on: m,
                    ranges: vec![range],
                },
                format!("a new cluster: shard {k} of {n} gets its even share"),
            ));
        }
        return plan;
    }
    // Slots lost with a master that had no replica: give them to the
    // shard master with the fewest slots, so the cluster serves again.
    let mut best: Option<(usize, MemberName)> = None;
    for k in 0..n {
        let Some(m) = ctx.shard_master(k) else {
            continue;
        };
        if !ctx
            .member(m)
            .and_then(Member::myself)
            .is_some_and(|n| n.master)
        {
            continue;
        }
        let count = ctx.id_of(m).map(|id| ctx.slots_of(id).len()).unwrap_or(0);
        if best.is_none_or(|(c, _)| count < c) {
            best = Some((count, m));
        }
    }
    match best {
        Some((_, m)) => {
            let ranges = to_ranges(uncovered);
            plan.steps.push(step(
                Action::AddSlots {
                    on: m,
                    ranges: ranges.clone(),
                },
                format!(
                    "slots {} have no owner (their keys are lost); {m} has the fewest slots",
                    ranges_text(&ranges)
                ),
            ));
        }
        None => plan
            .waiting
            .push("slots are uncovered and no master is reachable to take them".into()),
    }
    plan
}

/// Phase 5: one master per shard, the others its replicas.
fn roles_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    for shard in ctx.shards() {
        let Some(master) = ctx.shard_master(shard) else {
            if ctx.shard_members(shard).next().is_some() {
                plan.waiting
                    .push(format!("shard {shard} has no reachable master"));
            }
            continue;
        };
        let Some(master_id) = ctx.id_of(master) else {
            plan.waiting
                .push(format!("the node ID of {master} is not known yet"));
            continue;
        };
        let master_addr = ctx
            .member(master)
            .map(|m| m.platform.addr.as_str())
            .unwrap_or_default();
        for m in ctx.shard_members(shard) {
            if m.name() == master {
                continue;
            }
            let (Some(me), Some(view)) = (m.myself(), m.view.as_ref()) else {
                continue;
            };
            if !me.master && me.master_id.as_deref() == Some(master_id) {
                continue;
            }
            let own = ctx.slots_of(&me.id);
            if !own.is_empty() {
                let ranges = to_ranges(own);
                plan.steps.push(step(
                    Action::MoveSlots {
                        from: m.name(),
                        to: master,
                        slots: ranges.clone(),
                    },
                    format!(
                        "{} and {master} both own slots in shard {shard}: \
                         gathering them on {master}",
                        m.name()
                    ),
                ));
                continue;
            }
            if !ctx.knows(view, master_id, master_addr) {
                plan.waiting
                    .push(format!("{} does not know {master} yet", m.name()));
                continue;
            }
            let reason = if me.master {
                format!("{} is a master without slots in shard {shard}", m.name())
            } else {
                let current = me
                    .master_id
                    .as_deref()
                    .and_then(|id| ctx.by_id.get(id))
                    .map_or_else(
                        || "a node that is not a member".to_string(),
                        |n| n.to_string(),
                    );
                format!(
                    "{} replicates {current}, not {master}, the master of shard {shard}",
                    m.name()
                )
            };
            plan.steps.push(step(
                Action::Replicate {
                    on: m.name(),
                    master: master_id.to_string(),
                },
                reason,
            ));
        }
        // A master the spec no longer asks for (fewer replicas per master)
        // hands its shard to a member the spec keeps.
        if plan.steps.is_empty() && ctx.shard_desired(shard) && !ctx.is_desired(master) {
            let heir = ctx.shard_members(shard).find(|r| {
                ctx.is_desired(r.name())
                    && r.myself()
                        .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(master_id))
                    && ctx_not_ready(ctx, r.name()).is_none()
            });
            match heir {
                Some(r) => plan.steps.push(step(
                    Action::Failover { on: r.name() },
                    format!(
                        "{master} masters shard {shard} but the spec no longer asks for it: \
                         moving mastership to {}",
                        r.name()
                    ),
                )),
                None => plan.waiting.push(format!(
                    "{master} masters shard {shard} but the spec no longer asks for it; \
                     waiting for an in-sync replica to take over"
                )),
            }
        }
    }
    plan
}

/// Phase 6: each shard of the spec holds its even share (within 1%), and
/// departing shards hold nothing.
fn balance_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    if !ctx.conflicts.is_empty() {
        plan.waiting.push(format!(
            "slots {} are claimed by two masters; waiting for the cluster to settle it",
            ranges_text(&to_ranges(ctx.conflicts.iter().copied()))
        ));
        return plan;
    }
    if ctx.open_slots_anywhere() {
        plan.waiting.push("slots are open".into());
        return plan;
    }
    if ctx.wait_for_mesh(&mut plan) {
        return plan;
    }
    let n = u32::try_from(ctx.spec.masters.max(1)).unwrap_or(1);
    // Slots held per shard, and who holds them.
    let mut held: BTreeMap<u32, (MemberName, Vec<u16>)> = BTreeMap::new();
    for (slot, owner) in ctx.owner.iter().enumerate() {
        let Some(owner) = owner else { continue };
        let Some(&name) = ctx.by_id.get(owner.as_str()) else {
            plan.waiting.push(format!(
                "slot {slot} is owned by {owner}, which is not a member"
            ));
            return plan;
        };
        held.entry(name.shard)
            .or_insert_with(|| (name, Vec::new()))
            .1
            .push(slot as u16);
    }
    let mut donors: Vec<(MemberName, Vec<u16>)> = Vec::new();
    let mut receivers: Vec<(MemberName, usize)> = Vec::new();
    let mut unbalanced = false;
    for shard in ctx.shards() {
        let have = held.get(&shard).map_or(0, |(_, s)| s.len());
        let target = if ctx.shard_desired(shard) {
            target_count(shard, n) as usize
        } else {
            0
        };
        let slack = target / 100;
        if target == 0 && have > 0 || have.abs_diff(target) > slack {
            unbalanced = true;
        }
        if have > target {
            if let Some((name, slots)) = held.get(&shard) {
                // Give away the highest slots, keeping ranges contiguous.
                donors.push((*name, slots[target..].to_vec()));
            }
        } else if have < target {
            match ctx.shard_master(shard) {
                Some(m)
                    if ctx
                        .member(m)
                        .and_then(Member::myself)
                        .is_some_and(|n| n.master) =>
                {
                    receivers.push((m, target - have));
                }
                _ => {
                    plan.waiting
                        .push(format!("shard {shard} has no master to receive slots"));
                    return plan;
                }
            }
        }
    }
    if !unbalanced {
        return plan;
    }
    let mut moves: BTreeMap<(MemberName, MemberName), Vec<u16>> = BTreeMap::new();
    let mut receivers = receivers.into_iter();
    let mut current = receivers.next();
    for (from, slots) in donors {
        let mut slots = slots.into_iter().peekable();
        while slots.peek().is_some() {
            let Some((to, want)) = current.as_mut() else {
                break;
            };
            let take: Vec<u16> = slots.by_ref().take(*want).collect();
            *want -= take.len();
            moves.entry((from, *to)).or_default().extend(take);
            if *want == 0 {
                current = receivers.next();
            }
        }
    }
    for ((from, to), slots) in moves {
        let ranges = to_ranges(slots.iter().copied());
        let reason = if ctx.shard_desired(from.shard) {
            format!(
                "balancing: shard {} holds more than its share of 16384/{n}",
                from.shard
            )
        } else {
            format!(
                "shard {} is leaving (the spec asks for {n} masters)",
                from.shard
            )
        };
        plan.steps.push(step(
            Action::MoveSlots {
                from,
                to,
                slots: ranges,
            },
            format!("{reason}: {} slots to {to}", slots.len()),
        ));
    }
    plan
}

/// Why each of `names` that is not ready is not, judged on one
/// analysis of `obs`. A member is ready when it answers, is in the
/// cluster as every member sees it, agrees on the slot map, and (for a
/// replica) has its link up with its offset caught up.
pub fn not_ready_of(
    obs: &Observed,
    spec: &RedisClusterSpec,
    names: impl IntoIterator<Item = MemberName>,
) -> Vec<String> {
    let ctx = Ctx::new(spec, obs);
    names
        .into_iter()
        .filter_map(|n| ctx_not_ready(&ctx, n))
        .collect()
}

fn slot_map_of(view: &MemberView) -> Vec<(SlotRange, &str)> {
    let mut out: Vec<(SlotRange, &str)> = view
        .nodes
        .iter()
        .filter(|n| n.master)
        .flat_map(|n| n.slots.iter().map(move |&r| (r, n.id.as_str())))
        .collect();
    out.sort_unstable();
    out
}

fn ctx_not_ready(ctx: &Ctx<'_>, name: MemberName) -> Option<String> {
    let Some(m) = ctx.member(name) else {
        return Some(format!("{name} does not exist"));
    };
    if !m.platform.running {
        return Some(format!("{name} is not running"));
    }
    let (Some(me), Some(view)) = (m.myself(), m.view.as_ref()) else {
        return Some(format!("{name} does not answer"));
    };
    if !view.state_ok {
        return Some(format!("{name} reports cluster_state:fail"));
    }
    for other in ctx.reachable() {
        if other.name() == name {
            continue;
        }
        let Some(ov) = &other.view else { continue };
        match ov.node(&me.id) {
            Some(n) if !n.fail && !n.pfail && !n.handshake => {}
            Some(_) => return Some(format!("{} sees {name} as failing", other.name())),
            None => return Some(format!("{} does not know {name}", other.name())),
        }
    }
    if let Some(seed) = ctx.seed_view() {
        if slot_map_of(seed) != slot_map_of(view) {
            return Some(format!("{name} does not agree on the slot map yet"));
        }
    }
    if me.master {
        return None;
    }
    let Some(master) = me.master_id.as_deref().and_then(|id| ctx.by_id.get(id)) else {
        return Some(format!("{name} replicates a node that is not a member"));
    };
    if view.repl.role != Role::Replica || !view.repl.link_up {
        return Some(format!("{name}'s replication link to {master} is down"));
    }
    let master_offset = ctx.view(*master).map(|v| v.repl.offset).unwrap_or(i64::MAX);
    let lag = master_offset.saturating_sub(view.repl.offset);
    if lag > CAUGHT_UP_BYTES {
        return Some(format!("{name} is {lag} bytes behind {master}"));
    }
    None
}

/// "`what` waits for ...", naming the members that are not ready, if any.
fn unready_members(ctx: &Ctx<'_>, what: &str) -> Option<String> {
    let not_ready: Vec<String> = ctx
        .obs
        .members
        .keys()
        .filter_map(|&n| ctx_not_ready(ctx, n))
        .collect();
    (!not_ready.is_empty()).then(|| {
        format!(
            "{what} waits for every member to be ready: {}",
            not_ready.join("; ")
        )
    })
}

/// Phase 7: members run the spec's binary and config.
fn rolling_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    if ctx.spec.update_strategy.type_ == UpdateStrategyType::OnDelete {
        return plan;
    }
    let stale: Vec<&Member> = ctx
        .obs
        .members
        .values()
        .filter(|m| !m.platform.up_to_date)
        .collect();
    if stale.is_empty() {
        return plan;
    }
    if let Some(wait) = unready_members(ctx, "rolling update") {
        plan.waiting.push(wait);
        return plan;
    }
    // Replicas first.
    if let Some(r) = stale.iter().find(|m| m.myself().is_some_and(|n| !n.master)) {
        plan.steps.push(step(
            Action::ReplaceMember { member: r.name() },
            format!("{} (a replica) runs an old binary or config", r.name()),
        ));
        return plan;
    }
    for m in &stale {
        let Some(me) = m.myself() else { continue };
        if ctx.slots_of(&me.id).is_empty() {
            plan.steps.push(step(
                Action::ReplaceMember { member: m.name() },
                format!(
                    "{} (a master without slots) runs an old binary or config",
                    m.name()
                ),
            ));
            return plan;
        }
        // Hand mastership to an in-sync replica, preferring one already
        // up to date.
        let mut candidates: Vec<&Member> = ctx
            .shard_members(m.name().shard)
            .filter(|r| {
                r.myself()
                    .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(&me.id))
            })
            .collect();
        candidates.sort_by_key(|r| (!r.platform.up_to_date, r.name()));
        match candidates.first() {
            Some(r) => {
                plan.steps.push(step(
                    Action::Failover { on: r.name() },
                    format!(
                        "{} (a master) runs an old binary or config: moving mastership \
                         to its in-sync replica {} before restarting it",
                        m.name(),
                        r.name()
                    ),
                ));
            }
            None => plan.waiting.push(format!(
                "{} runs an old binary or config but has no replica to take over; \
                 it is not restarted while it owns slots",
                m.name()
            )),
        }
        return plan;
    }
    plan
}

/// Phase 8: with `spec.failback`, each shard's first member is its master.
fn failback_phase(ctx: &Ctx<'_>, _input: &PlanInput<'_>) -> Plan {
    let mut plan = Plan::default();
    if !ctx.spec.failback {
        return plan;
    }
    for shard in 0..u32::try_from(ctx.spec.masters.max(0)).unwrap_or(0) {
        let preferred = MemberName::new(shard, 0);
        let Some(master) = ctx.shard_master(shard) else {
            continue;
        };
        if master == preferred {
            continue;
        }
        let Some(master_id) = ctx.id_of(master) else {
            continue;
        };
        let follows = ctx
            .member(preferred)
            .and_then(Member::myself)
            .is_some_and(|n| !n.master && n.master_id.as_deref() == Some(master_id));
        if !follows {
            continue;
        }
        if let Some(wait) = unready_members(ctx, &format!("failback of shard {shard}")) {
            plan.waiting.push(wait);
            return plan;
        }
        plan.steps.push(step(
            Action::Failover { on: preferred },
            format!("failback: {preferred} is the preferred master of shard {shard}, {master} masters it now"),
        ));
        return plan;
    }
    plan
}
