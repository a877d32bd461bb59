//! Messages and fragments (spec/07-messages.md): writing a message as one or more records,
//! loaning a one-record message in place, and reassembling incoming records into messages.
//!
//! A message is a REQUEST, RESPONSE, HELLO or DATA: its first record carries a head with
//! `payload_len` and the first part of the payload; CONT records carry the rest. SHUTDOWN,
//! `CHANNEL_OPEN` and END are single control records (MSG-6, MSG-7).

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use crate::error::{Error, ErrorCode, Result};
use crate::records::{
    self, Admission, ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead, RingKind,
    FLAGS_SINGLE, FLAG_FIRST, FLAG_LAST, TYPE_CHANNEL_OPEN, TYPE_CONT, TYPE_DATA, TYPE_END,
    TYPE_HELLO, TYPE_REQUEST, TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use crate::ring::{Consumer, Producer, Record, RecordHeader, Reservation};

/// Longest message head (REQUEST's).
pub const MAX_HEAD_LEN: usize = RequestHead::LEN;

/// Most records one [`Reassembler::poll`] consumes, so that a peer that keeps producing
/// cannot hold a consumer in one call forever (SEC-1).
pub const MAX_RECORDS_PER_POLL: usize = 64;

/// The head of a message, decoded from a private copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageHead {
    /// A task-call request (spec/05 §5.2).
    Request(RequestHead),
    /// A task-call response (spec/05 §5.2).
    Response(ResponseHead),
    /// A function table (spec/05 §5.3).
    Hello(HelloHead),
    /// A channel message (spec/06 §6.2).
    Data(DataHead),
}

impl MessageHead {
    /// The record type of the message's first record.
    pub fn rtype(&self) -> u16 {
        match self {
            MessageHead::Request(_) => TYPE_REQUEST,
            MessageHead::Response(_) => TYPE_RESPONSE,
            MessageHead::Hello(_) => TYPE_HELLO,
            MessageHead::Data(_) => TYPE_DATA,
        }
    }

    /// Total payload bytes the head announces.
    pub fn payload_len(&self) -> u64 {
        match self {
            MessageHead::Request(h) => h.payload_len,
            MessageHead::Response(h) => h.payload_len,
            MessageHead::Hello(h) => h.payload_len,
            MessageHead::Data(h) => h.payload_len,
        }
    }

    /// The same head announcing `len` payload bytes.
    #[must_use]
    pub fn with_payload_len(mut self, len: u64) -> Self {
        match &mut self {
            MessageHead::Request(h) => h.payload_len = len,
            MessageHead::Response(h) => h.payload_len = len,
            MessageHead::Hello(h) => h.payload_len = len,
            MessageHead::Data(h) => h.payload_len = len,
        }
        self
    }

    /// Encoded head length.
    pub fn len(&self) -> usize {
        match self {
            MessageHead::Request(_) => RequestHead::LEN,
            MessageHead::Response(_) => ResponseHead::LEN,
            MessageHead::Hello(_) => HelloHead::LEN,
            MessageHead::Data(_) => DataHead::LEN,
        }
    }

    /// Always false: every head has bytes (keeps clippy's `len_without_is_empty` satisfied).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Encodes into the first [`MessageHead::len`] bytes of the returned array.
    pub fn encode(&self) -> [u8; MAX_HEAD_LEN] {
        let mut out = [0u8; MAX_HEAD_LEN];
        match self {
            MessageHead::Request(h) => out[..RequestHead::LEN].copy_from_slice(&h.encode()),
            MessageHead::Response(h) => out[..ResponseHead::LEN].copy_from_slice(&h.encode()),
            MessageHead::Hello(h) => out[..HelloHead::LEN].copy_from_slice(&h.encode()),
            MessageHead::Data(h) => out[..DataHead::LEN].copy_from_slice(&h.encode()),
        }
        out
    }

