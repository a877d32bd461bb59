//! Record types (spec/09-registry.md §9.3), which ring each may appear on (RING-11), and the
//! message body heads of spec/05-calls.md and spec/06-channels.md as little-endian wire structs.
//!
//! Every head is encoded into a private byte array and decoded from a private copy: a decoder
//! never reads shared memory (SEC-2); the caller copies the head bytes out of the ring first.

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::error::{Error, ErrorCode, Result};

/// Padding record (spec/03 §3.2); handled by the ring consumer, never delivered.
pub const TYPE_PAD: u16 = 0x0001;
/// Continuation fragment of a message (MSG-1).
pub const TYPE_CONT: u16 = 0x0002;
/// Task-call request, host to worker (spec/05 §5.2).
pub const TYPE_REQUEST: u16 = 0x0010;
/// Task-call response, worker to host (spec/05 §5.2).
pub const TYPE_RESPONSE: u16 = 0x0011;
/// Function table, worker to host, first message of a worker (MBX-2).
pub const TYPE_HELLO: u16 = 0x0012;
/// Request for the worker to exit (MBX-3).
pub const TYPE_SHUTDOWN: u16 = 0x0013;
/// Announcement of an opened channel (CHAN-2).
pub const TYPE_CHANNEL_OPEN: u16 = 0x0020;
/// Channel message (spec/06 §6.2).
pub const TYPE_DATA: u16 = 0x0030;
/// Channel end-of-stream (CHAN-4).
pub const TYPE_END: u16 = 0x0031;

/// Record flag: first record of a message (MSG-1).
pub const FLAG_FIRST: u16 = 0x0001;
/// Record flag: last record of a message (MSG-1).
pub const FLAG_LAST: u16 = 0x0002;
/// Record flag: a consumer that does not know the type releases the record (RING-11).
pub const FLAG_SKIPPABLE: u16 = 0x8000;
/// Both FIRST and LAST: a message or control record of exactly one record (MSG-1, MSG-6).
pub const FLAGS_SINGLE: u16 = FLAG_FIRST | FLAG_LAST;

/// Which kind of ring a record was read from; decides which types are legal (spec/09 §9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// Host to worker: REQUEST, SHUTDOWN, `CHANNEL_OPEN`, CONT.
    Request,
    /// Worker to host: RESPONSE, HELLO, `CHANNEL_OPEN`, CONT.
    Response,
    /// Channel writer to reader: DATA, END, CONT.
    Channel,
}

/// What a consumer does with a record of a given type on a given ring (RING-11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// The type belongs on this ring: process it.
    Process,
    /// Unknown or out-of-place type with SKIPPABLE set: release it without delivering.
    Skip,
}

impl RingKind {
    /// True when `rtype` is a type this ring carries (spec/09 §9.3; PAD is the ring's own).
    pub fn allows(self, rtype: u16) -> bool {
        match self {
            RingKind::Request => matches!(
                rtype,
                TYPE_CONT | TYPE_REQUEST | TYPE_SHUTDOWN | TYPE_CHANNEL_OPEN
            ),
            RingKind::Response => matches!(
                rtype,
                TYPE_CONT | TYPE_RESPONSE | TYPE_HELLO | TYPE_CHANNEL_OPEN
            ),
            RingKind::Channel => matches!(rtype, TYPE_CONT | TYPE_DATA | TYPE_END),
        }
    }

    /// Decides whether a record of type `rtype` with `flags` is processed or skipped.
    ///
    /// RING-11: a type this ring does not carry (unknown, or known but out of place, spec/09
    /// §9.3) is `UNKNOWN_RECORD` unless SKIPPABLE is set, in which case it is skipped.
    pub fn admit(self, rtype: u16, flags: u16) -> Result<Admission> {
        if self.allows(rtype) {
            Ok(Admission::Process)
        } else if flags & FLAG_SKIPPABLE != 0 {
            Ok(Admission::Skip)
        } else {
            Err(Error::value(
                ErrorCode::UnknownRecord,
                "record.type",
                u64::from(rtype),
                0,
            ))
        }
    }
}

