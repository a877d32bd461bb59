//! Channels from a worker to its caller (spec/06): inside a streaming handler the worker opens
//! a channel and sends messages on it (`knit_sender`); the host takes the channel from the
//! call's ticket and receives them in order (`knit_receiver`), then the call's result.
//!
//! A sender lives only during its handler call: it is kept in that call's list (a
//! `SenderList`), and its C handle is the address of its box there, accepted only from the
//! thread running that call. A receiver is an ordinary registry handle.

use std::cell::RefCell;
use std::sync::Mutex;

use knit_rt::pool::Receiver;
use knit_rt::ChannelSender;

use crate::args::{bytes, out, store};
use crate::handle::{self, Object};
use crate::handlers::{Current, KnitRequest};
use crate::response::{self, KnitResponse};
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::ticket::{lock, KnitTicket, TicketObject};

/// The channels one handler call opened, each boxed so that its address (the C handle) is
/// stable; an entry is `None` once closed or aborted.
pub(crate) type SenderList<'r> = RefCell<Vec<Option<Box<ChannelSender<'r>>>>>;

/// The writing end of a channel, in a worker (opaque; valid only during the handler call that
/// opened it, on its thread).
pub struct KnitSender {
    _private: [u8; 0],
}

/// The reading end of a channel, in the host (opaque).
pub struct KnitReceiver {
    _private: [u8; 0],
}

/// Runs `f` on the open sender `sender` of the handler call running on this thread; when
/// `f` consumes it (`take`), the entry is emptied.
fn with_sender<R>(
    sender: *const KnitSender,
    take: bool,
    f: impl FnOnce(SenderRef<'_, '_>) -> FfiResult<R>,
) -> FfiResult<R> {
    let current = Current::get()?;
    // SAFETY: the call `current` describes runs on this thread until after this function.
    let list = unsafe { current.senders() };
    let mut senders = list.borrow_mut();
    let position = senders
        .iter()
        .position(|s| {
            s.as_deref()
                .is_some_and(|s| std::ptr::eq(std::ptr::from_ref(s).cast(), sender))
        })
        .ok_or_else(|| {
            Failure::invalid(
                "the sender is not an open channel of the handler running on this thread",
            )
        })?;
    let slot = senders
        .get_mut(position)
        .ok_or_else(|| Failure::invalid("the sender vanished"))?;
    if take {
        let owned = slot
            .take()
            .ok_or_else(|| Failure::invalid("the sender is closed"))?;
        drop(senders);
        f(SenderRef::Owned(owned))
    } else {
        let s = slot
            .as_deref_mut()
            .ok_or_else(|| Failure::invalid("the sender is closed"))?;
        f(SenderRef::Borrowed(s))
    }
}

/// A sender, borrowed for a send or taken for close and abort.
enum SenderRef<'a, 'r> {
    Borrowed(&'a mut ChannelSender<'r>),
    Owned(Box<ChannelSender<'r>>),
}

/// Opens a channel from this worker to the caller of the call being handled, announces it, and
/// stores its writing end in `*sender`. The host takes it with `knit_ticket_channel`. Only in a
/// handler added as streaming (`knit_handlers_add_streaming`, `knit_worker_handle_streaming`):
/// otherwise `KNIT_INVALID_ARGUMENT`. `KNIT_WOULD_BLOCK` when every channel slot of the region
/// is taken (see `knit_config_set_channels`).
///
/// Ownership: the sender belongs to the handler call: close it with `knit_sender_close` (the
/// host then sees the end of the stream) or `knit_sender_abort`; one still open when the
/// handler returns is aborted with `KNIT_CANCELLED`.
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
        let (ctx, list) = unsafe { (current.context(), current.senders()) };
        let opened = Box::new(ctx.open_channel_to_host()?);
        let key: *mut KnitSender = std::ptr::from_ref(&*opened).cast_mut().cast();
        list.borrow_mut().push(Some(opened));
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(sender, key) };
        Ok(())
    })
}

/// Sends `len` bytes at `data` (content type `content_type`) on the channel, waiting while its
/// ring is full (backpressure: nothing is dropped). Fails with `KNIT_CHANNEL_ABORTED` when the
/// host aborted the channel, `KNIT_PEER_DIED` when the host died.
///
/// Ownership: the bytes are copied into the channel.
/// Thread safety: only inside the handler that opened the channel, on its thread.
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
        with_sender(sender, false, |s| match s {
            SenderRef::Borrowed(s) => s.send_typed(content_type, payload).map_err(Failure::from),
            SenderRef::Owned(_) => Err(Failure::invalid("internal: sender taken for a send")),
        })
    })
}

