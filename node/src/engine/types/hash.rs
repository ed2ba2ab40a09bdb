//! The hash type, plus the two building blocks the hash and set types share:
//!
//! * [`Listpack`]: the compact encoding, one contiguous byte buffer of
//!   length-prefixed entries. Entries that are canonical 64-bit integers are
//!   stored as integers (1 to 9 bytes), everything else as a one-byte (short
//!   strings) or 3/5-byte length header followed by the bytes.
//! * [`RhTable`]: the full encoding, an open-addressing Robin Hood table
//!   without wrap-around. Each slot holds the element's 64-bit hash and one
//!   heap blob. Elements are kept sorted by their home bucket (the top bits
//!   of the hash), which gives SCAN a cursor that survives inserts, deletes
//!   and resizes: the cursor is a hash value, and every call returns all
//!   elements whose hash lies between the cursor and the next one.
//!
//! A hash is a listpack of alternating field/value entries until it exceeds
//! `hash-max-listpack-entries` entries or a field/value longer than
//! `hash-max-listpack-value`, then a table whose blobs are
//! `varint(field length) field value`.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::sync::OnceLock;

use super::EncodingLimits;
use crate::cmd::parse_i64;

// ---------------------------------------------------------------------------
// Elements

/// One element as stored: a byte string or an integer whose canonical
/// decimal form is the element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// The element as bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).as_bytes().to_vec(),
        }
    }

    /// Length of the element's string form.
    pub fn str_len(&self) -> usize {
        match self {
            Elem::Str(s) => s.len(),
            Elem::Int(i) => itoa::Buffer::new().format(*i).len(),
        }
    }

    /// Calls `f` with the element's bytes (no allocation).
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Str(s) => f(s),
            Elem::Int(i) => f(itoa::Buffer::new().format(*i).as_bytes()),
        }
    }

    /// The element as an integer, if it is one (canonical form).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Elem::Int(i) => Some(*i),
            Elem::Str(s) => parse_i64(s),
        }
    }
}

/// A lookup key with its integer form precomputed.
#[derive(Clone, Copy)]
pub struct Probe<'a> {
    pub bytes: &'a [u8],
    pub int: Option<i64>,
}

impl<'a> Probe<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Probe {
            bytes,
            int: parse_i64(bytes),
        }
    }

    #[inline]
    fn matches(&self, e: Elem<'_>) -> bool {
        match e {
            Elem::Str(s) => self.int.is_none() && s == self.bytes,
            Elem::Int(i) => self.int == Some(i),
        }
    }
}

// ---------------------------------------------------------------------------
// Listpack

const TAG_STR_MAX: u8 = 0x7f;
const TAG_UINT6: u8 = 0x80; // 0x80..=0xbf: integers 0..=63
const TAG_I8: u8 = 0xc0;
const TAG_I16: u8 = 0xc1;
const TAG_I32: u8 = 0xc2;
const TAG_I64: u8 = 0xc3;
const TAG_STR16: u8 = 0xc4;
const TAG_STR32: u8 = 0xc5;

/// Appends the encoding of `bytes` (as an integer when canonical).
pub fn lp_encode(out: &mut Vec<u8>, bytes: &[u8]) {
    match parse_i64(bytes) {
        Some(i) => lp_encode_int(out, i),
        None => lp_encode_str(out, bytes),
    }
}

