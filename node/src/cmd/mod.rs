//! Command dispatch: lookup, arity and permission checks, MULTI queueing,
//! shard locking, execution, propagation to the write stream, statistics,
//! slowlog and MONITOR.

pub mod cluster;
pub mod conn;
pub mod hash;
pub mod keys;
pub mod list;
mod migrate;
mod migrate_slots;
pub mod multi;
pub mod pubsub;
pub mod repl;
pub mod server;
pub mod set;
pub mod strings;
pub mod zset;

use crate::engine::{KeyHints, KEY_HINTS_MAX};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::blocking::{BlockSpec, Blocked, TimeoutReply, Waiter};
use crate::cmdspec::{self, flag, CommandSpec};
use crate::engine::{key_slot, View};
use crate::node::{cflag, unix_ms, ClientHandle, Node, SlowlogEntry};
use crate::resp::{Proto, ReplyWriter};

/// An error reply. The text includes the error code word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdError(pub String);

impl CmdError {
    pub fn new(s: impl Into<String>) -> Self {
        CmdError(s.into())
    }
}

pub type CmdResult = Result<(), CmdError>;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const SYNTAX: &str = "ERR syntax error";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const NO_SUCH_KEY: &str = "ERR no such key";

pub fn err<T>(s: &str) -> Result<T, CmdError> {
    Err(CmdError(s.to_string()))
}

/// How a command reaches the keyspace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Does not touch keys.
    None,
    /// Touches the keys named in its arguments (per the command table).
    Keys,
    /// Needs the whole database (KEYS, SCAN, FLUSHDB, EXEC...).
    All,
}

pub type Handler = fn(&mut Ctx) -> CmdResult;

#[derive(Clone, Copy)]
pub struct Entry {
    pub run: Handler,
    pub access: Access,
}

/// Reply mode set by CLIENT REPLY.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ReplyMode {
    #[default]
    On,
    Off,
    Skip,
}

/// A connection's private state.
pub struct Client {
    pub handle: Arc<ClientHandle>,
    pub addr: String,
    pub db: usize,
    pub proto: Proto,
    pub authenticated: bool,
    pub multi: Option<Vec<Vec<Bytes>>>,
    pub multi_error: bool,
    /// Watched keys: (db, key, version, flush epoch).
    pub watched: Vec<(usize, Bytes, u64, u64)>,
    pub subs: hashbrown::HashSet<Bytes>,
    pub psubs: hashbrown::HashSet<Bytes>,
    pub ssubs: hashbrown::HashSet<Bytes>,
    pub reply_mode: ReplyMode,
    pub close_after_reply: bool,
    /// Commands executed since the last statistics flush.
    pub pending_cmds: u64,
    /// Keys made ready for blocked clients by the last command.
    pub ready_keys: Vec<(usize, Bytes)>,
    /// Set while this client stands in for a blocked client being served.
    pub serving_blocked: bool,
    /// While serving a blocked client: the key that became ready (redis
    /// serves a client blocked on several keys from that key).
    pub serving_key: Option<Bytes>,
    /// Set while EXEC runs the queued commands (blocking commands then
    /// behave as if their timeout expired).
    pub in_exec: bool,
    /// ASKING was sent: the next command may touch an importing slot.
    pub asking: bool,
    /// READONLY: reads may be served by a replica.
    pub readonly: bool,
    /// Routing sent this command to a slot in migration: whether it may
    /// run depends on which of its keys exist, judged under the shard
    /// locks (a MIGRATE may be moving them meanwhile).
    pub open_slot: Option<OpenSlot>,
    /// This is the link to our master, applying its stream.
    pub is_master: bool,
    /// REPLCONF facts a replica sent before SYNC/PSYNC.
    pub repl_hello: Option<crate::replication::master::ReplicaHello>,
    /// Unix milliseconds at which the running command started (0 outside
    /// a command): the time its views see.
    pub cmd_now_ms: i64,
    /// The last command name this client sent, exactly as sent, with its
    /// spec: a pipeline repeats one command, and comparing a few bytes is
    /// cheaper than looking the name up.
    cmd_cache: Option<CmdCache>,
}

#[derive(Clone, Copy)]
struct CmdCache {
    name: [u8; CMD_CACHE_NAME],
    len: u8,
    spec: &'static CommandSpec,
}

const CMD_CACHE_NAME: usize = 16;

/// [`resolve`] through the client's one-entry cache of its last command
/// (commands without subcommands only).
fn resolve_cached(
    client: &mut Client,
    args: &[Bytes],
) -> Result<(&'static CommandSpec, &'static CommandSpec), CmdError> {
    let name = &args[0];
    if let Some(c) = &client.cmd_cache {
        if usize::from(c.len) == name.len()
            && c.name[..name.len()] == name[..]
            && arity_ok(c.spec.arity, args.len())
        {
            return Ok((c.spec, c.spec));
        }
    }
    let (top, spec) = resolve(args)?;
    if top.subcommands.is_empty() && name.len() <= CMD_CACHE_NAME {
        let mut c = CmdCache {
            name: [0; CMD_CACHE_NAME],
            len: name.len() as u8,
            spec: top,
        };
        c.name[..name.len()].copy_from_slice(name);
        client.cmd_cache = Some(c);
    }
    Ok((top, spec))
}

