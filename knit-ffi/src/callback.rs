//! Completion callbacks: `knit_call_callback` hands the call's future to the pool's dispatcher
//! thread, which polls it when woken and calls the C function once with the outcome.
//!
//! The dispatcher is a thread of its own (not the runtime's reactor), so a callback may block
//! or even make blocking calls on the same pool without stalling the delivery of responses.

use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, c_void, CString};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{JoinHandle, ThreadId};

use knit_core::ErrorCode;
use knit_rt::{CallFuture, CallResult, Payload};

use crate::handle;
use crate::pool::{call_args, options, KnitPool, PoolObject};
use crate::status::{guard, Failure, KnitStatus, KNIT_OK};

/// The outcome of a call, given to a completion callback. Valid only during the callback.
#[repr(C)]
pub struct KnitOutcome {
    /// `KNIT_OK`, or the failure status (as `knit_call` would return it).
    pub status: KnitStatus,
    /// The result's content type (0 on failure).
    pub content_type: u32,
    /// The result bytes (NULL on failure or when empty).
    pub data: *const u8,
    /// Bytes at `data`.
    pub len: usize,
    /// The failure's message, NUL-terminated UTF-8; "" on success. Never NULL.
    pub message: *const c_char,
}

/// Called once with the outcome of a call started by `knit_call_callback`, on the pool's
/// callback thread (one callback at a time, in completion order). It may call Knit functions,
/// including blocking calls on the same pool; it must return normally (no `longjmp`, no C++
/// exception). Copy what it needs from `outcome`: the pointers die when it returns.
pub type KnitCompletionFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, outcome: *const KnitOutcome)>;

/// One call waiting for its outcome.
struct Task {
    future: CallFuture,
    callback: unsafe extern "C" fn(*mut c_void, *const KnitOutcome),
    user_data: *mut c_void,
}

// SAFETY: the header requires the callback and its user data to be usable from the callback
// thread; Rust never dereferences `user_data`. `CallFuture` is `Send`.
unsafe impl Send for Task {}

impl Task {
    /// Calls the C function once with `outcome`.
    fn complete(self, outcome: &CallResult) {
        let (status, content_type, data, message) = match outcome {
            Ok(r) => (KNIT_OK, r.content_type(), r.bytes(), CString::default()),
            Err(e) => {
                let failure = Failure::from(e.clone());
                let text =
                    CString::new(failure.message.replace('\0', "\u{fffd}")).unwrap_or_default();
                (failure.code, 0, &[][..], text)
            }
        };
        let view = KnitOutcome {
            status,
            content_type,
            data: if data.is_empty() {
                std::ptr::null()
            } else {
                data.as_ptr()
            },
            len: data.len(),
            message: message.as_ptr(),
        };
        // SAFETY: the registered callback with its user data (header contract); `view` and
        // what it points to live until the callback returns.
        unsafe { (self.callback)(self.user_data, &view) };
    }
}

