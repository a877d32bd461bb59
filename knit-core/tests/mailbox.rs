//! Host and worker mailboxes (spec/05) over one in-memory region: HELLO, requests and
//! responses of many sizes, cancellation, id bookkeeping, and adversarial records.

use std::ptr::NonNull;

use knit_core::fntable::FunctionTable;
use knit_core::geometry::{Geometry, Params};
use knit_core::mailbox::{
    HostEvent, HostMailbox, Outgoing, WorkerEvent, WorkerMailbox, CONTENT_TYPE_UTF8,
};
use knit_core::message::Payload;
use knit_core::participant::Identity;
use knit_core::records::{
    ChannelOpen, HelloHead, RequestHead, ResponseHead, FLAGS_SINGLE, FLAG_FIRST, FLAG_LAST,
    TYPE_CONT, TYPE_HELLO, TYPE_REQUEST, TYPE_RESPONSE,
};
use knit_core::region::{Mailbox, Region};
use knit_core::ring::Producer;
use knit_core::{ErrorCode, SharedMem};

/// A record written raw: type, flags, body.
type RawRecord = (u16, u16, Vec<u8>);

const ECHO: u32 = 1;
const OTHER: u32 = 2;

fn params(inflight_max: u32, max_message_len: u64) -> Params {
    Params {
        worker_slots: 1,
        channel_slots: 0,
        inflight_max,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 0,
        max_message_len,
    }
}

/// A freshly formatted region in leaked, 8-aligned memory.
fn region(p: Params) -> Region<'static> {
    let len = Geometry::compute(&p).expect("geometry").region_len();
    let words: &'static mut [u64] = Box::leak(vec![0u64; len.div_ceil(8)].into_boxed_slice());
    let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: the allocation is leaked (lives for 'static), 8-aligned, at least `len` bytes,
    // and after this point only accessed through the returned view.
    let mem = unsafe { SharedMem::new(ptr, words.len() * 8) };
    let host = Identity {
        pid: 1,
        start_time: 0,
        impl_name: "knit-core tests",
    };
    Region::format(mem, &p, &host, [7; 16], 0).expect("format")
}

struct Pair {
    host: HostMailbox<'static>,
    worker: WorkerMailbox<'static>,
}

fn pair(inflight_max: u32, max_message_len: u64) -> (Pair, Mailbox<'static>) {
    let r = region(params(inflight_max, max_message_len));
    let mb = r.mailbox(0).unwrap();
    let host = HostMailbox::new(mb, inflight_max, max_message_len).unwrap();
    let worker = WorkerMailbox::new(mb, inflight_max, max_message_len).unwrap();
    (Pair { host, worker }, mb)
}

fn table() -> FunctionTable {
    FunctionTable::new([(ECHO, "echo"), (OTHER, "other")]).unwrap()
}

/// Sends the worker's HELLO and has the host read it.
fn greet(p: &mut Pair) {
    let bytes = table().encode();
    let mut hello = p.worker.start_hello(&bytes).unwrap();
    let sent = p.worker.write(&mut hello).unwrap();
    assert!(sent.done && sent.published);
    assert!(p.worker.hello_sent());
    let polled = p.host.poll().unwrap();
    let Some(HostEvent::Hello(t)) = polled.event else {
        panic!("expected HELLO")
    };
    assert_eq!(t, table());
    assert_eq!(p.host.function_table(), Some(&table()));
}