impl Client {
    pub fn new(handle: Arc<ClientHandle>, authenticated: bool) -> Client {
        let addr = handle.addr.to_string();
        Client {
            handle,
            addr,
            db: 0,
            proto: Proto::Resp2,
            authenticated,
            multi: None,
            multi_error: false,
            watched: Vec::new(),
            subs: Default::default(),
            psubs: Default::default(),
            ssubs: Default::default(),
            reply_mode: ReplyMode::On,
            close_after_reply: false,
            pending_cmds: 0,
            ready_keys: Vec::new(),
            serving_blocked: false,
            serving_key: None,
            in_exec: false,
            asking: false,
            cmd_cache: None,
            cmd_now_ms: 0,
            readonly: false,
            open_slot: None,
            is_master: false,
            repl_hello: None,
        }
    }

    pub fn sub_count(&self) -> usize {
        self.subs.len() + self.psubs.len() + self.ssubs.len()
    }

    /// RESP2 clients with subscriptions may only run pub/sub commands.
    pub fn in_pubsub_context(&self) -> bool {
        self.proto == Proto::Resp2 && self.sub_count() > 0
    }
}

/// What the connection does after a command.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// Reply written; close the connection.
    Close,
    /// CLIENT PAUSE: retry the command after this unix ms (or when unpaused).
    WaitPause(i64),
    /// Set by a blocking handler that found nothing to serve.
    Block(BlockSpec),
    /// The client is registered as blocked; the connection waits for the
    /// reply or the timeout.
    Blocked(Blocked),
    /// SYNC/PSYNC: the connection becomes a replication session.
    Replicate(crate::replication::master::PsyncRequest),
    /// WAIT: reply with the number of replicas that acknowledged `offset`
    /// once `needed` did or at the deadline.
    /// SHUTDOWN: run the shutdown sequence; the reply (an error) comes
    /// only if it fails or is aborted.
    Shutdown(crate::config::ShutdownFlags),
    WaitReplicas {
        offset: u64,
        needed: usize,
        deadline: Option<std::time::Instant>,
    },
}

/// Everything a command handler works with.
pub struct Ctx<'n, 'c, 'o> {
    pub node: &'n Arc<Node>,
    pub client: &'c mut Client,
    pub args: &'c [Bytes],
    pub out: ReplyWriter<'o>,
    pub view: &'c mut Option<View<'n>>,
    pub spec: &'static CommandSpec,
    pub flow: Flow,
}

impl<'n, 'c, 'o> Ctx<'n, 'c, 'o> {
    /// The locked keyspace view. Handlers declared with `Access::Keys` or
    /// `Access::All` always have one.
    pub fn view(&mut self) -> Result<&mut View<'n>, CmdError> {
        self.view
            .as_mut()
            .ok_or_else(|| CmdError::new("ERR internal error: command ran without its keys locked"))
    }

    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// Blocks the client on `keys` until one of them is served, or the
    /// deadline passes. Inside EXEC the timeout reply is sent at once.
    pub fn block(
        &mut self,
        keys: Vec<Bytes>,
        deadline: Option<std::time::Instant>,
        timeout_reply: TimeoutReply,
    ) -> CmdResult {
        if self.client.in_exec {
            match timeout_reply {
                TimeoutReply::NullArray => self.out.null_array(),
                TimeoutReply::NullBulk => self.out.null(),
            }
            return Ok(());
        }
        self.flow = Flow::Block(BlockSpec {
            keys,
            deadline,
            timeout_reply,
        });
        Ok(())
    }
}

fn table() -> &'static HashMap<&'static str, Entry> {
    static T: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    T.get_or_init(|| {
        let mut m = HashMap::new();
        strings::register(&mut m);
        keys::register(&mut m);
        conn::register(&mut m);
        server::register(&mut m);
        multi::register(&mut m);
        pubsub::register(&mut m);
        hash::register(&mut m);
        list::register(&mut m);
        set::register(&mut m);
        zset::register(&mut m);
        cluster::register(&mut m);
        repl::register(&mut m);
        migrate::register(&mut m);
        migrate_slots::register(&mut m);
        m
    })
}

/// The handlers indexed like the command table (`cmdspec::all()`), so the
/// data path finds a handler without hashing its name.
fn handlers() -> &'static [Option<Entry>] {
    static H: OnceLock<Vec<Option<Entry>>> = OnceLock::new();
    H.get_or_init(|| {
        cmdspec::all()
            .iter()
            .map(|c| table().get(c.name).copied())
            .collect()
    })
}

/// The handler of a top-level command spec.
fn handler(spec: &'static CommandSpec) -> Option<Entry> {
    let all = cmdspec::all();
    let base = all.as_ptr() as usize;
    let at = (spec as *const CommandSpec as usize).wrapping_sub(base)
        / std::mem::size_of::<CommandSpec>().max(1);
    match all.get(at) {
        Some(c) if std::ptr::eq(c, spec) => handlers().get(at).copied().flatten(),
        _ => table().get(spec.name).copied(),
    }
}

