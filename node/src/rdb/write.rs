//! RDB writer: the encodings redis 7.0 writes.

use std::io::Write as _;

use crc::{Digest, Table};

use super::listpack::{self, LpBuilder};
use super::{op, parse_canonical_int, ty, Elem, CRC64, QUICKLIST_PACKED, RDB_VERSION};
use crate::engine::types::hash::{self, HashObj};
use crate::engine::types::list::{self, ListObj};
use crate::engine::types::set::{IntSet, SetObj};
use crate::engine::types::zset::ZSetObj;
use crate::engine::{Object, ValueRef};

/// A list's quicklist node is closed at this many listpack bytes...
const NODE_MAX_BYTES: usize = 8192;
/// ... or this many entries.
const NODE_MAX_ENTRIES: usize = 128;
/// Strings longer than this are LZF-compressed when compression is on
/// (redis's threshold).
const COMPRESS_MIN_LEN: usize = 20;

/// Incremental RDB writer. Every method appends to a caller-provided
/// buffer, and every byte it appends goes through a running CRC64, so an
/// RDB can be produced in chunks (the writer is `Send`: chunks may be
/// produced by different threads in sequence). Call order: [`header`],
/// then for each non-empty database [`select_db`], optionally
/// [`resize_db`], and its [`entry`]s, then [`finish`].
///
/// [`header`]: RdbWriter::header
/// [`select_db`]: RdbWriter::select_db
/// [`resize_db`]: RdbWriter::resize_db
/// [`entry`]: RdbWriter::entry
/// [`finish`]: RdbWriter::finish
pub struct RdbWriter {
    crc: Digest<'static, u64, Table<16>>,
    /// Reused buffer for listpacks whose size is not known in advance.
    scratch: Vec<u8>,
    compress: bool,
}

impl Default for RdbWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RdbWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdbWriter")
            .field("compress", &self.compress)
            .finish_non_exhaustive()
    }
}

impl RdbWriter {
    /// A writer without string compression.
    pub fn new() -> Self {
        RdbWriter {
            crc: CRC64.digest(),
            scratch: Vec::new(),
            compress: false,
        }
    }

    /// Turns LZF compression of strings longer than 20 bytes on or off
    /// (redis's `rdbcompression`; off by default: it costs CPU).
    pub fn with_compression(mut self, on: bool) -> Self {
        self.compress = on;
        self
    }

    fn track(&mut self, out: &[u8], start: usize) {
        self.crc.update(&out[start..]);
    }

    /// Writes the signature ("REDIS0010") and the aux fields, in order
    /// (redis writes `redis-ver`, `redis-bits`, `ctime`, `used-mem`, and for
    /// replication `repl-stream-db`, `repl-id`, `repl-offset`, then
    /// `aof-base`). Values that are canonical integers are written with the
    /// integer encodings, as redis does.
    pub fn header(&mut self, out: &mut Vec<u8>, aux: &[(&str, &[u8])]) {
        let start = out.len();
        out.extend_from_slice(b"REDIS");
        let _ = write!(out, "{RDB_VERSION:04}");
        for (k, v) in aux {
            out.push(op::AUX);
            write_string(out, k.as_bytes(), false);
            write_string(out, v, false);
        }
        self.track(out, start);
    }

    /// Writes a SELECTDB opcode: the following entries belong to `db`.
    pub fn select_db(&mut self, out: &mut Vec<u8>, db: usize) {
        let start = out.len();
        out.push(op::SELECTDB);
        write_len(out, db as u64);
        self.track(out, start);
    }

    /// Writes a RESIZEDB opcode (a sizing hint for the loader: keys and
    /// keys with an expire in the current database).
    pub fn resize_db(&mut self, out: &mut Vec<u8>, keys: u64, expires: u64) {
        let start = out.len();
        out.push(op::RESIZEDB);
        write_len(out, keys);
        write_len(out, expires);
        self.track(out, start);
    }

    /// Writes one key: its expire (absolute unix time in milliseconds) if
    /// any, its type, the key, and the value. Empty collections must not be
    /// written (redis would skip them).
    pub fn entry(
        &mut self,
        out: &mut Vec<u8>,
        key: &[u8],
        value: ValueRef<'_>,
        expire_ms: Option<i64>,
    ) {
        let start = out.len();
        if let Some(ms) = expire_ms {
            out.push(op::EXPIRETIME_MS);
            out.extend_from_slice(&ms.to_le_bytes());
        }
        let type_at = out.len();
        out.push(0);
        write_string(out, key, self.compress);
        out[type_at] = write_body(out, &mut self.scratch, value, self.compress);
        self.track(out, start);
    }

