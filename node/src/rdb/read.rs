//! RDB loader: every encoding redis 7.0 (and 7.2's RDB 11) can produce,
//! except modules and streams.

use std::io::Read;

use crc::{Digest, Table};

use super::{
    intset, listpack, op, ty, ziplist, Elem, RdbError, CRC64, QUICKLIST_PACKED, QUICKLIST_PLAIN,
    RDB_MAX_LOAD_VERSION,
};
use crate::engine::types::hash::{HashObj, RhTable};
use crate::engine::types::list::ListObj;
use crate::engine::types::set::SetObj;
use crate::engine::types::zset::ZSetObj;
use crate::engine::types::EncodingLimits;
use crate::engine::{Object, Value};

/// Upper bound of any pre-allocation made from a declared length.
const PREALLOC_CAP: usize = 1 << 16;
/// Chunk size when reading a long string.
const READ_CHUNK: usize = 1 << 20;

/// One item read from an RDB stream, in file order.
pub enum Item {
    /// An aux field of the header (`redis-ver`, `repl-id`, ...).
    Aux { key: Vec<u8>, value: Vec<u8> },
    /// The following entries belong to this database.
    SelectDb(usize),
    /// Sizing hint for the current database.
    ResizeDb { keys: u64, expires: u64 },
    /// A key. `expire_ms` is an absolute unix time in milliseconds; expired
    /// keys are returned too (the caller decides).
    Entry {
        db: usize,
        key: Vec<u8>,
        value: Value,
        expire_ms: Option<i64>,
    },
    /// The code of a function library (FUNCTION LOAD's argument).
    Function(Vec<u8>),
}

/// What [`load`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    /// The file's RDB version.
    pub version: u16,
    /// Entries handed to the sink.
    pub keys: u64,
    /// Keys holding an empty collection, skipped as redis does.
    pub empty_keys_skipped: u64,
    /// Bytes consumed, checksum included.
    pub bytes: u64,
    /// The stored checksum (0: none stored, or not verified).
    pub checksum: u64,
}

/// Reads a whole RDB from `r`, calling `sink` for every item, and returns a
/// summary. Stops right after the checksum (nothing past it is read: in
/// diskless replication an EOF mark follows). Verifies the CRC64 unless the
/// stored checksum is 0 (redis's `rdbchecksum no`) or the version predates
/// checksums (< 5). An error from `sink` stops loading and is returned.
///
/// `r` is read in exact byte counts, often small: wrap unbuffered readers in
/// a `BufReader`. Collections are built with `limits`' encodings.
pub fn load(
    r: &mut impl Read,
    limits: &EncodingLimits,
    sink: &mut impl FnMut(Item) -> Result<(), RdbError>,
) -> Result<LoadSummary, RdbError> {
    let mut inp = Input::new(r);
    let mut magic = [0u8; 9];
    inp.exact(&mut magic)?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::BadMagic);
    }
    if !magic[5..].iter().all(u8::is_ascii_digit) {
        return Err(RdbError::BadMagic);
    }
    let version = magic[5..]
        .iter()
        .fold(0u16, |v, d| v * 10 + u16::from(d - b'0'));
    if version == 0 || version > RDB_MAX_LOAD_VERSION {
        return Err(RdbError::UnsupportedVersion(version));
    }
    let mut summary = LoadSummary {
        version,
        ..LoadSummary::default()
    };
    let mut db = 0usize;
    let mut expire: Option<i64> = None;
    loop {
        let t = inp.u8()?;
        match t {
            op::EXPIRETIME_MS => {
                let mut b = [0u8; 8];
                inp.exact(&mut b)?;
                expire = Some(i64::from_le_bytes(b));
            }
            op::EXPIRETIME => {
                let mut b = [0u8; 4];
                inp.exact(&mut b)?;
                expire = Some(i64::from(i32::from_le_bytes(b)) * 1000);
            }
            op::IDLE => {
                inp.len()?;
            }
            op::FREQ => {
                inp.u8()?;
            }
            op::SELECTDB => {
                db = usize::try_from(inp.len()?)
                    .map_err(|_| RdbError::corrupt("database number out of range"))?;
                sink(Item::SelectDb(db))?;
            }
            op::RESIZEDB => {
                let keys = inp.len()?;
                let expires = inp.len()?;
                sink(Item::ResizeDb { keys, expires })?;
            }
            op::AUX => {
                let key = inp.string()?;
                let value = inp.string()?;
                sink(Item::Aux { key, value })?;
            }
            op::MODULE_AUX => return Err(RdbError::Unsupported("module aux data".into())),
            op::FUNCTION => {
                return Err(RdbError::Unsupported(
                    "pre-GA function format (RDB_OPCODE_FUNCTION)".into(),
                ))
            }
            op::FUNCTION2 => {
                let code = inp.string()?;
                sink(Item::Function(code))?;
            }
            op::EOF => break,
            t => {
                let key = inp.string()?;
                match read_object(&mut inp, t, limits)? {
                    Some(value) => {
                        summary.keys += 1;
                        sink(Item::Entry {
                            db,
                            key,
                            value,
                            expire_ms: expire.take(),
                        })?;
                    }
                    None => {
                        summary.empty_keys_skipped += 1;
                        expire = None;
                    }
                }
            }
        }
    }
    if version >= 5 {
        let actual = std::mem::replace(&mut inp.crc, CRC64.digest()).finalize();
        let mut b = [0u8; 8];
        inp.exact(&mut b)?;
        let expected = u64::from_le_bytes(b);
        if expected != 0 && expected != actual {
            return Err(RdbError::ChecksumMismatch { expected, actual });
        }
        summary.checksum = expected;
    }
    summary.bytes = inp.pos;
    Ok(summary)
}