/// Whether the command name is implemented (used by COMMAND filtering).
pub fn implemented(name: &str) -> bool {
    table().contains_key(name)
}

fn unknown_command(args: &[Bytes]) -> CmdError {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut s = format!("ERR unknown command '{name}', with args beginning with: ");
    for a in args.iter().skip(1) {
        let a = String::from_utf8_lossy(a);
        let a: String = a.chars().take(128).collect();
        s.push_str(&format!("'{a}' "));
        if s.len() > 2048 {
            break;
        }
    }
    CmdError(s)
}

fn arity_ok(arity: i32, n: usize) -> bool {
    let n = n as i32;
    (arity > 0 && arity == n) || (arity < 0 && n >= -arity)
}

/// Resolves the command (and container subcommand) specification, checking
/// arity. Returns the spec whose flags apply.
pub fn resolve(args: &[Bytes]) -> Result<(&'static CommandSpec, &'static CommandSpec), CmdError> {
    let spec = cmdspec::lookup(&args[0]).ok_or_else(|| unknown_command(args))?;
    if !spec.subcommands.is_empty() && args.len() >= 2 {
        let sub = spec.subcommands.iter().find(|s| {
            let short = s.name.rsplit('|').next().unwrap_or(s.name);
            short.as_bytes().eq_ignore_ascii_case(&args[1])
        });
        return match sub {
            Some(sub) => {
                if !arity_ok(sub.arity, args.len()) {
                    return Err(CmdError(format!(
                        "ERR wrong number of arguments for '{}' command",
                        sub.name
                    )));
                }
                Ok((spec, sub))
            }
            None => Err(CmdError(format!(
                "ERR unknown subcommand '{}'. Try {} HELP.",
                String::from_utf8_lossy(&args[1])
                    .chars()
                    .take(128)
                    .collect::<String>(),
                spec.name.to_ascii_uppercase()
            ))),
        };
    }
    if !arity_ok(spec.arity, args.len()) {
        return Err(CmdError(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        )));
    }
    Ok((spec, spec))
}

/// Commands a client in MULTI runs immediately instead of queueing.
fn runs_in_multi(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

fn allowed_in_pubsub(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

/// The shards a command's keys live on, sorted and deduplicated, and the
/// slots of its key arguments (hints for the view).
fn shards_for<'a>(
    node: &Node,
    spec: &CommandSpec,
    args: &'a [Bytes],
) -> (SmallVec<[usize; 4]>, KeyHints) {
    let mut ids: SmallVec<[usize; 4]> = SmallVec::new();
    let mut hints: KeyHints = SmallVec::new();
    let mut prev: Option<(&[u8], usize)> = None;
    let mut add = |k: &'a Bytes| {
        // A key repeated (MSET k v k v...) is hashed once.
        let slot = match prev {
            Some((p, s)) if p == &k[..] => s,
            _ => key_slot(k),
        };
        prev = Some((&k[..], slot));
        ids.push(node.keyspace.shard_of_slot(slot));
        if hints.len() < KEY_HINTS_MAX {
            if let Ok(len) = u32::try_from(k.len()) {
                hints.push((k.as_ptr() as usize, len, slot as u16));
            }
        }
    };
    // Fast path for the common single-key form (GET, SET, INCR...): no
    // allocation, no key-spec walk.
    if spec.first_key == 1 && spec.last_key == 1 && spec.flags & flag::MOVABLEKEYS == 0 {
        if let Some(k) = args.get(1) {
            add(k);
        }
        return (ids, hints);
    }
    if let Some(range) = legacy_key_range(spec, args.len()) {
        for i in range {
            if let Some(k) = args.get(i) {
                add(k);
            }
        }
    } else if let Ok(idx) = cmdspec::key_indices(spec, args) {
        for i in idx {
            if let Some(k) = args.get(i) {
                add(k);
            }
        }
    }
    ids.sort_unstable();
    ids.dedup();
    (ids, hints)
}

/// The positions of a command's keys from its (first, last, step) range,
/// when that range is exact: the command's keys do not move
/// (`movablekeys`), it has no subcommands and no key spec names a channel
/// instead of a key. MSET, MGET, DEL and the like take this path, which
/// allocates nothing (the key-spec walk builds vectors).
pub(crate) fn legacy_key_range(
    spec: &CommandSpec,
    argc: usize,
) -> Option<std::iter::StepBy<std::ops::RangeInclusive<usize>>> {
    if spec.flags & flag::MOVABLEKEYS != 0
        || !spec.subcommands.is_empty()
        || spec.first_key <= 0
        // SPUBLISH and friends: the range names a channel, not a key.
        || spec
            .key_specs
            .iter()
            .any(|k| k.flags & cmdspec::key::NOT_KEY != 0)
    {
        return None;
    }
    let first = spec.first_key as usize;
    let last = if spec.last_key < 0 {
        (argc as i64 + i64::from(spec.last_key)).max(0) as usize
    } else {
        spec.last_key as usize
    };
    let step = usize::try_from(spec.step).ok().filter(|&s| s > 0)?;
    Some((first..=last.min(argc.saturating_sub(1))).step_by(step))
}

