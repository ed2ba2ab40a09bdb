//! Sorted sets.
//!
//! Small sets live in a [`Listpack`]: one contiguous byte buffer of
//! entries sorted by (score, member). Each entry is a header byte (score
//! kind in the top three bits, member length in the low five, or 31 and a
//! LEB128 length after it), the score (nothing for 0, 1/2/4 bytes for small
//! integral scores, 8 bytes otherwise) and the member bytes.
//!
//! Large sets use a [`SkipSet`]: a skiplist with spans (O(log n) insert,
//! delete, rank and rank lookup) whose nodes live in an arena addressed by
//! `u32` indexes, plus a chained hash index over the same nodes (each node
//! carries its bucket-chain link) for member → score lookups. The hash
//! index uses power-of-two bucket arrays, so ZSCAN can use redis's
//! reverse-binary cursor, which never misses an element present for the
//! whole scan across resizes.

use std::cmp::Ordering;

use smallvec::SmallVec;

use super::EncodingLimits;

/// A score interval (ZRANGEBYSCORE and friends).
#[derive(Clone, Copy, Debug)]
pub struct ScoreRange {
    pub min: f64,
    pub max: f64,
    pub minex: bool,
    pub maxex: bool,
}

impl ScoreRange {
    #[inline]
    pub fn gte_min(&self, v: f64) -> bool {
        if self.minex {
            v > self.min
        } else {
            v >= self.min
        }
    }
    #[inline]
    pub fn lte_max(&self, v: f64) -> bool {
        if self.maxex {
            v < self.max
        } else {
            v <= self.max
        }
    }
    fn always_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }
}

/// One end of a lexicographic range: `-`, `+`, or a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexVal {
    NegInf,
    PosInf,
    Str(Vec<u8>),
}

/// A lexicographic interval (ZRANGEBYLEX and friends).
#[derive(Clone, Debug)]
pub struct LexRange {
    pub min: LexVal,
    pub minex: bool,
    pub max: LexVal,
    pub maxex: bool,
}

fn cmp_val_bound(v: &[u8], b: &LexVal) -> Ordering {
    match b {
        LexVal::NegInf => Ordering::Greater,
        LexVal::PosInf => Ordering::Less,
        LexVal::Str(s) => v.cmp(s.as_slice()),
    }
}

fn cmp_bounds(a: &LexVal, b: &LexVal) -> Ordering {
    match (a, b) {
        (LexVal::NegInf, LexVal::NegInf) | (LexVal::PosInf, LexVal::PosInf) => Ordering::Equal,
        (LexVal::NegInf, _) | (_, LexVal::PosInf) => Ordering::Less,
        (LexVal::PosInf, _) | (_, LexVal::NegInf) => Ordering::Greater,
        (LexVal::Str(x), LexVal::Str(y)) => x.cmp(y),
    }
}

impl LexRange {
    #[inline]
    pub fn gte_min(&self, v: &[u8]) -> bool {
        let c = cmp_val_bound(v, &self.min);
        if self.minex {
            c == Ordering::Greater
        } else {
            c != Ordering::Less
        }
    }
    #[inline]
    pub fn lte_max(&self, v: &[u8]) -> bool {
        let c = cmp_val_bound(v, &self.max);
        if self.maxex {
            c == Ordering::Less
        } else {
            c != Ordering::Greater
        }
    }
    fn always_empty(&self) -> bool {
        let c = cmp_bounds(&self.min, &self.max);
        c == Ordering::Greater || (c == Ordering::Equal && (self.minex || self.maxex))
    }
}

