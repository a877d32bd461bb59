//! Property tests of the ring (spec/03-ring.md) against a `VecDeque` model, and the rejection of
//! every corrupt value of RING-8, RING-9, RING-10 and RING-17 written by a hostile peer.
//!
//! - `ring_matches_model`: random capacities, record sizes (0 to `max_body_len`) and
//!   interleavings of reserve / commit / short commit / abandon / publish / peek / consume /
//!   `publish_head`: the consumer sees the same records, in the same order, with the same bytes,
//!   exactly when they are published, and the producer finds space exactly when RING-4 allows.
//! - `long_run_wraps_many_times`: the same checker over a long seeded run, asserting that the
//!   ring wrapped and padded many times.
//! - `corrupt_*`: raw bytes written into the ring as a hostile peer would; each yields its
//!   error code, the endpoint stays failed, and it stores nothing more (RING-13).
//! - `hostile_*`: arbitrary bytes and positions never panic and only ever yield violations.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::ptr::NonNull;

use knit_core::ring::{
    flags, Consumer, Producer, RecordHeader, RingRef, HEAD_OFFSET, RECORD_HEADER_LEN,
    RING_CTRL_LEN, TAIL_OFFSET, TYPE_PAD,
};
use knit_core::{ErrorCode, SharedMem};
use proptest::prelude::*;

/// A ring's control block and data area in private, 8-aligned memory.
struct TestRing {
    ctrl: NonNull<u8>,
    data: NonNull<u8>,
    cap: usize,
    _words: (Vec<u64>, Vec<u64>),
}

impl TestRing {
    fn new(cap: usize) -> Self {
        let mut ctrl = vec![0u64; RING_CTRL_LEN / 8];
        let mut data = vec![0u64; cap / 8];
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
        // SAFETY: both buffers are owned by `self`, 8-aligned (u64 vectors), exactly as long as
        // given, live as long as the returned view, and are only accessed through views.
        unsafe {
            RingRef {
                ctrl: SharedMem::new(self.ctrl, RING_CTRL_LEN),
                data: SharedMem::new(self.data, self.cap),
            }
        }
    }

    /// A hostile store of raw bytes into the `tail` word.
    fn set_tail(&self, v: u64) {
        self.ring()
            .ctrl
            .write_u64(TAIL_OFFSET, v)
            .expect("in bounds");
    }

    /// A hostile store of raw bytes into the `head` word.
    fn set_head(&self, v: u64) {
        self.ring()
            .ctrl
            .write_u64(HEAD_OFFSET, v)
            .expect("in bounds");
    }

    fn raw_tail(&self) -> u64 {
        self.ring().ctrl.read_u64(TAIL_OFFSET).expect("in bounds")
    }

    fn raw_head(&self) -> u64 {
        self.ring().ctrl.read_u64(HEAD_OFFSET).expect("in bounds")
    }

    /// A hostile record header at data offset `off`.
    fn put_header(&self, off: usize, len: u32, rtype: u16, fl: u16) {
        self.ring()
            .data
            .write(
                off,
                &RecordHeader {
                    len,
                    rtype,
                    flags: fl,
                }
                .to_bytes(),
            )
            .expect("in bounds");
    }
}

/// The bytes of the `seq`-th record: different for every record and every offset.
fn body_bytes(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (seq.wrapping_mul(131).wrapping_add(k as u64 * 7)) as u8)
        .collect()
}

fn record_size(len: usize) -> u64 {
    RECORD_HEADER_LEN as u64 + (len as u64).next_multiple_of(8)
}

/// How long a body is, relative to the ring's `max_body_len` (which depends on the capacity).
#[derive(Clone, Copy, Debug)]
enum Len {
    Small(u8),
    Fraction(u16),
    Max,
}

impl Len {
    fn resolve(self, max: usize) -> usize {
        match self {
            Len::Small(n) => usize::from(n).min(max),
            Len::Fraction(f) => max * usize::from(f) / usize::from(u16::MAX),
            Len::Max => max,
        }
    }
}