/// True for the types that start a message with a `payload_len` head (spec/07).
pub fn is_message_type(rtype: u16) -> bool {
    matches!(rtype, TYPE_REQUEST | TYPE_RESPONSE | TYPE_HELLO | TYPE_DATA)
}

/// Length of the head that starts the first record body of message type `rtype`, or `None`
/// when `rtype` is not a message type.
pub fn head_len(rtype: u16) -> Option<usize> {
    match rtype {
        TYPE_REQUEST => Some(RequestHead::LEN),
        TYPE_RESPONSE => Some(ResponseHead::LEN),
        TYPE_HELLO => Some(HelloHead::LEN),
        TYPE_DATA => Some(DataHead::LEN),
        _ => None,
    }
}

/// Offset of the `payload_len` field inside the head of message type `rtype` (lets a loan
/// patch the length once the payload is written), or `None` when `rtype` is not a message type.
pub fn payload_len_offset(rtype: u16) -> Option<usize> {
    match rtype {
        TYPE_REQUEST => Some(24),
        TYPE_RESPONSE => Some(16),
        TYPE_HELLO => Some(0),
        TYPE_DATA => Some(8),
        _ => None,
    }
}

fn too_short(what: &'static str, found: usize, expected: usize) -> Error {
    Error::value(ErrorCode::BadRecord, what, found as u64, expected as u64)
}

/// Copies the first `N` bytes of `bytes` into a private array, or `BAD_RECORD` when short.
fn prefix<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N]> {
    match bytes.get(..N) {
        Some(head) => {
            let mut out = [0u8; N];
            out.copy_from_slice(head);
            Ok(out)
        }
        None => Err(too_short(what, bytes.len(), N)),
    }
}

// ---- REQUEST (spec/05 §5.2) -------------------------------------------------------------

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct RequestWire {
    request_id: U64,
    function_id: U32,
    content_type: U32,
    deadline_ns: U64,
    payload_len: U64,
    reserved: U64,
}
const _: () = assert!(core::mem::size_of::<RequestWire>() == RequestHead::LEN);

/// The head of a REQUEST message's first record body (spec/05 §5.2, 40 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Non-zero, strictly increasing per mailbox and epoch (CALL-1).
    pub request_id: u64,
    /// An id from the worker's HELLO.
    pub function_id: u32,
    /// Content type of the payload (spec/09 §9.2).
    pub content_type: u32,
    /// Absolute `CLOCK_MONOTONIC` deadline in nanoseconds, 0 for none.
    pub deadline_ns: u64,
    /// Total payload bytes of the message.
    pub payload_len: u64,
}

impl RequestHead {
    /// Encoded length in bytes.
    pub const LEN: usize = 40;

    /// The little-endian wire bytes; the reserved field is zero (CONV-4).
    pub fn encode(&self) -> [u8; Self::LEN] {
        let wire = RequestWire {
            request_id: U64::new(self.request_id),
            function_id: U32::new(self.function_id),
            content_type: U32::new(self.content_type),
            deadline_ns: U64::new(self.deadline_ns),
            payload_len: U64::new(self.payload_len),
            reserved: U64::ZERO,
        };
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes the head from the start of a private copy of a first record body.
    ///
    /// `BAD_RECORD` when the body is shorter than the head or `request_id` is 0 (CALL-1).
    /// The reserved field is ignored (CONV-4).
    pub fn decode(body: &[u8]) -> Result<Self> {
        let bytes: [u8; Self::LEN] = prefix(body, "request.head")?;
        let wire = RequestWire::read_from_bytes(&bytes)
            .map_err(|_| too_short("request.head", body.len(), Self::LEN))?;
        let head = RequestHead {
            request_id: wire.request_id.get(),
            function_id: wire.function_id.get(),
            content_type: wire.content_type.get(),
            deadline_ns: wire.deadline_ns.get(),
            payload_len: wire.payload_len.get(),
        };
        if head.request_id == 0 {
            // CALL-1: request ids are non-zero.
            return Err(Error::value(
                ErrorCode::BadRecord,
                "request.request_id",
                0,
                1,
            ));
        }
        Ok(head)
    }
}

// ---- RESPONSE (spec/05 §5.2) ------------------------------------------------------------

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ResponseWire {
    request_id: U64,
    status: U32,
    content_type: U32,
    payload_len: U64,
}
const _: () = assert!(core::mem::size_of::<ResponseWire>() == ResponseHead::LEN);

/// The head of a RESPONSE message's first record body (spec/05 §5.2, 24 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The id of the request it answers.
    pub request_id: u64,
    /// 0 for success, otherwise an error code; unknown codes are delivered raw (CALL-7).
    pub status: u32,
    /// Content type of the payload; 1 (UTF-8) when `status` is not 0.
    pub content_type: u32,
    /// Total payload bytes of the message.
    pub payload_len: u64,
}

