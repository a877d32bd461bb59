//! [`RegionHandle`]: a shared mapping together with the geometry validated once when the region
//! was created or attached (HDR-5), handing out [`Region`] views tied to the handle's lifetime
//! ([`Region::from_validated`]: a view never outlives a borrow of the handle, so making one
//! needs no `unsafe`). The one exception is the crate-private `region_unbounded`, for the
//! pool's long-lived structures that live next to a clone of the handle; it is `unsafe` and
//! states its contract.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use knit_core::geometry::{Geometry, Params};
use knit_core::region::Region;
use knit_core::SharedMem;

use crate::attach::attach_region;
use crate::clock::realtime_ns;
use crate::error::Result;
use crate::identity::ProcessIdentity;
use crate::name::RegionName;
use crate::shm::Mapping;

/// The implementation name written into participant entries (`impl_name`, at most 32 bytes).
pub const IMPL_NAME: &str = concat!("knit-rs ", env!("CARGO_PKG_VERSION"));

/// A mapped region and its validated geometry. Cheap to clone (the mapping is shared).
///
/// The geometry is the private copy taken when the region was formatted or attached; it is
/// never re-read from shared memory (HDR-5, VER-3).
#[derive(Clone, Debug)]
pub struct RegionHandle {
    /// The geometry validated when the region was formatted or attached over `mapping`.
    geometry: Geometry,
    /// At least `region_len` bytes (created with that length, or truncated to it after the
    /// header was validated, MAP-6); shared, so it never shrinks while a clone lives.
    mapping: Arc<Mapping>,
}

impl RegionHandle {
    /// Creates a named region (MAP-1, MAP-2) of the geometry `params` gives, and formats it with
    /// the calling process as host (INIT-1, PART-1) and a random `region_id` (HDR-8).
    ///
    /// The name exists from here on: the owner unlinks it ([`RegionHandle::unlink`], MAP-3).
    pub fn create(params: &Params) -> Result<RegionHandle> {
        let geometry = Geometry::compute(params)?;
        let (mapping, name) = Mapping::create_named(geometry.region_len())?;
        match Self::format(mapping, params) {
            Ok(handle) => Ok(handle),
            Err(e) => {
                // The region is unusable: leave no name behind (MAP-3).
                let _ = crate::shm::unlink(&name);
                Err(e)
            }
        }
    }

    fn format(mapping: Mapping, params: &Params) -> Result<RegionHandle> {
        let me = ProcessIdentity::current()?;
        let host = knit_core::participant::Identity {
            pid: me.pid,
            start_time: me.start_time,
            impl_name: IMPL_NAME,
        };
        // HDR-8: region_id from the OS CSPRNG.
        let region_id = crate::random::region_id()?;
        let region = Region::format(mapping.as_shared(), params, &host, region_id, realtime_ns())?;
        let geometry = *region.geometry();
        Ok(RegionHandle {
            geometry,
            mapping: Arc::new(mapping),
        })
    }

    /// Attaches to the named region `name`, waiting at most `timeout` for it to be READY
    /// (INIT-2), validating its header once (HDR-1 to HDR-9) and keeping exactly `region_len`
    /// bytes mapped (MAP-6, MAP-8).
    pub fn attach(name: &str, timeout: Duration) -> Result<RegionHandle> {
        attach_region(name, timeout)
            .and_then(Self::from_mapping)
            .map_err(|e| {
                explain_version(e).unwrap_or_else(|e| e.with_context(format!("region {name}")))
            })
    }

    /// Wraps a mapping that holds a READY region (for example one received as a descriptor,
    /// MAP-4), validating its header once (HDR-5).
    pub fn from_mapping(mapping: Mapping) -> Result<RegionHandle> {
        let geometry = *Region::attach(mapping.as_shared())?.geometry();
        Ok(RegionHandle {
            geometry,
            mapping: Arc::new(mapping),
        })
    }

    /// A view of the region, tied to this handle.
    pub fn region(&self) -> Region<'_> {
        Region::from_validated(self.mapping.as_shared(), self.geometry)
    }

    /// A view of the region whose lifetime the compiler does not track, for the runtime's
    /// long-lived structures (mailbox ends, doorbells) that live next to a clone of the handle.
    ///
    /// # Safety
    /// The caller keeps a clone of this handle alive for as long as the view or anything
    /// derived from it exists, and never hands the view or anything derived from it out with a
    /// lifetime longer than a borrow of that clone.
    pub(crate) unsafe fn region_unbounded(&self) -> Region<'static> {
        let mem = self.mapping.as_shared();
        // SAFETY: `mem` covers the live MAP_SHARED mapping owned by `self.mapping`, and the
        // caller keeps a clone of this handle, hence of that `Arc`, alive as long as the view
        // or anything derived from it lives (this function's contract). The pages stay mapped
        // that long: they are unmapped when the last `Arc` drops, and `Mapping::truncate`
        // needs the mapping by value, impossible behind an `Arc`. The rest of
        // `SharedMem::new`'s contract (readable and writable, 8-aligned, never referenced as a
        // Rust slice) carries over from `mem`, whose pointer comes from a `NonNull` and so is
        // not null.
        let mem = unsafe { SharedMem::new(NonNull::new_unchecked(mem.as_ptr()), mem.len()) };
        Region::from_validated(mem, self.geometry)
    }

    /// The validated geometry (a private copy; HDR-5).
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The region's name, for a named region.
    pub fn name(&self) -> Option<&RegionName> {
        self.mapping.name()
    }

    /// Removes the region's name (MAP-3); mappings stay valid. Only the creating host calls it.
    pub fn unlink(&self) -> Result<()> {
        match self.mapping.name() {
            Some(name) => crate::shm::unlink(name),
            None => Ok(()),
        }
    }
}

/// HDR-2: an `UNSUPPORTED_VERSION` error names the region's `major.minor` and the versions this
/// implementation supports, in words (the core error carries them as `major << 16 | minor`).
fn explain_version(e: crate::Error) -> Result<crate::Error, crate::Error> {
    match e.core() {
        Some(core) if core.code == knit_core::ErrorCode::UnsupportedVersion => {
            let (major, minor) = (core.found >> 16, core.found & 0xFFFF);
            let context = format!(
                "region version {major}.{minor}; this implementation supports {}.0 to {}.{}",
                knit_core::layout::MAJOR,
                knit_core::layout::MAJOR,
                knit_core::layout::MINOR
            );
            Ok(crate::Error::Protocol {
                error: *core,
                context,
            })
        }
        _ => Err(e),
    }
}
