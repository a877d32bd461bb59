//! The channel state machine (spec/06-channels.md) under arbitrary operation sequences from
//! both ends: open, attach, send (fragmented or loaned), close, receive, abort, peer death,
//! drop, forged announcements, and, at any point, hostile stores into the slot's control
//! block and ring.
//!
//! While nothing hostile was stored (the clean part of a run), checked: every message is
//! received once, in order, byte for byte, and END only after all of them (CHAN-3, CHAN-4);
//! an abort reaches the other end as `CHANNEL_ABORTED` with its code (CHAN-5); a forged or stale
//! announcement is refused (CHAN-2); no end reports a violation; and once both ends are gone
//! every slot is FREE again (CHAN-9). After a hostile store: nothing panics, every error is a
//! typed one.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use knit_core::channel::{
    self, ChannelEnd, ChannelEvent, ChannelReader, ChannelWriter, EndRole, OpenedChannel,
    OutgoingData,
};
use knit_core::geometry::Params;
use knit_core::layout::{
    CH_ABORT_CODE, CH_EPOCH, CH_READER, CH_RELEASED, CH_STATE, CH_TAG, CH_WRITER,
};
use knit_core::records::ChannelOpen;
use knit_core::ring::TAIL_OFFSET;
use knit_core::{Error, ErrorCode, HostIdentity, Region};
use knit_fuzz::{pattern, AlignedMem};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    max_message_len: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open {
        by_worker: bool,
        opener_writes: bool,
        tag: u64,
    },
    Send {
        ch: u8,
        ct: u32,
        len: u16,
    },
    Continue {
        ch: u8,
    },
    Loan {
        ch: u8,
        capacity: u16,
        commit: u16,
    },
    Close {
        ch: u8,
    },
    Recv {
        ch: u8,
        n: u8,
    },
    PublishHead {
        ch: u8,
    },
    Abort {
        ch: u8,
        reader: bool,
        code: u32,
    },
    PeerDied {
        ch: u8,
        reader: bool,
    },
    Drop {
        ch: u8,
        reader: bool,
    },
    Forged {
        ch: u8,
        epoch_delta: u32,
        tag_delta: u64,
        worker: bool,
    },
    DeadWorker,
    SlotWord {
        slot: u8,
        field: u8,
        value: u64,
    },
    RingTail {
        slot: u8,
        value: u64,
    },
    RingBytes {
        slot: u8,
        off: u16,
        bytes: Vec<u8>,
    },
}

/// Sizes a payload may take: spread over one record and several fragments.
const SIZES: [usize; 6] = [0, 1, 100, 2000, 2100, 9000];

struct Chan<'a, 'p> {
    opened: OpenedChannel,
    writer: Option<ChannelWriter<'a>>,
    reader: Option<ChannelReader<'a>>,
    /// Completely written messages not yet received: (content type, bytes).
    sent: VecDeque<(u32, Vec<u8>)>,
    pending: Option<(OutgoingData<'p>, u32, usize)>,
    /// END was published.
    closed: bool,
    /// The reader received END.
    ended: bool,
    /// The abort code stored by one end, once.
    aborted: Option<u32>,
}

struct Run<'a, 'p> {
    region: Region<'a>,
    chans: Vec<Chan<'a, 'p>>,
    payloads: &'p [Vec<u8>],
    tampered: bool,
}

fn pick<T>(v: &mut [T], ch: u8) -> Option<&mut T> {
    if v.is_empty() {
        return None;
    }
    let n = v.len();
    v.get_mut(usize::from(ch) % n)
}

impl Run<'_, '_> {
    /// An error from an end: typed always; while nothing hostile happened, never a violation,
    /// and `CHANNEL_ABORTED` only with the code an end stored.
    fn end_error(&self, e: &Error, aborted: Option<u32>) {
        if self.tampered {
            return;
        }
        assert!(!e.code.is_violation(), "violation on a clean channel: {e}");
        if e.code == ErrorCode::ChannelAborted {
            assert_eq!(Some(e.found as u32), aborted, "CHAN-5 abort code: {e}");
        }
    }