/// The one shard a command's keys live on, when it touches keys of a
/// single shard and nothing else (a replica applies such commands from
/// different shards in parallel). None for anything else.
pub fn single_shard(node: &Node, args: &[Bytes]) -> Option<usize> {
    let (top, spec) = resolve(args).ok()?;
    let entry = handler(top)?;
    if entry.access != Access::Keys || spec.flags & flag::BLOCKING != 0 {
        return None;
    }
    let (ids, _) = shards_for(node, spec, args);
    match ids.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Cluster routing, as redis's getNodeByQuery: the error to reply instead
/// of running the command, or None to run it here. Commands without keys
/// run locally; EXEC is judged over its whole queue.
fn route(
    c: &crate::cluster::Cluster,
    client: &mut Client,
    spec: &CommandSpec,
    args: &[Bytes],
) -> Option<String> {
    use crate::cluster::slotmap::Route;
    let is_exec = spec.name == "exec";
    if !is_exec && spec.first_key == 0 && spec.flags & flag::MOVABLEKEYS == 0 {
        return None;
    }
    let mut slot: Option<usize> = None;
    let mut is_write = false;
    let map = c.map();
    let routed = if is_exec {
        client
            .multi
            .iter()
            .flatten()
            .filter_map(|q| resolve(q).ok().map(|(_, qs)| (qs, q)))
            .try_for_each(|(qs, q)| route_keys(&map, qs, q, &mut slot, &mut is_write))
    } else {
        route_keys(&map, spec, args, &mut slot, &mut is_write)
    };
    if let Err(e) = routed {
        return Some(e.to_string());
    }
    let slot = slot?;
    if !map.ok {
        let (reads_ok, shard_ok) = c.when_down();
        let pubsub_shard = matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe");
        if pubsub_shard {
            if !shard_ok {
                return Some("CLUSTERDOWN The cluster is down".to_string());
            }
        } else if !reads_ok {
            return Some("CLUSTERDOWN The cluster is down".to_string());
        } else if is_write {
            return Some(
                "CLUSTERDOWN The cluster is down and only accepts read commands".to_string(),
            );
        }
    }
    if map.has_open_slots() {
        let is_migrate = spec.name == "migrate";
        if let (Route::Local, Some(to)) = (map.route(slot), map.migrating_to(slot)) {
            // MIGRATE always runs where the slot is open.
            if !is_migrate {
                client.open_slot = Some(OpenSlot {
                    slot,
                    ask: Some(to.to_string()),
                });
            }
            return None;
        }
        if map.importing(slot) {
            if is_migrate {
                return None;
            }
            if client.asking || spec.flags & flag::ASKING != 0 {
                client.open_slot = Some(OpenSlot { slot, ask: None });
                return None;
            }
        }
    }
    match map.route(slot) {
        Route::Local => None,
        Route::Unbound => Some("CLUSTERDOWN Hash slot not served".to_string()),
        Route::Moved(ep) => Some(format!("MOVED {slot} {ep}")),
        // A replica serves its master's slots to READONLY clients' reads.
        Route::Master(_) if client.readonly && !is_write => None,
        Route::Master(ep) => Some(format!("MOVED {slot} {ep}")),
    }
}

/// A command routed to a slot that is migrating away (`ask` names the
/// target) or being imported (ASKING was sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenSlot {
    pub slot: usize,
    pub ask: Option<String>,
}

impl OpenSlot {
    /// The redirection, if any, for commands on this slot given which of
    /// their keys exist (db 0, as cluster mode has no other): on the
    /// source, keys all missing go to the target (`-ASK`); on either side
    /// a request whose keys are split between the nodes cannot run
    /// anywhere until the migration moves on (`-TRYAGAIN`).
    pub fn verdict<'a>(
        &self,
        view: &mut View<'_>,
        cmds: impl Iterator<Item = (&'static CommandSpec, &'a [Bytes])>,
    ) -> Option<String> {
        let (mut existing, mut missing) = (0usize, 0usize);
        let mut first: Option<&[u8]> = None;
        let mut multiple = false;
        let db = std::mem::replace(&mut view.db, 0);
        for (spec, args) in cmds {
            // Shard channels stay with the source until the slot moves.
            if matches!(spec.name, "spublish" | "ssubscribe" | "sunsubscribe") {
                continue;
            }
            for i in routing_keys(spec, args) {
                let Some(k) = args.get(i) else { continue };
                match first {
                    None => first = Some(&k[..]),
                    Some(f) if f != &k[..] => multiple = true,
                    Some(_) => {}
                }
                if view.lookup_quiet(k) {
                    existing += 1;
                } else {
                    missing += 1;
                }
            }
        }
        view.db = db;
        if missing == 0 {
            return None;
        }
        match &self.ask {
            Some(_) if existing > 0 => Some(TRYAGAIN.to_string()),
            Some(to) => Some(format!("ASK {} {to}", self.slot)),
            None if multiple => Some(TRYAGAIN.to_string()),
            None => None,
        }
    }
}

