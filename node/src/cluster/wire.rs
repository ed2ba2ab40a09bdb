//! The Redis 7.0 cluster-bus message codec: pure functions from bytes to
//! [`Message`] and back, no I/O.
//!
//! A bus connection carries back-to-back messages. Each one is a fixed
//! 2256-byte header (the C `clusterMsg`) followed by a body whose shape
//! depends on the header `type`:
//!
//! | type | body | total length |
//! |---|---|---|
//! | PING, PONG, MEET | `count` gossip entries (104 bytes each), then ping extensions | 2256 + 104·count + extensions |
//! | FAIL | node name | 2296 |
//! | PUBLISH, PUBLISHSHARD | channel len, message len (u32 each), channel, message | 2264 + c + m |
//! | AUTH_REQUEST, AUTH_ACK, MFSTART | none | 2256 |
//! | UPDATE | configEpoch, node name, slot bitmap | 4352 |
//! | MODULE | module id (8 raw bytes), len (u32), type (u8), payload | 2269 + len |
//! | anything else | opaque | whatever `totlen` says |
//!
//! Rules that hold everywhere: integers are big-endian (the MODULE id is the
//! one exception: it is copied raw in the sender's byte order); node names
//! are exactly 40 bytes with no terminator; strings are NUL-terminated
//! inside a fixed zero-filled area; reserved bytes are zero; a message must
//! be exactly as long as its type requires (redis silently drops it
//! otherwise, so [`decode`] rejects it too).
//!
//! A stream reader takes 8 bytes, asks [`frame_len`] for the total length,
//! reads the rest and hands the whole message to [`decode`].
//!
//! Valkey 8 "light" PUBLISH headers (type | 0x8000, 24-byte header) are not
//! supported: Valkey only sends them to peers advertising node flag 0x0800,
//! which we never set, so [`decode`] rejects that type bit.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

/// Length of a node name (and of a shard id).
pub const NAME_LEN: usize = 40;
/// Length of the common header; also the smallest valid message.
pub const HEADER_LEN: usize = 2256;
/// Length of one gossip entry of PING/PONG/MEET.
pub const GOSSIP_LEN: usize = 104;
/// Number of hash slots.
pub const SLOTS: usize = 16384;

/// A node name: 40 lowercase hex ASCII bytes when well formed.
pub type NodeName = [u8; NAME_LEN];

/// Bytes of a slot bitmap.
const SLOT_BYTES: usize = SLOTS / 8;
/// Area of an IP string (`NET_IP_STR_LEN`), NUL included.
const IP_LEN: usize = 46;
const SIGNATURE: &[u8; 4] = b"RCmb";
const PROTO_VER: u16 = 1;
/// Type bit of Valkey light headers.
const LIGHT_BIT: u16 = 0x8000;
/// FAIL: header + node name.
const FAIL_LEN: usize = HEADER_LEN + NAME_LEN;
/// UPDATE: header + configEpoch + node name + slot bitmap.
const UPDATE_LEN: usize = HEADER_LEN + 8 + NAME_LEN + SLOT_BYTES;
/// PUBLISH without its channel and message: header + two u32 lengths.
const PUBLISH_MIN: usize = HEADER_LEN + 8;
/// MODULE without its payload: header + id (8) + len (4) + type (1).
const MODULE_MIN: usize = HEADER_LEN + 13;
/// Longest string extension payload we send: 7.0 checks a record length as
/// a u16, so records stay below 64 KiB (8-byte record header, NUL, padding).
const MAX_EXT_STR: usize = 65536 - 8 - 9;

/// Byte offsets of the header fields.
mod off {
    pub const SIG: usize = 0; // "RCmb"
    pub const TOTLEN: usize = 4; // u32: whole message length
    pub const VER: usize = 8; // u16: always 1
    pub const PORT: usize = 10; // u16: client port
    pub const TYPE: usize = 12; // u16: msgtype
    pub const COUNT: usize = 14; // u16: gossip entries (PING/PONG/MEET only)
    pub const CURRENT_EPOCH: usize = 16; // u64
    pub const CONFIG_EPOCH: usize = 24; // u64: own, or its master's for a replica
    pub const OFFSET: usize = 32; // u64: replication offset
    pub const SENDER: usize = 40; // name
    pub const MYSLOTS: usize = 80; // 2048-byte bitmap (a replica sends its master's)
    pub const SLAVEOF: usize = 2128; // name, zero for a master
    pub const MYIP: usize = 2168; // 46-byte string, zero = "use my socket address"
    pub const EXTENSIONS: usize = 2214; // u16: ping extension records
                                        // 2216..2246: reserved (zero)
    pub const PPORT: usize = 2246; // u16: plaintext port when the bus uses TLS
    pub const CPORT: usize = 2248; // u16: cluster bus port
    pub const FLAGS: usize = 2250; // u16: sender's nflag bits, MYSELF included
    pub const STATE: usize = 2252; // u8: 0 ok, 1 fail (informational)
    pub const MFLAGS: usize = 2253; // 3 bytes, only the first is used
}

/// Byte offsets inside one gossip entry (bytes 102..104 are reserved, zero).
mod goff {
    pub const NAME: usize = 0; // name
    pub const PING_SENT: usize = 40; // u32, seconds
    pub const PONG_RECEIVED: usize = 44; // u32, seconds
    pub const IP: usize = 48; // 46-byte string
    pub const PORT: usize = 94; // u16
    pub const CPORT: usize = 96; // u16
    pub const FLAGS: usize = 98; // u16
    pub const PPORT: usize = 100; // u16
}

/// Ping extension type numbers.
mod exttype {
    pub const HOSTNAME: u16 = 0;
    pub const HUMAN_NODENAME: u16 = 1;
    pub const FORGOTTEN_NODE: u16 = 2;
    pub const SHARDID: u16 = 3;
}

/// Message type numbers (header `type`).
pub mod msgtype {
    pub const PING: u16 = 0;
    pub const PONG: u16 = 1;
    pub const MEET: u16 = 2;
    pub const FAIL: u16 = 3;
    pub const PUBLISH: u16 = 4;
    pub const AUTH_REQUEST: u16 = 5;
    pub const AUTH_ACK: u16 = 6;
    pub const UPDATE: u16 = 7;
    pub const MFSTART: u16 = 8;
    pub const MODULE: u16 = 9;
    pub const PUBLISHSHARD: u16 = 10;
    /// Number of known types (CLUSTER INFO counts only these).
    pub const COUNT: usize = 11;

    /// The name CLUSTER INFO uses in `cluster_stats_messages_<name>_sent`.
    pub fn name(t: u16) -> &'static str {
        match t {
            PING => "ping",
            PONG => "pong",
            MEET => "meet",
            FAIL => "fail",
            PUBLISH => "publish",
            AUTH_REQUEST => "auth-req",
            AUTH_ACK => "auth-ack",
            UPDATE => "update",
            MFSTART => "mfstart",
            MODULE => "module",
            PUBLISHSHARD => "publishshard",
            _ => "unknown",
        }
    }
}

