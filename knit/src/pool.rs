//! The host side: a [`Pool`] of workers (threads or processes) behind one region, with
//! blocking and async calls, least-outstanding dispatch, deadlines, cancellation, liveness and
//! restart.
//!
//! ```no_run
//! use knit::{Handlers, Pool};
//! let handlers = Handlers::new().handle("hello", |_ctx, req| Ok(format!("Hello, {}", req.text()?).into_bytes()));
//! let pool = Pool::builder().workers(2).threads(handlers).build()?;
//! let answer = pool.call("hello", "World!")?;
//! assert_eq!(answer.text(), Some("Hello, World!"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod builder;
mod channel;
mod external;
mod future;
mod inner;
mod input;
mod monitor;
mod names;
mod pending;
mod reactor;
mod sender;
mod slot;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use knit_core::layout::ParticipantState;
use knit_core::ErrorCode;

pub use builder::{Backpressure, PoolBuilder};
pub use channel::{Message, Receiver};
pub use future::CallFuture;
pub use input::Sender;

use self::builder::Config;
use self::inner::{lock, HostState, Inner, Runner, Signal, WorkerSlot, DEAD, READY, STARTING};
use self::pending::PendingTable;
use self::slot::CallSlot;
use crate::call::{CallError, CallOptions, CallResult, Payload};
use crate::clock::monotonic_ns;
use crate::error::{Error, Result};
use crate::futex::Futex;
use crate::region_handle::RegionHandle;
use crate::spin::{deadline_after, wait, SpinPolicy, Stop};

/// A host: one region, one mailbox per worker. `Send + Sync`; share it with an `Arc`.
/// Dropping it shuts it down ([`Pool::shutdown`]).
pub struct Pool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("region", &self.inner.region.name())
            .field("workers", &self.inner.workers.len())
            .finish_non_exhaustive()
    }
}

/// A snapshot of one worker, for monitoring and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Participant index (mailbox `index - 1`).
    pub index: u32,
    /// Ready for calls (HELLO received for the current epoch, MBX-2).
    pub ready: bool,
    /// Declared dead and not (yet) restarted.
    pub dead: bool,
    /// Calls outstanding on it.
    pub outstanding: usize,
    /// Times it was started (1 + restarts).
    pub starts: u64,
    /// The process id of a process worker.
    pub pid: Option<u32>,
}

impl Pool {
    /// A builder with one worker and default policies.
    pub fn builder() -> PoolBuilder {
        PoolBuilder::default()
    }

    fn start(config: Config) -> Result<Pool> {
        let handle = RegionHandle::create(&config.params)?;
        let external = config.kind.is_external();
        match Self::assemble(config, &handle) {
            Ok(pool) if external => Ok(pool),
            Ok(pool) => pool.await_ready().map(|()| pool),
            Err(e) => {
                let _ = handle.unlink();
                Err(e)
            }
        }
    }