/// One step of a test run.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Reserve `len`, then commit all of it, commit `short` of it, or abandon it.
    Write {
        len: Len,
        commit: Commit,
    },
    Publish,
    /// Peek and consume up to `n` records.
    Read {
        n: u8,
    },
    PublishHead,
}

#[derive(Clone, Copy, Debug)]
enum Commit {
    Whole,
    Short(u16),
    Abandon,
}

fn len_strategy() -> impl Strategy<Value = Len> {
    prop_oneof![4 => any::<u8>().prop_map(Len::Small), 4 => any::<u16>().prop_map(Len::Fraction), 1 => Just(Len::Max)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let commit = prop_oneof![6 => Just(Commit::Whole), 2 => any::<u16>().prop_map(Commit::Short), 1 => Just(Commit::Abandon)];
    prop_oneof![
        6 => (len_strategy(), commit).prop_map(|(len, commit)| Op::Write { len, commit }),
        2 => Just(Op::Publish),
        4 => (1u8..6).prop_map(|n| Op::Read { n }),
        2 => Just(Op::PublishHead),
    ]
}

fn cap_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![3 => (4u32..=8).prop_map(|s| 1usize << s), 2 => (12u32..=16).prop_map(|s| 1usize << s)]
}

/// A committed record as the model knows it.
#[derive(Clone, Debug)]
struct ModelRecord {
    header: RecordHeader,
    body: Vec<u8>,
    /// Position one past the record (so past the PAD before it too).
    end: u64,
}

/// The reference model: positions as the spec defines them and the records in flight.
struct Model {
    cap: u64,
    tail: u64,
    published_tail: u64,
    head: u64,
    published_head: u64,
    records: VecDeque<ModelRecord>,
    next_seq: u64,
    wraps: u64,
    pads: u64,
}

impl Model {
    fn new(cap: usize) -> Self {
        Model {
            cap: cap as u64,
            tail: 0,
            published_tail: 0,
            head: 0,
            published_head: 0,
            records: VecDeque::new(),
            next_seq: 0,
            wraps: 0,
            pads: 0,
        }
    }

    /// RING-2: the PAD needed before a record of `size` at the current tail.
    fn pad_for(&self, size: u64) -> u64 {
        let to_end = self.cap - self.tail % self.cap;
        if size > to_end {
            to_end
        } else {
            0
        }
    }

    /// RING-4: whether `needed` more bytes fit, given what the consumer released.
    fn fits(&self, needed: u64) -> bool {
        self.tail - self.published_head + needed <= self.cap
    }
}

/// The `Write` step: reserve, then commit, commit short, or abandon; the model follows.
fn write(
    len: Len,
    commit: Commit,
    p: &mut Producer<'_>,
    m: &mut Model,
) -> Result<(), TestCaseError> {
    let reserved = len.resolve(p.ring().max_body_len());
    let pad = m.pad_for(record_size(reserved));
    let expect_space = m.fits(pad + record_size(reserved));
    let seq = m.next_seq;
    let res = p
        .reserve(reserved)
        .map_err(|e| TestCaseError::fail(format!("reserve: {e}")))?;
    prop_assert_eq!(
        res.is_some(),
        expect_space,
        "space for {} bytes (RING-4)",
        reserved
    );
    let Some(mut res) = res else { return Ok(()) };
    prop_assert_eq!(res.body_len(), reserved);
    let committed = match commit {
        Commit::Whole => reserved,
        Commit::Short(s) => usize::from(s) % (reserved + 1),
        Commit::Abandon => {
            // The reservation is never committed: its borrow ends here, unused.
            res.body().fill(0xEE);
            prop_assert_eq!(p.tail(), m.tail, "abandoned reservations leave the tail");
            return Ok(());
        }
    };
    let body = body_bytes(seq, committed);
    res.body()[..committed].copy_from_slice(&body);
    let rflags = [0, flags::FIRST, flags::LAST, flags::FIRST | flags::LAST][(seq % 4) as usize];
    let rtype = 2 + (seq % 0x40) as u16;
    if committed == reserved {
        res.commit(rtype, rflags);
    } else {
        res.commit_len(rtype, rflags, committed);
    }
    let record_pos = m.tail + pad;
    if pad > 0 {
        m.pads += 1;
    }
    if (record_pos + record_size(committed)) / m.cap > m.tail / m.cap || pad > 0 {
        m.wraps += 1;
    }
    m.tail = record_pos + record_size(committed);
    m.next_seq += 1;
    let header = RecordHeader {
        len: committed as u32,
        rtype,
        flags: rflags,
    };
    m.records.push_back(ModelRecord {
        header,
        body,
        end: m.tail,
    });
    prop_assert_eq!(p.tail(), m.tail);
    prop_assert!(p.failure().is_none());
    Ok(())
}

