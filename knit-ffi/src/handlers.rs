//! Handlers written in C: a function pointer and user data, called by a worker for each
//! request (CALL-5, CALL-6 are the runtime's). The request is given in place and the reply is
//! built through an opaque `knit_reply`, both valid only during the call.

use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, Mutex, PoisonError};

use knit_core::ErrorCode;
use knit_rt::{Context, HandlerError, HandlerResult, Handlers, Request, Responded, ResponseWriter};

use crate::args::{bytes, out, store, string};
use crate::channel::ChannelLists;
use crate::handle::{self, Object};
use crate::status::{guard, Failure, FfiResult, KnitStatus, KNIT_OK};

/// What a handler receives. Every field is valid only until the handler returns.
#[repr(C)]
pub struct KnitRequest {
    /// The request payload, `payload_len` bytes (NULL when empty). For a request that fits one
    /// ring record these bytes are the shared ring itself (zero copy): treat them as untrusted
    /// input from another process, and do not keep the pointer after returning.
    pub payload: *const u8,
    /// Bytes at `payload`.
    pub payload_len: usize,
    /// The payload's content type (`KNIT_CONTENT_*` or an application value).
    pub content_type: u32,
    /// The participant index of the worker running the handler (1 or more).
    pub worker_slot: u32,
    /// The request id (per worker, strictly increasing).
    pub request_id: u64,
    /// The call's deadline as `CLOCK_MONOTONIC` nanoseconds (compare with
    /// `knit_monotonic_ns()`), 0 when it has none.
    pub deadline_ns: u64,
}

/// The reply a handler builds (opaque; valid only during the handler call, on its thread).
pub struct KnitReply {
    _private: [u8; 0],
}

/// A handler: called with the `user_data` given at registration, the request, and the reply
/// to fill. Returns `KNIT_OK` for success (the reply's bytes are the result, empty when none
/// were set) or a status for failure: a registry code or an application code (1000 to 65535),
/// sent to the caller with the text given to `knit_reply_error` (or, when the status is that of
/// the Knit call that failed last on this thread, that call's message; or a default text).
///
/// It may run on several threads at once (one per worker thread of a pool), so `user_data`
/// must be safe to share. It must return normally: no `longjmp`, no C++ exception.
pub type KnitHandlerFn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const KnitRequest,
        reply: *mut KnitReply,
    ) -> KnitStatus,
>;

/// Frees the `user_data` of a handler or callback; called exactly once, from any thread.
pub type KnitFreeFn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Writes a result into `buffer` (`capacity` bytes) and returns how many bytes it wrote (at
/// most `capacity`); see `knit_reply_write_in_place`. It must return normally.
pub type KnitWriteFn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, buffer: *mut u8, capacity: usize) -> usize>;

/// The most bytes a function name may have (FN-1).
const MAX_NAME_LEN: usize = 255;

/// A C handler: the function, its user data and the function that frees the data.
pub(crate) struct CHandler {
    name: String,
    function: unsafe extern "C" fn(*mut c_void, *const KnitRequest, *mut KnitReply) -> KnitStatus,
    user_data: *mut c_void,
    free: KnitFreeFn,
}

// SAFETY: the header requires a handler and its user data to be callable from any thread,
// concurrently, and the free function to be callable from any thread; the pointer itself is
// never dereferenced by Rust.
unsafe impl Send for CHandler {}
// SAFETY: as above; `&CHandler` only gives access to the function and pointer values.
unsafe impl Sync for CHandler {}

impl Drop for CHandler {
    fn drop(&mut self) {
        if let Some(free) = self.free {
            // SAFETY: the header's contract for `free_user_data`: called once, with the
            // registered pointer, when no worker can call the handler any more.
            unsafe { free(self.user_data) };
        }
    }
}

/// What the handler put in its reply.
#[derive(Default)]
struct ReplyState<'r> {
    bytes: Vec<u8>,
    content_type: Option<u32>,
    error: Option<(KnitStatus, String)>,
    /// In-place handlers: the way to answer the call, until used.
    writer: Option<ResponseWriter<'r>>,
    /// In-place handlers: set once the call was answered in place.
    responded: Option<Responded>,
}

