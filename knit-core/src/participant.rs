//! One participant entry (spec/02-participants.md): its state machine and identity.
//!
//! Transitions are compare-and-swaps from the state the caller observed, so that two
//! participants changing the same entry cannot both win. Everything read from an entry is
//! peer-written: [`Participant::snapshot`] loads each field once into a private copy and
//! validates it (PART-3, PART-6) before anyone decides anything from it.

use crate::error::{Error, ErrorCode, Result};
use crate::layout::{
    ParticipantState, Role, IMPL_NAME_LEN, PARTICIPANT_ENTRY_LEN, P_BELL_SEQ, P_BELL_SLEEPERS,
    P_EPOCH, P_HEARTBEAT, P_IMPL_NAME, P_PID, P_ROLE, P_START_TIME, P_STATE,
};
use crate::shared::SharedMem;
use crate::sync::{AtomicU32, Ordering};
use crate::wait::Doorbell;

/// Who a participant is (spec/02 §2.3): process id, process start time and implementation name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity<'s> {
    /// Operating-system process id; never 0 (PART-6).
    pub pid: u32,
    /// Process start time in the platform's unit (Linux: `starttime` of `/proc/<pid>/stat`);
    /// 0 when unknown.
    pub start_time: u64,
    /// UTF-8 name and version of the implementation, at most 32 bytes.
    pub impl_name: &'s str,
}

impl Identity<'_> {
    /// Checks what the caller gives before anything is written (an API misuse is
    /// `InvalidArgument`, never a half-written entry).
    pub(crate) fn check(&self) -> Result<()> {
        if self.pid == 0 {
            // PART-6: an ACTIVE entry with pid 0 is a violation, so never write one.
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "identity.pid",
                0,
                1,
            ));
        }
        let len = self.impl_name.len();
        if len > IMPL_NAME_LEN {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "identity.impl_name length",
                len as u64,
                IMPL_NAME_LEN as u64,
            ));
        }
        Ok(())
    }

    fn name_bytes(&self) -> [u8; IMPL_NAME_LEN] {
        let mut name = [0u8; IMPL_NAME_LEN];
        let src = self.impl_name.as_bytes();
        if let Some(dst) = name.get_mut(..src.len()) {
            dst.copy_from_slice(src);
        }
        name
    }
}

/// The identity fields of an entry, copied out once (PART-3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentitySnapshot {
    /// `role`; 0 only when the entry never became ACTIVE in this epoch.
    pub role: Role,
    /// `pid`; non-zero in an ACTIVE entry.
    pub pid: u32,
    /// `start_time`.
    pub start_time: u64,
    /// `heartbeat_ns`, informative (PART-7).
    pub heartbeat_ns: u64,
    /// `impl_name` as stored, zero padded.
    pub impl_name: [u8; IMPL_NAME_LEN],
}

impl IdentitySnapshot {
    /// `impl_name` without its zero padding, when it is valid UTF-8 (the name is informative:
    /// an invalid one is not a protocol violation).
    pub fn impl_name(&self) -> Option<&str> {
        let end = self
            .impl_name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(IMPL_NAME_LEN);
        core::str::from_utf8(self.impl_name.get(..end)?).ok()
    }
}

/// A validated private copy of one participant entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParticipantSnapshot {
    /// The entry's index: 0 host, `i` ≥ 1 the worker of mailbox `i − 1`.
    pub index: u32,
    /// `state`, loaded with Acquire.
    pub state: ParticipantState,
    /// `epoch`.
    pub epoch: u32,
    /// The identity, read only when `state` is ACTIVE, DETACHED or DEAD (PART-3).
    pub identity: Option<IdentitySnapshot>,
}

/// A view of participant entry `index` of a region.
#[derive(Clone, Copy, Debug)]
pub struct Participant<'a> {
    entry: SharedMem<'a>,
    index: u32,
}

fn bad(what: &'static str, found: u64, expected: u64) -> Error {
    Error::value(ErrorCode::BadParticipant, what, found, expected)
}

/// PART-6: a state above 5 is a violation.
fn decode_state(raw: u32) -> Result<ParticipantState> {
    ParticipantState::from_u32(raw).ok_or(bad(
        "participant.state",
        raw.into(),
        ParticipantState::Dead as u64,
    ))
}