/// Reads a type byte and an object from a DUMP payload body. `None`: an
/// empty collection.
pub(crate) fn read_payload_object(
    r: &mut &[u8],
    limits: &EncodingLimits,
) -> Result<Option<Value>, RdbError> {
    let mut inp = Input::new(r);
    let t = inp.u8()?;
    if t >= op::FUNCTION2 {
        return Err(RdbError::UnknownType(t));
    }
    read_object(&mut inp, t, limits)
}

/// The reading side: exact reads, a running CRC64 and a byte count.
struct Input<'r, R: Read> {
    r: &'r mut R,
    crc: Digest<'static, u64, Table<16>>,
    pos: u64,
}

impl<'r, R: Read> Input<'r, R> {
    fn new(r: &'r mut R) -> Self {
        Input {
            r,
            crc: CRC64.digest(),
            pos: 0,
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<(), RdbError> {
        self.r.read_exact(buf)?;
        self.crc.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    /// `n` bytes; memory grows with the bytes actually read, not with `n`.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let mut v = Vec::new();
        self.bytes_append(n, &mut v)?;
        Ok(v)
    }

    /// Appends `n` bytes read to `v`.
    fn bytes_append(&mut self, n: u64, v: &mut Vec<u8>) -> Result<(), RdbError> {
        let n = usize::try_from(n).map_err(|_| RdbError::corrupt("string too long"))?;
        let base = v.len();
        v.reserve(n.min(PREALLOC_CAP));
        while v.len() - base < n {
            let from = v.len();
            let chunk = (n - (from - base)).min(READ_CHUNK);
            v.resize(from + chunk, 0);
            self.exact(&mut v[from..])?;
        }
        Ok(())
    }

    /// A length, or (`true`) the special encoding number of a string.
    fn len_or_enc(&mut self) -> Result<(u64, bool), RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => (u64::from(b & 0x3F), false),
            1 => (u64::from(b & 0x3F) << 8 | u64::from(self.u8()?), false),
            2 => match b {
                0x80 => {
                    let mut a = [0u8; 4];
                    self.exact(&mut a)?;
                    (u64::from(u32::from_be_bytes(a)), false)
                }
                0x81 => {
                    let mut a = [0u8; 8];
                    self.exact(&mut a)?;
                    (u64::from_be_bytes(a), false)
                }
                _ => return Err(RdbError::corrupt("unknown length encoding")),
            },
            _ => (u64::from(b & 0x3F), true),
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            (n, false) => Ok(n),
            (_, true) => Err(RdbError::corrupt(
                "encoded string where a length was expected",
            )),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        let mut v = Vec::new();
        self.string_append(&mut v)?;
        Ok(v)
    }

    /// Replaces the content of `v` with a string read (saves an
    /// allocation per element in collection loops).
    fn string_into(&mut self, v: &mut Vec<u8>) -> Result<(), RdbError> {
        v.clear();
        self.string_append(v)
    }

    /// Appends a string read to `v`.
    fn string_append(&mut self, v: &mut Vec<u8>) -> Result<(), RdbError> {
        let (n, enc) = self.len_or_enc()?;
        if !enc {
            return self.bytes_append(n, v);
        }
        let int = match n {
            0 => i64::from(self.u8()? as i8),
            1 => {
                let mut a = [0u8; 2];
                self.exact(&mut a)?;
                i64::from(i16::from_le_bytes(a))
            }
            2 => {
                let mut a = [0u8; 4];
                self.exact(&mut a)?;
                i64::from(i32::from_le_bytes(a))
            }
            3 => {
                let clen = self.len()?;
                let ulen = self.len()?;
                if ulen > clen.saturating_mul(LZF_MAX_RATIO) {
                    return Err(RdbError::corrupt("LZF lengths are implausible"));
                }
                let c = self.bytes(clen)?;
                let ulen = usize::try_from(ulen).map_err(|_| RdbError::corrupt("LZF length"))?;
                v.extend_from_slice(&lzf_decompress(&c, ulen)?);
                return Ok(());
            }
            _ => return Err(RdbError::corrupt("unknown string encoding")),
        };
        v.extend_from_slice(itoa::Buffer::new().format(int).as_bytes());
        Ok(())
    }

    /// A zset score of RDB type 3: a length byte (253 nan, 254 +inf, 255
    /// -inf) and ASCII.
    fn string_double(&mut self) -> Result<f64, RdbError> {
        let n = self.u8()?;
        let v = match n {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            n => {
                let mut b = [0u8; 256];
                let b = &mut b[..usize::from(n)];
                self.exact(b)?;
                parse_score(b)?
            }
        };
        Ok(v)
    }

    fn binary_double(&mut self) -> Result<f64, RdbError> {
        let mut a = [0u8; 8];
        self.exact(&mut a)?;
        Ok(f64::from_le_bytes(a))
    }

    fn count(&mut self) -> Result<usize, RdbError> {
        usize::try_from(self.len()?).map_err(|_| RdbError::corrupt("count out of range"))
    }
}

/// An LZF stream expands at most this much (a 3-byte back reference
/// produces 264 bytes).
const LZF_MAX_RATIO: u64 = 88;

/// Decompresses LZF data (liblzf's format) that must expand to exactly
/// `ulen` bytes.
pub(crate) fn lzf_decompress(inp: &[u8], ulen: usize) -> Result<Vec<u8>, RdbError> {
    let bad = || RdbError::corrupt("bad LZF data");
    let mut out: Vec<u8> = Vec::with_capacity(ulen.min(inp.len().saturating_mul(88)));
    let mut i = 0;
    while i < inp.len() {
        let ctrl = usize::from(inp[i]);
        i += 1;
        if ctrl < 32 {
            let n = ctrl + 1;
            let lit = inp.get(i..i + n).ok_or_else(bad)?;
            if out.len() + n > ulen {
                return Err(bad());
            }
            out.extend_from_slice(lit);
            i += n;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*inp.get(i).ok_or_else(bad)?);
                i += 1;
            }
            let back = ((ctrl & 0x1F) << 8) + usize::from(*inp.get(i).ok_or_else(bad)?) + 1;
            i += 1;
            len += 2;
            if back > out.len() || out.len() + len > ulen {
                return Err(bad());
            }
            let start = out.len() - back;
            if back >= len {
                out.extend_from_within(start..start + len);
            } else {
                for k in start..start + len {
                    let b = out[k];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != ulen {
        return Err(bad());
    }
    Ok(out)
}

/// Parses a score written as text (`strtod`-style: decimal, exponent,
/// inf, nan); NaN is rejected.
fn parse_score(b: &[u8]) -> Result<f64, RdbError> {
    let v = std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| RdbError::corrupt("bad zset score"))?;
    if v.is_nan() {
        return Err(RdbError::corrupt("NaN zset score"));
    }
    Ok(v)
}

fn elem_score(e: Elem<'_>) -> Result<f64, RdbError> {
    match e {
        Elem::Int(i) => Ok(i as f64),
        Elem::Str(s) => parse_score(s),
    }
}

// ---------------------------------------------------------------------------
// Object builders

struct HashBuild<'l> {
    h: HashObj,
    limits: &'l EncodingLimits,
}

impl<'l> HashBuild<'l> {
    /// `hint` must be a count of elements already read (it sizes the
    /// table).
    fn new(hint: usize, limits: &'l EncodingLimits) -> Self {
        let h = if hint > limits.hash_max_listpack_entries {
            HashObj::Table(Box::new(RhTable::with_capacity(hint)))
        } else {
            HashObj::default()
        };
        HashBuild { h, limits }
    }