fn ready(inflight_max: u32, max_message_len: u64) -> Pair {
    let (mut p, _) = pair(inflight_max, max_message_len);
    greet(&mut p);
    p
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

/// What the worker saw of one request.
#[derive(Debug)]
struct SeenRequest {
    id: u64,
    function_id: u32,
    content_type: u32,
    deadline_ns: u64,
    bytes: Vec<u8>,
    in_place: bool,
}

/// Writes `out` from the host while the worker reads, until the worker has the request.
fn deliver_request(p: &mut Pair, out: &mut Outgoing<'_>) -> SeenRequest {
    let mut seen = None;
    for _ in 0..10_000 {
        if !out.is_done() {
            p.host.write(out).unwrap();
        }
        let polled = p.worker.poll().unwrap();
        if let Some(WorkerEvent::Request(r)) = polled.event {
            seen = Some(SeenRequest {
                id: r.request_id,
                function_id: r.function_id,
                content_type: r.content_type,
                deadline_ns: r.deadline_ns,
                bytes: r.payload.bytes().to_vec(),
                in_place: matches!(r.payload, Payload::InPlace(_)),
            });
            r.payload.release();
            p.worker.publish_head();
        }
        if out.is_done() {
            if let Some(seen) = seen.take() {
                return seen;
            }
        }
    }
    panic!("request not delivered");
}

/// What the host saw of one response.
#[derive(Debug, PartialEq)]
struct SeenResponse {
    id: u64,
    status: u32,
    content_type: u32,
    bytes: Vec<u8>,
    in_place: bool,
}

/// Writes `out` from the worker while the host reads; returns the response, or `None` when
/// the host discarded it (the ring drained without an event).
fn deliver_response(p: &mut Pair, out: &mut Outgoing<'_>) -> Option<SeenResponse> {
    let mut seen = None;
    for _ in 0..10_000 {
        if !out.is_done() {
            p.worker.write(out).unwrap();
        }
        let polled = p.host.poll().unwrap();
        match polled.event {
            Some(HostEvent::Response(r)) => {
                let in_place = matches!(r.payload, Payload::InPlace(_));
                let bytes = r.payload.bytes().to_vec();
                let resp = SeenResponse {
                    id: r.request_id,
                    status: r.status,
                    content_type: r.content_type,
                    bytes,
                    in_place,
                };
                r.payload.release();
                p.host.publish_head();
                assert!(seen.is_none(), "one response delivered twice");
                seen = Some(resp);
            }
            Some(other) => panic!("unexpected event {other:?}"),
            // Everything is published and the poll found nothing more: drained.
            None if out.is_done() => return seen,
            None => {}
        }
        if out.is_done() && seen.is_some() {
            return seen;
        }
    }
    panic!("response not delivered");
}

#[test]
fn hello_then_calls_of_many_sizes_round_trip() {
    let mut p = ready(8, 1 << 20);
    assert_eq!(p.host.resolve("echo"), Ok(ECHO));
    assert_eq!(
        p.host.resolve("nope").unwrap_err().code,
        ErrorCode::UnknownFunction
    );
    let max_body = 4096 / 2 - 8;
    let mut last_id = 0;
    for (i, size) in [
        0usize,
        1,
        64,
        max_body - 40,
        max_body - 39,
        max_body,
        4096,
        3 * 4096 + 5,
        20_000,
    ]
    .into_iter()
    .enumerate()
    {
        let payload = pattern(size, i as u8);
        let mut out = p
            .host
            .start_request(ECHO, 3, 1234, &payload)
            .unwrap()
            .expect("free entry");
        let id = out.request_id();
        assert!(id > last_id, "CALL-1: ids increase");
        last_id = id;
        assert!(p.host.is_outstanding(id));
        let req = deliver_request(&mut p, &mut out);
        assert_eq!(
            (req.id, req.function_id, req.content_type, req.deadline_ns),
            (id, ECHO, 3, 1234)
        );
        assert_eq!(req.bytes, payload, "request of {size} bytes");
        assert_eq!(
            req.in_place,
            size + RequestHead::LEN <= max_body,
            "MSG-5 in place, {size} bytes"
        );

        let mut answer = p.worker.start_response(id, 0, 4, &req.bytes);
        let resp = deliver_response(&mut p, &mut answer).expect("response");
        assert_eq!((resp.id, resp.status, resp.content_type), (id, 0, 4));
        assert_eq!(resp.bytes, payload, "response of {size} bytes");
        assert_eq!(resp.in_place, size + ResponseHead::LEN <= max_body);
        assert!(!p.host.is_outstanding(id));
    }
    assert_eq!(p.host.outstanding().count(), 0);
}

#[test]
fn writes_and_polls_report_what_must_be_woken() {
    let mut p = ready(8, 1 << 20);
    let payload = pattern(6000, 1);
    let mut out = p.host.start_request(ECHO, 0, 0, &payload).unwrap().unwrap();
    let sent = p.host.write(&mut out).unwrap();
    assert!(
        sent.published && !sent.done,
        "first part published, ring then full"
    );
    let again = p.host.write(&mut out).unwrap();
    assert!(
        !again.published && !again.done,
        "nothing new to publish while the ring is full"
    );
    let polled = p.worker.poll().unwrap();
    assert!(polled.event.is_none());
    assert!(
        polled.released,
        "fragments consumed: the host must be woken for space (WAIT-6)"
    );
}

#[test]
fn loans_carry_requests_and_responses_in_place() {
    let mut p = ready(8, 1 << 20);
    let mut loan = p.host.loan_request(OTHER, 5, 0, 64).unwrap().expect("room");
    let id = loan.request_id();
    loan.payload()[..3].copy_from_slice(b"abc");
    loan.commit(3).unwrap();
    assert!(p.host.is_outstanding(id));
    assert!(p.host.publish());
    let polled = p.worker.poll().unwrap();
    let Some(WorkerEvent::Request(r)) = polled.event else {
        panic!("expected a request")
    };
    assert_eq!(
        (r.request_id, r.function_id, r.content_type),
        (id, OTHER, 5)
    );
    assert!(matches!(r.payload, Payload::InPlace(_)));
    assert_eq!(r.payload.bytes(), b"abc");
    r.payload.release();
    assert!(p.worker.publish_head());

    let mut loan = p
        .worker
        .loan_response(id, 0, 0, 100)
        .unwrap()
        .expect("room");
    loan.payload()[..5].copy_from_slice(b"hello");
    loan.commit(5).unwrap();
    assert!(p.worker.publish());
    let polled = p.host.poll().unwrap();
    let Some(HostEvent::Response(r)) = polled.event else {
        panic!("expected a response")
    };
    assert_eq!((r.request_id, r.status), (id, 0));
    assert_eq!(r.payload.bytes(), b"hello");
    r.payload.release();
    assert!(p.host.publish_head());

    // A dropped loan sends nothing and leaves no id outstanding.
    let dropped = {
        let loan = p.host.loan_request(OTHER, 0, 0, 8).unwrap().expect("room");
        loan.request_id()
    };
    assert!(!p.host.is_outstanding(dropped));
    assert!(!p.host.publish());
    // Larger than one record: refused.
    assert_eq!(
        p.host.loan_request(OTHER, 0, 0, 4096).err().map(|e| e.code),
        Some(ErrorCode::InvalidArgument)
    );
}

#[test]
fn cancellation_is_visible_to_the_worker_and_late_responses_are_discarded() {
    let mut p = ready(4, 1 << 20);
    let mut out = p.host.start_request(ECHO, 0, 0, b"x").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    assert!(!p.worker.is_cancelled(id).unwrap());
    assert!(
        p.host.cancel(id).unwrap(),
        "CANCEL-1: stored, worker to be woken"
    );
    assert!(p.worker.is_cancelled(id).unwrap(), "CANCEL-2");
    assert!(
        !p.worker.is_cancelled(id + 4).unwrap(),
        "same entry, other id: not cancelled"
    );
    assert!(!p.host.cancel(id).unwrap(), "already abandoned");
    assert!(!p.host.is_outstanding(id));

    // The late answer (fragmented, to exercise dropping across records) is discarded silently.
    let big = pattern(5000, 9);
    let mut late =
        p.worker
            .start_response(id, ErrorCode::Cancelled as u32, CONTENT_TYPE_UTF8, &big);
    assert_eq!(deliver_response(&mut p, &mut late), None);

    // Its cancel entry is free again: the next ids are handed out without skipping.
    let next = p.host.next_request_id().unwrap();
    assert_eq!(next, id + 1);
}

#[test]
fn a_call_abandoned_while_its_response_arrives_is_discarded() {
    let mut p = ready(4, 1 << 20);
    let mut out = p.host.start_request(ECHO, 0, 0, b"x").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    let big = pattern(6000, 2);
    let mut answer = p.worker.start_response(id, 0, 0, &big);
    p.worker.write(&mut answer).unwrap();
    assert!(
        p.host.poll().unwrap().event.is_none(),
        "first fragments read"
    );
    assert!(p.host.abandon(id));
    assert_eq!(deliver_response(&mut p, &mut answer), None);
    assert_eq!(p.host.next_request_id(), Some(id + 1), "entry freed");
}

#[test]
fn ids_skip_busy_cancel_entries_and_stop_when_all_are_busy() {
    let mut p = ready(4, 1 << 20);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut out = p
            .host
            .start_request(ECHO, 0, 0, b"")
            .unwrap()
            .expect("free entry");
        ids.push(out.request_id());
        deliver_request(&mut p, &mut out);
    }
    assert_eq!(ids, vec![1, 2, 3, 4]);
    // CALL-2: no entry is free.
    assert_eq!(p.host.next_request_id(), None);
    assert!(p.host.start_request(ECHO, 0, 0, b"").unwrap().is_none());
    assert!(p.host.loan_request(ECHO, 0, 0, 0).unwrap().is_none());
    // Answer request 2: entry 2 frees; 5 (entry 1) is busy, so the next id is 6.
    let mut answer = p.worker.start_response(2, 0, 0, b"");
    assert!(deliver_response(&mut p, &mut answer).is_some());
    assert_eq!(p.host.next_request_id(), Some(6));
    let out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    assert_eq!(out.request_id(), 6);
}

