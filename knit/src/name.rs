//! Region names (MAP-2): `knit-` followed by 32 lowercase hexadecimal digits from the OS
//! cryptographically secure random source. A name is validated before it reaches any OS call,
//! so no path separator, `..` or other character can ever be interpreted as a path.
//! SEC-3: the randomness only avoids collisions and casual interference; memory safety never
//! depends on the name staying secret (every attacher validates everything it reads).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use knit_core::ErrorCode;

use crate::error::{Error, Result};
use crate::random::fill_random;

/// Every region name starts with this prefix (MAP-2).
pub const NAME_PREFIX: &str = "knit-";
/// Number of random bytes in a name (128 bits, MAP-2).
pub const NAME_RANDOM_BYTES: usize = 16;
/// Length of a region name in bytes: the prefix and two hex digits per random byte.
pub const NAME_LEN: usize = NAME_PREFIX.len() + 2 * NAME_RANDOM_BYTES;
/// The directory in which Linux keeps POSIX shared memory objects (MAP-2).
pub const SHM_DIR: &str = "/dev/shm";

/// A valid region name: exactly `knit-[0-9a-f]{32}` (MAP-2).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionName(String);

impl RegionName {
    /// A fresh name from the OS cryptographically secure random source (MAP-2).
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; NAME_RANDOM_BYTES];
        fill_random(&mut bytes)?;
        Ok(Self::from_random_bytes(bytes))
    }

    /// The name built from 16 given bytes (the caller supplies the randomness; for tests and
    /// for callers that hold their own CSPRNG output).
    pub fn from_random_bytes(bytes: [u8; NAME_RANDOM_BYTES]) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(NAME_LEN);
        s.push_str(NAME_PREFIX);
        for b in bytes {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
        RegionName(s)
    }

    /// MAP-8: validates `s` as a region name; anything but exactly `knit-[0-9a-f]{32}` is
    /// refused with `INVALID_ARGUMENT` (no leading slash, no uppercase, no path components).
    pub fn parse(s: &str) -> Result<Self> {
        let valid = s.len() == NAME_LEN
            && s.starts_with(NAME_PREFIX)
            && s.bytes()
                .skip(NAME_PREFIX.len())
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if valid {
            Ok(RegionName(s.to_owned()))
        } else {
            Err(Error::protocol(
                ErrorCode::InvalidArgument,
                "region name",
                format!("{s:?} is not knit- followed by 32 lowercase hex digits"),
            ))
        }
    }

    /// The name as text, e.g. `knit-0123…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file that backs the named object on Linux: `/dev/shm/<name>`.
    pub fn shm_path(&self) -> PathBuf {
        PathBuf::from(SHM_DIR).join(&self.0)
    }
}

impl FromStr for RegionName {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        RegionName::parse(s)
    }
}

impl AsRef<str> for RegionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_valid_and_distinct() {
        let a = RegionName::random().expect("random name");
        let b = RegionName::random().expect("random name");
        assert_eq!(RegionName::parse(a.as_str()).ok(), Some(a.clone()));
        assert_ne!(a, b, "two 128-bit random names collided");
        assert_eq!(a.as_str().len(), NAME_LEN);
    }

    #[test]
    fn names_encode_bytes_as_lowercase_hex() {
        let name = RegionName::from_random_bytes([
            0x00, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xff, 0x10, 0x20, 0x30, 0x40,
            0x50, 0x60,
        ]);
        assert_eq!(name.as_str(), "knit-000123456789abcdefff102030405060");
        assert_eq!(
            name.shm_path(),
            PathBuf::from("/dev/shm/knit-000123456789abcdefff102030405060")
        );
    }

    #[test]
    fn parse_refuses_everything_but_the_exact_form() {
        let good = "knit-0123456789abcdef0123456789abcdef";
        assert!(RegionName::parse(good).is_ok());
        for bad in [
            "",
            "knit-",
            "/knit-0123456789abcdef0123456789abcdef",
            "knit-0123456789ABCDEF0123456789abcdef",
            "knit-0123456789abcdef0123456789abcde",
            "knit-0123456789abcdef0123456789abcdef0",
            "knit-0123456789abcdef0123456789abcde/",
            "knit-../../../../etc/passwd0123456789a",
            "kni7-0123456789abcdef0123456789abcdef",
            "knit_0123456789abcdef0123456789abcdef",
            "knit-0123456789abcdef0123456789abcdeé",
        ] {
            let err = RegionName::parse(bad).expect_err(bad);
            assert_eq!(err.code(), ErrorCode::InvalidArgument, "{bad:?}");
        }
    }
}
