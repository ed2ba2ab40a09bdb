//! Point-in-time snapshots of the keyspace without fork, and loading a
//! whole dataset beside the live one.
//!
//! A snapshot starts at one instant: with every shard locked, each shard is
//! marked with the job and the caller records what belongs to that instant
//! (the write stream's offset). A background thread then serializes the
//! keyspace slot by slot into RDB. A write to a slot the thread has not
//! reached yet first serializes that slot as it still is (the write path
//! calls [`ShardSnap`] through the view), so every slot is written exactly
//! once, as of the starting instant, while clients keep writing.
//!
//! Memory: the thread stops producing while [`MAX_QUEUED`] bytes wait to be
//! sent; slots serialized early by writers are queued regardless, so the
//! extra memory is at most the serialized size of the slots written during
//! the snapshot and not yet sent. The peak is recorded and reported by INFO
//! (`current_cow_peak`, `rdb_last_cow_size`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};

use super::{Db, Keyspace, Shard, Value, SLOTS};
use crate::rdb::RdbWriter;

/// Serialized bytes the background thread lets pile up before waiting for
/// the consumer.
pub const MAX_QUEUED: usize = 8 * 1024 * 1024;

struct JobState {
    writer: RdbWriter,
    chunks: VecDeque<Bytes>,
    queued: usize,
    peak_queued: usize,
    /// Bytes serialized ahead of the thread because a write came first.
    early_bytes: u64,
    keys: u64,
    produced: u64,
    finished: bool,
    cancelled: bool,
}

/// One snapshot in progress: an ordered queue of RDB chunks.
pub struct SnapshotJob {
    state: Mutex<JobState>,
    space: Condvar,
    ready: tokio::sync::Notify,
}

/// Totals of a finished (or running) snapshot.
#[derive(Debug, Clone, Copy, Default)]
pub struct SnapshotStats {
    pub keys: u64,
    pub bytes: u64,
    pub peak_queued: usize,
    pub early_bytes: u64,
}

impl SnapshotJob {
    pub fn new() -> Arc<Self> {
        Arc::new(SnapshotJob {
            state: Mutex::new(JobState {
                writer: RdbWriter::new(),
                chunks: VecDeque::new(),
                queued: 0,
                peak_queued: 0,
                early_bytes: 0,
                keys: 0,
                produced: 0,
                finished: false,
                cancelled: false,
            }),
            space: Condvar::new(),
            ready: tokio::sync::Notify::new(),
        })
    }

    fn push(&self, st: &mut JobState, buf: Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        st.queued += buf.len();
        st.produced += buf.len() as u64;
        st.peak_queued = st.peak_queued.max(st.queued);
        st.chunks.push_back(Bytes::from(buf));
        self.ready.notify_one();
    }

    /// Writes the RDB header (must come before any slot).
    pub fn header(&self, aux: &[(&str, &[u8])]) {
        let mut st = self.state.lock();
        let mut buf = Vec::with_capacity(256);
        st.writer.header(&mut buf, aux);
        self.push(&mut st, buf);
    }

    /// Serializes every database's keys of `slot` in `shard`. The
    /// serialization runs outside the job's lock (with a writer of its
    /// own); only queueing the bytes and counting them into the checksum
    /// happen under it, in stream order.
    fn dump_slot(&self, dbs: &[Db], slot: usize, early: bool) {
        let mut w = RdbWriter::new();
        let mut buf = Vec::new();
        let mut keys = 0u64;
        for (i, db) in dbs.iter().enumerate() {
            let Some(t) = db.table(slot) else { continue };
            if t.is_empty() {
                continue;
            }
            w.select_db(&mut buf, i);
            t.for_each_entry(|k, v, exp| w.entry(&mut buf, k, v, exp));
            keys += t.len() as u64;
        }
        let mut st = self.state.lock();
        if st.cancelled || st.finished {
            return;
        }
        st.writer.absorb(&buf);
        st.keys += keys;
        if early {
            st.early_bytes += buf.len() as u64;
        }
        self.push(&mut st, buf);
    }

