//! The cluster-bus state machine: the node table, handshakes, gossip,
//! failure detection, epochs and slot ownership, as Redis 7.0 runs them.
//!
//! It owns no sockets and reads no clock. The I/O layer (`bus`) feeds it
//! link events, decoded messages and the time, and carries out the
//! [`Action`]s it queues: open or close a link, send bytes, resolve a
//! hostname, deliver a published message. Deterministic tests drive many
//! machines the same way with a simulated network (see `sim` tests).

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

mod election;
mod manual_failover;
mod replica_migration;
mod slot_migration;

pub use election::{CantFailover, Election, FailoverStats};
pub use manual_failover::{FailoverMode, ManualFailover, MF_PAUSE_MULT, MF_TIMEOUT_MS};
pub use slot_migration::SetSlot;

use super::nodes_conf::{NodeLine, NodesConf};
use super::wire::{
    self, msgtype, nflag, Body, Ext, Gossip, Header, Message, NodeName, SlotBitmap, NAME_LEN, SLOTS,
};

/// A link's identity, chosen by the machine for outbound links and by the
/// I/O layer (through [`Machine::new_link_id`]) for inbound ones.
pub type LinkId = u64;

/// How long a forgotten node stays blacklisted (CLUSTER FORGET).
pub const BLACKLIST_TTL_MS: u64 = 60_000;
/// A master whose state is FAIL waits this long after its first state
/// evaluation before turning OK (time to learn it was failed over).
const WRITABLE_DELAY_MS: u64 = 2000;
/// How often a node is re-resolved by hostname while unreachable.
const RESOLVE_INTERVAL_MS: u64 = 1000;

/// The settings the machine needs, taken from the node's configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub node_timeout: u64,
    /// Client port as announced (cluster-announce-port or port).
    pub port: u16,
    /// Bus port as announced (cluster-announce-bus-port or the bus port).
    pub cport: u16,
    /// cluster-announce-ip ("" = learn it from the peers).
    pub announce_ip: String,
    /// cluster-announce-hostname ("" = none).
    pub hostname: String,
    pub require_full_coverage: bool,
    pub allow_replica_migration: bool,
    pub replica_no_failover: bool,
    /// cluster-replica-validity-factor (0 = a replica always may fail over).
    pub replica_validity_factor: u64,
    /// repl-ping-replica-period, in ms.
    pub repl_ping_period_ms: u64,
    /// cluster-migration-barrier.
    pub migration_barrier: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            node_timeout: 15000,
            port: 6379,
            cport: 16379,
            announce_ip: String::new(),
            hostname: String::new(),
            require_full_coverage: true,
            allow_replica_migration: true,
            replica_no_failover: false,
            replica_validity_factor: 10,
            repl_ping_period_ms: 10_000,
            migration_barrier: 1,
        }
    }
}

/// What the machine asks the I/O layer to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outbound link to `ip:cport`; report with `link_up` or
    /// `link_down`.
    Connect {
        link: LinkId,
        ip: String,
        cport: u16,
    },
    /// Write an encoded message on a link (dropped if the link is gone).
    Send { link: LinkId, bytes: Bytes },
    /// Close a link. The machine has already forgotten it.
    Close { link: LinkId },
    /// Resolve a peer's hostname; report with `resolved`.
    Resolve { node: NodeName, hostname: String },
    /// Deliver a PUBLISH (or PUBLISHSHARD) received from a peer to local
    /// subscribers.
    Deliver {
        shard: bool,
        channel: Bytes,
        message: Bytes,
    },
    /// Delete the keys of these slots: we lost them to another master.
    DropSlotKeys(Vec<u16>),
    /// A replica asked for a manual failover: pause client writes until
    /// `until` (unix ms), wait until no write is in flight, then call
    /// [`Machine::mf_drained`].
    PauseWrites { until: u64 },
    /// The manual failover ended: lift the pause of `PauseWrites`.
    Unpause,
}

/// Whom replication must follow, as the machine sees our role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplTarget {
    /// We are a master.
    Master,
    /// We replicate a node whose client address is not known yet.
    Unknown,
    /// Replicate the node at this client address (ip, port).
    Addr(String, u16),
}

/// One node of the table, ourselves included.
#[derive(Clone, Debug)]
pub struct Peer {
    pub name: NodeName,
    pub flags: u16,
    pub ctime: u64,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub pport: u16,
    pub hostname: String,
    pub shard_id: NodeName,
    pub slaveof: Option<NodeName>,
    pub config_epoch: u64,
    pub repl_offset: u64,
    pub ping_sent: u64,
    pub pong_received: u64,
    pub data_received: u64,
    pub fail_time: u64,
    /// Our outbound link, once created (connected or not).
    pub link: Option<LinkId>,
    /// The inbound link this node talks to us on.
    pub inbound: Option<LinkId>,
    /// Failure reports: reporting master and when it last reported.
    pub fail_reports: Vec<(NodeName, u64)>,
    pub numslots: usize,
    last_resolve: u64,
    /// When we last voted for a replica of this master.
    pub voted_time: u64,
    /// Since when this master has had no working replica (migration).
    pub orphaned_time: u64,
}

impl Peer {
    fn new(name: NodeName, flags: u16, now: u64) -> Peer {
        Peer {
            name,
            flags,
            ctime: now,
            ip: String::new(),
            port: 0,
            cport: 0,
            pport: 0,
            hostname: String::new(),
            shard_id: wire::random_name(),
            slaveof: None,
            config_epoch: 0,
            repl_offset: 0,
            ping_sent: 0,
            pong_received: 0,
            data_received: 0,
            fail_time: 0,
            link: None,
            inbound: None,
            fail_reports: Vec::new(),
            numslots: 0,
            last_resolve: 0,
            voted_time: 0,
            orphaned_time: 0,
        }
    }
    pub fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    pub fn is_master(&self) -> bool {
        self.has(nflag::MASTER)
    }
    pub fn is_replica(&self) -> bool {
        self.has(nflag::SLAVE)
    }
    pub fn failing(&self) -> bool {
        self.has(nflag::PFAIL | nflag::FAIL)
    }
}

#[derive(Clone, Debug)]
struct Link {
    outbound: bool,
    node: Option<NodeName>,
    ctime: u64,
    connected: bool,
    /// Inbound links: the peer's address and our local address.
    peer_ip: String,
    local_ip: String,
}

/// A row of CLUSTER LINKS.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub outbound: bool,
    pub node: NodeName,
    pub ctime: u64,
}

/// Why a CLUSTER command was refused; the text is redis's error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ClusterError(pub String);

/// How long after `SETSLOT <slot> NODE <myself>` ends an import the
/// source's claims of the slot are ignored. redis-cli sends the target its
/// SETSLOT NODE a moment before the source; a ping the source built in
/// between still claims the slot, and when the source's configEpoch is
/// the newer one (it bumped it for another slot of the same repair, and
/// the target had not heard, so it did not bump its own), that stale claim
/// took the slot back. The source then took the target's word: each
/// believed the other owned the slot and its keys were lost (seen about
/// once in ten `redis-cli --cluster fix` runs after a cut MIGRATESLOTS).
/// Past this time claims count as usual, so a source that really takes
/// the slot back still gets it.
///
/// `CLUSTER ADDSLOTS` gets the same guard against every other node: when
/// redis-cli's fix makes us the owner of a slot that several nodes held
/// open, it sends us DELSLOTS, ADDSLOTS and BUMPEPOCH a moment before it
/// sends the other holder DELSLOTS, and a ping that holder built in
/// between, with a newer configEpoch than ours, took the slot away again
/// (seen once in a CI run of `migrateslots_cut_off_midway_is_repaired_by_redis_cli_fix`).
const HANDOVER_GUARD_MS: u64 = 2000;

fn cerr<T>(s: impl Into<String>) -> Result<T, ClusterError> {
    Err(ClusterError(s.into()))
}

/// The cluster state machine of one node.
pub struct Machine {
    pub settings: Settings,
    pub myself: NodeName,
    pub nodes: BTreeMap<NodeName, Peer>,
    /// Owner of each slot.
    owners: Vec<Option<NodeName>>,
    /// The same ownership by node: slot maps, pings and nodes.conf read a
    /// node's slots without comparing 16384 names.
    owned: BTreeMap<NodeName, SlotBitmap>,
    /// Slots whose owner stopped claiming them (kept bound, as 7.0.15).
    not_claiming: SlotBitmap,
    pub migrating: BTreeMap<u16, NodeName>,
    pub importing: BTreeMap<u16, NodeName>,
    /// Slots we lost to a newer claim while holding keys there, with when
    /// their keys may be dropped (see `drop_lost_slot_keys`).
    lost_slots: BTreeMap<u16, u64>,
    /// Slots handed over to us by `SETSLOT <slot> NODE <myself>` while we
    /// were importing them (the node we imported from) or added by
    /// `ADDSLOTS` (None: any other node), and until when claims of the
    /// slot by that node are taken as stale (see `HANDOVER_GUARD_MS`).
    handed_over: BTreeMap<u16, (Option<NodeName>, u64)>,
    pub current_epoch: u64,
    pub last_vote_epoch: u64,
    pub state_ok: bool,
    links: BTreeMap<LinkId, Link>,
    next_link: LinkId,
    blacklist: BTreeMap<NodeName, u64>,
    rng: StdRng,
    cron_runs: u64,
    pfail_nodes: usize,
    first_state_eval: u64,
    among_minority_time: u64,
    pub stats_sent: [u64; msgtype::COUNT],
    pub stats_received: [u64; msgtype::COUNT],
    actions: Vec<Action>,
    save: bool,
    /// nodes.conf must be rewritten, but a crash may lose the change
    /// (redis does not fsync slot migration states either).
    save_soft: bool,
    map_dirty: bool,
    /// Our election, when a replica.
    pub election: Election,
    /// Manual failover in progress (either side).
    pub mf: ManualFailover,
    pub stats: FailoverStats,
    /// Replication link as last reported: (up, last io, down since).
    repl_link: (bool, u64, u64),
}

