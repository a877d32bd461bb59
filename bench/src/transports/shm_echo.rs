//! The floors of the round trip: a raw ping-pong through shared memory with no protocol at
//! all. The host copies the request into a shared buffer, stores its length and a sequence
//! number; the peer copies it out, copies it back into a reply buffer and stores the sequence
//! number on its own cache line. With a 0 B payload this is the classic two-line cache-line
//! ping-pong.
//!
//! - [`SpinFloor`] busy-polls the sequence words: the spinning floor.
//! - [`FutexFloor`] sleeps on them with `FUTEX_WAIT` and always issues `FUTEX_WAKE`: the raw
//!   futex ping-pong, the parked floor.

use knit::{Futex, WaitOutcome};
use knit_core::SharedMem;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::peer::{PeerArgs, PeerCommand, PeerProcess};
use crate::results::{Kind, Label, Mode};
use crate::roundtrip::{RoundTrip, RoundTripBench, MAX_PAYLOAD};
use crate::shm::SharedArea;
use crate::wait::{spin_until, Patience};
use crate::{error, Result};

/// Sequence number stored by the host when spinning.
const PING: usize = 0;
/// Length of the request, stored by the host before the sequence number; [`STOP`] ends the
/// peer.
const LEN: usize = 8;
/// Sequence number stored by the host when parked: the futex word the peer sleeps on.
const PING32: usize = 16;
/// Sequence number stored by the peer when spinning, on its own cache line.
const PONG: usize = 64;
/// Sequence number stored by the peer when parked: the futex word the host sleeps on.
const PONG32: usize = 72;
/// Set to 1 by the peer once it has mapped the area.
const READY: usize = 128;
/// The request buffer.
const REQUEST: usize = 4096;
/// The reply buffer.
const REPLY: usize = REQUEST + MAX_PAYLOAD;
/// Bytes of the whole area.
const AREA_LEN: usize = REPLY + MAX_PAYLOAD;
/// The `LEN` value that tells the peer to exit.
const STOP: u64 = u64::MAX;
/// Longest single futex sleep, so that a wait re-checks its bound.
const FUTEX_SLICE_NS: u64 = 100_000_000;

/// Role name of the spinning floor's peer.
pub const SPIN_ROLE: &str = "floor-spin";
/// Role name of the futex floor's peer.
pub const FUTEX_ROLE: &str = "floor-futex";

/// The label of the spinning floor.
pub const SPIN_LABEL: Label = Label {
    id: "floor-spin",
    title: "floor: raw cache-line ping-pong",
    mode: Mode::Spinning,
    kind: Kind::Floor,
};

/// The label of the futex floor.
pub const FUTEX_LABEL: Label = Label {
    id: "floor-futex",
    title: "floor: raw futex ping-pong",
    mode: Mode::Parked,
    kind: Kind::Floor,
};

/// The spinning floor.
#[derive(Clone, Copy, Debug, Default)]
pub struct SpinFloor;

/// The parked floor (raw futex ping-pong).
#[derive(Clone, Copy, Debug, Default)]
pub struct FutexFloor;

impl RoundTripBench for SpinFloor {
    fn label(&self) -> Label {
        SPIN_LABEL
    }
    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        Ok(Box::new(connect(SPIN_ROLE, Mode::Spinning)?))
    }
}

impl RoundTripBench for FutexFloor {
    fn label(&self) -> Label {
        FUTEX_LABEL
    }
    fn connect(&self) -> Result<Box<dyn RoundTrip>> {
        Ok(Box::new(connect(FUTEX_ROLE, Mode::Parked)?))
    }
}

/// The host side, connected.
struct Host {
    mem: SharedMem<'static>,
    words: Words<'static>,
    mode: Mode,
    seq: u64,
    peer: PeerProcess,
}

/// The control words, resolved once.
#[derive(Clone, Copy)]
struct Words<'a> {
    ping: &'a AtomicU64,
    ping32: &'a AtomicU32,
    len: &'a AtomicU64,
    pong: &'a AtomicU64,
    pong32: &'a AtomicU32,
    ready: &'a AtomicU64,
}

