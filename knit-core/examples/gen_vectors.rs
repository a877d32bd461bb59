//! Generates the golden byte vectors of `conformance/vectors/v1/` (VER-4):
//!
//! ```text
//! cargo run -p knit-core --example gen_vectors -- conformance/vectors/v1
//! ```
//!
//! Each vector is a byte image (`*.bin`) made by the core from fixed inputs, and a JSON
//! description (`*.json`) listing every field with its name, offset, size, type and value, the
//! values taken from the inputs (parameters, identities, the computed geometry), not read back
//! from the image. The output is deterministic; `tests/golden_vectors.rs` regenerates it and
//! checks it against the files, and decodes the files back independently.
//!
//! This file is also compiled into that test (`#[path]`), so it holds no `main`-only logic.

use std::fmt::Write as _;
use std::ptr::NonNull;

use knit_core::geometry::{Geometry, Params};
use knit_core::layout::{
    CH_ABORT_CODE, CH_EPOCH, CH_READER, CH_RELEASED, CH_STATE, CH_TAG, CH_WRITER, HEADER_LEN,
    IMPL_NAME_LEN, INIT_STATE_OFFSET, POISONED_BY_OFFSET, POISON_CODE_OFFSET, P_BELL_SEQ,
    P_BELL_SLEEPERS, P_EPOCH, P_HEARTBEAT, P_IMPL_NAME, P_PID, P_ROLE, P_START_TIME, P_STATE,
};
use knit_core::message::{MessageHead, OutgoingMessage};
use knit_core::participant::{Identity, Participant};
use knit_core::records::{
    ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead, FLAGS_SINGLE, TYPE_CHANNEL_OPEN,
    TYPE_CONT, TYPE_DATA, TYPE_END, TYPE_HELLO, TYPE_REQUEST, TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use knit_core::region::{HostIdentity, Region};
use knit_core::ring::{Consumer, Producer, RingRef, HEAD_OFFSET, RING_CTRL_LEN, TAIL_OFFSET};
use knit_core::SharedMem;
use serde_json::{json, Value};

/// The region's parameters: small, so the image stays small.
pub const PARAMS: Params = Params {
    worker_slots: 1,
    channel_slots: 1,
    inflight_max: 4,
    request_ring_cap: 4096,
    response_ring_cap: 4096,
    channel_ring_cap: 4096,
    max_message_len: 1 << 20,
};
/// `region_id`: the bytes 00 to 0f.
pub const REGION_ID: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
/// `created_unix_ns`: 2023-11-14T22:13:20Z.
pub const CREATED_UNIX_NS: u64 = 1_700_000_000_000_000_000;
/// The host of the region vector.
pub const HOST: HostIdentity<'static> = HostIdentity {
    pid: 4242,
    start_time: 123_456,
    impl_name: "knit-rs 1.0",
};
/// The worker of the participant vector (entry 1).
pub const WORKER: Identity<'static> = Identity {
    pid: 4243,
    start_time: 123_457,
    impl_name: "knit-rs 1.0",
};
/// The worker's `heartbeat_ns` in the participant vector.
pub const WORKER_HEARTBEAT_NS: u64 = 5_000_000_000;
/// Data bytes of the ring vector.
pub const RING_CAP: usize = 4096;
/// Payload bytes of each DATA record of the ring vector: with its 16-byte head and 8-byte
/// record header a record takes 1512 bytes, so the third one must wrap.
pub const RING_PAYLOAD_LEN: usize = 1484;

/// One output file.
pub struct VectorFile {
    /// File name inside the vector directory.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// A field's value, typed as in the JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Val {
    /// Little-endian u16; JSON number.
    U16(u16),
    /// Little-endian u32; JSON number.
    U32(u32),
    /// Little-endian u64; JSON decimal string (exact in every JSON parser).
    U64(u64),
    /// Raw bytes; JSON lowercase hex string.
    Bytes(Vec<u8>),
    /// UTF-8 text zero-padded to `size` bytes; JSON string.
    Utf8z(String, usize),
}

impl Val {
    /// Bytes the field occupies.
    pub fn size(&self) -> usize {
        match self {
            Val::U16(_) => 2,
            Val::U32(_) => 4,
            Val::U64(_) => 8,
            Val::Bytes(b) => b.len(),
            Val::Utf8z(_, size) => *size,
        }
    }

