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
        id: u64,
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

    pub(crate) fn in_flight(
        inner: Arc<Inner>,
        worker: usize,
        id: u64,
        slot: Arc<CallSlot>,
    ) -> Self {
        CallFuture {
            state: State::InFlight {
                inner,
                worker,
                id,
                slot,
                finished: false,
            },
        }
    }

    /// The request id, once sent (per worker; CALL-1).
    pub fn request_id(&self) -> Option<u64> {
        match &self.state {
            State::InFlight { id, .. } => Some(*id),
            State::Failed(_) => None,
        }
    }

    /// Cancels the call (CANCEL-1): the worker is told through the cancel table, a late
    /// response is discarded (CALL-4) and the future resolves to `CANCELLED`, unless the
    /// outcome had already arrived.
    pub fn cancel(&self) {
        if let State::InFlight {
            inner, worker, id, ..
        } = &self.state
        {
            if let Some(w) = inner.workers.get(*worker) {
                inner.cancel(w, *id, ErrorCode::Cancelled, "cancelled by the caller");
            }
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
