//! MIGRATESLOTS: the fast path for moving whole slots to another master.
//!
//! `MIGRATESLOTS host port timeout [AUTH password | AUTH2 username password]
//! SLOTSRANGE start end [start end ...]`, sent to the source master, moves
//! every key of the slots to the target master and hands the slots over.
//! It follows the standard protocol, so the target may be a shardline-node
//! or a redis-server and clients see what they see during a redis-cli
//! reshard (a key is served by the source until it moves, then `-ASK`):
//!
//! 1. `CLUSTER SETSLOT s IMPORTING <us>` on the target, for a group of
//!    slots in one pipeline, then MIGRATING here.
//! 2. The keys move in batches (up to [`BATCH_KEYS`] keys or
//!    [`BATCH_BYTES`] of payload) of pipelined `RESTORE-ASKING ... REPLACE`,
//!    each batch taken from one shard across as many of the group's slots
//!    as fit. The shard stays locked for the batch's round trip, as MIGRATE
//!    holds its keys: a key is never on both nodes or on neither.
//! 3. `CLUSTER SETSLOT s NODE <target>` on the target (which bumps its
//!    configEpoch, so the change wins everywhere by gossip), then here.
//!
//! redis-cli moves a slot with some six round trips plus one MIGRATE per
//! ten keys; this moves a group of slots in three pipelines plus one round
//! trip per batch. The reply is the number of keys moved. An error leaves
//! the slots in flight open, like an interrupted redis-cli reshard: run the
//! command again (slots the target already owns are skipped, open ones are
//! finished), or repair with `redis-cli --cluster fix`.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::migrate::{array, blocking, bulk, connect, io_error, read_line, ConnectFail};
use super::{eq_ic, err, int_arg, Access, CmdError, CmdResult, Ctx, Entry, SYNTAX};
use crate::cluster::machine::{parse_name_bytes, SetSlot};
use crate::cluster::wire::{self, SLOTS};
use crate::cluster::Cluster;
use crate::engine::ValueRef;
use crate::node::{unix_ms, Node};
use crate::rdb::dump_payload;

pub fn register(m: &mut HashMap<&'static str, Entry>) {
    m.insert(
        "migrateslots",
        Entry {
            run: migrate_slots,
            access: Access::None,
        },
    );
    m.insert(
        "migrateslots.set",
        Entry {
            run: migrated_set,
            access: Access::Keys,
        },
    );
}

/// `MIGRATESLOTS.SET key ttl value`: a string key moved here by
/// MIGRATESLOTS from another shardline-node, replacing any key of that
/// name; `ttl` in milliseconds from now, 0 for none. Like RESTORE-ASKING
/// it may write to an importing slot. Strings make up most datasets, and
/// sending them raw spares both nodes the DUMP envelope: building and
/// verifying its CRC64 was a quarter of the target's CPU when moving 16 KB
/// values. The stream between the two nodes is TCP, as replication is.
fn migrated_set(ctx: &mut Ctx) -> CmdResult {
    let args = ctx.args;
    let (key, value) = (&args[1], &args[3]);
    let ttl = int_arg(&args[2])?;
    if ttl < 0 {
        return err("ERR Invalid TTL value, must be >= 0");
    }
    let view = ctx.view()?;
    view.set_str(key, value, false);
    if ttl > 0 {
        let at = view.now_ms.saturating_add(ttl);
        view.set_expire(key, Some(at));
        let at = itoa::Buffer::new().format(at).as_bytes().to_vec();
        view.propagate(&[b"SET", key, value, b"PXAT", &at]);
    } else {
        view.propagate(&[b"SET", key, value]);
    }
    ctx.out.ok();
    Ok(())
}

/// Slots opened and closed per pipeline.
const GROUP: usize = 256;
/// Most keys per batch.
pub const BATCH_KEYS: usize = 1024;
/// Most payload bytes per batch (a batch holds its shard's lock for its
/// round trip: this bounds what other clients of the shard wait).
pub const BATCH_BYTES: usize = 512 << 10;
/// Largest bulk string and deepest nesting [`Target::any_reply`] accepts.
const MAX_SKIPPED_BULK: i64 = 1 << 20;
const MAX_REPLY_DEPTH: usize = 8;
/// Most connections (and threads) moving keys at once.
const MAX_WORKERS: usize = 4;

