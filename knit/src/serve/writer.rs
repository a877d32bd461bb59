//! [`ResponseWriter`]: how a handler added with [`crate::Handlers::handle_in_place`] answers
//! its call, by writing the result straight into the response ring (loan, spec/03 §3.3: no
//! copy) when it fits one record, and through a private buffer that is then copied otherwise.

use knit_core::ErrorCode;

use super::Context;
use crate::handler::HandlerError;

/// Where a [`ResponseWriter`] puts the response: the serve loop's response ring, or (for a
/// handler run outside the loop) a private buffer.
pub(crate) trait ResponseSink {
    /// The largest payload [`ResponseSink::write_in_place`] accepts; 0 when there is no ring.
    fn in_place_capacity(&self) -> usize;
    /// The largest payload of a message (CALL-10).
    fn max_len(&self) -> u64;
    /// Reserves `capacity` payload bytes in the ring, lets `fill` write them and commits the
    /// count it returns, as the call's successful response. Returns that count.
    fn write_in_place(
        &mut self,
        content_type: u32,
        capacity: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, HandlerError>;
    /// Sends `bytes` as the call's successful response, copying them.
    fn send(&mut self, content_type: u32, bytes: &[u8]) -> Result<(), HandlerError>;
}

/// Proof that a handler answered its call through its [`ResponseWriter`] (CALL-3: exactly one
/// response). Only a writer makes one.
#[derive(Debug)]
#[must_use = "return it from the handler"]
pub struct Responded {
    in_place: bool,
    len: usize,
}

impl Responded {
    /// True when the result was written in place in the response ring (zero copy).
    pub fn is_in_place(&self) -> bool {
        self.in_place
    }

    /// The result's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty result.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The way an in-place handler answers its call, once: [`ResponseWriter::write_with`] or
/// [`ResponseWriter::send`] (each consumes the writer and returns the [`Responded`] the handler
/// returns). The result's content type is the call's unless the handler changed it with
/// [`Context::set_content_type`] before writing.
pub struct ResponseWriter<'r> {
    sink: &'r mut dyn ResponseSink,
    ctx: &'r Context<'r>,
}

impl std::fmt::Debug for ResponseWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseWriter")
            .field("in_place_capacity", &self.in_place_capacity())
            .finish_non_exhaustive()
    }
}

impl<'r> ResponseWriter<'r> {
    pub(crate) fn new(sink: &'r mut dyn ResponseSink, ctx: &'r Context<'r>) -> Self {
        ResponseWriter { sink, ctx }
    }

    /// The largest result that [`ResponseWriter::write_with`] writes in place: one record of
    /// the response ring (RING-1: about half of it). Larger results take the copying path.
    pub fn in_place_capacity(&self) -> usize {
        self.sink.in_place_capacity()
    }

    /// Answers with a result of at most `capacity` bytes that `fill` writes and whose length
    /// it returns. When `capacity` fits one record, `fill` writes straight into the response
    /// ring and nothing is copied; otherwise it writes into a private buffer that is then
    /// sent in fragments. The buffer holds arbitrary bytes before `fill` writes them.
    ///
    /// Waits while the response ring is full. `PAYLOAD_TOO_LARGE` when `capacity` exceeds the
    /// region's `max_message_len` (CALL-10), `INVALID_ARGUMENT` when `fill` returns more than
    /// `capacity`; in both cases nothing was sent, and returning the error from the handler
    /// answers the call with it.
    pub fn write_with(
        self,
        capacity: usize,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) -> Result<Responded, HandlerError> {
        if capacity as u64 > self.sink.max_len() {
            return Err(HandlerError::new(
                ErrorCode::PayloadTooLarge as u32,
                format!(
                    "a result of {capacity} bytes exceeds max_message_len ({})",
                    self.sink.max_len()
                ),
            ));
        }
        let mut fill = Some(fill);
        let mut run = |buf: &mut [u8]| fill.take().map_or(0, |f| f(buf));
        let content_type = self.ctx.content_type();
        if capacity <= self.sink.in_place_capacity() {
            let len = self.sink.write_in_place(content_type, capacity, &mut run)?;
            return Ok(Responded {
                in_place: true,
                len,
            });
        }
        let mut buf = vec![0u8; capacity];
        let len = run(&mut buf);
        let bytes = buf.get(..len).ok_or_else(|| too_long(len, capacity))?;
        self.sink.send(content_type, bytes)?;
        Ok(Responded {
            in_place: false,
            len,
        })
    }

    /// Answers with `bytes`, copied into the response ring (in fragments when large).
    pub fn send(self, bytes: &[u8]) -> Result<Responded, HandlerError> {
        let content_type = self.ctx.content_type();
        self.sink.send(content_type, bytes)?;
        Ok(Responded {
            in_place: false,
            len: bytes.len(),
        })
    }
}

/// `fill` claimed more bytes than it was given.
pub(crate) fn too_long(len: usize, capacity: usize) -> HandlerError {
    HandlerError::new(
        ErrorCode::InvalidArgument as u32,
        format!("the result's writer returned {len} bytes for a buffer of {capacity}"),
    )
}

/// A sink into private memory, for an in-place handler run outside a serve loop (through
/// [`crate::Handlers::get`]): the result is kept for the caller.
#[derive(Debug)]
pub(crate) struct BufferSink {
    pub(crate) result: Option<Vec<u8>>,
}

impl ResponseSink for BufferSink {
    fn in_place_capacity(&self) -> usize {
        0
    }

    fn max_len(&self) -> u64 {
        u64::MAX
    }

    fn write_in_place(
        &mut self,
        _content_type: u32,
        capacity: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> usize,
    ) -> Result<usize, HandlerError> {
        let mut buf = vec![0u8; capacity];
        let len = fill(&mut buf);
        if len > capacity {
            return Err(too_long(len, capacity));
        }
        buf.truncate(len);
        self.result = Some(buf);
        Ok(len)
    }

    fn send(&mut self, _content_type: u32, bytes: &[u8]) -> Result<(), HandlerError> {
        self.result = Some(bytes.to_vec());
        Ok(())
    }
}
