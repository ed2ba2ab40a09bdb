//! Busy polling: after a client request, a worker keeps polling the
//! sockets for `busy-poll-us` microseconds before it sleeps in
//! `epoll_wait`.
//!
//! A server that sleeps between requests must be woken by the kernel for
//! the next one, and the client pays for that wake-up inside its own
//! `send` (on a VM, an inter-processor interrupt and often an exit to the
//! hypervisor). With redis-benchmark at `-c 50` on 2 cores the client is
//! the bottleneck, and a server that is still polling when the next
//! request arrives takes about 8% of the client's CPU per request away
//! (`perf stat` of redis-benchmark; docs/benchmarks.md).
//!
//! Polling burns a core, so it is only worth it when a core is free. The
//! poller runs only while
//! - `busy-poll-us` is not 0,
//! - the process may use at least two CPUs (`available_parallelism` at
//!   start-up, which honours affinity masks and cgroup CPU quotas), and
//! - the machine showed no CPU pressure over the last cron tick: the
//!   kernel's pressure-stall figure (`/proc/pressure/cpu`, "some") stayed
//!   under [`PRESSURE_LIMIT`] of the tick. With two redis-benchmark runs
//!   against two nodes on 2 cores, stalls were 72-82% of the time and
//!   polling cost 14% of the throughput; with one run they were 3%.
//!
//! The poller is a task that yields in a loop: while a task is yielding,
//! the tokio worker polls the I/O driver with a zero timeout instead of
//! blocking in it, so the worker turns into a polling loop for as long as
//! the task runs, and falls back to sleeping when it returns. Each round
//! also yields the thread (`sched_yield`), so that another thread that
//! becomes runnable on the poller's core runs at once instead of after
//! the poller's time slice.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// CPU pressure (share of a cron tick during which some task waited for a
/// CPU) at or above which polling stops until a tick below it.
pub const PRESSURE_LIMIT: f64 = 0.10;

/// Where Linux reports CPU pressure stalls.
const PRESSURE_FILE: &str = "/proc/pressure/cpu";

/// The shared state of the poller: connection tasks report activity, the
/// poller spins while there is some, the cron decides whether it may.
pub struct BusyPoll {
    /// Set by a connection task after reading a request; cleared by the
    /// poller each time it looks.
    activity: AtomicBool,
    /// The poller is spinning (so a report needs no wake-up).
    spinning: AtomicBool,
    /// `busy-poll-us`.
    window_us: AtomicU64,
    /// The CPU-count and pressure conditions hold.
    gate_open: AtomicBool,
    /// The gate is open and the window is not 0: reports wake the poller.
    armed: AtomicBool,
    /// Episodes started, for `INFO stats` (`busy_poll_episodes`).
    episodes: AtomicU64,
    /// The process may use two CPUs or more (read once at start-up).
    enough_cpus: bool,
    wake: Notify,
}

impl Default for BusyPoll {
    fn default() -> Self {
        let enough_cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2;
        BusyPoll {
            activity: AtomicBool::new(false),
            spinning: AtomicBool::new(false),
            window_us: AtomicU64::new(0),
            gate_open: AtomicBool::new(enough_cpus),
            enough_cpus,
            armed: AtomicBool::new(false),
            episodes: AtomicU64::new(0),
            wake: Notify::new(),
        }
    }
}

impl BusyPoll {
    /// Sets `busy-poll-us`.
    pub fn set_window_us(&self, us: u64) {
        self.window_us.store(us, Ordering::Relaxed);
        self.rearm();
    }

    /// Opens or closes the gate (CPU count and pressure).
    pub fn set_gate(&self, open: bool) {
        self.gate_open.store(open, Ordering::Relaxed);
        self.rearm();
    }

    fn rearm(&self) {
        let armed =
            self.gate_open.load(Ordering::Relaxed) && self.window_us.load(Ordering::Relaxed) > 0;
        if self.armed.swap(armed, Ordering::Relaxed) != armed && armed {
            // Reports made while disarmed left the flag set without a
            // wake-up; clear it so that the next one wakes the poller.
            self.activity.store(false, Ordering::Relaxed);
        }
    }

    /// Whether polling may run now: `busy-poll-us` is set and the CPU
    /// count and pressure permit.
    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::Relaxed)
    }

    /// Whether the poller is spinning right now.
    pub fn spinning(&self) -> bool {
        self.spinning.load(Ordering::Relaxed)
    }

    /// How many times the poller started spinning.
    pub fn episodes(&self) -> u64 {
        self.episodes.load(Ordering::Relaxed)
    }

    /// A connection read a request. Costs one relaxed load while the
    /// poller is already spinning and has not yet looked.
    #[inline]
    pub fn poke(&self) {
        if !self.activity.load(Ordering::Relaxed) {
            self.activity.store(true, Ordering::Relaxed);
            if !self.spinning.load(Ordering::Relaxed) && self.armed() {
                self.wake.notify_one();
            }
        }
    }

    /// The poller: waits for activity, then spins until `busy-poll-us`
    /// passes without any (or polling stops being allowed), and waits
    /// again. Runs for the life of the runtime.
    pub async fn run(&self) {
        loop {
            self.wake.notified().await;
            let window = self.window_us.load(Ordering::Relaxed);
            if !self.armed() {
                continue;
            }
            self.episodes.fetch_add(1, Ordering::Relaxed);
            self.spinning.store(true, Ordering::Relaxed);
            self.spin(Duration::from_micros(window)).await;
            self.spinning.store(false, Ordering::Relaxed);
            // A report that came between the last look and the store above
            // found the poller spinning and did not wake it.
            if self.activity.load(Ordering::Relaxed) {
                self.wake.notify_one();
            }
        }
    }

    async fn spin(&self, window: Duration) {
        let mut last_activity = crate::clock::now();
        let mut rounds = 0u32;
        loop {
            tokio::task::yield_now().await;
            // Give the core to any other thread waiting for it (the
            // client, on a small machine): without this, a thread that
            // lands on the poller's core waits for the poller's time
            // slice to end, and p99 at `-c 50` was 0.1-0.2 ms worse.
            std::thread::yield_now();
            let now = crate::clock::now();
            if self.activity.swap(false, Ordering::Relaxed) {
                last_activity = now;
            } else if now.duration_since(last_activity) > window {
                return;
            }
            rounds = rounds.wrapping_add(1);
            if rounds % 64 == 0 && !self.armed() {
                return;
            }
        }
    }
}

