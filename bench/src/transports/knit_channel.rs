//! Knit channels through the public runtime API. Channels run from a worker to the host
//! (`Context::open_channel_to_host`, `CallFuture::channel`), so here the worker is the
//! sender: the host calls the streaming function `stream` with the message size, the batch
//! and the duration; the worker opens a channel, sends until the time is up, closes it and
//! answers with the count it sent. The host receives every message (each in private memory)
//! and counts them. A batch is one channel message holding `batch` messages back to back (the
//! runtime publishes message by message; batching means bigger messages).

use std::time::{Duration, Instant};

use knit::{Pool, SpinPolicy, Worker};

use crate::peer::{PeerArgs, PeerCommand};
use crate::results::{Kind, Label, Mode};
use crate::stream::{Stream, StreamBench, StreamCount, BATCH, MESSAGES};
use crate::{error, Result};

/// Role name of the worker.
pub const ROLE: &str = "knit-channel-worker";

/// The streaming function.
const STREAM: &str = "stream";

/// Data bytes of the channel ring: the largest batch (2 MiB) fits in two records.
pub const CHANNEL_RING_BYTES: u32 = 4 << 20;

/// The largest channel message: a batch of the largest messages.
const MAX_MESSAGE: usize = BATCH * MESSAGES[1];

/// Knit channels in one mode.
#[derive(Clone, Copy, Debug)]
pub struct KnitChannel {
    mode: Mode,
}

impl KnitChannel {
    /// Both sides spin before they park (`SpinPolicy::LowestLatency`).
    pub fn spinning() -> KnitChannel {
        KnitChannel {
            mode: Mode::Spinning,
        }
    }

    /// Both sides park at once (`SpinPolicy::NoSpin`).
    pub fn parked() -> KnitChannel {
        KnitChannel { mode: Mode::Parked }
    }
}

fn policy(mode: Mode) -> SpinPolicy {
    match mode {
        Mode::Spinning => SpinPolicy::LowestLatency,
        Mode::Parked => SpinPolicy::NoSpin,
    }
}

impl StreamBench for KnitChannel {
    fn label(&self) -> Label {
        Label {
            id: match self.mode {
                Mode::Spinning => "knit-channel-spin",
                Mode::Parked => "knit-channel-parked",
            },
            title: "Knit channel (worker to host)",
            mode: self.mode,
            kind: Kind::Knit,
        }
    }

    fn connect(&self) -> Result<Box<dyn Stream>> {
        let spin = match self.mode {
            Mode::Spinning => "lowest-latency",
            Mode::Parked => "no-spin",
        };
        let command = PeerCommand::new(ROLE)?.arg("spin", spin).into_command();
        let pool = Pool::builder()
            .process(command)
            .spin(policy(self.mode))
            .channels(1, CHANNEL_RING_BYTES)
            .max_message_len(MAX_MESSAGE as u64)
            .start_timeout(Duration::from_secs(10))
            .shutdown_timeout(Duration::from_secs(10))
            // See `knit_call`: PDEATHSIG would kill the worker before it detaches.
            .parent_death_signal(false)
            .build()?;
        Ok(Box::new(Host { pool }))
    }
}

struct Host {
    pool: Pool,
}

/// The request of a stream: message size, batch, duration in nanoseconds.
fn encode(message: usize, batch: usize, duration: Duration) -> Vec<u8> {
    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    [message as u64, batch as u64, nanos]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Reads back [`encode`]'s three words.
fn decode(bytes: &[u8]) -> Option<(usize, usize, Duration)> {
    let word = |i: usize| -> Option<u64> {
        let b: [u8; 8] = bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    };
    if bytes.len() != 24 {
        return None;
    }
    Some((
        usize::try_from(word(0)?).ok()?,
        usize::try_from(word(1)?).ok()?,
        Duration::from_nanos(word(2)?),
    ))
}

impl Stream for Host {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        let start = Instant::now();
        let call = self
            .pool
            .call_async(STREAM, encode(message, batch, duration));
        let mut receiver = call.channel()?;
        let mut bytes = 0u64;
        while let Some(m) = receiver.recv()? {
            bytes += m.bytes.len() as u64;
        }
        let elapsed = start.elapsed();
        let response = call.wait()?;
        let sent: [u8; 8] = response
            .bytes()
            .try_into()
            .map_err(|_| error("stream response is not 8 bytes"))?;
        let per = message.max(1) as u64;
        Ok(StreamCount {
            sent: u64::from_le_bytes(sent),
            received: if bytes % per == 0 { bytes / per } else { 0 },
            elapsed,
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.pool.shutdown();
        Ok(())
    }
}

/// The worker: serves `stream` until the pool sends SHUTDOWN.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let spin = match args.get("spin")? {
        "lowest-latency" => SpinPolicy::LowestLatency,
        "no-spin" => SpinPolicy::NoSpin,
        other => return Err(error(format!("unknown spin policy {other:?}"))),
    };
    Worker::from_env()?
        .spin(spin)
        .handle_streaming(STREAM, |ctx, req| {
            let (message, batch, duration) = decode(req.payload)
                .ok_or_else(|| knit::HandlerError::failed("bad stream request"))?;
            let payload = vec![0x5au8; message * batch];
            let mut sender = ctx.open_channel_to_host()?;
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed() < duration {
                sender.send(&payload)?;
                sent += batch as u64;
            }
            sender.close()?;
            Ok(sent.to_le_bytes().to_vec())
        })
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_requests_round_trip_and_refuse_bad_lengths() {
        let d = Duration::from_millis(1500);
        assert_eq!(decode(&encode(64, 32, d)), Some((64, 32, d)));
        assert_eq!(decode(&[0; 23]), None);
        assert_eq!(decode(&[0; 25]), None);
    }
}
