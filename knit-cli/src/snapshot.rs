//! A read-only snapshot of a region: everything `knit inspect` shows, as plain data.
//!
//! Every value is copied out of shared memory once (SEC-2) and the geometry comes from the
//! validated header copy (HDR-5). Taking a snapshot never writes to the region.

use knit_core::layout::{ParticipantState, Role};
use knit_core::region::Region;
use knit_core::ring::RingRef;
use knit_core::{ErrorCode, SharedMem};
use serde::Serialize;

/// The whole region.
#[derive(Debug, Serialize)]
pub struct RegionSnapshot {
    /// `major.minor` of the region.
    pub version: String,
    /// Bytes of the region.
    pub region_len: usize,
    /// Hex of the 16 random creator bytes.
    pub region_id: String,
    /// Creation time, nanoseconds since the Unix epoch (informative).
    pub created_unix_ns: u64,
    /// Required and optional feature bits.
    pub required_features: u64,
    /// Optional feature bits.
    pub optional_features: u64,
    /// Geometry of the rings and tables.
    pub geometry: GeometrySnapshot,
    /// `poison_code` and its registry name, when poisoned.
    pub poison: Option<PoisonSnapshot>,
    /// Every participant entry.
    pub participants: Vec<ParticipantView>,
    /// Every mailbox.
    pub mailboxes: Vec<MailboxView>,
    /// Channel slots that are not FREE.
    pub channels: Vec<ChannelView>,
}

/// Sizes from the header.
#[derive(Debug, Serialize)]
pub struct GeometrySnapshot {
    /// Number of mailboxes.
    pub worker_slots: u32,
    /// Number of channel slots.
    pub channel_slots: u32,
    /// Cancel-table entries per mailbox.
    pub inflight_max: u32,
    /// Request ring capacity in bytes.
    pub request_ring_cap: u32,
    /// Response ring capacity in bytes.
    pub response_ring_cap: u32,
    /// Channel ring capacity in bytes.
    pub channel_ring_cap: u32,
    /// Largest message payload.
    pub max_message_len: u64,
}

/// Why the region is poisoned.
#[derive(Debug, Serialize)]
pub struct PoisonSnapshot {
    /// The registry code.
    pub code: u32,
    /// Its registry name, or `unregistered`.
    pub name: String,
    /// Participant index of the finder, when known.
    pub by: Option<u32>,
}

/// One participant entry.
#[derive(Debug, Serialize)]
pub struct ParticipantView {
    /// Entry index: 0 host, `i` the worker of mailbox `i - 1`.
    pub index: u32,
    /// State name, or the violation found reading it.
    pub state: String,
    /// Reservation count.
    pub epoch: u32,
    /// `host` or `worker`, when the identity is readable.
    pub role: Option<String>,
    /// Process id.
    pub pid: Option<u32>,
    /// Process start time (clock ticks since boot on Linux).
    pub start_time: Option<u64>,
    /// Whether the process with that pid and start time is alive now (PART-8).
    pub alive: Option<bool>,
    /// Implementation name and version.
    pub implementation: Option<String>,
}

/// Occupancy of one ring.
#[derive(Debug, Serialize)]
pub struct RingView {
    /// Capacity in bytes.
    pub capacity: usize,
    /// Consumer position.
    pub head: u64,
    /// Producer position.
    pub tail: u64,
    /// Published bytes not yet released, or `None` when the positions are inconsistent.
    pub used: Option<u64>,
}

/// One mailbox.
#[derive(Debug, Serialize)]
pub struct MailboxView {
    /// Mailbox index.
    pub index: u32,
    /// Host to worker.
    pub request: RingView,
    /// Worker to host.
    pub response: RingView,
    /// Cancel-table entries holding a request id.
    pub cancel_entries_set: usize,
}

/// One channel slot in use.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    /// Slot index.
    pub index: u32,
    /// State name or raw value.
    pub state: String,
    /// Opening count.
    pub epoch: u32,
    /// Writer participant index.
    pub writer: u32,
    /// Reader participant index.
    pub reader: u32,
    /// Opener-defined tag.
    pub tag: u64,
    /// The channel's ring.
    pub ring: RingView,
}

/// How a liveness question is answered; injected so that snapshots of golden images in tests
/// do not depend on the processes running on the machine.
pub type AliveFn<'f> = &'f dyn Fn(u32, u64) -> bool;