impl ResponseHead {
    /// Encoded length in bytes.
    pub const LEN: usize = 24;

    /// The little-endian wire bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let wire = ResponseWire {
            request_id: U64::new(self.request_id),
            status: U32::new(self.status),
            content_type: U32::new(self.content_type),
            payload_len: U64::new(self.payload_len),
        };
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes the head from the start of a private copy of a first record body.
    /// `BAD_RECORD` when the body is shorter than the head. Whether `request_id` is
    /// outstanding is the mailbox's decision (CALL-4).
    pub fn decode(body: &[u8]) -> Result<Self> {
        let bytes: [u8; Self::LEN] = prefix(body, "response.head")?;
        let wire = ResponseWire::read_from_bytes(&bytes)
            .map_err(|_| too_short("response.head", body.len(), Self::LEN))?;
        Ok(ResponseHead {
            request_id: wire.request_id.get(),
            status: wire.status.get(),
            content_type: wire.content_type.get(),
            payload_len: wire.payload_len.get(),
        })
    }
}

// ---- HELLO (spec/05 §5.3) ---------------------------------------------------------------

/// The head of a HELLO message's first record body (spec/05 §5.3, 8 bytes); the payload is
/// the function table ([`crate::fntable`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloHead {
    /// Total payload bytes of the message.
    pub payload_len: u64,
}

impl HelloHead {
    /// Encoded length in bytes.
    pub const LEN: usize = 8;

    /// The little-endian wire bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        self.payload_len.to_le_bytes()
    }

    /// Decodes the head from the start of a private copy of a first record body.
    pub fn decode(body: &[u8]) -> Result<Self> {
        let bytes: [u8; Self::LEN] = prefix(body, "hello.head")?;
        Ok(HelloHead {
            payload_len: u64::from_le_bytes(bytes),
        })
    }
}

// ---- DATA (spec/06 §6.2) ----------------------------------------------------------------

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct DataWire {
    content_type: U32,
    reserved: U32,
    payload_len: U64,
}
const _: () = assert!(core::mem::size_of::<DataWire>() == DataHead::LEN);

/// The head of a DATA message's first record body (spec/06 §6.2, 16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataHead {
    /// Content type of the payload (spec/09 §9.2).
    pub content_type: u32,
    /// Total payload bytes of the message.
    pub payload_len: u64,
}

impl DataHead {
    /// Encoded length in bytes.
    pub const LEN: usize = 16;

    /// The little-endian wire bytes; the reserved field is zero (CONV-4).
    pub fn encode(&self) -> [u8; Self::LEN] {
        let wire = DataWire {
            content_type: U32::new(self.content_type),
            reserved: U32::ZERO,
            payload_len: U64::new(self.payload_len),
        };
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes the head from the start of a private copy of a first record body; the reserved
    /// field is ignored (CONV-4).
    pub fn decode(body: &[u8]) -> Result<Self> {
        let bytes: [u8; Self::LEN] = prefix(body, "data.head")?;
        let wire = DataWire::read_from_bytes(&bytes)
            .map_err(|_| too_short("data.head", body.len(), Self::LEN))?;
        Ok(DataHead {
            content_type: wire.content_type.get(),
            payload_len: wire.payload_len.get(),
        })
    }
}

// ---- CHANNEL_OPEN (spec/06 §6.3, CHAN-2) ------------------------------------------------

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
struct ChannelOpenWire {
    channel: U32,
    epoch: U32,
    tag: U64,
}
const _: () = assert!(core::mem::size_of::<ChannelOpenWire>() == ChannelOpen::LEN);

/// The body of a `CHANNEL_OPEN` record (CHAN-2, 16 bytes). Whether the slot matches is the
/// receiving end's check (CHAN-2), made against the channel slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelOpen {
    /// Channel slot index.
    pub channel: u32,
    /// The slot's `epoch` after the open.
    pub epoch: u32,
    /// The slot's `tag`.
    pub tag: u64,
}

