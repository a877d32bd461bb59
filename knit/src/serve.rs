//! The worker side: [`Worker`] attaches to a host's region and serves its request ring
//! (spec/05), in its own process or on a thread of the host.
//!
//! ```no_run
//! fn main() -> Result<(), knit::Error> {
//!     knit::Worker::from_env()?
//!         .handle("hello", |_ctx, req| Ok(format!("Hello, {}", req.text()?).into_bytes()))
//!         .run()
//! }
//! ```

mod channel;
mod inputs;
mod link;
mod receiver;
mod session;
pub(crate) mod writer;

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use knit_core::ErrorCode;

use crate::attach::DEFAULT_ATTACH_TIMEOUT;
use crate::error::{Error, Result};
use crate::handler::{HandlerError, HandlerResult, Handlers, Request};
use crate::region_handle::RegionHandle;
use crate::spin::SpinPolicy;

pub use channel::ChannelSender;
pub use receiver::ChannelReceiver;
pub use session::ServeOutcome;
pub use writer::{Responded, ResponseWriter};

use link::{ChannelLink, InputLink, LoopLink};

/// The environment variable naming the region (MAP-5).
pub const ENV_REGION: &str = "KNIT_REGION";
/// The environment variable giving the participant index (MAP-5).
pub const ENV_SLOT: &str = "KNIT_SLOT";

/// What a handler can ask about its call while it runs.
pub struct Context<'r> {
    request_id: u64,
    deadline_ns: u64,
    cancel_entry: Option<&'r AtomicU64>,
    content_type: Cell<u32>,
    slot: u32,
    link: Option<&'r dyn ChannelLink>,
    input: Option<&'r dyn InputLink>,
}

impl<'r> Context<'r> {
    pub(crate) fn new(
        request_id: u64,
        deadline_ns: u64,
        cancel_entry: Option<&'r AtomicU64>,
        content_type: u32,
        slot: u32,
        link: Option<&'r dyn ChannelLink>,
    ) -> Self {
        Context {
            request_id,
            deadline_ns,
            cancel_entry,
            content_type: Cell::new(content_type),
            slot,
            link,
            input: None,
        }
    }

    /// The same context, offering the channels the host opened to this worker.
    pub(crate) fn with_input(mut self, input: &'r dyn InputLink) -> Self {
        self.input = Some(input);
        self
    }

    /// Takes the channel the host opened for this call with [`crate::Pool::call_with_channel`]
    /// (spec/06: its announcement carries this call's request id as its tag and precedes the
    /// request on the ring, so it is here before the handler runs). Any handler may take it,
    /// once; `CHANNEL_CLOSED` when the host opened none for this call (or it was taken
    /// already), `CHANNEL_ABORTED` when the host aborted it before the call ran. A channel the handler does not take is aborted with `CANCELLED` when the
    /// handler returns.
    pub fn take_input_channel(&self) -> Result<ChannelReceiver<'r>> {
        let input = self
            .input
            .ok_or_else(|| no_input("this worker offers no input channels"))?;
        let reader = input
            .take_input(self.request_id)
            .ok_or_else(|| no_input("the host opened no channel for this call"))?
            .map_err(Error::from)?;
        Ok(ChannelReceiver::new(
            reader,
            input.as_loop(),
            self.cancel_entry,
            self.request_id,
        ))
    }

    /// Opens a channel from this worker to the host (CHAN-1, CHAN-11) tagged with this call's
    /// request id, and announces it (CHAN-2); the caller receives it with
    /// [`crate::CallFuture::channel`]. Only for handlers added with
    /// [`Handlers::handle_streaming`] (`INVALID_ARGUMENT` otherwise); `WOULD_BLOCK` when no
    /// channel slot is free.
    pub fn open_channel_to_host(&self) -> Result<ChannelSender<'r>> {
        match self.link {
            Some(link) => link.open_to_host(self.request_id),
            None => Err(Error::protocol(
                ErrorCode::InvalidArgument,
                "open_channel_to_host needs a streaming handler",
                "add the handler with handle_streaming",
            )),
        }
    }

    /// The request's id (CALL-1).
    pub fn request_id(&self) -> u64 {
        self.request_id
    }

    /// The absolute `CLOCK_MONOTONIC` deadline in nanoseconds, `None` when the call has none.
    pub fn deadline(&self) -> Option<u64> {
        (self.deadline_ns != 0).then_some(self.deadline_ns)
    }

    /// Time left before the deadline (zero once it passed), `None` without a deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline()
            .map(|d| Duration::from_nanos(d.saturating_sub(crate::clock::monotonic_ns())))
    }

    /// True when the host cancelled this call (CANCEL-2: its cancel entry holds its id).
    /// A long handler polls it and gives up early (CANCEL-3).
    pub fn is_cancelled(&self) -> bool {
        self.cancel_entry
            .is_some_and(|e| e.load(Ordering::Acquire) == self.request_id)
    }

    /// The participant index of the worker serving the call.
    pub fn worker_slot(&self) -> u32 {
        self.slot
    }

    /// Sets the content type of the result (by default the request's).
    pub fn set_content_type(&self, content_type: u32) {
        self.content_type.set(content_type);
    }

    pub(crate) fn content_type(&self) -> u32 {
        self.content_type.get()
    }
}

