//! A worker process written in C: attach to the region a host started it for (MAP-5),
//! register handlers, serve until the host says SHUTDOWN (MBX-3).

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, PoisonError};

use knit_rt::{Handlers, SpinPolicy, Worker};

use crate::args::{out, store, string};
use crate::handle::{self, Object};
use crate::handlers::{
    c_handler, insert, HandlerSet, Kind, KnitFreeFn, KnitHandlerFn, KnitHandlers,
};
use crate::status::{guard, Failure, FfiResult, KnitStatus};

/// Spin policy: a short spin (a few microseconds), then park. The default.
pub const KNIT_SPIN_BALANCED: u32 = 0;
/// Spin policy: spin long (about 100 µs) before parking; lowest latency, a busy core.
pub const KNIT_SPIN_LOWEST_LATENCY: u32 = 1;
/// Spin policy: park at once; no busy waiting.
pub const KNIT_SPIN_NONE: u32 = 2;
/// Spin policy: exactly `iterations` re-checks before parking.
pub const KNIT_SPIN_ITERATIONS: u32 = 3;

/// The spin policy named by a `KNIT_SPIN_*` value.
pub(crate) fn spin_policy(policy: u32, iterations: u32) -> FfiResult<SpinPolicy> {
    match policy {
        KNIT_SPIN_BALANCED => Ok(SpinPolicy::Balanced),
        KNIT_SPIN_LOWEST_LATENCY => Ok(SpinPolicy::LowestLatency),
        KNIT_SPIN_NONE => Ok(SpinPolicy::NoSpin),
        KNIT_SPIN_ITERATIONS => Ok(SpinPolicy::Iterations(iterations)),
        other => Err(Failure::invalid(format!(
            "spin policy {other} is not a KNIT_SPIN_* value"
        ))),
    }
}

/// A worker: the region slot it serves and its handlers.
pub struct KnitWorker {
    _private: [u8; 0],
}

/// The object behind a `knit_worker` handle. `None` only while a setter rebuilds it.
struct WorkerObject(Mutex<Option<Worker>>);

impl Object for WorkerObject {
    type Opaque = KnitWorker;
    const KIND: &'static str = "knit_worker";
}

impl WorkerObject {
    /// Applies `f` to the worker (the runtime's builder methods take it by value).
    fn update(&self, f: impl FnOnce(Worker) -> FfiResult<Worker>) -> FfiResult {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let worker = slot
            .take()
            .ok_or_else(|| Failure::invalid("the worker was lost by an earlier failure"))?;
        match f(worker.clone()) {
            Ok(updated) => {
                *slot = Some(updated);
                Ok(())
            }
            Err(e) => {
                *slot = Some(worker);
                Err(e)
            }
        }
    }

    fn snapshot(&self) -> FfiResult<Worker> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Failure::invalid("the worker was lost by an earlier failure"))
    }
}

fn publish(worker: Worker, out_ptr: *mut *mut KnitWorker) -> FfiResult {
    let h = handle::register(WorkerObject(Mutex::new(Some(worker))))?;
    // SAFETY: checked non-NULL by the caller; writable by the header's contract.
    unsafe { store(out_ptr, h) };
    Ok(())
}

/// Creates, in `*worker`, the worker a host started this process to be (MAP-5): the region
/// and slot come from the arguments `--knit-region NAME --knit-slot N` when present, else from
/// the environment variables `KNIT_REGION` and `KNIT_SLOT`. `KNIT_INVALID_ARGUMENT` when
/// neither names both. Nothing is attached until `knit_worker_run`.
///
/// Ownership: the caller owns the new handle and frees it with `knit_worker_free`.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `worker` points to a writable `knit_worker *`.
#[no_mangle]
pub unsafe extern "C" fn knit_worker_from_env(worker: *mut *mut KnitWorker) -> KnitStatus {
    guard("knit_worker_from_env", || {
        let worker = out(worker, "worker")?;
        publish(Worker::from_env()?, worker)
    })
}

/// Creates, in `*worker`, a worker for participant `slot` (1 or more) of the region named
/// `region` (`knit-` and 32 hex digits). Nothing is attached until `knit_worker_run`.
///
/// Ownership: `region` is copied; the caller owns the new handle (`knit_worker_free`).
/// Thread safety: safe from any thread.
///
/// # Safety
/// `region` is a NUL-terminated string; `worker` points to a writable `knit_worker *`.
#[no_mangle]
pub unsafe extern "C" fn knit_worker_new(
    region: *const c_char,
    slot: u32,
    worker: *mut *mut KnitWorker,
) -> KnitStatus {
    guard("knit_worker_new", || {
        let worker = out(worker, "worker")?;
        // SAFETY: the caller's contract for `region`.
        let region = unsafe { string(region, "region") }?;
        if slot == 0 {
            return Err(Failure::invalid(
                "worker slot must be at least 1 (0 is the host)",
            ));
        }
        publish(Worker::new(region, slot), worker)
    })
}

