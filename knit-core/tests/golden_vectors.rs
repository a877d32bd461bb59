//! The golden vectors of `conformance/vectors/v1/` (VER-4): the core still produces exactly
//! these bytes, and decodes them back to exactly the values their JSON descriptions list.

#[path = "../examples/gen_vectors.rs"]
mod gen_vectors;

use std::path::PathBuf;

use gen_vectors::Aligned;
use knit_core::crc32::crc32;
use knit_core::geometry::Geometry;
use knit_core::layout::{ParticipantState, RegionHeader, Role, HEADER_CRC_OFFSET, HEADER_LEN};
use knit_core::participant::Participant;
use knit_core::region::Region;
use knit_core::ring::{Consumer, Producer, RingRef, RING_CTRL_LEN};
use serde_json::Value;
use zerocopy::FromBytes;

/// The structure vectors; the record vectors are listed by [`record_names`].
const NAMES: [&str; 4] = ["region", "header", "participant", "ring-after-wrap"];

/// The record-kind vectors, as the generator names them.
fn record_names() -> Vec<&'static str> {
    gen_vectors::record_vectors()
        .iter()
        .map(|v| v.name)
        .collect()
}

/// Every vector.
fn all_names() -> Vec<&'static str> {
    NAMES.iter().copied().chain(record_names()).collect()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors/v1")
}

fn bin(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.bin"))).unwrap_or_else(|e| panic!("{name}.bin: {e}"))
}

fn description(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}.json: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}.json: {e}"))
}

fn unhex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "hex string of odd length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn u64_of(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().expect("decimal string"),
        Value::Number(n) => n.as_u64().expect("unsigned number"),
        other => panic!("not an integer: {other}"),
    }
}

/// A field of a description: name, offset, size, type, value.
struct Field<'v> {
    name: &'v str,
    offset: usize,
    size: usize,
    ty: &'v str,
    value: &'v Value,
}

fn fields(d: &Value) -> Vec<Field<'_>> {
    d["fields"]
        .as_array()
        .expect("fields array")
        .iter()
        .map(|f| Field {
            name: f["name"].as_str().expect("name"),
            offset: usize::try_from(f["offset"].as_u64().expect("offset")).unwrap(),
            size: usize::try_from(f["size"].as_u64().expect("size")).unwrap(),
            ty: f["type"].as_str().expect("type"),
            value: &f["value"],
        })
        .collect()
}

/// The wire bytes a field's JSON value stands for (CONV-2: little-endian).
fn encode(f: &Field<'_>) -> Vec<u8> {
    let bytes = match f.ty {
        "u16" => u16::try_from(u64_of(f.value))
            .unwrap()
            .to_le_bytes()
            .to_vec(),
        "u32" => u32::try_from(u64_of(f.value))
            .unwrap()
            .to_le_bytes()
            .to_vec(),
        "u64" => {
            assert!(f.value.is_string(), "{}: a u64 is a decimal string", f.name);
            u64_of(f.value).to_le_bytes().to_vec()
        }
        "bytes" => unhex(f.value.as_str().expect("hex string")),
        "utf8z" => {
            let mut b = f.value.as_str().expect("string").as_bytes().to_vec();
            assert!(b.len() <= f.size, "{}: text longer than its field", f.name);
            b.resize(f.size, 0);
            b
        }
        other => panic!("{}: unknown type {other}", f.name),
    };
    assert_eq!(bytes.len(), f.size, "{}: size does not match type", f.name);
    bytes
}

fn value_of(d: &Value, name: &str) -> u64 {
    let f = fields(d)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"));
    u64_of(f.value)
}

fn offset_of(d: &Value, name: &str) -> usize {
    fields(d)
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no field {name}"))
        .offset
}

