//! Redis 7.0-compatible RDB codec.
//!
//! * [`RdbWriter`] produces an RDB (version [`RDB_VERSION`], the one redis
//!   7.0 writes) incrementally into caller-provided buffers, with the
//!   encodings redis 7.0 itself writes, so that `redis-server` 7.0 loads the
//!   result natively.
//! * [`load`] reads an RDB of version 1 ..= 11 from any [`std::io::Read`]
//!   (wrap sockets and files in a `BufReader`: the loader reads exact byte
//!   counts, often one or a few bytes at a time), and hands every item to a
//!   sink. It stops right after the checksum.
//! * [`dump_payload`] / [`restore_payload`] implement the DUMP / RESTORE
//!   payload format (object encoding, 2-byte RDB version, CRC64).
//!
//! Redis's byte formats of listpacks, ziplists, zipmaps and intsets are
//! implemented here (our in-memory listpacks differ from redis's).
//!
//! Input is never trusted: anything malformed yields an [`RdbError`], and
//! allocations are bounded by the bytes actually read (declared lengths only
//! pre-allocate up to a small cap).
//!
//! Empty collections (which redis never writes, but an old or hand-made file
//! may hold) are skipped by [`load`] like redis does (counted in
//! [`LoadSummary::empty_keys_skipped`]); [`restore_payload`] rejects them.

mod intset;
mod listpack;
mod read;
mod write;
mod ziplist;

#[cfg(test)]
mod tests;

use crc::{Crc, Table, CRC_64_REDIS};

use crate::engine::types::EncodingLimits;
use crate::engine::{Value, ValueRef};

pub use read::{load, Item, LoadSummary};
pub use write::RdbWriter;

/// The RDB version written (redis 7.0's).
pub const RDB_VERSION: u16 = 10;
/// The newest RDB version the loader accepts (redis 7.2's).
pub const RDB_MAX_LOAD_VERSION: u16 = 11;

/// Object type bytes.
pub(crate) mod ty {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Opcodes (bytes that take the place of a type byte).
pub(crate) mod op {
    pub const FUNCTION2: u8 = 245;
    pub const FUNCTION: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Quicklist node containers (RDB type 18).
pub(crate) const QUICKLIST_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_PACKED: u64 = 2;

/// CRC-64/REDIS (Jones polynomial, reflected), as used by RDB files and DUMP
/// payloads.
pub(crate) static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// CRC64 of `bytes` as redis computes it (`crc64(0, bytes, len)`).
pub fn crc64(bytes: &[u8]) -> u64 {
    CRC64.checksum(bytes)
}

/// Errors of the RDB codec.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// Reading failed (an early end of input is an `UnexpectedEof`).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The input does not start with "REDIS".
    #[error("wrong signature: not an RDB file")]
    BadMagic,
    /// A version outside 1 ..= [`RDB_MAX_LOAD_VERSION`] (or, for a DUMP
    /// payload, newer than [`RDB_VERSION`]).
    #[error("unsupported RDB version {0}")]
    UnsupportedVersion(u16),
    /// A type byte or opcode that no redis version defines.
    #[error("unknown RDB object type or opcode {0}")]
    UnknownType(u8),
    /// Malformed content.
    #[error("corrupt RDB: {0}")]
    Corrupt(String),
    /// The stored checksum does not match the content.
    #[error("RDB checksum mismatch: stored {expected:#018x}, computed {actual:#018x}")]
    ChecksumMismatch { expected: u64, actual: u64 },
    /// Valid redis data we cannot represent (modules, streams, pre-GA
    /// functions).
    #[error("unsupported RDB content: {0}")]
    Unsupported(String),
    /// Returned by a sink to stop loading.
    #[error("{0}")]
    Sink(String),
}

impl RdbError {
    pub(crate) fn corrupt(what: impl Into<String>) -> Self {
        RdbError::Corrupt(what.into())
    }
}

/// An element of a redis listpack/ziplist/intset: an integer or a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    /// Calls `f` with the element's string form (no allocation).
    pub(crate) fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Str(s) => f(s),
            Elem::Int(i) => f(itoa::Buffer::new().format(i).as_bytes()),
        }
    }

    pub(crate) fn to_vec(self) -> Vec<u8> {
        self.with_bytes(<[u8]>::to_vec)
    }
}

/// Parses a canonical decimal integer (redis's `string2ll`: no '+', no
/// spaces, no leading zeros, no "-0").
pub(crate) fn parse_canonical_int(b: &[u8]) -> Option<i64> {
    crate::cmd::parse_i64(b)
}

/// The DUMP payload of `value`: its RDB object encoding (type byte and
/// body), the 2-byte little-endian RDB version, and the 8-byte
/// little-endian CRC64 of everything before. Redis 7.0's `RESTORE` accepts
/// it.
pub fn dump_payload(value: ValueRef<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    write::write_object(&mut out, &mut Vec::new(), value);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a DUMP payload (as redis's `DUMP` produces): checks the version
/// (at most [`RDB_VERSION`]) and the checksum, then decodes the object.
/// Trailing bytes, empty collections and anything malformed are errors.
pub fn restore_payload(payload: &[u8], limits: &EncodingLimits) -> Result<Value, RdbError> {
    if payload.len() < 11 {
        return Err(RdbError::corrupt("DUMP payload too short"));
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let ver = u16::from_le_bytes([footer[0], footer[1]]);
    if ver > RDB_VERSION {
        return Err(RdbError::UnsupportedVersion(ver));
    }
    let mut crc_bytes = [0u8; 8];
    crc_bytes.copy_from_slice(&footer[2..]);
    let expected = u64::from_le_bytes(crc_bytes);
    let actual = crc64(&payload[..payload.len() - 8]);
    if expected != actual {
        return Err(RdbError::ChecksumMismatch { expected, actual });
    }
    decode_payload_body(body, limits)
}

/// [`restore_payload`] for a payload whose version and checksum the
/// caller has just verified (RESTORE checks them first, to answer with
/// redis's error): a CRC64 pass over a large value is not repeated.
pub fn restore_verified_payload(
    payload: &[u8],
    limits: &EncodingLimits,
) -> Result<Value, RdbError> {
    if payload.len() < 11 {
        return Err(RdbError::corrupt("DUMP payload too short"));
    }
    decode_payload_body(&payload[..payload.len() - 10], limits)
}

fn decode_payload_body(body: &[u8], limits: &EncodingLimits) -> Result<Value, RdbError> {
    let mut input = body;
    let value = read::read_payload_object(&mut input, limits)?;
    if !input.is_empty() {
        return Err(RdbError::corrupt("trailing bytes in DUMP payload"));
    }
    value.ok_or_else(|| RdbError::corrupt("empty collection in DUMP payload"))
}
