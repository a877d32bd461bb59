//! Async calls for C: `knit_call_async` returns a ticket; the caller polls it, waits for it
//! (with a timeout), waits for the first of many, or cancels it.
//!
//! A ticket holds the runtime's `CallFuture`, polled with one process-wide waker: a wake bumps
//! a generation counter under a mutex and notifies a condition variable, and every waiting
//! thread re-polls the tickets it waits for. No wake-up is lost because a waiter reads the
//! generation before it polls, and sleeps only while the generation is unchanged.

use std::ffi::{c_char, c_void};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use knit_core::ErrorCode;
use knit_rt::{CallFuture, CallResult, Payload};

use crate::args::{out, store, string};
use crate::handle::{self, Object};
use crate::pool::{call_args, filler, options, KnitFillFn, KnitPool, PoolObject};
use crate::response::{self, KnitResponse};
use crate::status::{guard, Failure, FfiResult, KnitStatus};

/// Most tickets one `knit_wait_any` accepts.
const MAX_WAIT_ANY: usize = 65_536;

/// An async call in flight (opaque).
pub struct KnitTicket {
    _private: [u8; 0],
}

/// A call and what became of it. The future is kept after it resolved: the channel of the
/// call (`knit_ticket_channel`) is reached through it.
pub(crate) struct TicketState {
    pub(crate) future: CallFuture,
    outcome: Option<CallResult>,
    taken: bool,
    /// What the future is polled with: the process-wide notifier, or once a completion
    /// callback is registered (`watch.rs`), a waker that also wakes the callback thread.
    pub(crate) waker: Waker,
    /// A completion callback is registered (at most one per ticket).
    pub(crate) watched: bool,
}

/// The object behind a `knit_ticket` handle.
pub(crate) struct TicketObject(pub(crate) Mutex<TicketState>);

impl Object for TicketObject {
    type Opaque = KnitTicket;
    const KIND: &'static str = "knit_ticket";
}

/// Wakes every thread waiting on a ticket.
pub(crate) struct Notifier {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Wake for Notifier {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        *lock(&self.generation) += 1;
        self.changed.notify_all();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn notifier() -> &'static (Arc<Notifier>, Waker) {
    static NOTIFIER: OnceLock<(Arc<Notifier>, Waker)> = OnceLock::new();
    NOTIFIER.get_or_init(|| {
        let n = Arc::new(Notifier {
            generation: Mutex::new(0),
            changed: Condvar::new(),
        });
        let waker = Waker::from(Arc::clone(&n));
        (n, waker)
    })
}

impl TicketObject {
    pub(crate) fn new(future: CallFuture) -> Self {
        TicketObject(Mutex::new(TicketState {
            future,
            outcome: None,
            taken: false,
            waker: notifier().1.clone(),
            watched: false,
        }))
    }

    /// Polls the call once; true when its outcome is there (and not yet taken).
    fn poll_done(&self) -> bool {
        let mut state = lock(&self.0);
        let st = &mut *state;
        if st.outcome.is_none() && !st.taken {
            let mut cx = Context::from_waker(&st.waker);
            if let Poll::Ready(outcome) = Pin::new(&mut st.future).poll(&mut cx) {
                st.outcome = Some(outcome);
            }
        }
        st.outcome.is_some()
    }

    /// True once nothing more will happen to the call: its outcome is there or was taken.
    pub(crate) fn finished(&self) -> bool {
        self.poll_done() || !self.can_finish()
    }

    /// Cancels the call unless it finished, and wakes whoever waits for it, who then sees
    /// the outcome.
    fn cancel(&self) {
        let waker = {
            let state = lock(&self.0);
            if state.outcome.is_none() && !state.taken {
                state.future.cancel();
            }
            state.waker.clone()
        };
        waker.wake();
    }

    /// False once the outcome was taken: nothing more will happen to this ticket.
    fn can_finish(&self) -> bool {
        !lock(&self.0).taken
    }

