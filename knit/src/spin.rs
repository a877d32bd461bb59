//! Spin-then-park waiting on the caller's own doorbell (WAIT-1 to WAIT-4, WAIT-7), with a
//! liveness check between parks and a deadline.

use std::time::Duration;

use knit_core::wait::{Doorbell, MAX_PARK_TIMEOUT_NS, SPINS_PER_LIVENESS_CHECK};

use crate::clock::monotonic_ns;
use crate::futex::Futex;

/// How long a waiter spins before it parks on its doorbell (WAIT-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpinPolicy {
    /// Spin long (about 100 µs on current CPUs) before parking: the lowest latency, at the
    /// price of a busy core while waiting.
    LowestLatency,
    /// A short spin (a few microseconds), then park: the default.
    #[default]
    Balanced,
    /// Park at once: no busy waiting at all.
    NoSpin,
    /// Exactly this many re-checks before parking.
    Iterations(u32),
}

impl SpinPolicy {
    /// The number of re-checks before the first park.
    pub fn iterations(self) -> u32 {
        match self {
            SpinPolicy::LowestLatency => 200_000,
            SpinPolicy::Balanced => 2_000,
            SpinPolicy::NoSpin => 0,
            SpinPolicy::Iterations(n) => n,
        }
    }
}

/// Why a [`wait`] ended without its condition.
#[derive(Debug)]
pub(crate) enum Stop<E> {
    /// The deadline passed.
    Deadline,
    /// The check failed.
    Failed(E),
}

/// Waits until `ready()` is true: spins per `policy` (WAIT-1), then parks on `doorbell`
/// (the caller's own, WAIT-3) for at most 50 ms at a time (WAIT-2, WAIT-4), calling `check`
/// before each park and every [`SPINS_PER_LIVENESS_CHECK`] spins (LIVE-2). Ends with
/// [`Stop::Deadline`] once `deadline_ns` (`CLOCK_MONOTONIC`, 0 for none) has passed.
pub(crate) fn wait<E>(
    doorbell: &Doorbell<'_>,
    policy: SpinPolicy,
    deadline_ns: u64,
    mut ready: impl FnMut() -> bool,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<(), Stop<E>> {
    let past = |now: u64| deadline_ns != 0 && now >= deadline_ns;
    for i in 0..policy.iterations() {
        if ready() {
            return Ok(());
        }
        if i % SPINS_PER_LIVENESS_CHECK == SPINS_PER_LIVENESS_CHECK - 1 {
            check().map_err(Stop::Failed)?;
            if past(monotonic_ns()) {
                return Err(Stop::Deadline);
            }
        }
        std::hint::spin_loop();
    }
    loop {
        if ready() {
            return Ok(());
        }
        check().map_err(Stop::Failed)?;
        let now = monotonic_ns();
        if past(now) {
            return Err(Stop::Deadline);
        }
        // WAIT-4: never longer than 50 ms, and not past the deadline.
        let timeout = if deadline_ns == 0 {
            MAX_PARK_TIMEOUT_NS
        } else {
            (deadline_ns - now).min(MAX_PARK_TIMEOUT_NS)
        };
        // WAIT-7: whatever ended the park, re-check from the top.
        if doorbell.park(&Futex, timeout, &mut ready) {
            return Ok(());
        }
    }
}

/// A monotonic deadline `d` from now, 0 (none) for `None`.
pub(crate) fn deadline_after(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        monotonic_ns()
            .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .max(1)
    })
}
