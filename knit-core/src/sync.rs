//! Atomics used on shared memory: `core`'s normally, loom's under `--cfg loom` so that the model
//! tests explore every interleaving and memory ordering of the real code paths.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::hint::spin_loop;
/// One iteration of a busy wait. Under loom it yields to the model's scheduler, so that a
/// spinning thread lets the others make progress instead of exhausting the branch budget.
#[cfg(loom)]
pub(crate) use loom::hint::spin_loop;

/// Loom stand-ins for memory that loom cannot see.
///
/// Loom neither tracks plain memory nor can turn an address into one of its atomics. Under
/// `--cfg loom`, [`crate::SharedMem`] therefore asks this registry for
/// - one loom atomic per address, created on first use with the bytes found there, and
/// - one shadow `loom::cell::UnsafeCell<()>` per 8-byte word, touched on every plain read
///   (`with`) and write (`with_mut`), so that a read that does not happen-after the write it
///   may observe (or a write racing a read) is reported by loom's causality checker.
///
/// The registry lives in a `loom::lazy_static`, which loom resets for each explored
/// execution. Its entries are leaked on purpose: a loom object must never be dropped outside
/// the execution that created it, and a model test creates only a few hundred of them.
///
/// Shadow cells record their creating thread as their first access, so a model test creates
/// them all from its main thread before it spawns (for example by zeroing the data area).
#[cfg(loom)]
pub(crate) mod shadow {
    extern crate std;

    use std::boxed::Box;
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    use loom::cell::UnsafeCell;

    use super::{AtomicU32, AtomicU64};

    /// Granularity of the shadow cells: positions and record boundaries are multiples of 8.
    const WORD: usize = 8;

    #[derive(Default)]
    struct Registry {
        u32s: HashMap<usize, &'static AtomicU32>,
        u64s: HashMap<usize, &'static AtomicU64>,
        cells: HashMap<usize, &'static UnsafeCell<()>>,
    }

    // The std mutex is never contended: loom runs every modelled thread on one OS thread and
    // never switches threads while it is held (no loom operation happens under it).
    loom::lazy_static! {
        static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry::default());
    }

    fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    /// The loom atomic standing for the `u32` at `addr`; `initial` gives its first value.
    pub(crate) fn atomic_u32(addr: usize, initial: impl FnOnce() -> u32) -> &'static AtomicU32 {
        with_registry(|r| {
            *r.u32s
                .entry(addr)
                .or_insert_with(|| Box::leak(Box::new(AtomicU32::new(initial()))))
        })
    }

    /// The loom atomic standing for the `u64` at `addr`; `initial` gives its first value.
    pub(crate) fn atomic_u64(addr: usize, initial: impl FnOnce() -> u64) -> &'static AtomicU64 {
        with_registry(|r| {
            *r.u64s
                .entry(addr)
                .or_insert_with(|| Box::leak(Box::new(AtomicU64::new(initial()))))
        })
    }

    fn cell(word: usize) -> &'static UnsafeCell<()> {
        with_registry(|r| {
            *r.cells
                .entry(word)
                .or_insert_with(|| Box::leak(Box::new(UnsafeCell::new(()))))
        })
    }

    /// The addresses of the words that `[addr, addr + len)` overlaps.
    fn words(addr: usize, len: usize) -> impl Iterator<Item = usize> {
        let first = addr / WORD;
        let end = if len == 0 {
            first
        } else {
            (addr + len).div_ceil(WORD)
        };
        (first..end).map(|w| w * WORD)
    }

    /// Records a plain read of `[addr, addr + len)` with loom.
    pub(crate) fn touch_read(addr: usize, len: usize) {
        for word in words(addr, len) {
            cell(word).with(|_| ());
        }
    }

    /// Records a plain write of `[addr, addr + len)` with loom.
    pub(crate) fn touch_write(addr: usize, len: usize) {
        for word in words(addr, len) {
            cell(word).with_mut(|_| ());
        }
    }
}