/// How a handler is registered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Request in place, result copied.
    Plain,
    /// May open channels; the request is a private copy.
    Streaming,
    /// Request in place, and the result may be written in place (`knit_reply_write_in_place`).
    InPlace,
}

/// The call a handler is running on this thread: the only request and reply pointers the
/// `knit_request_*` / `knit_reply_*` functions accept.
#[derive(Clone, Copy)]
pub(crate) struct Current {
    request: *const KnitRequest,
    /// The call's `ReplyState<'_>`, type-erased.
    reply: *mut (),
    /// The call's `Context<'_>`, type-erased.
    context: *const (),
    /// The call's `ChannelLists<'_>` (channel ends it holds), type-erased.
    channels: *const (),
}

impl Current {
    /// The current call of this thread when `request` is its request.
    pub(crate) fn of(request: *const KnitRequest) -> FfiResult<Current> {
        not_busy()?;
        CURRENT
            .with(Cell::get)
            .filter(|c| !request.is_null() && std::ptr::eq(c.request, request))
            .ok_or_else(|| {
                Failure::invalid("the request is not the one of a handler running on this thread")
            })
    }

    /// The current call of this thread, whatever it is.
    pub(crate) fn get() -> FfiResult<Current> {
        not_busy()?;
        CURRENT
            .with(Cell::get)
            .ok_or_else(|| Failure::invalid("no handler is running on this thread"))
    }

    /// The call's context.
    ///
    /// # Safety
    /// Only while the handler call that this `Current` describes runs (on this thread), and
    /// the reference must not outlive the exported function that asked for it.
    pub(crate) unsafe fn context<'a>(&self) -> &'a Context<'a> {
        // SAFETY: `context` is the `Context` of the handler call running on this thread,
        // alive until that call returns (the caller's contract).
        unsafe { &*self.context.cast::<Context<'a>>() }
    }

    /// The channel ends the call holds.
    ///
    /// # Safety
    /// As for [`Current::context`].
    pub(crate) unsafe fn channels<'a>(&self) -> &'a ChannelLists<'a> {
        // SAFETY: `channels` is the `ChannelLists` of the handler call running on this
        // thread, alive until that call returns (the caller's contract).
        unsafe { &*self.channels.cast::<ChannelLists<'a>>() }
    }
}

thread_local! {
    static CURRENT: Cell<Option<Current>> = const { Cell::new(None) };
    /// Set while a `knit_reply_write_in_place` write function runs: the reply is in use.
    static REPLY_BUSY: Cell<bool> = const { Cell::new(false) };
}

/// Marks the reply in use while a write function runs, until dropped.
struct Busy;

impl Busy {
    fn enter() -> Busy {
        REPLY_BUSY.with(|b| b.set(true));
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        REPLY_BUSY.with(|b| b.set(false));
    }
}

/// Restores the previous current call when a handler call ends (handlers may nest when a
/// handler runs a worker of its own).
struct Scope(Option<Current>);

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