/// The I/O layer's work list after a call into the machine.
#[derive(Debug, Default)]
pub struct Output {
    pub actions: Vec<Action>,
    /// nodes.conf must be written.
    pub save: bool,
    /// ... and fsynced before anything else happens (epochs, votes,
    /// ownership learnt from peers).
    pub durable: bool,
    /// The slot map or cluster state changed: republish it.
    pub map_changed: bool,
}

impl Machine {
    /// A fresh node: a master with no slots that knows only itself.
    pub fn new(settings: Settings, now: u64, seed: u64) -> Machine {
        let mut rng = StdRng::seed_from_u64(seed);
        let myself = random_name_from(&mut rng);
        let mut me = Peer::new(myself, nflag::MYSELF | nflag::MASTER, now);
        me.shard_id = random_name_from(&mut rng);
        let mut m = Machine {
            settings,
            myself,
            nodes: BTreeMap::new(),
            owners: vec![None; SLOTS],
            owned: BTreeMap::new(),
            not_claiming: SlotBitmap::new(),
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            lost_slots: BTreeMap::new(),
            handed_over: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            state_ok: false,
            links: BTreeMap::new(),
            next_link: 1,
            blacklist: BTreeMap::new(),
            rng,
            cron_runs: 0,
            pfail_nodes: 0,
            first_state_eval: 0,
            among_minority_time: 0,
            stats_sent: [0; msgtype::COUNT],
            stats_received: [0; msgtype::COUNT],
            actions: Vec::new(),
            save: true,
            save_soft: false,
            map_dirty: true,
            election: Election::default(),
            mf: ManualFailover::default(),
            stats: FailoverStats::default(),
            repl_link: (true, now, 0),
        };
        m.nodes.insert(myself, me);
        m.refresh_myself();
        m
    }

    /// Rebuilds the machine from a loaded nodes.conf.
    pub fn from_conf(
        settings: Settings,
        conf: &NodesConf,
        now: u64,
        seed: u64,
    ) -> Result<Machine, ClusterError> {
        let mut m = Machine::new(settings, now, seed);
        m.nodes.clear();
        let mut me = None;
        for line in &conf.nodes {
            let name = parse_name(&line.name)
                .ok_or_else(|| ClusterError(format!("invalid node name '{}'", line.name)))?;
            let mut p = Peer::new(name, line.flags, now);
            p.ip = line.ip.clone();
            p.port = line.port;
            p.cport = line.cport;
            p.hostname = line.hostname.clone();
            if let Some(master) = &line.master {
                p.slaveof = parse_name(master);
            }
            // As redis: a replica's epoch is its master's, not stored.
            p.config_epoch = if p.slaveof.is_some() {
                0
            } else {
                line.config_epoch
            };
            p.ping_sent = if line.ping_sent != 0 { now } else { 0 };
            p.pong_received = if line.pong_recv != 0 { now } else { 0 };
            // The state of links and failures is not trusted across restarts.
            p.flags &= !(nflag::PFAIL | nflag::HANDSHAKE | nflag::MEET);
            if p.has(nflag::MYSELF) {
                if me.is_some() {
                    return cerr("nodes.conf lists two nodes flagged myself");
                }
                me = Some(name);
                if let Some(sid) = conf.shard_id.as_deref().and_then(parse_name) {
                    p.shard_id = sid;
                }
            }
            m.nodes.insert(name, p);
            for &(a, b) in &line.slots {
                for s in a..=b {
                    if (s as usize) < SLOTS {
                        m.set_owner(s, Some(name));
                    }
                }
            }
            if me == Some(name) {
                for (s, to) in &line.migrating {
                    if let Some(to) = parse_name(to) {
                        m.migrating.insert(*s, to);
                    }
                }
                for (s, from) in &line.importing {
                    if let Some(from) = parse_name(from) {
                        m.importing.insert(*s, from);
                    }
                }
            }
        }
        let Some(me) = me else {
            return cerr("nodes.conf has no line flagged myself");
        };
        m.myself = me;
        m.current_epoch = conf.current_epoch;
        m.last_vote_epoch = conf.last_vote_epoch;
        m.refresh_myself();
        m.save = false;
        Ok(m)
    }

    /// The state to persist.
    pub fn to_conf(&self) -> NodesConf {
        NodesConf {
            nodes: self
                .nodes
                .values()
                .filter(|p| !p.has(nflag::HANDSHAKE))
                .map(|p| self.node_line(p))
                .collect(),
            current_epoch: self.current_epoch,
            last_vote_epoch: self.last_vote_epoch,
            shard_id: Some(wire::name_str(&self.me().shard_id).to_string()),
        }
    }

