//! The channel control block (spec/06 §6.1): its words resolved once, and the transitions of
//! CHAN-1, CHAN-5 and CHAN-9 as atomic operations on them. Every peer-written value is loaded
//! once into private memory and validated there (CHAN-7, SEC-2).

use super::{ChannelState, EndRole, READER_RELEASED, WRITER_RELEASED};
use crate::error::{Error, ErrorCode, Result};
use crate::layout::{
    CHANNEL_CTRL_LEN, CH_ABORT_CODE, CH_EPOCH, CH_READER, CH_RELEASED, CH_STATE, CH_TAG, CH_WRITER,
};
use crate::ring::RingRef;
use crate::shared::SharedMem;
use crate::sync::{fence, AtomicU32, Ordering};

/// A `BAD_CHANNEL` violation naming the field, the value found and the bound it broke.
pub(crate) fn bad_channel(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::BadChannel, what, found, expected)
}

/// CHAN-7: a `state` above 3 is a violation.
pub(crate) fn decode_state(raw: u32) -> Result<ChannelState> {
    ChannelState::from_u32(raw).ok_or(bad_channel(
        "channel.state",
        raw.into(),
        ChannelState::Aborted as u64,
    ))
}

/// The words of one channel control block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotCtl<'a> {
    mem: SharedMem<'a>,
    state: &'a AtomicU32,
    epoch: &'a AtomicU32,
    abort_code: &'a AtomicU32,
    released: &'a AtomicU32,
}

/// A private copy of a control block, loaded field by field (CHAN-10 order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotSnapshot {
    pub(crate) state: ChannelState,
    pub(crate) epoch: u32,
    pub(crate) writer: u32,
    pub(crate) reader: u32,
    pub(crate) tag: u64,
    pub(crate) released: u32,
    /// `epoch` was the same before and after the other loads: the fields belong to one opening.
    pub(crate) stable: bool,
}

impl SlotSnapshot {
    /// CHAN-7: `writer` and `reader` lie in the participant table and differ. Only meaningful
    /// in OPEN and ABORTED, where the opener has written them.
    pub(crate) fn check_ends(&self, worker_slots: u32) -> Result<()> {
        for (what, index) in [
            ("channel.writer", self.writer),
            ("channel.reader", self.reader),
        ] {
            if index > worker_slots {
                return Err(bad_channel(what, index.into(), worker_slots.into()));
            }
        }
        if self.writer == self.reader {
            return Err(bad_channel(
                "channel.writer = channel.reader",
                self.writer.into(),
                0,
            ));
        }
        Ok(())
    }

    /// The role `participant` holds in this opening, if it is named.
    pub(crate) fn role_of(&self, participant: u32) -> Option<EndRole> {
        if participant == self.writer {
            Some(EndRole::Writer)
        } else if participant == self.reader {
            Some(EndRole::Reader)
        } else {
            None
        }
    }
}

/// What a release (CHAN-9) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// The bit is set; the other end still holds the slot.
    Released,
    /// The bit completed the pair: this release stored FREE.
    Freed,
    /// The bit was already set: nothing was stored.
    AlreadySet,
}

impl<'a> SlotCtl<'a> {
    /// Resolves the words of the control block `ctrl` (at least 64 bytes, else `BAD_LAYOUT`).
    pub(crate) fn new(ctrl: SharedMem<'a>) -> Result<Self> {
        if ctrl.len() < CHANNEL_CTRL_LEN {
            return Err(Error::value(
                ErrorCode::BadLayout,
                "channel control block length",
                ctrl.len() as u64,
                CHANNEL_CTRL_LEN as u64,
            ));
        }
        Ok(SlotCtl {
            mem: ctrl,
            state: ctrl.atomic_u32(CH_STATE)?,
            epoch: ctrl.atomic_u32(CH_EPOCH)?,
            abort_code: ctrl.atomic_u32(CH_ABORT_CODE)?,
            released: ctrl.atomic_u32(CH_RELEASED)?,
        })
    }

    /// `state` loaded with Acquire and decoded (CHAN-7, CHAN-12).
    pub(crate) fn state(&self) -> Result<ChannelState> {
        decode_state(self.state.load(Ordering::Acquire))
    }

    /// `abort_code`, loaded with Acquire after ABORTED was seen (CHAN-5).
    pub(crate) fn abort_code(&self) -> u32 {
        self.abort_code.load(Ordering::Acquire)
    }

    /// `released`, loaded with Acquire (CHAN-13).
    pub(crate) fn released(&self) -> u32 {
        self.released.load(Ordering::Acquire)
    }

