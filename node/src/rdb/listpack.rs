//! Redis's listpack byte format (what RDB types 16, 17, 18 and 20 carry).
//!
//! Layout: u32 LE total bytes, u16 LE element count (65535 when the count
//! does not fit), the entries, and a 0xFF terminator. Each entry is an
//! encoding byte (with the integer or string length), the data, and a
//! "backlen": the length of encoding + data in 1 to 5 bytes, read from right
//! to left, 7 bits per byte, the high bit set on every byte but the leftmost.

use super::{parse_canonical_int, Elem, RdbError};

const HEADER: usize = 6;
const EOF: u8 = 0xFF;
/// Count stored in the header when the real count is not representable.
const UNKNOWN_COUNT: u16 = u16::MAX;

/// Builds a listpack in a caller-owned buffer.
pub(crate) struct LpBuilder<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
    count: usize,
}

impl<'a> LpBuilder<'a> {
    /// Starts a listpack at the end of `buf`.
    pub(crate) fn new(buf: &'a mut Vec<u8>) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&[0; HEADER]);
        LpBuilder {
            buf,
            start,
            count: 0,
        }
    }

    /// Number of entries so far.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Bytes so far (header and entries, without the terminator).
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Appends an integer entry.
    pub(crate) fn push_int(&mut self, v: i64) {
        let b = &mut *self.buf;
        let before = b.len();
        if (0..=127).contains(&v) {
            b.push(v as u8);
        } else if (-4096..=4095).contains(&v) {
            let u = (v as u16) & 0x1FFF;
            b.push(0xC0 | (u >> 8) as u8);
            b.push(u as u8);
        } else if (-32768..=32767).contains(&v) {
            b.push(0xF1);
            b.extend_from_slice(&(v as i16).to_le_bytes());
        } else if (-8_388_608..=8_388_607).contains(&v) {
            b.push(0xF2);
            b.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            b.push(0xF3);
            b.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            b.push(0xF4);
            b.extend_from_slice(&v.to_le_bytes());
        }
        let len = b.len() - before;
        put_backlen(b, len);
        self.count += 1;
    }

    /// Appends a string entry; canonical decimal integers are stored as
    /// integers, like redis does.
    pub(crate) fn push_str(&mut self, s: &[u8]) {
        if s.len() <= 20 {
            if let Some(v) = parse_canonical_int(s) {
                return self.push_int(v);
            }
        }
        let b = &mut *self.buf;
        let before = b.len();
        let n = s.len();
        if n < 64 {
            b.push(0x80 | n as u8);
        } else if n < 4096 {
            b.push(0xE0 | (n >> 8) as u8);
            b.push(n as u8);
        } else {
            b.push(0xF0);
            b.extend_from_slice(&(n as u32).to_le_bytes());
        }
        b.extend_from_slice(s);
        let len = b.len() - before;
        put_backlen(b, len);
        self.count += 1;
    }

    /// Appends an element.
    pub(crate) fn push(&mut self, e: Elem<'_>) {
        match e {
            Elem::Int(i) => self.push_int(i),
            Elem::Str(s) => self.push_str(s),
        }
    }

    /// Writes the terminator and the header.
    pub(crate) fn finish(self) {
        self.buf.push(EOF);
        let total = (self.buf.len() - self.start) as u32;
        let count = u16::try_from(self.count).unwrap_or(UNKNOWN_COUNT);
        let h = &mut self.buf[self.start..self.start + HEADER];
        h[..4].copy_from_slice(&total.to_le_bytes());
        h[4..].copy_from_slice(&count.to_le_bytes());
    }
}

/// Bytes an element takes in a listpack (encoding, data and backlen), as
/// [`LpBuilder::push`] writes it.
pub(crate) fn entry_size(e: Elem<'_>) -> usize {
    let int_size = |v: i64| {
        if (0..=127).contains(&v) {
            2
        } else if (-4096..=4095).contains(&v) {
            3
        } else if (-32768..=32767).contains(&v) {
            4
        } else if (-8_388_608..=8_388_607).contains(&v) {
            5
        } else if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&v) {
            6
        } else {
            10
        }
    };
    match e {
        Elem::Int(v) => int_size(v),
        Elem::Str(s) => {
            if s.len() <= 20 {
                if let Some(v) = parse_canonical_int(s) {
                    return int_size(v);
                }
            }
            let n = s.len();
            let l = n + if n < 64 {
                1
            } else if n < 4096 {
                2
            } else {
                5
            };
            l + backlen_size(l)
        }
    }
}

