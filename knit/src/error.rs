//! The error type of the runtime: a protocol error from the registry (spec/09 §9.1), or an
//! operating-system call that failed, each with enough context to name what it was about.

use std::fmt;
use std::io;

use knit_core::ErrorCode;

/// An error of the Knit runtime.
///
/// Every error maps to one registry code ([`Error::code`]), the number that crosses language
/// boundaries; operating-system failures map to [`ErrorCode::OsError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A protocol or API error with a registry code, from knit-core or raised by this crate.
    Protocol {
        /// The typed core error (code, field, values).
        error: knit_core::Error,
        /// What it was about, e.g. the region name; empty when the core error says it all.
        context: String,
    },
    /// An operating-system call failed.
    Os {
        /// The call or step that failed, e.g. `"shm_open"`.
        op: &'static str,
        /// The name or path it was applied to.
        subject: String,
        /// The error the OS returned.
        source: io::Error,
    },
}

impl Error {
    /// An operating-system error of `op` on `subject`.
    pub fn os(op: &'static str, subject: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Os {
            op,
            subject: subject.into(),
            source: source.into(),
        }
    }

    /// A registry error raised by this crate, with a subject and context.
    pub fn protocol(code: ErrorCode, what: &'static str, context: impl Into<String>) -> Self {
        Error::Protocol {
            error: knit_core::Error::new(code, what),
            context: context.into(),
        }
    }

    /// Adds (or replaces) the context of a protocol error; OS errors already name their subject.
    #[must_use]
    pub fn with_context(self, context: impl Into<String>) -> Self {
        match self {
            Error::Protocol { error, .. } => Error::Protocol {
                error,
                context: context.into(),
            },
            os @ Error::Os { .. } => os,
        }
    }

    /// The registry code of this error (ERR-1): the core code, or `OS_ERROR` for the OS.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Protocol { error, .. } => error.code,
            Error::Os { .. } => ErrorCode::OsError,
        }
    }

    /// The core error, when this is a protocol error.
    pub fn core(&self) -> Option<&knit_core::Error> {
        match self {
            Error::Protocol { error, .. } => Some(error),
            Error::Os { .. } => None,
        }
    }

    /// The OS error, when this is one.
    pub fn io(&self) -> Option<&io::Error> {
        match self {
            Error::Os { source, .. } => Some(source),
            Error::Protocol { .. } => None,
        }
    }
}

impl From<knit_core::Error> for Error {
    fn from(error: knit_core::Error) -> Self {
        Error::Protocol {
            error,
            context: String::new(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol { error, context } if context.is_empty() => write!(f, "{error}"),
            Error::Protocol { error, context } => write!(f, "{error} ({context})"),
            Error::Os {
                op,
                subject,
                source,
            } => {
                write!(f, "{}: {op} {subject}: {source}", ErrorCode::OsError.name())
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Protocol { error, .. } => Some(error),
            Error::Os { source, .. } => Some(source),
        }
    }
}

/// Result alias of the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_os_error_and_name_their_subject() {
        let e = Error::os(
            "shm_open",
            "/dev/shm/knit-00",
            io::Error::from_raw_os_error(17),
        );
        assert_eq!(e.code(), ErrorCode::OsError);
        let text = e.to_string();
        assert!(
            text.starts_with("OS_ERROR: shm_open /dev/shm/knit-00: "),
            "{text}"
        );
        assert_eq!(e.io().and_then(io::Error::raw_os_error), Some(17));
        assert!(e.core().is_none());
    }

    #[test]
    fn protocol_errors_keep_their_code_and_context() {
        let core = knit_core::Error::value(ErrorCode::RegionTooSmall, "object size", 0x10, 0x140);
        let e = Error::from(core).with_context("region knit-ab");
        assert_eq!(e.code(), ErrorCode::RegionTooSmall);
        assert_eq!(e.core(), Some(&core));
        assert_eq!(
            e.to_string(),
            "REGION_TOO_SMALL: object size (found 0x10, expected 0x140) (region knit-ab)"
        );
    }
}
