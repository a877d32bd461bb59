//! Opening a channel (CHAN-1, CHAN-11) and attaching an end from an announcement (CHAN-2,
//! CHAN-7).

use super::end::{aborted, EndCore};
use super::reader::ChannelReader;
use super::slot::{bad_channel, Release, SlotCtl};
use super::writer::ChannelWriter;
use super::{ChannelState, EndRole, OpenedChannel};
use crate::error::{Error, ErrorCode, Result};
use crate::message::Reassembler;
use crate::records::{ChannelOpen, RingKind};
use crate::region::{ChannelSlot, Region};
use crate::ring::{Consumer, Producer};

/// The end a participant attached: it is named `writer` or `reader` by the slot (CHAN-2).
#[derive(Debug)]
pub enum ChannelEnd<'a> {
    /// This participant writes the channel.
    Writer(ChannelWriter<'a>),
    /// This participant reads the channel.
    Reader(ChannelReader<'a>),
}

impl ChannelEnd<'_> {
    /// Which end this is.
    pub fn role(&self) -> EndRole {
        match self {
            ChannelEnd::Writer(_) => EndRole::Writer,
            ChannelEnd::Reader(_) => EndRole::Reader,
        }
    }
}

fn misuse(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::InvalidArgument, what, found, expected)
}

/// CHAN-1, CHAN-11: opens a channel between `me` and `peer`, `me` holding the end `role`,
/// and returns what to announce to `peer` (CHAN-2) with `tag`.
///
/// Claims the first FREE slot (compare-and-swap FREE → OPENING), writes it and publishes OPEN.
/// `Ok(None)` when no slot is FREE (the caller waits or reports `WOULD_BLOCK`).
/// `INVALID_ARGUMENT` when the region has no channel slots, `me` = `peer`, either index is
/// outside the participant table, or neither is the host (CHAN-11: one end is the host, the
/// other a worker). `BAD_CHANNEL` when a slot holds a state above 3 (CHAN-7).
///
/// The opener then attaches its own end with [`attach`], like the other end does.
pub fn open(
    region: &Region<'_>,
    me: u32,
    peer: u32,
    role: EndRole,
    tag: u64,
) -> Result<Option<OpenedChannel>> {
    let geometry = region.geometry();
    let workers = geometry.worker_slots();
    if geometry.channel_slots() == 0 {
        return Err(misuse("open: the region has no channel slots", 0, 1));
    }
    if me > workers || peer > workers {
        return Err(misuse(
            "open: participant index",
            u64::from(me.max(peer)),
            u64::from(workers),
        ));
    }
    // CHAN-11: the pair is the two sides of one mailbox: the host and one worker.
    if me == peer || (me != 0 && peer != 0) {
        return Err(misuse(
            "open: the ends must be the host and one worker (CHAN-11)",
            u64::from(me),
            u64::from(peer),
        ));
    }
    let (writer, reader) = match role {
        EndRole::Writer => (me, peer),
        EndRole::Reader => (peer, me),
    };
    for index in 0..geometry.channel_slots() {
        let slot = region.channel_slot(index)?;
        let ctl = SlotCtl::new(slot.ctrl)?;
        if ctl.claim()? {
            let epoch = ctl.publish_open(&slot.ring, writer, reader, tag)?;
            return Ok(Some(OpenedChannel { index, epoch, tag }));
        }
    }
    Ok(None)
}