impl<'a> Words<'a> {
    /// The words of `mem`.
    fn of(mem: SharedMem<'a>) -> Result<Words<'a>> {
        Ok(Words {
            ping: mem.atomic_u64(PING)?,
            ping32: mem.atomic_u32(PING32)?,
            len: mem.atomic_u64(LEN)?,
            pong: mem.atomic_u64(PONG)?,
            pong32: mem.atomic_u32(PONG32)?,
            ready: mem.atomic_u64(READY)?,
        })
    }
}

fn connect(role: &str, mode: Mode) -> Result<Host> {
    let mut area = SharedArea::create(AREA_LEN)?;
    let peer = PeerCommand::new(role)?.arg("area", area.name()).spawn()?;
    // The area is mapped for the rest of the process: the host side is handed out as a
    // `'static` trait object, and a benchmark run creates only a few of them.
    {
        let words = Words::of(area.mem())?;
        spin_until(Patience::host(), || {
            words.ready.load(Ordering::Acquire) == 1
        })?;
    }
    area.unlink()?;
    let area: &'static SharedArea = Box::leak(Box::new(area));
    let mem = area.mem();
    Ok(Host {
        mem,
        words: Words::of(mem)?,
        mode,
        seq: 0,
        peer,
    })
}

impl Host {
    fn publish(&mut self, len: u64) {
        self.seq = self.seq.wrapping_add(1);
        self.words.len.store(len, Ordering::Relaxed);
        match self.mode {
            Mode::Spinning => self.words.ping.store(self.seq, Ordering::Release),
            Mode::Parked => {
                self.words.ping32.store(self.seq as u32, Ordering::Release);
                Futex.wake_all_count(self.words.ping32);
            }
        }
    }

    fn wait_reply(&self) -> Result<()> {
        match self.mode {
            Mode::Spinning => {
                let (pong, seq) = (self.words.pong, self.seq);
                spin_until(Patience::host(), || pong.load(Ordering::Acquire) == seq)
            }
            Mode::Parked => futex_until(self.words.pong32, self.seq as u32, Patience::host()),
        }
    }
}

impl RoundTrip for Host {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        if request.len() > MAX_PAYLOAD {
            return Err(error("request larger than the floor's buffer"));
        }
        self.mem.write(REQUEST, request)?;
        self.publish(request.len() as u64);
        self.wait_reply()?;
        reply.resize(request.len(), 0);
        self.mem.read(REPLY, reply)?;
        Ok(())
    }

    fn close(mut self: Box<Self>) -> Result<()> {
        self.publish(STOP);
        self.peer.finish()
    }
}

/// Waits until the futex word `word` holds `want`, sleeping on it in between.
fn futex_until(word: &AtomicU32, want: u32, patience: Patience) -> Result<()> {
    let mut watch = None;
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen == want {
            return Ok(());
        }
        if Futex.wait_outcome(word, seen, FUTEX_SLICE_NS) == WaitOutcome::TimedOut {
            watch.get_or_insert_with(|| patience.start()).check()?;
        }
    }
}

/// Waits until the futex word `word` differs from `old`, sleeping on it in between.
fn futex_change(word: &AtomicU32, old: u32, patience: Patience) -> Result<u32> {
    let mut watch = None;
    loop {
        let seen = word.load(Ordering::Acquire);
        if seen != old {
            return Ok(seen);
        }
        if Futex.wait_outcome(word, old, FUTEX_SLICE_NS) == WaitOutcome::TimedOut {
            watch.get_or_insert_with(|| patience.start()).check()?;
        }
    }
}

/// The peer of the spinning floor.
pub fn serve_spin(args: &PeerArgs) -> Result<()> {
    serve(args, Mode::Spinning)
}

/// The peer of the futex floor.
pub fn serve_futex(args: &PeerArgs) -> Result<()> {
    serve(args, Mode::Parked)
}

/// Echoes requests until the host stores [`STOP`]. Every value read from the area is loaded
/// once and checked before use.
fn serve(args: &PeerArgs, mode: Mode) -> Result<()> {
    let area = SharedArea::open(args.get("area")?)?;
    let mem = area.mem();
    let words = Words::of(mem)?;
    let mut buf = vec![0u8; MAX_PAYLOAD];
    words.ready.store(1, Ordering::Release);
    let mut last: u64 = 0;
    loop {
        let seq = match mode {
            Mode::Spinning => {
                let mut seen = last;
                spin_until(Patience::peer(), || {
                    seen = words.ping.load(Ordering::Acquire);
                    seen != last
                })?;
                seen
            }
            Mode::Parked => u64::from(futex_change(words.ping32, last as u32, Patience::peer())?),
        };
        last = seq;
        let len = words.len.load(Ordering::Relaxed);
        if len == STOP {
            return Ok(());
        }
        let body = usize::try_from(len)
            .ok()
            .and_then(|n| buf.get_mut(..n))
            .ok_or_else(|| error(format!("request length {len} out of range")))?;
        mem.read(REQUEST, body)?;
        mem.write(REPLY, body)?;
        match mode {
            Mode::Spinning => words.pong.store(seq, Ordering::Release),
            Mode::Parked => {
                words.pong32.store(seq as u32, Ordering::Release);
                Futex.wake_all_count(words.pong32);
            }
        }
    }
}
