//! A ring whose two ends face a hostile peer: legitimate writes and reads interleaved with
//! arbitrary stores into `tail`, `head`, record headers and record bytes (RING-8 to RING-13,
//! RING-17).
//!
//! Checked after every step:
//! - an endpoint reports only ring violations (`BAD_POSITION`, `BAD_RECORD_LENGTH`,
//!   `BAD_PADDING`, `UNKNOWN_RECORD`), then stays failed with the same error and stores
//!   nothing more (RING-13);
//! - the position words hold exactly what the endpoints or the attacker last stored (RING-7:
//!   nobody stores behind anyone's back);
//! - a delivered record is never PAD or type 0, its body is `len` bytes, its size at most
//!   `cap / 2` (RING-1, RING-9);
//! - while the attacker has touched nothing, the consumer delivers exactly the records written,
//!   in order, with their bytes, and never fails.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use knit_core::ring::{flags, Consumer, Producer, RecordHeader, TYPE_PAD};
use knit_core::{Error, ErrorCode};
use knit_fuzz::{is_ring_violation, pattern, record_size, small_cap, TestRing};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    cap: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write {
        len: u16,
        rtype: u16,
        flags: u8,
    },
    Publish,
    Read {
        n: u8,
    },
    Peek,
    PublishHead,
    FreeSpace,
    Tail(Pos),
    Head(Pos),
    Header {
        at: Pos,
        len: Len,
        rtype: u16,
        flags: u16,
    },
    Bytes {
        at: Pos,
        bytes: Vec<u8>,
    },
}

/// A position chosen near the interesting ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Pos {
    Raw(u64),
    FromHead(i16),
    FromTail(i16),
    FromEnd(u8),
}

/// A record length chosen near the bounds of RING-9.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Raw(u32),
    Small(u8),
    ToEnd(i8),
    HalfCap(i8),
}

struct State<'a> {
    ring: &'a TestRing,
    cap: u64,
    producer: Producer<'a>,
    consumer: Consumer<'a>,
    /// What the `tail` and `head` words must hold: the last value stored by anyone.
    tail_word: u64,
    head_word: u64,
    /// The attacker has stored something: the model no longer applies.
    tampered: bool,
    /// Records written and not yet consumed, with their end positions.
    model: VecDeque<(RecordHeader, Vec<u8>, u64)>,
    published: u64,
    consumer_failed: Option<Error>,
    producer_failed: Option<Error>,
    seq: u64,
}

impl Pos {
    fn resolve(self, s: &State<'_>) -> u64 {
        match self {
            Pos::Raw(v) => v,
            Pos::FromHead(d) => s.consumer.head().wrapping_add_signed(8 * i64::from(d)),
            Pos::FromTail(d) => s.producer.tail().wrapping_add_signed(8 * i64::from(d)),
            Pos::FromEnd(k) => {
                let head = s.consumer.head();
                let base = head - head % s.cap;
                base + s.cap - 8 * (1 + u64::from(k) % (s.cap / 8))
            }
        }
    }
}

impl Len {
    fn resolve(self, cap: u64, offset: u64) -> u32 {
        match self {
            Len::Raw(v) => v,
            Len::Small(v) => u32::from(v),
            Len::ToEnd(d) => (cap - offset)
                .wrapping_sub(8)
                .wrapping_add_signed(i64::from(d)) as u32,
            Len::HalfCap(d) => (cap / 2 - 8).wrapping_add_signed(i64::from(d)) as u32,
        }
    }
}

