//! Workers the pool does not start (PART-11): waiting for one to attach and say HELLO,
//! reserving its entry again, and letting one go with SHUTDOWN (MBX-3). Also the pinned
//! dispatch of [`Pool::call_on`], which any pool offers.

use std::sync::atomic::Ordering;
use std::time::Duration;

use knit_core::layout::ParticipantState;
use knit_core::ErrorCode;

use super::inner::{lock, Inner, WorkerSlot, DEAD, READY, RELEASING, STARTING};
use super::{monitor, send_shutdown, Pool};
use crate::call::CallError;
use crate::clock::monotonic_ns;
use crate::liveness::{peer_status, PeerStatus};
use crate::spin::{deadline_after, wait, SpinPolicy, Stop};

impl Pool {
    /// Waits at most `timeout` until worker `index` (1 to the number of workers, the
    /// participant index) said HELLO for its current epoch (MBX-2), and returns its function
    /// names in id order. Meant for [`crate::PoolBuilder::external`] pools, whose
    /// `build` does not wait; on other pools it returns once the worker is ready.
    ///
    /// Errors: `TIMED_OUT` when no HELLO came in time (nothing changes: wait again),
    /// `PEER_DIED` when the worker was declared dead (LIVE-2) or released, `POISONED`,
    /// `SHUTDOWN`, `INVALID_ARGUMENT` for an index out of range.
    pub fn wait_worker(&self, index: u32, timeout: Duration) -> Result<Vec<String>, CallError> {
        let inner = &self.inner;
        let (_, w) = worker_at(inner, index)?;
        let deadline = deadline_after(Some(timeout));
        let ready = || {
            if w.phase() == STARTING {
                inner.pump(w);
            }
            w.phase() == READY
        };
        let check = || {
            inner.check_open()?;
            match w.phase() {
                DEAD | RELEASING => Err(inner.unavailable(w)),
                _ => Ok(()),
            }
        };
        match wait(&inner.host_bell, SpinPolicy::NoSpin, deadline, ready, check) {
            Ok(()) => {}
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Deadline) => {
                return Err(CallError::new(
                    ErrorCode::TimedOut,
                    format!("worker {index} did not say HELLO within {timeout:?}"),
                ))
            }
        }
        let table = lock(&w.table).clone();
        let mut functions: Vec<(u32, String)> = table
            .iter()
            .flat_map(|t| t.functions().iter())
            .map(|f| (f.id, f.name.clone()))
            .collect();
        functions.sort_unstable_by_key(|(id, _)| *id);
        Ok(functions.into_iter().map(|(_, name)| name).collect())
    }

    /// Lets worker `index` go: sends it SHUTDOWN (MBX-3) and waits at most `timeout` until
    /// its entry is DETACHED or DEAD, delivering its last responses meanwhile. Returns the
    /// state the entry ended in. From the call on, no new call goes to it; calls still
    /// outstanding once it detached fail with `SHUTDOWN` (MBX-3), with `PEER_DIED` when it
    /// died instead (LIVE-3). An entry still RESERVED (no worker claimed it) is withdrawn
    /// (PART-12) and ends DEAD at once. A released worker is not restarted; an external pool
    /// can reserve its entry again ([`Pool::reserve_worker`]).
    ///
    /// Errors: `TIMED_OUT` when the worker is still there after `timeout` (the release goes
    /// on: the pool completes it when the worker leaves or dies; calling this again waits
    /// again), `INVALID_ARGUMENT` for an index out of range.
    pub fn release_worker(
        &self,
        index: u32,
        timeout: Duration,
    ) -> Result<ParticipantState, CallError> {
        let inner = &self.inner;
        let (_, w) = worker_at(inner, index)?;
        let deadline = deadline_after(Some(timeout));
        {
            let _life = lock(&w.lifecycle);
            w.released.store(true, Ordering::Release);
            match w.phase() {
                DEAD => return w.participant.state().map_err(CallError::from),
                RELEASING => {}
                _ => {
                    if withdraw(w) {
                        finish_release(inner, w, "its reservation was withdrawn");
                        return Ok(ParticipantState::Dead);
                    }
                    // No call is sent to it from now on: senders check READY under its lock,
                    // which `send_shutdown` takes (MBX-3: nothing follows SHUTDOWN).
                    w.phase.store(RELEASING, Ordering::Release);
                }
            }
        }
        // Outside the lifecycle lock: waiting for ring room must not stall the monitor.
        // LIVE-6: nothing more is written to a poisoned region.
        if !inner.poisoned.load(Ordering::Acquire) {
            send_shutdown(inner, w, deadline);
        }
        let settled = || {
            inner.pump(w);
            settle_release(inner, w, monotonic_ns());
            w.phase() != RELEASING
        };
        match wait(
            &inner.host_bell,
            SpinPolicy::NoSpin,
            deadline,
            settled,
            || Ok::<(), ()>(()),
        ) {
            Ok(()) => w.participant.state().map_err(CallError::from),
            Err(_) => Err(CallError::new(
                ErrorCode::TimedOut,
                format!("worker {index} did not leave within {timeout:?}"),
            )),
        }
    }

    /// Reserves worker `index`'s entry again after its worker left, died or was released,
    /// so that a new worker can attach (PART-4, MBX-4: its mailbox is reset and the entry
    /// gets a new epoch); returns the epoch. On an entry that is already RESERVED and waiting
    /// it changes nothing and returns the current epoch. No process is started: this is for
    /// [`crate::PoolBuilder::external`] pools (`INVALID_ARGUMENT` on others).
    ///
    /// Errors: `SLOT_TAKEN` while a worker holds the entry (attaching, ready, or being
    /// released), and for an entry whose worker died while ATTACHING, before anyone could
    /// tell which process claimed it (PART-4 needs the previous owner known to be gone);
    /// `POISONED`, `SHUTDOWN`, `INVALID_ARGUMENT`.
    pub fn reserve_worker(&self, index: u32) -> Result<u32, CallError> {
        let inner = &self.inner;
        if !inner.config.kind.is_external() {
            return Err(CallError::new(
                ErrorCode::InvalidArgument,
                "only an external pool's entries are reserved on demand (PoolBuilder::external)",
            ));
        }
        let (_, w) = worker_at(inner, index)?;
        inner.check_open()?;
        let _life = lock(&w.lifecycle);
        let taken =
            |why: &str| CallError::new(ErrorCode::SlotTaken, format!("worker {index} {why}"));
        match w.phase() {
            STARTING => match w.participant.state()? {
                ParticipantState::Reserved => Ok(w.participant.epoch()?),
                _ => Err(taken("is attaching")),
            },
            READY | RELEASING => Err(taken("is in use: release it first")),
            _ if w.claim_unknown.load(Ordering::Acquire) => Err(taken(
                "died while ATTACHING, before its process was known: PART-4 forbids a new reservation",
            )),
            _ => {
                w.released.store(false, Ordering::Release);
                monitor::start_worker(inner, w);
                if w.phase() == STARTING {
                    Ok(w.participant.epoch()?)
                } else {
                    Err(inner.unavailable(w))
                }
            }
        }
    }

    /// FN-2 for a call pinned to worker `index`: its position and the function's id. A worker
    /// still starting is waited for (at most the start timeout and the call's deadline).
    pub(super) fn pick_on(
        &self,
        index: u32,
        name: &str,
        deadline_ns: u64,
    ) -> Result<(usize, u32), CallError> {
        let inner = &self.inner;
        let (position, w) = worker_at(inner, index)?;
        inner.check_open()?;
        let restarting =
            || w.phase() == DEAD && inner.config.restart && !w.released.load(Ordering::Acquire);
        if w.phase() != READY && (w.phase() == STARTING || restarting()) {
            let limit = deadline_after(Some(inner.config.start_timeout));
            let until = if deadline_ns == 0 {
                limit
            } else {
                deadline_ns.min(limit)
            };
            let ready = || {
                if w.phase() == STARTING {
                    inner.pump(w);
                }
                w.phase() == READY
            };
            let check = || {
                inner.check_open()?;
                if w.phase() == RELEASING || (w.phase() == DEAD && !restarting()) {
                    return Err(inner.unavailable(w));
                }
                Ok(())
            };
            match wait(&inner.host_bell, SpinPolicy::NoSpin, until, ready, check) {
                Ok(()) => {}
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Deadline) if until == deadline_ns => {
                    return Err(CallError::new(
                        ErrorCode::DeadlineExceeded,
                        format!("deadline passed while worker {index} was not ready"),
                    ))
                }
                Err(Stop::Deadline) => {
                    return Err(CallError::new(
                        ErrorCode::PeerDied,
                        format!("worker {index} did not become ready within the start timeout"),
                    ))
                }
            }
        }
        if w.phase() != READY {
            return Err(inner.unavailable(w));
        }
        // FN-2: refused locally, nothing sent.
        let id = w.lookup(name).ok_or_else(|| {
            CallError::new(
                ErrorCode::UnknownFunction,
                format!("worker {index} has no function named `{name}`"),
            )
        })?;
        Ok((position, id))
    }
}

