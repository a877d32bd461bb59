//! `knit_pool`: a host with its workers, and blocking calls on it (including the loan form that
//! writes the request straight into the ring). Async calls are in `ticket.rs` and
//! `callback.rs`.

use std::ffi::{c_char, c_void};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use knit_rt::{CallOptions, Payload, Pool};

use crate::args::{bytes, out, store, string};
use crate::callback::Dispatcher;
use crate::config::ConfigObject;
use crate::handle::{self, Object};
use crate::region::{participant_info, region_info, KnitParticipantInfo, KnitRegionInfo};
use crate::response::{self, KnitResponse};
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::ticket::{KnitTicket, TicketObject};
use crate::KnitConfig;

/// A host and its workers (opaque).
pub struct KnitPool {
    _private: [u8; 0],
}

/// The object behind a `knit_pool` handle.
pub(crate) struct PoolObject {
    pub(crate) pool: Pool,
    /// Runs completion callbacks; started on the first `knit_call_callback`.
    pub(crate) dispatcher: Mutex<Option<Dispatcher>>,
}

impl Object for PoolObject {
    type Opaque = KnitPool;
    const KIND: &'static str = "knit_pool";
}

impl Drop for PoolObject {
    fn drop(&mut self) {
        // Shutting down resolves every outstanding call (SHUTDOWN), so the dispatcher can
        // deliver each pending callback exactly once before it stops.
        self.pool.shutdown();
        let dispatcher = self
            .dispatcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(dispatcher);
    }
}

/// The state of one worker of a pool.
///
/// Before the call set `struct_size` to `sizeof(knit_worker_info)` (see `knit_region_info`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KnitWorkerInfo {
    /// In: the caller's `sizeof(knit_worker_info)`. Out: the bytes filled.
    pub struct_size: u32,
    /// Participant index of the worker (1 to the number of workers).
    pub index: u32,
    /// Process id of a process worker; 0 for a thread worker.
    pub pid: u32,
    /// Ready for calls (it said HELLO).
    pub ready: bool,
    /// Declared dead and not (yet) restarted.
    pub dead: bool,
    /// Calls outstanding on it.
    pub outstanding: u64,
    /// Times it was started (1 + restarts).
    pub starts: u64,
}

/// Call options from the C arguments: `deadline_ns` 0 keeps the pool's default.
pub(crate) fn options(content_type: u32, deadline_ns: u64) -> CallOptions {
    CallOptions {
        deadline: (deadline_ns != 0).then(|| Duration::from_nanos(deadline_ns)),
        content_type: Some(content_type),
    }
}

/// The function name and payload of a call, checked.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); both stay valid for `'a`.
pub(crate) unsafe fn call_args<'a>(
    function: *const c_char,
    payload: *const u8,
    len: usize,
) -> FfiResult<(&'a str, &'a [u8])> {
    // SAFETY: the caller's contract.
    let name = unsafe { string(function, "function") }?;
    // SAFETY: the caller's contract.
    let payload = unsafe { bytes(payload, len, "payload") }?;
    Ok((name, payload))
}

/// Creates the pool `config` describes in `*pool`: creates its region, starts every worker
/// (threads or processes) and waits until each is ready, at most the start timeout. A worker
/// that fails to start makes this fail (`KNIT_PEER_DIED` or `KNIT_TIMED_OUT`, the message
/// naming its command) and leaves nothing behind.
///
/// Ownership: the caller owns the new handle; `knit_pool_free` shuts the pool down. `config`
/// stays the caller's and may be freed at once.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `pool` points to a writable `knit_pool *`.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_start(
    config: *const KnitConfig,
    pool: *mut *mut KnitPool,
) -> KnitStatus {
    guard("knit_pool_start", || {
        let pool = out(pool, "pool")?;
        let builder = handle::get::<ConfigObject>(config)?.settings().builder()?;
        let started = builder.build()?;
        let h = handle::register(PoolObject {
            pool: started,
            dispatcher: Mutex::new(None),
        })?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(pool, h) };
        Ok(())
    })
}

