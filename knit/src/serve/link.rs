//! What the pieces a handler holds (channel ends, response writers) need from the serve loop
//! they run in: waiting on the worker's doorbell while watching the host, ringing the host's
//! doorbell, and turning core errors into runtime errors (poisoning the region for a
//! violation).

use knit_core::channel::ChannelReader;

use super::channel::ChannelSender;
use crate::error::{Error, Result};

/// The serve loop as seen from inside a handler.
pub(crate) trait LoopLink {
    /// Waits (spin, then park on the worker's doorbell) until `ready`, watching the host
    /// (LIVE-4) and the poison word (LIVE-6).
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<()>;
    /// Rings the host's doorbell (WAIT-5).
    fn ring_host(&self);
    /// Turns a core error into the runtime's, poisoning the region for a violation (ERR-2).
    fn fail(&self, e: knit_core::Error) -> Error;
}

/// A streaming handler's way to open channels to the host.
pub(crate) trait ChannelLink: LoopLink {
    /// Opens and announces a channel to the host tagged `tag`.
    fn open_to_host(&self, tag: u64) -> Result<ChannelSender<'_>>;
}

/// Where a handler finds the channel the host opened for its call.
pub(crate) trait InputLink: LoopLink {
    /// Takes the reading end of the channel the host announced with `tag`, or why it could
    /// not be attached (`CHANNEL_ABORTED`); `None` when the host announced none.
    fn take_input(&self, tag: u64) -> Option<Result<ChannelReader<'_>, knit_core::Error>>;
    /// The same loop as a [`LoopLink`] (trait upcasting needs a newer compiler than the
    /// workspace's minimum).
    fn as_loop(&self) -> &dyn LoopLink;
}
