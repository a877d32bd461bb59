//! Shared pieces of the knit-core fuzz targets: aligned private memory handed out only as
//! [`SharedMem`], a ring in such memory with hostile stores, and small input helpers.
//!
//! The fuzz targets play a hostile peer: they write raw bytes into the memory the code under
//! test reads, then check that the code only ever answers with typed errors (SEC-1, RING-13)
//! and, where a model exists, that it agrees with the model.

use std::ptr::NonNull;

use knit_core::ring::{RecordHeader, RingRef, HEAD_OFFSET, RING_CTRL_LEN, TAIL_OFFSET};
use knit_core::{ErrorCode, SharedMem};

/// Zeroed, 8-aligned private memory, accessed only through [`AlignedMem::mem`].
pub struct AlignedMem {
    ptr: NonNull<u64>,
    words: usize,
    len: usize,
}

impl AlignedMem {
    /// `len` zeroed bytes (the allocation is rounded up to whole 8-byte words).
    pub fn new(len: usize) -> Self {
        let words = len.div_ceil(8).max(1);
        let boxed: Box<[u64]> = vec![0u64; words].into_boxed_slice();
        let ptr = NonNull::new(Box::into_raw(boxed).cast::<u64>()).expect("box pointer");
        AlignedMem { ptr, words, len }
    }

    /// `bytes.len()` bytes holding a copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let m = AlignedMem::new(bytes.len());
        m.mem().write(0, bytes).expect("same length");
        m
    }

    /// The whole buffer as shared memory of exactly `len` bytes.
    pub fn mem(&self) -> SharedMem<'_> {
        // SAFETY: `ptr` owns `words * 8 >= len` bytes, 8-aligned, zero-initialised, until
        // `drop`. No Rust reference to them exists: every access goes through the returned
        // view, which borrows `self` and so cannot outlive the allocation.
        unsafe { SharedMem::new(self.ptr.cast::<u8>(), self.len) }
    }

    /// A copy of every byte.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.mem().read(0, &mut out).expect("same length");
        out
    }
}

impl Drop for AlignedMem {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.words);
        // SAFETY: `slice` is exactly the allocation `Box::into_raw` made in `new`, freed once,
        // here; no view of it outlives `self` (views borrow `self`).
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// A ring (128-byte control block and `cap` data bytes) in private memory, with the stores
/// a hostile peer could make.
pub struct TestRing {
    ctrl: AlignedMem,
    data: AlignedMem,
}

impl TestRing {
    /// A reset ring of `cap` data bytes.
    pub fn new(cap: usize) -> Self {
        TestRing {
            ctrl: AlignedMem::new(RING_CTRL_LEN),
            data: AlignedMem::new(cap),
        }
    }

    /// The ring's location.
    pub fn ring(&self) -> RingRef<'_> {
        RingRef {
            ctrl: self.ctrl.mem(),
            data: self.data.mem(),
        }
    }

    /// Data bytes.
    pub fn cap(&self) -> usize {
        self.data.mem().len()
    }

    /// The raw `tail` word.
    pub fn raw_tail(&self) -> u64 {
        self.ctrl.mem().read_u64(TAIL_OFFSET).expect("in bounds")
    }

    /// The raw `head` word.
    pub fn raw_head(&self) -> u64 {
        self.ctrl.mem().read_u64(HEAD_OFFSET).expect("in bounds")
    }

    /// A hostile store into `tail`.
    pub fn set_tail(&self, v: u64) {
        self.ctrl
            .mem()
            .write_u64(TAIL_OFFSET, v)
            .expect("in bounds");
    }

    /// A hostile store into `head`.
    pub fn set_head(&self, v: u64) {
        self.ctrl
            .mem()
            .write_u64(HEAD_OFFSET, v)
            .expect("in bounds");
    }

    /// A hostile record header at data offset `off` (wrapped into the data area, 8-aligned
    /// like every record start).
    pub fn put_header(&self, off: usize, header: RecordHeader) {
        let off = (off & (self.cap() - 1)) & !7;
        self.data
            .mem()
            .write(off, &header.to_bytes())
            .expect("aligned header inside the data area");
    }

    /// Hostile bytes at data offset `off` (wrapped, cut at the end of the data area).
    pub fn put_bytes(&self, off: usize, bytes: &[u8]) {
        let off = off & (self.cap() - 1);
        let n = bytes.len().min(self.cap() - off);
        self.data
            .mem()
            .write(off, &bytes[..n])
            .expect("inside the data area");
    }

    /// A copy of `len` data bytes at `off`.
    pub fn data_bytes(&self, off: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        self.data.mem().read(off, &mut out).expect("in bounds");
        out
    }
}

/// The error codes a ring endpoint may report for peer-written values (RING-8 to RING-10,
/// RING-17); anything else from a hostile peer is a bug.
pub fn is_ring_violation(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadPosition
            | ErrorCode::BadRecordLength
            | ErrorCode::BadPadding
            | ErrorCode::UnknownRecord
    )
}

/// `8 + align8(len)`: the bytes a record with a body of `len` occupies (spec §3.2).
pub fn record_size(len: usize) -> u64 {
    8 + (len as u64).next_multiple_of(8)
}

/// Deterministic body bytes for the `seq`-th record or message: different for every record and
/// every offset, so that a misplaced byte is caught.
pub fn pattern(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|k| (seq.wrapping_mul(131).wrapping_add(k as u64 * 7) ^ (k as u64 >> 8)) as u8)
        .collect()
}

/// A ring capacity from a fuzzer byte: a power of two from 16 (the smallest the ring code
/// takes) to 16 KiB, so that wraps happen in few operations.
pub fn small_cap(choice: u8) -> usize {
    1usize << (4 + u32::from(choice % 11))
}
