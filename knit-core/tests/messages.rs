//! Messages and fragments (spec/07) over one in-memory ring: fragmenting writer, loan,
//! reassembler, and adversarial records written raw into the ring.

use std::ptr::NonNull;

use knit_core::message::{
    loan, write_control, Accept, Incoming, Message, MessageHead, OutgoingMessage, Payload,
    Reassembler,
};
use knit_core::records::{
    ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead, RingKind, FLAGS_SINGLE,
    FLAG_FIRST, FLAG_LAST, FLAG_SKIPPABLE, TYPE_CHANNEL_OPEN, TYPE_CONT, TYPE_DATA, TYPE_END,
    TYPE_HELLO, TYPE_REQUEST, TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use knit_core::ring::{Consumer, Producer, RingRef, RING_CTRL_LEN};
use knit_core::{ErrorCode, SharedMem};

/// A ring of `cap` data bytes in leaked, 8-aligned, zeroed memory.
fn ring(cap: usize) -> RingRef<'static> {
    let words: &'static mut [u64] =
        Box::leak(vec![0u64; (RING_CTRL_LEN + cap) / 8].into_boxed_slice());
    let len = words.len() * 8;
    let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: the allocation is leaked (lives for 'static), 8-aligned (u64 words), `len`
    // bytes long, and after this point only accessed through the returned view.
    let mem = unsafe { SharedMem::new(ptr, len) };
    RingRef::new(
        mem.sub(0, RING_CTRL_LEN).unwrap(),
        mem.sub(RING_CTRL_LEN, cap).unwrap(),
    )
    .unwrap()
}

fn request_head(id: u64) -> MessageHead {
    MessageHead::Request(RequestHead {
        request_id: id,
        function_id: 2,
        content_type: 0,
        deadline_ns: 9,
        payload_len: 0,
    })
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// What a test keeps of a delivered message: head, bytes, and whether it came in place.
#[derive(Debug, PartialEq)]
struct Got {
    head: MessageHead,
    bytes: Vec<u8>,
    in_place: bool,
}

fn take(message: Message<'_, '_>) -> Got {
    let in_place = matches!(message.payload, Payload::InPlace(_));
    let bytes = message.payload.bytes().to_vec();
    message.payload.release();
    Got {
        head: message.head,
        bytes,
        in_place,
    }
}

/// Writes `msg` while draining the ring, as two threads would, and returns what was received.
fn transfer(
    msg: &mut OutgoingMessage<'_>,
    producer: &mut Producer<'_>,
    consumer: &mut Consumer<'_>,
    re: &mut Reassembler,
) -> Got {
    let mut got = None;
    for _ in 0..100_000 {
        let done = msg.write_to(producer).expect("write");
        producer.publish();
        let polled = re.poll(consumer, |_| Ok(Accept::Deliver)).expect("poll");
        if let Some(Incoming::Message(m)) = polled.incoming {
            assert!(got.is_none(), "one message delivered twice");
            got = Some(take(m));
            consumer.publish_head();
        }
        if done {
            if let Some(got) = got.take() {
                return got;
            }
        }
    }
    panic!("transfer did not finish");
}

#[test]
fn payloads_of_every_size_class_round_trip() {
    let cap = 4096;
    let max_body = cap / 2 - 8;
    let sizes = [
        0,
        1,
        7,
        8,
        max_body - 40,
        max_body - 39,
        max_body,
        max_body + 1,
        2 * max_body,
        cap,
        5 * cap + 3,
    ];
    let r = ring(cap);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Request, 1 << 20);
    for (i, &size) in sizes.iter().enumerate() {
        let payload = pattern(size, i as u8);
        let mut msg = OutgoingMessage::new(request_head(i as u64 + 1), &payload);
        let got = transfer(&mut msg, &mut producer, &mut consumer, &mut re);
        assert_eq!(got.bytes, payload, "size {size}");
        assert_eq!(
            got.head,
            request_head(i as u64 + 1).with_payload_len(size as u64)
        );
        // MSG-5: one record when head + payload fit a record, delivered in place.
        assert_eq!(
            got.in_place,
            size + RequestHead::LEN <= max_body,
            "size {size}"
        );
        assert!(!re.in_message());
    }
}

#[test]
fn fragments_are_filled_to_the_largest_record() {
    let cap = 4096;
    let max_body = cap / 2 - 8;
    let r = ring(cap);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let payload = pattern(max_body * 2, 3);
    let mut msg = OutgoingMessage::new(MessageHead::Hello(HelloHead { payload_len: 0 }), &payload);
    // The first fragment and part of the ring: only what fits is written.
    let done = msg.write_to(&mut producer).unwrap();
    assert!(!done && msg.is_started());
    producer.publish();
    let mut seen = Vec::new();
    for _ in 0..10 {
        while let Some(rec) = consumer.peek().unwrap() {
            let h = rec.header();
            seen.push((h.rtype, h.flags, h.len as usize));
            rec.consume();
        }
        consumer.publish_head();
        if msg.write_to(&mut producer).unwrap() {
            producer.publish();
            while let Some(rec) = consumer.peek().unwrap() {
                let h = rec.header();
                seen.push((h.rtype, h.flags, h.len as usize));
                rec.consume();
            }
            break;
        }
        producer.publish();
    }
    // HELLO head (8) + payload: first record max_body, then CONT max_body, then the rest.
    assert_eq!(
        seen,
        vec![
            (TYPE_HELLO, FLAG_FIRST, max_body),
            (TYPE_CONT, 0, max_body),
            (TYPE_CONT, FLAG_LAST, 8)
        ]
    );
}

#[test]
fn control_records_and_data_are_delivered_on_a_channel_ring() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Channel, 1 << 16);
    let mut data = OutgoingMessage::new(
        MessageHead::Data(DataHead {
            content_type: 2,
            payload_len: 0,
        }),
        b"{}",
    );
    assert!(data.write_to(&mut producer).unwrap());
    assert!(write_control(&mut producer, TYPE_END, &[]).unwrap());
    assert!(producer.publish());
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    let Some(Incoming::Message(m)) = polled.incoming else {
        panic!("expected DATA")
    };
    let got = take(m);
    assert_eq!(got.bytes, b"{}");
    assert_eq!(
        got.head,
        MessageHead::Data(DataHead {
            content_type: 2,
            payload_len: 2
        })
    );
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(matches!(polled.incoming, Some(Incoming::End)));
    assert!(polled.released, "END consumed and released");
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(polled.incoming.is_none());
    // A control record of the wrong length is refused before writing.
    assert_eq!(
        write_control(&mut producer, TYPE_SHUTDOWN, &[0])
            .unwrap_err()
            .code,
        ErrorCode::InvalidArgument
    );
}

