//! # libknit: the C ABI of Knit
//!
//! A thin, safe translation layer over the runtime crate `knit`: no protocol logic lives here.
//! `include/knit.h` is generated from this crate by cbindgen (`knit-ffi/cbindgen.toml`); the
//! doc comments below are the header's comments, so they are written for a C programmer.
//!
//! Rules every exported function follows:
//! - it returns a `knit_status` (a code of the registry in spec/09 §9.1), except the few
//!   getters that cannot fail, and sets the thread's `knit_last_error_message()`;
//! - its body runs under `catch_unwind`: no panic crosses into C;
//! - handles are keys into a registry (`handle.rs`), never dereferenced: NULL, forged, freed
//!   and wrong-type handles are refused with `KNIT_INVALID_ARGUMENT`;
//! - ownership and thread safety are stated in each function's comment.

// The order of these modules is the order of the generated header: errors and versions first,
// then configuration, workers, pools and calls, inspection, and the leak check last.
mod status;
mod version;
mod args;
mod content;
mod config;
mod handlers;
mod worker;
mod pool;
mod response;
mod ticket;
mod watch;
mod callback;
mod channel;
mod region;
mod handle;
#[cfg(test)]
mod tests;

pub use args::KNIT_FOREVER;
pub use callback::{knit_call_callback, KnitCompletionFn, KnitOutcome};
pub use channel::*;
pub use config::*;
pub use content::*;
pub use handle::knit_handle_count;
pub use handlers::*;
pub use pool::*;
pub use region::*;
pub use response::*;
pub use status::*;
pub use ticket::*;
pub use version::*;
pub use watch::{knit_ticket_on_complete, KnitTicketReadyFn};
pub use worker::*;
