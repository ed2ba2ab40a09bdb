//! The list type, stored as a quicklist: a deque of nodes, each node one
//! contiguous byte buffer of packed entries (a listpack-like format).
//!
//! Entry layout: `header [data] backlen`.
//!
//! | header          | meaning                                          |
//! |-----------------|--------------------------------------------------|
//! | `0x00..=0x7f`   | the integer 0..127 itself, no data               |
//! | `0x80..=0xbf`   | string of length `h & 0x3f`                      |
//! | `0xc0..=0xcf`   | string, length `(h & 0x0f) << 8 | next byte`     |
//! | `0xd1..=0xd8`   | integer in `h - 0xd0` little-endian bytes        |
//! | `0xf0`          | string, 4-byte little-endian length              |
//! | `0xf1`          | string, 8-byte little-endian length              |
//!
//! `backlen` is the size of header + data written in 7-bit groups so that
//! it can be read from right to left (the rightmost byte holds the lowest
//! group; a set high bit means another group follows on the left), which
//! lets entries be walked backwards. Strings that are the canonical decimal
//! form of an `i64` are stored as integers.
//!
//! A node keeps free room in front of its first entry (`start`), so pushes
//! and pops at either end are amortised O(1). Nodes are limited like
//! redis's quicklist nodes by `list-max-listpack-size` (a negative value is
//! a size class: -1 = 4 KB ... -5 = 64 KB; a positive one a count of
//! entries, with an 8 KB safety limit). Redis 7.0 reports every list as
//! "quicklist" (the listpack list encoding arrived in 7.2), and so do we.

use std::collections::VecDeque;

use bytes::BytesMut;

/// Size limit of a node when `list-max-listpack-size` is a count.
const SIZE_SAFETY_LIMIT: usize = 8192;

/// One stored element: an integer or a byte string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Int(i) => itoa::Buffer::new().format(i).as_bytes().to_vec(),
            Elem::Str(s) => s.to_vec(),
        }
    }

    /// Whether the element equals `n`.
    #[inline]
    pub fn matches(self, n: &Needle<'_>) -> bool {
        match self {
            Elem::Int(i) => n.int == Some(i),
            Elem::Str(s) => s == n.bytes,
        }
    }

    /// Writes the element as a RESP bulk string.
    #[inline]
    pub fn write_bulk(self, buf: &mut BytesMut) {
        match self {
            Elem::Str(s) => {
                put_len(buf, s.len());
                buf.extend_from_slice(s);
                buf.extend_from_slice(b"\r\n");
            }
            Elem::Int(i) => {
                let mut b = itoa::Buffer::new();
                let s = b.format(i).as_bytes();
                put_len(buf, s.len());
                buf.extend_from_slice(s);
                buf.extend_from_slice(b"\r\n");
            }
        }
    }

    /// Bytes `write_bulk` will produce, approximately.
    pub fn bulk_size_hint(self) -> usize {
        match self {
            Elem::Str(s) => s.len() + 16,
            Elem::Int(_) => 28,
        }
    }
}

#[inline]
fn put_len(buf: &mut BytesMut, n: usize) {
    if n < 10 {
        buf.extend_from_slice(&[b'$', b'0' + n as u8, b'\r', b'\n']);
    } else {
        let mut b = itoa::Buffer::new();
        buf.extend_from_slice(b"$");
        buf.extend_from_slice(b.format(n).as_bytes());
        buf.extend_from_slice(b"\r\n");
    }
}

/// A value searched for (LREM, LPOS, LINSERT), with its integer form.
pub struct Needle<'a> {
    bytes: &'a [u8],
    int: Option<i64>,
}

impl<'a> Needle<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Needle {
            bytes,
            int: as_int(bytes),
        }
    }
}

/// The integer a string is the canonical form of (as redis's string2ll).
#[inline]
fn as_int(v: &[u8]) -> Option<i64> {
    if v.len() > 20 {
        return None;
    }
    crate::cmd::parse_i64(v)
}

/// An entry ready to be written.
struct Enc<'a> {
    v: &'a [u8],
    int: Option<i64>,
    /// Header plus data.
    body: usize,
    /// Header, data and backlen.
    total: usize,
}

