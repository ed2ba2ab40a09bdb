//! Replication, compatible with redis 7.0 in both directions.
//!
//! - [`master`]: serves SYNC/PSYNC on a client connection: a partial
//!   resynchronization from the backlog, or a full one from a fork-less
//!   snapshot ([`crate::engine::snapshot`]) streamed as RDB, then the write
//!   stream.
//! - [`replica`]: the link to our master: handshake, PSYNC, loading a full
//!   synchronization beside the live dataset, then applying the stream.
//! - this module: the node's role, replication IDs and the registry of
//!   attached replicas that INFO, ROLE and WAIT read.

pub mod frame;
pub mod master;
pub mod replica;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::node::{unix_ms, Node};

/// A fresh 40-character replication ID.
pub fn new_replid() -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..40)
        .map(|_| char::from(b"0123456789abcdef"[r.gen_range(0..16)]))
        .collect()
}

/// State of a replica as its master sees it (INFO's `state=`).
pub mod rstate {
    pub const WAIT_BGSAVE: u8 = 0;
    pub const SEND_BULK: u8 = 1;
    pub const ONLINE: u8 = 2;
}

/// One replica attached to this node.
pub struct ReplicaInfo {
    pub client_id: u64,
    pub ip: String,
    pub listening_port: u16,
    pub state: AtomicU8,
    pub ack_offset: AtomicU64,
    /// Unix ms of the last REPLCONF ACK.
    pub last_ack_ms: AtomicI64,
}

impl ReplicaInfo {
    pub fn state_name(&self) -> &'static str {
        match self.state.load(Ordering::Relaxed) {
            rstate::WAIT_BGSAVE => "wait_bgsave",
            rstate::SEND_BULK => "send_bulk",
            _ => "online",
        }
    }
}

/// The link to our master, as INFO and ROLE report it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum LinkState {
    Connect,
    Connecting,
    Handshake,
    Sync,
    Connected,
}

impl LinkState {
    pub fn role_name(self) -> &'static str {
        match self {
            LinkState::Connect => "connect",
            LinkState::Connecting => "connecting",
            LinkState::Handshake => "handshake",
            LinkState::Sync => "sync",
            LinkState::Connected => "connected",
        }
    }
}

/// What a replica knows of its master link.
pub struct MasterLink {
    pub host: String,
    pub port: u16,
    pub state: LinkState,
    /// Unix ms of the last byte received from the master.
    pub last_io_ms: i64,
    /// Unix ms the link went down (or was configured).
    pub down_since_ms: i64,
    /// Full synchronization in progress: bytes expected (-1 unknown) and
    /// read so far.
    pub sync_total: i64,
    pub sync_read: u64,
    /// Stops the link task.
    pub ctl: Arc<replica::LinkCtl>,
}

/// Replication IDs and role.
pub struct ReplIds {
    pub replid: String,
    pub replid2: String,
    /// First offset valid under `replid2` plus one, or -1.
    pub second_offset: i64,
}

pub struct Replication {
    pub ids: Mutex<ReplIds>,
    pub master: Mutex<Option<MasterLink>>,
    /// Set while the node is a replica: the data path reads this flag.
    pub is_replica: AtomicBool,
    /// Set while the link with the master is up and synchronized.
    pub link_up: AtomicBool,
    pub replicas: Mutex<HashMap<u64, Arc<ReplicaInfo>>>,
    /// Woken by every REPLCONF ACK (WAIT).
    pub acked: Notify,
    pub sync_full: AtomicU64,
    pub sync_partial_ok: AtomicU64,
    pub sync_partial_err: AtomicU64,
    /// Peak extra bytes held by the last snapshot (INFO rdb_last_cow_size).
    pub last_cow_size: AtomicU64,
    /// Unix ms since when there is no replica (repl-backlog-ttl).
    pub no_replicas_since_ms: AtomicI64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            ids: Mutex::new(ReplIds {
                replid: new_replid(),
                replid2: "0".repeat(40),
                second_offset: -1,
            }),
            master: Mutex::new(None),
            is_replica: AtomicBool::new(false),
            link_up: AtomicBool::new(false),
            replicas: Mutex::new(HashMap::new()),
            acked: Notify::new(),
            sync_full: AtomicU64::new(0),
            sync_partial_ok: AtomicU64::new(0),
            sync_partial_err: AtomicU64::new(0),
            last_cow_size: AtomicU64::new(0),
            no_replicas_since_ms: AtomicI64::new(unix_ms()),
        }
    }
}

