//! Per-slot key tables.
//!
//! Every hash slot of every database has its own table, so work on one slot
//! (counting, listing, migrating or flushing its keys) costs O(keys in the
//! slot). A table entry is 24 bytes: one heap blob holding the key followed
//! by the string value (or, for collection types, the index of the object
//! in the slot's object slab), the key length, and a metadata word (type,
//! encoding hint, volatile flag, LRU clock). Keys with a time to live are
//! also indexed in `expires`, which supports O(1) random sampling for the
//! active expiry cycle.

use std::hash::BuildHasher;

use indexmap::IndexMap;
use slab::Slab;

use super::key_index::KeyIndex;
use super::object::Object;

/// Hasher shared by all tables of the process.
pub type KeyHasher = foldhash::fast::FixedState;

fn hasher() -> KeyHasher {
    foldhash::fast::FixedState::with_seed(0x5348_4152_444c_494e)
}

#[inline]
pub fn hash_key(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

const KIND_MASK: u32 = 0b11;
const KIND_STR: u32 = 0;
const KIND_OBJ: u32 = 1;
const VOLATILE: u32 = 1 << 2;
const RAW: u32 = 1 << 3;
/// A string stored as text even if it looks like an integer (redis's
/// INCRBYFLOAT result is an embstr, never int-encoded).
const NOINT: u32 = 1 << 4;
const LRU_SHIFT: u32 = 8;
/// LRU clock resolution is one second and it wraps after 2^24 s, as redis's.
pub const LRU_CLOCK_MAX: u32 = (1 << 24) - 1;

/// Counter given to a new key under an LFU policy (redis's LFU_INIT_VAL).
pub const LFU_INIT_VAL: u32 = 5;

/// `lfu-log-factor` and `lfu-decay-time`.
#[derive(Debug, Clone, Copy)]
pub struct LfuParams {
    pub log_factor: u32,
    pub decay_minutes: u32,
}

/// The LFU counter stored in a key's 24-bit clock field (16 bits of
/// minutes of the last decrement, 8 bits of counter), decayed to `now_min`.
pub fn lfu_decayed(field: u32, now_min: u32, p: LfuParams) -> u32 {
    let last = field >> 8;
    let counter = field & 0xff;
    let now = now_min & 0xffff;
    let elapsed = if now >= last {
        now - last
    } else {
        65535 - last + now
    };
    let periods = elapsed.checked_div(p.decay_minutes).unwrap_or(0);
    counter.saturating_sub(periods)
}

/// The clock field of a key created now under an LFU policy.
pub fn lfu_initial(now_min: u32) -> u32 {
    ((now_min & 0xffff) << 8) | LFU_INIT_VAL
}

pub struct Entry {
    /// The key, followed by the value for a string.
    blob: Box<[u8]>,
    /// A string's key length, or a collection's index in the slot's
    /// object slab (a collection's blob is its key alone).
    klen: u32,
    meta: u32,
}

impl Entry {
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.blob[..self.key_len()]
    }
    #[inline]
    fn key_len(&self) -> usize {
        if self.is_obj() {
            self.blob.len()
        } else {
            self.klen as usize
        }
    }
    /// A string's value (empty for a collection).
    #[inline]
    fn payload(&self) -> &[u8] {
        &self.blob[self.key_len()..]
    }
    #[inline]
    fn is_obj(&self) -> bool {
        self.meta & KIND_MASK == KIND_OBJ
    }
    #[inline]
    fn obj_index(&self) -> usize {
        self.klen as usize
    }
    pub fn lru(&self) -> u32 {
        self.meta >> LRU_SHIFT
    }
    pub fn is_volatile(&self) -> bool {
        self.meta & VOLATILE != 0
    }
    fn set_lru(&mut self, clock: u32) {
        self.meta = (self.meta & ((1 << LRU_SHIFT) - 1)) | ((clock & LRU_CLOCK_MAX) << LRU_SHIFT);
    }
}

/// The metadata word of a string of `len` bytes written at `clock`.
/// Strings whose bytes would not fit redis's embstr stay "raw".
fn str_meta(clock: u32, len: usize) -> u32 {
    let meta = (clock.min(LRU_CLOCK_MAX) << LRU_SHIFT) | KIND_STR;
    if len > 44 {
        meta | RAW
    } else {
        meta
    }
}

fn make_blob(key: &[u8], payload: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(key.len() + payload.len());
    v.extend_from_slice(key);
    v.extend_from_slice(payload);
    v.into_boxed_slice()
}

/// A value as stored: a string, or a collection object.
pub enum Value {
    Str(Vec<u8>),
    Obj(Object),
}