const TRYAGAIN: &str = "TRYAGAIN Multiple keys request during rehashing of slot";

/// Folds a command's keys into the slot of the request, as redis's
/// getNodeByQuery: the first key's slot must be served, and every other
/// key must hash to it.
fn route_keys(
    map: &crate::cluster::slotmap::SlotMap,
    spec: &CommandSpec,
    args: &[Bytes],
    slot: &mut Option<usize>,
    is_write: &mut bool,
) -> Result<(), &'static str> {
    let idx = routing_keys(spec, args);
    if !idx.is_empty() && spec.flags & flag::WRITE != 0 {
        *is_write = true;
    }
    for i in idx {
        let Some(k) = args.get(i) else { continue };
        let s = key_slot(k);
        match *slot {
            None => {
                if map.route(s) == crate::cluster::slotmap::Route::Unbound {
                    return Err("CLUSTERDOWN Hash slot not served");
                }
                *slot = Some(s);
            }
            Some(first) if first != s => {
                return Err("CROSSSLOT Keys in request don't hash to the same slot")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The arguments a command is routed by: its keys, or the shard channels
/// of SPUBLISH / SSUBSCRIBE / SUNSUBSCRIBE.
fn routing_keys(spec: &CommandSpec, args: &[Bytes]) -> SmallVec<[usize; 4]> {
    match spec.name {
        "spublish" => smallvec::smallvec![1],
        "ssubscribe" | "sunsubscribe" => (1..args.len()).collect(),
        _ if spec.first_key == 1 && spec.last_key == 1 && spec.flags & flag::MOVABLEKEYS == 0 => {
            smallvec::smallvec![1]
        }
        _ => cmdspec::key_indices(spec, args)
            .unwrap_or_default()
            .into_iter()
            .collect(),
    }
}

/// Builds a view over the given shards for a client.
// Inlined so that the view is written straight into the caller's slot:
// returning it cost a 264-byte memcpy per command.
#[inline(always)]
pub fn make_view<'a>(
    node: &'a Node,
    client: &Client,
    guards: crate::engine::Guards<'a>,
) -> View<'a> {
    let now = if client.cmd_now_ms > 0 {
        client.cmd_now_ms
    } else {
        unix_ms()
    };
    let mut v = View::new(
        &node.keyspace,
        guards,
        client.db,
        now,
        ((now / 1000) as u32) & crate::engine::table::LRU_CLOCK_MAX,
        node.effects_stream(),
        &node.stats,
        if client.is_master {
            crate::engine::ExpirePolicy::Ignore
        } else {
            node.expire_policy()
        },
    );
    v.lfu = node.hot.lfu();
    v
}

/// A view for the server's own work (serving blocked clients, cluster
/// housekeeping) over database `db`, outside any client.
pub fn system_view<'a>(node: &'a Node, guards: crate::engine::Guards<'a>, db: usize) -> View<'a> {
    View::new(
        &node.keyspace,
        guards,
        db,
        unix_ms(),
        node.lru_clock(),
        node.effects_stream(),
        &node.stats,
        node.expire_policy(),
    )
}

/// Refuses a command before running it, like redis's `rejectCommand`: an
/// open transaction is flagged (EXEC will fail), and a refused EXEC aborts
/// the transaction with an EXECABORT error.
fn reject(node: &Arc<Node>, client: &mut Client, args: &[Bytes], w: &mut ReplyWriter, msg: &str) {
    if client.multi.is_some() {
        client.multi_error = true;
    }
    if eq_ic(&args[0], "exec") {
        multi::discard_state(node, client);
        multi::unwatch_all(node, client);
        let why = msg.strip_prefix("ERR ").unwrap_or(msg);
        w.error(&format!(
            "EXECABORT Transaction discarded because of: {why}"
        ));
    } else {
        w.error(msg);
    }
}

/// Refusals that depend on the replication role, as redis's
/// processCommand: writes on a read-only replica, anything but a few
/// commands while a replica's link is down and replica-serve-stale-data
/// is off, and writes on a master short of min-replicas-to-write good
/// replicas.
fn replication_check(node: &Node, client: &Client, spec: &CommandSpec) -> Option<&'static str> {
    if client.is_master {
        return None;
    }
    let write = spec.flags & flag::WRITE != 0;
    if node.repl.is_replica() {
        if write && node.hot.replica_read_only.load(Ordering::Relaxed) {
            return Some("READONLY You can't write against a read only replica.");
        }
        if !node.hot.replica_serve_stale_data.load(Ordering::Relaxed)
            && !node.repl.link_up.load(Ordering::Relaxed)
            && spec.flags & flag::STALE == 0
        {
            return Some(
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
            );
        }
        return None;
    }
    if write {
        let m = node.hot.min_replicas.load(Ordering::Relaxed);
        let (to_write, lag) = ((m >> 32) as usize, (m & 0xffff_ffff) as i64);
        if to_write > 0 && lag > 0 && node.repl.good_replicas(lag) < to_write {
            return Some("NOREPLICAS Not enough good replicas to write.");
        }
    }
    None
}

