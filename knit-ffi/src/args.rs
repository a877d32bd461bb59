//! Checking what C passes in: strings, byte buffers, output pointers, durations. Everything
//! the header calls a contract violation that can be detected (NULL where a value is needed,
//! a string that is not UTF-8, a length that no buffer can have) is `INVALID_ARGUMENT`.

use std::ffi::{c_char, CStr};
use std::time::Duration;

use crate::status::{Failure, FfiResult};

/// A timeout or deadline that never runs out.
pub const KNIT_FOREVER: u64 = u64::MAX;

/// The UTF-8 string at `ptr`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for `'a`.
pub(crate) unsafe fn string<'a>(ptr: *const c_char, what: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is NULL")));
    }
    // SAFETY: not NULL, and NUL-terminated and live for 'a by the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str()
        .map_err(|e| Failure::invalid(format!("{what} is not UTF-8: {e}")))
}

/// The `len` bytes at `ptr`; `ptr` may be NULL when `len` is 0.
///
/// # Safety
/// When `len` > 0, `ptr` points to `len` readable bytes that stay valid and are not written
/// by anyone for `'a`.
pub(crate) unsafe fn bytes<'a>(ptr: *const u8, len: usize, what: &str) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Failure::invalid(format!(
            "{what} is NULL but its length is {len}"
        )));
    }
    if isize::try_from(len).is_err() {
        return Err(Failure::invalid(format!(
            "{what} length {len} is larger than any buffer"
        )));
    }
    // SAFETY: non-NULL, `len` fits isize, and the caller guarantees `len` readable bytes that
    // nobody writes for 'a.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Checks that an output pointer is not NULL.
pub(crate) fn out<T>(ptr: *mut T, what: &str) -> FfiResult<*mut T> {
    if ptr.is_null() {
        Err(Failure::invalid(format!("{what} (output) is NULL")))
    } else {
        Ok(ptr)
    }
}

/// Stores `value` through an output pointer already checked by [`out`].
///
/// # Safety
/// `ptr` is valid for a write of `T` and suitably aligned.
pub(crate) unsafe fn store<T>(ptr: *mut T, value: T) {
    // SAFETY: by the caller's contract.
    unsafe { ptr.write(value) };
}

/// A timeout in nanoseconds as a `Duration`; `KNIT_FOREVER` is `None`.
pub(crate) fn timeout(ns: u64) -> Option<Duration> {
    (ns != KNIT_FOREVER).then(|| Duration::from_nanos(ns))
}

/// A positive count that must fit `u32`, or `INVALID_ARGUMENT`.
pub(crate) fn nonzero(value: u32, what: &str) -> FfiResult<u32> {
    if value == 0 {
        Err(Failure::invalid(format!("{what} must be at least 1")))
    } else {
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_must_be_present_and_utf8() {
        // SAFETY: NULL and static NUL-terminated strings.
        unsafe {
            assert_eq!(
                string(std::ptr::null(), "name").unwrap_err().message,
                "name is NULL"
            );
            assert_eq!(string(c"hello".as_ptr(), "name").unwrap(), "hello");
            let bad = string(c"\xff".as_ptr(), "name").unwrap_err();
            assert!(
                bad.message.starts_with("name is not UTF-8"),
                "{}",
                bad.message
            );
        }
    }

    #[test]
    fn byte_buffers_allow_null_only_when_empty() {
        // SAFETY: NULL with length 0 (never read), NULL with a length (refused before any
        // read), and a live array.
        unsafe {
            assert_eq!(bytes(std::ptr::null(), 0, "payload").unwrap(), &[] as &[u8]);
            assert!(bytes(std::ptr::null(), 3, "payload").is_err());
            let data = [1u8, 2, 3];
            assert_eq!(bytes(data.as_ptr(), 3, "payload").unwrap(), &data);
            assert!(bytes(data.as_ptr(), usize::MAX, "payload").is_err());
        }
    }

    #[test]
    fn timeouts_and_counts() {
        assert_eq!(timeout(KNIT_FOREVER), None);
        assert_eq!(timeout(5), Some(Duration::from_nanos(5)));
        assert!(nonzero(0, "workers").is_err());
        assert_eq!(nonzero(2, "workers").unwrap(), 2);
        assert!(out(std::ptr::null_mut::<u8>(), "out").is_err());
    }
}
