//! The serve loop of one worker (spec/05): attach (PART-2), HELLO (MBX-2), read requests, run
//! handlers, respond, park when idle, watch the host (LIVE-4) and the poison word (LIVE-6),
//! detach (PART-5).

mod sink;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;

use std::cell::RefCell;

use knit_core::channel::{self, ChannelEnd, ChannelReader, EndRole};
use knit_core::fntable::FunctionTable;
use knit_core::layout::ParticipantState;
use knit_core::mailbox::{Outgoing, WorkerEvent, WorkerMailbox, WorkerResponses};
use knit_core::message::Payload;
use knit_core::participant::{Identity, Participant};
use knit_core::region::Region;
use knit_core::ring::RingRef;
use knit_core::shared::SharedMem;
use knit_core::wait::Doorbell;
use knit_core::ErrorCode;

use super::channel::ChannelSender;
use super::inputs::Inputs;
use super::link::{ChannelLink, InputLink, LoopLink};
use super::writer::ResponseWriter;
use super::{Context, Worker};
use crate::clock::monotonic_ns;
use crate::error::{Error, Result};
use crate::futex::Futex;
use crate::handler::{HandlerKind, InPlaceFn, Request};
use crate::identity::ProcessIdentity;
use crate::liveness::{peer_status, PeerStatus};
use crate::region_handle::{RegionHandle, IMPL_NAME};
use crate::spin::{wait, Stop};
use sink::RingSink;

/// How a serve loop ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServeOutcome {
    /// The host sent SHUTDOWN and every request read before it was answered (MBX-3).
    Shutdown,
    /// The pool stopped a thread worker directly (its process is the host's).
    Stopped,
}

/// Heartbeats are written at most this often (PART-7 asks for at least once a second).
const HEARTBEAT_EVERY_NS: u64 = 250_000_000;
/// How often the host's process identity is looked up in `/proc` (three system calls and a few
/// thousand instructions). The waiter checks before every park, and parks last at most 50 ms
/// (WAIT-4), so the host's death is still noticed within about 60 ms (LIVE-4); in between only
/// the host's entry in shared memory is read.
const HOST_PROCESS_CHECK_EVERY_NS: u64 = 10_000_000;

/// Why the loop stops before SHUTDOWN.
enum Halt {
    Stopped,
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Self {
        Halt::Failed(e)
    }
}

/// What to answer a request with.
enum Reply {
    Ok {
        content_type: u32,
        bytes: Vec<u8>,
    },
    Err {
        status: u32,
        message: String,
    },
    /// The handler's [`super::ResponseWriter`] already wrote the response (CALL-3: nothing
    /// more is sent for the call).
    Sent,
}

/// A request's header fields, copied out of the ring.
#[derive(Clone, Copy)]
struct Call {
    request_id: u64,
    function_id: u32,
    content_type: u32,
    deadline_ns: u64,
}

/// What the loop does after it released the request's records.
enum Todo {
    Reply(u64, Reply),
    /// Run a streaming handler on a private copy (or the length of an unavailable payload).
    Streaming(Call, Result<Vec<u8>, u64>),
}

/// What the loop does for a streaming handler's channels (spec/06): the response half of the
/// mailbox is lent to it for the announcements (CHAN-2).
struct StreamLink<'s, 'a, 'w, 'm> {
    session: &'s Session<'a, 'w>,
    mbx: RefCell<&'m mut WorkerResponses<'a>>,
}

