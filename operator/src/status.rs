//! The `RedisCluster` status, built from an observation and the plan made
//! from it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::action::{Action, Plan};
use crate::crd::{
    Condition, ConditionStatus, ConditionType, FailoverStatus, LinkState, MemberRole, MemberStatus,
    MigrationStatus, RedisClusterSpec, RedisClusterStatus, ReplicaStatus, ShardStatus,
    SlotRange as CrdRange,
};
use crate::model::{MemberName, Observed, Role, SlotRange, SLOTS};
use crate::planner::{desired_members, not_ready_of, CAUGHT_UP_BYTES};

fn crd_ranges(ranges: &[SlotRange]) -> Vec<CrdRange> {
    ranges
        .iter()
        .map(|&(a, b)| CrdRange {
            start: i32::from(a),
            end: i32::from(b),
        })
        .collect()
}

/// A slot move under way, for the status.
pub fn migration_status(
    from: MemberName,
    to: MemberName,
    slots: &[SlotRange],
    done: u64,
    total: u64,
) -> MigrationStatus {
    MigrationStatus {
        slots: crd_ranges(slots),
        from: from.to_string(),
        to: to.to_string(),
        progress: (done * 100)
            .checked_div(total)
            .map_or(0, |p| i32::try_from(p).unwrap_or(100)),
    }
}

/// A failover, for the status.
pub fn failover_status(from: MemberName, to: MemberName, reason: &str) -> FailoverStatus {
    FailoverStatus {
        time: Time(k8s_openapi::chrono::Utc::now()),
        reason: reason.to_string(),
        from: from.to_string(),
        to: to.to_string(),
    }
}

