//! The two ends of a mailbox (spec/05-calls.md): [`HostMailbox`] sends requests and reads
//! responses, [`WorkerMailbox`] reads requests and sends responses.
//!
//! Neither end waits or rings a doorbell: every operation reports whether it stored a
//! position or a cancel entry, so that the runtime rings the peer's doorbell (WAIT-5, WAIT-6).
//! A violation is returned with its registry code; the caller poisons the region (RING-13).
//! SEC-5: the two ends apply the same validation; neither trusts the other's memory, so a
//! worker is as protected from a corrupt host as the host is from a corrupt worker.
//!
//! Writing: `start_*` builds an [`Outgoing`] message and [`HostMailbox::write`] /
//! [`WorkerMailbox::write`] write as much of it as the ring has room for, publishing what they
//! wrote. A message that has started must be finished before anything else is written on
//! that ring (MSG-2); the mailbox refuses anything else with `INVALID_ARGUMENT` meanwhile.

use crate::error::{Error, ErrorCode, Result};
#[cfg(feature = "alloc")]
use crate::fntable::FunctionTable;
use crate::message::{
    self, Accept, Incoming, Loan, MessageHead, OutgoingMessage, Payload, Reassembler,
};
use crate::records::{ChannelOpen, HelloHead, ResponseHead, RingKind, TYPE_CHANNEL_OPEN};
use crate::region::Mailbox;
use crate::ring::{Consumer, Producer};
use crate::shared::SharedMem;
use crate::sync::Ordering;

/// The content type of an error response's message (spec/05 §5.2: UTF-8).
pub const CONTENT_TYPE_UTF8: u32 = 1;

/// The outcome of a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    /// Every record of the message is written.
    pub done: bool,
    /// A new `tail` was stored: ring the consumer's doorbell (WAIT-5).
    pub published: bool,
}

/// A message being sent through a mailbox, resumable after the ring was full.
#[derive(Clone, Debug)]
pub struct Outgoing<'p> {
    message: OutgoingMessage<'p>,
    ticket: u64,
    request_id: u64,
}

impl Outgoing<'_> {
    /// The request id the message carries (0 for HELLO).
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// True when every record has been written.
    pub fn is_done(&self) -> bool {
        self.message.is_done()
    }
}

/// The producing side shared by both ends: one message at a time (MSG-2), publication.
struct Sender<'a> {
    producer: Producer<'a>,
    /// Ticket of the message whose first record is written and whose last is not.
    partial: Option<u64>,
    next_ticket: u64,
}

fn misuse(what: &'static str) -> Error {
    Error::new(ErrorCode::InvalidArgument, what)
}

impl<'a> Sender<'a> {
    fn new(producer: Producer<'a>) -> Self {
        Sender {
            producer,
            partial: None,
            next_ticket: 1,
        }
    }

    fn outgoing<'p>(
        &mut self,
        head: MessageHead,
        payload: &'p [u8],
        request_id: u64,
    ) -> Outgoing<'p> {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        Outgoing {
            message: OutgoingMessage::new(head, payload),
            ticket,
            request_id,
        }
    }

    /// MSG-2: nothing but the message in progress may be written now.
    fn check_free(&self, ticket: Option<u64>) -> Result<()> {
        match self.partial {
            Some(t) if Some(t) != ticket => {
                Err(misuse("another message is partly written (MSG-2)"))
            }
            _ => Ok(()),
        }
    }

    fn write(&mut self, out: &mut Outgoing<'_>) -> Result<Sent> {
        self.check_free(Some(out.ticket))?;
        let done = out.message.write_to(&mut self.producer);
        // Publish whatever was committed, even when the next fragment failed (RING-3).
        let published = self.producer.publish();
        let done = done?;
        self.partial = if done || !out.message.is_started() {
            None
        } else {
            Some(out.ticket)
        };
        Ok(Sent { done, published })
    }

    fn control(&mut self, rtype: u16, body: &[u8]) -> Result<Sent> {
        self.check_free(None)?;
        let done = message::write_control(&mut self.producer, rtype, body)?;
        Ok(Sent {
            done,
            published: self.producer.publish(),
        })
    }

    fn loan(&mut self, head: MessageHead, capacity: usize) -> Result<Option<Loan<'_, 'a>>> {
        self.check_free(None)?;
        message::loan(&mut self.producer, head, capacity)
    }

    fn fits_one_record(&self, head_len: usize, payload_len: usize) -> bool {
        message::fits_one_record(&self.producer, head_len, payload_len)
    }
}

/// Records a violation found while polling, so that every later poll reports it again and
/// touches the ring no more (RING-13).
fn stick(failed: &mut Option<Error>, e: Error) -> Error {
    *failed = Some(e);
    e
}

/// The cheap path of a poll that finds nothing (an idle waiter polls often): when the ring
/// holds no record for this consumer, the head is published (a released payload or a PAD may
/// have left it unpublished) and `Some(released)` returned, as a full poll would; `None` when
/// the full poll has work.
///
/// A `tail` that differs from the private head means work for the full poll, which loads and
/// validates it again (RING-5, RING-8); this first load only picks the path. When the two are
/// equal, the consumer's own check (`peek`) decides: it reloads and validates the `tail` once
/// the head reached the last one it saw, and otherwise finds the record still below that
/// `tail`. PAD records on the way are consumed as a full poll would. A found record is not
/// consumed: the full poll takes it again and decides from its own copy of the header
/// (RING-12).
fn empty_poll(consumer: &mut Consumer<'_>) -> Result<Option<bool>> {
    if consumer.ring().load_tail() != consumer.head() || consumer.peek()?.is_some() {
        return Ok(None);
    }
    Ok(Some(consumer.publish_head()))
}

/// Checks the cancel table view and returns `inflight_max` as a u64 (spec §5.5).
fn cancel_entries(cancel: &SharedMem<'_>, inflight_max: u32) -> Result<u64> {
    // HDR-6 bounds `inflight_max` to a power of two of at most 65536; checked again here
    // because the mailbox indexes its tables with it.
    if !inflight_max.is_power_of_two() || inflight_max > 65536 {
        return Err(Error::value(
            ErrorCode::InvalidArgument,
            "inflight_max",
            u64::from(inflight_max),
            65536,
        ));
    }
    let need = 8 * inflight_max as usize;
    if cancel.len() < need {
        return Err(Error::value(
            ErrorCode::BadLayout,
            "cancel table length",
            cancel.len() as u64,
            need as u64,
        ));
    }
    Ok(u64::from(inflight_max))
}