/// (score, member) ordering of sorted sets.
#[inline]
fn less(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> bool {
    s1 < s2 || (s1 == s2 && m1 < m2)
}

// ---------------------------------------------------------------------------
// Listpack
// ---------------------------------------------------------------------------

const TAG_F64: u8 = 0;
const TAG_ZERO: u8 = 1;
const TAG_I8: u8 = 2;
const TAG_I16: u8 = 3;
const TAG_I32: u8 = 4;
const INLINE_LEN_MAX: usize = 31;

/// The compact encoding: entries sorted by (score, member) in one buffer.
#[derive(Clone, Default)]
pub struct Listpack {
    buf: Vec<u8>,
    len: u32,
}

/// A decoded listpack entry: member bounds in the buffer, score, and the
/// offset of the next entry.
#[derive(Clone, Copy)]
struct LpEntry {
    mstart: usize,
    next: usize,
    score: f64,
}

fn score_tag(score: f64) -> u8 {
    if score == 0.0 {
        return TAG_ZERO;
    }
    if score == score.trunc() && score.abs() <= 2147483647.0 {
        let i = score as i64;
        if i8::try_from(i).is_ok() {
            return TAG_I8;
        }
        if i16::try_from(i).is_ok() {
            return TAG_I16;
        }
        return TAG_I32;
    }
    TAG_F64
}

/// The bytes [`encode_entry`] writes for `member` and `score`.
fn entry_len(member: &[u8], score: f64) -> usize {
    let n = member.len();
    let header = if n < INLINE_LEN_MAX {
        1
    } else {
        // The inline marker, then the length in 7-bit groups.
        1 + (usize::BITS - n.leading_zeros()).div_ceil(7) as usize
    };
    let score_bytes = match score_tag(score) {
        TAG_ZERO => 0,
        TAG_I8 => 1,
        TAG_I16 => 2,
        TAG_I32 => 4,
        _ => 8,
    };
    header + score_bytes + n
}

fn encode_entry(out: &mut SmallVec<[u8; 96]>, member: &[u8], score: f64) {
    let tag = score_tag(score);
    let n = member.len();
    if n < INLINE_LEN_MAX {
        out.push((tag << 5) | n as u8);
    } else {
        out.push((tag << 5) | INLINE_LEN_MAX as u8);
        let mut v = n;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    match tag {
        TAG_ZERO => {}
        TAG_I8 => out.extend_from_slice(&(score as i8).to_le_bytes()),
        TAG_I16 => out.extend_from_slice(&(score as i16).to_le_bytes()),
        TAG_I32 => out.extend_from_slice(&(score as i32).to_le_bytes()),
        _ => out.extend_from_slice(&score.to_le_bytes()),
    }
    out.extend_from_slice(member);
}

impl Listpack {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn decode(&self, off: usize) -> LpEntry {
        let b = &self.buf;
        let h = b[off];
        let tag = h >> 5;
        let mut p = off + 1;
        let mut mlen = usize::from(h & 0x1f);
        if mlen == INLINE_LEN_MAX {
            mlen = 0;
            let mut shift = 0;
            loop {
                let x = b[p];
                p += 1;
                mlen |= usize::from(x & 0x7f) << shift;
                shift += 7;
                if x & 0x80 == 0 {
                    break;
                }
            }
        }
        let score = match tag {
            TAG_ZERO => 0.0,
            TAG_I8 => {
                p += 1;
                f64::from(b[p - 1] as i8)
            }
            TAG_I16 => {
                p += 2;
                f64::from(i16::from_le_bytes([b[p - 2], b[p - 1]]))
            }
            TAG_I32 => {
                p += 4;
                f64::from(i32::from_le_bytes([b[p - 4], b[p - 3], b[p - 2], b[p - 1]]))
            }
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(&b[p..p + 8]);
                p += 8;
                f64::from_le_bytes(a)
            }
        };
        LpEntry {
            mstart: p,
            next: p + mlen,
            score,
        }
    }

    #[inline]
    fn member(&self, e: &LpEntry) -> &[u8] {
        &self.buf[e.mstart..e.next]
    }

    fn iter(&self) -> LpIter<'_> {
        LpIter { lp: self, off: 0 }
    }

    /// Offset of every entry, in order.
    fn offsets(&self) -> Vec<usize> {
        let mut v = Vec::with_capacity(self.len());
        let mut off = 0;
        while off < self.buf.len() {
            v.push(off);
            off = self.decode(off).next;
        }
        v
    }

    fn offset_of_index(&self, idx: usize) -> usize {
        let mut off = 0;
        for _ in 0..idx {
            if off >= self.buf.len() {
                break;
            }
            off = self.decode(off).next;
        }
        off
    }

    /// (offset, entry) of a member.
    fn find(&self, member: &[u8]) -> Option<(usize, LpEntry)> {
        let mut off = 0;
        while off < self.buf.len() {
            let e = self.decode(off);
            if self.member(&e) == member {
                return Some((off, e));
            }
            off = e.next;
        }
        None
    }

    /// Inserts a member known to be absent at its sorted position.
    fn insert(&mut self, member: &[u8], score: f64) {
        // Like redis, the compact encoding does not keep the sign of zero.
        let score = if score == 0.0 { 0.0 } else { score };
        let mut off = 0;
        while off < self.buf.len() {
            let e = self.decode(off);
            if less(score, member, e.score, self.member(&e)) {
                break;
            }
            off = e.next;
        }
        let mut enc: SmallVec<[u8; 96]> = SmallVec::new();
        encode_entry(&mut enc, member, score);
        let n = enc.len();
        let old = self.buf.len();
        self.buf.reserve_exact(n);
        self.buf.resize(old + n, 0);
        self.buf.copy_within(off..old, off + n);
        self.buf[off..off + n].copy_from_slice(&enc);
        self.len += 1;
    }

    /// Appends an entry that sorts after every present one.
    fn push_sorted(&mut self, member: &[u8], score: f64) {
        let score = if score == 0.0 { 0.0 } else { score };
        let mut enc: SmallVec<[u8; 96]> = SmallVec::new();
        encode_entry(&mut enc, member, score);
        // Exact growth, as a listpack's realloc: no doubling slack.
        self.buf.reserve_exact(enc.len());
        self.buf.extend_from_slice(&enc);
        self.len += 1;
    }

    fn remove_bytes(&mut self, start: usize, end: usize, count: usize) {
        self.buf.drain(start..end);
        self.len -= count as u32;
        if self.buf.capacity() > self.buf.len() + 64 {
            self.buf.shrink_to_fit();
        }
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member) {
            Some((off, e)) => {
                self.remove_bytes(off, e.next, 1);
                true
            }
            None => false,
        }
    }

    /// Removes `count` entries starting at index `start`.
    fn remove_index_range(&mut self, start: usize, count: usize) {
        let a = self.offset_of_index(start);
        let mut b = a;
        let mut n = 0;
        while n < count && b < self.buf.len() {
            b = self.decode(b).next;
            n += 1;
        }
        self.remove_bytes(a, b, n);
    }

    fn first_score(&self) -> Option<(f64, &[u8])> {
        if self.buf.is_empty() {
            return None;
        }
        let e = self.decode(0);
        Some((e.score, self.member(&e)))
    }

    fn last(&self) -> Option<LpEntry> {
        let mut off = 0;
        let mut last = None;
        while off < self.buf.len() {
            let e = self.decode(off);
            off = e.next;
            last = Some(e);
        }
        last
    }
}

struct LpIter<'a> {
    lp: &'a Listpack,
    off: usize,
}

impl<'a> Iterator for LpIter<'a> {
    type Item = (&'a [u8], f64);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.off >= self.lp.buf.len() {
            return None;
        }
        let e = self.lp.decode(self.off);
        self.off = e.next;
        Some((&self.lp.buf[e.mstart..e.next], e.score))
    }
}