    /// A node as CLUSTER NODES and nodes.conf show it.
    pub fn node_line(&self, p: &Peer) -> NodeLine {
        let is_me = p.name == self.myself;
        NodeLine {
            name: wire::name_str(&p.name).to_string(),
            ip: p.ip.clone(),
            port: p.port,
            cport: p.cport,
            hostname: p.hostname.clone(),
            flags: p.flags,
            master: p.slaveof.map(|m| wire::name_str(&m).to_string()),
            ping_sent: p.ping_sent,
            pong_recv: p.pong_received,
            config_epoch: self.node_epoch(p),
            connected: is_me || p.link.is_some_and(|l| self.link_connected(l)),
            slots: self.slot_ranges(&p.name),
            migrating: if is_me {
                self.migrating
                    .iter()
                    .map(|(s, n)| (*s, wire::name_str(n).to_string()))
                    .collect()
            } else {
                Vec::new()
            },
            importing: if is_me {
                self.importing
                    .iter()
                    .map(|(s, n)| (*s, wire::name_str(n).to_string()))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The configEpoch shown for a node: its master's for a replica.
    pub fn node_epoch(&self, p: &Peer) -> u64 {
        match p.slaveof.and_then(|m| self.nodes.get(&m)) {
            Some(master) if p.is_replica() => master.config_epoch,
            _ => p.config_epoch,
        }
    }

    pub fn me(&self) -> &Peer {
        // The table always holds myself; fall back to a static empty peer
        // shape only if an invariant was broken.
        match self.nodes.get(&self.myself) {
            Some(p) => p,
            None => unreachable_myself(),
        }
    }

    fn me_mut(&mut self) -> &mut Peer {
        let myself = self.myself;
        self.nodes
            .entry(myself)
            .or_insert_with(|| Peer::new(myself, nflag::MYSELF | nflag::MASTER, 0))
    }

    /// Applies the announced ports and hostname to our own entry.
    pub fn refresh_myself(&mut self) {
        let s = self.settings.clone();
        let me = self.me_mut();
        me.port = s.port;
        me.cport = s.cport;
        me.hostname = s.hostname.clone();
        if !s.announce_ip.is_empty() {
            me.ip = s.announce_ip.clone();
        }
        if s.replica_no_failover {
            me.flags |= nflag::NOFAILOVER;
        } else {
            me.flags &= !nflag::NOFAILOVER;
        }
        self.save = true;
        self.map_dirty = true;
    }

    /// Sets our own IP when we know it better than the peers (for example
    /// the address we are bound to).
    pub fn set_my_ip(&mut self, ip: &str) {
        if self.settings.announce_ip.is_empty() && self.me().ip != ip {
            self.me_mut().ip = ip.to_string();
            self.save = true;
        }
    }

    /// Takes what the I/O layer must do now.
    pub fn take_output(&mut self) -> Output {
        let durable = std::mem::take(&mut self.save);
        let soft = std::mem::take(&mut self.save_soft);
        Output {
            actions: std::mem::take(&mut self.actions),
            save: durable || soft,
            durable,
            map_changed: std::mem::take(&mut self.map_dirty),
        }
    }

    // ----- slots -----

    pub fn owner(&self, slot: u16) -> Option<NodeName> {
        self.owners.get(slot as usize).copied().flatten()
    }

    fn set_owner(&mut self, slot: u16, owner: Option<NodeName>) {
        let i = slot as usize;
        if i >= SLOTS {
            return;
        }
        if let Some(old) = self.owners[i] {
            if let Some(p) = self.nodes.get_mut(&old) {
                p.numslots = p.numslots.saturating_sub(1);
            }
            if let Some(b) = self.owned.get_mut(&old) {
                b.set(slot, false);
            }
        }
        if let Some(new) = owner {
            if let Some(p) = self.nodes.get_mut(&new) {
                p.numslots += 1;
            }
            self.owned.entry(new).or_default().set(slot, true);
        }
        self.owners[i] = owner;
        self.not_claiming.set(slot, false);
        self.map_dirty = true;
    }

    /// A node's slots as inclusive ranges.
    pub fn slot_ranges(&self, name: &NodeName) -> Vec<(u16, u16)> {
        self.owned
            .get(name)
            .map_or_else(Vec::new, SlotBitmap::ranges)
    }

    /// Every node that owns slots, with its slots.
    pub fn owned_slots(&self) -> impl Iterator<Item = (&NodeName, &SlotBitmap)> {
        self.owned.iter()
    }

    fn slot_bitmap(&self, name: &NodeName, skip_not_claiming: bool) -> SlotBitmap {
        let mut b = self.owned.get(name).cloned().unwrap_or_default();
        if skip_not_claiming {
            for (x, nc) in b.0.iter_mut().zip(self.not_claiming.0.iter()) {
                *x &= !nc;
            }
        }
        b
    }

    /// Whom replication must follow: our master's announced client
    /// address when we are a replica.
    pub fn repl_target(&self) -> ReplTarget {
        let me = self.me();
        if !me.is_replica() {
            return ReplTarget::Master;
        }
        match me.slaveof.and_then(|m| self.nodes.get(&m)) {
            Some(p) if !p.ip.is_empty() && p.port != 0 && !p.has(nflag::NOADDR) => {
                ReplTarget::Addr(p.ip.clone(), p.port)
            }
            _ => ReplTarget::Unknown,
        }
    }

    /// Our replication offset, announced in every PING/PONG header.
    pub fn set_repl_offset(&mut self, offset: u64) {
        self.me_mut().repl_offset = offset;
    }

    /// The master whose slots we serve: ourselves, or our master.
    fn my_master(&self) -> NodeName {
        let me = self.me();
        match me.slaveof {
            Some(m) if me.is_replica() && self.nodes.contains_key(&m) => m,
            _ => self.myself,
        }
    }

    /// Cluster size: masters serving at least one slot.
    pub fn size(&self) -> usize {
        self.nodes
            .values()
            .filter(|p| p.is_master() && p.numslots > 0)
            .count()
    }

    // ----- links -----

    /// Allocates an id for an inbound link.
    pub fn new_link_id(&mut self) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        id
    }

    fn link_connected(&self, id: LinkId) -> bool {
        self.links.get(&id).is_some_and(|l| l.connected)
    }

    /// A new inbound connection from `peer_ip`, accepted on `local_ip`.
    pub fn accept(&mut self, link: LinkId, peer_ip: &str, local_ip: &str, now: u64) {
        self.links.insert(
            link,
            Link {
                outbound: false,
                node: None,
                ctime: now,
                connected: true,
                peer_ip: peer_ip.to_string(),
                local_ip: local_ip.to_string(),
            },
        );
    }

    /// An outbound connection succeeded: greet with MEET or PING. Returns
    /// false when the link is no longer wanted (close the socket).
    pub fn link_up(&mut self, link: LinkId, now: u64) -> bool {
        let Some(l) = self.links.get_mut(&link) else {
            return false;
        };
        l.connected = true;
        let Some(name) = l.node else { return false };
        let Some(p) = self.nodes.get_mut(&name) else {
            return false;
        };
        // The MEET flag stays until the handshake completes, so a MEET lost
        // with its connection is sent again on the next one (as Valkey
        // does; redis 7.0 peers accept repeated MEETs).
        let meet = p.has(nflag::MEET);
        let old_ping = p.ping_sent;
        self.send_ping(link, if meet { msgtype::MEET } else { msgtype::PING }, now);
        // Keep the pending ping's age: reconnecting must not postpone
        // failure detection.
        if old_ping != 0 {
            if let Some(p) = self.nodes.get_mut(&name) {
                p.ping_sent = old_ping;
            }
        }
        true
    }

    /// A link closed or failed to connect.
    pub fn link_down(&mut self, link: LinkId, now: u64) {
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        let Some(name) = l.node else { return };
        let Some(p) = self.nodes.get_mut(&name) else {
            return;
        };
        if l.outbound && p.link == Some(link) {
            p.link = None;
            if !l.connected && p.ping_sent == 0 {
                // Unreachable: start the failure detection clock.
                p.ping_sent = now;
            }
        }
        if !l.outbound && p.inbound == Some(link) {
            p.inbound = None;
        }
    }

    fn close_link(&mut self, link: LinkId) {
        if let Some(l) = self.links.remove(&link) {
            if let Some(p) = l.node.and_then(|n| self.nodes.get_mut(&n)) {
                if p.link == Some(link) {
                    p.link = None;
                }
                if p.inbound == Some(link) {
                    p.inbound = None;
                }
            }
            self.actions.push(Action::Close { link });
        }
    }

    /// A malformed packet arrived on a link: drop the link, change nothing.
    pub fn bad_packet(&mut self, link: LinkId) {
        self.close_link(link);
    }

    /// Every link, for CLUSTER LINKS.
    pub fn link_infos(&self) -> Vec<LinkInfo> {
        self.links
            .values()
            .filter_map(|l| {
                Some(LinkInfo {
                    outbound: l.outbound,
                    node: l.node?,
                    ctime: l.ctime,
                })
            })
            .collect()
    }

    // ----- sending -----

    fn header(&self, ty: u16) -> Header {
        let me = self.me();
        let master = self.my_master();
        let config_epoch = self.nodes.get(&master).map_or(0, |p| p.config_epoch);
        Header {
            ty,
            port: self.settings.port,
            current_epoch: self.current_epoch,
            config_epoch,
            offset: me.repl_offset,
            sender: self.myself,
            myslots: self.slot_bitmap(&master, false),
            slaveof: if me.is_replica() { me.slaveof } else { None },
            myip: self.settings.announce_ip.clone(),
            pport: 0,
            cport: self.settings.cport,
            flags: me.flags,
            state: if self.state_ok { 0 } else { 1 },
            mflags: if self.advertises_paused() {
                wire::mflag::PAUSED
            } else {
                0
            },
        }
    }

    fn send(&mut self, link: LinkId, msg: &Message) {
        let ty = msg.header.ty as usize;
        if ty < msgtype::COUNT {
            self.stats_sent[ty] += 1;
        }
        self.actions.push(Action::Send {
            link,
            bytes: Bytes::from(wire::encode(msg)),
        });
    }

    /// Builds and sends a PING, PONG or MEET with a gossip section.
    fn send_ping(&mut self, link: LinkId, ty: u16, now: u64) {
        let dest = self.links.get(&link).and_then(|l| l.node);
        let outbound = self.links.get(&link).is_some_and(|l| l.outbound);
        if ty == msgtype::PING && outbound {
            if let Some(p) = dest.and_then(|d| self.nodes.get_mut(&d)) {
                p.ping_sent = now;
            }
        }
        let gossip = self.gossip_section();
        let mut exts = Vec::new();
        if !self.settings.hostname.is_empty() {
            exts.push(Ext::Hostname(self.settings.hostname.clone()));
        }
        let msg = Message {
            header: self.header(ty),
            body: Body::Ping { gossip, exts },
        };
        self.send(link, &msg);
    }

    fn gossip_entry(&self, p: &Peer) -> Gossip {
        Gossip {
            name: p.name,
            ping_sent: (p.ping_sent / 1000) as u32,
            pong_received: (p.pong_received / 1000) as u32,
            ip: p.ip.clone(),
            port: p.port,
            cport: p.cport,
            flags: p.flags & !nflag::MYSELF,
            pport: p.pport,
        }
    }

    /// max(3, N/10) random healthy nodes (capped at N-2), then every PFAIL
    /// node.
    fn gossip_section(&mut self) -> Vec<Gossip> {
        let n = self.nodes.len();
        let mut wanted = (n / 10).max(3);
        wanted = wanted.min(n.saturating_sub(2));
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        let mut picked: Vec<NodeName> = Vec::with_capacity(wanted + self.pfail_nodes);
        let mut out = Vec::new();
        let mut tries = wanted * 3;
        while out.len() < wanted && tries > 0 && !names.is_empty() {
            tries -= 1;
            let name = names[self.rng.gen_range(0..names.len())];
            let Some(p) = self.nodes.get(&name) else {
                continue;
            };
            if name == self.myself
                || p.has(nflag::PFAIL | nflag::HANDSHAKE | nflag::NOADDR)
                || (p.link.is_none() && p.numslots == 0)
                || picked.contains(&name)
            {
                continue;
            }
            picked.push(name);
            out.push(self.gossip_entry(p));
        }
        let mut pfails = 0;
        for p in self.nodes.values() {
            if pfails >= self.pfail_nodes {
                break;
            }
            if p.has(nflag::PFAIL) && !p.has(nflag::HANDSHAKE | nflag::NOADDR) {
                out.push(self.gossip_entry(p));
                pfails += 1;
            }
        }
        out
    }

    /// Sends a message to every node we have a connected outbound link to.
    fn broadcast(&mut self, msg: &Message) {
        let links: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|p| p.name != self.myself && !p.has(nflag::HANDSHAKE))
            .filter_map(|p| p.link)
            .filter(|l| self.link_connected(*l))
            .collect();
        for l in links {
            self.send(l, msg);
        }
    }

    /// PUBLISH / SPUBLISH from a local client: tell the other nodes.
    pub fn publish(&mut self, channel: Bytes, message: Bytes, shard: bool) {
        let ty = if shard {
            msgtype::PUBLISHSHARD
        } else {
            msgtype::PUBLISH
        };
        let msg = Message {
            header: self.header(ty),
            body: Body::Publish { channel, message },
        };
        if !shard {
            self.broadcast(&msg);
            return;
        }
        // Shard messages go to our master and its replicas only.
        let master = self.my_master();
        let links: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|p| p.name != self.myself && !p.has(nflag::HANDSHAKE))
            .filter(|p| p.name == master || p.slaveof == Some(master))
            .filter_map(|p| p.link)
            .filter(|l| self.link_connected(*l))
            .collect();
        for l in links {
            self.send(l, &msg);
        }
    }

