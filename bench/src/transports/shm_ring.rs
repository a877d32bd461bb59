//! The floor of the streams: a raw single-producer / single-consumer ring of fixed-size slots
//! in shared memory, spinning, with no framing, validation beyond bounds, or wake-ups. The
//! host copies each message into a slot and publishes the tail (after every message, or once
//! per batch); the peer copies each message out and publishes the head.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use knit_core::SharedMem;

use crate::peer::{PeerArgs, PeerCommand, PeerProcess};
use crate::results::{Kind, Label, Mode};
use crate::shm::SharedArea;
use crate::stream::{Stream, StreamBench, StreamCount, Timer};
use crate::wait::{spin_until, Patience};
use crate::{error, Result};

/// Messages published by the host (a count, never reset).
const TAIL: usize = 0;
/// The current run: its id, stored last (Release) when a run starts.
const RUN_ID: usize = 64;
/// Message size of the run.
const RUN_SIZE: usize = 72;
/// Messages per publication of the run.
const RUN_BATCH: usize = 80;
/// The tail at the start of the run: slot `i` holds message `base + i` (mod slots).
const RUN_BASE: usize = 88;
/// The id of the run whose last message is published.
const END: usize = 96;
/// Non-zero tells the peer to exit.
const EXIT: usize = 104;
/// Messages released by the peer.
const HEAD: usize = 128;
/// Messages the peer received in the run named by `REPORT_ID`.
const REPORT_COUNT: usize = 192;
/// The run the peer reports on, stored after the count (Release).
const REPORT_ID: usize = 200;
/// Set to 1 by the peer once it has mapped the area.
const READY: usize = 208;
/// The slots.
const DATA: usize = 4096;
/// Bytes of slots.
const DATA_LEN: usize = 2 << 20;
/// The largest message.
const SLOT_MAX: usize = 64 << 10;

/// Role name of the peer.
pub const ROLE: &str = "shm-ring";

/// The label of the ring floor.
pub const LABEL: Label = Label {
    id: "shm-ring",
    title: "floor: raw shared-memory ring",
    mode: Mode::Spinning,
    kind: Kind::Floor,
};

/// The stream floor.
#[derive(Clone, Copy, Debug, Default)]
pub struct ShmRing;

/// The control words, resolved once.
#[derive(Clone, Copy)]
struct Words<'a> {
    tail: &'a AtomicU64,
    run_id: &'a AtomicU64,
    run_size: &'a AtomicU64,
    run_batch: &'a AtomicU64,
    run_base: &'a AtomicU64,
    end: &'a AtomicU64,
    exit: &'a AtomicU64,
    head: &'a AtomicU64,
    report_count: &'a AtomicU64,
    report_id: &'a AtomicU64,
    ready: &'a AtomicU64,
}

impl<'a> Words<'a> {
    fn of(mem: SharedMem<'a>) -> Result<Words<'a>> {
        Ok(Words {
            tail: mem.atomic_u64(TAIL)?,
            run_id: mem.atomic_u64(RUN_ID)?,
            run_size: mem.atomic_u64(RUN_SIZE)?,
            run_batch: mem.atomic_u64(RUN_BATCH)?,
            run_base: mem.atomic_u64(RUN_BASE)?,
            end: mem.atomic_u64(END)?,
            exit: mem.atomic_u64(EXIT)?,
            head: mem.atomic_u64(HEAD)?,
            report_count: mem.atomic_u64(REPORT_COUNT)?,
            report_id: mem.atomic_u64(REPORT_ID)?,
            ready: mem.atomic_u64(READY)?,
        })
    }
}

/// The slot geometry for messages of `size` bytes: (stride, slot count).
fn geometry(size: usize) -> Result<(usize, u64)> {
    if size > SLOT_MAX {
        return Err(error(format!(
            "message of {size} B exceeds the ring's slots"
        )));
    }
    let stride = size.div_ceil(64).max(1) * 64;
    Ok((stride, (DATA_LEN / stride) as u64))
}

/// The data offset of message `pos` of a run starting at `base`.
fn slot_offset(pos: u64, base: u64, stride: usize, slots: u64) -> Result<usize> {
    let index = usize::try_from(pos.wrapping_sub(base) % slots)?;
    Ok(DATA + index * stride)
}

struct Host {
    mem: SharedMem<'static>,
    words: Words<'static>,
    tail: u64,
    head: u64,
    run: u64,
    peer: PeerProcess,
}

impl StreamBench for ShmRing {
    fn label(&self) -> Label {
        LABEL
    }
    fn connect(&self) -> Result<Box<dyn Stream>> {
        let mut area = SharedArea::create(DATA + DATA_LEN)?;
        let peer = PeerCommand::new(ROLE)?.arg("area", area.name()).spawn()?;
        {
            let words = Words::of(area.mem())?;
            spin_until(Patience::host(), || {
                words.ready.load(Ordering::Acquire) == 1
            })?;
        }
        area.unlink()?;
        // Mapped for the rest of the process (see `shm_echo`).
        let area: &'static SharedArea = Box::leak(Box::new(area));
        let mem = area.mem();
        Ok(Box::new(Host {
            mem,
            words: Words::of(mem)?,
            tail: 0,
            head: 0,
            run: 0,
            peer,
        }))
    }
}

impl Host {
    /// Waits until `count` more messages fit, validating every head it loads.
    fn wait_room(&mut self, count: u64, slots: u64) -> Result<()> {
        if self.tail + count - self.head <= slots {
            return Ok(());
        }
        let (tail, last) = (self.tail, self.head);
        let mut bad = None;
        let mut head = last;
        spin_until(Patience::host(), || {
            head = self.words.head.load(Ordering::Acquire);
            if head < last || head > tail {
                bad = Some(head);
                return true;
            }
            tail + count - head <= slots
        })?;
        if let Some(h) = bad {
            return Err(error(format!("ring head {h} outside [{last}, {tail}]")));
        }
        self.head = head;
        Ok(())
    }
}

impl Stream for Host {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        let (stride, slots) = geometry(message)?;
        let batch_n = batch as u64;
        if batch == 0 || batch_n > slots {
            return Err(error(format!("batch {batch} does not fit {slots} slots")));
        }
        self.run += 1;
        let base = self.tail;
        self.words.run_size.store(message as u64, Ordering::Relaxed);
        self.words.run_batch.store(batch_n, Ordering::Relaxed);
        self.words.run_base.store(base, Ordering::Relaxed);
        self.words.run_id.store(self.run, Ordering::Release);
        let payload = vec![0x5au8; message];
        let timer = Timer::start(duration);
        let mut sent = 0u64;
        while !timer.done() {
            self.wait_room(batch_n, slots)?;
            for _ in 0..batch {
                self.mem
                    .write(slot_offset(self.tail, base, stride, slots)?, &payload)?;
                self.tail += 1;
            }
            self.words.tail.store(self.tail, Ordering::Release);
            sent += batch_n;
        }
        self.words.end.store(self.run, Ordering::Release);
        let run = self.run;
        spin_until(Patience::host(), || {
            self.words.report_id.load(Ordering::Acquire) == run
        })?;
        let received = self.words.report_count.load(Ordering::Relaxed);
        self.head = self.tail;
        Ok(StreamCount {
            sent,
            received,
            elapsed: timer.elapsed(),
        })
    }

