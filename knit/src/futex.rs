//! [`Futex`]: the Linux implementation of [`knit_core::wait::Parker`] (spec/04-wait.md).
//!
//! The futex is the *shared* (non-private) kind, keyed by the physical page, because the
//! waiters and wakers of a doorbell are different processes mapping the same region
//! (WAIT-2 step 4).

use std::sync::atomic::AtomicU32;

use knit_core::wait::Parker;
use rustix::thread::futex;

/// Nanoseconds per second, for splitting a relative timeout into a `timespec`.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Parks and wakes threads on 32-bit words in shared memory with the shared Linux futex.
#[derive(Clone, Copy, Debug, Default)]
pub struct Futex;

impl Futex {
    /// A futex parker.
    pub const fn new() -> Self {
        Futex
    }

    /// Wakes every thread waiting on `word` in any process (`FUTEX_WAKE` with `INT_MAX`,
    /// WAIT-5) and returns how many the kernel reports woken (0 when the call failed).
    pub fn wake_all_count(&self, word: &AtomicU32) -> usize {
        futex::wake(word, futex::Flags::empty(), i32::MAX.unsigned_abs()).unwrap_or(0)
    }
}

impl Parker for Futex {
    /// `FUTEX_WAIT` on the shared futex with a relative timeout (WAIT-2 step 4, WAIT-4).
    ///
    /// Every outcome returns alike (WAIT-7): woken, timed out, `EAGAIN` because `word` no
    /// longer holds `expected`, `EINTR`, or an unexpected error. The caller re-checks its
    /// conditions and bounds its own wait, so an error cannot make it block without bound.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) {
        let timeout = futex::Timespec {
            tv_sec: futex::Secs::try_from(timeout_ns / NANOS_PER_SEC).unwrap_or(futex::Secs::MAX),
            // Always below 10^9, so it fits.
            tv_nsec: futex::Nsecs::try_from(timeout_ns % NANOS_PER_SEC).unwrap_or(0),
        };
        let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&timeout));
    }

    /// `FUTEX_WAKE` with `INT_MAX` on the shared futex (WAIT-5).
    fn wake_all(&self, word: &AtomicU32) {
        let _ = self.wake_all_count(word);
    }
}