    // ----- receiving -----

    fn known(&self, name: &NodeName) -> bool {
        self.nodes.contains_key(name)
    }

    fn is_handshake(&self, name: &NodeName) -> bool {
        self.nodes
            .get(name)
            .is_some_and(|p| p.has(nflag::HANDSHAKE))
    }

    /// Processes one decoded message that arrived on `link`.
    pub fn receive(&mut self, link: LinkId, msg: Message, now: u64) {
        let Some(l) = self.links.get(&link).cloned() else {
            return;
        };
        let hdr = &msg.header;
        let ty = hdr.ty;
        if (ty as usize) < msgtype::COUNT {
            self.stats_received[ty as usize] += 1;
        }
        // 1. Who sent it.
        let mut sender: Option<NodeName> = match l.node {
            Some(n) if self.known(&n) && !self.is_handshake(&n) && !l.outbound => Some(n),
            _ => None,
        };
        if sender.is_none()
            && wire::valid_name(&hdr.sender)
            && self.known(&hdr.sender)
            && !self.is_handshake(&hdr.sender)
        {
            sender = Some(hdr.sender);
        }
        if let (Some(s), false, None) = (sender, l.outbound, l.node) {
            // Attach the anonymous inbound link to its node.
            let old = self.nodes.get(&s).and_then(|p| p.inbound);
            if let Some(old) = old.filter(|o| *o != link) {
                self.close_link(old);
            }
            if let Some(p) = self.nodes.get_mut(&s) {
                p.inbound = Some(link);
            }
            if let Some(lk) = self.links.get_mut(&link) {
                lk.node = Some(s);
            }
        }
        if let Some(s) = sender {
            if s == self.myself {
                // Our own name from someone else: ignore the message.
                return;
            }
            if let Some(p) = self.nodes.get_mut(&s) {
                p.data_received = now;
            }
            // Epochs and replication offset.
            if hdr.current_epoch > self.current_epoch {
                self.current_epoch = hdr.current_epoch;
                self.save = true;
            }
            if let Some(p) = self.nodes.get_mut(&s) {
                if hdr.config_epoch > p.config_epoch && hdr.slaveof.is_none() {
                    p.config_epoch = hdr.config_epoch;
                    self.save = true;
                }
                p.repl_offset = hdr.offset;
            }
            if hdr.mflags & wire::mflag::PAUSED != 0 {
                self.note_paused_master(s, hdr.offset, now);
            }
        }
        match &msg.body {
            Body::Ping { .. } => self.receive_ping(link, &l, sender, &msg, now),
            Body::Fail { name } => {
                if sender.is_some() {
                    self.receive_fail(name, now);
                }
            }
            Body::Publish { channel, message } => {
                if sender.is_some() {
                    self.actions.push(Action::Deliver {
                        shard: ty == msgtype::PUBLISHSHARD,
                        channel: channel.clone(),
                        message: message.clone(),
                    });
                }
            }
            Body::Update {
                config_epoch,
                name,
                slots,
            } => {
                if sender.is_some() {
                    self.receive_update(*config_epoch, name, slots, now);
                }
            }
            Body::Empty => match (ty, sender) {
                (msgtype::AUTH_REQUEST, Some(s)) => self.receive_auth_request(s, hdr, now),
                (msgtype::AUTH_ACK, Some(s)) => self.receive_auth_ack(s, hdr, now),
                (msgtype::MFSTART, Some(s)) => self.receive_mfstart(s, now),
                _ => {}
            },
            Body::Module { .. } | Body::Unknown(_) => {}
        }
        if self.map_dirty {
            self.update_state(now);
        }
    }

    fn receive_ping(
        &mut self,
        link: LinkId,
        l: &Link,
        sender: Option<NodeName>,
        msg: &Message,
        now: u64,
    ) {
        let hdr = &msg.header;
        let ty = hdr.ty;
        let Body::Ping { gossip, exts } = &msg.body else {
            return;
        };
        if ty == msgtype::PING || ty == msgtype::MEET {
            // Learn our own address from the one the peer dialled.
            if self.settings.announce_ip.is_empty()
                && !l.outbound
                && !l.local_ip.is_empty()
                && (ty == msgtype::MEET || self.me().ip.is_empty())
                && self.me().ip != l.local_ip
            {
                self.me_mut().ip = l.local_ip.clone();
                self.save = true;
            }
            if sender.is_none() && ty == msgtype::MEET && !l.outbound {
                // Someone wants us in its cluster: start our handshake.
                let mut p = Peer::new(random_name_from(&mut self.rng), nflag::HANDSHAKE, now);
                p.ip = if hdr.myip.is_empty() {
                    l.peer_ip.clone()
                } else {
                    hdr.myip.clone()
                };
                p.port = hdr.port;
                p.pport = hdr.pport;
                p.cport = hdr.cport;
                self.nodes.insert(p.name, p);
                self.process_gossip(None, gossip, now);
            }
            self.send_ping(link, msgtype::PONG, now);
        }
        // Our outbound link: complete the handshake or check the name.
        if l.outbound {
            if let Some(dialled) = l.node {
                if self.is_handshake(&dialled) {
                    if self.known(&hdr.sender) {
                        // We already know this node: refresh its address
                        // and drop the placeholder.
                        let (ip, port, cport) = self
                            .nodes
                            .get(&dialled)
                            .map(|p| (p.ip.clone(), p.port, p.cport))
                            .unwrap_or_default();
                        let s = hdr.sender;
                        self.update_address(&s, &ip, port, cport, hdr.pport);
                        self.delete_node(&dialled);
                        return;
                    }
                    if !wire::valid_name(&hdr.sender) || self.blacklisted(&hdr.sender, now) {
                        self.delete_node(&dialled);
                        return;
                    }
                    self.rename_node(&dialled, hdr.sender);
                    if let Some(p) = self.nodes.get_mut(&hdr.sender) {
                        p.flags &= !(nflag::HANDSHAKE | nflag::MEET);
                        p.flags |= hdr.flags & (nflag::MASTER | nflag::SLAVE);
                        if ty == msgtype::PONG {
                            p.pong_received = now;
                            p.ping_sent = 0;
                        }
                    }
                    self.save = true;
                    // Now known: handle the rest as from a known sender.
                    return self.receive_ping_known(link, l, hdr.sender, msg, now);
                } else if dialled != hdr.sender {
                    // The address now belongs to someone else.
                    if let Some(p) = self.nodes.get_mut(&dialled) {
                        p.flags |= nflag::NOADDR;
                        p.ip.clear();
                        p.port = 0;
                        p.cport = 0;
                        p.pport = 0;
                    }
                    self.close_link(link);
                    self.save = true;
                    return;
                }
            }
        }
        let _ = exts;
        if let Some(s) = sender.or_else(|| {
            // A PONG on our outbound link to a known node.
            l.node
                .filter(|n| l.outbound && *n == hdr.sender && self.known(n))
                .filter(|n| !self.is_handshake(n))
        }) {
            self.receive_ping_known(link, l, s, msg, now);
        }
    }