/// Shuts the pool down: asks every worker to finish what it read and leave, waits for them at
/// most the shutdown timeout (then kills stragglers), fails calls still outstanding with
/// `KNIT_SHUTDOWN`, and removes the region's name. Later calls fail with `KNIT_SHUTDOWN`.
/// Idempotent; `knit_pool_free` does it too.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_pool_shutdown(pool: *mut KnitPool) -> KnitStatus {
    guard("knit_pool_shutdown", || {
        handle::get::<PoolObject>(pool)?.pool.shutdown();
        Ok(())
    })
}

/// Shuts the pool down (see `knit_pool_shutdown`) and frees it. Pending completion
/// callbacks are each called once (with `KNIT_SHUTDOWN` when their call had not finished)
/// before this returns, unless it is called from inside a completion callback of this pool.
///
/// Ownership: the handle is invalid afterwards. Tickets of this pool stay valid (their calls
/// end with `KNIT_SHUTDOWN`) and are still freed with `knit_ticket_free`. A call in progress
/// on another thread finishes first: the pool is destroyed when the last user lets go.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_pool_free(pool: *mut KnitPool) -> KnitStatus {
    guard("knit_pool_free", || {
        let object = handle::remove::<PoolObject>(pool)?;
        // Shut down now even if another thread still holds the object for a call.
        object.pool.shutdown();
        drop(object);
        Ok(())
    })
}

/// Fills `*info` with the pool's region header (its name, geometry and poison state). Set
/// `info->struct_size` first.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `info` points to a writable `knit_region_info` of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_get_info(
    pool: *const KnitPool,
    info: *mut KnitRegionInfo,
) -> KnitStatus {
    guard("knit_pool_get_info", || {
        let info = out(info, "info")?;
        let p = handle::get::<PoolObject>(pool)?;
        let full = region_info(p.pool.region());
        // SAFETY: the caller's contract for `info`.
        unsafe { crate::region::fill_sized(info, &full, |i, n| i.struct_size = n) }
    })
}

/// Fills `*info` with the state of worker `index` (1 to the number of workers). Set
/// `info->struct_size` first.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `info` points to a writable `knit_worker_info` of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_get_worker(
    pool: *const KnitPool,
    index: u32,
    info: *mut KnitWorkerInfo,
) -> KnitStatus {
    guard("knit_pool_get_worker", || {
        let info = out(info, "info")?;
        let p = handle::get::<PoolObject>(pool)?;
        let workers = p.pool.workers();
        let w = workers.iter().find(|w| w.index == index).ok_or_else(|| {
            Failure::invalid(format!("worker {index} is not in 1..={}", workers.len()))
        })?;
        let full = KnitWorkerInfo {
            struct_size: 0,
            index: w.index,
            pid: w.pid.unwrap_or(0),
            ready: w.ready,
            dead: w.dead,
            outstanding: w.outstanding as u64,
            starts: w.starts,
        };
        // SAFETY: the caller's contract for `info`.
        unsafe { crate::region::fill_sized(info, &full, |i, n| i.struct_size = n) }
    })
}

/// Fills `*info` with participant entry `index` of the pool's region (0 the host, 1 or more a
/// worker), read once and validated. Set `info->struct_size` first.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `info` points to a writable `knit_participant_info` of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_get_participant(
    pool: *const KnitPool,
    index: u32,
    info: *mut KnitParticipantInfo,
) -> KnitStatus {
    guard("knit_pool_get_participant", || {
        let info = out(info, "info")?;
        let p = handle::get::<PoolObject>(pool)?;
        let full = participant_info(p.pool.region(), index)?;
        // SAFETY: the caller's contract for `info`.
        unsafe { crate::region::fill_sized(info, &full, |i, n| i.struct_size = n) }
    })
}