impl CHandler {
    /// Runs the C function for one request; returns its status and what it left in the reply.
    fn run<'r>(
        &self,
        ctx: &Context<'_>,
        req: Request<'_>,
        writer: Option<ResponseWriter<'r>>,
    ) -> (KnitStatus, ReplyState<'r>) {
        let request = KnitRequest {
            payload: if req.payload.is_empty() {
                std::ptr::null()
            } else {
                req.payload.as_ptr()
            },
            payload_len: req.payload.len(),
            content_type: req.content_type,
            worker_slot: ctx.worker_slot(),
            request_id: ctx.request_id(),
            deadline_ns: ctx.deadline().unwrap_or(0),
        };
        let mut state = ReplyState {
            writer,
            ..ReplyState::default()
        };
        // Channel ends the handler opens or takes; any it leaves open are aborted when this
        // drops (after the call, before the response).
        let channels = ChannelLists::default();
        // Everything the C side does with the reply goes through this one pointer until the
        // call returns.
        let reply: *mut ReplyState<'r> = &mut state;
        let current = Current {
            request: &request,
            reply: reply.cast(),
            context: std::ptr::from_ref(ctx).cast(),
            channels: std::ptr::from_ref(&channels).cast(),
        };
        let status = {
            let _scope = Scope(CURRENT.with(|c| c.replace(Some(current))));
            // SAFETY: the registered function with its user data (header contract); the
            // request and reply pointers are valid for the duration of the call.
            unsafe { (self.function)(self.user_data, &request, reply.cast()) }
        };
        drop(channels);
        // The C side is done with the reply: `state` is ours again.
        (status, state)
    }

    /// The result a handler's status and reply make (CALL-6).
    fn result(
        &self,
        status: KnitStatus,
        state: &mut ReplyState<'_>,
        ctx: &Context<'_>,
    ) -> HandlerResult {
        match (status, state.error.take()) {
            (KNIT_OK, None) => {
                if let Some(ct) = state.content_type {
                    ctx.set_content_type(ct);
                }
                Ok(std::mem::take(&mut state.bytes))
            }
            // The returned status wins; KNIT_OK with an error set sends the error's code.
            (status, Some((code, message))) => Err(HandlerError::new(
                if status == KNIT_OK { code } else { status },
                message,
            )),
            (code, None) => {
                // A handler that passes on the status of a Knit call that failed passes on
                // its message too.
                let (last_code, last_message) = crate::status::last();
                let message = if last_code == code && !last_message.is_empty() {
                    last_message
                } else {
                    format!("handler `{}` returned status {code}", self.name)
                };
                Err(HandlerError::new(code, message))
            }
        }
    }

    /// A plain or streaming handler.
    fn invoke(&self, ctx: &Context<'_>, req: Request<'_>) -> HandlerResult {
        let (status, mut state) = self.run(ctx, req, None);
        self.result(status, &mut state, ctx)
    }

    /// An in-place handler: answered already when it wrote in place, otherwise through the
    /// writer with what it set.
    fn invoke_in_place(
        &self,
        ctx: &Context<'_>,
        req: Request<'_>,
        out: ResponseWriter<'_>,
    ) -> Result<Responded, HandlerError> {
        let (status, mut state) = self.run(ctx, req, Some(out));
        if let Some(responded) = state.responded.take() {
            // CALL-3: the call has its one response; a later failure status cannot change it.
            return Ok(responded);
        }
        let bytes = self.result(status, &mut state, ctx)?;
        match state.writer.take() {
            Some(writer) => writer.send(&bytes),
            None => Err(HandlerError::failed(format!(
                "handler `{}` used its result writer without answering",
                self.name
            ))),
        }
    }
}

/// Builds a handler closure over a C function; validates before taking `user_data`.
///
/// # Safety
/// The header's contract for handlers holds for `function`, `user_data` and `free`.
pub(crate) unsafe fn c_handler(
    name: *const c_char,
    function: KnitHandlerFn,
    user_data: *mut c_void,
    free: KnitFreeFn,
) -> FfiResult<(String, Arc<CHandler>)> {
    // SAFETY: the caller's contract for `name`.
    let name = unsafe { string(name, "function name") }?;
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        // FN-1: names are 1 to 255 bytes.
        return Err(Failure::invalid(format!(
            "function name must be 1 to {MAX_NAME_LEN} bytes, not {}",
            name.len()
        )));
    }
    let Some(function) = function else {
        return Err(Failure::invalid(format!("handler of `{name}` is NULL")));
    };
    let handler = Arc::new(CHandler {
        name: name.to_owned(),
        function,
        user_data,
        free,
    });
    Ok((name.to_owned(), handler))
}

/// Adds `handler` to `handlers` under `name`, registered as `kind`.
pub(crate) fn insert(handlers: &mut Handlers, name: &str, handler: Arc<CHandler>, kind: Kind) {
    if kind == Kind::InPlace {
        handlers.insert_in_place(
            name,
            Arc::new(
                move |ctx: &Context<'_>, req: Request<'_>, out: ResponseWriter<'_>| {
                    handler.invoke_in_place(ctx, req, out)
                },
            ),
        );
    } else {
        handlers.insert(
            name,
            Arc::new(move |ctx: &Context<'_>, req: Request<'_>| handler.invoke(ctx, req)),
            kind == Kind::Streaming,
        );
    }
}

