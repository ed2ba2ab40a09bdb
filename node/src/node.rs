//! Node-wide state shared by every connection: configuration, keyspace,
//! write stream, client registry, pub/sub, pause state and statistics.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, Notify};

use crate::config::Config;
use crate::engine::Keyspace;
use crate::pubsub::PubSub;
use crate::stats::Stats;
use crate::stream::WriteStream;

pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How long a thread reuses one reading of the wall clock to turn monotonic
/// instants into Unix milliseconds.
const WALL_CLOCK_REUSE: Duration = Duration::from_millis(20);

thread_local! {
    static WALL_BASE: std::cell::Cell<Option<(crate::clock::Instant, i64)>> =
        const { std::cell::Cell::new(None) };
}

/// The Unix time in milliseconds at `at`, a monotonic instant taken
/// recently. The data path already reads the monotonic clock once per
/// command (for the slowlog); this derives the wall time from it with a
/// wall-clock reading at most [`WALL_CLOCK_REUSE`] old, so a command costs
/// one clock read instead of two. A step of the system clock is seen within
/// that period.
pub fn unix_ms_at(at: crate::clock::Instant) -> i64 {
    WALL_BASE.with(|cell| {
        let (base_at, base_us) = match cell.get() {
            Some((b, us)) if at >= b && at - b < WALL_CLOCK_REUSE => (b, us),
            _ => {
                let fresh = (crate::clock::now(), unix_us());
                cell.set(Some(fresh));
                fresh
            }
        };
        let us = if at >= base_at {
            base_us + (at - base_at).as_micros() as i64
        } else {
            base_us - (base_at - at).as_micros() as i64
        };
        us.div_euclid(1000)
    })
}

fn unix_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Messages delivered to a connection from outside its own command flow.
pub enum Push {
    /// A pub/sub message: kind ("message", "pmessage", "smessage"), the
    /// pattern for pmessage, channel, payload.
    Message {
        kind: &'static str,
        pattern: Option<Bytes>,
        channel: Bytes,
        payload: Bytes,
    },
    /// A MONITOR line (already formatted, without the leading '+').
    Monitor(Bytes),
}

pub mod cflag {
    pub const MULTI: u32 = 1;
    pub const PUBSUB: u32 = 2;
    pub const MONITOR: u32 = 4;
    pub const BLOCKED: u32 = 8;
    pub const NO_EVICT: u32 = 16;
    /// The connection to our master (CLIENT LIST flag M).
    pub const MASTER: u32 = 32;
    /// A replica's connection (CLIENT LIST flag S).
    pub const REPLICA: u32 = 64;
}

/// The part of a client visible to other connections (CLIENT LIST/KILL,
/// pub/sub delivery, MONITOR).
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: i32,
    pub created: Instant,
    pub name: Mutex<Option<Bytes>>,
    pub db: AtomicUsize,
    pub last_interaction_ms: AtomicI64,
    pub last_cmd: Mutex<&'static str>,
    pub flags: AtomicU32,
    pub subs: AtomicUsize,
    pub psubs: AtomicUsize,
    pub ssubs: AtomicUsize,
    pub multi_len: AtomicI64,
    pub resp: AtomicU8,
    pub qbuf: AtomicUsize,
    pub obuf: AtomicUsize,
    /// Bytes queued in `push` and not yet written.
    pub pending_push: AtomicUsize,
    pub killed: AtomicBool,
    pub kill: Notify,
    pub push: mpsc::UnboundedSender<Push>,
}

impl ClientHandle {
    /// A fresh handle with nothing set but its identity and `flags`.
    pub fn new(
        id: u64,
        addr: SocketAddr,
        laddr: SocketAddr,
        fd: i32,
        flags: u32,
        push: mpsc::UnboundedSender<Push>,
    ) -> ClientHandle {
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Default::default(),
            db: Default::default(),
            last_interaction_ms: unix_ms().into(),
            last_cmd: Mutex::new("NULL"),
            flags: flags.into(),
            subs: Default::default(),
            psubs: Default::default(),
            ssubs: Default::default(),
            multi_len: (-1).into(),
            resp: 2.into(),
            qbuf: Default::default(),
            obuf: Default::default(),
            pending_push: Default::default(),
            killed: Default::default(),
            kill: Default::default(),
            push,
        }
    }

    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill.notify_one();
    }
    pub fn has_flag(&self, f: u32) -> bool {
        self.flags.load(Ordering::Relaxed) & f != 0
    }
    pub fn set_flag(&self, f: u32, on: bool) {
        if on {
            self.flags.fetch_or(f, Ordering::Relaxed);
        } else {
            self.flags.fetch_and(!f, Ordering::Relaxed);
        }
    }
}

