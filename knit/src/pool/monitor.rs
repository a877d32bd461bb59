//! The pool's monitor thread: starts workers, decides their death (LIVE-2), fails their calls
//! (LIVE-3), restarts them (LIVE-5), enforces deadlines of outstanding calls (CALL-8) and
//! watches the poison word (LIVE-6, LIVE-7).
//!
//! Every process worker is started from this thread, which lives as long as the pool, because
//! Linux delivers `PR_SET_PDEATHSIG` when the *thread* that forked the child exits.

use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use knit_core::layout::ParticipantState;
use knit_core::mailbox::HostMailbox;
use knit_core::ErrorCode;

use super::builder::WorkerKind;
use super::inner::{lock, HostState, Inner, Runner, WorkerSlot, DEAD, READY, RELEASING, STARTING};
use crate::call::CallError;
use crate::clock::monotonic_ns;
use crate::futex::Futex;
use crate::liveness::{peer_status, PeerStatus};
use crate::serve::{Worker, ENV_REGION, ENV_SLOT};

/// How often the monitor wakes (LIVE-1 asks for `PEER_DIED` within 100 ms of a death).
pub(crate) const TICK: Duration = Duration::from_millis(20);

/// The pause before a worker that failed to start is tried again.
const RESTART_BACKOFF_NS: u64 = 1_000_000_000;

/// The monitor thread's body.
pub(crate) fn run(inner: &Arc<Inner>) {
    // External workers' entries were reserved before the pool was returned (PART-11).
    if !inner.config.kind.is_external() {
        for w in &inner.workers {
            start_worker(inner, w);
        }
    }
    inner.ring_host_bell();
    while !inner.closing.load(Ordering::Acquire) {
        inner.monitor_signal.wait(TICK);
        if inner.closing.load(Ordering::Acquire) {
            break;
        }
        check_poison(inner);
        let now = monotonic_ns();
        // PART-7: the host's sign of life, informative for workers and tools.
        if let Ok(host) = inner.region_view.participant(0) {
            let _ = host.set_heartbeat(now);
        }
        for w in &inner.workers {
            check_worker(inner, w, now);
            check_deadlines(inner, w, now);
        }
    }
    // Closing: idle until shutdown released the workers (see `Inner::workers_released`).
    while !inner.workers_released.load(Ordering::Acquire) {
        inner.monitor_signal.wait(TICK);
    }
}

/// LIVE-6, LIVE-7: on poison, fail every outstanding call with `POISONED`; new calls fail too.
fn check_poison(inner: &Inner) {
    if inner.region_view.poison_code() == 0 && !inner.poisoned.load(Ordering::Acquire) {
        return;
    }
    inner.poisoned.store(true, Ordering::Release);
    let err = inner.poison_error();
    for w in &inner.workers {
        let mut st = lock(&w.state);
        inner.fail_all(w, &mut st, ErrorCode::Poisoned, &err.message);
    }
    inner.ring_host_bell();
}

fn check_worker(inner: &Inner, w: &WorkerSlot, now: u64) {
    match w.phase() {
        STARTING | READY => {
            // Under the lifecycle lock: a release that began meanwhile (RELEASING) settles
            // the worker's leave itself, with SHUTDOWN rather than PEER_DIED (MBX-3).
            let life = lock(&w.lifecycle);
            if !matches!(w.phase(), STARTING | READY) {
                return;
            }
            if let Some((observed, reason)) = death(inner, w, now) {
                declare_dead(inner, w, observed, &reason);
                return;
            }
            drop(life);
            if w.phase() == STARTING {
                // The HELLO of a (re)started worker (MBX-2), when no caller drained it.
                inner.pump(w);
            }
        }
        RELEASING => super::external::settle_release(inner, w, now),
        _ => {
            let due = w.restart_after_ns.load(Ordering::Acquire);
            if inner.config.restart
                && !w.released.load(Ordering::Acquire)
                && !w.claim_unknown.load(Ordering::Acquire)
                && !inner.poisoned.load(Ordering::Acquire)
                && now >= due
            {
                let _life = lock(&w.lifecycle);
                // Under the lock: a caller may have reserved it meanwhile.
                if w.phase() == DEAD && !w.released.load(Ordering::Acquire) {
                    start_worker(inner, w);
                }
            }
        }
    }
}