#[derive(Default)]
struct Queue {
    incoming: Vec<(u64, Task)>,
    ready: VecDeque<u64>,
    next_id: u64,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

fn lock(m: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Wakes the dispatcher for one task.
struct TaskWaker {
    id: u64,
    shared: Arc<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        lock(&self.shared.queue).ready.push_back(self.id);
        self.shared.changed.notify_one();
    }
}

/// The callback thread of one pool.
pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Dispatcher {
    fn start() -> Result<Dispatcher, Failure> {
        let shared = Arc::new(Shared::default());
        let mine = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("knit-callbacks".to_owned())
            .spawn(move || run(&mine))
            .map_err(|e| {
                Failure::new(
                    ErrorCode::OsError,
                    format!("spawning the callback thread: {e}"),
                )
            })?;
        let thread_id = thread.thread().id();
        Ok(Dispatcher {
            shared,
            thread: Some(thread),
            thread_id,
        })
    }
}

/// Hands `task` to the dispatcher thread of `shared`.
fn submit(shared: &Shared, task: Task) {
    let mut q = lock(&shared.queue);
    let id = q.next_id;
    q.next_id += 1;
    q.incoming.push((id, task));
    drop(q);
    shared.changed.notify_one();
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.changed.notify_one();
        // Freed from inside one of its own callbacks: it finishes by itself once that returns.
        if std::thread::current().id() != self.thread_id {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// The dispatcher loop: polls the tasks it is woken for, calls back the finished ones. On
/// stop, every task left is polled a last time and, if still unfinished (the pool shut down
/// first, so this does not happen in practice), cancelled and called back with `SHUTDOWN`:
/// every callback runs exactly once.
fn run(shared: &Arc<Shared>) {
    let mut tasks: HashMap<u64, Task> = HashMap::new();
    loop {
        let (incoming, ready, stop) = {
            let mut q = lock(&shared.queue);
            while q.incoming.is_empty() && q.ready.is_empty() && !q.stop {
                q = shared
                    .changed
                    .wait(q)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            (
                std::mem::take(&mut q.incoming),
                std::mem::take(&mut q.ready),
                q.stop,
            )
        };
        let mut due: Vec<u64> = ready.into_iter().collect();
        for (id, task) in incoming {
            tasks.insert(id, task);
            due.push(id);
        }
        if stop {
            due = tasks.keys().copied().collect();
        }
        for id in due {
            let outcome = match tasks.get_mut(&id) {
                Some(task) => poll_task(shared, id, task),
                None => continue,
            };
            if let Some(outcome) = outcome {
                if let Some(task) = tasks.remove(&id) {
                    task.complete(&outcome);
                }
            }
        }
        if stop {
            for (_, task) in tasks.drain() {
                task.future.cancel();
                let outcome = Err(knit_rt::CallError::new(
                    ErrorCode::Shutdown,
                    "the pool was freed",
                ));
                task.complete(&outcome);
            }
            return;
        }
    }
}

fn poll_task(shared: &Arc<Shared>, id: u64, task: &mut Task) -> Option<CallResult> {
    let waker = Waker::from(Arc::new(TaskWaker {
        id,
        shared: Arc::clone(shared),
    }));
    let mut cx = Context::from_waker(&waker);
    match Pin::new(&mut task.future).poll(&mut cx) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// Starts a call like `knit_call` and returns at once; `callback(user_data, outcome)` is
/// called exactly once with its outcome, on the pool's callback thread (see
/// `knit_completion_fn`), including when the call fails before being sent and when the pool
/// shuts down first (`KNIT_SHUTDOWN`). When this function itself fails (a bad argument), the
/// callback is never called.
///
/// Ownership: `function` and `payload` are only read during this call; `user_data` stays the
/// caller's (free it in the callback if it is owned).
/// Thread safety: safe from any thread.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); `callback` and `user_data` meet the contract of `knit_completion_fn`.
#[no_mangle]
pub unsafe extern "C" fn knit_call_callback(
    pool: *const KnitPool,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    callback: KnitCompletionFn,
    user_data: *mut c_void,
) -> KnitStatus {
    guard("knit_call_callback", || {
        let p = handle::get::<PoolObject>(pool)?;
        let callback = callback.ok_or_else(|| Failure::invalid("callback is NULL"))?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let shared = {
            let mut slot = p.dispatcher.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(Dispatcher::start()?);
            }
            slot.as_ref().map(|d| Arc::clone(&d.shared))
        };
        let shared =
            shared.ok_or_else(|| Failure::new(ErrorCode::OsError, "no callback thread"))?;
        // Not under the dispatcher lock: under backpressure this waits for ring space.
        let future = p.pool.call_async_with_options(
            name,
            Payload::new(payload, content_type),
            options(content_type, deadline_ns),
        );
        submit(
            &shared,
            Task {
                future,
                callback,
                user_data,
            },
        );
        Ok(())
    })
}