    /// Decodes the head of a first record of type `rtype` from a private copy of its body.
    /// `BAD_RECORD` when the body is too short for the head (or the head breaks its rules);
    /// `UNKNOWN_RECORD` when `rtype` is not a message type.
    pub fn decode(rtype: u16, body: &[u8]) -> Result<Self> {
        match rtype {
            TYPE_REQUEST => RequestHead::decode(body).map(MessageHead::Request),
            TYPE_RESPONSE => ResponseHead::decode(body).map(MessageHead::Response),
            TYPE_HELLO => HelloHead::decode(body).map(MessageHead::Hello),
            TYPE_DATA => DataHead::decode(body).map(MessageHead::Data),
            _ => Err(Error::value(
                ErrorCode::UnknownRecord,
                "message type",
                u64::from(rtype),
                0,
            )),
        }
    }
}

fn frag_error(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::BadFragment, what, found, expected)
}

// ---- writing ----------------------------------------------------------------------------

/// A message being written into a ring, one or more records at a time (MSG-1, MSG-2, MSG-5).
///
/// [`OutgoingMessage::write_to`] writes as many fragments as the ring has room for and can be
/// called again after the ring drained; the caller publishes (RING-3) and rings the doorbell.
/// Until the message is done, nothing else may be written to the same ring (MSG-2).
#[derive(Clone, Debug)]
pub struct OutgoingMessage<'p> {
    rtype: u16,
    head: [u8; MAX_HEAD_LEN],
    head_len: usize,
    payload: &'p [u8],
    sent: usize,
    started: bool,
}

impl<'p> OutgoingMessage<'p> {
    /// A message with `head` (whose `payload_len` is replaced by `payload.len()`) and `payload`.
    pub fn new(head: MessageHead, payload: &'p [u8]) -> Self {
        let head = head.with_payload_len(payload.len() as u64);
        OutgoingMessage {
            rtype: head.rtype(),
            head: head.encode(),
            head_len: head.len(),
            payload,
            sent: 0,
            started: false,
        }
    }

    /// The record type of the first record.
    pub fn rtype(&self) -> u16 {
        self.rtype
    }

    /// The payload being sent.
    pub fn payload(&self) -> &'p [u8] {
        self.payload
    }

    /// True when the first record has been written (the message must then be finished before
    /// anything else is written to the ring, MSG-2).
    pub fn is_started(&self) -> bool {
        self.started
    }

    /// True when every record has been written.
    pub fn is_done(&self) -> bool {
        self.started && self.sent == self.payload.len()
    }

    /// Writes as many of the remaining records as fit into `producer` and returns whether
    /// the message is complete. Fragments are filled to the ring's largest body (MSG-5); a
    /// fragment that does not fit yet is left for the next call. Does not publish.
    pub fn write_to(&mut self, producer: &mut Producer<'_>) -> Result<bool> {
        let max_body = producer.ring().max_body_len();
        if max_body <= self.head_len {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "ring too small for head",
                max_body as u64,
                self.head_len as u64,
            ));
        }
        while !self.is_done() {
            let remaining = self.payload.len() - self.sent;
            let (rtype, prefix, room) = if self.started {
                (TYPE_CONT, 0, max_body)
            } else {
                (self.rtype, self.head_len, max_body - self.head_len)
            };
            let chunk = remaining.min(room);
            let first = if self.started { 0 } else { FLAG_FIRST };
            let last = if chunk == remaining { FLAG_LAST } else { 0 };
            let Some(mut reservation) = producer.reserve(prefix + chunk)? else {
                return Ok(false);
            };
            let body = reservation.body();
            body[..prefix].copy_from_slice(&self.head[..prefix]);
            body[prefix..prefix + chunk]
                .copy_from_slice(&self.payload[self.sent..self.sent + chunk]);
            reservation.commit(rtype, first | last);
            self.sent += chunk;
            self.started = true;
        }
        Ok(true)
    }
}

/// Writes a control record (SHUTDOWN, `CHANNEL_OPEN`, END) as one FIRST|LAST record (MSG-6).
/// Returns false when the ring has no room yet. Does not publish.
pub fn write_control(producer: &mut Producer<'_>, rtype: u16, body: &[u8]) -> Result<bool> {
    if records::control_body_len(rtype) != Some(body.len()) {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "control record body",
            body.len() as u64,
            u64::from(rtype),
        ));
    }
    producer.try_write(rtype, FLAGS_SINGLE, body)
}