fn lp_encode_int(out: &mut Vec<u8>, i: i64) {
    if (0..64).contains(&i) {
        out.push(TAG_UINT6 + i as u8);
    } else if let Ok(v) = i8::try_from(i) {
        out.push(TAG_I8);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i16::try_from(i) {
        out.push(TAG_I16);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = i32::try_from(i) {
        out.push(TAG_I32);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(TAG_I64);
        out.extend_from_slice(&i.to_le_bytes());
    }
}

fn lp_encode_str(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= TAG_STR_MAX as usize {
        out.push(s.len() as u8);
    } else if let Ok(n) = u16::try_from(s.len()) {
        out.push(TAG_STR16);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(TAG_STR32);
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// Decodes the entry at `pos`: the element and the position after it.
/// The buffer is only ever written by the encoder above, so entries are
/// well formed; a truncated buffer decodes as an empty string.
#[inline]
fn lp_decode(buf: &[u8], pos: usize) -> (Elem<'_>, usize) {
    fn le<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
        let mut b = [0u8; N];
        if let Some(s) = buf.get(at..at + N) {
            b.copy_from_slice(s);
        }
        b
    }
    let tag = buf.get(pos).copied().unwrap_or(0);
    let p = pos + 1;
    let str_at = |start: usize, len: usize| -> (Elem<'_>, usize) {
        let end = (start + len).min(buf.len());
        (Elem::Str(buf.get(start..end).unwrap_or(&[])), end)
    };
    match tag {
        0..=TAG_STR_MAX => str_at(p, tag as usize),
        0x80..=0xbf => (Elem::Int(i64::from(tag - TAG_UINT6)), p),
        TAG_I8 => (Elem::Int(i64::from(i8::from_le_bytes(le(buf, p)))), p + 1),
        TAG_I16 => (Elem::Int(i64::from(i16::from_le_bytes(le(buf, p)))), p + 2),
        TAG_I32 => (Elem::Int(i64::from(i32::from_le_bytes(le(buf, p)))), p + 4),
        TAG_I64 => (Elem::Int(i64::from_le_bytes(le(buf, p))), p + 8),
        TAG_STR16 => str_at(p + 2, u16::from_le_bytes(le(buf, p)) as usize),
        _ => str_at(p + 4, u32::from_le_bytes(le(buf, p)) as usize),
    }
}

/// A compact sequence of elements in one allocation.
#[derive(Clone, Default)]
pub struct Listpack {
    buf: Box<[u8]>,
    count: u32,
}

/// Iterator over the elements of a listpack, with their positions.
pub struct LpIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (usize, Elem<'a>);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        let (e, next) = lp_decode(self.buf, at);
        self.pos = next;
        Some((at, e))
    }
}

impl Listpack {
    pub fn len(&self) -> usize {
        self.count as usize
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }
    pub fn iter(&self) -> LpIter<'_> {
        LpIter {
            buf: &self.buf,
            pos: 0,
        }
    }
    /// The element at byte position `pos` and the position after it.
    pub fn at(&self, pos: usize) -> (Elem<'_>, usize) {
        lp_decode(&self.buf, pos)
    }
    /// The element with index `n`.
    pub fn nth(&self, n: usize) -> Option<Elem<'_>> {
        self.iter().nth(n).map(|(_, e)| e)
    }

    /// Builds a listpack from encoded bytes and their element count.
    pub fn from_encoded(buf: Vec<u8>, count: usize) -> Self {
        Listpack {
            buf: buf.into_boxed_slice(),
            count: count as u32,
        }
    }

    /// Appends encoded elements (`added` of them).
    pub fn append_encoded(&mut self, enc: &[u8], added: usize) {
        let mut v = std::mem::take(&mut self.buf).into_vec();
        v.reserve_exact(enc.len());
        v.extend_from_slice(enc);
        self.buf = v.into_boxed_slice();
        self.count += added as u32;
    }

    /// Replaces bytes `start..end` (whole entries) with `enc`, adjusting the
    /// element count by `delta`.
    pub fn splice(&mut self, start: usize, end: usize, enc: &[u8], delta: isize) {
        if end - start == enc.len() {
            self.buf[start..end].copy_from_slice(enc);
        } else {
            let mut v = Vec::with_capacity(self.buf.len() - (end - start) + enc.len());
            v.extend_from_slice(&self.buf[..start]);
            v.extend_from_slice(enc);
            v.extend_from_slice(&self.buf[end..]);
            self.buf = v.into_boxed_slice();
        }
        self.count = (self.count as isize + delta) as u32;
    }

    /// Position of the first element equal to `p`, stepping `stride`
    /// elements at a time (2 for field/value pairs).
    pub fn find(&self, p: &Probe<'_>, stride: usize) -> Option<usize> {
        let mut it = self.iter();
        while let Some((pos, e)) = it.next() {
            if p.matches(e) {
                return Some(pos);
            }
            for _ in 1..stride {
                it.next();
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Robin Hood table

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(rand::random::<u64>)
}

/// The 64-bit hash of an element (fixed for the life of the process).
#[inline]
pub fn elem_hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(seed()).hash_one(key)
}

/// How a table finds the key inside a stored blob.
pub trait BlobKey {
    fn key(blob: &[u8]) -> &[u8];
}

#[derive(Clone)]
struct Slot {
    hash: u64,
    blob: Box<[u8]>,
}

/// Open-addressing Robin Hood hash table of blobs, sorted by home bucket.
#[derive(Clone)]
pub struct RhTable<K: BlobKey> {
    /// `1 << bits` home buckets followed by an overflow tail.
    slots: Vec<Option<Slot>>,
    len: usize,
    bits: u32,
    _k: PhantomData<K>,
}

const MIN_BITS: u32 = 2;

impl<K: BlobKey> Default for RhTable<K> {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl<K: BlobKey> RhTable<K> {
    pub fn with_capacity(n: usize) -> Self {
        let mut bits = MIN_BITS;
        while (1usize << bits) * 7 / 8 < n {
            bits += 1;
        }
        let mut slots = Vec::new();
        slots.resize_with(1 << bits, || None);
        RhTable {
            slots,
            len: 0,
            bits,
            _k: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        (hash >> (64 - self.bits)) as usize
    }

    /// Slot index of `key`.
    fn find_pos(&self, key: &[u8], hash: u64) -> Option<usize> {
        let home = self.home(hash);
        let mut pos = home;
        while let Some(Some(s)) = self.slots.get(pos) {
            if s.hash == hash && K::key(&s.blob) == key {
                return Some(pos);
            }
            if self.home(s.hash) > home {
                return None;
            }
            pos += 1;
        }
        None
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let h = elem_hash(key);
        self.find_pos(key, h)
            .and_then(|p| self.slots[p].as_ref())
            .map(|s| &s.blob[..])
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.find_pos(key, elem_hash(key)).is_some()
    }

    fn insert_slot(&mut self, mut cur: Slot) {
        let mut cur_home = self.home(cur.hash);
        let mut pos = cur_home;
        loop {
            if pos == self.slots.len() {
                self.slots.push(None);
            }
            match &mut self.slots[pos] {
                empty @ None => {
                    *empty = Some(cur);
                    return;
                }
                Some(res) => {
                    let res_home = (res.hash >> (64 - self.bits)) as usize;
                    if res_home > cur_home {
                        std::mem::swap(res, &mut cur);
                        cur_home = res_home;
                    }
                }
            }
            pos += 1;
        }
    }

    fn resize(&mut self, bits: u32) {
        let old = std::mem::take(&mut self.slots);
        self.bits = bits;
        self.slots.resize_with(1 << bits, || None);
        for s in old.into_iter().flatten() {
            self.insert_slot(s);
        }
    }

    /// Inserts or replaces the blob stored under `key` (the blob's key).
    /// Returns true if the key is new.
    pub fn insert(&mut self, key: &[u8], blob: Box<[u8]>) -> bool {
        let hash = elem_hash(key);
        if let Some(p) = self.find_pos(key, hash) {
            if let Some(s) = self.slots[p].as_mut() {
                s.blob = blob;
            }
            return false;
        }
        if (self.len + 1) * 8 > (1usize << self.bits) * 7 {
            self.resize(self.bits + 1);
        }
        self.insert_slot(Slot { hash, blob });
        self.len += 1;
        true
    }

    /// Inserts a key known to be absent.
    pub fn insert_new(&mut self, key: &[u8], blob: Box<[u8]>) {
        if (self.len + 1) * 8 > (1usize << self.bits) * 7 {
            self.resize(self.bits + 1);
        }
        self.insert_slot(Slot {
            hash: elem_hash(key),
            blob,
        });
        self.len += 1;
    }

    fn remove_at(&mut self, pos: usize) -> Option<Box<[u8]>> {
        let removed = self.slots[pos].take()?;
        let mut p = pos;
        // Backward shift: pull displaced successors one step closer home.
        while p + 1 < self.slots.len() {
            let shift = match &self.slots[p + 1] {
                Some(s) => self.home(s.hash) <= p,
                None => false,
            };
            if !shift {
                break;
            }
            self.slots[p] = self.slots[p + 1].take();
            p += 1;
        }
        let cap = 1usize << self.bits;
        while self.slots.len() > cap && matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        self.len -= 1;
        if self.bits > MIN_BITS && self.len * 8 < cap {
            let mut bits = MIN_BITS;
            while (1usize << bits) < self.len * 2 {
                bits += 1;
            }
            if bits < self.bits {
                self.resize(bits);
            }
        }
        Some(removed.blob)
    }

    /// Removes `key`, returning its blob.
    pub fn remove(&mut self, key: &[u8]) -> Option<Box<[u8]>> {
        let pos = self.find_pos(key, elem_hash(key))?;
        self.remove_at(pos)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.slots.iter().flatten().map(|s| &s.blob[..])
    }

    /// A uniformly random element (`rnd(n)` returns a value below `n`).
    pub fn random(&self, rnd: &mut impl FnMut(usize) -> usize) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        loop {
            if let Some(Some(s)) = self.slots.get(rnd(self.slots.len())) {
                return Some(&s.blob);
            }
        }
    }

    /// Removes and returns a uniformly random element.
    pub fn pop_random(&mut self, rnd: &mut impl FnMut(usize) -> usize) -> Option<Box<[u8]>> {
        if self.len == 0 {
            return None;
        }
        loop {
            let p = rnd(self.slots.len());
            if matches!(self.slots.get(p), Some(Some(_))) {
                return self.remove_at(p);
            }
        }
    }

    /// One SCAN step from `cursor` (a hash value): visits every element
    /// whose hash is at least `cursor` and below the returned cursor (0 when
    /// the scan is complete), at least `count` of them when there are.
    pub fn scan<'a>(&'a self, cursor: u64, count: usize, mut f: impl FnMut(&'a [u8])) -> u64 {
        let mut pos = self.home(cursor);
        let mut emitted = 0usize;
        let mut last_home = usize::MAX;
        while pos < self.slots.len() {
            if let Some(s) = &self.slots[pos] {
                if s.hash >= cursor {
                    let h = self.home(s.hash);
                    if emitted >= count && h != last_home {
                        return (h as u64) << (64 - self.bits);
                    }
                    f(&s.blob);
                    emitted += 1;
                    last_home = h;
                }
            }
            pos += 1;
        }
        0
    }

    /// Heap bytes used.
    pub fn memory_usage(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Slot>>()
            + self.iter().map(|b| b.len()).sum::<usize>()
    }
}

// ---------------------------------------------------------------------------
// Hash

/// Blob layout of a hash table entry: varint field length, field, value.
#[derive(Clone)]
pub struct FieldKey;

fn varint_put(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_get(b: &[u8]) -> (usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    for (i, &byte) in b.iter().enumerate() {
        n |= ((byte & 0x7f) as usize) << shift;
        if byte & 0x80 == 0 {
            return (n, i + 1);
        }
        shift += 7;
    }
    (n, b.len())
}

fn split_pair(blob: &[u8]) -> (&[u8], &[u8]) {
    let (n, used) = varint_get(blob);
    let end = (used + n).min(blob.len());
    (&blob[used..end], &blob[end..])
}

impl BlobKey for FieldKey {
    fn key(blob: &[u8]) -> &[u8] {
        split_pair(blob).0
    }
}

fn pair_blob(field: &[u8], value: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(field.len() + value.len() + 2);
    varint_put(&mut v, field.len());
    v.extend_from_slice(field);
    v.extend_from_slice(value);
    v.into_boxed_slice()
}

#[derive(Clone)]
pub enum HashObj {
    Listpack(Listpack),
    Table(Box<RhTable<FieldKey>>),
}

impl Default for HashObj {
    fn default() -> Self {
        HashObj::Listpack(Listpack::default())
    }
}

impl HashObj {
    pub fn encoding(&self) -> &'static str {
        match self {
            HashObj::Listpack(_) => "listpack",
            HashObj::Table(_) => "hashtable",
        }
    }
    pub fn len(&self) -> usize {
        match self {
            HashObj::Listpack(lp) => lp.len() / 2,
            HashObj::Table(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn memory_usage(&self) -> usize {
        match self {
            HashObj::Listpack(lp) => lp.bytes(),
            HashObj::Table(t) => std::mem::size_of::<RhTable<FieldKey>>() + t.memory_usage(),
        }
    }
    pub fn is_listpack(&self) -> bool {
        matches!(self, HashObj::Listpack(_))
    }

    /// Converts to the table encoding.
    pub fn convert(&mut self) {
        let HashObj::Listpack(lp) = self else { return };
        let mut t = RhTable::with_capacity(lp.len() / 2);
        let mut it = lp.iter();
        while let (Some((_, f)), Some((_, v))) = (it.next(), it.next()) {
            let f = f.to_vec();
            let blob = v.with_bytes(|v| pair_blob(&f, v));
            t.insert(&f, blob);
        }
        *self = HashObj::Table(Box::new(t));
    }

    /// Converts to the table encoding if a field or value of this length
    /// may not be stored in the listpack.
    pub fn convert_for_len(&mut self, len: usize, limits: &EncodingLimits) {
        if self.is_listpack() && len > limits.hash_max_listpack_value {
            self.convert();
        }
    }

    /// Value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<Elem<'_>> {
        match self {
            HashObj::Listpack(lp) => {
                let pos = lp.find(&Probe::new(field), 2)?;
                let (_, vpos) = lp.at(pos);
                Some(lp.at(vpos).0)
            }
            HashObj::Table(t) => t.get(field).map(|b| Elem::Str(split_pair(b).1)),
        }
    }

    pub fn contains(&self, field: &[u8]) -> bool {
        match self {
            HashObj::Listpack(lp) => lp.find(&Probe::new(field), 2).is_some(),
            HashObj::Table(t) => t.contains(field),
        }
    }

    /// Sets `field` to `value`; true if the field is new. Converts to the
    /// table encoding when a length limit is crossed (before inserting) or
    /// the entry limit is exceeded (after).
    pub fn set(&mut self, field: &[u8], value: &[u8], limits: &EncodingLimits) -> bool {
        self.convert_for_len(field.len().max(value.len()), limits);
        let new = match self {
            HashObj::Listpack(lp) => match lp.find(&Probe::new(field), 2) {
                Some(fpos) => {
                    let (_, vpos) = lp.at(fpos);
                    let (_, end) = lp.at(vpos);
                    let mut enc = Vec::with_capacity(value.len() + 5);
                    lp_encode(&mut enc, value);
                    lp.splice(vpos, end, &enc, 0);
                    false
                }
                None => {
                    let mut enc = Vec::with_capacity(field.len() + value.len() + 10);
                    lp_encode(&mut enc, field);
                    lp_encode(&mut enc, value);
                    lp.append_encoded(&enc, 2);
                    true
                }
            },
            HashObj::Table(t) => t.insert(field, pair_blob(field, value)),
        };
        if self.is_listpack() && self.len() > limits.hash_max_listpack_entries {
            self.convert();
        }
        new
    }

    /// Removes `field`; true if it existed.
    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self {
            HashObj::Listpack(lp) => match lp.find(&Probe::new(field), 2) {
                Some(fpos) => {
                    let (_, vpos) = lp.at(fpos);
                    let (_, end) = lp.at(vpos);
                    lp.splice(fpos, end, &[], -2);
                    true
                }
                None => false,
            },
            HashObj::Table(t) => t.remove(field).is_some(),
        }
    }

    /// Visits every field/value pair in storage order.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(Elem<'a>, Elem<'a>)) {
        match self {
            HashObj::Listpack(lp) => {
                let mut it = lp.iter();
                while let (Some((_, k)), Some((_, v))) = (it.next(), it.next()) {
                    f(k, v);
                }
            }
            HashObj::Table(t) => {
                for b in t.iter() {
                    let (k, v) = split_pair(b);
                    f(Elem::Str(k), Elem::Str(v));
                }
            }
        }
    }

    /// A uniformly random pair.
    pub fn random(&self, rnd: &mut impl FnMut(usize) -> usize) -> Option<(Elem<'_>, Elem<'_>)> {
        match self {
            HashObj::Listpack(lp) => {
                let n = lp.len() / 2;
                if n == 0 {
                    return None;
                }
                let i = rnd(n);
                let mut it = lp.iter().skip(2 * i);
                let (_, k) = it.next()?;
                let (_, v) = it.next()?;
                Some((k, v))
            }
            HashObj::Table(t) => t.random(rnd).map(|b| {
                let (k, v) = split_pair(b);
                (Elem::Str(k), Elem::Str(v))
            }),
        }
    }

    /// Every pair, in storage order (for random sampling without repeats).
    pub fn pairs(&self) -> Vec<(Elem<'_>, Elem<'_>)> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|k, val| v.push((k, val)));
        v
    }

    /// One HSCAN step: the listpack encoding returns everything at once.
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut f: impl FnMut(Elem<'a>, Elem<'a>),
    ) -> u64 {
        match self {
            HashObj::Listpack(_) => {
                self.for_each(f);
                0
            }
            HashObj::Table(t) => t.scan(cursor, count, |b| {
                let (k, v) = split_pair(b);
                f(Elem::Str(k), Elem::Str(v))
            }),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    struct Whole;
    impl BlobKey for Whole {
        fn key(b: &[u8]) -> &[u8] {
            b
        }
    }

    #[test]
    fn listpack_roundtrip() {
        let items: Vec<&[u8]> = vec![
            b"0",
            b"63",
            b"64",
            b"-1",
            b"127",
            b"-129",
            b"40000",
            b"-3000000000",
            b"01",
            b"",
            b"x",
        ];
        let mut enc = Vec::new();
        for i in &items {
            lp_encode(&mut enc, i);
        }
        let long = vec![b'a'; 300];
        lp_encode(&mut enc, &long);
        let lp = Listpack::from_encoded(enc, items.len() + 1);
        let got: Vec<Vec<u8>> = lp.iter().map(|(_, e)| e.to_vec()).collect();
        assert_eq!(got.len(), items.len() + 1);
        for (g, i) in got.iter().zip(items.iter()) {
            assert_eq!(&g[..], *i);
        }
        assert_eq!(got[items.len()], long);
        assert!(lp.find(&Probe::new(b"40000"), 1).is_some());
        assert!(lp.find(&Probe::new(b"01"), 1).is_some());
        assert!(lp.find(&Probe::new(b"1"), 1).is_none());
    }

    #[test]
    fn table_scan_survives_growth_and_shrink() {
        let mut t: RhTable<Whole> = RhTable::default();
        for i in 0..1000u32 {
            let k = i.to_string().into_bytes();
            t.insert(&k, k.clone().into_boxed_slice());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut step = 0u32;
        loop {
            cursor = t.scan(cursor, 10, |b| {
                seen.insert(b.to_vec());
            });
            // Grow and shrink while scanning.
            step += 1;
            if step % 3 == 0 {
                for j in 0..200u32 {
                    let k = format!("n{step}-{j}").into_bytes();
                    t.insert(&k, k.clone().into_boxed_slice());
                }
            } else {
                let ks: Vec<Vec<u8>> = t
                    .iter()
                    .filter(|b| b[0] == b'n')
                    .map(|b| b.to_vec())
                    .collect();
                for k in ks {
                    t.remove(&k);
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000u32 {
            assert!(seen.contains(i.to_string().as_bytes()), "missing {i}");
        }
        for i in 0..1000u32 {
            assert!(t.remove(i.to_string().as_bytes()).is_some());
        }
    }

    #[test]
    fn table_ops() {
        let mut t: RhTable<Whole> = RhTable::default();
        for i in 0..5000u32 {
            let k = i.to_string().into_bytes();
            assert!(t.insert(&k, k.clone().into_boxed_slice()));
        }
        assert_eq!(t.len(), 5000);
        for i in (0..5000u32).step_by(2) {
            assert!(t.remove(i.to_string().as_bytes()).is_some());
        }
        for i in 0..5000u32 {
            assert_eq!(t.contains(i.to_string().as_bytes()), i % 2 == 1);
        }
        let mut n = 0;
        let mut c = 0;
        loop {
            c = t.scan(c, 7, |_| n += 1);
            if c == 0 {
                break;
            }
        }
        assert_eq!(n, 2500);
    }
}
