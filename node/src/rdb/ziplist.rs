//! Redis's ziplist and zipmap byte formats (read only: redis 7.0 no longer
//! writes them, but loads them from older RDB files).
//!
//! Ziplist: u32 LE total bytes, u32 LE offset of the last entry, u16 LE
//! count (65535 when unknown), entries, 0xFF. An entry is the previous
//! entry's length (1 byte, or 0xFE and a u32 LE), an encoding, and data.
//!
//! Zipmap: a 1-byte count (254 or more: unknown), then key/value pairs
//! (`<len>key<len><free>value<free bytes>`; a length is 1 byte below 254, or
//! 254 and a u32 LE), then 0xFF.

use super::{Elem, RdbError};

const HEADER: usize = 10;
const END: u8 = 0xFF;

fn corrupt(what: &str) -> RdbError {
    RdbError::corrupt(format!("ziplist: {what}"))
}

fn u32_at(b: &[u8], pos: usize) -> Option<u32> {
    let s = b.get(pos..pos + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Validates a ziplist and calls `f` on each element in order. Returns the
/// number of elements.
pub(crate) fn for_each<'a>(
    zl: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    if zl.len() < HEADER + 1 {
        return Err(corrupt("too short"));
    }
    let total = u32_at(zl, 0).unwrap_or(0) as usize;
    let tail = u32_at(zl, 4).unwrap_or(0) as usize;
    let declared = u16::from_le_bytes([zl[8], zl[9]]);
    if total != zl.len() {
        return Err(corrupt("header size does not match"));
    }
    let mut pos = HEADER;
    let mut prev_len = 0usize;
    let mut last_start = HEADER;
    let mut count = 0usize;
    loop {
        let Some(&b0) = zl.get(pos) else {
            return Err(corrupt("missing terminator"));
        };
        if b0 == END {
            if pos + 1 != zl.len() {
                return Err(corrupt("data after terminator"));
            }
            break;
        }
        let start = pos;
        // prevlen
        let prevlen = if b0 < 254 {
            pos += 1;
            usize::from(b0)
        } else if b0 == 254 {
            let v = u32_at(zl, pos + 1).ok_or_else(|| corrupt("entry out of range"))?;
            pos += 5;
            v as usize
        } else {
            return Err(corrupt("bad prevlen"));
        };
        if prevlen != prev_len {
            return Err(corrupt("prevlen does not match the previous entry"));
        }
        let enc = *zl.get(pos).ok_or_else(|| corrupt("entry out of range"))?;
        let take = |from: usize, n: usize| -> Result<&'a [u8], RdbError> {
            zl.get(
                from..from
                    .checked_add(n)
                    .ok_or_else(|| corrupt("length overflow"))?,
            )
            .ok_or_else(|| corrupt("entry out of range"))
        };
        let elem = match enc >> 6 {
            0 => {
                let n = usize::from(enc & 0x3F);
                let s = take(pos + 1, n)?;
                pos += 1 + n;
                Elem::Str(s)
            }
            1 => {
                let d = take(pos + 1, 1)?;
                let n = (usize::from(enc & 0x3F) << 8) | usize::from(d[0]);
                let s = take(pos + 2, n)?;
                pos += 2 + n;
                Elem::Str(s)
            }
            2 => {
                if enc != 0x80 {
                    return Err(corrupt("bad string encoding"));
                }
                let d = take(pos + 1, 4)?;
                let n = u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize;
                let s = take(pos + 5, n)?;
                pos += 5 + n;
                Elem::Str(s)
            }
            _ => {
                let (v, n) = match enc {
                    0xC0 => {
                        let d = take(pos + 1, 2)?;
                        (i64::from(i16::from_le_bytes([d[0], d[1]])), 2)
                    }
                    0xD0 => {
                        let d = take(pos + 1, 4)?;
                        (i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]])), 4)
                    }
                    0xE0 => {
                        let d = take(pos + 1, 8)?;
                        let mut a = [0u8; 8];
                        a.copy_from_slice(d);
                        (i64::from_le_bytes(a), 8)
                    }
                    0xF0 => {
                        let d = take(pos + 1, 3)?;
                        (i64::from(i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8), 3)
                    }
                    0xFE => {
                        let d = take(pos + 1, 1)?;
                        (i64::from(d[0] as i8), 1)
                    }
                    0xF1..=0xFD => (i64::from(enc & 0x0F) - 1, 0),
                    _ => return Err(corrupt("bad integer encoding")),
                };
                pos += 1 + n;
                Elem::Int(v)
            }
        };
        if pos >= zl.len() {
            return Err(corrupt("entry out of range"));
        }
        f(elem)?;
        count += 1;
        prev_len = pos - start;
        last_start = start;
    }
    if tail != last_start {
        return Err(corrupt("tail offset does not match"));
    }
    if declared != u16::MAX && usize::from(declared) != count {
        return Err(corrupt("element count does not match the header"));
    }
    Ok(count)
}

