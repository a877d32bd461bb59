//! What both ends of a channel share: the slot they hold, its checks before each operation
//! (CHAN-12), abort (CHAN-5), release (CHAN-9) and the sticky outcome once the end is done.

use super::slot::{bad_channel, Release, SlotCtl};
use super::{ChannelState, EndRole, OpenedChannel};
use crate::error::{Error, ErrorCode, Result};

/// Whether an end may still touch its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Attached and not released: operations load and store the slot.
    Live,
    /// Released, or stopped after a violation: every operation returns this error and touches
    /// the slot no more (CHAN-9, RING-13).
    Done(Error),
}

/// One attached end of a channel.
#[derive(Debug)]
pub(crate) struct EndCore<'a> {
    slot: SlotCtl<'a>,
    channel: OpenedChannel,
    role: EndRole,
    me: u32,
    peer: u32,
    status: Status,
}

/// The error of a channel found ABORTED, carrying `abort_code` in `found` (CHAN-5).
pub(crate) fn aborted(code: u32) -> Error {
    Error::value(
        ErrorCode::ChannelAborted,
        "channel aborted (found = abort_code)",
        code.into(),
        0,
    )
}

impl<'a> EndCore<'a> {
    pub(crate) fn new(
        slot: SlotCtl<'a>,
        channel: OpenedChannel,
        role: EndRole,
        me: u32,
        peer: u32,
    ) -> Self {
        EndCore {
            slot,
            channel,
            role,
            me,
            peer,
            status: Status::Live,
        }
    }

    pub(crate) fn channel(&self) -> OpenedChannel {
        self.channel
    }

    pub(crate) fn role(&self) -> EndRole {
        self.role
    }

    pub(crate) fn me(&self) -> u32 {
        self.me
    }

    pub(crate) fn peer(&self) -> u32 {
        self.peer
    }

    pub(crate) fn is_live(&self) -> bool {
        self.status == Status::Live
    }

    /// The sticky outcome of a done end, `Ok` while live.
    pub(crate) fn check_live(&self) -> Result<()> {
        match self.status {
            Status::Live => Ok(()),
            Status::Done(e) => Err(e),
        }
    }

    /// CHAN-12: loads `state` before an operation. OPEN passes; ABORTED releases this end and
    /// fails with `CHANNEL_ABORTED` and the code (CHAN-5); FREE, OPENING or garbage is
    /// `BAD_CHANNEL`.
    pub(crate) fn check_open(&mut self) -> Result<()> {
        self.check_live()?;
        match self.slot.state() {
            Ok(ChannelState::Open) => Ok(()),
            Ok(ChannelState::Aborted) => Err(self.finish_aborted()),
            Ok(other) => Err(self.fail(bad_channel(
                "channel.state (slot not held while an end is attached)",
                other as u64,
                ChannelState::Open as u64,
            ))),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// CHAN-13: when the peer's `released` bit is set while the channel is OPEN, the peer's end
    /// was released on its behalf: fail with `PEER_DIED` (or `CHANNEL_ABORTED` when the state
    /// turned ABORTED) and release. `released` must be a value loaded with Acquire.
    pub(crate) fn check_peer_released(&mut self, released: u32) -> Result<()> {
        if released & self.role.other().released_bit() == 0 {
            return Ok(());
        }
        // Reload the state: a peer that aborted and then released left ABORTED behind.
        self.check_open()?;
        Err(self.finish(Error::new(
            ErrorCode::PeerDied,
            "channel peer released its end without END or ABORTED",
        )))
    }

    /// `released` (Acquire), for CHAN-13 checks.
    pub(crate) fn load_released(&self) -> u32 {
        self.slot.released()
    }

    /// True when the state is no longer OPEN or the peer released: something for a waiting
    /// end to look at (a wake condition; decides nothing by itself).
    pub(crate) fn changed(&self) -> bool {
        !self.is_live()
            || self.slot.state() != Ok(ChannelState::Open)
            || self.slot.released() & self.role.other().released_bit() != 0
    }

    /// CHAN-5: aborts with `code` (non-zero) and releases. True when this call stored ABORTED:
    /// ring the peer's doorbell (WAIT-5). A done end stores nothing and returns false, or its
    /// violation.
    pub(crate) fn abort(&mut self, code: u32) -> Result<bool> {
        if code == 0 {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "abort code (0 is never stored)",
                0,
                1,
            ));
        }
        if let Status::Done(e) = self.status {
            return if e.code.is_violation() {
                Err(e)
            } else {
                Ok(false)
            };
        }
        match self.check_open() {
            Ok(()) => {}
            // Already aborted (by the peer): released by `check_open`, nothing to store.
            Err(e) if e.code == ErrorCode::ChannelAborted => return Ok(false),
            Err(e) => return Err(e),
        }
        let changed = match self.slot.abort(code) {
            Ok(changed) => changed,
            Err(e) => return Err(self.fail(e)),
        };
        // The code that stands is the first one stored (CHAN-5), ours or the peer's.
        let outcome = aborted(self.slot.abort_code());
        self.finish(outcome);
        self.check_released_cleanly()?;
        Ok(changed)
    }

