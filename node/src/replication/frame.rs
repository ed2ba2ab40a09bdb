//! Splitting a replication stream into whole commands, keeping each
//! command's exact bytes: a replica counts them into its offset and passes
//! them on, verbatim, to its own replicas.

use bytes::{Bytes, BytesMut};

/// A malformed replication stream.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: invalid multibulk length")]
    BadCount,
    #[error("Protocol error: invalid bulk length")]
    BadBulkLen,
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
}

const MAX_LINE: usize = 64 * 1024;

fn line_end(buf: &[u8], from: usize) -> Result<Option<usize>, FrameError> {
    match buf[from..].iter().position(|&b| b == b'\n') {
        Some(p) => Ok(Some(from + p)),
        None if buf.len() - from > MAX_LINE => Err(FrameError::InlineTooBig),
        None => Ok(None),
    }
}

fn parse_num(b: &[u8]) -> Option<i64> {
    let b = b.strip_suffix(b"\r").unwrap_or(b);
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// The length of the first complete command in `buf`, or None when more
/// input is needed. Inline commands (lines) are accepted too.
pub fn frame_len(buf: &[u8], max_bulk: u64) -> Result<Option<usize>, FrameError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return Ok(line_end(buf, 0)?.map(|e| e + 1));
    }
    let Some(e) = line_end(buf, 0)? else {
        return Ok(None);
    };
    let n = parse_num(&buf[1..e]).ok_or(FrameError::BadCount)?;
    if !(-1..=1024 * 1024).contains(&n) {
        return Err(FrameError::BadCount);
    }
    let mut pos = e + 1;
    for _ in 0..n.max(0) {
        if pos >= buf.len() {
            return Ok(None);
        }
        if buf[pos] != b'$' {
            return Err(FrameError::ExpectedDollar(char::from(buf[pos])));
        }
        let Some(e) = line_end(buf, pos)? else {
            return Ok(None);
        };
        let len = parse_num(&buf[pos + 1..e]).ok_or(FrameError::BadBulkLen)?;
        if len < 0 || len as u64 > max_bulk {
            return Err(FrameError::BadBulkLen);
        }
        pos = e + 1 + len as usize + 2;
        if pos > buf.len() {
            return Ok(None);
        }
    }
    Ok(Some(pos))
}

/// Takes the first complete command off `buf`: its exact bytes and its
/// arguments (slices of those bytes). An empty argument list is a blank
/// line or an empty array, which the stream may carry (newlines sent as
/// keepalives) and which still counts into the offset.
pub fn next_frame(
    buf: &mut BytesMut,
    max_bulk: u64,
) -> Result<Option<(Bytes, Vec<Bytes>)>, FrameError> {
    let Some(n) = frame_len(buf, max_bulk)? else {
        return Ok(None);
    };
    let raw = buf.split_to(n).freeze();
    let args = split(&raw);
    Ok(Some((raw, args)))
}

/// The arguments of one complete command (slices of `raw`).
pub fn split(raw: &Bytes) -> Vec<Bytes> {
    if raw.first() != Some(&b'*') {
        let line = raw.strip_suffix(b"\n").unwrap_or(raw);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        return crate::resp::split_args(line)
            .unwrap_or_default()
            .into_iter()
            .map(Bytes::from)
            .collect();
    }
    let mut args = Vec::new();
    let Some(e) = raw.iter().position(|&b| b == b'\n') else {
        return args;
    };
    let mut pos = e + 1;
    while pos < raw.len() {
        let Some(rel) = raw[pos..].iter().position(|&b| b == b'\n') else {
            break;
        };
        let e = pos + rel;
        let len = parse_num(&raw[pos + 1..e]).unwrap_or(0).max(0) as usize;
        let start = e + 1;
        if start + len > raw.len() {
            break;
        }
        args.push(raw.slice(start..start + len));
        pos = start + len + 2;
    }
    args
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_commands_with_exact_bytes() {
        let mut b = BytesMut::from(
            &b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*1\r\n$4\r\nPING\r\n\n*2\r\n$3\r\nDEL"[..],
        );
        let (raw, args) = next_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(&raw[..], b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n");
        assert_eq!(args, vec!["SET", "k", "v1"]);
        let (raw, args) = next_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(raw.len(), 14);
        assert_eq!(args, vec!["PING"]);
        let (raw, args) = next_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(&raw[..], b"\n");
        assert!(args.is_empty());
        assert!(next_frame(&mut b, 1 << 20).unwrap().is_none());
        b.extend_from_slice(b"\r\n$1\r\nk\r\n");
        let (_, args) = next_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(args, vec!["DEL", "k"]);
        assert!(b.is_empty());
    }

    #[test]
    fn binary_values_and_bad_input() {
        let mut b = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$4\r\na\r\nb\r\n"[..]);
        let (_, args) = next_frame(&mut b, 1 << 20).unwrap().unwrap();
        assert_eq!(&args[1][..], b"a\r\nb");
        let mut b = BytesMut::from(&b"*1\r\n:3\r\n"[..]);
        assert_eq!(
            next_frame(&mut b, 1 << 20),
            Err(FrameError::ExpectedDollar(':'))
        );
        let mut b = BytesMut::from(&b"*x\r\n"[..]);
        assert_eq!(next_frame(&mut b, 1 << 20), Err(FrameError::BadCount));
        let mut b = BytesMut::from(&b"*1\r\n$100\r\n"[..]);
        assert_eq!(next_frame(&mut b, 10), Err(FrameError::BadBulkLen));
    }

    proptest::proptest! {
        #[test]
        fn any_split_point_gives_the_same_commands(
            cmds in proptest::collection::vec(proptest::collection::vec(proptest::collection::vec(0u8..=255, 0..20), 1..4), 1..5),
            cut in 0usize..200,
        ) {
            let mut all = BytesMut::new();
            for c in &cmds {
                let refs: Vec<&[u8]> = c.iter().map(|a| &a[..]).collect();
                crate::stream::encode(&mut all, &refs);
            }
            let total = all.len();
            let cut = cut.min(total);
            let mut buf = BytesMut::from(&all[..cut]);
            let mut got = Vec::new();
            let mut bytes = 0;
            while let Some((raw, args)) = next_frame(&mut buf, 1 << 20).unwrap() {
                bytes += raw.len();
                got.push(args);
            }
            buf.extend_from_slice(&all[cut..]);
            while let Some((raw, args)) = next_frame(&mut buf, 1 << 20).unwrap() {
                bytes += raw.len();
                got.push(args);
            }
            proptest::prop_assert_eq!(bytes, total);
            let want: Vec<Vec<Bytes>> = cmds.iter().map(|c| c.iter().map(|a| Bytes::from(a.clone())).collect()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