    /// PING/PONG/MEET processing once the sender is a known, named node.
    fn receive_ping_known(&mut self, link: LinkId, l: &Link, s: NodeName, msg: &Message, now: u64) {
        let hdr = &msg.header;
        let ty = hdr.ty;
        let Body::Ping { gossip, exts } = &msg.body else {
            return;
        };
        if s == self.myself {
            return;
        }
        if let Some(p) = self.nodes.get_mut(&s) {
            p.data_received = now;
            p.flags = (p.flags & !nflag::NOFAILOVER) | (hdr.flags & nflag::NOFAILOVER);
        }
        if hdr.current_epoch > self.current_epoch {
            self.current_epoch = hdr.current_epoch;
            self.save = true;
        }
        if ty == msgtype::PING && !l.outbound {
            let ip = if hdr.myip.is_empty() {
                l.peer_ip.clone()
            } else {
                hdr.myip.clone()
            };
            self.update_address(&s, &ip, hdr.port, hdr.cport, hdr.pport);
        }
        if ty == msgtype::PONG && l.outbound && l.node == Some(s) {
            let fail_undo = 2 * self.settings.node_timeout;
            if let Some(p) = self.nodes.get_mut(&s) {
                p.pong_received = now;
                p.ping_sent = 0;
                if p.has(nflag::PFAIL) {
                    p.flags &= !nflag::PFAIL;
                    self.map_dirty = true;
                } else if p.has(nflag::FAIL) {
                    let clear = !p.is_master()
                        || p.numslots == 0
                        || now.saturating_sub(p.fail_time) > fail_undo;
                    if clear {
                        p.flags &= !nflag::FAIL;
                        self.save = true;
                        self.map_dirty = true;
                    }
                }
            }
        }
        let _ = link;
        // Role.
        match hdr.slaveof {
            None => self.set_master_role(&s),
            Some(m) => self.set_replica_role(&s, m),
        }
        // Slots.
        let sender_master = match self.nodes.get(&s) {
            Some(p) if p.is_replica() => p.slaveof.filter(|m| self.known(m)),
            Some(_) => Some(s),
            None => None,
        };
        if let Some(sm) = sender_master {
            let ours = self.slot_bitmap(&sm, false);
            if ours != hdr.myslots {
                let sender_is_master = self.nodes.get(&s).is_some_and(|p| p.is_master());
                if sender_is_master {
                    self.update_slots_with(&s, hdr.config_epoch, &hdr.myslots, now);
                }
                // A stale claim: tell the sender who owns the slot now.
                // From a master, only the slots it claims beyond what we
                // knew it owned can be stale (the others are its own):
                // that keeps a ping cheap while slots move (an owner
                // comparison per claimed slot and per ping showed in
                // profiles of MIGRATESLOTS).
                let mut claims = hdr.myslots.clone();
                if sm == s {
                    for (c, o) in claims.0.iter_mut().zip(ours.0.iter()) {
                        *c &= !o;
                    }
                }
                for slot in claims.iter() {
                    let Some(owner) = self.owner(slot) else {
                        continue;
                    };
                    if owner == s || self.not_claiming.get(slot) {
                        continue;
                    }
                    let owner_epoch = self.nodes.get(&owner).map_or(0, |p| p.config_epoch);
                    if owner_epoch > hdr.config_epoch {
                        self.send_update(&s, &owner);
                        break;
                    }
                }
            }
        }
        // configEpoch collision between two masters.
        let me_master = self.me().is_master();
        let sender_master = self.nodes.get(&s).is_some_and(|p| p.is_master());
        if me_master
            && sender_master
            && hdr.config_epoch == self.me().config_epoch
            && hdr.sender.as_slice() > self.myself.as_slice()
        {
            self.current_epoch += 1;
            let e = self.current_epoch;
            self.me_mut().config_epoch = e;
            self.save = true;
            tracing::warn!(
                epoch = e,
                "configEpoch collision with node {}: moved to a new epoch",
                wire::name_str(&s)
            );
        }
        self.process_gossip(Some(s), gossip, now);
        self.process_extensions(&s, exts, now);
    }

    fn set_master_role(&mut self, name: &NodeName) {
        let Some(p) = self.nodes.get_mut(name) else {
            return;
        };
        if p.is_master() && p.slaveof.is_none() {
            return;
        }
        p.flags &= !nflag::SLAVE;
        p.flags |= nflag::MASTER;
        p.slaveof = None;
        self.save = true;
        self.map_dirty = true;
    }

    fn set_replica_role(&mut self, name: &NodeName, master: NodeName) {
        let was_master = self.nodes.get(name).is_some_and(|p| p.is_master());
        if was_master {
            for slot in 0..SLOTS as u16 {
                if self.owner(slot) == Some(*name) {
                    self.set_owner(slot, None);
                }
            }
            if let Some(p) = self.nodes.get_mut(name) {
                p.flags &= !(nflag::MASTER | nflag::MIGRATE_TO);
                p.flags |= nflag::SLAVE;
            }
            self.save = true;
            self.map_dirty = true;
        }
        if self.known(&master) {
            if let Some(p) = self.nodes.get_mut(name) {
                if p.slaveof != Some(master) {
                    p.slaveof = Some(master);
                    p.flags |= nflag::SLAVE;
                    p.flags &= !nflag::MASTER;
                    self.save = true;
                    self.map_dirty = true;
                }
            }
            if let Some(m) = self.nodes.get_mut(&master) {
                m.flags |= nflag::MIGRATE_TO;
            }
        }
    }

    fn update_address(&mut self, name: &NodeName, ip: &str, port: u16, cport: u16, pport: u16) {
        if *name == self.myself || ip.is_empty() {
            return;
        }
        let Some(p) = self.nodes.get_mut(name) else {
            return;
        };
        if p.ip == ip && p.port == port && p.cport == cport && p.pport == pport {
            return;
        }
        p.ip = ip.to_string();
        p.port = port;
        p.cport = cport;
        p.pport = pport;
        p.flags &= !nflag::NOADDR;
        let link = p.link;
        tracing::info!(
            "address of node {} updated to {ip}:{port}@{cport}",
            wire::name_str(name)
        );
        if let Some(link) = link {
            self.close_link(link);
        }
        self.save = true;
        self.map_dirty = true;
    }

    fn process_gossip(&mut self, sender: Option<NodeName>, gossip: &[Gossip], now: u64) {
        let sender_is_master = sender
            .and_then(|s| self.nodes.get(&s))
            .is_some_and(|p| p.is_master());
        for g in gossip {
            let flags = g.flags;
            if self.known(&g.name) {
                if let (Some(s), true) = (sender, sender_is_master) {
                    if g.name != self.myself {
                        if flags & (nflag::PFAIL | nflag::FAIL) != 0 {
                            self.add_failure_report(&g.name, s, now);
                            self.mark_failing_if_needed(&g.name, now);
                        } else {
                            self.remove_failure_report(&g.name, &s);
                        }
                    }
                }
                let mut close = None;
                if let Some(p) = self.nodes.get_mut(&g.name) {
                    if flags & (nflag::PFAIL | nflag::FAIL) == 0
                        && p.ping_sent == 0
                        && p.fail_reports.is_empty()
                    {
                        let t = u64::from(g.pong_received) * 1000;
                        if t <= now + 500 && t > p.pong_received {
                            p.pong_received = t;
                        }
                    }
                    if p.failing()
                        && flags & (nflag::NOADDR | nflag::PFAIL | nflag::FAIL) == 0
                        && !g.ip.is_empty()
                        && (p.ip != g.ip || p.port != g.port || p.cport != g.cport)
                        && g.name != self.myself
                    {
                        close = p.link;
                        p.ip = g.ip.clone();
                        p.port = g.port;
                        p.pport = g.pport;
                        p.cport = g.cport;
                        p.flags &= !nflag::NOADDR;
                        self.save = true;
                        self.map_dirty = true;
                    }
                }
                if let Some(l) = close {
                    self.close_link(l);
                }
            } else if sender.is_some()
                && flags & nflag::NOADDR == 0
                && wire::valid_name(&g.name)
                && !self.blacklisted(&g.name, now)
            {
                let mut p = Peer::new(
                    g.name,
                    flags & !(nflag::MYSELF | nflag::HANDSHAKE | nflag::MEET),
                    now,
                );
                p.ip = g.ip.clone();
                p.port = g.port;
                p.cport = g.cport;
                p.pport = g.pport;
                self.nodes.insert(g.name, p);
                self.save = true;
                self.map_dirty = true;
            }
        }
    }

    fn process_extensions(&mut self, s: &NodeName, exts: &[Ext], now: u64) {
        let mut hostname = String::new();
        for e in exts {
            match e {
                Ext::Hostname(h) => hostname = h.clone(),
                Ext::ForgottenNode { name, ttl } => {
                    let my_master = self.me().slaveof;
                    if *name != self.myself && Some(*name) != my_master && self.known(name) {
                        self.delete_node(name);
                        self.blacklist
                            .insert(*name, now.saturating_add(ttl.saturating_mul(1000)));
                        self.save = true;
                    }
                }
                Ext::ShardId(id) => {
                    if let Some(p) = self.nodes.get_mut(s) {
                        p.shard_id = *id;
                    }
                }
                Ext::HumanNodename(_) | Ext::Unknown { .. } => {}
            }
        }
        if let Some(p) = self.nodes.get_mut(s) {
            if p.hostname != hostname {
                p.hostname = hostname;
                self.save = true;
                self.map_dirty = true;
            }
        }
    }

    // ----- failure detection -----

    fn add_failure_report(&mut self, node: &NodeName, reporter: NodeName, now: u64) {
        if let Some(p) = self.nodes.get_mut(node) {
            match p.fail_reports.iter_mut().find(|(r, _)| *r == reporter) {
                Some(r) => r.1 = now,
                None => p.fail_reports.push((reporter, now)),
            }
        }
    }

    fn remove_failure_report(&mut self, node: &NodeName, reporter: &NodeName) {
        if let Some(p) = self.nodes.get_mut(node) {
            p.fail_reports.retain(|(r, _)| r != reporter);
        }
    }