impl ChannelLink for StreamLink<'_, '_, '_, '_> {
    fn open_to_host(&self, tag: u64) -> Result<ChannelSender<'_>> {
        let s = self.session;
        // CHAN-1, CHAN-11: this worker writes, the host reads.
        let opened = channel::open(&s.region, s.slot, 0, EndRole::Writer, tag)
            .map_err(|e| self.fail(e))?
            .ok_or_else(|| {
                Error::protocol(ErrorCode::WouldBlock, "no free channel slot", String::new())
            })?;
        let announcement = opened.announcement();
        let writer =
            match channel::attach(&s.region, announcement, s.slot, 0).map_err(|e| self.fail(e))? {
                ChannelEnd::Writer(w) => w,
                ChannelEnd::Reader(_) => {
                    return Err(Error::protocol(
                        ErrorCode::BadChannel,
                        "opened as writer, attached as reader",
                        String::new(),
                    ));
                }
            };
        // CHAN-2: announce it on the response ring, waiting for room.
        loop {
            let seen_head = s.responses.load_head();
            let sent = self
                .mbx
                .borrow_mut()
                .send_channel_open(&announcement)
                .map_err(|e| self.fail(e))?;
            if sent.published {
                self.ring_host();
            }
            if sent.done {
                break;
            }
            self.wait(&mut || s.responses.load_head() != seen_head)?;
        }
        Ok(ChannelSender::new(writer, self))
    }
}

impl LoopLink for StreamLink<'_, '_, '_, '_> {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<()> {
        self.session.wait(ready)
    }

    fn ring_host(&self) {
        self.session.ring_host();
    }

    fn fail(&self, e: knit_core::Error) -> Error {
        self.session.fail(e)
    }
}

impl LoopLink for Session<'_, '_> {
    fn wait(&self, ready: &mut dyn FnMut() -> bool) -> Result<()> {
        match self.wait_for(ready) {
            Ok(()) => Ok(()),
            Err(Halt::Stopped) => Err(Error::protocol(
                ErrorCode::Shutdown,
                "worker stopped",
                String::new(),
            )),
            Err(Halt::Failed(e)) => Err(e),
        }
    }

    fn ring_host(&self) {
        self.host_bell.ring(&Futex);
    }

    fn fail(&self, e: knit_core::Error) -> Error {
        match self.violation(e) {
            Halt::Failed(e) => e,
            Halt::Stopped => Error::from(e),
        }
    }
}

impl InputLink for Session<'_, '_> {
    fn take_input(&self, tag: u64) -> Option<Result<ChannelReader<'_>, knit_core::Error>> {
        self.inputs.take(tag)
    }

    fn as_loop(&self) -> &dyn LoopLink {
        self
    }
}

/// Everything the loop needs besides the mailbox end (kept apart so that a request borrowed in
/// place from the mailbox can be handled while `Session` is borrowed).
struct Session<'a, 'w> {
    region: Region<'a>,
    slot: u32,
    me: Participant<'a>,
    host: Participant<'a>,
    my_bell: Doorbell<'a>,
    host_bell: Doorbell<'a>,
    requests: RingRef<'a>,
    responses: RingRef<'a>,
    /// This mailbox's cancel table (spec/05 §5.5), located once per session.
    cancel: SharedMem<'a>,
    worker: &'w Worker,
    last_heartbeat: std::cell::Cell<u64>,
    /// `CLOCK_MONOTONIC` of the last `/proc` check of the host (0: never).
    last_host_check: std::cell::Cell<u64>,
    /// Channels the host opened for calls not yet run (spec/06).
    inputs: Inputs<'a>,
}