impl Replication {
    #[inline]
    pub fn is_replica(&self) -> bool {
        self.is_replica.load(Ordering::Relaxed)
    }

    /// Replicas whose acknowledged offset is at least `offset`.
    pub fn acked_at_least(&self, offset: u64) -> usize {
        self.replicas
            .lock()
            .values()
            .filter(|r| {
                r.state.load(Ordering::Relaxed) == rstate::ONLINE
                    && r.ack_offset.load(Ordering::Relaxed) >= offset
            })
            .count()
    }

    /// Online replicas that acknowledged within `max_lag` seconds
    /// (min-replicas-to-write).
    pub fn good_replicas(&self, max_lag_secs: i64) -> usize {
        let now = unix_ms();
        self.replicas
            .lock()
            .values()
            .filter(|r| {
                r.state.load(Ordering::Relaxed) == rstate::ONLINE
                    && (now - r.last_ack_ms.load(Ordering::Relaxed)) / 1000 <= max_lag_secs
            })
            .count()
    }
}

/// Makes the node a replica of `target`, or a master when None
/// (REPLICAOF, CLUSTER REPLICATE, CLUSTER RESET). Returns false when
/// nothing changed (already replicating that master).
pub fn set_master(node: &Arc<Node>, target: Option<(String, u16)>) -> bool {
    let repl = &node.repl;
    let mut m = repl.master.lock();
    match target {
        Some((host, port)) => {
            if let Some(cur) = m.as_ref() {
                if cur.host == host && cur.port == port {
                    return false;
                }
                cur.ctl.stop();
            }
            repl.is_replica.store(true, Ordering::Relaxed);
            repl.link_up.store(false, Ordering::Relaxed);
            // Our replicas resynchronize with us once we know our new
            // master's history; our own history is what we offer it.
            node.stream.cut_feeds();
            node.stream.ensure_backlog();
            let ctl = replica::LinkCtl::new();
            tracing::info!("connecting to MASTER {host}:{port}");
            *m = Some(MasterLink {
                host: host.clone(),
                port,
                state: LinkState::Connect,
                last_io_ms: 0,
                down_since_ms: unix_ms(),
                sync_total: -1,
                sync_read: 0,
                ctl: ctl.clone(),
            });
            drop(m);
            let n = node.clone();
            tokio::spawn(async move { replica::run(n, ctl, host, port).await });
            true
        }
        None => {
            let Some(cur) = m.take() else {
                return false;
            };
            cur.ctl.stop();
            drop(m);
            // A new history starts here; the old one stays valid up to our
            // offset, so former siblings continue with a partial resync.
            let offset = node.stream.offset();
            {
                let mut ids = repl.ids.lock();
                ids.replid2 = std::mem::replace(&mut ids.replid, new_replid());
                ids.second_offset = offset as i64 + 1;
                tracing::info!(
                    "MASTER MODE enabled; new replication ID {}, previous {} valid up to offset {}",
                    ids.replid,
                    ids.replid2,
                    offset
                );
            }
            repl.is_replica.store(false, Ordering::Relaxed);
            repl.link_up.store(false, Ordering::Relaxed);
            node.stream.ensure_backlog();
            node.stream.cut_feeds();
            true
        }
    }
}

/// Applies repl-backlog-size and the replica output hard limit to the
/// stream (at start, then every second so CONFIG SET takes effect).
pub fn apply_config(node: &Node) {
    let (size, hard) = {
        let c = node.config.read();
        (
            c.repl_backlog_size.max(16 * 1024) as usize,
            c.client_output_buffer_limit.replica.hard as usize,
        )
    };
    node.stream.configure(size, hard);
}