    fn open(&mut self, by_worker: bool, opener_writes: bool, tag: u64) {
        let (me, peer) = if by_worker { (1, 0) } else { (0, 1) };
        let role = if opener_writes {
            EndRole::Writer
        } else {
            EndRole::Reader
        };
        let opened = match channel::open(&self.region, me, peer, role, tag) {
            Ok(Some(o)) => o,
            Ok(None) => return,
            Err(e) => {
                assert!(self.tampered, "open: {e}");
                return;
            }
        };
        let ann = opened.announcement();
        let mine = channel::attach(&self.region, ann, me, peer);
        let theirs = channel::attach(&self.region, ann, peer, me);
        let mut chan = Chan {
            opened,
            writer: None,
            reader: None,
            sent: VecDeque::new(),
            pending: None,
            closed: false,
            ended: false,
            aborted: None,
        };
        for end in [mine, theirs] {
            match end {
                Ok(ChannelEnd::Writer(w)) => {
                    assert!(chan.writer.is_none(), "two writers");
                    chan.writer = Some(w);
                }
                Ok(ChannelEnd::Reader(r)) => {
                    assert!(chan.reader.is_none(), "two readers");
                    chan.reader = Some(r);
                }
                Err(e) => assert!(self.tampered, "attach: {e}"),
            }
        }
        // Slots that ended up with neither end are forgotten; a clean open yields both.
        assert!(self.tampered || (chan.writer.is_some() && chan.reader.is_some()));
        self.chans.push(chan);
    }

    fn send(&mut self, ch: u8, ct: u32, len: u16) {
        let payloads = self.payloads;
        let tampered = self.tampered;
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let Some(w) = c.writer.as_mut() else { return };
        if c.pending.is_some() {
            return;
        }
        let index = usize::from(len) % payloads.len();
        match w.start(ct, &payloads[index]) {
            Ok(out) => c.pending = Some((out, ct, index)),
            Err(e) => {
                let aborted = c.aborted;
                if !tampered {
                    assert!(!e.code.is_violation(), "start: {e}");
                    if e.code == ErrorCode::ChannelAborted {
                        assert_eq!(Some(e.found as u32), aborted);
                    }
                }
            }
        }
    }

    fn write_pending(&mut self, ch: u8) {
        let payloads = self.payloads;
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let (Some(w), Some((out, ct, index))) = (c.writer.as_mut(), c.pending.as_mut()) else {
            return;
        };
        let (ct, index) = (*ct, *index);
        let result = w.write(out);
        let aborted = c.aborted;
        match result {
            Ok(sent) => {
                if sent.done {
                    c.pending = None;
                    c.sent.push_back((ct, payloads[index].clone()));
                }
            }
            Err(e) => {
                c.pending = None;
                self.end_error(&e, aborted);
            }
        }
    }

    fn loan(&mut self, ch: u8, capacity: u16, commit: u16) {
        let tampered = self.tampered;
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let Some(w) = c.writer.as_mut() else { return };
        if c.pending.is_some() {
            return;
        }
        let capacity = usize::from(capacity) % 2100;
        let n = usize::from(commit) % (capacity + 1);
        let bytes = pattern(u64::from(commit), n);
        let aborted = c.aborted;
        let committed = match w.loan(7, capacity) {
            Ok(Some(mut loan)) => {
                loan.payload()[..n].copy_from_slice(&bytes);
                loan.commit(n).is_ok()
            }
            Ok(None) => false,
            Err(e) => {
                if !tampered {
                    assert!(!e.code.is_violation(), "loan: {e}");
                    if e.code == ErrorCode::ChannelAborted {
                        assert_eq!(Some(e.found as u32), aborted);
                    }
                }
                false
            }
        };
        if committed {
            w.publish();
            c.sent.push_back((7, bytes));
        }
    }

    fn close(&mut self, ch: u8) {
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let Some(w) = c.writer.as_mut() else { return };
        let result = w.close();
        let aborted = c.aborted;
        match result {
            Ok(sent) => c.closed |= sent.done,
            Err(e) => self.end_error(&e, aborted),
        }
    }