// ---------------------------------------------------------------------------
// Skiplist + member index
// ---------------------------------------------------------------------------

const NIL: u32 = u32::MAX;
const HEAD: u32 = 0;
const MAX_LEVEL: usize = 32;

#[derive(Clone, Copy, Default)]
struct Level {
    forward: u32,
    span: u32,
    /// Score of the `forward` node, cached here so that a descent compares
    /// without touching nodes it does not move to.
    fscore: f64,
}

impl Level {
    /// Whether the forward node sorts before (score, member).
    #[inline]
    fn forward_before(&self, s: &SkipSet, score: f64, member: &[u8]) -> bool {
        self.fscore < score || (self.fscore == score && &*s.node(self.forward).member < member)
    }
}

#[derive(Clone)]
struct Node {
    member: Box<[u8]>,
    score: f64,
    backward: u32,
    /// Next node in the same hash bucket (or in the free list).
    hnext: u32,
    levels: SmallVec<[Level; 2]>,
}

/// The full encoding: skiplist ordered by (score, member) plus a hash
/// index from member to node.
#[derive(Clone)]
pub struct SkipSet {
    nodes: Vec<Node>,
    free: u32,
    tail: u32,
    level: usize,
    len: usize,
    buckets: Vec<u32>,
    rng: u64,
}

fn member_hash(m: &[u8]) -> u64 {
    crate::engine::table::hash_key(m).rotate_left(17)
}

