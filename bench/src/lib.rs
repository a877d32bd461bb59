//! # knit-bench
//!
//! Benchmarks of Knit against the floor and the peers, in one run, between two real processes:
//! the benchmark executable starts itself again as the peer (`knit-bench peer <role> ...`).
//!
//! - Round trips ([`roundtrip`]): a request of 0 B to 1 MiB echoed back, per-call latency
//!   percentiles and calls per second, spinning and parked.
//! - Streams ([`stream`]): one-way messages of 64 B and 64 KiB, one per send or in batches,
//!   messages and bytes per second.
//! - Baselines ([`transports`]): raw shared-memory ping-pong (the floor), raw futex ping-pong,
//!   Unix stream sockets, pipes and a raw shared-memory ring; the heavy peers (iceoryx2,
//!   ipc-channel) live in the separate crate `bench/peers`, which extends the [`suite::Suite`].
//! - Reports ([`report`]): a Markdown table with ratios, a JSON file and SVG plots.

pub mod budget;
pub mod cli;
pub mod machine;
pub mod peer;
pub mod report;
pub mod results;
pub mod rounds;
pub mod roundtrip;
pub mod sched;
pub mod shm;
pub mod stats;
pub mod stream;
pub mod suite;
pub mod transports;
pub mod wait;

/// Any failure of a benchmark case; it is reported with the case and the run goes on.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Result alias of the benchmark.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An [`Error`] carrying `message`.
pub fn error(message: impl Into<String>) -> Error {
    Error::from(message.into())
}
