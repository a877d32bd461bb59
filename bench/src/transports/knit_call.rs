//! Knit task calls through the public runtime API: a [`knit::Pool`] with one process worker
//! (this executable as peer) serving `echo`, spinning (`SpinPolicy::LowestLatency` on both
//! sides) or parked (`SpinPolicy::NoSpin` on both sides).

use std::time::Duration;

use knit::{Pool, SpinPolicy, Worker};

use crate::peer::{PeerArgs, PeerCommand};
use crate::results::{Kind, Label, Mode};
use crate::roundtrip::{RoundTrip, RoundTripBench, MAX_PAYLOAD};
use crate::{error, Result};

/// Role name of the worker.
pub const ROLE: &str = "knit-worker";

/// Data bytes of each call ring: a 1 MiB payload fits one record (at most `cap / 2`,
/// RING-1), so the worker borrows every request in place.
pub const RING_BYTES: u32 = 4 << 20;

/// The function every Knit case calls.
const ECHO: &str = "echo";

/// Knit task calls in one mode.
#[derive(Clone, Copy, Debug)]
pub struct KnitCall {
    mode: Mode,
}

impl KnitCall {
    /// Task calls with both sides spinning before they park (lowest latency).
    pub fn spinning() -> KnitCall {
        KnitCall {
            mode: Mode::Spinning,
        }
    }

    /// Task calls with both sides parking at once.
    pub fn parked() -> KnitCall {
        KnitCall { mode: Mode::Parked }
    }
}

/// The spin policy of a mode.
fn policy(mode: Mode) -> SpinPolicy {
    match mode {
        Mode::Spinning => SpinPolicy::LowestLatency,
        Mode::Parked => SpinPolicy::NoSpin,
    }
}

/// The argument value naming a mode.
fn mode_arg(mode: Mode) -> &'static str {
    match mode {
        Mode::Spinning => "lowest-latency",
        Mode::Parked => "no-spin",
    }
}

impl RoundTripBench for KnitCall {
    fn label(&self) -> Label {
        Label {
            id: match self.mode {
                Mode::Spinning => "knit-spin",
                Mode::Parked => "knit-parked",
            },
            title: "Knit task call",
            mode: self.mode,
            kind: Kind::Knit,
        }
    }

    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        let command = PeerCommand::new(ROLE)?
            .arg("spin", mode_arg(self.mode))
            .into_command();
        let pool = Pool::builder()
            .process(command)
            .spin(policy(self.mode))
            .ring_sizes(RING_BYTES, RING_BYTES)
            .max_message_len(MAX_PAYLOAD as u64)
            .start_timeout(Duration::from_secs(10))
            // Generous, so that a worker under valgrind (profiling) can detach and exit.
            .shutdown_timeout(Duration::from_secs(10))
            // PDEATHSIG fires when the pool's monitor thread exits, which `shutdown` joins
            // before it sends SHUTDOWN: with it the worker is killed instead of detaching
            // (reported to the runtime). The worker watches its host anyway (LIVE-4).
            .parent_death_signal(false)
            .build()?;
        Ok(Box::new(Host { pool }))
    }
}

struct Host {
    pool: Pool,
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        let response = self.pool.call(ECHO, request)?;
        *reply = response.into_bytes();
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.pool.shutdown();
        Ok(())
    }
}

/// The worker: serves `echo` until the pool sends SHUTDOWN.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let spin = match args.get("spin")? {
        "lowest-latency" => SpinPolicy::LowestLatency,
        "no-spin" => SpinPolicy::NoSpin,
        other => return Err(error(format!("unknown spin policy {other:?}"))),
    };
    Worker::from_env()?
        .spin(spin)
        .handle(ECHO, |_ctx, req| Ok(req.payload.to_vec()))
        .run()?;
    Ok(())
}