#[test]
fn draining_yields_each_outstanding_call_once() {
    let mut p = ready(8, 1 << 20);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
        ids.push(out.request_id());
        deliver_request(&mut p, &mut out);
    }
    assert!(p.host.abandon(ids[1]));
    let mut drained: Vec<u64> = p.host.drain_outstanding().collect();
    drained.sort_unstable();
    assert_eq!(drained, vec![ids[0], ids[2]]);
    assert_eq!(p.host.outstanding().count(), 0);
    assert_eq!(p.host.drain_outstanding().count(), 0);
}

#[test]
fn unknown_status_codes_are_delivered_raw() {
    let mut p = ready(8, 1 << 20);
    for status in [4242u32, ErrorCode::PeerDied as u32, 1000] {
        let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
        let id = out.request_id();
        deliver_request(&mut p, &mut out);
        let mut answer = p.worker.error_response(id, status, "boom");
        let resp = deliver_response(&mut p, &mut answer).unwrap();
        assert_eq!(
            (resp.status, resp.content_type, resp.bytes.as_slice()),
            (status, CONTENT_TYPE_UTF8, &b"boom"[..])
        );
    }
}

#[test]
fn error_codes_of_responses_map_to_the_registry() {
    let mut p = ready(8, 1 << 20);
    let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    let mut answer = p
        .worker
        .error_response(id, ErrorCode::HandlerFailed as u32, "x");
    p.worker.write(&mut answer).unwrap();
    let polled = p.host.poll().unwrap();
    let Some(HostEvent::Response(r)) = polled.event else {
        panic!("expected a response")
    };
    assert_eq!(r.error_code(), Some(ErrorCode::HandlerFailed));
    r.payload.release();
}

