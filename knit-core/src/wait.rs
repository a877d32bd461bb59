//! The doorbell wait/wake protocol of spec/04-wait.md, as pure transitions over atomics.
//! The operating-system layer supplies the actual sleep and wake calls through [`Parker`].
//!
//! - [`Doorbell::park`] is one sleep attempt of the doorbell's owner (WAIT-2).
//! - [`Doorbell::ring`] is the waker's side (WAIT-5).
//! - [`wait_until`] spins, then parks in a loop, checking the peer's liveness between parks
//!   (WAIT-1, WAIT-4, WAIT-7).

use crate::error::Result;
use crate::sync::{fence, spin_loop, AtomicU32, Ordering};

/// The sleep and wake primitives of the platform (Linux: shared futex), injected by the OS layer
/// so that the core stays free of system calls.
pub trait Parker {
    /// Blocks the calling thread while `word` holds `expected`, for at most `timeout_ns`
    /// nanoseconds. May return early for any reason (wake, signal, spurious); callers re-check
    /// their conditions after every return (WAIT-7).
    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64);
    /// Wakes every thread blocked in [`Parker::wait`] on `word`, in any process.
    fn wake_all(&self, word: &AtomicU32);
}

/// The longest a parked participant sleeps before it checks liveness and poisoning (WAIT-4).
pub const MAX_PARK_TIMEOUT_NS: u64 = 50_000_000;

/// Spin iterations between two liveness checks while spinning, so that even a large spin
/// budget keeps checking the peer (LIVE-2 asks for a check at least every 50 ms).
pub const SPINS_PER_LIVENESS_CHECK: u32 = 1 << 14;

/// One participant's doorbell: `bell_seq` (the futex word) and `bell_sleepers` (spec §4,
/// participant entry 0x40 and 0x44).
#[derive(Clone, Copy, Debug)]
pub struct Doorbell<'a> {
    seq: &'a AtomicU32,
    sleepers: &'a AtomicU32,
}

impl<'a> Doorbell<'a> {
    /// The doorbell made of these two words.
    pub fn new(seq: &'a AtomicU32, sleepers: &'a AtomicU32) -> Self {
        Doorbell { seq, sleepers }
    }

    /// The waker's side (WAIT-5), called after making a condition true for the owner: a
    /// `SeqCst` fence, then, only when the owner announced sleep, `bell_seq += 1` and a wake of
    /// every waiter. Returns whether it woke (made the system call).
    ///
    /// `bell_sleepers` is peer-written: any non-zero value means "maybe asleep", and an extra
    /// wake is harmless (spec §4.4).
    pub fn ring<P: Parker + ?Sized>(&self, parker: &P) -> bool {
        // WAIT-5: the fence orders the caller's condition store before the load of
        // `bell_sleepers` (the waker's half of the Dekker pattern, spec §4.3).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.seq.fetch_add(1, Ordering::Release);
        parker.wake_all(self.seq);
        true
    }

    /// One park attempt of the doorbell's owner (WAIT-2): load `bell_seq`, announce sleep,
    /// re-check `ready`, wait (at most `timeout_ns`, capped at [`MAX_PARK_TIMEOUT_NS`]) if it is
    /// still false, withdraw the announcement.
    ///
    /// Returns true when `ready()` was seen true before sleeping (no wait was made), false after
    /// a wait, whatever ended it (WAIT-7): the caller re-checks. `ready` is called once, after a
    /// `SeqCst` fence, so its loads may be Acquire (WAIT-2 step 3).
    pub fn park<P: Parker + ?Sized>(
        &self,
        parker: &P,
        timeout_ns: u64,
        mut ready: impl FnMut() -> bool,
    ) -> bool {
        // WAIT-2 step 1: a wake that happens after this load changes `bell_seq`, and the wait
        // below then returns at once (spec §4.3).
        let seen = self.seq.load(Ordering::Acquire);
        // Step 2: announce. The owner never decides anything from the value (spec §4.4).
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        // Step 3: the sleeper's half of the Dekker pattern: the announcement is ordered before
        // every load `ready` makes.
        fence(Ordering::SeqCst);
        let was_ready = ready();
        if !was_ready {
            // Step 4 (WAIT-4: bounded).
            parker.wait(self.seq, seen, timeout_ns.min(MAX_PARK_TIMEOUT_NS));
        }
        // Step 5: withdraw; the caller re-checks from the top.
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        was_ready
    }
}