/// Applies `op` to the real ring and to the model and checks that they agree.
fn step(
    op: Op,
    p: &mut Producer<'_>,
    c: &mut Consumer<'_>,
    m: &mut Model,
) -> Result<(), TestCaseError> {
    match op {
        Op::Write { len, commit } => write(len, commit, p, m)?,
        Op::Publish => {
            let stored = p.publish();
            prop_assert_eq!(
                stored,
                m.published_tail != m.tail,
                "publish stores only when needed"
            );
            m.published_tail = m.tail;
            prop_assert_eq!(p.ring().load_tail(), m.published_tail);
        }
        Op::Read { n } => {
            for _ in 0..n {
                let expected = m
                    .records
                    .front()
                    .filter(|r| r.end <= m.published_tail)
                    .cloned();
                let got = c
                    .peek()
                    .map_err(|e| TestCaseError::fail(format!("peek: {e}")))?;
                match (got, expected) {
                    (None, None) => break,
                    (Some(rec), Some(want)) => {
                        prop_assert_eq!(rec.header(), want.header);
                        prop_assert_eq!(rec.body(), &want.body[..]);
                        rec.consume();
                        m.records.pop_front();
                        m.head = want.end;
                    }
                    (got, want) => {
                        return Err(TestCaseError::fail(format!(
                            "peek gave {:?}, model expected {:?}",
                            got.map(|r| r.header()),
                            want.map(|r| r.header)
                        )));
                    }
                }
                prop_assert_eq!(c.head(), m.head);
            }
        }
        Op::PublishHead => {
            let stored = c.publish_head();
            prop_assert_eq!(stored, m.published_head != m.head);
            m.published_head = m.head;
            prop_assert_eq!(c.ring().load_head(), m.published_head);
        }
    }
    Ok(())
}

