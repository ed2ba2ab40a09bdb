//! The node's single ordered stream of write effects, and the replication
//! backlog that keeps its recent history.
//!
//! Every change to the keyspace is appended here, RESP-encoded exactly as a
//! replica or the append-only file will consume it, while the shard locks
//! of the change are held: the stream order is therefore a valid serial
//! order of execution. Expirations enter as DEL. Consumers (replicas, AOF,
//! tests) attach a [`Feed`] and receive the encoded bytes; the offset
//! counts every byte ever appended, like redis's master_repl_offset.
//!
//! A replica's node does not encode: it appends the bytes its master sent,
//! verbatim ([`WriteStream::append_raw`]), so its offset, backlog and
//! sub-replicas stay byte-identical with the master's stream.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// The recent history of the stream, for partial resynchronization.
struct Backlog {
    data: Vec<u8>,
    /// Where the next byte goes.
    idx: usize,
    /// Bytes of history held (at most `data.len()`).
    histlen: usize,
}

impl Backlog {
    fn new(size: usize) -> Self {
        Backlog {
            data: vec![0; size.max(16 * 1024)],
            idx: 0,
            histlen: 0,
        }
    }

    fn write(&mut self, mut b: &[u8]) {
        let cap = self.data.len();
        if b.len() >= cap {
            b = &b[b.len() - cap..];
        }
        let first = (cap - self.idx).min(b.len());
        self.data[self.idx..self.idx + first].copy_from_slice(&b[..first]);
        let rest = &b[first..];
        self.data[..rest.len()].copy_from_slice(rest);
        self.idx = (self.idx + b.len()) % cap;
        self.histlen = (self.histlen + b.len()).min(cap);
    }

    /// The last `n` bytes of history (`n <= histlen`).
    fn tail(&self, n: usize) -> Vec<u8> {
        let cap = self.data.len();
        let start = (self.idx + cap - n) % cap;
        let mut out = Vec::with_capacity(n);
        if start + n <= cap {
            out.extend_from_slice(&self.data[start..start + n]);
        } else {
            out.extend_from_slice(&self.data[start..]);
            out.extend_from_slice(&self.data[..n - (cap - start)]);
        }
        out
    }

    fn resized(&self, size: usize) -> Backlog {
        let mut b = Backlog::new(size);
        let keep = self.histlen.min(b.data.len());
        b.write(&self.tail(keep));
        b
    }
}

/// The sending side of one consumer.
struct FeedTx {
    tx: mpsc::UnboundedSender<Bytes>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<AtomicBool>,
}

/// One consumer of the stream: the bytes appended since it attached, and
/// how many of them it has not yet taken.
pub struct Feed {
    pub rx: mpsc::UnboundedReceiver<Bytes>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<AtomicBool>,
}

