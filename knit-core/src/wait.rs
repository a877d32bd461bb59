//! The doorbell wait/wake protocol of spec/04-wait.md, as pure transitions over atomics.
//! The operating-system layer supplies the actual sleep and wake calls through [`Parker`].

use crate::sync::AtomicU32;

/// The sleep and wake primitives of the platform (Linux: shared futex), injected by the OS layer
/// so that the core stays free of system calls.
pub trait Parker {
    /// Blocks the calling thread while `word` holds `expected`, for at most `timeout_ns`
    /// nanoseconds. May return early for any reason (wake, signal, spurious); callers re-check
    /// their conditions after every return (WAIT-7).
    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64);
    /// Wakes every thread blocked in [`Parker::wait`] on `word`, in any process.
    fn wake_all(&self, word: &AtomicU32);
}