    /// The `type` string of the JSON.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::U16(_) => "u16",
            Val::U32(_) => "u32",
            Val::U64(_) => "u64",
            Val::Bytes(_) => "bytes",
            Val::Utf8z(..) => "utf8z",
        }
    }

    fn json(&self) -> Value {
        match self {
            Val::U16(v) => json!(v),
            Val::U32(v) => json!(v),
            Val::U64(v) => json!(v.to_string()),
            Val::Bytes(b) => json!(hex(b)),
            Val::Utf8z(s, _) => json!(s),
        }
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// A named value at an offset of an image.
pub struct Field {
    /// Dotted name, e.g. `header.region_len` or `participant[0].pid`.
    pub name: String,
    /// Offset from the start of the image.
    pub offset: usize,
    /// The value.
    pub val: Val,
}

fn field(name: impl Into<String>, offset: usize, val: Val) -> Field {
    Field {
        name: name.into(),
        offset,
        val,
    }
}

fn fields_json(fields: &[Field]) -> Value {
    Value::Array(
        fields
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "offset": f.offset,
                    "size": f.val.size(),
                    "type": f.val.type_name(),
                    "value": f.val.json(),
                })
            })
            .collect(),
    )
}

/// 8-aligned private memory, handed out only as [`SharedMem`].
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        Aligned {
            words: vec![0; len.div_ceil(8).max(1)],
            len,
        }
    }

    /// A copy of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut a = Aligned::zeroed(bytes.len());
        a.mem().write(0, bytes).expect("same length");
        a
    }

    /// The view. The `&mut` borrow keeps every other access away while it lives.
    pub fn mem(&mut self) -> SharedMem<'_> {
        let ptr = NonNull::new(self.words.as_mut_ptr().cast::<u8>()).expect("vec pointer");
        // SAFETY: `words` holds at least `len` bytes, 8-aligned, for as long as the `&mut self`
        // borrow that the view carries; nothing else accesses them meanwhile.
        unsafe { SharedMem::new(ptr, self.len) }
    }

    /// A copy of the bytes.
    pub fn copy_out(&mut self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        self.mem().read(0, &mut out).expect("same length");
        out
    }
}

/// The header fields of `g` with the given identity, at offsets from the region start.
fn header_fields(g: &Geometry) -> Vec<Field> {
    let crc = g.to_header(REGION_ID, CREATED_UNIX_NS).header_crc.get();
    vec![
        field("header.magic", 0x00, Val::Bytes(b"KNIT\r\n\x1a\n".to_vec())),
        field("header.major", 0x08, Val::U16(1)),
        field("header.minor", 0x0A, Val::U16(0)),
        field("header.header_len", 0x0C, Val::U32(256)),
        field("header.region_len", 0x10, Val::U64(g.region_len() as u64)),
        field("header.required_features", 0x18, Val::U64(0)),
        field(
            "header.optional_features",
            0x20,
            Val::U64(g.optional_features()),
        ),
        field("header.cache_line", 0x28, Val::U32(64)),
        field("header.worker_slots", 0x2C, Val::U32(PARAMS.worker_slots)),
        field("header.channel_slots", 0x30, Val::U32(PARAMS.channel_slots)),
        field("header.inflight_max", 0x34, Val::U32(PARAMS.inflight_max)),
        field(
            "header.request_ring_cap",
            0x38,
            Val::U32(PARAMS.request_ring_cap),
        ),
        field(
            "header.response_ring_cap",
            0x3C,
            Val::U32(PARAMS.response_ring_cap),
        ),
        field(
            "header.channel_ring_cap",
            0x40,
            Val::U32(PARAMS.channel_ring_cap),
        ),
        field("header.participant_stride", 0x44, Val::U32(128)),
        field(
            "header.max_message_len",
            0x48,
            Val::U64(PARAMS.max_message_len),
        ),
        field(
            "header.participants_off",
            0x50,
            Val::U64(g.participants_off()),
        ),
        field("header.mailboxes_off", 0x58, Val::U64(g.mailboxes_off())),
        field("header.mailbox_stride", 0x60, Val::U64(g.mailbox_stride())),
        field("header.channels_off", 0x68, Val::U64(g.channels_off())),
        field("header.channel_stride", 0x70, Val::U64(g.channel_stride())),
        field("header.created_unix_ns", 0x78, Val::U64(CREATED_UNIX_NS)),
        field("header.region_id", 0x80, Val::Bytes(REGION_ID.to_vec())),
        field("header.header_crc", 0xF8, Val::U32(crc)),
    ]
}