fn int_width(i: i64) -> usize {
    if (0..=127).contains(&i) {
        return 0;
    }
    for n in 1..8 {
        let bits = 8 * n as u32;
        let min = -(1i64 << (bits - 1));
        let max = (1i64 << (bits - 1)) - 1;
        if i >= min && i <= max {
            return n;
        }
    }
    8
}

#[inline]
fn backlen_size(l: usize) -> usize {
    let mut n = 1;
    let mut x = l >> 7;
    while x > 0 {
        n += 1;
        x >>= 7;
    }
    n
}

impl<'a> Enc<'a> {
    #[inline]
    fn new(v: &'a [u8]) -> Self {
        let int = as_int(v);
        let body = match int {
            Some(i) => 1 + int_width(i),
            None => {
                let l = v.len();
                let h = if l < 64 {
                    1
                } else if l < 4096 {
                    2
                } else if u32::try_from(l).is_ok() {
                    5
                } else {
                    9
                };
                h + l
            }
        };
        Enc {
            v,
            int,
            body,
            total: body + backlen_size(body),
        }
    }

    /// Writes the entry into `dst`, which is exactly `total` bytes long.
    fn write(&self, dst: &mut [u8]) {
        let mut p = match self.int {
            Some(i) => {
                let n = int_width(i);
                if n == 0 {
                    dst[0] = i as u8;
                } else {
                    dst[0] = 0xd0 + n as u8;
                    dst[1..1 + n].copy_from_slice(&i.to_le_bytes()[..n]);
                }
                1 + n
            }
            None => {
                let l = self.v.len();
                let h = if l < 64 {
                    dst[0] = 0x80 | l as u8;
                    1
                } else if l < 4096 {
                    dst[0] = 0xc0 | (l >> 8) as u8;
                    dst[1] = (l & 0xff) as u8;
                    2
                } else if let Ok(l32) = u32::try_from(l) {
                    dst[0] = 0xf0;
                    dst[1..5].copy_from_slice(&l32.to_le_bytes());
                    5
                } else {
                    dst[0] = 0xf1;
                    dst[1..9].copy_from_slice(&(l as u64).to_le_bytes());
                    9
                };
                dst[h..h + l].copy_from_slice(self.v);
                h + l
            }
        };
        debug_assert_eq!(p, self.body);
        // Backlen: lowest 7-bit group rightmost.
        let n = self.total - self.body;
        let mut x = self.body;
        for i in (0..n).rev() {
            let mut b = (x & 0x7f) as u8;
            x >>= 7;
            if i > 0 {
                b |= 0x80;
            }
            dst[p + i] = b;
        }
        p += n;
        debug_assert_eq!(p, self.total);
    }
}

/// Decodes the entry at `p`: the element and the entry's total size.
#[inline]
fn decode_at(buf: &[u8], p: usize) -> (Elem<'_>, usize) {
    let h = buf[p];
    let (e, body) = match h {
        0x00..=0x7f => (Elem::Int(i64::from(h)), 1),
        0x80..=0xbf => {
            let l = usize::from(h & 0x3f);
            (Elem::Str(&buf[p + 1..p + 1 + l]), 1 + l)
        }
        0xc0..=0xcf => {
            let l = (usize::from(h & 0x0f) << 8) | usize::from(buf[p + 1]);
            (Elem::Str(&buf[p + 2..p + 2 + l]), 2 + l)
        }
        0xd1..=0xd8 => {
            let n = usize::from(h - 0xd0);
            let mut b = [0u8; 8];
            b[..n].copy_from_slice(&buf[p + 1..p + 1 + n]);
            let shift = 64 - 8 * n as u32;
            let v = (i64::from_le_bytes(b) << shift) >> shift;
            (Elem::Int(v), 1 + n)
        }
        0xf0 => {
            let mut b = [0u8; 4];
            b.copy_from_slice(&buf[p + 1..p + 5]);
            let l = u32::from_le_bytes(b) as usize;
            (Elem::Str(&buf[p + 5..p + 5 + l]), 5 + l)
        }
        _ => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[p + 1..p + 9]);
            let l = u64::from_le_bytes(b) as usize;
            (Elem::Str(&buf[p + 9..p + 9 + l]), 9 + l)
        }
    };
    (e, body + backlen_size(body))
}