/// Like `knit_sender_send` with content type `KNIT_CONTENT_BYTES`, but never waits: when the
/// message's first record does not fit now, returns `KNIT_WOULD_BLOCK` and nothing is sent.
///
/// Thread safety: only inside the handler that opened the channel, on its thread.
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
        with_sender(sender, false, |s| match s {
            SenderRef::Borrowed(s) => s.try_send(payload).map_err(Failure::from),
            SenderRef::Owned(_) => Err(Failure::invalid("internal: sender taken for a send")),
        })
    })
}

/// Closes the channel: the host receives every message sent, then the end of the stream
/// (`knit_receiver_recv` returns `KNIT_CHANNEL_CLOSED`).
///
/// Ownership: the sender is gone afterwards, whatever the status.
/// Thread safety: only inside the handler that opened the channel, on its thread.
#[no_mangle]
pub extern "C" fn knit_sender_close(sender: *mut KnitSender) -> KnitStatus {
    guard("knit_sender_close", || {
        with_sender(sender, true, |s| match s {
            SenderRef::Owned(s) => s.close().map_err(Failure::from),
            SenderRef::Borrowed(_) => Err(Failure::invalid("internal: sender borrowed for close")),
        })
    })
}

/// Aborts the channel with status `code`: the host's receives fail with
/// `KNIT_CHANNEL_ABORTED` (the message names `code`) and messages not yet received are
/// discarded.
///
/// Ownership: the sender is gone afterwards, whatever the status.
/// Thread safety: only inside the handler that opened the channel, on its thread.
#[no_mangle]
pub extern "C" fn knit_sender_abort(sender: *mut KnitSender, code: KnitStatus) -> KnitStatus {
    guard("knit_sender_abort", || {
        with_sender(sender, true, |s| match s {
            SenderRef::Owned(s) => s.abort(code).map_err(Failure::from),
            SenderRef::Borrowed(_) => Err(Failure::invalid("internal: sender borrowed for abort")),
        })
    })
}

/// The object behind a `knit_receiver` handle.
struct ReceiverObject(Mutex<Receiver>);

impl Object for ReceiverObject {
    type Opaque = KnitReceiver;
    const KIND: &'static str = "knit_receiver";
}

/// Waits until the worker running the ticket's call opens its channel, and stores the reading
/// end in `*receiver`. `KNIT_CHANNEL_CLOSED` when the call ends without opening one. Take the
/// channel before waiting for the ticket's outcome: a worker that fills the channel waits for
/// the host to read it before it can finish the call.
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
        let t = handle::get::<TicketObject>(ticket)?;
        let reader = lock(&t.0).future.channel()?;
        let h = handle::register(ReceiverObject(Mutex::new(reader)))?;
        // SAFETY: checked non-NULL; writable by the caller's contract.
        unsafe { store(receiver, h) };
        Ok(())
    })
}

/// Waits for the next message of the channel and stores it in `*message` (a `knit_response`:
/// its bytes and content type). Returns `KNIT_CHANNEL_CLOSED` at the end of the stream (every
/// message was received), `KNIT_CHANNEL_ABORTED` when the worker aborted it, `KNIT_PEER_DIED`
/// when the worker died; `*message` is NULL then.
///
/// Ownership: the caller owns the message and frees it with `knit_response_free`.
/// Thread safety: safe from any thread; receives on one receiver are serialised.
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
        let r = handle::get::<ReceiverObject>(receiver)?;
        let got = lock(&r.0).recv()?;
        match got {
            Some(m) => {
                let h = response::register(m.content_type, m.bytes)?;
                // SAFETY: checked non-NULL; writable by the caller's contract.
                unsafe { store(message, h) };
                Ok(())
            }
            None => Err(Failure::new(
                knit_core::ErrorCode::ChannelClosed,
                "end of stream: the worker closed the channel",
            )),
        }
    })
}

/// Aborts the channel with status `code`: the worker's sends fail with
/// `KNIT_CHANNEL_ABORTED`.
///
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_receiver_abort(
    receiver: *const KnitReceiver,
    code: KnitStatus,
) -> KnitStatus {
    guard("knit_receiver_abort", || {
        let r = handle::get::<ReceiverObject>(receiver)?;
        let result = lock(&r.0).abort(code);
        result.map_err(Failure::from)
    })
}

/// Frees a receiver; a channel not read to its end is aborted with `KNIT_CANCELLED`.
///
/// Ownership: the handle is invalid afterwards.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_receiver_free(receiver: *mut KnitReceiver) -> KnitStatus {
    guard("knit_receiver_free", || {
        handle::remove::<ReceiverObject>(receiver).map(drop)
    })
}