#[test]
fn channel_open_and_shutdown_decode_on_a_request_ring() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Request, 1 << 16);
    let open = ChannelOpen {
        channel: 3,
        epoch: 7,
        tag: 11,
    };
    assert!(write_control(&mut producer, TYPE_CHANNEL_OPEN, &open.encode()).unwrap());
    assert!(write_control(&mut producer, TYPE_SHUTDOWN, &[]).unwrap());
    producer.publish();
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(matches!(polled.incoming, Some(Incoming::ChannelOpen(o)) if o == open));
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(matches!(polled.incoming, Some(Incoming::Shutdown)));
}

#[test]
fn dropped_messages_are_consumed_without_delivery() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Response, 1 << 16);
    let small = ResponseHead {
        request_id: 1,
        status: 0,
        content_type: 0,
        payload_len: 0,
    };
    let big = pattern(3000, 1);
    let mut m1 = OutgoingMessage::new(MessageHead::Response(small), b"abc");
    let mut m2 = OutgoingMessage::new(
        MessageHead::Response(ResponseHead {
            request_id: 2,
            ..small
        }),
        &big,
    );
    let mut m3 = OutgoingMessage::new(
        MessageHead::Response(ResponseHead {
            request_id: 3,
            ..small
        }),
        b"z",
    );
    let mut delivered = Vec::new();
    let mut asked = Vec::new();
    for _ in 0..100 {
        for m in [&mut m1, &mut m2, &mut m3] {
            if !m.is_done() {
                m.write_to(&mut producer).unwrap();
                break;
            }
        }
        producer.publish();
        let polled = re
            .poll(&mut consumer, |h| {
                let MessageHead::Response(r) = h else {
                    unreachable!()
                };
                asked.push(r.request_id);
                Ok(if r.request_id == 3 {
                    Accept::Deliver
                } else {
                    Accept::Drop
                })
            })
            .unwrap();
        if let Some(Incoming::Message(m)) = polled.incoming {
            delivered.push(take(m));
            consumer.publish_head();
        }
        if m3.is_done() && !delivered.is_empty() {
            break;
        }
    }
    assert_eq!(
        asked,
        vec![1, 2, 3],
        "asked once per message, at its first record"
    );
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].bytes, b"z");
}

