//! The shared state of a pool and the host's mailbox work: sending requests (CALL-1, CALL-2,
//! CALL-10, MSG-2, backpressure), draining responses into call slots (CALL-3, CALL-4), failing
//! calls (LIVE-3, LIVE-6) and cancelling them (CANCEL-1, CALL-8).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use knit_core::fntable::FunctionTable;
use knit_core::mailbox::{HostEvent, HostMailbox, Outgoing};
use knit_core::participant::Participant;
use knit_core::records::RequestHead;
use knit_core::region::{Mailbox, Region};
use knit_core::ring::{RECORD_HEADER_LEN, TAIL_OFFSET};
use knit_core::wait::Doorbell;
use knit_core::ErrorCode;

use super::builder::{Backpressure, Config};
use super::names;
use super::pending::PendingTable;
use super::slot::CallSlot;
use crate::call::{CallError, CallResult, Payload, Response};
use crate::futex::Futex;
use crate::region_handle::RegionHandle;
use crate::serve::ServeOutcome;
use crate::spin::{wait, Stop};

/// Worker phases, as seen by dispatch.
pub(crate) const STARTING: u8 = 0;
/// HELLO received for the current epoch (MBX-2): calls may go to it.
pub(crate) const READY: u8 = 1;
/// Declared dead (LIVE-3); waiting for a restart, if any.
pub(crate) const DEAD: u8 = 2;
/// SHUTDOWN sent by [`crate::Pool::release_worker`] (MBX-3): no call goes to it; it turns
/// DEAD once its entry is DETACHED or DEAD.
pub(crate) const RELEASING: u8 = 3;

/// [`WorkerSlot::drained_to`] after a drain that stopped before the ring was empty: odd, so
/// never a ring position (positions are multiples of 8, RING-8), hence never a reason to skip.
pub(crate) const NOT_DRAINED_EMPTY: u64 = 1;

/// Locks a mutex, going on with the data when a thread panicked while holding it: every
/// critical section here leaves its data consistent at each step.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A call waiting for its response.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) slot: Arc<CallSlot>,
    pub(crate) deadline_ns: u64,
    pub(crate) is_async: bool,
}

/// The host's end of one worker's mailbox and the calls outstanding on it (MBX-1: one thread
/// at a time, under the worker's mutex).
pub(crate) struct HostState {
    /// `None` while the worker is dead and not yet restarted.
    pub(crate) mailbox: Option<HostMailbox<'static>>,
    pub(crate) pending: PendingTable,
}

/// What runs a worker.
pub(crate) enum Runner {
    None,
    Thread {
        handle: JoinHandle<crate::Result<ServeOutcome>>,
        stop: Arc<AtomicBool>,
    },
    Process(std::process::Child),
}

