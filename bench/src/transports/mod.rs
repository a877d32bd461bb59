//! The transports measured by the default build: the floors, the kernel baselines and Knit.
//! Each module has a host side (a [`crate::roundtrip::RoundTripBench`] or
//! [`crate::stream::StreamBench`]) and a peer side (a `serve` function run by the peer
//! process under its role name).

pub mod byte_stream;
pub mod knit_call;
pub mod knit_channel;
pub mod pipe;
pub mod shm_echo;
pub mod shm_ring;
pub mod unix_socket;