#[test]
fn oversized_payloads_are_refused_locally() {
    let mut p = ready(8, 100);
    // CALL-10 at the host.
    let big = vec![0u8; 101];
    assert_eq!(
        p.host.start_request(ECHO, 0, 0, &big).unwrap_err().code,
        ErrorCode::PayloadTooLarge
    );
    assert_eq!(
        p.host.loan_request(ECHO, 0, 0, 101).err().map(|e| e.code),
        Some(ErrorCode::PayloadTooLarge)
    );
    // CALL-10 at the worker: the result becomes a PAYLOAD_TOO_LARGE error response.
    let mut out = p.host.start_request(ECHO, 0, 0, b"q").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    let mut answer = p.worker.start_response(id, 0, 0, &big);
    let resp = deliver_response(&mut p, &mut answer).unwrap();
    assert_eq!(
        (resp.status, resp.content_type),
        (ErrorCode::PayloadTooLarge as u32, CONTENT_TYPE_UTF8)
    );
    assert!(std::str::from_utf8(&resp.bytes).is_ok());
}

#[test]
fn error_messages_are_cut_at_a_character_boundary() {
    // The smallest limit that still carries this test's HELLO (40 bytes).
    let mut p = ready(8, 40);
    let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    // 39 ASCII bytes and a 3-byte euro sign: a cut at 40 bytes would split the sign.
    let text = format!("{}€", "a".repeat(39));
    let mut answer = p.worker.error_response(id, 2, &text);
    let resp = deliver_response(&mut p, &mut answer).unwrap();
    assert_eq!(resp.bytes, "a".repeat(39).as_bytes());
}

