//! Unit tests of the ring endpoints on private memory (no concurrency; see `tests/loom_ring.rs`
//! and `tests/ring_model.rs` for the model checks).

use core::ptr::NonNull;
use std::vec;
use std::vec::Vec;

use super::*;

/// A ring control block and data area in private, 8-aligned memory.
struct TestRing {
    ctrl: NonNull<u8>,
    data: NonNull<u8>,
    cap: usize,
    _words: (Vec<u64>, Vec<u64>),
}

impl TestRing {
    fn new(cap: usize) -> Self {
        let mut ctrl = vec![0u64; RING_CTRL_LEN / 8];
        let mut data = vec![0u64; cap.div_ceil(8).max(1)];
        let ctrl_ptr = NonNull::new(ctrl.as_mut_ptr().cast::<u8>()).expect("vec pointer");
        let data_ptr = NonNull::new(data.as_mut_ptr().cast::<u8>()).expect("vec pointer");
        TestRing {
            ctrl: ctrl_ptr,
            data: data_ptr,
            cap,
            _words: (ctrl, data),
        }
    }

    fn ring(&self) -> RingRef<'_> {
        // SAFETY: both buffers are owned by `self`, 8-aligned (u64 vectors), at least as long
        // as given, live as long as the returned view, and are only accessed through views.
        unsafe {
            RingRef {
                ctrl: SharedMem::new(self.ctrl, RING_CTRL_LEN),
                data: SharedMem::new(self.data, self.cap),
            }
        }
    }

    fn header_at(&self, offset: usize) -> RecordHeader {
        let mut b = [0u8; 8];
        self.ring().data.read(offset, &mut b).expect("in bounds");
        RecordHeader::from_bytes(b)
    }
}

