//! The same operation sequence through the real ring and through a model written from the
//! spec, results compared after every step.
//!
//! - `Records`: reserve / commit / short commit / abandon / publish / peek / consume /
//!   publish head / free space on a [`Producer`] and [`Consumer`], against a model of
//!   positions (RING-1 to RING-4, RING-6, RING-7) that also predicts the bytes in the data
//!   area: the PAD before a wrapped record (RING-2, RING-10), each header, each body and its
//!   zero padding (spec §3.2).
//! - `Messages`: whole messages (fragmented as needed, MSG-1, MSG-2, MSG-5), one-record loans
//!   and control records written with the message layer and read back with a [`Reassembler`]
//!   that is told to deliver or drop each message: what it delivers is exactly the model's
//!   queue, in order, byte for byte, and polling until idle leaves nothing published behind.
#![no_main]

use std::collections::VecDeque;

use arbitrary::Arbitrary;
use knit_core::message::{
    self, Accept, Incoming, MessageHead, OutgoingMessage, Payload, Reassembler,
};
use knit_core::records::{
    ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead, RingKind, TYPE_CHANNEL_OPEN,
    TYPE_END, TYPE_SHUTDOWN,
};
use knit_core::ring::{flags, Consumer, Producer, RecordHeader, TYPE_PAD};
use knit_fuzz::{pattern, record_size, small_cap, TestRing};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input {
    Records { cap: u8, ops: Vec<ROp> },
    Messages { cap: u8, kind: u8, ops: Vec<MOp> },
}

#[derive(Arbitrary, Debug)]
enum ROp {
    Write {
        len: Len,
        commit: Commit,
        rtype: u16,
        flags: u8,
    },
    Publish,
    Read(u8),
    PublishHead,
    FreeSpace,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Small(u8),
    Fraction(u16),
    Max,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Commit {
    Whole,
    Short(u16),
    Abandon,
}

impl Len {
    fn resolve(self, max: usize) -> usize {
        match self {
            Len::Small(n) => usize::from(n).min(max),
            Len::Fraction(f) => max * usize::from(f) / usize::from(u16::MAX),
            Len::Max => max,
        }
    }
}

/// A committed record as the model knows it.
#[derive(Clone, Debug)]
struct Rec {
    header: RecordHeader,
    body: Vec<u8>,
    /// One past the record (and past the PAD before it).
    end: u64,
}

struct RingModel {
    cap: u64,
    tail: u64,
    published_tail: u64,
    head: u64,
    published_head: u64,
    records: VecDeque<Rec>,
    seq: u64,
}

impl RingModel {
    fn check_bytes(ring: &TestRing, pos: u64, header: RecordHeader, body: &[u8]) {
        let off = (pos % ring.cap() as u64) as usize;
        let size = record_size(body.len()) as usize;
        let raw = ring.data_bytes(off, size);
        assert_eq!(raw[..8], header.to_bytes(), "record header bytes");
        assert_eq!(&raw[8..8 + body.len()], body, "record body bytes");
        assert!(
            raw[8 + body.len()..].iter().all(|&b| b == 0),
            "padding after the body is zero (spec §3.2)"
        );
    }