#[test]
fn the_core_still_produces_exactly_the_files() {
    let generated = gen_vectors::all();
    assert_eq!(
        generated.len(),
        2 * all_names().len(),
        "one .bin and one .json per vector"
    );
    for name in all_names() {
        for ext in ["bin", "json"] {
            let file = format!("{name}.{ext}");
            let fresh = generated
                .iter()
                .find(|f| f.name == file)
                .unwrap_or_else(|| panic!("{file} not generated"));
            let on_disk =
                std::fs::read(dir().join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(
                fresh.bytes == on_disk,
                "{file} differs from what the core produces: a released vector never changes (VER-4)"
            );
        }
    }
}

#[test]
fn every_field_has_its_described_bytes() {
    for name in all_names() {
        let d = description(name);
        let image = bin(name);
        assert_eq!(d["file"], format!("{name}.bin"));
        assert_eq!(u64_of(&d["size"]), image.len() as u64, "{name}: size");
        let mut covered = vec![false; image.len()];
        for f in fields(&d) {
            let want = encode(&f);
            let got = image
                .get(f.offset..f.offset + f.size)
                .unwrap_or_else(|| panic!("{name}: {} outside the image", f.name));
            assert_eq!(got, &want[..], "{name}: {}", f.name);
            for c in &mut covered[f.offset..f.offset + f.size] {
                assert!(!*c, "{name}: {} overlaps another field", f.name);
                *c = true;
            }
        }
        if d["rest_zero"] == Value::Bool(true) {
            // LAYOUT-2: the description is complete; every other byte is zero.
            for (i, (&b, &c)) in image.iter().zip(&covered).enumerate() {
                assert!(
                    c || b == 0,
                    "{name}: byte {i:#x} is {b:#x} but no field covers it"
                );
            }
        }
    }
}

#[test]
fn the_region_attaches_and_its_geometry_is_the_description() {
    let desc = description("region");
    let mut mem = Aligned::from_bytes(&bin("region"));
    let region = Region::attach(mem.mem()).expect("the golden region attaches");
    let g = *region.geometry();
    let header = |n: &str| value_of(&desc, &format!("header.{n}"));
    assert_eq!(g.region_len() as u64, header("region_len"));
    assert_eq!(u64::from(g.header_len()), header("header_len"));
    assert_eq!(u64::from(g.minor()), header("minor"));
    assert_eq!(g.required_features(), header("required_features"));
    assert_eq!(g.optional_features(), header("optional_features"));
    assert_eq!(u64::from(g.cache_line()), header("cache_line"));
    assert_eq!(u64::from(g.worker_slots()), header("worker_slots"));
    assert_eq!(u64::from(g.channel_slots()), header("channel_slots"));
    assert_eq!(u64::from(g.inflight_max()), header("inflight_max"));
    assert_eq!(u64::from(g.request_ring_cap()), header("request_ring_cap"));
    assert_eq!(
        u64::from(g.response_ring_cap()),
        header("response_ring_cap")
    );
    assert_eq!(u64::from(g.channel_ring_cap()), header("channel_ring_cap"));
    assert_eq!(
        u64::from(g.participant_stride()),
        header("participant_stride")
    );
    assert_eq!(g.max_message_len(), header("max_message_len"));
    assert_eq!(g.participants_off(), header("participants_off"));
    assert_eq!(g.mailboxes_off(), header("mailboxes_off"));
    assert_eq!(g.mailbox_stride(), header("mailbox_stride"));
    assert_eq!(g.channels_off(), header("channels_off"));
    assert_eq!(g.channel_stride(), header("channel_stride"));
    // The inputs reproduce the geometry (LAYOUT-1): another creator gets the same bytes.
    let params = &desc["inputs"]["params"];
    assert_eq!(u64::from(g.worker_slots()), u64_of(&params["worker_slots"]));
    assert_eq!(g.max_message_len(), u64_of(&params["max_message_len"]));

    // The sections the core hands out are where the description puts their fields.
    let mbx = g.mailbox_layout(0).unwrap();
    assert_eq!(offset_of(&desc, "mailbox[0].cancel[0]"), mbx.cancel.offset);
    assert_eq!(
        offset_of(&desc, "mailbox[0].request_ring.tail"),
        mbx.request_ctrl.offset
    );
    assert_eq!(
        offset_of(&desc, "mailbox[0].response_ring.head"),
        mbx.response_ctrl.offset + 0x40
    );
    let chan = g.channel_layout(0).unwrap();
    assert_eq!(offset_of(&desc, "channel[0].state"), chan.ctrl.offset);
    assert_eq!(
        offset_of(&desc, "channel[0].ring.tail"),
        chan.ring_ctrl.offset
    );
    assert_eq!(
        offset_of(&desc, "participant[1].state"),
        g.participant_range(1).unwrap().0
    );

    // The host entry (PART-1).
    let host = region.participant(0).unwrap().snapshot().unwrap();
    assert_eq!(host.state as u64, value_of(&desc, "participant[0].state"));
    let id = host.identity.expect("ACTIVE has an identity");
    assert_eq!(id.role, Role::Host);
    assert_eq!(u64::from(id.pid), value_of(&desc, "participant[0].pid"));
    assert_eq!(u64::from(id.pid), u64_of(&desc["inputs"]["host"]["pid"]));
    assert_eq!(id.start_time, value_of(&desc, "participant[0].start_time"));
    assert_eq!(id.impl_name(), desc["inputs"]["host"]["impl_name"].as_str());
    assert_eq!(
        region.participant(1).unwrap().state().unwrap(),
        ParticipantState::Empty
    );
    assert_eq!(
        u64::from(region.poison_code()),
        value_of(&desc, "control.poison_code")
    );
}

#[test]
fn the_header_checksum_is_the_crc_of_its_bytes() {
    let image = bin("header");
    assert_eq!(image.len(), HEADER_LEN);
    assert_eq!(
        &image[..],
        &bin("region")[..HEADER_LEN],
        "header.bin is the region's first 256 bytes"
    );
    // HDR-4, computed independently of RegionHeader::checksum.
    let mut zeroed = image.clone();
    zeroed[HEADER_CRC_OFFSET..HEADER_CRC_OFFSET + 4].fill(0);
    assert_eq!(
        u64::from(crc32(&zeroed)),
        value_of(&description("header"), "header.header_crc")
    );
    let h = RegionHeader::read_from_bytes(&image).unwrap();
    let region_len = usize::try_from(h.region_len.get()).unwrap();
    let g = Geometry::from_header(&h, region_len).expect("the golden header validates");
    assert_eq!(g, Geometry::compute(&gen_vectors::PARAMS).unwrap());
    assert_eq!(
        g.to_header(h.region_id, h.created_unix_ns.get()),
        h,
        "to_header rebuilds the same bytes"
    );
}

#[test]
fn the_participant_entry_decodes() {
    let d = description("participant");
    let mut mem = Aligned::from_bytes(&bin("participant"));
    let index = u32::try_from(u64_of(&d["inputs"]["index"])).unwrap();
    let s = Participant::new(mem.mem(), index)
        .unwrap()
        .snapshot()
        .expect("a valid entry");
    assert_eq!(s.state, ParticipantState::Active);
    assert_eq!(s.state as u64, value_of(&d, "participant[1].state"));
    assert_eq!(u64::from(s.epoch), value_of(&d, "participant[1].epoch"));
    let id = s.identity.expect("ACTIVE has an identity");
    assert_eq!(id.role as u64, value_of(&d, "participant[1].role"));
    assert_eq!(id.role, Role::Worker);
    assert_eq!(u64::from(id.pid), value_of(&d, "participant[1].pid"));
    assert_eq!(id.start_time, value_of(&d, "participant[1].start_time"));
    assert_eq!(id.heartbeat_ns, value_of(&d, "participant[1].heartbeat_ns"));
    assert_eq!(
        id.impl_name(),
        d["inputs"]["identity"]["impl_name"].as_str()
    );
}

#[test]
fn the_wrapped_ring_decodes_through_the_consumer() {
    let d = description("ring-after-wrap");
    let image = bin("ring-after-wrap");
    let cap = usize::try_from(u64_of(&d["inputs"]["capacity"])).unwrap();
    assert_eq!(image.len(), RING_CTRL_LEN + cap);
    let records: Vec<(u16, u16, Vec<u8>)> = d["inputs"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let rtype = u16::try_from(u64_of(&r["type"])).unwrap();
            let flags = u16::try_from(u64_of(&r["flags"])).unwrap();
            (rtype, flags, unhex(r["body"].as_str().unwrap()))
        })
        .collect();
    let [rec_a, rec_b, rec_c] = &records[..] else {
        panic!("three records")
    };

    // Bring a consumer to the state the steps describe (A and B consumed), then let it read
    // the golden bytes: it must skip the PAD (RING-10) and deliver C from offset 0.
    let mut mem = Aligned::zeroed(image.len());
    let view = mem.mem();
    let ring = RingRef::new(
        view.sub(0, RING_CTRL_LEN).unwrap(),
        view.sub(RING_CTRL_LEN, cap).unwrap(),
    )
    .unwrap();
    let mut producer = Producer::new(ring);
    let mut consumer = Consumer::new(ring);
    for (rtype, flags, body) in [rec_a, rec_b] {
        assert!(producer.try_write(*rtype, *flags, body).unwrap());
    }
    producer.publish();
    for _ in 0..2 {
        consumer.peek().unwrap().unwrap().consume();
    }
    consumer.publish_head();
    view.write(0, &image).unwrap();
    assert_eq!(ring.load_head(), value_of(&d, "ring.head"));
    assert_eq!(ring.load_tail(), value_of(&d, "ring.tail"));

    let record = consumer
        .peek()
        .expect("valid golden ring")
        .expect("record C");
    assert_eq!(record.header().rtype, rec_c.0);
    assert_eq!(record.header().flags, rec_c.1);
    assert_eq!(
        u64::from(record.header().len),
        value_of(&d, "record[c].len")
    );
    assert_eq!(record.body(), &rec_c.2[..]);
    record.consume();
    assert_eq!(consumer.head(), value_of(&d, "ring.tail"));
    assert!(consumer.peek().unwrap().is_none(), "nothing after C");
    // The PAD the consumer skipped is where the description says, and fills the data area.
    let pad = offset_of(&d, "record[pad].len") - RING_CTRL_LEN;
    assert_eq!(pad as u64, value_of(&d, "ring.head") % cap as u64);
    assert_eq!(
        pad + 8 + usize::try_from(value_of(&d, "record[pad].len")).unwrap(),
        cap
    );
}