/// The connection to the target.
struct Target {
    conn: BufReader<TcpStream>,
    /// The target takes `MIGRATESLOTS.SET` for string keys.
    raw_strings: bool,
}

impl Target {
    fn send(&mut self, buf: &[u8]) -> Result<(), CmdError> {
        self.conn
            .get_mut()
            .write_all(buf)
            .map_err(|_| io_error(true))
    }

    /// One reply line; `Err(text)` for an error reply.
    fn status(&mut self) -> Result<Result<Vec<u8>, String>, CmdError> {
        let line = read_line(&mut self.conn).map_err(|_| io_error(false))?;
        Ok(match line.first() {
            Some(b'-') => Err(String::from_utf8_lossy(&line[1..]).replace(['\r', '\n'], " ")),
            _ => Ok(line),
        })
    }

    /// A bulk string reply.
    fn bulk_reply(&mut self) -> Result<Vec<u8>, CmdError> {
        let head = match self.status()? {
            Ok(h) => h,
            Err(e) => return Err(target_error(&e)),
        };
        let len = head
            .strip_prefix(b"$")
            .and_then(|n| std::str::from_utf8(n).ok())
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= 1024)
            .ok_or_else(|| CmdError::new("ERR unexpected reply from the target"))?;
        let mut body = vec![0u8; len + 2];
        self.conn
            .read_exact(&mut body)
            .map_err(|_| io_error(false))?;
        body.truncate(len);
        Ok(body)
    }

    /// Reads one whole reply of any shape, returning its first line
    /// (nested elements are read and dropped). Only the short replies of
    /// admin commands are expected: a bulk over [`MAX_SKIPPED_BULK`] or
    /// nesting deeper than [`MAX_REPLY_DEPTH`] is an error, not an
    /// allocation or a recursion a misbehaving target could blow up.
    fn any_reply(&mut self, depth: usize) -> Result<Vec<u8>, CmdError> {
        let unexpected = || CmdError::new("ERR unexpected reply from the target");
        if depth > MAX_REPLY_DEPTH {
            return Err(unexpected());
        }
        let line = read_line(&mut self.conn).map_err(|_| io_error(false))?;
        let count = |l: &[u8]| -> i64 {
            std::str::from_utf8(&l[1..])
                .ok()
                .and_then(|n| n.trim_end().parse().ok())
                .unwrap_or(-1)
        };
        match line.first() {
            Some(b'$') => {
                let n = count(&line);
                if n > MAX_SKIPPED_BULK {
                    return Err(unexpected());
                }
                if n >= 0 {
                    let want = n as u64 + 2;
                    let skipped =
                        std::io::copy(&mut self.conn.by_ref().take(want), &mut std::io::sink())
                            .map_err(|_| io_error(false))?;
                    if skipped != want {
                        return Err(io_error(false));
                    }
                }
            }
            Some(b'*') => {
                for _ in 0..count(&line).clamp(0, 1 << 20) {
                    self.any_reply(depth + 1)?;
                }
            }
            _ => {}
        }
        Ok(line)
    }

    /// Whether the target takes strings as `MIGRATESLOTS.SET` (a
    /// shardline-node does; redis-server gets RESTORE-ASKING).
    fn takes_raw_strings(&mut self) -> Result<bool, CmdError> {
        let mut buf = Vec::new();
        cmd(&mut buf, &[b"COMMAND", b"INFO", b"migrateslots.set"]);
        self.send(&buf)?;
        // An array of one element: the command's description (an array),
        // or a null for an unknown command.
        let head = read_line(&mut self.conn).map_err(|_| io_error(false))?;
        if head != b"*1" {
            // An error (or something unexpected, with nothing more to read).
            return Ok(false);
        }
        let first = self.any_reply(1)?;
        Ok(first.first() == Some(&b'*') && first.get(1) != Some(&b'-'))
    }

    /// Sends a pipeline of `n` commands and checks that every reply is a
    /// status reply; the first error reply is returned as an error.
    fn pipeline(&mut self, cmds: &[u8], n: usize) -> Result<(), CmdError> {
        self.send(cmds)?;
        let mut first_err = None;
        for _ in 0..n {
            if let Err(e) = self.status()? {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(target_error(&e)),
            None => Ok(()),
        }
    }
}

