//! [`CallSlot`]: where the outcome of one call is delivered, by whichever thread reads the
//! response (a blocking caller draining the ring, the reactor, the monitor).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Waker;

use crate::call::CallResult;

/// The outcome of one call, set once.
#[derive(Debug, Default)]
pub(crate) struct CallSlot {
    /// The request id once sent (0 before: an async call may wait for the sender thread).
    id: AtomicU64,
    done: AtomicBool,
    inner: Mutex<SlotInner>,
}

#[derive(Debug, Default)]
struct SlotInner {
    outcome: Option<CallResult>,
    waker: Option<Waker>,
}

impl CallSlot {
    pub(crate) fn new() -> Self {
        CallSlot::default()
    }

    /// The request id, 0 while not sent.
    pub(crate) fn id(&self) -> u64 {
        self.id.load(Ordering::Acquire)
    }

    pub(crate) fn set_id(&self, id: u64) {
        self.id.store(id, Ordering::Release);
    }

    /// True once an outcome was delivered (it may have been taken since).
    pub(crate) fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Delivers `outcome` unless one was delivered before; wakes the task waiting for it.
    /// Returns whether this outcome was the one kept: the first wins, so that no call gets two
    /// outcomes (LIVE-3).
    pub(crate) fn complete(&self, outcome: CallResult) -> bool {
        let waker = {
            let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if self.done.load(Ordering::Acquire) {
                return false;
            }
            inner.outcome = Some(outcome);
            self.done.store(true, Ordering::Release);
            inner.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Takes the outcome, once.
    pub(crate) fn take(&self) -> Option<CallResult> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .outcome
            .take()
    }

    /// Registers the task to wake on completion; returns the outcome instead when it is
    /// already there.
    pub(crate) fn take_or_register(&self, waker: &Waker) -> Option<CallResult> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(outcome) = inner.outcome.take() {
            return Some(outcome);
        }
        match &inner.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => inner.waker = Some(waker.clone()),
        }
        None
    }
}