    fn write(&mut self, ring: &TestRing, p: &mut Producer<'_>, op: (Len, Commit, u16, u8)) {
        let (len, commit, rtype, fl) = op;
        let reserved = len.resolve(p.ring().max_body_len());
        let size = record_size(reserved);
        let off = self.tail % self.cap;
        // RING-2: a PAD covers the bytes to the end when the record does not fit before it.
        let pad = if size > self.cap - off {
            self.cap - off
        } else {
            0
        };
        // RING-4: room exactly when tail_new − head ≤ cap, head being the released one.
        let fits = self.tail + pad + size - self.published_head <= self.cap;
        let rtype = if rtype == 0 || rtype == TYPE_PAD {
            rtype + 2
        } else {
            rtype
        };
        let fl = u16::from(fl & 3) | if fl & 0x80 != 0 { flags::SKIPPABLE } else { 0 };
        let res = p.reserve(reserved).expect("reserve on a healthy ring");
        assert_eq!(res.is_some(), fits, "room for {reserved} bytes (RING-4)");
        let Some(mut res) = res else { return };
        assert_eq!(res.body_len(), reserved);
        let committed = match commit {
            Commit::Whole => reserved,
            Commit::Short(s) => usize::from(s) % (reserved + 1),
            Commit::Abandon => {
                res.body().fill(0xEE);
                assert_eq!(
                    p.tail(),
                    self.tail,
                    "an abandoned reservation moves nothing"
                );
                return;
            }
        };
        let body = pattern(self.seq, committed);
        // Garbage past the committed length must not survive as padding.
        res.body().fill(0xCC);
        res.body()[..committed].copy_from_slice(&body);
        if committed == reserved {
            res.commit(rtype, fl);
        } else {
            res.commit_len(rtype, fl, committed);
        }
        assert_eq!(p.failure(), None);
        let header = RecordHeader {
            len: committed as u32,
            rtype,
            flags: fl,
        };
        if pad > 0 {
            let pad_header = RecordHeader {
                len: (pad - 8) as u32,
                rtype: TYPE_PAD,
                flags: 0,
            };
            assert_eq!(
                ring.data_bytes(off as usize, 8),
                pad_header.to_bytes(),
                "PAD"
            );
        }
        Self::check_bytes(ring, self.tail + pad, header, &body);
        self.tail += pad + record_size(committed);
        assert_eq!(p.tail(), self.tail);
        self.seq += 1;
        self.records.push_back(Rec {
            header,
            body,
            end: self.tail,
        });
    }

    fn step(&mut self, ring: &TestRing, p: &mut Producer<'_>, c: &mut Consumer<'_>, op: &ROp) {
        match *op {
            ROp::Write {
                len,
                commit,
                rtype,
                flags,
            } => self.write(ring, p, (len, commit, rtype, flags)),
            ROp::Publish => {
                assert_eq!(p.publish(), self.tail != self.published_tail);
                self.published_tail = self.tail;
            }
            ROp::Read(n) => {
                for _ in 0..=(n % 8) {
                    let want = self
                        .records
                        .front()
                        .filter(|r| r.end <= self.published_tail)
                        .cloned();
                    let got = c.peek().expect("peek on a healthy ring");
                    match (got, want) {
                        (None, None) => break,
                        (Some(rec), Some(want)) => {
                            assert_eq!(rec.header(), want.header);
                            assert_eq!(rec.body(), &want.body[..]);
                            rec.consume();
                            self.records.pop_front();
                            self.head = want.end;
                        }
                        (got, want) => panic!(
                            "peek gave {:?}, the model {:?}",
                            got.map(|r| r.header()),
                            want.map(|r| r.header)
                        ),
                    }
                    assert_eq!(c.head(), self.head);
                }
            }
            ROp::PublishHead => {
                assert_eq!(c.publish_head(), self.head != self.published_head);
                self.published_head = self.head;
            }
            ROp::FreeSpace => {
                let free = p.free_space().expect("free space on a healthy ring") as u64;
                assert_eq!(free, self.cap - (self.tail - self.published_head));
            }
        }
        assert_eq!(ring.raw_tail(), self.published_tail, "tail word (RING-3)");
        assert_eq!(ring.raw_head(), self.published_head, "head word (RING-6)");
    }
}

fn records(cap: u8, ops: Vec<ROp>) {
    let ring = TestRing::new(small_cap(cap));
    let mut p = Producer::new(ring.ring());
    let mut c = Consumer::new(ring.ring());
    let mut m = RingModel {
        cap: ring.cap() as u64,
        tail: 0,
        published_tail: 0,
        head: 0,
        published_head: 0,
        records: VecDeque::new(),
        seq: 0,
    };
    for op in ops.into_iter().take(512) {
        m.step(&ring, &mut p, &mut c, &op);
    }
}

// ---- messages ---------------------------------------------------------------------------

#[derive(Arbitrary, Debug)]
enum MOp {
    Send {
        ty: u8,
        len: u16,
        drop: bool,
    },
    Continue,
    Control {
        ty: u8,
        channel: u32,
        tag: u64,
    },
    Loan {
        ty: u8,
        capacity: u16,
        commit: u16,
        drop: bool,
    },
    Publish,
    Poll,
}

/// What the reader must see, in order.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Message {
        head: MessageHead,
        payload: Vec<u8>,
        drop: bool,
    },
    Shutdown,
    End,
    Open(ChannelOpen),
}

