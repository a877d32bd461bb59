//! The producing end of a ring: reserve, write in place, commit, publish (spec §3.2, §3.3).

use super::header::{flags, record_size, RecordHeader, RECORD_HEADER_LEN, TYPE_PAD};
use super::{Control, Health, RingRef};
use crate::error::{Error, ErrorCode, Result};
use crate::sync::Ordering;

/// The producing end of one ring. Exactly one per ring at a time (MBX-1, CHAN-3).
///
/// Records are written in two steps: [`Producer::reserve`] then [`Reservation::commit`] (or
/// [`Producer::try_write`], which does both), and become visible to the consumer only at the
/// next [`Producer::publish`], so several records can share one publication (RING-3).
#[derive(Debug)]
pub struct Producer<'a> {
    ring: RingRef<'a>,
    health: Health<'a>,
    /// Private position one past the last committed byte (RING-7).
    tail: u64,
    /// The last `tail` stored to the ring.
    published: u64,
    /// The last valid `head` loaded from the consumer; `head` never goes back (RING-8).
    head_seen: u64,
}

impl<'a> Producer<'a> {
    /// The producer of a ring that starts reset: private `tail` 0, last `head` seen 0.
    ///
    /// A ring whose geometry the ring code cannot use (see [`RingRef::validate`]) gives a
    /// producer that is already failed with `BAD_LAYOUT`.
    pub fn new(ring: RingRef<'a>) -> Self {
        Producer {
            ring,
            health: Health::new(&ring),
            tail: 0,
            published: 0,
            head_seen: 0,
        }
    }