    /// Counts bytes produced by another writer (entries serialized in
    /// parallel) into this stream's checksum, in the order they are
    /// placed in the stream.
    pub fn absorb(&mut self, bytes: &[u8]) {
        self.crc.update(bytes);
    }

    /// Writes the EOF opcode and the 8-byte little-endian CRC64 of
    /// everything written before (including the EOF opcode).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.push(op::EOF);
        self.crc.update(&[op::EOF]);
        let digest = std::mem::replace(&mut self.crc, CRC64.digest());
        out.extend_from_slice(&digest.finalize().to_le_bytes());
    }
}

/// Appends an RDB length.
pub(crate) fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 64 {
        out.push(n as u8);
    } else if n < 16384 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends an integer with the RDB integer string encodings if it fits in
/// 32 bits; false if it does not.
fn write_int_encoded(out: &mut Vec<u8>, v: i64) -> bool {
    if let Ok(x) = i8::try_from(v) {
        out.extend_from_slice(&[0xC0, x as u8]);
    } else if let Ok(x) = i16::try_from(v) {
        out.push(0xC1);
        out.extend_from_slice(&x.to_le_bytes());
    } else if let Ok(x) = i32::try_from(v) {
        out.push(0xC2);
        out.extend_from_slice(&x.to_le_bytes());
    } else {
        return false;
    }
    true
}

