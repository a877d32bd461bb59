//! The caller's side of a task call: what goes in ([`Payload`], [`CallOptions`]) and what comes
//! out ([`Response`], [`CallError`]).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use knit_core::ErrorCode;

/// Content type: opaque bytes (spec/09 §9.2).
pub const CONTENT_BYTES: u32 = 0;
/// Content type: UTF-8 text.
pub const CONTENT_UTF8: u32 = 1;
/// Content type: JSON.
pub const CONTENT_JSON: u32 = 2;
/// Content type: CBOR.
pub const CONTENT_CBOR: u32 = 3;

/// The arguments of a call: bytes (borrowed or owned) and their content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    /// The bytes sent.
    pub bytes: Cow<'a, [u8]>,
    /// Their content type (CT-1: a tag the transport never interprets).
    pub content_type: u32,
}

impl<'a> Payload<'a> {
    /// `bytes` tagged with `content_type`.
    pub fn new(bytes: impl Into<Cow<'a, [u8]>>, content_type: u32) -> Self {
        Payload {
            bytes: bytes.into(),
            content_type,
        }
    }

    /// The same payload owning its bytes.
    pub fn into_owned(self) -> Payload<'static> {
        Payload {
            bytes: Cow::Owned(self.bytes.into_owned()),
            content_type: self.content_type,
        }
    }
}

impl<'a> From<&'a str> for Payload<'a> {
    fn from(s: &'a str) -> Self {
        Payload::new(s.as_bytes(), CONTENT_UTF8)
    }
}

impl From<String> for Payload<'static> {
    fn from(s: String) -> Self {
        Payload::new(s.into_bytes(), CONTENT_UTF8)
    }
}

impl<'a> From<&'a [u8]> for Payload<'a> {
    fn from(b: &'a [u8]) -> Self {
        Payload::new(b, CONTENT_BYTES)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Payload<'a> {
    fn from(b: &'a [u8; N]) -> Self {
        Payload::new(&b[..], CONTENT_BYTES)
    }
}

impl<'a> From<&'a Vec<u8>> for Payload<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Payload::new(b.as_slice(), CONTENT_BYTES)
    }
}

impl From<Vec<u8>> for Payload<'static> {
    fn from(b: Vec<u8>) -> Self {
        Payload::new(b, CONTENT_BYTES)
    }
}

/// Per-call options.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOptions {
    /// The call's deadline, from now; `None` uses the pool's default (which may be none).
    pub deadline: Option<Duration>,
    /// Overrides the payload's content type.
    pub content_type: Option<u32>,
}

impl CallOptions {
    /// Options with a deadline `d` from now.
    pub fn deadline(d: Duration) -> Self {
        CallOptions {
            deadline: Some(d),
            content_type: None,
        }
    }
}

/// A successful call's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    content_type: u32,
    bytes: Vec<u8>,
}

impl Response {
    pub(crate) fn new(content_type: u32, bytes: Vec<u8>) -> Self {
        Response {
            content_type,
            bytes,
        }
    }

    /// The response status: always 0 (success); failures are [`CallError`]s.
    pub fn status(&self) -> u32 {
        0
    }

    /// The result's content type.
    pub fn content_type(&self) -> u32 {
        self.content_type
    }

    /// The result bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The result bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// The result as UTF-8 text, `None` when it is not valid UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// A failed call: the status code (a registry code or an application code, delivered raw even
/// when unknown, CALL-7) and a UTF-8 message (ERR-3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallError {
    /// The status: a registry code (spec/09 §9.1) or an application code.
    pub status: u32,
    /// What went wrong.
    pub message: String,
}

impl CallError {
    /// A failure with a registry code.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CallError {
            status: code as u32,
            message: message.into(),
        }
    }

    /// The registry code, `None` for a code the registry does not have (CALL-7).
    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_u32(self.status)
    }

    fn is(&self, code: ErrorCode) -> bool {
        self.status == code as u32
    }

    /// The worker died with the call outstanding (LIVE-3).
    pub fn is_peer_died(&self) -> bool {
        self.is(ErrorCode::PeerDied)
    }

    /// The call was cancelled (CANCEL-1).
    pub fn is_cancelled(&self) -> bool {
        self.is(ErrorCode::Cancelled)
    }

    /// The deadline passed (CALL-8).
    pub fn is_deadline_exceeded(&self) -> bool {
        self.is(ErrorCode::DeadlineExceeded)
    }

    /// No worker has the function (FN-2, CALL-5).
    pub fn is_unknown_function(&self) -> bool {
        self.is(ErrorCode::UnknownFunction)
    }

    /// The handler failed or panicked (CALL-6).
    pub fn is_handler_failed(&self) -> bool {
        self.is(ErrorCode::HandlerFailed)
    }

    /// No room, and the pool's policy is not to wait.
    pub fn is_would_block(&self) -> bool {
        self.is(ErrorCode::WouldBlock)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code() {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "status {}: {}", self.status, self.message),
        }
    }
}

impl std::error::Error for CallError {}

impl From<crate::Error> for CallError {
    fn from(e: crate::Error) -> Self {
        CallError {
            status: e.code() as u32,
            message: e.to_string(),
        }
    }
}

impl From<knit_core::Error> for CallError {
    fn from(e: knit_core::Error) -> Self {
        CallError {
            status: e.code as u32,
            message: e.to_string(),
        }
    }
}

/// The outcome of a call.
pub type CallResult = Result<Response, CallError>;
