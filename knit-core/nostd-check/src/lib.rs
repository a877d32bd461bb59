//! Build-only proof that `knit-core` is `no_std` (see the README, "How no_std is proven").
//!
//! This crate is `#![no_std]` and defines the `panic_handler` lang item itself. If any crate in
//! its dependency graph linked `std`, `std`'s own handler would collide with this one and the
//! build would fail with error E0152, "found duplicate lang item `panic_impl`" (checked by hand:
//! adding `extern crate std;` here produces exactly that error). Build it with and without the
//! core's `alloc` feature; `.ci/run` does both.
// Under `cargo test`/`--all-targets` the harness links std; the proof is the plain build.
#![cfg_attr(not(test), no_std)]

use knit_core::error::ErrorCode;

/// Returns the numeric value of the `BAD_MAGIC` registry code, computed through `knit-core`.
#[no_mangle]
pub extern "C" fn knit_nostd_check_code() -> u32 {
    ErrorCode::BadMagic as u32
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {
        core::hint::spin_loop();
    }
}