fn target_error(e: &str) -> CmdError {
    CmdError(format!("ERR Target instance replied with error: {e}"))
}

fn cmd(buf: &mut Vec<u8>, parts: &[&[u8]]) {
    array(buf, parts.len());
    for p in parts {
        bulk(buf, p);
    }
}

struct Args {
    host: Bytes,
    port: Bytes,
    timeout: Duration,
    username: Option<Bytes>,
    password: Option<Bytes>,
    slots: Vec<u16>,
}

fn parse(args: &[Bytes]) -> Result<Args, CmdError> {
    let timeout = int_arg(&args[3])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let (mut username, mut password) = (None, None);
    let mut slots = Vec::new();
    let mut j = 4;
    while j < args.len() {
        let a = &args[j];
        if eq_ic(a, "auth") && j + 1 < args.len() {
            password = Some(args[j + 1].clone());
            j += 2;
        } else if eq_ic(a, "auth2") && j + 2 < args.len() {
            username = Some(args[j + 1].clone());
            password = Some(args[j + 2].clone());
            j += 3;
        } else if eq_ic(a, "slotsrange") {
            let rest = &args[j + 1..];
            if rest.is_empty() || rest.len() % 2 != 0 {
                return err(SYNTAX);
            }
            for pair in rest.chunks(2) {
                let slot = |b: &Bytes| match super::parse_i64(b) {
                    Some(s) if (0..SLOTS as i64).contains(&s) => Ok(s as u16),
                    _ => err("ERR Invalid or out of range slot"),
                };
                let (a, b) = (slot(&pair[0])?, slot(&pair[1])?);
                if a > b {
                    return err(&format!(
                        "ERR start slot number {a} is greater than end slot number {b}"
                    ));
                }
                slots.extend(a..=b);
            }
            j = args.len();
        } else {
            return err(SYNTAX);
        }
    }
    if slots.is_empty() {
        return err(SYNTAX);
    }
    slots.sort_unstable();
    slots.dedup();
    Ok(Args {
        host: args[1].clone(),
        port: args[2].clone(),
        timeout,
        username,
        password,
        slots,
    })
}

/// A connection to the target, authenticated.
fn open(a: &Args) -> Result<Target, CmdError> {
    let stream = connect(&a.host, &a.port, a.timeout).map_err(|e| match e {
        ConnectFail::Connecting => CmdError::new("IOERR error or timeout connecting to the client"),
        ConnectFail::Refused => io_error(true),
    })?;
    if stream.set_read_timeout(Some(a.timeout)).is_err()
        || stream.set_write_timeout(Some(a.timeout)).is_err()
    {
        return err("IOERR error or timeout connecting to the client");
    }
    let mut t = Target {
        conn: BufReader::with_capacity(64 * 1024, stream),
        raw_strings: false,
    };
    if let Some(pw) = &a.password {
        let mut buf = Vec::new();
        match &a.username {
            Some(u) => cmd(&mut buf, &[b"AUTH", u, pw]),
            None => cmd(&mut buf, &[b"AUTH", pw]),
        }
        t.pipeline(&buf, 1)?;
    }
    t.raw_strings = t.takes_raw_strings()?;
    Ok(t)
}

fn migrate_slots(ctx: &mut Ctx) -> CmdResult {
    let Some(c) = ctx.node.cluster.get().cloned() else {
        return err("ERR This instance has cluster support disabled");
    };
    let a = parse(ctx.args)?;
    let node = ctx.node.clone();
    let moved = blocking(|| run(&node, &c, &a))?;
    ctx.out.int(moved as i64);
    Ok(())
}