/// Node flags (header `flags` and gossip `flags`).
pub mod nflag {
    pub const MASTER: u16 = 0x1;
    pub const SLAVE: u16 = 0x2;
    /// Local suspicion: no PONG within the node timeout.
    pub const PFAIL: u16 = 0x4;
    /// Failure agreed by a majority of masters.
    pub const FAIL: u16 = 0x8;
    pub const MYSELF: u16 = 0x10;
    /// First PING/PONG exchange not completed yet.
    pub const HANDSHAKE: u16 = 0x20;
    pub const NOADDR: u16 = 0x40;
    /// Send MEET rather than PING when connecting.
    pub const MEET: u16 = 0x80;
    /// Master that has (had) replicas: a replica-migration target.
    pub const MIGRATE_TO: u16 = 0x100;
    pub const NOFAILOVER: u16 = 0x200;
}

/// Message flags (`mflags[0]`).
pub mod mflag {
    /// Sent by a master pausing writes for a manual failover.
    pub const PAUSED: u8 = 1;
    /// AUTH_REQUEST of a manual failover: vote even if the master is not FAIL.
    pub const FORCEACK: u8 = 2;
    /// PING/PONG/MEET carries ping extensions.
    pub const EXT_DATA: u8 = 4;
}

/// A fresh node name: 40 random lowercase hex characters.
pub fn random_name() -> NodeName {
    use rand::Rng;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rng = rand::thread_rng();
    let mut n = [0u8; NAME_LEN];
    for c in &mut n {
        *c = HEX[rng.gen_range(0..HEX.len())];
    }
    n
}

/// Whether `n` is a well-formed node name: exactly 40 bytes of `[a-z0-9]`
/// (the check of redis's `verifyClusterNodeId`).
pub fn valid_name(n: &[u8]) -> bool {
    n.len() == NAME_LEN
        && n.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// The name as text; `"?"` if it is not UTF-8 (never for a valid name).
pub fn name_str(n: &NodeName) -> &str {
    std::str::from_utf8(n).unwrap_or("?")
}

/// 16384-bit slot bitmap: slot `s` is bit `s & 7` (LSB first) of byte `s >> 3`.
#[derive(Clone, PartialEq, Eq)]
pub struct SlotBitmap(pub Box<[u8; 2048]>);

impl SlotBitmap {
    pub fn new() -> Self {
        SlotBitmap(Box::new([0; SLOT_BYTES]))
    }

    /// Whether `slot` is set; slots past 16383 read as unset.
    pub fn get(&self, slot: u16) -> bool {
        self.0
            .get(usize::from(slot >> 3))
            .is_some_and(|b| b & (1 << (slot & 7)) != 0)
    }

    /// Sets or clears `slot`; slots past 16383 are ignored.
    pub fn set(&mut self, slot: u16, on: bool) {
        if let Some(b) = self.0.get_mut(usize::from(slot >> 3)) {
            let mask = 1 << (slot & 7);
            if on {
                *b |= mask;
            } else {
                *b &= !mask;
            }
        }
    }

    /// Number of set slots.
    pub fn count(&self) -> usize {
        self.0.iter().map(|b| b.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }

    /// The set slots as inclusive ranges, in ascending order.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        let mut push = |a: u16, z: u16| match out.last_mut() {
            Some((_, b)) if *b + 1 == a => *b = z,
            _ => out.push((a, z)),
        };
        for (i, &byte) in (0u16..).zip(self.0.iter()) {
            match byte {
                0 => {}
                0xff => push(i * 8, i * 8 + 7),
                b => {
                    for bit in (0..8u16).filter(|bit| b & (1 << bit) != 0) {
                        push(i * 8 + bit, i * 8 + bit);
                    }
                }
            }
        }
        out
    }

    /// The set slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0
            .iter()
            .zip(0u16..)
            .filter(|(b, _)| **b != 0)
            .flat_map(|(&b, i)| {
                (0..8u16)
                    .filter(move |bit| b & (1 << bit) != 0)
                    .map(move |bit| i * 8 + bit)
            })
    }
}

impl Default for SlotBitmap {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints the set slots as ranges, e.g. `0-5460,6000`, or `(none)`.
impl fmt::Debug for SlotBitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges: Vec<(u16, u16)> = Vec::new();
        for s in self.iter() {
            match ranges.last_mut() {
                Some((_, hi)) if *hi + 1 == s => *hi = s,
                _ => ranges.push((s, s)),
            }
        }
        if ranges.is_empty() {
            return f.write_str("(none)");
        }
        for (i, (lo, hi)) in ranges.into_iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            if lo == hi {
                write!(f, "{sep}{lo}")?;
            } else {
                write!(f, "{sep}{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// The common header. `sig`, `totlen`, `ver`, `count` and `extensions` are
/// not stored: [`encode`] derives them from the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub ty: u16,
    pub port: u16,
    pub current_epoch: u64,
    pub config_epoch: u64,
    pub offset: u64,
    pub sender: NodeName,
    pub myslots: SlotBitmap,
    /// `None` <=> 40 zero bytes on the wire ("I am a master").
    pub slaveof: Option<NodeName>,
    /// `""` <=> an all-zero area.
    pub myip: String,
    pub pport: u16,
    pub cport: u16,
    pub flags: u16,
    pub state: u8,
    /// `mflags[0]` (`mflags[1..2]` are always zero). For PING/PONG/MEET,
    /// [`encode`] sets [`mflag::EXT_DATA`] iff there are extensions.
    pub mflags: u8,
}

/// One gossip entry: the sender's view of another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gossip {
    pub name: NodeName,
    pub ping_sent: u32,
    pub pong_received: u32,
    pub ip: String,
    pub port: u16,
    pub cport: u16,
    pub flags: u16,
    pub pport: u16,
}

/// A ping extension record (after the gossip of PING/PONG/MEET).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ext {
    /// Type 0: `cluster-announce-hostname`.
    Hostname(String),
    /// Type 1 (7.2): `cluster-announce-human-nodename`.
    HumanNodename(String),
    /// Type 2 (7.2): forget `name` for `ttl` seconds.
    ForgottenNode { name: NodeName, ttl: u64 },
    /// Type 3 (7.2): the sender's shard id.
    ShardId(NodeName),
    /// Any other type; `payload` includes the zero padding when decoded.
    Unknown { ty: u16, payload: Vec<u8> },
}

/// The type-specific part of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// PING, PONG, MEET
    Ping {
        gossip: Vec<Gossip>,
        exts: Vec<Ext>,
    },
    Fail {
        name: NodeName,
    },
    /// PUBLISH and PUBLISHSHARD
    Publish {
        channel: Bytes,
        message: Bytes,
    },
    Update {
        config_epoch: u64,
        name: NodeName,
        slots: SlotBitmap,
    },
    /// AUTH_REQUEST, AUTH_ACK, MFSTART
    Empty,
    /// `module_id` is raw (sender's byte order), not big-endian.
    Module {
        module_id: [u8; 8],
        msg_type: u8,
        payload: Bytes,
    },
    /// Any other type number: the bytes after the header.
    Unknown(Bytes),
}

/// One whole bus message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Body,
}