    /// Loads every field once, in the order of CHAN-10: `epoch`, `state`, `writer`, `reader`,
    /// `tag`, `released`, an Acquire fence, `epoch` again. `BAD_CHANNEL` for a state above 3.
    pub(crate) fn snapshot(&self) -> Result<SlotSnapshot> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let state = decode_state(self.state.load(Ordering::Acquire))?;
        let writer = self.mem.read_u32(CH_WRITER)?;
        let reader = self.mem.read_u32(CH_READER)?;
        let tag = self.mem.read_u64(CH_TAG)?;
        let released = self.released.load(Ordering::Acquire);
        // Pairs with the opener's Release fence after its increment (CHAN-1): if any load
        // above saw a value the opener wrote after that fence, this load sees the new epoch.
        fence(Ordering::Acquire);
        let stable = self.epoch.load(Ordering::Relaxed) == epoch;
        Ok(SlotSnapshot {
            state,
            epoch,
            writer,
            reader,
            tag,
            released,
            stable,
        })
    }

    /// CHAN-1: claims the slot when it is FREE (compare-and-swap FREE → OPENING, Acquire, so
    /// that the last users' writes happen-before this opener's). `Ok(false)` when the slot is in
    /// use; `BAD_CHANNEL` for a state above 3 (CHAN-7).
    pub(crate) fn claim(&self) -> Result<bool> {
        let raw = self.state.load(Ordering::Relaxed);
        if decode_state(raw)? != ChannelState::Free {
            return Ok(false);
        }
        Ok(self
            .state
            .compare_exchange(
                raw,
                ChannelState::Opening as u32,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok())
    }

    /// CHAN-1, with OPENING held: increments `epoch`, fences, writes the slot, resets the ring
    /// and publishes OPEN (Release). Returns the new epoch. Should a write fail (it cannot once
    /// [`SlotCtl::new`] accepted the block), the slot is handed back FREE.
    pub(crate) fn publish_open(
        &self,
        ring: &RingRef<'_>,
        writer: u32,
        reader: u32,
        tag: u64,
    ) -> Result<u32> {
        // The epoch only grows (wrapping); it is compared for equality only.
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        // CHAN-1, CHAN-10: a reader of the fields below that sees any of them also sees the
        // new epoch on its second load.
        fence(Ordering::Release);
        let written = self.write_fields(writer, reader, tag);
        if let Err(e) = written {
            self.state
                .store(ChannelState::Free as u32, Ordering::Release);
            return Err(e);
        }
        self.abort_code.store(0, Ordering::Relaxed);
        self.released.store(0, Ordering::Relaxed);
        ring.reset();
        // CHAN-1: OPEN with Release publishes every write above to the end that attaches
        // after seeing OPEN (CHAN-2, Acquire).
        self.state
            .store(ChannelState::Open as u32, Ordering::Release);
        Ok(epoch)
    }

    fn write_fields(&self, writer: u32, reader: u32, tag: u64) -> Result<()> {
        self.mem.write_u32(CH_WRITER, writer)?;
        self.mem.write_u32(CH_READER, reader)?;
        self.mem.write_u64(CH_TAG, tag)
    }

    /// CHAN-9: sets `bit` with `fetch_or` (`AcqRel`); the release that completes the pair stores
    /// FREE (Release). Reserved bits of `released` are ignored (CONV-4).
    pub(crate) fn release(&self, bit: u32) -> Release {
        let old = self.released.fetch_or(bit, Ordering::AcqRel);
        if old & bit != 0 {
            return Release::AlreadySet;
        }
        let pair = WRITER_RELEASED | READER_RELEASED;
        if (old | bit) & pair == pair {
            // CHAN-9: both ends are done; nobody touches the slot after this store.
            self.state
                .store(ChannelState::Free as u32, Ordering::Release);
            return Release::Freed;
        }
        Release::Released
    }

    /// CHAN-5: stores `code` into `abort_code` by a compare-and-swap from 0 (the first code
    /// stands), then ABORTED by a compare-and-swap from OPEN. Returns true when this call
    /// stored ABORTED (ring the peer's doorbell), false when the channel already was ABORTED.
    /// `BAD_CHANNEL` when the state is neither OPEN nor ABORTED (CHAN-12).
    pub(crate) fn abort(&self, code: u32) -> Result<bool> {
        // A failed exchange means another end's code is already there; it stands (CHAN-5).
        let _ = self
            .abort_code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        match self.state.compare_exchange(
            ChannelState::Open as u32,
            ChannelState::Aborted as u32,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(true),
            Err(raw) => match decode_state(raw)? {
                ChannelState::Aborted => Ok(false),
                other => Err(bad_channel(
                    "channel.state (abort of a slot not held)",
                    other as u64,
                    ChannelState::Open as u64,
                )),
            },
        }
    }
}