impl Feed {
    /// Bytes appended for this consumer and not yet consumed.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Marks `n` bytes as consumed.
    pub fn consumed(&self, n: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Whether the feed was cut because it passed the hard limit.
    pub fn overflowed(&self) -> bool {
        self.overflow.load(Ordering::Relaxed)
    }
}

struct Inner {
    /// Database the consumers currently have selected.
    selected: Option<usize>,
    feeds: Vec<FeedTx>,
    backlog: Option<Backlog>,
    backlog_size: usize,
    /// A consumer holding more than this many unconsumed bytes is cut
    /// (client-output-buffer-limit replica hard limit; 0 = none).
    hard_limit: usize,
    scratch: BytesMut,
}

pub struct WriteStream {
    inner: Mutex<Inner>,
    /// Whether anyone consumes the stream or a backlog records it. Without
    /// either an append only advances the offset: no lock, no encoding.
    active: AtomicBool,
    offset: AtomicU64,
}

impl Default for WriteStream {
    fn default() -> Self {
        WriteStream {
            inner: Mutex::new(Inner {
                selected: None,
                feeds: Vec::new(),
                backlog: None,
                backlog_size: 1024 * 1024,
                hard_limit: 0,
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
fn encoded_len<A: AsRef<[u8]>>(args: &[A]) -> usize {
    let mut n = 3 + digits(args.len());
    for a in args {
        let a = a.as_ref();
        n += 5 + digits(a.len()) + a.len();
    }
    n
}

/// RESP-encodes a command as a multibulk array.
pub fn encode<A: AsRef<[u8]>>(buf: &mut BytesMut, args: &[A]) {
    let mut ib = itoa::Buffer::new();
    buf.put_u8(b'*');
    buf.put_slice(ib.format(args.len()).as_bytes());
    buf.put_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        buf.put_u8(b'$');
        buf.put_slice(ib.format(a.len()).as_bytes());
        buf.put_slice(b"\r\n");
        buf.put_slice(a);
        buf.put_slice(b"\r\n");
    }
}

/// Backlog state for INFO replication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BacklogInfo {
    pub active: bool,
    pub size: usize,
    /// Offset of the first byte held (1-based, as redis reports it).
    pub first_byte_offset: u64,
    pub histlen: usize,
}

impl Inner {
    fn push(&mut self, offset: &AtomicU64, bytes: Bytes) {
        offset.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        if let Some(b) = self.backlog.as_mut() {
            b.write(&bytes);
        }
        let hard = self.hard_limit;
        self.feeds.retain(|f| {
            let q = f.queued.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
            if hard > 0 && q > hard {
                f.overflow.store(true, Ordering::Relaxed);
                return false;
            }
            f.tx.send(bytes.clone()).is_ok()
        });
    }

    fn add_feed(&mut self) -> Feed {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let overflow = Arc::new(AtomicBool::new(false));
        self.feeds.push(FeedTx {
            tx,
            queued: queued.clone(),
            overflow: overflow.clone(),
        });
        Feed {
            rx,
            queued,
            overflow,
        }
    }
}

impl WriteStream {
    fn refresh_active(&self, inner: &Inner) {
        let on = inner.backlog.is_some() || !inner.feeds.is_empty();
        self.active.store(on, Ordering::Release);
    }

    /// Appends one effect executed in database `db`.
    pub fn append<A: AsRef<[u8]>>(&self, db: usize, args: &[A]) {
        self.append_in(Some(db), args);
    }

    /// Appends a command that does not depend on the selected database
    /// (the master's PING, REPLCONF GETACK, PUBLISH).
    pub fn append_nodb(&self, args: &[&[u8]]) {
        self.append_in(None, args);
    }

    fn append_in<A: AsRef<[u8]>>(&self, db: Option<usize>, args: &[A]) {
        if !self.active.load(Ordering::Acquire) {
            self.offset
                .fetch_add(encoded_len(args) as u64, Ordering::Relaxed);
            return;
        }
        let mut g = self.inner.lock();
        let inner = &mut *g;
        inner.scratch.clear();
        if let Some(db) = db.filter(|&d| inner.selected != Some(d)) {
            let mut ib = itoa::Buffer::new();
            encode::<&[u8]>(&mut inner.scratch, &[b"SELECT", ib.format(db).as_bytes()]);
            inner.selected = Some(db);
        }
        encode(&mut inner.scratch, args);
        let bytes = inner.scratch.split().freeze();
        inner.push(&self.offset, bytes);
        self.refresh_active(inner);
    }

    /// Appends bytes received from our master, verbatim.
    pub fn append_raw(&self, bytes: Bytes) {
        if !self.active.load(Ordering::Acquire) {
            self.offset.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return;
        }
        let mut g = self.inner.lock();
        // The master's bytes carry their own SELECTs: whatever we emit
        // next (after a promotion) must select its database again.
        g.selected = None;
        g.push(&self.offset, bytes);
        self.refresh_active(&g);
    }

    /// Bytes appended so far (master_repl_offset).
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// Attaches a consumer that receives every effect appended from now on,
    /// starting the backlog if there is none. Returns the offset it starts
    /// after. The first effect it sees selects its database.
    pub fn attach(&self) -> (u64, Feed) {
        let mut g = self.inner.lock();
        if g.backlog.is_none() {
            g.backlog = Some(Backlog::new(g.backlog_size));
        }
        g.selected = None;
        let feed = g.add_feed();
        self.refresh_active(&g);
        (self.offset(), feed)
    }

    /// Attaches a consumer that continues from offset `from` (the first
    /// byte it lacks, 1-based like PSYNC's): the history it missed, from
    /// the backlog, and a feed for what follows. None when the backlog
    /// does not cover `from`.
    pub fn attach_from(&self, from: u64) -> Option<(Vec<u8>, Feed)> {
        let mut g = self.inner.lock();
        let end = self.offset();
        let b = g.backlog.as_ref()?;
        let first = end + 1 - b.histlen as u64;
        if from < first || from > end + 1 {
            return None;
        }
        let missing = (end + 1 - from) as usize;
        let history = b.tail(missing);
        let feed = g.add_feed();
        self.refresh_active(&g);
        Some((history, feed))
    }

    /// Restarts the stream at `offset` with an empty backlog (a replica
    /// after a full synchronization). Every consumer is cut.
    pub fn reset(&self, offset: u64) {
        let mut g = self.inner.lock();
        self.offset.store(offset, Ordering::Relaxed);
        let size = g.backlog_size;
        g.backlog = Some(Backlog::new(size));
        g.feeds.clear();
        g.selected = None;
        self.refresh_active(&g);
    }

    /// Cuts every consumer (they reconnect and resynchronize).
    pub fn cut_feeds(&self) {
        let mut g = self.inner.lock();
        g.feeds.clear();
        self.refresh_active(&g);
    }

    /// Frees the backlog (repl-backlog-ttl passed without replicas).
    pub fn drop_backlog(&self) {
        let mut g = self.inner.lock();
        g.backlog = None;
        self.refresh_active(&g);
    }

    /// Makes sure a backlog exists (a replica keeps one so that, once
    /// promoted, its former siblings can continue from it).
    pub fn ensure_backlog(&self) {
        let mut g = self.inner.lock();
        if g.backlog.is_none() {
            g.backlog = Some(Backlog::new(g.backlog_size));
        }
        self.refresh_active(&g);
    }

    /// Applies repl-backlog-size and the replica hard output limit.
    pub fn configure(&self, backlog_size: usize, hard_limit: usize) {
        let mut g = self.inner.lock();
        g.hard_limit = hard_limit;
        if g.backlog_size != backlog_size {
            g.backlog_size = backlog_size;
            if let Some(b) = g.backlog.as_ref() {
                let nb = b.resized(backlog_size);
                g.backlog = Some(nb);
            }
        }
    }

    pub fn backlog_info(&self) -> BacklogInfo {
        let g = self.inner.lock();
        match g.backlog.as_ref() {
            Some(b) => BacklogInfo {
                active: true,
                size: g.backlog_size,
                first_byte_offset: self.offset() + 1 - b.histlen as u64,
                histlen: b.histlen,
            },
            None => BacklogInfo {
                active: false,
                size: g.backlog_size,
                first_byte_offset: 0,
                histlen: 0,
            },
        }
    }

    /// Number of attached consumers.
    pub fn feeds(&self) -> usize {
        self.inner.lock().feeds.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_with_select_and_counts_offset() {
        let s = WriteStream::default();
        let (start, mut f) = s.attach();
        assert_eq!(start, 0);
        s.append::<&[u8]>(0, &[b"SET", b"k", b"v"]);
        s.append::<&[u8]>(0, &[b"DEL", b"k"]);
        s.append::<&[u8]>(3, &[b"DEL", b"x"]);
        let a = f.rx.try_recv().unwrap();
        assert_eq!(
            &a[..],
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        let b = f.rx.try_recv().unwrap();
        assert_eq!(&b[..], b"*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n");
        let c = f.rx.try_recv().unwrap();
        assert!(c.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n"));
        assert_eq!(s.offset(), (a.len() + b.len() + c.len()) as u64);
        assert_eq!(f.queued(), s.offset() as usize);
    }

    #[test]
    fn without_consumers_only_the_offset_moves() {
        let s = WriteStream::default();
        s.append::<&[u8]>(0, &[b"SET", b"key", b"0123456789"]);
        let args: [&[u8]; 3] = [b"SET", b"key", b"0123456789"];
        let mut buf = BytesMut::new();
        encode(&mut buf, &args);
        assert_eq!(s.offset(), buf.len() as u64);
        assert_eq!(encoded_len(&[&[0u8; 12345][..]]), {
            let mut b = BytesMut::new();
            encode(&mut b, &[&[0u8; 12345][..]]);
            b.len()
        });
        assert!(!s.backlog_info().active);
    }

    #[test]
    fn partial_attach_replays_the_backlog() {
        let s = WriteStream::default();
        s.configure(16 * 1024, 0);
        let (start, f) = s.attach();
        drop(f);
        for i in 0..100u32 {
            s.append::<&[u8]>(0, &[b"SET", b"k", i.to_string().as_bytes()]);
        }
        let end = s.offset();
        // Everything since `start` is in the backlog.
        let (hist, _f) = s.attach_from(start + 1).unwrap();
        assert_eq!(hist.len() as u64, end - start);
        assert!(hist.starts_with(b"*2\r\n$6\r\nSELECT"));
        // Nothing missing: empty history.
        let (hist, _f) = s.attach_from(end + 1).unwrap();
        assert!(hist.is_empty());
        // Beyond the end or before the start: refused.
        assert!(s.attach_from(end + 2).is_none());
        assert!(s.attach_from(0).is_none());
    }

    #[test]
    fn backlog_wraps_and_keeps_the_latest_bytes() {
        let s = WriteStream::default();
        s.configure(16 * 1024, 0);
        let (_, f) = s.attach();
        drop(f);
        let val = vec![b'x'; 1000];
        for _ in 0..100 {
            s.append::<&[u8]>(0, &[b"SET", b"k", &val]);
        }
        let info = s.backlog_info();
        assert_eq!(info.histlen, 16 * 1024);
        assert_eq!(info.first_byte_offset, s.offset() + 1 - 16 * 1024);
        assert!(s.attach_from(info.first_byte_offset - 1).is_none());
        let (hist, _f) = s.attach_from(info.first_byte_offset).unwrap();
        assert_eq!(hist.len(), 16 * 1024);
        // The last command is intact at the end.
        assert!(hist.ends_with(&val[..10]) || hist.ends_with(b"\r\n"));
        let mut last = BytesMut::new();
        encode::<&[u8]>(&mut last, &[b"SET", b"k", &val]);
        assert!(hist.ends_with(&last));
    }

    #[test]
    fn a_consumer_past_the_hard_limit_is_cut() {
        let s = WriteStream::default();
        s.configure(16 * 1024, 1000);
        let (_, slow) = s.attach();
        let (_, fast) = s.attach();
        for _ in 0..20 {
            s.append::<&[u8]>(0, &[b"SET", b"k", &[b'v'; 100]]);
            fast.consumed(fast.queued());
        }
        assert!(slow.overflowed());
        assert!(!fast.overflowed());
        assert_eq!(s.feeds(), 1);
    }

    #[test]
    fn raw_appends_keep_offsets_and_reselect_after() {
        let s = WriteStream::default();
        s.reset(500);
        let (start, mut f) = s.attach();
        assert_eq!(start, 500);
        s.append_raw(Bytes::from_static(b"*1\r\n$4\r\nPING\r\n"));
        assert_eq!(s.offset(), 514);
        s.append::<&[u8]>(2, &[b"DEL", b"a"]);
        let _ = f.rx.try_recv().unwrap();
        let b = f.rx.try_recv().unwrap();
        assert!(b.starts_with(b"*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n"));
    }
}