fn run(node: &Arc<Node>, c: &Arc<Cluster>, a: &Args) -> Result<usize, CmdError> {
    let started = Instant::now();
    let (me, my_id) = c.with(|m| {
        let id = wire::name_str(&m.myself).as_bytes().to_vec();
        (m.me().is_master(), id)
    });
    if !me {
        return err("ERR Please use MIGRATESLOTS only with masters.");
    }
    let mut t = open(a)?;
    let mut buf = Vec::new();
    cmd(&mut buf, &[b"CLUSTER", b"MYID"]);
    t.send(&buf)?;
    let tid_text = t.bulk_reply()?;
    let known = c.with(|m| {
        parse_name_bytes(&tid_text)
            .and_then(|n| m.nodes.get(&n))
            .map(|p| (p.is_master(), p.name == m.myself))
    });
    match known {
        None => {
            return err(&format!(
                "ERR I don't know about node {}",
                String::from_utf8_lossy(&tid_text)
            ))
        }
        Some((_, true)) => return err("ERR The target is this node"),
        Some((false, _)) => return err("ERR Target node is not a master"),
        Some((true, false)) => {}
    }
    // Slots the target already owns are done (the command is run again
    // after an interruption); any other owner is an error.
    let target = parse_name_bytes(&tid_text);
    let slots = c.with(|m| {
        let mut todo = Vec::with_capacity(a.slots.len());
        for &s in &a.slots {
            match m.owner(s) {
                Some(o) if o == m.myself => todo.push(s),
                Some(o) if Some(o) == target => {}
                _ => return Err(CmdError(format!("ERR I'm not the owner of hash slot {s}"))),
            }
        }
        Ok(todo)
    })?;
    // One more connection per extra worker: the shards' batches move in
    // parallel, so the source prepares one while the target restores
    // another.
    let workers = node.keyspace.nshards().clamp(1, MAX_WORKERS);
    let mut extra: Vec<Target> = Vec::with_capacity(workers - 1);
    for _ in 1..workers {
        extra.push(open(a)?);
    }
    let mut moved = 0usize;
    for group in slots.chunks(GROUP) {
        // 1. Open the slots: importing there, then migrating here.
        let mut buf = Vec::new();
        for s in group {
            let s = itoa::Buffer::new().format(*s).as_bytes().to_vec();
            cmd(
                &mut buf,
                &[b"CLUSTER", b"SETSLOT", &s, b"IMPORTING", &my_id],
            );
        }
        t.send(&buf)?;
        // A slot the target already owns was handed over by an earlier,
        // interrupted run that did not hear back: follow it here.
        let mut open_now = Vec::with_capacity(group.len());
        let mut taken = Vec::new();
        let mut first_err = None;
        for &s in group {
            match t.status()? {
                Ok(_) => open_now.push(s),
                Err(e) if e.starts_with("ERR I'm already the owner") => taken.push(s),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_err {
            return Err(target_error(&e));
        }
        for s in taken {
            let keys = super::cluster::count_keys(node, Some(s as usize));
            c.drive(|m, now| m.set_slot(s, &SetSlot::Node(tid_text.clone()), keys, now))
                .map_err(|e| CmdError(e.0))?;
        }
        let group = open_now.as_slice();
        c.drive(|m, now| {
            group
                .iter()
                .try_for_each(|&s| m.set_slot(s, &SetSlot::Migrating(tid_text.clone()), 0, now))
        })
        .map_err(|e| CmdError(e.0))?;
        // 2. Move the keys; 3. hand the slots over, the target first.
        loop {
            let n = move_keys_parallel(node, &mut t, &mut extra, group)?;
            moved += n;
            let left: usize = group
                .iter()
                .map(|&s| super::cluster::count_keys(node, Some(s as usize)))
                .sum();
            if left == 0 {
                break;
            }
            if n == 0 {
                return err(&format!("ERR {left} keys could not be moved; try again"));
            }
        }
        let mut buf = Vec::new();
        for s in group {
            let s = itoa::Buffer::new().format(*s).as_bytes().to_vec();
            cmd(&mut buf, &[b"CLUSTER", b"SETSLOT", &s, b"NODE", &tid_text]);
        }
        t.pipeline(&buf, group.len())?;
        c.drive(|m, now| {
            group
                .iter()
                .try_for_each(|&s| m.set_slot(s, &SetSlot::Node(tid_text.clone()), 0, now))
        })
        .map_err(|e| CmdError(e.0))?;
    }
    tracing::info!(
        "MIGRATESLOTS: moved {} slots and {moved} keys to {} in {:?}",
        slots.len(),
        String::from_utf8_lossy(&tid_text),
        started.elapsed()
    );
    Ok(moved)
}

/// Moves every key of `slots`, the shards split over one worker thread
/// per connection; returns how many moved (or the first error, after
/// every worker stopped).
fn move_keys_parallel(
    node: &Arc<Node>,
    first: &mut Target,
    extra: &mut [Target],
    slots: &[u16],
) -> Result<usize, CmdError> {
    let mut by_shard: BTreeMap<usize, Vec<u16>> = BTreeMap::new();
    for &s in slots {
        by_shard
            .entry(node.keyspace.shard_of_slot(s as usize))
            .or_default()
            .push(s);
    }
    let mut conns: Vec<&mut Target> = std::iter::once(first).chain(extra.iter_mut()).collect();
    let mut parts: Vec<Vec<(usize, Vec<u16>)>> = (0..conns.len()).map(|_| Vec::new()).collect();
    for (i, e) in by_shard.into_iter().enumerate() {
        let n = parts.len();
        parts[i % n].push(e);
    }
    if conns.len() == 1 {
        let part = parts.pop().unwrap_or_default();
        return move_keys(node, &mut *conns[0], part);
    }
    std::thread::scope(|sc| {
        let handles: Vec<_> = conns
            .into_iter()
            .zip(parts)
            .map(|(t, part)| sc.spawn(move || move_keys(node, t, part)))
            .collect();
        let mut moved = 0;
        let mut first_err = None;
        for h in handles {
            match h.join() {
                Ok(Ok(n)) => moved += n,
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(CmdError::new("ERR a migration worker failed"));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(moved),
        }
    })
}

/// Moves every key of the shards' slots to the target, a batch at a
/// time; returns how many moved.
fn move_keys(
    node: &Arc<Node>,
    t: &mut Target,
    shards: Vec<(usize, Vec<u16>)>,
) -> Result<usize, CmdError> {
    let mut moved = 0;
    for (shard, slots) in shards {
        let mut next = 0;
        while next < slots.len() {
            let guards = node.keyspace.lock(&[shard]);
            let mut view = super::system_view(node, guards, 0);
            let now = unix_ms();
            let mut keys: Vec<Bytes> = Vec::new();
            let mut out = Vec::new();
            // Fill a batch from as many slots as fit.
            while next < slots.len() && keys.len() < BATCH_KEYS && out.len() < BATCH_BYTES {
                let s = slots[next] as usize;
                let room = BATCH_KEYS - keys.len();
                let mut names: Vec<Bytes> = Vec::new();
                view.for_each_key_in_slot(s, |k| {
                    if names.len() < room {
                        names.push(Bytes::copy_from_slice(k));
                    }
                });
                let whole = names.len() == view.keys_in_slot(s);
                for k in names {
                    // peek expires a key whose time has come (and
                    // propagates the deletion).
                    let ttl = view.expire_at(&k).map_or(0, |at| (at - now).max(1));
                    let mut ttl_buf = itoa::Buffer::new();
                    let ttl = ttl_buf.format(ttl).as_bytes();
                    let Some(v) = view.peek(&k) else { continue };
                    match v {
                        ValueRef::Str(s) if t.raw_strings => {
                            cmd(&mut out, &[b"MIGRATESLOTS.SET", &k, ttl, s]);
                        }
                        v => {
                            let payload = dump_payload(v);
                            cmd(
                                &mut out,
                                &[b"RESTORE-ASKING", &k, ttl, &payload, b"REPLACE"],
                            );
                        }
                    }
                    keys.push(k);
                    if out.len() >= BATCH_BYTES {
                        break;
                    }
                }
                if whole && out.len() < BATCH_BYTES {
                    next += 1;
                } else {
                    break;
                }
            }
            if keys.is_empty() {
                continue;
            }
            // The round trip, with the shard locked.
            t.send(&out)?;
            let mut acked = 0;
            let mut failure = None;
            for _ in 0..keys.len() {
                match t.status() {
                    Ok(Ok(_)) => acked += 1,
                    Ok(Err(e)) => {
                        failure = Some(target_error(&e));
                        break;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            let mut del: Vec<&[u8]> = Vec::with_capacity(acked + 1);
            del.push(b"DEL");
            for k in &keys[..acked] {
                view.delete_lazy(k);
                del.push(k);
            }
            if acked > 0 {
                view.propagate(&del);
            }
            moved += acked;
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }
    Ok(moved)
}