#[test]
fn unknown_function_ids_are_refused_locally() {
    let mut p = ready(8, 100);
    assert_eq!(
        p.host.start_request(99, 0, 0, b"").unwrap_err().code,
        ErrorCode::UnknownFunction
    );
}

#[test]
fn nothing_is_sent_before_hello() {
    let (mut p, _) = pair(8, 100);
    // MBX-2 at the host: no request before the HELLO.
    assert_eq!(
        p.host.start_request(ECHO, 0, 0, b"").unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        p.host.resolve("echo").unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    // MBX-2 at the worker: HELLO first, and only once.
    let mut early = p.worker.start_response(1, 0, 0, b"");
    assert_eq!(
        p.worker.write(&mut early).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        p.worker.loan_response(1, 0, 0, 0).err().map(|e| e.code),
        Some(ErrorCode::InvalidArgument)
    );
    let bytes = table().encode();
    let mut hello = p.worker.start_hello(&bytes).unwrap();
    assert_eq!(
        p.worker.start_hello(&bytes).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    // A response started before the HELLO was written may not overtake it.
    assert_eq!(
        p.worker.write(&mut early).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert!(p.worker.write(&mut hello).unwrap().done);
    assert!(matches!(
        p.host.poll().unwrap().event,
        Some(HostEvent::Hello(_))
    ));
}

#[test]
fn a_partly_written_message_blocks_every_other_write() {
    let mut p = ready(8, 1 << 20);
    let big = pattern(9000, 4);
    let mut first = p.host.start_request(ECHO, 0, 0, &big).unwrap().unwrap();
    assert!(!p.host.write(&mut first).unwrap().done);
    // MSG-2: no other record may come between its fragments.
    assert_eq!(
        p.host.start_request(ECHO, 0, 0, b"").unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        p.host.send_shutdown().unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        p.host.loan_request(ECHO, 0, 0, 0).err().map(|e| e.code),
        Some(ErrorCode::InvalidArgument)
    );
    let req = deliver_request(&mut p, &mut first);
    assert_eq!(req.bytes, big);
    assert!(p.host.send_shutdown().unwrap().done);
}

#[test]
fn shutdown_stops_reading_requests() {
    let mut p = ready(8, 1 << 20);
    let mut a = p.host.start_request(ECHO, 0, 0, b"a").unwrap().unwrap();
    assert!(p.host.write(&mut a).unwrap().done);
    assert!(p.host.send_shutdown().unwrap().done);
    let mut b = p.host.start_request(ECHO, 0, 0, b"b").unwrap().unwrap();
    assert!(p.host.write(&mut b).unwrap().done);

    let polled = p.worker.poll().unwrap();
    let Some(WorkerEvent::Request(r)) = polled.event else {
        panic!("expected request a")
    };
    assert_eq!(r.payload.bytes(), b"a");
    r.payload.release();
    assert!(matches!(
        p.worker.poll().unwrap().event,
        Some(WorkerEvent::Shutdown)
    ));
    assert!(p.worker.is_shutdown());
    // MBX-3: the request after SHUTDOWN is not read.
    for _ in 0..3 {
        let polled = p.worker.poll().unwrap();
        assert!(polled.event.is_none());
    }
}

#[test]
fn channel_announcements_travel_both_ways() {
    let mut p = ready(8, 100);
    let open = ChannelOpen {
        channel: 2,
        epoch: 5,
        tag: 77,
    };
    assert!(p.host.send_channel_open(&open).unwrap().done);
    assert!(
        matches!(p.worker.poll().unwrap().event, Some(WorkerEvent::ChannelOpen(o)) if o == open)
    );
    let back = ChannelOpen {
        channel: 1,
        epoch: 1,
        tag: 0,
    };
    assert!(p.worker.send_channel_open(&back).unwrap().done);
    assert!(matches!(p.host.poll().unwrap().event, Some(HostEvent::ChannelOpen(o)) if o == back));
}

// ---- adversarial peers --------------------------------------------------------------------

fn request_body(id: u64) -> Vec<u8> {
    RequestHead {
        request_id: id,
        function_id: ECHO,
        content_type: 0,
        deadline_ns: 0,
        payload_len: 0,
    }
    .encode()
    .to_vec()
}

#[test]
fn non_increasing_request_ids_are_bad_record() {
    for ids in [[5u64, 5], [5, 3]] {
        let (mut p, mb) = pair(8, 100);
        let mut raw = Producer::new(mb.request);
        for id in ids {
            assert!(raw
                .try_write(TYPE_REQUEST, FLAGS_SINGLE, &request_body(id))
                .unwrap());
        }
        raw.publish();
        let polled = p.worker.poll().unwrap();
        let Some(WorkerEvent::Request(r)) = polled.event else {
            panic!("first request is valid")
        };
        r.payload.release();
        assert_eq!(
            p.worker.poll().unwrap_err().code,
            ErrorCode::BadRecord,
            "ids {ids:?}"
        );
        // RING-13: the mailbox stays failed.
        assert_eq!(p.worker.poll().unwrap_err().code, ErrorCode::BadRecord);
    }
}

#[test]
fn a_wrong_record_type_on_a_ring_is_unknown_record() {
    let (mut p, mb) = pair(8, 100);
    let mut raw = Producer::new(mb.request);
    let resp = ResponseHead {
        request_id: 1,
        status: 0,
        content_type: 0,
        payload_len: 0,
    }
    .encode();
    assert!(raw.try_write(TYPE_RESPONSE, FLAGS_SINGLE, &resp).unwrap());
    raw.publish();
    assert_eq!(p.worker.poll().unwrap_err().code, ErrorCode::UnknownRecord);

    let mut raw = Producer::new(mb.response);
    assert!(raw
        .try_write(TYPE_REQUEST, FLAGS_SINGLE, &request_body(1))
        .unwrap());
    raw.publish();
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::UnknownRecord);
}

#[test]
fn responses_to_ids_not_outstanding_are_unknown_request() {
    // Never sent.
    let mut p = ready(8, 100);
    let mut answer = p.worker.start_response(99, 0, 0, b"");
    p.worker.write(&mut answer).unwrap();
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::UnknownRequest);

    // Answered twice.
    let mut p = ready(8, 100);
    let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    let mut first = p.worker.start_response(id, 0, 0, b"");
    assert!(deliver_response(&mut p, &mut first).is_some());
    let mut second = p.worker.start_response(id, 0, 0, b"");
    p.worker.write(&mut second).unwrap();
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::UnknownRequest);

    // Same cancel entry, different id (id + inflight_max) is not the outstanding one.
    let mut p = ready(8, 100);
    let mut out = p.host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    let id = out.request_id();
    deliver_request(&mut p, &mut out);
    let mut alias = p.worker.start_response(id + 8, 0, 0, b"");
    p.worker.write(&mut alias).unwrap();
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::UnknownRequest);
}

