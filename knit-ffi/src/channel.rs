//! Channels (spec/06) in both directions, through one pair of C types:
//!
//! - worker to host: a streaming handler opens a channel (`knit_request_open_channel`) and
//!   sends on it; the host takes the reading end from the call's ticket
//!   (`knit_ticket_channel`);
//! - host to worker: the host starts a call with a channel (`knit_call_with_channel`) and
//!   sends on it; the handler takes the reading end (`knit_request_take_channel`).
//!
//! `knit_sender` is any writing end and `knit_receiver` any reading end. The host's ends are
//! registry handles. A worker's ends live only during their handler call: they are kept in that
//! call's lists (`ChannelLists`), each boxed so that its address (the C handle) is stable, and
//! are accepted only from the thread running that call; they are never dereferenced before
//! being found there.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::Mutex;

use knit_core::ErrorCode;
use knit_rt::{ChannelReceiver, ChannelSender, Message, Payload, Receiver, Sender};

use crate::args::{bytes, out, store};
use crate::handle::{self, Object};
use crate::handlers::{Current, KnitRequest};
use crate::pool::{call_args, options, KnitPool, PoolObject};
use crate::response::{self, KnitResponse};
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::ticket::{lock, KnitTicket, TicketObject};

/// The writing end of a channel (opaque). A host's sender is a handle until closed, aborted
/// or freed; a worker's sender is valid only during the handler call that opened it, on its
/// thread.
pub struct KnitSender {
    _private: [u8; 0],
}

/// The reading end of a channel (opaque). A host's receiver is a handle until freed; a
/// worker's receiver is valid only during the handler call that took it, on its thread.
pub struct KnitReceiver {
    _private: [u8; 0],
}

/// A worker's reading end; kept after an abort so that later receives say so.
// Always boxed in its list, so the size of the open variant costs nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WorkerReceiver<'r> {
    Open(ChannelReceiver<'r>),
    Aborted,
}

/// The channel ends one handler call holds. An entry is `None` once the end is gone.
#[derive(Default)]
pub(crate) struct ChannelLists<'r> {
    senders: RefCell<Vec<Option<Box<ChannelSender<'r>>>>>,
    receivers: RefCell<Vec<Option<Box<WorkerReceiver<'r>>>>>,
}

/// The position in `list` of the box whose address is `key`, when it is there.
fn find<T, K>(list: &[Option<Box<T>>], key: *const K) -> Option<usize> {
    list.iter().position(|entry| {
        entry
            .as_deref()
            .is_some_and(|item| std::ptr::eq(std::ptr::from_ref(item).cast::<K>(), key))
    })
}

/// Adds `item` to `list` and returns its key (the address of its box).
fn push<T, K>(list: &RefCell<Vec<Option<Box<T>>>>, item: T) -> *mut K {
    let boxed = Box::new(item);
    let key = std::ptr::from_ref(&*boxed).cast_mut().cast::<K>();
    list.borrow_mut().push(Some(boxed));
    key
}

/// The object behind a host's `knit_sender` handle.
struct HostSender(Mutex<Sender>);

impl Object for HostSender {
    type Opaque = KnitSender;
    const KIND: &'static str = "knit_sender";
}

/// The object behind a host's `knit_receiver` handle.
struct HostReceiver(Mutex<Receiver>);

impl Object for HostReceiver {
    type Opaque = KnitReceiver;
    const KIND: &'static str = "knit_receiver";
}

