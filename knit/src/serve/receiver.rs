//! The worker's end of a channel the host opened for a call (spec/06): [`ChannelReceiver`]
//! reads DATA messages in order (CHAN-3) until END (CHAN-4), waiting on the worker's doorbell
//! meanwhile, and aborts (CHAN-5).

use std::sync::atomic::{AtomicU64, Ordering};

use knit_core::channel::{ChannelEvent, ChannelReader};
use knit_core::ErrorCode;

use super::link::LoopLink;
use crate::error::{Error, Result};
use crate::pool::Message;

/// The reading end of the channel the host opened for this call
/// ([`crate::Pool::call_with_channel`]); take it with
/// [`crate::Context::take_input_channel`].
///
/// Messages arrive in the order the host sent them, each once (CHAN-3); `Ok(None)` reports
/// the end of the stream after the last one (CHAN-4). While it waits for the host it watches
/// the host's liveness (`PEER_DIED`, CHAN-8) and the call's cancel entry (`CANCELLED`,
/// CANCEL-3). Iterate it for the messages' bytes. Dropping it before the end aborts the
/// channel with `CANCELLED`, so that the host's sender stops.
pub struct ChannelReceiver<'r> {
    reader: ChannelReader<'r>,
    link: &'r dyn LoopLink,
    /// The call's cancel entry and id (CANCEL-2).
    cancel: Option<&'r AtomicU64>,
    request_id: u64,
    /// An iterator that returned an error returns nothing more.
    failed: bool,
}

impl std::fmt::Debug for ChannelReceiver<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelReceiver")
            .field("channel", &self.reader.channel())
            .finish_non_exhaustive()
    }
}

impl<'r> ChannelReceiver<'r> {
    pub(crate) fn new(
        reader: ChannelReader<'r>,
        link: &'r dyn LoopLink,
        cancel: Option<&'r AtomicU64>,
        request_id: u64,
    ) -> Self {
        ChannelReceiver {
            reader,
            link,
            cancel,
            request_id,
            failed: false,
        }
    }

    /// The next message in private memory, `Ok(None)` at the end of the stream, waiting for
    /// the host meanwhile. Fails with `CHANNEL_ABORTED` when the host aborted (CHAN-5),
    /// `PEER_DIED` when it died (CHAN-8), `CANCELLED` when it cancelled the call, or a
    /// violation's code (the region is then poisoned).
    pub fn recv(&mut self) -> Result<Option<Message>> {
        self.recv_with(|content_type, bytes| Message {
            content_type,
            bytes: bytes.to_vec(),
        })
    }

    /// Like [`ChannelReceiver::recv`], but runs `f` on the message's content type and bytes
    /// instead of copying them: a message of one record is seen in place in the channel's ring
    /// (zero copy, RING-15) and released when `f` returns. The bytes come from another
    /// process: treat them as untrusted input.
    pub fn recv_with<R, F: FnOnce(u32, &[u8]) -> R>(&mut self, f: F) -> Result<Option<R>> {
        let mut f = f;
        loop {
            f = match self.poll(f)? {
                Polled::Message(out) => return Ok(Some(out)),
                Polled::End => return Ok(None),
                Polled::Nothing(f) => f,
            };
            self.wait()?;
        }
    }

    /// One receive without waiting; `f` comes back when nothing is complete now.
    fn poll<R, F: FnOnce(u32, &[u8]) -> R>(&mut self, f: F) -> Result<Polled<R, F>> {
        let ChannelReceiver { reader, link, .. } = self;
        let mut released = false;
        // In its own block, so that an in-place message is released before the head is stored.
        let polled = {
            let got = reader.recv().map_err(|e| link.fail(e))?;
            released |= got.released;
            match got.event {
                Some(ChannelEvent::Message(m)) if !m.is_available() => {
                    let len = m.bytes().len();
                    return Err(Error::protocol(
                        ErrorCode::PayloadTooLarge,
                        "a channel message could not be held",
                        format!("{len} bytes"),
                    ));
                }
                Some(ChannelEvent::Message(m)) => {
                    let out = f(m.content_type(), m.bytes());
                    // Dropping the message releases its record (RING-6).
                    drop(m);
                    Polled::Message(out)
                }
                Some(ChannelEvent::End) => Polled::End,
                None => Polled::Nothing(f),
            }
        };
        released |= reader.publish_head();
        if released {
            // WAIT-6: the host may wait for room.
            link.ring_host();
        }
        Ok(polled)
    }

    /// Waits until the host published more, changed the channel, cancelled the call or died.
    fn wait(&mut self) -> Result<()> {
        let ChannelReceiver {
            reader,
            link,
            cancel,
            request_id,
            ..
        } = self;
        let cancelled = || cancel.is_some_and(|c| c.load(Ordering::Acquire) == *request_id);
        let waited = {
            let reader = &*reader;
            link.wait(&mut || reader.is_ready() || cancelled())
        };
        if let Err(e) = waited {
            if e.code() == ErrorCode::PeerDied {
                // CHAN-8: the host died; this end is released.
                let _ = reader.peer_died();
            }
            return Err(e);
        }
        if cancelled() {
            // CANCEL-3: the host gave up on the call; stop its stream too (CHAN-5).
            if matches!(reader.abort(ErrorCode::Cancelled as u32), Ok(true)) {
                link.ring_host();
            }
            return Err(Error::protocol(
                ErrorCode::Cancelled,
                "the call was cancelled while it waited for its input",
                String::new(),
            ));
        }
        Ok(())
    }

    /// Aborts the channel with `code` (CHAN-5): the host's sends fail with
    /// `CHANNEL_ABORTED`; messages not yet received are discarded.
    pub fn abort(mut self, code: u32) -> Result<()> {
        let changed = self.reader.abort(code).map_err(|e| self.link.fail(e))?;
        if changed {
            self.link.ring_host();
        }
        Ok(())
    }
}

/// What one receive without waiting found.
enum Polled<R, F> {
    /// A message, and what the caller's function made of it.
    Message(R),
    /// The end of the stream (CHAN-4).
    End,
    /// Nothing complete now: the caller's function, unused.
    Nothing(F),
}

impl Iterator for ChannelReceiver<'_> {
    type Item = Result<Vec<u8>>;

    /// The next message's bytes; `None` after the end of the stream or after an error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.recv() {
            Ok(Some(m)) => Some(Ok(m.bytes)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for ChannelReceiver<'_> {
    fn drop(&mut self) {
        // An end still live aborts with CANCELLED and releases (the reader's own drop would
        // too, but without ringing the host, which may be parked waiting for room).
        if self.reader.is_live()
            && matches!(self.reader.abort(ErrorCode::Cancelled as u32), Ok(true))
        {
            self.link.ring_host();
        }
    }
}
