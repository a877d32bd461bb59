//! Loom model of the doorbell protocol (spec/04-wait.md WAIT-2, WAIT-5, WAIT-6, §4.3): the real
//! [`Doorbell`] and [`wait_until`] of `knit_core::wait`, with one and two sleepers against a
//! waker, and a producer and a consumer that park on each other through a real ring. WAIT-8
//! (a consumer skipping the ring when no producer can be parked for room) is modelled with the
//! real `Consumer::wake_producer` in two exchanges, and two wrong rules (room counted from the
//! head just stored; `tail` loaded before the fence) are run as mutants in child processes,
//! which must end in loom's deadlock report.
//!
//! Run with (once built: about 15 s for both files at bound 3, 5 s at bound 2, on two cores):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p knit-core --release --test loom_ring --test loom_wait
//! ```
//!
//! `LOOM_MAX_PREEMPTIONS` defaults to 3 here when unset.
//!
//! The futex is modelled by [`FutexModel`]: `wait` blocks on a loom `Condvar` only if the word
//! still equals the expected value, checked under the mutex; `wake_all` takes the mutex and
//! notifies every waiter. Timeouts are ignored (infinite), so a lost wake-up cannot be hidden
//! by one: it leaves a thread blocked for ever, which loom reports as a deadlock.
//!
//! The model catches real bugs. Checked by hand when this file was written (and reverted):
//! - without the sleeper's `SeqCst` fence between its announcement and its re-check in
//!   `Doorbell::park` (announcement `fetch_add` `SeqCst` or Relaxed alike, since loom treats `SeqCst`
//!   accesses as `AcqRel`), loom reports a deadlock in each of the four tests that ring: the
//!   re-check misses the condition while the waker misses the announcement;
//! - without the waker's `SeqCst` fence in `Doorbell::ring`, loom reports the same deadlocks;
//! - with the announcement weakened to Relaxed but the sleeper's fence kept, the model passes,
//!   as it should: the two fences alone make the Dekker pattern hold;
//! - with `park` waiting on a freshly loaded `bell_seq` instead of the value loaded before the
//!   announcement (WAIT-2 step 1), loom reports a deadlock.
#![cfg(loom)]

use knit_core::ring::{Consumer, Producer, RingRef, RING_CTRL_LEN};
use knit_core::wait::{room_for_any_record, wait_until, Doorbell, Parker, WaitPolicy};
use knit_core::{Error, ErrorCode, SharedMem};
use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// A futex made of a mutex and a condition variable (see the module doc).
struct FutexModel {
    lock: Mutex<()>,
    cond: Condvar,
}

impl FutexModel {
    fn new() -> Self {
        FutexModel {
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }
}

impl Parker for FutexModel {
    fn wait(&self, word: &AtomicU32, expected: u32, _timeout_ns: u64) {
        let guard = self.lock.lock().expect("model mutex");
        if word.load(Ordering::SeqCst) == expected {
            drop(self.cond.wait(guard).expect("model mutex"));
        }
    }

    fn wake_all(&self, _word: &AtomicU32) {
        let _guard = self.lock.lock().expect("model mutex");
        self.cond.notify_all();
    }
}

/// One participant's doorbell words plus the conditions the tests wait for.
struct Bell {
    seq: AtomicU32,
    sleepers: AtomicU32,
    parker: FutexModel,
}

impl Bell {
    fn new() -> Self {
        Bell {
            seq: AtomicU32::new(0),
            sleepers: AtomicU32::new(0),
            parker: FutexModel::new(),
        }
    }

    fn doorbell(&self) -> Doorbell<'_> {
        Doorbell::new(&self.seq, &self.sleepers)
    }

    /// Parks until `ready`, with no spin and "infinite" parks (the model ignores timeouts).
    fn wait_for(&self, ready: impl FnMut() -> bool) {
        let policy = WaitPolicy {
            spin_iterations: 0,
            park_timeout_ns: u64::MAX,
        };
        wait_until(&self.doorbell(), &self.parker, &policy, ready, || Ok(()))
            .expect("never fails here");
    }