    /// We just suspected a node: PING every other master now, so that the
    /// PFAIL entry (every gossip section carries all PFAIL nodes) reaches
    /// the voters at once instead of with the next scheduled pings. The
    /// FAIL quorum, and so the election, comes up to a second sooner; the
    /// rules are redis's, only the timing is tighter.
    fn spread_suspicion(&mut self, now: u64) {
        let links: Vec<LinkId> = self
            .nodes
            .values()
            .filter(|p| p.name != self.myself && p.is_master() && !p.failing())
            .filter(|p| !p.has(nflag::HANDSHAKE) && p.ping_sent == 0)
            .filter_map(|p| p.link)
            .filter(|l| self.link_connected(*l))
            .collect();
        for l in links {
            self.send_ping(l, msgtype::PING, now);
        }
    }

    /// Valid failure reports about a node, expired ones dropped.
    pub fn failure_reports(&mut self, node: &NodeName, now: u64) -> usize {
        let validity = 2 * self.settings.node_timeout;
        match self.nodes.get_mut(node) {
            Some(p) => {
                p.fail_reports
                    .retain(|(_, t)| now.saturating_sub(*t) <= validity);
                p.fail_reports.len()
            }
            None => 0,
        }
    }

    fn mark_failing_if_needed(&mut self, node: &NodeName, now: u64) {
        let quorum = self.size() / 2 + 1;
        let Some(p) = self.nodes.get(node) else {
            return;
        };
        if !p.has(nflag::PFAIL) || p.has(nflag::FAIL) {
            return;
        }
        let mut failures = self.failure_reports(node, now);
        if self.me().is_master() {
            failures += 1;
        }
        if failures < quorum {
            return;
        }
        tracing::info!(
            "marking node {} as failing (quorum reached)",
            wire::name_str(node)
        );
        if let Some(p) = self.nodes.get_mut(node) {
            p.flags &= !nflag::PFAIL;
            p.flags |= nflag::FAIL;
            p.fail_time = now;
        }
        let msg = Message {
            header: self.header(msgtype::FAIL),
            body: Body::Fail { name: *node },
        };
        self.broadcast(&msg);
        self.save = true;
        self.map_dirty = true;
        self.master_failed_maybe(node, now);
    }

    /// Our master was just flagged FAIL: schedule the election now rather
    /// than at the next cron tick.
    fn master_failed_maybe(&mut self, node: &NodeName, now: u64) {
        if self.me().is_replica() && self.me().slaveof == Some(*node) {
            self.update_state(now);
            self.handle_replica_failover(now);
        }
    }

    fn receive_fail(&mut self, name: &NodeName, now: u64) {
        if *name == self.myself {
            return;
        }
        if let Some(p) = self.nodes.get_mut(name) {
            if !p.has(nflag::FAIL) {
                tracing::info!("FAIL message received about {}", wire::name_str(name));
                p.flags |= nflag::FAIL;
                p.flags &= !nflag::PFAIL;
                p.fail_time = now;
                self.save = true;
                self.map_dirty = true;
                self.master_failed_maybe(name, now);
            }
        }
    }

    // ----- slot ownership -----

    /// Rebinds the slots a master claims with a newer configEpoch.
    fn update_slots_with(&mut self, sender: &NodeName, epoch: u64, slots: &SlotBitmap, now: u64) {
        if *sender == self.myself {
            return;
        }
        let cur_master = self.my_master();
        let mut dirty = Vec::new();
        let mut moved_from_us = 0usize;
        let claimed = slots.count();
        let theirs = self.owned.get(sender).cloned().unwrap_or_default();
        // Whole bytes where the claim matches what we know (the usual
        // ping) are skipped.
        for i in 0..SLOTS / 8 {
            let (c, o, nc) = (slots.0[i], theirs.0[i], self.not_claiming.0[i]);
            if c == o && c & nc == 0 {
                continue;
            }
            for bit in 0..8u16 {
                let slot = (i as u16) * 8 + bit;
                if slots.get(slot) {
                    let owner = self.owner(slot);
                    if owner == Some(*sender) {
                        self.not_claiming.set(slot, false);
                        continue;
                    }
                    if self.importing.contains_key(&slot) {
                        continue;
                    }
                    // The node that handed this slot to us still claiming
                    // it: a ping it built before it heard of the handover.
                    if owner == Some(self.myself)
                        && self.handed_over.get(&slot).is_some_and(|(from, until)| {
                            from.is_none_or(|f| f == *sender) && now < *until
                        })
                    {
                        continue;
                    }
                    let owner_epoch = owner
                        .and_then(|o| self.nodes.get(&o))
                        .map_or(0, |p| p.config_epoch);
                    if owner.is_none() || self.not_claiming.get(slot) || owner_epoch < epoch {
                        if owner == Some(self.myself) {
                            dirty.push(slot);
                        }
                        if owner == Some(cur_master) {
                            moved_from_us += 1;
                        }
                        self.set_owner(slot, Some(*sender));
                    }
                } else if self.owner(slot) == Some(*sender) && !self.not_claiming.get(slot) {
                    self.not_claiming.set(slot, true);
                    self.map_dirty = true;
                }
            }
        }
        if moved_from_us == 0 && dirty.is_empty() {
            return;
        }
        self.save = true;
        let master_left = self.nodes.get(&cur_master).map_or(0, |p| p.numslots);
        if moved_from_us > 0
            && master_left == 0
            && (self.settings.allow_replica_migration || claimed == moved_from_us)
        {
            // Our shard lost all its slots to the sender: follow it.
            tracing::info!(
                "configuration change detected: reconfiguring as a replica of {}",
                wire::name_str(sender)
            );
            // Our keys stay: replication resyncs them, partially when the
            // new master's history covers ours.
            let s = *sender;
            let me = self.myself;
            self.set_replica_role(&me, s);
            if let Some(p) = self.nodes.get_mut(&me) {
                p.slaveof = Some(s);
            }
            self.reset_manual_failover();
            // Tell everyone at once rather than at the next pings: a
            // master that still saw us as a master would refuse to vote
            // for us in the next failover.
            self.broadcast_pong(now, false);
        } else if !dirty.is_empty() {
            // Redis deletes the keys at once. They may be the only copy
            // (a half-moved slot whose repair picked the other node as its
            // owner, in a race with gossip): they stay out of reach for a
            // while, so that a repair can still move them, and go only if
            // the slot is still someone else's and not in migration then.
            tracing::warn!(
                count = dirty.len(),
                "lost slots to node {}: their keys go in {} ms unless the slots come back or move",
                wire::name_str(sender),
                self.lost_slot_grace()
            );
            let at = now + self.lost_slot_grace();
            for s in dirty {
                self.lost_slots.insert(s, at);
            }
        }
        self.update_state(now);
    }

    fn send_update(&mut self, to: &NodeName, about: &NodeName) {
        let Some(link) = self
            .nodes
            .get(to)
            .and_then(|p| p.link)
            .filter(|l| self.link_connected(*l))
        else {
            return;
        };
        let epoch = self.nodes.get(about).map_or(0, |p| p.config_epoch);
        let msg = Message {
            header: self.header(msgtype::UPDATE),
            body: Body::Update {
                config_epoch: epoch,
                name: *about,
                slots: self.slot_bitmap(about, true),
            },
        };
        self.send(link, &msg);
    }

    fn receive_update(&mut self, epoch: u64, name: &NodeName, slots: &SlotBitmap, now: u64) {
        if *name == self.myself {
            return;
        }
        let Some(p) = self.nodes.get(name) else {
            return;
        };
        if p.config_epoch >= epoch {
            return;
        }
        if p.is_replica() {
            self.set_master_role(name);
        }
        if let Some(p) = self.nodes.get_mut(name) {
            p.config_epoch = epoch;
        }
        self.update_slots_with(name, epoch, slots, now);
        self.save = true;
    }

    // ----- cron -----

    /// The 100 ms cron: connect, ping, time out, detect failures.
    /// How long keys of a slot lost to a newer claim are kept.
    fn lost_slot_grace(&self) -> u64 {
        (self.settings.node_timeout * 2).max(2000)
    }

    /// Drops the keys of lost slots whose grace period ended, if the slot
    /// is still another node's and not in migration; forgets the slots
    /// that came back to us.
    fn drop_lost_slot_keys(&mut self, now: u64) {
        if self.lost_slots.is_empty() {
            return;
        }
        let me = self.myself;
        let mut due = Vec::new();
        let lost = std::mem::take(&mut self.lost_slots);
        for (slot, at) in lost {
            if self.owner(slot) == Some(me) {
                continue;
            }
            if at > now || self.migrating.contains_key(&slot) || self.importing.contains_key(&slot)
            {
                self.lost_slots.insert(slot, at);
                continue;
            }
            due.push(slot);
        }
        if !due.is_empty() {
            tracing::warn!(count = due.len(), "deleting the keys of slots we lost");
            self.actions.push(Action::DropSlotKeys(due));
        }
    }

