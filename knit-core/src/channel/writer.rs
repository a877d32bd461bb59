//! The writing end of a channel: DATA messages (fragmented when large, spec/07), loans of
//! one-record messages, close with END (CHAN-4) and abort (CHAN-5).

use super::end::EndCore;
use super::OpenedChannel;
use crate::error::{Error, ErrorCode, Result};
use crate::mailbox::Sent;
use crate::message::{self, Loan, MessageHead, OutgoingMessage};
use crate::records::{DataHead, TYPE_END};
use crate::ring::Producer;

/// A DATA message being written, resumable after the ring was full (MSG-2: once its first
/// record is written, it must be finished before the writer writes anything else).
#[derive(Clone, Debug)]
pub struct OutgoingData<'p> {
    message: OutgoingMessage<'p>,
    ticket: u64,
}

impl OutgoingData<'_> {
    /// True when every record has been written.
    pub fn is_done(&self) -> bool {
        self.message.is_done()
    }

    /// True once the first record is written: the message must then be finished (MSG-2).
    pub fn is_started(&self) -> bool {
        self.message.is_started()
    }
}

/// The end of a channel named `writer` (CHAN-3): the only producer of the channel's ring.
///
/// Every operation first checks the channel's state (CHAN-12): after the reader aborted they
/// fail with `CHANNEL_ABORTED` carrying the code (`Error::found`), and this end is released.
/// Dropping a writer that was neither closed nor aborted aborts the channel with `CANCELLED`
/// (the reader must not take a truncated stream for a complete one); call [`ChannelWriter::close`]
/// or [`ChannelWriter::abort`] explicitly so the runtime can ring the reader's doorbell.
#[derive(Debug)]
pub struct ChannelWriter<'a> {
    end: EndCore<'a>,
    producer: Producer<'a>,
    max_message_len: u64,
    /// Ticket of the message whose first record is written and whose last is not (MSG-2).
    partial: Option<u64>,
    next_ticket: u64,
    /// The reader's `head` loaded before the last attempt that found no space; a change of it
    /// is what a waiting writer waits for (WAIT-6).
    blocked_head: Option<u64>,
}

fn misuse(what: &'static str) -> Error {
    Error::new(ErrorCode::InvalidArgument, what)
}

impl<'a> ChannelWriter<'a> {
    pub(crate) fn new(end: EndCore<'a>, producer: Producer<'a>, max_message_len: u64) -> Self {
        ChannelWriter {
            end,
            producer,
            max_message_len,
            partial: None,
            next_ticket: 1,
            blocked_head: None,
        }
    }

    /// The channel this end belongs to.
    pub fn channel(&self) -> OpenedChannel {
        self.end.channel()
    }

    /// This participant's index.
    pub fn me(&self) -> u32 {
        self.end.me()
    }

    /// The reader's participant index: the doorbell to ring after a publication (WAIT-5).
    pub fn peer(&self) -> u32 {
        self.end.peer()
    }

    /// True until the end is released (closed, aborted, peer gone) or stopped by a violation.
    pub fn is_live(&self) -> bool {
        self.end.is_live()
    }