/// Serves participant `slot` of `handle` with `worker`'s handlers.
pub(super) fn serve(handle: &RegionHandle, slot: u32, worker: &Worker) -> Result<ServeOutcome> {
    let region = handle.region();
    let geometry = *region.geometry();
    if slot == 0 || slot > geometry.worker_slots() {
        return Err(Error::from(knit_core::Error::value(
            ErrorCode::InvalidArgument,
            "worker slot",
            slot.into(),
            geometry.worker_slots().into(),
        )));
    }
    // FN-1 is checked before the entry is claimed, so a bad table leaves the slot untouched.
    let table = FunctionTable::new(worker.handlers.table())?.encode();
    let me = region.participant(slot)?;
    // PART-2: claim RESERVED -> ATTACHING, identity, ACTIVE. A thread worker's identity is the
    // host process's (PART-9), which `current` gives too.
    let id = ProcessIdentity::current()?;
    me.claim()?;
    let identity = Identity {
        pid: id.pid,
        start_time: id.start_time,
        impl_name: IMPL_NAME,
    };
    let now = monotonic_ns();
    me.activate(&identity, now)?;
    let host = region.participant(0)?;
    let mailbox = region.mailbox(slot - 1)?;
    let session = Session {
        region,
        slot,
        me,
        host,
        my_bell: me.doorbell()?,
        host_bell: host.doorbell()?,
        requests: mailbox.request,
        responses: mailbox.response,
        cancel: mailbox.cancel,
        worker,
        last_heartbeat: std::cell::Cell::new(now),
        last_host_check: std::cell::Cell::new(0),
        inputs: Inputs::new(geometry.inflight_max()),
    };
    let outcome = WorkerMailbox::new(mailbox, geometry.inflight_max(), geometry.max_message_len())
        .map_err(Error::from)
        .and_then(|mut mbx| session.run(&mut mbx, &table));
    // Channels the host opened for calls that will not run are aborted (CHAN-5).
    session.inputs.clear();
    // PART-5, PART-10: DETACHED after the last ring write (a DEAD set by the host stays), then
    // wake the host (WAIT-5).
    let _ = session.me.detach();
    session.host_bell.ring(&Futex);
    outcome
}

