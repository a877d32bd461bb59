//! The byte layout of spec/01-region.md and spec/02-participants.md: the region header, the
//! control block, the participant entry and the channel control block as `zerocopy` structs,
//! plus the offsets of every atomic field.
//!
//! Every field is an explicitly little-endian integer (CONV-2) of alignment 1, so a struct's
//! in-memory bytes are exactly its wire bytes. The `const` assertions below pin each offset to
//! its row of the spec tables: a change that moves a field fails to compile.
//!
//! These structs are for private copies (HDR-5) and for building images. Atomic fields are
//! accessed in shared memory only through [`crate::SharedMem::atomic_u32`] at the `*_OFFSET`
//! constants (CONV-5), never through these structs.

use core::mem::{offset_of, size_of};

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::crc32::Crc32;

/// The region magic `"KNIT\r\n\x1a\n"` (HDR-1).
pub const MAGIC: [u8; 8] = *b"KNIT\r\n\x1a\n";
/// The major version this crate implements (HDR-2).
pub const MAJOR: u16 = 1;
/// The minor version this crate writes.
pub const MINOR: u16 = 0;

/// Bytes of the fixed header at offset 0, and `header_len` as a 1.0 creator writes it.
pub const HEADER_LEN: usize = 256;
/// Offset of the control block (§1.2).
pub const CONTROL_OFFSET: usize = 0x100;
/// Bytes of the control block.
pub const CONTROL_LEN: usize = 64;
/// The first offset a section may start at in a region with a 256-byte header (HDR-6).
pub const FIRST_SECTION_OFFSET: usize = 0x140;
/// The cache line of version 1.0 (`cache_line`, CONV-3).
pub const CACHE_LINE: usize = 64;
/// Bytes per participant entry written by a 1.0 creator (`participant_stride`).
pub const PARTICIPANT_STRIDE: usize = 128;
/// Bytes of the fixed part of a participant entry that 1.0 defines.
pub const PARTICIPANT_ENTRY_LEN: usize = 128;
/// Bytes of a channel control block (spec/06 §6.1).
pub const CHANNEL_CTRL_LEN: usize = 64;
/// Bytes of one cancel table entry (spec/05 §5.5).
pub const CANCEL_ENTRY_LEN: usize = 8;

/// Offset of `header_crc` in the header.
pub const HEADER_CRC_OFFSET: usize = 0xF8;

// --- bounds of the header table (§1.1) ---------------------------------------------------------

/// Largest `worker_slots`.
pub const MAX_WORKER_SLOTS: u32 = 1024;
/// Largest `channel_slots`.
pub const MAX_CHANNEL_SLOTS: u32 = 4096;
/// Largest `inflight_max`.
pub const MAX_INFLIGHT: u32 = 65536;
/// Smallest ring capacity.
pub const MIN_RING_CAP: u32 = 4096;
/// Largest ring capacity (2^30).
pub const MAX_RING_CAP: u32 = 1 << 30;
/// Largest `max_message_len` (2^40).
pub const MAX_MESSAGE_LEN: u64 = 1 << 40;

// --- feature bits (spec/09 §9.5) ---------------------------------------------------------------

/// Optional feature bit 0: the region has channel slots.
pub const FEATURE_CHANNELS: u64 = 1;
/// Every feature bit this implementation understands; a required bit outside it is refused (HDR-3).
pub const KNOWN_FEATURES: u64 = FEATURE_CHANNELS;

// --- control block fields, absolute offsets in the region (§1.2) --------------------------------

/// `init_state`, u32 atomic.
pub const INIT_STATE_OFFSET: usize = 0x100;
/// `poison_code`, u32 atomic.
pub const POISON_CODE_OFFSET: usize = 0x104;
/// `poisoned_by`, u32 atomic.
pub const POISONED_BY_OFFSET: usize = 0x108;

// --- participant entry fields, offsets in the entry (spec/02 §2.1) -----------------------------