/// How a participant waits (WAIT-1, WAIT-4): spin first, then park with a bounded timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Re-checks before parking, each followed by a CPU spin hint; 0 parks at once (WAIT-1).
    pub spin_iterations: u32,
    /// The longest single park; values above [`MAX_PARK_TIMEOUT_NS`] (50 ms) are capped to it
    /// (WAIT-4).
    pub park_timeout_ns: u64,
}

impl Default for WaitPolicy {
    /// A short spin (a few microseconds on current CPUs), then parks of at most 50 ms.
    fn default() -> Self {
        WaitPolicy {
            spin_iterations: 2_000,
            park_timeout_ns: MAX_PARK_TIMEOUT_NS,
        }
    }
}

/// Waits until `ready()` is true: spins for `policy.spin_iterations` re-checks, then parks on
/// the caller's own `doorbell` (WAIT-3) in a loop (WAIT-2, WAIT-7).
///
/// `check_liveness` runs before each park and every [`SPINS_PER_LIVENESS_CHECK`] spins; its
/// error ends the wait and is returned, which is how the caller bails out with `PEER_DIED`,
/// `POISONED`, `TIMED_OUT` or `DEADLINE_EXCEEDED`. Each park lasts at most 50 ms (WAIT-4), so
/// it runs at least that often; the wait is bounded as long as `check_liveness` fails once
/// the caller's own bound (peer death, deadline) is reached.
pub fn wait_until<P: Parker + ?Sized>(
    doorbell: &Doorbell<'_>,
    parker: &P,
    policy: &WaitPolicy,
    mut ready: impl FnMut() -> bool,
    mut check_liveness: impl FnMut() -> Result<()>,
) -> Result<()> {
    // WAIT-1: bounded spin.
    for i in 0..policy.spin_iterations {
        if ready() {
            return Ok(());
        }
        if i % SPINS_PER_LIVENESS_CHECK == SPINS_PER_LIVENESS_CHECK - 1 {
            check_liveness()?;
        }
        spin_loop();
    }
    loop {
        if ready() {
            return Ok(());
        }
        check_liveness()?;
        if doorbell.park(parker, policy.park_timeout_ns, &mut ready) {
            return Ok(());
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use core::cell::Cell;
    use core::sync::atomic::AtomicU32;
    use std::vec::Vec;

    use super::*;
    use crate::error::{Error, ErrorCode};

    /// A parker that never sleeps and records what it was asked.
    #[derive(Default)]
    struct RecordingParker {
        waits: Cell<Vec<(u32, u64)>>,
        wakes: Cell<u32>,
    }

    impl Parker for RecordingParker {
        fn wait(&self, _word: &AtomicU32, expected: u32, timeout_ns: u64) {
            let mut waits = self.waits.take();
            waits.push((expected, timeout_ns));
            self.waits.set(waits);
        }
        fn wake_all(&self, _word: &AtomicU32) {
            self.wakes.set(self.wakes.get() + 1);
        }
    }

    #[test]
    fn ring_without_sleepers_makes_no_call() {
        let (seq, sleepers) = (AtomicU32::new(7), AtomicU32::new(0));
        let parker = RecordingParker::default();
        assert!(!Doorbell::new(&seq, &sleepers).ring(&parker));
        assert_eq!(parker.wakes.get(), 0);
        assert_eq!(
            seq.load(Ordering::Relaxed),
            7,
            "WAIT-5: no increment without sleepers"
        );
    }

    #[test]
    fn ring_with_sleepers_bumps_seq_and_wakes() {
        let (seq, sleepers) = (AtomicU32::new(u32::MAX), AtomicU32::new(2));
        let parker = RecordingParker::default();
        assert!(Doorbell::new(&seq, &sleepers).ring(&parker));
        assert_eq!(parker.wakes.get(), 1);
        assert_eq!(seq.load(Ordering::Relaxed), 0, "bell_seq wraps (spec 4.4)");
    }

    #[test]
    fn park_when_ready_does_not_wait_and_withdraws() {
        let (seq, sleepers) = (AtomicU32::new(3), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let mut announced = None;
        let ready = Doorbell::new(&seq, &sleepers).park(&parker, 1_000, || {
            announced = Some(sleepers.load(Ordering::Relaxed));
            true
        });
        assert!(ready);
        assert_eq!(announced, Some(1), "WAIT-2: announced before the re-check");
        assert!(parker.waits.take().is_empty());
        assert_eq!(
            sleepers.load(Ordering::Relaxed),
            0,
            "WAIT-2 step 5: withdrawn"
        );
    }

    #[test]
    fn park_when_not_ready_waits_on_seen_seq_with_capped_timeout() {
        let (seq, sleepers) = (AtomicU32::new(41), AtomicU32::new(0));
        let parker = RecordingParker::default();
        assert!(!Doorbell::new(&seq, &sleepers).park(&parker, u64::MAX, || false));
        assert_eq!(
            parker.waits.take(),
            [(41, MAX_PARK_TIMEOUT_NS)],
            "WAIT-2 step 4, WAIT-4"
        );
        assert_eq!(sleepers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn wait_until_returns_during_spin_without_parking() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let policy = WaitPolicy {
            spin_iterations: 10,
            park_timeout_ns: 1,
        };
        let mut checks = 0;
        let r = wait_until(
            &Doorbell::new(&seq, &sleepers),
            &parker,
            &policy,
            || {
                checks += 1;
                checks == 5
            },
            || Ok(()),
        );
        assert_eq!(r, Ok(()));
        assert_eq!(checks, 5);
        assert!(parker.waits.take().is_empty());
    }

    #[test]
    fn wait_until_parks_until_ready() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let policy = WaitPolicy {
            spin_iterations: 0,
            park_timeout_ns: 5,
        };
        let mut checks = 0;
        let mut liveness = 0;
        let r = wait_until(
            &Doorbell::new(&seq, &sleepers),
            &parker,
            &policy,
            || {
                checks += 1;
                checks > 6
            },
            || {
                liveness += 1;
                Ok(())
            },
        );
        assert_eq!(r, Ok(()));
        // Each round: one cheap check, then the re-check inside `park`.
        assert_eq!(parker.waits.take().len(), 3);
        assert_eq!(liveness, 3, "liveness checked before every park");
        assert_eq!(sleepers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn wait_until_bails_out_with_the_liveness_error() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let policy = WaitPolicy {
            spin_iterations: 3,
            park_timeout_ns: MAX_PARK_TIMEOUT_NS,
        };
        let mut liveness = 0;
        let died = Error::new(ErrorCode::PeerDied, "worker 1");
        let r = wait_until(
            &Doorbell::new(&seq, &sleepers),
            &parker,
            &policy,
            || false,
            || {
                liveness += 1;
                if liveness == 4 {
                    Err(died)
                } else {
                    Ok(())
                }
            },
        );
        assert_eq!(r, Err(died));
        assert_eq!(parker.waits.take().len(), 3);
        assert_eq!(sleepers.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn long_spin_checks_liveness_while_spinning() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let policy = WaitPolicy {
            spin_iterations: u32::MAX,
            park_timeout_ns: 1,
        };
        let died = Error::new(ErrorCode::PeerDied, "host");
        let mut liveness = 0;
        let r = wait_until(
            &Doorbell::new(&seq, &sleepers),
            &parker,
            &policy,
            || false,
            || {
                liveness += 1;
                Err(died)
            },
        );
        assert_eq!(r, Err(died));
        assert_eq!(liveness, 1);
        assert!(
            parker.waits.take().is_empty(),
            "failed during the spin, before any park"
        );
    }

    #[test]
    fn default_policy_respects_wait_4() {
        assert!(WaitPolicy::default().park_timeout_ns <= MAX_PARK_TIMEOUT_NS);
    }
}
