//! Bare regions: create one, attach to one by name, and inspect its header and participant
//! table (what `knit inspect` shows), without running a pool.

use std::ffi::c_char;
use std::mem::size_of;

use knit_rt::RegionHandle;

use crate::args::{out, store, string, timeout};
use crate::config::ConfigObject;
use crate::handle::{self, Object};
use crate::status::{guard, Failure, FfiResult, KnitStatus};
use crate::KnitConfig;

/// Bytes of `knit_region_info.name`: `knit-`, 32 hex digits, NUL, padding.
pub const KNIT_REGION_NAME_CAPACITY: usize = 40;
/// Bytes of `knit_participant_info.impl_name`: 32 bytes of name and a NUL.
pub const KNIT_IMPL_NAME_CAPACITY: usize = 33;

/// A mapped region (opaque).
pub struct KnitRegion {
    _private: [u8; 0],
}

/// The object behind a `knit_region` handle.
pub(crate) struct RegionObject {
    pub(crate) handle: RegionHandle,
    /// Created here: its name is removed when the handle is freed (MAP-3).
    owner: bool,
}

impl Object for RegionObject {
    type Opaque = KnitRegion;
    const KIND: &'static str = "knit_region";
}

impl Drop for RegionObject {
    fn drop(&mut self) {
        if self.owner {
            let _ = self.handle.unlink();
        }
    }
}

/// A region's header, as validated when it was created or attached.
///
/// Before the call set `struct_size` to `sizeof(knit_region_info)`; the library fills the
/// fields that fit in that size and stores the size it filled, so that a program built with an
/// older, shorter version of this struct keeps working.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KnitRegionInfo {
    /// In: the caller's `sizeof(knit_region_info)`. Out: the bytes filled.
    pub struct_size: u32,
    /// Protocol major version of the region.
    pub major: u16,
    /// Protocol minor version of the region.
    pub minor: u16,
    /// Number of worker slots (mailboxes).
    pub worker_slots: u32,
    /// Number of channel slots.
    pub channel_slots: u32,
    /// Calls in flight per worker.
    pub inflight_max: u32,
    /// Data bytes of each request ring.
    pub request_ring_cap: u32,
    /// Data bytes of each response ring.
    pub response_ring_cap: u32,
    /// Data bytes of each channel ring (0 without channels).
    pub channel_ring_cap: u32,
    /// 0 when healthy, else the error code of the first protocol violation found.
    pub poison_code: u32,
    /// Participant index + 1 of who found it; 0 when unknown or healthy.
    pub poisoned_by: u32,
    /// Total bytes of the region.
    pub region_len: u64,
    /// Largest message payload.
    pub max_message_len: u64,
    /// Feature bits a participant must understand.
    pub required_features: u64,
    /// Feature bits a participant may ignore.
    pub optional_features: u64,
    /// The region's name (`knit-` and 32 hex digits), NUL-terminated; empty for an anonymous
    /// region.
    pub name: [c_char; KNIT_REGION_NAME_CAPACITY],
}

/// One participant entry, loaded once and validated.
///
/// Before the call set `struct_size` to `sizeof(knit_participant_info)` (see
/// `knit_region_info`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct KnitParticipantInfo {
    /// In: the caller's `sizeof(knit_participant_info)`. Out: the bytes filled.
    pub struct_size: u32,
    /// The entry's index: 0 the host, 1 or more a worker.
    pub index: u32,
    /// 0 EMPTY, 1 RESERVED, 2 ATTACHING, 3 ACTIVE, 4 DETACHED, 5 DEAD.
    pub state: u32,
    /// 0 none, 1 host, 2 worker (0 until an owner wrote its identity).
    pub role: u32,
    /// Operating-system process id of the owner; 0 when not written.
    pub pid: u32,
    /// Incremented each time the host reserved the entry.
    pub epoch: u32,
    /// Process start time (Linux: clock ticks since boot); 0 when not written.
    pub start_time: u64,
    /// `CLOCK_MONOTONIC` nanoseconds of the owner's last sign of life (informative).
    pub heartbeat_ns: u64,
    /// The owner's implementation name and version, NUL-terminated (empty when not written or
    /// not UTF-8).
    pub impl_name: [c_char; KNIT_IMPL_NAME_CAPACITY],
}