    fn assemble(config: Config, handle: &RegionHandle) -> Result<Pool> {
        // SAFETY: every view derived from `region` is stored in `Inner`, whose last field is a
        // clone of `handle`: the views are dropped before it (field order) and are handed out
        // only as borrows of `Inner`.
        let region = unsafe { handle.region_unbounded() };
        let mut workers = Vec::new();
        for index in 1..=config.workers {
            let participant = region.participant(index)?;
            workers.push(WorkerSlot {
                index,
                state: Mutex::new(HostState {
                    mailbox: None,
                    pending: PendingTable::new(region.geometry().inflight_max()),
                }),
                phase: AtomicU8::new(STARTING),
                outstanding: AtomicUsize::new(0),
                table: Mutex::new(None),
                participant,
                bell: participant.doorbell()?,
                mailbox: region.mailbox(index - 1)?,
                runner: Mutex::new(Runner::None),
                started_ns: AtomicU64::new(monotonic_ns()),
                restart_after_ns: AtomicU64::new(0),
                failure: Mutex::new(None),
                restarts: AtomicU64::new(0),
                lifecycle: Mutex::new(()),
                released: AtomicBool::new(false),
                claimed_ns: AtomicU64::new(0),
                claim_unknown: AtomicBool::new(false),
                drained_to: AtomicU64::new(inner::NOT_DRAINED_EMPTY),
                uid: inner::next_slot_uid(),
                table_gen: AtomicU64::new(0),
            });
        }
        let inner = Arc::new(Inner {
            workers,
            host_bell: region.participant(0)?.doorbell()?,
            region_view: region,
            config,
            closing: AtomicBool::new(false),
            workers_released: AtomicBool::new(false),
            poisoned: AtomicBool::new(false),
            async_outstanding: AtomicUsize::new(0),
            monitor_signal: Signal::default(),
            reactor_signal: Signal::default(),
            monitor: Mutex::new(None),
            reactor: Mutex::new(None),
            sender: Mutex::new(None),
            channels: Mutex::new(HashMap::new()),
            attached: Mutex::new(std::collections::HashSet::new()),
            region: handle.clone(),
        });
        if inner.config.kind.is_external() {
            // PART-11: every entry is reserved before anyone learns the region's name.
            for w in &inner.workers {
                monitor::start_worker(&inner, w);
                if w.phase() == DEAD {
                    return Err(Error::protocol(
                        ErrorCode::SlotTaken,
                        "cannot reserve a worker entry",
                        monitor::start_error(&inner, w).message,
                    ));
                }
            }
        }
        let me = Arc::clone(&inner);
        let monitor = std::thread::Builder::new()
            .name("knit-monitor".to_owned())
            .spawn(move || monitor::run(&me))
            .map_err(|e| Error::os("spawn", "knit-monitor thread", e))?;
        *lock(&inner.monitor) = Some(monitor);
        Ok(Pool { inner })
    }

    /// Waits until every worker sent its HELLO, for at most the start timeout.
    fn await_ready(&self) -> Result<()> {
        let inner = &self.inner;
        let deadline = deadline_after(Some(inner.config.start_timeout));
        let ready = || {
            inner.workers.iter().all(|w| {
                if w.phase() == STARTING {
                    inner.pump(w);
                }
                w.phase() == READY
            })
        };
        let check = || match inner.workers.iter().find(|w| w.phase() == DEAD) {
            Some(w) => Err(monitor::start_error(inner, w)),
            None => Ok(()),
        };
        let outcome = wait(&inner.host_bell, SpinPolicy::NoSpin, deadline, ready, check);
        let failure = match outcome {
            Ok(()) => return Ok(()),
            Err(Stop::Failed(e)) => {
                Error::protocol(ErrorCode::PeerDied, "worker failed at start", e.message)
            }
            Err(Stop::Deadline) => {
                let late: Vec<String> = inner
                    .workers
                    .iter()
                    .filter(|w| w.phase() != READY)
                    .map(|w| w.index.to_string())
                    .collect();
                Error::protocol(
                    ErrorCode::TimedOut,
                    "workers did not say HELLO in time",
                    format!(
                        "worker(s) {} ({}) within {:?}",
                        late.join(", "),
                        inner.config.kind.describe(),
                        inner.config.start_timeout
                    ),
                )
            }
        };
        self.shutdown();
        Err(failure)
    }

    /// The region's name (`knit-` and 32 hex digits, MAP-2).
    pub fn region_name(&self) -> Option<&str> {
        self.inner
            .region
            .name()
            .map(crate::name::RegionName::as_str)
    }

    /// The pool's region.
    pub fn region(&self) -> &RegionHandle {
        &self.inner.region
    }