/// Periodic replication housekeeping (from the server cron, once a
/// second): master PINGs, backlog TTL, replica output limits are checked by
/// the replica sessions themselves.
pub fn cron(node: &Arc<Node>, tick: u64) {
    let repl = &node.repl;
    apply_config(node);
    let (ping_period, backlog_ttl) = {
        let c = node.config.read();
        (c.repl_ping_replica_period.max(1) as u64, c.repl_backlog_ttl)
    };
    let has_replicas = !repl.replicas.lock().is_empty();
    if has_replicas {
        repl.no_replicas_since_ms
            .store(unix_ms(), Ordering::Relaxed);
        if !repl.is_replica() && tick % ping_period == 0 && !node.writes_paused() {
            node.stream.append_nodb(&[b"PING"]);
        }
    } else if !repl.is_replica() && backlog_ttl > 0 {
        let since = repl.no_replicas_since_ms.load(Ordering::Relaxed);
        if node.stream.backlog_info().active && unix_ms() - since > backlog_ttl * 1000 {
            tracing::info!(
                "replication backlog freed after {backlog_ttl} seconds without connected replicas"
            );
            node.stream.drop_backlog();
        }
    }
}

/// The `# Replication` section of INFO.
pub fn info(node: &Node) -> String {
    let repl = &node.repl;
    let mut s = String::new();
    let offset = node.stream.offset();
    if let Some(m) = repl.master.lock().as_ref() {
        let now = unix_ms();
        let up = m.state == LinkState::Connected;
        s.push_str("role:slave\r\n");
        s.push_str(&format!(
            "master_host:{}\r\nmaster_port:{}\r\n",
            m.host, m.port
        ));
        s.push_str(&format!(
            "master_link_status:{}\r\n",
            if up { "up" } else { "down" }
        ));
        let last_io = if m.last_io_ms > 0 {
            (now - m.last_io_ms) / 1000
        } else {
            -1
        };
        s.push_str(&format!("master_last_io_seconds_ago:{last_io}\r\n"));
        let syncing = m.state == LinkState::Sync;
        s.push_str(&format!(
            "master_sync_in_progress:{}\r\n",
            u8::from(syncing)
        ));
        s.push_str(&format!("slave_read_repl_offset:{offset}\r\n"));
        s.push_str(&format!("slave_repl_offset:{offset}\r\n"));
        if syncing {
            s.push_str(&format!(
                "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{}\r\nmaster_sync_left_bytes:{}\r\nmaster_sync_perc:{:.2}\r\nmaster_sync_last_io_seconds_ago:{}\r\n",
                m.sync_total,
                m.sync_read,
                if m.sync_total >= 0 { m.sync_total - m.sync_read as i64 } else { -1 },
                if m.sync_total > 0 { m.sync_read as f64 * 100.0 / m.sync_total as f64 } else { 0.0 },
                last_io.max(0)
            ));
        }
        if !up {
            s.push_str(&format!(
                "master_link_down_since_seconds:{}\r\n",
                (now - m.down_since_ms) / 1000
            ));
        }
        let c = node.config.read();
        s.push_str(&format!(
            "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:1\r\n",
            c.replica_priority,
            u8::from(c.replica_read_only)
        ));
    } else {
        s.push_str("role:master\r\n");
    }
    let replicas: Vec<Arc<ReplicaInfo>> = {
        let mut v: Vec<_> = repl.replicas.lock().values().cloned().collect();
        v.sort_by_key(|r| r.client_id);
        v
    };
    s.push_str(&format!("connected_slaves:{}\r\n", replicas.len()));
    if !repl.is_replica() {
        let c = node.config.read();
        if c.min_replicas_to_write > 0 && c.min_replicas_max_lag > 0 {
            s.push_str(&format!(
                "min_slaves_good_slaves:{}\r\n",
                repl.good_replicas(c.min_replicas_max_lag)
            ));
        }
    }
    let now = unix_ms();
    for (i, r) in replicas.iter().enumerate() {
        s.push_str(&format!(
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            r.ip,
            r.listening_port,
            r.state_name(),
            r.ack_offset.load(Ordering::Relaxed),
            (now - r.last_ack_ms.load(Ordering::Relaxed)) / 1000
        ));
    }
    let ids = repl.ids.lock();
    let b = node.stream.backlog_info();
    s.push_str(&format!(
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\nmaster_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\nrepl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\nrepl_backlog_histlen:{}\r\n",
        ids.replid,
        ids.replid2,
        offset,
        ids.second_offset,
        u8::from(b.active),
        b.size,
        b.first_byte_offset,
        b.histlen
    ));
    s
}