/// Byte offset of the cancel entry of request `id` (spec §5.5: entry `id mod inflight_max`).
fn cancel_offset(id: u64, entries: u64) -> usize {
    // `entries` is a power of two of at most 65536, so the entry index fits any usize.
    8 * (id & (entries - 1)) as usize
}

// ---- host ---------------------------------------------------------------------------------

#[cfg(feature = "alloc")]
pub use host::{HostEvent, HostMailbox, HostPolled, RequestLoan, Response};

#[cfg(feature = "alloc")]
mod host {
    use alloc::vec::Vec;

    use super::{
        cancel_entries, cancel_offset, empty_poll, misuse, stick, Accept, ChannelOpen, Error,
        ErrorCode, FunctionTable, HelloHead, Incoming, Mailbox, MessageHead, Outgoing, Payload,
        Reassembler, Result, RingKind, Sender, Sent, SharedMem, TYPE_CHANNEL_OPEN,
    };
    use crate::message::Loan;
    use crate::records::{RequestHead, TYPE_SHUTDOWN};
    use crate::ring::{Consumer, Producer};
    use crate::sync::Ordering;

    /// The state of one cancel entry's request id (CALL-2).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Slot {
        Free,
        /// Sent (or being sent) and not answered.
        Outstanding(u64),
        /// Cancelled or timed out, not answered: a late response is discarded (CALL-4).
        Abandoned(u64),
    }

    /// A response read from the ring.
    #[derive(Debug)]
    pub struct Response<'c, 'a> {
        /// The request it answers; no longer outstanding.
        pub request_id: u64,
        /// 0 for success, otherwise an error code, delivered raw even when unknown (CALL-7).
        pub status: u32,
        /// Content type of the payload (UTF-8 for an error message), delivered as it is:
        /// the transport never interprets payloads (CT-1).
        pub content_type: u32,
        /// The result, or the error message when `status` is not 0.
        pub payload: Payload<'c, 'a>,
    }

    impl Response<'_, '_> {
        /// The registry code of a failed call; `None` for success or an unregistered code
        /// (which [`Response::status`] still carries, CALL-7).
        pub fn error_code(&self) -> Option<ErrorCode> {
            if self.status == 0 {
                None
            } else {
                ErrorCode::from_u32(self.status)
            }
        }
    }

    /// What the host reads from a response ring.
    #[derive(Debug)]
    pub enum HostEvent<'c, 'a> {
        /// The worker's function table (MBX-2); requests may be sent from now on.
        Hello(FunctionTable),
        /// The answer to an outstanding request (CALL-3).
        Response(Response<'c, 'a>),
        /// The worker opened a channel (CHAN-2); the receiver checks the slot.
        ChannelOpen(ChannelOpen),
    }

    /// The outcome of [`HostMailbox::poll`].
    #[derive(Debug)]
    pub struct HostPolled<'c, 'a> {
        /// An event, or `None` when nothing is complete now (poll again before parking: the
        /// ring may hold more records than one poll takes).
        pub event: Option<HostEvent<'c, 'a>>,
        /// A new response-ring `head` was stored: ring the worker's doorbell (WAIT-6).
        pub released: bool,
    }

    /// The host's end of one mailbox: produces the request ring, consumes the response ring,
    /// writes the cancel table, and tracks outstanding request ids (CALL-2, CALL-4).
    pub struct HostMailbox<'a> {
        sender: Sender<'a>,
        consumer: Consumer<'a>,
        reassembler: Reassembler,
        cancel: SharedMem<'a>,
        entries: u64,
        max_message_len: u64,
        slots: Vec<Slot>,
        last_id: u64,
        table: Option<FunctionTable>,
        /// The violation a poll found (RING-13).
        failed: Option<Error>,
    }

    impl<'a> HostMailbox<'a> {
        /// The host end of `mailbox`, freshly reset for a new epoch (MBX-4), with the region's
        /// `inflight_max` and `max_message_len` (from the validated header, HDR-5).
        pub fn new(mailbox: Mailbox<'a>, inflight_max: u32, max_message_len: u64) -> Result<Self> {
            let entries = cancel_entries(&mailbox.cancel, inflight_max)?;
            Ok(HostMailbox {
                sender: Sender::new(Producer::new(mailbox.request)),
                consumer: Consumer::new(mailbox.response),
                reassembler: Reassembler::new(RingKind::Response, max_message_len),
                cancel: mailbox.cancel,
                entries,
                max_message_len,
                slots: alloc::vec![Slot::Free; inflight_max as usize],
                last_id: 0,
                table: None,
                failed: None,
            })
        }

        /// The worker's function table, once its HELLO arrived (MBX-2).
        pub fn function_table(&self) -> Option<&FunctionTable> {
            self.table.as_ref()
        }

        /// FN-2: the id of function `name` in this mailbox's HELLO; `UNKNOWN_FUNCTION` when the
        /// worker does not have it, `INVALID_ARGUMENT` before the HELLO arrived.
        pub fn resolve(&self, name: &str) -> Result<u32> {
            self.table
                .as_ref()
                .ok_or(misuse("no HELLO yet (MBX-2)"))?
                .lookup(name)
        }

        fn slot_index(&self, id: u64) -> usize {
            // `entries` is a power of two ≤ 65536 and equals `slots.len()`.
            (id & (self.entries - 1)) as usize
        }

        /// The id the next request will get, or `None` when no cancel entry is free (CALL-2):
        /// the smallest id above the last one whose entry holds no outstanding or abandoned
        /// request.
        pub fn next_request_id(&self) -> Option<u64> {
            (1..=self.entries)
                .filter_map(|step| self.last_id.checked_add(step))
                .find(|&id| self.slots.get(self.slot_index(id)) == Some(&Slot::Free))
        }

        /// Checks MBX-2, CALL-10 and MSG-2 for a request of `payload_len` bytes and picks its id.
        fn admit_request(&self, function_id: u32, payload_len: u64) -> Result<Option<u64>> {
            let table = self.table.as_ref().ok_or(misuse("no HELLO yet (MBX-2)"))?;
            if !table.contains_id(function_id) {
                return Err(Error::value(
                    ErrorCode::UnknownFunction,
                    "function_id",
                    u64::from(function_id),
                    0,
                ));
            }
            // CALL-10: refuse locally what the worker would have to refuse.
            if payload_len > self.max_message_len {
                return Err(Error::value(
                    ErrorCode::PayloadTooLarge,
                    "request payload",
                    payload_len,
                    self.max_message_len,
                ));
            }
            self.sender.check_free(None)?;
            Ok(self.next_request_id())
        }

        /// Starts a request: picks its id (CALL-1, CALL-2) and marks it outstanding. `Ok(None)`
        /// when no cancel entry is free. `UNKNOWN_FUNCTION` for an id not in the HELLO,
        /// `PAYLOAD_TOO_LARGE` beyond `max_message_len` (CALL-10), `INVALID_ARGUMENT` before
        /// the HELLO (MBX-2) or while another message is partly written (MSG-2).
        /// Write it with [`HostMailbox::write`].
        pub fn start_request<'p>(
            &mut self,
            function_id: u32,
            content_type: u32,
            deadline_ns: u64,
            payload: &'p [u8],
        ) -> Result<Option<Outgoing<'p>>> {
            let Some(request_id) = self.admit_request(function_id, payload.len() as u64)? else {
                return Ok(None);
            };
            Ok(Some(self.begin_request(
                request_id,
                function_id,
                content_type,
                deadline_ns,
                payload,
            )))
        }

        /// Starts a request with the id `request_id`, which an earlier
        /// [`HostMailbox::next_request_id`] gave: for a message that must carry an id chosen
        /// before something else was written, such as a channel announced for the call with
        /// the id as its tag (CHAN-2) ahead of the request itself.
        ///
        /// `Ok(None)` when the id's cancel entry is in use (CALL-2); `INVALID_ARGUMENT` when
        /// the id is not above every id sent so far (CALL-1); otherwise as
        /// [`HostMailbox::start_request`]. Draining responses meanwhile only frees entries, so
        /// an id taken from `next_request_id` stays usable until another request is started.
        pub fn start_request_with_id<'p>(
            &mut self,
            request_id: u64,
            function_id: u32,
            content_type: u32,
            deadline_ns: u64,
            payload: &'p [u8],
        ) -> Result<Option<Outgoing<'p>>> {
            // MBX-2, FN-2, CALL-10, MSG-2 as for any request; the picked id is not used.
            self.admit_request(function_id, payload.len() as u64)?;
            // CALL-1: strictly increasing ids.
            if request_id <= self.last_id {
                return Err(Error::value(
                    ErrorCode::InvalidArgument,
                    "request_id (not above the last one sent)",
                    request_id,
                    self.last_id.saturating_add(1),
                ));
            }
            // CALL-2: the id's cancel entry holds no outstanding or abandoned request.
            if self.slots.get(self.slot_index(request_id)) != Some(&Slot::Free) {
                return Ok(None);
            }
            Ok(Some(self.begin_request(
                request_id,
                function_id,
                content_type,
                deadline_ns,
                payload,
            )))
        }

        /// Marks `request_id` outstanding (its entry is free, it is above the last id) and
        /// builds its message.
        fn begin_request<'p>(
            &mut self,
            request_id: u64,
            function_id: u32,
            content_type: u32,
            deadline_ns: u64,
            payload: &'p [u8],
        ) -> Outgoing<'p> {
            let index = self.slot_index(request_id);
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = Slot::Outstanding(request_id);
            }
            self.last_id = request_id;
            let head = RequestHead {
                request_id,
                function_id,
                content_type,
                deadline_ns,
                payload_len: 0,
            };
            self.sender
                .outgoing(MessageHead::Request(head), payload, request_id)
        }

        /// Writes as much of `out` as fits and publishes it (RING-3).
        pub fn write(&mut self, out: &mut Outgoing<'_>) -> Result<Sent> {
            self.sender.write(out)
        }

        /// Gives up a request of which no record was written yet (for example because its
        /// deadline passed while the ring was full): its id stops being outstanding and its
        /// cancel entry is free again. `INVALID_ARGUMENT` once its first record is written:
        /// then the message must be finished (MSG-2) and the call abandoned instead.
        pub fn withdraw(&mut self, out: Outgoing<'_>) -> Result<()> {
            // Taken by value so that a withdrawn message cannot be written afterwards.
            let Outgoing {
                message,
                request_id,
                ..
            } = out;
            if message.is_started() {
                return Err(misuse("request already partly written (MSG-2)"));
            }
            let index = self.slot_index(request_id);
            match self.slots.get_mut(index) {
                Some(slot) if *slot == Slot::Outstanding(request_id) => {
                    *slot = Slot::Free;
                    Ok(())
                }
                _ => Err(misuse("not an outstanding request of this mailbox")),
            }
        }

        /// Reserves a one-record request with room for `capacity` payload bytes, written in
        /// place (loan). `Ok(None)` when no cancel entry is free or the ring lacks room now;
        /// `INVALID_ARGUMENT` when it cannot fit one record (use [`HostMailbox::start_request`]),
        /// and the errors of `start_request`. The id is taken when the loan is committed.
        pub fn loan_request(
            &mut self,
            function_id: u32,
            content_type: u32,
            deadline_ns: u64,
            capacity: usize,
        ) -> Result<Option<RequestLoan<'_, 'a>>> {
            let Some(request_id) = self.admit_request(function_id, capacity as u64)? else {
                return Ok(None);
            };
            if !self.sender.fits_one_record(RequestHead::LEN, capacity) {
                return Err(misuse("loan larger than one record"));
            }
            let index = self.slot_index(request_id);
            let head = RequestHead {
                request_id,
                function_id,
                content_type,
                deadline_ns,
                payload_len: 0,
            };
            let HostMailbox {
                sender,
                slots,
                last_id,
                ..
            } = self;
            let Some(slot) = slots.get_mut(index) else {
                return Err(misuse("cancel entry index"));
            };
            let Some(loan) = sender.loan(MessageHead::Request(head), capacity)? else {
                return Ok(None);
            };
            Ok(Some(RequestLoan {
                loan,
                slot,
                last_id,
                request_id,
            }))
        }

        /// Publishes committed records (after a loan); true when a new `tail` was stored:
        /// ring the worker's doorbell.
        pub fn publish(&mut self) -> bool {
            self.sender.producer.publish()
        }

        /// Sends SHUTDOWN (MBX-3) and publishes it; `done` is false when the ring has no room.
        pub fn send_shutdown(&mut self) -> Result<Sent> {
            self.sender.control(TYPE_SHUTDOWN, &[])
        }

        /// Announces a channel to the worker (CHAN-2) and publishes it.
        pub fn send_channel_open(&mut self, open: &ChannelOpen) -> Result<Sent> {
            self.sender.control(TYPE_CHANNEL_OPEN, &open.encode())
        }

        /// CANCEL-1: stores `request_id` into its cancel entry (Release) and abandons the call
        /// (CALL-4). True when it stored: ring the worker's doorbell (WAIT-5). False when the
        /// id is not outstanding (already answered, abandoned, or never sent).
        pub fn cancel(&mut self, request_id: u64) -> Result<bool> {
            if !self.abandon(request_id) {
                return Ok(false);
            }
            let word = self
                .cancel
                .atomic_u64(cancel_offset(request_id, self.entries))?;
            word.store(request_id, Ordering::Release);
            Ok(true)
        }

        /// Abandons an outstanding call without touching the cancel table: its late response
        /// is discarded (CALL-4). True when the id was outstanding.
        pub fn abandon(&mut self, request_id: u64) -> bool {
            let index = self.slot_index(request_id);
            match self.slots.get_mut(index) {
                Some(slot) if *slot == Slot::Outstanding(request_id) => {
                    *slot = Slot::Abandoned(request_id);
                    true
                }
                _ => false,
            }
        }

        /// True when `request_id` was sent and neither answered nor abandoned.
        pub fn is_outstanding(&self, request_id: u64) -> bool {
            self.slots.get(self.slot_index(request_id)) == Some(&Slot::Outstanding(request_id))
        }

        /// The outstanding (not abandoned) request ids, in cancel-entry order.
        pub fn outstanding(&self) -> impl Iterator<Item = u64> + '_ {
            self.slots.iter().filter_map(|s| match *s {
                Slot::Outstanding(id) => Some(id),
                _ => None,
            })
        }

        /// LIVE-3: after the dead worker's published responses were polled, yields every call
        /// still outstanding (to fail with `PEER_DIED`) and forgets every id, abandoned ones
        /// included. Each id is yielded once.
        pub fn drain_outstanding(&mut self) -> impl Iterator<Item = u64> + '_ {
            self.slots
                .iter_mut()
                .filter_map(|s| match core::mem::replace(s, Slot::Free) {
                    Slot::Outstanding(id) => Some(id),
                    _ => None,
                })
        }

        /// Reads the response ring until one event is complete (or nothing is available).
        ///
        /// Validates RING-11, MSG-1 to MSG-7, CALL-4 (`UNKNOWN_REQUEST`; late responses to
        /// abandoned calls are discarded), FN-1 (`BAD_RECORD`) and MBX-5 (a second HELLO is
        /// `BAD_RECORD`). A response's id stops being outstanding when it is delivered.
        /// An in-place payload is released when dropped (or [`Payload::release`]d), then
        /// [`HostMailbox::publish_head`] releases it to the worker. After a violation every
        /// later poll returns it again without touching the ring (RING-13).
        pub fn poll(&mut self) -> Result<HostPolled<'_, 'a>> {
            if let Some(e) = self.failed {
                return Err(e);
            }
            if let Some(released) =
                empty_poll(&mut self.consumer).map_err(|e| stick(&mut self.failed, e))?
            {
                return Ok(HostPolled {
                    event: None,
                    released,
                });
            }
            self.poll_ring()
        }

        /// [`HostMailbox::poll`] past its cheap path: the message layer reads the ring.
        fn poll_ring(&mut self) -> Result<HostPolled<'_, 'a>> {
            let HostMailbox {
                consumer,
                reassembler,
                slots,
                entries,
                table,
                failed,
                ..
            } = self;
            let mask = *entries - 1;
            let have_table = table.is_some();
            let polled = reassembler
                .poll(consumer, |head| match head {
                    MessageHead::Response(r) => {
                        // CALL-4: only outstanding ids are answered; abandoned ones are dropped.
                        let slot = slots.get_mut((r.request_id & mask) as usize);
                        match slot {
                            Some(s) if *s == Slot::Outstanding(r.request_id) => Ok(Accept::Deliver),
                            Some(s) if *s == Slot::Abandoned(r.request_id) => {
                                *s = Slot::Free;
                                Ok(Accept::Drop)
                            }
                            _ => Err(Error::value(
                                ErrorCode::UnknownRequest,
                                "response.request_id",
                                r.request_id,
                                0,
                            )),
                        }
                    }
                    // MBX-2, MBX-5: one HELLO per epoch.
                    MessageHead::Hello(HelloHead { payload_len }) if have_table => Err(
                        Error::value(ErrorCode::BadRecord, "second HELLO", *payload_len, 0),
                    ),
                    MessageHead::Hello(_) => Ok(Accept::Deliver),
                    MessageHead::Request(_) | MessageHead::Data(_) => Err(Error::value(
                        ErrorCode::UnknownRecord,
                        "record.type",
                        u64::from(head.rtype()),
                        0,
                    )),
                })
                .map_err(|e| stick(failed, e))?;
            let released = polled.released;
            let event = match polled.incoming {
                None => None,
                Some(Incoming::ChannelOpen(open)) => Some(HostEvent::ChannelOpen(open)),
                Some(Incoming::Message(message)) => match message.head {
                    MessageHead::Response(r) => {
                        let slot = slots.get_mut((r.request_id & mask) as usize);
                        match slot {
                            Some(s) if *s == Slot::Outstanding(r.request_id) => {
                                *s = Slot::Free;
                                Some(HostEvent::Response(Response {
                                    request_id: r.request_id,
                                    status: r.status,
                                    content_type: r.content_type,
                                    payload: message.payload,
                                }))
                            }
                            Some(s) => {
                                // Abandoned while its fragments arrived (CALL-4): discard.
                                *s = Slot::Free;
                                message.payload.release();
                                None
                            }
                            None => {
                                let e =
                                    Error::new(ErrorCode::UnknownRequest, "response.request_id");
                                return Err(stick(failed, e));
                            }
                        }
                    }
                    MessageHead::Hello(_) => {
                        // SEC-2: decode from private memory; an in-place body is copied first.
                        let bytes = message.payload.into_vec().ok_or_else(|| {
                            let e = Error::new(
                                ErrorCode::PayloadTooLarge,
                                "HELLO payload could not be held",
                            );
                            stick(failed, e)
                        })?;
                        // FN-1: a bad table is BAD_RECORD.
                        let decoded =
                            FunctionTable::decode(&bytes).map_err(|e| stick(failed, e))?;
                        *table = Some(decoded.clone());
                        Some(HostEvent::Hello(decoded))
                    }
                    MessageHead::Request(_) | MessageHead::Data(_) => {
                        let e = Error::new(ErrorCode::UnknownRecord, "message on response ring");
                        return Err(stick(failed, e));
                    }
                },
                Some(Incoming::Shutdown | Incoming::End) => {
                    let e = Error::new(ErrorCode::UnknownRecord, "control record on response ring");
                    return Err(stick(failed, e));
                }
            };
            Ok(HostPolled { event, released })
        }

        /// Stores the response ring's `head` after in-place payloads were released; true when
        /// it stored: ring the worker's doorbell (WAIT-6).
        pub fn publish_head(&mut self) -> bool {
            self.consumer.publish_head()
        }

        /// Rings the worker's doorbell after a release of response space (WAIT-6), unless
        /// WAIT-8 shows the worker cannot be parked for room ([`Consumer::wake_producer`]).
        /// Returns whether it woke.
        pub fn wake_worker<P: crate::wait::Parker + ?Sized>(
            &mut self,
            bell: &crate::wait::Doorbell<'_>,
            parker: &P,
        ) -> bool {
            self.consumer.wake_producer(bell, parker)
        }

        /// The response-ring position below which every record is consumed (the private
        /// head). After a poll that found nothing (no event, nothing released), the ring
        /// holds nothing new for as long as its `tail` still equals this value: a waiter may
        /// compare the two before it takes whatever lock guards this mailbox, and poll only
        /// once the `tail` moved (such a poll loads the `tail` again and validates it).
        pub fn consumed(&self) -> u64 {
            self.consumer.head()
        }
    }

    /// A request reserved in place (see [`HostMailbox::loan_request`]).
    pub struct RequestLoan<'m, 'a> {
        loan: Loan<'m, 'a>,
        slot: &'m mut Slot,
        last_id: &'m mut u64,
        request_id: u64,
    }

    impl RequestLoan<'_, '_> {
        /// The request's id.
        pub fn request_id(&self) -> u64 {
            self.request_id
        }

        /// The payload area, to be written in place.
        pub fn payload(&mut self) -> &mut [u8] {
            self.loan.payload()
        }

        /// Commits the first `payload_len` bytes and marks the request outstanding; publish
        /// with [`HostMailbox::publish`]. Dropping the loan instead sends nothing.
        pub fn commit(self, payload_len: usize) -> Result<()> {
            self.loan.commit(payload_len)?;
            *self.slot = Slot::Outstanding(self.request_id);
            *self.last_id = self.request_id;
            Ok(())
        }
    }
}