/// Refuses calls about the current handler call from inside a write function of
/// `knit_reply_write_in_place`: the response ring is on loan meanwhile.
fn not_busy() -> FfiResult {
    if REPLY_BUSY.with(Cell::get) {
        return Err(Failure::invalid(
            "the result is being written in place: no request, reply or channel call from the write function",
        ));
    }
    Ok(())
}

/// The reply behind `reply` if it belongs to the handler call running on this thread.
fn current_reply<'a>(reply: *mut KnitReply) -> FfiResult<&'a mut ReplyState<'a>> {
    not_busy()?;
    let current = CURRENT.with(Cell::get);
    match current {
        Some(c) if !reply.is_null() && std::ptr::eq(c.reply, reply.cast()) => {
            // SAFETY: `c.reply` points to the `ReplyState` of the handler call running on
            // this thread (set by `run`, cleared when it returns); only this thread uses it
            // meanwhile (not inside a write function: REPLY_BUSY), and the reference does not
            // outlive this exported call.
            Ok(unsafe { &mut *c.reply.cast::<ReplyState<'a>>() })
        }
        _ => Err(Failure::invalid(
            "the reply is not the one of a handler running on this thread",
        )),
    }
}

/// Sets the result to a copy of `data` (`len` bytes; `data` may be NULL when `len` is 0) with
/// content type `content_type`. Replaces anything set before.
///
/// Ownership: the bytes are copied; `data` stays the caller's.
/// Thread safety: only inside the handler that received `reply`, on its thread.
///
/// # Safety
/// `data` points to `len` readable bytes (or `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn knit_reply_set(
    reply: *mut KnitReply,
    data: *const u8,
    len: usize,
    content_type: u32,
) -> KnitStatus {
    guard("knit_reply_set", || {
        let state = current_reply(reply)?;
        // SAFETY: the caller's contract for `data` and `len`.
        let src = unsafe { bytes(data, len, "data") }?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(src.len()).map_err(|_| {
            Failure::new(
                ErrorCode::PayloadTooLarge,
                format!("cannot allocate a result of {len} bytes"),
            )
        })?;
        buf.extend_from_slice(src);
        state.bytes = buf;
        state.content_type = Some(content_type);
        Ok(())
    })
}

/// Makes the result a buffer of `len` zero bytes with content type `content_type` and stores
/// its address in `*buffer`, for the handler to write the result into (one copy less than
/// `knit_reply_set`). Replaces anything set before.
///
/// Ownership: the buffer belongs to the reply; it stays valid until the handler returns or
/// calls another `knit_reply_*` function on this reply.
/// Thread safety: only inside the handler that received `reply`, on its thread.
///
/// # Safety
/// `buffer` points to a writable `uint8_t *`.
#[no_mangle]
pub unsafe extern "C" fn knit_reply_alloc(
    reply: *mut KnitReply,
    len: usize,
    content_type: u32,
    buffer: *mut *mut u8,
) -> KnitStatus {
    guard("knit_reply_alloc", || {
        let buffer = out(buffer, "buffer")?;
        let state = current_reply(reply)?;
        let mut buf = Vec::new();
        buf.try_reserve_exact(len).map_err(|_| {
            Failure::new(
                ErrorCode::PayloadTooLarge,
                format!("cannot allocate a result of {len} bytes"),
            )
        })?;
        buf.resize(len, 0);
        state.bytes = buf;
        state.content_type = Some(content_type);
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(buffer, state.bytes.as_mut_ptr()) };
        Ok(())
    })
}

