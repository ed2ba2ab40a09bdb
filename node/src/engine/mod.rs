//! The keyspace: databases partitioned by hash slot into per-slot tables,
//! grouped into shard engines.
//!
//! Slot `s` belongs to shard `s % shards`. A command locks exactly the
//! shards that own its keys (in ascending order, so multi-shard commands
//! never deadlock) and works on them through a [`View`]; commands on one
//! key therefore touch one shard and never wait for work on other shards.
//! Every change a command makes is reported to the node's ordered
//! [`WriteStream`](crate::stream::WriteStream) while the shard locks are
//! held, so the stream's order is consistent with the order of execution.

pub mod key_index;
pub mod object;
pub mod snapshot;
pub mod table;
pub mod types;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use smallvec::SmallVec;

pub use object::Object;
pub use table::{KeyMeta, SlotTable, Value, ValueRef};

use crate::blocking::Waiter;
use crate::stats::Stats;
use crate::stream::WriteStream;

/// Number of hash slots.
pub const SLOTS: usize = 16384;

/// The hash slot of a key: CRC16/XMODEM of the key, or of the part between
/// the first `{` and the next `}` when that part is not empty.
pub fn key_slot(key: &[u8]) -> usize {
    let mut k = key;
    if let Some(s) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[s + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                k = &key[s + 1..s + 1 + len];
            }
        }
    }
    (KEY_CRC.checksum(k) as usize) & (SLOTS - 1)
}

/// CRC16/XMODEM with 16 lookup tables (slicing by 16 bytes): about three
/// times faster than a byte-at-a-time table on typical keys, and this runs
/// for every key of every command.
static KEY_CRC: crc::Crc<u16, crc::Table<16>> =
    crc::Crc::<u16, crc::Table<16>>::new(&crc::CRC_16_XMODEM);

/// One database's share of a shard: the tables of the slots it owns.
#[derive(Default)]
pub struct Db {
    tables: Vec<Option<Box<SlotTable>>>,
    keys: usize,
}

impl Db {
    fn table(&self, slot: usize) -> Option<&SlotTable> {
        self.tables.get(slot).and_then(|t| t.as_deref())
    }
    fn table_mut(&mut self, slot: usize) -> Option<&mut SlotTable> {
        self.tables.get_mut(slot).and_then(|t| t.as_deref_mut())
    }
    fn table_create(&mut self, slot: usize) -> &mut SlotTable {
        if self.tables.is_empty() {
            self.tables.resize_with(SLOTS, || None);
        }
        self.tables[slot].get_or_insert_with(Default::default)
    }
    pub fn len(&self) -> usize {
        self.keys
    }
    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }
    pub fn volatile_len(&self) -> usize {
        self.tables.iter().flatten().map(|t| t.volatile_len()).sum()
    }
    /// Takes every table out of the database (FLUSHDB), leaving it empty.
    fn take_all(&mut self) -> Vec<Option<Box<SlotTable>>> {
        self.keys = 0;
        std::mem::take(&mut self.tables)
    }
    fn take_slot(&mut self, slot: usize) -> Option<Box<SlotTable>> {
        let t = self.tables.get_mut(slot)?.take()?;
        self.keys -= t.len();
        Some(t)
    }
}

/// Per-key version counters for WATCH, kept only for watched keys.
#[derive(Default)]
pub struct WatchTable {
    keys: HashMap<(usize, Bytes), (u64, usize)>,
    /// Bumped by FLUSHDB/FLUSHALL/SWAPDB; a watch taken before it fails.
    pub epoch: u64,
}

/// A shard engine's state: its slice of every database.
pub struct Shard {
    pub id: usize,
    pub dbs: Vec<Db>,
    pub watch: WatchTable,
    /// Position of the active expiry cycle: (db, slot).
    pub expire_cursor: (usize, usize),
    /// Clients blocked on keys of this shard, in the order they blocked.
    pub blocked: HashMap<(usize, Bytes), VecDeque<Arc<Waiter>>>,
    /// The running snapshot's view of this shard, if one runs.
    pub snap: Option<snapshot::ShardSnap>,
}