    /// A snapshot of every worker.
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner
            .workers
            .iter()
            .map(|w| WorkerInfo {
                index: w.index,
                ready: w.phase() == READY,
                dead: w.phase() == DEAD,
                outstanding: w.outstanding.load(Ordering::Acquire),
                starts: w.restarts.load(Ordering::Acquire),
                pid: match &*lock(&w.runner) {
                    Runner::Process(child) => Some(child.id()),
                    // PART-3: an external worker's pid, read from its entry once published.
                    _ if self.inner.config.kind.is_external() => w
                        .participant
                        .snapshot()
                        .ok()
                        .and_then(|s| s.identity)
                        .map(|id| id.pid)
                        .filter(|&pid| pid != 0),
                    _ => None,
                },
            })
            .collect()
    }

    /// Calls function `name` with `payload` and waits for the result.
    pub fn call<'p>(&self, name: &str, payload: impl Into<Payload<'p>>) -> CallResult {
        self.call_with_options(name, payload, CallOptions::default())
    }

    /// Calls function `name` with per-call options (deadline, content type).
    pub fn call_with_options<'p>(
        &self,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> CallResult {
        self.call_routed(None, name, payload.into(), options)
    }

    /// [`Pool::call_with_options`] on worker `index` (1 to the number of workers, as in
    /// [`WorkerInfo::index`]) instead of the least busy one. A worker still starting is waited
    /// for (at most the start timeout and the call's deadline); `UNKNOWN_FUNCTION` when its
    /// HELLO lacks `name` (FN-2), `PEER_DIED` when it is dead or released,
    /// `INVALID_ARGUMENT` for an index out of range.
    pub fn call_on<'p>(
        &self,
        index: u32,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> CallResult {
        self.call_routed(Some(index), name, payload.into(), options)
    }

    fn call_routed(
        &self,
        on: Option<u32>,
        name: &str,
        payload: Payload<'_>,
        options: CallOptions,
    ) -> CallResult {
        let payload = with_content_type(payload, options);
        let deadline_ns = self.deadline(options);
        let (worker, function_id) = self.route(on, name, deadline_ns)?;
        let w = self.worker(worker)?;
        let slot = slot::take_spare();
        let outcome = self
            .inner
            .send(w, function_id, &payload, deadline_ns, &slot, false)
            .and_then(|id| {
                self.inner
                    .wait_response(w, id, &slot, deadline_ns, &mut None)
            });
        slot::give_back(slot);
        outcome
    }

    /// Calls `name` and runs `f` on the result bytes. When this thread reads the response
    /// itself and it is one record, `f` sees the bytes in place in the response ring, before
    /// the record is released (zero copy, MSG-5); otherwise it sees a private copy. The bytes
    /// come from another process: treat them as untrusted input (RING-15).
    pub fn call_with<'p, R>(
        &self,
        name: &str,
        payload: impl Into<Payload<'p>>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, CallError> {
        let options = CallOptions::default();
        let payload = payload.into();
        let deadline_ns = self.deadline(options);
        let (worker, function_id) = self.pick(name, deadline_ns)?;
        let w = self.worker(worker)?;
        let slot = slot::take_spare();
        let id = self
            .inner
            .send(w, function_id, &payload, deadline_ns, &slot, false)?;
        let mut f = Some(f);
        let mut out = None;
        let mut run = |bytes: &[u8]| {
            if let Some(f) = f.take() {
                out = Some(f(bytes));
            }
        };
        let response = {
            let mut hook: inner::Hook<'_> = Some((id, &mut run));
            self.inner
                .wait_response(w, id, &slot, deadline_ns, &mut hook)?
        };
        slot::give_back(slot);
        run(response.bytes());
        out.ok_or_else(|| CallError::new(ErrorCode::InvalidArgument, "the result was consumed"))
    }

    /// Starts a call and returns its future at once (the request is sent before this returns;
    /// with [`Backpressure::Wait`] a full ring makes this wait for room).
    pub fn call_async<'p>(&self, name: &str, payload: impl Into<Payload<'p>>) -> CallFuture {
        self.call_async_with_options(name, payload, CallOptions::default())
    }

    /// [`Pool::call_async`] with per-call options.
    pub fn call_async_with_options<'p>(
        &self,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> CallFuture {
        self.call_async_routed(None, name, payload.into(), options)
    }

    /// [`Pool::call_async_with_options`] on worker `index` (see [`Pool::call_on`]).
    pub fn call_async_on<'p>(
        &self,
        index: u32,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> CallFuture {
        self.call_async_routed(Some(index), name, payload.into(), options)
    }

    fn call_async_routed(
        &self,
        on: Option<u32>,
        name: &str,
        payload: Payload<'_>,
        options: CallOptions,
    ) -> CallFuture {
        let payload = with_content_type(payload, options);
        let deadline_ns = self.deadline(options);
        let picked = self
            .route(on, name, deadline_ns)
            .and_then(|(worker, function_id)| Ok((worker, function_id, self.worker(worker)?)));
        let (worker, function_id, w) = match picked {
            Ok(p) => p,
            Err(e) => return CallFuture::failed(e),
        };
        let slot = Arc::new(CallSlot::new());
        reactor::ensure_started(&self.inner);
        // A request that fits now is sent from this thread; any other (a full ring, a
        // fragmented payload) goes to the sender thread, so that this never blocks.
        match self
            .inner
            .send_now(w, function_id, &payload, deadline_ns, &slot)
        {
            Ok(Some(id)) => slot.set_id(id),
            Ok(None)
                if self.inner.config.backpressure == Backpressure::Error
                    && payload.bytes.len() <= self.inner.one_record_payload() =>
            {
                return CallFuture::failed(CallError::new(
                    ErrorCode::WouldBlock,
                    format!("worker {}: request ring or cancel table full", w.index),
                ));
            }
            Ok(None) => {
                let job = sender::Job {
                    worker,
                    function_id,
                    payload: payload.into_owned(),
                    deadline_ns,
                    slot: Arc::clone(&slot),
                };
                if let Err(e) = sender::submit(&self.inner, job) {
                    return CallFuture::failed(e);
                }
            }
            Err(e) => return CallFuture::failed(e),
        }
        self.inner.reactor_signal.notify();
        CallFuture::in_flight(Arc::clone(&self.inner), worker, slot)
    }

    /// Calls `name` with `payload` and opens a channel from the host to the worker that runs
    /// the call (spec/06): the handler takes it with [`crate::Context::take_input_channel`]
    /// and reads what the returned [`Sender`] sends, in order, until [`Sender::close`].
    ///
    /// ```no_run
    /// # let pool = knit::Pool::builder().channels(1, 65536).build()?;
    /// let (call, mut input) = pool.call_with_channel("digest", "")?;
    /// for chunk in [&b"many "[..], b"chunks"] {
    ///     input.send(chunk)?;
    /// }
    /// input.close()?;
    /// let digest = call.wait()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// The channel is announced on the worker's request ring right before the request (its
    /// tag is the request's id), so the worker holds it when the handler starts. This returns
    /// once both are written. `WOULD_BLOCK` when no channel slot is free
    /// ([`PoolBuilder::channels`] sets how many there are), and under [`Backpressure::Error`]
    /// when no request id is free (CALL-2); once a channel is opened it must be announced, so
    /// from there on this waits for ring room whatever the policy. The call's outcome comes
    /// through the [`CallFuture`]; dropping it cancels the call, and the handler's receive
    /// then fails with `CANCELLED`.
    pub fn call_with_channel<'p>(
        &self,
        name: &str,
        payload: impl Into<Payload<'p>>,
    ) -> Result<(CallFuture, Sender), CallError> {
        self.call_with_channel_options(name, payload, CallOptions::default())
    }

    /// [`Pool::call_with_channel`] with per-call options.
    pub fn call_with_channel_options<'p>(
        &self,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> Result<(CallFuture, Sender), CallError> {
        self.call_with_channel_routed(None, name, payload.into(), options)
    }

    /// [`Pool::call_with_channel_options`] on worker `index` (see [`Pool::call_on`]).
    pub fn call_with_channel_on<'p>(
        &self,
        index: u32,
        name: &str,
        payload: impl Into<Payload<'p>>,
        options: CallOptions,
    ) -> Result<(CallFuture, Sender), CallError> {
        self.call_with_channel_routed(Some(index), name, payload.into(), options)
    }

    fn call_with_channel_routed(
        &self,
        on: Option<u32>,
        name: &str,
        payload: Payload<'_>,
        options: CallOptions,
    ) -> Result<(CallFuture, Sender), CallError> {
        let payload = with_content_type(payload, options);
        let deadline_ns = self.deadline(options);
        let (worker, function_id) = self.route(on, name, deadline_ns)?;
        let w = self.worker(worker)?;
        let slot = Arc::new(CallSlot::new());
        reactor::ensure_started(&self.inner);
        let (id, writer, starts) =
            self.inner
                .send_with_channel(w, function_id, &payload, deadline_ns, &slot)?;
        slot.set_id(id);
        self.inner.reactor_signal.notify();
        let sender = Sender::new(writer, worker, starts, Arc::clone(&self.inner));
        let call = CallFuture::in_flight(Arc::clone(&self.inner), worker, slot);
        Ok((call, sender))
    }

    /// Calls `name` with a request of `len` bytes that `fill` writes straight into the request
    /// ring (loan, spec/03 §3.3: no copy). `len` must fit one record (about half the request
    /// ring); `INVALID_ARGUMENT` otherwise.
    pub fn call_loan(
        &self,
        name: &str,
        len: usize,
        content_type: u32,
        fill: impl FnOnce(&mut [u8]),
    ) -> CallResult {
        let options = CallOptions::default();
        let deadline_ns = self.deadline(options);
        let (worker, function_id) = self.pick(name, deadline_ns)?;
        let w = self.worker(worker)?;
        let slot = slot::take_spare();
        let id = self.inner.send_loan(
            w,
            function_id,
            len,
            content_type,
            deadline_ns,
            &slot,
            false,
            fill,
        )?;
        let outcome = self
            .inner
            .wait_response(w, id, &slot, deadline_ns, &mut None);
        slot::give_back(slot);
        outcome
    }

    /// [`Pool::call_loan`] that returns the call's future once the request is sent: `fill`
    /// writes the request in place on this thread before this returns (under
    /// [`Backpressure::Wait`] a full ring makes this wait for room first).
    pub fn call_loan_async(
        &self,
        name: &str,
        len: usize,
        options: CallOptions,
        fill: impl FnOnce(&mut [u8]),
    ) -> CallFuture {
        let deadline_ns = self.deadline(options);
        // Content type 0: bytes (spec/09).
        let content_type = options.content_type.unwrap_or(0);
        let sent = self
            .pick(name, deadline_ns)
            .and_then(|(worker, function_id)| {
                let w = self.worker(worker)?;
                let slot = Arc::new(CallSlot::new());
                reactor::ensure_started(&self.inner);
                let id = self.inner.send_loan(
                    w,
                    function_id,
                    len,
                    content_type,
                    deadline_ns,
                    &slot,
                    true,
                    fill,
                )?;
                slot.set_id(id);
                Ok((worker, slot))
            });
        match sent {
            Ok((worker, slot)) => {
                self.inner.reactor_signal.notify();
                CallFuture::in_flight(Arc::clone(&self.inner), worker, slot)
            }
            Err(e) => CallFuture::failed(e),
        }
    }

    fn deadline(&self, options: CallOptions) -> u64 {
        deadline_after(options.deadline.or(self.inner.config.default_deadline))
    }

    fn worker(&self, index: usize) -> Result<&WorkerSlot, CallError> {
        self.inner
            .workers
            .get(index)
            .ok_or_else(|| CallError::new(ErrorCode::InvalidArgument, "worker index"))
    }

    /// Dispatch to worker `on` when given ([`Pool::call_on`]), else [`Pool::pick`].
    fn route(
        &self,
        on: Option<u32>,
        name: &str,
        deadline_ns: u64,
    ) -> Result<(usize, u32), CallError> {
        match on {
            Some(index) => self.pick_on(index, name, deadline_ns),
            None => self.pick(name, deadline_ns),
        }
    }

    /// Dispatch: the ready worker with the fewest outstanding calls that has `name` (FN-2).
    /// While no worker is ready but some are starting (restart, LIVE-5), waits for one.
    fn pick(&self, name: &str, deadline_ns: u64) -> Result<(usize, u32), CallError> {
        let inner = &self.inner;
        loop {
            inner.check_open()?;
            let mut best: Option<(usize, u32, usize)> = None;
            let (mut any_ready, mut any_starting) = (false, false);
            for (i, w) in inner.workers.iter().enumerate() {
                match w.phase() {
                    READY => {
                        any_ready = true;
                        if let Some(fid) = w.lookup(name) {
                            let load = w.outstanding.load(Ordering::Acquire);
                            if best.map_or(true, |(_, _, b)| load < b) {
                                best = Some((i, fid, load));
                            }
                        }
                    }
                    STARTING => any_starting = true,
                    // A released worker comes back only if reserved again.
                    DEAD => {
                        any_starting |= inner.config.restart && !w.released.load(Ordering::Acquire);
                    }
                    _ => {}
                }
            }
            if let Some((i, fid, _)) = best {
                return Ok((i, fid));
            }
            if any_ready && !any_starting {
                // FN-2: refused locally, nothing sent.
                return Err(CallError::new(
                    ErrorCode::UnknownFunction,
                    format!("no worker has a function named `{name}`"),
                ));
            }
            if !any_starting {
                let why = inner
                    .workers
                    .first()
                    .map(|w| inner.unavailable(w).message)
                    .unwrap_or_default();
                return Err(CallError::new(
                    ErrorCode::PeerDied,
                    format!("no live worker ({why})"),
                ));
            }
            // Wait for a (re)started worker's HELLO, at most the start timeout.
            let limit = deadline_after(Some(inner.config.start_timeout));
            let until = if deadline_ns == 0 {
                limit
            } else {
                deadline_ns.min(limit)
            };
            let ready = || {
                inner.workers.iter().any(|w| {
                    if w.phase() == STARTING {
                        inner.pump(w);
                    }
                    w.phase() == READY
                })
            };
            match wait(&inner.host_bell, SpinPolicy::NoSpin, until, ready, || {
                inner.check_open()
            }) {
                Ok(()) => {}
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Deadline) if until == deadline_ns => {
                    return Err(CallError::new(
                        ErrorCode::DeadlineExceeded,
                        "deadline passed while no worker was ready",
                    ));
                }
                Err(Stop::Deadline) => {
                    return Err(CallError::new(
                        ErrorCode::PeerDied,
                        "no worker became ready within the start timeout",
                    ));
                }
            }
        }
    }

    /// Shuts the pool down: SHUTDOWN to every worker (MBX-3), a bounded wait for them to
    /// detach while their last responses are delivered, `SHUTDOWN` for calls still
    /// outstanding, stragglers killed, threads joined, and the region's name unlinked (MAP-3).
    /// Idempotent; also run by `Drop`.
    pub fn shutdown(&self) {
        shutdown(&self.inner);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        shutdown(&self.inner);
    }
}

