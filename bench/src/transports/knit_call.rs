//! Knit task calls through the public runtime API: a [`knit::Pool`] with one process worker
//! (this executable as peer) serving `echo`, spinning (`SpinPolicy::LowestLatency` on both
//! sides) or parked (`SpinPolicy::NoSpin` on both sides).
//!
//! Two API styles: the plain one (`Pool::call` returns an owned result; the handler returns a
//! `Vec`), and the in-place one (`Pool::call_with` reads a one-record result in the response
//! ring; `Worker::handle_in_place` writes the echo straight into the response ring), which
//! copies as often as the raw floor does: request in, echo across, reply out.

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

/// Knit task calls in one mode and API style.
#[derive(Clone, Copy, Debug)]
pub struct KnitCall {
    mode: Mode,
    in_place: bool,
}

impl KnitCall {
    /// Task calls with both sides spinning before they park (lowest latency).
    pub fn spinning() -> KnitCall {
        KnitCall {
            mode: Mode::Spinning,
            in_place: false,
        }
    }

    /// Task calls with both sides parking at once.
    pub fn parked() -> KnitCall {
        KnitCall {
            mode: Mode::Parked,
            in_place: false,
        }
    }

    /// The same calls through the in-place API (`call_with`, `handle_in_place`).
    #[must_use]
    pub fn in_place(self) -> KnitCall {
        KnitCall {
            in_place: true,
            ..self
        }
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
            id: match (self.mode, self.in_place) {
                (Mode::Spinning, false) => "knit-spin",
                (Mode::Parked, false) => "knit-parked",
                (Mode::Spinning, true) => "knit-spin-in-place",
                (Mode::Parked, true) => "knit-parked-in-place",
            },
            title: if self.in_place {
                "Knit task call, in place"
            } else {
                "Knit task call"
            },
            mode: self.mode,
            kind: Kind::Knit,
        }
    }

    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        let command = PeerCommand::new(ROLE)?
            .arg("spin", mode_arg(self.mode))
            .arg("in-place", self.in_place)
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
        Ok(Box::new(Host {
            pool,
            in_place: self.in_place,
        }))
    }
}

struct Host {
    pool: Pool,
    in_place: bool,
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        if self.in_place {
            self.pool.call_with(ECHO, request, |bytes| {
                reply.clear();
                reply.extend_from_slice(bytes);
            })?;
        } else {
            let response = self.pool.call(ECHO, request)?;
            *reply = response.into_bytes();
        }
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
    let worker = Worker::from_env()?.spin(spin);
    let worker = match args.get("in-place")? {
        "true" => worker.handle_in_place(ECHO, |_ctx, req, out| {
            let bytes = req.payload;
            out.write_with(bytes.len(), |buf| {
                let n = bytes.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), bytes.get(..n)) {
                    dst.copy_from_slice(src);
                }
                n
            })
        }),
        _ => worker.handle(ECHO, |_ctx, req| Ok(req.payload.to_vec())),
    };
    worker.run()?;
    Ok(())
}