    fn wait_for_space(&self) {
        let mut st = self.state.lock();
        while st.queued > MAX_QUEUED && !st.cancelled {
            self.space.wait(&mut st);
        }
    }

    fn finish(&self) {
        let mut st = self.state.lock();
        if !st.cancelled {
            let mut buf = Vec::with_capacity(16);
            st.writer.finish(&mut buf);
            self.push(&mut st, buf);
        }
        st.finished = true;
        self.ready.notify_one();
    }

    /// Stops the snapshot; the consumer sees the end of the chunks.
    pub fn cancel(&self) {
        let mut st = self.state.lock();
        st.cancelled = true;
        st.chunks.clear();
        st.queued = 0;
        self.space.notify_all();
        self.ready.notify_one();
    }

    pub fn is_cancelled(&self) -> bool {
        self.state.lock().cancelled
    }

    /// The next chunk of RDB, waiting for it; None once the snapshot is
    /// complete (or cancelled: check [`Self::is_cancelled`]).
    pub async fn next_chunk(&self) -> Option<Bytes> {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = self.state.lock();
                if let Some(c) = st.chunks.pop_front() {
                    st.queued -= c.len();
                    self.space.notify_all();
                    return Some(c);
                }
                if st.finished || st.cancelled {
                    return None;
                }
            }
            notified.await;
        }
    }

    pub fn stats(&self) -> SnapshotStats {
        let st = self.state.lock();
        SnapshotStats {
            keys: st.keys,
            bytes: st.produced,
            peak_queued: st.peak_queued,
            early_bytes: st.early_bytes,
        }
    }
}

/// A shard's part of a running snapshot: which of its slots are written.
pub struct ShardSnap {
    job: Arc<SnapshotJob>,
    done: Box<[bool]>,
}

impl Shard {
    /// Called before any change to `slot`: serializes the slot first if
    /// the running snapshot has not reached it.
    #[inline]
    pub fn before_write(&mut self, slot: usize) {
        let Shard { snap, dbs, .. } = self;
        if let Some(s) = snap.as_mut() {
            if let Some(d) = s.done.get_mut(slot) {
                if !*d {
                    *d = true;
                    s.job.dump_slot(dbs, slot, true);
                }
            }
        }
    }

    /// Before a change to every slot of the shard (FLUSHALL, SWAPDB).
    pub fn before_write_all(&mut self, nshards: usize) {
        if self.snap.is_none() {
            return;
        }
        let mut slot = self.id;
        while slot < SLOTS {
            self.before_write(slot);
            slot += nshards;
        }
    }
}

static SNAPSHOTS: AtomicU64 = AtomicU64::new(0);

/// Runs the calling thread (the snapshot producer) at a lower scheduling
/// priority, so that on a busy machine the threads serving clients go
/// first; a snapshot only needs to finish, not to win.
fn lower_priority() {
    // SAFETY: gettid and setpriority take plain integers, touch no memory
    // of ours and cannot violate Rust's invariants; a failure only leaves
    // the priority unchanged, which we ignore.
    let rc = unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 10)
    };
    if rc != 0 {
        tracing::debug!("could not lower the snapshot thread's priority");
    }
}

impl Keyspace {
    /// Whether a snapshot is running.
    pub fn snapshot_running(&self) -> bool {
        self.lock_one(0).snap.is_some()
    }

