//! Loom model of a channel's life (spec/06-channels.md CHAN-4, CHAN-5, CHAN-9): the real
//! [`ChannelWriter`] and [`ChannelReader`] of `knit_core::channel` on two threads, over one
//! slot of a formatted region.
//!
//! Run with:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p knit-core --release --test channel_loom
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` defaults to 3 here when unset.
//!
//! Each execution starts from the same formatted bytes, copied in raw (outside loom's view)
//! before any loom object exists, so that the region is attached, not formatted, in the model
//! and only the words the channel touches become loom objects.
//!
//! What the models check, in every interleaving: the two releases (CHAN-9) always leave the
//! slot FREE with both bits set, whichever end releases last and whether the stream ended with
//! END or ABORTED; data published before END is received before END (CHAN-4); two ends that
//! abort at once report one and the same code (CHAN-5).
//!
//! The model catches real bugs. Checked by hand when this file was written (and reverted):
//! - the releasing end deciding from a load of `released` made before its `fetch_or` instead
//!   of the `fetch_or` result (CHAN-9): every test fails, the slot is left OPEN or ABORTED
//!   when both ends load before either sets its bit;
//! - `abort_code` stored by a plain store instead of the compare-and-swap from 0 (CHAN-5):
//!   `concurrent_aborts_report_one_code` fails, the two ends report different codes;
//! - the reader loading `released` after finding its ring empty instead of before (CHAN-13):
//!   `message_then_end_then_both_releases` fails, the reader reports `PEER_DIED` although the
//!   writer published END before it released.
#![cfg(loom)]

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use knit_core::channel::{
    attach, open, ChannelEnd, ChannelEvent, ChannelReader, ChannelState, ChannelWriter, EndRole,
    READER_RELEASED, WRITER_RELEASED,
};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::{CH_RELEASED, CH_STATE, INIT_STATE_OFFSET};
use knit_core::region::Region;
use knit_core::{ErrorCode, SharedMem};
use loom::thread;
use zerocopy::IntoBytes;

fn params() -> Params {
    Params {
        worker_slots: 1,
        channel_slots: 1,
        inflight_max: 1,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 4096,
        max_message_len: 1 << 12,
    }
}

/// A formatted region image in one 64-aligned private allocation.
struct RegionMem {
    ptr: NonNull<u8>,
    len: usize,
    pristine: Vec<u8>,
}

// SAFETY: the allocation is only accessed through `SharedMem` views (copies and atomics), made
// for concurrent use, and by `reset` before any thread of an execution exists.
unsafe impl Send for RegionMem {}
// SAFETY: as for `Send`.
unsafe impl Sync for RegionMem {}

impl RegionMem {
    fn layout(len: usize) -> Layout {
        Layout::from_size_align(len, 64).expect("small layout")
    }

    /// The bytes `Region::format` would leave, built without touching loom: the header, READY,
    /// and zero everywhere else (the host's participant entry is not needed by the model).
    fn new() -> Self {
        let geometry = Geometry::compute(&params()).expect("geometry");
        let len = geometry.region_len();
        let mut pristine = vec![0u8; len];
        let header = geometry.to_header([1; 16], 0);
        pristine[..header.as_bytes().len()].copy_from_slice(header.as_bytes());
        pristine[INIT_STATE_OFFSET..INIT_STATE_OFFSET + 4].copy_from_slice(&2u32.to_le_bytes());
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(Self::layout(len)) };
        RegionMem {
            ptr: NonNull::new(raw).expect("allocation"),
            len,
            pristine,
        }
    }

    /// Restores the pristine bytes; called at the start of an execution, before any loom
    /// object for this memory exists (plain writes are outside loom's view by design).
    fn reset(&self) {
        // SAFETY: `pristine` has exactly `len` bytes; the allocation is `len` bytes and no
        // other thread of the model runs yet.
        unsafe {
            std::ptr::copy_nonoverlapping(self.pristine.as_ptr(), self.ptr.as_ptr(), self.len);
        }
    }

    fn region(&self) -> Region<'_> {
        // SAFETY: the allocation is `len` bytes, 64-aligned, lives as long as `self`, and is
        // only accessed through this view (and `reset`, between executions).
        let mem = unsafe { SharedMem::new(self.ptr, self.len) };
        Region::attach(mem).expect("the pristine image attaches")
    }
}

impl Drop for RegionMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.len)) };
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// Opens host (writer) → worker 1 (reader) and attaches both ends, from the main thread.
/// The start of the ring's data is zeroed first, so that its shadow cells are created by the
/// main thread before any spawn (see `knit_core::sync::shadow`).
fn ends(region: &Region<'static>) -> (ChannelWriter<'static>, ChannelReader<'static>) {
    region
        .channel_slot(0)
        .expect("slot")
        .ring
        .data
        .zero(0, 128)
        .expect("in bounds");
    let opened = open(region, 0, 1, EndRole::Writer, 9)
        .expect("open")
        .expect("free slot");
    let ChannelEnd::Writer(w) = attach(region, opened.announcement(), 0, 1).expect("writer") else {
        unreachable!("the host is named writer")
    };
    let ChannelEnd::Reader(r) = attach(region, opened.announcement(), 1, 0).expect("reader") else {
        unreachable!("worker 1 is named reader")
    };
    (w, r)
}

fn slot_word(region: &Region<'_>, off: usize) -> u32 {
    let ctrl = region.channel_slot(0).expect("slot").ctrl;
    ctrl.atomic_u32(off)
        .expect("word")
        .load(loom::sync::atomic::Ordering::Acquire)
}

fn assert_freed(region: &Region<'_>) {
    assert_eq!(slot_word(region, CH_STATE), ChannelState::Free as u32);
    assert_eq!(
        slot_word(region, CH_RELEASED),
        WRITER_RELEASED | READER_RELEASED
    );
}

/// Leaks the image for the model's `'static` closure; one per test.
fn image() -> &'static RegionMem {
    Box::leak(Box::new(RegionMem::new()))
}

