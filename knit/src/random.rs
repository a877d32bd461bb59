//! Bytes from the operating system's cryptographically secure random source, for region names
//! (MAP-2) and region ids (HDR-8).

use crate::error::{Error, Result};

/// Bound on interrupted `getrandom` calls before giving up; each call normally fills a small
/// buffer at once.
const GETRANDOM_ATTEMPTS: usize = 64;

/// A fresh `region_id` for a region's header (HDR-8).
pub fn region_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    fill_random(&mut id)?;
    Ok(id)
}

/// Fills `buf` from the kernel's CSPRNG (`getrandom(2)` without flags: it blocks only until
/// the pool is initialised at boot, and never returns weak bytes).
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    let mut filled = 0;
    for _ in 0..GETRANDOM_ATTEMPTS {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        if rest.is_empty() {
            return Ok(());
        }
        match rustix::rand::getrandom(rest, rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::os("getrandom", "the kernel CSPRNG", e)),
        }
    }
    if filled == buf.len() {
        Ok(())
    } else {
        Err(Error::os(
            "getrandom",
            "the kernel CSPRNG",
            std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted too often"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_and_differs_between_calls() {
        // 1 KiB of CSPRNG output is all zero with probability 2^-8192.
        let mut a = [0u8; 1024];
        fill_random(&mut a).expect("random");
        assert!(a.iter().any(|&b| b != 0));
        assert_ne!(region_id().expect("id"), region_id().expect("id"));
        let mut empty = [0u8; 0];
        fill_random(&mut empty).expect("an empty buffer is trivially filled");
    }
}