    /// Starts a snapshot. `at_instant` runs while every shard is locked,
    /// before any change can happen: it records what belongs with the
    /// snapshot (the stream offset) and returns the RDB aux fields. A
    /// background thread then produces the RDB into the job. Fails when a
    /// snapshot is already running.
    pub fn start_snapshot<T: Send + Sync + 'static>(
        owner: &Arc<T>,
        keyspace: fn(&T) -> &Keyspace,
        at_instant: impl FnOnce() -> Vec<(String, Vec<u8>)>,
    ) -> Result<Arc<SnapshotJob>, &'static str> {
        let job = SnapshotJob::new();
        let ks = keyspace(owner);
        {
            let mut guards = ks.lock_all();
            if guards.iter().any(|(_, g)| g.snap.is_some()) {
                return Err("a snapshot is already in progress");
            }
            let aux = at_instant();
            let refs: Vec<(&str, &[u8])> = aux.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
            job.header(&refs);
            for (_, g) in guards.iter_mut() {
                g.snap = Some(ShardSnap {
                    job: job.clone(),
                    done: vec![false; SLOTS].into_boxed_slice(),
                });
            }
        }
        let n = SNAPSHOTS.fetch_add(1, Ordering::Relaxed);
        let o = owner.clone();
        let j = job.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-{n}"))
            .spawn(move || keyspace(&o).produce(&j));
        if let Err(e) = spawned {
            tracing::warn!("could not start the snapshot thread: {e}");
            job.cancel();
            ks.clear_snapshot(&job);
            return Err("could not start the snapshot thread");
        }
        Ok(job)
    }

    fn produce(&self, job: &Arc<SnapshotJob>) {
        lower_priority();
        let n = self.nshards();
        for slot in 0..SLOTS {
            job.wait_for_space();
            if job.is_cancelled() {
                break;
            }
            let mut g = self.lock_one(slot % n);
            let Shard { snap, dbs, .. } = &mut *g;
            if let Some(s) = snap.as_mut().filter(|s| Arc::ptr_eq(&s.job, job)) {
                if !s.done[slot] {
                    s.done[slot] = true;
                    job.dump_slot(dbs, slot, false);
                }
            }
        }
        self.clear_snapshot(job);
        job.finish();
    }

    fn clear_snapshot(&self, job: &Arc<SnapshotJob>) {
        for id in 0..self.nshards() {
            let mut g = self.lock_one(id);
            if g.snap.as_ref().is_some_and(|s| Arc::ptr_eq(&s.job, job)) {
                g.snap = None;
            }
        }
    }

    /// A loader that builds a whole dataset beside the live one.
    pub fn loader(&self) -> Loader {
        Loader {
            nshards: self.nshards(),
            shards: (0..self.nshards())
                .map(|_| (0..self.databases).map(|_| Db::default()).collect())
                .collect(),
            keys: 0,
        }
    }

    /// Replaces the whole dataset with a loaded one, atomically for
    /// clients: every shard is locked for the swap. Any running snapshot
    /// is cancelled. The old dataset is freed off the engine threads.
    pub fn swap_in(&self, loader: Loader) {
        let mut old = Vec::with_capacity(loader.shards.len());
        {
            let mut guards = self.lock_all();
            for ((_, g), mut dbs) in guards.iter_mut().zip(loader.shards) {
                if let Some(s) = g.snap.take() {
                    s.job.cancel();
                }
                std::mem::swap(&mut g.dbs, &mut dbs);
                g.watch.epoch += 1;
                g.expire_cursor = (0, g.id);
                old.push(dbs);
            }
        }
        self.free_later(Box::new(old));
    }
}

/// A dataset being built (a replica's full synchronization).
pub struct Loader {
    nshards: usize,
    shards: Vec<Vec<Db>>,
    keys: u64,
}

impl Loader {
    /// Adds a key. Fails for a database number out of range.
    pub fn add(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expire_ms: Option<i64>,
        clock: u32,
    ) -> Result<(), String> {
        let slot = super::key_slot(key);
        let shard = &mut self.shards[slot % self.nshards];
        let ndb = shard.len();
        let d = shard
            .get_mut(db)
            .ok_or_else(|| format!("database {db} out of range (databases is {ndb})"))?;
        let t = d.table_create(slot);
        let fresh = t.insert(key, value, false, clock).is_none();
        if let Some(when) = expire_ms {
            t.set_expire(key, Some(when));
        }
        if fresh {
            d.keys += 1;
            self.keys += 1;
        }
        Ok(())
    }