/// Handle that commands use to defer freeing of large values.
pub type LazyFree = lazyfree::Sender;

mod lazyfree {
    use std::sync::mpsc;

    /// Values dropped on the lazy-free thread.
    pub type Garbage = Box<dyn Send>;

    #[derive(Clone)]
    pub struct Sender(pub mpsc::Sender<Garbage>);

    impl Sender {
        pub fn free(&self, g: Garbage) {
            if let Err(e) = self.0.send(g) {
                drop(e.0);
            }
        }
    }
}

/// All shards of the node.
pub struct Keyspace {
    shards: Vec<Mutex<Shard>>,
    pub databases: usize,
    lazyfree: LazyFree,
}

impl Keyspace {
    pub fn new(nshards: usize, databases: usize) -> Self {
        let nshards = nshards.max(1);
        let shards = (0..nshards)
            .map(|id| {
                Mutex::new(Shard {
                    id,
                    dbs: (0..databases).map(|_| Db::default()).collect(),
                    watch: WatchTable::default(),
                    blocked: HashMap::new(),
                    expire_cursor: (0, id),
                    snap: None,
                })
            })
            .collect();
        let (tx, rx) = std::sync::mpsc::channel::<lazyfree::Garbage>();
        let spawned = std::thread::Builder::new()
            .name("lazyfree".into())
            .spawn(move || {
                while let Ok(g) = rx.recv() {
                    drop(g);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(
                "could not start the lazy-free thread ({e}); large values are freed inline"
            );
        }
        Keyspace {
            shards,
            databases,
            lazyfree: lazyfree::Sender(tx),
        }
    }

    pub fn nshards(&self) -> usize {
        self.shards.len()
    }

    #[inline]
    pub fn shard_of_slot(&self, slot: usize) -> usize {
        slot % self.shards.len()
    }

    /// Locks the given shards (must be sorted and deduplicated).
    pub fn lock<'a>(&'a self, ids: &[usize]) -> Guards<'a> {
        let mut g = Guards::new();
        for &id in ids {
            g.push((id, self.shards[id].lock()));
        }
        g
    }

    pub fn lock_all(&self) -> Guards<'_> {
        let ids: SmallVec<[usize; 8]> = (0..self.shards.len()).collect();
        self.lock(&ids)
    }

    pub fn lock_one(&self, id: usize) -> MutexGuard<'_, Shard> {
        self.shards[id].lock()
    }

    /// Queues a value to be dropped on the lazy-free thread.
    pub fn free_later(&self, g: lazyfree::Garbage) {
        self.lazyfree.free(g);
    }

    /// Key counts per database: (keys, volatile keys).
    pub fn db_sizes(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, 0); self.databases];
        for s in &self.shards {
            let s = s.lock();
            for (i, db) in s.dbs.iter().enumerate() {
                out[i].0 += db.len();
                out[i].1 += db.volatile_len();
            }
        }
        out
    }
}

pub type Guards<'a> = SmallVec<[(usize, MutexGuard<'a, Shard>); 4]>;

/// How a lookup treats an expired key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExpirePolicy {
    /// Delete it and propagate a DEL (masters).
    Delete,
    /// Report it missing but keep it: only the master expires keys.
    Hide,
    /// Treat it as live: a replica applying its master's stream, where the
    /// master decides what expired (and sends DEL).
    Ignore,
}

