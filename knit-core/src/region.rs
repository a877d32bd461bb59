//! A formatted region (spec/01-region.md): creating one (INIT-1, LAYOUT-1, LAYOUT-2, PART-1),
//! attaching to one (INIT-2 to INIT-4, HDR-1 to HDR-9), and handing out views of its sections
//! located through the private, validated [`Geometry`] only (HDR-5, VER-3).

use zerocopy::IntoBytes;

use crate::error::{Error, ErrorCode, Result};
use crate::geometry::{Geometry, Params, Span};
use crate::layout::{
    InitState, RegionHeader, FIRST_SECTION_OFFSET, INIT_STATE_OFFSET, POISONED_BY_OFFSET,
    POISON_CODE_OFFSET,
};
use crate::participant::{Identity, Participant};
use crate::ring::RingRef;
use crate::shared::SharedMem;
use crate::sync::{AtomicU32, Ordering};

/// The host's identity, written into participant entry 0 at creation (PART-1).
pub type HostIdentity<'s> = Identity<'s>;

/// The sections of one mailbox (spec/05 §5.1).
#[derive(Clone, Copy, Debug)]
pub struct Mailbox<'a> {
    /// The cancel table: `inflight_max` u64 atomic entries.
    pub cancel: SharedMem<'a>,
    /// The request ring (host to worker).
    pub request: RingRef<'a>,
    /// The response ring (worker to host).
    pub response: RingRef<'a>,
}

/// The sections of one channel slot (spec/06).
#[derive(Clone, Copy, Debug)]
pub struct ChannelSlot<'a> {
    /// The 64-byte channel control block.
    pub ctrl: SharedMem<'a>,
    /// The channel's ring.
    pub ring: RingRef<'a>,
}

/// A formatted or attached region: the shared memory plus the private copy of its geometry.
#[derive(Clone, Copy, Debug)]
pub struct Region<'a> {
    mem: SharedMem<'a>,
    geometry: Geometry,
}

fn init_state_word<'a>(mem: &SharedMem<'a>) -> Result<&'a AtomicU32> {
    mem.atomic_u32(INIT_STATE_OFFSET)
}