// ---- worker -------------------------------------------------------------------------------

/// A request read from the ring.
#[derive(Debug)]
pub struct Request<'c, 'a> {
    /// Non-zero, greater than every earlier request id of this epoch (CALL-1).
    pub request_id: u64,
    /// The function to run; checking it against the HELLO is the runtime's (CALL-5).
    pub function_id: u32,
    /// Content type of the payload.
    pub content_type: u32,
    /// Absolute `CLOCK_MONOTONIC` deadline, 0 for none (CALL-9).
    pub deadline_ns: u64,
    /// The arguments; [`Payload::Unavailable`] when they could not be held (answer
    /// `PAYLOAD_TOO_LARGE`).
    pub payload: Payload<'c, 'a>,
}

/// What a worker reads from its request ring.
#[derive(Debug)]
pub enum WorkerEvent<'c, 'a> {
    /// A call to answer (CALL-3).
    Request(Request<'c, 'a>),
    /// The host asks the worker to exit after answering what it already read (MBX-3).
    Shutdown,
    /// The host opened a channel (CHAN-2); the receiver checks the slot.
    ChannelOpen(ChannelOpen),
}

/// The outcome of [`WorkerMailbox::poll`].
#[derive(Debug)]
pub struct WorkerPolled<'c, 'a> {
    /// An event, or `None` when nothing is complete now (poll again before parking).
    pub event: Option<WorkerEvent<'c, 'a>>,
    /// A new request-ring `head` was stored: ring the host's doorbell (WAIT-6).
    pub released: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hello {
    NotStarted,
    Sending(u64),
    Sent,
}

/// The worker's end of one mailbox: consumes the request ring, produces the response ring,
/// reads the cancel table.
///
/// It is two halves that share nothing: [`WorkerRequests`] (the request ring and the cancel
/// table) and [`WorkerResponses`] (the response ring). [`WorkerMailbox::split`] lends both at
/// once, so that a request borrowed in place from the request ring can be answered by a
/// response written in place into the response ring (zero copy on both rings, spec/03 §3.3).
/// The methods of `WorkerMailbox` itself forward to the half they belong to.
pub struct WorkerMailbox<'a> {
    requests: WorkerRequests<'a>,
    responses: WorkerResponses<'a>,
}