/// Why bytes are not a valid message.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("need 8 bytes to frame a message, have {0}")]
    ShortPrefix(usize),
    #[error("bad message signature (expected \"RCmb\")")]
    BadSignature,
    #[error("message length {0} is below the {HEADER_LEN}-byte header")]
    TooShort(u32),
    #[error("totlen field says {totlen} bytes but the buffer holds {got}")]
    TotlenMismatch { totlen: u32, got: usize },
    #[error("unsupported cluster bus protocol version {0}")]
    BadVersion(u16),
    #[error("light-header message (type {0:#06x}) not supported")]
    LightHeader(u16),
    #[error("invalid {} message (type {ty}): length {got}, expected {expected}", msgtype::name(*.ty))]
    LengthMismatch { ty: u16, expected: u64, got: usize },
    #[error("bad ping extension: {0}")]
    BadExtension(String),
    #[error("{0}: string not NUL-terminated within its area")]
    Unterminated(&'static str),
    #[error("{0}: string is not valid UTF-8")]
    BadUtf8(&'static str),
    /// A read past the end of the buffer; length checks run first, so this
    /// only signals a codec bug.
    #[error("read past the end of the message")]
    Truncated,
}

// ---- reading helpers: bounds-checked, never panic ----

/// `len` bytes at `at`.
fn bytes_at(b: &[u8], at: usize, len: usize) -> Result<&[u8], WireError> {
    at.checked_add(len)
        .and_then(|end| b.get(at..end))
        .ok_or(WireError::Truncated)
}

fn arr<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], WireError> {
    bytes_at(b, at, N)?
        .try_into()
        .map_err(|_| WireError::Truncated)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WireError> {
    arr(b, at).map(u16::from_be_bytes)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WireError> {
    arr(b, at).map(u32::from_be_bytes)
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, WireError> {
    arr(b, at).map(u64::from_be_bytes)
}

fn bitmap_at(b: &[u8], at: usize) -> Result<SlotBitmap, WireError> {
    Ok(SlotBitmap(Box::new(arr(b, at)?)))
}

/// The NUL-terminated string at the start of `area`.
fn cstr(area: &[u8], what: &'static str) -> Result<String, WireError> {
    let end = area
        .iter()
        .position(|&c| c == 0)
        .ok_or(WireError::Unterminated(what))?;
    let s = area.get(..end).ok_or(WireError::Truncated)?;
    std::str::from_utf8(s)
        .map(str::to_owned)
        .map_err(|_| WireError::BadUtf8(what))
}

// ---- writing helpers: only ever given our own constant offsets ----

fn put(out: &mut [u8], at: usize, src: &[u8]) {
    out[at..at + src.len()].copy_from_slice(src);
}

/// The longest prefix of `s` of at most `max` bytes ending on a char boundary.
fn clip(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` into a zeroed `area`-byte field, truncated so a NUL remains.
fn put_str(out: &mut [u8], at: usize, area: usize, s: &str) {
    put(out, at, clip(s, area - 1).as_bytes());
}

/// A length for a u32 field (bodies past 4 GiB are not representable).
fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Checks the 8-byte prefix (signature `RCmb`, `totlen` >= [`HEADER_LEN`])
/// and returns `totlen`: the length of the whole message, prefix included.
pub fn frame_len(prefix: &[u8]) -> Result<usize, WireError> {
    if prefix.len() < 8 {
        return Err(WireError::ShortPrefix(prefix.len()));
    }
    if arr::<4>(prefix, off::SIG)? != *SIGNATURE {
        return Err(WireError::BadSignature);
    }
    let totlen = u32_at(prefix, off::TOTLEN)?;
    if (totlen as usize) < HEADER_LEN {
        return Err(WireError::TooShort(totlen));
    }
    Ok(totlen as usize)
}

/// Decodes one whole message (`buf.len()` must equal its `totlen`).
///
/// Checks what a 7.0 receiver checks before processing (signature, version,
/// exact length for the type, extension record framing) plus string
/// termination and UTF-8. Names are copied raw, not validated.
pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
    let totlen = frame_len(buf)?;
    if totlen != buf.len() {
        return Err(WireError::TotlenMismatch {
            totlen: len32(totlen),
            got: buf.len(),
        });
    }
    let ver = u16_at(buf, off::VER)?;
    if ver != PROTO_VER {
        return Err(WireError::BadVersion(ver));
    }
    let ty = u16_at(buf, off::TYPE)?;
    if ty & LIGHT_BIT != 0 {
        return Err(WireError::LightHeader(ty));
    }
    let header = decode_header(buf)?;
    let mismatch = |expected: u64| WireError::LengthMismatch {
        ty,
        expected,
        got: buf.len(),
    };
    let exact = |expected: u64| {
        if buf.len() as u64 == expected {
            Ok(())
        } else {
            Err(mismatch(expected))
        }
    };
    let at_least = |min: usize| {
        if buf.len() >= min {
            Ok(())
        } else {
            Err(mismatch(min as u64))
        }
    };

    use msgtype::*;
    let body = match ty {
        PING | PONG | MEET => decode_ping(buf, header.mflags, mismatch)?,
        FAIL => {
            exact(FAIL_LEN as u64)?;
            Body::Fail {
                name: arr(buf, HEADER_LEN)?,
            }
        }
        PUBLISH | PUBLISHSHARD => {
            at_least(PUBLISH_MIN)?;
            let c = u32_at(buf, HEADER_LEN)? as usize;
            let m = u32_at(buf, HEADER_LEN + 4)? as usize;
            exact(PUBLISH_MIN as u64 + c as u64 + m as u64)?;
            Body::Publish {
                channel: Bytes::copy_from_slice(bytes_at(buf, PUBLISH_MIN, c)?),
                message: Bytes::copy_from_slice(bytes_at(buf, PUBLISH_MIN + c, m)?),
            }
        }
        AUTH_REQUEST | AUTH_ACK | MFSTART => {
            exact(HEADER_LEN as u64)?;
            Body::Empty
        }
        UPDATE => {
            exact(UPDATE_LEN as u64)?;
            Body::Update {
                config_epoch: u64_at(buf, HEADER_LEN)?,
                name: arr(buf, HEADER_LEN + 8)?,
                slots: bitmap_at(buf, HEADER_LEN + 8 + NAME_LEN)?,
            }
        }
        MODULE => {
            at_least(MODULE_MIN)?;
            let len = u32_at(buf, HEADER_LEN + 8)? as usize;
            exact(MODULE_MIN as u64 + len as u64)?;
            Body::Module {
                module_id: arr(buf, HEADER_LEN)?,
                msg_type: arr::<1>(buf, HEADER_LEN + 12)?[0],
                payload: Bytes::copy_from_slice(bytes_at(buf, MODULE_MIN, len)?),
            }
        }
        _ => Body::Unknown(Bytes::copy_from_slice(bytes_at(
            buf,
            HEADER_LEN,
            buf.len() - HEADER_LEN,
        )?)),
    };
    Ok(Message { header, body })
}

fn decode_header(buf: &[u8]) -> Result<Header, WireError> {
    let slaveof: NodeName = arr(buf, off::SLAVEOF)?;
    Ok(Header {
        ty: u16_at(buf, off::TYPE)?,
        port: u16_at(buf, off::PORT)?,
        current_epoch: u64_at(buf, off::CURRENT_EPOCH)?,
        config_epoch: u64_at(buf, off::CONFIG_EPOCH)?,
        offset: u64_at(buf, off::OFFSET)?,
        sender: arr(buf, off::SENDER)?,
        myslots: bitmap_at(buf, off::MYSLOTS)?,
        slaveof: (slaveof != [0; NAME_LEN]).then_some(slaveof),
        myip: cstr(bytes_at(buf, off::MYIP, IP_LEN)?, "myip")?,
        pport: u16_at(buf, off::PPORT)?,
        cport: u16_at(buf, off::CPORT)?,
        flags: u16_at(buf, off::FLAGS)?,
        state: arr::<1>(buf, off::STATE)?[0],
        mflags: arr::<1>(buf, off::MFLAGS)?[0],
    })
}

/// PING/PONG/MEET body: `count` gossip entries, then (only when EXT_DATA is
/// set) `extensions` records, each `length` bytes (a multiple of 8, its
/// 8-byte record header included). The message must end exactly there.
fn decode_ping(
    buf: &[u8],
    mflags: u8,
    mismatch: impl Fn(u64) -> WireError,
) -> Result<Body, WireError> {
    let count = usize::from(u16_at(buf, off::COUNT)?);
    // At most 2256 + 104 * 65535: no overflow.
    let gossip_end = HEADER_LEN + GOSSIP_LEN * count;
    if buf.len() < gossip_end {
        return Err(mismatch(gossip_end as u64));
    }
    let mut exts = Vec::new();
    let mut pos = gossip_end;
    if mflags & mflag::EXT_DATA != 0 {
        let n = u16_at(buf, off::EXTENSIONS)?;
        for i in 0..n {
            let left = buf.len() - pos;
            let bad = |why: String| WireError::BadExtension(format!("record {i} of {n}: {why}"));
            if left < 8 {
                return Err(bad(format!("header truncated ({left} bytes left)")));
            }
            let len = u32_at(buf, pos)? as usize;
            if len < 8 || len % 8 != 0 {
                return Err(bad(format!("length {len} is not a positive multiple of 8")));
            }
            if len > left {
                return Err(bad(format!(
                    "length {len} overruns the message ({left} bytes left)"
                )));
            }
            let ty = u16_at(buf, pos + 4)?;
            exts.push(decode_ext(ty, bytes_at(buf, pos + 8, len - 8)?)?);
            pos += len;
        }
    }
    if pos != buf.len() {
        return Err(mismatch(pos as u64));
    }
    let gossip = bytes_at(buf, HEADER_LEN, gossip_end - HEADER_LEN)?
        .chunks_exact(GOSSIP_LEN)
        .map(decode_gossip)
        .collect::<Result<_, _>>()?;
    Ok(Body::Ping { gossip, exts })
}

fn decode_gossip(g: &[u8]) -> Result<Gossip, WireError> {
    Ok(Gossip {
        name: arr(g, goff::NAME)?,
        ping_sent: u32_at(g, goff::PING_SENT)?,
        pong_received: u32_at(g, goff::PONG_RECEIVED)?,
        ip: cstr(bytes_at(g, goff::IP, IP_LEN)?, "gossip ip")?,
        port: u16_at(g, goff::PORT)?,
        cport: u16_at(g, goff::CPORT)?,
        flags: u16_at(g, goff::FLAGS)?,
        pport: u16_at(g, goff::PPORT)?,
    })
}

/// One extension from its type and payload (padding included).
fn decode_ext(ty: u16, payload: &[u8]) -> Result<Ext, WireError> {
    let need = |what: &str, n: usize| {
        if payload.len() >= n {
            Ok(())
        } else {
            Err(WireError::BadExtension(format!(
                "{what} payload of {} bytes, need {n}",
                payload.len()
            )))
        }
    };
    Ok(match ty {
        exttype::HOSTNAME => Ext::Hostname(cstr(payload, "hostname extension")?),
        exttype::HUMAN_NODENAME => Ext::HumanNodename(cstr(payload, "human nodename extension")?),
        exttype::FORGOTTEN_NODE => {
            need("forgotten-node", NAME_LEN + 8)?;
            Ext::ForgottenNode {
                name: arr(payload, 0)?,
                ttl: u64_at(payload, NAME_LEN)?,
            }
        }
        exttype::SHARDID => {
            need("shard-id", NAME_LEN)?;
            Ext::ShardId(arr(payload, 0)?)
        }
        _ => Ext::Unknown {
            ty,
            payload: payload.to_vec(),
        },
    })
}

/// Encodes a message with exact lengths and zeroed reserved bytes.
///
/// The body is laid out according to the [`Body`] variant and `header.ty`
/// is written as given: keep them consistent. For PING/PONG/MEET at most
/// 65535 gossip entries and extensions are written (the counters are u16),
/// and [`mflag::EXT_DATA`] is set iff extensions are written. Strings longer
/// than their area minus one are truncated (at a char boundary).
pub fn encode(msg: &Message) -> Vec<u8> {
    let h = &msg.header;
    let mut out = vec![0u8; HEADER_LEN];
    let mut mflags = h.mflags;
    match &msg.body {
        Body::Ping { gossip, exts } => {
            let gossip = &gossip[..gossip.len().min(usize::from(u16::MAX))];
            let exts = &exts[..exts.len().min(usize::from(u16::MAX))];
            put(&mut out, off::COUNT, &(gossip.len() as u16).to_be_bytes());
            put(
                &mut out,
                off::EXTENSIONS,
                &(exts.len() as u16).to_be_bytes(),
            );
            if exts.is_empty() {
                mflags &= !mflag::EXT_DATA;
            } else {
                mflags |= mflag::EXT_DATA;
            }
            out.reserve(GOSSIP_LEN * gossip.len() + 56 * exts.len());
            for g in gossip {
                encode_gossip(&mut out, g);
            }
            for e in exts {
                encode_ext(&mut out, e);
            }
        }
        Body::Fail { name } => out.extend_from_slice(name),
        Body::Publish { channel, message } => {
            out.reserve(8 + channel.len() + message.len());
            out.extend_from_slice(&len32(channel.len()).to_be_bytes());
            out.extend_from_slice(&len32(message.len()).to_be_bytes());
            out.extend_from_slice(channel);
            out.extend_from_slice(message);
        }
        Body::Update {
            config_epoch,
            name,
            slots,
        } => {
            out.extend_from_slice(&config_epoch.to_be_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&slots.0[..]);
        }
        Body::Empty => {}
        Body::Module {
            module_id,
            msg_type,
            payload,
        } => {
            out.extend_from_slice(module_id);
            out.extend_from_slice(&len32(payload.len()).to_be_bytes());
            out.push(*msg_type);
            out.extend_from_slice(payload);
        }
        Body::Unknown(b) => out.extend_from_slice(b),
    }

    put(&mut out, off::SIG, SIGNATURE);
    let totlen = len32(out.len());
    put(&mut out, off::TOTLEN, &totlen.to_be_bytes());
    put(&mut out, off::VER, &PROTO_VER.to_be_bytes());
    put(&mut out, off::PORT, &h.port.to_be_bytes());
    put(&mut out, off::TYPE, &h.ty.to_be_bytes());
    put(&mut out, off::CURRENT_EPOCH, &h.current_epoch.to_be_bytes());
    put(&mut out, off::CONFIG_EPOCH, &h.config_epoch.to_be_bytes());
    put(&mut out, off::OFFSET, &h.offset.to_be_bytes());
    put(&mut out, off::SENDER, &h.sender);
    put(&mut out, off::MYSLOTS, &h.myslots.0[..]);
    if let Some(m) = &h.slaveof {
        put(&mut out, off::SLAVEOF, m);
    }
    put_str(&mut out, off::MYIP, IP_LEN, &h.myip);
    put(&mut out, off::PPORT, &h.pport.to_be_bytes());
    put(&mut out, off::CPORT, &h.cport.to_be_bytes());
    put(&mut out, off::FLAGS, &h.flags.to_be_bytes());
    put(&mut out, off::STATE, &[h.state]);
    put(&mut out, off::MFLAGS, &[mflags]);
    out
}

fn encode_gossip(out: &mut Vec<u8>, g: &Gossip) {
    let base = out.len();
    out.resize(base + GOSSIP_LEN, 0);
    let e = &mut out[base..];
    put(e, goff::NAME, &g.name);
    put(e, goff::PING_SENT, &g.ping_sent.to_be_bytes());
    put(e, goff::PONG_RECEIVED, &g.pong_received.to_be_bytes());
    put_str(e, goff::IP, IP_LEN, &g.ip);
    put(e, goff::PORT, &g.port.to_be_bytes());
    put(e, goff::CPORT, &g.cport.to_be_bytes());
    put(e, goff::FLAGS, &g.flags.to_be_bytes());
    put(e, goff::PPORT, &g.pport.to_be_bytes());
}

/// One extension record: u32 length (record header included), u16 type,
/// two zero bytes, payload zero-padded to a multiple of 8.
fn encode_ext(out: &mut Vec<u8>, e: &Ext) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    let ty = match e {
        Ext::Hostname(s) | Ext::HumanNodename(s) => {
            // NUL-terminated: strlen + 1 bytes before padding.
            out.extend_from_slice(clip(s, MAX_EXT_STR).as_bytes());
            out.push(0);
            if matches!(e, Ext::Hostname(_)) {
                exttype::HOSTNAME
            } else {
                exttype::HUMAN_NODENAME
            }
        }
        Ext::ForgottenNode { name, ttl } => {
            out.extend_from_slice(name);
            out.extend_from_slice(&ttl.to_be_bytes());
            exttype::FORGOTTEN_NODE
        }
        Ext::ShardId(id) => {
            out.extend_from_slice(id);
            exttype::SHARDID
        }
        Ext::Unknown { ty, payload } => {
            out.extend_from_slice(payload);
            *ty
        }
    };
    out.resize(start + (out.len() - start).next_multiple_of(8), 0);
    let len = len32(out.len() - start);
    put(out, start, &len.to_be_bytes());
    put(out, start + 4, &ty.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name_of(c: u8) -> NodeName {
        [c; NAME_LEN]
    }

    fn header(ty: u16) -> Header {
        Header {
            ty,
            port: 7000,
            current_epoch: 0,
            config_epoch: 0,
            offset: 0,
            sender: name_of(b'a'),
            myslots: SlotBitmap::new(),
            slaveof: None,
            myip: String::new(),
            pport: 0,
            cport: 17000,
            flags: nflag::MYSELF | nflag::MASTER,
            state: 0,
            mflags: 0,
        }
    }

    fn gossip(c: u8) -> Gossip {
        Gossip {
            name: name_of(c),
            ping_sent: 1,
            pong_received: 2,
            ip: "10.0.0.1".into(),
            port: 7001,
            cport: 17001,
            flags: nflag::MASTER,
            pport: 0,
        }
    }

    fn ping(gossip: Vec<Gossip>, exts: Vec<Ext>) -> Message {
        Message {
            header: header(msgtype::PING),
            body: Body::Ping { gossip, exts },
        }
    }

    fn msg(ty: u16, body: Body) -> Message {
        Message {
            header: header(ty),
            body,
        }
    }

    /// A PING with two gossip entries and two extensions.
    fn rich_ping() -> Vec<u8> {
        encode(&ping(
            vec![gossip(b'b'), gossip(b'c')],
            vec![
                Ext::Hostname("node-1.example".into()),
                Ext::ShardId(name_of(b'd')),
            ],
        ))
    }

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn set_be16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    fn set_totlen(b: &mut [u8]) {
        let n = b.len() as u32;
        b[4..8].copy_from_slice(&n.to_be_bytes());
    }

    // ---- golden bytes ----

    #[test]
    fn golden_ping_prefix() {
        let mut m = ping(vec![], vec![]);
        m.header.mflags = mflag::EXT_DATA; // cleared: no extensions
        let b = encode(&m);
        assert_eq!(
            b[..16],
            [0x52, 0x43, 0x6d, 0x62, 0, 0, 0x08, 0xd0, 0, 1, 0x1b, 0x58, 0, 0, 0, 0]
        );
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(b[off::MFLAGS], 0);
        assert_eq!(decode(&b).unwrap(), ping(vec![], vec![]));
    }

    #[test]
    fn golden_hostname_extension() {
        let b = encode(&ping(vec![], vec![Ext::Hostname("node-1.example".into())]));
        let mut want = vec![0, 0, 0, 0x18, 0, 0, 0, 0];
        want.extend_from_slice(b"node-1.example");
        want.extend_from_slice(&[0, 0]);
        assert_eq!(b[HEADER_LEN..], want[..]);
        assert_eq!(b.len(), HEADER_LEN + 24);
        assert_eq!(be16(&b, 2214), 1);
        assert_eq!(b[2253], mflag::EXT_DATA);
    }

    #[test]
    fn golden_shard_id_and_forgotten_node() {
        let id = random_name();
        let b = encode(&ping(vec![], vec![Ext::ShardId(id)]));
        assert_eq!(b[HEADER_LEN..HEADER_LEN + 8], [0, 0, 0, 0x30, 0, 3, 0, 0]);
        assert_eq!(b[HEADER_LEN + 8..], id);
        let b = encode(&ping(
            vec![],
            vec![Ext::ForgottenNode { name: id, ttl: 60 }],
        ));
        assert_eq!(b[HEADER_LEN..HEADER_LEN + 8], [0, 0, 0, 0x38, 0, 2, 0, 0]);
        assert_eq!(b[HEADER_LEN + 8..HEADER_LEN + 48], id);
        assert_eq!(b[HEADER_LEN + 48..], 60u64.to_be_bytes());
    }

    #[test]
    fn golden_slot_bits() {
        for (slot, byte, mask) in [
            (0, 0, 0x01),
            (7, 0, 0x80),
            (8, 1, 0x01),
            (16383, 2047, 0x80),
        ] {
            let mut m = msg(msgtype::MFSTART, Body::Empty);
            m.header.myslots.set(slot, true);
            assert_eq!(m.header.myslots.0[byte], mask);
            let b = encode(&m);
            assert_eq!(b[off::MYSLOTS + byte], mask, "slot {slot}");
            assert_eq!(
                b[off::MYSLOTS..off::SLAVEOF]
                    .iter()
                    .filter(|&&x| x != 0)
                    .count(),
                1
            );
        }
    }

    #[test]
    fn golden_header_offsets() {
        let mut m = msg(msgtype::AUTH_REQUEST, Body::Empty);
        m.header.port = 0x1234;
        m.header.current_epoch = 0x0102030405060708;
        m.header.config_epoch = 0x1112131415161718;
        m.header.offset = 0x2122232425262728;
        m.header.slaveof = Some(name_of(b's'));
        m.header.myip = "192.168.1.1".into();
        m.header.pport = 0x3132;
        m.header.cport = 0x4142;
        m.header.flags = 0x0112;
        m.header.state = 1;
        m.header.mflags = mflag::FORCEACK;
        let b = encode(&m);
        assert_eq!(b.len(), HEADER_LEN);
        assert_eq!(be16(&b, 8), 1);
        assert_eq!(be16(&b, 10), 0x1234);
        assert_eq!(be16(&b, 12), msgtype::AUTH_REQUEST);
        assert_eq!(be16(&b, 14), 0);
        assert_eq!(b[16..24], 0x0102030405060708u64.to_be_bytes());
        assert_eq!(b[24..32], 0x1112131415161718u64.to_be_bytes());
        assert_eq!(b[32..40], 0x2122232425262728u64.to_be_bytes());
        assert_eq!(b[40..80], name_of(b'a'));
        assert_eq!(b[2128..2168], name_of(b's'));
        assert_eq!(&b[2168..2179], b"192.168.1.1");
        assert!(b[2179..2214].iter().all(|&x| x == 0));
        assert_eq!(be16(&b, 2214), 0);
        assert!(b[2216..2246].iter().all(|&x| x == 0));
        assert_eq!(be16(&b, 2246), 0x3132);
        assert_eq!(be16(&b, 2248), 0x4142);
        assert_eq!(be16(&b, 2250), 0x0112);
        assert_eq!(b[2252], 1);
        assert_eq!(b[2253..2256], [mflag::FORCEACK, 0, 0]);

        // Count and extension counter of a PING.
        let b = rich_ping();
        assert_eq!(be16(&b, 14), 2);
        assert_eq!(be16(&b, 2214), 2);
    }

    #[test]
    fn golden_gossip_offsets() {
        let mut g = gossip(b'g');
        g.pport = 0x5152;
        let b = encode(&ping(vec![g], vec![]));
        let e = &b[HEADER_LEN..];
        assert_eq!(e.len(), GOSSIP_LEN);
        assert_eq!(e[..40], name_of(b'g'));
        assert_eq!(e[40..44], 1u32.to_be_bytes());
        assert_eq!(e[44..48], 2u32.to_be_bytes());
        assert_eq!(&e[48..56], b"10.0.0.1");
        assert!(e[56..94].iter().all(|&x| x == 0));
        assert_eq!(be16(e, 94), 7001);
        assert_eq!(be16(e, 96), 17001);
        assert_eq!(be16(e, 98), nflag::MASTER);
        assert_eq!(be16(e, 100), 0x5152);
        assert_eq!(e[102..], [0, 0]);
    }

    #[test]
    fn golden_body_lengths() {
        let n = name_of(b'n');
        let fail = encode(&msg(msgtype::FAIL, Body::Fail { name: n }));
        assert_eq!(fail.len(), 2296);
        assert_eq!(fail[HEADER_LEN..], n);
        let update = encode(&msg(
            msgtype::UPDATE,
            Body::Update {
                config_epoch: 9,
                name: n,
                slots: SlotBitmap::new(),
            },
        ));
        assert_eq!(update.len(), 4352);
        assert_eq!(update[2256..2264], 9u64.to_be_bytes());
        let publish = encode(&msg(
            msgtype::PUBLISH,
            Body::Publish {
                channel: Bytes::from_static(b"ch"),
                message: Bytes::from_static(b"hello"),
            },
        ));
        assert_eq!(publish.len(), 2264 + 2 + 5);
        assert_eq!(publish[2256..], *b"\0\0\0\x02\0\0\0\x05chhello");
        let module = encode(&msg(
            msgtype::MODULE,
            Body::Module {
                module_id: [1, 2, 3, 4, 5, 6, 7, 8],
                msg_type: 7,
                payload: Bytes::from_static(b"xyz"),
            },
        ));
        assert_eq!(module.len(), 2269 + 3);
        assert_eq!(
            module[2256..],
            *b"\x01\x02\x03\x04\x05\x06\x07\x08\0\0\0\x03\x07xyz"
        );
    }

    #[test]
    fn strings_are_truncated_to_keep_a_nul() {
        let mut m = msg(msgtype::MFSTART, Body::Empty);
        m.header.myip = "x".repeat(60);
        let b = encode(&m);
        assert_eq!(b[off::MYIP + 45], 0);
        assert_eq!(decode(&b).unwrap().header.myip, "x".repeat(45));
        // A multi-byte char straddling the limit is dropped whole.
        m.header.myip = format!("{}é", "x".repeat(44));
        assert_eq!(decode(&encode(&m)).unwrap().header.myip, "x".repeat(44));
    }

    #[test]
    fn slot_bitmap_api() {
        let mut s = SlotBitmap::default();
        assert!(s.is_empty());
        assert_eq!(format!("{s:?}"), "(none)");
        for slot in 0..=5460 {
            s.set(slot, true);
        }
        s.set(6000, true);
        s.set(16383, true);
        s.set(16384, true); // ignored
        assert!(!s.get(16384) && !s.get(u16::MAX));
        assert!(s.get(0) && s.get(5460) && !s.get(5461) && s.get(16383));
        assert_eq!(s.count(), 5463);
        assert_eq!(format!("{s:?}"), "0-5460,6000,16383");
        s.set(16383, false);
        assert_eq!(s.iter().last(), Some(6000));
        assert_eq!(s.iter().count(), s.count());
        assert!(s.iter().zip(s.iter().skip(1)).all(|(a, b)| a < b));
    }

    #[test]
    fn names() {
        let n = random_name();
        assert!(valid_name(&n));
        assert!(n
            .iter()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(n, random_name());
        assert_eq!(name_str(&n).len(), NAME_LEN);
        assert!(valid_name(&[b'z'; 40]));
        assert!(!valid_name(&[b'a'; 39]));
        assert!(!valid_name(&[b'A'; 40]));
        assert!(!valid_name(&[0; 40]));
        assert_eq!(name_str(&[0xff; 40]), "?");
    }

    #[test]
    fn msgtype_names() {
        let all: Vec<_> = (0..msgtype::COUNT as u16).map(msgtype::name).collect();
        assert_eq!(
            all,
            [
                "ping",
                "pong",
                "meet",
                "fail",
                "publish",
                "auth-req",
                "auth-ack",
                "update",
                "mfstart",
                "module",
                "publishshard"
            ]
        );
        assert_eq!(msgtype::name(11), "unknown");
    }

    #[test]
    fn unknown_type_and_ext_data_without_extensions() {
        let m = msg(42, Body::Unknown(Bytes::from_static(b"anything")));
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        // EXT_DATA clear: the extensions counter is ignored.
        let mut b = encode(&ping(vec![gossip(b'b')], vec![]));
        set_be16(&mut b, off::EXTENSIONS, 3);
        assert_eq!(
            decode(&b).unwrap().body,
            Body::Ping {
                gossip: vec![gossip(b'b')],
                exts: vec![]
            }
        );
        // EXT_DATA set with zero records (what Valkey 8 sends) is valid.
        b[off::MFLAGS] = mflag::EXT_DATA;
        set_be16(&mut b, off::EXTENSIONS, 0);
        assert!(decode(&b).is_ok());
    }

    // ---- malformed input ----

    #[test]
    fn frame_len_checks() {
        let b = rich_ping();
        assert_eq!(frame_len(&b[..8]), Ok(b.len()));
        assert_eq!(frame_len(&b[..7]), Err(WireError::ShortPrefix(7)));
        assert_eq!(frame_len(b"RCmc\0\0\x08\xd0"), Err(WireError::BadSignature));
        assert_eq!(
            frame_len(b"RCmb\0\0\x08\xcf"),
            Err(WireError::TooShort(2255))
        );
    }

    #[test]
    fn bad_signature_length_version() {
        let good = encode(&ping(vec![], vec![]));
        let mut b = good.clone();
        b[3] = b'B';
        assert_eq!(decode(&b), Err(WireError::BadSignature));

        let mut b = good.clone();
        b.truncate(2000);
        set_totlen(&mut b);
        assert_eq!(decode(&b), Err(WireError::TooShort(2000)));

        let mut b = good.clone();
        b.push(0);
        assert_eq!(
            decode(&b),
            Err(WireError::TotlenMismatch {
                totlen: 2256,
                got: 2257
            })
        );

        let mut b = good.clone();
        set_be16(&mut b, off::VER, 0);
        assert_eq!(decode(&b), Err(WireError::BadVersion(0)));

        let mut b = good;
        set_be16(&mut b, off::TYPE, 0x8004);
        assert_eq!(decode(&b), Err(WireError::LightHeader(0x8004)));
    }

    #[test]
    fn gossip_count_mismatch() {
        let mut b = encode(&ping(vec![gossip(b'b')], vec![]));
        set_be16(&mut b, off::COUNT, 2);
        assert_eq!(
            decode(&b),
            Err(WireError::LengthMismatch {
                ty: 0,
                expected: 2256 + 208,
                got: 2256 + 104
            })
        );
        set_be16(&mut b, off::COUNT, 65535);
        assert!(matches!(decode(&b), Err(WireError::LengthMismatch { .. })));
        b[off::MFLAGS] = mflag::EXT_DATA;
        set_be16(&mut b, off::EXTENSIONS, 65535);
        assert!(matches!(decode(&b), Err(WireError::LengthMismatch { .. })));
        // Fewer entries claimed than present: trailing bytes.
        let mut b = encode(&ping(vec![gossip(b'b')], vec![]));
        set_be16(&mut b, off::COUNT, 0);
        assert!(matches!(
            decode(&b),
            Err(WireError::LengthMismatch { expected: 2256, .. })
        ));
    }

    #[test]
    fn fixed_lengths_enforced() {
        let fail = encode(&msg(
            msgtype::FAIL,
            Body::Fail {
                name: name_of(b'x'),
            },
        ));
        for len in [HEADER_LEN, FAIL_LEN - 1, FAIL_LEN + 1] {
            let mut b = fail.clone();
            b.resize(len, 0);
            set_totlen(&mut b);
            assert_eq!(
                decode(&b),
                Err(WireError::LengthMismatch {
                    ty: msgtype::FAIL,
                    expected: 2296,
                    got: len
                })
            );
        }
        let mut b = encode(&msg(msgtype::MFSTART, Body::Empty));
        b.push(0);
        set_totlen(&mut b);
        assert!(matches!(
            decode(&b),
            Err(WireError::LengthMismatch { expected: 2256, .. })
        ));

        // PUBLISH whose lengths disagree with totlen, including absurd ones.
        let p = encode(&msg(
            msgtype::PUBLISHSHARD,
            Body::Publish {
                channel: Bytes::from_static(b"c"),
                message: Bytes::from_static(b"m"),
            },
        ));
        for (c, m) in [(2u32, 1u32), (0, 0), (u32::MAX, u32::MAX)] {
            let mut b = p.clone();
            b[2256..2260].copy_from_slice(&c.to_be_bytes());
            b[2260..2264].copy_from_slice(&m.to_be_bytes());
            assert!(matches!(decode(&b), Err(WireError::LengthMismatch { .. })));
        }
        let mut b = p;
        b.truncate(2260);
        set_totlen(&mut b);
        assert!(matches!(
            decode(&b),
            Err(WireError::LengthMismatch { expected: 2264, .. })
        ));

        let mut b = encode(&msg(
            msgtype::MODULE,
            Body::Module {
                module_id: [0; 8],
                msg_type: 0,
                payload: Bytes::from_static(b"abc"),
            },
        ));
        b[2264..2268].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&b), Err(WireError::LengthMismatch { .. })));
    }

    #[test]
    fn bad_extensions() {
        let good = encode(&ping(vec![], vec![Ext::Hostname("h".into())]));
        let ext = HEADER_LEN;
        for bad_len in [0u32, 4, 12, 17] {
            let mut b = good.clone();
            b[ext..ext + 4].copy_from_slice(&bad_len.to_be_bytes());
            assert!(
                matches!(decode(&b), Err(WireError::BadExtension(_))),
                "{bad_len}"
            );
        }
        for overrun in [24u32, 0xffff_fff8] {
            let mut b = good.clone();
            b[ext..ext + 4].copy_from_slice(&overrun.to_be_bytes());
            assert!(matches!(decode(&b), Err(WireError::BadExtension(_))));
        }
        // More records claimed than present.
        let mut b = good.clone();
        set_be16(&mut b, off::EXTENSIONS, 2);
        assert!(matches!(decode(&b), Err(WireError::BadExtension(_))));
        // Fewer records claimed than present: trailing bytes.
        let mut b = good.clone();
        set_be16(&mut b, off::EXTENSIONS, 0);
        assert!(matches!(decode(&b), Err(WireError::LengthMismatch { .. })));
        // Hostname without NUL, and not UTF-8.
        let mut b = good.clone();
        b[ext + 8..ext + 16].copy_from_slice(b"abcdefgh");
        assert_eq!(
            decode(&b),
            Err(WireError::Unterminated("hostname extension"))
        );
        let mut b = good;
        b[ext + 8] = 0xff;
        assert_eq!(decode(&b), Err(WireError::BadUtf8("hostname extension")));
        // Known type with a payload too short for it.
        let mut b = encode(&ping(vec![], vec![Ext::Hostname("x".repeat(20))]));
        set_be16(&mut b, ext + 4, exttype::SHARDID);
        assert!(matches!(decode(&b), Err(WireError::BadExtension(_))));
    }

    #[test]
    fn bad_strings() {
        let mut b = encode(&msg(msgtype::MFSTART, Body::Empty));
        b[off::MYIP..off::MYIP + IP_LEN].fill(b'1');
        assert_eq!(decode(&b), Err(WireError::Unterminated("myip")));
        b[off::MYIP] = 0xc3;
        b[off::MYIP + 1] = 0;
        assert_eq!(decode(&b), Err(WireError::BadUtf8("myip")));
        let mut b = encode(&ping(vec![gossip(b'b')], vec![]));
        b[HEADER_LEN + goff::IP] = 0x80;
        assert_eq!(decode(&b), Err(WireError::BadUtf8("gossip ip")));
    }

    #[test]
    fn every_truncation_errors() {
        let full = rich_ping();
        assert!(decode(&full).is_ok());
        for len in 0..full.len() {
            // As received: totlen no longer matches.
            assert!(decode(&full[..len]).is_err(), "prefix {len}");
            // With totlen patched to agree, deeper checks must catch it.
            if len >= 8 {
                let mut b = full[..len].to_vec();
                set_totlen(&mut b);
                assert!(decode(&b).is_err(), "patched prefix {len}");
            }
        }
    }

    // ---- property tests ----

    fn arb_name() -> impl Strategy<Value = NodeName> {
        proptest::array::uniform::<_, NAME_LEN>(any::<u8>())
    }

    fn arb_ip() -> impl Strategy<Value = String> {
        "[0-9a-f.:]{0,45}"
    }

    fn arb_bytes() -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
    }

    fn arb_slots() -> impl Strategy<Value = SlotBitmap> {
        proptest::collection::vec(0u16..SLOTS as u16, 0..50).prop_map(|v| {
            let mut s = SlotBitmap::new();
            v.into_iter().for_each(|x| s.set(x, true));
            s
        })
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            (any::<u16>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (
                arb_name(),
                arb_slots(),
                proptest::option::of(arb_name()),
                arb_ip(),
            ),
            (
                any::<u16>(),
                any::<u16>(),
                any::<u16>(),
                any::<u8>(),
                any::<u8>(),
            ),
        )
            .prop_map(
                |(
                    (port, current_epoch, config_epoch, offset),
                    (sender, myslots, slaveof, myip),
                    (pport, cport, flags, state, mflags),
                )| Header {
                    ty: 0,
                    port,
                    current_epoch,
                    config_epoch,
                    offset,
                    sender,
                    myslots,
                    slaveof,
                    myip,
                    pport,
                    cport,
                    flags,
                    state,
                    mflags,
                },
            )
    }

    fn arb_gossip() -> impl Strategy<Value = Gossip> {
        (
            arb_name(),
            any::<u32>(),
            any::<u32>(),
            arb_ip(),
            any::<[u16; 4]>(),
        )
            .prop_map(
                |(name, ping_sent, pong_received, ip, [port, cport, flags, pport])| Gossip {
                    name,
                    ping_sent,
                    pong_received,
                    ip,
                    port,
                    cport,
                    flags,
                    pport,
                },
            )
    }

    fn arb_ext() -> impl Strategy<Value = Ext> {
        prop_oneof![
            "\\PC{0,40}".prop_map(Ext::Hostname),
            "\\PC{0,40}".prop_map(Ext::HumanNodename),
            (arb_name(), any::<u64>()).prop_map(|(name, ttl)| Ext::ForgottenNode { name, ttl }),
            arb_name().prop_map(Ext::ShardId),
            (4u16.., proptest::collection::vec(any::<u8>(), 0..30))
                .prop_map(|(ty, payload)| Ext::Unknown { ty, payload }),
        ]
    }

    fn arb_body() -> impl Strategy<Value = (u16, Body)> {
        use msgtype::*;
        prop_oneof![
            (
                PING..=MEET,
                proptest::collection::vec(arb_gossip(), 0..5),
                proptest::collection::vec(arb_ext(), 0..5)
            )
                .prop_map(|(t, gossip, exts)| (t, Body::Ping { gossip, exts })),
            arb_name().prop_map(|name| (FAIL, Body::Fail { name })),
            (
                prop::sample::select(vec![PUBLISH, PUBLISHSHARD]),
                arb_bytes(),
                arb_bytes()
            )
                .prop_map(|(t, channel, message)| (t, Body::Publish { channel, message })),
            (any::<u64>(), arb_name(), arb_slots()).prop_map(|(config_epoch, name, slots)| (
                UPDATE,
                Body::Update {
                    config_epoch,
                    name,
                    slots
                }
            )),
            prop::sample::select(vec![AUTH_REQUEST, AUTH_ACK, MFSTART])
                .prop_map(|t| (t, Body::Empty)),
            (any::<[u8; 8]>(), any::<u8>(), arb_bytes()).prop_map(
                |(module_id, msg_type, payload)| (
                    MODULE,
                    Body::Module {
                        module_id,
                        msg_type,
                        payload
                    }
                )
            ),
            (11u16..LIGHT_BIT, arb_bytes()).prop_map(|(t, b)| (t, Body::Unknown(b))),
        ]
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        (arb_header(), arb_body()).prop_map(|(mut header, (ty, body))| {
            header.ty = ty;
            Message { header, body }
        })
    }

    /// What decoding an encoded `m` gives back: EXT_DATA follows the
    /// extensions, a zero `slaveof` means none, unknown payloads come back
    /// with their padding.
    fn normalized(mut m: Message) -> Message {
        if m.header.slaveof == Some([0; NAME_LEN]) {
            m.header.slaveof = None;
        }
        if let Body::Ping { exts, .. } = &mut m.body {
            m.header.mflags &= !mflag::EXT_DATA;
            if !exts.is_empty() {
                m.header.mflags |= mflag::EXT_DATA;
            }
            for e in exts {
                if let Ext::Unknown { payload, .. } = e {
                    payload.resize(payload.len().next_multiple_of(8), 0);
                }
            }
        }
        m
    }

    proptest! {
        #[test]
        fn round_trip(m in arb_message()) {
            let b = encode(&m);
            prop_assert_eq!(frame_len(&b), Ok(b.len()));
            let d = decode(&b).unwrap();
            prop_assert_eq!(&d, &normalized(m));
            prop_assert_eq!(encode(&d), b);
        }

        #[test]
        fn random_bytes_never_panic(mut b in proptest::collection::vec(any::<u8>(), 0..3000), framed in any::<bool>()) {
            let _ = decode(&b);
            if framed && b.len() >= 10 {
                // Make it pass the framing and version checks.
                b[..4].copy_from_slice(SIGNATURE);
                set_totlen(&mut b);
                set_be16(&mut b, off::VER, 1);
                let _ = decode(&b);
            }
        }

        #[test]
        fn mutations_never_panic(
            m in arb_message(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut b = encode(&m);
            // Mostly hit the variable parts: counters, mflags, body.
            let hot = [off::COUNT, off::COUNT + 1, off::EXTENSIONS, off::EXTENSIONS + 1, off::MFLAGS, off::TYPE + 1];
            for (i, (at, v)) in edits.into_iter().enumerate() {
                let pos = if i % 2 == 0 && b.len() > HEADER_LEN {
                    HEADER_LEN + at.index(b.len() - HEADER_LEN)
                } else {
                    hot[at.index(hot.len())]
                };
                b[pos] = v;
            }
            let _ = decode(&b);
            b.truncate(cut.index(b.len() + 1));
            if b.len() >= 8 {
                set_totlen(&mut b);
            }
            let _ = decode(&b);
        }
    }
}