impl<'a> Region<'a> {
    /// Creates a region in `mem` (at least `region_len` bytes; anything past it is left alone).
    ///
    /// INIT-1: stores `init_state` = INITIALISING, zeroes every other byte of the region
    /// (LAYOUT-2), writes the header and the host's entry (PART-1), and stores READY with
    /// Release as its last write. `region_id` must come from a cryptographically secure
    /// source (HDR-8); that is the caller's duty, the core has no randomness.
    pub fn format(
        mem: SharedMem<'a>,
        params: &Params,
        host: &HostIdentity<'_>,
        region_id: [u8; 16],
        created_unix_ns: u64,
    ) -> Result<Region<'a>> {
        let geometry = Geometry::compute(params)?;
        host.check()?;
        let len = geometry.region_len();
        if mem.len() < len {
            return Err(Error::value(
                ErrorCode::InvalidArgument,
                "mapping shorter than the region",
                mem.len() as u64,
                len as u64,
            ));
        }
        let mem = mem.sub(0, len)?;
        let init = init_state_word(&mem)?;
        // INIT-1: INITIALISING first. An attacher gates everything on READY (Acquire), so this
        // store needs no stronger ordering: it only turns a re-used BLANK mapping into "busy".
        init.store(InitState::Initialising as u32, Ordering::Relaxed);
        // LAYOUT-2: every byte without a value is zero; the init_state word is skipped because
        // it is only ever accessed atomically (CONV-5).
        mem.zero(0, INIT_STATE_OFFSET)?;
        mem.zero(INIT_STATE_OFFSET + 4, len - (INIT_STATE_OFFSET + 4))?;
        let header = geometry.to_header(region_id, created_unix_ns);
        mem.write(0, header.as_bytes())?;
        let region = Region { mem, geometry };
        // PART-1: the host's entry is ACTIVE before READY.
        region.participant(0)?.init_host(host)?;
        // INIT-1: READY with Release, the last write of initialisation.
        init.store(InitState::Ready as u32, Ordering::Release);
        Ok(region)
    }

    /// Attaches to a region another participant created, with one check of `init_state`: the
    /// operating-system layer retries `NotReady` for a bounded time (INIT-2).
    ///
    /// Checks, in the order HDR-9 fixes, each reporting its own error code: the mapping holds
    /// at least 0x140 bytes (`RegionTooSmall`); `init_state` loaded with Acquire is READY
    /// (`NotReady` for BLANK and INITIALISING, INIT-2; `BadLayout` for any other value,
    /// INIT-4); the header, copied once into private memory (HDR-5), passes
    /// [`Geometry::from_header`] (HDR-1, HDR-2, HDR-4, HDR-3, HDR-7, HDR-6); `poison_code` is 0
    /// (`Poisoned`, INIT-3).
    pub fn attach(mem: SharedMem<'a>) -> Result<Region<'a>> {
        // HDR-7: refuse before reading anything we cannot hold.
        if mem.len() < FIRST_SECTION_OFFSET {
            return Err(Error::value(
                ErrorCode::RegionTooSmall,
                "mapping shorter than header and control block",
                mem.len() as u64,
                FIRST_SECTION_OFFSET as u64,
            ));
        }
        // INIT-2: init_state with Acquire before any other byte.
        let raw = init_state_word(&mem)?.load(Ordering::Acquire);
        match InitState::from_u32(raw) {
            Some(InitState::Ready) => {}
            Some(InitState::Blank | InitState::Initialising) => {
                return Err(Error::value(
                    ErrorCode::NotReady,
                    "init_state",
                    raw.into(),
                    InitState::Ready as u64,
                ));
            }
            // INIT-4
            None => {
                return Err(Error::value(
                    ErrorCode::BadLayout,
                    "init_state",
                    raw.into(),
                    InitState::Ready as u64,
                ))
            }
        }
        // HDR-5: one copy, validated, and only the copy is used afterwards.
        let mut header = RegionHeader::zeroed();
        mem.read(0, header.as_mut_bytes())?;
        let geometry = Geometry::from_header(&header, mem.len())?;
        let mem = mem.sub(0, geometry.region_len())?;
        let region = Region { mem, geometry };
        // INIT-3
        let poison = region.poison_code();
        if poison != 0 {
            return Err(Error::value(
                ErrorCode::Poisoned,
                "poison_code",
                poison.into(),
                0,
            ));
        }
        Ok(region)
    }

    /// A view of a region whose geometry was validated before, by [`Region::format`] or
    /// [`Region::attach`] on this same memory: for a caller that keeps the memory and the
    /// geometry (HDR-5: the geometry is never re-read, so nothing is read here) but cannot keep
    /// a view borrowed from it, such as a handle that owns its mapping.
    ///
    /// `mem` is cut to `region_len` bytes. It should hold at least that many, as `format` and
    /// `attach` checked for the memory the geometry came from; a shorter `mem` (or the
    /// geometry of another region) is not memory-unsafe, only wrong: every section is located
    /// inside `mem` with a bounds check, so sections past its end are refused with
    /// `BAD_LAYOUT` by the accessors and nothing outside `mem` is ever touched. A
    /// [`Geometry`] exists only as the result of [`Geometry::compute`] or
    /// [`Geometry::from_header`], so its own values always passed HDR-6.
    pub fn from_validated(mem: SharedMem<'a>, geometry: Geometry) -> Region<'a> {
        let mem = mem.sub(0, geometry.region_len()).unwrap_or(mem);
        Region { mem, geometry }
    }

    /// The validated geometry (a private copy; HDR-5).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The region's memory: exactly `region_len` bytes (fewer only for a view that
    /// [`Region::from_validated`] made over a shorter memory).
    pub fn memory(&self) -> SharedMem<'a> {
        self.mem
    }

    fn sub(&self, s: Span) -> Result<SharedMem<'a>> {
        self.mem.sub(s.offset, s.len)
    }

    /// Participant entry `index` (0 host, 1 to `worker_slots` workers); `InvalidArgument` past
    /// the table.
    pub fn participant(&self, index: u32) -> Result<Participant<'a>> {
        let (off, len) = self.geometry.participant_range(index).ok_or(Error::value(
            ErrorCode::InvalidArgument,
            "participant index",
            index.into(),
            self.geometry.worker_slots().into(),
        ))?;
        Participant::new(self.mem.sub(off, len)?, index)
    }

    /// Mailbox `m` (0 ≤ m < `worker_slots`), owned by participant `m + 1`; `InvalidArgument`
    /// past the last.
    pub fn mailbox(&self, m: u32) -> Result<Mailbox<'a>> {
        let l = self.geometry.mailbox_layout(m).ok_or(Error::value(
            ErrorCode::InvalidArgument,
            "mailbox index",
            m.into(),
            self.geometry.worker_slots().into(),
        ))?;
        Ok(Mailbox {
            cancel: self.sub(l.cancel)?,
            request: RingRef {
                ctrl: self.sub(l.request_ctrl)?,
                data: self.sub(l.request_data)?,
            },
            response: RingRef {
                ctrl: self.sub(l.response_ctrl)?,
                data: self.sub(l.response_data)?,
            },
        })
    }

    /// Channel slot `j` (0 ≤ j < `channel_slots`); `InvalidArgument` past the last.
    pub fn channel_slot(&self, j: u32) -> Result<ChannelSlot<'a>> {
        let l = self.geometry.channel_layout(j).ok_or(Error::value(
            ErrorCode::InvalidArgument,
            "channel slot index",
            j.into(),
            self.geometry.channel_slots().into(),
        ))?;
        Ok(ChannelSlot {
            ctrl: self.sub(l.ctrl)?,
            ring: RingRef {
                ctrl: self.sub(l.ring_ctrl)?,
                data: self.sub(l.ring_data)?,
            },
        })
    }

    /// Poisons the region with `code` unless it already is (RING-13, ERR-2): a compare-and-swap
    /// of `poison_code` from 0, then `poisoned_by` = `by + 1` (0 when unknown). Returns `true`
    /// when this call set the poison; the first violation found is the one recorded.
    pub fn poison(&self, code: ErrorCode, by: Option<u32>) -> bool {
        if code == ErrorCode::Ok {
            return false;
        }
        let (Ok(word), Ok(by_word)) = (
            self.mem.atomic_u32(POISON_CODE_OFFSET),
            self.mem.atomic_u32(POISONED_BY_OFFSET),
        ) else {
            return false;
        };
        if word
            .compare_exchange(0, code as u32, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        by_word.store(
            by.and_then(|i| i.checked_add(1)).unwrap_or(0),
            Ordering::Release,
        );
        true
    }

    /// `poison_code`, loaded with Acquire: 0 while the region is healthy (LIVE-6).
    pub fn poison_code(&self) -> u32 {
        self.mem
            .atomic_u32(POISON_CODE_OFFSET)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// `poisoned_by`: participant index + 1 of the first finder, 0 when unknown (LIVE-7).
    pub fn poisoned_by(&self) -> u32 {
        self.mem
            .atomic_u32(POISONED_BY_OFFSET)
            .map_or(0, |w| w.load(Ordering::Acquire))
    }
}

/// Aligned private memory for unit tests, handed out only as [`SharedMem`].
#[cfg(test)]
pub(crate) mod testing {
    use core::ptr::NonNull;

    use crate::shared::SharedMem;

    /// A heap buffer of 8-byte words, accessed only through [`TestMem::mem`].
    pub(crate) struct TestMem {
        ptr: NonNull<u64>,
        words: usize,
    }

    impl TestMem {
        /// `len` zeroed bytes (rounded up to whole words).
        pub(crate) fn new(len: usize) -> Self {
            let words = len.div_ceil(8).max(1);
            let boxed: std::boxed::Box<[u64]> = std::vec![0u64; words].into_boxed_slice();
            let ptr = NonNull::new(std::boxed::Box::into_raw(boxed).cast::<u64>())
                .expect("box pointer is non-null");
            TestMem { ptr, words }
        }

        /// The whole buffer.
        pub(crate) fn mem(&self) -> SharedMem<'_> {
            // SAFETY: `ptr` owns `words * 8` bytes, 8-aligned, until `drop`; no reference to
            // them exists, every access goes through the returned view, which cannot outlive
            // `self`.
            unsafe { SharedMem::new(self.ptr.cast::<u8>(), self.words * 8) }
        }
    }

    impl Drop for TestMem {
        fn drop(&mut self) {
            let slice = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.words);
            // SAFETY: `slice` is exactly the allocation made by `Box::into_raw` in `new`, freed
            // once, here; no view of it outlives `self`.
            drop(unsafe { std::boxed::Box::from_raw(slice) });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestMem;
    use super::*;
    use crate::layout::{ParticipantState, Role, MAGIC, P_STATE};

    const HOST: HostIdentity<'static> = HostIdentity {
        pid: 4242,
        start_time: 123_456,
        impl_name: "knit-rs 1.0",
    };

    fn small() -> Params {
        Params {
            worker_slots: 2,
            channel_slots: 1,
            inflight_max: 4,
            request_ring_cap: 4096,
            response_ring_cap: 4096,
            channel_ring_cap: 4096,
            max_message_len: 1 << 20,
        }
    }

    fn region_len(p: &Params) -> usize {
        Geometry::compute(p).unwrap().region_len()
    }

    #[test]
    fn format_then_attach_sees_the_same_geometry_and_host() {
        let p = small();
        let buf = TestMem::new(region_len(&p));
        let created = Region::format(buf.mem(), &p, &HOST, [0xAB; 16], 77).unwrap();
        let attached = Region::attach(buf.mem()).unwrap();
        assert_eq!(attached.geometry(), created.geometry());
        assert_eq!(attached.memory().len(), created.geometry().region_len());
        let mut magic = [0u8; 8];
        attached.memory().read(0, &mut magic).unwrap();
        assert_eq!(magic, MAGIC);
        let host = attached.participant(0).unwrap().snapshot().unwrap();
        assert_eq!(host.state, ParticipantState::Active);
        let id = host.identity.unwrap();
        assert_eq!(
            (id.role, id.pid, id.start_time),
            (Role::Host, 4242, 123_456)
        );
        assert_eq!(id.impl_name(), Some("knit-rs 1.0"));
        assert_eq!(
            attached.participant(1).unwrap().state().unwrap(),
            ParticipantState::Empty
        );
        assert_eq!(attached.poison_code(), 0);
    }

    #[test]
    fn format_zeroes_old_contents_and_leaves_bytes_past_the_region() {
        let p = small();
        let len = region_len(&p);
        let buf = TestMem::new(len + 64);
        let junk = std::vec![0x5Au8; len + 64];
        buf.mem().write(0, &junk).unwrap();
        let r = Region::format(buf.mem(), &p, &HOST, [1; 16], 1).unwrap();
        // LAYOUT-2: the mailbox and channel sections hold nothing but zero.
        let m = r.geometry().mailbox_layout(1).unwrap();
        let mut bytes = std::vec![0u8; m.response_data.len];
        r.memory().read(m.response_data.offset, &mut bytes).unwrap();
        assert!(bytes.iter().all(|&b| b == 0));
        let mut tail = [0u8; 64];
        buf.mem().read(len, &mut tail).unwrap();
        assert_eq!(tail, [0x5A; 64], "format writes nothing past region_len");
    }

    #[test]
    fn format_refuses_bad_arguments() {
        let p = small();
        let buf = TestMem::new(region_len(&p) - 8);
        let e = Region::format(buf.mem(), &p, &HOST, [0; 16], 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        let buf = TestMem::new(region_len(&p));
        let no_pid = HostIdentity { pid: 0, ..HOST };
        assert_eq!(
            Region::format(buf.mem(), &p, &no_pid, [0; 16], 0)
                .unwrap_err()
                .code,
            ErrorCode::InvalidArgument
        );
        let long = HostIdentity {
            impl_name: "a name that is much longer than 32 bytes",
            ..HOST
        };
        assert_eq!(
            Region::format(buf.mem(), &p, &long, [0; 16], 0)
                .unwrap_err()
                .what,
            "identity.impl_name length"
        );
    }

    #[test]
    fn sections_are_where_the_geometry_says() {
        let p = small();
        let buf = TestMem::new(region_len(&p));
        let r = Region::format(buf.mem(), &p, &HOST, [0; 16], 0).unwrap();
        let base = r.memory().as_ptr() as usize;
        let mb = r.mailbox(1).unwrap();
        let l = r.geometry().mailbox_layout(1).unwrap();
        assert_eq!(mb.cancel.as_ptr() as usize - base, l.cancel.offset);
        assert_eq!(mb.cancel.len(), 32);
        assert_eq!(mb.request.ctrl.len(), 128);
        assert_eq!(mb.request.data.len(), 4096);
        assert_eq!(
            mb.response.data.as_ptr() as usize - base,
            l.response_data.offset
        );
        let ch = r.channel_slot(0).unwrap();
        assert_eq!(ch.ctrl.len(), 64);
        assert_eq!(
            ch.ring.data.as_ptr() as usize - base + 4096,
            r.geometry().region_len()
        );
        for e in [
            r.mailbox(2).unwrap_err(),
            r.channel_slot(1).unwrap_err(),
            r.participant(3).unwrap_err(),
        ] {
            assert_eq!(e.code, ErrorCode::InvalidArgument);
        }
    }

    #[test]
    fn a_view_from_the_validated_geometry_is_the_attached_region() {
        let p = small();
        let len = region_len(&p);
        let buf = TestMem::new(len + 64);
        let created = Region::format(buf.mem(), &p, &HOST, [9; 16], 0).unwrap();
        let again = Region::from_validated(buf.mem(), *created.geometry());
        // Cut to region_len, and every section at the same place (nothing re-read, HDR-5).
        assert_eq!(again.memory().len(), len);
        assert_eq!(again.memory().as_ptr(), created.memory().as_ptr());
        let (a, b) = (again.mailbox(1).unwrap(), created.mailbox(1).unwrap());
        assert_eq!(a.request.data.as_ptr(), b.request.data.as_ptr());
        assert_eq!(a.response.ctrl.as_ptr(), b.response.ctrl.as_ptr());
        assert_eq!(
            again.channel_slot(0).unwrap().ring.data.as_ptr(),
            created.channel_slot(0).unwrap().ring.data.as_ptr()
        );
        assert_eq!(
            again.participant(0).unwrap().state().unwrap(),
            ParticipantState::Active
        );
    }

    #[test]
    fn a_view_over_too_little_memory_refuses_what_lies_outside() {
        let p = small();
        let len = region_len(&p);
        let buf = TestMem::new(len);
        let created = Region::format(buf.mem(), &p, &HOST, [9; 16], 0).unwrap();
        // Only the header, control block and participant table: the misuse is caught by the
        // bounds checks, never by touching bytes outside the memory given.
        let short = buf.mem().sub(0, r_mailbox_start(&created)).unwrap();
        let view = Region::from_validated(short, *created.geometry());
        assert_eq!(view.memory().len(), short.len());
        assert!(view.participant(2).is_ok());
        assert_eq!(view.mailbox(0).unwrap_err().code, ErrorCode::BadLayout);
        assert_eq!(view.channel_slot(0).unwrap_err().code, ErrorCode::BadLayout);
    }

    fn r_mailbox_start(r: &Region<'_>) -> usize {
        r.geometry().mailbox_layout(0).unwrap().cancel.offset
    }

    #[test]
    fn first_poison_wins_and_names_its_finder() {
        let p = small();
        let buf = TestMem::new(region_len(&p));
        let r = Region::format(buf.mem(), &p, &HOST, [0; 16], 0).unwrap();
        assert!(!r.poison(ErrorCode::Ok, Some(1)), "code 0 is not a poison");
        assert!(r.poison(ErrorCode::BadPosition, Some(1)));
        assert!(!r.poison(ErrorCode::BadRecord, Some(0)));
        assert_eq!(r.poison_code(), ErrorCode::BadPosition as u32);
        assert_eq!(r.poisoned_by(), 2);
        // INIT-3
        let e = Region::attach(buf.mem()).unwrap_err();
        assert_eq!(
            (e.code, e.found),
            (ErrorCode::Poisoned, ErrorCode::BadPosition as u64)
        );
    }

    #[test]
    fn unknown_finder_is_recorded_as_zero() {
        let p = small();
        let buf = TestMem::new(region_len(&p));
        let r = Region::format(buf.mem(), &p, &HOST, [0; 16], 0).unwrap();
        assert!(r.poison(ErrorCode::BadPadding, Some(u32::MAX)));
        assert_eq!(r.poisoned_by(), 0);
    }

    #[test]
    fn worker_lifecycle_through_the_region() {
        let p = small();
        let buf = TestMem::new(region_len(&p));
        let host = Region::format(buf.mem(), &p, &HOST, [0; 16], 0).unwrap();
        let worker = Region::attach(buf.mem()).unwrap();
        assert_eq!(host.participant(2).unwrap().reserve().unwrap(), 1);
        let me = worker.participant(2).unwrap();
        assert_eq!(me.claim().unwrap(), 1);
        me.activate(
            &Identity {
                pid: 99,
                start_time: 5,
                impl_name: "w",
            },
            10,
        )
        .unwrap();
        let seen = host.participant(2).unwrap().snapshot().unwrap();
        assert_eq!(seen.state, ParticipantState::Active);
        assert_eq!(seen.identity.unwrap().pid, 99);
        // The state word is the first of the entry.
        let (off, _) = host.geometry().participant_range(2).unwrap();
        assert_eq!(
            host.memory().read_u32(off + P_STATE).unwrap(),
            ParticipantState::Active as u32
        );
    }
}