impl<'a> Session<'a, '_> {
    fn run(&self, mbx: &mut WorkerMailbox<'a>, table: &[u8]) -> Result<ServeOutcome> {
        match self.run_inner(mbx, table) {
            Ok(outcome) => Ok(outcome),
            Err(Halt::Stopped) => Ok(ServeOutcome::Stopped),
            Err(Halt::Failed(e)) => Err(e),
        }
    }

    fn run_inner(&self, mbx: &mut WorkerMailbox<'a>, table: &[u8]) -> Result<ServeOutcome, Halt> {
        // The request half is read while the response half is written: a request borrowed in
        // place can be answered in place (zero copy on both rings).
        let (requests, responses) = mbx.split();
        // MBX-2: HELLO first.
        let mut hello = responses
            .start_hello(table)
            .map_err(|e| self.violation(e))?;
        self.send(responses, &mut hello, false)?;
        loop {
            // Taken before the poll, so a record published after it wakes the park below.
            let seen_tail = self.requests.load_tail();
            let polled = requests.poll().map_err(|e| self.violation(e))?;
            let mut released = polled.released;
            let step = match polled.event {
                None => None,
                Some(WorkerEvent::Shutdown) => return Ok(ServeOutcome::Shutdown),
                Some(WorkerEvent::ChannelOpen(open)) => {
                    // CHAN-2: held until the call it belongs to takes it.
                    if self
                        .inputs
                        .accept(&self.region, self.slot, open)
                        .map_err(|e| self.violation(e))?
                    {
                        self.ring_host();
                    }
                    Some(None)
                }
                Some(WorkerEvent::Request(r)) => {
                    let call = Call {
                        request_id: r.request_id,
                        function_id: r.function_id,
                        content_type: r.content_type,
                        deadline_ns: r.deadline_ns,
                    };
                    if self.worker.handlers.is_streaming(r.function_id) {
                        // Copied out so that the handler may write the response ring (its
                        // channel announcements) while it runs.
                        let len = r.payload.bytes().len() as u64;
                        let owned = r.payload.into_vec().ok_or(len);
                        Some(Some(Todo::Streaming(call, owned)))
                    } else {
                        // The handler reads the request in place; an in-place handler writes
                        // its response meanwhile.
                        let payload = match &r.payload {
                            Payload::Unavailable { len } => Err(*len),
                            p => Ok(p.bytes()),
                        };
                        let reply = self.run_request(&call, payload, None, Some(&mut *responses));
                        r.payload.release();
                        Some(Some(Todo::Reply(call.request_id, reply?)))
                    }
                }
            };
            released |= requests.publish_head();
            // WAIT-6: the host may wait for request space. A reply written next carries this
            // ring: one SeqCst fence after both the head and the response's tail covers both
            // (WAIT-5), a fence less per call, and the host parked for the response is not
            // woken once for nothing by the head alone. Anything else rings now (a streaming
            // handler may run long).
            let reply_next = matches!(step, Some(Some(Todo::Reply(..))));
            if released && !reply_next {
                self.host_bell.ring(&Futex);
            }
            match step {
                Some(Some(Todo::Reply(request_id, reply))) => {
                    self.respond(responses, request_id, &reply, released)?;
                    self.call_ended(request_id);
                }
                Some(Some(Todo::Streaming(call, payload))) => {
                    let reply = {
                        let link = StreamLink {
                            session: self,
                            mbx: RefCell::new(&mut *responses),
                        };
                        let payload = match &payload {
                            Ok(bytes) => Ok(bytes.as_slice()),
                            Err(len) => Err(*len),
                        };
                        self.run_request(&call, payload, Some(&link), None)?
                    };
                    self.respond(responses, call.request_id, &reply, false)?;
                    self.call_ended(call.request_id);
                }
                Some(None) => {}
                None if released => {}
                None => self.idle(seen_tail)?,
            }
        }
    }

    /// After call `request_id` was answered: the host's channels for it (or for calls that will
    /// never come) that its handler did not take are aborted.
    fn call_ended(&self, request_id: u64) {
        if self.inputs.drop_up_to(request_id) {
            self.ring_host();
        }
    }

    /// Decides and runs one request (CALL-5, CANCEL-3, CALL-9, CALL-6). `payload` is the
    /// request's bytes, or the length of a payload that could not be held. An in-place
    /// handler writes its response through `responses` (then the reply is [`Reply::Sent`]);
    /// without them it runs into a private buffer.
    fn run_request(
        &self,
        call: &Call,
        payload: Result<&[u8], u64>,
        link: Option<&dyn ChannelLink>,
        responses: Option<&mut WorkerResponses<'a>>,
    ) -> Result<Reply, Halt> {
        let Call {
            request_id,
            function_id,
            content_type,
            deadline_ns,
        } = *call;
        let handlers = &self.worker.handlers;
        let Some(kind) = handlers.kind(function_id) else {
            // CALL-5
            return Ok(error(
                ErrorCode::UnknownFunction,
                format!("no function with id {function_id}"),
            ));
        };
        let ctx = Context::new(
            request_id,
            deadline_ns,
            self.cancel_entry(request_id),
            content_type,
            self.slot,
            link,
        )
        .with_input(self);
        // CANCEL-3: a request cancelled before it ran is answered without running it.
        if ctx.is_cancelled() {
            return Ok(error(
                ErrorCode::Cancelled,
                "cancelled before it ran".into(),
            ));
        }
        // CALL-9
        if deadline_ns != 0 && monotonic_ns() >= deadline_ns {
            return Ok(error(
                ErrorCode::DeadlineExceeded,
                "deadline passed before it ran".into(),
            ));
        }
        let payload = match payload {
            Ok(bytes) => bytes,
            Err(len) => {
                return Ok(error(
                    ErrorCode::PayloadTooLarge,
                    format!("request payload of {len} bytes could not be held"),
                ));
            }
        };
        let request = Request {
            payload,
            content_type,
        };
        let name = handlers.name(function_id).unwrap_or("?");
        let f = match (kind, responses) {
            (HandlerKind::InPlace(f), Some(responses)) => {
                return self.run_in_place(f, &ctx, request, responses, name);
            }
            (HandlerKind::InPlace(_), None) => handlers.get(function_id),
            (HandlerKind::Bytes(f) | HandlerKind::Streaming(f), _) => Some(f),
        };
        let Some(f) = f else {
            return Ok(error(
                ErrorCode::UnknownFunction,
                format!("no function with id {function_id}"),
            ));
        };
        // CALL-6: a panic is a failure of this call only; the loop keeps serving.
        Ok(match catch_unwind(AssertUnwindSafe(|| f(&ctx, request))) {
            Ok(Ok(bytes)) => Reply::Ok {
                content_type: ctx.content_type(),
                bytes,
            },
            Ok(Err(e)) => Reply::Err {
                status: e.code,
                message: e.message,
            },
            Err(panic) => panicked(name, &*panic),
        })
    }

    /// Runs an in-place handler with a [`ResponseWriter`] over the response ring: the
    /// response is written by the handler, in place when it fits one record (CALL-3: exactly
    /// once; a failure after it is not answered again).
    fn run_in_place(
        &self,
        f: &InPlaceFn,
        ctx: &Context<'_>,
        request: Request<'_>,
        responses: &mut WorkerResponses<'a>,
        name: &str,
    ) -> Result<Reply, Halt> {
        let mut sink = RingSink::new(self, responses, ctx.request_id());
        // CALL-6: a panic is a failure of this call only; the loop keeps serving. A loan
        // the panic abandoned was never committed, so nothing of it reaches the host.
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            f(ctx, request, ResponseWriter::new(&mut sink, ctx))
        }));
        if let Some(halt) = sink.take_halt() {
            return Err(halt);
        }
        if sink.sent() {
            return Ok(Reply::Sent);
        }
        Ok(match outcome {
            // A `Responded` from another call proves nothing for this one.
            Ok(Ok(_)) => error(
                ErrorCode::HandlerFailed,
                format!("handler `{name}` returned without writing its result"),
            ),
            Ok(Err(e)) => Reply::Err {
                status: e.code,
                message: e.message,
            },
            Err(panic) => panicked(name, &*panic),
        })
    }

    /// The cancel entry of `request_id` (spec/05 §5.5), for [`Context::is_cancelled`].
    fn cancel_entry(&self, request_id: u64) -> Option<&std::sync::atomic::AtomicU64> {
        let entries = u64::from(self.region.geometry().inflight_max());
        let index = usize::try_from(request_id & entries.checked_sub(1)?).ok()?;
        self.cancel.atomic_u64(index.checked_mul(8)?).ok()
    }

    /// Answers `request_id` with `reply`. `ring_owed`: a request-ring head was stored and its
    /// ring (WAIT-6) left to this answer, which rings once its response is published, or
    /// right away when there is nothing more to publish or it must wait for room first.
    fn respond(
        &self,
        mbx: &mut WorkerResponses<'_>,
        request_id: u64,
        reply: &Reply,
        ring_owed: bool,
    ) -> Result<(), Halt> {
        let mut out = match reply {
            Reply::Ok {
                content_type,
                bytes,
            } => mbx.start_response(request_id, 0, *content_type, bytes),
            Reply::Err { status, message } => mbx.error_response(request_id, *status, message),
            Reply::Sent => {
                if ring_owed {
                    self.host_bell.ring(&Futex);
                }
                return Ok(());
            }
        };
        self.send(mbx, &mut out, ring_owed)
    }

    /// Writes `out` completely, waiting for response space (WAIT-6) while watching the host.
    /// `ring_owed`: a ring for an earlier store is due; the first write's ring covers it, and
    /// it is made before any wait (the host may itself be waiting for that store).
    ///
    /// A write loads no position of the host's unless the ring is short of room: the
    /// response ring's head is on a cache line the host writes after every response, so
    /// loading it on every call costs a transfer between cores. Once a write is short, the
    /// head to wait on is taken and the write tried once more before waiting, so that room
    /// made in between is not waited for in vain.
    fn send(
        &self,
        mbx: &mut WorkerResponses<'_>,
        out: &mut Outgoing<'_>,
        mut ring_owed: bool,
    ) -> Result<(), Halt> {
        let mut seen_head = None;
        loop {
            let sent = mbx.write(out).map_err(|e| self.violation(e))?;
            if sent.published || ring_owed {
                // WAIT-5
                self.host_bell.ring(&Futex);
                ring_owed = false;
            }
            if sent.done {
                return Ok(());
            }
            match seen_head.take() {
                None => seen_head = Some(self.responses.load_head()),
                Some(seen) => self.wait_for(|| self.responses.load_head() != seen)?,
            }
        }
    }

    fn idle(&self, seen_tail: u64) -> Result<(), Halt> {
        self.wait_for(|| self.requests.load_tail() != seen_tail)
    }

    /// Spins, then parks on the worker's own doorbell (WAIT-1 to WAIT-4) until `ready`,
    /// checking the host and the region at least every 50 ms.
    fn wait_for(&self, ready: impl FnMut() -> bool) -> Result<(), Halt> {
        match wait(&self.my_bell, self.worker.spin, 0, ready, || self.check()) {
            // No deadline was given, so `Deadline` cannot end it; either way, re-check.
            Ok(()) | Err(Stop::Deadline) => Ok(()),
            Err(Stop::Failed(h)) => Err(h),
        }
    }

    /// LIVE-4, LIVE-6, PART-7 and the pool's stop request for thread workers.
    fn check(&self) -> Result<(), Halt> {
        if self
            .worker
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Acquire))
        {
            return Err(Halt::Stopped);
        }
        // LIVE-6, LIVE-7: a poisoned region is left.
        let poison = self.region.poison_code();
        if poison != 0 {
            return Err(Halt::Failed(Error::from(knit_core::Error::value(
                ErrorCode::Poisoned,
                "poison_code",
                poison.into(),
                u64::from(self.region.poisoned_by()),
            ))));
        }
        // LIVE-4: the host is gone (or garbage in its entry, a violation). Its entry is read
        // every time; its process is looked up at most every HOST_PROCESS_CHECK_EVERY_NS.
        let now = monotonic_ns();
        let status =
            if now.saturating_sub(self.last_host_check.get()) >= HOST_PROCESS_CHECK_EVERY_NS {
                self.last_host_check.set(now);
                peer_status(&self.host)
            } else {
                match self.host.state() {
                    Ok(ParticipantState::Detached) => Ok(PeerStatus::Detached),
                    Ok(ParticipantState::Dead) => Ok(PeerStatus::Dead),
                    Ok(ParticipantState::Active) => Ok(PeerStatus::Active),
                    Ok(starting) => Ok(PeerStatus::Starting(starting)),
                    Err(e) => Err(e),
                }
            };
        match status {
            Ok(PeerStatus::Active) => {}
            Ok(status) => {
                return Err(Halt::Failed(Error::protocol(
                    ErrorCode::PeerDied,
                    "host",
                    format!("{status:?}"),
                )));
            }
            Err(e) => return Err(self.violation(e)),
        }
        // The host gave up on this worker (LIVE-2): stop using the entry.
        if self.me.state().map_err(|e| self.violation(e))? == ParticipantState::Dead {
            return Err(Halt::Failed(Error::protocol(
                ErrorCode::SlotTaken,
                "host marked this worker DEAD",
                String::new(),
            )));
        }
        if now.saturating_sub(self.last_heartbeat.get()) >= HEARTBEAT_EVERY_NS {
            self.last_heartbeat.set(now);
            let _ = self.me.set_heartbeat(now);
        }
        Ok(())
    }

    /// A core error found while reading or writing the rings: a violation poisons the region
    /// (ERR-2, RING-13) and wakes the host so that it notices (LIVE-6).
    fn violation(&self, e: knit_core::Error) -> Halt {
        if e.code.is_violation() && self.region.poison(e.code, Some(self.slot)) {
            self.host_bell.ring(&Futex);
        }
        Halt::Failed(Error::from(e))
    }
}

/// The failure of a handler that panicked (CALL-6), naming it and the panic's text.
fn panicked(name: &str, panic: &(dyn std::any::Any + Send)) -> Reply {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    error(
        ErrorCode::HandlerFailed,
        format!("handler `{name}` panicked: {text}"),
    )
}

fn error(code: ErrorCode, message: String) -> Reply {
    Reply::Err {
        status: code as u32,
        message,
    }
}
