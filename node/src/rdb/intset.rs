//! Redis's intset byte format (RDB type 11): u32 LE encoding (2, 4 or 8
//! bytes per value), u32 LE count, then the values, little-endian, strictly
//! ascending.

use super::RdbError;

fn corrupt(what: &str) -> RdbError {
    RdbError::corrupt(format!("intset: {what}"))
}

#[cfg(test)]
/// Appends the intset of `values` (ascending, unique) to `out`, with the
/// narrowest encoding that holds them all.
pub(crate) fn encode(out: &mut Vec<u8>, values: &[i64]) {
    let width = values
        .iter()
        .map(|&v| {
            if i16::try_from(v).is_ok() {
                2
            } else if i32::try_from(v).is_ok() {
                4
            } else {
                8
            }
        })
        .max()
        .unwrap_or(2);
    out.reserve(8 + width * values.len());
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&(values.len() as u32).to_le_bytes());
    for &v in values {
        match width {
            2 => out.extend_from_slice(&(v as i16).to_le_bytes()),
            4 => out.extend_from_slice(&(v as i32).to_le_bytes()),
            _ => out.extend_from_slice(&v.to_le_bytes()),
        }
    }
}

/// Validates an intset and calls `f` on every value (ascending). Returns
/// the count.
pub(crate) fn for_each(
    blob: &[u8],
    mut f: impl FnMut(i64) -> Result<(), RdbError>,
) -> Result<usize, RdbError> {
    if blob.len() < 8 {
        return Err(corrupt("too short"));
    }
    let width = u32::from_le_bytes([blob[0], blob[1], blob[2], blob[3]]) as usize;
    let count = u32::from_le_bytes([blob[4], blob[5], blob[6], blob[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(corrupt("bad encoding"));
    }
    if count.checked_mul(width).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(corrupt("length does not match the count"));
    }
    let mut prev: Option<i64> = None;
    for c in blob[8..].chunks_exact(width) {
        let v = match width {
            2 => i64::from(i16::from_le_bytes([c[0], c[1]])),
            4 => i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            _ => {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                i64::from_le_bytes(a)
            }
        };
        if prev.is_some_and(|p| p >= v) {
            return Err(corrupt("values not strictly ascending"));
        }
        prev = Some(v);
        f(v)?;
    }
    Ok(count)
}