/// Executes one request and writes its reply into `out`.
pub fn dispatch(
    node: &Arc<Node>,
    client: &mut Client,
    args: &[Bytes],
    out: &mut bytes::BytesMut,
) -> Flow {
    dispatch_at(node, client, args, out, crate::clock::now()).0
}

/// [`dispatch`] for a command that started at `started`, which a caller
/// running a pipeline takes from the end of the previous command (one
/// clock read per command). Returns the flow and the instant it ended.
pub fn dispatch_at(
    node: &Arc<Node>,
    client: &mut Client,
    args: &[Bytes],
    out: &mut bytes::BytesMut,
    started: crate::clock::Instant,
) -> (Flow, crate::clock::Instant) {
    client.cmd_now_ms = crate::node::unix_ms_at(started);
    let flow = dispatch_inner(node, client, args, out, started);
    client.cmd_now_ms = 0;
    flow
}

fn dispatch_inner(
    node: &Arc<Node>,
    client: &mut Client,
    args: &[Bytes],
    out: &mut bytes::BytesMut,
    started: crate::clock::Instant,
) -> (Flow, crate::clock::Instant) {
    let mut w = ReplyWriter::new(out, client.proto);
    client.pending_cmds += 1;
    let (top, spec) = match resolve_cached(client, args) {
        Ok(s) => s,
        Err(e) => {
            node.stats
                .total_error_replies
                .fetch_add(1, Ordering::Relaxed);
            reject(node, client, args, &mut w, &e.0);
            return (Flow::Continue, started);
        }
    };
    let name = top.name;
    if !client.authenticated && spec.flags & flag::NO_AUTH == 0 {
        reject(
            node,
            client,
            args,
            &mut w,
            "NOAUTH Authentication required.",
        );
        return (Flow::Continue, started);
    }
    if client.in_pubsub_context() && !allowed_in_pubsub(name) {
        let msg = format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        );
        reject(node, client, args, &mut w, &msg);
        return (Flow::Continue, started);
    }
    let Some(entry) = handler(top) else {
        if client.multi.is_some() {
            client.multi_error = true;
        }
        w.error(&unknown_command(args).0);
        return (Flow::Continue, started);
    };
    if let (Some(c), false) = (node.cluster.get(), client.is_master) {
        client.open_slot = None;
        if let Some(e) = route(c, client, spec, args) {
            node.stats
                .total_error_replies
                .fetch_add(1, Ordering::Relaxed);
            if name == "exec" {
                multi::discard_state(node, client);
                multi::unwatch_all(node, client);
            } else if client.multi.is_some() {
                client.multi_error = true;
            }
            w.error(&e);
            client.asking = false;
            return (Flow::Continue, started);
        }
        // ASKING holds for the next command, or for a whole transaction
        // when sent before MULTI (redis clears it after a command unless
        // a transaction is open or the command was ASKING).
        let keep = name == "asking"
            || name == "multi"
            || (client.multi.is_some() && name != "exec" && name != "discard");
        if !keep {
            client.asking = false;
        }
    }
    if client.multi.is_some() && !runs_in_multi(name) {
        if spec.flags & flag::NO_MULTI != 0 {
            reject(
                node,
                client,
                args,
                &mut w,
                "ERR Command not allowed inside a transaction",
            );
            return (Flow::Continue, started);
        }
        if let Some(q) = client.multi.as_mut() {
            q.push(args.to_vec());
            client
                .handle
                .multi_len
                .store(q.len() as i64, Ordering::Relaxed);
        }
        w.simple("QUEUED");
        return (Flow::Continue, started);
    }
    if let Some(e) = replication_check(node, client, spec) {
        node.stats
            .total_error_replies
            .fetch_add(1, Ordering::Relaxed);
        reject(node, client, args, &mut w, e);
        return (Flow::Continue, started);
    }
    let is_write = pausable_write(client, spec);
    if !client.is_master {
        if let Some(until) = node.paused_for(is_write) {
            return (Flow::WaitPause(until), started);
        }
    }
    let flow = {
        // Dropped in place at the end of this block (releasing the shard
        // locks): `drop(view)` would first move it, a 264-byte memcpy.
        let mut view = None;
        run_with_view(node, client, args, &mut w, spec, entry, &mut view)
    };
    if !client.ready_keys.is_empty() {
        let ready = std::mem::take(&mut client.ready_keys);
        serve_ready(node, ready);
    }
    let ended = crate::clock::now();
    let micros = ended.saturating_duration_since(started).as_micros() as u64;
    after_call(node, client, args, spec, micros);
    (flow, ended)
}

