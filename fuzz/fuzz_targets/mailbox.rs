//! A real mailbox end facing a hostile peer that writes arbitrary records (well framed, with
//! any type, flags and body) and whole messages into the ring the end consumes, writes the
//! cancel table, and drains the ring the end produces.
//!
//! - `Host`: a [`HostMailbox`] sends requests, cancels and abandons them, and polls the response
//!   ring (CALL-1, CALL-2, CALL-4, CALL-7, MBX-2, MBX-5, FN-1, MSG-1 to MSG-7).
//! - `Worker`: a [`WorkerMailbox`] sends its HELLO and responses and polls the request ring
//!   (CALL-1, CANCEL-2, MBX-3, MSG-1 to MSG-7).
//!
//! Checked: polls fail only with violation codes and then keep failing the same way
//! (RING-13); the host's outstanding set is exactly what a model of CALL-2/CALL-4 predicts
//! from the events it delivered; a response is delivered only for an outstanding id; at most
//! one HELLO is delivered (MBX-5); request ids a worker delivers strictly grow (CALL-1);
//! nothing is delivered after SHUTDOWN (MBX-3); `is_cancelled` is exactly "the entry holds the
//! id" (CANCEL-2).
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use knit_core::fntable::FunctionTable;
use knit_core::geometry::Params;
use knit_core::mailbox::{HostEvent, HostMailbox, WorkerEvent, WorkerMailbox};
use knit_core::message::{MessageHead, OutgoingMessage};
use knit_core::records::{
    DataHead, HelloHead, RequestHead, ResponseHead, TYPE_CHANNEL_OPEN, TYPE_CONT, TYPE_DATA,
    TYPE_END, TYPE_HELLO, TYPE_REQUEST, TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use knit_core::ring::{flags, Consumer, Producer, TYPE_PAD};
use knit_core::{Error, ErrorCode, HostIdentity, Region};
use knit_fuzz::{pattern, AlignedMem};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    inflight_shift: u8,
    max_message_len: u16,
    /// Start with the HELLO exchange done (the peer's on the host side, the end's own on
    /// the worker side), so that requests and responses can flow from the first operation.
    hello_first: bool,
    side: Side,
}

#[derive(Arbitrary, Debug)]
enum Side {
    Host(Vec<HostOp>),
    Worker(Vec<WorkerOp>),
}

#[derive(Arbitrary, Debug)]
enum HostOp {
    Peer(PeerOp),
    Start {
        function: u8,
        len: u16,
    },
    Write,
    Withdraw,
    Loan {
        function: u8,
        capacity: u16,
        commit: u16,
    },
    Cancel(u8),
    Abandon(u8),
    Poll,
    PublishHead,
    Shutdown,
}

#[derive(Arbitrary, Debug)]
enum WorkerOp {
    Peer(PeerOp),
    Hello(Vec<String>),
    Respond {
        which: u8,
        status: u32,
        len: u16,
    },
    ErrorRespond {
        which: u8,
        status: u32,
        message: String,
    },
    LoanRespond {
        which: u8,
        capacity: u16,
        commit: u16,
    },
    Write,
    Poll,
    PublishHead,
    IsCancelled(u8),
    CancelEntry {
        entry: u8,
        id: IdChoice,
    },
}