/// Each record vector decodes, through the core's consumer and reassembler for its ring kind,
/// to one message or control record whose head is what its description lists.
#[test]
fn the_record_vectors_decode_through_the_reassembler() {
    use knit_core::message::{Accept, Incoming, MessageHead, Reassembler};
    use knit_core::records::RingKind;

    for name in record_names() {
        let d = description(name);
        let kind = match d["validate"]["ring_kind"].as_str() {
            Some("request") => RingKind::Request,
            Some("response") => RingKind::Response,
            Some("channel") => RingKind::Channel,
            other => panic!("{name}: ring kind {other:?}"),
        };
        let image = bin(name);
        let mut mem = Aligned::from_bytes(&image);
        let view = mem.mem();
        let ring = RingRef::new(
            view.sub(0, RING_CTRL_LEN).unwrap(),
            view.sub(RING_CTRL_LEN, image.len() - RING_CTRL_LEN)
                .unwrap(),
        )
        .unwrap();
        let mut consumer = Consumer::new(ring);
        let mut reassembler = Reassembler::new(kind, 1 << 20);
        let mut delivered = None;
        for _ in 0..4 {
            let polled = reassembler
                .poll(&mut consumer, |_| Ok(Accept::Deliver))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            if let Some(incoming) = polled.incoming {
                delivered = Some(match incoming {
                    Incoming::Message(m) => {
                        let payload = m.payload.into_vec().unwrap();
                        match m.head {
                            MessageHead::Request(r) => {
                                assert_eq!(r.request_id, value_of(&d, "record.body.request_id"));
                                assert_eq!(
                                    u64::from(r.function_id),
                                    value_of(&d, "record.body.function_id")
                                );
                                assert_eq!(payload, gen_vectors::small_payload());
                            }
                            MessageHead::Response(r) => {
                                assert_eq!(r.request_id, value_of(&d, "record.body.request_id"));
                                assert_eq!(u64::from(r.status), value_of(&d, "record.body.status"));
                                assert_eq!(payload, gen_vectors::small_payload());
                            }
                            MessageHead::Hello(h) => {
                                assert_eq!(h.payload_len, value_of(&d, "record.body.payload_len"));
                                let t =
                                    knit_core::fntable::FunctionTable::decode(&payload).unwrap();
                                for (id, fname) in gen_vectors::HELLO_FUNCTIONS {
                                    assert_eq!(t.lookup(fname), Ok(id));
                                }
                            }
                            MessageHead::Data(h) if name == "record-cont" => {
                                assert_eq!(
                                    h.payload_len,
                                    value_of(&d, "record[0].body.payload_len")
                                );
                                assert_eq!(payload, gen_vectors::cont_payload());
                            }
                            MessageHead::Data(h) => {
                                assert_eq!(h.payload_len, value_of(&d, "record.body.payload_len"));
                                assert_eq!(payload, gen_vectors::small_payload());
                            }
                        }
                        name
                    }
                    Incoming::Shutdown => "record-shutdown",
                    Incoming::End => "record-end",
                    Incoming::ChannelOpen(o) => {
                        assert_eq!(u64::from(o.epoch), value_of(&d, "record.body.epoch"));
                        assert_eq!(o.tag, value_of(&d, "record.body.tag"));
                        "record-channel-open"
                    }
                });
                break;
            }
        }
        assert_eq!(delivered, Some(name), "{name}: delivered what it holds");
        assert_eq!(
            consumer.head(),
            value_of(&d, "ring.tail"),
            "{name}: all consumed"
        );
    }
}
