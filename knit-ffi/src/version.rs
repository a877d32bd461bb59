//! Library and protocol versions, at compile time (macros) and at run time (functions), so a
//! program can check that the library it loaded is the one it was compiled against.

use std::ffi::c_char;

use crate::args::{out, store};
use crate::status::{guard, guard_value, KnitStatus};

/// Major version of this library (semantic versioning: a change breaks the C ABI).
pub const KNIT_VERSION_MAJOR: u32 = 0;
/// Minor version of this library (additions only).
pub const KNIT_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const KNIT_VERSION_PATCH: u32 = 0;
/// The library version as one number: `major << 16 | minor << 8 | patch`, as `knit_version`
/// returns it.
pub const KNIT_VERSION: u32 =
    KNIT_VERSION_MAJOR << 16 | KNIT_VERSION_MINOR << 8 | KNIT_VERSION_PATCH;

/// Major version of the Knit protocol this library implements (spec/10: regions of another
/// major are refused with `KNIT_UNSUPPORTED_VERSION`).
pub const KNIT_PROTOCOL_MAJOR: u16 = 1;
/// Minor version of the Knit protocol this library writes; it reads every minor of its major.
pub const KNIT_PROTOCOL_MINOR: u16 = 0;

/// The version of the loaded library, encoded as `KNIT_VERSION` is. Compare with
/// `KNIT_VERSION_MAJOR` to detect a library that does not match the header.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_version() -> u32 {
    KNIT_VERSION
}

/// The version of the loaded library as text, e.g. "0.1.0".
///
/// Ownership: a static string; never free it. Never NULL.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_version_string() -> *const c_char {
    guard_value(c"".as_ptr(), || VERSION_TEXT.as_ptr())
}

const VERSION_TEXT: &std::ffi::CStr = c"0.1.0";

/// The protocol version this library implements: `*major` gets the major it reads and writes,
/// `*minor` the minor it writes. Either pointer may be NULL when the value is not wanted.
///
/// Returns `KNIT_OK`.
/// Thread safety: safe from any thread.
///
/// # Safety
/// Each non-NULL pointer points to a writable `uint16_t`.
#[no_mangle]
pub unsafe extern "C" fn knit_protocol_version(major: *mut u16, minor: *mut u16) -> KnitStatus {
    guard("knit_protocol_version", || {
        if let Ok(p) = out(major, "major") {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { store(p, KNIT_PROTOCOL_MAJOR) };
        }
        if let Ok(p) = out(minor, "minor") {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { store(p, KNIT_PROTOCOL_MINOR) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_match_the_crate_and_the_protocol() {
        let parse = |s: &str| s.parse::<u32>().unwrap();
        assert_eq!(KNIT_VERSION_MAJOR, parse(env!("CARGO_PKG_VERSION_MAJOR")));
        assert_eq!(KNIT_VERSION_MINOR, parse(env!("CARGO_PKG_VERSION_MINOR")));
        assert_eq!(KNIT_VERSION_PATCH, parse(env!("CARGO_PKG_VERSION_PATCH")));
        assert_eq!(VERSION_TEXT.to_str(), Ok(env!("CARGO_PKG_VERSION")));
        assert_eq!(knit_version(), KNIT_VERSION);
        assert_eq!(KNIT_PROTOCOL_MAJOR, knit_core::layout::MAJOR);
        assert_eq!(KNIT_PROTOCOL_MINOR, knit_core::layout::MINOR);
        let (mut major, mut minor) = (0u16, 0u16);
        // SAFETY: two live u16s.
        assert_eq!(unsafe { knit_protocol_version(&mut major, &mut minor) }, 0);
        assert_eq!((major, minor), (1, 0));
        // SAFETY: NULL pointers are allowed.
        let status = unsafe { knit_protocol_version(std::ptr::null_mut(), std::ptr::null_mut()) };
        assert_eq!(status, 0);
    }
}
