//! # knit
//!
//! The std runtime of Knit over [`knit_core`]: the operating-system layer that the protocol
//! core leaves out. Named and anonymous shared mappings with the discipline of
//! `spec/11-mapping.md` ([`Mapping`], [`RegionName`], [`RegionDir`]), parking on the shared
//! futex ([`Futex`]), process identity and liveness ([`ProcessIdentity`], [`is_alive`]) and
//! clocks ([`monotonic_ns`], [`realtime_ns`]), and attaching to a region with the bounded
//! wait of INIT-2 ([`attach_region`]).
//!
//! On top of it, the runtime: a host's [`Pool`] of workers (threads or processes, blocking
//! and async calls, deadlines, cancellation, liveness and restart) and a worker's serve loop
//! ([`Worker`]), with spin-then-park waiting ([`SpinPolicy`]) and, behind the `serde` feature,
//! typed JSON and CBOR calls (`typed`).
//!
//! Channels stream messages alongside a call, in either direction: a handler opens one to the
//! host ([`Context::open_channel_to_host`], read with [`CallFuture::channel`]), and the host
//! opens one to the worker running a call ([`Pool::call_with_channel`], read with
//! [`Context::take_input_channel`]). Zero copy is available on every ring: requests and
//! channel messages of one record are read in place, [`Pool::call_loan`] writes a request in
//! place, [`Handlers::handle_in_place`] writes a result in place, and [`Pool::call_with`]
//! reads it in place.
//!
//! Linux only for now: the mapping, futex and identity modules use Linux interfaces
//! (`/dev/shm`, `memfd_create`, `FUTEX_WAIT`, `/proc/<pid>/stat`).

pub mod attach;
pub mod call;
pub mod clock;
pub mod error;
pub mod futex;
pub mod handler;
pub mod identity;
pub mod liveness;
pub mod name;
pub mod pool;
pub mod random;
pub mod region_dir;
pub mod region_handle;
pub mod serve;
pub mod shm;
pub mod spin;
#[cfg(feature = "serde")]
pub mod typed;

pub use attach::{attach_mapping, attach_region, DEFAULT_ATTACH_TIMEOUT};
pub use call::{CallError, CallOptions, CallResult, Payload, Response};
pub use clock::{monotonic_ns, realtime_ns};
pub use error::{Error, Result};
pub use futex::{Futex, WaitOutcome};
pub use handler::{HandlerError, HandlerResult, Handlers, InPlaceFn, Request};
pub use identity::{is_alive, ProcessIdentity};
pub use name::RegionName;
pub use pool::{
    block_on, Backpressure, CallFuture, Message, Pool, PoolBuilder, Receiver, Sender, WorkerInfo,
};
pub use region_dir::RegionDir;
pub use region_handle::RegionHandle;
pub use serve::{
    ChannelReceiver, ChannelSender, Context, Responded, ResponseWriter, ServeOutcome, Worker,
};
pub use shm::{unlink, Mapping};
pub use spin::SpinPolicy;
