//! The consuming end of a ring: validate, borrow in place, consume, release (spec §3.2, §3.3).

use super::header::{RecordHeader, RECORD_HEADER_LEN, TYPE_PAD};
use super::{Control, Health, RingRef};
use crate::error::{Error, ErrorCode, Result};
use crate::sync::Ordering;
use crate::wait::{room_for_any_record, Doorbell, Parker};

/// The consuming end of one ring. Exactly one per ring at a time (MBX-1, CHAN-3).
///
/// [`Consumer::peek`] yields the next record, borrowed in place; [`Record::consume`] moves the
/// private head past it; [`Consumer::publish_head`] releases every consumed byte to the
/// producer at once (RING-6). Call `publish_head` also after `peek` returned `None`: a PAD
/// may have been consumed on the way.
#[derive(Debug)]
pub struct Consumer<'a> {
    ring: RingRef<'a>,
    health: Health<'a>,
    /// Private position one past the last consumed byte (RING-7).
    head: u64,
    /// The last `head` stored to the ring.
    published: u64,
    /// The `head` published at the last wake decision ([`Consumer::wake_producer`], WAIT-8).
    decided: u64,
    /// The last valid `tail` loaded from the producer; records below it are published.
    tail_seen: u64,
}

impl<'a> Consumer<'a> {
    /// The consumer of a ring that starts reset: private `head` 0.
    ///
    /// A ring whose geometry the ring code cannot use (see [`RingRef::validate`]) gives a
    /// consumer that is already failed with `BAD_LAYOUT`.
    pub fn new(ring: RingRef<'a>) -> Self {
        Consumer {
            ring,
            health: Health::new(&ring),
            head: 0,
            published: 0,
            decided: 0,
            tail_seen: 0,
        }
    }