fn run_ops(cap: usize, ops: &[Op]) -> Result<Model, TestCaseError> {
    let ring = TestRing::new(cap);
    let (mut p, mut c) = (Producer::new(ring.ring()), Consumer::new(ring.ring()));
    let mut m = Model::new(cap);
    for &op in ops {
        step(op, &mut p, &mut c, &mut m)?;
    }
    // Drain: everything committed arrives, in order.
    step(Op::Publish, &mut p, &mut c, &mut m)?;
    step(Op::Read { n: u8::MAX }, &mut p, &mut c, &mut m)?;
    step(Op::Read { n: u8::MAX }, &mut p, &mut c, &mut m)?;
    prop_assert!(m.records.is_empty(), "all records delivered");
    prop_assert!(c
        .peek()
        .map_err(|e| TestCaseError::fail(e.to_string()))?
        .is_none());
    Ok(m)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn ring_matches_model(cap in cap_strategy(), ops in prop::collection::vec(op_strategy(), 1..300)) {
        run_ops(cap, &ops)?;
    }

    /// Arbitrary data bytes and `tail`: the consumer never panics, reads nothing outside the
    /// data area, reports only violations, and stays failed after the first.
    #[test]
    fn hostile_consumer_input_never_panics(
        cap in cap_strategy(),
        seed in prop::collection::vec(any::<u8>(), 8..512),
        tails in prop::collection::vec(any::<u64>(), 1..8),
    ) {
        let ring = TestRing::new(cap);
        for (i, chunk) in seed.chunks(8).enumerate() {
            let off = (i * 8) % cap;
            ring.ring().data.write(off, &chunk[..chunk.len().min(cap - off)]).expect("in bounds");
        }
        let mut c = Consumer::new(ring.ring());
        let mut failed = None;
        for (i, &t) in tails.iter().enumerate() {
            // Half the time a plausible tail, to get past RING-8 into the record checks.
            let tail = if i % 2 == 0 { c.head() + (t % (cap as u64 + 1)) / 8 * 8 } else { t };
            ring.set_tail(tail);
            for _ in 0..4 {
                match c.peek() {
                    Ok(Some(rec)) => {
                        prop_assert!(failed.is_none());
                        prop_assert!(rec.header().size() <= cap / 2, "RING-9");
                        prop_assert!(rec.header().rtype != 0 && rec.header().rtype != TYPE_PAD);
                        rec.consume();
                    }
                    Ok(None) => prop_assert!(failed.is_none()),
                    Err(e) => {
                        prop_assert!(e.code.is_violation(), "{e}");
                        if let Some(first) = failed {
                            prop_assert_eq!(e, first, "sticky");
                        }
                        failed = Some(e);
                    }
                }
            }
            let before = ring.raw_head();
            let stored = c.publish_head();
            prop_assert!(!(stored && failed.is_some()), "a failed consumer stores nothing");
            if failed.is_some() {
                prop_assert_eq!(ring.raw_head(), before);
            }
        }
    }

    /// Arbitrary `head` values: the producer never panics and accepts exactly the heads that
    /// RING-8 allows (a multiple of 8, not behind the last one, not past the published tail).
    #[test]
    fn hostile_producer_input_never_panics(
        cap in cap_strategy(),
        heads in prop::collection::vec(any::<u64>(), 1..16),
    ) {
        let ring = TestRing::new(cap);
        let mut p = Producer::new(ring.ring());
        let (mut last, mut failed) = (0u64, None);
        for (i, &h) in heads.iter().enumerate() {
            while p.try_write(0x30, 0, &[]).unwrap_or(false) {}
            p.publish();
            let published = ring.raw_tail();
            let head = if i % 2 == 0 { h % (published + 9) } else { h };
            ring.set_head(head);
            let valid = head % 8 == 0 && head >= last && head <= published;
            match p.free_space() {
                Ok(free) => {
                    prop_assert!(failed.is_none() && valid, "accepted head {head} (last {last}, tail {published})");
                    prop_assert_eq!(free as u64, cap as u64 - (p.tail() - head));
                    last = head;
                }
                Err(e) => {
                    prop_assert_eq!(e.code, ErrorCode::BadPosition);
                    prop_assert!(failed.is_some() || !valid);
                    if let Some(first) = failed {
                        prop_assert_eq!(e, first, "sticky");
                    }
                    failed = Some(e);
                }
            }
        }
    }
}

/// A long seeded run of the model checker: wraps and PADs happen many times.
#[test]
fn long_run_wraps_many_times() {
    let mut ops = Vec::new();
    let mut x: u32 = 0x9E37_79B9;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        ops.push(match x % 8 {
            0..=3 => Op::Write {
                len: Len::Fraction((x >> 8) as u16 / 3),
                commit: if x % 32 == 1 {
                    Commit::Short((x >> 20) as u16)
                } else {
                    Commit::Whole
                },
            },
            4 => Op::Publish,
            5 | 6 => Op::Read { n: 3 },
            _ => Op::PublishHead,
        });
    }
    let m = run_ops(4096, &ops).expect("model agrees");
    assert!(m.wraps >= 100, "wrapped {} times", m.wraps);
    assert!(m.pads >= 50, "padded {} times", m.pads);
    assert!(m.next_seq >= 5_000, "{} records", m.next_seq);
}

