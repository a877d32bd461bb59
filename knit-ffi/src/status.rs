//! Status codes (the error registry of spec/09 §9.1, ERR-1), the thread-local last error
//! message, and the guard every exported function runs its body in: no panic crosses the
//! boundary.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use knit_core::ErrorCode;
use knit_rt::call::CallError;

/// A status: `KNIT_OK` (0) or an error code of the Knit registry. Codes 1000 to 65535 are
/// application codes a handler may answer with; a code this header does not name is still
/// delivered as is.
pub type KnitStatus = u32;

/// Success.
pub const KNIT_OK: KnitStatus = 0;
/// No function of that name or id.
pub const KNIT_UNKNOWN_FUNCTION: KnitStatus = 1;
/// The handler raised, panicked or returned an error.
pub const KNIT_HANDLER_FAILED: KnitStatus = 2;
/// A payload exceeds the region's `max_message_len` or a caller's limit.
pub const KNIT_PAYLOAD_TOO_LARGE: KnitStatus = 3;
/// The call or channel operation was cancelled.
pub const KNIT_CANCELLED: KnitStatus = 4;
/// The call's deadline passed.
pub const KNIT_DEADLINE_EXCEEDED: KnitStatus = 5;
/// The peer process or thread died.
pub const KNIT_PEER_DIED: KnitStatus = 6;
/// The pool or worker is shutting down.
pub const KNIT_SHUTDOWN: KnitStatus = 7;
/// No space, and the caller asked not to wait.
pub const KNIT_WOULD_BLOCK: KnitStatus = 8;
/// The channel was closed by its writer.
pub const KNIT_CHANNEL_CLOSED: KnitStatus = 9;
/// The channel was aborted.
pub const KNIT_CHANNEL_ABORTED: KnitStatus = 10;
/// An argument broke the API contract: a NULL or dead handle, a NULL pointer, a string that
/// is not UTF-8, a value out of range.
pub const KNIT_INVALID_ARGUMENT: KnitStatus = 11;
/// An operating-system call failed.
pub const KNIT_OS_ERROR: KnitStatus = 12;
/// The participant entry was not RESERVED.
pub const KNIT_SLOT_TAKEN: KnitStatus = 13;
/// A bounded wait in the API ran out (for example `knit_ticket_wait` with a timeout).
pub const KNIT_TIMED_OUT: KnitStatus = 14;
/// The region does not start with the Knit magic.
pub const KNIT_BAD_MAGIC: KnitStatus = 100;
/// The region's major version is not implemented.
pub const KNIT_UNSUPPORTED_VERSION: KnitStatus = 101;
/// The region requires a feature that is not implemented.
pub const KNIT_MISSING_FEATURE: KnitStatus = 102;
/// The region header's checksum does not match.
pub const KNIT_BAD_CHECKSUM: KnitStatus = 103;
/// The region header's geometry is invalid.
pub const KNIT_BAD_LAYOUT: KnitStatus = 104;
/// The mapping is shorter than the region.
pub const KNIT_REGION_TOO_SMALL: KnitStatus = 105;
/// The region was not initialised in time.
pub const KNIT_NOT_READY: KnitStatus = 106;
/// The region is poisoned: a participant found peer-written memory invalid.
pub const KNIT_POISONED: KnitStatus = 107;
/// Protocol violation: a ring position is out of range.
pub const KNIT_BAD_POSITION: KnitStatus = 200;
/// Protocol violation: a record length is out of range.
pub const KNIT_BAD_RECORD_LENGTH: KnitStatus = 201;
/// Protocol violation: a padding record is misplaced.
pub const KNIT_BAD_PADDING: KnitStatus = 202;
/// Protocol violation: a record type is unknown or out of place.
pub const KNIT_UNKNOWN_RECORD: KnitStatus = 203;
/// Protocol violation: a fragment sequence is broken.
pub const KNIT_BAD_FRAGMENT: KnitStatus = 204;
/// Protocol violation: a response names a request that is not outstanding.
pub const KNIT_UNKNOWN_REQUEST: KnitStatus = 205;
/// Protocol violation: a record body breaks its own rules.
pub const KNIT_BAD_RECORD: KnitStatus = 206;
/// Protocol violation: the participant table holds garbage.
pub const KNIT_BAD_PARTICIPANT: KnitStatus = 207;
/// Protocol violation: a channel slot holds garbage.
pub const KNIT_BAD_CHANNEL: KnitStatus = 208;