fn slot_taken(what: &'static str, found: u32, expected: ParticipantState) -> Error {
    Error::value(ErrorCode::SlotTaken, what, found.into(), expected as u64)
}

impl<'a> Participant<'a> {
    /// Wraps an entry: `entry` is the `participant_stride` bytes of entry `index` (use
    /// [`crate::region::Region::participant`]). Shorter than 128 bytes is `BadLayout`.
    pub fn new(entry: SharedMem<'a>, index: u32) -> Result<Self> {
        if entry.len() < PARTICIPANT_ENTRY_LEN {
            return Err(Error::value(
                ErrorCode::BadLayout,
                "participant entry length",
                entry.len() as u64,
                PARTICIPANT_ENTRY_LEN as u64,
            ));
        }
        Ok(Participant { entry, index })
    }

    /// The entry's index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The bytes of the entry.
    pub fn memory(&self) -> SharedMem<'a> {
        self.entry
    }

    fn state_word(&self) -> Result<&'a AtomicU32> {
        self.entry.atomic_u32(P_STATE)
    }

    /// `state`, loaded with Acquire (PART-3); a value above 5 is `BadParticipant` (PART-6).
    pub fn state(&self) -> Result<ParticipantState> {
        decode_state(self.state_word()?.load(Ordering::Acquire))
    }

    /// `epoch`, loaded with Acquire.
    pub fn epoch(&self) -> Result<u32> {
        Ok(self.entry.atomic_u32(P_EPOCH)?.load(Ordering::Acquire))
    }

    fn require_worker_entry(&self) -> Result<()> {
        if self.index == 0 {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "participant index (the host entry is never reserved or claimed)",
                0,
                1,
            ));
        }
        Ok(())
    }

    /// Host: reserves this worker entry for a worker it is about to start (PART-4) and returns
    /// the new `epoch`.
    ///
    /// Only from EMPTY, DETACHED or DEAD, and only after the previous owner is known to be gone
    /// (the caller's liveness check). Per MBX-4 the caller resets the entry's mailbox *before*
    /// this call; the Release store of RESERVED publishes that reset and the new epoch to the
    /// worker that claims the entry. Any other state is `SlotTaken`.
    pub fn reserve(&self) -> Result<u32> {
        self.require_worker_entry()?;
        let word = self.state_word()?;
        let raw = word.load(Ordering::Acquire);
        let seen = decode_state(raw)?;
        if !matches!(
            seen,
            ParticipantState::Empty | ParticipantState::Detached | ParticipantState::Dead
        ) {
            return Err(slot_taken(
                "participant.state (reserve needs EMPTY, DETACHED or DEAD)",
                raw,
                ParticipantState::Empty,
            ));
        }
        // PART-4: the epoch grows with each reservation (wrapping: it is only compared for equality).
        let epoch = self
            .entry
            .atomic_u32(P_EPOCH)?
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        // Nobody but the host leaves these three states, so the CAS fails only under a hostile
        // or broken peer.
        match word.compare_exchange(
            raw,
            ParticipantState::Reserved as u32,
            Ordering::Release,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(epoch),
            Err(now) => Err(slot_taken(
                "participant.state changed during reserve",
                now,
                ParticipantState::Empty,
            )),
        }
    }

    /// Worker: claims this entry (PART-2), a compare-and-swap RESERVED → ATTACHING, and returns
    /// the entry's `epoch`. Fails with `SlotTaken` (found = the state seen) without touching the
    /// entry or its mailbox when the entry is not RESERVED.
    pub fn claim(&self) -> Result<u32> {
        self.require_worker_entry()?;
        let word = self.state_word()?;
        // Acquire on success: the mailbox reset and epoch the host published with RESERVED
        // happen-before everything this worker does next (MBX-4).
        word.compare_exchange(
            ParticipantState::Reserved as u32,
            ParticipantState::Attaching as u32,
            Ordering::AcqRel,
            Ordering::Acquire,
        )
        .map_err(|now| {
            slot_taken(
                "participant.state (claim needs RESERVED)",
                now,
                ParticipantState::Reserved,
            )
        })?;
        self.epoch()
    }

    /// Writes `role`, `pid`, `start_time`, `impl_name` and `heartbeat_ns` with plain stores.
    fn write_identity(&self, id: &Identity<'_>, heartbeat_ns: u64) -> Result<()> {
        id.check()?;
        self.entry
            .write_u32(P_ROLE, Role::for_index(self.index) as u32)?;
        self.entry.write_u32(P_PID, id.pid)?;
        self.entry.write_u64(P_START_TIME, id.start_time)?;
        self.entry.write(P_IMPL_NAME, &id.name_bytes())?;
        self.entry
            .atomic_u64(P_HEARTBEAT)?
            .store(heartbeat_ns, Ordering::Relaxed);
        Ok(())
    }

    /// Worker, after [`Participant::claim`]: writes its identity, then publishes ACTIVE with
    /// Release (PART-2), so that a reader that sees ACTIVE sees the identity (PART-3).
    ///
    /// The publication is a compare-and-swap from ATTACHING: if the host meanwhile gave up on
    /// this entry (LIVE-2 attach timeout), the worker gets `SlotTaken` and does not overwrite
    /// the host's decision.
    pub fn activate(&self, id: &Identity<'_>, heartbeat_ns: u64) -> Result<()> {
        self.require_worker_entry()?;
        self.write_identity(id, heartbeat_ns)?;
        self.state_word()?
            .compare_exchange(
                ParticipantState::Attaching as u32,
                ParticipantState::Active as u32,
                Ordering::Release,
                Ordering::Relaxed,
            )
            .map(|_| ())
            .map_err(|now| {
                slot_taken(
                    "participant.state (activate needs ATTACHING)",
                    now,
                    ParticipantState::Attaching,
                )
            })
    }

    /// Creator, during initialisation (PART-1): writes the host's identity in entry 0 and stores
    /// ACTIVE. The Release store of `init_state` = READY that follows publishes both.
    pub(crate) fn init_host(&self, id: &Identity<'_>) -> Result<()> {
        if self.index != 0 {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "participant index (host entry)",
                self.index.into(),
                0,
            ));
        }
        self.write_identity(id, 0)?;
        self.state_word()?
            .store(ParticipantState::Active as u32, Ordering::Relaxed);
        Ok(())
    }

    /// The owner leaves cleanly (PART-5): stores DETACHED with Release. Call it after the last
    /// write to any ring; then wake every doorbell a peer may be parked on (WAIT-5).
    ///
    /// Returns `true` when this call stored DETACHED, `false` when the entry was already
    /// DETACHED or DEAD (the host decided first; its decision stands). An entry that was never
    /// claimed (EMPTY, RESERVED) is `SlotTaken`.
    pub fn detach(&self) -> Result<bool> {
        let word = self.state_word()?;
        let mut raw = word.load(Ordering::Acquire);
        // Only the host moves an entry out of ATTACHING or ACTIVE, and only to DEAD, so the
        // second round always ends; the bound keeps a hostile peer from looping us.
        for _ in 0..4 {
            match decode_state(raw)? {
                ParticipantState::Attaching | ParticipantState::Active => {
                    match word.compare_exchange(
                        raw,
                        ParticipantState::Detached as u32,
                        Ordering::Release,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return Ok(true),
                        Err(now) => raw = now,
                    }
                }
                ParticipantState::Detached | ParticipantState::Dead => return Ok(false),
                ParticipantState::Empty | ParticipantState::Reserved => {
                    return Err(slot_taken(
                        "participant.state (detach needs an attached entry)",
                        raw,
                        ParticipantState::Active,
                    ));
                }
            }
        }
        Err(bad(
            "participant.state keeps changing during detach",
            raw.into(),
            ParticipantState::Detached as u64,
        ))
    }

    /// Marks the entry DEAD (LIVE-3) by a compare-and-swap from the state the caller `observed`
    /// when it decided the participant was dead. Returns `false`, storing nothing, when the
    /// state changed since; the caller then decides again from a fresh snapshot.
    pub fn mark_dead(&self, observed: ParticipantState) -> Result<bool> {
        Ok(self
            .state_word()?
            .compare_exchange(
                observed as u32,
                ParticipantState::Dead as u32,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok())
    }

    /// Stores `heartbeat_ns` (PART-7; informative).
    pub fn set_heartbeat(&self, now_ns: u64) -> Result<()> {
        self.entry
            .atomic_u64(P_HEARTBEAT)?
            .store(now_ns, Ordering::Relaxed);
        Ok(())
    }

    /// A validated private copy of the entry (PART-3, PART-6).
    ///
    /// `state` is loaded once with Acquire; the identity is read only in ACTIVE, DETACHED and
    /// DEAD, each field once. `BadParticipant` for a state above 5, a role that is neither 0
    /// nor the index's role, or, in an ACTIVE entry, a role other than the index's or a pid of 0.
    pub fn snapshot(&self) -> Result<ParticipantSnapshot> {
        let state = self.state()?;
        let epoch = self.epoch()?;
        let identity = match state {
            ParticipantState::Active | ParticipantState::Detached | ParticipantState::Dead => {
                Some(self.read_identity(state)?)
            }
            ParticipantState::Empty | ParticipantState::Reserved | ParticipantState::Attaching => {
                None
            }
        };
        Ok(ParticipantSnapshot {
            index: self.index,
            state,
            epoch,
            identity,
        })
    }

    fn read_identity(&self, state: ParticipantState) -> Result<IdentitySnapshot> {
        let raw_role = self.entry.read_u32(P_ROLE)?;
        let expected_role = Role::for_index(self.index);
        // PART-6: the role matches the index; 0 is left by a participant that died or left
        // before it wrote its identity, and is a violation only in an ACTIVE entry.
        let role = match Role::from_u32(raw_role) {
            Some(r) if r == expected_role => r,
            Some(Role::None) if state != ParticipantState::Active => Role::None,
            _ => {
                return Err(bad(
                    "participant.role",
                    raw_role.into(),
                    expected_role as u64,
                ))
            }
        };
        let pid = self.entry.read_u32(P_PID)?;
        if state == ParticipantState::Active && pid == 0 {
            return Err(bad("participant.pid (ACTIVE)", 0, 1));
        }
        let start_time = self.entry.read_u64(P_START_TIME)?;
        let heartbeat_ns = self.entry.atomic_u64(P_HEARTBEAT)?.load(Ordering::Relaxed);
        let mut impl_name = [0u8; IMPL_NAME_LEN];
        self.entry.read(P_IMPL_NAME, &mut impl_name)?;
        Ok(IdentitySnapshot {
            role,
            pid,
            start_time,
            heartbeat_ns,
            impl_name,
        })
    }

    /// The entry's doorbell word pair (`bell_seq`, `bell_sleepers`; spec/04), for inspection.
    pub fn bell_words(&self) -> Result<(&'a AtomicU32, &'a AtomicU32)> {
        Ok((
            self.entry.atomic_u32(P_BELL_SEQ)?,
            self.entry.atomic_u32(P_BELL_SLEEPERS)?,
        ))
    }

    /// The entry's doorbell (spec/04): its owner parks on it (WAIT-2, WAIT-3), anyone who
    /// gives the owner work rings it (WAIT-5).
    pub fn doorbell(&self) -> Result<Doorbell<'a>> {
        let (seq, sleepers) = self.bell_words()?;
        Ok(Doorbell::new(seq, sleepers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::testing::TestMem;

    const ME: Identity<'static> = Identity {
        pid: 4243,
        start_time: 777,
        impl_name: "knit-rs 1.0",
    };

    fn entry(buf: &TestMem, index: u32) -> Participant<'_> {
        Participant::new(buf.mem(), index).unwrap()
    }

    fn set_raw_state(p: &Participant<'_>, raw: u32) {
        p.memory().write_u32(P_STATE, raw).unwrap();
    }

    #[test]
    fn full_life_of_a_worker_entry() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        assert_eq!(
            p.snapshot().unwrap(),
            ParticipantSnapshot {
                index: 1,
                state: ParticipantState::Empty,
                epoch: 0,
                identity: None
            }
        );
        assert_eq!(p.reserve().unwrap(), 1);
        assert_eq!(p.state().unwrap(), ParticipantState::Reserved);
        assert_eq!(p.claim().unwrap(), 1);
        assert_eq!(
            p.snapshot().unwrap().identity,
            None,
            "PART-3: no identity while ATTACHING"
        );
        p.activate(&ME, 1000).unwrap();
        let s = p.snapshot().unwrap();
        assert_eq!(s.state, ParticipantState::Active);
        let id = s.identity.unwrap();
        assert_eq!(
            (id.role, id.pid, id.start_time, id.heartbeat_ns),
            (Role::Worker, 4243, 777, 1000)
        );
        assert_eq!(id.impl_name(), Some("knit-rs 1.0"));
        p.set_heartbeat(2000).unwrap();
        assert_eq!(p.snapshot().unwrap().identity.unwrap().heartbeat_ns, 2000);
        assert!(p.detach().unwrap());
        assert_eq!(p.state().unwrap(), ParticipantState::Detached);
        assert!(!p.detach().unwrap(), "a second detach stores nothing");
        // PART-4: a detached entry can be reserved again, under a new epoch.
        assert_eq!(p.reserve().unwrap(), 2);
    }

    #[test]
    fn claim_needs_reserved() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 3);
        for raw in [0, 2, 3, 4, 5] {
            set_raw_state(&p, raw);
            let e = p.claim().unwrap_err();
            assert_eq!((e.code, e.found), (ErrorCode::SlotTaken, u64::from(raw)));
            assert_eq!(
                p.memory().read_u32(P_STATE).unwrap(),
                raw,
                "a failed claim touches nothing"
            );
        }
    }

    #[test]
    fn reserve_only_from_empty_detached_or_dead() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        for raw in [1, 2, 3] {
            set_raw_state(&p, raw);
            assert_eq!(p.reserve().unwrap_err().code, ErrorCode::SlotTaken);
            assert_eq!(p.epoch().unwrap(), 0, "a refused reserve leaves the epoch");
        }
        set_raw_state(&p, 5);
        assert_eq!(p.reserve().unwrap(), 1);
        set_raw_state(&p, 9);
        assert_eq!(p.reserve().unwrap_err().code, ErrorCode::BadParticipant);
    }

    #[test]
    fn the_host_entry_is_never_reserved_or_claimed() {
        let buf = TestMem::new(128);
        let host = entry(&buf, 0);
        assert_eq!(host.reserve().unwrap_err().code, ErrorCode::InvalidArgument);
        set_raw_state(&host, 1);
        assert_eq!(host.claim().unwrap_err().code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn activate_does_not_overwrite_the_hosts_verdict() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        p.reserve().unwrap();
        p.claim().unwrap();
        // The host gave up on a slow attach (LIVE-2) and marked the entry dead.
        assert!(p.mark_dead(ParticipantState::Attaching).unwrap());
        let e = p.activate(&ME, 0).unwrap_err();
        assert_eq!(
            (e.code, e.found),
            (ErrorCode::SlotTaken, ParticipantState::Dead as u64)
        );
        assert_eq!(p.state().unwrap(), ParticipantState::Dead);
        assert!(!p.detach().unwrap(), "PART-10: DEAD stays DEAD");
        assert_eq!(p.state().unwrap(), ParticipantState::Dead);
    }

    #[test]
    fn mark_dead_is_a_cas_from_the_observed_state() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        set_raw_state(&p, ParticipantState::Active as u32);
        assert!(!p.mark_dead(ParticipantState::Attaching).unwrap());
        assert_eq!(p.state().unwrap(), ParticipantState::Active);
        assert!(p.mark_dead(ParticipantState::Active).unwrap());
        assert_eq!(p.state().unwrap(), ParticipantState::Dead);
    }

    #[test]
    fn detach_of_an_unclaimed_entry_is_refused() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        assert_eq!(p.detach().unwrap_err().code, ErrorCode::SlotTaken);
        set_raw_state(&p, 1);
        assert_eq!(p.detach().unwrap_err().code, ErrorCode::SlotTaken);
    }

    #[test]
    fn bad_identities_are_refused_before_any_write() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        p.reserve().unwrap();
        p.claim().unwrap();
        assert_eq!(
            p.activate(&Identity { pid: 0, ..ME }, 0).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        let long = Identity {
            impl_name: "0123456789012345678901234567890123",
            ..ME
        };
        assert_eq!(
            p.activate(&long, 0).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
        assert_eq!(p.memory().read_u32(P_PID).unwrap(), 0);
        assert_eq!(p.state().unwrap(), ParticipantState::Attaching);
        // Exactly 32 bytes fits, with no terminating zero.
        let exact = Identity {
            impl_name: "01234567890123456789012345678901",
            ..ME
        };
        p.activate(&exact, 0).unwrap();
        assert_eq!(
            p.snapshot().unwrap().identity.unwrap().impl_name(),
            Some(exact.impl_name)
        );
    }

    #[test]
    fn part_6_violations_are_bad_participant() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        set_raw_state(&p, 6);
        let e = p.snapshot().unwrap_err();
        assert_eq!((e.code, e.found), (ErrorCode::BadParticipant, 6));
        // ACTIVE with the host's role in a worker entry.
        set_raw_state(&p, 3);
        p.memory().write_u32(P_ROLE, Role::Host as u32).unwrap();
        p.memory().write_u32(P_PID, 5).unwrap();
        assert_eq!(p.snapshot().unwrap_err().what, "participant.role");
        // ACTIVE with role 0.
        p.memory().write_u32(P_ROLE, 0).unwrap();
        assert_eq!(p.snapshot().unwrap_err().what, "participant.role");
        // ACTIVE with pid 0.
        p.memory().write_u32(P_ROLE, Role::Worker as u32).unwrap();
        p.memory().write_u32(P_PID, 0).unwrap();
        assert_eq!(p.snapshot().unwrap_err().what, "participant.pid (ACTIVE)");
        // An unassigned role value in any readable state.
        set_raw_state(&p, 5);
        p.memory().write_u32(P_ROLE, 7).unwrap();
        assert_eq!(p.snapshot().unwrap_err().code, ErrorCode::BadParticipant);
        // DEAD before the identity was written: role 0 and pid 0 are accepted.
        p.memory().write_u32(P_ROLE, 0).unwrap();
        let s = p.snapshot().unwrap();
        assert_eq!(s.identity.map(|i| (i.role, i.pid)), Some((Role::None, 0)));
    }

    #[test]
    fn garbage_impl_name_is_not_a_violation() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        set_raw_state(&p, 4);
        p.memory().write(P_IMPL_NAME, &[0xFF; 32]).unwrap();
        let id = p.snapshot().unwrap().identity.unwrap();
        assert_eq!(id.impl_name(), None);
        assert_eq!(id.impl_name, [0xFF; 32]);
    }

    #[test]
    fn short_entries_are_refused() {
        let buf = TestMem::new(128);
        let e = Participant::new(buf.mem().sub(0, 64).unwrap(), 1).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadLayout);
    }

    #[test]
    fn bell_words_are_at_0x40_and_0x44() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        let (seq, sleepers) = p.bell_words().unwrap();
        seq.store(0x1234, Ordering::Relaxed);
        sleepers.store(2, Ordering::Relaxed);
        assert_eq!(p.memory().read_u32(0x40).unwrap(), 0x1234);
        assert_eq!(p.memory().read_u32(0x44).unwrap(), 2);
    }

    /// Counts wakes; never sleeps.
    struct CountingParker(core::cell::Cell<u32>);

    impl crate::wait::Parker for CountingParker {
        fn wait(&self, _word: &AtomicU32, _expected: u32, _timeout_ns: u64) {}
        fn wake_all(&self, _word: &AtomicU32) {
            self.0.set(self.0.get() + 1);
        }
    }

    #[test]
    fn doorbell_rings_the_entrys_own_words() {
        let buf = TestMem::new(128);
        let p = entry(&buf, 1);
        let parker = CountingParker(core::cell::Cell::new(0));
        // WAIT-5: nobody announced sleep, so no wake and no change of bell_seq.
        assert!(!p.doorbell().unwrap().ring(&parker));
        assert_eq!(
            (p.memory().read_u32(P_BELL_SEQ).unwrap(), parker.0.get()),
            (0, 0)
        );
        p.memory().write_u32(P_BELL_SLEEPERS, 1).unwrap();
        assert!(p.doorbell().unwrap().ring(&parker));
        assert_eq!(
            (p.memory().read_u32(P_BELL_SEQ).unwrap(), parker.0.get()),
            (1, 1)
        );
    }
}
