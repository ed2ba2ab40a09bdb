//! The data path's monotonic clock.
//!
//! Every command reads the clock once (its start is the previous command's
//! end): for the slowlog, `INFO commandstats` and the time that expiry
//! compares against. Through the vDSO, `clock_gettime` and the `Duration`
//! arithmetic around it cost about 5% of the CPU of a pipelined `INCR`
//! (`perf record`, `redis-benchmark -P 16`). This clock reads the CPU's
//! time-stamp counter where it is invariant (calibrated once against the
//! OS clock at start-up) and falls back to the OS clock elsewhere, as
//! redis's own `USE_PROCESSOR_CLOCK` build does.

use std::sync::OnceLock;

/// A reading of the data path's clock.
pub type Instant = quanta::Instant;

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock (some milliseconds), so that the first command
/// does not pay for it.
pub fn init() {
    clock();
}

/// The current reading.
#[inline]
pub fn now() -> Instant {
    clock().now()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn readings_advance_with_the_os_clock() {
        // Each reading is bracketed by OS readings, so a preemption
        // between two calls widens the bounds instead of failing the test.
        let os_before_a = std::time::Instant::now();
        let a = now();
        let os_after_a = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        let os_before_b = std::time::Instant::now();
        let b = now();
        let os_after_b = std::time::Instant::now();
        assert!(b > a);
        let elapsed = b.duration_since(a);
        let least = os_before_b.duration_since(os_after_a);
        let most = os_after_b.duration_since(os_before_a);
        // Calibration error: well under 1% plus a few microseconds.
        let slack = Duration::from_micros(200) + most / 50;
        assert!(
            elapsed + slack >= least && elapsed <= most + slack,
            "clock {elapsed:?}, OS between {least:?} and {most:?}"
        );
    }
}