/// Calls `function` with `payload` (`len` bytes of content type `content_type`) on the least
/// busy worker that has it, and waits for the result. `deadline_ns` is the call's deadline in
/// nanoseconds from now; 0 uses the pool's default (none unless configured); `KNIT_FOREVER`
/// means none, whatever the default.
///
/// On success stores the result in `*response` (when `response` is not NULL). On failure
/// stores NULL there and returns the status: the worker's own status and message
/// (`KNIT_HANDLER_FAILED`, an application code, ...) or `KNIT_UNKNOWN_FUNCTION`,
/// `KNIT_DEADLINE_EXCEEDED`, `KNIT_PEER_DIED` (the worker died; within 100 ms),
/// `KNIT_PAYLOAD_TOO_LARGE` (nothing sent), `KNIT_WOULD_BLOCK` (full ring under
/// `KNIT_BACKPRESSURE_ERROR`), `KNIT_SHUTDOWN`, `KNIT_POISONED`. `knit_last_error_message()`
/// has the text.
///
/// Ownership: `function` and `payload` are only read during the call. The caller owns the
/// response and frees it with `knit_response_free`.
/// Thread safety: safe from any thread; calls from many threads run concurrently.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); `response` is NULL or points to a writable `knit_response *`.
#[no_mangle]
pub unsafe extern "C" fn knit_call(
    pool: *const KnitPool,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    response: *mut *mut KnitResponse,
) -> KnitStatus {
    // SAFETY: the caller's contract for `response`.
    unsafe { response::clear(response) };
    guard("knit_call", || {
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let result = p.pool.call_with_options(
            name,
            Payload::new(payload, content_type),
            options(content_type, deadline_ns),
        )?;
        // SAFETY: the caller's contract for `response`.
        unsafe { response::publish(result, response) }
    })
}

/// Writes a request of exactly `len` bytes; called once, with the request's place in the
/// shared ring. It must fill all `len` bytes (they hold stale data before) and return
/// normally; it must not call the pool.
pub type KnitFillFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buffer: *mut u8, len: usize)>;

/// The fill function of a loan as the closure the runtime calls with the loaned space;
/// `INVALID_ARGUMENT` when it is NULL.
///
/// # Safety
/// `fill` and `user_data` meet the contract of `knit_fill_fn`.
pub(crate) unsafe fn filler(
    fill: KnitFillFn,
    user_data: *mut c_void,
) -> FfiResult<impl FnOnce(&mut [u8])> {
    let fill = fill.ok_or_else(|| Failure::invalid("fill is NULL"))?;
    Ok(move |buf: &mut [u8]| {
        // SAFETY: `buf` is the loaned space of exactly `buf.len()` bytes, writable until this
        // closure returns; the fill function's contract is the caller's.
        unsafe { fill(user_data, buf.as_mut_ptr(), buf.len()) };
    })
}