#[test]
fn message_then_end_then_both_releases() {
    let mem = image();
    model(move || {
        mem.reset();
        let region = mem.region();
        let (mut w, mut r) = ends(&region);
        let writer = thread::spawn(move || {
            let mut out = w.start(7, b"payload").expect("start");
            assert!(w.write(&mut out).expect("write").done);
            assert!(w.close().expect("close").done);
        });
        let mut got = Vec::new();
        loop {
            let ended = match r.recv().expect("recv").event {
                Some(ChannelEvent::Message(m)) => {
                    got.push((m.content_type(), m.bytes().to_vec()));
                    false
                }
                Some(ChannelEvent::End) => true,
                None => false,
            };
            if ended {
                break;
            }
            thread::yield_now();
        }
        writer.join().expect("writer thread");
        assert_eq!(got, vec![(7, b"payload".to_vec())]);
        assert_freed(&region);
    });
}

#[test]
fn close_races_with_abort() {
    let mem = image();
    model(move || {
        mem.reset();
        let region = mem.region();
        let (mut w, mut r) = ends(&region);
        let writer = thread::spawn(move || match w.close() {
            Ok(sent) => {
                assert!(sent.done);
                None
            }
            Err(e) => Some((e.code, e.found)),
        });
        let changed = r.abort(7).expect("abort");
        let writer_saw = writer.join().expect("writer thread");
        // The writer either closed first (its END is discarded by the abort) or saw the abort.
        if let Some(seen) = writer_saw {
            assert_eq!(seen, (ErrorCode::ChannelAborted, 7));
            assert!(changed);
        }
        assert_freed(&region);
    });
}

#[test]
fn concurrent_aborts_report_one_code() {
    let mem = image();
    model(move || {
        mem.reset();
        let region = mem.region();
        let (mut w, mut r) = ends(&region);
        let writer = thread::spawn(move || {
            let changed = w.abort(5).expect("abort");
            let e = w.start(0, b"").expect_err("aborted");
            (changed, e.code, e.found)
        });
        let r_changed = r.abort(6).expect("abort");
        let e = r.recv().expect_err("aborted");
        let (w_changed, w_code, w_found) = writer.join().expect("writer thread");
        assert!(w_changed ^ r_changed, "exactly one end stored ABORTED");
        assert_eq!(
            (w_code, e.code),
            (ErrorCode::ChannelAborted, ErrorCode::ChannelAborted)
        );
        assert_eq!(
            w_found, e.found,
            "both ends report the code that was stored first"
        );
        assert!(w_found == 5 || w_found == 6);
        assert_freed(&region);
    });
}
