//! [`CallFuture`]: an async call. Executor-agnostic: a plain [`std::future::Future`] woken by
//! the pool's reactor thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use knit_core::ErrorCode;

use super::inner::Inner;
use super::slot::CallSlot;
use crate::call::{CallError, CallResult};

/// A call in flight. Resolves to its outcome; dropping it before then cancels the call
/// (CANCEL-1).
#[must_use = "a dropped CallFuture cancels its call"]
pub struct CallFuture {
    state: State,
}

enum State {
    /// Failed before anything was sent.
    Failed(Option<CallError>),
    InFlight {
        inner: Arc<Inner>,
        worker: usize,
        slot: Arc<CallSlot>,
        finished: bool,
    },
}

impl CallFuture {
    pub(crate) fn failed(e: CallError) -> Self {
        CallFuture {
            state: State::Failed(Some(e)),
        }
    }

    pub(crate) fn in_flight(inner: Arc<Inner>, worker: usize, slot: Arc<CallSlot>) -> Self {
        CallFuture {
            state: State::InFlight {
                inner,
                worker,
                slot,
                finished: false,
            },
        }
    }

    /// The request id (per worker; CALL-1) once the request is written; `None` while it waits
    /// for room on the pool's sender thread, and for a call that failed before sending.
    pub fn request_id(&self) -> Option<u64> {
        match &self.state {
            State::InFlight { slot, .. } => Some(slot.id()).filter(|&id| id != 0),
            State::Failed(_) => None,
        }
    }

    /// True when the call failed before anything was sent (for example `WOULD_BLOCK`).
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Cancels the call (CANCEL-1): the worker is told through the cancel table, a late
    /// response is discarded (CALL-4) and the future resolves to `CANCELLED`, unless the
    /// outcome had already arrived. A call not yet sent is never sent.
    pub fn cancel(&self) {
        if let State::InFlight {
            inner,
            worker,
            slot,
            ..
        } = &self.state
        {
            let id = slot.id();
            if id == 0 {
                // Still queued for the sender thread, which skips completed slots (or abandons
                // the request if it is being written right now).
                slot.complete(Err(CallError::new(
                    ErrorCode::Cancelled,
                    "cancelled by the caller",
                )));
                let id = slot.id();
                if id != 0 {
                    if let Some(w) = inner.workers.get(*worker) {
                        inner.cancel(w, id, ErrorCode::Cancelled, "cancelled by the caller");
                    }
                }
            } else if let Some(w) = inner.workers.get(*worker) {
                inner.cancel(w, id, ErrorCode::Cancelled, "cancelled by the caller");
            }
        }
    }

    /// The channel the worker opened for this call ([`crate::Context::open_channel_to_host`]),
    /// waiting until it is announced; `CHANNEL_CLOSED` when the call ends without one.
    pub fn channel(&self) -> Result<super::Receiver, CallError> {
        match &self.state {
            State::InFlight {
                inner,
                worker,
                slot,
                ..
            } => super::channel::take(inner, *worker, slot),
            State::Failed(Some(e)) => Err(e.clone()),
            State::Failed(None) => Err(CallError::new(
                ErrorCode::InvalidArgument,
                "polled after completion",
            )),
        }
    }

    /// Blocks the calling thread until the outcome is there (for code without an executor).
    pub fn wait(self) -> CallResult {
        crate::pool::block_on(self)
    }
}

impl Future for CallFuture {
    type Output = CallResult;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<CallResult> {
        match &mut self.get_mut().state {
            State::Failed(e) => Poll::Ready(Err(e.take().unwrap_or_else(|| {
                CallError::new(ErrorCode::InvalidArgument, "polled after completion")
            }))),
            State::InFlight { slot, finished, .. } => match slot.take_or_register(cx.waker()) {
                Some(outcome) => {
                    *finished = true;
                    Poll::Ready(outcome)
                }
                None => Poll::Pending,
            },
        }
    }
}

impl Drop for CallFuture {
    fn drop(&mut self) {
        if let State::InFlight {
            finished: false,
            slot,
            ..
        } = &self.state
        {
            if !slot.is_done() {
                self.cancel();
            }
        }
    }
}

impl std::fmt::Debug for CallFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallFuture")
            .field("request_id", &self.request_id())
            .finish()
    }
}