/// `state`, u32 atomic.
pub const P_STATE: usize = 0x00;
/// `role`, u32.
pub const P_ROLE: usize = 0x04;
/// `pid`, u32.
pub const P_PID: usize = 0x08;
/// `epoch`, u32 atomic.
pub const P_EPOCH: usize = 0x0C;
/// `start_time`, u64.
pub const P_START_TIME: usize = 0x10;
/// `heartbeat_ns`, u64 atomic.
pub const P_HEARTBEAT: usize = 0x18;
/// `impl_name`, 32 bytes.
pub const P_IMPL_NAME: usize = 0x20;
/// Length of `impl_name`.
pub const IMPL_NAME_LEN: usize = 32;
/// `bell_seq`, u32 atomic: the doorbell's futex word.
pub const P_BELL_SEQ: usize = 0x40;
/// `bell_sleepers`, u32 atomic.
pub const P_BELL_SLEEPERS: usize = 0x44;

// --- channel control block fields, offsets in the slot (spec/06 §6.1) ---------------------------

/// `state`, u32 atomic.
pub const CH_STATE: usize = 0x00;
/// `epoch`, u32 atomic.
pub const CH_EPOCH: usize = 0x04;
/// `writer`, u32.
pub const CH_WRITER: usize = 0x08;
/// `reader`, u32.
pub const CH_READER: usize = 0x0C;
/// `tag`, u64.
pub const CH_TAG: usize = 0x10;
/// `abort_code`, u32 atomic.
pub const CH_ABORT_CODE: usize = 0x18;
/// `released`, u32 atomic.
pub const CH_RELEASED: usize = 0x1C;

// --- layout inside a mailbox and a channel slot (§1.3) ------------------------------------------

/// Bytes of the two ring control blocks of a mailbox.
pub const MAILBOX_RING_CTRLS_LEN: usize = 2 * crate::ring::RING_CTRL_LEN;
/// Offset of the ring control block inside a channel slot.
pub const CHANNEL_RING_CTRL_OFFSET: usize = CHANNEL_CTRL_LEN;
/// Offset of the ring data inside a channel slot; also the fixed overhead of a slot.
pub const CHANNEL_RING_DATA_OFFSET: usize = CHANNEL_CTRL_LEN + crate::ring::RING_CTRL_LEN;

/// The region header (§1.1), 256 bytes at offset 0, immutable after initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct RegionHeader {
    /// `"KNIT\r\n\x1a\n"`.
    pub magic: [u8; 8],
    /// Major version.
    pub major: U16,
    /// Minor version.
    pub minor: U16,
    /// Bytes of the header, including an extension after the control block.
    pub header_len: U32,
    /// Total bytes of the region.
    pub region_len: U64,
    /// Feature bits a participant must understand.
    pub required_features: U64,
    /// Feature bits a participant may ignore.
    pub optional_features: U64,
    /// 64.
    pub cache_line: U32,
    /// Number of mailboxes.
    pub worker_slots: U32,
    /// Number of channel slots.
    pub channel_slots: U32,
    /// Entries of each cancel table.
    pub inflight_max: U32,
    /// Data bytes of each request ring.
    pub request_ring_cap: U32,
    /// Data bytes of each response ring.
    pub response_ring_cap: U32,
    /// Data bytes of each channel ring.
    pub channel_ring_cap: U32,
    /// Bytes per participant entry.
    pub participant_stride: U32,
    /// Largest message payload.
    pub max_message_len: U64,
    /// Offset of the participant table.
    pub participants_off: U64,
    /// Offset of mailbox 0.
    pub mailboxes_off: U64,
    /// Bytes from one mailbox to the next.
    pub mailbox_stride: U64,
    /// Offset of channel slot 0.
    pub channels_off: U64,
    /// Bytes from one channel slot to the next.
    pub channel_stride: U64,
    /// Wall-clock creation time, informative.
    pub created_unix_ns: U64,
    /// 16 random bytes chosen by the creator (HDR-8).
    pub region_id: [u8; 16],
    /// Reserved, zero (CONV-4).
    pub reserved0: [u8; 104],
    /// CRC-32 of the header with this field as zero (HDR-4).
    pub header_crc: U32,
    /// Reserved, zero.
    pub reserved1: [u8; 4],
}