/// The consuming half of a worker's mailbox: reads the request ring (CALL-1, MBX-3, MSG-*)
/// and the cancel table (CANCEL-2).
pub struct WorkerRequests<'a> {
    consumer: Consumer<'a>,
    reassembler: Reassembler,
    cancel: SharedMem<'a>,
    entries: u64,
    last_request_id: u64,
    shutdown: bool,
    /// The violation a poll found (RING-13).
    failed: Option<Error>,
}

/// The producing half of a worker's mailbox: HELLO first (MBX-2), then responses (CALL-3,
/// CALL-10) and channel announcements (CHAN-2) on the response ring.
pub struct WorkerResponses<'a> {
    sender: Sender<'a>,
    max_message_len: u64,
    hello: Hello,
}

impl<'a> WorkerMailbox<'a> {
    /// The worker end of `mailbox`, just attached (MBX-4), with the region's `inflight_max`
    /// and `max_message_len` (from the validated header, HDR-5).
    pub fn new(mailbox: Mailbox<'a>, inflight_max: u32, max_message_len: u64) -> Result<Self> {
        let entries = cancel_entries(&mailbox.cancel, inflight_max)?;
        Ok(WorkerMailbox {
            requests: WorkerRequests {
                consumer: Consumer::new(mailbox.request),
                reassembler: Reassembler::new(RingKind::Request, max_message_len),
                cancel: mailbox.cancel,
                entries,
                last_request_id: 0,
                shutdown: false,
                failed: None,
            },
            responses: WorkerResponses {
                sender: Sender::new(Producer::new(mailbox.response)),
                max_message_len,
                hello: Hello::NotStarted,
            },
        })
    }