fn body_of(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[test]
fn header_round_trips_little_endian() {
    let h = RecordHeader {
        len: 0x0403_0201,
        rtype: 0x0605,
        flags: 0x0807,
    };
    assert_eq!(h.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(RecordHeader::from_bytes(h.to_bytes()), h);
}

#[test]
fn record_size_is_header_plus_aligned_body() {
    let size = |len| {
        RecordHeader {
            len,
            rtype: 2,
            flags: 0,
        }
        .size()
    };
    assert_eq!(size(0), 8);
    assert_eq!(size(1), 16);
    assert_eq!(size(8), 16);
    assert_eq!(size(9), 24);
    assert_eq!(size(u32::MAX), 8 + (1 << 32));
}

#[test]
fn geometry_is_checked() {
    let r = TestRing::new(24);
    assert_eq!(
        r.ring().validate().map_err(|e| e.code),
        Err(ErrorCode::BadLayout)
    );
    let mut p = Producer::new(r.ring());
    assert_eq!(
        p.try_write(2, 0, &[]).map_err(|e| e.code),
        Err(ErrorCode::BadLayout)
    );
    let mut c = Consumer::new(r.ring());
    assert_eq!(
        c.peek().map(|r| r.is_some()).map_err(|e| e.code),
        Err(ErrorCode::BadLayout)
    );
    let r = TestRing::new(8);
    assert_eq!(
        r.ring().validate().map_err(|e| e.code),
        Err(ErrorCode::BadLayout)
    );
    let r = TestRing::new(16);
    assert_eq!(r.ring().validate(), Ok(()));
    assert_eq!(r.ring().max_body_len(), 0);
    assert_eq!(TestRing::new(4096).ring().max_body_len(), 2040);
}

#[test]
fn one_record_round_trip_in_place() {
    let r = TestRing::new(4096);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    let body = body_of(13, 1);
    assert_eq!(
        p.try_write(0x10, flags::FIRST | flags::LAST, &body),
        Ok(true)
    );
    assert!(
        c.peek().expect("valid").is_none(),
        "RING-3: invisible before publish"
    );
    assert!(p.publish());
    assert!(!p.publish(), "nothing new to publish");
    assert_eq!(r.ring().load_tail(), 24);
    let rec = c.peek().expect("valid").expect("one record");
    assert_eq!(
        rec.header(),
        RecordHeader {
            len: 13,
            rtype: 0x10,
            flags: flags::FIRST | flags::LAST
        }
    );
    assert_eq!(rec.body(), &body[..]);
    rec.consume();
    assert_eq!(c.head(), 24);
    assert!(c.peek().expect("valid").is_none());
    assert_eq!(
        r.ring().load_head(),
        0,
        "RING-6: not released before publish_head"
    );
    assert!(c.publish_head());
    assert!(!c.publish_head());
    assert_eq!(r.ring().load_head(), 24);
}

#[test]
fn body_padding_is_zeroed() {
    let r = TestRing::new(4096);
    r.ring().data.write(0, &[0xAA; 64]).expect("in bounds");
    let mut p = Producer::new(r.ring());
    let mut res = p.reserve(20).expect("valid").expect("space");
    res.body().fill(0x11);
    res.commit_len(0x30, 0, 5);
    assert_eq!(p.tail(), 16, "the unused reserved bytes are returned");
    let mut bytes = [0u8; 16];
    r.ring().data.read(0, &mut bytes).expect("in bounds");
    assert_eq!(
        bytes,
        [5, 0, 0, 0, 0x30, 0, 0, 0, 0x11, 0x11, 0x11, 0x11, 0x11, 0, 0, 0]
    );
    let mut rest = [0u8; 8];
    r.ring().data.read(24, &mut rest).expect("in bounds");
    assert_eq!(
        rest,
        [0x11, 0x11, 0x11, 0x11, 0xAA, 0xAA, 0xAA, 0xAA],
        "nothing written past the loan"
    );
}

#[test]
fn batching_publishes_several_records_with_one_store() {
    let r = TestRing::new(4096);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    for i in 0..3u8 {
        assert_eq!(
            p.try_write(0x30, 0, &body_of(usize::from(i) * 3, i)),
            Ok(true)
        );
    }
    assert!(p.publish());
    for i in 0..3u8 {
        let rec = c.peek().expect("valid").expect("record");
        assert_eq!(rec.body(), &body_of(usize::from(i) * 3, i)[..]);
        rec.consume();
    }
    assert!(c.peek().expect("valid").is_none());
    assert!(c.publish_head());
    assert_eq!(r.ring().load_head(), p.tail());
}

#[test]
fn abandoned_reservation_leaves_no_trace() {
    let r = TestRing::new(4096);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    {
        let mut res = p.reserve(100).expect("valid").expect("space");
        res.body().fill(0xEE);
    }
    assert_eq!(p.tail(), 0);
    assert!(!p.publish());
    assert_eq!(p.try_write(0x31, 0, b"x"), Ok(true));
    assert!(p.publish());
    let rec = c.peek().expect("valid").expect("record");
    assert_eq!((rec.header().rtype, rec.body()), (0x31, &b"x"[..]));
}

#[test]
fn wrap_writes_pad_that_consumer_skips() {
    let r = TestRing::new(64);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    // 24 + 24 bytes, then a 24-byte record does not fit in the last 16: PAD, then offset 0.
    for seed in 0..2 {
        assert_eq!(p.try_write(0x30, 0, &body_of(16, seed)), Ok(true));
    }
    p.publish();
    for _ in 0..2 {
        c.peek().expect("valid").expect("record").consume();
    }
    c.publish_head();
    assert_eq!(p.try_write(0x30, 0, &body_of(16, 9)), Ok(true));
    assert_eq!(p.tail(), 64 + 24);
    assert_eq!(
        r.header_at(48),
        RecordHeader {
            len: 8,
            rtype: TYPE_PAD,
            flags: 0
        },
        "RING-2"
    );
    p.publish();
    let rec = c.peek().expect("valid").expect("record after PAD");
    assert_eq!(rec.body(), &body_of(16, 9)[..]);
    rec.consume();
    assert_eq!(c.head(), 88);
}

#[test]
fn exact_fit_at_the_end_writes_no_pad() {
    let r = TestRing::new(64);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    assert_eq!(p.try_write(0x30, 0, &body_of(24, 0)), Ok(true)); // 32 bytes
    assert_eq!(p.try_write(0x30, 0, &body_of(17, 1)), Ok(true)); // 32 bytes, ends at 64
    assert_eq!(p.tail(), 64);
    p.publish();
    c.peek().expect("valid").expect("first").consume();
    let rec = c.peek().expect("valid").expect("second");
    assert_eq!(rec.header().len, 17);
    rec.consume();
    assert_eq!(c.head(), 64);
}

#[test]
fn full_ring_reports_no_space_until_head_moves() {
    let r = TestRing::new(64);
    let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
    assert_eq!(p.try_write(0x30, 0, &body_of(24, 0)), Ok(true));
    assert_eq!(p.try_write(0x30, 0, &body_of(24, 1)), Ok(true));
    assert_eq!(
        p.try_write(0x30, 0, &[]),
        Ok(false),
        "RING-4: 64 bytes in flight"
    );
    assert_eq!(p.free_space(), Ok(0));
    p.publish();
    c.peek().expect("valid").expect("record").consume();
    assert_eq!(
        p.try_write(0x30, 0, &[]),
        Ok(false),
        "consumed but not released"
    );
    c.publish_head();
    assert_eq!(p.free_space(), Ok(32));
    assert_eq!(p.try_write(0x30, 0, &body_of(24, 2)), Ok(true));
}

#[test]
fn largest_record_fits_whatever_the_offset() {
    for start in [0usize, 8, 24, 56] {
        let r = TestRing::new(64);
        let (mut p, mut c) = (Producer::new(r.ring()), Consumer::new(r.ring()));
        for _ in 0..start / 8 {
            assert_eq!(p.try_write(0x30, 0, &[]), Ok(true));
            p.publish();
            c.peek().expect("valid").expect("filler").consume();
            c.publish_head();
        }
        let max = r.ring().max_body_len();
        assert_eq!(
            p.try_write(0x30, 0, &body_of(max, 3)),
            Ok(true),
            "RING-1 at offset {start}"
        );
        p.publish();
        let rec = c.peek().expect("valid").expect("max record");
        assert_eq!(rec.body(), &body_of(max, 3)[..]);
    }
}

#[test]
fn oversized_body_fails_the_producer_for_good() {
    let r = TestRing::new(4096);
    let mut p = Producer::new(r.ring());
    let max = r.ring().max_body_len();
    let err = p
        .reserve(max + 1)
        .map(|o| o.is_some())
        .expect_err("too large");
    assert_eq!(
        (err.code, err.found, err.expected),
        (ErrorCode::InvalidArgument, max as u64 + 1, max as u64)
    );
    assert_eq!(p.try_write(0x30, 0, &[]), Err(err), "sticky");
    assert_eq!(p.failure(), Some(err));
    assert!(!p.publish());
}

#[test]
fn producer_refuses_type_zero_pad_and_reserved_flags() {
    for (rtype, fl) in [(0u16, 0u16), (TYPE_PAD, 0), (0x30, 0x0100)] {
        let r = TestRing::new(4096);
        let mut p = Producer::new(r.ring());
        assert_eq!(p.try_write(0x30, 0, b"ok"), Ok(true));
        let err = p.try_write(rtype, fl, b"bad").expect_err("refused");
        assert_eq!(err.code, ErrorCode::InvalidArgument);
        assert!(!p.publish(), "a failed producer stores nothing (RING-13)");
        assert_eq!(r.ring().load_tail(), 0);
    }
}

#[test]
fn commit_with_bad_arguments_fails_the_producer() {
    let r = TestRing::new(4096);
    let mut p = Producer::new(r.ring());
    p.reserve(8)
        .expect("valid")
        .expect("space")
        .commit_len(0x30, 0, 9);
    assert_eq!(
        p.failure().map(|e| e.code),
        Some(ErrorCode::InvalidArgument)
    );
    let r = TestRing::new(4096);
    let mut p = Producer::new(r.ring());
    p.reserve(8).expect("valid").expect("space").commit(0, 0);
    assert_eq!(
        p.reserve(0).map(|o| o.is_some()).map_err(|e| e.code),
        Err(ErrorCode::InvalidArgument)
    );
    assert_eq!(p.tail(), 0);
}

#[test]
fn reserved_flags_are_ignored_by_the_consumer() {
    let r = TestRing::new(4096);
    r.ring()
        .data
        .write(
            0,
            &RecordHeader {
                len: 0,
                rtype: 0x30,
                flags: 0x7F00,
            }
            .to_bytes(),
        )
        .expect("in bounds");
    r.ring()
        .ctrl
        .atomic_u64(TAIL_OFFSET)
        .expect("aligned")
        .store(8, core::sync::atomic::Ordering::Release);
    let mut c = Consumer::new(r.ring());
    assert_eq!(
        c.peek().expect("CONV-4").expect("record").header().flags,
        0x7F00
    );
}

#[test]
fn reset_zeroes_both_positions() {
    let r = TestRing::new(4096);
    let mut p = Producer::new(r.ring());
    assert_eq!(p.try_write(0x30, 0, b"x"), Ok(true));
    p.publish();
    r.ring()
        .ctrl
        .atomic_u64(HEAD_OFFSET)
        .expect("aligned")
        .store(16, core::sync::atomic::Ordering::Release);
    r.ring().reset();
    assert_eq!((r.ring().load_tail(), r.ring().load_head()), (0, 0));
}

/// Counts wakes; never sleeps.
#[derive(Default)]
struct CountingParker {
    wakes: core::cell::Cell<u32>,
}

impl crate::wait::Parker for CountingParker {
    fn wait(&self, _word: &crate::sync::AtomicU32, _expected: u32, _timeout_ns: u64) {}
    fn wake_all(&self, _word: &crate::sync::AtomicU32) {
        self.wakes.set(self.wakes.get() + 1);
    }
}

/// Writes and publishes one record with a body of `len` bytes.
fn put(p: &mut Producer<'_>, len: usize) {
    assert!(p.try_write(0x30, 0, &vec![7; len]).expect("valid"));
    p.publish();
}

/// Consumes and releases the next record.
fn take(c: &mut Consumer<'_>) {
    c.peek().expect("valid").expect("a record").consume();
    assert!(c.publish_head());
}

/// WAIT-8: with the producer announced asleep, a release that leaves room for the largest
/// record counted from the previous decision's head skips the wake; one that may have been
/// waited for rings.
#[test]
fn wake_producer_skips_only_when_no_producer_can_wait_for_room() {
    let mem = TestRing::new(64);
    let (seq, sleepers) = (
        crate::sync::AtomicU32::new(0),
        crate::sync::AtomicU32::new(1),
    );
    let bell = crate::wait::Doorbell::new(&seq, &sleepers);
    let parker = CountingParker::default();
    let (mut p, mut c) = (Producer::new(mem.ring()), Consumer::new(mem.ring()));
    put(&mut p, 0);
    take(&mut c);
    assert!(
        !c.wake_producer(&bell, &parker),
        "head 0 -> 8, tail 8: 64 free"
    );
    assert_eq!(parker.wakes.get(), 0);
    put(&mut p, 24);
    take(&mut c);
    // Old head 8, tail 40: 32 free, but a 32-byte record at offset 40 needs 24 + 32.
    assert!(c.wake_producer(&bell, &parker));
    assert_eq!(parker.wakes.get(), 1);
    // A release with no decision between counts from the older head: rings.
    put(&mut p, 24);
    take(&mut c);
    put(&mut p, 0);
    take(&mut c);
    assert!(
        c.wake_producer(&bell, &parker),
        "old head 40, tail 104: 0 free"
    );
    assert_eq!(parker.wakes.get(), 2);
    // Nothing released since: the previous decision's head is the current one.
    assert!(!c.wake_producer(&bell, &parker), "old head 104, tail 104");
    // Nobody asleep: no wake, whatever the ring holds.
    sleepers.store(0, crate::sync::Ordering::Relaxed);
    put(&mut p, 24);
    take(&mut c);
    assert!(!c.wake_producer(&bell, &parker));
    assert_eq!(parker.wakes.get(), 2);
}

/// WAIT-8 reads `tail` only as a hint: an impossible value rings and does not fail the
/// consumer (the next poll judges it, RING-8).
#[test]
fn wake_producer_rings_on_an_impossible_tail() {
    let mem = TestRing::new(64);
    let (seq, sleepers) = (
        crate::sync::AtomicU32::new(0),
        crate::sync::AtomicU32::new(1),
    );
    let bell = crate::wait::Doorbell::new(&seq, &sleepers);
    let parker = CountingParker::default();
    let mut c = Consumer::new(mem.ring());
    mem.ring()
        .control()
        .expect("valid")
        .tail
        .store(12, crate::sync::Ordering::Relaxed);
    assert!(c.wake_producer(&bell, &parker));
    assert_eq!(c.failure(), None);
}