/// Moves a fresh ring's positions to `pos` (< cap) with real records, all released.
fn advance(ring: &TestRing, p: &mut Producer<'_>, c: &mut Consumer<'_>, pos: u64) {
    let mut remaining = pos;
    while remaining > 0 {
        let size = remaining.min(ring.cap as u64 / 2);
        assert!(
            p.try_write(0x30, 0, &vec![1; (size - 8) as usize])
                .expect("valid"),
            "space"
        );
        p.publish();
        c.peek().expect("valid").expect("record").consume();
        c.publish_head();
        remaining -= size;
    }
    assert_eq!((p.tail(), c.head()), (pos, pos));
}

/// Runs `corrupt` on a consumer at position `pos` of a 4096-byte ring, expects `code` from
/// `peek`, then checks that the consumer stays failed once the memory is repaired and that it
/// stores nothing more (RING-13).
fn expect_consumer_error(pos: u64, corrupt: impl FnOnce(&TestRing), code: ErrorCode) {
    let ring = TestRing::new(4096);
    let (mut p, mut c) = (Producer::new(ring.ring()), Consumer::new(ring.ring()));
    advance(&ring, &mut p, &mut c, pos);
    corrupt(&ring);
    let err = c
        .peek()
        .map(|r| r.map(|r| r.header()))
        .expect_err("corrupt input is refused");
    assert_eq!(err.code, code, "{err}");
    assert_eq!(c.failure(), Some(err));
    // Repair: a valid record after a valid tail. The consumer does not look again.
    ring.put_header((pos % 4096) as usize, 0, 0x30, 0);
    ring.set_tail(pos + 8);
    assert_eq!(c.peek().map(|r| r.is_some()), Err(err), "sticky");
    ring.set_head(pos);
    assert!(!c.publish_head());
    assert_eq!(ring.raw_head(), pos, "no store after a violation");
}

#[test]
fn corrupt_tail_backwards() {
    expect_consumer_error(64, |r| r.set_tail(56), ErrorCode::BadPosition);
    expect_consumer_error(64, |r| r.set_tail(0), ErrorCode::BadPosition);
}

#[test]
fn corrupt_tail_past_head_plus_cap() {
    expect_consumer_error(64, |r| r.set_tail(64 + 4096 + 8), ErrorCode::BadPosition);
    expect_consumer_error(64, |r| r.set_tail(u64::MAX - 7), ErrorCode::BadPosition);
}

#[test]
fn corrupt_tail_unaligned() {
    expect_consumer_error(64, |r| r.set_tail(64 + 12), ErrorCode::BadPosition);
    expect_consumer_error(0, |r| r.set_tail(u64::MAX), ErrorCode::BadPosition);
}

#[test]
fn corrupt_len_past_tail() {
    expect_consumer_error(
        64,
        |r| {
            r.put_header(64, 16, 0x30, 0); // 24 bytes
            r.set_tail(64 + 16);
        },
        ErrorCode::BadRecordLength,
    );
}

#[test]
fn corrupt_len_across_the_end() {
    expect_consumer_error(
        4096 - 16,
        |r| {
            r.put_header(4096 - 16, 16, 0x30, 0); // 24 bytes, 16 to the end
            r.set_tail(4096 + 64);
        },
        ErrorCode::BadRecordLength,
    );
}

#[test]
fn corrupt_len_over_half_the_ring() {
    for len in [2048 - 7, 4096, u32::MAX] {
        expect_consumer_error(
            0,
            |r| {
                r.put_header(0, len, 0x30, 0);
                r.set_tail(4096);
            },
            ErrorCode::BadRecordLength,
        );
    }
}

#[test]
fn corrupt_pad_not_reaching_the_end() {
    expect_consumer_error(
        4096 - 32,
        |r| {
            r.put_header(4096 - 32, 8, TYPE_PAD, 0); // 16 of the 32 bytes to the end
            r.set_tail(4096);
        },
        ErrorCode::BadPadding,
    );
}

#[test]
fn corrupt_pad_past_the_end_is_a_length_error() {
    expect_consumer_error(
        4096 - 16,
        |r| {
            r.put_header(4096 - 16, 16, TYPE_PAD, 0);
            r.set_tail(4096 + 8);
        },
        ErrorCode::BadRecordLength,
    );
}