    /// Both halves at once: a request polled from the first may stay borrowed in place while
    /// the second writes its response (MBX-1 holds: each ring still has one user).
    pub fn split(&mut self) -> (&mut WorkerRequests<'a>, &mut WorkerResponses<'a>) {
        (&mut self.requests, &mut self.responses)
    }

    /// The request half.
    pub fn requests(&mut self) -> &mut WorkerRequests<'a> {
        &mut self.requests
    }

    /// The response half.
    pub fn responses(&mut self) -> &mut WorkerResponses<'a> {
        &mut self.responses
    }

    /// See [`WorkerResponses::start_hello`].
    pub fn start_hello<'p>(&mut self, table: &'p [u8]) -> Result<Outgoing<'p>> {
        self.responses.start_hello(table)
    }

    /// See [`WorkerResponses::hello_sent`].
    pub fn hello_sent(&self) -> bool {
        self.responses.hello_sent()
    }

    /// See [`WorkerResponses::write`].
    pub fn write(&mut self, out: &mut Outgoing<'_>) -> Result<Sent> {
        self.responses.write(out)
    }

    /// See [`WorkerResponses::start_response`].
    pub fn start_response<'p>(
        &mut self,
        request_id: u64,
        status: u32,
        content_type: u32,
        payload: &'p [u8],
    ) -> Outgoing<'p> {
        self.responses
            .start_response(request_id, status, content_type, payload)
    }

    /// See [`WorkerResponses::error_response`].
    pub fn error_response<'p>(
        &mut self,
        request_id: u64,
        status: u32,
        message: &'p str,
    ) -> Outgoing<'p> {
        self.responses.error_response(request_id, status, message)
    }

    /// See [`WorkerResponses::loan_response`].
    pub fn loan_response(
        &mut self,
        request_id: u64,
        status: u32,
        content_type: u32,
        capacity: usize,
    ) -> Result<Option<Loan<'_, 'a>>> {
        self.responses
            .loan_response(request_id, status, content_type, capacity)
    }

    /// See [`WorkerResponses::publish`].
    pub fn publish(&mut self) -> bool {
        self.responses.publish()
    }

    /// See [`WorkerResponses::send_channel_open`].
    pub fn send_channel_open(&mut self, open: &ChannelOpen) -> Result<Sent> {
        self.responses.send_channel_open(open)
    }

    /// See [`WorkerRequests::is_cancelled`].
    pub fn is_cancelled(&self, request_id: u64) -> Result<bool> {
        self.requests.is_cancelled(request_id)
    }

    /// See [`WorkerRequests::is_shutdown`].
    pub fn is_shutdown(&self) -> bool {
        self.requests.is_shutdown()
    }

    /// See [`WorkerRequests::poll`].
    pub fn poll(&mut self) -> Result<WorkerPolled<'_, 'a>> {
        self.requests.poll()
    }

    /// See [`WorkerRequests::publish_head`].
    pub fn publish_head(&mut self) -> bool {
        self.requests.publish_head()
    }
}