/// Appends an RDB string: integer-encoded when it is a canonical integer
/// of 32 bits, LZF-compressed when `compress` and that saves space,
/// otherwise length-prefixed.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = parse_canonical_int(s) {
            if write_int_encoded(out, v) {
                return;
            }
        }
    }
    if compress && s.len() > COMPRESS_MIN_LEN {
        if let Ok(c) = lzf::compress(s) {
            if c.len() + 4 < s.len() {
                out.push(0xC3);
                write_len(out, c.len() as u64);
                write_len(out, s.len() as u64);
                out.extend_from_slice(&c);
                return;
            }
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends an element as an RDB string.
fn write_elem(out: &mut Vec<u8>, e: Elem<'_>, compress: bool) {
    match e {
        Elem::Int(v) => {
            if !write_int_encoded(out, v) {
                let mut b = itoa::Buffer::new();
                let s = b.format(v).as_bytes();
                write_len(out, s.len() as u64);
                out.extend_from_slice(s);
            }
        }
        Elem::Str(s) => write_string(out, s, compress),
    }
}

fn from_hash(e: hash::Elem<'_>) -> Elem<'_> {
    match e {
        hash::Elem::Int(i) => Elem::Int(i),
        hash::Elem::Str(s) => Elem::Str(s),
    }
}

fn from_list(e: list::Elem<'_>) -> Elem<'_> {
    match e {
        list::Elem::Int(i) => Elem::Int(i),
        list::Elem::Str(s) => Elem::Str(s),
    }
}

/// Appends a listpack built in `scratch` as an RDB string.
fn flush_listpack(out: &mut Vec<u8>, scratch: &[u8]) {
    write_len(out, scratch.len() as u64);
    out.extend_from_slice(scratch);
}

/// Appends a zset score to a listpack as redis's `d2string` would store
/// it: integers (below 2^52) as integers, other values in a form `strtod`
/// reads back exactly.
fn push_score(lp: &mut LpBuilder<'_>, score: f64) {
    const LIMIT: f64 = 4_503_599_627_370_496.0; // 2^52
    if score == 0.0 && score.is_sign_negative() {
        lp.push_str(b"-0");
    } else if score > -LIMIT && score < LIMIT && score == score.trunc() {
        lp.push_int(score as i64);
    } else {
        let mut buf = [0u8; 64];
        let mut w = &mut buf[..];
        let _ = write!(w, "{score:e}");
        let n = 64 - w.len();
        lp.push_str(&buf[..n]);
    }
}

/// Appends the type byte and body of `value` (the DUMP payload format
/// without the footer).
pub(crate) fn write_object(out: &mut Vec<u8>, scratch: &mut Vec<u8>, value: ValueRef<'_>) {
    let at = out.len();
    out.push(0);
    out[at] = write_body(out, scratch, value, false);
}

/// Appends the body of `value`; returns its RDB type byte.
fn write_body(out: &mut Vec<u8>, scratch: &mut Vec<u8>, value: ValueRef<'_>, compress: bool) -> u8 {
    match value {
        ValueRef::Str(s) => {
            write_string(out, s, compress);
            ty::STRING
        }
        ValueRef::Obj(Object::Hash(h)) => write_hash(out, scratch, h, compress),
        ValueRef::Obj(Object::List(l)) => write_list(out, l),
        ValueRef::Obj(Object::Set(s)) => write_set(out, s, compress),
        ValueRef::Obj(Object::ZSet(z)) => write_zset(out, scratch, z, compress),
    }
}

fn write_hash(out: &mut Vec<u8>, scratch: &mut Vec<u8>, h: &HashObj, compress: bool) -> u8 {
    if h.is_listpack() {
        scratch.clear();
        let mut lp = LpBuilder::new(scratch);
        h.for_each(|k, v| {
            lp.push(from_hash(k));
            lp.push(from_hash(v));
        });
        lp.finish();
        flush_listpack(out, scratch);
        ty::HASH_LISTPACK
    } else {
        write_len(out, h.len() as u64);
        h.for_each(|k, v| {
            write_elem(out, from_hash(k), compress);
            write_elem(out, from_hash(v), compress);
        });
        ty::HASH
    }
}

fn write_list(out: &mut Vec<u8>, l: &ListObj) -> u8 {
    // First pass: node boundaries (entries and bytes per node), so that
    // the node count and each node's size are known before writing.
    let mut nodes: Vec<(usize, usize)> = Vec::new();
    let (mut n, mut bytes) = (0usize, 7usize);
    for e in l.iter_from(0) {
        let sz = listpack::entry_size(from_list(e));
        if n > 0 && (n >= NODE_MAX_ENTRIES || bytes + sz > NODE_MAX_BYTES) {
            nodes.push((n, bytes));
            (n, bytes) = (0, 7);
        }
        n += 1;
        bytes += sz;
    }
    if n > 0 {
        nodes.push((n, bytes));
    }
    write_len(out, nodes.len() as u64);
    let mut it = l.iter_from(0);
    for (count, bytes) in nodes {
        write_len(out, QUICKLIST_PACKED);
        write_len(out, bytes as u64);
        out.reserve(bytes);
        let mut lp = LpBuilder::new(out);
        for e in it.by_ref().take(count) {
            lp.push(from_list(e));
        }
        debug_assert_eq!((lp.count(), lp.bytes() + 1), (count, bytes));
        lp.finish();
    }
    ty::LIST_QUICKLIST_2
}

fn write_set(out: &mut Vec<u8>, s: &SetObj, compress: bool) -> u8 {
    if let SetObj::Ints(is) = s {
        write_intset(out, is);
        return ty::SET_INTSET;
    }
    write_len(out, s.len() as u64);
    s.for_each(|e| write_elem(out, from_hash(e), compress));
    ty::SET
}

fn write_intset(out: &mut Vec<u8>, is: &IntSet) {
    let n = is.len();
    let lo = is.get(0).unwrap_or(0);
    let hi = is.get(n.saturating_sub(1)).unwrap_or(0);
    let fits = |t: fn(i64) -> bool| t(lo) && t(hi);
    let width: usize = if fits(|v| i16::try_from(v).is_ok()) {
        2
    } else if fits(|v| i32::try_from(v).is_ok()) {
        4
    } else {
        8
    };
    write_len(out, (8 + width * n) as u64);
    out.reserve(8 + width * n);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for v in is.iter() {
        match width {
            2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

fn write_zset(out: &mut Vec<u8>, scratch: &mut Vec<u8>, z: &ZSetObj, compress: bool) -> u8 {
    match z {
        ZSetObj::Listpack(_) => {
            scratch.clear();
            let mut lp = LpBuilder::new(scratch);
            z.for_each(|m, s| {
                lp.push_str(m);
                push_score(&mut lp, s);
            });
            lp.finish();
            flush_listpack(out, scratch);
            ty::ZSET_LISTPACK
        }
        ZSetObj::Skiplist(_) => {
            write_len(out, z.len() as u64);
            // Highest score first, as redis writes (its loader then inserts
            // at the head of the skiplist).
            z.walk(z.len().saturating_sub(1), true, |m, s| {
                write_string(out, m, compress);
                out.extend_from_slice(&s.to_le_bytes());
                true
            });
            ty::ZSET_2
        }
    }
}
