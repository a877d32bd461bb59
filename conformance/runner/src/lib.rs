//! # knit-conformance
//!
//! The runner of the Knit conformance suite (`knit conformance`, see `conformance/README.md`):
//! cases as data ([`case`]), the driver protocol to the agent under test ([`frame`],
//! [`agent`]), the reference host and workers the runner plays the other side with ([`host`],
//! [`workers`], [`raw`]), golden-vector images and generated mutations ([`images`],
//! [`mutate`]), and reports ([`report`]). The reference agent (`knit-agent`) reuses the
//! decoders ([`validate`]), behaviours ([`behaviour`]) and reference host of this crate.

pub mod agent;
pub mod behaviour;
pub mod case;
pub mod cli;
pub mod exec;
pub mod expect;
pub mod frame;
pub mod host;
pub mod images;
pub mod live;
pub mod matrix;
pub mod mem;
pub mod mutate;
pub mod outcome;
pub mod payload;
pub mod raw;
pub mod report;
pub mod spec;
pub mod validate;
pub mod workers;

/// Version of the suite (cases, driver protocol).
pub const SUITE_VERSION: &str = "0.1.0";
/// Version of the protocol the suite checks.
pub const SPEC_VERSION: &str = "1.0";
