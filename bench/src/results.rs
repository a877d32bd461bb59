//! The rows a run produces.

use crate::stats::Latency;

/// How a transport waits for its peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mode {
    /// Busy-polls shared memory: the lowest latency, a core per waiting side.
    Spinning,
    /// Sleeps in the kernel (futex, socket, pipe) until woken.
    Parked,
}

impl Mode {
    /// `"spinning"` or `"parked"`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Spinning => "spinning",
            Mode::Parked => "parked",
        }
    }
}

/// Which transport a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label {
    /// A stable id, e.g. `"floor-spin"`, `"knit"`, `"unix-socket"`.
    pub id: &'static str,
    /// What a reader of the table sees, e.g. `"raw cache-line ping-pong"`.
    pub title: &'static str,
    /// How it waits.
    pub mode: Mode,
    /// The role of the row in the comparison.
    pub kind: Kind,
}

/// The role of a row in the comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A raw primitive no protocol can beat: the ratios are taken against it.
    Floor,
    /// Knit itself.
    Knit,
    /// Another way to do the same job (sockets, pipes, other IPC libraries).
    Peer,
}

/// One round-trip case: payload size, latency and rate.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundTripRow {
    /// The transport and mode.
    pub label: Label,
    /// Bytes sent each way (the peer echoes the request).
    pub payload: usize,
    /// Per-call latency.
    pub latency: Latency,
    /// Calls per second over the measured interval (back-to-back, one outstanding).
    pub calls_per_sec: f64,
    /// p50 of the floor of the same mode and payload, measured right before this case (None
    /// for the floors themselves and when no floor ran).
    pub paired_floor_p50_ns: Option<f64>,
}

/// One stream case: message size, batching and rate.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamRow {
    /// The transport and mode.
    pub label: Label,
    /// Payload bytes of each message.
    pub message: usize,
    /// Messages per send (1 = single).
    pub batch: usize,
    /// Messages the peer received (equal to those sent, checked).
    pub messages: u64,
    /// Seconds from the first send to the peer's report of the last receive.
    pub seconds: f64,
    /// Messages per second of the stream floor for the same case, measured right before it.
    pub paired_floor_rate: Option<f64>,
}

impl StreamRow {
    /// Messages per second.
    pub fn messages_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            as_f64(self.messages) / self.seconds
        } else {
            0.0
        }
    }

    /// Payload gigabytes (10^9 bytes) per second.
    pub fn gb_per_sec(&self) -> f64 {
        self.messages_per_sec() * as_f64(self.message as u64) / 1e9
    }
}

/// A case that failed, with the error, so that a run reports it instead of stopping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Which case.
    pub case: String,
    /// What went wrong.
    pub error: String,
}

// Message counts stay far below 2^53.
#[allow(clippy::cast_precision_loss)]
fn as_f64(v: u64) -> f64 {
    v as f64
}