    fn recv(&mut self, ch: u8, n: u8) {
        let tampered = self.tampered;
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let Some(r) = c.reader.as_mut() else { return };
        for _ in 0..=(n % 8) {
            match r.recv() {
                Ok(got) => match got.event {
                    Some(ChannelEvent::Message(m)) => {
                        if !tampered {
                            // CHAN-3: in order, once, byte for byte.
                            let (ct, bytes) = c.sent.pop_front().expect("a message never sent");
                            assert_eq!(m.content_type(), ct);
                            assert_eq!(m.bytes(), &bytes[..]);
                        }
                    }
                    Some(ChannelEvent::End) => {
                        if !tampered {
                            // CHAN-4: END after every message.
                            assert!(c.closed, "END that was never written");
                            assert!(c.sent.is_empty(), "END before {} messages", c.sent.len());
                        }
                        c.ended = true;
                        break;
                    }
                    None => break,
                },
                Err(e) => {
                    if !tampered {
                        assert!(!e.code.is_violation(), "recv: {e}");
                        if e.code == ErrorCode::ChannelAborted {
                            assert_eq!(Some(e.found as u32), c.aborted);
                        }
                    }
                    break;
                }
            }
        }
    }

    fn abort(&mut self, ch: u8, reader: bool, code: u32) {
        let tampered = self.tampered;
        let Some(c) = pick(&mut self.chans, ch) else {
            return;
        };
        let result = if reader {
            c.reader.as_mut().map(|r| r.abort(code))
        } else {
            c.writer.as_mut().map(|w| w.abort(code))
        };
        match result {
            Some(Ok(true)) => {
                assert!(tampered || c.aborted.is_none(), "aborted twice");
                c.aborted = Some(code);
            }
            Some(Ok(false)) | None => {}
            Some(Err(e)) => {
                if !tampered {
                    assert!(
                        (code == 0 && e.code == ErrorCode::InvalidArgument)
                            || !e.code.is_violation(),
                        "abort: {e}"
                    );
                }
            }
        }
    }

    fn forged(&self, ch: u8, epoch_delta: u32, tag_delta: u64, worker: bool) {
        let Some(c) = self.chans.get(usize::from(ch) % self.chans.len().max(1)) else {
            return;
        };
        let ann = ChannelOpen {
            channel: c.opened.index,
            epoch: c.opened.epoch.wrapping_add(epoch_delta | 1),
            tag: c.opened.tag.wrapping_add(tag_delta),
        };
        if self.chans.iter().any(|o| o.opened.announcement() == ann) {
            // It names a later opening of the slot after all: not forged.
            return;
        }
        let (me, peer) = if worker { (1, 0) } else { (0, 1) };
        match channel::attach(&self.region, ann, me, peer) {
            Ok(_) => assert!(self.tampered, "a stale announcement attached (CHAN-2)"),
            Err(e) => assert!(
                self.tampered
                    || matches!(e.code, ErrorCode::BadChannel | ErrorCode::ChannelAborted),
                "forged attach: {e}"
            ),
        }
    }