/// Makes the call fail with status `code` (a registry code or an application code 1000 to
/// 65535; 0 is taken as `KNIT_HANDLER_FAILED`) and the UTF-8 text `message` (NULL for none).
/// The handler then returns a non-zero status (its return value, when non-zero, is the status
/// sent; `KNIT_OK` sends `code`).
///
/// Ownership: `message` is copied.
/// Thread safety: only inside the handler that received `reply`, on its thread.
///
/// # Safety
/// `message` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn knit_reply_error(
    reply: *mut KnitReply,
    code: KnitStatus,
    message: *const c_char,
) -> KnitStatus {
    guard("knit_reply_error", || {
        let state = current_reply(reply)?;
        let text = if message.is_null() {
            String::new()
        } else {
            // SAFETY: the caller's contract: a NUL-terminated string.
            unsafe { std::ffi::CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        let code = if code == KNIT_OK {
            ErrorCode::HandlerFailed as u32
        } else {
            code
        };
        state.error = Some((code, text));
        Ok(())
    })
}

/// Writes the call's result of at most `capacity` bytes: `write(user_data, buffer, capacity)`
/// fills `buffer` and returns how many bytes it wrote. When `capacity` fits one record of the
/// response ring, `buffer` is the ring itself and nothing is copied (loan); otherwise it is a
/// private buffer, sent in fragments afterwards. `buffer` holds arbitrary bytes before `write`
/// fills it. The call is answered when this returns `KNIT_OK`; the handler then returns
/// `KNIT_OK` (its status can no longer change the answer).
///
/// Only in a handler added in place (`knit_handlers_add_in_place`,
/// `knit_worker_handle_in_place`), once: otherwise `KNIT_INVALID_ARGUMENT`. Waits while the
/// response ring is full. `KNIT_PAYLOAD_TOO_LARGE` when `capacity` exceeds the region's
/// `max_message_len`, `KNIT_INVALID_ARGUMENT` when `write` returns more than `capacity`:
/// nothing was sent then, and the call fails with that status.
///
/// Ownership: `buffer` is valid only during `write`. The write function must not call the
/// `knit_reply_*`, `knit_request_*` or worker-side channel functions (they are refused).
/// Thread safety: only inside the handler that received `reply`, on its thread.
///
/// # Safety
/// `write` and `user_data` meet the contract of `knit_write_fn`.
#[no_mangle]
pub unsafe extern "C" fn knit_reply_write_in_place(
    reply: *mut KnitReply,
    capacity: usize,
    content_type: u32,
    write: KnitWriteFn,
    user_data: *mut c_void,
) -> KnitStatus {
    guard("knit_reply_write_in_place", || {
        let write = write.ok_or_else(|| Failure::invalid("write is NULL"))?;
        let writer = current_reply(reply)?.writer.take().ok_or_else(|| {
            Failure::invalid(
                "no result writer: the handler was not added in place, or it answered already",
            )
        })?;
        let current = Current::get()?;
        // SAFETY: the call `current` describes runs on this thread until after this function.
        let ctx = unsafe { current.context() };
        ctx.set_content_type(content_type);
        let written = {
            let _busy = Busy::enter();
            writer.write_with(capacity, |buf| {
                // SAFETY: `buf` is writable for its length during this closure; the write
                // function's contract is the caller's.
                unsafe { write(user_data, buf.as_mut_ptr(), buf.len()) }
            })
        };
        let state = current_reply(reply)?;
        match written {
            Ok(responded) => {
                state.responded = Some(responded);
                Ok(())
            }
            Err(e) => {
                state.error = Some((e.code, e.message.clone()));
                Err(Failure {
                    code: e.code,
                    message: e.message,
                })
            }
        }
    })
}

/// Stores in `*cancelled` whether the host cancelled the call being handled (its cancel entry
/// holds its id, CANCEL-2). A long handler polls it and gives up early, returning
/// `KNIT_CANCELLED`.
///
/// Thread safety: only inside the handler that received `request`, on its thread.
///
/// # Safety
/// `cancelled` points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn knit_request_is_cancelled(
    request: *const KnitRequest,
    cancelled: *mut bool,
) -> KnitStatus {
    guard("knit_request_is_cancelled", || {
        let cancelled = out(cancelled, "cancelled")?;
        let c = Current::of(request)?;
        // SAFETY: the call `c` describes runs on this thread until after this function.
        let ctx = unsafe { c.context() };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(cancelled, ctx.is_cancelled()) };
        Ok(())
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds, the clock of `knit_request.deadline_ns`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_monotonic_ns() -> u64 {
    crate::status::guard_value(0, knit_rt::monotonic_ns)
}

/// A set of named handlers, for thread workers (`knit_config_set_threads`) or a worker process
/// (`knit_worker_add_handlers`).
pub struct KnitHandlers {
    _private: [u8; 0],
}

/// The object behind a `knit_handlers` handle.
pub(crate) struct HandlerSet(pub(crate) Mutex<Handlers>);

impl Object for HandlerSet {
    type Opaque = KnitHandlers;
    const KIND: &'static str = "knit_handlers";
}

impl HandlerSet {
    /// A copy of the handlers (cheap: the functions are shared).
    pub(crate) fn snapshot(&self) -> Handlers {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Creates an empty handler set in `*handlers`.
///
/// Ownership: the caller owns the new handle and frees it with `knit_handlers_free`.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `handlers` points to a writable `knit_handlers *`.
#[no_mangle]
pub unsafe extern "C" fn knit_handlers_new(handlers: *mut *mut KnitHandlers) -> KnitStatus {
    guard("knit_handlers_new", || {
        let handlers = out(handlers, "handlers")?;
        let h = handle::register(HandlerSet(Mutex::new(Handlers::new())))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(handlers, h) };
        Ok(())
    })
}

/// Adds (or replaces) the handler of function `name` (UTF-8, 1 to 255 bytes). Function ids
/// follow the order of first addition.
///
/// Ownership: `name` is copied. On success the set owns `user_data`: it calls
/// `free_user_data(user_data)` (when not NULL) once no worker can call this handler any more
/// (the handler was replaced, or the set and every pool and worker using it are gone). On
/// failure nothing is taken.
/// Thread safety: safe from any thread; pools and workers already built keep the handlers
/// they were given.
///
/// # Safety
/// `name` is a NUL-terminated string; `handler` and `user_data` meet the contract of
/// `knit_handler_fn`.
#[no_mangle]
pub unsafe extern "C" fn knit_handlers_add(
    handlers: *mut KnitHandlers,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_handlers_add", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                handlers,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::Plain,
            )
        }
    })
}