/// Borrowed view of a stored value.
pub enum ValueRef<'a> {
    Str(&'a [u8]),
    Obj(&'a Object),
}

/// Information about a key that commands such as OBJECT and TTL need.
#[derive(Debug, Clone, Copy)]
pub struct KeyMeta {
    pub lru: u32,
    pub raw_encoding: bool,
    /// Never reported as int-encoded (see `mark_noint`).
    pub noint: bool,
}

#[derive(Default)]
pub struct SlotTable {
    entries: KeyIndex,
    objects: Slab<Object>,
    /// Created on the first key with a TTL: most slots have none, and the
    /// empty map would cost every slot its header.
    expires: Option<Box<ExpireIndex>>,
}

type ExpireIndex = IndexMap<Box<[u8]>, i64, KeyHasher>;

/// Slabs up to this many objects grow one slot at a time (exactly), so
/// slots holding a few collections carry no spare capacity; larger ones
/// grow geometrically.
const SLAB_EXACT_UPTO: usize = 32;

impl SlotTable {
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn volatile_len(&self) -> usize {
        self.expires.as_ref().map_or(0, |e| e.len())
    }

    fn find(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.find(key)
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    pub fn get(&self, key: &[u8]) -> Option<ValueRef<'_>> {
        let e = self.find(key)?;
        Some(self.value_of(e))
    }

    fn value_of<'a>(&'a self, e: &'a Entry) -> ValueRef<'a> {
        if e.is_obj() {
            match self.objects.get(e.obj_index()) {
                Some(o) => ValueRef::Obj(o),
                None => ValueRef::Str(b""),
            }
        } else {
            ValueRef::Str(e.payload())
        }
    }

    /// Mutable access to a collection object.
    pub fn get_obj_mut(&mut self, key: &[u8]) -> Option<&mut Object> {
        let e = self.find(key)?;
        if !e.is_obj() {
            return None;
        }
        let idx = e.obj_index();
        self.objects.get_mut(idx)
    }

    pub fn meta(&self, key: &[u8]) -> Option<KeyMeta> {
        self.find(key).map(|e| KeyMeta {
            lru: e.lru(),
            raw_encoding: e.meta & RAW != 0,
            noint: e.meta & NOINT != 0,
        })
    }

    pub fn touch(&mut self, key: &[u8], clock: u32) {
        if let Some(e) = self.entries.find_mut(key) {
            e.set_lru(clock);
        }
    }

    /// Counts an access under an LFU policy: decays the counter by the
    /// minutes elapsed since the last decrement, then increments it
    /// logarithmically, as redis does. `r` is uniform in [0, 1).
    pub fn touch_lfu(&mut self, key: &[u8], now_min: u32, p: LfuParams, r: f64) {
        if let Some(e) = self.entries.find_mut(key) {
            let mut c = lfu_decayed(e.lru(), now_min, p);
            if c < 255 {
                let base = f64::from(c.saturating_sub(LFU_INIT_VAL));
                if r < 1.0 / (base * f64::from(p.log_factor) + 1.0) {
                    c += 1;
                }
            }
            e.set_lru(((now_min & 0xffff) << 8) | c);
        }
    }

    pub fn set_lru(&mut self, key: &[u8], clock: u32) {
        self.touch(key, clock);
    }

    pub fn expire_at(&self, key: &[u8]) -> Option<i64> {
        // No key of this slot has a TTL: nothing to look up.
        self.expires.as_ref()?;
        let e = self.find(key)?;
        if e.is_volatile() {
            self.expires.as_ref().and_then(|x| x.get(key).copied())
        } else {
            None
        }
    }

    /// Sets or clears the expiry of an existing key. Returns false if the
    /// key does not exist.
    pub fn set_expire(&mut self, key: &[u8], when: Option<i64>) -> bool {
        let Some(e) = self.entries.find_mut(key) else {
            return false;
        };
        match when {
            Some(t) => {
                e.meta |= VOLATILE;
                self.expires
                    .get_or_insert_with(Default::default)
                    .insert(Box::from(key), t);
            }
            None => {
                if e.meta & VOLATILE != 0 {
                    e.meta &= !VOLATILE;
                    self.unindex_expire(key);
                }
            }
        }
        true
    }

    /// Inserts or replaces a value. The expiry is cleared unless `keep_ttl`.
    /// Returns the previous value if any.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: Value,
        keep_ttl: bool,
        clock: u32,
    ) -> Option<Value> {
        let old = self.remove_inner(key, keep_ttl);
        let (old_value, old_expire) = match old {
            Some((v, exp)) => (Some(v), exp),
            None => (None, None),
        };
        let mut meta;
        let mut klen = key.len() as u32;
        let blob = match value {
            Value::Str(s) => {
                meta = str_meta(clock, s.len());
                make_blob(key, &s)
            }
            Value::Obj(o) => {
                meta = (clock.min(LRU_CLOCK_MAX) << LRU_SHIFT) | KIND_OBJ;
                if self.objects.len() == self.objects.capacity()
                    && self.objects.len() < SLAB_EXACT_UPTO
                {
                    self.objects.reserve_exact(1);
                }
                klen = self.objects.insert(o) as u32;
                Box::from(key)
            }
        };
        if keep_ttl && old_expire.is_some() {
            meta |= VOLATILE;
        }
        let entry = Entry { blob, klen, meta };
        self.entries.insert_unique(entry);
        if let (true, Some(t)) = (keep_ttl, old_expire) {
            self.expires
                .get_or_insert_with(Default::default)
                .insert(Box::from(key), t);
        }
        old_value
    }

    /// Stores a string under `key` (SET and friends). Unlike [`insert`],
    /// it returns only whether the key existed: an existing string is
    /// overwritten in its entry (in its own allocation when the length is
    /// unchanged), so the common overwrite costs one hash lookup and no
    /// allocation. An existing collection goes through [`insert`], which
    /// hands the object back for the caller to free.
    ///
    /// [`insert`]: SlotTable::insert
    pub fn insert_str(
        &mut self,
        key: &[u8],
        value: &[u8],
        keep_ttl: bool,
        clock: u32,
    ) -> Result<bool, Value> {
        let mut meta = str_meta(clock, value.len());
        let mut drop_ttl = false;
        match self.entries.find_mut(key) {
            Some(e) if e.is_obj() => {
                return match self.insert(key, Value::Str(value.to_vec()), keep_ttl, clock) {
                    Some(old) => Err(old),
                    None => Ok(false),
                };
            }
            Some(e) => {
                if e.is_volatile() {
                    if keep_ttl {
                        meta |= VOLATILE;
                    } else {
                        drop_ttl = true;
                    }
                }
                if e.blob.len() == key.len() + value.len() {
                    e.blob[key.len()..].copy_from_slice(value);
                } else {
                    e.blob = make_blob(key, value);
                }
                e.meta = meta;
            }
            None => {
                let entry = Entry {
                    blob: make_blob(key, value),
                    klen: key.len() as u32,
                    meta,
                };
                self.entries.insert_unique(entry);
                return Ok(false);
            }
        }
        if drop_ttl {
            self.unindex_expire(key);
        }
        Ok(true)
    }

    /// Replaces the bytes of an existing string, keeping its TTL (INCR,
    /// APPEND...): overwritten in place when the length is unchanged.
    /// False when the key is missing or holds a collection.
    pub fn replace_str(&mut self, key: &[u8], s: &[u8], raw: bool, clock: u32) -> bool {
        let Some(e) = self.entries.find_mut(key) else {
            return false;
        };
        if e.is_obj() {
            return false;
        }
        let klen = e.klen as usize;
        match e.blob.get_mut(klen..) {
            Some(p) if p.len() == s.len() => p.copy_from_slice(s),
            _ => e.blob = make_blob(key, s),
        }
        let mut meta = (e.meta & VOLATILE) | KIND_STR;
        if raw || s.len() > 44 {
            meta |= RAW;
        }
        e.meta = meta;
        e.set_lru(clock);
        true
    }

    /// Marks a string as raw-encoded (OBJECT ENCODING reports "raw").
    pub fn mark_raw(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.find_mut(key) {
            if !e.is_obj() {
                e.meta |= RAW;
            }
        }
    }

    /// Marks a string as text that OBJECT ENCODING never reports as int.
    pub fn mark_noint(&mut self, key: &[u8]) {
        if let Some(e) = self.entries.find_mut(key) {
            if !e.is_obj() {
                e.meta |= NOINT;
            }
        }
    }

    fn remove_inner(&mut self, key: &[u8], take_expire: bool) -> Option<(Value, Option<i64>)> {
        let e = self.entries.remove(key)?;
        let mut exp = None;
        if e.is_volatile() {
            let t = self.unindex_expire(key);
            if take_expire {
                exp = t;
            }
        }
        let v = if e.is_obj() {
            match self.objects.try_remove(e.obj_index()) {
                Some(o) => Value::Obj(o),
                None => Value::Str(Vec::new()),
            }
        } else {
            Value::Str(e.payload().to_vec())
        };
        if self.entries.is_empty() {
            // Give the memory of an emptied slot back (the index frees
            // its own).
            self.objects.shrink_to_fit();
        }
        Some((v, exp))
    }

    /// Drops a key from the expires index, freeing the index when empty.
    fn unindex_expire(&mut self, key: &[u8]) -> Option<i64> {
        let x = self.expires.as_mut()?;
        let t = x.swap_remove(key);
        if x.is_empty() {
            self.expires = None;
        }
        t
    }

    /// Removes a key, returning its value and expiry.
    pub fn remove(&mut self, key: &[u8]) -> Option<(Value, Option<i64>)> {
        self.remove_inner(key, true)
    }

    /// Iterates over the keys of the slot.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.iter().map(|e| e.key())
    }

    /// Visits every key with its value and expiry (snapshots).
    pub fn for_each_entry(&self, mut f: impl FnMut(&[u8], ValueRef<'_>, Option<i64>)) {
        for e in self.entries.iter() {
            let exp = if e.is_volatile() {
                self.expires.as_ref().and_then(|x| x.get(e.key()).copied())
            } else {
                None
            };
            f(e.key(), self.value_of(e), exp);
        }
    }

    /// The key at a random position of the expires index.
    pub fn random_volatile(&self, r: usize) -> Option<(&[u8], i64)> {
        let x = self.expires.as_ref().filter(|x| !x.is_empty())?;
        x.get_index(r % x.len()).map(|(k, t)| (&k[..], *t))
    }

    /// A random key of this slot (O(len) worst case, used by RANDOMKEY).
    pub fn nth_key(&self, n: usize) -> Option<&[u8]> {
        self.entries.iter().nth(n).map(|e| e.key())
    }

    /// Approximate bytes used by a key and its value (MEMORY USAGE).
    pub fn memory_usage(&self, key: &[u8]) -> Option<usize> {
        let e = self.find(key)?;
        let mut n = std::mem::size_of::<Entry>() + e.blob.len() + 8;
        if e.is_volatile() {
            n += key.len() + 32;
        }
        if let ValueRef::Obj(o) = self.value_of(e) {
            n += o.memory_usage();
        }
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::engine::types::zset::ZSetObj;

    #[derive(Debug, Clone)]
    enum Op {
        SetStr(u8, u8),
        SetObj(u8),
        Del(u8),
        Expire(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys of one length (the index compares bytes) and of others.
        prop_oneof![
            (0u8..40, any::<u8>()).prop_map(|(k, v)| Op::SetStr(k, v)),
            (0u8..40).prop_map(Op::SetObj),
            (0u8..40).prop_map(Op::Del),
            (0u8..40).prop_map(Op::Expire),
        ]
    }

    fn key(k: u8) -> Vec<u8> {
        if k % 3 == 0 {
            format!("k{k}").into_bytes()
        } else {
            format!("key:{k:08}").into_bytes()
        }
    }

    proptest! {
        /// A slot's table agrees with a plain map while it grows past the
        /// array index into a hash table and shrinks back, with strings and
        /// collections (whose entries keep their slab index) mixed.
        #[test]
        fn slot_table_matches_a_model(ops in proptest::collection::vec(op(), 1..300)) {
            let mut t = SlotTable::default();
            let mut model: HashMap<Vec<u8>, (Option<u8>, bool)> = HashMap::new();
            for o in ops {
                match o {
                    Op::SetStr(k, v) => {
                        t.insert_str(&key(k), &[v; 3], false, 0).ok();
                        model.insert(key(k), (Some(v), false));
                    }
                    Op::SetObj(k) => {
                        t.insert(&key(k), Value::Obj(Object::ZSet(ZSetObj::default())), false, 0);
                        model.insert(key(k), (None, false));
                    }
                    Op::Del(k) => {
                        prop_assert_eq!(t.remove(&key(k)).is_some(), model.remove(&key(k)).is_some());
                    }
                    Op::Expire(k) => {
                        let had = t.set_expire(&key(k), Some(1000 + i64::from(k)));
                        prop_assert_eq!(had, model.contains_key(&key(k)));
                        if let Some(m) = model.get_mut(&key(k)) {
                            m.1 = true;
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
            for k in 0u8..40 {
                let kb = key(k);
                match (t.get(&kb), model.get(&kb)) {
                    (None, None) => {}
                    (Some(ValueRef::Str(s)), Some((Some(v), _))) => prop_assert_eq!(s, &[*v; 3][..]),
                    (Some(ValueRef::Obj(o)), Some((None, _))) => prop_assert_eq!(o.type_name(), "zset"),
                    _ => prop_assert!(false, "key {:?} differs", kb),
                }
                let ttl = model.get(&kb).and_then(|m| m.1.then(|| 1000 + i64::from(k)));
                prop_assert_eq!(t.expire_at(&kb), ttl);
            }
            let mut listed: Vec<&[u8]> = t.keys().collect();
            listed.sort();
            let mut want: Vec<&[u8]> = model.keys().map(|k| &k[..]).collect();
            want.sort();
            prop_assert_eq!(listed, want);
        }
    }
}