/// The start of the entry that ends at `end`.
#[inline]
fn entry_before(buf: &[u8], end: usize) -> usize {
    let mut p = end - 1;
    let mut b = buf[p];
    let mut v = usize::from(b & 0x7f);
    let mut shift = 7;
    while b & 0x80 != 0 {
        p -= 1;
        b = buf[p];
        v |= usize::from(b & 0x7f) << shift;
        shift += 7;
    }
    p - v
}

/// One quicklist node: entries live in `buf[start..]`.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    start: usize,
    count: usize,
}

impl Node {
    #[inline]
    fn bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    #[inline]
    fn allows(&self, add: usize, fill: i64) -> bool {
        if self.count == 0 {
            return true;
        }
        let size = self.bytes() + add;
        if fill < 0 {
            size <= size_limit(fill)
        } else {
            (self.count as u64) < fill as u64 && size <= SIZE_SAFETY_LIMIT
        }
    }

    fn push_back(&mut self, e: &Enc) {
        let len = self.buf.len();
        if self.start > 0 && len + e.total > self.buf.capacity() && self.start >= self.bytes() {
            // Reuse the room freed by pops at the front before growing.
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(len - self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + e.total, 0);
        e.write(&mut self.buf[len..]);
        self.count += 1;
    }

    fn push_front(&mut self, e: &Enc) {
        if self.start < e.total {
            let data = self.bytes();
            let slack = e.total + data.clamp(32, 4096);
            let mut nb = Vec::with_capacity(slack + data);
            nb.resize(slack, 0);
            nb.extend_from_slice(&self.buf[self.start..]);
            self.buf = nb;
            self.start = slack;
        }
        self.start -= e.total;
        e.write(&mut self.buf[self.start..self.start + e.total]);
        self.count += 1;
    }

    fn reset_if_empty(&mut self) {
        if self.count == 0 {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    fn pop_front(&mut self) -> Vec<u8> {
        let (e, t) = decode_at(&self.buf, self.start);
        let v = e.to_vec();
        self.start += t;
        self.count -= 1;
        self.reset_if_empty();
        v
    }

    fn pop_back(&mut self) -> Vec<u8> {
        let s = entry_before(&self.buf, self.buf.len());
        let v = decode_at(&self.buf, s).0.to_vec();
        self.buf.truncate(s);
        self.count -= 1;
        self.reset_if_empty();
        v
    }

    /// Byte offset of entry `k` (k < count), walking from the nearer end.
    fn offset_of(&self, k: usize) -> usize {
        if k <= self.count / 2 {
            let mut p = self.start;
            for _ in 0..k {
                p += decode_at(&self.buf, p).1;
            }
            p
        } else {
            let mut p = self.buf.len();
            for _ in k..self.count {
                p = entry_before(&self.buf, p);
            }
            p
        }
    }

    /// Removes the first `n` entries (n < count).
    fn drop_front(&mut self, n: usize) {
        self.start = self.offset_of(n);
        self.count -= n;
        self.reset_if_empty();
    }

    /// Removes the last `n` entries (n < count).
    fn drop_back(&mut self, n: usize) {
        let off = self.offset_of(self.count - n);
        self.buf.truncate(off);
        self.count -= n;
        self.reset_if_empty();
    }

    /// Splits off the entries from `k` on into a new node.
    fn split_off(&mut self, k: usize) -> Node {
        let off = self.offset_of(k);
        let tail = self.buf[off..].to_vec();
        self.buf.truncate(off);
        let n = Node {
            buf: tail,
            start: 0,
            count: self.count - k,
        };
        self.count = k;
        n
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() > self.buf.len() + self.buf.len() / 16 {
            self.buf.shrink_to_fit();
        }
    }
}

fn size_limit(fill: i64) -> usize {
    match fill {
        -1 => 4096,
        -2 => 8192,
        -3 => 16384,
        -4 => 32768,
        _ => 65536,
    }
}

fn node_limit(fill: i64) -> usize {
    if fill < 0 {
        size_limit(fill)
    } else {
        SIZE_SAFETY_LIMIT
    }
}

/// A list value.
#[derive(Clone, Default)]
pub struct ListObj {
    nodes: VecDeque<Node>,
    len: usize,
}

impl ListObj {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.nodes.iter().map(|n| n.buf.capacity()).sum::<usize>()
    }

    /// Bytes of packed entries (a reply size hint).
    pub fn packed_bytes(&self) -> usize {
        self.nodes.iter().map(Node::bytes).sum()
    }

    /// Adds an element at the head (`head`) or the tail.
    pub fn push(&mut self, v: &[u8], head: bool, fill: i64) {
        let e = Enc::new(v);
        if self.nodes.capacity() == 0 {
            // Most lists have one node: do not let the deque round up.
            self.nodes.reserve_exact(1);
        }
        if head {
            match self.nodes.front_mut() {
                Some(n) if n.allows(e.total, fill) => n.push_front(&e),
                full => {
                    // The old head node is complete: give back its spare room.
                    if let Some(n) = full {
                        n.compact();
                    }
                    let mut n = Node {
                        buf: Vec::with_capacity(e.total),
                        ..Node::default()
                    };
                    n.push_back(&e);
                    self.nodes.push_front(n);
                }
            }
        } else {
            match self.nodes.back_mut() {
                Some(n) if n.allows(e.total, fill) => n.push_back(&e),
                full => {
                    if let Some(n) = full {
                        n.compact();
                    }
                    let mut n = Node {
                        buf: Vec::with_capacity(e.total),
                        ..Node::default()
                    };
                    n.push_back(&e);
                    self.nodes.push_back(n);
                }
            }
        }
        self.len += 1;
    }

    /// Called after a command added elements: a small single-node list
    /// gives back its spare room (small lists are the common case, and
    /// reallocating a few hundred bytes is cheap).
    pub fn shrink_small(&mut self) {
        if self.nodes.len() == 1 {
            let n = &mut self.nodes[0];
            if n.buf.len() <= 1024 && (n.start > 0 || n.buf.capacity() > n.buf.len() + 8) {
                n.compact();
                n.buf.shrink_to_fit();
            }
        }
    }

    /// Removes and returns the head (`head`) or tail element.
    pub fn pop(&mut self, head: bool) -> Option<Vec<u8>> {
        let v = if head {
            let n = self.nodes.front_mut()?;
            let v = n.pop_front();
            if n.count == 0 {
                self.nodes.pop_front();
            }
            v
        } else {
            let n = self.nodes.back_mut()?;
            let v = n.pop_back();
            if n.count == 0 {
                self.nodes.pop_back();
            }
            v
        };
        self.len -= 1;
        Some(v)
    }

    /// The node holding element `idx` and the element's rank in it.
    fn locate(&self, idx: usize) -> Option<(usize, usize)> {
        if idx >= self.len {
            return None;
        }
        if idx < self.len / 2 {
            let mut i = idx;
            for (ni, n) in self.nodes.iter().enumerate() {
                if i < n.count {
                    return Some((ni, i));
                }
                i -= n.count;
            }
        } else {
            // Distance from the tail.
            let mut r = self.len - 1 - idx;
            for (ni, n) in self.nodes.iter().enumerate().rev() {
                if r < n.count {
                    return Some((ni, n.count - 1 - r));
                }
                r -= n.count;
            }
        }
        None
    }

    /// The element at `idx` (0-based from the head).
    pub fn get(&self, idx: usize) -> Option<Elem<'_>> {
        let (ni, k) = self.locate(idx)?;
        let n = &self.nodes[ni];
        Some(decode_at(&n.buf, n.offset_of(k)).0)
    }

    /// Iterates from element `idx` towards the tail.
    pub fn iter_from(&self, idx: usize) -> Iter<'_> {
        match self.locate(idx) {
            Some((ni, k)) => Iter {
                list: self,
                node: ni,
                pos: self.nodes[ni].offset_of(k),
            },
            None => Iter {
                list: self,
                node: self.nodes.len(),
                pos: 0,
            },
        }
    }