/// The host's view of one worker (participant `index`, mailbox `index - 1`).
pub(crate) struct WorkerSlot {
    pub(crate) index: u32,
    pub(crate) state: Mutex<HostState>,
    pub(crate) phase: AtomicU8,
    pub(crate) outstanding: AtomicUsize,
    pub(crate) table: Mutex<Option<Arc<FunctionTable>>>,
    pub(crate) participant: Participant<'static>,
    pub(crate) bell: Doorbell<'static>,
    pub(crate) mailbox: Mailbox<'static>,
    pub(crate) runner: Mutex<Runner>,
    /// `CLOCK_MONOTONIC` when the entry was last reserved (LIVE-2's attach timeout).
    pub(crate) started_ns: AtomicU64,
    /// Not before this time is a dead worker restarted (0: at once).
    pub(crate) restart_after_ns: AtomicU64,
    /// Why the worker was declared dead, for messages.
    pub(crate) failure: Mutex<Option<String>>,
    /// Restarts so far.
    pub(crate) restarts: AtomicU64,
    /// Serialises what changes the worker's life (reserving, restarting, releasing), so that
    /// the monitor and a caller never reserve one entry twice.
    pub(crate) lifecycle: Mutex<()>,
    /// Let go by [`crate::Pool::release_worker`]: not restarted until reserved again.
    pub(crate) released: AtomicBool,
    /// `CLOCK_MONOTONIC` when the monitor first saw an external worker's entry ATTACHING
    /// (0: not seen since the last reservation), the start of its attach timeout (PART-11).
    pub(crate) claimed_ns: AtomicU64,
    /// Declared dead while ATTACHING, before its owner was known (PART-11): PART-4 forbids
    /// reserving the entry again, since nothing shows that owner is gone.
    pub(crate) claim_unknown: AtomicBool,
    /// Where the last drain of the response ring (by any thread, stored under `state` at its
    /// end) found it empty: the consumed position, or [`NOT_DRAINED_EMPTY`] when that drain
    /// stopped early. While the ring's `tail` still equals it, a poll would find nothing, so a
    /// waiter skips its drain without taking the lock; a drain since that consumed more
    /// stores another value, so a `tail` moved back behind it (RING-8) is never skipped over.
    pub(crate) drained_to: AtomicU64,
    /// Process-unique (see [`next_slot_uid`]): keys this slot's entries in the per-thread
    /// cache of resolved names, which no other pool's slot can share.
    pub(crate) uid: u64,
    /// Bumped under `table` whenever a HELLO replaces the function table (MBX-2).
    pub(crate) table_gen: AtomicU64,
}

/// A process-unique id for a new [`WorkerSlot`].
pub(crate) fn next_slot_uid() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

impl WorkerSlot {
    pub(crate) fn phase(&self) -> u8 {
        self.phase.load(Ordering::Acquire)
    }

    /// FN-2: the id of `name` in this worker's HELLO. Resolved once per thread and table
    /// (see [`super::names`]); a name the table lacks is looked up every time.
    pub(crate) fn lookup(&self, name: &str) -> Option<u32> {
        let generation = self.table_gen.load(Ordering::Acquire);
        if let Some(id) = names::get(self.uid, generation, name) {
            return Some(id);
        }
        let table = lock(&self.table);
        let id = table.as_ref().and_then(|t| t.lookup(name).ok())?;
        // Read under the lock that guards its changes: this generation is this table's.
        names::put(self.uid, self.table_gen.load(Ordering::Acquire), name, id);
        Some(id)
    }
}

/// Wakes the reactor and monitor threads.
#[derive(Default)]
pub(crate) struct Signal {
    pub(crate) lock: Mutex<bool>,
    pub(crate) cond: Condvar,
}

impl Signal {
    pub(crate) fn notify(&self) {
        *lock(&self.lock) = true;
        self.cond.notify_all();
    }

    /// Waits for a notification or `timeout`, consuming the notification.
    pub(crate) fn wait(&self, timeout: std::time::Duration) {
        let guard = lock(&self.lock);
        let (mut guard, _) = self
            .cond
            .wait_timeout_while(guard, timeout, |notified| !*notified)
            .unwrap_or_else(PoisonError::into_inner);
        *guard = false;
    }
}

/// Everything a pool's threads share.
///
/// Field order matters: the `'static` views in `workers`, `host_bell` and `region_view` are
/// dropped before `region`, the handle whose mapping they point into.
pub(crate) struct Inner {
    pub(crate) workers: Vec<WorkerSlot>,
    pub(crate) config: Config,
    pub(crate) host_bell: Doorbell<'static>,
    pub(crate) region_view: Region<'static>,
    pub(crate) closing: AtomicBool,
    /// Set by shutdown once the workers detached or were killed: only then may the monitor
    /// thread end, because a process worker started with `PR_SET_PDEATHSIG` is killed when the
    /// thread that spawned it (the monitor) exits, before it could detach cleanly (MBX-3).
    pub(crate) workers_released: AtomicBool,
    pub(crate) poisoned: AtomicBool,
    pub(crate) async_outstanding: AtomicUsize,
    pub(crate) monitor_signal: Signal,
    pub(crate) reactor_signal: Signal,
    pub(crate) monitor: Mutex<Option<JoinHandle<()>>>,
    pub(crate) reactor: Mutex<Option<JoinHandle<()>>>,
    pub(crate) sender: Mutex<Option<super::sender::Sender>>,
    /// Channels workers opened, attached and not yet taken (spec/06).
    pub(crate) channels: Mutex<super::channel::Incoming>,
    /// `(slot, epoch)` of every channel whose host end is attached (CHAN-10).
    pub(crate) attached: Mutex<std::collections::HashSet<(u32, u32)>>,
    pub(crate) region: RegionHandle,
}