fn no_input(what: &'static str) -> Error {
    Error::protocol(ErrorCode::ChannelClosed, what, String::new())
}

/// Where a worker finds its region.
#[derive(Clone, Debug)]
enum Source {
    Named { region: String, slot: u32 },
    Handle { handle: RegionHandle, slot: u32 },
}

/// A worker: a set of handlers and the region slot it serves.
#[derive(Clone)]
pub struct Worker {
    source: Source,
    handlers: Handlers,
    spin: SpinPolicy,
    attach_timeout: Duration,
    stop: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("source", &self.source)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker for participant `slot` (1 or more) of the named region `region`.
    pub fn new(region: impl Into<String>, slot: u32) -> Worker {
        Worker {
            source: Source::Named {
                region: region.into(),
                slot,
            },
            handlers: Handlers::new(),
            spin: SpinPolicy::default(),
            attach_timeout: DEFAULT_ATTACH_TIMEOUT,
            stop: None,
        }
    }

    /// A worker configured the way a host starts one (MAP-5): from the arguments
    /// `--knit-region NAME --knit-slot N` when given, otherwise from the environment variables
    /// `KNIT_REGION` and `KNIT_SLOT`. `INVALID_ARGUMENT` when neither names both.
    pub fn from_env() -> Result<Worker> {
        let args: Vec<String> = std::env::args().collect();
        let arg = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        let region = arg("--knit-region").or_else(|| std::env::var(ENV_REGION).ok());
        let slot = arg("--knit-slot").or_else(|| std::env::var(ENV_SLOT).ok());
        match (region, slot) {
            (Some(region), Some(slot)) => {
                let slot = slot.trim().parse::<u32>().map_err(|_| {
                    Error::protocol(
                        ErrorCode::InvalidArgument,
                        "KNIT_SLOT is not a participant index",
                        slot.clone(),
                    )
                })?;
                Ok(Worker::new(region, slot))
            }
            _ => Err(Error::protocol(
                ErrorCode::InvalidArgument,
                "no region given",
                "set KNIT_REGION and KNIT_SLOT, or pass --knit-region NAME --knit-slot N",
            )),
        }
    }

    /// A worker on a thread of the host, sharing the host's mapping (PART-9).
    pub(crate) fn on_thread(
        handle: RegionHandle,
        slot: u32,
        handlers: Handlers,
        spin: SpinPolicy,
        stop: Arc<AtomicBool>,
    ) -> Worker {
        Worker {
            source: Source::Handle { handle, slot },
            handlers,
            spin,
            attach_timeout: DEFAULT_ATTACH_TIMEOUT,
            stop: Some(stop),
        }
    }

    /// Adds the handler of function `name`.
    #[must_use]
    pub fn handle<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.handlers = self.handlers.handle(name, f);
        self
    }

    /// Adds a handler that may open channels to the host (see
    /// [`Handlers::handle_streaming`]).
    #[must_use]
    pub fn handle_streaming<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>) -> HandlerResult + Send + Sync + 'static,
    {
        self.handlers = self.handlers.handle_streaming(name, f);
        self
    }

    /// Adds a handler that writes its result in place in the response ring (see
    /// [`Handlers::handle_in_place`]).
    #[must_use]
    pub fn handle_in_place<F>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(&Context<'_>, Request<'_>, ResponseWriter<'_>) -> Result<Responded, HandlerError>
            + Send
            + Sync
            + 'static,
    {
        self.handlers = self.handlers.handle_in_place(name, f);
        self
    }

    /// Adds every handler of `handlers`.
    #[must_use]
    pub fn handlers(mut self, handlers: &Handlers) -> Self {
        self.handlers.extend(handlers);
        self
    }

    /// How long the worker spins before parking when idle (WAIT-1).
    #[must_use]
    pub fn spin(mut self, spin: SpinPolicy) -> Self {
        self.spin = spin;
        self
    }

    /// Serves until the host sends SHUTDOWN (MBX-3): `Ok(())`. Returns `PEER_DIED` when the host
    /// died (LIVE-4), `POISONED` when the region was poisoned (LIVE-7), and the attach errors
    /// (HDR-*, INIT-*, `SLOT_TAKEN`).
    pub fn run(self) -> Result<()> {
        match self.serve()? {
            ServeOutcome::Shutdown | ServeOutcome::Stopped => Ok(()),
        }
    }

    /// Like [`Worker::run`], telling how the loop ended.
    pub fn serve(self) -> Result<ServeOutcome> {
        let (handle, slot) = match self.source {
            Source::Named { ref region, slot } => {
                (RegionHandle::attach(region, self.attach_timeout)?, slot)
            }
            Source::Handle { ref handle, slot } => (handle.clone(), slot),
        };
        session::serve(&handle, slot, &self)
    }
}