#[test]
fn corrupt_pad_with_flags() {
    for fl in [flags::FIRST, flags::SKIPPABLE, 0x0100] {
        expect_consumer_error(
            4096 - 16,
            |r| {
                r.put_header(4096 - 16, 8, TYPE_PAD, fl);
                r.set_tail(4096 + 8);
            },
            ErrorCode::BadPadding,
        );
    }
}

#[test]
fn corrupt_type_zero() {
    for fl in [0, flags::SKIPPABLE | flags::FIRST | flags::LAST] {
        expect_consumer_error(
            0,
            |r| {
                r.put_header(0, 3, 0, fl);
                r.set_tail(16);
            },
            ErrorCode::UnknownRecord,
        );
    }
}

/// A valid PAD is consumed without being delivered (RING-10), and the record after it is.
#[test]
fn hostile_but_valid_pad_is_skipped() {
    let ring = TestRing::new(4096);
    let (mut p, mut c) = (Producer::new(ring.ring()), Consumer::new(ring.ring()));
    advance(&ring, &mut p, &mut c, 4096 - 16);
    ring.put_header(4096 - 16, 8, TYPE_PAD, 0);
    ring.put_header(0, 0, 0x31, flags::FIRST | flags::LAST);
    ring.set_tail(4096 + 8);
    let rec = c.peek().expect("valid").expect("record after the PAD");
    assert_eq!(
        rec.header(),
        RecordHeader {
            len: 0,
            rtype: 0x31,
            flags: flags::FIRST | flags::LAST
        }
    );
    rec.consume();
    assert_eq!(c.head(), 4096 + 8);
}

/// Runs `corrupt` on a producer that has published 64 bytes and seen `head` = 32, expects
/// `BAD_POSITION` from `free_space` and from every later call, and no more stores.
fn expect_producer_error(corrupt: impl FnOnce(&TestRing)) {
    let ring = TestRing::new(4096);
    let mut p = Producer::new(ring.ring());
    for _ in 0..4 {
        assert!(p.try_write(0x30, 0, &[7; 8]).expect("valid"));
    }
    p.publish();
    assert!(
        p.try_write(0x30, 0, &[7; 8]).expect("valid"),
        "committed, not published"
    );
    ring.set_head(32);
    assert_eq!(p.free_space().expect("valid head"), 4096 - 48);
    corrupt(&ring);
    let err = p.free_space().expect_err("corrupt head is refused");
    assert_eq!(err.code, ErrorCode::BadPosition, "{err}");
    ring.set_head(32);
    assert_eq!(p.reserve(0).map(|r| r.is_some()), Err(err), "sticky");
    assert_eq!(p.try_write(0x30, 0, b""), Err(err));
    assert!(!p.publish());
    assert_eq!(ring.raw_tail(), 64, "no store after a violation");
}

#[test]
fn corrupt_head_backwards() {
    expect_producer_error(|r| r.set_head(24));
    expect_producer_error(|r| r.set_head(0));
}

#[test]
fn corrupt_head_beyond_tail() {
    expect_producer_error(|r| r.set_head(88)); // past everything committed
    expect_producer_error(|r| r.set_head(u64::MAX - 7));
}

#[test]
fn corrupt_head_beyond_published_tail() {
    // 64 is published, 80 is committed but never shown to the consumer.
    expect_producer_error(|r| r.set_head(72));
    expect_producer_error(|r| r.set_head(80));
}

#[test]
fn corrupt_head_unaligned() {
    expect_producer_error(|r| r.set_head(36));
}

/// The producer reloads `head` when it lacks space (RING-4) and validates it then too.
#[test]
fn corrupt_head_seen_by_a_full_producer() {
    let ring = TestRing::new(64);
    let mut p = Producer::new(ring.ring());
    assert!(p.try_write(0x30, 0, &[1; 24]).expect("valid"));
    assert!(p.try_write(0x30, 0, &[2; 24]).expect("valid"));
    p.publish();
    ring.set_head(65);
    let err = p
        .try_write(0x30, 0, &[])
        .expect_err("full: head reloaded and refused");
    assert_eq!(err.code, ErrorCode::BadPosition);
}