/// What the hostile peer does.
#[derive(Arbitrary, Debug)]
enum PeerOp {
    /// One record with any type, flags and body (framing is the ring's, tested elsewhere).
    Record {
        rtype: TypeChoice,
        flags: u16,
        body: Body,
    },
    /// A whole, well-formed message, fragmented as the ring needs (MSG-5): of the type the
    /// real end expects (REQUEST for a worker, RESPONSE for a host) unless `other` is given.
    Message {
        other: Option<TypeChoice>,
        id: IdChoice,
        a: u32,
        len: u16,
        table: Vec<(u32, String)>,
    },
    Publish,
    /// Consume and release everything the real end published.
    Drain,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum TypeChoice {
    Known(u8),
    Raw(u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum IdChoice {
    /// The k-th id the real end knows (outstanding on the host, delivered on the worker).
    Known(u8),
    /// One past the last known id.
    Next,
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Head {
        id: IdChoice,
        a: u32,
        b: u32,
        payload_len: LenChoice,
        payload: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum LenChoice {
    Exact,
    More(u16),
    Raw(u64),
}

const TYPES: [u16; 10] = [
    TYPE_CONT,
    TYPE_REQUEST,
    TYPE_RESPONSE,
    TYPE_HELLO,
    TYPE_SHUTDOWN,
    TYPE_CHANNEL_OPEN,
    TYPE_DATA,
    TYPE_END,
    0x0777,
    TYPE_PAD,
];

impl TypeChoice {
    fn get(self) -> u16 {
        match self {
            TypeChoice::Known(k) => TYPES[usize::from(k) % TYPES.len()],
            TypeChoice::Raw(t) => t,
        }
    }
}

impl IdChoice {
    fn get(self, known: &[u64]) -> u64 {
        match self {
            IdChoice::Known(k) if !known.is_empty() => known[usize::from(k) % known.len()],
            IdChoice::Known(_) => 1,
            IdChoice::Next => known.iter().max().map_or(1, |m| m.saturating_add(1)),
            IdChoice::Raw(v) => v,
        }
    }
}

/// A record body built from a head chosen by type, or raw bytes.
fn body_bytes(rtype: u16, body: &Body, known: &[u64], max: usize) -> Vec<u8> {
    let mut out = match body {
        Body::Raw(b) => b.clone(),
        Body::Head {
            id,
            a,
            b,
            payload_len,
            payload,
        } => {
            let id = id.get(known);
            let plen = match *payload_len {
                LenChoice::Exact => payload.len() as u64,
                LenChoice::More(k) => payload.len() as u64 + u64::from(k),
                LenChoice::Raw(v) => v,
            };
            let mut v = match rtype {
                TYPE_REQUEST => RequestHead {
                    request_id: id,
                    function_id: *a,
                    content_type: *b,
                    deadline_ns: 0,
                    payload_len: plen,
                }
                .encode()
                .to_vec(),
                TYPE_RESPONSE => ResponseHead {
                    request_id: id,
                    status: *a,
                    content_type: *b,
                    payload_len: plen,
                }
                .encode()
                .to_vec(),
                TYPE_HELLO => HelloHead { payload_len: plen }.encode().to_vec(),
                TYPE_DATA => DataHead {
                    content_type: *a,
                    payload_len: plen,
                }
                .encode()
                .to_vec(),
                TYPE_CHANNEL_OPEN => {
                    let mut v = a.to_le_bytes().to_vec();
                    v.extend_from_slice(&b.to_le_bytes());
                    v.extend_from_slice(&id.to_le_bytes());
                    v
                }
                _ => Vec::new(),
            };
            v.extend_from_slice(payload);
            v
        }
    };
    out.truncate(max);
    out
}

/// The hostile peer: a producer into the ring the real end consumes, a consumer of the other.
struct Peer<'a> {
    producer: Producer<'a>,
    consumer: Consumer<'a>,
    /// The message type the real end expects.
    native: u16,
    seq: u64,
}

impl Peer<'_> {
    fn step(&mut self, op: &PeerOp, known: &[u64]) {
        let max = self.producer.ring().max_body_len();
        match op {
            PeerOp::Record { rtype, flags, body } => {
                let rtype = rtype.get();
                let body = body_bytes(rtype, body, known, max);
                // Type 0 and PAD are refused by the producer API; write them as CONT instead.
                let rtype = if rtype == 0 || rtype == TYPE_PAD {
                    TYPE_CONT
                } else {
                    rtype
                };
                let _ = self
                    .producer
                    .try_write(rtype, *flags & flags::DEFINED, &body);
            }
            PeerOp::Message {
                other,
                id,
                a,
                len,
                table,
            } => {
                let (a, len) = (*a, *len);
                let id = id.get(known);
                let rtype = other.map_or(self.native, TypeChoice::get);
                let (head, payload) = match rtype {
                    TYPE_REQUEST => (
                        MessageHead::Request(RequestHead {
                            request_id: id,
                            function_id: a,
                            content_type: 0,
                            deadline_ns: 0,
                            payload_len: 0,
                        }),
                        pattern(self.seq, usize::from(len % 12_000)),
                    ),
                    TYPE_HELLO => {
                        let pairs = table.iter().map(|(i, n)| (*i, n.as_str()));
                        let bytes = FunctionTable::new(pairs).map_or_else(
                            |_| pattern(self.seq, usize::from(len % 64)),
                            |t| t.encode(),
                        );
                        (MessageHead::Hello(HelloHead { payload_len: 0 }), bytes)
                    }
                    TYPE_DATA => (
                        MessageHead::Data(DataHead {
                            content_type: a,
                            payload_len: 0,
                        }),
                        pattern(self.seq, usize::from(len % 12_000)),
                    ),
                    _ => (
                        MessageHead::Response(ResponseHead {
                            request_id: id,
                            status: a,
                            content_type: 0,
                            payload_len: 0,
                        }),
                        pattern(self.seq, usize::from(len % 12_000)),
                    ),
                };
                self.seq += 1;
                let mut out = OutgoingMessage::new(head, &payload);
                // As many fragments as fit now; the rest is dropped, leaving a partial
                // message on the ring, which the real end must handle like any other input.
                let _ = out.write_to(&mut self.producer);
            }
            PeerOp::Publish => {
                self.producer.publish();
            }
            PeerOp::Drain => {
                while let Ok(Some(r)) = self.consumer.peek() {
                    r.consume();
                }
                self.consumer.publish_head();
            }
        }
    }
}

/// Violations a poll may report for what the peer wrote, plus `PAYLOAD_TOO_LARGE` for a HELLO
/// that could not be held (MSG-9).
fn check_poll_error(e: &Error) {
    assert!(
        e.code.is_violation() || e.code == ErrorCode::PayloadTooLarge,
        "poll: {e}"
    );
}

fn region_for(input: &Input) -> (AlignedMem, Params) {
    let params = Params {
        worker_slots: 1,
        channel_slots: 0,
        inflight_max: 1 << (input.inflight_shift % 4),
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 0,
        // A HELLO exchanged up front needs room for its small table.
        max_message_len: u64::from(input.max_message_len).max(if input.hello_first {
            128
        } else {
            1
        }),
    };
    let len = knit_core::Geometry::compute(&params)
        .expect("valid params")
        .region_len();
    (AlignedMem::new(len), params)
}

// One match over every operation, kept together so that the model reads as one piece.
#[allow(clippy::too_many_lines)]
fn host_side(region: &Region<'_>, params: &Params, hello_first: bool, ops: Vec<HostOp>) {
    let mb = region.mailbox(0).expect("mailbox 0");
    let mut host =
        HostMailbox::new(mb, params.inflight_max, params.max_message_len).expect("host end");
    let mut peer = Peer {
        producer: Producer::new(mb.response),
        consumer: Consumer::new(mb.request),
        native: TYPE_RESPONSE,
        seq: 0,
    };
    if hello_first {
        let table = FunctionTable::new([(1, "add"), (2, "resize"), (7, "echo")]).expect("table");
        let bytes = table.encode();
        let mut out =
            OutgoingMessage::new(MessageHead::Hello(HelloHead { payload_len: 0 }), &bytes);
        assert!(out
            .write_to(&mut peer.producer)
            .expect("HELLO fits an empty ring"));
        peer.producer.publish();
    }
    let payloads: Vec<Vec<u8>> = (0..4).map(|k| pattern(k, 3000 * k as usize)).collect();
    let mut pending = None;
    let mut outstanding = BTreeSet::new();
    let mut last_id = 0u64;
    let mut hello = false;
    let mut failed: Option<Error> = None;
    for op in ops.into_iter().take(128) {
        let known: Vec<u64> = outstanding.iter().copied().collect();
        match op {
            HostOp::Peer(p) => peer.step(&p, &known),
            HostOp::Start { function, len } => {
                if pending.is_some() {
                    continue;
                }
                let fid = host
                    .function_table()
                    .and_then(|t| t.functions().first().map(|f| f.id))
                    .unwrap_or(u32::from(function));
                let payload = &payloads[usize::from(len) % payloads.len()];
                match host.start_request(fid, 0, 0, payload) {
                    Ok(Some(out)) => {
                        // CALL-1, CALL-2: ids grow, and the new id's entry is not in use.
                        assert!(out.request_id() > last_id);
                        let mask = u64::from(params.inflight_max) - 1;
                        assert!(outstanding
                            .iter()
                            .all(|&o: &u64| o & mask != out.request_id() & mask));
                        last_id = out.request_id();
                        outstanding.insert(last_id);
                        pending = Some(out);
                    }
                    Ok(None) => {}
                    Err(e) => assert!(
                        matches!(
                            e.code,
                            ErrorCode::InvalidArgument
                                | ErrorCode::UnknownFunction
                                | ErrorCode::PayloadTooLarge
                        ),
                        "start_request: {e}"
                    ),
                }
            }
            HostOp::Write => {
                if let Some(out) = pending.as_mut() {
                    match host.write(out) {
                        Ok(sent) if sent.done => pending = None,
                        Ok(_) => {}
                        Err(e) => {
                            // The consumer side is the real peer's; the hostile peer may have
                            // stored nothing into `head`, so a failure here is a bug.
                            panic!("write: {e}");
                        }
                    }
                }
            }
            HostOp::Withdraw => {
                if let Some(out) = pending.take() {
                    let id = out.request_id();
                    match host.withdraw(out) {
                        Ok(()) => assert!(outstanding.remove(&id)),
                        // MSG-2: a partly written request cannot be withdrawn.
                        Err(e) => assert_eq!(e.code, ErrorCode::InvalidArgument),
                    }
                }
            }
            HostOp::Loan {
                function,
                capacity,
                commit,
            } => {
                if pending.is_some() {
                    continue;
                }
                let fid = host
                    .function_table()
                    .and_then(|t| t.functions().last().map(|f| f.id))
                    .unwrap_or(u32::from(function));
                let cap = usize::from(capacity % 2100);
                if let Ok(Some(mut loan)) = host.loan_request(fid, 0, 0, cap) {
                    let id = loan.request_id();
                    assert!(id > last_id);
                    let n = usize::from(commit) % (cap + 2);
                    loan.payload().fill(0xA5);
                    if loan.commit(n).is_ok() {
                        last_id = id;
                        outstanding.insert(id);
                        host.publish();
                    }
                }
            }
            HostOp::Cancel(k) => {
                let id = IdChoice::Known(k).get(&known);
                let was = outstanding.remove(&id);
                assert_eq!(host.cancel(id).expect("cancel entry in bounds"), was);
            }
            HostOp::Abandon(k) => {
                let id = IdChoice::Known(k).get(&known);
                let was = outstanding.remove(&id);
                assert_eq!(host.abandon(id), was);
            }
            HostOp::Poll => match host.poll() {
                Ok(polled) => {
                    assert!(failed.is_none(), "poll succeeded after a violation");
                    match polled.event {
                        Some(HostEvent::Response(r)) => {
                            // CALL-4: only outstanding ids are answered, once.
                            assert!(outstanding.remove(&r.request_id), "unknown response");
                            let _ = r.payload.bytes().len();
                        }
                        Some(HostEvent::Hello(_)) => {
                            assert!(!hello, "second HELLO delivered (MBX-5)");
                            hello = true;
                        }
                        Some(HostEvent::ChannelOpen(_)) | None => {}
                    }
                }
                Err(e) => {
                    check_poll_error(&e);
                    if let Some(first) = failed {
                        assert_eq!(e, first, "poll error is sticky (RING-13)");
                    }
                    failed = Some(e);
                }
            },
            HostOp::PublishHead => {
                host.publish_head();
            }
            HostOp::Shutdown => {
                let _ = host.send_shutdown();
            }
        }
        let now: BTreeSet<u64> = host.outstanding().collect();
        assert_eq!(now, outstanding, "outstanding ids (CALL-2, CALL-4)");
    }
}

// One match over every operation, kept together so that the model reads as one piece.
#[allow(clippy::too_many_lines)]
fn worker_side(region: &Region<'_>, params: &Params, hello_first: bool, ops: Vec<WorkerOp>) {
    let mb = region.mailbox(0).expect("mailbox 0");
    let mut worker =
        WorkerMailbox::new(mb, params.inflight_max, params.max_message_len).expect("worker end");
    let mut peer = Peer {
        producer: Producer::new(mb.request),
        consumer: Consumer::new(mb.response),
        native: TYPE_REQUEST,
        seq: 0,
    };
    let hello_table = FunctionTable::new([(1, "add"), (2, "resize")])
        .expect("table")
        .encode();
    if hello_first {
        let mut out = worker.start_hello(&hello_table).expect("first HELLO");
        let sent = worker.write(&mut out).expect("HELLO fits an empty ring");
        assert!(sent.done && worker.hello_sent());
    }
    // Everything an outgoing message borrows is built before the loop, so that it outlives
    // the message (no leaks: the fuzzer runs under LeakSanitizer).
    let ops: Vec<WorkerOp> = ops.into_iter().take(128).collect();
    let tables: Vec<Vec<u8>> = ops
        .iter()
        .map(|op| match op {
            WorkerOp::Hello(names) => {
                let pairs = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (i as u32, n.as_str()));
                FunctionTable::new(pairs)
                    .map(|t| t.encode())
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        })
        .collect();
    let results: Vec<Vec<u8>> = (0..4).map(|k| pattern(k, 2500 * k as usize)).collect();
    let mut pending: Option<knit_core::mailbox::Outgoing<'_>> = None;
    let mut received: Vec<u64> = Vec::new();
    let mut shutdown = false;
    let mut failed: Option<Error> = None;
    for (index, op) in ops.iter().enumerate() {
        match op {
            WorkerOp::Peer(p) => peer.step(p, &received),
            WorkerOp::Hello(_) => {
                if pending.is_some() {
                    continue;
                }
                match worker.start_hello(&tables[index]) {
                    Ok(out) => pending = Some(out),
                    Err(e) => assert!(matches!(
                        e.code,
                        ErrorCode::InvalidArgument | ErrorCode::PayloadTooLarge
                    )),
                }
            }
            WorkerOp::Respond { which, status, len } => {
                if pending.is_none() && !received.is_empty() {
                    let id = received[usize::from(*which) % received.len()];
                    let payload = &results[usize::from(*len) % results.len()];
                    pending = Some(worker.start_response(id, *status, 0, payload));
                }
            }
            WorkerOp::ErrorRespond {
                which,
                status,
                message,
            } => {
                if pending.is_none() && !received.is_empty() {
                    let id = received[usize::from(*which) % received.len()];
                    pending = Some(worker.error_response(id, (*status).max(1), message));
                }
            }
            WorkerOp::LoanRespond {
                which,
                capacity,
                commit,
            } => {
                if pending.is_none() && !received.is_empty() {
                    let id = received[usize::from(*which) % received.len()];
                    let cap = usize::from(capacity % 2100);
                    if let Ok(Some(mut loan)) = worker.loan_response(id, 0, 0, cap) {
                        loan.payload().fill(0x5A);
                        let _ = loan.commit(usize::from(*commit) % (cap + 2));
                        worker.publish();
                    }
                }
            }
            WorkerOp::Write => {
                if let Some(out) = pending.as_mut() {
                    match worker.write(out) {
                        Ok(sent) if sent.done => pending = None,
                        Ok(_) => {}
                        Err(e) => {
                            assert_eq!(e.code, ErrorCode::InvalidArgument, "write: {e}");
                            pending = None;
                        }
                    }
                }
            }
            WorkerOp::Poll => match worker.poll() {
                Ok(polled) => {
                    assert!(failed.is_none(), "poll succeeded after a violation");
                    match polled.event {
                        Some(WorkerEvent::Request(r)) => {
                            assert!(!shutdown, "request after SHUTDOWN (MBX-3)");
                            // CALL-1: strictly increasing, never 0.
                            assert!(r.request_id > received.last().copied().unwrap_or(0));
                            received.push(r.request_id);
                            let _ = r.payload.bytes().len();
                        }
                        Some(WorkerEvent::Shutdown) => {
                            assert!(!shutdown, "second SHUTDOWN delivered");
                            shutdown = true;
                        }
                        Some(WorkerEvent::ChannelOpen(_)) => assert!(!shutdown),
                        None => {}
                    }
                    assert_eq!(worker.is_shutdown(), shutdown);
                }
                Err(e) => {
                    check_poll_error(&e);
                    if let Some(first) = failed {
                        assert_eq!(e, first, "poll error is sticky (RING-13)");
                    }
                    failed = Some(e);
                }
            },
            WorkerOp::PublishHead => {
                worker.publish_head();
            }
            WorkerOp::IsCancelled(k) => {
                let id = IdChoice::Known(*k).get(&received);
                let entry = (id & (u64::from(params.inflight_max) - 1)) as usize;
                let raw = mb.cancel.read_u64(8 * entry).expect("entry in bounds");
                assert_eq!(worker.is_cancelled(id), Ok(raw == id), "CANCEL-2");
            }
            WorkerOp::CancelEntry { entry, id } => {
                let entry = usize::from(*entry) % params.inflight_max as usize;
                let id = id.get(&received);
                mb.cancel.write_u64(8 * entry, id).expect("entry in bounds");
            }
        }
    }
}

fuzz_target!(|input: Input| {
    let (mem, params) = region_for(&input);
    let host = HostIdentity {
        pid: 1,
        start_time: 1,
        impl_name: "fuzz",
    };
    let region = Region::format(mem.mem(), &params, &host, [1; 16], 0).expect("format");
    match input.side {
        Side::Host(ops) => host_side(&region, &params, input.hello_first, ops),
        Side::Worker(ops) => worker_side(&region, &params, input.hello_first, ops),
    }
});
