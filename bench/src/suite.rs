//! The set of transports a run measures, and the peer roles the executable can play. The
//! default build has the floors, the kernel baselines and Knit; `bench/peers` adds iceoryx2
//! and ipc-channel with [`Suite::add_round_trip`], [`Suite::add_stream`] and
//! [`Suite::add_role`].

use crate::peer::PeerArgs;
use crate::results::{Kind, Mode};
use crate::roundtrip::RoundTripBench;
use crate::stream::StreamBench;
use crate::transports::{knit_call, knit_channel, pipe, shm_echo, shm_ring, unix_socket};
use crate::{error, Result};

/// A role the executable plays when started as a peer.
#[derive(Clone, Copy, Debug)]
pub struct PeerRole {
    /// The role name given after `peer`.
    pub name: &'static str,
    /// Serves the host until it says stop.
    pub serve: fn(&PeerArgs) -> Result<()>,
}

/// The transports of a run.
#[derive(Default)]
pub struct Suite {
    round_trips: Vec<Box<dyn RoundTripBench>>,
    streams: Vec<Box<dyn StreamBench>>,
    roles: Vec<PeerRole>,
}

impl Suite {
    /// An empty suite.
    pub fn new() -> Suite {
        Suite::default()
    }

    /// The default build's transports: floors first, then the kernel baselines.
    pub fn builtin() -> Suite {
        Suite::new()
            .add_round_trip(shm_echo::SpinFloor)
            .add_round_trip(shm_echo::FutexFloor)
            .add_round_trip(knit_call::KnitCall::spinning())
            .add_round_trip(knit_call::KnitCall::parked())
            .add_round_trip(knit_call::KnitCall::spinning().in_place())
            .add_round_trip(knit_call::KnitCall::parked().in_place())
            .add_round_trip(unix_socket::UnixSocket)
            .add_round_trip(pipe::Pipe)
            .add_stream(shm_ring::ShmRing)
            .add_stream(knit_channel::KnitChannel::spinning())
            .add_stream(knit_channel::KnitChannel::parked())
            .add_stream(unix_socket::UnixSocket)
            .add_stream(pipe::Pipe)
            .add_role(shm_echo::SPIN_ROLE, shm_echo::serve_spin)
            .add_role(shm_echo::FUTEX_ROLE, shm_echo::serve_futex)
            .add_role(unix_socket::ROLE, unix_socket::serve)
            .add_role(pipe::ROLE, pipe::serve)
            .add_role(knit_call::ROLE, knit_call::serve)
            .add_role(knit_channel::ROLE, knit_channel::serve)
            .add_role(shm_ring::ROLE, shm_ring::serve)
    }

    /// Adds a round-trip transport.
    #[must_use]
    pub fn add_round_trip(mut self, bench: impl RoundTripBench + 'static) -> Suite {
        self.round_trips.push(Box::new(bench));
        self
    }

    /// Adds a stream transport.
    #[must_use]
    pub fn add_stream(mut self, bench: impl StreamBench + 'static) -> Suite {
        self.streams.push(Box::new(bench));
        self
    }

    /// Adds a peer role.
    #[must_use]
    pub fn add_role(mut self, name: &'static str, serve: fn(&PeerArgs) -> Result<()>) -> Suite {
        self.roles.push(PeerRole { name, serve });
        self
    }

    /// The round-trip transports, in order.
    pub fn round_trips(&self) -> &[Box<dyn RoundTripBench>] {
        &self.round_trips
    }

    /// The stream transports, in order.
    pub fn streams(&self) -> &[Box<dyn StreamBench>] {
        &self.streams
    }

    /// The round-trip floor of `mode`, if the suite has one.
    pub fn round_trip_floor(&self, mode: Mode) -> Option<&dyn RoundTripBench> {
        self.round_trips
            .iter()
            .map(AsRef::as_ref)
            .find(|b| b.label().kind == Kind::Floor && b.label().mode == mode)
    }

    /// The stream floor, if the suite has one.
    pub fn stream_floor(&self) -> Option<&dyn StreamBench> {
        self.streams
            .iter()
            .map(AsRef::as_ref)
            .find(|b| b.label().kind == Kind::Floor)
    }

    /// Runs the peer role `args` names.
    pub fn serve_peer(&self, args: &PeerArgs) -> Result<()> {
        let role = self
            .roles
            .iter()
            .find(|r| r.name == args.role())
            .ok_or_else(|| error(format!("unknown peer role {:?}", args.role())))?;
        (role.serve)(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_transport_has_a_distinct_label_and_the_floors_come_first() {
        let suite = Suite::builtin();
        let ids: Vec<_> = suite.round_trips().iter().map(|b| b.label().id).collect();
        let mut unique = ids.clone();
        unique.dedup();
        assert_eq!(ids, unique);
        assert_eq!(ids.first(), Some(&"floor-spin"));
        assert_eq!(
            suite.streams().first().map(|b| b.label().id),
            Some("shm-ring")
        );
    }

    #[test]
    fn finds_the_floor_of_each_mode() {
        let suite = Suite::builtin();
        let id = |b: Option<&dyn RoundTripBench>| b.map(|b| b.label().id);
        assert_eq!(
            id(suite.round_trip_floor(Mode::Spinning)),
            Some("floor-spin")
        );
        assert_eq!(
            id(suite.round_trip_floor(Mode::Parked)),
            Some("floor-futex")
        );
        assert_eq!(suite.stream_floor().map(|b| b.label().id), Some("shm-ring"));
        assert!(Suite::new().round_trip_floor(Mode::Spinning).is_none());
    }

    #[test]
    fn an_unknown_role_is_an_error() {
        let args = PeerArgs::parse(&["nobody".to_owned()]).unwrap();
        assert!(Suite::builtin().serve_peer(&args).is_err());
    }
}
