//! The error registry of spec/09-registry.md §9.1 and the error value every fallible core
//! operation returns.

use core::fmt;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal, $class:ident; )*) => {
        /// A numeric error code from the registry (ERR-1). The same numbers cross every boundary:
        /// response `status`, channel `abort_code`, region `poison_code`, C ABI return values.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ErrorCode {
            /// Every registered code, in registry order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The registry code for `value`, if it is registered.
            pub fn from_u32(value: u32) -> Option<Self> {
                match value {
                    $( $value => Some(ErrorCode::$name), )*
                    _ => None,
                }
            }

            /// The registry name, e.g. `"PEER_DIED"`.
            pub fn name(self) -> &'static str {
                match self { $( ErrorCode::$name => $text, )* }
            }

            /// The registry class: `call`, `liveness`, `channel`, `api`, `attach` or `violation`.
            pub fn class(self) -> ErrorClass {
                match self { $( ErrorCode::$name => ErrorClass::$class, )* }
            }
        }
    };
}

error_codes! {
    /// Success; never carried by an [`Error`].
    Ok = 0, "OK", Call;
    /// No function of that name or id.
    UnknownFunction = 1, "UNKNOWN_FUNCTION", Call;
    /// The handler raised, panicked or returned an error.
    HandlerFailed = 2, "HANDLER_FAILED", Call;
    /// A payload exceeds `max_message_len` or a caller's limit.
    PayloadTooLarge = 3, "PAYLOAD_TOO_LARGE", Call;
    /// The call or channel operation was cancelled.
    Cancelled = 4, "CANCELLED", Call;
    /// The deadline passed.
    DeadlineExceeded = 5, "DEADLINE_EXCEEDED", Call;
    /// The peer process or thread died.
    PeerDied = 6, "PEER_DIED", Liveness;
    /// The pool or worker is shutting down.
    Shutdown = 7, "SHUTDOWN", Call;
    /// No space, and the caller asked not to wait.
    WouldBlock = 8, "WOULD_BLOCK", Call;
    /// The channel was closed by its writer.
    ChannelClosed = 9, "CHANNEL_CLOSED", Channel;
    /// The channel was aborted.
    ChannelAborted = 10, "CHANNEL_ABORTED", Channel;
    /// An argument broke the API contract.
    InvalidArgument = 11, "INVALID_ARGUMENT", Api;
    /// An operating-system call failed.
    OsError = 12, "OS_ERROR", Api;
    /// The participant entry was not RESERVED.
    SlotTaken = 13, "SLOT_TAKEN", Api;
    /// A bounded wait in the API ran out.
    TimedOut = 14, "TIMED_OUT", Api;
    /// The region does not start with the Knit magic (HDR-1).
    BadMagic = 100, "BAD_MAGIC", Attach;
    /// The region's major version is not implemented (HDR-2).
    UnsupportedVersion = 101, "UNSUPPORTED_VERSION", Attach;
    /// The region requires a feature that is not implemented (HDR-3).
    MissingFeature = 102, "MISSING_FEATURE", Attach;
    /// The header checksum does not match (HDR-4).
    BadChecksum = 103, "BAD_CHECKSUM", Attach;
    /// The header's geometry is invalid (HDR-6, INIT-4).
    BadLayout = 104, "BAD_LAYOUT", Attach;
    /// The mapping is shorter than the region (HDR-7).
    RegionTooSmall = 105, "REGION_TOO_SMALL", Attach;
    /// The region was not initialised in time (INIT-2).
    NotReady = 106, "NOT_READY", Attach;
    /// The region is poisoned (INIT-3, LIVE-6).
    Poisoned = 107, "POISONED", Attach;
    /// A ring position is out of range (RING-8).
    BadPosition = 200, "BAD_POSITION", Violation;
    /// A record length is out of range (RING-9).
    BadRecordLength = 201, "BAD_RECORD_LENGTH", Violation;
    /// A padding record is misplaced (RING-10).
    BadPadding = 202, "BAD_PADDING", Violation;
    /// A record type is unknown or out of place (RING-11).
    UnknownRecord = 203, "UNKNOWN_RECORD", Violation;
    /// A fragment sequence is broken (MSG-3).
    BadFragment = 204, "BAD_FRAGMENT", Violation;
    /// A response names a request that is not outstanding (CALL-4).
    UnknownRequest = 205, "UNKNOWN_REQUEST", Violation;
    /// A record body breaks its own rules (CALL-1, FN-1, MSG-4).
    BadRecord = 206, "BAD_RECORD", Violation;
    /// The participant table holds garbage (PART-6).
    BadParticipant = 207, "BAD_PARTICIPANT", Violation;
    /// A channel slot holds garbage or does not match its announcement (CHAN-2, CHAN-7).
    BadChannel = 208, "BAD_CHANNEL", Violation;
}

/// The class of an [`ErrorCode`], as listed in the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The outcome of one call.
    Call,
    /// A peer died.
    Liveness,
    /// A channel ended abnormally.
    Channel,
    /// The API was misused or the OS refused.
    Api,
    /// A region could not be attached.
    Attach,
    /// Peer-written memory broke the protocol; the region is poisoned (ERR-2).
    Violation,
}

impl ErrorCode {
    /// True for errors found in peer-written memory, which poison the region (ERR-2).
    pub fn is_violation(self) -> bool {
        self.class() == ErrorClass::Violation
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed error with enough detail to name the broken bound (ERR-3) without allocating:
/// the field, the value found and the bound or expected value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// The registry code.
    pub code: ErrorCode,
    /// The field or thing that was wrong, e.g. `"ring.tail"`.
    pub what: &'static str,
    /// The value found, when there is one.
    pub found: u64,
    /// The bound or expected value it broke, when there is one.
    pub expected: u64,
}

impl Error {
    /// An error with a code and a subject but no numbers.
    pub const fn new(code: ErrorCode, what: &'static str) -> Self {
        Error {
            code,
            what,
            found: 0,
            expected: 0,
        }
    }

    /// An error naming the value found and the bound or expected value.
    pub const fn value(code: ErrorCode, what: &'static str, found: u64, expected: u64) -> Self {
        Error {
            code,
            what,
            found,
            expected,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.name(), self.what)?;
        if self.found != 0 || self.expected != 0 {
            write!(
                f,
                " (found {:#x}, expected {:#x})",
                self.found, self.expected
            )?;
        }
        Ok(())
    }
}

impl core::error::Error for Error {}

/// Result alias of the core.
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_u32() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_u32(code as u32), Some(code));
        }
        assert_eq!(ErrorCode::from_u32(999), None);
    }

    #[test]
    fn violations_are_exactly_the_2xx_codes() {
        for &code in ErrorCode::ALL {
            assert_eq!(
                code.is_violation(),
                (200..300).contains(&(code as u32)),
                "{code}"
            );
        }
    }

    #[test]
    fn display_names_code_field_and_values() {
        let e = Error::value(ErrorCode::BadPosition, "ring.tail", 0x18, 0x10);
        assert_eq!(
            std::format!("{e}"),
            "BAD_POSITION: ring.tail (found 0x18, expected 0x10)"
        );
    }
}
