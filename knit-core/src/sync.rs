//! Atomics used on shared memory: `core`'s normally, loom's under `--cfg loom` so that the model
//! tests explore every interleaving and memory ordering of the real code paths.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