/// Fields of a participant entry at `base`, named `prefix.field`.
#[allow(clippy::too_many_arguments)]
fn participant_fields(
    prefix: &str,
    base: usize,
    state: u32,
    role: u32,
    epoch: u32,
    id: Option<&Identity<'_>>,
    heartbeat_ns: u64,
) -> Vec<Field> {
    let (pid, start_time, name) = id.map_or((0, 0, ""), |i| (i.pid, i.start_time, i.impl_name));
    let f = |name: &str, off: usize, val: Val| field(format!("{prefix}.{name}"), base + off, val);
    vec![
        f("state", P_STATE, Val::U32(state)),
        f("role", P_ROLE, Val::U32(role)),
        f("pid", P_PID, Val::U32(pid)),
        f("epoch", P_EPOCH, Val::U32(epoch)),
        f("start_time", P_START_TIME, Val::U64(start_time)),
        f("heartbeat_ns", P_HEARTBEAT, Val::U64(heartbeat_ns)),
        f(
            "impl_name",
            P_IMPL_NAME,
            Val::Utf8z(name.to_string(), IMPL_NAME_LEN),
        ),
        f("bell_seq", P_BELL_SEQ, Val::U32(0)),
        f("bell_sleepers", P_BELL_SLEEPERS, Val::U32(0)),
    ]
}

fn ring_ctrl_fields(prefix: &str, base: usize, tail: u64, head: u64) -> Vec<Field> {
    vec![
        field(format!("{prefix}.tail"), base + TAIL_OFFSET, Val::U64(tail)),
        field(format!("{prefix}.head"), base + HEAD_OFFSET, Val::U64(head)),
    ]
}

/// The formatted region: its bytes and every field.
pub fn region_vector() -> (Vec<u8>, Vec<Field>) {
    let g = Geometry::compute(&PARAMS).expect("valid params");
    let mut buf = Aligned::zeroed(g.region_len());
    Region::format(buf.mem(), &PARAMS, &HOST, REGION_ID, CREATED_UNIX_NS).expect("format");
    let bytes = buf.copy_out();

    let mut fields = header_fields(&g);
    fields.push(field("control.init_state", INIT_STATE_OFFSET, Val::U32(2)));
    fields.push(field(
        "control.poison_code",
        POISON_CODE_OFFSET,
        Val::U32(0),
    ));
    fields.push(field(
        "control.poisoned_by",
        POISONED_BY_OFFSET,
        Val::U32(0),
    ));
    let (p0, _) = g.participant_range(0).expect("host entry");
    fields.extend(participant_fields(
        "participant[0]",
        p0,
        3,
        1,
        0,
        Some(&HOST),
        0,
    ));
    let (p1, _) = g.participant_range(1).expect("worker entry");
    fields.extend(participant_fields("participant[1]", p1, 0, 0, 0, None, 0));
    let m = g.mailbox_layout(0).expect("mailbox 0");
    for i in 0..PARAMS.inflight_max as usize {
        fields.push(field(
            format!("mailbox[0].cancel[{i}]"),
            m.cancel.offset + 8 * i,
            Val::U64(0),
        ));
    }
    fields.extend(ring_ctrl_fields(
        "mailbox[0].request_ring",
        m.request_ctrl.offset,
        0,
        0,
    ));
    fields.extend(ring_ctrl_fields(
        "mailbox[0].response_ring",
        m.response_ctrl.offset,
        0,
        0,
    ));
    let c = g.channel_layout(0).expect("channel 0");
    let ch = |name: &str, off: usize, val: Val| {
        field(format!("channel[0].{name}"), c.ctrl.offset + off, val)
    };
    fields.extend([
        ch("state", CH_STATE, Val::U32(0)),
        ch("epoch", CH_EPOCH, Val::U32(0)),
        ch("writer", CH_WRITER, Val::U32(0)),
        ch("reader", CH_READER, Val::U32(0)),
        ch("tag", CH_TAG, Val::U64(0)),
        ch("abort_code", CH_ABORT_CODE, Val::U32(0)),
        ch("released", CH_RELEASED, Val::U32(0)),
    ]);
    fields.extend(ring_ctrl_fields(
        "channel[0].ring",
        c.ring_ctrl.offset,
        0,
        0,
    ));
    (bytes, fields)
}