    pub fn keys(&self) -> u64 {
        self.keys
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::engine::types::EncodingLimits;
    use crate::engine::{ExpirePolicy, ValueRef, View};
    use crate::stats::Stats;
    use crate::stream::WriteStream;

    fn view<'a>(ks: &'a Keyspace, st: &'a WriteStream, stats: &'a Stats) -> View<'a> {
        View::new(ks, ks.lock_all(), 0, 1, 0, st, stats, ExpirePolicy::Delete)
    }

    /// The string keys of database 0, as a map.
    fn contents(ks: &Keyspace, st: &WriteStream, stats: &Stats) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut v = view(ks, st, stats);
        let mut out = BTreeMap::new();
        let mut keys = Vec::new();
        for slot in 0..SLOTS {
            v.for_each_key_in_slot(slot, |k| keys.push(k.to_vec()));
        }
        for k in keys {
            if let Some(ValueRef::Str(s)) = v.get(&k) {
                out.insert(k, s.to_vec());
            }
        }
        out
    }

    #[test]
    fn a_snapshot_is_the_keyspace_at_its_start_while_writes_continue() {
        let ks = Arc::new(Keyspace::new(4, 2));
        let st = WriteStream::default();
        let stats = Stats::default();
        let value = vec![b'v'; 200];
        {
            let mut v = view(&ks, &st, &stats);
            for i in 0..100_000u32 {
                v.set(
                    format!("key:{i}").as_bytes(),
                    Value::Str(value.clone()),
                    false,
                );
            }
        }
        let before = contents(&ks, &st, &stats);
        let job = Keyspace::start_snapshot(&ks, |k: &Keyspace| k, Vec::new).unwrap();
        // A second snapshot waits for the first.
        assert!(Keyspace::start_snapshot(&ks, |k: &Keyspace| k, Vec::new).is_err());
        // Nobody consumes yet: the producer stops at MAX_QUEUED, well before
        // the end of the ~22 MB dataset, and writes land on slots it has
        // not reached.
        {
            let mut v = view(&ks, &st, &stats);
            for i in (0..100_000u32).step_by(3) {
                let k = format!("key:{i}");
                if i % 2 == 0 {
                    v.delete(k.as_bytes());
                } else {
                    v.set(k.as_bytes(), Value::Str(b"changed".to_vec()), false);
                }
            }
            v.set(b"new-key", Value::Str(b"new".to_vec()), false);
            v.flush_slot(crate::engine::key_slot(b"key:1"));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut rdb = Vec::new();
        rt.block_on(async {
            while let Some(c) = job.next_chunk().await {
                rdb.extend_from_slice(&c);
            }
        });
        assert!(!job.is_cancelled());
        let stats_snap = job.stats();
        assert!(stats_snap.early_bytes > 0, "writes serialized slots early");
        assert_eq!(stats_snap.keys, 100_000);
        let mut got = BTreeMap::new();
        let limits = EncodingLimits::default();
        crate::rdb::load(&mut &rdb[..], &limits, &mut |item| {
            if let crate::rdb::Item::Entry {
                key,
                value: Value::Str(s),
                ..
            } = item
            {
                got.insert(key, s);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), before.len());
        assert!(got == before, "the snapshot holds the keyspace as it was");
        // And the live keyspace has the changes; no snapshot remains.
        let after = contents(&ks, &st, &stats);
        assert_eq!(
            after.get(&b"new-key"[..]).map(|v| &v[..]),
            Some(&b"new"[..])
        );
        assert!(!ks.snapshot_running());
    }

    #[test]
    fn loading_beside_and_swapping_in() {
        let ks = Keyspace::new(3, 2);
        let st = WriteStream::default();
        let stats = Stats::default();
        {
            let mut v = view(&ks, &st, &stats);
            v.set(b"old", Value::Str(b"1".to_vec()), false);
        }
        let mut l = ks.loader();
        for i in 0..1000 {
            l.add(
                0,
                format!("k{i}").as_bytes(),
                Value::Str(b"x".to_vec()),
                None,
                0,
            )
            .unwrap();
        }
        l.add(1, b"in-db1", Value::Str(b"y".to_vec()), Some(i64::MAX), 0)
            .unwrap();
        assert!(l.add(5, b"bad-db", Value::Str(vec![]), None, 0).is_err());
        assert_eq!(l.keys(), 1001);
        // Still the old dataset until the swap.
        assert_eq!(ks.db_sizes()[0].0, 1);
        ks.swap_in(l);
        assert_eq!(ks.db_sizes(), vec![(1000, 0), (1, 1)]);
    }
}