impl SkipSet {
    fn new() -> SkipSet {
        let head = Node {
            member: Box::default(),
            score: 0.0,
            backward: NIL,
            hnext: NIL,
            levels: std::iter::repeat_n(
                Level {
                    forward: NIL,
                    span: 0,
                    fscore: 0.0,
                },
                MAX_LEVEL,
            )
            .collect(),
        };
        static SEED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0x9e37_79b9);
        let seed = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed);
        SkipSet {
            nodes: vec![head],
            free: NIL,
            tail: NIL,
            level: 1,
            len: 0,
            buckets: vec![NIL; 4],
            rng: seed | 1,
        }
    }

    fn random_level(&mut self) -> usize {
        let mut l = 1;
        loop {
            // xorshift64
            let mut x = self.rng;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.rng = x;
            // p = 1/4
            if x & 3 != 0 || l >= MAX_LEVEL {
                return l;
            }
            l += 1;
        }
    }

    #[inline]
    fn lvl(&self, x: u32, i: usize) -> Level {
        self.nodes[x as usize].levels[i]
    }

    #[inline]
    fn lvl_mut(&mut self, x: u32, i: usize) -> &mut Level {
        &mut self.nodes[x as usize].levels[i]
    }

    #[inline]
    fn node(&self, x: u32) -> &Node {
        &self.nodes[x as usize]
    }

    // --- hash index ---

    fn bucket_of(&self, m: &[u8]) -> usize {
        (member_hash(m) as usize) & (self.buckets.len() - 1)
    }

    fn find(&self, m: &[u8]) -> Option<u32> {
        let mut x = self.buckets[self.bucket_of(m)];
        while x != NIL {
            let n = self.node(x);
            if &*n.member == m {
                return Some(x);
            }
            x = n.hnext;
        }
        None
    }

    fn hash_insert(&mut self, x: u32) {
        let b = self.bucket_of(&self.nodes[x as usize].member);
        self.nodes[x as usize].hnext = self.buckets[b];
        self.buckets[b] = x;
    }

    fn hash_remove(&mut self, x: u32) {
        let b = self.bucket_of(&self.nodes[x as usize].member);
        let next = self.nodes[x as usize].hnext;
        if self.buckets[b] == x {
            self.buckets[b] = next;
            return;
        }
        let mut p = self.buckets[b];
        while p != NIL {
            let pn = self.nodes[p as usize].hnext;
            if pn == x {
                self.nodes[p as usize].hnext = next;
                return;
            }
            p = pn;
        }
    }

    fn rehash(&mut self, size: usize) {
        let size = size.max(4).next_power_of_two();
        if size == self.buckets.len() {
            return;
        }
        self.buckets = vec![NIL; size];
        let mut x = self.lvl(HEAD, 0).forward;
        while x != NIL {
            let next = self.lvl(x, 0).forward;
            self.hash_insert(x);
            x = next;
        }
    }

    fn grow_if_needed(&mut self) {
        if self.len > self.buckets.len() {
            self.rehash(self.buckets.len() * 2);
        }
    }

    fn shrink_if_needed(&mut self) {
        if self.buckets.len() > 4 && self.len * 8 < self.buckets.len() {
            self.rehash(self.len * 2);
        }
    }

    // --- skiplist ---

    fn alloc(&mut self, member: Box<[u8]>, score: f64, levels: usize) -> u32 {
        let lv: SmallVec<[Level; 2]> = std::iter::repeat_n(Level::default(), levels).collect();
        if self.free != NIL {
            let x = self.free;
            let n = &mut self.nodes[x as usize];
            self.free = n.hnext;
            n.member = member;
            n.score = score;
            n.backward = NIL;
            n.hnext = NIL;
            n.levels = lv;
            x
        } else {
            self.nodes.push(Node {
                member,
                score,
                backward: NIL,
                hnext: NIL,
                levels: lv,
            });
            (self.nodes.len() - 1) as u32
        }
    }

    fn release(&mut self, x: u32) -> Box<[u8]> {
        let free = self.free;
        let n = &mut self.nodes[x as usize];
        let m = std::mem::take(&mut n.member);
        n.levels = SmallVec::new();
        n.hnext = free;
        self.free = x;
        m
    }

    /// Links an allocated node at its sorted position.
    fn link(&mut self, x: u32) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0u32; MAX_LEVEL];
        let score = self.node(x).score;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && l.forward_before(self, score, &self.node(x).member) {
                    rank[i] += l.span;
                    cur = l.forward;
                } else {
                    break;
                }
            }
            update[i] = cur;
        }
        let lvl = self.node(x).levels.len();
        if lvl > self.level {
            for i in self.level..lvl {
                rank[i] = 0;
                update[i] = HEAD;
                self.lvl_mut(HEAD, i).span = self.len as u32;
            }
            self.level = lvl;
        }
        for i in 0..lvl {
            let u = self.lvl(update[i], i);
            *self.lvl_mut(x, i) = Level {
                forward: u.forward,
                span: u.span - (rank[0] - rank[i]),
                fscore: u.fscore,
            };
            *self.lvl_mut(update[i], i) = Level {
                forward: x,
                span: rank[0] - rank[i] + 1,
                fscore: score,
            };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(lvl) {
            self.lvl_mut(u, i).span += 1;
        }
        self.nodes[x as usize].backward = if update[0] == HEAD { NIL } else { update[0] };
        let f0 = self.lvl(x, 0).forward;
        if f0 != NIL {
            self.nodes[f0 as usize].backward = x;
        } else {
            self.tail = x;
        }
        self.len += 1;
    }

    /// Predecessors of node `x` on every level.
    fn predecessors(&self, x: u32) -> [u32; MAX_LEVEL] {
        let mut update = [HEAD; MAX_LEVEL];
        let n = self.node(x);
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && l.forward != x && l.forward_before(self, n.score, &n.member)
                {
                    cur = l.forward;
                } else {
                    break;
                }
            }
            update[i] = cur;
        }
        update
    }

    fn unlink(&mut self, x: u32, update: &[u32; MAX_LEVEL]) {
        for (i, &u) in update.iter().enumerate().take(self.level) {
            if self.lvl(u, i).forward == x {
                let xl = self.lvl(x, i);
                let ul = self.lvl_mut(u, i);
                ul.span = ul.span + xl.span - 1;
                ul.forward = xl.forward;
                ul.fscore = xl.fscore;
            } else {
                let ul = self.lvl_mut(u, i);
                ul.span = ul.span.saturating_sub(1);
            }
        }
        let f0 = self.lvl(x, 0).forward;
        let back = self.node(x).backward;
        if f0 != NIL {
            self.nodes[f0 as usize].backward = back;
        } else {
            self.tail = back;
        }
        while self.level > 1 && self.lvl(HEAD, self.level - 1).forward == NIL {
            self.level -= 1;
        }
        self.len -= 1;
    }

    fn insert(&mut self, member: &[u8], score: f64) {
        let lvl = self.random_level();
        let x = self.alloc(member.into(), score, lvl);
        self.link(x);
        self.hash_insert(x);
        self.grow_if_needed();
    }

    fn remove_node(&mut self, x: u32) -> Box<[u8]> {
        let update = self.predecessors(x);
        self.unlink(x, &update);
        self.hash_remove(x);
        self.release(x)
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.find(member) {
            Some(x) => {
                self.remove_node(x);
                self.shrink_if_needed();
                true
            }
            None => false,
        }
    }

    fn update_score(&mut self, x: u32, score: f64) {
        let update = self.predecessors(x);
        let back = self.node(x).backward;
        let fwd = self.lvl(x, 0).forward;
        let m = &self.node(x).member;
        let back_ok = back == NIL || {
            let b = self.node(back);
            less(b.score, &b.member, score, m)
        };
        let fwd_ok = fwd == NIL || {
            let f = self.node(fwd);
            less(score, m, f.score, &f.member)
        };
        if back_ok && fwd_ok {
            self.nodes[x as usize].score = score;
            for (i, &u) in update.iter().enumerate().take(self.node(x).levels.len()) {
                self.lvl_mut(u, i).fscore = score;
            }
            return;
        }
        self.unlink(x, &update);
        self.nodes[x as usize].score = score;
        self.link(x);
    }

    /// 1-based rank of node `x`.
    fn rank_of(&self, x: u32) -> usize {
        let n = self.node(x);
        let mut rank = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward == NIL {
                    break;
                }
                if l.forward == x || l.forward_before(self, n.score, &n.member) {
                    rank += l.span as usize;
                    cur = l.forward;
                    if cur == x {
                        return rank;
                    }
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// Node with the given 1-based rank.
    fn by_rank(&self, rank: usize) -> u32 {
        let mut traversed = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && traversed + l.span as usize <= rank {
                    traversed += l.span as usize;
                    cur = l.forward;
                } else {
                    break;
                }
            }
            if traversed == rank {
                return cur;
            }
        }
        NIL
    }

    /// Number of leading elements whose score satisfies `before` (a
    /// monotone predicate), using the cached forward scores.
    fn count_before_score(&self, before: impl Fn(f64) -> bool) -> usize {
        let mut rank = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && before(l.fscore) {
                    rank += l.span as usize;
                    cur = l.forward;
                } else {
                    break;
                }
            }
        }
        rank
    }

    /// Number of leading elements for which `before` holds, found by
    /// descending the skiplist (assumes `before` is monotone).
    fn count_before(&self, before: impl Fn(&Node) -> bool) -> usize {
        let mut rank = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && before(self.node(l.forward)) {
                    rank += l.span as usize;
                    cur = l.forward;
                } else {
                    break;
                }
            }
        }
        rank
    }

    fn first(&self) -> u32 {
        self.lvl(HEAD, 0).forward
    }

    /// Removes `count` nodes starting at 0-based rank `start`.
    fn remove_rank_range(&mut self, start: usize, count: usize) -> usize {
        let mut update = [HEAD; MAX_LEVEL];
        let mut traversed = 0usize;
        let mut cur = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.lvl(cur, i);
                if l.forward != NIL && traversed + (l.span as usize) <= start {
                    traversed += l.span as usize;
                    cur = l.forward;
                } else {
                    break;
                }
            }
            update[i] = cur;
        }
        let mut removed = 0;
        let mut x = self.lvl(cur, 0).forward;
        while x != NIL && removed < count {
            let next = self.lvl(x, 0).forward;
            self.unlink(x, &update);
            self.hash_remove(x);
            self.release(x);
            removed += 1;
            x = next;
        }
        self.shrink_if_needed();
        removed
    }

    fn memory(&self) -> usize {
        let mut m = self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.buckets.capacity() * 4
            + MAX_LEVEL * std::mem::size_of::<Level>();
        let mut x = self.first();
        while x != NIL {
            let n = self.node(x);
            m += n.member.len().max(8);
            if n.levels.spilled() {
                m += n.levels.len() * std::mem::size_of::<Level>();
            }
            x = n.levels[0].forward;
        }
        m
    }
}

