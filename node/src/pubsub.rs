//! Pub/Sub registry: channel, pattern and shard-channel subscriptions.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;

use crate::glob::glob_match;
use crate::node::{ClientHandle, Push};

/// Hard limit on bytes queued for one subscriber (client-output-buffer-limit
/// pubsub hard limit); a subscriber that falls further behind is dropped.
pub const PUBSUB_HARD_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

type Subscribers = HashMap<u64, Arc<ClientHandle>>;

#[derive(Default)]
struct Inner {
    channels: HashMap<Bytes, Subscribers>,
    patterns: HashMap<Bytes, Subscribers>,
    shard: HashMap<Bytes, Subscribers>,
}

impl Inner {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, Subscribers> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shard,
        }
    }
}

#[derive(Default)]
pub struct PubSub {
    inner: RwLock<Inner>,
}

fn deliver(c: &Arc<ClientHandle>, push: Push, size: usize) {
    let pending = c.pending_push.fetch_add(size, Ordering::Relaxed) + size;
    if pending > PUBSUB_HARD_LIMIT {
        tracing::warn!(
            id = c.id,
            addr = %c.addr,
            "closing client that reached the pubsub output buffer limit"
        );
        c.kill();
        return;
    }
    let _ = c.push.send(push);
}

impl PubSub {
    /// Adds a subscription; false if the client already had it.
    pub fn subscribe(&self, kind: Kind, name: &Bytes, client: &Arc<ClientHandle>) -> bool {
        let mut g = self.inner.write();
        g.map(kind)
            .entry(name.clone())
            .or_default()
            .insert(client.id, client.clone())
            .is_none()
    }

    /// Removes a subscription; false if the client did not have it.
    pub fn unsubscribe(&self, kind: Kind, name: &[u8], id: u64) -> bool {
        let mut g = self.inner.write();
        let map = g.map(kind);
        let Some(subs) = map.get_mut(name) else {
            return false;
        };
        let removed = subs.remove(&id).is_some();
        if subs.is_empty() {
            map.remove(name);
        }
        removed
    }

    /// Delivers a message to channel and pattern subscribers. Returns the
    /// number of receivers.
    pub fn publish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let g = self.inner.read();
        let size = channel.len() + payload.len() + 32;
        let mut n = 0;
        if let Some(subs) = g.channels.get(channel) {
            for c in subs.values() {
                deliver(
                    c,
                    Push::Message {
                        kind: "message",
                        pattern: None,
                        channel: channel.clone(),
                        payload: payload.clone(),
                    },
                    size,
                );
                n += 1;
            }
        }
        for (pat, subs) in &g.patterns {
            if glob_match(pat, channel, false) {
                for c in subs.values() {
                    deliver(
                        c,
                        Push::Message {
                            kind: "pmessage",
                            pattern: Some(pat.clone()),
                            channel: channel.clone(),
                            payload: payload.clone(),
                        },
                        size + pat.len(),
                    );
                    n += 1;
                }
            }
        }
        n
    }

    /// Delivers a message to shard-channel subscribers (SPUBLISH).
    pub fn spublish(&self, channel: &Bytes, payload: &Bytes) -> usize {
        let g = self.inner.read();
        let size = channel.len() + payload.len() + 32;
        let Some(subs) = g.shard.get(channel) else {
            return 0;
        };
        for c in subs.values() {
            deliver(
                c,
                Push::Message {
                    kind: "smessage",
                    pattern: None,
                    channel: channel.clone(),
                    payload: payload.clone(),
                },
                size,
            );
        }
        subs.len()
    }

    /// Active channels (or shard channels) matching an optional pattern.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut g = self.inner.write();
        g.map(kind)
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob_match(p, c, false)))
            .cloned()
            .collect()
    }

    pub fn numsub(&self, kind: Kind, channel: &[u8]) -> usize {
        let mut g = self.inner.write();
        g.map(kind).get(channel).map_or(0, |s| s.len())
    }

    /// Number of distinct patterns subscribed to (PUBSUB NUMPAT).
    pub fn numpat(&self) -> usize {
        self.inner.read().patterns.len()
    }
}