impl<'a> WorkerResponses<'a> {
    /// Starts the HELLO carrying `table` (an encoded function table, [`crate::fntable`]).
    /// MBX-2: it is the first message, sent once; `INVALID_ARGUMENT` otherwise, and
    /// `PAYLOAD_TOO_LARGE` beyond `max_message_len` (the host would refuse it, MSG-4).
    pub fn start_hello<'p>(&mut self, table: &'p [u8]) -> Result<Outgoing<'p>> {
        if self.hello != Hello::NotStarted {
            return Err(misuse("HELLO already sent (MBX-2)"));
        }
        if table.len() as u64 > self.max_message_len {
            return Err(Error::value(
                ErrorCode::PayloadTooLarge,
                "HELLO payload",
                table.len() as u64,
                self.max_message_len,
            ));
        }
        let out = self
            .sender
            .outgoing(MessageHead::Hello(HelloHead { payload_len: 0 }), table, 0);
        self.hello = Hello::Sending(out.ticket);
        Ok(out)
    }

    /// True once the HELLO is completely written.
    pub fn hello_sent(&self) -> bool {
        self.hello == Hello::Sent
    }

    /// Writes as much of `out` as fits and publishes it (RING-3). MBX-2: nothing is written
    /// before the HELLO is complete (`INVALID_ARGUMENT`).
    pub fn write(&mut self, out: &mut Outgoing<'_>) -> Result<Sent> {
        match self.hello {
            Hello::Sent => self.sender.write(out),
            Hello::Sending(ticket) if ticket == out.ticket => {
                let sent = self.sender.write(out)?;
                if sent.done {
                    self.hello = Hello::Sent;
                }
                Ok(sent)
            }
            _ => Err(misuse("HELLO must be sent first (MBX-2)")),
        }
    }

    /// Starts a response to `request_id`. CALL-10: a payload beyond `max_message_len`
    /// becomes a `PAYLOAD_TOO_LARGE` error response instead.
    pub fn start_response<'p>(
        &mut self,
        request_id: u64,
        status: u32,
        content_type: u32,
        payload: &'p [u8],
    ) -> Outgoing<'p> {
        if payload.len() as u64 > self.max_message_len {
            return self.error_response(
                request_id,
                ErrorCode::PayloadTooLarge as u32,
                "result exceeds max_message_len",
            );
        }
        let head = ResponseHead {
            request_id,
            status,
            content_type,
            payload_len: 0,
        };
        self.sender
            .outgoing(MessageHead::Response(head), payload, request_id)
    }

    /// Starts an error response (CALL-5, CALL-6): `status` (non-zero) and a UTF-8 message,
    /// content type 1, cut at a character boundary to fit `max_message_len`.
    pub fn error_response<'p>(
        &mut self,
        request_id: u64,
        status: u32,
        message: &'p str,
    ) -> Outgoing<'p> {
        let limit = usize::try_from(self.max_message_len).unwrap_or(usize::MAX);
        let mut end = message.len().min(limit);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let head = ResponseHead {
            request_id,
            status,
            content_type: CONTENT_TYPE_UTF8,
            payload_len: 0,
        };
        self.sender.outgoing(
            MessageHead::Response(head),
            message.as_bytes().get(..end).unwrap_or_default(),
            request_id,
        )
    }

    /// True when a response with `capacity` payload bytes fits one record of the response
    /// ring (RING-1), so that [`WorkerResponses::loan_response`] can lend it.
    pub fn fits_one_record(&self, capacity: usize) -> bool {
        self.sender.fits_one_record(ResponseHead::LEN, capacity)
    }

    /// The largest payload a one-record response can carry: what
    /// [`WorkerResponses::loan_response`] can lend (RING-1, at most `max_message_len`).
    pub fn one_record_capacity(&self) -> usize {
        let max_body = self.sender.producer.ring().max_body_len();
        let limit = usize::try_from(self.max_message_len).unwrap_or(usize::MAX);
        max_body.saturating_sub(ResponseHead::LEN).min(limit)
    }

    /// Reserves a one-record response with room for `capacity` payload bytes, written in place
    /// (loan); commit it with [`Loan::commit`] and publish with [`WorkerResponses::publish`].
    /// `Ok(None)` when the ring lacks room now; `INVALID_ARGUMENT` before the HELLO, while a
    /// message is partly written, or when it cannot fit one record; `PAYLOAD_TOO_LARGE` when
    /// `capacity` exceeds `max_message_len` (CALL-10).
    pub fn loan_response(
        &mut self,
        request_id: u64,
        status: u32,
        content_type: u32,
        capacity: usize,
    ) -> Result<Option<Loan<'_, 'a>>> {
        if self.hello != Hello::Sent {
            return Err(misuse("HELLO must be sent first (MBX-2)"));
        }
        if capacity as u64 > self.max_message_len {
            return Err(Error::value(
                ErrorCode::PayloadTooLarge,
                "response payload",
                capacity as u64,
                self.max_message_len,
            ));
        }
        if !self.fits_one_record(capacity) {
            return Err(misuse("loan larger than one record"));
        }
        let head = ResponseHead {
            request_id,
            status,
            content_type,
            payload_len: 0,
        };
        self.sender.loan(MessageHead::Response(head), capacity)
    }

    /// Publishes committed records (after a loan); true when a new `tail` was stored: ring
    /// the host's doorbell.
    pub fn publish(&mut self) -> bool {
        self.sender.producer.publish()
    }

    /// Announces a channel to the host (CHAN-2) and publishes it.
    pub fn send_channel_open(&mut self, open: &ChannelOpen) -> Result<Sent> {
        if self.hello != Hello::Sent {
            return Err(misuse("HELLO must be sent first (MBX-2)"));
        }
        self.sender.control(TYPE_CHANNEL_OPEN, &open.encode())
    }
}