// ---------------------------------------------------------------------------
// ZSetObj
// ---------------------------------------------------------------------------

/// A (score, member) pair borrowed from a set.
type ScoreMember<'a> = (f64, &'a [u8]);

/// A sorted set value.
#[derive(Clone)]
pub enum ZSetObj {
    Listpack(Listpack),
    Skiplist(Box<SkipSet>),
}

impl Default for ZSetObj {
    fn default() -> Self {
        ZSetObj::Listpack(Listpack::default())
    }
}

/// Result of a reverse-binary cursor step.
pub fn rev_cursor_next(cursor: u64, mask: u64) -> u64 {
    let mut v = cursor | !mask;
    v = v.reverse_bits();
    v = v.wrapping_add(1);
    v.reverse_bits()
}

impl ZSetObj {
    pub fn encoding(&self) -> &'static str {
        match self {
            ZSetObj::Listpack(_) => "listpack",
            ZSetObj::Skiplist(_) => "skiplist",
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ZSetObj::Listpack(lp) => lp.len(),
            ZSetObj::Skiplist(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn memory_usage(&self) -> usize {
        match self {
            ZSetObj::Listpack(lp) => lp.buf.capacity(),
            ZSetObj::Skiplist(s) => s.memory() + std::mem::size_of::<SkipSet>(),
        }
    }

    /// Builds a set from entries sorted by (score, member), choosing the
    /// encoding as redis does for computed results (ZUNIONSTORE...).
    pub fn from_sorted(entries: &[(Vec<u8>, f64)], limits: &EncodingLimits) -> ZSetObj {
        let maxlen = entries.iter().map(|(m, _)| m.len()).max().unwrap_or(0);
        if entries.len() <= limits.zset_max_listpack_entries
            && maxlen <= limits.zset_max_listpack_value
        {
            let mut lp = Listpack::default();
            let total: usize = entries.iter().map(|(m, _)| m.len() + 12).sum();
            lp.buf.reserve_exact(total);
            for (m, s) in entries {
                lp.push_sorted(m, *s);
            }
            lp.buf.shrink_to_fit();
            ZSetObj::Listpack(lp)
        } else {
            let mut s = SkipSet::new();
            s.rehash(entries.len());
            for (m, sc) in entries {
                s.insert(m, *sc);
            }
            ZSetObj::Skiplist(Box::new(s))
        }
    }

    /// An empty set in the full encoding.
    pub fn new_skiplist() -> ZSetObj {
        ZSetObj::Skiplist(Box::new(SkipSet::new()))
    }

    /// Converts to the skiplist encoding.
    pub fn convert_to_skiplist(&mut self) {
        if let ZSetObj::Listpack(lp) = self {
            let mut s = SkipSet::new();
            s.rehash(lp.len() + 1);
            for (m, sc) in lp.iter() {
                s.insert(m, sc);
            }
            *self = ZSetObj::Skiplist(Box::new(s));
        }
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match self {
            ZSetObj::Listpack(lp) => lp.find(member).map(|(_, e)| e.score),
            ZSetObj::Skiplist(s) => s.find(member).map(|x| s.node(x).score),
        }
    }

    /// 0-based rank (ascending) of a member, and its score.
    pub fn rank(&self, member: &[u8]) -> Option<(usize, f64)> {
        match self {
            ZSetObj::Listpack(lp) => lp
                .iter()
                .enumerate()
                .find(|(_, (m, _))| *m == member)
                .map(|(i, (_, score))| (i, score)),
            ZSetObj::Skiplist(s) => s.find(member).map(|x| (s.rank_of(x) - 1, s.node(x).score)),
        }
    }

    /// Prepares for adding the members of one command (ZADD): a compact
    /// set that stays compact with all of them gets the room for their
    /// entries in one allocation, instead of growing once per member
    /// through every allocator size class on the way (which left
    /// partly used slabs behind: about 20 bytes of RSS per key when
    /// loading 100k sets of 50 members). Members already present may make
    /// this an over-estimate: [`ZSetObj::release_spare`] gives it back.
    pub fn reserve_for<'m>(
        &mut self,
        members: impl Iterator<Item = (&'m [u8], f64)>,
        limits: &EncodingLimits,
    ) {
        let ZSetObj::Listpack(lp) = self else {
            return;
        };
        let mut count = 0;
        let mut bytes = 0;
        for (m, score) in members {
            if m.len() > limits.zset_max_listpack_value {
                return;
            }
            count += 1;
            bytes += entry_len(m, score);
        }
        if count < 2 || lp.len() + count > limits.zset_max_listpack_entries {
            return;
        }
        lp.buf.reserve_exact(bytes);
    }

    /// Frees capacity left over by [`ZSetObj::reserve_for`].
    pub fn release_spare(&mut self) {
        if let ZSetObj::Listpack(lp) = self {
            if lp.buf.capacity() > lp.buf.len() {
                lp.buf.shrink_to_fit();
            }
        }
    }

    /// Adds a member known to be absent, converting the encoding first if
    /// the set would exceed the compact limits.
    pub fn insert_new(&mut self, member: &[u8], score: f64, limits: &EncodingLimits) {
        if let ZSetObj::Listpack(lp) = self {
            if lp.len() + 1 > limits.zset_max_listpack_entries
                || member.len() > limits.zset_max_listpack_value
            {
                self.convert_to_skiplist();
            }
        }
        match self {
            ZSetObj::Listpack(lp) => lp.insert(member, score),
            ZSetObj::Skiplist(s) => s.insert(member, score),
        }
    }

    /// Changes the score of a present member.
    pub fn update(&mut self, member: &[u8], score: f64) {
        match self {
            ZSetObj::Listpack(lp) => {
                if lp.remove(member) {
                    lp.insert(member, score);
                }
            }
            ZSetObj::Skiplist(s) => {
                if let Some(x) = s.find(member) {
                    s.update_score(x, score);
                }
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self {
            ZSetObj::Listpack(lp) => lp.remove(member),
            ZSetObj::Skiplist(s) => s.remove(member),
        }
    }

    /// Calls `f` on elements from 0-based ascending rank `start`, moving
    /// up (or down when `rev`), while it returns true.
    pub fn walk<'z>(&'z self, start: usize, rev: bool, mut f: impl FnMut(&'z [u8], f64) -> bool) {
        if start >= self.len() {
            return;
        }
        match self {
            ZSetObj::Listpack(lp) => {
                if rev {
                    let offs = lp.offsets();
                    for &o in offs[..=start].iter().rev() {
                        let e = lp.decode(o);
                        if !f(lp.member(&e), e.score) {
                            return;
                        }
                    }
                } else {
                    let mut it = lp.iter();
                    it.off = lp.offset_of_index(start);
                    for (m, s) in it {
                        if !f(m, s) {
                            return;
                        }
                    }
                }
            }
            ZSetObj::Skiplist(s) => {
                let mut x = if rev && start + 1 == s.len {
                    s.tail
                } else if !rev && start == 0 {
                    s.first()
                } else {
                    s.by_rank(start + 1)
                };
                while x != NIL {
                    let n = s.node(x);
                    if !f(&n.member, n.score) {
                        return;
                    }
                    x = if rev { n.backward } else { n.levels[0].forward };
                }
            }
        }
    }

    /// First (lowest) element and last (highest) element.
    fn ends(&self) -> Option<(ScoreMember<'_>, ScoreMember<'_>)> {
        match self {
            ZSetObj::Listpack(lp) => {
                let first = lp.first_score()?;
                let last = lp.last()?;
                Some((first, (last.score, lp.member(&last))))
            }
            ZSetObj::Skiplist(s) => {
                if s.len == 0 {
                    return None;
                }
                let f = s.node(s.first());
                let t = s.node(s.tail);
                Some(((f.score, &f.member), (t.score, &t.member)))
            }
        }
    }

    /// Rank of the first element in a score range.
    pub fn first_in_score(&self, r: &ScoreRange) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let ((fs, _), (ls, _)) = self.ends()?;
        if !r.gte_min(ls) || !r.lte_max(fs) {
            return None;
        }
        let (rank, score) = match self {
            ZSetObj::Listpack(lp) => {
                let (i, (_, s)) = lp.iter().enumerate().find(|(_, (_, s))| r.gte_min(*s))?;
                (i, s)
            }
            ZSetObj::Skiplist(s) => {
                let rank = s.count_before_score(|v| !r.gte_min(v));
                let x = s.by_rank(rank + 1);
                if x == NIL {
                    return None;
                }
                (rank, s.node(x).score)
            }
        };
        r.lte_max(score).then_some(rank)
    }

    /// Rank of the last element in a score range.
    pub fn last_in_score(&self, r: &ScoreRange) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let ((fs, _), (ls, _)) = self.ends()?;
        if !r.gte_min(ls) || !r.lte_max(fs) {
            return None;
        }
        let (rank, score) = match self {
            ZSetObj::Listpack(lp) => {
                let offs = lp.offsets();
                let (i, e) = offs
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, &o)| (i, lp.decode(o)))
                    .find(|(_, e)| r.lte_max(e.score))?;
                (i, e.score)
            }
            ZSetObj::Skiplist(s) => {
                let n = s.count_before_score(|v| r.lte_max(v));
                if n == 0 {
                    return None;
                }
                (n - 1, s.node(s.by_rank(n)).score)
            }
        };
        r.gte_min(score).then_some(rank)
    }

