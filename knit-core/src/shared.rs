//! [`SharedMem`]: a bounds-checked view of bytes that other processes may write at any moment.
//!
//! Every access to a region goes through this type. It never hands out a Rust reference to
//! peer-written bytes except through the explicitly `unsafe` borrow functions (zero copy), and
//! every plain read copies bytes out, so that a decision is taken on a private copy (SEC-2).

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::error::{Error, ErrorCode, Result};

use crate::sync::{AtomicU32, AtomicU64};

/// A view of `len` bytes of shared memory starting at `ptr`, valid for lifetime `'a`.
///
/// Other participants may write any byte of it at any time. The view therefore treats its
/// contents as plain, untrusted bytes: copies in and out, and atomics at aligned offsets.
#[derive(Clone, Copy, Debug)]
pub struct SharedMem<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _life: PhantomData<&'a [core::cell::UnsafeCell<u8>]>,
}

// SAFETY: `SharedMem` is a pointer-and-length view of memory that is, by construction
// (see `SharedMem::new`), shared between threads and processes and only accessed through
// atomics or byte copies. Sending or sharing the view between threads adds no new aliasing.
unsafe impl Send for SharedMem<'_> {}
// SAFETY: as for `Send`: every access method is safe to call concurrently from many threads.
unsafe impl Sync for SharedMem<'_> {}