    pub fn tick(&mut self, now: u64) {
        self.cron_runs += 1;
        self.drop_lost_slot_keys(now);
        self.handed_over.retain(|_, (_, until)| *until > now);
        self.check_manual_failover_timeout(now);
        let timeout = self.settings.node_timeout;
        let handshake_timeout = timeout.max(1000);
        let names: Vec<NodeName> = self.nodes.keys().copied().collect();
        for name in &names {
            let Some(p) = self.nodes.get(name) else {
                continue;
            };
            if *name == self.myself || p.has(nflag::NOADDR) {
                continue;
            }
            if p.has(nflag::HANDSHAKE) && now.saturating_sub(p.ctime) > handshake_timeout {
                self.delete_node(name);
                continue;
            }
            if p.link.is_none() && !p.ip.is_empty() && p.cport != 0 {
                let (ip, cport) = (p.ip.clone(), p.cport);
                let id = self.new_link_id();
                self.links.insert(
                    id,
                    Link {
                        outbound: true,
                        node: Some(*name),
                        ctime: now,
                        connected: false,
                        peer_ip: ip.clone(),
                        local_ip: String::new(),
                    },
                );
                if let Some(p) = self.nodes.get_mut(name) {
                    p.link = Some(id);
                }
                self.actions.push(Action::Connect {
                    link: id,
                    ip,
                    cport,
                });
            }
        }
        // Once a second: ping the node we heard from least recently among
        // five random ones.
        if self.cron_runs % 10 == 0 && !names.is_empty() {
            let mut best: Option<(NodeName, u64)> = None;
            for _ in 0..5 {
                let name = names[self.rng.gen_range(0..names.len())];
                let Some(p) = self.nodes.get(&name) else {
                    continue;
                };
                if name == self.myself
                    || p.has(nflag::HANDSHAKE)
                    || p.ping_sent != 0
                    || !p.link.is_some_and(|l| self.link_connected(l))
                {
                    continue;
                }
                if best.is_none_or(|(_, t)| p.pong_received < t) {
                    best = Some((name, p.pong_received));
                }
            }
            if let Some((name, _)) = best {
                if let Some(link) = self.nodes.get(&name).and_then(|p| p.link) {
                    self.send_ping(link, msgtype::PING, now);
                }
            }
        }
        let mut pfails = 0;
        let mut new_pfail = false;
        for name in &names {
            let Some(p) = self.nodes.get(name) else {
                continue;
            };
            if *name == self.myself || p.has(nflag::NOADDR | nflag::HANDSHAKE) {
                continue;
            }
            if p.has(nflag::PFAIL) {
                pfails += 1;
            }
            let link = p.link;
            let connected = link.is_some_and(|l| self.link_connected(l));
            let link_age = link
                .and_then(|l| self.links.get(&l))
                .map_or(0, |l| now.saturating_sub(l.ctime));
            let (ping_sent, data_received, pong_received) =
                (p.ping_sent, p.data_received.max(p.ctime), p.pong_received);
            // A link that stopped answering is re-created.
            if let Some(l) = link {
                if connected
                    && link_age > timeout
                    && ping_sent != 0
                    && now.saturating_sub(ping_sent) > timeout / 2
                    && now.saturating_sub(data_received) > timeout / 2
                {
                    self.close_link(l);
                    continue;
                }
            }
            if let Some(l) = link.filter(|_| connected) {
                if ping_sent == 0 && now.saturating_sub(pong_received) > timeout / 2 {
                    self.send_ping(l, msgtype::PING, now);
                    continue;
                }
            }
            if ping_sent != 0 {
                let delay = now
                    .saturating_sub(ping_sent)
                    .min(now.saturating_sub(data_received));
                // Redis's rule waits a node timeout after the ping, which
                // is sent only once the last PONG is half a timeout old:
                // detection takes up to 1.5 timeouts. A healthy peer sends
                // us something (its PINGs, its PONGs) at least every half
                // timeout, so a whole timeout of silence with a ping
                // outstanding for half of one is as sure a sign, and
                // bounds detection by the node timeout.
                let silent = now.saturating_sub(data_received) > timeout
                    && now.saturating_sub(ping_sent) > timeout / 2;
                if delay > timeout || silent {
                    if let Some(p) = self.nodes.get_mut(name) {
                        if !p.failing() {
                            tracing::debug!("node {} possibly failing", wire::name_str(name));
                            p.flags |= nflag::PFAIL;
                            self.map_dirty = true;
                            pfails += 1;
                            new_pfail = true;
                        }
                    }
                }
            }
            // Unreachable for a while (a ping unanswered, or a connection
            // attempt still pending, as towards a vanished pod IP): maybe
            // it moved; ask DNS.
            let resolve_after = (timeout / 2).min(RESOLVE_INTERVAL_MS);
            let stalled = (ping_sent != 0 && now.saturating_sub(ping_sent) >= resolve_after)
                || (link.is_some() && !connected && link_age >= resolve_after);
            if let Some(p) = self.nodes.get_mut(name) {
                if stalled
                    && !p.hostname.is_empty()
                    && now.saturating_sub(p.last_resolve) >= RESOLVE_INTERVAL_MS
                {
                    p.last_resolve = now;
                    let hostname = p.hostname.clone();
                    self.actions.push(Action::Resolve {
                        node: *name,
                        hostname,
                    });
                }
            }
        }
        self.pfail_nodes = pfails;
        if new_pfail && self.me().is_master() {
            self.spread_suspicion(now);
        }
        self.blacklist.retain(|_, exp| *exp > now);
        if self.me().is_replica() {
            self.handle_manual_failover(now);
            self.handle_replica_failover(now);
            self.handle_replica_migration(now);
        }
        self.update_state(now);
    }

    /// The I/O layer resolved a peer's hostname.
    pub fn resolved(&mut self, node: &NodeName, ips: &[String]) {
        let Some(p) = self.nodes.get(node) else {
            return;
        };
        if ips.is_empty() || ips.contains(&p.ip) {
            return;
        }
        let (port, cport, pport) = (p.port, p.cport, p.pport);
        tracing::info!(
            "node {} ({}) resolved to a new address {}",
            wire::name_str(node),
            p.hostname,
            ips[0]
        );
        let ip = ips[0].clone();
        self.update_address(node, &ip, port, cport, pport);
    }

    /// Recomputes cluster_state (ok / fail).
    pub fn update_state(&mut self, now: u64) {
        if self.first_state_eval == 0 {
            self.first_state_eval = now;
        }
        let me_master = self.me().is_master();
        if me_master
            && !self.state_ok
            && now.saturating_sub(self.first_state_eval) < WRITABLE_DELAY_MS
        {
            return;
        }
        let mut ok = true;
        if self.settings.require_full_coverage {
            let failed: Vec<NodeName> = self
                .nodes
                .values()
                .filter(|p| p.has(nflag::FAIL) && p.numslots > 0)
                .map(|p| p.name)
                .collect();
            ok = failed.is_empty()
                && self.owned.values().map(SlotBitmap::count).sum::<usize>() == SLOTS;
        }
        let mut size = 0;
        let mut reachable = 0;
        for p in self.nodes.values() {
            if p.is_master() && p.numslots > 0 {
                size += 1;
                if !p.failing() {
                    reachable += 1;
                }
            }
        }
        let quorum = size / 2 + 1;
        if reachable < quorum {
            ok = false;
            self.among_minority_time = now;
        }
        if ok != self.state_ok {
            let rejoin = self.settings.node_timeout.clamp(500, 5000);
            if ok
                && me_master
                && self.among_minority_time != 0
                && now.saturating_sub(self.among_minority_time) < rejoin
            {
                return;
            }
            tracing::info!("cluster state changed: {}", if ok { "ok" } else { "fail" });
            self.state_ok = ok;
            self.map_dirty = true;
        }
    }

    // ----- node table edits -----

    fn blacklisted(&self, name: &NodeName, now: u64) -> bool {
        self.blacklist.get(name).is_some_and(|exp| *exp > now)
    }

    fn delete_node(&mut self, name: &NodeName) {
        let Some(p) = self.nodes.remove(name) else {
            return;
        };
        if let Some(b) = self.owned.remove(name) {
            for slot in b.iter() {
                self.owners[slot as usize] = None;
                self.map_dirty = true;
            }
        }
        self.importing.retain(|_, n| n != name);
        self.migrating.retain(|_, n| n != name);
        for other in self.nodes.values_mut() {
            other.fail_reports.retain(|(r, _)| r != name);
            if other.slaveof == Some(*name) {
                other.slaveof = None;
            }
        }
        for l in [p.link, p.inbound].into_iter().flatten() {
            if self.links.remove(&l).is_some() {
                self.actions.push(Action::Close { link: l });
            }
        }
        self.save = true;
    }

    fn rename_node(&mut self, old: &NodeName, new: NodeName) {
        let Some(mut p) = self.nodes.remove(old) else {
            return;
        };
        p.name = new;
        for l in [p.link, p.inbound].into_iter().flatten() {
            if let Some(link) = self.links.get_mut(&l) {
                link.node = Some(new);
            }
        }
        self.nodes.insert(new, p);
    }

    // ----- CLUSTER commands -----