    fn take(&self) -> FfiResult<CallResult> {
        let mut state = lock(&self.0);
        match state.outcome.take() {
            Some(outcome) => {
                state.taken = true;
                Ok(outcome)
            }
            None if state.taken => Err(Failure::invalid("the ticket's outcome was already taken")),
            None => Err(Failure::new(
                ErrorCode::TimedOut,
                "the call has not finished",
            )),
        }
    }
}

/// Waits until one of `tickets` has its outcome, at most `timeout` (`None`: no bound).
/// Returns its position, or `TIMED_OUT`.
fn wait_for(tickets: &[Arc<TicketObject>], timeout: Option<Duration>) -> FfiResult<usize> {
    if !tickets.iter().any(|t| t.can_finish()) {
        return Err(Failure::invalid("every ticket's outcome was already taken"));
    }
    let (n, _) = notifier();
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let seen = *lock(&n.generation);
        if let Some(i) = tickets.iter().position(|t| t.poll_done()) {
            return Ok(i);
        }
        let left = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => {
                    return Err(Failure::new(
                        ErrorCode::TimedOut,
                        "no call finished within the timeout",
                    ))
                }
            },
            None => None,
        };
        let guard = lock(&n.generation);
        if *guard == seen {
            // Bounded sleeps: a lost notification would cost at most one period.
            let period = left
                .unwrap_or(Duration::from_millis(100))
                .min(Duration::from_millis(100));
            drop(
                n.changed
                    .wait_timeout(guard, period)
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
    }
}

/// Starts a call like `knit_call` and returns at once with a ticket in `*ticket` (the
/// request is sent before this returns; under `KNIT_BACKPRESSURE_WAIT` a full ring makes this
/// wait for room). A call that fails before being sent still gives a ticket, whose outcome is
/// the failure.
///
/// Ownership: `function` and `payload` are only read during this call. The caller owns the
/// ticket and frees it with `knit_ticket_free` (which cancels the call if it is still running).
/// Thread safety: safe from any thread.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); `ticket` points to a writable `knit_ticket *`.
#[no_mangle]
pub unsafe extern "C" fn knit_call_async(
    pool: *const KnitPool,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    ticket: *mut *mut KnitTicket,
) -> KnitStatus {
    guard("knit_call_async", || {
        let ticket = out(ticket, "ticket")?;
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let future = p.pool.call_async_with_options(
            name,
            Payload::new(payload, content_type),
            options(content_type, deadline_ns),
        );
        let h = handle::register(TicketObject::new(future))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(ticket, h) };
        Ok(())
    })
}