/// Like `knit_call`, but the request is written in place (loan, no copy): `fill(user_data,
/// buffer, len)` writes the `len` payload bytes straight into the request ring, then the call
/// goes out. `len` must fit one ring record (at most about half the request ring size),
/// otherwise `KNIT_INVALID_ARGUMENT` and `fill` is not called. The deadline is the pool's
/// default.
///
/// Ownership: `user_data` stays the caller's. The caller owns the response (see `knit_call`).
/// Thread safety: safe from any thread; `fill` runs on the calling thread, before this returns.
///
/// # Safety
/// `function` is a NUL-terminated string; `fill` meets the contract of `knit_fill_fn`;
/// `response` is NULL or points to a writable `knit_response *`.
#[no_mangle]
pub unsafe extern "C" fn knit_call_loan(
    pool: *const KnitPool,
    function: *const c_char,
    len: usize,
    content_type: u32,
    fill: KnitFillFn,
    user_data: *mut c_void,
    response: *mut *mut KnitResponse,
) -> KnitStatus {
    // SAFETY: the caller's contract for `response`.
    unsafe { response::clear(response) };
    guard("knit_call_loan", || {
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function`.
        let name = unsafe { string(function, "function") }?;
        // SAFETY: the caller's contract for `fill` and `user_data`.
        let fill = unsafe { filler(fill, user_data) }?;
        let result = p.pool.call_loan(name, len, content_type, fill)?;
        // SAFETY: the caller's contract for `response`.
        unsafe { response::publish(result, response) }
    })
}

/// Reads a call's result in place; called once, on success only, with the result bytes.
/// They may be the shared response ring itself (zero copy): treat them as untrusted input,
/// copy what you keep, and return normally. It must not call the pool.
pub type KnitBorrowFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, data: *const u8, len: usize)>;

/// Like `knit_call`, but instead of a response handle, `read(user_data, data, len)` sees the
/// result where it lies: when this thread reads the response itself and it is one record, in
/// the response ring before it is released (no copy at all); otherwise a private copy. `read`
/// runs on the calling thread before this returns, only when the call succeeded. The deadline
/// is the pool's default.
///
/// Ownership: `function`, `payload` and `user_data` stay the caller's; `data` is valid only
/// during `read`.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); `read` meets the contract of `knit_borrow_fn`.
#[no_mangle]
pub unsafe extern "C" fn knit_call_borrow(
    pool: *const KnitPool,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    read: KnitBorrowFn,
    user_data: *mut c_void,
) -> KnitStatus {
    guard("knit_call_borrow", || {
        let p = handle::get::<PoolObject>(pool)?;
        let read = read.ok_or_else(|| Failure::invalid("read is NULL"))?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        p.pool
            .call_with(name, Payload::new(payload, content_type), |bytes| {
                let data = if bytes.is_empty() {
                    std::ptr::null()
                } else {
                    bytes.as_ptr()
                };
                // SAFETY: `bytes` is readable for its length until this closure returns; the
                // read function's contract is the caller's.
                unsafe { read(user_data, data, bytes.len()) };
            })?;
        Ok(())
    })
}

/// Waits at most `timeout_ns` nanoseconds (0: do not wait; `KNIT_FOREVER`: no bound) until
/// worker `worker` (1 to the number of workers, as in `knit_pool_get_worker`) is ready for
/// calls: it attached and said HELLO for its current epoch. For pools made with
/// `knit_config_set_external`, whose start does not wait; on other pools it returns at once
/// once the worker is ready. `knit_pool_worker_functions` then lists its functions.
///
/// Returns `KNIT_TIMED_OUT` when it is not ready in time (nothing changes: wait again),
/// `KNIT_PEER_DIED` when it was declared dead or released, `KNIT_SHUTDOWN`, `KNIT_POISONED`,
/// `KNIT_INVALID_ARGUMENT` for a worker out of range.
///
/// Thread safety: safe from any thread, concurrently with calls.
#[no_mangle]
pub extern "C" fn knit_pool_wait_worker(
    pool: *const KnitPool,
    worker: u32,
    timeout_ns: u64,
) -> KnitStatus {
    guard("knit_pool_wait_worker", || {
        let p = handle::get::<PoolObject>(pool)?;
        p.pool.wait_worker(worker, wait_bound(timeout_ns))?;
        Ok(())
    })
}

/// Lists the functions of ready worker `worker` (its HELLO, in id order): each name followed
/// by a NUL byte, in `buffer` of `capacity` bytes. Stores in `*length` the bytes the list
/// takes (terminators included) and writes the list only when it fits (`*length <=
/// capacity`): call it with `capacity` 0 (and `buffer` NULL) to learn the size. Fails like
/// `knit_pool_wait_worker` with a timeout of 0 when the worker is not ready
/// (`KNIT_TIMED_OUT`, `KNIT_PEER_DIED`, ...).
///
/// Ownership: `buffer` stays the caller's.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `buffer` points to `capacity` writable bytes (or `capacity` is 0); `length` points to a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_worker_functions(
    pool: *const KnitPool,
    worker: u32,
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
) -> KnitStatus {
    guard("knit_pool_worker_functions", || {
        let length = out(length, "length")?;
        let p = handle::get::<PoolObject>(pool)?;
        let names = p.pool.wait_worker(worker, Duration::ZERO)?;
        let mut list = Vec::new();
        for name in &names {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
        }
        if list.len() <= capacity && !list.is_empty() {
            let buffer = out(buffer, "buffer")?;
            // SAFETY: `buffer` holds `capacity` ≥ `list.len()` writable bytes (the caller's
            // contract), which cannot overlap the private `list`.
            unsafe {
                std::ptr::copy_nonoverlapping(list.as_ptr(), buffer.cast::<u8>(), list.len());
            }
        }
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(length, list.len()) };
        Ok(())
    })
}

/// Sends worker `worker` SHUTDOWN and waits at most `timeout_ns` nanoseconds (`KNIT_FOREVER`:
/// no bound) until its participant entry is DETACHED or DEAD, delivering its last results
/// meanwhile. From this call on no new call goes to it; calls still outstanding once it
/// detached fail with `KNIT_SHUTDOWN` (with `KNIT_PEER_DIED` when it died instead). An entry
/// no worker claimed yet is withdrawn at once (a late worker then gets `KNIT_SLOT_TAKEN`). A
/// released worker is not restarted; an external pool can reserve its entry again with
/// `knit_pool_reserve_worker`. Releasing a worker already gone returns `KNIT_OK`.
///
/// Returns `KNIT_TIMED_OUT` when the worker is still there after the timeout (the release
/// goes on; call again to wait again), `KNIT_INVALID_ARGUMENT` for a worker out of range.
/// `knit_pool_get_participant` tells the state the entry ended in.
///
/// Thread safety: safe from any thread, concurrently with calls (which then fail as above).
#[no_mangle]
pub extern "C" fn knit_pool_release_worker(
    pool: *const KnitPool,
    worker: u32,
    timeout_ns: u64,
) -> KnitStatus {
    guard("knit_pool_release_worker", || {
        let p = handle::get::<PoolObject>(pool)?;
        p.pool.release_worker(worker, wait_bound(timeout_ns))?;
        Ok(())
    })
}

/// Reserves worker `worker`'s entry again after its worker left, died or was released, so
/// that a new worker can attach: its mailbox is reset and the entry gets a new epoch, stored
/// in `*epoch` (when `epoch` is not NULL). An entry already reserved and waiting is left as it
/// is (its current epoch is stored). Only for pools made with `knit_config_set_external`
/// (`KNIT_INVALID_ARGUMENT` otherwise); no process is started.
///
/// Returns `KNIT_SLOT_TAKEN` while a worker holds the entry (release it first), and for an
/// entry whose worker died while attaching, before its process could be known (the protocol
/// forbids reserving it again).
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `epoch` is NULL or points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn knit_pool_reserve_worker(
    pool: *const KnitPool,
    worker: u32,
    epoch: *mut u32,
) -> KnitStatus {
    guard("knit_pool_reserve_worker", || {
        let p = handle::get::<PoolObject>(pool)?;
        let e = p.pool.reserve_worker(worker)?;
        if !epoch.is_null() {
            // SAFETY: not NULL; writable by the caller's contract.
            unsafe { store(epoch, e) };
        }
        Ok(())
    })
}

/// Like `knit_call`, but on worker `worker` (1 to the number of workers) instead of the least
/// busy one. A worker still starting is waited for (at most the start timeout and the call's
/// deadline). `KNIT_UNKNOWN_FUNCTION` when that worker lacks `function` (nothing sent),
/// `KNIT_PEER_DIED` when it is dead or released, `KNIT_INVALID_ARGUMENT` for a worker out of
/// range; otherwise as `knit_call`.
///
/// Ownership and thread safety: as `knit_call`.
///
/// # Safety
/// As `knit_call`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The C signature of `knit_call` plus the worker.
pub unsafe extern "C" fn knit_call_on(
    pool: *const KnitPool,
    worker: u32,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    response: *mut *mut KnitResponse,
) -> KnitStatus {
    // SAFETY: the caller's contract for `response`.
    unsafe { response::clear(response) };
    guard("knit_call_on", || {
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let result = p.pool.call_on(
            worker,
            name,
            Payload::new(payload, content_type),
            options(content_type, deadline_ns),
        )?;
        // SAFETY: the caller's contract for `response`.
        unsafe { response::publish(result, response) }
    })
}

/// Like `knit_call_async`, but on worker `worker` (see `knit_call_on`). A call that fails
/// before being sent (unknown function, dead worker, worker out of range) still gives a
/// ticket, whose outcome is the failure.
///
/// Ownership and thread safety: as `knit_call_async` (free the ticket with
/// `knit_ticket_free`).
///
/// # Safety
/// As `knit_call_async`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // The C signature of `knit_call_async` plus the worker.
pub unsafe extern "C" fn knit_call_async_on(
    pool: *const KnitPool,
    worker: u32,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    ticket: *mut *mut KnitTicket,
) -> KnitStatus {
    guard("knit_call_async_on", || {
        let ticket = out(ticket, "ticket")?;
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let future = p.pool.call_async_on(
            worker,
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

/// A wait bound from C: `KNIT_FOREVER` is about 584 years, long enough to mean "no bound".
fn wait_bound(timeout_ns: u64) -> Duration {
    crate::args::timeout(timeout_ns).unwrap_or(Duration::MAX)
}