/// Locked shards plus the context a command runs in. All key access of a
/// command goes through its view.
pub struct View<'a> {
    guards: Guards<'a>,
    nshards: usize,
    pub db: usize,
    pub now_ms: i64,
    pub lru_clock: u32,
    /// Set under an LFU maxmemory policy: access frequency is tracked
    /// instead of access time.
    pub lfu: Option<table::LfuParams>,
    pub stream: &'a WriteStream,
    pub stats: &'a Stats,
    pub keyspace: &'a Keyspace,
    pub expire_policy: ExpirePolicy,
    /// Number of changes made by the running command.
    pub dirty: u64,
    /// Set when the command propagated its own effects.
    pub propagated: bool,
    /// Keys with blocked clients that this command made ready.
    pub ready: Vec<(usize, Bytes)>,
    /// Slots already computed for the running command's key arguments,
    /// by the address and length of the argument. Valid only while those
    /// arguments are alive: set before a command runs, cleared after.
    pub key_hints: KeyHints,
}

/// Slots of a command's first key arguments: (address, length, slot). A
/// few entries, kept inline: the view holding them is built for every
/// command, and keys beyond these are hashed again (a few nanoseconds).
pub type KeyHints = SmallVec<[(usize, u32, u16); KEY_HINTS_MAX]>;

/// How many key slots a view remembers (see [`KeyHints`]).
pub const KEY_HINTS_MAX: usize = 4;

impl<'a> View<'a> {
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn new(
        keyspace: &'a Keyspace,
        guards: Guards<'a>,
        db: usize,
        now_ms: i64,
        lru_clock: u32,
        stream: &'a WriteStream,
        stats: &'a Stats,
        expire_policy: ExpirePolicy,
    ) -> Self {
        View {
            guards,
            nshards: keyspace.nshards(),
            db,
            now_ms,
            lru_clock,
            lfu: None,
            stream,
            stats,
            keyspace,
            expire_policy,
            dirty: 0,
            propagated: false,
            ready: Vec::new(),
            key_hints: SmallVec::new(),
        }
    }

    /// The slot of `key`: from the hints when `key` is one of the running
    /// command's arguments, else computed.
    #[inline]
    fn slot_of(&self, key: &[u8]) -> usize {
        let (p, l) = (key.as_ptr() as usize, key.len());
        for &(hp, hl, slot) in &self.key_hints {
            if hp == p && hl as usize == l {
                return slot as usize;
            }
        }
        key_slot(key)
    }

    #[inline]
    fn shard_idx(&self, slot: usize) -> usize {
        let id = slot % self.nshards;
        if self.guards.len() == self.nshards {
            return id;
        }
        // Commands lock the shards of their keys; anything else is a bug in
        // the key extraction, which we report instead of crashing.
        self.guards
            .iter()
            .position(|(g, _)| *g == id)
            .unwrap_or_else(|| {
                tracing::error!(slot, "key accessed on a shard that was not locked");
                0
            })
    }

    fn shard_for(&mut self, key: &[u8]) -> (&mut Shard, usize) {
        let slot = self.slot_of(key);
        let i = self.shard_idx(slot);
        (&mut self.guards[i].1, slot)
    }

    /// Like `shard_for`, for a change: a running snapshot first records
    /// the slot as it is.
    #[inline]
    fn shard_for_write(&mut self, key: &[u8]) -> (&mut Shard, usize) {
        let (shard, slot) = self.shard_for(key);
        shard.before_write(slot);
        (shard, slot)
    }

    /// Whether the shard owning `key` is locked by this view.
    pub fn owns(&self, key: &[u8]) -> bool {
        let id = self.slot_of(key) % self.nshards;
        self.guards.iter().any(|(g, _)| *g == id)
    }

    fn expire_if_needed(&mut self, key: &[u8]) -> bool {
        let db = self.db;
        let now = self.now_ms;
        let policy = self.expire_policy;
        if policy == ExpirePolicy::Ignore {
            return false;
        }
        let (shard, slot) = self.shard_for(key);
        let Some(t) = shard.dbs[db].table(slot) else {
            return false;
        };
        match t.expire_at(key) {
            Some(when) if when <= now => {
                if policy == ExpirePolicy::Hide {
                    return true;
                }
                shard.before_write(slot);
                let Some(t) = shard.dbs[db].table_mut(slot) else {
                    return true;
                };
                if let Some((v, _)) = t.remove(key) {
                    shard.dbs[db].keys -= 1;
                    bump_watch(&mut shard.watch, db, key);
                    self.free_value(v);
                }
                self.stats.expired_keys.fetch_add(1, Ordering::Relaxed);
                self.stream.append(self.db, &[b"DEL", key]);
                true
            }
            _ => false,
        }
    }