impl RegionHeader {
    /// The checksum HDR-4 defines: CRC-32 of the 256 header bytes with `header_crc` as zero.
    pub fn checksum(&self) -> u32 {
        let bytes = self.as_bytes();
        let mut c = Crc32::new();
        c.update(bytes.get(..HEADER_CRC_OFFSET).unwrap_or_default());
        c.update(&[0u8; 4]);
        c.update(bytes.get(HEADER_CRC_OFFSET + 4..).unwrap_or_default());
        c.finish()
    }

    /// An all-zero header, to fill in.
    pub fn zeroed() -> Self {
        <Self as FromZeros>::new_zeroed()
    }
}

/// The control block (§1.2), 64 bytes at [`CONTROL_OFFSET`]. Field offsets are relative to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ControlBlock {
    /// [`InitState`], atomic.
    pub init_state: U32,
    /// 0 healthy, otherwise the error code of the first violation, atomic.
    pub poison_code: U32,
    /// Participant index + 1 of the finder, 0 unknown, atomic.
    pub poisoned_by: U32,
    /// Reserved, zero.
    pub reserved: [u8; 52],
}

/// A participant entry (spec/02 §2.1), 128 bytes in 1.0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ParticipantEntry {
    /// [`ParticipantState`], atomic.
    pub state: U32,
    /// [`Role`].
    pub role: U32,
    /// Operating-system process id.
    pub pid: U32,
    /// Incremented at each reservation, atomic.
    pub epoch: U32,
    /// Process start time (spec/02 §2.3).
    pub start_time: U64,
    /// `CLOCK_MONOTONIC` of the owner's last sign of life, atomic.
    pub heartbeat_ns: U64,
    /// UTF-8 implementation name, zero padded.
    pub impl_name: [u8; IMPL_NAME_LEN],
    /// Doorbell sequence, the futex word, atomic.
    pub bell_seq: U32,
    /// Owner's threads announced asleep, atomic.
    pub bell_sleepers: U32,
    /// Reserved, zero.
    pub reserved: [u8; 56],
}

/// A channel control block (spec/06 §6.1), 64 bytes at the start of a channel slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct ChannelControl {
    /// Channel state, atomic.
    pub state: U32,
    /// Incremented at each open, atomic.
    pub epoch: U32,
    /// Participant index of the writing end.
    pub writer: U32,
    /// Participant index of the reading end.
    pub reader: U32,
    /// Opener-defined tag.
    pub tag: U64,
    /// Error code given with ABORTED, atomic.
    pub abort_code: U32,
    /// Bit 0 writer released, bit 1 reader released, atomic.
    pub released: U32,
    /// Reserved, zero.
    pub reserved: [u8; 32],
}

// --- compile-time proof that the structs match the spec tables ----------------------------------

