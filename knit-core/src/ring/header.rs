//! The 8-byte record header of spec §3.2 and its flags.

/// Size of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 8;

/// The padding record type (PAD, spec §3.2): fills the data area up to its end.
pub const TYPE_PAD: u16 = 1;

/// Record header flags (spec §3.2). Bits not named here are reserved: written as zero,
/// ignored when read (CONV-4), except on a PAD record, whose flags must be 0 (RING-10).
pub mod flags {
    /// The first record of a message (MSG-1).
    pub const FIRST: u16 = 1;
    /// The last record of a message (MSG-1).
    pub const LAST: u16 = 2;
    /// A consumer that does not know the record's type releases it and continues (RING-11).
    pub const SKIPPABLE: u16 = 0x8000;
    /// Every flag this version defines; a producer writes no other bit (CONV-4).
    pub const DEFINED: u16 = FIRST | LAST | SKIPPABLE;
}

/// A record header: body length, record type and flags (spec §3.2), as a private copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Body length in bytes, excluding the header.
    pub len: u32,
    /// Record type (spec/09-registry.md §9.3); 0 is never valid.
    pub rtype: u16,
    /// Flags, see [`flags`].
    pub flags: u16,
}

impl RecordHeader {
    /// Bytes the record occupies in the ring: `8 + align8(len)` (spec §3.2).
    ///
    /// Exact on 64-bit targets; saturates instead of overflowing where `usize` is narrower,
    /// which still exceeds every ring's `cap / 2` and so is rejected (RING-9).
    pub fn size(&self) -> usize {
        ((self.len as usize).saturating_add(7) & !7).saturating_add(RECORD_HEADER_LEN)
    }

    /// [`RecordHeader::size`] as a `u64`, exact on every target.
    pub(crate) fn size_u64(self) -> u64 {
        record_size(u64::from(self.len))
    }

    /// The little-endian wire form (CONV-2).
    pub fn to_bytes(&self) -> [u8; 8] {
        let [l0, l1, l2, l3] = self.len.to_le_bytes();
        let [t0, t1] = self.rtype.to_le_bytes();
        let [f0, f1] = self.flags.to_le_bytes();
        [l0, l1, l2, l3, t0, t1, f0, f1]
    }

    /// Decodes the little-endian wire form. Every bit pattern is a header; validation is the
    /// consumer's (RING-9, RING-10, RING-17).
    pub fn from_bytes(b: [u8; 8]) -> Self {
        let [l0, l1, l2, l3, t0, t1, f0, f1] = b;
        RecordHeader {
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            rtype: u16::from_le_bytes([t0, t1]),
            flags: u16::from_le_bytes([f0, f1]),
        }
    }
}

/// `8 + align8(body_len)` for a body length of at most `u32::MAX` (never overflows).
pub(crate) fn record_size(body_len: u64) -> u64 {
    RECORD_HEADER_LEN as u64 + align8(body_len)
}

/// `align8(n)` of spec/00-conventions.md, for `n` far below `u64::MAX`.
pub(crate) fn align8(n: u64) -> u64 {
    n.saturating_add(7) & !7
}
