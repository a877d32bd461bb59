//! [`RingSink`]: the response ring behind an in-place handler's
//! [`ResponseWriter`](crate::ResponseWriter): results that fit one record are loaned in place
//! (spec/03 §3.3), larger ones are sent in fragments (spec/07), waiting for room meanwhile.

use knit_core::mailbox::WorkerResponses;
use knit_core::ErrorCode;

use super::{Halt, Session};
use crate::handler::HandlerError;
use crate::serve::writer::{too_long, ResponseSink};
use crate::serve::LoopLink;

/// The response half of the mailbox, lent to one in-place handler for its call's response.
pub(super) struct RingSink<'s, 'a, 'w, 'm> {
    session: &'s Session<'a, 'w>,
    responses: &'m mut WorkerResponses<'a>,
    request_id: u64,
    /// A response was written: nothing more is sent for the call (CALL-3).
    sent: bool,
    /// Why the loop must stop (the host died, a violation), found while writing.
    halt: Option<Halt>,
}

impl<'s, 'a, 'w, 'm> RingSink<'s, 'a, 'w, 'm> {
    pub(super) fn new(
        session: &'s Session<'a, 'w>,
        responses: &'m mut WorkerResponses<'a>,
        request_id: u64,
    ) -> Self {
        RingSink {
            session,
            responses,
            request_id,
            sent: false,
            halt: None,
        }
    }

    /// True once the call's response was written.
    pub(super) fn sent(&self) -> bool {
        self.sent
    }

    /// Why the loop must stop, if writing found a reason.
    pub(super) fn take_halt(&mut self) -> Option<Halt> {
        self.halt.take()
    }

    /// Keeps `halt` for the loop and tells the handler its response could not be written.
    fn stop(&mut self, halt: Halt) -> HandlerError {
        let error = match &halt {
            Halt::Failed(e) => HandlerError::new(e.code() as u32, e.to_string()),
            Halt::Stopped => HandlerError::new(ErrorCode::Shutdown as u32, "worker stopped"),
        };
        self.halt = Some(halt);
        error
    }

    /// A second response for one call is refused (CALL-3).
    fn once(&self) -> Result<(), HandlerError> {
        if self.sent {
            return Err(HandlerError::new(
                ErrorCode::InvalidArgument as u32,
                "the call was already answered",
            ));
        }
        Ok(())
    }
}

impl ResponseSink for RingSink<'_, '_, '_, '_> {
    fn in_place_capacity(&self) -> usize {
        self.responses.one_record_capacity()
    }

    fn max_len(&self) -> u64 {
        self.session.region.geometry().max_message_len()
    }

    fn write_in_place(
        &mut self,
        content_type: u32,
        capacity: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, HandlerError> {
        self.once()?;
        loop {
            // Taken before the attempt, so that room freed after it wakes the wait below.
            let seen_head = self.session.responses.load_head();
            let loaned = self
                .responses
                .loan_response(self.request_id, 0, content_type, capacity);
            match loaned {
                Ok(Some(mut loan)) => {
                    let len = fill(loan.payload());
                    if len > capacity {
                        // Dropped uncommitted: nothing reaches the host.
                        return Err(too_long(len, capacity));
                    }
                    // Cannot fail: `len` is within the loan's capacity.
                    if let Err(e) = loan.commit(len) {
                        return Err(HandlerError::new(e.code as u32, e.to_string()));
                    }
                    self.sent = true;
                    if self.responses.publish() {
                        // WAIT-5
                        self.session.ring_host();
                    }
                    return Ok(len);
                }
                Ok(None) => {
                    // WAIT-6: the host frees room as it reads responses.
                    let responses = &self.session.responses;
                    if let Err(halt) = self.session.wait_for(|| responses.load_head() != seen_head)
                    {
                        return Err(self.stop(halt));
                    }
                }
                Err(e) if e.code.is_violation() => {
                    let halt = self.session.violation(e);
                    return Err(self.stop(halt));
                }
                // PAYLOAD_TOO_LARGE and the like: the handler answers with it.
                Err(e) => return Err(HandlerError::new(e.code as u32, e.to_string())),
            }
        }
    }

    fn send(&mut self, content_type: u32, bytes: &[u8]) -> Result<(), HandlerError> {
        self.once()?;
        // CALL-10: a result beyond `max_message_len` becomes a PAYLOAD_TOO_LARGE response.
        let mut out = self
            .responses
            .start_response(self.request_id, 0, content_type, bytes);
        match self.session.send(self.responses, &mut out, false) {
            Ok(()) => {
                self.sent = true;
                Ok(())
            }
            Err(halt) => Err(self.stop(halt)),
        }
    }
}