#[test]
fn a_loan_commits_a_shorter_payload_and_patches_payload_len() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Response, 1 << 16);
    let head = MessageHead::Response(ResponseHead {
        request_id: 5,
        status: 0,
        content_type: 3,
        payload_len: 0,
    });
    let mut l = loan(&mut producer, head, 100).unwrap().expect("room");
    assert_eq!(l.payload().len(), 100);
    l.payload()[..4].copy_from_slice(b"knit");
    l.commit(4).unwrap();
    producer.publish();
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    let Some(Incoming::Message(m)) = polled.incoming else {
        panic!("expected a message")
    };
    let got = take(m);
    assert!(got.in_place);
    assert_eq!(got.bytes, b"knit");
    assert_eq!(got.head, head.with_payload_len(4));

    // Over capacity is refused and commits nothing; a loan beyond one record is refused.
    let l = loan(&mut producer, head, 10).unwrap().expect("room");
    assert_eq!(l.commit(11).unwrap_err().code, ErrorCode::InvalidArgument);
    assert!(!producer.publish());
    assert_eq!(
        loan(&mut producer, head, 4096).err().map(|e| e.code),
        Some(ErrorCode::InvalidArgument)
    );
}

// ---- adversarial records ------------------------------------------------------------------

/// A record written raw: type, flags, body.
type RawRecord = (u16, u16, Vec<u8>);

/// Writes raw records, publishes, and returns the first error the reassembler reports (after
/// delivering, and releasing, anything valid before it).
fn first_error(kind: RingKind, max_message_len: u64, records: &[RawRecord]) -> Option<ErrorCode> {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(kind, max_message_len);
    for (rtype, flags, body) in records {
        assert!(
            producer.try_write(*rtype, *flags, body).unwrap(),
            "test records fit the ring"
        );
    }
    producer.publish();
    for _ in 0..=records.len() {
        match re.poll(&mut consumer, |_| Ok(Accept::Deliver)) {
            Err(e) => {
                // RING-13: the same error again, without touching the ring.
                let again = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap_err();
                assert_eq!(again, e);
                assert_eq!(re.failure(), Some(e));
                return Some(e.code);
            }
            Ok(polled) => {
                if let Some(Incoming::Message(m)) = polled.incoming {
                    m.payload.release();
                }
            }
        }
    }
    None
}

fn req(id: u64, payload_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = RequestHead {
        request_id: id,
        function_id: 0,
        content_type: 0,
        deadline_ns: 0,
        payload_len,
    }
    .encode()
    .to_vec();
    body.extend_from_slice(payload);
    body
}

#[test]
fn well_formed_raw_records_pass() {
    let records = vec![
        (TYPE_REQUEST, FLAG_FIRST, req(1, 6, b"ab")),
        (TYPE_CONT, 0, b"cd".to_vec()),
        (TYPE_CONT, FLAG_LAST | FLAG_SKIPPABLE, b"ef".to_vec()),
        (0x7777, FLAG_SKIPPABLE | FLAGS_SINGLE, vec![1, 2, 3]),
        (TYPE_REQUEST, FLAGS_SINGLE, req(2, 0, b"")),
    ];
    assert_eq!(first_error(RingKind::Request, 100, &records), None);
}

