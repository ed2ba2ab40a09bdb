//! The operator's typed model of a cluster: member names, what each member
//! reports about the cluster (CLUSTER NODES, INFO replication), and what the
//! platform reports about each member. The planner reads only these types.

use std::collections::BTreeMap;
use std::fmt;

/// A Redis Cluster node ID (40 hex characters).
pub type NodeId = String;

/// A slot range, both ends included.
pub type SlotRange = (u16, u16);

/// Number of hash slots.
pub const SLOTS: u16 = 16384;

/// A member's stable name: shard `shard`, position `index` in that shard.
/// A shard is one master and its replicas; which of its members is the
/// master changes with failovers, the grouping does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberName {
    pub shard: u32,
    pub index: u32,
}

impl MemberName {
    pub fn new(shard: u32, index: u32) -> Self {
        MemberName { shard, index }
    }

    /// Parses `shard-<s>-<i>`.
    pub fn parse(text: &str) -> Option<MemberName> {
        let rest = text.strip_prefix("shard-")?;
        let (s, i) = rest.split_once('-')?;
        Some(MemberName {
            shard: s.parse().ok()?,
            index: i.parse().ok()?,
        })
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}-{}", self.shard, self.index)
    }
}

/// One line of CLUSTER NODES, as seen by the member that printed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: NodeId,
    /// `ip:port` of the client port; empty when the node has no address.
    pub addr: String,
    pub myself: bool,
    pub master: bool,
    pub fail: bool,
    pub pfail: bool,
    pub handshake: bool,
    pub noaddr: bool,
    /// The master this node replicates, for a replica.
    pub master_id: Option<NodeId>,
    pub config_epoch: u64,
    /// The cluster bus link to this node is connected.
    pub connected: bool,
    pub slots: Vec<SlotRange>,
    /// `[slot->-id]` entries: slots this node is migrating to `id`.
    pub migrating: Vec<(u16, NodeId)>,
    /// `[slot-<-id]` entries: slots this node is importing from `id`.
    pub importing: Vec<(u16, NodeId)>,
}

impl ClusterNode {
    pub fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|&(a, b)| u32::from(b) - u32::from(a) + 1)
            .sum()
    }

    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// The replication role a member reports (INFO replication).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica,
}

/// A replica as its master lists it in INFO replication.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLink {
    /// `ip:port` of the replica.
    pub addr: String,
    pub online: bool,
    pub offset: i64,
}

/// INFO replication, the parts the operator uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replication {
    pub role: Role,
    /// For a replica: `ip:port` of its master.
    pub master_addr: Option<String>,
    /// For a replica: `master_link_status:up`.
    pub link_up: bool,
    /// `master_repl_offset` (a replica reports its processed offset here too).
    pub offset: i64,
    /// For a master: its replicas.
    pub replicas: Vec<ReplicaLink>,
}

/// Everything one reachable member reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Every node this member knows, itself included (flag `myself`).
    pub nodes: Vec<ClusterNode>,
    /// `cluster_state:ok` in CLUSTER INFO.
    pub state_ok: bool,
    pub current_epoch: u64,
    pub repl: Replication,
    /// COUNTKEYSINSLOT for each slot this member has open (migrating or
    /// importing) or that the observer was asked about.
    pub keys_in_slot: BTreeMap<u16, u64>,
    /// The member answers `COMMAND INFO MIGRATESLOTS` (shardline-node's
    /// bulk slot move).
    pub migrateslots: bool,
}

impl MemberView {
    /// This member's own line of CLUSTER NODES.
    pub fn myself(&self) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.myself)
    }

    pub fn node(&self, id: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn node_at(&self, addr: &str) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.addr == addr)
    }
}

/// What the platform says about a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformMember {
    pub name: MemberName,
    /// `ip:port` clients and other members reach it at.
    pub addr: String,
    /// The process (pod) is running. Not the same as ready: see
    /// [`crate::planner`].
    pub running: bool,
    /// The member was started from the current spec (binary, config).
    pub up_to_date: bool,
    /// Where it runs, when known (for replica placement).
    pub host: Option<String>,
    pub zone: Option<String>,
}

/// A member as the reconciler sees it: the platform's view and, when it
/// answered, its own report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub platform: PlatformMember,
    /// `None` when the member did not answer.
    pub view: Option<MemberView>,
    /// The node ID last seen for this member (kept across observations, so
    /// an unreachable member's ID is still known).
    pub node_id: Option<NodeId>,
}

impl Member {
    pub fn name(&self) -> MemberName {
        self.platform.name
    }

    pub fn myself(&self) -> Option<&ClusterNode> {
        self.view.as_ref().and_then(MemberView::myself)
    }
}

/// A slot move the operator started and has not finished, kept so a
/// restarted operator resumes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlotMove {
    pub from: MemberName,
    pub to: MemberName,
    pub slots: Vec<SlotRange>,
}

impl serde::Serialize for MemberName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for MemberName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        MemberName::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("bad member name `{text}`")))
    }
}

/// Everything observed in one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    pub members: BTreeMap<MemberName, Member>,
}