/// Takes a snapshot of an attached region.
pub fn take(region: &Region<'_>, alive: AliveFn<'_>) -> RegionSnapshot {
    let g = region.geometry();
    let mem = region.memory();
    let poison_code = region.poison_code();
    RegionSnapshot {
        version: format!("{}.{}", knit_core::layout::MAJOR, g.minor()),
        region_len: g.region_len(),
        region_id: hex(&read_array::<16>(&mem, 0x80)),
        created_unix_ns: mem.read_u64(0x78).unwrap_or(0),
        required_features: g.required_features(),
        optional_features: g.optional_features(),
        geometry: GeometrySnapshot {
            worker_slots: g.worker_slots(),
            channel_slots: g.channel_slots(),
            inflight_max: g.inflight_max(),
            request_ring_cap: g.request_ring_cap(),
            response_ring_cap: g.response_ring_cap(),
            channel_ring_cap: g.channel_ring_cap(),
            max_message_len: g.max_message_len(),
        },
        poison: (poison_code != 0).then(|| PoisonSnapshot {
            code: poison_code,
            name: ErrorCode::from_u32(poison_code)
                .map_or("unregistered".into(), |c| c.name().into()),
            by: region.poisoned_by().checked_sub(1),
        }),
        participants: (0..=g.worker_slots())
            .map(|i| participant(region, i, alive))
            .collect(),
        mailboxes: (0..g.worker_slots())
            .filter_map(|m| mailbox(region, m))
            .collect(),
        channels: (0..g.channel_slots())
            .filter_map(|j| channel(region, j))
            .collect(),
    }
}

fn read_array<const N: usize>(mem: &SharedMem<'_>, off: usize) -> [u8; N] {
    let mut b = [0u8; N];
    // An out-of-range read leaves zeros: the header was validated, so it cannot happen.
    let _ = mem.read(off, &mut b);
    b
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn participant(region: &Region<'_>, index: u32, alive: AliveFn<'_>) -> ParticipantView {
    let mut view = ParticipantView {
        index,
        state: String::new(),
        epoch: 0,
        role: None,
        pid: None,
        start_time: None,
        alive: None,
        implementation: None,
    };
    let snapshot = region.participant(index).and_then(|p| p.snapshot());
    match snapshot {
        Err(e) => view.state = format!("invalid ({e})"),
        Ok(s) => {
            view.state = state_name(s.state).into();
            view.epoch = s.epoch;
            if let Some(id) = s.identity {
                view.role = Some(
                    match id.role {
                        Role::Host => "host",
                        Role::Worker => "worker",
                        Role::None => "none",
                    }
                    .into(),
                );
                view.pid = Some(id.pid);
                view.start_time = Some(id.start_time);
                view.alive = Some(id.pid != 0 && alive(id.pid, id.start_time));
                view.implementation = id.impl_name().map(str::to_owned);
            }
        }
    }
    view
}

fn state_name(s: ParticipantState) -> &'static str {
    match s {
        ParticipantState::Empty => "EMPTY",
        ParticipantState::Reserved => "RESERVED",
        ParticipantState::Attaching => "ATTACHING",
        ParticipantState::Active => "ACTIVE",
        ParticipantState::Detached => "DETACHED",
        ParticipantState::Dead => "DEAD",
    }
}

fn ring(r: &RingRef<'_>) -> RingView {
    let (head, tail) = (r.load_head(), r.load_tail());
    let capacity = r.capacity();
    let used = tail.checked_sub(head).filter(|&u| u <= capacity as u64);
    RingView {
        capacity,
        head,
        tail,
        used,
    }
}

fn mailbox(region: &Region<'_>, m: u32) -> Option<MailboxView> {
    let mb = region.mailbox(m).ok()?;
    let entries = region.geometry().inflight_max() as usize;
    let cancel_entries_set = (0..entries)
        .filter(|i| mb.cancel.read_u64(i * 8).is_ok_and(|v| v != 0))
        .count();
    Some(MailboxView {
        index: m,
        request: ring(&mb.request),
        response: ring(&mb.response),
        cancel_entries_set,
    })
}

fn channel(region: &Region<'_>, j: u32) -> Option<ChannelView> {
    use knit_core::layout::{CH_EPOCH, CH_READER, CH_STATE, CH_TAG, CH_WRITER};
    let slot = region.channel_slot(j).ok()?;
    let state = slot.ctrl.read_u32(CH_STATE).ok()?;
    if state == 0 {
        return None;
    }
    Some(ChannelView {
        index: j,
        state: match state {
            1 => "OPENING".into(),
            2 => "OPEN".into(),
            3 => "ABORTED".into(),
            other => format!("invalid ({other})"),
        },
        epoch: slot.ctrl.read_u32(CH_EPOCH).unwrap_or(0),
        writer: slot.ctrl.read_u32(CH_WRITER).unwrap_or(0),
        reader: slot.ctrl.read_u32(CH_READER).unwrap_or(0),
        tag: slot.ctrl.read_u64(CH_TAG).unwrap_or(0),
        ring: ring(&slot.ring),
    })
}

impl RegionSnapshot {
    /// True when no participant with an identity is alive: the condition under which
    /// `knit gc` may remove a named region (MAP-3). Removing the name never unmaps it from a
    /// process that still has it mapped, so a worker that is still attaching is not harmed.
    pub fn abandoned(&self) -> bool {
        !self.participants.iter().any(|p| p.alive == Some(true))
    }
}
