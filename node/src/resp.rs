//! RESP2/RESP3 wire protocol: an incremental request parser (multibulk and
//! inline forms) and a reply writer that encodes straight into the
//! connection's output buffer.
//!
//! The parser keeps its position inside a partially received multibulk
//! request, so a request that arrives in many reads is scanned once, and it
//! reserves room for a large bulk up front so reading it never copies the
//! bytes already received (no quadratic behaviour for big values).

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// Largest multibulk element count redis accepts in one request.
pub const MAX_MULTIBULK_LEN: i64 = 1024 * 1024 * 1024;
/// An inline request (or a multibulk header line) longer than this is refused.
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Bulks at least this large are read into their own allocation.
const BIG_ARG: usize = 32 * 1024;

/// A protocol violation; the connection replies `-ERR Protocol error: ...`
/// and is closed, as redis does.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedDollar(char),
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    #[error("Protocol error: too big mbulk count string")]
    TooBigMbulkCount,
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// Limits the parser enforces (from `proto-max-bulk-len`).
#[derive(Debug, Clone, Copy)]
pub struct ParseLimits {
    pub max_bulk_len: u64,
}

impl Default for ParseLimits {
    fn default() -> Self {
        ParseLimits {
            max_bulk_len: 512 * 1024 * 1024,
        }
    }
}

/// Incremental request parser. Feed it the connection's input buffer; it
/// consumes complete requests and remembers where it stopped inside an
/// incomplete one.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// Remaining elements of the multibulk being read (0 = between requests).
    pending: usize,
    /// Length of the bulk whose `$len` line was read but not its payload.
    bulk_len: Option<usize>,
    args: Vec<Bytes>,
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    memchr_nl(buf).map(|nl| {
        if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        }
    })
}

fn memchr_nl(buf: &[u8]) -> Option<usize> {
    buf.iter().position(|&b| b == b'\n')
}