/// A one-record message reserved in place (loan, spec/03 §3.3): the head is written, the
/// caller writes the payload directly into the ring and commits it.
pub struct Loan<'r, 'a> {
    reservation: Reservation<'r, 'a>,
    rtype: u16,
    head_len: usize,
    payload_len_offset: usize,
}

/// True when a message with `head_len` head bytes and `payload_len` payload bytes fits in one
/// record of `producer`'s ring (RING-1), so that it can be loaned.
pub fn fits_one_record(producer: &Producer<'_>, head_len: usize, payload_len: usize) -> bool {
    head_len
        .checked_add(payload_len)
        .is_some_and(|len| len <= producer.ring().max_body_len())
}

/// Reserves a one-record message with `head` and room for `capacity` payload bytes.
///
/// Returns `Ok(None)` when the ring has no room yet, and `INVALID_ARGUMENT` when the message
/// could never fit one record (check [`fits_one_record`] first and use
/// [`OutgoingMessage`] otherwise).
pub fn loan<'r, 'a>(
    producer: &'r mut Producer<'a>,
    head: MessageHead,
    capacity: usize,
) -> Result<Option<Loan<'r, 'a>>> {
    let head_len = head.len();
    if !fits_one_record(producer, head_len, capacity) {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "loan capacity",
            capacity as u64,
            producer.ring().max_body_len() as u64,
        ));
    }
    let rtype = head.rtype();
    let payload_len_offset = records::payload_len_offset(rtype).ok_or(Error::value(
        ErrorCode::InvalidArgument,
        "loan type",
        u64::from(rtype),
        0,
    ))?;
    let Some(mut reservation) = producer.reserve(head_len + capacity)? else {
        return Ok(None);
    };
    let encoded = head.with_payload_len(capacity as u64).encode();
    reservation.body()[..head_len].copy_from_slice(&encoded[..head_len]);
    Ok(Some(Loan {
        reservation,
        rtype,
        head_len,
        payload_len_offset,
    }))
}

impl Loan<'_, '_> {
    /// The payload area, `capacity` bytes, to be written in place.
    pub fn payload(&mut self) -> &mut [u8] {
        let head_len = self.head_len;
        &mut self.reservation.body()[head_len..]
    }

    /// Commits the first `payload_len` payload bytes as a FIRST|LAST record, patching the
    /// head's `payload_len`. `INVALID_ARGUMENT` (and nothing committed) when `payload_len`
    /// exceeds the capacity. Does not publish.
    pub fn commit(mut self, payload_len: usize) -> Result<()> {
        let capacity = self.reservation.body().len() - self.head_len;
        if payload_len > capacity {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "loan payload_len",
                payload_len as u64,
                capacity as u64,
            ));
        }
        let off = self.payload_len_offset;
        self.reservation.body()[off..off + 8].copy_from_slice(&(payload_len as u64).to_le_bytes());
        self.reservation
            .commit_len(self.rtype, FLAGS_SINGLE, self.head_len + payload_len);
        Ok(())
    }
}

// ---- reading ----------------------------------------------------------------------------

/// A payload delivered by a [`Reassembler`].
pub enum Payload<'c, 'a> {
    /// A one-record message, borrowed in place from the ring (MSG-5, RING-15): untrusted
    /// bytes that the peer may still scribble on; copy before deciding anything from them.
    InPlace(InPlace<'c, 'a>),
    /// A fragmented message reassembled into private memory.
    #[cfg(feature = "alloc")]
    Owned(Vec<u8>),
    /// A fragmented message whose payload could not be held (no `alloc` feature, or the
    /// allocation failed): its fragments were validated and released (MSG-9). The receiver
    /// answers or reports `PAYLOAD_TOO_LARGE`.
    Unavailable {
        /// The announced payload length.
        len: u64,
    },
}

impl Payload<'_, '_> {
    /// The payload bytes (empty for [`Payload::Unavailable`]).
    pub fn bytes(&self) -> &[u8] {
        match self {
            Payload::InPlace(p) => p.bytes(),
            #[cfg(feature = "alloc")]
            Payload::Owned(v) => v,
            Payload::Unavailable { .. } => &[],
        }
    }