impl ChannelOpen {
    /// Encoded length in bytes; also the exact body length of the record (MSG-7).
    pub const LEN: usize = 16;

    /// The little-endian wire bytes.
    pub fn encode(&self) -> [u8; Self::LEN] {
        let wire = ChannelOpenWire {
            channel: U32::new(self.channel),
            epoch: U32::new(self.epoch),
            tag: U64::new(self.tag),
        };
        let mut out = [0u8; Self::LEN];
        out.copy_from_slice(wire.as_bytes());
        out
    }

    /// Decodes a private copy of the whole record body; MSG-7: the body is exactly 16 bytes,
    /// otherwise `BAD_RECORD`.
    pub fn decode(body: &[u8]) -> Result<Self> {
        if body.len() != Self::LEN {
            return Err(Error::value(
                ErrorCode::BadRecord,
                "channel_open.len",
                body.len() as u64,
                Self::LEN as u64,
            ));
        }
        let wire = ChannelOpenWire::read_from_bytes(body)
            .map_err(|_| too_short("channel_open.len", body.len(), Self::LEN))?;
        Ok(ChannelOpen {
            channel: wire.channel.get(),
            epoch: wire.epoch.get(),
            tag: wire.tag.get(),
        })
    }
}

/// The exact body length of a record without a message header (MSG-6, MSG-7), or `None` for
/// the other types.
pub fn control_body_len(rtype: u16) -> Option<usize> {
    match rtype {
        TYPE_SHUTDOWN | TYPE_END => Some(0),
        TYPE_CHANNEL_OPEN => Some(ChannelOpen::LEN),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_head_round_trips_and_places_fields() {
        let head = RequestHead {
            request_id: 0x0102_0304_0506_0708,
            function_id: 9,
            content_type: 4,
            deadline_ns: 77,
            payload_len: 1 << 33,
        };
        let bytes = head.encode();
        assert_eq!(&bytes[0..8], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[8..12], &9u32.to_le_bytes());
        assert_eq!(&bytes[12..16], &4u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &77u64.to_le_bytes());
        assert_eq!(&bytes[24..32], &(1u64 << 33).to_le_bytes());
        assert_eq!(&bytes[32..40], &[0u8; 8]);
        assert_eq!(RequestHead::decode(&bytes), Ok(head));
    }

    #[test]
    fn request_head_ignores_reserved_and_rejects_zero_id_and_short_body() {
        let head = RequestHead {
            request_id: 5,
            function_id: 1,
            content_type: 0,
            deadline_ns: 0,
            payload_len: 3,
        };
        let mut bytes = head.encode();
        bytes[32..40].copy_from_slice(&[0xFF; 8]);
        assert_eq!(RequestHead::decode(&bytes), Ok(head));
        bytes[0..8].copy_from_slice(&[0; 8]);
        assert_eq!(
            RequestHead::decode(&bytes).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            RequestHead::decode(&head.encode()[..39]).unwrap_err().code,
            ErrorCode::BadRecord
        );
    }

    #[test]
    fn response_hello_data_channel_open_round_trip() {
        let response = ResponseHead {
            request_id: 3,
            status: 1234,
            content_type: 1,
            payload_len: 10,
        };
        let bytes = response.encode();
        assert_eq!(&bytes[8..12], &1234u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &10u64.to_le_bytes());
        assert_eq!(ResponseHead::decode(&bytes), Ok(response));

        let hello = HelloHead { payload_len: 48 };
        assert_eq!(HelloHead::decode(&hello.encode()), Ok(hello));

        let data = DataHead {
            content_type: 0x8000_0001,
            payload_len: 2,
        };
        let mut bytes = data.encode();
        assert_eq!(&bytes[4..8], &[0u8; 4]);
        assert_eq!(&bytes[8..16], &2u64.to_le_bytes());
        bytes[4] = 0xAA;
        assert_eq!(DataHead::decode(&bytes), Ok(data));

        let open = ChannelOpen {
            channel: 7,
            epoch: 2,
            tag: 99,
        };
        assert_eq!(
            &open.encode()[..],
            &[7, 0, 0, 0, 2, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(ChannelOpen::decode(&open.encode()), Ok(open));
    }

    #[test]
    fn short_heads_and_wrong_control_lengths_are_bad_record() {
        assert_eq!(
            ResponseHead::decode(&[0; 23]).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            HelloHead::decode(&[0; 7]).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            DataHead::decode(&[0; 15]).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            ChannelOpen::decode(&[0; 15]).unwrap_err().code,
            ErrorCode::BadRecord
        );
        assert_eq!(
            ChannelOpen::decode(&[0; 17]).unwrap_err().code,
            ErrorCode::BadRecord
        );
    }

    #[test]
    fn each_ring_admits_exactly_its_types() {
        let all = [
            TYPE_CONT,
            TYPE_REQUEST,
            TYPE_RESPONSE,
            TYPE_HELLO,
            TYPE_SHUTDOWN,
            TYPE_CHANNEL_OPEN,
            TYPE_DATA,
            TYPE_END,
            0x0003,
            0x7FFF,
        ];
        let legal = |kind: RingKind, t: u16| match kind {
            RingKind::Request => {
                [TYPE_CONT, TYPE_REQUEST, TYPE_SHUTDOWN, TYPE_CHANNEL_OPEN].contains(&t)
            }
            RingKind::Response => {
                [TYPE_CONT, TYPE_RESPONSE, TYPE_HELLO, TYPE_CHANNEL_OPEN].contains(&t)
            }
            RingKind::Channel => [TYPE_CONT, TYPE_DATA, TYPE_END].contains(&t),
        };
        for kind in [RingKind::Request, RingKind::Response, RingKind::Channel] {
            for t in all {
                if legal(kind, t) {
                    assert_eq!(kind.admit(t, 0), Ok(Admission::Process));
                    assert_eq!(kind.admit(t, FLAG_SKIPPABLE), Ok(Admission::Process));
                } else {
                    assert_eq!(
                        kind.admit(t, FLAGS_SINGLE).unwrap_err().code,
                        ErrorCode::UnknownRecord
                    );
                    assert_eq!(
                        kind.admit(t, FLAG_SKIPPABLE | FLAGS_SINGLE),
                        Ok(Admission::Skip)
                    );
                }
            }
        }
    }

    #[test]
    fn head_lengths_keep_payload_8_aligned_and_payload_len_offsets_match_encoding() {
        for t in [TYPE_REQUEST, TYPE_RESPONSE, TYPE_HELLO, TYPE_DATA] {
            assert!(is_message_type(t));
            let len = head_len(t).unwrap();
            assert_eq!(len % 8, 0);
            let off = payload_len_offset(t).unwrap();
            assert!(off + 8 <= len);
        }
        let r = RequestHead {
            request_id: 1,
            function_id: 0,
            content_type: 0,
            deadline_ns: 0,
            payload_len: 0xABCD,
        };
        assert_eq!(&r.encode()[24..32], &0xABCDu64.to_le_bytes());
        let d = DataHead {
            content_type: 0,
            payload_len: 0xABCD,
        };
        assert_eq!(&d.encode()[8..16], &0xABCDu64.to_le_bytes());
        assert_eq!(head_len(TYPE_SHUTDOWN), None);
        assert_eq!(control_body_len(TYPE_CHANNEL_OPEN), Some(16));
        assert_eq!(control_body_len(TYPE_END), Some(0));
    }
}