/// The worker entry after reserve, claim and activate.
pub fn participant_vector() -> (Vec<u8>, Vec<Field>) {
    let mut buf = Aligned::zeroed(128);
    let p = Participant::new(buf.mem(), 1).expect("entry");
    p.reserve().expect("reserve");
    p.claim().expect("claim");
    p.activate(&WORKER, WORKER_HEARTBEAT_NS).expect("activate");
    let fields = participant_fields(
        "participant[1]",
        0,
        3,
        2,
        1,
        Some(&WORKER),
        WORKER_HEARTBEAT_NS,
    );
    (buf.copy_out(), fields)
}

/// The DATA record body number `n` of the ring vector: a 16-byte DATA head (BYTES), then a
/// payload of `n`-dependent bytes.
pub fn ring_body(n: u8) -> Vec<u8> {
    let mut body = DataHead {
        content_type: 0,
        payload_len: RING_PAYLOAD_LEN as u64,
    }
    .encode()
    .to_vec();
    body.extend((0..RING_PAYLOAD_LEN).map(|i| (i as u8).wrapping_mul(7).wrapping_add(n)));
    body
}

/// A ring (128-byte control block, then 4096 data bytes) after a wrap: records A and B written
/// and consumed, then record C, which does not fit before the end, so a PAD fills the end and C
/// starts at offset 0.
pub fn ring_vector() -> (Vec<u8>, Vec<Field>) {
    let mut buf = Aligned::zeroed(RING_CTRL_LEN + RING_CAP);
    {
        let mem = buf.mem();
        let ring = RingRef::new(
            mem.sub(0, RING_CTRL_LEN).expect("ctrl"),
            mem.sub(RING_CTRL_LEN, RING_CAP).expect("data"),
        )
        .expect("ring");
        let mut producer = Producer::new(ring);
        let mut consumer = Consumer::new(ring);
        for n in [0xA0, 0xB0] {
            assert!(producer
                .try_write(TYPE_DATA, FLAGS_SINGLE, &ring_body(n))
                .expect("write"));
        }
        producer.publish();
        for _ in 0..2 {
            consumer.peek().expect("peek").expect("a record").consume();
        }
        consumer.publish_head();
        assert!(producer
            .try_write(TYPE_DATA, FLAGS_SINGLE, &ring_body(0xC0))
            .expect("write"));
        producer.publish();
    }
    let bytes = buf.copy_out();

    let body_len = ring_body(0).len(); // 1500
    let record = 8 + body_len.next_multiple_of(8); // 1512
    let pad_pos = 2 * record;
    let pad_len = RING_CAP - pad_pos - 8;
    let tail = (RING_CAP + record) as u64;
    let d = RING_CTRL_LEN;
    let c_body = ring_body(0xC0);
    let mut fields = ring_ctrl_fields("ring", 0, tail, pad_pos as u64);
    fields.extend([
        field("record[pad].len", d + pad_pos, Val::U32(pad_len as u32)),
        field("record[pad].type", d + pad_pos + 4, Val::U16(1)),
        field("record[pad].flags", d + pad_pos + 6, Val::U16(0)),
        field("record[c].len", d, Val::U32(c_body.len() as u32)),
        field("record[c].type", d + 4, Val::U16(TYPE_DATA)),
        field("record[c].flags", d + 6, Val::U16(FLAGS_SINGLE)),
        field("record[c].body.content_type", d + 8, Val::U32(0)),
        field("record[c].body.reserved", d + 12, Val::U32(0)),
        field(
            "record[c].body.payload_len",
            d + 16,
            Val::U64(RING_PAYLOAD_LEN as u64),
        ),
        field(
            "record[c].body.payload",
            d + 24,
            Val::Bytes(c_body[16..].to_vec()),
        ),
        // Between `len` and the record's size: zero (spec/03 §3.2).
        field(
            "record[c].padding",
            d + 8 + body_len,
            Val::Bytes(vec![0; record - 8 - body_len]),
        ),
    ]);
    (bytes, fields)
}