    fn free_value(&self, v: Value) {
        if let Value::Obj(o) = v {
            if o.len() > 64 {
                self.keyspace.free_later(Box::new(o));
            }
        }
    }

    /// Looks a key up for reading: expires it if due, updates its LRU
    /// clock and counts a hit or miss.
    pub fn get(&mut self, key: &[u8]) -> Option<ValueRef<'_>> {
        let found = self.lookup_quiet(key);
        if found {
            self.stats.keyspace_hits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.stats.keyspace_misses.fetch_add(1, Ordering::Relaxed);
        }
        if !found {
            return None;
        }
        let db = self.db;
        let clock = self.lru_clock;
        let lfu = self.lfu;
        let (shard, slot) = self.shard_for(key);
        let t = shard.dbs[db].table_mut(slot)?;
        match lfu {
            Some(p) => t.touch_lfu(key, now_minutes(), p, rand::random::<f64>()),
            None => t.touch(key, clock),
        }
        t.get(key)
    }

    /// True if the key exists (after lazy expiry), without touching stats.
    pub fn lookup_quiet(&mut self, key: &[u8]) -> bool {
        if self.expire_if_needed(key) {
            return false;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot).is_some_and(|t| t.contains(key))
    }

    /// Reads a value for a write command (no hit/miss accounting).
    pub fn get_for_write(&mut self, key: &[u8]) -> Option<ValueRef<'_>> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot)?.get(key)
    }

    /// Reads a value without expiring or touching it (OBJECT, DEBUG).
    pub fn peek(&mut self, key: &[u8]) -> Option<ValueRef<'_>> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot)?.get(key)
    }

    pub fn meta(&mut self, key: &[u8]) -> Option<KeyMeta> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot)?.meta(key)
    }

    pub fn memory_usage(&mut self, key: &[u8]) -> Option<usize> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot)?.memory_usage(key)
    }

    /// Mutable access to a collection object (after lazy expiry).
    pub fn obj_mut(&mut self, key: &[u8]) -> Option<&mut Object> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for_write(key);
        shard.dbs[db].table_mut(slot)?.get_obj_mut(key)
    }

    /// Stores a value, replacing any previous one. The TTL is cleared unless
    /// `keep_ttl`. Returns the previous value.
    pub fn set(&mut self, key: &[u8], value: Value, keep_ttl: bool) -> Option<Value> {
        self.expire_if_needed(key);
        let db = self.db;
        let clock = self.new_key_clock();
        let (shard, slot) = self.shard_for_write(key);
        let old = shard.dbs[db]
            .table_create(slot)
            .insert(key, value, keep_ttl, clock);
        if old.is_none() {
            shard.dbs[db].keys += 1;
        }
        bump_watch(&mut shard.watch, db, key);
        self.dirty += 1;
        self.signal_ready(key);
        old
    }

    /// The LRU clock (or, under an LFU policy, the initial counter) of a
    /// value written now.
    fn new_key_clock(&self) -> u32 {
        match self.lfu {
            Some(_) => table::lfu_initial(now_minutes()),
            None => self.lru_clock,
        }
    }

    /// Stores a string value (SET, MSET, SETEX...): [`View::set`] without
    /// building a `Value` or handing back the old string. Returns whether
    /// the key existed.
    pub fn set_str(&mut self, key: &[u8], value: &[u8], keep_ttl: bool) -> bool {
        self.expire_if_needed(key);
        let db = self.db;
        let clock = self.new_key_clock();
        let (shard, slot) = self.shard_for_write(key);
        let stored = shard.dbs[db]
            .table_create(slot)
            .insert_str(key, value, keep_ttl, clock);
        let existed = !matches!(stored, Ok(false));
        if !existed {
            shard.dbs[db].keys += 1;
        }
        bump_watch(&mut shard.watch, db, key);
        if let Err(old) = stored {
            self.free_value(old);
        }
        self.dirty += 1;
        self.signal_ready(key);
        existed
    }

    /// Replaces the bytes of an existing string keeping its TTL (APPEND,
    /// SETRANGE, INCR...). The encoding becomes raw when `raw`.
    pub fn update_str(&mut self, key: &[u8], bytes: Vec<u8>, raw: bool) {
        let db = self.db;
        let clock = self.new_key_clock();
        let (shard, slot) = self.shard_for_write(key);
        if let Some(t) = shard.dbs[db].table_mut(slot) {
            if t.replace_str(key, &bytes, raw, clock) {
                bump_watch(&mut shard.watch, db, key);
                self.dirty += 1;
                return;
            }
        }
        // A new key created by an in-place modification (SETRANGE) is
        // raw too, as in redis.
        self.set(key, Value::Str(bytes), true);
        if raw {
            let (shard, slot) = self.shard_for(key);
            if let Some(t) = shard.dbs[db].table_mut(slot) {
                t.mark_raw(key);
            }
        }
    }

    /// Marks a string as never int-encoded (INCRBYFLOAT results).
    pub fn mark_noint(&mut self, key: &[u8]) {
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        if let Some(t) = shard.dbs[db].table_mut(slot) {
            t.mark_noint(key);
        }
    }

    /// Deletes a key. Returns its value if it existed.
    pub fn delete(&mut self, key: &[u8]) -> Option<Value> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for_write(key);
        let t = shard.dbs[db].table_mut(slot)?;
        let (v, _) = t.remove(key)?;
        shard.dbs[db].keys -= 1;
        bump_watch(&mut shard.watch, db, key);
        self.dirty += 1;
        Some(v)
    }

    /// Deletes a key, freeing a large value off the engine thread.
    pub fn delete_lazy(&mut self, key: &[u8]) -> bool {
        match self.delete(key) {
            Some(v) => {
                self.free_value(v);
                true
            }
            None => false,
        }
    }

    /// The absolute expiry (unix ms) of a key, if it has one.
    pub fn expire_at(&mut self, key: &[u8]) -> Option<i64> {
        if self.expire_if_needed(key) {
            return None;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        shard.dbs[db].table(slot)?.expire_at(key)
    }

    /// Sets (Some) or removes (None) a key's expiry. False if no such key.
    pub fn set_expire(&mut self, key: &[u8], when: Option<i64>) -> bool {
        if self.expire_if_needed(key) {
            return false;
        }
        let db = self.db;
        let (shard, slot) = self.shard_for_write(key);
        let Some(t) = shard.dbs[db].table_mut(slot) else {
            return false;
        };
        let ok = t.set_expire(key, when);
        if ok {
            bump_watch(&mut shard.watch, db, key);
            self.dirty += 1;
        }
        ok
    }

    /// Sets a key's LRU clock (or, under an LFU policy, its LFU field):
    /// RESTORE's IDLETIME and FREQ. False if no such key.
    pub fn set_lru(&mut self, key: &[u8], field: u32) -> bool {
        let db = self.db;
        let (shard, slot) = self.shard_for(key);
        match shard.dbs[db].table_mut(slot) {
            Some(t) if t.contains(key) => {
                t.set_lru(key, field);
                true
            }
            _ => false,
        }
    }

    /// Records an in-place change made through `obj_mut`: bumps WATCH
    /// versions, counts the change (so the command is propagated) and wakes
    /// clients blocked on the key.
    pub fn modified(&mut self, key: &[u8]) {
        self.touch_modified(key);
        self.dirty += 1;
        self.signal_ready(key);
    }

    /// Signals that a key was modified in place (WATCH only).
    pub fn touch_modified(&mut self, key: &[u8]) {
        let db = self.db;
        let (shard, _) = self.shard_for(key);
        bump_watch(&mut shard.watch, db, key);
    }

    /// Records an effect in the node's write stream, replacing the default
    /// propagation of the command's own arguments.
    pub fn propagate(&mut self, args: &[&[u8]]) {
        self.propagated = true;
        self.stream.append(self.db, args);
    }

    /// Key counts per database (keys, volatile keys) over the locked
    /// shards, like [`Keyspace::db_sizes`] for a view holding every shard.
    pub fn db_sizes(&self) -> Vec<(usize, usize)> {
        let mut out = vec![(0, 0); self.keyspace.databases];
        for (_, s) in &self.guards {
            for (i, db) in s.dbs.iter().enumerate() {
                out[i].0 += db.len();
                out[i].1 += db.volatile_len();
            }
        }
        out
    }

    /// Number of keys in the current database across the locked shards.
    pub fn dbsize(&self) -> usize {
        self.guards.iter().map(|(_, s)| s.dbs[self.db].len()).sum()
    }

    /// Calls `f` for every key of `slot` in the current database.
    pub fn for_each_key_in_slot(&mut self, slot: usize, mut f: impl FnMut(&[u8])) {
        let db = self.db;
        let i = self.shard_idx(slot);
        if let Some(t) = self.guards[i].1.dbs[db].table(slot) {
            for k in t.keys() {
                f(k);
            }
        }
    }

    /// Number of keys stored in a slot (expired but not yet collected keys
    /// included, as redis's COUNTKEYSINSLOT).
    pub fn keys_in_slot(&self, slot: usize) -> usize {
        let id = slot % self.nshards;
        self.guards
            .iter()
            .find(|(g, _)| *g == id)
            .and_then(|(_, s)| s.dbs[self.db].table(slot))
            .map_or(0, |t| t.len())
    }

    /// A pseudo-random existing key, or None when the database is empty.
    pub fn random_key(&mut self, mut rnd: impl FnMut(usize) -> usize) -> Option<Bytes> {
        for _ in 0..100 {
            let total = self.dbsize();
            if total == 0 {
                return None;
            }
            // Pick a slot with a probability proportional to its size by
            // walking from a random start; then a random key within it.
            let start = rnd(SLOTS);
            let db = self.db;
            let mut found = None;
            for off in 0..SLOTS {
                let slot = (start + off) % SLOTS;
                let i = self.shard_idx(slot);
                if let Some(t) = self.guards[i].1.dbs[db].table(slot) {
                    if !t.is_empty() {
                        let n = rnd(t.len());
                        found = t.nth_key(n).map(Bytes::copy_from_slice);
                        break;
                    }
                }
            }
            let key = found?;
            if self.lookup_quiet(&key) {
                return Some(key);
            }
        }
        None
    }

    /// Removes every key of the current database (or of all databases).
    /// Tables are freed on the lazy-free thread when `lazy`.
    pub fn flush(&mut self, all: bool, lazy: bool) -> usize {
        let mut removed = 0;
        let dbs: Vec<usize> = if all {
            (0..self.keyspace.databases).collect()
        } else {
            vec![self.db]
        };
        let mut garbage = Vec::new();
        let nshards = self.nshards;
        for (_, shard) in self.guards.iter_mut() {
            shard.before_write_all(nshards);
            for &db in &dbs {
                removed += shard.dbs[db].len();
                garbage.push(shard.dbs[db].take_all());
            }
            shard.watch.epoch += 1;
        }
        self.dirty += removed as u64;
        if lazy {
            self.keyspace.free_later(Box::new(garbage));
        } else {
            drop(garbage);
        }
        removed
    }

    /// Removes every key of a slot in the current database.
    pub fn flush_slot(&mut self, slot: usize) -> usize {
        let db = self.db;
        let i = self.shard_idx(slot);
        let shard = &mut self.guards[i].1;
        shard.before_write(slot);
        shard.watch.epoch += 1;
        match shard.dbs[db].take_slot(slot) {
            Some(t) => {
                let n = t.len();
                self.keyspace.free_later(Box::new(t));
                n
            }
            None => 0,
        }
    }

    /// Visits the keys of whole slots starting at `cursor` (a slot number)
    /// until at least `count` keys were visited. Returns the next cursor
    /// (0 when done). Returning whole slots guarantees that a key present
    /// for the whole scan is returned at least once.
    pub fn scan_slots(&mut self, cursor: usize, count: usize, mut f: impl FnMut(&[u8])) -> usize {
        let db = self.db;
        let mut slot = cursor;
        let mut seen = 0;
        while slot < SLOTS {
            let i = self.shard_idx(slot);
            if let Some(t) = self.guards[i].1.dbs[db].table(slot) {
                for k in t.keys() {
                    f(k);
                    seen += 1;
                }
            }
            slot += 1;
            if seen >= count {
                break;
            }
        }
        if slot >= SLOTS {
            0
        } else {
            slot
        }
    }

    /// The WATCH version of a key and the shard's flush epoch.
    pub fn watch_version(&mut self, key: &Bytes, register: bool) -> (u64, u64) {
        let db = self.db;
        let (shard, _) = self.shard_for(key);
        let epoch = shard.watch.epoch;
        let entry = shard.watch.keys.entry((db, key.clone()));
        let v = match entry {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if register {
                    o.get_mut().1 += 1;
                }
                o.get().0
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                if register {
                    v.insert((0, 1));
                }
                0
            }
        };
        (v, epoch)
    }

    /// Drops one registration of a watched key.
    pub fn unwatch(&mut self, db: usize, key: &Bytes) {
        let (shard, _) = self.shard_for(key);
        if let Some(e) = shard.watch.keys.get_mut(&(db, key.clone())) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                shard.watch.keys.remove(&(db, key.clone()));
            }
        }
    }

    /// Swaps two databases (SWAPDB).
    pub fn swap_db(&mut self, a: usize, b: usize) {
        let nshards = self.nshards;
        for (_, shard) in self.guards.iter_mut() {
            shard.before_write_all(nshards);
            shard.dbs.swap(a, b);
            shard.watch.epoch += 1;
        }
    }

    /// Runs one bounded step of the active expiry cycle on every locked
    /// shard: samples keys with a TTL and deletes the expired ones. Returns
    /// the number of keys expired.
    pub fn active_expire(
        &mut self,
        budget: std::time::Duration,
        rnd: &mut impl FnMut(usize) -> usize,
    ) -> usize {
        let start = std::time::Instant::now();
        let ndb = self.keyspace.databases;
        let mut expired_total = 0;
        for gi in 0..self.guards.len() {
            let mut visited = 0usize;
            let mut steps = 0u32;
            loop {
                if visited >= SLOTS * ndb {
                    break;
                }
                // Reading the clock costs more than visiting an empty slot:
                // check the budget every 64 steps only.
                steps += 1;
                if steps % 64 == 0 && start.elapsed() >= budget {
                    break;
                }
                let (db, slot) = self.guards[gi].1.expire_cursor;
                let id = self.guards[gi].0;
                if self.guards[gi].1.dbs[db].tables.is_empty() {
                    // A database never written to: skip it whole.
                    self.guards[gi].1.expire_cursor = ((db + 1) % ndb, id);
                    visited += SLOTS;
                    continue;
                }
                // Advance the cursor to the next slot owned by this shard.
                let mut next = (db, slot + self.nshards);
                if next.1 >= SLOTS {
                    next = ((db + 1) % ndb, id);
                }
                self.guards[gi].1.expire_cursor = next;
                visited += self.nshards;
                if slot % self.nshards != id {
                    self.guards[gi].1.expire_cursor = (db, id);
                    continue;
                }
                loop {
                    let mut due: SmallVec<[Box<[u8]>; 20]> = SmallVec::new();
                    let mut sampled = 0;
                    if let Some(t) = self.guards[gi].1.dbs[db].table(slot) {
                        let n = t.volatile_len();
                        if n == 0 {
                            break;
                        }
                        for _ in 0..n.min(20) {
                            if let Some((k, when)) = t.random_volatile(rnd(n)) {
                                sampled += 1;
                                if when <= self.now_ms && !due.iter().any(|d| &d[..] == k) {
                                    due.push(Box::from(k));
                                }
                            }
                        }
                    } else {
                        break;
                    }
                    let saved_db = self.db;
                    self.db = db;
                    for k in &due {
                        if self.expire_if_needed(k) {
                            expired_total += 1;
                        }
                    }
                    self.db = saved_db;
                    // Keep going on this slot while more than 25% of the
                    // sample was expired, like redis.
                    if due.len() * 4 <= sampled || start.elapsed() >= budget {
                        break;
                    }
                }
            }
        }
        expired_total
    }
}