const _: () = {
    assert!(size_of::<RegionHeader>() == HEADER_LEN);
    assert!(offset_of!(RegionHeader, magic) == 0x00);
    assert!(offset_of!(RegionHeader, major) == 0x08);
    assert!(offset_of!(RegionHeader, minor) == 0x0A);
    assert!(offset_of!(RegionHeader, header_len) == 0x0C);
    assert!(offset_of!(RegionHeader, region_len) == 0x10);
    assert!(offset_of!(RegionHeader, required_features) == 0x18);
    assert!(offset_of!(RegionHeader, optional_features) == 0x20);
    assert!(offset_of!(RegionHeader, cache_line) == 0x28);
    assert!(offset_of!(RegionHeader, worker_slots) == 0x2C);
    assert!(offset_of!(RegionHeader, channel_slots) == 0x30);
    assert!(offset_of!(RegionHeader, inflight_max) == 0x34);
    assert!(offset_of!(RegionHeader, request_ring_cap) == 0x38);
    assert!(offset_of!(RegionHeader, response_ring_cap) == 0x3C);
    assert!(offset_of!(RegionHeader, channel_ring_cap) == 0x40);
    assert!(offset_of!(RegionHeader, participant_stride) == 0x44);
    assert!(offset_of!(RegionHeader, max_message_len) == 0x48);
    assert!(offset_of!(RegionHeader, participants_off) == 0x50);
    assert!(offset_of!(RegionHeader, mailboxes_off) == 0x58);
    assert!(offset_of!(RegionHeader, mailbox_stride) == 0x60);
    assert!(offset_of!(RegionHeader, channels_off) == 0x68);
    assert!(offset_of!(RegionHeader, channel_stride) == 0x70);
    assert!(offset_of!(RegionHeader, created_unix_ns) == 0x78);
    assert!(offset_of!(RegionHeader, region_id) == 0x80);
    assert!(offset_of!(RegionHeader, reserved0) == 0x90);
    assert!(offset_of!(RegionHeader, header_crc) == HEADER_CRC_OFFSET);
    assert!(offset_of!(RegionHeader, reserved1) == 0xFC);

    assert!(size_of::<ControlBlock>() == CONTROL_LEN);
    assert!(CONTROL_OFFSET + offset_of!(ControlBlock, init_state) == INIT_STATE_OFFSET);
    assert!(CONTROL_OFFSET + offset_of!(ControlBlock, poison_code) == POISON_CODE_OFFSET);
    assert!(CONTROL_OFFSET + offset_of!(ControlBlock, poisoned_by) == POISONED_BY_OFFSET);
    assert!(offset_of!(ControlBlock, reserved) == 0x0C);
    assert!(CONTROL_OFFSET == HEADER_LEN);
    assert!(FIRST_SECTION_OFFSET == CONTROL_OFFSET + CONTROL_LEN);

    assert!(size_of::<ParticipantEntry>() == PARTICIPANT_ENTRY_LEN);
    assert!(PARTICIPANT_ENTRY_LEN == PARTICIPANT_STRIDE);
    assert!(offset_of!(ParticipantEntry, state) == P_STATE);
    assert!(offset_of!(ParticipantEntry, role) == P_ROLE);
    assert!(offset_of!(ParticipantEntry, pid) == P_PID);
    assert!(offset_of!(ParticipantEntry, epoch) == P_EPOCH);
    assert!(offset_of!(ParticipantEntry, start_time) == P_START_TIME);
    assert!(offset_of!(ParticipantEntry, heartbeat_ns) == P_HEARTBEAT);
    assert!(offset_of!(ParticipantEntry, impl_name) == P_IMPL_NAME);
    assert!(offset_of!(ParticipantEntry, bell_seq) == P_BELL_SEQ);
    assert!(offset_of!(ParticipantEntry, bell_sleepers) == P_BELL_SLEEPERS);
    assert!(offset_of!(ParticipantEntry, reserved) == 0x48);
    // The doorbell sits on its own cache line (CONV-3, spec/02 §2.1).
    assert!(P_BELL_SEQ % CACHE_LINE == 0);

    assert!(size_of::<ChannelControl>() == CHANNEL_CTRL_LEN);
    assert!(offset_of!(ChannelControl, state) == CH_STATE);
    assert!(offset_of!(ChannelControl, epoch) == CH_EPOCH);
    assert!(offset_of!(ChannelControl, writer) == CH_WRITER);
    assert!(offset_of!(ChannelControl, reader) == CH_READER);
    assert!(offset_of!(ChannelControl, tag) == CH_TAG);
    assert!(offset_of!(ChannelControl, abort_code) == CH_ABORT_CODE);
    assert!(offset_of!(ChannelControl, released) == CH_RELEASED);
    assert!(offset_of!(ChannelControl, reserved) == 0x20);
    assert!(CHANNEL_RING_DATA_OFFSET == 192);
    assert!(MAILBOX_RING_CTRLS_LEN == 256);
};

