//! [`CallSlot`]: where the outcome of one call is delivered, by whichever thread reads the
//! response (a blocking caller draining the ring, the reactor, the monitor).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
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

thread_local! {
    /// A slot a blocking call of this thread finished with, kept for its next call: a
    /// blocking call needs one for every request, and reusing it saves an allocation and a
    /// free per call.
    static SPARE: Cell<Option<Arc<CallSlot>>> = const { Cell::new(None) };
}

/// A fresh slot for a blocking call: this thread's spare one, or a new one.
pub(crate) fn take_spare() -> Arc<CallSlot> {
    SPARE
        .with(Cell::take)
        .unwrap_or_else(|| Arc::new(CallSlot::new()))
}

/// Keeps `slot` for this thread's next blocking call, reset, if nothing else holds it (a
/// call whose outcome was delivered is no longer in any table); otherwise lets it go.
pub(crate) fn give_back(mut slot: Arc<CallSlot>) {
    if let Some(unique) = Arc::get_mut(&mut slot) {
        *unique = CallSlot::new();
        SPARE.with(|spare| spare.set(Some(slot)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{give_back, take_spare, CallSlot};
    use crate::call::Response;

    #[test]
    fn a_given_back_slot_comes_back_reset() {
        let slot = take_spare();
        slot.set_id(7);
        assert!(slot.complete(Ok(Response::new(0, b"done".to_vec()))));
        let address = Arc::as_ptr(&slot);
        give_back(slot);
        let again = take_spare();
        assert_eq!(Arc::as_ptr(&again), address, "the spare slot is reused");
        assert_eq!(again.id(), 0);
        assert!(!again.is_done());
        assert!(again.take().is_none());
    }

    #[test]
    fn a_slot_still_held_elsewhere_is_not_reused() {
        let slot = take_spare();
        let held: Arc<CallSlot> = Arc::clone(&slot);
        let address = Arc::as_ptr(&slot);
        give_back(slot);
        let other = take_spare();
        assert_ne!(
            Arc::as_ptr(&other),
            address,
            "a shared slot is never handed out again"
        );
        held.set_id(3);
        assert_eq!(other.id(), 0);
    }
}