struct Queued {
    what: Expect,
    /// Producer position one past its last record, once completely written.
    end: Option<u64>,
    /// The reader has seen its first record (asked whether to deliver it).
    started: bool,
}

impl Queued {
    fn new(what: Expect, end: Option<u64>) -> Self {
        Queued {
            what,
            end,
            started: false,
        }
    }

    /// A message the reader was told to drop and has started reading.
    fn dropped(&self) -> bool {
        self.started && matches!(self.what, Expect::Message { drop: true, .. })
    }
}

/// Message heads a ring of `kind` carries (spec/09 §9.3).
fn head_for(kind: RingKind, ty: u8, id: u64, len: u64) -> MessageHead {
    match (kind, ty % 2) {
        (RingKind::Request, _) => MessageHead::Request(RequestHead {
            request_id: id,
            function_id: ty.into(),
            content_type: 0,
            deadline_ns: id ^ 0x55,
            payload_len: len,
        }),
        (RingKind::Response, 0) => MessageHead::Response(ResponseHead {
            request_id: id,
            status: ty.into(),
            content_type: 1,
            payload_len: len,
        }),
        (RingKind::Response, _) => MessageHead::Hello(HelloHead { payload_len: len }),
        (RingKind::Channel, _) => MessageHead::Data(DataHead {
            content_type: ty.into(),
            payload_len: len,
        }),
    }
}

fn controls(kind: RingKind) -> &'static [u16] {
    match kind {
        RingKind::Request => &[TYPE_SHUTDOWN, TYPE_CHANNEL_OPEN],
        RingKind::Response => &[TYPE_CHANNEL_OPEN],
        RingKind::Channel => &[TYPE_END],
    }
}

fn same(got: &Incoming<'_, '_>, want: &Expect) -> bool {
    match (got, want) {
        (Incoming::Message(m), Expect::Message { head, payload, .. }) => {
            let bytes = match &m.payload {
                Payload::InPlace(p) => p.bytes(),
                Payload::Owned(v) => v,
                Payload::Unavailable { .. } => return false,
            };
            m.head == *head && bytes == &payload[..]
        }
        (Incoming::Shutdown, Expect::Shutdown) | (Incoming::End, Expect::End) => true,
        (Incoming::ChannelOpen(a), Expect::Open(b)) => a == b,
        _ => false,
    }
}

struct MessageRun<'a> {
    kind: RingKind,
    producer: Producer<'a>,
    consumer: Consumer<'a>,
    reassembler: Reassembler,
    queue: VecDeque<Queued>,
    published: u64,
    next_id: u64,
    seq: u64,
}

impl MessageRun<'_> {
    fn idle(&self, pending: bool) -> bool {
        !pending && self.queue.back().is_none_or(|q| q.end.is_some())
    }

    fn poll_until_idle(&mut self) {
        for _ in 0..1000 {
            let queue = &mut self.queue;
            let polled = self
                .reassembler
                .poll(&mut self.consumer, |head| {
                    // The first record of the next message: it must be the model's next one.
                    let next = queue.iter_mut().find(|q| !q.started);
                    match next {
                        Some(Queued {
                            what:
                                Expect::Message {
                                    head: want, drop, ..
                                },
                            started,
                            ..
                        }) => {
                            assert_eq!(head, want, "message head");
                            *started = true;
                            Ok(if *drop { Accept::Drop } else { Accept::Deliver })
                        }
                        other => panic!(
                            "reader started {head:?}, the model {:?}",
                            other.map(|q| &q.what)
                        ),
                    }
                })
                .expect("poll on a healthy ring");
            let released = polled.released;
            let Some(incoming) = polled.incoming else {
                if !released {
                    break;
                }
                continue;
            };
            // Dropped messages before this one are gone without a trace.
            while queue.front().is_some_and(Queued::dropped) {
                queue.pop_front();
            }
            let want = queue.pop_front().expect("delivered more than was written");
            assert!(
                same(&incoming, &want.what),
                "got {incoming:?}, want {:?}",
                want.what
            );
            if let Incoming::Message(m) = incoming {
                m.payload.release();
            }
        }
        self.consumer.publish_head();
        // Everything published was read: delivered or dropped.
        while self
            .queue
            .front()
            .is_some_and(|q| q.dropped() && q.end.is_some_and(|end| end <= self.published))
        {
            self.queue.pop_front();
        }
        if let Some(Queued {
            end: Some(end),
            what,
            ..
        }) = self.queue.front()
        {
            assert!(*end > self.published, "published {what:?} never delivered");
        }
    }
}