/// LIVE-2: the state the entry was seen in and why the worker is dead, or `None` while it
/// lives.
pub(crate) fn death(
    inner: &Inner,
    w: &WorkerSlot,
    now: u64,
) -> Option<(Option<ParticipantState>, String)> {
    // The runner tells first: an exited process or an ended thread.
    let exited = match &mut *lock(&w.runner) {
        Runner::Process(child) => match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited ({status})")),
            _ => None,
        },
        Runner::Thread { handle, .. } if handle.is_finished() => Some("thread ended".to_owned()),
        _ => None,
    };
    let status = match peer_status(&w.participant) {
        Ok(s) => s,
        Err(e) => {
            let mut st = lock(&w.state);
            inner.violation(w, &mut st, e);
            return Some((None, format!("participant entry is invalid: {e}")));
        }
    };
    let observed = w.participant.state().ok();
    let reason = match status {
        PeerStatus::Died => Some("process is gone".to_owned()),
        PeerStatus::Dead => Some("entry marked DEAD".to_owned()),
        PeerStatus::Detached => Some("detached unexpectedly".to_owned()),
        PeerStatus::Starting(state) if inner.config.kind.is_external() => {
            attach_overdue(inner, w, state, now)
        }
        PeerStatus::Starting(_) => {
            let started = w.started_ns.load(Ordering::Acquire);
            let limit = u64::try_from(inner.config.start_timeout.as_nanos()).unwrap_or(u64::MAX);
            (now.saturating_sub(started) > limit)
                .then(|| format!("did not attach within {:?}", inner.config.start_timeout))
        }
        PeerStatus::Active => None,
    };
    exited.or(reason).map(|r| (observed, r))
}

/// PART-11: an external worker's attach timeout runs from when its entry was first seen
/// ATTACHING (its pid is not readable before ACTIVE, PART-3); a RESERVED entry is a worker
/// nobody started yet, and waits.
fn attach_overdue(
    inner: &Inner,
    w: &WorkerSlot,
    state: ParticipantState,
    now: u64,
) -> Option<String> {
    if state != ParticipantState::Attaching {
        w.claimed_ns.store(0, Ordering::Release);
        return None;
    }
    let claimed = match w.claimed_ns.load(Ordering::Acquire) {
        0 => {
            // `now` is never 0 on a running system; max(1) keeps 0 meaning "not seen".
            w.claimed_ns.store(now.max(1), Ordering::Release);
            now
        }
        t => t,
    };
    let limit = u64::try_from(inner.config.start_timeout.as_nanos()).unwrap_or(u64::MAX);
    (now.saturating_sub(claimed) > limit).then(|| {
        w.claim_unknown.store(true, Ordering::Release);
        format!(
            "claimed its entry but did not attach within {:?}",
            inner.config.start_timeout
        )
    })
}

/// LIVE-3: DEAD in the entry, deliver what the worker published, fail the rest with
/// `PEER_DIED`, wake every waiter, reap the runner.
pub(crate) fn declare_dead(
    inner: &Inner,
    w: &WorkerSlot,
    observed: Option<ParticipantState>,
    reason: &str,
) {
    // Compare-and-swap from the state seen; a worker that just detached or was marked dead
    // keeps that state.
    if let Some(state) = observed {
        if !matches!(
            state,
            ParticipantState::Dead | ParticipantState::Detached | ParticipantState::Empty
        ) {
            let _ = w.participant.mark_dead(state);
        }
    }
    *lock(&w.failure) = Some(reason.to_owned());
    w.phase.store(DEAD, Ordering::Release);
    // Waiters that hold the worker's lock (a fragmented send) see DEAD and let go.
    inner.ring_host_bell();
    {
        let mut st = lock(&w.state);
        inner.drain_locked(w, &mut st);
        let message = format!("worker {} died: {reason}", w.index);
        inner.fail_all(w, &mut st, ErrorCode::PeerDied, &message);
        st.mailbox = None;
    }
    inner.ring_host_bell();
    stop_runner(w, true);
    w.restart_after_ns.store(monotonic_ns(), Ordering::Release);
}