    /// Releases an in-place record (RING-6); the owner of the consumer then publishes the
    /// head. Owned payloads are simply dropped. (A payload dropped without this is released
    /// by the next poll.)
    pub fn release(self) {
        if let Payload::InPlace(p) = self {
            p.release();
        }
    }

    /// The payload in private memory: copies an in-place body, then releases the record.
    #[cfg(feature = "alloc")]
    pub fn into_vec(self) -> Option<Vec<u8>> {
        match self {
            Payload::InPlace(p) => {
                let v = p.bytes().to_vec();
                p.release();
                Some(v)
            }
            Payload::Owned(v) => Some(v),
            Payload::Unavailable { .. } => None,
        }
    }
}

impl core::fmt::Debug for Payload<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Payload::InPlace(p) => f
                .debug_struct("InPlace")
                .field("len", &p.bytes().len())
                .finish(),
            #[cfg(feature = "alloc")]
            Payload::Owned(v) => f.debug_struct("Owned").field("len", &v.len()).finish(),
            Payload::Unavailable { len } => {
                f.debug_struct("Unavailable").field("len", len).finish()
            }
        }
    }
}

/// A one-record message's payload, borrowed in the ring until [`InPlace::release`].
///
/// A payload dropped without [`InPlace::release`] is released by the reassembler's next poll:
/// a delivered message is never delivered twice.
pub struct InPlace<'c, 'a> {
    record: Record<'c, 'a>,
    offset: usize,
}

impl InPlace<'_, '_> {
    /// The payload bytes in the ring.
    pub fn bytes(&self) -> &[u8] {
        self.record.body().get(self.offset..).unwrap_or(&[])
    }

    /// Releases the record (RING-6): the consumer's private head moves past it; its owner
    /// publishes the head.
    pub fn release(self) {
        self.record.consume();
    }
}

/// A complete message.
#[derive(Debug)]
pub struct Message<'c, 'a> {
    /// The decoded head.
    pub head: MessageHead,
    /// The payload.
    pub payload: Payload<'c, 'a>,
}

/// What a [`Reassembler`] delivers.
#[derive(Debug)]
pub enum Incoming<'c, 'a> {
    /// A complete REQUEST, RESPONSE, HELLO or DATA.
    Message(Message<'c, 'a>),
    /// SHUTDOWN (MBX-3).
    Shutdown,
    /// `CHANNEL_OPEN` (CHAN-2); the receiver checks the slot.
    ChannelOpen(ChannelOpen),
    /// END (CHAN-4).
    End,
}

/// The outcome of one [`Reassembler::poll`].
#[derive(Debug)]
pub struct Polled<'c, 'a> {
    /// A complete message or control record, or `None` when nothing complete is available
    /// now (the ring may still hold part of a message, or more records than one poll takes).
    pub incoming: Option<Incoming<'c, 'a>>,
    /// The consumer stored a new `head`: ring the producer's doorbell (WAIT-5, WAIT-6).
    pub released: bool,
}

/// Decides, from a message's head, whether the receiver wants its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Deliver the message.
    Deliver,
    /// Validate and release its records without delivering (for example a late response to
    /// an abandoned call, CALL-4).
    Drop,
}

enum Sink {
    #[cfg(feature = "alloc")]
    Buffer(Vec<u8>),
    Drop,
    Unavailable,
}

struct Assembly {
    head: MessageHead,
    received: u64,
    sink: Sink,
}

/// Reassembles the records of one consumer into messages, enforcing MSG-1 to MSG-4, MSG-6,
/// MSG-7 and RING-11. After it reported a violation it touches the ring no more (RING-13)
/// and reports the same error again.
pub struct Reassembler {
    kind: RingKind,
    max_message_len: u64,
    partial: Option<Assembly>,
    failed: Option<Error>,
    /// Position and header of the last record delivered in place, to release it at the next
    /// poll if its payload was dropped without being released.
    lent: Option<(u64, RecordHeader)>,
}