    /// Iterates from the tail towards the head.
    pub fn iter_rev(&self) -> RevIter<'_> {
        RevIter {
            list: self,
            node: self.nodes.len(),
            pos: self.nodes.back().map_or(0, |n| n.buf.len()),
        }
    }

    /// Replaces element `idx`. False if out of range.
    pub fn set(&mut self, idx: usize, v: &[u8], fill: i64) -> bool {
        let Some((ni, k)) = self.locate(idx) else {
            return false;
        };
        let e = Enc::new(v);
        let n = &mut self.nodes[ni];
        let off = n.offset_of(k);
        let old = decode_at(&n.buf, off).1;
        let mut enc = vec![0u8; e.total];
        e.write(&mut enc);
        n.buf.splice(off..off + old, enc);
        self.fix_oversized(ni, fill);
        true
    }

    /// Inserts `v` before (or after) the first element equal to `pivot`.
    /// False if there is no such element.
    pub fn insert(&mut self, pivot: &Needle<'_>, v: &[u8], after: bool, fill: i64) -> bool {
        let mut found = None;
        'outer: for (ni, n) in self.nodes.iter().enumerate() {
            let mut p = n.start;
            while p < n.buf.len() {
                let (el, t) = decode_at(&n.buf, p);
                if el.matches(pivot) {
                    found = Some((ni, if after { p + t } else { p }));
                    break 'outer;
                }
                p += t;
            }
        }
        let Some((ni, off)) = found else {
            return false;
        };
        let e = Enc::new(v);
        let mut enc = vec![0u8; e.total];
        e.write(&mut enc);
        let n = &mut self.nodes[ni];
        n.buf.splice(off..off, enc);
        n.count += 1;
        self.len += 1;
        self.fix_oversized(ni, fill);
        true
    }

    /// Splits node `ni` in two when it outgrew its limit.
    fn fix_oversized(&mut self, ni: usize, fill: i64) {
        let n = &mut self.nodes[ni];
        let over = if fill >= 0 {
            n.count as u64 > fill.max(1) as u64 || n.bytes() > SIZE_SAFETY_LIMIT
        } else {
            n.bytes() > size_limit(fill)
        };
        if !over || n.count < 2 {
            return;
        }
        let k = n.count / 2;
        let tail = n.split_off(k);
        n.compact();
        self.nodes.insert(ni + 1, tail);
    }

    /// Removes up to `count` elements equal to `v` (all if 0), from the
    /// head when `count >= 0`, else from the tail. Returns how many.
    pub fn remove(&mut self, v: &Needle<'_>, count: i64, fill: i64) -> usize {
        let from_tail = count < 0;
        let mut left = if count == 0 {
            usize::MAX
        } else {
            count.unsigned_abs().try_into().unwrap_or(usize::MAX)
        };
        let mut removed = 0;
        let nn = self.nodes.len();
        let mut offs: Vec<(usize, usize, bool)> = Vec::new();
        for step in 0..nn {
            if left == 0 {
                break;
            }
            let ni = if from_tail { nn - 1 - step } else { step };
            let n = &mut self.nodes[ni];
            offs.clear();
            let mut p = n.start;
            let mut any = false;
            while p < n.buf.len() {
                let (el, t) = decode_at(&n.buf, p);
                let m = el.matches(v);
                any |= m;
                offs.push((p, t, m));
                p += t;
            }
            if !any {
                continue;
            }
            // Decide which matches go, nearest to the starting end first.
            let mut drop = vec![false; offs.len()];
            let order: Box<dyn Iterator<Item = usize>> = if from_tail {
                Box::new((0..offs.len()).rev())
            } else {
                Box::new(0..offs.len())
            };
            for i in order {
                if left == 0 {
                    break;
                }
                if offs[i].2 {
                    drop[i] = true;
                    left -= 1;
                }
            }
            let mut nb = Vec::with_capacity(n.bytes());
            let mut kept = 0;
            for (i, &(p, t, _)) in offs.iter().enumerate() {
                if drop[i] {
                    removed += 1;
                } else {
                    nb.extend_from_slice(&n.buf[p..p + t]);
                    kept += 1;
                }
            }
            n.buf = nb;
            n.start = 0;
            n.count = kept;
        }
        if removed > 0 {
            self.len -= removed;
            self.nodes.retain(|n| n.count > 0);
            self.merge_small(fill);
        }
        removed
    }

    /// Merges neighbouring nodes whose entries fit in one node.
    fn merge_small(&mut self, fill: i64) {
        let limit = node_limit(fill);
        let max_count = if fill >= 0 {
            fill.max(1) as u64
        } else {
            u64::MAX
        };
        let mut i = 0;
        while i + 1 < self.nodes.len() {
            let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
            if a.bytes() + b.bytes() <= limit && (a.count + b.count) as u64 <= max_count {
                if let Some(b) = self.nodes.remove(i + 1) {
                    let a = &mut self.nodes[i];
                    a.compact();
                    a.buf.extend_from_slice(&b.buf[b.start..]);
                    a.count += b.count;
                }
            } else {
                i += 1;
            }
        }
    }

    /// Removes `front` elements from the head and `back` from the tail.
    pub fn trim(&mut self, mut front: usize, mut back: usize) {
        if front.saturating_add(back) >= self.len {
            self.nodes.clear();
            self.len = 0;
            return;
        }
        self.len -= front + back;
        while front > 0 {
            let Some(n) = self.nodes.front_mut() else {
                break;
            };
            if n.count <= front {
                front -= n.count;
                self.nodes.pop_front();
            } else {
                n.drop_front(front);
                front = 0;
            }
        }
        while back > 0 {
            let Some(n) = self.nodes.back_mut() else {
                break;
            };
            if n.count <= back {
                back -= n.count;
                self.nodes.pop_back();
            } else {
                n.drop_back(back);
                back = 0;
            }
        }
    }
}