/// Why clients are paused. Each purpose has its own deadline, so that
/// ending one (a manual failover that completed) never lifts another (an
/// operator's CLIENT PAUSE); clients wait for the strongest in effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PausePurpose {
    /// CLIENT PAUSE / CLIENT UNPAUSE.
    Client = 0,
    /// A graceful shutdown waiting for replicas to catch up.
    Shutdown = 1,
    /// A master paused for a manual failover (MFSTART).
    Failover = 2,
}

/// Client pause state: per purpose, the end (unix ms) and whether all
/// commands (not only writes) wait.
#[derive(Default)]
pub struct Pause {
    until: [Option<(i64, bool)>; 3],
}

impl Pause {
    /// The combined pause: the latest end among those still running and
    /// whether any of them holds every command. Expired entries are dropped.
    fn effective(&mut self, now: i64) -> Option<(i64, bool)> {
        let mut out: Option<(i64, bool)> = None;
        for slot in &mut self.until {
            match *slot {
                Some((u, _)) if u <= now => *slot = None,
                Some((u, a)) => {
                    out = Some(match out {
                        Some((ou, oa)) => (ou.max(u), oa || a),
                        None => (u, a),
                    })
                }
                None => {}
            }
        }
        out
    }
}

#[derive(Clone)]
pub struct SlowlogEntry {
    pub id: u64,
    pub time: i64,
    pub micros: u64,
    pub args: Vec<Bytes>,
    pub addr: String,
    pub name: String,
}

pub struct Node {
    pub config: RwLock<Config>,
    pub config_path: Option<std::path::PathBuf>,
    pub keyspace: Keyspace,
    pub stream: WriteStream,
    pub stats: Stats,
    pub pubsub: PubSub,
    pub clients: Mutex<HashMap<u64, Arc<ClientHandle>>>,
    pub next_client_id: AtomicU64,
    pub monitors: AtomicUsize,
    pub pause: Mutex<Pause>,
    /// Set while a CLIENT PAUSE is in effect.
    pub pause_active: AtomicBool,
    pub unpaused: Notify,
    pub slowlog: Mutex<VecDeque<SlowlogEntry>>,
    pub slowlog_next_id: AtomicU64,
    pub start: Instant,
    pub start_unix_ms: i64,
    pub run_id: String,
    pub lastsave: AtomicI64,
    pub dirty: AtomicU64,
    pub shutdown: Notify,
    pub shutting_down: AtomicBool,
    /// A graceful shutdown in progress (SHUTDOWN, SIGTERM).
    pub shutdown_ctl: crate::shutdown::Control,
    pub port: AtomicU32,
    /// Hot configuration values cached for the data path.
    pub hot: HotConfig,
    /// Cluster mode, when `cluster-enabled yes`.
    pub cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// Role, replication IDs, the master link and attached replicas.
    pub repl: crate::replication::Replication,
    /// Held while a replica applies one command from its master and
    /// passes it on, and while a snapshot starts: a snapshot never sees a
    /// command applied but not yet in the stream.
    pub repl_apply: Mutex<()>,
    /// Where a replica's own executions report their effects: nowhere (the
    /// master's bytes are passed on verbatim instead).
    pub discard: WriteStream,
}

/// Configuration values read on every request, kept in atomics so the data
/// path never takes the configuration lock.
#[derive(Default)]
pub struct HotConfig {
    pub proto_max_bulk_len: AtomicU64,
    pub query_buffer_limit: AtomicU64,
    pub timeout_secs: AtomicU64,
    pub maxclients: AtomicUsize,
    pub requirepass: RwLock<Option<Bytes>>,
    pub slowlog_slower_than: AtomicI64,
    pub slowlog_max_len: AtomicU64,
    pub hz: AtomicU32,
    /// min-replicas-to-write (high 32 bits) and min-replicas-max-lag.
    pub min_replicas: AtomicU64,
    pub replica_read_only: AtomicBool,
    pub replica_serve_stale_data: AtomicBool,
    /// Cleared by DEBUG SET-ACTIVE-EXPIRE 0: only lazy expiry runs.
    pub active_expire: AtomicBool,
    /// `lfu-log-factor`, `lfu-decay-time`, when the policy is an LFU one.
    /// Packed: bit 63 set when enabled, factor in bits 32..63, decay below.
    lfu: AtomicU64,
    limits: RwLock<crate::engine::types::EncodingLimits>,
    /// Polling after requests (`busy-poll-us`).
    pub busy_poll: crate::busy_poll::BusyPoll,
}

