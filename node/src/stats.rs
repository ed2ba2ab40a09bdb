//! Server-wide counters reported by INFO.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

#[derive(Default)]
pub struct Stats {
    pub total_commands_processed: AtomicU64,
    pub total_connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    pub expired_keys: AtomicU64,
    pub evicted_keys: AtomicU64,
    pub total_net_input_bytes: AtomicU64,
    pub total_net_output_bytes: AtomicU64,
    pub total_error_replies: AtomicU64,
    pub unexpected_error_replies: AtomicU64,
    pub expire_cycle_cpu_micros: AtomicU64,
    pub pubsub_messages: AtomicU64,
    pub ops_sampler: Mutex<OpsSampler>,
}

/// Samples the command counter to compute instantaneous_ops_per_sec the way
/// redis does: a ring of per-interval rates, averaged.
#[derive(Default)]
pub struct OpsSampler {
    samples: [u64; 16],
    idx: usize,
    last_count: u64,
    last_ms: i64,
}

impl OpsSampler {
    pub fn sample(&mut self, now_ms: i64, count: u64) {
        if self.last_ms != 0 {
            let dt = (now_ms - self.last_ms).max(1) as u64;
            let ops = (count.saturating_sub(self.last_count)) * 1000 / dt;
            self.samples[self.idx] = ops;
            self.idx = (self.idx + 1) % self.samples.len();
        }
        self.last_ms = now_ms;
        self.last_count = count;
    }
    pub fn rate(&self) -> u64 {
        self.samples.iter().sum::<u64>() / self.samples.len() as u64
    }
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    /// CONFIG RESETSTAT.
    pub fn reset(&self) {
        for c in [
            &self.total_commands_processed,
            &self.total_connections_received,
            &self.rejected_connections,
            &self.keyspace_hits,
            &self.keyspace_misses,
            &self.expired_keys,
            &self.evicted_keys,
            &self.total_net_input_bytes,
            &self.total_net_output_bytes,
            &self.total_error_replies,
            &self.unexpected_error_replies,
            &self.expire_cycle_cpu_micros,
            &self.pubsub_messages,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        *self.ops_sampler.lock() = OpsSampler::default();
    }
}
