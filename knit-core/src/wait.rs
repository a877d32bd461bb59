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
        self.ring_unless(parker, || false)
    }

    /// [`Doorbell::ring`], except that when the owner announced sleep, `needless` is asked
    /// first, after the fence, and a true answer skips the wake (WAIT-8: a consumer that can
    /// show that no producer waits for room on its account). `needless` runs only when
    /// `bell_sleepers` is non-zero, at most once; its loads are ordered after the fence.
    /// Returns whether it woke.
    pub fn ring_unless<P: Parker + ?Sized>(
        &self,
        parker: &P,
        needless: impl FnOnce() -> bool,
    ) -> bool {
        // WAIT-5: the fence orders the caller's condition store before the load of
        // `bell_sleepers` (the waker's half of the Dekker pattern, spec §4.3), and before
        // every load `needless` makes (WAIT-8 loads `tail` after it).
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) == 0 || needless() {
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

/// WAIT-8: true when the ring's free space counted from `head_before` (the `head` its
/// consumer had published at its previous wake decision) holds the largest record its
/// producer may write next at `tail` (loaded after the waker's fence): `cap / 2` (RING-1),
/// plus the padding RING-2 puts before it when fewer than `cap / 2` bytes remain to the end
/// of the data area. Then no producer that follows WAIT-9 can be parked for room, and the
/// consumer may skip the ring.
///
/// `tail` is peer-written: a value that is not a multiple of 8, behind `head_before` or more
/// than `cap` past it gives false (ring: an extra wake is harmless, spec §4.4), as does a
/// `cap` that is not a power of two of at least 16.
#[must_use]
pub fn room_for_any_record(cap: u64, head_before: u64, tail: u64) -> bool {
    if !cap.is_power_of_two() || cap < 16 || tail % 8 != 0 {
        return false;
    }
    let Some(used) = tail.checked_sub(head_before).filter(|&u| u <= cap) else {
        return false;
    };
    let half = cap / 2;
    // RING-2: a record that does not fit before the end is preceded by a PAD covering the
    // bytes to the end; the largest record (`cap / 2`, RING-1) needs one whenever fewer than
    // `cap / 2` bytes remain, and smaller records never need more.
    let to_end = cap - (tail & (cap - 1));
    let need = if to_end >= half { half } else { half + to_end };
    cap - used >= need
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
    fn ring_unless_asks_only_when_someone_sleeps() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let parker = RecordingParker::default();
        let bell = Doorbell::new(&seq, &sleepers);
        let asked = Cell::new(0);
        let ask = |answer| {
            asked.set(asked.get() + 1);
            answer
        };
        assert!(!bell.ring_unless(&parker, || ask(false)));
        assert_eq!(asked.get(), 0, "no sleeper: nothing to ask, no call");
        sleepers.store(1, Ordering::Relaxed);
        assert!(!bell.ring_unless(&parker, || ask(true)), "WAIT-8: skipped");
        assert_eq!((asked.get(), parker.wakes.get()), (1, 0));
        assert_eq!(seq.load(Ordering::Relaxed), 0, "a skip leaves bell_seq");
        assert!(bell.ring_unless(&parker, || ask(false)));
        assert_eq!((asked.get(), parker.wakes.get()), (2, 1));
        assert_eq!(seq.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn room_for_any_record_counts_the_largest_record_and_its_padding() {
        // cap 64: the largest record is 32 bytes.
        // Tail at offset 0 or 32: no padding needed; room from the old head must be 32.
        assert!(room_for_any_record(64, 0, 32));
        assert!(room_for_any_record(64, 8, 32), "24 used, 40 free >= 32");
        assert!(room_for_any_record(64, 64, 96));
        assert!(!room_for_any_record(64, 56, 96), "40 used, 24 free < 32");
        // Tail at offset 40: 24 bytes to the end, so the largest record needs 24 + 32.
        assert!(
            room_for_any_record(64, 40, 40),
            "empty before the release: all 64 free"
        );
        assert!(room_for_any_record(64, 32, 40), "8 used, 56 free");
        assert!(!room_for_any_record(64, 24, 40), "16 used, 48 free < 56");
        // Tail at offset 8: 56 to the end, no padding; 32 must be free.
        assert!(room_for_any_record(64, 40, 72));
        assert!(!room_for_any_record(64, 32, 72));
    }

    #[test]
    fn room_for_any_record_refuses_impossible_values() {
        assert!(!room_for_any_record(64, 8, 4), "tail behind the old head");
        assert!(!room_for_any_record(64, 0, 68), "tail not a multiple of 8");
        assert!(
            !room_for_any_record(64, 0, 72),
            "tail more than cap past the old head"
        );
        assert!(!room_for_any_record(48, 0, 0), "cap not a power of two");
        assert!(!room_for_any_record(8, 0, 0), "cap below the code minimum");
        assert!(!room_for_any_record(64, u64::MAX - 7, 0));
        assert!(room_for_any_record(1 << 31, u64::MAX - 7, u64::MAX - 7));
    }

    #[test]
    fn default_policy_respects_wait_4() {
        assert!(WaitPolicy::default().park_timeout_ns <= MAX_PARK_TIMEOUT_NS);
    }
}