impl Reassembler {
    /// A reassembler for a ring of `kind` in a region whose header says `max_message_len`.
    pub fn new(kind: RingKind, max_message_len: u64) -> Self {
        Reassembler {
            kind,
            max_message_len,
            partial: None,
            failed: None,
            lent: None,
        }
    }

    /// True while a fragmented message is partly received.
    pub fn in_message(&self) -> bool {
        self.partial.is_some()
    }

    /// The violation found earlier, if any.
    pub fn failure(&self) -> Option<Error> {
        self.failed
    }

    /// Takes records from `consumer` until a message or control record is complete, the ring
    /// is empty, or [`MAX_RECORDS_PER_POLL`] records were taken. A delivered in-place message
    /// is released by [`Payload::release`] (the caller then publishes the head), or else by
    /// the next poll.
    ///
    /// `accept` is asked once per message, at its first record, before anything is
    /// allocated for it; its error aborts the poll as a violation. Records consumed here are
    /// released with [`Consumer::publish_head`]; an in-place message is released by the caller.
    pub fn poll<'c, 'a>(
        &mut self,
        consumer: &'c mut Consumer<'a>,
        accept: impl FnMut(&MessageHead) -> Result<Accept>,
    ) -> Result<Polled<'c, 'a>> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        match self.poll_inner(consumer, accept) {
            Ok(polled) => Ok(polled),
            Err(err) => {
                self.failed = Some(err);
                self.partial = None;
                Err(err)
            }
        }
    }

    fn poll_inner<'c, 'a>(
        &mut self,
        consumer: &'c mut Consumer<'a>,
        mut accept: impl FnMut(&MessageHead) -> Result<Accept>,
    ) -> Result<Polled<'c, 'a>> {
        let mut released = false;
        if let Some((pos, header)) = self.lent.take() {
            if consumer.head() == pos {
                // Delivered in place and dropped without release: release it now.
                let record = consumer
                    .peek()?
                    .ok_or(Error::new(ErrorCode::BadPosition, "lent record vanished"))?;
                same_header(record.header(), header)?;
                record.consume();
                released |= consumer.publish_head();
            }
        }
        let mut in_place = None;
        for _ in 0..MAX_RECORDS_PER_POLL {
            let Some(record) = consumer.peek()? else {
                // A PAD may have been consumed on the way (see `Consumer::peek`).
                released |= consumer.publish_head();
                break;
            };
            let header = record.header();
            match self.step(&record, header.rtype, header.flags, &mut accept)? {
                Step::Consume(incoming) => {
                    record.consume();
                    released |= consumer.publish_head();
                    if let Some(incoming) = incoming {
                        return Ok(Polled {
                            incoming: Some(incoming),
                            released,
                        });
                    }
                }
                Step::InPlace { head, offset } => {
                    in_place = Some((head, offset, header));
                    break;
                }
            }
        }
        let Some((head, offset, header)) = in_place else {
            return Ok(Polled {
                incoming: None,
                released,
            });
        };
        // A PAD before the record may have been consumed: release it now, since the caller
        // may hold the record a while.
        released |= consumer.publish_head();
        // The record to deliver in place is taken again, now borrowed for the caller's
        // lifetime (the loop above could not hand out a borrow it might still need). The
        // decision was made on the first copy of its header; the second must be identical
        // (RING-12, RING-15), or the peer rewrote a published record.
        let pos = consumer.head();
        let record = consumer.peek()?.ok_or(Error::new(
            ErrorCode::BadPosition,
            "record vanished before delivery",
        ))?;
        same_header(record.header(), header)?;
        self.lent = Some((pos, header));
        let payload = Payload::InPlace(InPlace { record, offset });
        Ok(Polled {
            incoming: Some(Incoming::Message(Message { head, payload })),
            released,
        })
    }

    fn step<'c, 'a>(
        &mut self,
        record: &Record<'_, '_>,
        rtype: u16,
        flags: u16,
        accept: &mut impl FnMut(&MessageHead) -> Result<Accept>,
    ) -> Result<Step<'c, 'a>> {
        // RING-11: unknown or out-of-place types are refused unless SKIPPABLE.
        if self.kind.admit(rtype, flags)? == Admission::Skip {
            if self.partial.is_some() {
                // MSG-2, MSG-3: nothing but PAD stands between two fragments of a message.
                return Err(frag_error(
                    "record inside a message",
                    u64::from(rtype),
                    u64::from(TYPE_CONT),
                ));
            }
            return Ok(Step::Consume(None));
        }
        if rtype == TYPE_CONT {
            return self.continuation(record.body(), flags).map(Step::Consume);
        }
        if self.partial.is_some() {
            // MSG-3: a non-CONT record does not interrupt a message.
            return Err(frag_error(
                "message interrupted",
                u64::from(rtype),
                u64::from(TYPE_CONT),
            ));
        }
        if records::is_message_type(rtype) {
            self.first(record.body(), rtype, flags, accept)
        } else {
            control(record.body(), rtype, flags).map(|c| Step::Consume(Some(c)))
        }
    }

    fn first<'c, 'a>(
        &mut self,
        body: &[u8],
        rtype: u16,
        flags: u16,
        accept: &mut impl FnMut(&MessageHead) -> Result<Accept>,
    ) -> Result<Step<'c, 'a>> {
        // MSG-1: a message starts with FIRST.
        if flags & FLAG_FIRST == 0 {
            return Err(frag_error(
                "first record without FIRST",
                u64::from(flags),
                u64::from(FLAG_FIRST),
            ));
        }
        let head_len = records::head_len(rtype).unwrap_or(MAX_HEAD_LEN);
        // MSG-8, SEC-2: the head is copied into private memory once and decoded from the
        // copy; MSG-7: a first record shorter than its head is BAD_RECORD.
        let mut copy = [0u8; MAX_HEAD_LEN];
        let src = body.get(..head_len).ok_or(Error::value(
            ErrorCode::BadRecord,
            "message head",
            body.len() as u64,
            head_len as u64,
        ))?;
        copy[..head_len].copy_from_slice(src);
        let head = MessageHead::decode(rtype, &copy[..head_len])?;
        let payload_len = head.payload_len();
        // MSG-4: refuse an oversized message before allocating anything for it.
        if payload_len > self.max_message_len {
            return Err(Error::value(
                ErrorCode::BadRecord,
                "payload_len",
                payload_len,
                self.max_message_len,
            ));
        }
        let frag = (body.len() - head_len) as u64;
        check_fragment(0, frag, payload_len, flags & FLAG_LAST != 0)?;
        let wanted = accept(&head)?;
        if flags & FLAG_LAST != 0 {
            return Ok(match wanted {
                Accept::Deliver => Step::InPlace {
                    head,
                    offset: head_len,
                },
                Accept::Drop => Step::Consume(None),
            });
        }
        let mut sink = match wanted {
            Accept::Drop => Sink::Drop,
            Accept::Deliver => new_buffer(),
        };
        append(&mut sink, &body[head_len..], payload_len);
        self.partial = Some(Assembly {
            head,
            received: frag,
            sink,
        });
        Ok(Step::Consume(None))
    }

    fn continuation<'c, 'a>(
        &mut self,
        body: &[u8],
        flags: u16,
    ) -> Result<Option<Incoming<'c, 'a>>> {
        let Some(partial) = self.partial.as_mut() else {
            // MSG-3: a CONT record follows only an incomplete message.
            return Err(frag_error("CONT without a message", u64::from(flags), 0));
        };
        // MSG-1: CONT records have FIRST clear.
        if flags & FLAG_FIRST != 0 {
            return Err(frag_error("CONT with FIRST", u64::from(flags), 0));
        }
        let payload_len = partial.head.payload_len();
        let last = flags & FLAG_LAST != 0;
        check_fragment(partial.received, body.len() as u64, payload_len, last)?;
        append(&mut partial.sink, body, payload_len);
        partial.received += body.len() as u64;
        if !last {
            return Ok(None);
        }
        let Some(done) = self.partial.take() else {
            return Ok(None);
        };
        let payload = match done.sink {
            #[cfg(feature = "alloc")]
            Sink::Buffer(v) => Payload::Owned(v),
            Sink::Drop => return Ok(None),
            Sink::Unavailable => Payload::Unavailable { len: payload_len },
        };
        Ok(Some(Incoming::Message(Message {
            head: done.head,
            payload,
        })))
    }
}