/// Why a request could not be sent now.
enum Admit {
    Sent(u64),
    Full,
}

impl Inner {
    pub(crate) fn ring_host_bell(&self) {
        self.host_bell.ring(&Futex);
    }

    /// The largest payload of a one-record request (RING-1: records up to `cap / 2`).
    pub(crate) fn one_record_payload(&self) -> usize {
        let cap = self.region_view.geometry().request_ring_cap() as usize;
        (cap / 2).saturating_sub(RECORD_HEADER_LEN + RequestHead::LEN)
    }

    /// Removes call `id` from `w` and delivers `outcome` to it (exactly once).
    pub(crate) fn finish(&self, w: &WorkerSlot, st: &mut HostState, id: u64, outcome: CallResult) {
        if let Some(p) = st.pending.remove(id) {
            w.outstanding.fetch_sub(1, Ordering::AcqRel);
            if p.is_async {
                self.async_outstanding.fetch_sub(1, Ordering::AcqRel);
            }
            p.slot.complete(outcome);
        }
    }

    /// Fails every call outstanding on `w` with `code` (LIVE-3, LIVE-6, shutdown).
    pub(crate) fn fail_all(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        code: ErrorCode,
        message: &str,
    ) {
        let ids = st.pending.ids();
        for id in ids {
            self.finish(w, st, id, Err(CallError::new(code, message)));
        }
    }

    /// Reads every complete event of `w`'s response ring (while holding its state) and delivers
    /// responses to their calls; returns whether anything was read.
    ///
    /// A violation poisons the region (ERR-2, RING-13) and fails the worker's calls with
    /// `POISONED` (LIVE-6).
    pub(crate) fn drain_locked(&self, w: &WorkerSlot, st: &mut HostState) -> bool {
        self.drain_with(w, st, &mut None)
    }

    /// [`Inner::drain_locked`], running `hook` on the payload of request `id`'s successful
    /// response in place in the ring, before the record is released (zero copy, MSG-5); that
    /// call's [`Response`] then carries no bytes.
    pub(crate) fn drain_with(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        hook: &mut Hook<'_>,
    ) -> bool {
        self.drain_counted(w, st, hook).progress
    }

    /// [`Inner::drain_locked`] unless the ring's `tail` still shows where the last drain found
    /// it empty ([`WorkerSlot::drained_to`]): under the state lock nothing was polled since, so
    /// that drain's poll would find nothing and release nothing (a `tail` equal to the
    /// consumed position is valid by itself, RING-8). The common case of a caller's send.
    fn drain_if_published(&self, w: &WorkerSlot, st: &mut HostState) {
        let at = w.drained_to.load(Ordering::Acquire);
        if at != NOT_DRAINED_EMPTY && w.mailbox.response.load_tail() == at {
            return;
        }
        self.drain_locked(w, st);
    }

    /// [`Inner::drain_with`], telling also whether the drain stopped on an empty ring.
    fn drain_counted(&self, w: &WorkerSlot, st: &mut HostState, hook: &mut Hook<'_>) -> Drained {
        let drained = self.drain_polls(w, st, hook);
        let at = drained.empty_at.unwrap_or(NOT_DRAINED_EMPTY);
        w.drained_to.store(at, Ordering::Release);
        drained
    }