    fn add(&mut self, f: &[u8], v: &[u8]) -> Result<(), RdbError> {
        if self.h.set(f, v, self.limits) {
            Ok(())
        } else {
            Err(RdbError::corrupt("duplicate hash field"))
        }
    }

    fn add_elems(&mut self, f: Elem<'_>, v: Elem<'_>) -> Result<(), RdbError> {
        f.with_bytes(|f| v.with_bytes(|v| self.add(f, v)))
    }

    fn finish(self) -> Option<Value> {
        (!self.h.is_empty()).then_some(Value::Obj(Object::Hash(self.h)))
    }
}

struct SetBuild<'l> {
    s: SetObj,
    limits: &'l EncodingLimits,
}

impl<'l> SetBuild<'l> {
    /// `hint` must be a count of elements already read (it sizes the
    /// table).
    fn new(hint: usize, limits: &'l EncodingLimits) -> Self {
        let s = if hint > limits.set_max_intset_entries {
            SetObj::Table(Box::new(RhTable::with_capacity(hint)))
        } else {
            SetObj::default()
        };
        SetBuild { s, limits }
    }

    fn add(&mut self, m: &[u8]) -> Result<(), RdbError> {
        if self.s.add(m, self.limits) {
            Ok(())
        } else {
            Err(RdbError::corrupt("duplicate set member"))
        }
    }