fn condition(
    previous: &RedisClusterStatus,
    type_: ConditionType,
    on: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if on {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    // Keep the transition time while the status does not change.
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .or_else(|| Some(Time(k8s_openapi::chrono::Utc::now())));
    Condition {
        type_,
        status,
        reason: reason.to_string(),
        message,
        last_transition_time,
    }
}

/// Builds the status. `previous` carries what observation alone cannot
/// know (last failover, migration in flight, transition times).
pub fn build(
    spec: &RedisClusterSpec,
    observed: &Observed,
    plan: &Plan,
    previous: &RedisClusterStatus,
) -> RedisClusterStatus {
    let mut members = Vec::new();
    let mut shards = Vec::new();
    let mut degraded = Vec::new();

    for (name, m) in &observed.members {
        let me = m.myself();
        let role = match me {
            Some(n)
                if n.master
                    && (n.slots.is_empty()
                        && m.view.as_ref().is_some_and(|v| v.nodes.len() <= 1)) =>
            {
                MemberRole::Unassigned
            }
            Some(n) if n.master => MemberRole::Master,
            Some(_) => MemberRole::Replica,
            None => MemberRole::Unassigned,
        };
        members.push(MemberStatus {
            name: name.to_string(),
            node_id: m.node_id.clone().or_else(|| me.map(|n| n.id.clone())),
            address: Some(m.platform.addr.clone()),
            role,
        });
        if !m.platform.running {
            degraded.push(format!("{name} is not running"));
        } else if m.view.is_none() {
            degraded.push(format!("{name} does not answer"));
        }
    }

    for (name, m) in &observed.members {
        let Some(me) = m.myself() else { continue };
        if !me.master || me.slots.is_empty() {
            continue;
        }
        let master_offset = m.view.as_ref().map_or(0, |v| v.repl.offset);
        let mut replicas = Vec::new();
        let mut in_sync = 0;
        for (rname, r) in &observed.members {
            let Some(rv) = &r.view else { continue };
            let Some(rme) = rv.myself() else { continue };
            if rme.master || rme.master_id.as_deref() != Some(me.id.as_str()) {
                continue;
            }
            let up = rv.repl.role == Role::Replica && rv.repl.link_up;
            let lag = master_offset.saturating_sub(rv.repl.offset).max(0);
            if up && lag <= CAUGHT_UP_BYTES {
                in_sync += 1;
            }
            replicas.push(ReplicaStatus {
                member: rname.to_string(),
                node_id: rme.id.clone(),
                link_state: if up { LinkState::Up } else { LinkState::Down },
                lag_bytes: up.then_some(lag),
            });
        }
        // Placement: a replica on the master's host (or zone) does not
        // survive that host's loss. Only meaningful when members are spread
        // over several hosts (zones).
        let hosts: std::collections::BTreeSet<&str> = observed
            .members
            .values()
            .filter_map(|m| m.platform.host.as_deref())
            .collect();
        let zones: std::collections::BTreeSet<&str> = observed
            .members
            .values()
            .filter_map(|m| m.platform.zone.as_deref())
            .collect();
        for r in &replicas {
            let Some(rm) = MemberName::parse(&r.member).and_then(|n| observed.members.get(&n))
            else {
                continue;
            };
            let same = |a: &Option<String>, b: &Option<String>, spread: usize| {
                spread > 1 && a.is_some() && a == b
            };
            if same(&rm.platform.zone, &m.platform.zone, zones.len()) {
                degraded.push(format!(
                    "{} and its master {name} share zone {}",
                    r.member,
                    rm.platform.zone.as_deref().unwrap_or_default()
                ));
            } else if same(&rm.platform.host, &m.platform.host, hosts.len()) {
                degraded.push(format!(
                    "{} and its master {name} share host {}",
                    r.member,
                    rm.platform.host.as_deref().unwrap_or_default()
                ));
            }
        }
        if in_sync < spec.replicas_per_master {
            degraded.push(format!(
                "shard {} has {in_sync} of {} replicas in sync",
                name.shard, spec.replicas_per_master
            ));
        }
        shards.push(ShardStatus {
            master: name.to_string(),
            master_node_id: me.id.clone(),
            slots: crd_ranges(&me.slots),
            replicas,
            in_sync_replicas: in_sync,
        });
    }

    let covered: u32 = observed
        .members
        .values()
        .filter_map(|m| m.myself())
        .filter(|n| n.master)
        .map(|n| n.slot_count())
        .sum();
    let state_ok = observed
        .members
        .values()
        .filter_map(|m| m.view.as_ref())
        .any(|v| v.state_ok);
    let cluster_state = if observed.members.values().all(|m| m.view.is_none()) {
        None
    } else if state_ok && covered >= u32::from(SLOTS) {
        Some("ok".to_string())
    } else {
        Some("fail".to_string())
    };

    let desired = desired_members(spec);
    let unready = not_ready_of(observed, spec, desired);
    let ready = plan.is_converged() && unready.is_empty() && cluster_state.as_deref() == Some("ok");
    let ready_message = if ready {
        format!(
            "{} masters with {} replicas each serve all 16384 slots",
            spec.masters, spec.replicas_per_master
        )
    } else if let Some(first) = unready.first() {
        first.clone()
    } else if let Some(w) = plan.waiting.first() {
        w.clone()
    } else if let Some(s) = plan.steps.first() {
        format!("{}: {}", s.action, s.reason)
    } else {
        "cluster_state is not ok".to_string()
    };
    let progressing = !plan.steps.is_empty() || !plan.waiting.is_empty();
    let progress_message = plan
        .steps
        .first()
        .map(|s| format!("{}: {}", s.action, s.reason))
        .or_else(|| plan.waiting.first().cloned())
        .unwrap_or_default();
    let progress_reason = match plan.steps.first().map(|s| &s.action) {
        Some(Action::MoveSlots { .. }) => "MigratingSlots",
        Some(Action::Failover { .. } | Action::ReplaceMember { .. }) => "RollingUpdate",
        Some(Action::CreateMember { .. } | Action::DeleteMember { .. }) => "Scaling",
        Some(_) => "Reconciling",
        None if progressing => "Waiting",
        None => "Idle",
    };

    RedisClusterStatus {
        conditions: vec![
            condition(
                previous,
                ConditionType::Ready,
                ready,
                if ready { "ClusterReady" } else { "NotReady" },
                ready_message,
            ),
            condition(
                previous,
                ConditionType::Progressing,
                progressing,
                progress_reason,
                progress_message,
            ),
            condition(
                previous,
                ConditionType::Degraded,
                !degraded.is_empty(),
                if degraded.is_empty() {
                    "AllMembersUp"
                } else {
                    "MembersDown"
                },
                degraded.join("; "),
            ),
        ],
        observed_generation: previous.observed_generation,
        cluster_state,
        shards,
        members,
        migration: previous.migration.clone(),
        last_failover: previous.last_failover.clone(),
    }
}