    /// The polls of [`Inner::drain_counted`].
    fn drain_polls(&self, w: &WorkerSlot, st: &mut HostState, hook: &mut Hook<'_>) -> Drained {
        let mut progress = false;
        // Each poll takes at most MAX_RECORDS_PER_POLL records; the bound keeps a worker that
        // never stops producing from holding us here forever (SEC-1).
        for _ in 0..1024 {
            let Some(mbx) = st.mailbox.as_mut() else {
                return Drained::partly(progress);
            };
            let polled = match mbx.poll() {
                Ok(p) => p,
                Err(e) => {
                    self.violation(w, st, e);
                    return Drained::partly(true);
                }
            };
            let mut released = polled.released;
            let mut channel_error = None;
            let delivered = match polled.event {
                None => None,
                Some(HostEvent::ChannelOpen(open)) => {
                    // Only an async call can take a channel (`CallFuture::channel`): one opened
                    // for a blocking call, or for no outstanding call, would never be read and
                    // its writer would wait for room for ever, so it is aborted at once.
                    let wanted = st.pending.get(open.tag).is_some_and(|p| p.is_async);
                    channel_error = self.accept_channel(w, open, wanted).err();
                    None
                }
                Some(HostEvent::Hello(table)) => {
                    {
                        let mut current = lock(&w.table);
                        *current = Some(Arc::new(table));
                        // Names resolved from the previous table stop being used.
                        w.table_gen.fetch_add(1, Ordering::AcqRel);
                    }
                    // MBX-2: calls may go to this worker from now on.
                    let _ = w.phase.compare_exchange(
                        STARTING,
                        READY,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    );
                    None
                }
                Some(HostEvent::Response(r)) => {
                    let id = r.request_id;
                    let in_place = matches!(r.payload, knit_core::message::Payload::InPlace(_));
                    let outcome =
                        if let (0, true, Some((want, f))) = (r.status, in_place, hook.as_mut()) {
                            if *want == id {
                                // RING-15: the hook sees untrusted bytes that stay in the ring
                                // only until the release below.
                                f(r.payload.bytes());
                                r.payload.release();
                                *hook = None;
                                Ok(Response::new(r.content_type, Vec::new()))
                            } else {
                                owned_outcome(r)
                            }
                        } else {
                            owned_outcome(r)
                        };
                    Some((id, outcome))
                }
            };
            if let Some(mbx) = st.mailbox.as_mut() {
                released |= mbx.publish_head();
                if released {
                    // WAIT-6: the worker may wait for response space; WAIT-8: not rung when
                    // the response ring had room for any record before this release (a worker
                    // parked for its next request is not woken for nothing).
                    mbx.wake_worker(&w.bell, &Futex);
                }
            } else if released {
                w.bell.ring(&Futex);
            }
            if let Some(e) = channel_error {
                self.violation(w, st, e);
                return Drained::partly(true);
            }
            let any = delivered.is_some() || released;
            if let Some((id, outcome)) = delivered {
                self.finish(w, st, id, outcome);
            }
            progress |= any;
            if !any {
                // The last poll found the ring empty and released nothing.
                return Drained {
                    progress,
                    empty_at: st.mailbox.as_ref().map(HostMailbox::consumed),
                };
            }
        }
        Drained::partly(progress)
    }
}

/// The outcome of one drain of a response ring.
struct Drained {
    /// Anything was read or released.
    progress: bool,
    /// The consumed position when the drain stopped on an empty ring: nothing new is published
    /// while the ring's `tail` still equals it. `None` when the drain stopped early.
    empty_at: Option<u64>,
}

impl Drained {
    fn partly(progress: bool) -> Self {
        Drained {
            progress,
            empty_at: None,
        }
    }
}