/// Copies `full` into the caller's struct, only the bytes its `struct_size` announces.
///
/// # Safety
/// `dst` is valid for reads and writes of its announced `struct_size` bytes, and for at least
/// the 4 bytes of `struct_size`.
pub(crate) unsafe fn fill_sized<T: Copy>(
    dst: *mut T,
    full: &T,
    write_size: impl FnOnce(&mut T, u32),
) -> FfiResult {
    // SAFETY: the caller's contract: the first 4 bytes (`struct_size`, a u32 at offset 0 of
    // every such struct) are readable.
    let announced = unsafe { std::ptr::read_unaligned(dst.cast::<u32>()) };
    let ours = u32::try_from(size_of::<T>()).unwrap_or(u32::MAX);
    if announced < 4 {
        return Err(Failure::invalid(format!(
            "struct_size is {announced}: set it to sizeof the struct"
        )));
    }
    let len = announced.min(ours);
    let mut copy = *full;
    write_size(&mut copy, len);
    // SAFETY: `len` bytes are within both the caller's announced size and `T`; the regions
    // do not overlap (`copy` is a local).
    unsafe {
        std::ptr::copy_nonoverlapping(
            std::ptr::from_ref(&copy).cast::<u8>(),
            dst.cast::<u8>(),
            len as usize,
        );
    }
    Ok(())
}

/// Copies `text` into a NUL-terminated C array, cut to fit.
fn c_text<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    for (dst, &b) in out
        .iter_mut()
        .zip(text.as_bytes().iter().take(N.saturating_sub(1)))
    {
        *dst = c_char::from_ne_bytes([b]);
    }
    out
}

fn publish(object: RegionObject, region: *mut *mut KnitRegion) -> FfiResult {
    let h = handle::register(object)?;
    // SAFETY: checked non-NULL by the caller; writable by the header's contract.
    unsafe { store(region, h) };
    Ok(())
}

/// Creates a named region (exclusive, owner-only, random name) with the geometry of `config`
/// (NULL for the defaults: one worker slot, 8 channel slots, 256 KiB rings) and this process
/// as its host, in `*region`. Workers can then attach to it by name.
///
/// Ownership: the caller owns the new handle; `knit_region_free` unmaps the region and removes
/// its name.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `region` points to a writable `knit_region *`.
#[no_mangle]
pub unsafe extern "C" fn knit_region_create(
    config: *const KnitConfig,
    region: *mut *mut KnitRegion,
) -> KnitStatus {
    guard("knit_region_create", || {
        let region = out(region, "region")?;
        let params = if config.is_null() {
            crate::config::Settings::default().params()
        } else {
            handle::get::<ConfigObject>(config)?.settings().params()
        };
        let handle = RegionHandle::create(&params)?;
        publish(
            RegionObject {
                handle,
                owner: true,
            },
            region,
        )
    })
}

/// Attaches to the region named `name`, waiting at most `timeout_ns` nanoseconds
/// (`KNIT_FOREVER`: 1 s, the protocol's recommended bound) for its host to finish
/// initialising it, and validates its header (`KNIT_BAD_MAGIC`, `KNIT_UNSUPPORTED_VERSION`,
/// `KNIT_BAD_CHECKSUM`, `KNIT_BAD_LAYOUT`, `KNIT_POISONED`, ...). Attaching does not join the
/// region as a participant; it only maps it, for inspection.
///
/// Ownership: `name` is copied; the caller owns the new handle (`knit_region_free` unmaps it;
/// the name stays, it belongs to the host).
/// Thread safety: safe from any thread.
///
/// # Safety
/// `name` is a NUL-terminated string; `region` points to a writable `knit_region *`.
#[no_mangle]
pub unsafe extern "C" fn knit_region_attach(
    name: *const c_char,
    timeout_ns: u64,
    region: *mut *mut KnitRegion,
) -> KnitStatus {
    guard("knit_region_attach", || {
        let region = out(region, "region")?;
        // SAFETY: the caller's contract for `name`.
        let name = unsafe { string(name, "name") }?;
        let wait = timeout(timeout_ns).unwrap_or(knit_rt::DEFAULT_ATTACH_TIMEOUT);
        let handle = RegionHandle::attach(name, wait)?;
        publish(
            RegionObject {
                handle,
                owner: false,
            },
            region,
        )
    })
}

/// The header information of a region handle.
pub(crate) fn region_info(handle: &RegionHandle) -> KnitRegionInfo {
    let g = handle.geometry();
    let region = handle.region();
    KnitRegionInfo {
        struct_size: 0,
        major: knit_core::layout::MAJOR,
        minor: g.minor(),
        worker_slots: g.worker_slots(),
        channel_slots: g.channel_slots(),
        inflight_max: g.inflight_max(),
        request_ring_cap: g.request_ring_cap(),
        response_ring_cap: g.response_ring_cap(),
        channel_ring_cap: g.channel_ring_cap(),
        poison_code: region.poison_code(),
        poisoned_by: region.poisoned_by(),
        region_len: g.region_len() as u64,
        max_message_len: g.max_message_len(),
        required_features: g.required_features(),
        optional_features: g.optional_features(),
        name: c_text(handle.name().map_or("", knit_rt::RegionName::as_str)),
    }
}