/// What to do with a sender.
#[derive(Clone, Copy)]
enum SendOp<'a> {
    Send(u32, &'a [u8]),
    TrySend(&'a [u8]),
    Close,
    Abort(u32),
    Free,
}

/// Applies `op` to `sender`: a worker's end of the handler call running on this thread, or a
/// host's registry handle.
fn sender_op(sender: *mut KnitSender, op: SendOp<'_>) -> FfiResult {
    if let Ok(current) = Current::get() {
        // SAFETY: the call `current` describes runs on this thread until after this function.
        let lists = unsafe { current.channels() };
        let position = find(&lists.senders.borrow(), sender.cast_const());
        if let Some(position) = position {
            return worker_sender_op(lists, position, op);
        }
    }
    match op {
        SendOp::Send(ct, data) => {
            let s = handle::get::<HostSender>(sender)?;
            let result = lock(&s.0).send_typed(ct, data);
            result.map_err(Failure::from)
        }
        SendOp::TrySend(data) => {
            let s = handle::get::<HostSender>(sender)?;
            let result = lock(&s.0).try_send(data);
            result.map_err(Failure::from)
        }
        SendOp::Close | SendOp::Abort(_) | SendOp::Free => {
            let s = handle::remove::<HostSender>(sender)?;
            // The registry held the only long-lived reference; a thread still sending holds
            // the other until its send returns.
            let owned = std::sync::Arc::try_unwrap(s)
                .map_err(|_| Failure::invalid("the sender is in use by another thread"))?
                .0
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match op {
                SendOp::Close => owned.close().map_err(Failure::from),
                SendOp::Abort(code) => owned.abort(code).map_err(Failure::from),
                _ => Ok(()),
            }
        }
    }
}

fn worker_sender_op(lists: &ChannelLists<'_>, position: usize, op: SendOp<'_>) -> FfiResult {
    let mut senders = lists.senders.borrow_mut();
    let slot = senders
        .get_mut(position)
        .ok_or_else(|| Failure::invalid("the sender vanished"))?;
    match op {
        SendOp::Send(ct, data) => match slot.as_deref_mut() {
            Some(s) => s.send_typed(ct, data).map_err(Failure::from),
            None => Err(Failure::invalid("the sender is closed")),
        },
        SendOp::TrySend(data) => match slot.as_deref_mut() {
            Some(s) => s.try_send(data).map_err(Failure::from),
            None => Err(Failure::invalid("the sender is closed")),
        },
        SendOp::Close | SendOp::Abort(_) | SendOp::Free => {
            let owned = slot
                .take()
                .ok_or_else(|| Failure::invalid("the sender is closed"))?;
            drop(senders);
            match op {
                SendOp::Close => owned.close().map_err(Failure::from),
                SendOp::Abort(code) => owned.abort(code).map_err(Failure::from),
                _ => Ok(()),
            }
        }
    }
}

/// What to do with a receiver.
#[derive(Clone, Copy)]
enum RecvOp {
    Recv,
    Abort(u32),
    Free,
}

/// Applies `op` to `receiver` (a worker's end of the call running on this thread, or a host's
/// handle); a received message comes back.
fn receiver_op(receiver: *const KnitReceiver, op: RecvOp) -> FfiResult<Option<Message>> {
    if let Ok(current) = Current::get() {
        // SAFETY: the call `current` describes runs on this thread until after this function.
        let lists = unsafe { current.channels() };
        let position = find(&lists.receivers.borrow(), receiver);
        if let Some(position) = position {
            return worker_receiver_op(lists, position, op);
        }
    }
    match op {
        RecvOp::Recv => {
            let r = handle::get::<HostReceiver>(receiver)?;
            let got = lock(&r.0).recv();
            got.map_err(Failure::from)
        }
        RecvOp::Abort(code) => {
            let r = handle::get::<HostReceiver>(receiver)?;
            let result = lock(&r.0).abort(code);
            result.map(|()| None).map_err(Failure::from)
        }
        RecvOp::Free => handle::remove::<HostReceiver>(receiver).map(|_| None),
    }
}

fn worker_receiver_op(
    lists: &ChannelLists<'_>,
    position: usize,
    op: RecvOp,
) -> FfiResult<Option<Message>> {
    let mut receivers = lists.receivers.borrow_mut();
    let slot = receivers
        .get_mut(position)
        .ok_or_else(|| Failure::invalid("the receiver vanished"))?;
    match op {
        RecvOp::Recv => match slot.as_deref_mut() {
            Some(WorkerReceiver::Open(r)) => r.recv().map_err(Failure::from),
            Some(WorkerReceiver::Aborted) => Err(Failure::new(
                ErrorCode::ChannelAborted,
                "this end aborted the channel",
            )),
            None => Err(Failure::invalid("the receiver is freed")),
        },
        RecvOp::Abort(code) => {
            let entry = slot
                .as_deref_mut()
                .ok_or_else(|| Failure::invalid("the receiver is freed"))?;
            // Kept (in the same box, so the handle stays valid) as aborted: later receives
            // fail with CHANNEL_ABORTED.
            if let WorkerReceiver::Open(r) = std::mem::replace(entry, WorkerReceiver::Aborted) {
                r.abort(code).map_err(Failure::from)?;
            }
            Ok(None)
        }
        RecvOp::Free => {
            let owned = slot
                .take()
                .ok_or_else(|| Failure::invalid("the receiver is freed"))?;
            drop(receivers);
            drop(owned);
            Ok(None)
        }
    }
}

/// Opens a channel from this worker to the caller of the call being handled, announces it,
/// and stores its writing end in `*sender`; the host takes the reading end with
/// `knit_ticket_channel`. Only in a handler added as streaming (`knit_handlers_add_streaming`,
/// `knit_worker_handle_streaming`): otherwise `KNIT_INVALID_ARGUMENT`. `KNIT_WOULD_BLOCK` when
/// every channel slot of the region is taken (see `knit_config_set_channels`).
///
/// Ownership: the sender belongs to the handler call. End it with `knit_sender_close` (the
/// host then sees the end of the stream), `knit_sender_abort` or `knit_sender_free`; one still
/// open when the handler returns is aborted with `KNIT_CANCELLED`.
/// Thread safety: only inside the handler that received `request`, on its thread.
///
/// # Safety
/// `sender` points to a writable `knit_sender *`.
#[no_mangle]
pub unsafe extern "C" fn knit_request_open_channel(
    request: *const KnitRequest,
    sender: *mut *mut KnitSender,
) -> KnitStatus {
    guard("knit_request_open_channel", || {
        let sender = out(sender, "sender")?;
        let current = Current::of(request)?;
        // SAFETY: the call `current` describes runs on this thread until after this function.
        let (ctx, lists) = unsafe { (current.context(), current.channels()) };
        let opened = ctx.open_channel_to_host()?;
        let key = push(&lists.senders, opened);
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(sender, key) };
        Ok(())
    })
}