/// Appends the backlen of an entry of `l` bytes (encoding + data).
fn put_backlen(b: &mut Vec<u8>, l: usize) {
    if l <= 127 {
        b.push(l as u8);
    } else if l < 16383 {
        b.extend_from_slice(&[(l >> 7) as u8, (l & 127) as u8 | 128]);
    } else if l < 2_097_151 {
        b.extend_from_slice(&[
            (l >> 14) as u8,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else if l < 268_435_455 {
        b.extend_from_slice(&[
            (l >> 21) as u8,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    } else {
        b.extend_from_slice(&[
            (l >> 28) as u8,
            ((l >> 21) & 127) as u8 | 128,
            ((l >> 14) & 127) as u8 | 128,
            ((l >> 7) & 127) as u8 | 128,
            (l & 127) as u8 | 128,
        ]);
    }
}

/// Number of bytes of the backlen of an `l`-byte entry.
fn backlen_size(l: usize) -> usize {
    if l <= 127 {
        1
    } else if l < 16383 {
        2
    } else if l < 2_097_151 {
        3
    } else if l < 268_435_455 {
        4
    } else {
        5
    }
}

/// Decodes the backlen ending at `end` (exclusive) in `b`, reading right to
/// left; returns the value and its size.
fn read_backlen(b: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut v = 0usize;
    let mut shift = 0;
    let mut i = end;
    loop {
        if i == 0 || end - i >= 5 {
            return None;
        }
        i -= 1;
        let byte = b[i];
        v |= usize::from(byte & 127) << shift;
        shift += 7;
        if byte & 128 == 0 {
            return Some((v, end - i));
        }
    }
}

fn corrupt(what: &str) -> RdbError {
    RdbError::corrupt(format!("listpack: {what}"))
}

/// Validates a redis listpack and calls `f` on each element in order.
/// Returns the number of elements.
pub(crate) fn for_each<'a>(
    lp: &'a [u8],
    mut f: impl FnMut(Elem<'a>) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    if lp.len() < HEADER + 1 {
        return Err(corrupt("too short"));
    }
    let total = u32::from_le_bytes([lp[0], lp[1], lp[2], lp[3]]) as usize;
    if total != lp.len() {
        return Err(corrupt("header size does not match"));
    }
    let declared = u16::from_le_bytes([lp[4], lp[5]]);
    let mut pos = HEADER;
    let mut count = 0usize;
    loop {
        let Some(&b0) = lp.get(pos) else {
            return Err(corrupt("missing terminator"));
        };
        if b0 == EOF {
            if pos + 1 != lp.len() {
                return Err(corrupt("data after terminator"));
            }
            break;
        }
        let need = |n: usize| -> Result<&'a [u8], RdbError> {
            lp.get(pos + 1..pos + 1 + n)
                .ok_or_else(|| corrupt("entry out of range"))
        };
        let (elem, len) = if b0 & 0x80 == 0 {
            (Elem::Int(i64::from(b0 & 0x7F)), 1)
        } else if b0 & 0xC0 == 0x80 {
            let n = usize::from(b0 & 0x3F);
            (Elem::Str(need(n)?), 1 + n)
        } else if b0 & 0xE0 == 0xC0 {
            let d = need(1)?;
            let u = (u16::from(b0 & 0x1F) << 8) | u16::from(d[0]);
            let v = if u >= 1 << 12 {
                i64::from(u) - (1 << 13)
            } else {
                i64::from(u)
            };
            (Elem::Int(v), 2)
        } else if b0 & 0xF0 == 0xE0 {
            let d = need(1)?;
            let n = (usize::from(b0 & 0x0F) << 8) | usize::from(d[0]);
            let s = lp
                .get(pos + 2..pos + 2 + n)
                .ok_or_else(|| corrupt("entry out of range"))?;
            (Elem::Str(s), 2 + n)
        } else {
            match b0 {
                0xF0 => {
                    let d = need(4)?;
                    let n = u32::from_le_bytes([d[0], d[1], d[2], d[3]]) as usize;
                    let s = lp
                        .get(pos + 5..pos.saturating_add(5).saturating_add(n))
                        .ok_or_else(|| corrupt("entry out of range"))?;
                    (Elem::Str(s), 5 + n)
                }
                0xF1 => {
                    let d = need(2)?;
                    (Elem::Int(i64::from(i16::from_le_bytes([d[0], d[1]]))), 3)
                }
                0xF2 => {
                    let d = need(3)?;
                    let v = i32::from_le_bytes([0, d[0], d[1], d[2]]) >> 8;
                    (Elem::Int(i64::from(v)), 4)
                }
                0xF3 => {
                    let d = need(4)?;
                    (
                        Elem::Int(i64::from(i32::from_le_bytes([d[0], d[1], d[2], d[3]]))),
                        5,
                    )
                }
                0xF4 => {
                    let d = need(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(d);
                    (Elem::Int(i64::from_le_bytes(a)), 9)
                }
                _ => return Err(corrupt("invalid entry encoding")),
            }
        };
        let bl = backlen_size(len);
        let end = pos + len + bl;
        if end > lp.len() {
            return Err(corrupt("entry out of range"));
        }
        match read_backlen(lp, end) {
            Some((v, size)) if v == len && size == bl => {}
            _ => return Err(corrupt("bad backlen")),
        }
        f(elem)?;
        count += 1;
        pos = end;
    }
    if declared != UNKNOWN_COUNT && usize::from(declared) != count {
        return Err(corrupt("element count does not match the header"));
    }
    Ok(count)
}