impl HotConfig {
    pub fn load(&self, c: &Config) {
        let nonneg = |v: i64| v.max(0) as u64;
        self.proto_max_bulk_len
            .store(nonneg(c.proto_max_bulk_len), Ordering::Relaxed);
        self.query_buffer_limit
            .store(nonneg(c.client_query_buffer_limit), Ordering::Relaxed);
        self.timeout_secs
            .store(nonneg(c.timeout), Ordering::Relaxed);
        self.maxclients
            .store(nonneg(c.maxclients) as usize, Ordering::Relaxed);
        *self.requirepass.write() = if c.requirepass.is_empty() {
            None
        } else {
            Some(Bytes::from(c.requirepass.clone()))
        };
        self.slowlog_slower_than
            .store(c.slowlog_log_slower_than, Ordering::Relaxed);
        self.slowlog_max_len
            .store(nonneg(c.slowlog_max_len), Ordering::Relaxed);
        self.hz.store(c.hz.clamp(1, 500) as u32, Ordering::Relaxed);
        self.busy_poll.set_window_us(nonneg(c.busy_poll_us));
        crate::cmd::server::set_allocator_background_thread(c.jemalloc_bg_thread);
        let to_write = c.min_replicas_to_write.clamp(0, i64::from(u32::MAX)) as u64;
        let lag = c.min_replicas_max_lag.clamp(0, i64::from(u32::MAX)) as u64;
        self.min_replicas
            .store((to_write << 32) | lag, Ordering::Relaxed);
        self.replica_read_only
            .store(c.replica_read_only, Ordering::Relaxed);
        self.replica_serve_stale_data
            .store(c.replica_serve_stale_data, Ordering::Relaxed);
        let packed = if c.maxmemory_policy.as_str().contains("lfu") {
            let factor = c.lfu_log_factor.clamp(0, i64::from(i32::MAX)) as u64;
            let decay = c.lfu_decay_time.clamp(0, i64::from(u32::MAX)) as u64;
            (1 << 63) | (factor << 32) | decay
        } else {
            0
        };
        self.lfu.store(packed, Ordering::Relaxed);
        let u = |v: i64| v.max(0) as usize;
        *self.limits.write() = crate::engine::types::EncodingLimits {
            hash_max_listpack_entries: u(c.hash_max_listpack_entries),
            hash_max_listpack_value: u(c.hash_max_listpack_value),
            list_max_listpack_size: c.list_max_listpack_size,
            set_max_intset_entries: u(c.set_max_intset_entries),
            set_max_listpack_entries: u(c.set_max_listpack_entries),
            set_max_listpack_value: u(c.set_max_listpack_value),
            zset_max_listpack_entries: u(c.zset_max_listpack_entries),
            zset_max_listpack_value: u(c.zset_max_listpack_value),
        };
    }

    /// LFU parameters when the maxmemory policy is an LFU one.
    pub fn lfu(&self) -> Option<crate::engine::table::LfuParams> {
        let v = self.lfu.load(Ordering::Relaxed);
        (v >> 63 == 1).then_some(crate::engine::table::LfuParams {
            log_factor: ((v >> 32) & 0x7fff_ffff) as u32,
            decay_minutes: v as u32,
        })
    }

    /// Encoding thresholds of the collection types.
    pub fn limits(&self) -> crate::engine::types::EncodingLimits {
        *self.limits.read()
    }
}

fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut r = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b"0123456789abcdef"[r.gen_range(0..16)]))
        .collect()
}

impl Node {
    pub fn new(config: Config, config_path: Option<std::path::PathBuf>) -> Arc<Node> {
        let hot = HotConfig::default();
        hot.load(&config);
        hot.active_expire.store(true, Ordering::Relaxed);
        let shards = config.effective_shards();
        let databases = config.databases.max(1) as usize;
        let now = unix_ms();
        Arc::new(Node {
            keyspace: Keyspace::new(shards, databases),
            config: RwLock::new(config),
            config_path,
            stream: WriteStream::default(),
            stats: Stats::default(),
            pubsub: PubSub::default(),
            clients: Mutex::new(HashMap::new()),
            next_client_id: AtomicU64::new(1),
            monitors: AtomicUsize::new(0),
            pause: Mutex::new(Pause::default()),
            pause_active: AtomicBool::new(false),
            unpaused: Notify::new(),
            slowlog: Mutex::new(VecDeque::new()),
            slowlog_next_id: AtomicU64::new(0),
            start: Instant::now(),
            start_unix_ms: now,
            run_id: random_hex(40),
            lastsave: AtomicI64::new(now / 1000),
            dirty: AtomicU64::new(0),
            shutdown: Notify::new(),
            shutdown_ctl: crate::shutdown::Control::default(),
            shutting_down: AtomicBool::new(false),
            port: AtomicU32::new(0),
            hot,
            cluster: std::sync::OnceLock::new(),
            repl: Default::default(),
            repl_apply: Mutex::new(()),
            discard: WriteStream::default(),
        })
    }

