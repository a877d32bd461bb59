//! Property tests for messages (spec/07), function tables (spec/05 §5.3) and typed arrays
//! (spec/09 §9.2): random payloads round-trip through fragmentation, and random bytes never
//! make a decoder misbehave.

use std::ptr::NonNull;

use knit_core::fntable::FunctionTable;
use knit_core::message::{Accept, Incoming, MessageHead, OutgoingMessage, Reassembler};
use knit_core::records::{
    DataHead, HelloHead, RequestHead, ResponseHead, RingKind, FLAG_FIRST, FLAG_LAST,
    FLAG_SKIPPABLE, TYPE_CHANNEL_OPEN, TYPE_CONT, TYPE_DATA, TYPE_END, TYPE_HELLO, TYPE_REQUEST,
    TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use knit_core::ring::{Consumer, Producer, RingRef, RING_CTRL_LEN};
use knit_core::typed_array::{self, Dtype, Shape};
use knit_core::SharedMem;
use proptest::prelude::*;

fn ring(cap: usize) -> RingRef<'static> {
    let words: &'static mut [u64] =
        Box::leak(vec![0u64; (RING_CTRL_LEN + cap) / 8].into_boxed_slice());
    let len = words.len() * 8;
    let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: the allocation is leaked (lives for 'static), 8-aligned, `len` bytes long, and
    // only accessed through the returned view afterwards.
    let mem = unsafe { SharedMem::new(ptr, len) };
    RingRef::new(
        mem.sub(0, RING_CTRL_LEN).unwrap(),
        mem.sub(RING_CTRL_LEN, cap).unwrap(),
    )
    .unwrap()
}

fn head_for(kind: u8, id: u64) -> (MessageHead, RingKind) {
    match kind % 4 {
        0 => (
            MessageHead::Request(RequestHead {
                request_id: id,
                function_id: 1,
                content_type: 0,
                deadline_ns: 0,
                payload_len: 0,
            }),
            RingKind::Request,
        ),
        1 => (
            MessageHead::Response(ResponseHead {
                request_id: id,
                status: 0,
                content_type: 2,
                payload_len: 0,
            }),
            RingKind::Response,
        ),
        2 => (
            MessageHead::Hello(HelloHead { payload_len: 0 }),
            RingKind::Response,
        ),
        _ => (
            MessageHead::Data(DataHead {
                content_type: 7,
                payload_len: 0,
            }),
            RingKind::Channel,
        ),
    }
}

/// Records of a message of `head_len` + `payload` bytes when each is filled to `max_body`.
fn expected_records(head_len: usize, payload: usize, max_body: usize) -> usize {
    let first = payload.min(max_body - head_len);
    1 + (payload - first).div_ceil(max_body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// MSG-1..MSG-5: whatever the sizes and however the consumer lags, the bytes arrive intact,
    /// in the fewest records.
    #[test]
    fn random_payloads_round_trip_through_fragmentation(
        cap_log in 7u32..13,
        sizes in proptest::collection::vec(0usize..20_000, 1..6),
        kind in 0u8..4,
        drains in proptest::collection::vec(0usize..4, 64),
        seed in any::<u8>(),
    ) {
        let r = ring(1usize << cap_log);
        let mut producer = Producer::new(r);
        let mut consumer = Consumer::new(r);
        let (_, ring_kind) = head_for(kind, 1);
        let mut re = Reassembler::new(ring_kind, 1 << 20);
        for (n, &size) in sizes.iter().enumerate() {
            let payload: Vec<u8> = (0..size).map(|i| (i as u8) ^ seed.wrapping_add(n as u8)).collect();
            let (head, _) = head_for(kind, n as u64 + 1);
            let mut msg = OutgoingMessage::new(head, &payload);
            let mut got = None;
            let mut step = 0usize;
            while got.is_none() {
                prop_assert!(step < 100_000, "no progress");
                msg.write_to(&mut producer).unwrap();
                producer.publish();
                // Poll a random number of times (0 lets the producer hit a full ring).
                for _ in 0..drains[step % drains.len()].max(usize::from(msg.is_done())) {
                    let polled = re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
                    if let Some(Incoming::Message(m)) = polled.incoming {
                        prop_assert_eq!(m.head, head.with_payload_len(size as u64));
                        got = Some(m.payload.bytes().to_vec());
                        m.payload.release();
                        consumer.publish_head();
                        break;
                    }
                }
                step += 1;
            }
            prop_assert_eq!(got.unwrap(), payload);
            prop_assert!(!re.in_message());
        }
    }

    /// MSG-5: the record count is the minimum for the ring's largest body.
    #[test]
    fn fragment_count_is_minimal(cap_log in 7u32..13, size in 0usize..20_000, kind in 0u8..4) {
        let cap = 1usize << cap_log;
        let max_body = cap / 2 - 8;
        let r = ring(cap);
        let mut producer = Producer::new(r);
        let mut consumer = Consumer::new(r);
        let (head, _) = head_for(kind, 1);
        let payload = vec![0xA5u8; size];
        let mut msg = OutgoingMessage::new(head, &payload);
        let mut records = 0usize;
        for _ in 0..100_000 {
            let done = msg.write_to(&mut producer).unwrap();
            producer.publish();
            while let Some(rec) = consumer.peek().unwrap() {
                records += 1;
                rec.consume();
            }
            consumer.publish_head();
            if done {
                break;
            }
        }
        prop_assert!(msg.is_done());
        prop_assert_eq!(records, expected_records(head.len(), size, max_body));
    }

    /// SEC-1: random records never panic the reassembler; whatever it delivers is consistent
    /// with its head, and after an error it keeps failing the same way.
    #[test]
    fn random_records_are_delivered_consistently_or_refused(
        kind in 0u8..3,
        recs in proptest::collection::vec(
            (0usize..10, any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64), 0u64..80),
            1..24,
        ),
    ) {
        let types = [TYPE_CONT, TYPE_REQUEST, TYPE_RESPONSE, TYPE_HELLO, TYPE_SHUTDOWN, TYPE_CHANNEL_OPEN, TYPE_DATA, TYPE_END, 0x0003, 0x4444];
        let ring_kind = [RingKind::Request, RingKind::Response, RingKind::Channel][usize::from(kind)];
        let r = ring(4096);
        let mut producer = Producer::new(r);
        let mut consumer = Consumer::new(r);
        let mut re = Reassembler::new(ring_kind, 64);
        for (t, flags, mut body, payload_len) in recs {
            let rtype = types[t];
            let flags = flags & (FLAG_FIRST | FLAG_LAST | FLAG_SKIPPABLE);
            // Give message heads a plausible payload_len so that valid messages also occur.
            if let Some(off) = knit_core::records::payload_len_offset(rtype) {
                if body.len() >= off + 8 {
                    body[off..off + 8].copy_from_slice(&payload_len.to_le_bytes());
                }
            }
            if !producer.try_write(rtype, flags, &body).unwrap() {
                break;
            }
        }
        producer.publish();
        for _ in 0..40 {
            match re.poll(&mut consumer, |_| Ok(Accept::Deliver)) {
                Ok(polled) => match polled.incoming {
                    Some(Incoming::Message(m)) => {
                        prop_assert_eq!(m.payload.bytes().len() as u64, m.head.payload_len());
                        prop_assert!(m.head.payload_len() <= 64);
                        m.payload.release();
                        consumer.publish_head();
                    }
                    Some(_) => {}
                    None => break,
                },
                Err(e) => {
                    prop_assert!(e.code.is_violation(), "{e}");
                    prop_assert_eq!(re.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap_err(), e);
                    break;
                }
            }
        }
    }

    /// FN-1: random bytes decode to a valid table or to BAD_RECORD, never a panic; a decoded
    /// table re-encodes to an equivalent one.
    #[test]
    fn function_table_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        match FunctionTable::decode(&bytes) {
            Ok(table) => prop_assert_eq!(FunctionTable::decode(&table.encode()).unwrap(), table),
            Err(e) => prop_assert_eq!(e.code, knit_core::ErrorCode::BadRecord),
        }
    }

    /// FN-1: valid tables round-trip and every name resolves to its id.
    #[test]
    fn function_tables_round_trip(names in proptest::collection::btree_set("[a-z][a-z0-9_.]{0,40}", 0..20)) {
        let pairs: Vec<(u32, &str)> = names.iter().enumerate().map(|(i, n)| (i as u32 * 3 + 1, n.as_str())).collect();
        let table = FunctionTable::new(pairs.iter().copied()).unwrap();
        let back = FunctionTable::decode(&table.encode()).unwrap();
        for (id, name) in pairs {
            prop_assert_eq!(back.lookup(name), Ok(id));
        }
    }

    /// CT-2: random bytes decode to a consistent typed array or INVALID_ARGUMENT, never a panic.
    #[test]
    fn typed_array_decode_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        match typed_array::decode(&bytes) {
            Ok(arr) => {
                let want = typed_array::element_bytes(arr.dtype, &arr.shape).unwrap();
                prop_assert_eq!(arr.elements.len() as u64, want);
                prop_assert_eq!(arr.elements.end, bytes.len());
            }
            Err(e) => prop_assert_eq!(e.code, knit_core::ErrorCode::InvalidArgument),
        }
    }

    /// CT-2: encoded arrays decode to the same dtype, shape and elements.
    #[test]
    fn typed_arrays_round_trip(dt in 0usize..13, dims in proptest::collection::vec(0u64..5, 0..5)) {
        let dtype = Dtype::ALL[dt];
        let shape = Shape::new(&dims).unwrap();
        let n = typed_array::element_bytes(dtype, &shape).unwrap() as usize;
        let elements: Vec<u8> = (0..n).map(|i| i as u8).collect();
        let bytes = typed_array::encode(dtype, &shape, &elements).unwrap();
        let arr = typed_array::decode(&bytes).unwrap();
        prop_assert_eq!(arr.dtype, dtype);
        prop_assert_eq!(arr.shape.dims(), &dims[..]);
        prop_assert_eq!(&bytes[arr.elements], &elements[..]);
    }
}