/// Whether a client pause of writes holds this command: writes, commands
/// that may replicate (PUBLISH), and an EXEC whose queue holds one.
fn pausable_write(client: &Client, spec: &CommandSpec) -> bool {
    const W: u64 = flag::WRITE | flag::MAY_REPLICATE;
    if spec.flags & W != 0 {
        return true;
    }
    spec.name == "exec"
        && client.multi.as_ref().is_some_and(|q| {
            q.iter()
                .any(|a| crate::cmdspec::lookup_args(a).is_some_and(|s| s.flags & W != 0))
        })
}

/// Runs a resolved command, locking its shards unless a view is supplied
/// (EXEC supplies one covering every shard). Returns the view so that EXEC
/// can reuse it for the next queued command.
#[allow(clippy::too_many_arguments)]
pub fn run_with_view<'n>(
    node: &'n Arc<Node>,
    client: &mut Client,
    args: &[Bytes],
    w: &mut ReplyWriter<'_>,
    spec: &'static CommandSpec,
    entry: Entry,
    view: &mut Option<View<'n>>,
) -> Flow {
    // The view is built in place and stays in the caller's slot: it is a
    // few hundred bytes, and moving it in and out per command showed up as
    // memcpy in profiles of pipelined traffic.
    if view.is_none() {
        match entry.access {
            Access::None => {}
            Access::Keys => {
                let (ids, hints) = shards_for(node, spec, args);
                let guards = node.keyspace.lock(&ids);
                let v = view.insert(make_view(node, client, guards));
                v.key_hints = hints;
            }
            Access::All => *view = Some(make_view(node, client, node.keyspace.lock_all())),
        }
    }
    // A slot in migration: whether this command runs here is decided now
    // that its keys' shards are locked. EXEC judges its queue itself.
    if client.open_slot.is_some() && spec.name != "exec" {
        if let Some(os) = client.open_slot.take() {
            let verdict = match view.as_mut() {
                Some(v) => os.verdict(v, std::iter::once((spec, args))),
                None => {
                    let (ids, _) = shards_for(node, spec, args);
                    let mut v = make_view(node, client, node.keyspace.lock(&ids));
                    os.verdict(&mut v, std::iter::once((spec, args)))
                }
            };
            if let Some(e) = verdict {
                node.stats
                    .total_error_replies
                    .fetch_add(1, Ordering::Relaxed);
                ReplyWriter::new(w.buf, client.proto).error(&e);
                return Flow::Continue;
            }
        }
    }
    // The write barrier of a pause: a write that passed the pause check
    // just before a pause began must not run after it. Whoever starts a
    // pause and then takes the shard locks (see `Node::write_barrier`)
    // knows every write that got its locks earlier is finished and every
    // later one waits here, so the replication offset it reads is final.
    if view.is_some()
        && !client.is_master
        && spec.flags & (flag::WRITE | flag::MAY_REPLICATE) != 0
        && node.pause_active.load(Ordering::Acquire)
    {
        if let Some(until) = node.paused_for(true) {
            *view = None;
            return Flow::WaitPause(until);
        }
    }
    let out = ReplyWriter::new(w.buf, client.proto);
    let mut ctx = Ctx {
        node,
        client,
        args,
        out,
        view,
        spec,
        flow: Flow::Continue,
    };
    let res = (entry.run)(&mut ctx);
    let Ctx { flow, mut out, .. } = ctx;
    // The hints point into `args`: never let them outlive this command.
    if let Some(v) = view.as_mut() {
        v.key_hints.clear();
    }
    if let Err(e) = res {
        node.stats
            .total_error_replies
            .fetch_add(1, Ordering::Relaxed);
        out.error(&e.0);
    }
    if let Some(v) = view.as_mut() {
        if v.dirty > 0 {
            node.dirty.fetch_add(v.dirty, Ordering::Relaxed);
            if !v.propagated && spec.flags & flag::WRITE != 0 {
                v.stream.append(v.db, args);
            }
        }
        v.dirty = 0;
        v.propagated = false;
    }
    let flow = match flow {
        Flow::Block(spec) if !client.serving_blocked => match view.as_mut() {
            Some(v) => {
                // Registered while the keys' shards are still locked: no
                // push can fall between the failed attempt and this point.
                let id = NEXT_WAITER.fetch_add(1, Ordering::Relaxed);
                let (waiter, rx) = Waiter::new(
                    id,
                    client.db,
                    args.to_vec(),
                    client.proto,
                    client.handle.clone(),
                );
                v.register_waiter(&waiter, &spec.keys);
                Flow::Blocked(Blocked {
                    waiter,
                    keys: spec.keys,
                    rx,
                    deadline: spec.deadline,
                    timeout_reply: spec.timeout_reply,
                })
            }
            None => {
                out.error("ERR internal error: blocking command without keys");
                Flow::Continue
            }
        },
        other => other,
    };
    if let Some(v) = view.as_mut() {
        client.ready_keys.append(&mut v.ready);
    }
    flow
}

