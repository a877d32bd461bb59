//! [`Aligned`]: private, 8-aligned memory handed out only as a [`SharedMem`] view, for decoding
//! byte images with the same code that reads a live region.

use std::ptr::NonNull;

use knit_core::SharedMem;

/// A private buffer of `len` bytes, 8-aligned, accessed only through [`Aligned::mem`].
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Aligned {
            words: vec![0; len.div_ceil(8).max(1)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut a = Aligned::zeroed(bytes.len());
        // Same length by construction; the write cannot fail.
        let _ = a.mem().write(0, bytes);
        a
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The view; the `&mut` borrow keeps every other access away while it lives.
    pub fn mem(&mut self) -> SharedMem<'_> {
        let ptr = NonNull::from(self.words.as_mut_slice()).cast::<u8>();
        // SAFETY: `words` owns at least `len` bytes (len.div_ceil(8) words), 8-aligned, for as
        // long as the `&mut self` borrow the view carries; no Rust reference to them exists
        // meanwhile and no other thread or process sees them.
        unsafe { SharedMem::new(ptr, self.len) }
    }

    /// A copy of the bytes.
    pub fn to_vec(&mut self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        let _ = self.mem().read(0, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_in_and_out_and_is_aligned() {
        let mut a = Aligned::from_bytes(&[1, 2, 3, 4, 5]);
        assert_eq!(a.len(), 5);
        assert_eq!(a.to_vec(), vec![1, 2, 3, 4, 5]);
        assert_eq!(a.mem().as_ptr() as usize % 8, 0);
        assert!(a.mem().atomic_u32(0).is_ok());
        assert!(Aligned::zeroed(0).is_empty());
    }
}