    /// The ring this producer writes.
    pub fn ring(&self) -> RingRef<'a> {
        self.ring
    }

    /// The private position: one past the last committed byte, published or not.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// The error that failed this producer, if any.
    pub fn failure(&self) -> Option<Error> {
        self.health.live().err()
    }

    /// Reserves room for a record with a body of exactly `body_len` bytes.
    ///
    /// `Ok(Some)` lends the body in place; `Ok(None)` when there is no space now (the
    /// consumer has not released enough; RING-4). `Err(INVALID_ARGUMENT)` when `body_len`
    /// exceeds [`RingRef::max_body_len`] (RING-1), `Err(BAD_POSITION)` when the consumer's
    /// `head` is invalid (RING-8). After any error the producer is failed: every later call
    /// returns that error.
    pub fn reserve(&mut self, body_len: usize) -> Result<Option<Reservation<'_, 'a>>> {
        let ctl = self.health.live()?;
        let plan = match self.plan(&ctl, body_len) {
            Ok(Some(plan)) => plan,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.fail(e)),
        };
        let body_off = ctl.offset(plan.record_pos) as usize + RECORD_HEADER_LEN;
        // SAFETY: `plan` placed the record inside the data area (it never crosses the end,
        // RING-2) and inside `[tail, head_seen + cap)`: bytes beyond the published tail that
        // the consumer has released (RING-4), which no participant that follows the protocol
        // reads or writes until this producer publishes a tail covering them. The loan borrows
        // the producer mutably, so it ends before the next `publish`.
        let body = match unsafe { ctl.data.borrow_mut(body_off, body_len) } {
            Ok(body) => body,
            Err(e) => return Err(self.fail(e)),
        };
        Ok(Some(Reservation {
            producer: self,
            ctl,
            pad: plan.pad,
            record_pos: plan.record_pos,
            body,
        }))
    }

    /// Reserves, copies `body`, and commits a record (not published). `Ok(false)` when there
    /// is no space now. Errors as [`Producer::reserve`], plus `INVALID_ARGUMENT` for a type or
    /// flags a producer may not write (see [`Reservation::commit`]).
    pub fn try_write(&mut self, rtype: u16, flags: u16, body: &[u8]) -> Result<bool> {
        self.health.live()?;
        if let Err(e) = check_header_args(rtype, flags) {
            return Err(self.fail(e));
        }
        let Some(mut reservation) = self.reserve(body.len())? else {
            return Ok(false);
        };
        // Same length by construction: the reservation lends exactly `body.len()` bytes.
        reservation.body().copy_from_slice(body);
        reservation.commit(rtype, flags);
        self.health.live().map(|_| true)
    }

    /// Makes every committed record visible: a Release store of the private tail (RING-3),
    /// made only when something was committed since the last publication. Returns whether it
    /// stored. A failed producer stores nothing (RING-13).
    pub fn publish(&mut self) -> bool {
        let Health::Live(ctl) = self.health else {
            return false;
        };
        if self.tail == self.published {
            return false;
        }
        // RING-3: every byte of the records below `tail` was written before this store.
        ctl.tail.store(self.tail, Ordering::Release);
        self.published = self.tail;
        true
    }

    /// Bytes free right now, after loading the consumer's `head` (validated, RING-8). A record
    /// that must wrap also needs the bytes up to the end of the data area (RING-2).
    pub fn free_space(&mut self) -> Result<usize> {
        let ctl = self.health.live()?;
        if let Err(e) = self.refresh_head(&ctl) {
            return Err(self.fail(e));
        }
        Ok((ctl.cap - self.used()) as usize)
    }

    /// Where the record goes, or `None` when it does not fit now.
    fn plan(&mut self, ctl: &Control<'a>, body_len: usize) -> Result<Option<Plan>> {
        let max = self.ring.max_body_len();
        if body_len > max {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "record body length",
                body_len as u64,
                max as u64,
            ));
        }
        let size = record_size(body_len as u64);
        let to_end = ctl.cap - ctl.offset(self.tail);
        // RING-2: a record never crosses the end; when it does not fit, a PAD covers exactly
        // the bytes to the end first. When it fits exactly, no PAD.
        let pad = if size > to_end { to_end } else { 0 };
        let needed = pad + size;
        // RING-4: write only while `tail_new − head ≤ cap`. The last head seen is a safe
        // lower bound; load a fresh one only when it is not enough.
        if self.used() + needed > ctl.cap {
            self.refresh_head(ctl)?;
            if self.used() + needed > ctl.cap {
                return Ok(None);
            }
        }
        Ok(Some(Plan {
            pad,
            record_pos: self.tail + pad,
        }))
    }

    /// Bytes between the last head seen and the private tail; at most `cap` by construction.
    fn used(&self) -> u64 {
        self.tail - self.head_seen
    }

    /// Loads the consumer's `head` (Acquire, RING-4) and validates it (RING-8).
    fn refresh_head(&mut self, ctl: &Control<'a>) -> Result<()> {
        let head = ctl.head.load(Ordering::Acquire);
        // RING-8: a multiple of 8, never behind the last head seen, and never past the last
        // tail published: a consumer cannot release bytes it was never shown.
        if head % 8 != 0 {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.head (not a multiple of 8)",
                head,
                head & !7,
            ));
        }
        if head < self.head_seen {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.head (went backwards)",
                head,
                self.head_seen,
            ));
        }
        if head > self.published {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.head (past the published tail)",
                head,
                self.published,
            ));
        }
        self.head_seen = head;
        Ok(())
    }

    /// Fails the producer for good and returns the error (RING-13).
    fn fail(&mut self, e: Error) -> Error {
        self.health = Health::Failed(e);
        e
    }
}

/// Where a reserved record goes.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Bytes of PAD to write first (0 when the record fits before the end).
    pad: u64,
    /// Position of the record header.
    record_pos: u64,
}

/// Checks what a producer may write in a header: any type but 0 (never valid) and PAD (which
/// only the ring writes, RING-2), and only flags this version defines (CONV-4).
fn check_header_args(rtype: u16, flags: u16) -> Result<()> {
    if rtype == 0 || rtype == TYPE_PAD {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "record type (0 and PAD are reserved)",
            u64::from(rtype),
            0,
        ));
    }
    if flags & !flags::DEFINED != 0 {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "record flags (reserved bits set)",
            u64::from(flags),
            u64::from(flags::DEFINED),
        ));
    }
    Ok(())
}

