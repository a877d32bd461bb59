//! The worker's end of a channel to the host (spec/06): [`ChannelSender`] writes DATA
//! messages with backpressure (CHAN-6), closes with END (CHAN-4) or aborts (CHAN-5).

use knit_core::channel::ChannelWriter;
use knit_core::ErrorCode;

use super::link::LoopLink;
use crate::call::CONTENT_BYTES;
use crate::error::{Error, Result};

/// The writing end of a channel from a worker to the host. Messages arrive in order, each
/// exactly once (CHAN-3). Dropping it without [`ChannelSender::close`] aborts the channel
/// with `CANCELLED`.
pub struct ChannelSender<'r> {
    writer: ChannelWriter<'r>,
    link: &'r dyn LoopLink,
}

impl std::fmt::Debug for ChannelSender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSender")
            .field("channel", &self.writer.channel())
            .finish_non_exhaustive()
    }
}

impl<'r> ChannelSender<'r> {
    pub(crate) fn new(writer: ChannelWriter<'r>, link: &'r dyn LoopLink) -> Self {
        ChannelSender { writer, link }
    }

    /// Sends `bytes` (content type 0), waiting while the ring is full (CHAN-6, WAIT-6).
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.send_typed(CONTENT_BYTES, bytes)
    }

    /// Sends `bytes` tagged with `content_type`, waiting while the ring is full.
    pub fn send_typed(&mut self, content_type: u32, bytes: &[u8]) -> Result<()> {
        self.write(content_type, bytes, true)
    }

    /// Sends `bytes` (content type 0) only if its first record fits now: `WOULD_BLOCK`, with
    /// nothing written, otherwise (CHAN-6). A message in fragments, once started, is finished.
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<()> {
        self.write(CONTENT_BYTES, bytes, false)
    }

    fn write(&mut self, content_type: u32, bytes: &[u8], wait: bool) -> Result<()> {
        let mut out = self
            .writer
            .start(content_type, bytes)
            .map_err(|e| self.link.fail(e))?;
        loop {
            let sent = self.writer.write(&mut out).map_err(|e| self.link.fail(e))?;
            if sent.published {
                self.link.ring_host();
            }
            if sent.done {
                return Ok(());
            }
            if !wait && !out.is_started() {
                return Err(Error::protocol(
                    ErrorCode::WouldBlock,
                    "channel ring full",
                    String::new(),
                ));
            }
            let writer = &self.writer;
            self.link.wait(&mut || writer.is_ready())?;
        }
    }

    /// Closes the channel (CHAN-4): END after every message sent, then the end is released.
    pub fn close(mut self) -> Result<()> {
        loop {
            let sent = self.writer.close().map_err(|e| self.link.fail(e))?;
            if sent.published {
                self.link.ring_host();
            }
            if sent.done {
                return Ok(());
            }
            let writer = &self.writer;
            self.link.wait(&mut || writer.is_ready())?;
        }
    }

    /// Aborts the channel with `code` (CHAN-5): the host's receives fail with
    /// `CHANNEL_ABORTED` and undelivered messages are discarded.
    pub fn abort(mut self, code: u32) -> Result<()> {
        let changed = self.writer.abort(code).map_err(|e| self.link.fail(e))?;
        if changed {
            self.link.ring_host();
        }
        Ok(())
    }
}