/// Parses a RESP length line body (after the type byte) as redis does:
/// optional sign, decimal digits only.
fn parse_len(line: &[u8]) -> Option<i64> {
    if line.is_empty() || line.len() > 20 {
        return None;
    }
    let (neg, digits) = match line[0] {
        b'-' => (true, &line[1..]),
        _ => (false, line),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a request is partially read (used for the query buffer
    /// limit and to reserve room for large bulks).
    pub fn in_progress(&self) -> bool {
        self.pending > 0
    }

    /// Bytes the parser still needs for the bulk it is reading, if known.
    pub fn bulk_needed(&self) -> Option<usize> {
        self.bulk_len.map(|n| n + 2)
    }

    /// Parses one request from `buf`. `Ok(None)` means more input is needed.
    /// An empty `Vec` is never returned: blank inline lines and `*0`/`*-1`
    /// requests are skipped, as redis does.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &ParseLimits,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.pending == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf[0] != b'*' {
                    match self.parse_inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
                let Some(end) = find_crlf(buf) else {
                    if buf.len() > MAX_INLINE_LEN {
                        return Err(ProtocolError::TooBigMbulkCount);
                    }
                    return Ok(None);
                };
                if end > MAX_INLINE_LEN {
                    return Err(ProtocolError::TooBigMbulkCount);
                }
                let n = parse_len(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                let skip = if buf.get(end) == Some(&b'\r') {
                    end + 2
                } else {
                    end + 1
                };
                if n > MAX_MULTIBULK_LEN {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                buf.advance(skip);
                if n <= 0 {
                    continue;
                }
                self.pending = n as usize;
                self.args = Vec::with_capacity(self.pending.min(1024));
            }
            while self.pending > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => {
                        if buf.is_empty() {
                            return Ok(None);
                        }
                        let Some(end) = find_crlf(buf) else {
                            if buf.len() > MAX_INLINE_LEN {
                                return Err(ProtocolError::TooBigBulkCount);
                            }
                            return Ok(None);
                        };
                        if buf[0] != b'$' {
                            return Err(ProtocolError::ExpectedDollar(char::from(buf[0])));
                        }
                        if end > MAX_INLINE_LEN {
                            return Err(ProtocolError::TooBigBulkCount);
                        }
                        let n = parse_len(&buf[1..end]).ok_or(ProtocolError::InvalidBulkLength)?;
                        if n < 0 || n as u64 > limits.max_bulk_len {
                            return Err(ProtocolError::InvalidBulkLength);
                        }
                        let skip = if buf.get(end) == Some(&b'\r') {
                            end + 2
                        } else {
                            end + 1
                        };
                        buf.advance(skip);
                        let n = n as usize;
                        if n >= BIG_ARG && buf.capacity() - buf.len() < n + 2 {
                            buf.reserve(n + 2);
                        }
                        self.bulk_len = Some(n);
                        n
                    }
                };
                if buf.len() < len + 2 {
                    return Ok(None);
                }
                let arg = buf.split_to(len).freeze();
                buf.advance(2);
                self.bulk_len = None;
                self.args.push(arg);
                self.pending -= 1;
            }
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }

    fn parse_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        // redis looks for the newline with strchr, which stops at a NUL
        // byte: a NUL before the newline means "no complete line yet" (until
        // the buffer exceeds the inline limit).
        let nl = memchr_nl(buf).filter(|&nl| !buf[..nl].contains(&0));
        let Some(nl) = nl else {
            if buf.len() > MAX_INLINE_LEN {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        if nl > MAX_INLINE_LEN {
            return Err(ProtocolError::TooBigInline);
        }
        let line = buf.split_to(nl + 1);
        let mut body = &line[..nl];
        if body.last() == Some(&b'\r') {
            body = &body[..body.len() - 1];
        }
        let args = split_args(body).ok_or(ProtocolError::UnbalancedQuotes)?;
        Ok(Some(args.into_iter().map(Bytes::from).collect()))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// C `isspace`: space, \t, \n, \v, \f, \r.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Splits a line into arguments like redis's `sdssplitargs`: whitespace
/// separated, with "double quotes" (C escapes, \xHH) and 'single quotes'.
/// A quote opens a quoted part even in the middle of an argument, and, as
/// the C original works on a NUL-terminated string, a NUL byte ends the
/// line. Returns `None` for unbalanced quotes. Also used by the config
/// parser.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_c_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && hex_val(line[i + 2]).is_some()
                    && hex_val(line[i + 3]).is_some()
                {
                    let h = hex_val(line[i + 2]).unwrap_or(0);
                    let l = hex_val(line[i + 3]).unwrap_or(0);
                    cur.push(h * 16 + l);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !is_c_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Which protocol a connection speaks (HELLO 2 / HELLO 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proto {
    #[default]
    Resp2,
    Resp3,
}

/// Encodes replies into an output buffer according to the client's protocol.
pub struct ReplyWriter<'a> {
    pub buf: &'a mut BytesMut,
    pub proto: Proto,
}

impl<'a> ReplyWriter<'a> {
    pub fn new(buf: &'a mut BytesMut, proto: Proto) -> Self {
        ReplyWriter { buf, proto }
    }

    pub fn resp3(&self) -> bool {
        self.proto == Proto::Resp3
    }

    fn line(&mut self, prefix: u8, n: i64) {
        let mut b = itoa::Buffer::new();
        self.buf.reserve(24);
        self.buf.extend_from_slice(&[prefix]);
        self.buf.extend_from_slice(b.format(n).as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn ok(&mut self) {
        self.buf.extend_from_slice(b"+OK\r\n");
    }

    /// `+status`. `s` must not contain CR or LF.
    pub fn simple(&mut self, s: &str) {
        self.buf.reserve(s.len() + 3);
        self.buf.extend_from_slice(b"+");
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    /// `-ERR ...`: `msg` is the full error text including its code word
    /// (e.g. `ERR syntax error`, `WRONGTYPE ...`). Newlines are replaced.
    pub fn error(&mut self, msg: &str) {
        self.buf.reserve(msg.len() + 3);
        self.buf.extend_from_slice(b"-");
        for &b in msg.as_bytes() {
            self.buf
                .extend_from_slice(&[if b == b'\r' || b == b'\n' { b' ' } else { b }]);
        }
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn int(&mut self, n: i64) {
        self.line(b':', n);
    }

    pub fn bulk(&mut self, data: &[u8]) {
        self.line(b'$', data.len() as i64);
        self.buf.extend_from_slice(data);
        self.buf.extend_from_slice(b"\r\n");
    }

    pub fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }

    pub fn bulk_int(&mut self, n: i64) {
        let mut b = itoa::Buffer::new();
        let s = b.format(n);
        self.bulk(s.as_bytes());
    }

    /// Null bulk (`$-1` / `_`).
    pub fn null(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"$-1\r\n");
        }
    }

    /// Null array (`*-1` / `_`).
    pub fn null_array(&mut self) {
        if self.resp3() {
            self.buf.extend_from_slice(b"_\r\n");
        } else {
            self.buf.extend_from_slice(b"*-1\r\n");
        }
    }

    pub fn array(&mut self, n: usize) {
        self.line(b'*', n as i64);
    }

    /// A map of `n` pairs (`%n` in RESP3, a flat array of 2n in RESP2).
    pub fn map(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'%', n as i64);
        } else {
            self.line(b'*', 2 * n as i64);
        }
    }

    /// A set (`~n` in RESP3, an array in RESP2).
    pub fn set(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'~', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    /// An out-of-band push (`>n` in RESP3, an array in RESP2).
    pub fn push(&mut self, n: usize) {
        if self.resp3() {
            self.line(b'>', n as i64);
        } else {
            self.line(b'*', n as i64);
        }
    }

    pub fn boolean(&mut self, v: bool) {
        if self.resp3() {
            self.buf
                .extend_from_slice(if v { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.int(i64::from(v));
        }
    }

    /// A double: `,` in RESP3, a bulk string in RESP2, formatted as redis
    /// formats doubles (shortest round-trip form, `inf`, `-inf`).
    pub fn double(&mut self, v: f64) {
        let s = format_double(v);
        if self.resp3() {
            self.buf.extend_from_slice(b",");
            self.buf.extend_from_slice(s.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(s.as_bytes());
        }
    }

    /// Verbatim string (`=len\r\ntxt:...` in RESP3, bulk in RESP2).
    pub fn verbatim(&mut self, text: &str) {
        if self.resp3() {
            self.line(b'=', text.len() as i64 + 4);
            self.buf.extend_from_slice(b"txt:");
            self.buf.extend_from_slice(text.as_bytes());
            self.buf.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

/// Formats a double the way redis 7.0 replies with it: `%.17g` (17
/// significant digits, trailing zeros removed, exponent form below 1e-4 and
/// from 1e17 on), `inf`, `-inf`, and `-0` for negative zero.
pub fn format_double(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v.is_nan() {
        return "nan".into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // 17 significant digits, correctly rounded, in scientific form.
    let sci = format!("{:.16e}", v);
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(|b| b.is_ascii_digit()).collect();
    let mut out = String::with_capacity(26);
    if v < 0.0 {
        out.push('-');
    }
    let push = |out: &mut String, d: &[u8]| {
        for &b in d {
            out.push(char::from(b));
        }
    };
    if !(-4..17).contains(&exp) {
        let mut d: &[u8] = &digits;
        while d.len() > 1 && d[d.len() - 1] == b'0' {
            d = &d[..d.len() - 1];
        }
        push(&mut out, &d[..1]);
        if d.len() > 1 {
            out.push('.');
            push(&mut out, &d[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        if exp.abs() < 10 {
            out.push('0');
        }
        out.push_str(&exp.abs().to_string());
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        push(&mut out, &digits[..int_len]);
        let mut frac: &[u8] = &digits[int_len..];
        while !frac.is_empty() && frac[frac.len() - 1] == b'0' {
            frac = &frac[..frac.len() - 1];
        }
        if !frac.is_empty() {
            out.push('.');
            push(&mut out, frac);
        }
    } else {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        let mut d: &[u8] = &digits;
        while !d.is_empty() && d[d.len() - 1] == b'0' {
            d = &d[..d.len() - 1];
        }
        push(&mut out, d);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(req) = p.parse(&mut buf, &ParseLimits::default())? {
            out.push(req.into_iter().map(|b| b.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_and_inline() {
        let r = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n  \r\nset a \"b c\"\n").unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(r[1], vec![b"PING".to_vec()]);
        assert_eq!(r[2], vec![b"set".to_vec(), b"a".to_vec(), b"b c".to_vec()]);
    }

    #[test]
    fn protocol_errors() {
        assert_eq!(
            parse_all(b"*2\r\n$3\r\nGET\r\n:1\r\n"),
            Err(ProtocolError::ExpectedDollar(':'))
        );
        assert_eq!(
            parse_all(b"*x\r\n"),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n"),
            Err(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"set \"a\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$1000\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf, &ParseLimits { max_bulk_len: 10 }),
            Err(ProtocolError::InvalidBulkLength)
        );
    }

    #[test]
    fn inline_with_nul_waits_like_redis() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"ECHO a\0b\r\nPING\r\n"[..]);
        assert_eq!(p.parse(&mut buf, &ParseLimits::default()), Ok(None));
        let mut buf = BytesMut::from(&vec![0u8; MAX_INLINE_LEN + 1][..]);
        assert_eq!(
            p.parse(&mut buf, &ParseLimits::default()),
            Err(ProtocolError::TooBigInline)
        );
    }

    #[test]
    fn split_args_like_sdssplitargs() {
        let v = |s: &[u8]| {
            split_args(s).map(|a| {
                a.into_iter()
                    .map(|x| String::from_utf8_lossy(&x).into_owned())
                    .collect::<Vec<_>>()
            })
        };
        // A NUL ends the line (used to loop forever).
        assert_eq!(v(b"set a\0b c"), Some(vec!["set".into(), "a".into()]));
        assert_eq!(v(b"\0"), Some(vec![]));
        // Vertical tab is a separator, as C isspace.
        assert_eq!(v(b"a\x0bb"), Some(vec!["a\x0bb".into()]));
        assert_eq!(v(b"\x0ba \x0b b"), Some(vec!["a".into(), "b".into()]));
        // Quotes open in the middle of an argument.
        assert_eq!(
            v(b"set a\"b c\" x"),
            Some(vec!["set".into(), "ab c".into(), "x".into()])
        );
        assert_eq!(v(b"a'b'"), Some(vec!["ab".into()]));
        assert_eq!(v(b"\"a\"\x0bb"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(v(b"\"a\"b"), None);
        assert_eq!(v(b"'a"), None);
    }

    #[test]
    fn incremental_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(r) = p.parse(&mut buf, &ParseLimits::default()).unwrap() {
                got = Some(r);
            }
        }
        let got = got.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(&got[2][..], b"value");
    }

    #[test]
    fn doubles_like_redis() {
        assert_eq!(format_double(1.5), "1.5");
        assert_eq!(format_double(3.0), "3");
        assert_eq!(format_double(f64::INFINITY), "inf");
        assert_eq!(format_double(0.1), "0.10000000000000001");
        assert_eq!(format_double(1e20), "1e+20");
        assert_eq!(format_double(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_double(-0.0), "-0");
        assert_eq!(format_double(1e16), "10000000000000000");
        assert_eq!(format_double(1e17), "1e+17");
        assert_eq!(format_double(123.456), "123.456");
        assert_eq!(format_double(2.5e-5), "2.5000000000000001e-05");
        assert_eq!(format_double(5e-324), "4.9406564584124654e-324");
        assert_eq!(
            format_double(-1.7976931348623157e308),
            "-1.7976931348623157e+308"
        );
        assert_eq!(format_double(0.0001), "0.0001");
    }
}