/// `init_state` values (§1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum InitState {
    /// Never written.
    Blank = 0,
    /// The creator is writing the region.
    Initialising = 1,
    /// The region is ready to attach.
    Ready = 2,
}

impl InitState {
    /// The state for `value`, or `None` for a value INIT-4 refuses.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(InitState::Blank),
            1 => Some(InitState::Initialising),
            2 => Some(InitState::Ready),
            _ => None,
        }
    }
}

/// Participant `state` values (spec/02 §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ParticipantState {
    /// No participant.
    Empty = 0,
    /// Assigned by the host to a worker it is starting.
    Reserved = 1,
    /// Claimed by a worker writing its identity.
    Attaching = 2,
    /// Identity valid; serving.
    Active = 3,
    /// Left cleanly.
    Detached = 4,
    /// Found dead by another participant.
    Dead = 5,
}

impl ParticipantState {
    /// The state for `value`, or `None` for a value above 5 (PART-6).
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(ParticipantState::Empty),
            1 => Some(ParticipantState::Reserved),
            2 => Some(ParticipantState::Attaching),
            3 => Some(ParticipantState::Active),
            4 => Some(ParticipantState::Detached),
            5 => Some(ParticipantState::Dead),
            _ => None,
        }
    }
}

/// Participant `role` values (spec/02 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Role {
    /// Not written.
    None = 0,
    /// The host, entry 0.
    Host = 1,
    /// A worker, entries 1 to `worker_slots`.
    Worker = 2,
}

impl Role {
    /// The role for `value`, or `None` for an unassigned value.
    pub const fn from_u32(value: u32) -> Option<Self> {
        match value {
            0 => Some(Role::None),
            1 => Some(Role::Host),
            2 => Some(Role::Worker),
            _ => None,
        }
    }

    /// The role the entry at `index` carries once written: host for 0, worker otherwise.
    pub const fn for_index(index: u32) -> Self {
        if index == 0 {
            Role::Host
        } else {
            Role::Worker
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_is_the_spec_bytes() {
        assert_eq!(MAGIC, [0x4B, 0x4E, 0x49, 0x54, 0x0D, 0x0A, 0x1A, 0x0A]);
    }

    #[test]
    fn enums_round_trip_and_refuse_unknown_values() {
        for v in 0..3 {
            assert_eq!(InitState::from_u32(v).map(|s| s as u32), Some(v));
            assert_eq!(Role::from_u32(v).map(|r| r as u32), Some(v));
        }
        for v in 0..6 {
            assert_eq!(ParticipantState::from_u32(v).map(|s| s as u32), Some(v));
        }
        assert_eq!(InitState::from_u32(3), None);
        assert_eq!(InitState::from_u32(u32::MAX), None);
        assert_eq!(ParticipantState::from_u32(6), None);
        assert_eq!(Role::from_u32(3), None);
        assert_eq!(Role::for_index(0), Role::Host);
        assert_eq!(Role::for_index(7), Role::Worker);
    }

    #[test]
    fn fields_are_little_endian_bytes() {
        let mut h = RegionHeader::zeroed();
        h.major = U16::new(0x0102);
        h.region_len = U64::new(0x1122_3344_5566_7788);
        let b = h.as_bytes();
        assert_eq!(&b[0x08..0x0A], &[0x02, 0x01]);
        assert_eq!(
            &b[0x10..0x18],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
    }

    #[test]
    fn checksum_ignores_the_crc_field_itself() {
        let mut h = RegionHeader::zeroed();
        h.magic = MAGIC;
        let c = h.checksum();
        h.header_crc = U32::new(0xDEAD_BEEF);
        assert_eq!(h.checksum(), c);
        h.reserved1 = [1, 0, 0, 0];
        assert_ne!(h.checksum(), c, "bytes after header_crc are covered");
        // Equal to the CRC of the bytes with the field zeroed, computed the plain way.
        h.header_crc = U32::new(0);
        assert_eq!(h.checksum(), crate::crc32::crc32(h.as_bytes()));
    }
}