/// Like `knit_handlers_add`, for a handler that may open channels to the caller while it runs
/// (`knit_request_open_channel`). Its request payload is a private copy, not the ring itself.
///
/// Ownership and thread safety: as `knit_handlers_add`.
///
/// # Safety
/// As `knit_handlers_add`.
#[no_mangle]
pub unsafe extern "C" fn knit_handlers_add_streaming(
    handlers: *mut KnitHandlers,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_handlers_add_streaming", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                handlers,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::Streaming,
            )
        }
    })
}

/// Like `knit_handlers_add`, for a handler that may write its result straight into the
/// response ring with `knit_reply_write_in_place` (zero copy); it may also answer with
/// `knit_reply_set`, `knit_reply_alloc` or `knit_reply_error` as any handler.
///
/// Ownership and thread safety: as `knit_handlers_add`.
///
/// # Safety
/// As `knit_handlers_add`.
#[no_mangle]
pub unsafe extern "C" fn knit_handlers_add_in_place(
    handlers: *mut KnitHandlers,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
) -> KnitStatus {
    guard("knit_handlers_add_in_place", || {
        // SAFETY: the caller's contract, passed on.
        unsafe {
            add(
                handlers,
                name,
                handler,
                user_data,
                free_user_data,
                Kind::InPlace,
            )
        }
    })
}

/// Adds a C handler to a set.
///
/// # Safety
/// The contract of `knit_handlers_add`.
unsafe fn add(
    handlers: *mut KnitHandlers,
    name: *const c_char,
    handler: KnitHandlerFn,
    user_data: *mut c_void,
    free_user_data: KnitFreeFn,
    kind: Kind,
) -> FfiResult {
    let set = handle::get::<HandlerSet>(handlers)?;
    // SAFETY: the caller's contract for the strings, function and user data.
    let (name, handler) = unsafe { c_handler(name, handler, user_data, free_user_data) }?;
    insert(
        &mut set.0.lock().unwrap_or_else(PoisonError::into_inner),
        &name,
        handler,
        kind,
    );
    Ok(())
}

/// Frees a handler set. Pools and workers built from it keep their own copy.
///
/// Ownership: the handle is invalid afterwards (using it again is `KNIT_INVALID_ARGUMENT`).
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_handlers_free(handlers: *mut KnitHandlers) -> KnitStatus {
    guard("knit_handlers_free", || {
        handle::remove::<HandlerSet>(handlers).map(drop)
    })
}