/// Ends a worker's runner: kills a process (when `kill`) and reaps it; joins a finished thread.
pub(crate) fn stop_runner(w: &WorkerSlot, kill: bool) {
    let mut runner = lock(&w.runner);
    match std::mem::replace(&mut *runner, Runner::None) {
        Runner::Process(mut child) => {
            if kill {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        Runner::Thread { handle, stop } => {
            stop.store(true, Ordering::Release);
            w.bell.ring(&Futex);
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                // Still in a handler: it sees `stop` when it returns; keep it to join later.
                *runner = Runner::Thread { handle, stop };
            }
        }
        Runner::None => {}
    }
}

/// PART-4, MBX-4, LIVE-5: resets the mailbox, reserves the entry under a new epoch and starts
/// the worker. The previous owner is gone: its process was reaped or its thread ended.
pub(crate) fn start_worker(inner: &Inner, w: &WorkerSlot) {
    if let Runner::Thread { handle, .. } = &*lock(&w.runner) {
        if !handle.is_finished() {
            // PART-4: the old thread still runs user code; try again later.
            w.restart_after_ns
                .store(monotonic_ns() + RESTART_BACKOFF_NS, Ordering::Release);
            return;
        }
    }
    stop_runner(w, true);
    let fresh = {
        let mut st = lock(&w.state);
        // CHAN-10: release the previous owner's channel ends (and the host's ends of channels
        // whose announcement it never read); unclaimed ones are dropped (aborted) first.
        let position = (w.index - 1) as usize;
        inner.drop_incoming(|&(worker, _)| worker == position);
        let attached = lock(&inner.attached).clone();
        if let Err(e) = knit_core::channel::release_for_dead(&inner.region_view, w.index, |ch| {
            !attached.contains(&(ch.index, ch.epoch))
        }) {
            if e.code.is_violation() {
                inner.region_view.poison(e.code, Some(0));
                inner.poisoned.store(true, Ordering::Release);
            }
        }
        inner.ring_host_bell();
        // MBX-4: both rings and the cancel table to zero before RESERVED.
        w.mailbox.request.reset();
        w.mailbox.response.reset();
        let _ = w.mailbox.cancel.zero(0, w.mailbox.cancel.len());
        let reserved = w.participant.reserve();
        let g = inner.region_view.geometry();
        match reserved
            .and_then(|_| HostMailbox::new(w.mailbox, g.inflight_max(), g.max_message_len()))
        {
            Ok(mbx) => {
                *st = HostState {
                    mailbox: Some(mbx),
                    pending: std::mem::take(&mut st.pending),
                };
                // LIVE-5: the new epoch's count changes under the state lock, before the
                // worker can turn READY, so a sender that saw READY also saw this count.
                Ok(w.restarts.fetch_add(1, Ordering::AcqRel) > 0)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let restarted = match fresh {
        Ok(restarted) => restarted,
        Err(e) => {
            fail_start(w, &format!("cannot reserve the entry: {e}"));
            return;
        }
    };
    *lock(&w.table) = None;
    w.claimed_ns.store(0, Ordering::Release);
    w.claim_unknown.store(false, Ordering::Release);
    w.started_ns.store(monotonic_ns(), Ordering::Release);
    w.phase.store(STARTING, Ordering::Release);
    match spawn(inner, w) {
        Ok(runner) => {
            *lock(&w.runner) = runner;
        }
        Err(e) => {
            let _ = w.participant.mark_dead(ParticipantState::Reserved);
            fail_start(
                w,
                &format!("cannot start {}: {e}", inner.config.kind.describe()),
            );
        }
    }
    if restarted {
        inner.ring_host_bell();
    }
}

fn fail_start(w: &WorkerSlot, reason: &str) {
    *lock(&w.failure) = Some(reason.to_owned());
    w.phase.store(DEAD, Ordering::Release);
    w.restart_after_ns
        .store(monotonic_ns() + RESTART_BACKOFF_NS, Ordering::Release);
}

fn spawn(inner: &Inner, w: &WorkerSlot) -> std::io::Result<Runner> {
    match &inner.config.kind {
        // PART-11: someone else starts it.
        WorkerKind::External => Ok(Runner::None),
        WorkerKind::Threads(handlers) => {
            let stop = Arc::new(AtomicBool::new(false));
            let worker = Worker::on_thread(
                inner.region.clone(),
                w.index,
                handlers.clone(),
                inner.config.spin,
                Arc::clone(&stop),
            );
            let handle = std::thread::Builder::new()
                .name(format!("knit-worker-{}", w.index))
                .spawn(move || worker.serve())?;
            Ok(Runner::Thread { handle, stop })
        }
        WorkerKind::Process(template) => {
            let name = inner
                .region
                .name()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default();
            let mut cmd = template.command();
            // MAP-5
            cmd.env(ENV_REGION, name).env(ENV_SLOT, w.index.to_string());
            if inner.config.parent_death_signal {
                // SAFETY: the closure runs in the child between fork and exec, where only
                // async-signal-safe calls are allowed: it makes one `prctl(PR_SET_PDEATHSIG)`
                // system call, allocates nothing and takes no lock. It is an extra to LIVE-4,
                // which the worker applies anyway.
                unsafe {
                    cmd.pre_exec(|| {
                        let _ = rustix::process::set_parent_process_death_signal(Some(
                            rustix::process::Signal::KILL,
                        ));
                        Ok(())
                    });
                }
            }
            Ok(Runner::Process(cmd.spawn()?))
        }
    }
}

/// CALL-8: fails calls whose deadline passed and sets their cancel entries.
fn check_deadlines(inner: &Inner, w: &WorkerSlot, now: u64) {
    let expired: Vec<u64> = match w.state.try_lock() {
        Ok(st) => st
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ns != 0 && now >= p.deadline_ns)
            .map(|(id, _)| *id)
            .collect(),
        // Someone is working the mailbox; the next tick looks again.
        Err(_) => return,
    };
    for id in expired {
        inner.cancel(w, id, ErrorCode::DeadlineExceeded, "the deadline passed");
    }
}

/// An error for a worker that failed to start, naming its command.
pub(crate) fn start_error(inner: &Inner, w: &WorkerSlot) -> CallError {
    let why = lock(&w.failure)
        .clone()
        .unwrap_or_else(|| "did not start".to_owned());
    CallError::new(
        ErrorCode::PeerDied,
        format!(
            "worker {} ({}) failed to start: {why}",
            w.index,
            inner.config.kind.describe()
        ),
    )
}