    fn hostile(&mut self, op: Op) {
        let slots = self.region.geometry().channel_slots();
        let slot_of = |s: u8| u32::from(s) % slots;
        match op {
            Op::SlotWord { slot, field, value } => {
                let s = self.region.channel_slot(slot_of(slot)).expect("slot");
                let (off, size) = [
                    (CH_STATE, 4),
                    (CH_EPOCH, 4),
                    (CH_WRITER, 4),
                    (CH_READER, 4),
                    (CH_TAG, 8),
                    (CH_ABORT_CODE, 4),
                    (CH_RELEASED, 4),
                ][usize::from(field) % 7];
                let bytes = value.to_le_bytes();
                s.ctrl
                    .write(off, &bytes[..size])
                    .expect("in the control block");
            }
            Op::RingTail { slot, value } => {
                let s = self.region.channel_slot(slot_of(slot)).expect("slot");
                s.ring
                    .ctrl
                    .write_u64(TAIL_OFFSET, value)
                    .expect("tail word");
            }
            Op::RingBytes { slot, off, bytes } => {
                let s = self.region.channel_slot(slot_of(slot)).expect("slot");
                let cap = s.ring.data.len();
                let off = usize::from(off) % cap;
                let n = bytes.len().min(cap - off).min(64);
                s.ring
                    .data
                    .write(off, &bytes[..n])
                    .expect("in the data area");
            }
            _ => return,
        }
        self.tampered = true;
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Open {
                by_worker,
                opener_writes,
                tag,
            } => self.open(by_worker, opener_writes, tag),
            Op::Send { ch, ct, len } => {
                self.send(ch, ct, len);
                self.write_pending(ch);
            }
            Op::Continue { ch } => self.write_pending(ch),
            Op::Loan {
                ch,
                capacity,
                commit,
            } => self.loan(ch, capacity, commit),
            Op::Close { ch } => self.close(ch),
            Op::Recv { ch, n } => self.recv(ch, n),
            Op::PublishHead { ch } => {
                if let Some(r) = pick(&mut self.chans, ch).and_then(|c| c.reader.as_mut()) {
                    r.publish_head();
                }
            }
            Op::Abort { ch, reader, code } => self.abort(ch, reader, code),
            Op::PeerDied { ch, reader } => {
                let Some(c) = pick(&mut self.chans, ch) else {
                    return;
                };
                let result = if reader {
                    c.reader.as_mut().map(ChannelReader::peer_died)
                } else {
                    c.writer.as_mut().map(ChannelWriter::peer_died)
                };
                if let Some(Err(e)) = result {
                    let aborted = c.aborted;
                    self.end_error(&e, aborted);
                }
                // The model of a live peer no longer holds.
                self.tampered = true;
            }
            Op::Drop { ch, reader } => {
                let Some(c) = pick(&mut self.chans, ch) else {
                    return;
                };
                if reader {
                    let live = c.reader.as_ref().is_some_and(ChannelReader::is_live);
                    c.reader = None;
                    if live && c.aborted.is_none() {
                        // Dropping a live reader aborts with CANCELLED.
                        c.aborted = Some(ErrorCode::Cancelled as u32);
                    }
                } else {
                    let live = c.writer.as_ref().is_some_and(ChannelWriter::is_live);
                    c.pending = None;
                    c.writer = None;
                    if live && c.aborted.is_none() {
                        c.aborted = Some(ErrorCode::Cancelled as u32);
                    }
                }
            }
            Op::Forged {
                ch,
                epoch_delta,
                tag_delta,
                worker,
            } => self.forged(ch, epoch_delta, tag_delta, worker),
            Op::DeadWorker => {
                // The ends in this process stay: to them, the release is a peer's doing.
                let _ = channel::release_for_dead(&self.region, 1, |_| false);
                self.tampered = true;
            }
            hostile => self.hostile(hostile),
        }
    }
}

fuzz_target!(|input: Input| {
    let params = Params {
        worker_slots: 2,
        channel_slots: 2,
        inflight_max: 1,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 4096,
        max_message_len: u64::from(input.max_message_len).max(1),
    };
    let len = knit_core::Geometry::compute(&params)
        .expect("valid params")
        .region_len();
    let mem = AlignedMem::new(len);
    let host = HostIdentity {
        pid: 1,
        start_time: 1,
        impl_name: "fuzz",
    };
    let region = Region::format(mem.mem(), &params, &host, [2; 16], 0).expect("format");
    let payloads: Vec<Vec<u8>> = SIZES
        .iter()
        .enumerate()
        .map(|(k, &n)| pattern(k as u64, n))
        .collect();
    let mut run = Run {
        region,
        chans: Vec::new(),
        payloads: &payloads,
        tampered: false,
    };
    for op in input.ops.into_iter().take(128) {
        run.step(op);
    }
    let tampered = run.tampered;
    // Dropping every end releases it (aborting the live ones): CHAN-9 frees every slot.
    run.chans.clear();
    if !tampered {
        for j in 0..params.channel_slots {
            let s = region.channel_slot(j).expect("slot");
            assert_eq!(
                s.ctrl.read_u32(CH_STATE).expect("state"),
                0,
                "slot {j} not FREE"
            );
        }
    }
});