/// Takes the reading end of the channel the host opened for the call being handled
/// (`knit_call_with_channel`) and stores it in `*receiver`. Any handler may take it, once;
/// `KNIT_CHANNEL_CLOSED` when the host opened none for this call (or it was taken already),
/// `KNIT_CHANNEL_ABORTED` when the host aborted it before the call ran.
///
/// Ownership: the receiver belongs to the handler call; free it with `knit_receiver_free`, or
/// let the handler return (a channel not read to its end is then aborted with
/// `KNIT_CANCELLED`).
/// Thread safety: only inside the handler that received `request`, on its thread.
///
/// # Safety
/// `receiver` points to a writable `knit_receiver *`.
#[no_mangle]
pub unsafe extern "C" fn knit_request_take_channel(
    request: *const KnitRequest,
    receiver: *mut *mut KnitReceiver,
) -> KnitStatus {
    guard("knit_request_take_channel", || {
        let receiver = out(receiver, "receiver")?;
        let current = Current::of(request)?;
        // SAFETY: the call `current` describes runs on this thread until after this function.
        let (ctx, lists) = unsafe { (current.context(), current.channels()) };
        let taken = ctx.take_input_channel()?;
        let key = push(&lists.receivers, WorkerReceiver::Open(taken));
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(receiver, key) };
        Ok(())
    })
}

