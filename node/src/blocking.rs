//! Clients blocked on keys (BLPOP, BLMOVE, BZPOPMIN, ...).
//!
//! A blocking command that finds nothing to serve registers a [`Waiter`] in
//! the queue of each of its keys, on the shards owning them, while it still
//! holds those shards' locks, so no push can slip between its attempt and
//! its registration. A command that adds elements to a key with waiters
//! marks the key ready; once that command (or the whole EXEC) is done, the
//! dispatcher serves the waiters of every ready key in the order they
//! blocked, running each waiter's own command on its behalf and sending the
//! reply to its connection. A waiter is claimed with a compare-and-swap
//! before it is served, so a timeout or a disconnect racing with a serve can
//! never lose a popped element.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::node::ClientHandle;
use crate::resp::Proto;

const WAITING: u8 = 0;
const SERVING: u8 = 1;
const DONE: u8 = 2;

/// What a blocked command replies when its timeout expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutReply {
    /// `*-1` (RESP2) / `_` (RESP3): BLPOP, BRPOP, BLMPOP, BZPOPMIN, BZMPOP...
    NullArray,
    /// `$-1` / `_`: BLMOVE, BRPOPLPUSH.
    NullBulk,
}

/// What a blocking handler asks for when it has nothing to serve.
#[derive(Debug, Clone)]
pub struct BlockSpec {
    pub keys: Vec<Bytes>,
    pub deadline: Option<Instant>,
    pub timeout_reply: TimeoutReply,
}

/// A blocked client, as seen by the shards it waits on.
pub struct Waiter {
    pub id: u64,
    pub db: usize,
    pub args: Vec<Bytes>,
    pub proto: Proto,
    pub handle: Arc<ClientHandle>,
    state: AtomicU8,
    tx: Mutex<Option<oneshot::Sender<Bytes>>>,
}

impl Waiter {
    pub fn new(
        id: u64,
        db: usize,
        args: Vec<Bytes>,
        proto: Proto,
        handle: Arc<ClientHandle>,
    ) -> (Arc<Waiter>, oneshot::Receiver<Bytes>) {
        let (tx, rx) = oneshot::channel();
        (
            Arc::new(Waiter {
                id,
                db,
                args,
                proto,
                handle,
                state: AtomicU8::new(WAITING),
                tx: Mutex::new(Some(tx)),
            }),
            rx,
        )
    }

    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Server side: claim the waiter before running its command.
    pub fn try_claim(&self) -> bool {
        self.state
            .compare_exchange(WAITING, SERVING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Server side: the command found nothing after all; keep waiting.
    pub fn unclaim(&self) {
        self.state.store(WAITING, Ordering::Release);
    }

    /// Server side: hand the reply over; the waiter is finished.
    pub fn deliver(&self, reply: Bytes) {
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(reply);
        }
        self.state.store(DONE, Ordering::Release);
    }

    /// Client side (timeout or disconnect): give up waiting. Returns false
    /// if a serve already claimed or finished the waiter, in which case its
    /// reply arrives (or arrived) on the channel.
    pub fn cancel(&self) -> Cancel {
        match self
            .state
            .compare_exchange(WAITING, DONE, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Cancel::Cancelled,
            Err(SERVING) => Cancel::BeingServed,
            Err(_) => Cancel::AlreadyServed,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Cancel {
    Cancelled,
    BeingServed,
    AlreadyServed,
}

/// A blocked connection's side: what it waits on.
pub struct Blocked {
    pub waiter: Arc<Waiter>,
    pub keys: Vec<Bytes>,
    pub rx: oneshot::Receiver<Bytes>,
    pub deadline: Option<Instant>,
    pub timeout_reply: TimeoutReply,
}

impl std::fmt::Debug for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocked")
            .field("waiter", &self.waiter.id)
            .finish()
    }
}

impl PartialEq for Blocked {
    fn eq(&self, other: &Self) -> bool {
        self.waiter.id == other.waiter.id
    }
}
impl Eq for Blocked {}

/// Parses a blocking timeout in (fractional) seconds as redis 7.0 does:
/// the value is converted to whole milliseconds rounding up (so any
/// positive timeout waits at least 1 ms), a value whose milliseconds do
/// not fit in an i64 (inf, 1e100) is "negative", and 0 (or anything in
/// (-0.001, 0]) means forever.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Instant>, String> {
    let secs = crate::cmd::parse_f64(arg)
        .ok_or_else(|| "ERR timeout is not a float or out of range".to_string())?;
    let ms = (secs * 1000.0).ceil();
    // C's conversion of an out-of-range double yields LLONG_MIN. (Never
    // NaN: parse_f64 refuses it.) i64::MAX as f64 is 2^63.
    if ms >= i64::MAX as f64 || ms < 0.0 {
        return Err("ERR timeout is negative".into());
    }
    let ms = ms as u64;
    if ms == 0 {
        return Ok(None);
    }
    // A deadline beyond what Instant can represent is as good as forever.
    Ok(Instant::now().checked_add(std::time::Duration::from_millis(ms)))
}