/// Payload bytes of the one-record vectors: 00 01 .. 0f.
pub fn small_payload() -> Vec<u8> {
    (0u8..16).collect()
}

/// Payload of the fragmented DATA vector (`record-cont`): 3000 bytes, so that the first record
/// (16-byte head + 2024 bytes) is exactly `cap / 2` and a CONT record carries the other 976.
pub fn cont_payload() -> Vec<u8> {
    (0..3000u32).map(|i| (i % 251) as u8).collect()
}

/// The function table of the HELLO vector, in this order.
pub const HELLO_FUNCTIONS: [(u32, &str); 2] = [(1, "echo"), (2, "checksum")];

/// One record-kind vector: a fresh ring (head 0) holding the records of one message or
/// control record, published.
pub struct RecordVector {
    /// File stem.
    pub name: &'static str,
    /// The ring it belongs on: `request`, `response` or `channel`.
    pub ring_kind: &'static str,
    /// Clauses it illustrates.
    pub spec: &'static [&'static str],
    /// What it is.
    pub about: &'static str,
    /// The image.
    pub bytes: Vec<u8>,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// Writes `records` (type, flags, body) into a fresh 4096-byte ring, or `message` through the
/// core's fragmenting writer, and publishes.
fn fresh_ring(write: impl FnOnce(&mut Producer<'_>)) -> Vec<u8> {
    let mut buf = Aligned::zeroed(RING_CTRL_LEN + RING_CAP);
    {
        let mem = buf.mem();
        let ring = RingRef::new(
            mem.sub(0, RING_CTRL_LEN).expect("ctrl"),
            mem.sub(RING_CTRL_LEN, RING_CAP).expect("data"),
        )
        .expect("ring");
        let mut producer = Producer::new(ring);
        write(&mut producer);
        producer.publish();
    }
    buf.copy_out()
}

/// Fields of one record at data offset `at`: header, then `head` fields (name, size, value),
/// then the payload bytes and the zero padding up to the record's size.
fn record_fields(
    prefix: &str,
    at: usize,
    rtype: u16,
    flags: u16,
    head: &[(&str, Val)],
    payload: &[u8],
) -> (Vec<Field>, usize) {
    let d = RING_CTRL_LEN + at;
    let head_len: usize = head.iter().map(|(_, v)| v.size()).sum();
    let body_len = head_len + payload.len();
    let mut fields = vec![
        field(format!("{prefix}.len"), d, Val::U32(body_len as u32)),
        field(format!("{prefix}.type"), d + 4, Val::U16(rtype)),
        field(format!("{prefix}.flags"), d + 6, Val::U16(flags)),
    ];
    let mut off = d + 8;
    for (name, val) in head {
        fields.push(field(format!("{prefix}.body.{name}"), off, val.clone()));
        off += val.size();
    }
    if !payload.is_empty() {
        fields.push(field(
            format!("{prefix}.body.payload"),
            off,
            Val::Bytes(payload.to_vec()),
        ));
    }
    let size = 8 + body_len.next_multiple_of(8);
    if size > 8 + body_len {
        fields.push(field(
            format!("{prefix}.padding"),
            d + 8 + body_len,
            Val::Bytes(vec![0; size - 8 - body_len]),
        ));
    }
    (fields, size)
}

fn single(rtype: u16, body: &[u8]) -> Vec<u8> {
    fresh_ring(|p| {
        assert!(p.try_write(rtype, FLAGS_SINGLE, body).expect("write"));
    })
}

fn with_ring_fields(mut fields: Vec<Field>, tail: usize) -> Vec<Field> {
    let mut all = ring_ctrl_fields("ring", 0, tail as u64, 0);
    all.append(&mut fields);
    all
}

/// The record-kind vectors: REQUEST, RESPONSE, HELLO, SHUTDOWN, `CHANNEL_OPEN`, DATA, END, and
/// a DATA message in two records (DATA + CONT).
#[allow(clippy::too_many_lines)] // eight vectors, each spelled out field by field
pub fn record_vectors() -> Vec<RecordVector> {
    let p = small_payload();
    let mut out = Vec::new();

    let req = RequestHead {
        request_id: 1,
        function_id: 1,
        content_type: 0,
        deadline_ns: 0,
        payload_len: p.len() as u64,
    };
    let (fields, size) = record_fields(
        "record",
        0,
        TYPE_REQUEST,
        FLAGS_SINGLE,
        &[
            ("request_id", Val::U64(1)),
            ("function_id", Val::U32(1)),
            ("content_type", Val::U32(0)),
            ("deadline_ns", Val::U64(0)),
            ("payload_len", Val::U64(p.len() as u64)),
            ("reserved", Val::U64(0)),
        ],
        &p,
    );
    out.push(RecordVector {
        name: "record-request",
        ring_kind: "request",
        spec: &["MSG-1", "MSG-7", "CALL-1"],
        about: "A request ring holding one REQUEST (id 1, function 1, 16 payload bytes) in one FIRST|LAST record.",
        bytes: single(TYPE_REQUEST, &[&req.encode()[..], &p].concat()),
        fields: with_ring_fields(fields, size),
    });

    let resp = ResponseHead {
        request_id: 1,
        status: 0,
        content_type: 0,
        payload_len: p.len() as u64,
    };
    let (fields, size) = record_fields(
        "record",
        0,
        TYPE_RESPONSE,
        FLAGS_SINGLE,
        &[
            ("request_id", Val::U64(1)),
            ("status", Val::U32(0)),
            ("content_type", Val::U32(0)),
            ("payload_len", Val::U64(p.len() as u64)),
        ],
        &p,
    );
    out.push(RecordVector {
        name: "record-response",
        ring_kind: "response",
        spec: &["MSG-1", "MSG-7", "CALL-3"],
        about: "A response ring holding one RESPONSE (id 1, status 0, 16 payload bytes) in one FIRST|LAST record.",
        bytes: single(TYPE_RESPONSE, &[&resp.encode()[..], &p].concat()),
        fields: with_ring_fields(fields, size),
    });

    let mut table = vec![0u8; 64];
    let n = knit_core::fntable::encode_into(&HELLO_FUNCTIONS, &mut table).expect("table");
    table.truncate(n);
    let hello = HelloHead {
        payload_len: n as u64,
    };
    let (fields, size) = record_fields(
        "record",
        0,
        TYPE_HELLO,
        FLAGS_SINGLE,
        &[
            ("payload_len", Val::U64(n as u64)),
            ("function_count", Val::U32(2)),
            ("reserved", Val::U32(0)),
            ("entry[0].id", Val::U32(1)),
            ("entry[0].name_len", Val::U16(4)),
            ("entry[0].flags", Val::U16(0)),
            ("entry[0].name", Val::Bytes(b"echo\0\0\0\0".to_vec())),
            ("entry[1].id", Val::U32(2)),
            ("entry[1].name_len", Val::U16(8)),
            ("entry[1].flags", Val::U16(0)),
            ("entry[1].name", Val::Bytes(b"checksum".to_vec())),
        ],
        &[],
    );
    out.push(RecordVector {
        name: "record-hello",
        ring_kind: "response",
        spec: &["MBX-2", "FN-1", "MSG-7"],
        about: "A response ring holding one HELLO whose function table is echo (id 1) and checksum (id 2).",
        bytes: single(TYPE_HELLO, &[&hello.encode()[..], &table].concat()),
        fields: with_ring_fields(fields, size),
    });

    let (fields, size) = record_fields("record", 0, TYPE_SHUTDOWN, FLAGS_SINGLE, &[], &[]);
    out.push(RecordVector {
        name: "record-shutdown",
        ring_kind: "request",
        spec: &["MBX-3", "MSG-6", "MSG-7"],
        about: "A request ring holding one SHUTDOWN: empty body, FIRST|LAST.",
        bytes: single(TYPE_SHUTDOWN, &[]),
        fields: with_ring_fields(fields, size),
    });

    let open = ChannelOpen {
        channel: 0,
        epoch: 1,
        tag: 7,
    };
    let (fields, size) = record_fields(
        "record",
        0,
        TYPE_CHANNEL_OPEN,
        FLAGS_SINGLE,
        &[
            ("channel", Val::U32(0)),
            ("epoch", Val::U32(1)),
            ("tag", Val::U64(7)),
        ],
        &[],
    );
    out.push(RecordVector {
        name: "record-channel-open",
        ring_kind: "request",
        spec: &["CHAN-2", "MSG-6", "MSG-7"],
        about: "A request ring holding one CHANNEL_OPEN (slot 0, epoch 1, tag 7).",
        bytes: single(TYPE_CHANNEL_OPEN, &open.encode()),
        fields: with_ring_fields(fields, size),
    });

    let data = DataHead {
        content_type: 0,
        payload_len: p.len() as u64,
    };
    let (fields, size) = record_fields(
        "record",
        0,
        TYPE_DATA,
        FLAGS_SINGLE,
        &[
            ("content_type", Val::U32(0)),
            ("reserved", Val::U32(0)),
            ("payload_len", Val::U64(p.len() as u64)),
        ],
        &p,
    );
    out.push(RecordVector {
        name: "record-data",
        ring_kind: "channel",
        spec: &["MSG-1", "MSG-7", "CHAN-3"],
        about:
            "A channel ring holding one DATA message (16 payload bytes) in one FIRST|LAST record.",
        bytes: single(TYPE_DATA, &[&data.encode()[..], &p].concat()),
        fields: with_ring_fields(fields, size),
    });

    let (fields, size) = record_fields("record", 0, TYPE_END, FLAGS_SINGLE, &[], &[]);
    out.push(RecordVector {
        name: "record-end",
        ring_kind: "channel",
        spec: &["CHAN-4", "MSG-6", "MSG-7"],
        about: "A channel ring holding one END: empty body, FIRST|LAST.",
        bytes: single(TYPE_END, &[]),
        fields: with_ring_fields(fields, size),
    });

    let big = cont_payload();
    let first_part = RING_CAP / 2 - 8 - DataHead::LEN;
    let bytes = fresh_ring(|p| {
        let head = MessageHead::Data(DataHead {
            content_type: 0,
            payload_len: 0,
        });
        let mut m = OutgoingMessage::new(head, &big);
        assert!(m.write_to(p).expect("write"), "both records fit");
    });
    let (mut fields, first_size) = record_fields(
        "record[0]",
        0,
        TYPE_DATA,
        knit_core::records::FLAG_FIRST,
        &[
            ("content_type", Val::U32(0)),
            ("reserved", Val::U32(0)),
            ("payload_len", Val::U64(big.len() as u64)),
        ],
        &big[..first_part],
    );
    let (mut cont, cont_size) = record_fields(
        "record[1]",
        first_size,
        TYPE_CONT,
        knit_core::records::FLAG_LAST,
        &[],
        &big[first_part..],
    );
    fields.append(&mut cont);
    out.push(RecordVector {
        name: "record-cont",
        ring_kind: "channel",
        spec: &["MSG-1", "MSG-2", "MSG-3", "MSG-5"],
        about: "A channel ring holding one DATA message of 3000 payload bytes in two records: DATA (FIRST, a 2048-byte record, cap / 2) and CONT (LAST).",
        bytes,
        fields: with_ring_fields(fields, first_size + cont_size),
    });
    out
}

fn describe(
    name: &str,
    spec: &[&str],
    about: &str,
    bytes: &[u8],
    rest_zero: bool,
    extra: Value,
    fields: &[Field],
) -> Value {
    let mut v = json!({
        "name": name,
        "file": format!("{name}.bin"),
        "size": bytes.len(),
        "spec": spec,
        "description": about,
        "rest_zero": rest_zero,
        "fields": fields_json(fields),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut v, extra) {
        map.extend(more);
    }
    v
}

fn params_json() -> Value {
    json!({
        "worker_slots": PARAMS.worker_slots,
        "channel_slots": PARAMS.channel_slots,
        "inflight_max": PARAMS.inflight_max,
        "request_ring_cap": PARAMS.request_ring_cap,
        "response_ring_cap": PARAMS.response_ring_cap,
        "channel_ring_cap": PARAMS.channel_ring_cap,
        "max_message_len": PARAMS.max_message_len.to_string(),
    })
}

fn identity_json(id: &Identity<'_>) -> Value {
    json!({ "pid": id.pid, "start_time": id.start_time.to_string(), "impl_name": id.impl_name })
}

fn push(out: &mut Vec<VectorFile>, name: &str, bytes: Vec<u8>, description: &Value) {
    let mut text = serde_json::to_string_pretty(description).expect("json");
    text.push('\n');
    out.push(VectorFile {
        name: format!("{name}.json"),
        bytes: text.into_bytes(),
    });
    out.push(VectorFile {
        name: format!("{name}.bin"),
        bytes,
    });
}

/// Every vector file, in a fixed order.
pub fn all() -> Vec<VectorFile> {
    let mut out = Vec::new();
    let inputs = json!({
        "inputs": {
            "params": params_json(),
            "host": identity_json(&HOST),
            "region_id": hex(&REGION_ID),
            "created_unix_ns": CREATED_UNIX_NS.to_string(),
        }
    });

    let (region, fields) = region_vector();
    let header = region[..HEADER_LEN].to_vec();
    let d = describe(
        "region",
        &["LAYOUT-1", "LAYOUT-2", "INIT-1", "PART-1", "HDR-4", "FEAT-1"],
        "A region as a 1.0 creator formats it from `inputs`, READY, host entry ACTIVE; every byte not listed is zero.",
        &region,
        true,
        inputs.clone(),
        &fields,
    );
    push(&mut out, "region", region, &d);

    let header_fields: Vec<Field> = fields
        .into_iter()
        .filter(|f| f.name.starts_with("header."))
        .collect();
    let d = describe(
        "header",
        &["HDR-1", "HDR-2", "HDR-4", "HDR-6"],
        "The 256-byte header of the region vector alone; every byte not listed is zero.",
        &header,
        true,
        inputs,
        &header_fields,
    );
    push(&mut out, "header", header, &d);

    let (entry, fields) = participant_vector();
    let d = describe(
        "participant",
        &["PART-2", "PART-4", "PART-10"],
        "Worker entry 1 (128 bytes) after the host reserved it (epoch 1) and the worker claimed and activated it; every byte not listed is zero.",
        &entry,
        true,
        json!({ "inputs": { "index": 1, "identity": identity_json(&WORKER), "heartbeat_ns": WORKER_HEARTBEAT_NS.to_string() } }),
        &fields,
    );
    push(&mut out, "participant", entry, &d);

    let (ring, fields) = ring_vector();
    let d = describe(
        "ring-after-wrap",
        &["RING-1", "RING-2", "RING-3", "RING-10"],
        "A ring laid out as in a mailbox or channel slot: 128-byte control block, then 4096 data bytes. Steps: write DATA records A and B (1500-byte bodies, 1512 bytes each) and publish; consume both and publish head; write DATA record C, which does not fit in the 1072 bytes left before the end: a PAD fills them and C starts at data offset 0; publish. Bytes not listed are what those steps leave (B's consumed bytes remain; the PAD body is not written).",
        &ring,
        false,
        json!({
            "inputs": {
                "capacity": RING_CAP,
                "records": [
                    { "name": "A", "type": TYPE_DATA, "flags": FLAGS_SINGLE, "body": hex(&ring_body(0xA0)) },
                    { "name": "B", "type": TYPE_DATA, "flags": FLAGS_SINGLE, "body": hex(&ring_body(0xB0)) },
                    { "name": "C", "type": TYPE_DATA, "flags": FLAGS_SINGLE, "body": hex(&ring_body(0xC0)) },
                ],
            }
        }),
        &fields,
    );
    push(&mut out, "ring-after-wrap", ring, &d);

    for v in record_vectors() {
        let d = describe(
            v.name,
            v.spec,
            v.about,
            &v.bytes,
            true,
            json!({
                "inputs": { "capacity": RING_CAP, "ring_kind": v.ring_kind },
                "validate": { "kind": "ring", "ring_kind": v.ring_kind },
            }),
            &v.fields,
        );
        push(&mut out, v.name, v.bytes, &d);
    }
    out
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conformance/vectors/v1".to_string());
    std::fs::create_dir_all(&dir).expect("create the output directory");
    for f in all() {
        let path = std::path::Path::new(&dir).join(&f.name);
        std::fs::write(&path, &f.bytes).expect("write a vector file");
        println!("{} ({} bytes)", path.display(), f.bytes.len());
    }
}