enum Step<'c, 'a> {
    /// Release the record, then deliver this (if anything).
    Consume(Option<Incoming<'c, 'a>>),
    /// Deliver the record's body from `offset` in place.
    InPlace { head: MessageHead, offset: usize },
}

/// A record's header read a second time must equal the first copy (RING-12, RING-15): else
/// the peer rewrote a published record, `BAD_RECORD`.
fn same_header(again: RecordHeader, first: RecordHeader) -> Result<()> {
    if again == first {
        return Ok(());
    }
    Err(Error::value(
        ErrorCode::BadRecord,
        "record header changed after publication",
        u64::from(again.len),
        u64::from(first.len),
    ))
}

/// MSG-3: a fragment of `frag` bytes after `received` bytes of a `payload_len` message does
/// not overrun it, and LAST is set exactly on the fragment that completes it.
fn check_fragment(received: u64, frag: u64, payload_len: u64, last: bool) -> Result<()> {
    let total = received.checked_add(frag).ok_or(frag_error(
        "fragment sum overflows",
        received,
        payload_len,
    ))?;
    if total > payload_len {
        return Err(frag_error(
            "fragments exceed payload_len",
            total,
            payload_len,
        ));
    }
    if last && total != payload_len {
        return Err(frag_error("LAST before payload_len", total, payload_len));
    }
    if !last && total == payload_len {
        return Err(frag_error(
            "payload complete without LAST",
            total,
            payload_len,
        ));
    }
    Ok(())
}