/// Worker `index` (participant index, 1-based) and its position in the pool.
fn worker_at(inner: &Inner, index: u32) -> Result<(usize, &WorkerSlot), CallError> {
    index
        .checked_sub(1)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| inner.workers.get(i).map(|w| (i, w)))
        .ok_or_else(|| {
            CallError::new(
                ErrorCode::InvalidArgument,
                format!("worker {index} is not in 1..={}", inner.workers.len()),
            )
        })
}

/// PART-12: takes back a reservation nobody claimed (RESERVED → DEAD by compare-and-swap, so
/// a worker whose claim comes later gets `SLOT_TAKEN`). False when the entry was not RESERVED
/// or a claim won the race.
fn withdraw(w: &WorkerSlot) -> bool {
    matches!(w.participant.state(), Ok(ParticipantState::Reserved))
        && matches!(
            w.participant.mark_dead(ParticipantState::Reserved),
            Ok(true)
        )
}

/// Completes a release once the worker is gone: DETACHED is a clean leave whose outstanding
/// calls fail with `SHUTDOWN` (MBX-3); a death is LIVE-3's `PEER_DIED`. Idempotent; runs on
/// the monitor and on the releasing caller.
pub(crate) fn settle_release(inner: &Inner, w: &WorkerSlot, now: u64) {
    let _life = lock(&w.lifecycle);
    if w.phase() != RELEASING {
        return;
    }
    if let Some((observed, reason)) = monitor::death(inner, w, now) {
        if observed == Some(ParticipantState::Detached) {
            finish_release(inner, w, "it detached");
        } else {
            monitor::declare_dead(inner, w, observed, &reason);
        }
    }
}

/// The end of a release: the worker is DEAD to dispatch, its last responses are delivered and
/// the calls still outstanding fail with `SHUTDOWN` (MBX-3).
fn finish_release(inner: &Inner, w: &WorkerSlot, how: &str) {
    *lock(&w.failure) = Some(format!("released ({how})"));
    w.phase.store(DEAD, Ordering::Release);
    inner.ring_host_bell();
    {
        let mut st = lock(&w.state);
        inner.drain_locked(w, &mut st);
        let message = format!("worker {} was released", w.index);
        inner.fail_all(w, &mut st, ErrorCode::Shutdown, &message);
        st.mailbox = None;
    }
    inner.ring_host_bell();
}

/// Shutdown's test for an external worker: nothing more will come from it (it left, died or
/// never claimed its entry). A garbage entry counts as gone: nothing it says can be trusted.
pub(super) fn external_gone(w: &WorkerSlot) -> bool {
    !matches!(
        peer_status(&w.participant),
        Ok(PeerStatus::Active | PeerStatus::Starting(ParticipantState::Attaching))
    )
}
