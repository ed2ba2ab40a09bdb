//! The node's single ordered stream of write effects.
//!
//! Every change to the keyspace is appended here, RESP-encoded exactly as a
//! replica or the append-only file will consume it, while the shard locks
//! of the change are held: the stream order is therefore a valid serial
//! order of execution. Expirations enter as DEL. Consumers (replication,
//! AOF, tests) subscribe and receive the encoded bytes; the offset counts
//! every byte ever appended, like redis's master_repl_offset.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::mpsc;

struct Inner {
    /// Database the consumers currently have selected.
    selected: Option<usize>,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
    scratch: BytesMut,
}

pub struct WriteStream {
    inner: Mutex<Inner>,
    /// Whether anyone consumes the stream. Without consumers an append
    /// only advances the offset: no lock, no encoding.
    active: AtomicBool,
    offset: AtomicU64,
}

impl Default for WriteStream {
    fn default() -> Self {
        WriteStream {
            inner: Mutex::new(Inner {
                selected: None,
                subscribers: Vec::new(),
                scratch: BytesMut::new(),
            }),
            active: AtomicBool::new(false),
            offset: AtomicU64::new(0),
        }
    }
}

/// Decimal digits of `n`.
fn digits(mut n: usize) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// The length of `encode(args)` without encoding.
fn encoded_len(args: &[&[u8]]) -> usize {
    let mut n = 3 + digits(args.len());
    for a in args {
        n += 5 + digits(a.len()) + a.len();
    }
    n
}

fn encode(buf: &mut BytesMut, args: &[&[u8]]) {
    let mut ib = itoa::Buffer::new();
    buf.put_u8(b'*');
    buf.put_slice(ib.format(args.len()).as_bytes());
    buf.put_slice(b"\r\n");
    for a in args {
        buf.put_u8(b'$');
        buf.put_slice(ib.format(a.len()).as_bytes());
        buf.put_slice(b"\r\n");
        buf.put_slice(a);
        buf.put_slice(b"\r\n");
    }
}

impl WriteStream {
    /// Appends one effect executed in database `db`.
    pub fn append(&self, db: usize, args: &[&[u8]]) {
        if !self.active.load(Ordering::Acquire) {
            self.offset
                .fetch_add(encoded_len(args) as u64, Ordering::Relaxed);
            return;
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.scratch.clear();
        if inner.selected != Some(db) {
            let mut ib = itoa::Buffer::new();
            encode(&mut inner.scratch, &[b"SELECT", ib.format(db).as_bytes()]);
            inner.selected = Some(db);
        }
        encode(&mut inner.scratch, args);
        self.offset
            .fetch_add(inner.scratch.len() as u64, Ordering::Relaxed);
        let bytes = inner.scratch.split().freeze();
        inner.subscribers.retain(|s| s.send(bytes.clone()).is_ok());
        if inner.subscribers.is_empty() {
            self.active.store(false, Ordering::Release);
        }
    }

    /// Bytes appended so far.
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Receives every effect appended from now on. The first effect a new
    /// subscriber sees is preceded by a SELECT.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = self.inner.lock();
        g.selected = None;
        g.subscribers.push(tx);
        self.active.store(true, Ordering::Release);
        rx
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_select_and_counts_offset() {
        let s = WriteStream::default();
        let mut rx = s.subscribe();
        s.append(0, &[b"SET", b"k", b"v"]);
        s.append(0, &[b"DEL", b"k"]);
        s.append(3, &[b"DEL", b"x"]);
        let a = rx.try_recv().unwrap();
        assert_eq!(
            &a[..],
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        let b = rx.try_recv().unwrap();
        assert_eq!(&b[..], b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
        let c = rx.try_recv().unwrap();
        assert!(c.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
        assert_eq!(s.offset(), (a.len() + b.len() + c.len()) as u64);
    }

    #[test]
    fn without_consumers_only_the_offset_moves() {
        let s = WriteStream::default();
        s.append(0, &[b"SET", b"key", b"0123456789"]);
        let args: [&[u8]; 3] = [b"SET", b"key", b"0123456789"];
        let mut buf = BytesMut::new();
        encode(&mut buf, &args);
        assert_eq!(s.offset(), buf.len() as u64);
        assert_eq!(encoded_len(&[&[0u8; 12345][..]]), {
            let mut b = BytesMut::new();
            encode(&mut b, &[&[0u8; 12345][..]]);
            b.len()
        });
    }
}