    /// CLUSTER MEET ip port cport.
    pub fn meet(&mut self, ip: &str, port: u16, cport: u16, now: u64) -> Result<(), ClusterError> {
        let Ok(addr) = ip.parse::<std::net::IpAddr>() else {
            return cerr(format!("ERR Invalid node address specified: {ip}:{port}"));
        };
        if port == 0 || cport == 0 {
            return cerr(format!("ERR Invalid node address specified: {ip}:{port}"));
        }
        let ip = addr.to_string();
        if self
            .nodes
            .values()
            .any(|p| p.has(nflag::HANDSHAKE) && p.ip == ip && p.port == port && p.cport == cport)
        {
            return Ok(());
        }
        let mut p = Peer::new(
            random_name_from(&mut self.rng),
            nflag::HANDSHAKE | nflag::MEET,
            now,
        );
        p.ip = ip;
        p.port = port;
        p.cport = cport;
        self.nodes.insert(p.name, p);
        Ok(())
    }

    fn check_slot_free(&self, slot: u16) -> Result<(), ClusterError> {
        if self.owner(slot).is_some() {
            return cerr(format!("ERR Slot {slot} is already busy"));
        }
        Ok(())
    }

    /// CLUSTER ADDSLOTS / ADDSLOTSRANGE: all or nothing.
    pub fn add_slots(&mut self, slots: &[u16], now: u64) -> Result<(), ClusterError> {
        if self.me().is_replica() {
            return cerr("ERR Please use SETSLOT only with masters.");
        }
        let mut seen = SlotBitmap::new();
        for &s in slots {
            self.check_slot_free(s)?;
            if seen.get(s) {
                return cerr(format!("ERR Slot {s} specified multiple times"));
            }
            seen.set(s, true);
        }
        let me = self.myself;
        for &s in slots {
            self.importing.remove(&s);
            self.set_owner(s, Some(me));
            self.handed_over.insert(s, (None, now + HANDOVER_GUARD_MS));
        }
        self.save = true;
        self.update_state(now);
        Ok(())
    }

    /// CLUSTER DELSLOTS / DELSLOTSRANGE: all or nothing.
    pub fn del_slots(&mut self, slots: &[u16], now: u64) -> Result<(), ClusterError> {
        let mut seen = SlotBitmap::new();
        for &s in slots {
            if self.owner(s).is_none() {
                return cerr(format!("ERR Slot {s} is already unassigned"));
            }
            if seen.get(s) {
                return cerr(format!("ERR Slot {s} specified multiple times"));
            }
            seen.set(s, true);
        }
        for &s in slots {
            self.importing.remove(&s);
            self.migrating.remove(&s);
            self.set_owner(s, None);
        }
        self.save = true;
        self.update_state(now);
        Ok(())
    }

    /// CLUSTER FLUSHSLOTS: forget every slot we own.
    pub fn flush_slots(&mut self, now: u64) {
        let me = self.myself;
        for s in 0..SLOTS as u16 {
            if self.owner(s) == Some(me) {
                self.set_owner(s, None);
            }
        }
        self.save = true;
        self.update_state(now);
    }

    /// CLUSTER FORGET node-id.
    pub fn forget(&mut self, name: &[u8], now: u64) -> Result<(), ClusterError> {
        let Some(n) = parse_name_bytes(name).filter(|n| self.known(n)) else {
            return cerr(format!(
                "ERR Unknown node {}",
                String::from_utf8_lossy(name)
            ));
        };
        if n == self.myself {
            return cerr("ERR I tried hard but I can't forget myself...");
        }
        if self.me().is_replica() && self.me().slaveof == Some(n) {
            return cerr("ERR Can't forget my master!");
        }
        self.blacklist.insert(n, now + BLACKLIST_TTL_MS);
        self.delete_node(&n);
        self.update_state(now);
        Ok(())
    }

    /// CLUSTER REPLICATE: become a replica of the master `name`. A master
    /// must have no slots and (`has_keys`) no keys in db 0 to do so.
    pub fn replicate(&mut self, name: &[u8], has_keys: bool, now: u64) -> Result<(), ClusterError> {
        let Some(target) = parse_name_bytes(name).filter(|n| self.nodes.contains_key(n)) else {
            return cerr(format!(
                "ERR Unknown node {}",
                String::from_utf8_lossy(name)
            ));
        };
        if target == self.myself {
            return cerr("ERR Can't replicate myself");
        }
        if self.nodes.get(&target).is_some_and(|p| p.is_replica()) {
            return cerr("ERR I can only replicate a master, not a replica.");
        }
        let me = self.me();
        if me.is_master() && (me.numslots != 0 || has_keys) {
            return cerr("ERR To set a master the node must be empty and without assigned slots.");
        }
        if self.me().is_master() {
            self.importing.clear();
            self.handed_over.clear();
            self.migrating.clear();
        }
        let myself = self.myself;
        self.reset_manual_failover();
        self.set_replica_role(&myself, target);
        tracing::info!("configured as a replica of {}", wire::name_str(&target));
        self.save = true;
        self.map_dirty = true;
        self.broadcast_pong(now, false);
        self.update_state(now);
        Ok(())
    }

    /// CLUSTER RESET: forget every other node and our slots; HARD also
    /// takes a new name and zeroes the epochs.
    pub fn reset(&mut self, hard: bool, now: u64) {
        let me = self.myself;
        if self.me().is_replica() {
            self.set_master_role(&me);
        }
        self.flush_slots(now);
        self.importing.clear();
        self.handed_over.clear();
        self.migrating.clear();
        let others: Vec<NodeName> = self.nodes.keys().filter(|n| **n != me).copied().collect();
        for n in others {
            self.delete_node(&n);
        }
        if hard {
            self.current_epoch = 0;
            self.last_vote_epoch = 0;
            let new = random_name_from(&mut self.rng);
            self.rename_node(&me, new);
            self.myself = new;
            if let Some(p) = self.nodes.get_mut(&new) {
                p.config_epoch = 0;
            }
        }
        self.save = true;
        self.map_dirty = true;
        self.update_state(now);
    }

    /// CLUSTER BUMPEPOCH: returns whether the epoch changed, and its value.
    pub fn bump_epoch(&mut self) -> (bool, u64) {
        let max = self
            .nodes
            .values()
            .map(|p| p.config_epoch)
            .max()
            .unwrap_or(0);
        let mine = self.me().config_epoch;
        if mine == 0 || mine != max {
            self.current_epoch += 1;
            let e = self.current_epoch;
            self.me_mut().config_epoch = e;
            self.save = true;
            (true, e)
        } else {
            (false, mine)
        }
    }

    /// CLUSTER SET-CONFIG-EPOCH.
    pub fn set_config_epoch(&mut self, epoch: i64) -> Result<(), ClusterError> {
        if epoch < 0 {
            return cerr(format!("ERR Invalid config epoch specified: {epoch}"));
        }
        if self.nodes.len() > 1 {
            return cerr("ERR The user can assign a config epoch only when the node does not know any other node.");
        }
        if self.me().config_epoch != 0 {
            return cerr("ERR Node config epoch is already non-zero");
        }
        let e = epoch as u64;
        self.me_mut().config_epoch = e;
        if self.current_epoch < e {
            self.current_epoch = e;
        }
        self.save = true;
        Ok(())
    }

    /// CLUSTER COUNT-FAILURE-REPORTS node-id.
    pub fn count_failure_reports(&mut self, name: &[u8], now: u64) -> Result<usize, ClusterError> {
        let Some(n) = parse_name_bytes(name).filter(|n| self.known(n)) else {
            return cerr(format!(
                "ERR Unknown node {}",
                String::from_utf8_lossy(name)
            ));
        };
        Ok(self.failure_reports(&n, now))
    }

    /// Slot statistics for CLUSTER INFO: (assigned, ok, pfail, fail).
    pub fn slot_stats(&self) -> (usize, usize, usize, usize) {
        let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
        for o in &self.owners {
            let Some(p) = o.and_then(|n| self.nodes.get(&n)) else {
                continue;
            };
            assigned += 1;
            if p.has(nflag::FAIL) {
                fail += 1;
            } else if p.has(nflag::PFAIL) {
                pfail += 1;
            } else {
                ok += 1;
            }
        }
        (assigned, ok, pfail, fail)
    }

    /// Every slot owner, for the published slot map.
    pub fn owners(&self) -> &[Option<NodeName>] {
        &self.owners
    }
}

#[cold]
fn unreachable_myself() -> ! {
    // The node table is created with myself and myself is never deleted
    // (FORGET refuses it, RESET renames it in place).
    panic!("cluster node table lost its own entry")
}

/// A node name from the machine's (seedable) random source.
fn random_name_from(rng: &mut StdRng) -> NodeName {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = [0u8; NAME_LEN];
    for c in &mut n {
        *c = HEX[rng.gen_range(0..HEX.len())];
    }
    n
}

/// Parses a 40-character node name.
pub fn parse_name(s: &str) -> Option<NodeName> {
    parse_name_bytes(s.as_bytes())
}

pub fn parse_name_bytes(b: &[u8]) -> Option<NodeName> {
    if !wire::valid_name(b) {
        return None;
    }
    let mut n = [0u8; NAME_LEN];
    n.copy_from_slice(b);
    Some(n)
}