    fn finish(self) -> Option<Value> {
        (!self.s.is_empty()).then_some(Value::Obj(Object::Set(self.s)))
    }
}

struct ZSetBuild {
    entries: Vec<(Vec<u8>, f64)>,
}

impl ZSetBuild {
    fn new(hint: usize) -> Self {
        ZSetBuild {
            entries: Vec::with_capacity(hint.min(PREALLOC_CAP)),
        }
    }

    fn add(&mut self, m: Vec<u8>, score: f64) -> Result<(), RdbError> {
        if score.is_nan() {
            return Err(RdbError::corrupt("NaN zset score"));
        }
        self.entries.push((m, score));
        Ok(())
    }

    fn finish(mut self, limits: &EncodingLimits) -> Result<Option<Value>, RdbError> {
        if self.entries.is_empty() {
            return Ok(None);
        }
        {
            let mut members: Vec<&[u8]> = self.entries.iter().map(|(m, _)| &m[..]).collect();
            members.sort_unstable();
            if members.windows(2).any(|w| w[0] == w[1]) {
                return Err(RdbError::corrupt("duplicate zset member"));
            }
        }
        // Stable sort: O(n) on the descending order redis writes.
        self.entries.sort_by(|a, b| {
            a.1.partial_cmp(&b.1)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        });
        Ok(Some(Value::Obj(Object::ZSet(ZSetObj::from_sorted(
            &self.entries,
            limits,
        )))))
    }
}