static NEXT_WAITER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Serves the clients blocked on keys that the last command made ready, in
/// the order they blocked. Runs with every shard locked, so a waiter's
/// command (BLMOVE's destination, for one) can touch any key.
pub fn serve_ready(node: &Arc<Node>, ready: Vec<(usize, Bytes)>) {
    let mut view = Some(system_view(node, node.keyspace.lock_all(), 0));
    let mut queue: std::collections::VecDeque<(usize, Bytes)> = ready.into();
    while let Some((db, key)) = queue.pop_front() {
        loop {
            let Some(v) = view.as_mut() else { return };
            let Some(w) = v.front_waiter(db, &key) else {
                break;
            };
            if !w.try_claim() {
                v.remove_waiter(db, &key, w.id);
                continue;
            }
            let Ok((top, spec)) = resolve(&w.args) else {
                w.deliver(Bytes::from_static(b"-ERR internal error\r\n"));
                continue;
            };
            let Some(entry) = table().get(top.name).copied() else {
                w.deliver(Bytes::from_static(b"-ERR internal error\r\n"));
                continue;
            };
            let mut stand_in = Client::new(w.handle.clone(), true);
            stand_in.db = w.db;
            stand_in.proto = w.proto;
            stand_in.serving_blocked = true;
            stand_in.serving_key = Some(key.clone());
            let mut buf = bytes::BytesMut::new();
            let mut wr = ReplyWriter::new(&mut buf, w.proto);
            if let Some(c) = view.as_mut() {
                c.db = w.db;
            }
            let flow = run_with_view(
                node,
                &mut stand_in,
                &w.args,
                &mut wr,
                spec,
                entry,
                &mut view,
            );
            if matches!(flow, Flow::Block(_)) {
                // Nothing left for this key after all.
                w.unclaim();
                break;
            }
            if let Some(v) = view.as_mut() {
                v.remove_waiter(db, &key, w.id);
            }
            w.deliver(buf.freeze());
            queue.extend(stand_in.ready_keys.drain(..));
        }
    }
}

/// Bookkeeping after a command: slowlog and MONITOR.
pub fn after_call(node: &Node, client: &Client, args: &[Bytes], spec: &CommandSpec, micros: u64) {
    let slower = node.hot.slowlog_slower_than.load(Ordering::Relaxed);
    if slower >= 0 && micros as i64 >= slower && spec.flags & flag::SKIP_SLOWLOG == 0 {
        let max = node.hot.slowlog_max_len.load(Ordering::Relaxed) as usize;
        let mut log = node.slowlog.lock();
        let id = node.slowlog_next_id.fetch_add(1, Ordering::Relaxed);
        let mut argv: Vec<Bytes> = args
            .iter()
            .take(31)
            .map(|a| {
                if a.len() > 128 {
                    let mut v = a[..128].to_vec();
                    v.extend_from_slice(format!("... ({} more bytes)", a.len() - 128).as_bytes());
                    Bytes::from(v)
                } else {
                    a.clone()
                }
            })
            .collect();
        if args.len() > 32 {
            argv.push(Bytes::from(format!(
                "... ({} more arguments)",
                args.len() - 31
            )));
        } else if args.len() == 32 {
            argv.push(args[31].clone());
        }
        log.push_front(SlowlogEntry {
            id,
            time: unix_ms() / 1000,
            micros,
            args: argv,
            addr: client.addr.clone(),
            name: client
                .handle
                .name
                .lock()
                .as_ref()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .unwrap_or_default(),
        });
        log.truncate(max);
    }
    if node.monitors.load(Ordering::Relaxed) > 0
        && spec.flags & flag::SKIP_MONITOR == 0
        && !client.handle.has_flag(cflag::MONITOR)
    {
        node.feed_monitors(client.db, &client.addr, args);
    }
    *client.handle.last_cmd.lock() = spec.name;
}

/// Parses an integer argument as redis's string2ll: no spaces, no '+',
/// no leading zeros except "0".
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    if b == b"0" {
        return Some(0);
    }
    let (neg, digits) = if b[0] == b'-' {
        (true, &b[1..])
    } else {
        (false, b)
    };
    if digits.is_empty() || digits[0] == b'0' {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let x = i64::from(d - b'0');
        v = if neg {
            v.checked_mul(10)?.checked_sub(x)?
        } else {
            v.checked_mul(10)?.checked_add(x)?
        };
    }
    Some(v)
}

pub fn int_arg(b: &[u8]) -> Result<i64, CmdError> {
    parse_i64(b).ok_or_else(|| CmdError::new(NOT_INTEGER))
}

/// Parses a float like redis's string2ld/strtold: no spaces, accepts inf.
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty() || s.starts_with(char::is_whitespace) || s.ends_with(char::is_whitespace) {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => {
            if lower.contains("nan") || lower.starts_with("0x") || lower.contains("inf") {
                return None;
            }
            s.parse::<f64>().ok()?
        }
    };
    if v.is_nan() {
        return None;
    }
    Some(v)
}

/// Writes a HELP reply: one status line per entry.
pub fn reply_lines(out: &mut ReplyWriter, lines: &[&str]) {
    out.array(lines.len());
    for l in lines {
        out.simple(l);
    }
}

pub fn eq_ic(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}