/// CHAN-2: attaches `me`'s end of the channel `announcement` names, which `peer` sent (or,
/// for the opener itself, which it sends to `peer`).
///
/// Checks, each failure being `BAD_CHANNEL` (a violation: the caller poisons the region): the
/// slot index is below `channel_slots`; `state` (Acquire) is OPEN or ABORTED; `epoch` and `tag`
/// equal the announcement's; `writer` and `reader` lie in the participant table and differ
/// (CHAN-7) and are `me` and `peer`, one each; `me`'s `released` bit is clear.
///
/// A slot found ABORTED that passes every other check is not a violation: `me`'s end is
/// released and the result is `CHANNEL_ABORTED` with the code (CHAN-2, CHAN-5).
/// `INVALID_ARGUMENT` for `me` outside the participant table or equal to `peer`.
///
/// Attach each announcement once: two ends of the same role would break CHAN-3, and shared
/// memory cannot tell them apart.
pub fn attach<'a>(
    region: &Region<'a>,
    announcement: ChannelOpen,
    me: u32,
    peer: u32,
) -> Result<ChannelEnd<'a>> {
    let geometry = region.geometry();
    let workers = geometry.worker_slots();
    if me > workers || me == peer {
        return Err(misuse(
            "attach: participant index",
            u64::from(me),
            u64::from(workers),
        ));
    }
    let index = announcement.channel;
    if index >= geometry.channel_slots() {
        return Err(bad_channel(
            "channel_open.channel",
            index.into(),
            geometry.channel_slots().into(),
        ));
    }
    let slot = region.channel_slot(index)?;
    let ctl = SlotCtl::new(slot.ctrl)?;
    let snap = ctl.snapshot()?;
    // An announced slot is held by this end (its bit is clear), so it cannot be reopened
    // while it is read: an epoch that changed meanwhile means the announcement is stale.
    if !snap.stable {
        return Err(bad_channel(
            "channel.epoch (changed while read)",
            snap.epoch.into(),
            announcement.epoch.into(),
        ));
    }
    if !matches!(snap.state, ChannelState::Open | ChannelState::Aborted) {
        return Err(bad_channel(
            "channel.state (announced slot not open)",
            snap.state as u64,
            ChannelState::Open as u64,
        ));
    }
    if snap.epoch != announcement.epoch {
        return Err(bad_channel(
            "channel.epoch (announcement of another opening)",
            snap.epoch.into(),
            announcement.epoch.into(),
        ));
    }
    if snap.tag != announcement.tag {
        return Err(bad_channel("channel.tag", snap.tag, announcement.tag));
    }
    snap.check_ends(workers)?;
    // Both named, and `writer` ≠ `reader`, `me` ≠ `peer`: they hold the two different ends.
    let (Some(role), Some(_)) = (snap.role_of(me), snap.role_of(peer)) else {
        return Err(bad_channel(
            "channel.writer/reader (not this participant and the announcer)",
            me.into(),
            peer.into(),
        ));
    };
    if snap.released & role.released_bit() != 0 {
        return Err(bad_channel(
            "channel.released (this end already released)",
            snap.released.into(),
            0,
        ));
    }
    if snap.state == ChannelState::Aborted {
        return Err(release_aborted(&ctl, role));
    }
    let channel = OpenedChannel {
        index,
        epoch: snap.epoch,
        tag: snap.tag,
    };
    Ok(make_end(
        EndCore::new(ctl, channel, role, me, peer),
        slot,
        geometry.max_message_len(),
    ))
}

/// CHAN-2: the opener aborted before this end attached: release it and report the code.
fn release_aborted(ctl: &SlotCtl<'_>, role: EndRole) -> Error {
    let code = ctl.abort_code();
    match ctl.release(role.released_bit()) {
        Release::Released | Release::Freed => aborted(code),
        Release::AlreadySet => bad_channel(
            "channel.released (this end already released)",
            role.released_bit().into(),
            0,
        ),
    }
}

fn make_end<'a>(end: EndCore<'a>, slot: ChannelSlot<'a>, max_message_len: u64) -> ChannelEnd<'a> {
    // The ring was reset by the opener before OPEN (CHAN-1), which this end saw with Acquire:
    // both endpoints start at position 0.
    match end.role() {
        EndRole::Writer => ChannelEnd::Writer(ChannelWriter::new(
            end,
            Producer::new(slot.ring),
            max_message_len,
        )),
        EndRole::Reader => ChannelEnd::Reader(ChannelReader::new(
            end,
            Consumer::new(slot.ring),
            Reassembler::new(RingKind::Channel, max_message_len),
        )),
    }
}