// One match over every operation, kept together so that the model reads as one piece.
#[allow(clippy::too_many_lines)]
fn messages(cap: u8, kind: u8, ops: Vec<MOp>) {
    // At least 256 bytes: the largest head (40) must fit a record (cap / 2 − 8).
    let ring = TestRing::new(small_cap(cap).max(256));
    let kind = [RingKind::Request, RingKind::Response, RingKind::Channel][usize::from(kind % 3)];
    let ops: Vec<MOp> = ops.into_iter().take(256).collect();
    let payloads: Vec<Vec<u8>> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| match op {
            MOp::Send { len, .. } => pattern(i as u64, usize::from(*len % 9000)),
            _ => Vec::new(),
        })
        .collect();
    let mut run = MessageRun {
        kind,
        producer: Producer::new(ring.ring()),
        consumer: Consumer::new(ring.ring()),
        reassembler: Reassembler::new(kind, u64::MAX),
        queue: VecDeque::new(),
        published: 0,
        next_id: 1,
        seq: 0,
    };
    let mut pending: Option<OutgoingMessage<'_>> = None;
    for (i, op) in ops.iter().enumerate() {
        match *op {
            MOp::Send { ty, drop, .. } => {
                if !run.idle(pending.is_some()) {
                    continue;
                }
                let payload = &payloads[i];
                let head = head_for(run.kind, ty, run.next_id, payload.len() as u64);
                run.next_id += 1;
                let what = Expect::Message {
                    head,
                    payload: payload.clone(),
                    drop,
                };
                run.queue.push_back(Queued::new(what, None));
                pending = Some(OutgoingMessage::new(head, payload));
            }
            MOp::Continue => {}
            MOp::Control { ty, channel, tag } => {
                if !run.idle(pending.is_some()) {
                    continue;
                }
                let all = controls(run.kind);
                let rtype = all[usize::from(ty) % all.len()];
                let (what, body) = match rtype {
                    TYPE_SHUTDOWN => (Expect::Shutdown, Vec::new()),
                    TYPE_END => (Expect::End, Vec::new()),
                    _ => {
                        let open = ChannelOpen {
                            channel,
                            epoch: ty.into(),
                            tag,
                        };
                        (Expect::Open(open), open.encode().to_vec())
                    }
                };
                if message::write_control(&mut run.producer, rtype, &body).expect("control") {
                    run.queue
                        .push_back(Queued::new(what, Some(run.producer.tail())));
                }
            }
            MOp::Loan {
                ty,
                capacity,
                commit,
                drop,
            } => {
                if !run.idle(pending.is_some()) {
                    continue;
                }
                let head = head_for(run.kind, ty, run.next_id, 0);
                let capacity = usize::from(capacity) % 300;
                if !message::fits_one_record(&run.producer, head.len(), capacity) {
                    continue;
                }
                let n = usize::from(commit) % (capacity + 1);
                let bytes = pattern(run.seq, n);
                run.seq += 1;
                let Some(mut loan) = message::loan(&mut run.producer, head, capacity)
                    .expect("loan that fits one record")
                else {
                    continue;
                };
                loan.payload()[..n].copy_from_slice(&bytes);
                loan.payload()[n..].fill(0xCC);
                loan.commit(n).expect("commit within capacity");
                run.next_id += 1;
                let what = Expect::Message {
                    head: head.with_payload_len(n as u64),
                    payload: bytes,
                    drop,
                };
                run.queue
                    .push_back(Queued::new(what, Some(run.producer.tail())));
            }
            MOp::Publish => {
                run.producer.publish();
                run.published = run.producer.tail();
            }
            MOp::Poll => run.poll_until_idle(),
        }
        if let Some(out) = pending.as_mut() {
            if out
                .write_to(&mut run.producer)
                .expect("write on a healthy ring")
            {
                pending = None;
                if let Some(q) = run.queue.back_mut() {
                    q.end = Some(run.producer.tail());
                }
            }
        }
        assert_eq!(run.reassembler.failure(), None);
    }
}

fuzz_target!(|input: Input| match input {
    Input::Records { cap, ops } => records(cap, ops),
    Input::Messages { cap, kind, ops } => messages(cap, kind, ops),
});