/// Decodes a control record (MSG-6: FIRST|LAST; MSG-7: exact body length) from a private copy.
fn control<'c, 'a>(body: &[u8], rtype: u16, flags: u16) -> Result<Incoming<'c, 'a>> {
    if flags & FLAGS_SINGLE != FLAGS_SINGLE {
        return Err(frag_error(
            "control record not FIRST|LAST",
            u64::from(flags),
            u64::from(FLAGS_SINGLE),
        ));
    }
    let want = records::control_body_len(rtype).unwrap_or(0);
    if body.len() != want {
        return Err(Error::value(
            ErrorCode::BadRecord,
            "control record length",
            body.len() as u64,
            want as u64,
        ));
    }
    match rtype {
        TYPE_SHUTDOWN => Ok(Incoming::Shutdown),
        TYPE_END => Ok(Incoming::End),
        TYPE_CHANNEL_OPEN => {
            let mut copy = [0u8; ChannelOpen::LEN];
            copy.copy_from_slice(body);
            ChannelOpen::decode(&copy).map(Incoming::ChannelOpen)
        }
        _ => Err(Error::value(
            ErrorCode::UnknownRecord,
            "record.type",
            u64::from(rtype),
            0,
        )),
    }
}

#[cfg(feature = "alloc")]
fn new_buffer() -> Sink {
    Sink::Buffer(Vec::new())
}

#[cfg(not(feature = "alloc"))]
fn new_buffer() -> Sink {
    Sink::Unavailable
}

/// Copies `bytes` into the sink. The buffer grows as bytes arrive, at most to `payload_len`
/// (already checked against `max_message_len`, MSG-4), so a peer's `payload_len` never
/// causes a large allocation up front. An allocation failure turns the sink unavailable
/// (MSG-9). Each fragment's bytes are copied once, into private memory (MSG-8).
fn append(sink: &mut Sink, bytes: &[u8], payload_len: u64) {
    #[cfg(feature = "alloc")]
    if let Sink::Buffer(buf) = sink {
        let needed = buf.len().saturating_add(bytes.len());
        if needed > buf.capacity() {
            let cap_limit = usize::try_from(payload_len).unwrap_or(usize::MAX);
            let target = needed
                .max(buf.capacity().saturating_mul(2))
                .min(cap_limit)
                .max(needed);
            if buf.try_reserve_exact(target - buf.len()).is_err() {
                *sink = Sink::Unavailable;
                return;
            }
        }
        buf.extend_from_slice(bytes);
    }
    #[cfg(not(feature = "alloc"))]
    let _ = (sink, bytes, payload_len);
}