    fn close(self: Box<Self>) -> Result<()> {
        self.words.exit.store(1, Ordering::Release);
        self.peer.finish()
    }
}

/// The peer: consumes runs until the host sets `EXIT`.
pub fn serve(args: &PeerArgs) -> Result<()> {
    let area = SharedArea::open(args.get("area")?)?;
    let mem = area.mem();
    let w = Words::of(mem)?;
    let mut buf = vec![0u8; SLOT_MAX];
    let mut head = 0u64;
    let mut run = 0u64;
    w.ready.store(1, Ordering::Release);
    loop {
        spin_until(Patience::peer(), || {
            w.run_id.load(Ordering::Acquire) != run || w.exit.load(Ordering::Acquire) != 0
        })?;
        if w.exit.load(Ordering::Acquire) != 0 {
            return Ok(());
        }
        run = w.run_id.load(Ordering::Acquire);
        let size = usize::try_from(w.run_size.load(Ordering::Relaxed))?;
        let batched = w.run_batch.load(Ordering::Relaxed) > 1;
        let base = w.run_base.load(Ordering::Relaxed);
        if base != head {
            return Err(error(format!("run base {base} is not the head {head}")));
        }
        let (stride, slots) = geometry(size)?;
        let body = buf
            .get_mut(..size)
            .ok_or_else(|| error("message larger than the buffer"))?;
        let mut count = 0u64;
        loop {
            let mut tail = head;
            let mut ended = false;
            spin_until(Patience::peer(), || {
                tail = w.tail.load(Ordering::Acquire);
                ended = tail == head && w.end.load(Ordering::Acquire) == run;
                tail != head || ended
            })?;
            if ended {
                // END is stored after the last tail: no message can follow it.
                if w.tail.load(Ordering::Acquire) == head {
                    break;
                }
                continue;
            }
            if tail < head || tail - head > slots {
                return Err(error(format!(
                    "ring tail {tail} outside [{head}, {head}+{slots}]"
                )));
            }
            while head < tail {
                mem.read(slot_offset(head, base, stride, slots)?, body)?;
                head += 1;
                count += 1;
                if !batched {
                    w.head.store(head, Ordering::Release);
                }
            }
            w.head.store(head, Ordering::Release);
        }
        w.report_count.store(count, Ordering::Relaxed);
        w.report_id.store(run, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_cache_line_strided_and_bounded() {
        assert_eq!(geometry(0).unwrap(), (64, (DATA_LEN / 64) as u64));
        assert_eq!(geometry(64).unwrap(), (64, (DATA_LEN / 64) as u64));
        assert_eq!(geometry(65).unwrap(), (128, (DATA_LEN / 128) as u64));
        assert_eq!(geometry(SLOT_MAX).unwrap(), (SLOT_MAX, 32));
        assert!(geometry(SLOT_MAX + 1).is_err());
    }

    #[test]
    fn slot_offsets_wrap_inside_the_data_area() {
        let (stride, slots) = geometry(SLOT_MAX).unwrap();
        assert_eq!(slot_offset(100, 100, stride, slots).unwrap(), DATA);
        assert_eq!(slot_offset(100 + slots, 100, stride, slots).unwrap(), DATA);
        let last = slot_offset(100 + slots - 1, 100, stride, slots).unwrap();
        assert_eq!(last + stride, DATA + DATA_LEN);
    }
}
