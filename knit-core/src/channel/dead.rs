//! CHAN-10: the host releases the channel ends of a dead participant.

use super::slot::{Release, SlotCtl, SlotSnapshot};
use super::{ChannelState, EndRole, OpenedChannel};
use crate::error::{Error, ErrorCode, Result};
use crate::region::Region;

/// How often a slot whose `epoch` changed while it was read is read again (CHAN-10). A slot
/// that names the dead participant with its bit clear cannot be reopened, so a slot still
/// changing after this many reads does not name it.
const SNAPSHOT_TRIES: usize = 4;

/// What [`release_for_dead`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeadRelease {
    /// Ends released: the dead participant's, and the host's ends it never attached.
    pub ends_released: u32,
    /// Slots those releases completed, now FREE.
    pub slots_freed: u32,
}

/// CHAN-10: the host, resetting dead worker `dead` (PART-4), releases on its behalf every
/// channel end it holds, and the host's own end of those channels when
/// `host_holds(channel)` says the host never attached it (its announcement may have been lost
/// with the dead worker's rings).
///
/// Call it after the host stopped reading announcements from the dead worker's response ring:
/// an announcement read afterwards may name a slot this call freed. The host's attached ends
/// then see the worker's bit set and report `PEER_DIED` (CHAN-13); ring the host's own
/// doorbell after this call so that its waiting threads look.
///
/// `INVALID_ARGUMENT` when `dead` is the host (0) or outside the participant table.
/// `BAD_CHANNEL` (the caller poisons the region) for a slot with a state above 3, or an open
/// slot whose `writer` or `reader` is out of range or equal (CHAN-7).
pub fn release_for_dead(
    region: &Region<'_>,
    dead: u32,
    mut host_holds: impl FnMut(&OpenedChannel) -> bool,
) -> Result<DeadRelease> {
    let geometry = region.geometry();
    let workers = geometry.worker_slots();
    if dead == 0 || dead > workers {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "release_for_dead: worker index",
            dead.into(),
            workers.into(),
        ));
    }
    let mut done = DeadRelease::default();
    for index in 0..geometry.channel_slots() {
        let ctl = SlotCtl::new(region.channel_slot(index)?.ctrl)?;
        let Some(snap) = stable_snapshot(&ctl)? else {
            continue;
        };
        if !matches!(snap.state, ChannelState::Open | ChannelState::Aborted) {
            continue;
        }
        snap.check_ends(workers)?;
        let Some(role) = snap.role_of(dead) else {
            continue;
        };
        // The dead participant's bit is clear in this opening (checked on a consistent
        // snapshot), so the slot cannot be freed and reopened until it is set below.
        if snap.released & role.released_bit() != 0 {
            continue;
        }
        let channel = OpenedChannel {
            index,
            epoch: snap.epoch,
            tag: snap.tag,
        };
        if !release_one(&ctl, role, &mut done) {
            continue;
        }
        let other = match role {
            EndRole::Writer => snap.reader,
            EndRole::Reader => snap.writer,
        };
        let other_role = role.other();
        if other == 0 && snap.released & other_role.released_bit() == 0 && !host_holds(&channel) {
            release_one(&ctl, other_role, &mut done);
        }
    }
    Ok(done)
}

/// A snapshot whose fields all belong to one opening, or `None` after [`SNAPSHOT_TRIES`]
/// changing reads.
fn stable_snapshot(ctl: &SlotCtl<'_>) -> Result<Option<SlotSnapshot>> {
    for _ in 0..SNAPSHOT_TRIES {
        let snap = ctl.snapshot()?;
        if snap.stable {
            return Ok(Some(snap));
        }
    }
    Ok(None)
}

/// Releases `role`'s end (CHAN-9) and counts it. Returns false when the slot is now FREE
/// (or the bit was set meanwhile): the caller touches it no more.
fn release_one(ctl: &SlotCtl<'_>, role: EndRole, done: &mut DeadRelease) -> bool {
    match ctl.release(role.released_bit()) {
        Release::Released => {
            done.ends_released += 1;
            true
        }
        Release::Freed => {
            done.ends_released += 1;
            done.slots_freed += 1;
            false
        }
        Release::AlreadySet => false,
    }
}
