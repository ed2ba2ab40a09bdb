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
//! the task runs, and falls back to sleeping when it returns.
//!
//! A polling thread never sleeps, so the kernel cannot move it: when
//! another thread wants its core (a kernel worker, the client), either
//! that thread waits or the poller does, with requests queued behind it.
//! A sleeping server is woken by the next request instead, and the kernel
//! then places it on whichever core can run it soonest. So every
//! [`CROWD_CHECK_ROUNDS`] rounds the poller reads how many threads are
//! runnable on the machine (`/proc/loadavg`); when there are more than
//! CPUs, it stops and holds off for [`CROWDED_HOLDOFF`], and the worker
//! sleeps in `epoll_wait` as it would without polling. Giving the core
//! away with `sched_yield` in every round instead (the first design)
//! parked the worker behind kernel workers for up to 0.4 ms at a time,
//! and p99 latency at `-c 50` was 15-35% worse than redis-server's
//! (docs/benchmarks.md).
//!
//! The window is short (10 µs by default) for the same reason: it only
//! has to bridge the gap between two requests while a client is busy
//! sending them (about 10 µs per request for redis-benchmark at `-c 50`
//! on this project's 2-core test machine, less with pipelining). When the
//! client stalls instead, preempted by a kernel worker or out of work, a
//! poller that waits 100 µs keeps a core busy that the client or the
//! kernel could use, and p99 latency without pipelining was up to 11% worse
//! than redis-server's; with 10 µs it is at or below it, and throughput
//! is the same.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// CPU pressure (share of a cron tick during which some task waited for a
/// CPU) at or above which polling stops until a tick below it.
pub const PRESSURE_LIMIT: f64 = 0.10;

/// Where Linux reports CPU pressure stalls.
const PRESSURE_FILE: &str = "/proc/pressure/cpu";

/// Where Linux reports the number of runnable threads (fourth field,
/// `running/total`).
const LOADAVG_FILE: &str = "/proc/loadavg";

/// Polling rounds between two looks at the number of runnable threads
/// (a round is about a microsecond; a look costs about as much).
pub const CROWD_CHECK_ROUNDS: u32 = 8;

/// How long the poller stays off after it found more runnable threads
/// than CPUs.
pub const CROWDED_HOLDOFF: Duration = Duration::from_millis(1);

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
    /// Episodes ended because more threads were runnable than CPUs, for
    /// `INFO stats` (`busy_poll_crowded`).
    crowded: AtomicU64,
    /// The process may use two CPUs or more (read once at start-up).
    enough_cpus: bool,
    /// The CPUs online on the machine (read once at start-up), which the
    /// runnable-thread count is compared with.
    online_cpus: usize,
    /// [`LOADAVG_FILE`], opened once and read with `pread` (tests put
    /// another file here); `None` where it cannot be opened.
    loadavg: Option<std::fs::File>,
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
            online_cpus: online_cpus(),
            loadavg: std::fs::File::open(LOADAVG_FILE).ok(),
            armed: AtomicBool::new(false),
            episodes: AtomicU64::new(0),
            crowded: AtomicU64::new(0),
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

    /// How many episodes ended because the machine had more runnable
    /// threads than CPUs.
    pub fn crowded(&self) -> u64 {
        self.crowded.load(Ordering::Relaxed)
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
            let end = self.spin(Duration::from_micros(window)).await;
            self.spinning.store(false, Ordering::Relaxed);
            if end == SpinEnd::Crowded {
                self.crowded.fetch_add(1, Ordering::Relaxed);
                // Let the worker sleep between requests for a while, so
                // that the kernel can run the other threads and wake the
                // worker wherever there is room.
                tokio::time::sleep(CROWDED_HOLDOFF).await;
            }
            // A report that came between the last look and the store above
            // found the poller spinning and did not wake it.
            if self.activity.load(Ordering::Relaxed) {
                self.wake.notify_one();
            }
        }
    }

    async fn spin(&self, window: Duration) -> SpinEnd {
        let mut last_activity = crate::clock::now();
        let mut rounds = 0u32;
        loop {
            tokio::task::yield_now().await;
            let now = crate::clock::now();
            if self.activity.swap(false, Ordering::Relaxed) {
                last_activity = now;
            } else if now.duration_since(last_activity) > window {
                return SpinEnd::Quiet;
            }
            rounds = rounds.wrapping_add(1);
            if rounds % CROWD_CHECK_ROUNDS == 0
                && more_runnable_than(self.loadavg.as_ref(), self.online_cpus)
            {
                return SpinEnd::Crowded;
            }
            if rounds % 64 == 0 && !self.armed() {
                return SpinEnd::Quiet;
            }
        }
    }
}

/// Why an episode of polling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpinEnd {
    /// No request for the window, or polling was turned off.
    Quiet,
    /// More threads were runnable than the machine has CPUs.
    Crowded,
}