/// Validates a zipmap and calls `f` on each field/value pair. Returns the
/// number of pairs.
pub(crate) fn zipmap_for_each<'a>(
    zm: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    let bad = |what: &str| RdbError::corrupt(format!("zipmap: {what}"));
    let Some(&declared) = zm.first() else {
        return Err(bad("empty"));
    };
    let mut pos = 1;
    let read_len = |pos: &mut usize| -> Result<Option<usize>, RdbError> {
        let b = *zm.get(*pos).ok_or_else(|| bad("missing terminator"))?;
        match b {
            END => Ok(None),
            254 => {
                let v = u32_at(zm, *pos + 1).ok_or_else(|| bad("length out of range"))?;
                *pos += 5;
                Ok(Some(v as usize))
            }
            n => {
                *pos += 1;
                Ok(Some(usize::from(n)))
            }
        }
    };
    let take = |from: usize, n: usize| -> Result<&'a [u8], RdbError> {
        zm.get(from..from.checked_add(n).ok_or_else(|| bad("length overflow"))?)
            .ok_or_else(|| bad("entry out of range"))
    };
    let mut count = 0usize;
    while let Some(klen) = read_len(&mut pos)? {
        let key = take(pos, klen)?;
        pos += klen;
        let Some(vlen) = read_len(&mut pos)? else {
            return Err(bad("key without value"));
        };
        let free = usize::from(*zm.get(pos).ok_or_else(|| bad("entry out of range"))?);
        pos += 1;
        let val = take(pos, vlen)?;
        pos += vlen;
        take(pos, free)?;
        pos += free;
        f(key, val)?;
        count += 1;
    }
    if pos + 1 != zm.len() {
        return Err(bad("data after terminator"));
    }
    if declared < 254 && usize::from(declared) != count {
        return Err(bad("element count does not match the header"));
    }
    Ok(count)
}

/// Builds a ziplist (tests only: redis 7.0 never writes ziplists).
#[cfg(test)]
pub(crate) fn build(elems: &[Elem<'_>]) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    let mut prev = 0usize;
    let mut tail = HEADER;
    for e in elems {
        let start = out.len();
        tail = start;
        if prev < 254 {
            out.push(prev as u8);
        } else {
            out.push(254);
            out.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match *e {
            Elem::Int(v) => {
                if (0..=12).contains(&v) {
                    out.push(0xF1 + v as u8);
                } else if let Ok(x) = i8::try_from(v) {
                    out.push(0xFE);
                    out.push(x as u8);
                } else if let Ok(x) = i16::try_from(v) {
                    out.push(0xC0);
                    out.extend_from_slice(&x.to_le_bytes());
                } else if (-8_388_608..=8_388_607).contains(&v) {
                    out.push(0xF0);
                    out.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                } else if let Ok(x) = i32::try_from(v) {
                    out.push(0xD0);
                    out.extend_from_slice(&x.to_le_bytes());
                } else {
                    out.push(0xE0);
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Elem::Str(s) => {
                let n = s.len();
                if n < 64 {
                    out.push(n as u8);
                } else if n < 16384 {
                    out.push(0x40 | (n >> 8) as u8);
                    out.push(n as u8);
                } else {
                    out.push(0x80);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
                out.extend_from_slice(s);
            }
        }
        prev = out.len() - start;
    }
    out.push(END);
    let total = out.len() as u32;
    out[0..4].copy_from_slice(&total.to_le_bytes());
    out[4..8].copy_from_slice(&(tail as u32).to_le_bytes());
    let count = u16::try_from(elems.len()).unwrap_or(u16::MAX);
    out[8..10].copy_from_slice(&count.to_le_bytes());
    out
}