/// Adds (or replaces) the handler of function `name` (UTF-8, 1 to 255 bytes).
///
/// Ownership: `name` is copied. On success the worker owns `user_data` and calls
/// `free_user_data(user_data)` (when not NULL) once the handler can no longer run (the worker
/// was freed and is not running, or the handler was replaced). On failure nothing is taken.
/// Thread safety: safe from any thread; a `knit_worker_run` already in progress keeps the
/// handlers it started with.
///
/// # Safety
/// `name` is a NUL-terminated string; `handler` and `user_data` meet the contract of
/// `knit_handler_fn`.
#[no_mangle]
pub unsafe extern "C" fn knit_worker_handle(
    worker: *mut KnitWorker,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_worker_handle", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                worker,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::Plain,
            )
        }
    })
}

/// Like `knit_worker_handle`, for a handler that may open channels to the caller while it
/// runs (`knit_request_open_channel`). Its request payload is a private copy, not the ring.
///
/// Ownership and thread safety: as `knit_worker_handle`.
///
/// # Safety
/// As `knit_worker_handle`.
#[no_mangle]
pub unsafe extern "C" fn knit_worker_handle_streaming(
    worker: *mut KnitWorker,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_worker_handle_streaming", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                worker,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::Streaming,
            )
        }
    })
}

/// Like `knit_worker_handle`, for a handler that may write its result straight into the
/// response ring with `knit_reply_write_in_place` (zero copy).
///
/// Ownership and thread safety: as `knit_worker_handle`.
///
/// # Safety
/// As `knit_worker_handle`.
#[no_mangle]
pub unsafe extern "C" fn knit_worker_handle_in_place(
    worker: *mut KnitWorker,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_worker_handle_in_place", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                worker,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::InPlace,
            )
        }
    })
}

/// Adds a C handler to a worker.
///
/// # Safety
/// The contract of `knit_worker_handle`.
unsafe fn add(
    worker: *mut KnitWorker,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
    kind: Kind,
) -> FfiResult {
    let w = handle::get::<WorkerObject>(worker)?;
    // SAFETY: the caller's contract for the string, function and user data.
    let (name, handler) = unsafe { c_handler(name, handler, user_data, free_user_data) }?;
    let mut one = Handlers::new();
    insert(&mut one, &name, handler, kind);
    w.update(|worker| Ok(worker.handlers(&one)))
}

/// Adds every handler of `handlers` to the worker (replacing those of the same names).
///
/// Ownership: the worker shares the handlers; `handlers` stays the caller's.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_worker_add_handlers(
    worker: *mut KnitWorker,
    handlers: *const KnitHandlers,
) -> KnitStatus {
    guard("knit_worker_add_handlers", || {
        let w = handle::get::<WorkerObject>(worker)?;
        let set = handle::get::<HandlerSet>(handlers)?.snapshot();
        w.update(|worker| Ok(worker.handlers(&set)))
    })
}

/// Sets how long the worker spins before parking when idle: `policy` is a `KNIT_SPIN_*`
/// value; `iterations` is used only by `KNIT_SPIN_ITERATIONS`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_worker_set_spin(
    worker: *mut KnitWorker,
    policy: u32,
    iterations: u32,
) -> KnitStatus {
    guard("knit_worker_set_spin", || {
        let w = handle::get::<WorkerObject>(worker)?;
        let spin = spin_policy(policy, iterations)?;
        w.update(|worker| Ok(worker.spin(spin)))
    })
}

/// Attaches to the region, says HELLO, and serves requests on the calling thread until the
/// host sends SHUTDOWN: then returns `KNIT_OK`. Returns `KNIT_PEER_DIED` when the host died,
/// `KNIT_POISONED` when the region was poisoned, the attach errors (`KNIT_BAD_MAGIC`,
/// `KNIT_UNSUPPORTED_VERSION`, `KNIT_NOT_READY`, ..., `KNIT_SLOT_TAKEN`) when it could not
/// start. Handlers run on this thread, one at a time.
///
/// Ownership: the worker handle stays the caller's (free it afterwards).
/// Thread safety: blocks the calling thread; run a worker handle at most once.
#[no_mangle]
pub extern "C" fn knit_worker_run(worker: *mut KnitWorker) -> KnitStatus {
    guard("knit_worker_run", || {
        let w = handle::get::<WorkerObject>(worker)?.snapshot()?;
        w.run().map_err(Failure::from)
    })
}

/// Frees a worker handle.
///
/// Ownership: the handle is invalid afterwards; a `knit_worker_run` in progress on another
/// thread goes on until it returns.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_worker_free(worker: *mut KnitWorker) -> KnitStatus {
    guard("knit_worker_free", || {
        handle::remove::<WorkerObject>(worker).map(drop)
    })
}
