//! Clocks in nanoseconds: `CLOCK_MONOTONIC` for heartbeats, deadlines and liveness bounds
//! (spec/00 notation, PART-7, CALL-8), `CLOCK_REALTIME` for informative wall-clock stamps
//! (`created_unix_ns`, HDR table).

use rustix::time::{clock_gettime, ClockId, Timespec};

/// Nanoseconds per second.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// `CLOCK_MONOTONIC` in nanoseconds: shared by every process on the host, never goes back.
pub fn monotonic_ns() -> u64 {
    timespec_ns(clock_gettime(ClockId::Monotonic))
}

/// `CLOCK_REALTIME` in nanoseconds since the Unix epoch (0 for a clock set before 1970).
pub fn realtime_ns() -> u64 {
    timespec_ns(clock_gettime(ClockId::Realtime))
}

/// A `timespec` as nanoseconds, saturating (a negative time reads as 0; overflow would take
/// 584 years of uptime).
fn timespec_ns(ts: Timespec) -> u64 {
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(NANOS_PER_SEC).saturating_add(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let mut last = monotonic_ns();
        assert!(last > 0);
        for _ in 0..1000 {
            let now = monotonic_ns();
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
    }

    #[test]
    fn realtime_agrees_with_std_system_time() {
        let std_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let ours = u128::from(realtime_ns());
        // Same clock read twice: the two values are within a minute of each other (a clock
        // step between the reads could go either way; this is not a timing assertion).
        assert!(
            ours.abs_diff(std_ns) < 60 * u128::from(NANOS_PER_SEC),
            "{ours} vs {std_ns}"
        );
    }

    #[test]
    fn timespec_conversion_saturates() {
        assert_eq!(
            timespec_ns(Timespec {
                tv_sec: 2,
                tv_nsec: 5
            }),
            2_000_000_005
        );
        assert_eq!(
            timespec_ns(Timespec {
                tv_sec: -1,
                tv_nsec: 5
            }),
            5
        );
        assert_eq!(
            timespec_ns(Timespec {
                tv_sec: i64::MAX,
                tv_nsec: 0
            }),
            u64::MAX
        );
    }
}