impl<'a> SharedMem<'a> {
    /// Wraps `len` bytes at `ptr`.
    ///
    /// # Safety
    /// For the whole lifetime `'a`: `ptr..ptr + len` is one mapped allocation, valid for reads
    /// and writes, and not accessed by this process through references that assume exclusive
    /// access or immutability (`&mut [u8]`, `&[u8]`). Other processes and threads may write it
    /// concurrently. `ptr` is aligned to 8 bytes.
    pub unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(
            ptr.as_ptr() as usize % 8,
            0,
            "shared memory must be 8-aligned"
        );
        SharedMem {
            ptr,
            len,
            _life: PhantomData,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the view has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first byte (for diagnostics and for passing to the OS).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn check(&self, off: usize, len: usize) -> Result<()> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::value(
                ErrorCode::BadLayout,
                "shared memory range",
                off as u64,
                self.len as u64,
            )),
        }
    }

    /// A sub-view of `len` bytes at `off`, or `BadLayout` when it does not fit.
    pub fn sub(&self, off: usize, len: usize) -> Result<SharedMem<'a>> {
        self.check(off, len)?;
        // SAFETY: `off + len <= self.len` was checked, so the new pointer stays inside the
        // same allocation, and the validity contract of `new` carries over to every sub-range.
        // Alignment to 8 is kept only when `off` is a multiple of 8, which debug builds check.
        Ok(unsafe { SharedMem::new(NonNull::new_unchecked(self.ptr.as_ptr().add(off)), len) })
    }

    /// Under loom, records a plain read of `len` bytes at `off` (see `sync::shadow`).
    #[cfg(loom)]
    fn touch_read(&self, off: usize, len: usize) {
        crate::sync::shadow::touch_read(self.ptr.as_ptr() as usize + off, len);
    }

    /// Under loom, records a plain write of `len` bytes at `off` (see `sync::shadow`).
    #[cfg(loom)]
    fn touch_write(&self, off: usize, len: usize) {
        crate::sync::shadow::touch_write(self.ptr.as_ptr() as usize + off, len);
    }

    /// Copies `dst.len()` bytes starting at `off` out of shared memory.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> Result<()> {
        self.check(off, dst.len())?;
        #[cfg(loom)]
        self.touch_read(off, dst.len());
        // SAFETY: the range is inside the view (checked). The source may be written
        // concurrently by a peer; bytes have no invalid values, so a racing write can only
        // make the copy hold a mix of old and new bytes, which callers then validate.
        unsafe {
            core::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(off), dst.as_mut_ptr(), dst.len());
        }
        Ok(())
    }

    /// Copies `src` into shared memory at `off`.
    pub fn write(&self, off: usize, src: &[u8]) -> Result<()> {
        self.check(off, src.len())?;
        #[cfg(loom)]
        self.touch_write(off, src.len());
        // SAFETY: the range is inside the view (checked) and valid for writes (contract of
        // `new`); `src` is private memory and cannot overlap the mapping through a reference.
        unsafe {
            core::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr().add(off), src.len());
        }
        Ok(())
    }

    /// Fills `len` bytes at `off` with zero.
    pub fn zero(&self, off: usize, len: usize) -> Result<()> {
        self.check(off, len)?;
        #[cfg(loom)]
        self.touch_write(off, len);
        // SAFETY: in bounds (checked) and writable (contract of `new`).
        unsafe { core::ptr::write_bytes(self.ptr.as_ptr().add(off), 0, len) };
        Ok(())
    }

    /// Reads a little-endian `u16` at `off` (CONV-2).
    pub fn read_u16(&self, off: usize) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read(off, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32` at `off` (CONV-2).
    pub fn read_u32(&self, off: usize) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64` at `off` (CONV-2).
    pub fn read_u64(&self, off: usize) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read(off, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u32` at `off`.
    pub fn write_u32(&self, off: usize, v: u32) -> Result<()> {
        self.write(off, &v.to_le_bytes())
    }

    /// Writes a little-endian `u64` at `off`.
    pub fn write_u64(&self, off: usize, v: u64) -> Result<()> {
        self.write(off, &v.to_le_bytes())
    }

    fn check_atomic(&self, off: usize, size: usize) -> Result<()> {
        self.check(off, size)?;
        if (self.ptr.as_ptr() as usize + off) % size != 0 {
            return Err(Error::value(
                ErrorCode::BadLayout,
                "atomic alignment",
                off as u64,
                size as u64,
            ));
        }
        Ok(())
    }

    /// The atomic `u32` at `off` (CONV-5). The offset must be in bounds and 4-aligned.
    ///
    /// Atomics in shared memory are little-endian words on every platform Knit supports
    /// (x86-64, `AArch64`, RISC-V little-endian); big-endian targets are refused at compile time.
    #[cfg(not(loom))]
    pub fn atomic_u32(&self, off: usize) -> Result<&'a AtomicU32> {
        self.check_atomic(off, 4)?;
        // SAFETY: in bounds and 4-aligned (checked); the memory is valid for 'a and is only
        // accessed atomically at this offset by every participant (CONV-5), so treating it as
        // an `AtomicU32` for 'a meets `AtomicU32::from_ptr`'s requirements.
        Ok(unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast()) })
    }

    /// The atomic `u64` at `off` (CONV-5). The offset must be in bounds and 8-aligned.
    #[cfg(not(loom))]
    pub fn atomic_u64(&self, off: usize) -> Result<&'a AtomicU64> {
        self.check_atomic(off, 8)?;
        // SAFETY: as for `atomic_u32`, with 8-byte alignment checked.
        Ok(unsafe { AtomicU64::from_ptr(self.ptr.as_ptr().add(off).cast()) })
    }

    /// Under loom: the loom atomic standing for the `u32` at `off`, created on first use with
    /// the value stored there (loom cannot use memory it did not allocate as an atomic).
    #[cfg(loom)]
    pub fn atomic_u32(&self, off: usize) -> Result<&'a AtomicU32> {
        self.check_atomic(off, 4)?;
        let addr = self.ptr.as_ptr() as usize + off;
        Ok(crate::sync::shadow::atomic_u32(addr, || {
            let mut b = [0u8; 4];
            self.read_untracked(off, &mut b);
            u32::from_le_bytes(b)
        }))
    }

    /// Under loom: the loom atomic standing for the `u64` at `off` (see `atomic_u32`).
    #[cfg(loom)]
    pub fn atomic_u64(&self, off: usize) -> Result<&'a AtomicU64> {
        self.check_atomic(off, 8)?;
        let addr = self.ptr.as_ptr() as usize + off;
        Ok(crate::sync::shadow::atomic_u64(addr, || {
            let mut b = [0u8; 8];
            self.read_untracked(off, &mut b);
            u64::from_le_bytes(b)
        }))
    }

    /// Under loom: copies bytes out without recording the access; only for the initial value
    /// of a loom atomic, whose word is never accessed as plain memory by the protocol (CONV-5).
    #[cfg(loom)]
    fn read_untracked(&self, off: usize, dst: &mut [u8]) {
        if self.check(off, dst.len()).is_ok() {
            // SAFETY: the range is inside the view (checked just above); see `read`.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    self.ptr.as_ptr().add(off),
                    dst.as_mut_ptr(),
                    dst.len(),
                );
            }
        }
    }

    /// Borrows `len` bytes at `off` in place (zero copy).
    ///
    /// # Safety
    /// The caller guarantees that, for as long as the returned slice lives, no participant
    /// that follows the protocol writes these bytes (for a ring: the record lies in
    /// `[head, tail)` and is not released; RING-15). A hostile peer may still write them; the
    /// caller must not take decisions from the borrowed bytes without copying them first.
    pub unsafe fn borrow(&self, off: usize, len: usize) -> Result<&'a [u8]> {
        self.check(off, len)?;
        // Loom sees the whole borrow as one read at the moment it is taken.
        #[cfg(loom)]
        self.touch_read(off, len);
        // SAFETY: in bounds (checked); the caller upholds the exclusivity contract above.
        Ok(unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(off), len) })
    }

    /// Borrows `len` bytes at `off` mutably, to write in place (loan).
    ///
    /// # Safety
    /// The caller guarantees that, for as long as the returned slice lives, no other
    /// participant that follows the protocol reads or writes these bytes (for a ring: space
    /// reserved and not yet published; RING-4).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn borrow_mut(&self, off: usize, len: usize) -> Result<&'a mut [u8]> {
        self.check(off, len)?;
        // Loom sees the whole loan as one write at the moment it is taken.
        #[cfg(loom)]
        self.touch_write(off, len);
        // SAFETY: in bounds (checked); the caller upholds the exclusivity contract above.
        Ok(unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(off), len) })
    }
}

#[cfg(target_endian = "big")]
compile_error!("knit-core supports little-endian targets only: shared atomics are little-endian words (CONV-2)");
