//! Pools whose workers someone else starts (`PoolBuilder::external`, PART-11, PART-12): the
//! pool reserves every entry and adopts the workers that attach by name and index, thread
//! workers of this test and `knit-test-worker` processes the test starts itself (MAP-5).
//!
//! Covers PART-4, PART-11, PART-12, MBX-2, MBX-3, MBX-4, FN-2, LIVE-2, LIVE-3, LIVE-5.

use std::process::{Child, Command};
use std::thread::JoinHandle;
use std::time::Duration;

use knit::{CallOptions, Pool, ServeOutcome, Worker};
use knit_core::layout::ParticipantState;
use knit_core::ErrorCode;

const WORKER: &str = env!("CARGO_BIN_EXE_knit-test-worker");
/// Generous bound for waits that succeed at once on a quiet machine; never a speed check.
const LONG: Duration = Duration::from_secs(20);

fn external(workers: u32) -> Pool {
    Pool::builder()
        .workers(workers)
        .external()
        .build()
        .expect("an external pool starts without workers")
}

fn name(pool: &Pool) -> String {
    pool.region_name().expect("a named region").to_owned()
}

/// A thread worker attaching to `slot` by the region's name, as any other process could.
fn thread_worker(pool: &Pool, slot: u32) -> JoinHandle<knit::Result<ServeOutcome>> {
    let worker = Worker::new(name(pool), slot)
        .handle("echo", |_ctx, req| Ok(req.payload.to_vec()))
        .handle("twice", |_ctx, req| Ok([req.payload, req.payload].concat()));
    std::thread::spawn(move || worker.serve())
}

/// A `knit-test-worker` process for `slot`, started the way MAP-5 says.
fn process_worker(pool: &Pool, slot: u32) -> Child {
    Command::new(WORKER)
        .env("KNIT_REGION", name(pool))
        .env("KNIT_SLOT", slot.to_string())
        .spawn()
        .expect("the test worker starts")
}

fn entry_state(pool: &Pool, index: u32) -> ParticipantState {
    pool.region()
        .region()
        .participant(index)
        .and_then(|p| p.state())
        .expect("entry readable")
}

fn entry_epoch(pool: &Pool, index: u32) -> u32 {
    pool.region()
        .region()
        .participant(index)
        .and_then(|p| p.epoch())
        .expect("entry readable")
}

#[test]
fn build_reserves_every_entry_and_waits_for_no_worker() {
    let pool = external(3);
    for index in 1..=3 {
        assert_eq!(entry_state(&pool, index), ParticipantState::Reserved);
        assert_eq!(entry_epoch(&pool, index), 1);
    }
    let infos = pool.workers();
    assert_eq!(infos.len(), 3);
    assert!(infos.iter().all(|w| !w.ready && !w.dead && w.pid.is_none()));
    let waited = pool.wait_worker(2, Duration::from_millis(30));
    assert_eq!(
        waited.expect_err("nobody attached").status,
        ErrorCode::TimedOut as u32
    );
    // A RESERVED entry has no attach timeout (PART-11): it is still waiting.
    assert_eq!(entry_state(&pool, 2), ParticipantState::Reserved);
    assert_eq!(
        pool.wait_worker(4, LONG).expect_err("no worker 4").status,
        ErrorCode::InvalidArgument as u32
    );
}

#[test]
fn adopted_workers_serve_pinned_and_dispatched_calls() {
    let pool = external(2);
    let one = thread_worker(&pool, 1);
    let two = thread_worker(&pool, 2);
    assert_eq!(pool.wait_worker(1, LONG).expect("HELLO"), ["echo", "twice"]);
    assert_eq!(pool.wait_worker(2, LONG).expect("HELLO"), ["echo", "twice"]);
    let answer = pool
        .call_on(2, "twice", "ab", CallOptions::default())
        .expect("pinned call");
    assert_eq!(answer.text(), Some("abab"));
    let answer = pool
        .call_async_on(1, "echo", "async", CallOptions::default())
        .wait()
        .expect("pinned async call");
    assert_eq!(answer.text(), Some("async"));
    assert_eq!(
        pool.call("echo", "any").expect("dispatched").text(),
        Some("any")
    );
    // FN-2 on the pinned worker: refused locally.
    let refused = pool
        .call_on(1, "missing", "", CallOptions::default())
        .expect_err("no such function");
    assert_eq!(refused.status, ErrorCode::UnknownFunction as u32);
    drop(pool);
    // MBX-3: the pool's shutdown lets adopted workers detach cleanly.
    for w in [one, two] {
        let outcome = w
            .join()
            .expect("worker thread")
            .expect("serve ends cleanly");
        assert_eq!(outcome, ServeOutcome::Shutdown);
    }
}