/// `n` strings read into one buffer (memory grows with the bytes actually
/// read), so that a hash table can be sized once for the real count:
/// inserting elements written in hash order (as our own tables iterate)
/// into a table much smaller than the final size clusters them badly.
struct Arena {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Arena {
    fn read<R: Read>(inp: &mut Input<'_, R>, n: usize) -> Result<Arena, RdbError> {
        let mut a = Arena {
            data: Vec::new(),
            ends: Vec::with_capacity(n.min(PREALLOC_CAP)),
        };
        for _ in 0..n {
            inp.string_append(&mut a.data)?;
            a.ends.push(a.data.len());
        }
        Ok(a)
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.data[start..self.ends[i]]
    }
}

fn list_push(l: &mut ListObj, e: Elem<'_>, limits: &EncodingLimits) {
    e.with_bytes(|b| l.push(b, false, limits.list_max_listpack_size));
}

fn list_value(l: ListObj) -> Option<Value> {
    (!l.is_empty()).then_some(Value::Obj(Object::List(l)))
}

/// Validates a ziplist (`zl`) or listpack and calls `f` on each element.
fn compact_for_each<'a>(
    blob: &'a [u8],
    zl: bool,
    f: impl FnMut(Elem<'a>) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    if zl {
        ziplist::for_each(blob, f)
    } else {
        listpack::for_each(blob, f)
    }
}

/// Feeds the elements of a ziplist (`zl`) or listpack to `f` in pairs; an
/// odd count is an error.
fn compact_pairs<'a>(
    blob: &'a [u8],
    zl: bool,
    mut f: impl FnMut(Elem<'a>, Elem<'a>) -> Result<(), RdbError>,
) -> Result<(), RdbError> {
    let mut pending: Option<Elem<'a>> = None;
    compact_for_each(blob, zl, |e| {
        match pending.take() {
            None => pending = Some(e),
            Some(first) => f(first, e)?,
        }
        Ok(())
    })?;
    if pending.is_some() {
        return Err(RdbError::corrupt(
            "odd number of elements in a pair encoding",
        ));
    }
    Ok(())
}