    /// The ring this consumer reads.
    pub fn ring(&self) -> RingRef<'a> {
        self.ring
    }

    /// The private position: one past the last consumed byte, released or not.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The error that failed this consumer, if any.
    pub fn failure(&self) -> Option<Error> {
        self.health.live().err()
    }

    /// The next record that is not a PAD, validated (RING-8, RING-9, RING-10, RING-17), with its
    /// body borrowed in place. PAD records are consumed on the way. `Ok(None)` when the ring is
    /// empty.
    ///
    /// Record types other than 0 and PAD are not judged here: which types belong on which ring,
    /// and SKIPPABLE (RING-11), are the message layer's. After any error the consumer is
    /// failed: every later call returns that error.
    pub fn peek(&mut self) -> Result<Option<Record<'_, 'a>>> {
        let ctl = self.health.live()?;
        match self.next_record(&ctl) {
            Ok(Some((header, body))) => Ok(Some(Record {
                consumer: self,
                header,
                body,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Releases every consumed byte to the producer: a Release store of the private head
    /// (RING-6), made only when it moved since the last publication. Returns whether it
    /// stored. A failed consumer stores nothing (RING-13).
    pub fn publish_head(&mut self) -> bool {
        let Health::Live(ctl) = self.health else {
            return false;
        };
        if self.head == self.published {
            return false;
        }
        // RING-6: every read of the released records happened before this store; the
        // borrow of a body ends with its `Record`, which borrows this consumer mutably.
        ctl.head.store(self.head, Ordering::Release);
        self.published = self.head;
        true
    }

    /// Rings the producer's doorbell `bell` after a release (WAIT-6, WAIT-5), unless WAIT-8
    /// shows that no producer can be parked for room: the `tail` loaded after the fence leaves
    /// room for the largest record counted from the `head` published at the previous call
    /// (not the one just stored: a producer may have parked on that older value). Every call
    /// is such a decision, so call it after each [`Consumer::publish_head`] that stored (a
    /// store left without a decision makes the next decision count from an older `head`,
    /// which only rings more). Returns whether it woke.
    ///
    /// A failed consumer loads nothing from its ring (RING-13) and rings as WAIT-5 says.
    pub fn wake_producer<P: Parker + ?Sized>(&mut self, bell: &Doorbell<'_>, parker: &P) -> bool {
        let before = self.decided;
        // WAIT-8: this decision's fence follows the store of `published`.
        self.decided = self.published;
        let Health::Live(ctl) = self.health else {
            return bell.ring(parker);
        };
        // WAIT-8: `tail` is loaded after the fence (inside `ring_unless`), only to choose
        // whether to wake; an invalid value rings (spec §4.4) and is judged by the next poll.
        bell.ring_unless(parker, || {
            room_for_any_record(ctl.cap, before, ctl.tail.load(Ordering::Acquire))
        })
    }

    /// Finds, validates and borrows the next non-PAD record.
    fn next_record(&mut self, ctl: &Control<'a>) -> Result<Option<(RecordHeader, &'a [u8])>> {
        // At most one PAD precedes a record: a valid PAD ends at the end of the data area, and
        // one at offset 0 would be `cap` bytes, more than RING-9 allows. Two rounds suffice.
        for _ in 0..2 {
            if self.head == self.tail_seen {
                self.refresh_tail(ctl)?;
                if self.head == self.tail_seen {
                    return Ok(None);
                }
            }
            let offset = ctl.offset(self.head);
            let header = self.load_header(ctl, offset)?;
            if header.rtype == TYPE_PAD {
                Self::check_pad(ctl, offset, header)?;
                self.head += header.size_u64();
                continue;
            }
            let body_off = offset as usize + RECORD_HEADER_LEN;
            // SAFETY: `load_header` checked that the record lies inside the data area and
            // inside `[head, tail_seen)`: published by the producer (RING-5 Acquire on
            // `tail_seen`) and not released, so a producer that follows the protocol does not
            // write it (RING-4, RING-15) until `publish_head` stores a head past it, which
            // needs `&mut self` and so cannot happen while the `Record` holding this borrow
            // lives. A hostile producer may still write it: callers treat the bytes as
            // untrusted and copy before deciding (RING-15).
            let body = unsafe { ctl.data.borrow(body_off, body_len(ctl, offset, header)) }?;
            return Ok(Some((header, body)));
        }
        Err(Error::new(
            ErrorCode::BadPadding,
            "ring: PAD followed by PAD",
        ))
    }

    /// Loads `tail` (Acquire, RING-5) and validates it against the private head (RING-8).
    fn refresh_tail(&mut self, ctl: &Control<'a>) -> Result<()> {
        let tail = ctl.tail.load(Ordering::Acquire);
        if tail % 8 != 0 {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.tail (not a multiple of 8)",
                tail,
                tail & !7,
            ));
        }
        if tail < self.head {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.tail (behind head)",
                tail,
                self.head,
            ));
        }
        if tail - self.head > ctl.cap {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.tail (more than cap past head)",
                tail,
                self.head + ctl.cap,
            ));
        }
        self.tail_seen = tail;
        Ok(())
    }

    /// Copies the header at `offset` out once (RING-12) and checks its size and type (RING-9,
    /// RING-17).
    fn load_header(&self, ctl: &Control<'a>, offset: u64) -> Result<RecordHeader> {
        let mut raw = [0u8; RECORD_HEADER_LEN];
        ctl.data.read(offset as usize, &mut raw)?;
        let header = RecordHeader::from_bytes(raw);
        let size = header.size_u64();
        // RING-9: at most cap / 2, at most what is published, never across the end.
        let bound = ctl
            .max_record_size()
            .min(self.tail_seen - self.head)
            .min(ctl.cap - offset);
        // Mutant switch (conformance suite only, never in a normal build): `skip_len_check`
        // leaves RING-9 out, to show that the suite's cases catch a consumer without it.
        if size > bound && !cfg!(knit_mutant = "skip_len_check") {
            return Err(Error::value(
                ErrorCode::BadRecordLength,
                "record.len (record size)",
                size,
                bound,
            ));
        }
        // RING-17: type 0 is never valid, whatever the flags.
        if header.rtype == 0 {
            return Err(Error::value(ErrorCode::UnknownRecord, "record.type", 0, 0));
        }
        Ok(header)
    }

    /// RING-10: a PAD ends exactly at the end of the data area and has flags 0.
    fn check_pad(ctl: &Control<'a>, offset: u64, header: RecordHeader) -> Result<()> {
        let size = header.size_u64();
        let to_end = ctl.cap - offset;
        if size != to_end {
            return Err(Error::value(
                ErrorCode::BadPadding,
                "PAD record size (must reach the end)",
                size,
                to_end,
            ));
        }
        if header.flags != 0 {
            return Err(Error::value(
                ErrorCode::BadPadding,
                "PAD record flags",
                u64::from(header.flags),
                0,
            ));
        }
        Ok(())
    }

    /// Fails the consumer for good and returns the error (RING-13).
    fn fail(&mut self, e: Error) -> Error {
        self.health = Health::Failed(e);
        e
    }
}

/// A validated record, its body borrowed in place (zero copy, spec §3.3).
///
/// The body is peer-written memory: take no decision from its bytes without copying them into
/// private memory first (RING-15). The record borrows its consumer, so the body cannot be
/// released (RING-6) while it is borrowed.
#[derive(Debug)]
pub struct Record<'c, 'a> {
    consumer: &'c mut Consumer<'a>,
    header: RecordHeader,
    body: &'a [u8],
}

impl Record<'_, '_> {
    /// The validated private copy of the header.
    pub fn header(&self) -> RecordHeader {
        self.header
    }

    /// The body, in place.
    pub fn body(&self) -> &[u8] {
        self.body
    }

    /// Moves the consumer's private head past this record (released at the next
    /// [`Consumer::publish_head`]).
    pub fn consume(self) {
        // `load_header` bounded the size by `tail_seen − head`, so this cannot overflow.
        self.consumer.head += self.header.size_u64();
    }
}

/// The body length to borrow: the validated private copy's `len` (RING-12). Mutant switch
/// (conformance suite only): `double_read_len` reads `len` from shared memory a second time,
/// after a pause that widens the window, to show that the suite's double-fetch attack catches
/// a consumer that decides from a second read.
#[cfg_attr(not(knit_mutant = "double_read_len"), allow(unused_variables))]
fn body_len(ctl: &Control<'_>, offset: u64, header: RecordHeader) -> usize {
    #[cfg(knit_mutant = "double_read_len")]
    {
        for _ in 0..20_000 {
            crate::sync::spin_loop();
        }
        if let Ok(len) = ctl.data.read_u32(offset as usize) {
            return len as usize;
        }
    }
    header.len as usize
}