/// Starts a call like `knit_call_async` together with a channel from the host to the worker
/// that runs it: stores the call's ticket in `*ticket` and the channel's writing end in
/// `*sender`. The handler takes the reading end with `knit_request_take_channel`. Returns once
/// the channel's announcement and the request are written (waiting for ring room if need
/// be); `KNIT_WOULD_BLOCK` when every channel slot is taken. A worker runs one call at a
/// time: feed calls to one worker in the order they were made.
///
/// Ownership: `function` and `payload` are only read during this call. The caller owns the
/// ticket (`knit_ticket_free`) and the sender (end it with `knit_sender_close`,
/// `knit_sender_abort` or `knit_sender_free`; a sender freed before it was closed aborts the
/// channel with `KNIT_CANCELLED`, so the handler never takes a cut stream for a whole one).
/// Thread safety: safe from any thread.
///
/// # Safety
/// `function` is a NUL-terminated string; `payload` points to `len` readable bytes (or `len`
/// is 0); `ticket` and `sender` point to writable handles.
#[no_mangle]
pub unsafe extern "C" fn knit_call_with_channel(
    pool: *const KnitPool,
    function: *const c_char,
    payload: *const u8,
    len: usize,
    content_type: u32,
    deadline_ns: u64,
    ticket: *mut *mut KnitTicket,
    sender: *mut *mut KnitSender,
) -> KnitStatus {
    guard("knit_call_with_channel", || {
        let ticket = out(ticket, "ticket")?;
        let sender = out(sender, "sender")?;
        let p = handle::get::<PoolObject>(pool)?;
        // SAFETY: the caller's contract for `function` and `payload`.
        let (name, payload) = unsafe { call_args(function, payload, len) }?;
        let (future, writer) = p.pool.call_with_channel_options(
            name,
            Payload::new(payload, content_type),
            options(content_type, deadline_ns),
        )?;
        let t = handle::register(TicketObject::new(future))?;
        let s = match handle::register(HostSender(Mutex::new(writer))) {
            Ok(s) => s,
            Err(e) => {
                let _ = handle::remove::<TicketObject>(t);
                return Err(e);
            }
        };
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe {
            store(ticket, t);
            store(sender, s);
        }
        Ok(())
    })
}

/// Waits until the worker running the ticket's call opens its channel to the host
/// (`knit_request_open_channel`), and stores the reading end in `*receiver`.
/// `KNIT_CHANNEL_CLOSED` when the call ends without opening one. Take the channel before
/// waiting for the ticket's outcome: a worker that fills the channel waits for the host to
/// read it before it can finish the call.
///
/// Ownership: the caller owns the receiver and frees it with `knit_receiver_free`; the ticket
/// stays the caller's.
/// Thread safety: safe from any thread; other uses of the same ticket wait until this returns.
///
/// # Safety
/// `receiver` points to a writable `knit_receiver *`.
#[no_mangle]
pub unsafe extern "C" fn knit_ticket_channel(
    ticket: *const KnitTicket,
    receiver: *mut *mut KnitReceiver,
) -> KnitStatus {
    guard("knit_ticket_channel", || {
        let receiver = out(receiver, "receiver")?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(receiver, std::ptr::null_mut()) };
        let t = handle::get::<TicketObject>(ticket)?;
        let reader = lock(&t.0).future.channel()?;
        let h = handle::register(HostReceiver(Mutex::new(reader)))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(receiver, h) };
        Ok(())
    })
}

/// Sends `len` bytes at `data` (content type `content_type`) on the channel, waiting while
/// its ring is full (backpressure: nothing is dropped). Fails with `KNIT_CHANNEL_ABORTED` when
/// the reading end aborted the channel, `KNIT_PEER_DIED` when the other side died,
/// `KNIT_PAYLOAD_TOO_LARGE` beyond the region's `max_message_len`.
///
/// Ownership: the bytes are copied into the channel.
/// Thread safety: a host's sender from any thread (sends are serialised); a worker's only
/// inside its handler, on its thread.
///
/// # Safety
/// `data` points to `len` readable bytes (or `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn knit_sender_send(
    sender: *mut KnitSender,
    data: *const u8,
    len: usize,
    content_type: u32,
) -> KnitStatus {
    guard("knit_sender_send", || {
        // SAFETY: the caller's contract for `data` and `len`.
        let payload = unsafe { bytes(data, len, "data") }?;
        sender_op(sender, SendOp::Send(content_type, payload))
    })
}

/// Like `knit_sender_send` with content type `KNIT_CONTENT_BYTES`, but never waits for room:
/// when the message's first record does not fit now, returns `KNIT_WOULD_BLOCK` and nothing
/// is sent.
///
/// Thread safety: as `knit_sender_send`.
///
/// # Safety
/// `data` points to `len` readable bytes (or `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn knit_sender_try_send(
    sender: *mut KnitSender,
    data: *const u8,
    len: usize,
) -> KnitStatus {
    guard("knit_sender_try_send", || {
        // SAFETY: the caller's contract for `data` and `len`.
        let payload = unsafe { bytes(data, len, "data") }?;
        sender_op(sender, SendOp::TrySend(payload))
    })
}