/// Space reserved for one record, with its body lent in place (loan, spec §3.3).
///
/// Committing makes it part of the producer's private tail; dropping it without committing
/// abandons it and nothing becomes visible.
#[derive(Debug)]
pub struct Reservation<'p, 'a> {
    producer: &'p mut Producer<'a>,
    ctl: Control<'a>,
    pad: u64,
    record_pos: u64,
    body: &'p mut [u8],
}

impl Reservation<'_, '_> {
    /// The reserved body, to write in place.
    pub fn body(&mut self) -> &mut [u8] {
        self.body
    }

    /// Bytes reserved for the body.
    pub fn body_len(&self) -> usize {
        self.body.len()
    }

    /// Commits the record with its whole reserved body: writes the header (and the PAD
    /// before it, if the record wraps) and advances the private tail. Not published.
    ///
    /// A type of 0 or PAD, or a reserved flag bit, is refused: the record is abandoned and the
    /// producer fails with `INVALID_ARGUMENT` (returned by its next call).
    pub fn commit(self, rtype: u16, flags: u16) {
        let len = self.body.len();
        self.finish(rtype, flags, len);
    }

    /// Commits a body shorter than reserved (`len` ≤ [`Reservation::body_len`]); the rest of
    /// the space is returned. A longer `len` fails the producer with `INVALID_ARGUMENT`, as do
    /// the arguments refused by [`Reservation::commit`].
    pub fn commit_len(self, rtype: u16, flags: u16, len: usize) {
        if len > self.body.len() {
            let e = Error::value(
                ErrorCode::InvalidArgument,
                "committed length",
                len as u64,
                self.body.len() as u64,
            );
            self.producer.fail(e);
            return;
        }
        self.finish(rtype, flags, len);
    }

    fn finish(self, rtype: u16, flags: u16, len: usize) {
        let Reservation {
            producer,
            ctl,
            pad,
            record_pos,
            body,
        } = self;
        if let Err(e) = check_header_args(rtype, flags) {
            producer.fail(e);
            return;
        }
        match write_record(
            &ctl,
            producer.tail,
            pad,
            record_pos,
            body,
            RecordHeader {
                len: len as u32,
                rtype,
                flags,
            },
        ) {
            Ok(end) => producer.tail = end,
            Err(e) => {
                producer.fail(e);
            }
        }
    }
}

/// Writes the PAD (if any), the body's zero padding and the header of a reserved record, and
/// returns the position one past it. `body` is the record's lent body (`header.len` of it used).
fn write_record(
    ctl: &Control<'_>,
    tail: u64,
    pad: u64,
    record_pos: u64,
    body: &mut [u8],
    header: RecordHeader,
) -> Result<u64> {
    if pad > 0 {
        // RING-2: the PAD covers exactly the bytes to the end; its flags are 0 (RING-10).
        // `pad` < cap / 2, so its length fits the `u32` field.
        let pad_header = RecordHeader {
            len: (pad - RECORD_HEADER_LEN as u64) as u32,
            rtype: TYPE_PAD,
            flags: 0,
        };
        ctl.data
            .write(ctl.offset(tail) as usize, &pad_header.to_bytes())?;
    }
    let len = header.len as usize;
    let padded = len.next_multiple_of(8);
    // Spec §3.2: the bytes between `len` and the record's size are written as zero. Those
    // inside the loan are zeroed through it, the rest (past the reserved length) directly.
    let lent = padded.min(body.len());
    if let Some(bytes) = body.get_mut(len..lent) {
        bytes.fill(0);
    }
    let record_off = ctl.offset(record_pos) as usize;
    let body_off = record_off + RECORD_HEADER_LEN;
    if padded > lent {
        ctl.data.zero(body_off + lent, padded - lent)?;
    }
    ctl.data.write(record_off, &header.to_bytes())?;
    Ok(record_pos + header.size_u64())
}