/// A HELLO payload built by hand.
fn raw_table(count: u32, entries: &[(u32, &[u8])], trailing: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for (id, name) in entries {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(name);
        while out.len() % 8 != 0 {
            out.push(0);
        }
    }
    out.resize(out.len() + trailing, 0);
    out
}

fn host_error_for_hello(payload: &[u8]) -> ErrorCode {
    let (mut p, mb) = pair(8, 1 << 16);
    let mut raw = Producer::new(mb.response);
    let mut body = HelloHead {
        payload_len: payload.len() as u64,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(payload);
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    raw.publish();
    p.host.poll().unwrap_err().code
}

#[test]
fn bad_hello_tables_are_bad_record() {
    let cases: [(&str, Vec<u8>); 7] = [
        ("duplicate names", raw_table(2, &[(1, b"f"), (2, b"f")], 0)),
        ("duplicate ids", raw_table(2, &[(1, b"f"), (1, b"g")], 0)),
        ("empty name", raw_table(1, &[(1, b"")], 0)),
        (
            "names not filling the payload",
            raw_table(1, &[(1, b"f")], 8),
        ),
        ("count beyond the entries", raw_table(2, &[(1, b"f")], 0)),
        (
            "count below the entries",
            raw_table(1, &[(1, b"f"), (2, b"g")], 0),
        ),
        ("invalid UTF-8", raw_table(1, &[(1, &[0xFF, 0xFE])], 0)),
    ];
    for (what, payload) in cases {
        assert_eq!(
            host_error_for_hello(&payload),
            ErrorCode::BadRecord,
            "{what}"
        );
    }
}

#[test]
fn a_second_hello_is_bad_record() {
    let mut p = ready(8, 1 << 16);
    let bytes = table().encode();
    let mut body = HelloHead {
        payload_len: bytes.len() as u64,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(&bytes);
    // The worker mailbox refuses to send it; a hostile worker writes it raw.
    assert_eq!(
        p.worker.start_hello(&bytes).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    let r = region(params(8, 1 << 16));
    let mb = r.mailbox(0).unwrap();
    let mut host = HostMailbox::new(mb, 8, 1 << 16).unwrap();
    let mut raw = Producer::new(mb.response);
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    raw.publish();
    assert!(matches!(
        host.poll().unwrap().event,
        Some(HostEvent::Hello(_))
    ));
    assert_eq!(host.poll().unwrap_err().code, ErrorCode::BadRecord);
}

/// A host on a fresh region whose worker is played raw: it wrote a valid HELLO, and the host
/// has request 1 outstanding. Returns the host and the raw response producer.
fn host_with_raw_worker(max_message_len: u64) -> (HostMailbox<'static>, Producer<'static>) {
    let r = region(params(8, max_message_len));
    let mb = r.mailbox(0).unwrap();
    let mut host = HostMailbox::new(mb, 8, max_message_len).unwrap();
    let mut raw = Producer::new(mb.response);
    let bytes = table().encode();
    let mut body = HelloHead {
        payload_len: bytes.len() as u64,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(&bytes);
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    raw.publish();
    assert!(matches!(
        host.poll().unwrap().event,
        Some(HostEvent::Hello(_))
    ));
    let mut out = host.start_request(ECHO, 0, 0, b"").unwrap().unwrap();
    assert_eq!(out.request_id(), 1);
    assert!(host.write(&mut out).unwrap().done);
    (host, raw)
}

#[test]
fn fragment_and_size_violations_reach_the_host_with_their_codes() {
    let resp = |id: u64, payload_len: u64| {
        ResponseHead {
            request_id: id,
            status: 0,
            content_type: 0,
            payload_len,
        }
        .encode()
        .to_vec()
    };
    let cases: Vec<(&str, Vec<RawRecord>, ErrorCode)> = vec![
        (
            "CONT with no message",
            vec![(TYPE_CONT, FLAG_LAST, vec![1])],
            ErrorCode::BadFragment,
        ),
        (
            "LAST too early",
            vec![(TYPE_RESPONSE, FLAGS_SINGLE, resp(1, 5))],
            ErrorCode::BadFragment,
        ),
        (
            "fragment sum above payload_len",
            vec![
                (TYPE_RESPONSE, FLAG_FIRST, resp(1, 2)),
                (TYPE_CONT, FLAG_LAST, vec![1, 2, 3]),
            ],
            ErrorCode::BadFragment,
        ),
        (
            "interrupted",
            vec![
                (TYPE_RESPONSE, FLAG_FIRST, resp(1, 2)),
                (TYPE_RESPONSE, FLAGS_SINGLE, resp(1, 0)),
            ],
            ErrorCode::BadFragment,
        ),
        (
            "payload_len above max_message_len",
            vec![(TYPE_RESPONSE, FLAG_FIRST, resp(1, 101))],
            ErrorCode::BadRecord,
        ),
        (
            "unknown id in a fragmented response",
            vec![(TYPE_RESPONSE, FLAG_FIRST, resp(2, 50))],
            ErrorCode::UnknownRequest,
        ),
    ];
    for (what, records, code) in cases {
        let (mut host, mut raw) = host_with_raw_worker(100);
        for (rtype, flags, body) in &records {
            assert!(raw.try_write(*rtype, *flags, body).unwrap());
        }
        raw.publish();
        assert_eq!(host.poll().map(|_| ()).unwrap_err().code, code, "{what}");
        assert_eq!(
            host.poll().map(|_| ()).unwrap_err().code,
            code,
            "{what}: stays failed (RING-13)"
        );
    }
}

#[test]
fn a_valid_raw_fragmented_response_is_reassembled() {
    let (mut host, mut raw) = host_with_raw_worker(100);
    let mut first = ResponseHead {
        request_id: 1,
        status: 0,
        content_type: 0,
        payload_len: 5,
    }
    .encode()
    .to_vec();
    first.extend_from_slice(b"ab");
    assert!(raw.try_write(TYPE_RESPONSE, FLAG_FIRST, &first).unwrap());
    assert!(raw.try_write(TYPE_CONT, 0, b"c").unwrap());
    assert!(raw.try_write(TYPE_CONT, FLAG_LAST, b"de").unwrap());
    raw.publish();
    let polled = host.poll().unwrap();
    let Some(HostEvent::Response(r)) = polled.event else {
        panic!("expected a response")
    };
    assert!(matches!(r.payload, Payload::Owned(_)));
    assert_eq!(r.payload.bytes(), b"abcde");
}

#[test]
fn a_request_payload_dropped_without_release_is_not_delivered_again() {
    let mut p = ready(8, 100);
    let mut a = p.host.start_request(ECHO, 0, 0, b"a").unwrap().unwrap();
    assert!(p.host.write(&mut a).unwrap().done);
    let mut b = p.host.start_request(ECHO, 0, 0, b"b").unwrap().unwrap();
    assert!(p.host.write(&mut b).unwrap().done);
    let first = match p.worker.poll().unwrap().event {
        Some(WorkerEvent::Request(r)) => r.request_id,
        other => panic!("expected a request, got {other:?}"),
    };
    // The payload was dropped with the event; CALL-1 would refuse a second delivery.
    let second = match p.worker.poll().unwrap().event {
        Some(WorkerEvent::Request(r)) => r.request_id,
        other => panic!("expected a request, got {other:?}"),
    };
    assert_eq!((first, second), (a.request_id(), b.request_id()));
}

#[test]
fn an_unwritten_request_can_be_withdrawn() {
    let mut p = ready(2, 1 << 20);
    let big = pattern(5000, 1);
    let mut first = p.host.start_request(ECHO, 0, 0, &big).unwrap().unwrap();
    assert!(!p.host.write(&mut first).unwrap().done);
    let pending = p.host.start_request(ECHO, 0, 0, b"x");
    // MSG-2 refuses a second message while the first is partly written.
    assert_eq!(pending.unwrap_err().code, ErrorCode::InvalidArgument);
    deliver_request(&mut p, &mut first);
    let second = p.host.start_request(ECHO, 0, 0, b"x").unwrap().unwrap();
    let id = second.request_id();
    assert_eq!(p.host.next_request_id(), None, "both entries busy");
    p.host.withdraw(second).unwrap();
    assert!(!p.host.is_outstanding(id));
    // Ids only grow: 3 shares request 1's busy entry, so the freed entry is reused by 4.
    assert_eq!(p.host.next_request_id(), Some(id + 2));
    // A request whose first record is written cannot be withdrawn.
    let mut third = p.host.start_request(ECHO, 0, 0, &big).unwrap().unwrap();
    p.host.write(&mut third).unwrap();
    assert_eq!(
        p.host.withdraw(third).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
}

#[test]
fn a_bad_hello_keeps_the_host_mailbox_failed() {
    let (mut p, mb) = pair(8, 1 << 16);
    let mut raw = Producer::new(mb.response);
    let payload = raw_table(2, &[(1, b"f"), (1, b"g")], 0);
    let mut body = HelloHead {
        payload_len: payload.len() as u64,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(&payload);
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    let valid = table().encode();
    let mut body = HelloHead {
        payload_len: valid.len() as u64,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(&valid);
    assert!(raw.try_write(TYPE_HELLO, FLAGS_SINGLE, &body).unwrap());
    raw.publish();
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::BadRecord);
    // RING-13: the valid HELLO behind it is never read.
    assert_eq!(p.host.poll().unwrap_err().code, ErrorCode::BadRecord);
    assert!(p.host.function_table().is_none());
}
