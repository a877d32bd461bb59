//! The single-producer / single-consumer record ring of spec/03-ring.md.
//!
//! - [`RingRef`]: where a ring lives (control block and data area).
//! - [`Producer`]: reserves space, lets the caller write a body in place, commits records and
//!   publishes them in batches (RING-1 to RING-4, RING-7, RING-8).
//! - [`Consumer`]: validates and borrows records in place, releases them in batches (RING-5 to
//!   RING-10, RING-12, RING-17).
//!
//! Both endpoints keep their own position privately (RING-7), validate every value they load
//! from the peer (RING-8, RING-9, RING-10), and fail for good on the first violation: every later
//! call returns the same error and no more loads or stores are made on the ring (RING-13).
//! Poisoning the region is the caller's job, since an endpoint sees only its ring.

mod consumer;
mod header;
mod producer;

pub use consumer::{Consumer, Record};
pub use header::{flags, RecordHeader, RECORD_HEADER_LEN, TYPE_PAD};
pub use producer::{Producer, Reservation};

use crate::error::{Error, ErrorCode, Result};
use crate::shared::SharedMem;
use crate::sync::{AtomicU64, Ordering};

/// Size of a ring's control block: `tail` on one cache line, `head` on the next (spec §3.1).
pub const RING_CTRL_LEN: usize = 128;
/// Offset of `tail` in the control block.
pub const TAIL_OFFSET: usize = 0x00;
/// Offset of `head` in the control block.
pub const HEAD_OFFSET: usize = 0x40;

/// The smallest data area the ring code accepts: one empty record (8 bytes) must fit in `cap / 2`.
/// The protocol requires 4096 (spec §3.1); that is checked with the region geometry, so tests
/// and models may use smaller rings.
pub const MIN_CODE_CAPACITY: usize = 16;
/// The largest data area the ring code accepts, so that every record length fits the `u32`
/// `len` field (the protocol's limit, 2^30, is checked with the region geometry).
pub const MAX_CODE_CAPACITY: usize = 1 << 31;

/// The location of one ring in shared memory: its control block and its data area.
/// Geometry comes from a validated header copy (HDR-5), never from the ring itself.
#[derive(Clone, Copy, Debug)]
pub struct RingRef<'a> {
    /// The 128-byte control block.
    pub ctrl: SharedMem<'a>,
    /// The data area; its length is the capacity, a power of two of at least 4096.
    pub data: SharedMem<'a>,
}

impl<'a> RingRef<'a> {
    /// A ring over `ctrl` and `data`, checked as [`RingRef::validate`] does.
    pub fn new(ctrl: SharedMem<'a>, data: SharedMem<'a>) -> Result<Self> {
        let ring = RingRef { ctrl, data };
        ring.validate()?;
        Ok(ring)
    }

    /// Checks what the ring code relies on: a control block of [`RING_CTRL_LEN`] bytes whose
    /// position words are 8-aligned, and a capacity that is a power of two between
    /// [`MIN_CODE_CAPACITY`] and [`MAX_CODE_CAPACITY`]. Fails with `BAD_LAYOUT`.
    pub fn validate(&self) -> Result<()> {
        self.control().map(|_| ())
    }

    /// Data bytes of the ring (`cap`).
    pub fn capacity(&self) -> usize {
        self.data.len()
    }

    /// The largest body a record may have: `cap / 2 − 8`, so that the record is at most
    /// `cap / 2` bytes (RING-1).
    pub fn max_body_len(&self) -> usize {
        max_body_len(self.capacity())
    }

    /// Sets `head` and `tail` to 0 (MBX-4, CHAN-1).
    ///
    /// Only for a ring that no participant uses: the caller publishes the reset to peers with
    /// a later Release store (participant `state`, channel `state`). Does nothing when the
    /// control block is unusable (see [`RingRef::validate`]).
    pub fn reset(&self) {
        if let Ok(ctl) = self.control() {
            ctl.tail.store(0, Ordering::Release);
            ctl.head.store(0, Ordering::Release);
        }
    }

    /// The current `tail` (Acquire), for inspection tools only: a producer never loads its own
    /// position (RING-7). 0 when the control block is unusable.
    pub fn load_tail(&self) -> u64 {
        self.control()
            .map_or(0, |ctl| ctl.tail.load(Ordering::Acquire))
    }

    /// The current `head` (Acquire), for inspection tools only (RING-7). 0 when the control
    /// block is unusable.
    pub fn load_head(&self) -> u64 {
        self.control()
            .map_or(0, |ctl| ctl.head.load(Ordering::Acquire))
    }

    /// Resolves the position words and checks the geometry once, for an endpoint to keep.
    fn control(&self) -> Result<Control<'a>> {
        let cap = self.capacity();
        if !cap.is_power_of_two() || !(MIN_CODE_CAPACITY..=MAX_CODE_CAPACITY).contains(&cap) {
            return Err(Error::value(
                ErrorCode::BadLayout,
                "ring capacity",
                cap as u64,
                MIN_CODE_CAPACITY as u64,
            ));
        }
        if self.ctrl.len() < RING_CTRL_LEN {
            return Err(Error::value(
                ErrorCode::BadLayout,
                "ring control block length",
                self.ctrl.len() as u64,
                RING_CTRL_LEN as u64,
            ));
        }
        Ok(Control {
            tail: self.ctrl.atomic_u64(TAIL_OFFSET)?,
            head: self.ctrl.atomic_u64(HEAD_OFFSET)?,
            data: self.data,
            cap: cap as u64,
        })
    }
}

/// `cap / 2 − 8` (RING-1), 0 for a ring too small to hold any record.
fn max_body_len(cap: usize) -> usize {
    (cap / 2).saturating_sub(RECORD_HEADER_LEN)
}

/// What an endpoint needs of a checked ring: its two position words, its data and `cap`.
#[derive(Clone, Copy, Debug)]
struct Control<'a> {
    tail: &'a AtomicU64,
    head: &'a AtomicU64,
    data: SharedMem<'a>,
    /// A power of two in `[MIN_CODE_CAPACITY, MAX_CODE_CAPACITY]`, so every offset below it
    /// fits a `usize` and every record size fits a `u32`.
    cap: u64,
}

impl Control<'_> {
    /// The data offset that position `pos` addresses (spec §3.1).
    fn offset(&self, pos: u64) -> u64 {
        pos & (self.cap - 1)
    }

    /// The largest record size: `cap / 2` (RING-1).
    fn max_record_size(&self) -> u64 {
        self.cap / 2
    }
}

/// An endpoint's state: working with its ring, or failed for good (RING-13). Dropping the
/// [`Control`] on failure is what guarantees that no load or store follows a violation.
#[derive(Clone, Copy, Debug)]
enum Health<'a> {
    Live(Control<'a>),
    Failed(Error),
}

impl<'a> Health<'a> {
    fn new(ring: &RingRef<'a>) -> Self {
        match ring.control() {
            Ok(ctl) => Health::Live(ctl),
            Err(e) => Health::Failed(e),
        }
    }

    fn live(&self) -> Result<Control<'a>> {
        match *self {
            Health::Live(ctl) => Ok(ctl),
            Health::Failed(e) => Err(e),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
