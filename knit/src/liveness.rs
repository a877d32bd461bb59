//! Deciding whether a peer is alive (LIVE-2, LIVE-8, PART-3, PART-8), shared by the host's
//! monitor and the worker's serve loop.

use knit_core::layout::ParticipantState;
use knit_core::participant::Participant;

use crate::identity::is_alive;

/// What a participant entry says about its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerStatus {
    /// ACTIVE and its process runs (or no evidence of death yet, LIVE-8).
    Active,
    /// RESERVED or ATTACHING (or EMPTY): a worker is being started; the caller applies its
    /// attach timeout (LIVE-2).
    Starting(ParticipantState),
    /// ACTIVE but its process is gone (LIVE-2): the entry still says ACTIVE.
    Died,
    /// The owner stored DETACHED (PART-5).
    Detached,
    /// Someone stored DEAD (LIVE-3).
    Dead,
}

/// Reads entry `p` once (PART-3, PART-6) and decides (LIVE-2). A thread participant
/// (PART-9) records the host's identity, so its check is the host process's.
///
/// A garbage entry is a violation (`BAD_PARTICIPANT`), returned as the error.
pub fn peer_status(p: &Participant<'_>) -> knit_core::Result<PeerStatus> {
    let snap = p.snapshot()?;
    Ok(match snap.state {
        ParticipantState::Active => match snap.identity {
            // LIVE-8: only evidence of death counts; `is_alive` answers true when unsure.
            Some(id) if !is_alive(id.pid, id.start_time) => PeerStatus::Died,
            _ => PeerStatus::Active,
        },
        ParticipantState::Detached => PeerStatus::Detached,
        ParticipantState::Dead => PeerStatus::Dead,
        s
        @ (ParticipantState::Empty | ParticipantState::Reserved | ParticipantState::Attaching) => {
            PeerStatus::Starting(s)
        }
    })
}
