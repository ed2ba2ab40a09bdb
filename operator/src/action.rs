//! What the planner asks for: one [`Action`] per step, each with the reason
//! the planner chose it.

use std::fmt;

use crate::model::{MemberName, NodeId, SlotRange};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create a member the spec asks for (platform).
    CreateMember { member: MemberName },
    /// Start a member whose process exited, keeping its data (platform).
    StartMember { member: MemberName },
    /// Restart a member from the current spec (binary, config), keeping its
    /// data. The planner asks for this only once the member holds no slots.
    ReplaceMember { member: MemberName },
    /// Remove a member and its data (platform). The planner asks for this
    /// only for members that own no slots and that every other member forgot.
    DeleteMember { member: MemberName },
    /// `CLUSTER MEET ip port` on `on`.
    Meet { on: MemberName, addr: String },
    /// `CLUSTER ADDSLOTSRANGE` on `on`.
    AddSlots {
        on: MemberName,
        ranges: Vec<SlotRange>,
    },
    /// `CLUSTER REPLICATE master` on `on`.
    Replicate { on: MemberName, master: NodeId },
    /// `CLUSTER FORGET node` on every reachable member but the node itself.
    Forget { node: NodeId },
    /// Close a slot left open: `SETSLOT slot STABLE` on `on`.
    StableSlot { on: MemberName, slot: u16 },
    /// Move slots with their keys from one master to another, finishing any
    /// move of these slots already under way.
    MoveSlots {
        from: MemberName,
        to: MemberName,
        slots: Vec<SlotRange>,
    },
    /// `CLUSTER FAILOVER` (default mode) on the replica `on`; confirmed when
    /// roles have flipped and offsets are equal.
    Failover { on: MemberName },
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::CreateMember { member } => write!(f, "create {member}"),
            Action::StartMember { member } => write!(f, "start {member}"),
            Action::ReplaceMember { member } => write!(f, "replace {member}"),
            Action::DeleteMember { member } => write!(f, "delete {member}"),
            Action::Meet { on, addr } => write!(f, "CLUSTER MEET {addr} on {on}"),
            Action::AddSlots { on, ranges } => {
                write!(f, "CLUSTER ADDSLOTSRANGE {} on {on}", ranges_text(ranges))
            }
            Action::Replicate { on, master } => write!(f, "CLUSTER REPLICATE {master} on {on}"),
            Action::Forget { node } => write!(f, "CLUSTER FORGET {node} everywhere"),
            Action::StableSlot { on, slot } => write!(f, "CLUSTER SETSLOT {slot} STABLE on {on}"),
            Action::MoveSlots { from, to, slots } => {
                write!(f, "move slots {} from {from} to {to}", ranges_text(slots))
            }
            Action::Failover { on } => write!(f, "CLUSTER FAILOVER on {on}"),
        }
    }
}

/// `0-5460 5461` style.
pub fn ranges_text(ranges: &[SlotRange]) -> String {
    ranges
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub action: Action,
    /// Why the planner chose it, for the logs and the status.
    pub reason: String,
}

/// The planner's answer for one observation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps to run now, in order. The reconciler runs them, then observes
    /// again; steps are independent of each other's success unless stated.
    pub steps: Vec<Step>,
    /// Why nothing (more) can be done yet, e.g. "waiting for shard-1-1 to
    /// catch up": empty when the cluster matches the spec.
    pub waiting: Vec<String>,
}

impl Plan {
    pub fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.waiting.is_empty()
    }
}