/// An error on its way to C: a status code and the text `knit_last_error_message` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) code: KnitStatus,
    pub(crate) message: String,
}

impl Failure {
    /// A failure with a registry code.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure {
            code: code as u32,
            message: message.into(),
        }
    }

    /// `INVALID_ARGUMENT` with `message`: the caller broke the API contract.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Failure::new(ErrorCode::InvalidArgument, message)
    }
}

impl From<knit_rt::Error> for Failure {
    fn from(e: knit_rt::Error) -> Self {
        Failure {
            code: e.code() as u32,
            message: e.to_string(),
        }
    }
}

impl From<knit_core::Error> for Failure {
    fn from(e: knit_core::Error) -> Self {
        Failure {
            code: e.code as u32,
            message: e.to_string(),
        }
    }
}

impl From<CallError> for Failure {
    fn from(e: CallError) -> Self {
        // CALL-7: the status goes out raw, registered or not; the message is the peer's text.
        let code = if e.status == KNIT_OK {
            KNIT_HANDLER_FAILED
        } else {
            e.status
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

/// The result of an exported function's body.
pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

thread_local! {
    static LAST_CODE: Cell<KnitStatus> = const { Cell::new(KNIT_OK) };
    static LAST_MESSAGE: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the outcome of the latest call on this thread.
pub(crate) fn set_last(code: KnitStatus, message: &str) {
    LAST_CODE.with(|c| c.set(code));
    // A NUL inside the text would cut it short in C: replace it, never drop the message.
    let text = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    LAST_MESSAGE.with(|m| *m.borrow_mut() = text);
}

/// The status and message of the latest status-returning call on this thread.
pub(crate) fn last() -> (KnitStatus, String) {
    let code = LAST_CODE.with(Cell::get);
    let message = LAST_MESSAGE.with(|m| m.borrow().to_string_lossy().into_owned());
    (code, message)
}

/// Runs the body of an exported function: its error becomes the returned status and the
/// thread's last error message; success clears both. A panic (a bug of the library) is caught
/// here, so that no unwinding ever crosses into C, and reported as `KNIT_HANDLER_FAILED`.
pub(crate) fn guard(function: &'static str, body: impl FnOnce() -> FfiResult) -> KnitStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => {
            set_last(KNIT_OK, "");
            KNIT_OK
        }
        Ok(Err(failure)) => {
            set_last(failure.code, &failure.message);
            failure.code
        }
        Err(panic) => {
            let text = panic_text(panic.as_ref());
            set_last(
                KNIT_HANDLER_FAILED,
                &format!("internal error in {function}: {text}"),
            );
            KNIT_HANDLER_FAILED
        }
    }
}

/// Runs `body` for a function that returns a value instead of a status (a getter that cannot
/// fail): a panic yields `fallback` and leaves the last error untouched.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// The text of a panic payload.
pub(crate) fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

/// The message of the latest failed call on the calling thread, as UTF-8 text ending in NUL.
///
/// Every function that returns a `knit_status` sets it: to the empty string on `KNIT_OK`, to
/// a message naming what went wrong otherwise (for a failed call, the worker's own message).
/// Never NULL.
///
/// Ownership: the text belongs to the library; it stays valid until the next Knit function
/// called on this thread. Copy it to keep it.
/// Thread safety: thread-local; every thread sees its own message.
#[no_mangle]
pub extern "C" fn knit_last_error_message() -> *const c_char {
    guard_value(c"".as_ptr(), || LAST_MESSAGE.with(|m| m.borrow().as_ptr()))
}

/// The status returned by the latest status-returning Knit function called on this thread.
///
/// Thread safety: thread-local.
#[no_mangle]
pub extern "C" fn knit_last_error_code() -> KnitStatus {
    guard_value(KNIT_OK, || LAST_CODE.with(Cell::get))
}

/// The registry name of `status` (`"OK"`, `"PEER_DIED"`, ...), or `"APPLICATION"` for a code
/// from 1000 to 65535 and `"UNKNOWN"` for any other code the registry does not have.
///
/// Ownership: a static string; never free it. Never NULL.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_status_name(status: KnitStatus) -> *const c_char {
    guard_value(c"UNKNOWN".as_ptr(), || status_name(status).as_ptr())
}

/// The NUL-terminated registry name of `status`.
fn status_name(status: KnitStatus) -> &'static std::ffi::CStr {
    match ErrorCode::from_u32(status) {
        Some(code) => static_name(code),
        None if (1000..=65535).contains(&status) => c"APPLICATION",
        None => c"UNKNOWN",
    }
}

