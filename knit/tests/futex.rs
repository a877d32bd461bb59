//! The shared futex parker (WAIT-2 step 4, WAIT-5, WAIT-7).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use knit::{Futex, WaitOutcome};
use knit_core::wait::Parker;

/// Generous bound after which a test that should have been woken is declared hung.
const HANG: Duration = Duration::from_secs(60);

#[test]
fn wait_returns_at_once_when_the_word_differs() {
    let word = AtomicU32::new(5);
    // With the value already changed the kernel returns EAGAIN; with an unbounded timeout a
    // parker that ignored `expected` would block this test forever.
    assert_eq!(
        Futex::new().wait_outcome(&word, 4, u64::MAX),
        WaitOutcome::ValueChanged
    );
    Futex::new().wait(&word, 4, u64::MAX);
    assert_eq!(word.load(Ordering::Relaxed), 5);
}

#[test]
fn wait_times_out() {
    let word = AtomicU32::new(0);
    assert_eq!(
        Futex::new().wait_outcome(&word, 0, 1_000_000),
        WaitOutcome::TimedOut
    );
    assert_eq!(
        Futex::new().wait_outcome(&word, 0, 0),
        WaitOutcome::TimedOut
    );
    Futex::new().wait(&word, 0, 1_000_000);
    assert_eq!(word.load(Ordering::Relaxed), 0);
}

#[test]
fn wake_all_wakes_every_parked_thread() {
    const WAITERS: usize = 3;
    let word = Arc::new(AtomicU32::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    for _ in 0..WAITERS {
        let word = Arc::clone(&word);
        let done_tx = done_tx.clone();
        let tid_tx = tid_tx.clone();
        std::thread::spawn(move || {
            tid_tx
                .send(rustix::thread::gettid().as_raw_nonzero().get())
                .expect("send tid");
            // Unbounded timeout: only a wake (or the word changing first) ends this wait.
            let outcome = Futex::new().wait_outcome(&word, 0, u64::MAX);
            done_tx.send(outcome).expect("send outcome");
        });
    }
    // Wait until every waiter sleeps in the kernel on this word, so that the wake (and not a
    // changed value) is what releases it: /proc/<pid>/task/<tid>/syscall names the blocking
    // call's first argument, the futex address.
    let tids: Vec<i32> = (0..WAITERS).map(|_| tid_rx.recv().expect("tid")).collect();
    let addr = format!("{:#x}", std::ptr::from_ref::<AtomicU32>(&word) as usize);
    for tid in &tids {
        let path = format!("/proc/{}/task/{tid}/syscall", std::process::id());
        let parked = (0..1_000_000).any(|_| {
            let text = std::fs::read_to_string(&path).expect("task syscall");
            let parked = text.split_whitespace().nth(1) == Some(addr.as_str());
            if !parked {
                std::thread::yield_now();
            }
            parked
        });
        assert!(parked, "waiter {tid} never parked on the word");
    }
    word.store(1, Ordering::Release);
    let woken = Futex::new().wake_all_count(&word);
    assert_eq!(
        woken, WAITERS,
        "every sleeper is woken by one FUTEX_WAKE(INT_MAX)"
    );
    for _ in 0..WAITERS {
        let outcome = done_rx.recv_timeout(HANG).expect("a waiter was not woken");
        assert_eq!(outcome, WaitOutcome::Woken);
    }
}