fn with_content_type(mut payload: Payload<'_>, options: CallOptions) -> Payload<'_> {
    if let Some(ct) = options.content_type {
        payload.content_type = ct;
    }
    payload
}

fn shutdown(inner: &Arc<Inner>) {
    if inner.closing.swap(true, Ordering::AcqRel) {
        return;
    }
    inner.monitor_signal.notify();
    inner.reactor_signal.notify();
    inner.ring_host_bell();
    sender::stop(inner);
    // Unclaimed channels: dropping their readers aborts them.
    inner.drop_incoming(|_| true);
    // The monitor stays alive (idle) until the workers are released below: it spawned the
    // process workers, and their parent-death signal fires when it exits.
    join(&inner.reactor);
    let poisoned = inner.poisoned.load(Ordering::Acquire) || inner.region_view.poison_code() != 0;
    let deadline = deadline_after(Some(inner.config.shutdown_timeout));
    let external = inner.config.kind.is_external();
    // MBX-3 (not on a poisoned region: LIVE-6 forbids further ring writes).
    if !poisoned {
        for w in &inner.workers {
            // PART-12: an external entry nobody claimed is withdrawn, so that a late claim
            // fails instead of finding an abandoned mailbox.
            if external && matches!(w.participant.state(), Ok(ParticipantState::Reserved)) {
                let _ = w.participant.mark_dead(ParticipantState::Reserved);
            }
            send_shutdown(inner, w, deadline);
        }
    }
    // Bounded wait for DETACHED (PART-5) or exit, delivering the last responses meanwhile.
    let gone = |w: &WorkerSlot| {
        inner.pump(w);
        let finished = match &mut *lock(&w.runner) {
            Runner::Process(child) => matches!(child.try_wait(), Ok(Some(_))),
            Runner::Thread { handle, .. } => handle.is_finished(),
            // PART-11: an external worker is not ours to wait for: its entry tells.
            Runner::None => !external || external::external_gone(w),
        };
        finished
            || matches!(
                w.participant.state(),
                Ok(knit_core::layout::ParticipantState::Detached
                    | knit_core::layout::ParticipantState::Dead)
            )
    };
    let _ = wait(
        &inner.host_bell,
        SpinPolicy::NoSpin,
        deadline,
        || inner.workers.iter().all(gone),
        || Ok::<(), ()>(()),
    );
    for w in &inner.workers {
        {
            let mut st = lock(&w.state);
            inner.drain_locked(w, &mut st);
            inner.fail_all(w, &mut st, ErrorCode::Shutdown, "the pool shut down");
        }
        let detached = matches!(
            w.participant.state(),
            Ok(knit_core::layout::ParticipantState::Detached)
        );
        // Stragglers are killed; a detached process exits by itself and is only reaped.
        monitor::stop_runner(w, !detached);
        join_thread(w);
        w.phase.store(DEAD, Ordering::Release);
    }
    inner.workers_released.store(true, Ordering::Release);
    inner.monitor_signal.notify();
    join(&inner.monitor);
    // MAP-3: the name goes once the workers are gone.
    let _ = inner.region.unlink();
}

fn join(thread: &Mutex<Option<std::thread::JoinHandle<()>>>) {
    let handle = lock(thread).take();
    if let Some(h) = handle {
        let _ = h.join();
    }
}

/// Writes SHUTDOWN on `w`'s request ring, waiting for room until `deadline`.
fn send_shutdown(inner: &Inner, w: &WorkerSlot, deadline: u64) {
    loop {
        let seen_head = w.mailbox.request.load_head();
        {
            let mut st = lock(&w.state);
            inner.drain_locked(w, &mut st);
            let Some(mbx) = st.mailbox.as_mut() else {
                return;
            };
            match mbx.send_shutdown() {
                Ok(sent) => {
                    if sent.published {
                        w.bell.ring(&Futex);
                    }
                    if sent.done {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        let ready = || w.mailbox.request.load_head() != seen_head;
        if wait(
            &inner.host_bell,
            SpinPolicy::NoSpin,
            deadline,
            ready,
            || Ok::<(), ()>(()),
        )
        .is_err()
        {
            return;
        }
    }
}

/// Joins a thread worker that is still in a handler, for at most a second; a thread stuck in
/// user code is left running (it holds its own handle on the region, so its memory stays
/// mapped).
fn join_thread(w: &WorkerSlot) {
    let limit = deadline_after(Some(Duration::from_secs(1)));
    loop {
        let mut runner = lock(&w.runner);
        match std::mem::replace(&mut *runner, Runner::None) {
            Runner::Thread { handle, stop } => {
                if handle.is_finished() {
                    let _ = handle.join();
                    return;
                }
                *runner = Runner::Thread { handle, stop };
            }
            other => {
                *runner = other;
                return;
            }
        }
        drop(runner);
        if monotonic_ns() >= limit {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs a future to completion on the current thread, parking between polls (a minimal
/// executor for code without one, and for tests).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
