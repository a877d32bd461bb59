//! Streams: one-way messages from the host to the peer, one per send ("single") or several
//! per send ("batched"), for a fixed time; the peer reports how many it received.

use std::time::{Duration, Instant};

use crate::budget::Budget;
use crate::results::{Label, StreamRow};
use crate::{error, Result};

/// Message sizes of the stream cases: 64 B and 64 KiB.
pub const MESSAGES: [usize; 2] = [64, 64 << 10];

/// Messages per send of the batched cases.
pub const BATCH: usize = 32;

/// Messages per send: single, then batched.
pub const BATCHES: [usize; 2] = [1, BATCH];

/// What one timed stream did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamCount {
    /// Messages sent.
    pub sent: u64,
    /// Messages the peer reports received.
    pub received: u64,
    /// From the first send to the peer's report.
    pub elapsed: Duration,
}

/// A connected sending side.
pub trait Stream {
    /// Sends messages of `message` bytes, `batch` per send, until `duration` has passed, then
    /// asks the peer for the count it received.
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount>;

    /// Stops the peer and checks that it exited cleanly.
    fn close(self: Box<Self>) -> Result<()>;
}

/// A transport that can be measured with streams.
pub trait StreamBench {
    /// Which transport and mode.
    fn label(&self) -> Label;

    /// Starts the peer process and connects to it.
    fn connect(&self) -> Result<Box<dyn Stream>>;
}

/// Measures one stream case, after a short warm-up run.
pub fn measure(
    stream: &mut dyn Stream,
    label: Label,
    message: usize,
    batch: usize,
    budget: &Budget,
) -> Result<StreamRow> {
    check(stream.run(message, batch, budget.warmup)?, label)?;
    let count = check(stream.run(message, batch, budget.stream)?, label)?;
    Ok(StreamRow {
        label,
        message,
        batch,
        messages: count.received,
        seconds: count.elapsed.as_secs_f64(),
        paired_floor_rate: None,
    })
}

fn check(count: StreamCount, label: Label) -> Result<StreamCount> {
    if count.sent == count.received && count.sent > 0 {
        Ok(count)
    } else {
        Err(error(format!(
            "{}: sent {} messages, the peer received {}",
            label.id, count.sent, count.received
        )))
    }
}

/// A helper for senders: tells when a timed run is over, reading the clock once per send.
#[derive(Debug)]
pub struct Timer {
    start: Instant,
    duration: Duration,
}

impl Timer {
    /// Starts timing a run of `duration`.
    pub fn start(duration: Duration) -> Timer {
        Timer {
            start: Instant::now(),
            duration,
        }
    }

    /// True once the run's time is up.
    pub fn done(&self) -> bool {
        self.start.elapsed() >= self.duration
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Kind, Mode};

    /// A stream whose peer loses `lost` messages.
    struct Lossy {
        lost: u64,
    }

    impl Stream for Lossy {
        fn run(
            &mut self,
            _message: usize,
            batch: usize,
            duration: Duration,
        ) -> Result<StreamCount> {
            let timer = Timer::start(duration);
            let mut sent = 0u64;
            while !timer.done() {
                sent += batch as u64;
            }
            Ok(StreamCount {
                sent,
                received: sent.saturating_sub(self.lost),
                elapsed: timer.elapsed(),
            })
        }
        fn close(self: Box<Self>) -> Result<()> {
            Ok(())
        }
    }

    const LABEL: Label = Label {
        id: "lossy",
        title: "test stream",
        mode: Mode::Spinning,
        kind: Kind::Peer,
    };

    #[test]
    fn a_complete_stream_gives_rates() {
        let row = measure(&mut Lossy { lost: 0 }, LABEL, 64, 32, &Budget::quick()).unwrap();
        assert!(row.messages > 0 && row.messages % 32 == 0);
        assert!(row.messages_per_sec() > 0.0);
        assert!((row.gb_per_sec() - row.messages_per_sec() * 64.0 / 1e9).abs() < 1e-9);
    }

    #[test]
    fn a_lost_message_fails_the_case() {
        let err = measure(&mut Lossy { lost: 1 }, LABEL, 64, 1, &Budget::quick()).unwrap_err();
        assert!(err.to_string().contains("received"), "{err}");
    }
}