/// The registry's names as C strings (the registry itself has Rust strings).
fn static_name(code: ErrorCode) -> &'static std::ffi::CStr {
    const NAMES: &[(ErrorCode, &std::ffi::CStr)] = &[
        (ErrorCode::Ok, c"OK"),
        (ErrorCode::UnknownFunction, c"UNKNOWN_FUNCTION"),
        (ErrorCode::HandlerFailed, c"HANDLER_FAILED"),
        (ErrorCode::PayloadTooLarge, c"PAYLOAD_TOO_LARGE"),
        (ErrorCode::Cancelled, c"CANCELLED"),
        (ErrorCode::DeadlineExceeded, c"DEADLINE_EXCEEDED"),
        (ErrorCode::PeerDied, c"PEER_DIED"),
        (ErrorCode::Shutdown, c"SHUTDOWN"),
        (ErrorCode::WouldBlock, c"WOULD_BLOCK"),
        (ErrorCode::ChannelClosed, c"CHANNEL_CLOSED"),
        (ErrorCode::ChannelAborted, c"CHANNEL_ABORTED"),
        (ErrorCode::InvalidArgument, c"INVALID_ARGUMENT"),
        (ErrorCode::OsError, c"OS_ERROR"),
        (ErrorCode::SlotTaken, c"SLOT_TAKEN"),
        (ErrorCode::TimedOut, c"TIMED_OUT"),
        (ErrorCode::BadMagic, c"BAD_MAGIC"),
        (ErrorCode::UnsupportedVersion, c"UNSUPPORTED_VERSION"),
        (ErrorCode::MissingFeature, c"MISSING_FEATURE"),
        (ErrorCode::BadChecksum, c"BAD_CHECKSUM"),
        (ErrorCode::BadLayout, c"BAD_LAYOUT"),
        (ErrorCode::RegionTooSmall, c"REGION_TOO_SMALL"),
        (ErrorCode::NotReady, c"NOT_READY"),
        (ErrorCode::Poisoned, c"POISONED"),
        (ErrorCode::BadPosition, c"BAD_POSITION"),
        (ErrorCode::BadRecordLength, c"BAD_RECORD_LENGTH"),
        (ErrorCode::BadPadding, c"BAD_PADDING"),
        (ErrorCode::UnknownRecord, c"UNKNOWN_RECORD"),
        (ErrorCode::BadFragment, c"BAD_FRAGMENT"),
        (ErrorCode::UnknownRequest, c"UNKNOWN_REQUEST"),
        (ErrorCode::BadRecord, c"BAD_RECORD"),
        (ErrorCode::BadParticipant, c"BAD_PARTICIPANT"),
        (ErrorCode::BadChannel, c"BAD_CHANNEL"),
    ];
    NAMES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(c"UNKNOWN", |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    /// Every registry code has a `KNIT_*` constant with its number, and a C name equal to the
    /// registry's name (ERR-1: one set of numbers on every boundary).
    #[test]
    fn constants_and_names_match_the_registry() {
        let constants: &[(KnitStatus, &str)] = &[
            (KNIT_OK, "OK"),
            (KNIT_UNKNOWN_FUNCTION, "UNKNOWN_FUNCTION"),
            (KNIT_HANDLER_FAILED, "HANDLER_FAILED"),
            (KNIT_PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            (KNIT_CANCELLED, "CANCELLED"),
            (KNIT_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED"),
            (KNIT_PEER_DIED, "PEER_DIED"),
            (KNIT_SHUTDOWN, "SHUTDOWN"),
            (KNIT_WOULD_BLOCK, "WOULD_BLOCK"),
            (KNIT_CHANNEL_CLOSED, "CHANNEL_CLOSED"),
            (KNIT_CHANNEL_ABORTED, "CHANNEL_ABORTED"),
            (KNIT_INVALID_ARGUMENT, "INVALID_ARGUMENT"),
            (KNIT_OS_ERROR, "OS_ERROR"),
            (KNIT_SLOT_TAKEN, "SLOT_TAKEN"),
            (KNIT_TIMED_OUT, "TIMED_OUT"),
            (KNIT_BAD_MAGIC, "BAD_MAGIC"),
            (KNIT_UNSUPPORTED_VERSION, "UNSUPPORTED_VERSION"),
            (KNIT_MISSING_FEATURE, "MISSING_FEATURE"),
            (KNIT_BAD_CHECKSUM, "BAD_CHECKSUM"),
            (KNIT_BAD_LAYOUT, "BAD_LAYOUT"),
            (KNIT_REGION_TOO_SMALL, "REGION_TOO_SMALL"),
            (KNIT_NOT_READY, "NOT_READY"),
            (KNIT_POISONED, "POISONED"),
            (KNIT_BAD_POSITION, "BAD_POSITION"),
            (KNIT_BAD_RECORD_LENGTH, "BAD_RECORD_LENGTH"),
            (KNIT_BAD_PADDING, "BAD_PADDING"),
            (KNIT_UNKNOWN_RECORD, "UNKNOWN_RECORD"),
            (KNIT_BAD_FRAGMENT, "BAD_FRAGMENT"),
            (KNIT_UNKNOWN_REQUEST, "UNKNOWN_REQUEST"),
            (KNIT_BAD_RECORD, "BAD_RECORD"),
            (KNIT_BAD_PARTICIPANT, "BAD_PARTICIPANT"),
            (KNIT_BAD_CHANNEL, "BAD_CHANNEL"),
        ];
        assert_eq!(
            constants.len(),
            ErrorCode::ALL.len(),
            "a registry code has no KNIT_ constant"
        );
        for &(value, name) in constants {
            let code = ErrorCode::from_u32(value).expect("constant is a registry code");
            assert_eq!(code.name(), name);
            // SAFETY: knit_status_name returns a static NUL-terminated string.
            let c_name = unsafe { CStr::from_ptr(knit_status_name(value)) };
            assert_eq!(c_name.to_str(), Ok(name));
        }
    }

    #[test]
    fn unregistered_codes_have_a_class_name() {
        assert_eq!(status_name(1000).to_str(), Ok("APPLICATION"));
        assert_eq!(status_name(65535).to_str(), Ok("APPLICATION"));
        assert_eq!(status_name(65536).to_str(), Ok("UNKNOWN"));
        assert_eq!(status_name(15).to_str(), Ok("UNKNOWN"));
    }

    fn last_message() -> String {
        // SAFETY: the pointer is this thread's NUL-terminated message, read before any other
        // Knit call on this thread.
        unsafe { CStr::from_ptr(knit_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn guard_reports_errors_clears_on_success_and_catches_panics() {
        let status = guard("t", || Err(Failure::invalid("bad\0thing")));
        assert_eq!(status, KNIT_INVALID_ARGUMENT);
        assert_eq!(knit_last_error_code(), KNIT_INVALID_ARGUMENT);
        assert_eq!(last_message(), "bad\u{fffd}thing");

        assert_eq!(guard("t", || Ok(())), KNIT_OK);
        assert_eq!(knit_last_error_code(), KNIT_OK);
        assert_eq!(last_message(), "");

        let status = guard("knit_test", || panic!("boom"));
        assert_eq!(status, KNIT_HANDLER_FAILED);
        assert_eq!(last_message(), "internal error in knit_test: boom");
    }

    #[test]
    fn call_errors_keep_raw_statuses() {
        let f = Failure::from(CallError {
            status: 4242,
            message: "app".into(),
        });
        assert_eq!(f.code, 4242);
        assert_eq!(f.message, "status 4242: app");
        // A failure with status 0 would read as success in C.
        let f = Failure::from(CallError {
            status: 0,
            message: "odd".into(),
        });
        assert_eq!(f.code, KNIT_HANDLER_FAILED);
    }
}