/// Fills `*info` with the region's header (validated once, at create or attach) and its live
/// poison state. Set `info->struct_size` first.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `info` points to a writable `knit_region_info` of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn knit_region_get_info(
    region: *const KnitRegion,
    info: *mut KnitRegionInfo,
) -> KnitStatus {
    guard("knit_region_get_info", || {
        let info = out(info, "info")?;
        let r = handle::get::<RegionObject>(region)?;
        let full = region_info(&r.handle);
        // SAFETY: the caller's contract for `info`.
        unsafe { fill_sized(info, &full, |i, n| i.struct_size = n) }
    })
}

/// Participant entry `index` of `handle`, loaded once and validated.
pub(crate) fn participant_info(
    handle: &RegionHandle,
    index: u32,
) -> FfiResult<KnitParticipantInfo> {
    let snap = handle.region().participant(index)?.snapshot()?;
    let id = snap.identity;
    Ok(KnitParticipantInfo {
        struct_size: 0,
        index: snap.index,
        state: snap.state as u32,
        role: id.map_or(0, |i| i.role as u32),
        pid: id.map_or(0, |i| i.pid),
        epoch: snap.epoch,
        start_time: id.map_or(0, |i| i.start_time),
        heartbeat_ns: id.map_or(0, |i| i.heartbeat_ns),
        impl_name: c_text(
            id.as_ref()
                .and_then(knit_core::participant::IdentitySnapshot::impl_name)
                .unwrap_or(""),
        ),
    })
}

/// Fills `*info` with participant entry `index` (0 the host, 1 to `worker_slots` the
/// workers), read once from the region and validated: a garbage entry is
/// `KNIT_BAD_PARTICIPANT`, an index out of range `KNIT_INVALID_ARGUMENT`. Set
/// `info->struct_size` first.
///
/// Thread safety: safe from any thread.
///
/// # Safety
/// `info` points to a writable `knit_participant_info` of at least `info->struct_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn knit_region_get_participant(
    region: *const KnitRegion,
    index: u32,
    info: *mut KnitParticipantInfo,
) -> KnitStatus {
    guard("knit_region_get_participant", || {
        let info = out(info, "info")?;
        let r = handle::get::<RegionObject>(region)?;
        let full = participant_info(&r.handle, index)?;
        // SAFETY: the caller's contract for `info`.
        unsafe { fill_sized(info, &full, |i, n| i.struct_size = n) }
    })
}

/// Frees a region handle: unmaps it, and removes its name when `knit_region_create` made it.
///
/// Ownership: the handle is invalid afterwards.
/// Thread safety: safe from any thread.
#[no_mangle]
pub extern "C" fn knit_region_free(region: *mut KnitRegion) -> KnitStatus {
    guard("knit_region_free", || {
        handle::remove::<RegionObject>(region).map(drop)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_fill_copies_only_what_the_caller_announced() {
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct Two {
            size: u32,
            a: u32,
            b: u32,
        }
        let full = Two {
            size: 0,
            a: 1,
            b: 2,
        };
        // An older caller knows only `size` and `a`.
        let mut old = Two {
            size: 8,
            a: 0,
            b: 99,
        };
        // SAFETY: a live, writable struct.
        unsafe { fill_sized(&mut old, &full, |t, n| t.size = n) }.unwrap();
        assert_eq!((old.size, old.a, old.b), (8, 1, 99));
        // A newer caller announces more than we have.
        let mut new = Two {
            size: 64,
            a: 0,
            b: 0,
        };
        // SAFETY: only size_of::<Two>() bytes are written.
        unsafe { fill_sized(&mut new, &full, |t, n| t.size = n) }.unwrap();
        assert_eq!((new.size, new.a, new.b), (12, 1, 2));
        let mut zero = Two {
            size: 0,
            a: 0,
            b: 0,
        };
        // SAFETY: nothing is written for a size below 4.
        assert!(unsafe { fill_sized(&mut zero, &full, |t, n| t.size = n) }.is_err());
    }

    #[test]
    fn c_text_cuts_and_terminates() {
        let t: [c_char; 4] = c_text("abcdef");
        assert_eq!(t.map(|c| c.to_ne_bytes()[0]), *b"abc\0");
        let e: [c_char; 4] = c_text("");
        assert_eq!(e, [0; 4]);
    }
}