#[test]
fn out_of_place_and_unknown_types_are_unknown_record() {
    let resp = ResponseHead {
        request_id: 1,
        status: 0,
        content_type: 0,
        payload_len: 0,
    }
    .encode()
    .to_vec();
    let cases = [
        (RingKind::Request, TYPE_RESPONSE, resp.clone()),
        (RingKind::Request, TYPE_HELLO, 0u64.to_le_bytes().to_vec()),
        (RingKind::Request, TYPE_END, vec![]),
        (RingKind::Response, TYPE_REQUEST, req(1, 0, b"")),
        (RingKind::Response, TYPE_SHUTDOWN, vec![]),
        (RingKind::Channel, TYPE_RESPONSE, resp),
        (RingKind::Channel, TYPE_CHANNEL_OPEN, vec![0; 16]),
        (RingKind::Response, 0x0003, vec![]),
        (RingKind::Request, 0x7FFF, vec![]),
    ];
    for (kind, rtype, body) in cases {
        assert_eq!(
            first_error(kind, 100, &[(rtype, FLAGS_SINGLE, body)]),
            Some(ErrorCode::UnknownRecord),
            "{kind:?} {rtype:#x}"
        );
    }
}

#[test]
fn fragment_violations_are_bad_fragment() {
    let cases: Vec<(&str, Vec<RawRecord>)> = vec![
        (
            "CONT with no message",
            vec![(TYPE_CONT, FLAG_LAST, b"x".to_vec())],
        ),
        (
            "message interrupted by another",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 4, b"ab")),
                (TYPE_REQUEST, FLAGS_SINGLE, req(2, 0, b"")),
            ],
        ),
        (
            "message interrupted by a control record",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 4, b"ab")),
                (TYPE_SHUTDOWN, FLAGS_SINGLE, vec![]),
            ],
        ),
        (
            "message interrupted by a skippable record",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 4, b"ab")),
                (0x7000, FLAG_SKIPPABLE | FLAGS_SINGLE, vec![]),
            ],
        ),
        (
            "fragments exceed payload_len",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 3, b"ab")),
                (TYPE_CONT, FLAG_LAST, b"cd".to_vec()),
            ],
        ),
        (
            "first fragment exceeds payload_len",
            vec![(TYPE_REQUEST, FLAGS_SINGLE, req(1, 1, b"ab"))],
        ),
        (
            "LAST too early on the first record",
            vec![(TYPE_REQUEST, FLAGS_SINGLE, req(1, 3, b"ab"))],
        ),
        (
            "LAST too early on a CONT",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 9, b"ab")),
                (TYPE_CONT, FLAG_LAST, b"cd".to_vec()),
            ],
        ),
        (
            "complete without LAST",
            vec![(TYPE_REQUEST, FLAG_FIRST, req(1, 2, b"ab"))],
        ),
        (
            "CONT completes without LAST",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 4, b"ab")),
                (TYPE_CONT, 0, b"cd".to_vec()),
            ],
        ),
        (
            "first record without FIRST",
            vec![(TYPE_REQUEST, FLAG_LAST, req(1, 0, b""))],
        ),
        (
            "CONT with FIRST",
            vec![
                (TYPE_REQUEST, FLAG_FIRST, req(1, 4, b"ab")),
                (TYPE_CONT, FLAGS_SINGLE, b"cd".to_vec()),
            ],
        ),
        (
            "control record without LAST",
            vec![(TYPE_SHUTDOWN, FLAG_FIRST, vec![])],
        ),
        (
            "control record without FIRST",
            vec![(TYPE_CHANNEL_OPEN, FLAG_LAST, vec![0; 16])],
        ),
    ];
    for (what, records) in cases {
        assert_eq!(
            first_error(RingKind::Request, 100, &records),
            Some(ErrorCode::BadFragment),
            "{what}"
        );
    }
}