#[test]
fn a_released_worker_detaches_and_its_entry_can_be_reserved_again() {
    let pool = external(1);
    let first = thread_worker(&pool, 1);
    pool.wait_worker(1, LONG).expect("HELLO");
    assert_eq!(
        pool.release_worker(1, LONG).expect("released"),
        ParticipantState::Detached
    );
    assert_eq!(
        first.join().expect("worker thread").expect("clean"),
        ServeOutcome::Shutdown
    );
    let after = pool
        .call_on(1, "echo", "x", CallOptions::default())
        .expect_err("released");
    assert_eq!(after.status, ErrorCode::PeerDied as u32);
    assert_eq!(
        pool.call("echo", "x").expect_err("no live worker").status,
        ErrorCode::PeerDied as u32
    );
    // Releasing again is a no-op that reports the final state.
    assert_eq!(
        pool.release_worker(1, LONG).expect("idempotent"),
        ParticipantState::Detached
    );
    // PART-4, MBX-4: a new epoch for the next worker.
    assert_eq!(pool.reserve_worker(1).expect("reserved again"), 2);
    assert_eq!(pool.reserve_worker(1).expect("still waiting"), 2);
    let second = thread_worker(&pool, 1);
    pool.wait_worker(1, LONG).expect("HELLO of epoch 2");
    assert_eq!(
        pool.reserve_worker(1).expect_err("in use").status,
        ErrorCode::SlotTaken as u32
    );
    assert_eq!(
        pool.call_on(1, "echo", "again", CallOptions::default())
            .expect("served")
            .text(),
        Some("again")
    );
    drop(pool);
    assert!(second.join().expect("worker thread").is_ok());
}

#[test]
fn releasing_an_unclaimed_entry_withdraws_it() {
    let pool = external(1);
    assert_eq!(
        pool.release_worker(1, LONG).expect("withdrawn"),
        ParticipantState::Dead
    );
    // PART-12: a late worker's claim fails.
    let late = thread_worker(&pool, 1)
        .join()
        .expect("worker thread")
        .expect_err("the entry is no longer RESERVED");
    assert_eq!(late.code(), ErrorCode::SlotTaken);
}

#[test]
fn an_external_process_killed_mid_call_fails_it_and_restart_reserves_its_entry() {
    let pool = Pool::builder()
        .workers(1)
        .external()
        .restart(true)
        .build()
        .expect("pool");
    let mut child = process_worker(&pool, 1);
    pool.wait_worker(1, LONG).expect("HELLO");
    assert_eq!(pool.workers()[0].pid, Some(child.id()));
    let call = pool.call_async_on(
        1,
        "sleep_ms",
        &60_000u64.to_le_bytes()[..],
        CallOptions::default(),
    );
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    // LIVE-2 through the entry's identity (not our child's exit status), LIVE-3.
    let failed = call.wait().expect_err("the worker died");
    assert_eq!(failed.status, ErrorCode::PeerDied as u32);
    // LIVE-5 for an external worker: the entry is reserved again, nothing is started.
    let mut epoch = entry_epoch(&pool, 1);
    for _ in 0..2000 {
        if entry_state(&pool, 1) == ParticipantState::Reserved && epoch == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        epoch = entry_epoch(&pool, 1);
    }
    assert_eq!(entry_state(&pool, 1), ParticipantState::Reserved);
    assert_eq!(epoch, 2);
    let mut next = process_worker(&pool, 1);
    pool.wait_worker(1, LONG).expect("HELLO of the new process");
    assert_eq!(
        pool.call_on(1, "echo", "back", CallOptions::default())
            .expect("served")
            .text(),
        Some("back")
    );
    drop(pool);
    assert!(next.wait().expect("exits after SHUTDOWN").success());
}

#[test]
fn a_claim_that_never_activates_is_dead_after_the_attach_timeout() {
    let pool = Pool::builder()
        .workers(1)
        .external()
        .start_timeout(Duration::from_millis(200))
        .build()
        .expect("pool");
    // A worker that claims its entry and stops there (it died during its attach).
    let handle = knit::RegionHandle::attach(&name(&pool), LONG).expect("attach");
    handle
        .region()
        .participant(1)
        .and_then(|p| p.claim())
        .expect("claim");
    let waited = pool.wait_worker(1, LONG).expect_err("never ACTIVE");
    assert_eq!(waited.status, ErrorCode::PeerDied as u32);
    assert_eq!(entry_state(&pool, 1), ParticipantState::Dead);
    // PART-4: the claimer was never identified, so the entry stays DEAD.
    assert_eq!(
        pool.reserve_worker(1).expect_err("owner unknown").status,
        ErrorCode::SlotTaken as u32
    );
}

#[test]
fn reserve_worker_is_for_external_pools_only() {
    let pool = Pool::builder()
        .threads(knit::Handlers::new().handle("echo", |_ctx, req| Ok(req.payload.to_vec())))
        .build()
        .expect("pool");
    assert_eq!(
        pool.reserve_worker(1).expect_err("not external").status,
        ErrorCode::InvalidArgument as u32
    );
    // Pinned calls work on any pool.
    assert_eq!(
        pool.call_on(1, "echo", "pinned", CallOptions::default())
            .expect("pinned")
            .text(),
        Some("pinned")
    );
}
