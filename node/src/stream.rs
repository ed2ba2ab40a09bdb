//! The node's single ordered stream of write effects.
//!
//! Every change to the keyspace is appended here, RESP-encoded exactly as a
//! replica or the append-only file will consume it, while the shard locks
//! of the change are held: the stream order is therefore a valid serial
//! order of execution. Expirations enter as DEL. Consumers (replication,
//! AOF, tests) subscribe and receive the encoded bytes; the offset counts
//! every byte ever appended, like redis's master_repl_offset.

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::mpsc;

struct Inner {
    offset: u64,
    /// Database the consumers currently have selected.
    selected: Option<usize>,
    subscribers: Vec<mpsc::UnboundedSender<Bytes>>,
    scratch: BytesMut,
}

pub struct WriteStream {
    inner: Mutex<Inner>,
}

impl Default for WriteStream {
    fn default() -> Self {
        WriteStream {
            inner: Mutex::new(Inner {
                offset: 0,
                selected: None,
                subscribers: Vec::new(),
                scratch: BytesMut::new(),
            }),
        }
    }
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
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.scratch.clear();
        if inner.selected != Some(db) {
            let mut ib = itoa::Buffer::new();
            encode(&mut inner.scratch, &[b"SELECT", ib.format(db).as_bytes()]);
            inner.selected = Some(db);
        }
        encode(&mut inner.scratch, args);
        inner.offset += inner.scratch.len() as u64;
        if !inner.subscribers.is_empty() {
            let bytes = inner.scratch.split().freeze();
            inner.subscribers.retain(|s| s.send(bytes.clone()).is_ok());
        }
    }

    /// Bytes appended so far.
    pub fn offset(&self) -> u64 {
        self.inner.lock().offset
    }

    /// Receives every effect appended from now on. The first effect a new
    /// subscriber sees is preceded by a SELECT.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut g = self.inner.lock();
        g.selected = None;
        g.subscribers.push(tx);
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
}