impl View<'_> {
    /// Marks a key as ready for the clients blocked on it. Commands that add
    /// elements to a list or sorted set in place must call this; `set`
    /// does it for every stored value.
    pub fn signal_ready(&mut self, key: &[u8]) {
        let db = self.db;
        let (shard, _) = self.shard_for(key);
        if shard.blocked.is_empty() {
            return;
        }
        let k = Bytes::copy_from_slice(key);
        if shard.blocked.contains_key(&(db, k.clone()))
            && !self.ready.iter().any(|(d, r)| *d == db && *r == k)
        {
            self.ready.push((db, k));
        }
    }

    /// Registers a blocked client on each of its keys.
    pub fn register_waiter(&mut self, waiter: &Arc<Waiter>, keys: &[Bytes]) {
        let db = waiter.db;
        for key in keys {
            let (shard, _) = self.shard_for(key);
            let q = shard.blocked.entry((db, key.clone())).or_default();
            if !q.iter().any(|w| w.id == waiter.id) {
                q.push_back(waiter.clone());
            }
        }
    }

    /// The first live waiter on a key, dropping finished ones.
    pub fn front_waiter(&mut self, db: usize, key: &Bytes) -> Option<Arc<Waiter>> {
        let (shard, _) = self.shard_for(key);
        let q = shard.blocked.get_mut(&(db, key.clone()))?;
        while q.front().is_some_and(|w| w.is_done()) {
            q.pop_front();
        }
        let front = q.front().cloned();
        if q.is_empty() {
            shard.blocked.remove(&(db, key.clone()));
        }
        front
    }

    /// Removes a waiter from a key's queue.
    pub fn remove_waiter(&mut self, db: usize, key: &Bytes, id: u64) {
        let (shard, _) = self.shard_for(key);
        if let Some(q) = shard.blocked.get_mut(&(db, key.clone())) {
            q.retain(|w| w.id != id && !w.is_done());
            if q.is_empty() {
                shard.blocked.remove(&(db, key.clone()));
            }
        }
    }

    /// Whether every shard is locked by this view.
    pub fn has_all_shards(&self) -> bool {
        self.guards.len() == self.nshards
    }
}

/// Minutes since the epoch, the LFU decrement clock.
pub fn now_minutes() -> u32 {
    (crate::node::unix_ms() / 60_000) as u32
}

fn bump_watch(w: &mut WatchTable, db: usize, key: &[u8]) {
    if w.keys.is_empty() {
        return;
    }
    if let Some(e) = w.keys.get_mut(&(db, Bytes::copy_from_slice(key))) {
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from redis-cli CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), key_slot(b"foo{}{bar}"));
        assert_eq!(key_slot(b"{}foo"), 9500);
        assert_eq!(key_slot(b""), 0);
    }
}
