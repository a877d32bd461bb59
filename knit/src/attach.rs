//! Attaching to a region another process created, with the bounded wait of INIT-2 and the
//! exact mapping length of MAP-6.

use std::time::Duration;

use knit_core::region::Region;
use knit_core::ErrorCode;

use crate::clock::monotonic_ns;
use crate::error::{Error, Result};
use crate::shm::Mapping;

/// How long an attacher waits for `init_state` = READY by default (INIT-2 recommends at most
/// 1 s).
pub const DEFAULT_ATTACH_TIMEOUT: Duration = Duration::from_secs(1);

/// Pause between two checks of `init_state` while the creator initialises: short against a
/// 1 s budget, long enough not to burn a core.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

/// Opens the named region `name` and waits, for at most `timeout`, until it is READY
/// (INIT-2); see [`attach_mapping`]. Errors carry the region name.
pub fn attach_region(name: &str, timeout: Duration) -> Result<Mapping> {
    let mapping = Mapping::open_named(name)?;
    attach_mapping(mapping, timeout).map_err(|e| e.with_context(format!("region {name}")))
}

/// Waits, for at most `timeout`, until `mapping` holds a READY region that passes
/// [`Region::attach`], then keeps exactly `region_len` bytes of it mapped (MAP-6).
///
/// INIT-2: `Region::attach` checks `init_state` once; while it answers `NOT_READY` this
/// retries, and after `timeout` it fails with `NOT_READY`. Every other refusal (HDR-1 to
/// HDR-7, INIT-3, INIT-4) is returned at once. The caller attaches to the returned mapping
/// with [`Region::attach`] (which then succeeds at once unless the region changed) and uses that
/// single validated header copy from then on (HDR-5).
pub fn attach_mapping(mapping: Mapping, timeout: Duration) -> Result<Mapping> {
    let budget = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let deadline = monotonic_ns().saturating_add(budget);
    let region_len = loop {
        match Region::attach(mapping.as_shared()) {
            Ok(region) => break region.geometry().region_len(),
            Err(e) if e.code == ErrorCode::NotReady => {
                let now = monotonic_ns();
                if now >= deadline {
                    return Err(Error::from(e));
                }
                // Never sleep past the deadline, so the bound holds for tiny timeouts too.
                let left = Duration::from_nanos(deadline - now);
                std::thread::sleep(left.min(RETRY_PAUSE));
            }
            Err(e) => return Err(Error::from(e)),
        }
    };
    // MAP-6: only the pages of [0, region_len) stay mapped. `Region::attach` checked
    // region_len <= mapping length (HDR-7).
    mapping.truncate(region_len)
}