/// Closes the channel: the reading end receives every message sent, then the end of the
/// stream (`knit_receiver_recv` returns `KNIT_CHANNEL_CLOSED`).
///
/// Ownership: the sender is gone afterwards, whatever the status.
/// Thread safety: as `knit_sender_send`; not while another thread sends on it
/// (`KNIT_INVALID_ARGUMENT`).
#[no_mangle]
pub extern "C" fn knit_sender_close(sender: *mut KnitSender) -> KnitStatus {
    guard("knit_sender_close", || sender_op(sender, SendOp::Close))
}

/// Aborts the channel with status `code`: the reading end's receives fail with
/// `KNIT_CHANNEL_ABORTED` (the message names `code`) and messages not yet received are
/// discarded.
///
/// Ownership: the sender is gone afterwards, whatever the status.
/// Thread safety: as `knit_sender_close`.
#[no_mangle]
pub extern "C" fn knit_sender_abort(sender: *mut KnitSender, code: KnitStatus) -> KnitStatus {
    guard("knit_sender_abort", || {
        sender_op(sender, SendOp::Abort(code))
    })
}

/// Frees a sender without closing it: a channel not closed is aborted with `KNIT_CANCELLED`.
///
/// Ownership: the sender is gone afterwards.
/// Thread safety: as `knit_sender_close`.
#[no_mangle]
pub extern "C" fn knit_sender_free(sender: *mut KnitSender) -> KnitStatus {
    guard("knit_sender_free", || sender_op(sender, SendOp::Free))
}

/// Waits for the next message of the channel and stores it in `*message` (a `knit_response`:
/// its bytes and content type). Returns `KNIT_CHANNEL_CLOSED` at the end of the stream (every
/// message was received), `KNIT_CHANNEL_ABORTED` when the writing end aborted it,
/// `KNIT_PEER_DIED` when the other side died, `KNIT_CANCELLED` (in a worker) when the host
/// cancelled the call; `*message` is NULL then.
///
/// Ownership: the caller owns the message and frees it with `knit_response_free`.
/// Thread safety: a host's receiver from any thread (receives are serialised); a worker's only
/// inside its handler, on its thread.
///
/// # Safety
/// `message` points to a writable `knit_response *`.
#[no_mangle]
pub unsafe extern "C" fn knit_receiver_recv(
    receiver: *const KnitReceiver,
    message: *mut *mut KnitResponse,
) -> KnitStatus {
    guard("knit_receiver_recv", || {
        let message = out(message, "message")?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { response::clear(message) };
        match receiver_op(receiver, RecvOp::Recv)? {
            Some(m) => {
                let h = response::register(m.content_type, m.bytes)?;
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { store(message, h) };
                Ok(())
            }
            None => Err(Failure::new(
                ErrorCode::ChannelClosed,
                "end of stream: the writer closed the channel",
            )),
        }
    })
}

/// Aborts the channel with status `code`: the writing end's sends fail with
/// `KNIT_CHANNEL_ABORTED`. The receiver stays valid until freed (its receives then fail).
///
/// Thread safety: as `knit_receiver_recv`.
#[no_mangle]
pub extern "C" fn knit_receiver_abort(
    receiver: *const KnitReceiver,
    code: KnitStatus,
) -> KnitStatus {
    guard("knit_receiver_abort", || {
        receiver_op(receiver, RecvOp::Abort(code)).map(drop)
    })
}

/// Frees a receiver; a channel not read to its end is aborted with `KNIT_CANCELLED`.
///
/// Ownership: the receiver is gone afterwards.
/// Thread safety: as `knit_receiver_recv`.
#[no_mangle]
pub extern "C" fn knit_receiver_free(receiver: *mut KnitReceiver) -> KnitStatus {
    guard("knit_receiver_free", || {
        receiver_op(receiver, RecvOp::Free).map(drop)
    })
}