/// A response's outcome with its payload copied into private memory.
fn owned_outcome(r: knit_core::mailbox::Response<'_, '_>) -> CallResult {
    if r.status == 0 {
        let ct = r.content_type;
        r.payload
            .into_vec()
            .map(|bytes| Response::new(ct, bytes))
            .ok_or_else(|| {
                CallError::new(
                    ErrorCode::PayloadTooLarge,
                    "response payload could not be held",
                )
            })
    } else {
        let status = r.status;
        let message = r
            .payload
            .into_vec()
            .map_or_else(String::new, |b| String::from_utf8_lossy(&b).into_owned());
        Err(CallError { status, message })
    }
}

/// A caller's hook for its own response, see [`Inner::drain_with`].
pub(crate) type Hook<'h> = Option<(u64, &'h mut dyn FnMut(&[u8]))>;

impl Inner {
    /// Drains `w` if no other thread is doing it; returns whether anything was read.
    pub(crate) fn pump(&self, w: &WorkerSlot) -> bool {
        self.try_pump(w).unwrap_or(false)
    }

    /// Drains `w` unless another thread holds its lock: `None` then (that thread may or may
    /// not drain: a waiter that saw `None` must not assume the ring was emptied), otherwise
    /// whether anything was read.
    pub(crate) fn try_pump(&self, w: &WorkerSlot) -> Option<bool> {
        match w.state.try_lock() {
            Ok(mut st) => Some(self.drain_locked(w, &mut st)),
            Err(std::sync::TryLockError::Poisoned(p)) => {
                Some(self.drain_locked(w, &mut p.into_inner()))
            }
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// A violation found in `w`'s rings: poison (ERR-2), fail its calls (LIVE-6), wake all.
    pub(crate) fn violation(&self, w: &WorkerSlot, st: &mut HostState, e: knit_core::Error) {
        if e.code.is_violation() {
            self.region_view.poison(e.code, Some(0));
        }
        self.poisoned.store(true, Ordering::Release);
        let message = format!("worker {}: {e}", w.index);
        self.fail_all(w, st, ErrorCode::Poisoned, &message);
        self.ring_host_bell();
        self.monitor_signal.notify();
    }

    /// Sends a request to `w` (CALL-1, CALL-2, CALL-10, FN-2 done by the caller), waiting for
    /// room per the backpressure policy; registers `slot` for its response. Returns its id.
    pub(crate) fn send(
        &self,
        w: &WorkerSlot,
        function_id: u32,
        payload: &Payload<'_>,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
        is_async: bool,
    ) -> Result<u64, CallError> {
        loop {
            let (seen_head, seen_tail);
            {
                let mut st = lock(&w.state);
                if w.phase() != READY || st.mailbox.is_none() {
                    return Err(self.unavailable(w));
                }
                // Free cancel entries and ring space first (MBX: never stop consuming).
                self.drain_if_published(w, &mut st);
                // The first attempt loads no position of the worker's: its request-ring head
                // is on a cache line the worker writes after every request, so loading it on
                // every call costs a transfer between cores. Only a refused attempt takes the
                // positions to wait on, then drains and tries once more: room or a response
                // that came before they were taken is found by that second round, anything
                // later changes them and ends the wait (no wake-up is lost).
                if let Admit::Sent(id) = self.try_send(
                    w,
                    &mut st,
                    function_id,
                    payload,
                    deadline_ns,
                    slot,
                    is_async,
                )? {
                    return Ok(id);
                }
                seen_head = w.mailbox.request.load_head();
                seen_tail = w.mailbox.response.load_tail();
                self.drain_locked(w, &mut st);
                if let Admit::Sent(id) = self.try_send(
                    w,
                    &mut st,
                    function_id,
                    payload,
                    deadline_ns,
                    slot,
                    is_async,
                )? {
                    return Ok(id);
                }
            }
            self.wait_for_room(w, seen_head, seen_tail, deadline_ns)?;
        }
    }

    /// One attempt to send a request that fits one record, never waiting: `Ok(None)` when
    /// the ring or the cancel table is full now (for async calls, which then hand the request
    /// to the sender thread).
    pub(crate) fn send_now(
        &self,
        w: &WorkerSlot,
        function_id: u32,
        payload: &Payload<'_>,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
    ) -> Result<Option<u64>, CallError> {
        if payload.bytes.len() > self.one_record_payload() {
            return Ok(None);
        }
        let mut st = lock(&w.state);
        if w.phase() != READY || st.mailbox.is_none() {
            return Err(self.unavailable(w));
        }
        self.drain_locked(w, &mut st);
        match self.try_send(w, &mut st, function_id, payload, deadline_ns, slot, true)? {
            Admit::Sent(id) => Ok(Some(id)),
            Admit::Full => Ok(None),
        }
    }

    /// Backpressure (CALL-2, RING-14): `WOULD_BLOCK` under [`Backpressure::Error`]; otherwise
    /// waits, unlocked, until the worker consumed requests or answered some.
    pub(crate) fn wait_for_room(
        &self,
        w: &WorkerSlot,
        seen_head: u64,
        seen_tail: u64,
        deadline_ns: u64,
    ) -> Result<(), CallError> {
        if self.config.backpressure == Backpressure::Error {
            return Err(CallError::new(
                ErrorCode::WouldBlock,
                format!("worker {}: request ring or cancel table full", w.index),
            ));
        }
        let ready = || {
            w.mailbox.request.load_head() != seen_head
                || w.mailbox.response.load_tail() != seen_tail
                || w.phase() != READY
        };
        match wait(
            &self.host_bell,
            self.config.spin,
            deadline_ns,
            ready,
            || self.check_open(),
        ) {
            Ok(()) => Ok(()),
            Err(Stop::Deadline) => Err(CallError::new(
                ErrorCode::DeadlineExceeded,
                "deadline passed while waiting for room",
            )),
            Err(Stop::Failed(e)) => Err(e),
        }
    }

    /// Sends a one-record request whose `len` payload bytes `fill` writes in place (loan,
    /// spec/03 §3.3), with the same backpressure as [`Inner::send`]. `is_async`: the reactor,
    /// not this thread, reads the response.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send_loan(
        &self,
        w: &WorkerSlot,
        function_id: u32,
        len: usize,
        content_type: u32,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
        is_async: bool,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<u64, CallError> {
        if len > self.one_record_payload() {
            return Err(CallError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "a loan of {len} bytes does not fit one record (at most {})",
                    self.one_record_payload()
                ),
            ));
        }
        let mut fill = Some(fill);
        loop {
            let (seen_head, seen_tail);
            {
                let mut st = lock(&w.state);
                if w.phase() != READY || st.mailbox.is_none() {
                    return Err(self.unavailable(w));
                }
                // Taken before the drain: a response published after it changes the tail
                // (ending the wait below), one published before is drained here.
                seen_head = w.mailbox.request.load_head();
                seen_tail = w.mailbox.response.load_tail();
                self.drain_locked(w, &mut st);
                let Some(mbx) = st.mailbox.as_mut() else {
                    return Err(self.unavailable(w));
                };
                if let Some(mut loan) =
                    mbx.loan_request(function_id, content_type, deadline_ns, len)?
                {
                    let id = loan.request_id();
                    if let (Some(f), Some(area)) = (fill.take(), loan.payload().get_mut(..len)) {
                        f(area);
                    }
                    loan.commit(len)?;
                    self.register(w, &mut st, id, slot, deadline_ns, is_async);
                    if st.mailbox.as_mut().is_some_and(HostMailbox::publish) {
                        w.bell.ring(&Futex);
                    }
                    return Ok(id);
                }
            }
            self.wait_for_room(w, seen_head, seen_tail, deadline_ns)?;
        }
    }