impl State<'_> {
    fn consumer_error(&mut self, e: Error) {
        assert!(is_ring_violation(e.code), "consumer: {e}");
        assert!(self.tampered, "consumer failed on an untouched ring: {e}");
        self.consumer_failed = Some(e);
    }

    fn producer_error(&mut self, e: Error) {
        assert_eq!(e.code, ErrorCode::BadPosition, "producer: {e}");
        assert!(self.tampered, "producer failed on an untouched ring: {e}");
        self.producer_failed = Some(e);
    }

    fn write(&mut self, len: u16, rtype: u16, fl: u8) {
        let max = self.producer.ring().max_body_len();
        let len = usize::from(len) % (max + 1);
        let rtype = if rtype == 0 || rtype == TYPE_PAD {
            rtype + 2
        } else {
            rtype
        };
        let fl = u16::from(fl & 3) | if fl & 0x80 != 0 { flags::SKIPPABLE } else { 0 };
        let body = pattern(self.seq, len);
        match self.producer.try_write(rtype, fl, &body) {
            Ok(true) => {
                assert_eq!(self.producer_failed, None);
                let header = RecordHeader {
                    len: len as u32,
                    rtype,
                    flags: fl,
                };
                self.model.push_back((header, body, self.producer.tail()));
                self.seq += 1;
            }
            Ok(false) => assert_eq!(self.producer_failed, None),
            Err(e) => {
                if let Some(first) = self.producer_failed {
                    assert_eq!(e, first, "producer error is sticky");
                } else {
                    self.producer_error(e);
                }
            }
        }
    }

    fn read(&mut self, consume: bool) -> bool {
        let expected = self
            .model
            .front()
            .filter(|r| r.2 <= self.published)
            .cloned();
        let tampered = self.tampered;
        let cap = self.cap;
        match self.consumer.peek() {
            Ok(None) => {
                assert_eq!(self.consumer_failed, None);
                if !tampered {
                    assert!(expected.is_none(), "a published record was not delivered");
                }
                false
            }
            Ok(Some(rec)) => {
                assert_eq!(self.consumer_failed, None);
                let h = rec.header();
                assert_eq!(rec.body().len(), h.len as usize);
                assert!(
                    h.rtype != 0 && h.rtype != TYPE_PAD,
                    "delivered type {}",
                    h.rtype
                );
                assert!(record_size(h.len as usize) <= cap / 2, "RING-1/RING-9 size");
                if !tampered {
                    let (want, body, _) = expected.expect("a record the producer never wrote");
                    assert_eq!(h, want);
                    assert_eq!(rec.body(), &body[..]);
                }
                if consume {
                    rec.consume();
                    if !tampered {
                        self.model.pop_front();
                    }
                }
                consume
            }
            Err(e) => {
                if let Some(first) = self.consumer_failed {
                    assert_eq!(e, first, "consumer error is sticky");
                } else {
                    self.consumer_error(e);
                }
                false
            }
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Write { len, rtype, flags } => self.write(len, rtype, flags),
            Op::Publish => {
                if self.producer.publish() {
                    assert_eq!(self.producer_failed, None, "a failed producer stored");
                    self.tail_word = self.producer.tail();
                }
                if self.producer_failed.is_none() {
                    self.published = self.producer.tail();
                }
            }
            Op::Read { n } => {
                for _ in 0..=(n % 8) {
                    if !self.read(true) {
                        break;
                    }
                }
            }
            Op::Peek => {
                self.read(false);
            }
            Op::PublishHead => {
                if self.consumer.publish_head() {
                    assert_eq!(self.consumer_failed, None, "a failed consumer stored");
                    self.head_word = self.consumer.head();
                }
            }
            Op::FreeSpace => match self.producer.free_space() {
                Ok(free) => {
                    assert_eq!(self.producer_failed, None);
                    assert!(free as u64 <= self.cap);
                }
                Err(e) => {
                    if let Some(first) = self.producer_failed {
                        assert_eq!(e, first);
                    } else {
                        self.producer_error(e);
                    }
                }
            },
            Op::Tail(p) => {
                let v = p.resolve(self);
                self.ring.set_tail(v);
                self.tail_word = v;
                self.tampered = true;
            }
            Op::Head(p) => {
                let v = p.resolve(self);
                self.ring.set_head(v);
                self.head_word = v;
                self.tampered = true;
            }
            Op::Header {
                at,
                len,
                rtype,
                flags,
            } => {
                let off = (at.resolve(self) % self.cap) & !7;
                let header = RecordHeader {
                    len: len.resolve(self.cap, off),
                    rtype,
                    flags,
                };
                self.ring.put_header(off as usize, header);
                self.tampered = true;
            }
            Op::Bytes { at, bytes } => {
                let off = at.resolve(self) % self.cap;
                self.ring
                    .put_bytes(off as usize, &bytes[..bytes.len().min(64)]);
                self.tampered = true;
            }
        }
        // RING-7, RING-13: the words hold what was last stored, by an endpoint or the attacker.
        assert_eq!(self.ring.raw_tail(), self.tail_word, "tail word");
        assert_eq!(self.ring.raw_head(), self.head_word, "head word");
        assert_eq!(self.consumer.failure(), self.consumer_failed);
        assert_eq!(self.producer.failure(), self.producer_failed);
    }
}

fuzz_target!(|input: Input| {
    let ring = TestRing::new(small_cap(input.cap));
    let mut s = State {
        ring: &ring,
        cap: ring.cap() as u64,
        producer: Producer::new(ring.ring()),
        consumer: Consumer::new(ring.ring()),
        tail_word: 0,
        head_word: 0,
        tampered: false,
        model: VecDeque::new(),
        published: 0,
        consumer_failed: None,
        producer_failed: None,
        seq: 0,
    };
    for op in input.ops.into_iter().take(256) {
        s.step(op);
    }
});
