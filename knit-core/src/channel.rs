//! Channels (spec/06-channels.md): one-directional, ordered streams of DATA messages from a
//! writer participant to a reader participant, each carried by the ring of one channel slot.
//!
//! - [`open()`] claims a FREE slot and publishes it OPEN (CHAN-1, CHAN-11); the opener announces
//!   the returned [`OpenedChannel`] with a `CHANNEL_OPEN` record on its mailbox (CHAN-2;
//!   `HostMailbox::send_channel_open`, `WorkerMailbox::send_channel_open`).
//! - [`attach()`] validates an announcement against the slot (CHAN-2, CHAN-7) and hands out the
//!   participant's end: a [`ChannelWriter`] or a [`ChannelReader`]. The opener attaches its own
//!   end the same way.
//! - [`release_for_dead`] releases the ends of a dead participant (CHAN-10).
//!
//! Like the mailboxes, the ends never wait and make no system call: every operation says
//! whether it published a record or changed the channel's state, so that the runtime rings the
//! peer's doorbell (WAIT-5, WAIT-6), and an operation that would have to wait returns at once
//! (`done: false`, `None`). A violation is returned with its registry code and the end touches
//! the slot no more; poisoning the region is the caller's job (RING-13, ERR-2).

mod dead;
mod end;
mod open;
mod reader;
mod slot;
mod writer;

pub use dead::{release_for_dead, DeadRelease};
pub use open::{attach, open, ChannelEnd};
pub use reader::{ChannelEvent, ChannelMessage, ChannelReader, Received};
pub use writer::{ChannelWriter, DataLoan, OutgoingData};

use crate::records::ChannelOpen;

/// Bit of `released` that the writing end sets (CHAN-9).
pub const WRITER_RELEASED: u32 = 1;
/// Bit of `released` that the reading end sets (CHAN-9).
pub const READER_RELEASED: u32 = 2;

/// The `state` of a channel slot (spec/06 §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ChannelState {
    /// Unused; an opener may claim it (CHAN-1).
    Free = 0,
    /// Claimed by an opener that is writing the slot (CHAN-1).
    Opening = 1,
    /// Open: the writer produces, the reader consumes (CHAN-3).
    Open = 2,
    /// Aborted by either end with `abort_code` (CHAN-5).
    Aborted = 3,
}

impl ChannelState {
    /// The state for `value`, or `None` for a value above 3 (CHAN-7).
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(ChannelState::Free),
            1 => Some(ChannelState::Opening),
            2 => Some(ChannelState::Open),
            3 => Some(ChannelState::Aborted),
            _ => None,
        }
    }
}

/// Which end of a channel a participant holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndRole {
    /// The participant named `writer`: produces into the ring (CHAN-3).
    Writer,
    /// The participant named `reader`: consumes the ring (CHAN-3).
    Reader,
}

impl EndRole {
    /// This end's bit of `released` (CHAN-9).
    pub const fn released_bit(self) -> u32 {
        match self {
            EndRole::Writer => WRITER_RELEASED,
            EndRole::Reader => READER_RELEASED,
        }
    }

    /// The other end's role.
    #[must_use]
    pub const fn other(self) -> Self {
        match self {
            EndRole::Writer => EndRole::Reader,
            EndRole::Reader => EndRole::Writer,
        }
    }
}

/// A channel as an opener announces it (CHAN-2): slot index, the epoch of this opening, tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpenedChannel {
    /// The channel slot index.
    pub index: u32,
    /// The slot's `epoch` for this opening; an announcement of another epoch is refused.
    pub epoch: u32,
    /// The opener-defined tag (by convention the `request_id` the channel belongs to, or 0).
    pub tag: u64,
}

impl OpenedChannel {
    /// The body of the `CHANNEL_OPEN` record that announces this channel (CHAN-2).
    pub fn announcement(&self) -> ChannelOpen {
        ChannelOpen {
            channel: self.index,
            epoch: self.epoch,
            tag: self.tag,
        }
    }
}

impl From<ChannelOpen> for OpenedChannel {
    fn from(open: ChannelOpen) -> Self {
        OpenedChannel {
            index: open.channel,
            epoch: open.epoch,
            tag: open.tag,
        }
    }
}

impl From<OpenedChannel> for ChannelOpen {
    fn from(opened: OpenedChannel) -> Self {
        opened.announcement()
    }
}