/// Reads the body of an object of type `t`. `None`: an empty collection.
fn read_object<R: Read>(
    inp: &mut Input<'_, R>,
    t: u8,
    limits: &EncodingLimits,
) -> Result<Option<Value>, RdbError> {
    Ok(match t {
        ty::STRING => Some(Value::Str(inp.string()?)),
        ty::LIST => {
            let n = inp.count()?;
            let mut l = ListObj::new();
            let mut v = Vec::new();
            for _ in 0..n {
                inp.string_into(&mut v)?;
                l.push(&v, false, limits.list_max_listpack_size);
            }
            list_value(l)
        }
        ty::SET => {
            let n = inp.count()?;
            if n > limits.set_max_intset_entries {
                let a = Arena::read(inp, n)?;
                let mut s = SetBuild::new(n, limits);
                for i in 0..n {
                    s.add(a.get(i))?;
                }
                return Ok(s.finish());
            }
            let mut s = SetBuild::new(n, limits);
            let mut m = Vec::new();
            for _ in 0..n {
                inp.string_into(&mut m)?;
                s.add(&m)?;
            }
            s.finish()
        }
        ty::ZSET | ty::ZSET_2 => {
            let n = inp.count()?;
            let mut z = ZSetBuild::new(n);
            for _ in 0..n {
                let m = inp.string()?;
                let score = if t == ty::ZSET {
                    inp.string_double()?
                } else {
                    inp.binary_double()?
                };
                z.add(m, score)?;
            }
            z.finish(limits)?
        }
        ty::HASH => {
            let n = inp.count()?;
            if n > limits.hash_max_listpack_entries {
                let n2 = n
                    .checked_mul(2)
                    .ok_or_else(|| RdbError::corrupt("count out of range"))?;
                let a = Arena::read(inp, n2)?;
                let mut h = HashBuild::new(n, limits);
                for i in 0..n {
                    h.add(a.get(2 * i), a.get(2 * i + 1))?;
                }
                return Ok(h.finish());
            }
            let mut h = HashBuild::new(n, limits);
            let (mut f, mut v) = (Vec::new(), Vec::new());
            for _ in 0..n {
                inp.string_into(&mut f)?;
                inp.string_into(&mut v)?;
                h.add(&f, &v)?;
            }
            h.finish()
        }
        ty::HASH_ZIPMAP => {
            let blob = inp.string()?;
            let mut h = HashBuild::new(0, limits);
            ziplist::zipmap_for_each(&blob, |f, v| h.add(f, v))?;
            h.finish()
        }
        ty::LIST_ZIPLIST => {
            let blob = inp.string()?;
            let mut l = ListObj::new();
            ziplist::for_each(&blob, |e| {
                list_push(&mut l, e, limits);
                Ok(())
            })?;
            list_value(l)
        }
        ty::SET_INTSET => {
            let blob = inp.string()?;
            let mut s = SetBuild::new(0, limits);
            intset::for_each(&blob, |v| s.add(itoa::Buffer::new().format(v).as_bytes()))?;
            s.finish()
        }
        ty::SET_LISTPACK => {
            let blob = inp.string()?;
            let mut s = SetBuild::new(0, limits);
            listpack::for_each(&blob, |e| e.with_bytes(|m| s.add(m)))?;
            s.finish()
        }
        ty::ZSET_ZIPLIST | ty::ZSET_LISTPACK => {
            let blob = inp.string()?;
            let mut z = ZSetBuild::new(0);
            compact_pairs(&blob, t == ty::ZSET_ZIPLIST, |m, s| {
                z.add(m.to_vec(), elem_score(s)?)
            })?;
            z.finish(limits)?
        }
        ty::HASH_ZIPLIST | ty::HASH_LISTPACK => {
            let blob = inp.string()?;
            let mut h = HashBuild::new(0, limits);
            compact_pairs(&blob, t == ty::HASH_ZIPLIST, |f, v| h.add_elems(f, v))?;
            h.finish()
        }
        ty::LIST_QUICKLIST | ty::LIST_QUICKLIST_2 => {
            let nodes = inp.count()?;
            let mut l = ListObj::new();
            for _ in 0..nodes {
                let container = if t == ty::LIST_QUICKLIST_2 {
                    inp.len()?
                } else {
                    QUICKLIST_PACKED
                };
                let blob = inp.string()?;
                let mut push = |e: Elem<'_>| {
                    list_push(&mut l, e, limits);
                    Ok(())
                };
                match container {
                    QUICKLIST_PLAIN => push(Elem::Str(&blob))?,
                    QUICKLIST_PACKED => {
                        compact_for_each(&blob, t == ty::LIST_QUICKLIST, push)?;
                    }
                    _ => return Err(RdbError::corrupt("unknown quicklist container")),
                }
            }
            list_value(l)
        }
        ty::MODULE_PRE_GA | ty::MODULE_2 => {
            return Err(RdbError::Unsupported("module data type".into()))
        }
        ty::STREAM_LISTPACKS | ty::STREAM_LISTPACKS_2 | ty::STREAM_LISTPACKS_3 => {
            return Err(RdbError::Unsupported(
                "stream keys are not supported".into(),
            ))
        }
        t => return Err(RdbError::UnknownType(t)),
    })
}