    /// ABORTED was seen: release and keep `CHANNEL_ABORTED` with the stored code (CHAN-5).
    pub(crate) fn finish_aborted(&mut self) -> Error {
        let outcome = aborted(self.slot.abort_code());
        self.finish(outcome)
    }

    /// Releases this end (CHAN-9) and makes `outcome` the answer to every later operation.
    /// Returns the outcome, or `BAD_CHANNEL` when this end's bit was already set (CHAN-12).
    pub(crate) fn finish(&mut self, outcome: Error) -> Error {
        if self.status != Status::Live {
            return self.check_live().err().unwrap_or(outcome);
        }
        match self.slot.release(self.role.released_bit()) {
            Release::Released | Release::Freed => {
                self.status = Status::Done(outcome);
                outcome
            }
            Release::AlreadySet => self.fail(bad_channel(
                "channel.released (own bit set before this end released)",
                self.role.released_bit().into(),
                0,
            )),
        }
    }

    /// Turns a `BAD_CHANNEL` left by [`EndCore::finish`] into an error for callers that
    /// report success otherwise.
    pub(crate) fn check_released_cleanly(&self) -> Result<()> {
        match self.status {
            Status::Done(e) if e.code.is_violation() => Err(e),
            _ => Ok(()),
        }
    }

    /// Stops the end after a violation: no release, no more loads or stores (RING-13).
    pub(crate) fn fail(&mut self, e: Error) -> Error {
        self.status = Status::Done(e);
        e
    }

    /// After an error from the ring or message layer: a violation stops the end (the caller
    /// poisons the region); any other error aborts the channel with its code, so the peer is
    /// not left waiting, and releases.
    pub(crate) fn fail_or_abort(&mut self, e: Error) -> Error {
        if e.code.is_violation() {
            return self.fail(e);
        }
        if self.is_live() {
            let _ = self.abort(e.code as u32);
            if let Status::Done(stored) = self.status {
                if stored.code.is_violation() {
                    return stored;
                }
            }
        }
        self.status = Status::Done(e);
        e
    }

    /// CHAN-8: the runtime decided the peer died (LIVE-2): release; every later operation
    /// fails with `PEER_DIED`.
    pub(crate) fn peer_died(&mut self) -> Result<()> {
        if self.is_live() {
            self.finish(Error::new(ErrorCode::PeerDied, "channel peer died"));
            self.check_released_cleanly()?;
        }
        Ok(())
    }

    /// For `Drop`: an end still live aborts with `CANCELLED` and releases, so that the peer
    /// neither waits for more nor keeps the slot (it notices at its next check, WAIT-4).
    pub(crate) fn abandon(&mut self) {
        if self.is_live() {
            let _ = self.abort(ErrorCode::Cancelled as u32);
        }
    }
}
