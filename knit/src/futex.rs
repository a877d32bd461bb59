//! [`Futex`]: the Linux implementation of [`knit_core::wait::Parker`] (spec/04-wait.md).
//!
//! The futex is the *shared* (non-private) kind, keyed by the physical page, because the
//! waiters and wakers of a doorbell are different processes mapping the same region
//! (WAIT-2 step 4).

use std::sync::atomic::AtomicU32;

use knit_core::wait::Parker;
use rustix::io::Errno;
use rustix::thread::futex;

/// Nanoseconds per second, for splitting a relative timeout into a `timespec`.
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Parks and wakes threads on 32-bit words in shared memory with the shared Linux futex.
#[derive(Clone, Copy, Debug, Default)]
pub struct Futex;

/// How one `FUTEX_WAIT` ended, as the kernel reported it. The protocol treats them all alike
/// (WAIT-7); the distinction serves tests and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// A `FUTEX_WAKE` on the word (or a spurious wake-up).
    Woken,
    /// The relative timeout passed.
    TimedOut,
    /// The word no longer held the expected value when the call began (`EAGAIN`).
    ValueChanged,
    /// A signal interrupted the wait (`EINTR`).
    Interrupted,
    /// Any other error, with its `errno`.
    Failed(i32),
}

impl Futex {
    /// A futex parker.
    pub const fn new() -> Self {
        Futex
    }

    /// `FUTEX_WAIT` on the shared futex: blocks while `word` holds `expected`, for at most
    /// `timeout_ns`, and reports how the wait ended.
    pub fn wait_outcome(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) -> WaitOutcome {
        let timeout = futex::Timespec {
            tv_sec: futex::Secs::try_from(timeout_ns / NANOS_PER_SEC).unwrap_or(futex::Secs::MAX),
            // Always below 10^9, so it fits.
            tv_nsec: futex::Nsecs::try_from(timeout_ns % NANOS_PER_SEC).unwrap_or(0),
        };
        match futex::wait(word, futex::Flags::empty(), expected, Some(&timeout)) {
            Ok(()) => WaitOutcome::Woken,
            Err(Errno::TIMEDOUT) => WaitOutcome::TimedOut,
            Err(Errno::AGAIN) => WaitOutcome::ValueChanged,
            Err(Errno::INTR) => WaitOutcome::Interrupted,
            Err(e) => WaitOutcome::Failed(e.raw_os_error()),
        }
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
        let _ = self.wait_outcome(word, expected, timeout_ns);
    }

    /// `FUTEX_WAKE` with `INT_MAX` on the shared futex (WAIT-5).
    fn wake_all(&self, word: &AtomicU32) {
        let _ = self.wake_all_count(word);
    }
}