    /// The stream a command's effects go to: ours as a master; nowhere as
    /// a replica (see `discard`).
    #[inline]
    pub fn effects_stream(&self) -> &WriteStream {
        if self.repl.is_replica() {
            &self.discard
        } else {
            &self.stream
        }
    }

    /// Masters expire keys; replicas only hide them and wait for the
    /// master's DEL.
    #[inline]
    pub fn expire_policy(&self) -> crate::engine::ExpirePolicy {
        if self.repl.is_replica() || self.writes_paused() {
            crate::engine::ExpirePolicy::Hide
        } else {
            crate::engine::ExpirePolicy::Delete
        }
    }

    /// The LRU clock: seconds, 24 bits, like redis's.
    pub fn lru_clock(&self) -> u32 {
        ((unix_ms() / 1000) as u32) & crate::engine::table::LRU_CLOCK_MAX
    }

    pub fn connected_clients(&self) -> usize {
        self.clients.lock().len()
    }

    /// Starts a pause for `purpose`; a new pause never shortens or weakens
    /// one in effect for the same purpose.
    pub fn pause_until(&self, purpose: PausePurpose, until: i64, all: bool) {
        let mut p = self.pause.lock();
        let slot = &mut p.until[purpose as usize];
        *slot = Some(match *slot {
            Some((u, a)) => (u.max(until), a || all),
            None => (until, all),
        });
        self.pause_active.store(true, Ordering::Release);
    }

    /// Ends the pause of `purpose` (CLIENT UNPAUSE, a manual failover that
    /// completed or timed out) and wakes the clients that no other pause
    /// still holds.
    pub fn unpause(&self, purpose: PausePurpose) {
        let mut p = self.pause.lock();
        p.until[purpose as usize] = None;
        let still = p.effective(unix_ms()).is_some();
        self.pause_active.store(still, Ordering::Release);
        drop(p);
        self.unpaused.notify_waiters();
    }

    /// Whether writes are paused right now for any purpose (active expiry,
    /// lazy-expiry deletions and replication PINGs hold still meanwhile, so
    /// the replication offset does not move).
    pub fn writes_paused(&self) -> bool {
        self.pause_active.load(Ordering::Acquire) && self.paused_for(true).is_some()
    }

    /// Pauses writes for `purpose` until `until` and returns once every
    /// write that began before the pause has finished: taking every shard
    /// lock waits for the writes holding them, and a write that takes its
    /// locks later sees the pause and waits (the barrier in
    /// `cmd::run_with_view` and EXEC). The stream offset read afterwards
    /// is final until the pause ends.
    pub fn pause_writes_and_drain(&self, purpose: PausePurpose, until: i64) -> u64 {
        self.pause_until(purpose, until, false);
        let guards = self.keyspace.lock_all();
        let offset = self.stream.offset();
        drop(guards);
        offset
    }

    /// Whether `purpose` has a pause in effect.
    pub fn paused_by(&self, purpose: PausePurpose) -> bool {
        let p = self.pause.lock();
        p.until[purpose as usize].is_some_and(|(u, _)| u > unix_ms())
    }

    /// Whether a command must wait because of a pause: the time to retry.
    pub fn paused_for(&self, is_write: bool) -> Option<i64> {
        // The data path reads one flag; the lock only while a pause is on.
        if !self.pause_active.load(Ordering::Acquire) {
            return None;
        }
        let mut p = self.pause.lock();
        match p.effective(unix_ms()) {
            Some((until, all)) => (all || is_write).then_some(until),
            None => {
                self.pause_active.store(false, Ordering::Release);
                self.unpaused.notify_waiters();
                None
            }
        }
    }

    /// Sends a MONITOR line to every monitoring client.
    pub fn feed_monitors(&self, db: usize, addr: &str, args: &[Bytes]) {
        let now = unix_ms();
        let mut line = format!(
            "{}.{:06} [{} {}]",
            now / 1000,
            (now % 1000) * 1000,
            db,
            addr
        );
        for a in args {
            line.push_str(" \"");
            for &b in a.iter() {
                match b {
                    b'\\' => line.push_str("\\\\"),
                    b'"' => line.push_str("\\\""),
                    b'\n' => line.push_str("\\n"),
                    b'\r' => line.push_str("\\r"),
                    b'\t' => line.push_str("\\t"),
                    7 => line.push_str("\\a"),
                    8 => line.push_str("\\b"),
                    0x20..=0x7e => line.push(char::from(b)),
                    _ => line.push_str(&format!("\\x{b:02x}")),
                }
            }
            line.push('"');
        }
        let line = Bytes::from(line);
        for c in self.clients.lock().values() {
            if c.has_flag(cflag::MONITOR) {
                let _ = c.push.send(Push::Monitor(line.clone()));
            }
        }
    }
}