    /// Starts a DATA message of `payload` with `content_type`.
    ///
    /// `PAYLOAD_TOO_LARGE` beyond `max_message_len` (the reader would refuse it, MSG-4);
    /// `INVALID_ARGUMENT` while another message is partly written (MSG-2); the end's sticky
    /// outcome once it is done. Write it with [`ChannelWriter::write`].
    pub fn start<'p>(&mut self, content_type: u32, payload: &'p [u8]) -> Result<OutgoingData<'p>> {
        self.end.check_live()?;
        if payload.len() as u64 > self.max_message_len {
            return Err(Error::value(
                ErrorCode::PayloadTooLarge,
                "channel message payload",
                payload.len() as u64,
                self.max_message_len,
            ));
        }
        if self.partial.is_some() {
            return Err(misuse("another message is partly written (MSG-2)"));
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let head = MessageHead::Data(DataHead {
            content_type,
            payload_len: 0,
        });
        Ok(OutgoingData {
            message: OutgoingMessage::new(head, payload),
            ticket,
        })
    }

    /// Writes as many records of `out` as the ring has room for and publishes them (RING-3).
    ///
    /// `done: false` when the ring lacks space: the caller waits for the reader (WAIT-6,
    /// [`ChannelWriter::is_ready`]) and calls again, or reports `WOULD_BLOCK`; nothing is
    /// dropped (CHAN-6). `published: true`: ring the reader's doorbell (WAIT-5).
    /// Fails with `CHANNEL_ABORTED` after an abort (CHAN-5), `PEER_DIED` when the reader's end
    /// was released for it (CHAN-13), a violation code for a broken ring or slot.
    pub fn write(&mut self, out: &mut OutgoingData<'_>) -> Result<Sent> {
        self.end.check_live()?;
        if self.partial.is_some_and(|t| t != out.ticket) {
            return Err(misuse("another message is partly written (MSG-2)"));
        }
        if out.message.is_done() {
            return Ok(Sent {
                done: true,
                published: false,
            });
        }
        self.end.check_open()?;
        let mut published = false;
        let done = self.attempt(|producer| {
            let done = out.message.write_to(producer);
            // Publish what was committed, even when a later fragment failed (RING-3).
            published |= producer.publish();
            done
        })?;
        self.partial = if done || !out.message.is_started() {
            None
        } else {
            Some(out.ticket)
        };
        Ok(Sent { done, published })
    }

    /// Reserves a one-record DATA message with room for `capacity` payload bytes, to be
    /// written in place (loan, spec/03 §3.3); commit it with [`DataLoan::commit`], then
    /// [`ChannelWriter::publish`].
    ///
    /// `Ok(None)` when the ring lacks space now (wait as for [`ChannelWriter::write`]).
    /// `INVALID_ARGUMENT` when such a message cannot fit one record (use
    /// [`ChannelWriter::start`]) or while a message is partly written (MSG-2);
    /// `PAYLOAD_TOO_LARGE` beyond `max_message_len`; the errors of [`ChannelWriter::write`].
    pub fn loan(&mut self, content_type: u32, capacity: usize) -> Result<Option<DataLoan<'_, 'a>>> {
        self.end.check_live()?;
        if capacity as u64 > self.max_message_len {
            return Err(Error::value(
                ErrorCode::PayloadTooLarge,
                "channel loan capacity",
                capacity as u64,
                self.max_message_len,
            ));
        }
        if self.partial.is_some() {
            return Err(misuse("another message is partly written (MSG-2)"));
        }
        if !message::fits_one_record(&self.producer, DataHead::LEN, capacity) {
            return Err(misuse("loan larger than one record"));
        }
        self.end.check_open()?;
        let body_len = DataHead::LEN + capacity;
        // Probe for space first (an uncommitted reservation is abandoned without a trace), so
        // that the loan below is only taken when it will succeed.
        let fits = self.attempt(|producer| Ok(producer.reserve(body_len)?.is_some()))?;
        if !fits {
            return Ok(None);
        }
        let head = MessageHead::Data(DataHead {
            content_type,
            payload_len: 0,
        });
        match message::loan(&mut self.producer, head, capacity) {
            Ok(Some(loan)) => Ok(Some(DataLoan { loan })),
            Ok(None) => Ok(None),
            Err(e) => Err(self.end.fail_or_abort(e)),
        }
    }

    /// Publishes committed records (after a loan); true when a new `tail` was stored: ring
    /// the reader's doorbell (WAIT-5).
    pub fn publish(&mut self) -> bool {
        self.end.is_live() && self.producer.publish()
    }

    /// CHAN-4: writes END after the last message, publishes it and releases this end.
    ///
    /// `done: false` when END does not fit yet (wait and call again). `INVALID_ARGUMENT` while
    /// a message is partly written (MSG-2: finish it, or abort). After the reader aborted:
    /// `CHANNEL_ABORTED`, and the end is released all the same.
    pub fn close(&mut self) -> Result<Sent> {
        self.end.check_live()?;
        if self.partial.is_some() {
            return Err(misuse("close while a message is partly written (MSG-2)"));
        }
        self.end.check_open()?;
        let mut published = false;
        let done = self.attempt(|producer| {
            let written = message::write_control(producer, TYPE_END, &[])?;
            published |= producer.publish();
            Ok(written)
        })?;
        if done {
            // CHAN-4, CHAN-9: END is published; release. Later operations are a misuse.
            self.end.finish(misuse("channel closed by this writer"));
            self.end.check_released_cleanly()?;
        }
        Ok(Sent { done, published })
    }

    /// CHAN-5: aborts the channel with `code` (non-zero, else `INVALID_ARGUMENT`) and releases
    /// this end. True when this call changed the state: ring the reader's doorbell (WAIT-5).
    /// False when the channel was already aborted or this end is already done.
    pub fn abort(&mut self, code: u32) -> Result<bool> {
        self.end.abort(code)
    }

    /// CHAN-8: the runtime found the reader dead (LIVE-2): releases this end; later
    /// operations fail with `PEER_DIED`.
    pub fn peer_died(&mut self) -> Result<()> {
        self.end.peer_died()
    }

    /// The wake condition of a writer waiting for space (WAIT-2 step 3, WAIT-6): true when the
    /// reader's `head` moved since the last attempt that found no space, the channel's state
    /// changed, or the reader released. Decides nothing itself: the caller retries.
    pub fn is_ready(&self) -> bool {
        match self.blocked_head {
            None => true,
            Some(head) => self.producer.ring().load_head() != head || self.end.changed(),
        }
    }

    /// Runs `step` (which returns whether the operation finished) on the producer. When it
    /// did not finish, notes the reader's `head` and runs it once more, so that a `head` that
    /// moved before the note is never missed by [`ChannelWriter::is_ready`] (a lost wake-up);
    /// when it still does not finish, checks CHAN-13.
    fn attempt(&mut self, mut step: impl FnMut(&mut Producer<'a>) -> Result<bool>) -> Result<bool> {
        match step(&mut self.producer) {
            Ok(true) => {
                self.blocked_head = None;
                return Ok(true);
            }
            Ok(false) => {}
            Err(e) => return Err(self.end.fail_or_abort(e)),
        }
        let head = self.producer.ring().load_head();
        match step(&mut self.producer) {
            Ok(true) => {
                self.blocked_head = None;
                return Ok(true);
            }
            Ok(false) => {}
            Err(e) => return Err(self.end.fail_or_abort(e)),
        }
        self.blocked_head = Some(head);
        // CHAN-13: no space, and the reader may be gone.
        let released = self.end.load_released();
        self.end.check_peer_released(released)?;
        Ok(false)
    }
}

impl Drop for ChannelWriter<'_> {
    /// A writer dropped while live aborts with `CANCELLED` and releases (see the type's docs).
    fn drop(&mut self) {
        self.end.abandon();
    }
}

/// A one-record DATA message reserved in the ring (see [`ChannelWriter::loan`]). Dropping it
/// without committing sends nothing.
pub struct DataLoan<'w, 'a> {
    loan: Loan<'w, 'a>,
}

impl DataLoan<'_, '_> {
    /// The payload area, `capacity` bytes, to be written in place.
    pub fn payload(&mut self) -> &mut [u8] {
        self.loan.payload()
    }

    /// Commits the first `payload_len` bytes as one FIRST|LAST DATA record (not published:
    /// call [`ChannelWriter::publish`]). `INVALID_ARGUMENT` when `payload_len` exceeds the
    /// capacity, and nothing is committed.
    pub fn commit(self, payload_len: usize) -> Result<()> {
        self.loan.commit(payload_len)
    }
}

impl core::fmt::Debug for DataLoan<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DataLoan").finish_non_exhaustive()
    }
}