/// Whether the runnable-thread count read from `loadavg` (this thread
/// included) is above `cpus`. Without the file (not Linux, or no
/// procfs), or when it cannot be read or parsed, never.
fn more_runnable_than(loadavg: Option<&std::fs::File>, cpus: usize) -> bool {
    use std::os::unix::fs::FileExt;
    let Some(file) = loadavg else {
        return false;
    };
    let mut buf = [0u8; 128];
    let Ok(n) = file.read_at(&mut buf, 0) else {
        return false;
    };
    let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
    parse_runnable(text).is_some_and(|running| running > cpus)
}

/// The CPUs online on the machine. `/proc/loadavg` counts the runnable
/// threads of the whole machine (it is not namespaced), so it is compared
/// with every CPU, not with the process's share.
fn online_cpus() -> usize {
    // SAFETY: sysconf takes an integer and returns an integer; it reads
    // no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(1)
}

/// The number of runnable threads from the text of `/proc/loadavg`
/// (`0.52 0.58 0.59 3/412 12345`: the fourth field's first number).
pub fn parse_runnable(text: &str) -> Option<usize> {
    text.split_whitespace()
        .nth(3)?
        .split_once('/')?
        .0
        .parse()
        .ok()
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
    fn parses_the_runnable_count() {
        assert_eq!(parse_runnable("0.52 0.58 0.59 3/412 12345\n"), Some(3));
        assert_eq!(parse_runnable("1.00 1.00 1.00 17/1024 99"), Some(17));
        assert_eq!(parse_runnable("0.52 0.58 0.59"), None);
        assert_eq!(parse_runnable("0.52 0.58 0.59 x/412 1"), None);
        assert_eq!(parse_runnable("0.52 0.58 0.59 3 1"), None);
        assert_eq!(parse_runnable(""), None);
    }

    #[test]
    fn crowded_means_more_runnable_threads_than_cpus() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("loadavg");
        std::fs::write(&path, "0.10 0.20 0.30 2/300 4242\n").expect("write");
        let file = std::fs::File::open(&path).ok();
        assert!(!more_runnable_than(file.as_ref(), 2));
        // The open file is read again at every look, not once.
        std::fs::write(&path, "0.10 0.20 0.30 3/300 4242\n").expect("write");
        assert!(more_runnable_than(file.as_ref(), 2));
        assert!(!more_runnable_than(file.as_ref(), 4));
        // Unreadable or malformed: never crowded (polling goes on).
        std::fs::write(&path, "garbage\n").expect("write");
        assert!(!more_runnable_than(file.as_ref(), 2));
        let missing = std::fs::File::open(dir.path().join("none")).ok();
        assert!(!more_runnable_than(missing.as_ref(), 2));
        // The real file parses.
        if let Ok(text) = std::fs::read_to_string(LOADAVG_FILE) {
            assert!(parse_runnable(&text).is_some_and(|n| n >= 1));
        }
        assert!(online_cpus() >= 1);
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

    /// A running poller with its gate open and a `window_us` window, that
    /// reads its runnable-thread count from a file holding `loadavg`
    /// (rewrite the returned path to change it).
    fn started_poller(
        loadavg: &str,
        window_us: u64,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::sync::Arc<BusyPoll>,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("loadavg");
        std::fs::write(&path, loadavg).expect("write");
        let poll = std::sync::Arc::new(BusyPoll {
            loadavg: std::fs::File::open(&path).ok(),
            ..Default::default()
        });
        poll.set_gate(true);
        poll.set_window_us(window_us);
        let p = poll.clone();
        tokio::spawn(async move { p.run().await });
        (dir, path, poll)
    }

    async fn wait_until_idle(poll: &BusyPoll) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while poll.spinning() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_poller_spins_while_poked_and_stops_after_the_window() {
        // A calm machine, whatever else runs while the tests do.
        let (_dir, _path, poll) = started_poller("0.00 0.00 0.00 1/100 1\n", 2_000);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_crowded_machine_ends_the_episode_and_holds_polling_off() {
        // Far more runnable threads than any machine running this has CPUs.
        let (_dir, path, poll) = started_poller("9.00 9.00 9.00 100000/100001 1\n", 1_000_000);
        // Busy for 30 ms with a 1 s window: only crowding can end the
        // episodes, and each one ends within a few rounds.
        let until = std::time::Instant::now() + Duration::from_millis(30);
        while std::time::Instant::now() < until {
            poll.poke();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        assert!(poll.episodes() >= 1);
        assert!(poll.crowded() >= 1);
        assert!(poll.crowded() + 1 >= poll.episodes());
        // The holdoff spaces the episodes out: at most one per holdoff.
        assert!(poll.episodes() <= 30 / CROWDED_HOLDOFF.as_millis() as u64 + 1);
        // A calm machine: the next episode runs its window.
        std::fs::write(&path, "0.00 0.00 0.00 1/100001 1\n").expect("write");
        tokio::time::sleep(Duration::from_millis(5)).await;
        let crowded = poll.crowded();
        poll.set_window_us(2_000);
        poll.poke();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !poll.spinning() && std::time::Instant::now() < deadline {
            poll.poke();
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        wait_until_idle(&poll).await;
        assert_eq!(poll.crowded(), crowded);
    }
}