    /// Rank of the first element in a lex range.
    pub fn first_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let ((_, fm), (_, lm)) = self.ends()?;
        if !r.gte_min(lm) || !r.lte_max(fm) {
            return None;
        }
        let (rank, ok) = match self {
            ZSetObj::Listpack(lp) => {
                let (i, (m, _)) = lp.iter().enumerate().find(|(_, (m, _))| r.gte_min(m))?;
                (i, r.lte_max(m))
            }
            ZSetObj::Skiplist(s) => {
                let rank = s.count_before(|n| !r.gte_min(&n.member));
                let x = s.by_rank(rank + 1);
                if x == NIL {
                    return None;
                }
                (rank, r.lte_max(&s.node(x).member))
            }
        };
        ok.then_some(rank)
    }

    /// Rank of the last element in a lex range.
    pub fn last_in_lex(&self, r: &LexRange) -> Option<usize> {
        if r.always_empty() {
            return None;
        }
        let ((_, fm), (_, lm)) = self.ends()?;
        if !r.gte_min(lm) || !r.lte_max(fm) {
            return None;
        }
        let (rank, ok) = match self {
            ZSetObj::Listpack(lp) => {
                let offs = lp.offsets();
                let (i, e) = offs
                    .iter()
                    .enumerate()
                    .rev()
                    .map(|(i, &o)| (i, lp.decode(o)))
                    .find(|(_, e)| r.lte_max(lp.member(e)))?;
                (i, r.gte_min(lp.member(&e)))
            }
            ZSetObj::Skiplist(s) => {
                let n = s.count_before(|n| r.lte_max(&n.member));
                if n == 0 {
                    return None;
                }
                (n - 1, r.gte_min(&s.node(s.by_rank(n)).member))
            }
        };
        ok.then_some(rank)
    }

    /// Removes `count` elements starting at 0-based rank `start`.
    pub fn remove_rank_range(&mut self, start: usize, count: usize) -> usize {
        if count == 0 || start >= self.len() {
            return 0;
        }
        match self {
            ZSetObj::Listpack(lp) => {
                let before = lp.len();
                lp.remove_index_range(start, count);
                before - lp.len()
            }
            ZSetObj::Skiplist(s) => s.remove_rank_range(start, count),
        }
    }

    /// ZREMRANGEBYSCORE: removes the run of elements in range that starts
    /// at the first element with score >= min.
    pub fn remove_score_range(&mut self, r: &ScoreRange) -> usize {
        let start = match self {
            ZSetObj::Listpack(_) => self.first_in_score(r),
            ZSetObj::Skiplist(s) => Some(s.count_before_score(|v| !r.gte_min(v))),
        };
        let Some(start) = start else { return 0 };
        let mut n = 0;
        self.walk(start, false, |_, s| {
            if r.lte_max(s) {
                n += 1;
                true
            } else {
                false
            }
        });
        self.remove_rank_range(start, n)
    }

    /// ZREMRANGEBYLEX, like `remove_score_range`.
    pub fn remove_lex_range(&mut self, r: &LexRange) -> usize {
        let start = match self {
            ZSetObj::Listpack(_) => self.first_in_lex(r),
            ZSetObj::Skiplist(s) => Some(s.count_before(|n| !r.gte_min(&n.member))),
        };
        let Some(start) = start else { return 0 };
        let mut n = 0;
        self.walk(start, false, |m, _| {
            if r.lte_max(m) {
                n += 1;
                true
            } else {
                false
            }
        });
        self.remove_rank_range(start, n)
    }

    /// Removes and returns the lowest (or highest) element.
    pub fn pop(&mut self, max: bool) -> Option<(Vec<u8>, f64)> {
        match self {
            ZSetObj::Listpack(lp) => {
                if lp.is_empty() {
                    return None;
                }
                let (off, e) = if max {
                    let offs = lp.offsets();
                    let o = *offs.last()?;
                    (o, lp.decode(o))
                } else {
                    (0, lp.decode(0))
                };
                let m = lp.member(&e).to_vec();
                lp.remove_bytes(off, e.next, 1);
                Some((m, e.score))
            }
            ZSetObj::Skiplist(s) => {
                let x = if max { s.tail } else { s.first() };
                if x == NIL {
                    return None;
                }
                let score = s.node(x).score;
                let m = s.remove_node(x);
                s.shrink_if_needed();
                Some((m.into_vec(), score))
            }
        }
    }

    /// Calls `f` on every element in ascending order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8], f64)) {
        self.walk(0, false, |m, s| {
            f(m, s);
            true
        });
    }

    /// Every element, in ascending order (for random sampling).
    pub fn entries(&self) -> Vec<(Vec<u8>, f64)> {
        let mut v = Vec::with_capacity(self.len());
        self.for_each(|m, s| v.push((m.to_vec(), s)));
        v
    }

    /// One scan step over the full encoding: visits hash buckets from
    /// `cursor` until `count` elements were seen (or `count*10` buckets).
    /// Returns the next cursor (0 when done). The compact encoding returns
    /// everything with cursor 0.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8], f64)) -> u64 {
        match self {
            ZSetObj::Listpack(lp) => {
                for (m, s) in lp.iter() {
                    f(m, s);
                }
                0
            }
            ZSetObj::Skiplist(s) => {
                let mask = (s.buckets.len() - 1) as u64;
                let mut cur = cursor;
                let mut seen = 0;
                let mut iterations = count.saturating_mul(10);
                loop {
                    let mut x = s.buckets[(cur & mask) as usize];
                    while x != NIL {
                        let n = s.node(x);
                        f(&n.member, n.score);
                        seen += 1;
                        x = n.hnext;
                    }
                    cur = rev_cursor_next(cur, mask);
                    if cur == 0 || seen >= count || iterations == 0 {
                        break;
                    }
                    iterations -= 1;
                }
                cur
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits(n: usize) -> EncodingLimits {
        EncodingLimits {
            zset_max_listpack_entries: n,
            ..EncodingLimits::default()
        }
    }

    fn model_check(z: &ZSetObj, model: &[(Vec<u8>, f64)]) {
        assert_eq!(z.len(), model.len());
        assert_eq!(z.entries(), model);
        for (i, (m, s)) in model.iter().enumerate() {
            assert_eq!(z.score(m), Some(*s));
            assert_eq!(z.rank(m), Some((i, *s)));
        }
        for (i, (m, _)) in model.iter().enumerate() {
            let mut got = None;
            z.walk(i, false, |mm, _| {
                got = Some(mm.to_vec());
                false
            });
            assert_eq!(got.as_ref(), Some(m));
            let mut got = None;
            z.walk(i, true, |mm, _| {
                got = Some(mm.to_vec());
                false
            });
            assert_eq!(got.as_ref(), Some(m));
        }
    }

    #[test]
    fn entry_len_matches_the_encoding() {
        let scores = [
            0.0,
            -0.0,
            1.0,
            -128.0,
            300.0,
            -70000.0,
            2147483647.0,
            1.5,
            f64::INFINITY,
        ];
        for n in [0usize, 1, 30, 31, 32, 127, 128, 16383, 16384, 70000] {
            let member = vec![b'm'; n];
            for &score in &scores {
                let mut enc: SmallVec<[u8; 96]> = SmallVec::new();
                encode_entry(&mut enc, &member, score);
                assert_eq!(
                    entry_len(&member, score),
                    enc.len(),
                    "len {n} score {score}"
                );
            }
        }
    }

    #[test]
    fn a_reserved_multi_member_add_allocates_exactly_and_matches_one_by_one() {
        let lim = limits(128);
        let members: Vec<(Vec<u8>, f64)> = (0..60)
            .map(|i| {
                (
                    format!("member:{:04}", i % 50).into_bytes(),
                    (i * 7 % 13) as f64 - 3.5,
                )
            })
            .collect();
        let mut plain = ZSetObj::default();
        let mut reserved = ZSetObj::default();
        reserved.reserve_for(members.iter().map(|(m, s)| (&m[..], *s)), &lim);
        let ZSetObj::Listpack(lp) = &reserved else {
            panic!("a small set starts as a listpack");
        };
        let room = lp.buf.capacity();
        for (m, s) in &members {
            for z in [&mut plain, &mut reserved] {
                if z.score(m).is_some() {
                    z.update(m, *s);
                } else {
                    z.insert_new(m, *s, &lim);
                }
            }
        }
        let ZSetObj::Listpack(lp) = &reserved else {
            panic!("50 members stay a listpack");
        };
        // Updates re-encode entries: the room reserved for all 60 covers them.
        assert!(lp.buf.len() <= room);
        reserved.release_spare();
        let ZSetObj::Listpack(lp) = &reserved else {
            panic!("still a listpack");
        };
        assert_eq!(lp.buf.capacity(), lp.buf.len());
        assert_eq!(reserved.entries(), plain.entries());
        // Too many for the compact limits: nothing is reserved.
        let mut big = ZSetObj::default();
        big.reserve_for(members.iter().map(|(m, s)| (&m[..], *s)), &limits(10));
        let ZSetObj::Listpack(lp) = &big else {
            panic!("an empty set is a listpack");
        };
        assert_eq!(lp.buf.capacity(), 0);
    }

    #[test]
    fn random_ops_against_model() {
        for &lim in &[1000usize, 0] {
            let mut z = ZSetObj::default();
            let mut model: Vec<(Vec<u8>, f64)> = Vec::new();
            let mut rng = 12345u64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            for step in 0..3000 {
                let r = next();
                let m = format!("m{}", r % 200).into_bytes();
                let score = match r % 5 {
                    0 => 0.0,
                    1 => (r % 7) as f64,
                    2 => -((r % 100000) as f64),
                    3 => (r % 1000) as f64 / 7.0,
                    _ => 1e300 * ((r % 3) as f64 - 1.0),
                };
                let op = (r >> 20) % 4;
                let pos = model.iter().position(|(mm, _)| *mm == m);
                match (op, pos) {
                    (0 | 1, None) => {
                        z.insert_new(&m, score, &limits(lim));
                        model.push((m, score));
                    }
                    (0 | 1, Some(p)) => {
                        z.update(&m, score);
                        model[p].1 = score;
                    }
                    (2, Some(p)) => {
                        assert!(z.remove(&m));
                        model.remove(p);
                    }
                    (2, None) => assert!(!z.remove(&m)),
                    _ => {
                        if !model.is_empty() {
                            let start = (r as usize >> 7) % model.len();
                            let cnt = (r as usize >> 3) % 5;
                            model.sort_by(|a, b| {
                                a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0))
                            });
                            let removed = z.remove_rank_range(start, cnt);
                            let end = (start + cnt).min(model.len());
                            model.drain(start..end);
                            assert_eq!(removed, end - start);
                        }
                    }
                }
                model.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap().then_with(|| a.0.cmp(&b.0)));
                if step % 100 == 0 {
                    model_check(&z, &model);
                }
            }
            model_check(&z, &model);
            assert_eq!(z.encoding(), if lim == 0 { "skiplist" } else { "listpack" });
        }
    }

    #[test]
    fn scan_sees_everything_across_resizes() {
        let mut z = ZSetObj::default();
        for i in 0..1000 {
            z.insert_new(format!("e{i}").as_bytes(), i as f64, &limits(0));
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut extra = 1000;
        loop {
            cursor = z.scan(cursor, 10, |m, _| {
                seen.insert(m.to_vec());
            });
            // grow while scanning
            for _ in 0..20 {
                z.insert_new(format!("e{extra}").as_bytes(), 0.0, &limits(0));
                extra += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..1000 {
            assert!(seen.contains(format!("e{i}").as_bytes()));
        }
    }
}
