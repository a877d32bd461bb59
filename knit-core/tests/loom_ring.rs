//! Loom model of ring publication (spec/03-ring.md RING-2 to RING-6): the real [`Producer`] and
//! [`Consumer`] of `knit_core::ring`, on two threads, over a small ring, with wrap-around and
//! padding.
//!
//! Run with (once built: about 15 s for both files at bound 3, 5 s at bound 2, on two cores):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p knit-core --release --test loom_ring --test loom_wait
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` defaults to 3 here when unset.
//!
//! Under `--cfg loom`, `SharedMem` backs each atomic word with a loom atomic and shadows every
//! 8-byte data word with a loom `UnsafeCell<()>`, touched on each plain read and write
//! (`knit-core/src/sync.rs`, `shadow`). So a consumer read of record bytes that does not
//! happen-after the producer's write of them, or a producer write over bytes the consumer may
//! still be reading, is reported as a causality violation, besides the content checks below.
//!
//! The model catches real bugs. Checked by hand when this file was written (and reverted):
//! - the `tail` store in `Producer::publish` weakened from Release to Relaxed (RING-3): loom
//!   fails in every test below with "Causality violation: Concurrent read and write accesses"
//!   on the consumer's header read;
//! - the `head` store in `Consumer::publish_head` weakened to Relaxed (RING-6): loom fails every
//!   test (the producer's write into a released slot races the consumer's read of it);
//! - the `head` load in the producer weakened from Acquire to Relaxed (RING-4): the same;
//! - the producer under-counting the bytes in flight (a RING-4 logic bug): the same;
//! - the `tail` load in the consumer weakened from Acquire to Relaxed (RING-5): loom fails with
//!   the same causality violation.
#![cfg(loom)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::Arc;

use knit_core::ring::{flags, Consumer, Producer, RingRef, RING_CTRL_LEN};
use knit_core::SharedMem;
use loom::thread;

/// Record type used by the model (any type but 0 and PAD).
const DATA: u16 = 0x30;

/// A ring's control block and data area in one 64-aligned private allocation.
struct RingMem {
    ptr: NonNull<u8>,
    cap: usize,
}

// SAFETY: the allocation is only accessed through `SharedMem` views (copies and atomics),
// which are made for concurrent use; `RingMem` itself holds no references.
unsafe impl Send for RingMem {}
// SAFETY: as for `Send`.
unsafe impl Sync for RingMem {}

impl RingMem {
    fn layout(cap: usize) -> Layout {
        Layout::from_size_align(RING_CTRL_LEN + cap, 64).expect("small layout")
    }

    fn new(cap: usize) -> Self {
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(Self::layout(cap)) };
        RingMem {
            ptr: NonNull::new(raw).expect("allocation"),
            cap,
        }
    }

    fn ring(&self) -> RingRef<'_> {
        // SAFETY: the allocation is `RING_CTRL_LEN + cap` bytes, 64-aligned, lives as long as
        // `self`, and is never accessed through references.
        let all = unsafe { SharedMem::new(self.ptr, RING_CTRL_LEN + self.cap) };
        RingRef::new(
            all.sub(0, RING_CTRL_LEN).expect("ctrl"),
            all.sub(RING_CTRL_LEN, self.cap).expect("data"),
        )
        .expect("valid geometry")
    }

    /// A ring ready for the model: data zeroed and positions reset from the main thread, so
    /// every shadow cell and loom atomic is created before the threads are spawned.
    fn prepared(cap: usize) -> Arc<Self> {
        let mem = Arc::new(RingMem::new(cap));
        mem.ring().data.zero(0, cap).expect("in bounds");
        mem.ring().reset();
        mem
    }
}

impl Drop for RingMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) };
    }
}

/// The body of record `i`: `len` bytes that differ from every other record's.
fn body(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|k| (i * 31 + k + 1) as u8).collect()
}

fn flags_of(i: usize) -> u16 {
    if i % 2 == 0 {
        flags::FIRST
    } else {
        flags::LAST
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Writes `lens.len()` records with `try_write`, publishing every `batch` records and whenever
/// the ring is full (so the consumer can make progress).
fn produce(ring: RingRef<'_>, lens: &[usize], batch: usize) {
    let mut p = Producer::new(ring);
    for (i, &len) in lens.iter().enumerate() {
        while !p
            .try_write(DATA, flags_of(i), &body(i, len))
            .expect("no violation")
        {
            p.publish();
            thread::yield_now();
        }
        if (i + 1) % batch == 0 {
            p.publish();
        }
    }
    p.publish();
}

/// Reads `lens.len()` records and checks each one: type, flags, length and every byte.
fn consume(ring: RingRef<'_>, lens: &[usize]) {
    let mut c = Consumer::new(ring);
    let mut next = 0;
    while next < lens.len() {
        if let Some(rec) = c.peek().expect("no violation") {
            let h = rec.header();
            assert_eq!(
                (h.rtype, h.flags, h.len as usize),
                (DATA, flags_of(next), lens[next]),
                "record {next}"
            );
            assert_eq!(
                rec.body(),
                &body(next, lens[next])[..],
                "record {next}: torn body"
            );
            rec.consume();
            next += 1;
        } else {
            c.publish_head();
            thread::yield_now();
        }
    }
    c.publish_head();
    assert!(
        c.peek().expect("no violation").is_none(),
        "no record beyond the last one"
    );
}

/// Runs producer and consumer of `lens` on a `cap`-byte ring; `end` is the final position,
/// which proves where PAD records were written (it exceeds the sum of the record sizes by the
/// PAD bytes).
fn run(cap: usize, lens: &'static [usize], batch: usize, end: u64) {
    model(move || {
        let mem = RingMem::prepared(cap);
        let producer_mem = Arc::clone(&mem);
        let producer = thread::spawn(move || produce(producer_mem.ring(), lens, batch));
        consume(mem.ring(), lens);
        producer.join().expect("producer thread");
        assert_eq!(
            (mem.ring().load_tail(), mem.ring().load_head()),
            (end, end),
            "everything released"
        );
    });
}

/// 64-byte ring: records of 24 bytes at 0 and 24; the third does not fit in the last 16 bytes,
/// so the producer pads and wraps, and must wait for the consumer to release the first.
#[test]
fn wraps_with_padding_under_backpressure() {
    run(64, &[16, 16, 16], 1, 3 * 24 + 16);
}

/// Two records published with one store (batching), then a record that fits the end exactly
/// (no PAD) and one at offset 0 after it.
#[test]
fn batched_publication_and_exact_fit() {
    run(64, &[8, 8, 24, 0], 2, 16 + 16 + 32 + 8);
}

/// Mixed sizes over three turns of the ring, published in pairs: an exact fit at the end
/// (position 64), an empty body, a PAD of 8 bytes (at 120), maximal records (`cap / 2`) and a
/// PAD of 16 bytes (at 176).
#[test]
fn several_wraps_mixed_sizes() {
    run(64, &[16, 16, 8, 0, 16, 16, 3, 24, 24], 2, 200 + 8 + 16);
}

/// The loan API: reserve, write in place, commit a shorter body; an abandoned reservation in
/// between leaves nothing visible.
#[test]
fn loan_commit_and_abandon() {
    model(|| {
        let mem = RingMem::prepared(64);
        let producer_mem = Arc::clone(&mem);
        let producer = thread::spawn(move || {
            let mut p = Producer::new(producer_mem.ring());
            for i in 0..3 {
                loop {
                    let reserved = p.reserve(24).expect("no violation");
                    let Some(mut res) = reserved else {
                        p.publish();
                        thread::yield_now();
                        continue;
                    };
                    if i == 1 {
                        res.body().fill(0xEE); // then abandoned: must not be seen
                        let mut res = p
                            .reserve(8)
                            .expect("no violation")
                            .expect("space was there");
                        res.body().copy_from_slice(&body(i, 8));
                        res.commit(DATA, flags_of(i));
                    } else {
                        res.body()[..12].copy_from_slice(&body(i, 12));
                        res.commit_len(DATA, flags_of(i), 12);
                    }
                    break;
                }
                p.publish();
            }
        });
        consume(mem.ring(), &[12, 8, 12]);
        producer.join().expect("producer thread");
    });
}