/// Forward iterator over a list's elements.
pub struct Iter<'a> {
    list: &'a ListObj,
    node: usize,
    pos: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        loop {
            let n = self.list.nodes.get(self.node)?;
            if self.pos < n.buf.len() {
                let (e, t) = decode_at(&n.buf, self.pos);
                self.pos += t;
                return Some(e);
            }
            self.node += 1;
            self.pos = self.list.nodes.get(self.node)?.start;
        }
    }
}

/// Backward iterator over a list's elements.
pub struct RevIter<'a> {
    list: &'a ListObj,
    /// One past the node being read.
    node: usize,
    /// End of the next entry in that node.
    pos: usize,
}

impl<'a> Iterator for RevIter<'a> {
    type Item = Elem<'a>;

    #[inline]
    fn next(&mut self) -> Option<Elem<'a>> {
        loop {
            if self.node == 0 {
                return None;
            }
            let n = &self.list.nodes[self.node - 1];
            if self.pos > n.start {
                let s = entry_before(&n.buf, self.pos);
                self.pos = s;
                return Some(decode_at(&n.buf, s).0);
            }
            self.node -= 1;
            if self.node == 0 {
                return None;
            }
            self.pos = self.list.nodes[self.node - 1].buf.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(l: &ListObj) -> Vec<Vec<u8>> {
        l.iter_from(0).map(|e| e.to_vec()).collect()
    }

    #[test]
    fn encode_roundtrip() {
        let vals: Vec<Vec<u8>> = vec![
            b"0".to_vec(),
            b"127".to_vec(),
            b"128".to_vec(),
            b"-1".to_vec(),
            b"-128".to_vec(),
            b"-129".to_vec(),
            b"9223372036854775807".to_vec(),
            b"-9223372036854775808".to_vec(),
            b"007".to_vec(),
            b"-0".to_vec(),
            b"".to_vec(),
            vec![b'x'; 63],
            vec![b'y'; 64],
            vec![b'z'; 4095],
            vec![b'w'; 4096],
            vec![b'v'; 70000],
        ];
        for fill in [-2, -1, 1, 3, 0] {
            let mut l = ListObj::new();
            for v in &vals {
                l.push(v, false, fill);
            }
            assert_eq!(items(&l), vals);
            let rev: Vec<Vec<u8>> = l.iter_rev().map(|e| e.to_vec()).collect();
            let mut exp = vals.clone();
            exp.reverse();
            assert_eq!(rev, exp);
            for (i, v) in vals.iter().enumerate() {
                assert_eq!(l.get(i).map(|e| e.to_vec()).as_ref(), Some(v));
            }
            let mut l2 = ListObj::new();
            for v in vals.iter().rev() {
                l2.push(v, true, fill);
            }
            assert_eq!(items(&l2), vals);
            for v in &vals {
                assert_eq!(l2.pop(true).as_ref(), Some(v));
            }
            assert!(l2.is_empty());
        }
    }

    #[test]
    fn model_check() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for fill in [-1, -2, 2, 5] {
            let mut l = ListObj::new();
            let mut m: std::collections::VecDeque<Vec<u8>> = Default::default();
            for _ in 0..20000 {
                let v: Vec<u8> = match rng.gen_range(0..4) {
                    0 => rng.gen_range(-300i64..300).to_string().into_bytes(),
                    1 => vec![b'a' + rng.gen_range(0..3u8); rng.gen_range(0..5)],
                    2 => vec![b'q'; rng.gen_range(60..200)],
                    _ => format!("e{}", rng.gen_range(0..10)).into_bytes(),
                };
                match rng.gen_range(0..12) {
                    0..=2 => {
                        l.push(&v, true, fill);
                        m.push_front(v);
                    }
                    3..=5 => {
                        l.push(&v, false, fill);
                        m.push_back(v);
                    }
                    6 => assert_eq!(l.pop(true), m.pop_front()),
                    7 => assert_eq!(l.pop(false), m.pop_back()),
                    8 if !m.is_empty() => {
                        let i = rng.gen_range(0..m.len());
                        assert!(l.set(i, &v, fill));
                        m[i] = v;
                    }
                    9 if !m.is_empty() => {
                        let i = rng.gen_range(0..m.len());
                        let pivot = m[i].clone();
                        let after = rng.gen_bool(0.5);
                        assert!(l.insert(&Needle::new(&pivot), &v, after, fill));
                        let j = m.iter().position(|x| *x == pivot).unwrap();
                        m.insert(if after { j + 1 } else { j }, v);
                    }
                    10 if !m.is_empty() => {
                        let i = rng.gen_range(0..m.len());
                        let target = m[i].clone();
                        let count: i64 = rng.gen_range(-2..3);
                        let got = l.remove(&Needle::new(&target), count, fill);
                        let mut left = if count == 0 {
                            usize::MAX
                        } else {
                            count.unsigned_abs() as usize
                        };
                        let mut n = 0;
                        if count >= 0 {
                            let mut i = 0;
                            while i < m.len() && left > 0 {
                                if m[i] == target {
                                    m.remove(i);
                                    left -= 1;
                                    n += 1;
                                } else {
                                    i += 1;
                                }
                            }
                        } else {
                            let mut i = m.len();
                            while i > 0 && left > 0 {
                                i -= 1;
                                if m[i] == target {
                                    m.remove(i);
                                    left -= 1;
                                    n += 1;
                                }
                            }
                        }
                        assert_eq!(got, n);
                    }
                    11 if m.len() > 4 => {
                        let f = rng.gen_range(0..3);
                        let b = rng.gen_range(0..3);
                        l.trim(f, b);
                        for _ in 0..f {
                            m.pop_front();
                        }
                        for _ in 0..b {
                            m.pop_back();
                        }
                    }
                    _ => {}
                }
                assert_eq!(l.len(), m.len());
            }
            let all: Vec<Vec<u8>> = m.iter().cloned().collect();
            assert_eq!(items(&l), all);
            let rev: Vec<Vec<u8>> = l.iter_rev().map(|e| e.to_vec()).collect();
            let mut exp = all.clone();
            exp.reverse();
            assert_eq!(rev, exp);
            for i in (0..m.len()).step_by(7) {
                let from: Vec<Vec<u8>> = l.iter_from(i).take(5).map(|e| e.to_vec()).collect();
                let exp: Vec<Vec<u8>> = m.iter().skip(i).take(5).cloned().collect();
                assert_eq!(from, exp);
            }
        }
    }
}
