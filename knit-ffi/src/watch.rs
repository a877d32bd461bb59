//! Completion callbacks on tickets: `knit_ticket_on_complete` asks to be told, on a Knit thread,
//! when a ticket's call has finished, so that an event loop (Node.js, asyncio, a GUI) can wake
//! up and take the outcome with `knit_ticket_wait(ticket, 0, ...)` without any thread of its
//! own blocking. Unlike `knit_call_callback`, the caller keeps the ticket: it can cancel the
//! call, and the response handle it takes owns the bytes (no copy in the callback).
//!
//! One process-wide thread (`knit-tickets`) polls the watched tickets it is woken for. A
//! watched ticket's future is polled with a waker that wakes both this thread and the
//! ticket waiters' notifier, so `knit_ticket_wait` on another thread and the callback never
//! steal each other's wake-ups.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::task::{Wake, Waker};

use knit_core::ErrorCode;

use crate::handle;
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::ticket::{lock, notifier, KnitTicket, TicketObject};

/// Called once when a ticket's call has finished (see `knit_ticket_on_complete`).
pub type KnitTicketReadyFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// One registered callback.
struct Watch {
    ticket: Arc<TicketObject>,
    ready: unsafe extern "C" fn(*mut c_void),
    user_data: *mut c_void,
}

// SAFETY: the header requires the callback and its user data to be usable from the Knit
// thread that calls it; Rust never dereferences `user_data`.
unsafe impl Send for Watch {}

#[derive(Default)]
struct Queue {
    incoming: Vec<(u64, Watch)>,
    woken: Vec<u64>,
    next_id: u64,
}

#[derive(Default)]
struct Watcher {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Wakes the watcher thread for one watch, and the ticket waiters (`knit_ticket_wait`).
struct WatchWaker {
    id: u64,
    watcher: Arc<Watcher>,
}

impl Wake for WatchWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.watcher.queue).woken.push(self.id);
        self.watcher.changed.notify_one();
        notifier().1.wake_by_ref();
    }
}

/// The process-wide watcher, started on first use.
fn watcher() -> FfiResult<&'static Arc<Watcher>> {
    static WATCHER: OnceLock<Result<Arc<Watcher>, String>> = OnceLock::new();
    WATCHER
        .get_or_init(|| {
            let w = Arc::new(Watcher::default());
            let mine = Arc::clone(&w);
            std::thread::Builder::new()
                .name("knit-tickets".to_owned())
                .spawn(move || run(&mine))
                .map(|_| w)
                .map_err(|e| format!("spawning the ticket callback thread: {e}"))
        })
        .as_ref()
        .map_err(|e| Failure::new(ErrorCode::OsError, e.clone()))
}

/// The watcher loop: polls the watches it is woken for (and new ones), calls back the
/// finished ones. It lives as long as the process, like the tickets' notifier.
fn run(shared: &Watcher) {
    let mut watches: HashMap<u64, Watch> = HashMap::new();
    loop {
        let (incoming, woken) = {
            let mut q = lock(&shared.queue);
            while q.incoming.is_empty() && q.woken.is_empty() {
                q = shared
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (
                std::mem::take(&mut q.incoming),
                std::mem::take(&mut q.woken),
            )
        };
        let mut due = woken;
        for (id, watch) in incoming {
            watches.insert(id, watch);
            due.push(id);
        }
        for id in due {
            if watches.get(&id).is_some_and(|w| w.ticket.finished()) {
                if let Some(w) = watches.remove(&id) {
                    // SAFETY: the registered callback with its user data (header contract),
                    // called once: the watch is removed first.
                    unsafe { (w.ready)(w.user_data) };
                }
            }
        }
    }
}

/// Asks for `ready(user_data)` to be called once the ticket's call has finished: then
/// `knit_ticket_wait(ticket, 0, ...)` returns its outcome at once. If it has already
/// finished, `ready` is called right away (on the Knit thread, not inside this function).
/// `ready` is called exactly once, also when the ticket is freed before its call finished
/// (freeing cancels the call): then the ticket handle is gone and must not be used.
///
/// `ready` runs on a Knit thread shared by every ticket of the process: it must be quick and
/// must not block (hand the event to your event loop: a Node.js thread-safe function, a
/// pipe, `loop.call_soon_threadsafe`); it may call `knit_ticket_*` functions. The outcome is
/// taken by whoever calls `knit_ticket_wait` first, as usual.
///
/// Returns `KNIT_INVALID_ARGUMENT` for a NULL `ready`, a bad ticket, or a ticket that already
/// has a completion callback (one per ticket); `KNIT_OS_ERROR` if the Knit thread cannot be
/// started.
///
/// Ownership: `user_data` stays the caller's (free it in `ready` if it is owned); the ticket
/// stays the caller's.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `ready` and `user_data` meet the contract of `knit_ticket_ready_fn` above.
#[no_mangle]
pub unsafe extern "C" fn knit_ticket_on_complete(
    ticket: *const KnitTicket,
    ready: KnitTicketReadyFn,
    user_data: *mut c_void,
) -> KnitStatus {
    guard("knit_ticket_on_complete", || {
        let ready = ready.ok_or_else(|| Failure::invalid("ready is NULL"))?;
        let t = handle::get::<TicketObject>(ticket)?;
        let watcher = watcher()?;
        // Lock order: a ticket's lock, then the queue's (a future may wake while it is
        // polled under its ticket's lock); never the queue's while taking a ticket's.
        let id = {
            let mut q = lock(&watcher.queue);
            q.next_id += 1;
            q.next_id
        };
        {
            let mut state = lock(&t.0);
            if state.watched {
                return Err(Failure::invalid(
                    "the ticket already has a completion callback",
                ));
            }
            state.watched = true;
            // From now on the future wakes the watcher too. A completion before the watch
            // is queued below is not lost: the watcher polls every new watch once.
            state.waker = Waker::from(Arc::new(WatchWaker {
                id,
                watcher: Arc::clone(watcher),
            }));
        }
        lock(&watcher.queue).incoming.push((
            id,
            Watch {
                ticket: t,
                ready,
                user_data,
            },
        ));
        watcher.changed.notify_one();
        Ok(())
    })
}