/// Decides from successive readings of the pressure-stall total whether
/// polling may run. Pure, so the decision is testable without a kernel.
#[derive(Debug, Default)]
pub struct PressureGate {
    last: Option<(u64, u64)>,
}

impl PressureGate {
    /// Takes the stall total (microseconds) read at `now_us` and returns
    /// whether the stalls since the previous reading stayed under
    /// [`PRESSURE_LIMIT`] of the time between them. The first reading, a
    /// counter that went backwards and an empty interval allow polling.
    pub fn observe(&mut self, stall_total_us: u64, now_us: u64) -> bool {
        let prev = self.last.replace((stall_total_us, now_us));
        let Some((stall0, t0)) = prev else {
            return true;
        };
        let elapsed = now_us.saturating_sub(t0);
        if elapsed == 0 || stall_total_us < stall0 {
            return true;
        }
        ((stall_total_us - stall0) as f64) < PRESSURE_LIMIT * elapsed as f64
    }
}

/// The "some" stall total, in microseconds, from the text of a
/// pressure-stall file (`some avg10=0.00 avg60=0.00 avg300=0.00 total=N`).
pub fn parse_some_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Called by the server cron every tick: re-evaluates whether polling may
/// run. Without a readable pressure file (kernels before 4.20, or PSI
/// turned off) only the CPU count decides. The file is not read while
/// its figure cannot matter: one CPU, or `busy-poll-us 0` (the gate then
/// catches up on the first tick after polling is turned on).
pub fn cron_tick(poll: &BusyPoll, gate: &mut PressureGate, started: std::time::Instant) {
    if !poll.enough_cpus {
        poll.set_gate(false);
        return;
    }
    if poll.window_us.load(Ordering::Relaxed) == 0 {
        return;
    }
    let calm = match std::fs::read_to_string(PRESSURE_FILE)
        .ok()
        .as_deref()
        .and_then(parse_some_total)
    {
        Some(total) => gate.observe(total, started.elapsed().as_micros() as u64),
        None => true,
    };
    poll.set_gate(calm);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_some_total() {
        let text = "some avg10=0.20 avg60=1.68 avg300=4.01 total=4038628056\n\
                    full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_some_total(text), Some(4_038_628_056));
        assert_eq!(parse_some_total("full avg10=0.00 total=5\n"), None);
        assert_eq!(parse_some_total("some avg10=0.00 total=x\n"), None);
        assert_eq!(parse_some_total(""), None);
    }

    #[test]
    fn the_gate_closes_under_pressure_and_reopens_when_it_passes() {
        let mut g = PressureGate::default();
        // First reading: nothing to compare with.
        assert!(g.observe(1_000, 0));
        // 3 ms of stalls in 100 ms: calm.
        assert!(g.observe(4_000, 100_000));
        // 80 ms of stalls in 100 ms: pressure.
        assert!(!g.observe(84_000, 200_000));
        // Exactly the limit counts as pressure.
        assert!(!g.observe(94_000, 300_000));
        // Calm again.
        assert!(g.observe(95_000, 400_000));
        // A counter that went backwards, or no time passed: allowed.
        assert!(g.observe(10, 500_000));
        assert!(g.observe(50_000, 500_000));
    }

    async fn wait_until_idle(poll: &BusyPoll) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while poll.spinning() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_poller_spins_while_poked_and_stops_after_the_window() {
        let poll = std::sync::Arc::new(BusyPoll::default());
        poll.set_gate(true);
        poll.set_window_us(2_000);
        let p = poll.clone();
        tokio::spawn(async move { p.run().await });
        assert!(!poll.spinning());
        // Busy for 30 ms: it spins.
        let until = std::time::Instant::now() + Duration::from_millis(30);
        let mut saw_spinning = false;
        while std::time::Instant::now() < until {
            poll.poke();
            tokio::time::sleep(Duration::from_micros(500)).await;
            saw_spinning |= poll.spinning();
        }
        assert!(saw_spinning);
        assert!(poll.episodes() >= 1);
        // Quiet: it stops after the window.
        wait_until_idle(&poll).await;
        assert!(!poll.spinning());
        // Gate closed: a report starts no episode.
        let before = poll.episodes();
        poll.set_gate(false);
        poll.poke();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!poll.spinning());
        assert_eq!(poll.episodes(), before);
        // Gate open with a zero window: none either.
        poll.set_gate(true);
        poll.set_window_us(0);
        poll.poke();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(poll.episodes(), before);
        // Re-armed: the first report after it starts one, although the
        // reports made while disarmed left the activity flag set.
        poll.set_window_us(2_000);
        poll.poke();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while poll.episodes() == before && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(poll.episodes(), before + 1);
        wait_until_idle(&poll).await;
    }
}