/// Like `knit_call_async`, but the request is written in place (loan, no copy):
/// `fill(user_data, buffer, len)` writes the `len` payload bytes straight into the request
/// ring on the calling thread, then the call goes out and this returns its ticket. `len`
/// must fit one ring record (at most about half the request ring size). A call that fails
/// before `fill` runs (no such function, `len` too large, no room under
/// `KNIT_BACKPRESSURE_ERROR`, ...) still gives a ticket, whose outcome is the failure; `fill`
/// is then not called.
///
/// Ownership: `function` is only read during this call; `user_data` stays the caller's. The
/// caller owns the ticket (`knit_ticket_free`).
/// Thread safety: safe from any thread; `fill` runs on the calling thread, before this
/// returns (under `KNIT_BACKPRESSURE_WAIT`, after waiting for room).
///
/// # Safety
/// `function` is a NUL-terminated string; `fill` meets the contract of `knit_fill_fn`;
/// `ticket` points to a writable `knit_ticket *`.
#[no_mangle]
pub unsafe extern "C" fn knit_call_async_loan(
    pool: *const KnitPool,
    function: *const c_char,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    fill: KnitFillFn,
    user_data: *mut c_void,
    ticket: *mut *mut KnitTicket,
) -> KnitStatus {
    guard("knit_call_async_loan", || {
        let ticket = out(ticket, "ticket")?;
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function`.
        let name = unsafe { string(function, "function") }?;
        // SAFETY: the caller's contract for `fill` and `user_data`.
        let fill = unsafe { filler(fill, user_data) }?;
        let future = p
            .pool
            .call_loan_async(name, len, options(content_type, deadline_ns), fill);
        let h = handle::register(TicketObject::new(future))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(ticket, h) };
        Ok(())
    })
}

/// Stores in `*done` whether the ticket's call has finished (its outcome is ready for
/// `knit_ticket_wait`, which then returns at once). Never blocks.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `done` points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn knit_ticket_poll(
    ticket: *const KnitTicket,
    done: *mut bool,
) -> KnitStatus {
    guard("knit_ticket_poll", || {
        let done = out(done, "done")?;
        let t = handle::get::<TicketObject>(ticket)?;
        let ready = t.poll_done();
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(done, ready) };
        Ok(())
    })
}

/// Waits at most `timeout_ns` nanoseconds (0: do not wait; `KNIT_FOREVER`: no bound) for the
/// ticket's call to finish, then returns its outcome exactly like `knit_call` (the status, and
/// on success the result in `*response` when `response` is not NULL). Returns
/// `KNIT_TIMED_OUT` when the call has not finished in time: the ticket stays valid and can be
/// waited for again. The outcome is given once; waiting again afterwards is
/// `KNIT_INVALID_ARGUMENT`.
///
/// Ownership: the caller owns the response (`knit_response_free`); the ticket stays the
/// caller's.
/// Thread safety: safe from any thread; when several threads wait for one ticket, one gets
/// the outcome.
///
/// # Safety
/// `response` is NULL or points to a writable `knit_response *`.
#[no_mangle]
pub unsafe extern "C" fn knit_ticket_wait(
    ticket: *const KnitTicket,
    timeout_ns: u64,
    response: *mut *mut KnitResponse,
) -> KnitStatus {
    // SAFETY: the caller's contract for `response`.
    unsafe { response::clear(response) };
    guard("knit_ticket_wait", || {
        let t = handle::get::<TicketObject>(ticket)?;
        wait_for(std::slice::from_ref(&t), crate::args::timeout(timeout_ns))?;
        let result = t.take()??;
        // SAFETY: the caller's contract for `response`.
        unsafe { response::publish(result, response) }
    })
}

/// Waits at most `timeout_ns` nanoseconds (0: do not wait; `KNIT_FOREVER`: no bound) until one
/// of the `count` tickets has finished, and stores its position in `*index`; then
/// `knit_ticket_wait` on it returns its outcome at once. Returns `KNIT_TIMED_OUT` when none
/// finished in time. Tickets whose outcome was already taken are skipped;
/// `KNIT_INVALID_ARGUMENT` when that is all of them, or for a NULL or dead ticket.
///
/// Ownership: the array and tickets stay the caller's.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `tickets` points to `count` readable ticket handles; `index` points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn knit_wait_any(
    tickets: *const *const KnitTicket,
    count: usize,
    timeout_ns: u64,
    index: *mut usize,
) -> KnitStatus {
    guard("knit_wait_any", || {
        let index = out(index, "index")?;
        if count == 0 || count > MAX_WAIT_ANY {
            return Err(Failure::invalid(format!(
                "count is {count}: wait for 1 to {MAX_WAIT_ANY} tickets"
            )));
        }
        if tickets.is_null() {
            return Err(Failure::invalid("tickets is NULL"));
        }
        // SAFETY: the caller's contract: `count` readable handles (count checked above).
        let raw = unsafe { std::slice::from_raw_parts(tickets, count) };
        let objects = raw
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                handle::get::<TicketObject>(t)
                    .map_err(|e| Failure::invalid(format!("tickets[{i}]: {}", e.message)))
            })
            .collect::<FfiResult<Vec<_>>>()?;
        let found = wait_for(&objects, crate::args::timeout(timeout_ns))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(index, found) };
        Ok(())
    })
}

/// Cancels the ticket's call: the worker is told (a handler can see it with
/// `knit_request_is_cancelled`), a late result is discarded, and the outcome becomes
/// `KNIT_CANCELLED`, unless the call had already finished. Returns `KNIT_OK` either way.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_ticket_cancel(ticket: *const KnitTicket) -> KnitStatus {
    guard("knit_ticket_cancel", || {
        handle::get::<TicketObject>(ticket)?.cancel();
        Ok(())
    })
}

/// Frees a ticket. A call still running is cancelled; an outcome not taken is discarded.
///
/// Ownership: the handle is invalid afterwards.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_ticket_free(ticket: *mut KnitTicket) -> KnitStatus {
    guard("knit_ticket_free", || {
        // Cancelled explicitly rather than by dropping the future: a completion callback's
        // thread may still hold the ticket, and its callback must still run (once).
        handle::remove::<TicketObject>(ticket).map(|t| t.cancel())
    })
}