    /// One attempt to send under the worker's lock.
    #[allow(clippy::too_many_arguments)]
    fn try_send(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        function_id: u32,
        payload: &Payload<'_>,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
        is_async: bool,
    ) -> Result<Admit, CallError> {
        let bytes: &[u8] = &payload.bytes;
        let ct = payload.content_type;
        let one = self.one_record_payload();
        let Some(mbx) = st.mailbox.as_mut() else {
            return Err(self.unavailable(w));
        };
        // A probe loan tells whether an id and room for the first record exist now; nothing is
        // taken until a loan is committed, so a refusal leaves no trace (backpressure Error).
        let Some(mut loan) =
            mbx.loan_request(function_id, ct, deadline_ns, bytes.len().min(one))?
        else {
            return Ok(Admit::Full);
        };
        let id = loan.request_id();
        if bytes.len() <= one {
            // One record: written in place, one copy (loan, spec/03 §3.3).
            if let Some(dst) = loan.payload().get_mut(..bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            loan.commit(bytes.len())?;
            self.register(w, st, id, slot, deadline_ns, is_async);
            if st.mailbox.as_mut().is_some_and(HostMailbox::publish) {
                w.bell.ring(&Futex);
            }
            return Ok(Admit::Sent(id));
        }
        // The probe loan is not committed: it sent nothing.
        // Fragments (spec/07): the first fits now; MSG-2 keeps the ring ours until the last is
        // written, so the lock is held meanwhile and responses are drained while waiting.
        let Some(mut out) = mbx.start_request(function_id, ct, deadline_ns, bytes)? else {
            return Ok(Admit::Full);
        };
        let id = out.request_id();
        self.register(w, st, id, slot, deadline_ns, is_async);
        self.write_all(w, st, &mut out)?;
        Ok(Admit::Sent(id))
    }

    /// Writes the rest of a started message to `w`'s request ring, ringing the worker after
    /// each publication (WAIT-5) and waiting for room while the ring is full
    /// ([`Inner::wait_locked`]).
    pub(crate) fn write_all(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        out: &mut Outgoing<'_>,
    ) -> Result<(), CallError> {
        loop {
            let seen_head = w.mailbox.request.load_head();
            let Some(mbx) = st.mailbox.as_mut() else {
                return Err(self.unavailable(w));
            };
            let sent = match mbx.write(out) {
                Ok(s) => s,
                Err(e) => {
                    self.violation(w, st, e);
                    return Err(e.into());
                }
            };
            if sent.published {
                w.bell.ring(&Futex);
            }
            if sent.done {
                return Ok(());
            }
            self.wait_locked(w, st, seen_head)?;
        }
    }

    /// Waits, holding `w`'s lock (a message in progress keeps the ring ours, MSG-2), until the
    /// worker consumed requests, draining its responses meanwhile so that it is never stuck
    /// on a full response ring.
    pub(crate) fn wait_locked(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        seen_head: u64,
    ) -> Result<(), CallError> {
        let ready = || {
            self.drain_locked(w, st);
            w.mailbox.request.load_head() != seen_head || w.phase() != READY
        };
        match wait(&self.host_bell, self.config.spin, 0, ready, || {
            self.check_open()
        }) {
            Ok(()) | Err(Stop::Deadline) => {}
            Err(Stop::Failed(e)) => return Err(e),
        }
        if w.phase() == READY {
            Ok(())
        } else {
            Err(self.unavailable(w))
        }
    }

    pub(crate) fn register(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        id: u64,
        slot: &Arc<CallSlot>,
        deadline_ns: u64,
        is_async: bool,
    ) {
        st.pending.insert(
            id,
            Pending {
                slot: Arc::clone(slot),
                deadline_ns,
                is_async,
            },
        );
        w.outstanding.fetch_add(1, Ordering::AcqRel);
        if is_async {
            self.async_outstanding.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Fails the wait of a caller when the pool is closing or poisoned.
    pub(crate) fn check_open(&self) -> Result<(), CallError> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(self.poison_error());
        }
        if self.closing.load(Ordering::Acquire) {
            return Err(CallError::new(
                ErrorCode::Shutdown,
                "the pool is shutting down",
            ));
        }
        Ok(())
    }

    /// LIVE-7: the first violation, by code and finder.
    pub(crate) fn poison_error(&self) -> CallError {
        let code = self.region_view.poison_code();
        let name = ErrorCode::from_u32(code).map_or("unregistered code", ErrorCode::name);
        let by = self.region_view.poisoned_by();
        let finder = if by == 0 {
            "an unknown participant".to_owned()
        } else {
            format!("participant {}", by - 1)
        };
        CallError::new(
            ErrorCode::Poisoned,
            format!("region poisoned with {name} ({code}) by {finder}"),
        )
    }

    /// The error of a call that finds its worker gone.
    pub(crate) fn unavailable(&self, w: &WorkerSlot) -> CallError {
        if self.poisoned.load(Ordering::Acquire) {
            return self.poison_error();
        }
        let why = lock(&w.failure)
            .clone()
            .unwrap_or_else(|| "not ready".to_owned());
        CallError::new(ErrorCode::PeerDied, format!("worker {}: {why}", w.index))
    }

    /// Waits for call `id`'s outcome, draining `w`'s responses meanwhile (the caller spins
    /// on the ring it called, then parks on the host doorbell, WAIT-3, WAIT-4).
    pub(crate) fn wait_response(
        &self,
        w: &WorkerSlot,
        id: u64,
        slot: &CallSlot,
        deadline_ns: u64,
        hook: &mut Hook<'_>,
    ) -> CallResult {
        // While the response ring's `tail` equals where the last drain found it empty (the
        // send's own drain, typically), a poll would find nothing, so the lock is not even
        // tried (the spin loop's common case). Any other thread that drains delivers into
        // `slot`. The `tail` word is located once; a `tail` equal to the consumed position is
        // valid by itself (RING-8), and any other value is loaded again and validated by the
        // drain's poll.
        let tail = w.mailbox.response.ctrl.atomic_u64(TAIL_OFFSET).ok();
        let ready = || {
            if slot.is_done() {
                return true;
            }
            if let Some(tail) = tail {
                let at = w.drained_to.load(Ordering::Acquire);
                if at != NOT_DRAINED_EMPTY && tail.load(Ordering::Acquire) == at {
                    return false;
                }
            }
            self.drain_for_waiter(w, hook);
            slot.is_done()
        };
        // Outcomes of death, poisoning and shutdown arrive through the slot.
        let waited = wait(
            &self.host_bell,
            self.config.spin,
            deadline_ns,
            ready,
            || Ok::<(), ()>(()),
        );
        if let Err(Stop::Deadline) = waited {
            // CALL-8: fail and abandon it, setting its cancel entry.
            self.cancel(w, id, ErrorCode::DeadlineExceeded, "the deadline passed");
        }
        slot.take().unwrap_or_else(|| {
            Err(CallError::new(
                ErrorCode::Cancelled,
                "the call's outcome was already taken",
            ))
        })
    }

    /// One drain of `w` for a waiting caller, unless another thread holds its lock (that
    /// thread drains, or its next drain will). Kept out of the waiter's spin loop so that the
    /// loop itself stays small.
    #[inline(never)]
    fn drain_for_waiter(&self, w: &WorkerSlot, hook: &mut Hook<'_>) {
        let mut st = match w.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        self.drain_counted(w, &mut st, hook);
    }

    /// CANCEL-1 / CALL-8: stores the cancel entry, rings the worker, abandons the id (a late
    /// response is discarded, CALL-4) and fails the call with `code`, unless its outcome
    /// already arrived.
    pub(crate) fn cancel(&self, w: &WorkerSlot, id: u64, code: ErrorCode, message: &str) {
        let mut st = lock(&w.state);
        // A response that is already published wins over the cancellation.
        self.drain_locked(w, &mut st);
        if !st.pending.contains_key(id) {
            return;
        }
        if let Some(mbx) = st.mailbox.as_mut() {
            if matches!(mbx.cancel(id), Ok(true)) {
                w.bell.ring(&Futex);
            }
        }
        self.finish(w, &mut st, id, Err(CallError::new(code, message)));
    }
}