impl<'a> WorkerRequests<'a> {
    /// CANCEL-2: true exactly when the cancel entry of `request_id` holds it (Acquire).
    pub fn is_cancelled(&self, request_id: u64) -> Result<bool> {
        let word = self
            .cancel
            .atomic_u64(cancel_offset(request_id, self.entries))?;
        Ok(word.load(Ordering::Acquire) == request_id)
    }

    /// True once SHUTDOWN was read (MBX-3); nothing after it is read.
    pub fn is_shutdown(&self) -> bool {
        self.shutdown
    }

    /// Reads the request ring until one event is complete (or nothing is available).
    ///
    /// Validates RING-11, MSG-1 to MSG-7 and CALL-1 (a request id not above the previous one
    /// is `BAD_RECORD`). After SHUTDOWN it reads nothing more (MBX-3). An in-place payload is
    /// released when dropped (or [`Payload::release`]d), then [`WorkerRequests::publish_head`]
    /// releases it to the host. After a violation every later poll returns it again without
    /// touching the ring (RING-13).
    pub fn poll(&mut self) -> Result<WorkerPolled<'_, 'a>> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.shutdown {
            return Ok(WorkerPolled {
                event: None,
                released: false,
            });
        }
        if let Some(released) =
            empty_poll(&mut self.consumer).map_err(|e| stick(&mut self.failed, e))?
        {
            return Ok(WorkerPolled {
                event: None,
                released,
            });
        }
        let WorkerRequests {
            consumer,
            reassembler,
            last_request_id,
            shutdown,
            failed,
            ..
        } = self;
        let polled = reassembler
            .poll(consumer, |head| match head {
                MessageHead::Request(r) => {
                    // CALL-1: strictly increasing ids, checked before anything is allocated.
                    if r.request_id <= *last_request_id {
                        return Err(Error::value(
                            ErrorCode::BadRecord,
                            "request.request_id",
                            r.request_id,
                            last_request_id.saturating_add(1),
                        ));
                    }
                    *last_request_id = r.request_id;
                    Ok(Accept::Deliver)
                }
                _ => Err(Error::value(
                    ErrorCode::UnknownRecord,
                    "record.type",
                    u64::from(head.rtype()),
                    0,
                )),
            })
            .map_err(|e| stick(failed, e))?;
        let released = polled.released;
        let event = match polled.incoming {
            None => None,
            Some(Incoming::Shutdown) => {
                *shutdown = true;
                Some(WorkerEvent::Shutdown)
            }
            Some(Incoming::ChannelOpen(open)) => Some(WorkerEvent::ChannelOpen(open)),
            Some(Incoming::Message(message)) => {
                let MessageHead::Request(r) = message.head else {
                    let e = Error::new(ErrorCode::UnknownRecord, "message on request ring");
                    return Err(stick(failed, e));
                };
                Some(WorkerEvent::Request(Request {
                    request_id: r.request_id,
                    function_id: r.function_id,
                    content_type: r.content_type,
                    deadline_ns: r.deadline_ns,
                    payload: message.payload,
                }))
            }
            Some(Incoming::End) => {
                let e = Error::new(ErrorCode::UnknownRecord, "END on request ring");
                return Err(stick(failed, e));
            }
        };
        Ok(WorkerPolled { event, released })
    }

    /// Stores the request ring's `head` after in-place payloads were released; true when it
    /// stored: ring the host's doorbell (WAIT-6).
    pub fn publish_head(&mut self) -> bool {
        self.consumer.publish_head()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fntable::FunctionTable;
    use crate::geometry::{Geometry, Params};
    use crate::participant::Identity;
    use crate::region::testing::TestMem;
    use crate::region::Region;

    const ECHO: u32 = 1;
    const INFLIGHT: u32 = 4;
    const MAX_MESSAGE: u64 = 1 << 16;

    fn params() -> Params {
        Params {
            worker_slots: 1,
            channel_slots: 0,
            inflight_max: INFLIGHT,
            request_ring_cap: 4096,
            response_ring_cap: 4096,
            channel_ring_cap: 0,
            max_message_len: MAX_MESSAGE,
        }
    }

    fn region(buf: &TestMem) -> Region<'_> {
        let host = Identity {
            pid: 1,
            start_time: 0,
            impl_name: "mailbox tests",
        };
        Region::format(buf.mem(), &params(), &host, [3; 16], 0).unwrap()
    }

    /// Both ends of mailbox 0, the HELLO exchanged (MBX-2).
    fn greeted<'a>(r: &Region<'a>) -> (HostMailbox<'a>, WorkerMailbox<'a>) {
        let mb = r.mailbox(0).unwrap();
        let mut host = HostMailbox::new(mb, INFLIGHT, MAX_MESSAGE).unwrap();
        let mut worker = WorkerMailbox::new(mb, INFLIGHT, MAX_MESSAGE).unwrap();
        let table = FunctionTable::new([(ECHO, "echo")]).unwrap().encode();
        let mut hello = worker.start_hello(&table).unwrap();
        assert!(worker.write(&mut hello).unwrap().done);
        assert!(matches!(
            host.poll().unwrap().event,
            Some(HostEvent::Hello(_))
        ));
        (host, worker)
    }

    fn buffer() -> TestMem {
        TestMem::new(Geometry::compute(&params()).unwrap().region_len())
    }

    #[test]
    fn a_request_borrowed_in_place_is_answered_in_place() {
        let buf = buffer();
        let r = region(&buf);
        let (mut host, mut worker) = greeted(&r);
        let mut out = host
            .start_request(ECHO, 0, 0, b"zero copy both ways")
            .unwrap()
            .unwrap();
        assert!(host.write(&mut out).unwrap().done);
        let (requests, responses) = worker.split();
        let polled = requests.poll().unwrap();
        let Some(WorkerEvent::Request(req)) = polled.event else {
            panic!("a request");
        };
        assert!(matches!(req.payload, Payload::InPlace(_)));
        // The response is reserved and written while the request is still borrowed.
        let len = req.payload.bytes().len();
        let mut loan = responses
            .loan_response(req.request_id, 0, 7, len)
            .unwrap()
            .unwrap();
        for (dst, src) in loan
            .payload()
            .iter_mut()
            .zip(req.payload.bytes().iter().rev())
        {
            *dst = *src;
        }
        loan.commit(len).unwrap();
        assert!(responses.publish());
        req.payload.release();
        assert!(requests.publish_head());
        let polled = host.poll().unwrap();
        let Some(HostEvent::Response(resp)) = polled.event else {
            panic!("a response");
        };
        assert_eq!((resp.status, resp.content_type), (0, 7));
        assert_eq!(resp.payload.bytes(), b"syaw htob ypoc orez");
    }

    #[test]
    fn a_pinned_request_id_is_used_and_checked() {
        let buf = buffer();
        let r = region(&buf);
        let (mut host, mut worker) = greeted(&r);
        let id = host.next_request_id().unwrap();
        let mut out = host
            .start_request_with_id(id, ECHO, 0, 0, b"pinned")
            .unwrap()
            .unwrap();
        assert_eq!(out.request_id(), id);
        assert!(host.write(&mut out).unwrap().done);
        assert!(host.is_outstanding(id));
        // CALL-1: an id not above the last one is refused, before anything is written.
        let e = host
            .start_request_with_id(id, ECHO, 0, 0, b"again")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        // CALL-2: an id whose cancel entry holds an outstanding request is not free.
        let busy = id + u64::from(INFLIGHT);
        assert!(host
            .start_request_with_id(busy, ECHO, 0, 0, b"busy")
            .unwrap()
            .is_none());
        // FN-2 as for any request.
        let e = host
            .start_request_with_id(id + 1, 99, 0, 0, b"")
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::UnknownFunction);
        let polled = worker.poll().unwrap();
        let Some(WorkerEvent::Request(req)) = polled.event else {
            panic!("a request");
        };
        assert_eq!((req.request_id, req.payload.bytes()), (id, &b"pinned"[..]));
    }

    #[test]
    fn the_response_half_knows_what_fits_one_record() {
        let buf = buffer();
        let r = region(&buf);
        let (_host, mut worker) = greeted(&r);
        let responses = worker.responses();
        // RING-1: records of at most cap / 2 bytes, minus the record and response heads.
        let most = 4096 / 2 - 8 - crate::records::ResponseHead::LEN;
        assert!(responses.fits_one_record(most));
        assert!(!responses.fits_one_record(most + 1));
        assert_eq!(responses.one_record_capacity(), most);
        let Err(e) = responses.loan_response(1, 0, 0, most + 1) else {
            panic!("a loan larger than one record is refused");
        };
        assert_eq!(e.code, ErrorCode::InvalidArgument);
    }
    #[test]
    fn an_empty_poll_still_publishes_a_released_head() {
        let buf = buffer();
        let r = region(&buf);
        let (mut host, mut worker) = greeted(&r);
        let mut out = host.start_request(ECHO, 0, 0, b"ping").unwrap().unwrap();
        assert!(host.write(&mut out).unwrap().done);
        let Some(WorkerEvent::Request(req)) = worker.poll().unwrap().event else {
            panic!("a request");
        };
        let id = req.request_id;
        let mut resp = worker.start_response(id, 0, 0, b"pong");
        assert!(worker.write(&mut resp).unwrap().done);
        let Some(HostEvent::Response(resp)) = host.poll().unwrap().event else {
            panic!("a response");
        };
        // Released but not published: the ring is empty for the host now, and the empty poll
        // (the cheap path) still stores the head, as a full poll does (RING-6).
        resp.payload.release();
        let response_ring = r.mailbox(0).unwrap().response;
        assert_eq!(response_ring.load_tail(), host.consumed());
        assert_ne!(response_ring.load_head(), host.consumed());
        let polled = host.poll().unwrap();
        assert!(polled.event.is_none());
        assert!(polled.released);
        assert_eq!(response_ring.load_head(), host.consumed());
        // Nothing left to release: further polls report nothing at all.
        let polled = host.poll().unwrap();
        assert!(polled.event.is_none() && !polled.released);
    }

    #[test]
    fn a_tail_moved_back_to_the_head_hides_no_published_record() {
        let buf = buffer();
        let r = region(&buf);
        let (mut host, mut worker) = greeted(&r);
        // Two requests published before the worker looks: its consumer loads one tail
        // covering both.
        let request_ring = r.mailbox(0).unwrap().request;
        let mut a = host.start_request(ECHO, 0, 0, b"first").unwrap().unwrap();
        assert!(host.write(&mut a).unwrap().done);
        let after_first = request_ring.load_tail();
        let mut b = host.start_request(ECHO, 0, 0, b"second").unwrap().unwrap();
        assert!(host.write(&mut b).unwrap().done);
        let Some(WorkerEvent::Request(first)) = worker.poll().unwrap().event else {
            panic!("the first request");
        };
        assert_eq!(first.payload.bytes(), b"first");
        first.payload.release();
        // A hostile host stores a tail equal to the worker's head, below the second request
        // it already published. The consumer still reads what it was shown: the cheap path
        // of an empty poll defers to the consumer's own view.
        request_ring
            .ctrl
            .atomic_u64(crate::ring::TAIL_OFFSET)
            .unwrap()
            .store(after_first, Ordering::Release);
        let Some(WorkerEvent::Request(second)) = worker.poll().unwrap().event else {
            panic!("the second request");
        };
        assert_eq!(second.payload.bytes(), b"second");
    }
}
