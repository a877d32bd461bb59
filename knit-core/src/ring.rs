//! The single-producer / single-consumer record ring of spec/03-ring.md.

use crate::shared::SharedMem;

/// Size of a ring's control block: `tail` on one cache line, `head` on the next (spec §3.1).
pub const RING_CTRL_LEN: usize = 128;
/// Offset of `tail` in the control block.
pub const TAIL_OFFSET: usize = 0x00;
/// Offset of `head` in the control block.
pub const HEAD_OFFSET: usize = 0x40;

/// The location of one ring in shared memory: its control block and its data area.
/// Geometry comes from a validated header copy (HDR-5), never from the ring itself.
#[derive(Clone, Copy, Debug)]
pub struct RingRef<'a> {
    /// The 128-byte control block.
    pub ctrl: SharedMem<'a>,
    /// The data area; its length is the capacity, a power of two of at least 4096.
    pub data: SharedMem<'a>,
}
