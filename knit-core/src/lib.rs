//! # knit-core
//!
//! The protocol core of Knit: the byte layout of a region, the single-producer /
//! single-consumer record ring, the mailbox and channel state machines, and the wait/wake
//! protocol as pure transitions over atomics. `#![no_std]`, no OS calls: it operates on a raw
//! region given by pointer and length ([`SharedMem`]); the operating-system layer (mapping,
//! futex, process identity) lives in the `knit` crate.
//!
//! Every rule enforced here cites its clause id from `spec/`.
#![cfg_attr(not(test), no_std)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod channel;
pub mod crc32;
pub mod error;
pub mod fntable;
pub mod geometry;
pub mod layout;
pub mod mailbox;
pub mod message;
pub mod participant;
pub mod records;
pub mod region;
pub mod ring;
pub mod shared;
mod sync;
pub mod typed_array;
pub mod wait;

pub use error::{Error, ErrorClass, ErrorCode, Result};
pub use geometry::{Geometry, Params};
pub use participant::{Identity, Participant};
pub use region::{HostIdentity, Region};
pub use shared::SharedMem;