    fn ring(&self) {
        self.doorbell().ring(&self.parker);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

/// WAIT-2 against WAIT-5: the sleeper wakes once the waker made its condition true.
#[test]
fn one_sleeper_is_never_lost() {
    model(|| {
        let bell = Arc::new(Bell::new());
        let flag = Arc::new(AtomicU32::new(0));
        let (waker_bell, waker_flag) = (Arc::clone(&bell), Arc::clone(&flag));
        let waker = thread::spawn(move || {
            waker_flag.store(1, Ordering::Release);
            waker_bell.ring();
        });
        bell.wait_for(|| flag.load(Ordering::Acquire) == 1);
        waker.join().expect("waker thread");
        assert_eq!(
            bell.sleepers.load(Ordering::Relaxed),
            0,
            "every announcement withdrawn"
        );
    });
}

/// WAIT-3: two threads of one participant sleep on the same doorbell; one ring wakes both.
#[test]
fn two_sleepers_on_one_doorbell_both_wake() {
    model(|| {
        let bell = Arc::new(Bell::new());
        let flag = Arc::new(AtomicU32::new(0));
        let sleepers: Vec<_> = (0..2)
            .map(|_| {
                let (b, f) = (Arc::clone(&bell), Arc::clone(&flag));
                thread::spawn(move || b.wait_for(|| f.load(Ordering::Acquire) == 1))
            })
            .collect();
        flag.store(1, Ordering::Release);
        bell.ring();
        for s in sleepers {
            s.join().expect("sleeper thread");
        }
        assert_eq!(bell.sleepers.load(Ordering::Relaxed), 0);
    });
}

/// Two sleepers on one doorbell waiting for different conditions, made true one at a time
/// with a ring each: neither wake-up is lost, whatever the interleaving.
#[test]
fn two_sleepers_with_separate_conditions() {
    model(|| {
        let bell = Arc::new(Bell::new());
        let flags = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
        let sleepers: Vec<_> = (0..2)
            .map(|i| {
                let (b, f) = (Arc::clone(&bell), Arc::clone(&flags));
                thread::spawn(move || b.wait_for(|| f[i].load(Ordering::Acquire) == 1))
            })
            .collect();
        for flag in flags.iter() {
            flag.store(1, Ordering::Release);
            bell.ring();
        }
        for s in sleepers {
            s.join().expect("sleeper thread");
        }
    });
}

/// A futex wait that always times out at once (yielding to the other threads).
struct TimeoutParker;

impl Parker for TimeoutParker {
    fn wait(&self, _word: &AtomicU32, _expected: u32, _timeout_ns: u64) {
        thread::yield_now();
    }

    fn wake_all(&self, _word: &AtomicU32) {}
}

/// WAIT-4 and the liveness hook: a peer that dies never rings, and the sleeper still returns,
/// with the error its liveness check gives, once a timed-out park lets it look.
#[test]
fn peer_death_without_ring_ends_the_wait() {
    model(|| {
        let bell = Arc::new(Bell::new());
        let dead = Arc::new(AtomicU32::new(0));
        let peer_dead = Arc::clone(&dead);
        let peer = thread::spawn(move || peer_dead.store(1, Ordering::Release));
        let policy = WaitPolicy {
            spin_iterations: 0,
            park_timeout_ns: u64::MAX,
        };
        let died = Error::new(ErrorCode::PeerDied, "model peer");
        let r = wait_until(
            &bell.doorbell(),
            &TimeoutParker,
            &policy,
            || false,
            || {
                if dead.load(Ordering::Acquire) == 1 {
                    Err(died)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err(died));
        assert_eq!(
            bell.sleepers.load(Ordering::Relaxed),
            0,
            "announcement withdrawn"
        );
        peer.join().expect("peer thread");
    });
}

/// A ring's control block and data area, allocated as `u64` words for alignment.
struct RingMem {
    words: Box<[std::cell::UnsafeCell<u64>]>,
}

// SAFETY: the words are only accessed through `SharedMem` views (copies and atomics), which
// are made for concurrent use.
unsafe impl Sync for RingMem {}

impl RingMem {
    fn new(cap: usize) -> Self {
        RingMem {
            words: (0..(RING_CTRL_LEN + cap) / 8)
                .map(|_| std::cell::UnsafeCell::new(0))
                .collect(),
        }
    }

    fn ring(&self) -> RingRef<'_> {
        let ptr =
            std::ptr::NonNull::new(self.words.as_ptr().cast_mut().cast::<u8>()).expect("non-null");
        // SAFETY: `words` is `RING_CTRL_LEN + cap` bytes of `UnsafeCell`s (writable through a
        // shared reference), 8-aligned, owned by `self` for the view's lifetime.
        let all = unsafe { SharedMem::new(ptr, self.words.len() * 8) };
        let cap = all.len() - RING_CTRL_LEN;
        RingRef::new(
            all.sub(0, RING_CTRL_LEN).expect("ctrl"),
            all.sub(RING_CTRL_LEN, cap).expect("data"),
        )
        .expect("valid geometry")
    }
}

/// RING-14, WAIT-6 with the real ring: the consumer parks while the ring is empty and the
/// producer rings it after each publication; the producer parks while the ring is full and
/// the consumer rings it after each `publish_head`. Three 24-byte records in a 64-byte ring
/// make the producer wait for space once.
#[test]
fn producer_and_consumer_park_on_each_other() {
    model(|| {
        let mem = Arc::new(RingMem::new(64));
        mem.ring().data.zero(0, 64).expect("in bounds");
        mem.ring().reset();
        let (producer_bell, consumer_bell) = (Arc::new(Bell::new()), Arc::new(Bell::new()));
        let (pm, pb, cb) = (
            Arc::clone(&mem),
            Arc::clone(&producer_bell),
            Arc::clone(&consumer_bell),
        );
        let producer = thread::spawn(move || {
            let mut p = Producer::new(pm.ring());
            for i in 0..3u8 {
                pb.wait_for(|| p.try_write(0x30, 0, &[i; 16]).expect("no violation"));
                p.publish();
                cb.ring();
            }
        });
        let mut c = Consumer::new(mem.ring());
        for i in 0..3u8 {
            consumer_bell.wait_for(|| c.peek().expect("no violation").is_some());
            let rec = c.peek().expect("no violation").expect("seen by the wait");
            assert_eq!(rec.body(), &[i; 16]);
            rec.consume();
            c.publish_head();
            producer_bell.ring();
        }
        producer.join().expect("producer thread");
    });
}

/// The host/worker exchange of WAIT-8 over a real 64-byte ring: the worker (producer of the
/// ring) parks for the next request and for room, on one doorbell; the host (consumer) posts
/// requests, takes the responses and decides after each release with `decide`. Request 1 gets
/// one 8-byte response, after which a parked worker waits only for work (WAIT-8 skips that
/// needless wake: old head 0, `tail` 8). Request 2 gets two 32-byte responses; the second
/// needs 24 bytes of padding plus 32, so the worker parks for room until the first is released.
fn host_and_worker(decide: fn(&mut Consumer<'_>, &Bell)) {
    model(move || {
        let mem = Arc::new(RingMem::new(64));
        mem.ring().data.zero(0, 64).expect("in bounds");
        mem.ring().reset();
        let requests = Arc::new(loom::sync::atomic::AtomicU64::new(0));
        let (worker_bell, host_bell) = (Arc::new(Bell::new()), Arc::new(Bell::new()));
        let (wm, wr, wb, hb) = (
            Arc::clone(&mem),
            Arc::clone(&requests),
            Arc::clone(&worker_bell),
            Arc::clone(&host_bell),
        );
        let worker = thread::spawn(move || {
            let mut p = Producer::new(wm.ring());
            for (request, bodies) in [(1u64, &[0usize][..]), (2, &[24, 24][..])] {
                wb.wait_for(|| wr.load(Ordering::Acquire) >= request);
                for (i, &len) in bodies.iter().enumerate() {
                    let body = vec![i as u8; len];
                    // WAIT-9: everything written is published before any park for room.
                    wb.wait_for(|| p.try_write(0x30, 0, &body).expect("no violation"));
                    p.publish();
                    hb.ring();
                }
            }
        });
        let mut c = Consumer::new(mem.ring());
        for (request, lens) in [(1u64, &[0usize][..]), (2, &[24, 24][..])] {
            requests.store(request, Ordering::Release);
            worker_bell.ring();
            for &len in lens {
                host_bell.wait_for(|| c.peek().expect("no violation").is_some());
                let rec = c.peek().expect("no violation").expect("seen by the wait");
                assert_eq!(rec.body().len(), len);
                rec.consume();
                c.publish_head();
                decide(&mut c, &worker_bell);
            }
        }
        worker.join().expect("worker thread");
    });
}

/// WAIT-8 as `Consumer::wake_producer` implements it: no wake-up is lost.
#[test]
fn skipping_needless_wakes_loses_no_wake_up() {
    host_and_worker(|c, bell| {
        c.wake_producer(&bell.doorbell(), &bell.parker);
    });
}

/// The wrong rule, counting the room from the `head` just stored instead of the one published
/// at the previous decision: the release of the first 32-byte response empties the ring, the
/// rule finds room and skips, and the worker parked for room (on the older head) sleeps for
/// ever. Run alone by [`skipping_on_the_new_head_loses_a_wake_up`], which expects loom to report
/// that deadlock (loom aborts the process on it, so it cannot run in the harness's process).
#[test]
#[ignore = "a mutant that must deadlock; run by skipping_on_the_new_head_loses_a_wake_up"]
fn mutant_skip_on_the_new_head() {
    host_and_worker(|c, bell| {
        let (head, ring) = (c.head(), c.ring());
        bell.doorbell().ring_unless(&bell.parker, || {
            room_for_any_record(64, head, ring.load_tail())
        });
    });
}

/// The model catches the wrong rule: the mutant above, run in a child process, ends with
/// loom's deadlock report.
#[test]
fn skipping_on_the_new_head_loses_a_wake_up() {
    expect_deadlock("mutant_skip_on_the_new_head");
}

/// Runs the ignored test `name` alone in a child process and checks that loom reported a
/// deadlock (loom aborts the process on one, so it cannot run in the harness's process).
fn expect_deadlock(name: &str) {
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--ignored", "--exact", "--nocapture", name])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run the mutant");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the mutant {name} passed: {stderr}");
    assert!(
        stderr.contains("deadlock"),
        "{name}: not a deadlock: {stderr}"
    );
}

/// WAIT-8's `tail` must be loaded after the fence. The worker writes 8-, 32-, 24- and 8-byte
/// records into a 64-byte ring without waiting for a request; the host takes only the first,
/// decides, then waits for the worker to say it is done (a consumer that stops reading for a
/// while). The fourth record needs the first one's bytes, so the worker parks for room until
/// the host's one release is rung.
fn host_reads_one_then_waits(decide: fn(&mut Consumer<'_>, &Bell)) {
    model(move || {
        let mem = Arc::new(RingMem::new(64));
        mem.ring().data.zero(0, 64).expect("in bounds");
        mem.ring().reset();
        let done = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let (worker_bell, host_bell) = (Arc::new(Bell::new()), Arc::new(Bell::new()));
        let (wm, wd, wb, hb) = (
            Arc::clone(&mem),
            Arc::clone(&done),
            Arc::clone(&worker_bell),
            Arc::clone(&host_bell),
        );
        let worker = thread::spawn(move || {
            let mut p = Producer::new(wm.ring());
            for len in [0usize, 24, 16, 0] {
                let body = vec![0u8; len];
                wb.wait_for(|| p.try_write(0x30, 0, &body).expect("no violation"));
                p.publish();
                hb.ring();
            }
            wd.store(true, Ordering::Release);
            hb.ring();
        });
        let mut c = Consumer::new(mem.ring());
        host_bell.wait_for(|| c.peek().expect("no violation").is_some());
        c.peek()
            .expect("no violation")
            .expect("seen by the wait")
            .consume();
        c.publish_head();
        decide(&mut c, &worker_bell);
        host_bell.wait_for(|| done.load(Ordering::Acquire));
        worker.join().expect("worker thread");
    });
}

/// WAIT-8 as `Consumer::wake_producer` implements it, against a consumer that pauses.
#[test]
fn skipping_loses_no_wake_up_when_the_consumer_pauses() {
    host_reads_one_then_waits(|c, bell| {
        c.wake_producer(&bell.doorbell(), &bell.parker);
    });
}

/// The wrong rule, deciding from a `tail` loaded before the fence (this scenario's only
/// decision counts from head 0): that `tail` may still be 8, which leaves room for anything,
/// while the worker has since filled the ring and parked on head 0.
#[test]
#[ignore = "a mutant that must deadlock; run by skipping_on_a_tail_loaded_before_the_fence_loses_a_wake_up"]
fn mutant_tail_before_the_fence() {
    host_reads_one_then_waits(|c, bell| {
        let early = c.ring().load_tail();
        bell.doorbell()
            .ring_unless(&bell.parker, || room_for_any_record(64, 0, early));
    });
}

/// The model catches a `tail` loaded before the fence: the mutant above deadlocks.
#[test]
fn skipping_on_a_tail_loaded_before_the_fence_loses_a_wake_up() {
    expect_deadlock("mutant_tail_before_the_fence");
}