#[test]
fn body_violations_are_bad_record() {
    let cases: Vec<(&str, RingKind, Vec<RawRecord>)> = vec![
        (
            "payload_len above max_message_len",
            RingKind::Request,
            vec![(TYPE_REQUEST, FLAG_FIRST, req(1, 101, b"ab"))],
        ),
        (
            "huge payload_len refused before anything is allocated",
            RingKind::Request,
            vec![(TYPE_REQUEST, FLAG_FIRST, req(1, u64::MAX, b""))],
        ),
        (
            "request head too short",
            RingKind::Request,
            vec![(TYPE_REQUEST, FLAGS_SINGLE, req(1, 0, b"")[..39].to_vec())],
        ),
        (
            "request id 0",
            RingKind::Request,
            vec![(TYPE_REQUEST, FLAGS_SINGLE, req(0, 0, b""))],
        ),
        (
            "response head too short",
            RingKind::Response,
            vec![(TYPE_RESPONSE, FLAGS_SINGLE, vec![0; 23])],
        ),
        (
            "hello head too short",
            RingKind::Response,
            vec![(TYPE_HELLO, FLAGS_SINGLE, vec![0; 4])],
        ),
        (
            "data head too short",
            RingKind::Channel,
            vec![(TYPE_DATA, FLAGS_SINGLE, vec![0; 15])],
        ),
        (
            "SHUTDOWN with a body",
            RingKind::Request,
            vec![(TYPE_SHUTDOWN, FLAGS_SINGLE, vec![0; 8])],
        ),
        (
            "END with a body",
            RingKind::Channel,
            vec![(TYPE_END, FLAGS_SINGLE, vec![1])],
        ),
        (
            "CHANNEL_OPEN too short",
            RingKind::Response,
            vec![(TYPE_CHANNEL_OPEN, FLAGS_SINGLE, vec![0; 8])],
        ),
        (
            "CHANNEL_OPEN too long",
            RingKind::Response,
            vec![(TYPE_CHANNEL_OPEN, FLAGS_SINGLE, vec![0; 24])],
        ),
    ];
    for (what, kind, records) in cases {
        assert_eq!(
            first_error(kind, 100, &records),
            Some(ErrorCode::BadRecord),
            "{what}"
        );
    }
}

#[test]
fn an_accept_error_stops_the_reassembler() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Request, 100);
    assert!(producer
        .try_write(TYPE_REQUEST, FLAGS_SINGLE, &req(4, 0, b""))
        .unwrap());
    producer.publish();
    let err = re
        .poll(&mut consumer, |_| {
            Err(knit_core::Error::new(ErrorCode::BadRecord, "test refusal"))
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRecord);
    assert_eq!(
        re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap_err(),
        err
    );
}

#[test]
fn an_in_place_payload_dropped_without_release_is_released_by_the_next_poll() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Request, 100);
    assert!(producer
        .try_write(TYPE_REQUEST, FLAGS_SINGLE, &req(1, 1, b"a"))
        .unwrap());
    assert!(producer
        .try_write(TYPE_REQUEST, FLAGS_SINGLE, &req(2, 1, b"b"))
        .unwrap());
    producer.publish();
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    let Some(Incoming::Message(m)) = polled.incoming else {
        panic!("expected request 1")
    };
    assert_eq!(m.payload.bytes(), b"a");
    drop(m);
    // Not delivered again: the next poll releases it and delivers request 2.
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(polled.released, "the dropped record was released");
    let Some(Incoming::Message(m)) = polled.incoming else {
        panic!("expected request 2")
    };
    assert_eq!(m.payload.bytes(), b"b");
    m.payload.release();
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(polled.incoming.is_none());
}

#[test]
fn a_lent_record_rewritten_by_the_peer_is_bad_record() {
    let r = ring(4096);
    let mut producer = Producer::new(r);
    let mut consumer = Consumer::new(r);
    let mut re = Reassembler::new(RingKind::Request, 100);
    assert!(producer
        .try_write(TYPE_REQUEST, FLAGS_SINGLE, &req(1, 1, b"a"))
        .unwrap());
    producer.publish();
    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
    assert!(matches!(polled.incoming, Some(Incoming::Message(_))));
    drop(polled);
    // A hostile producer rewrites the published record's length while it is lent.
    r.data.write(0, &8u32.to_le_bytes()).unwrap();
    let err = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadRecord);
}
