//! Attach to an arbitrary region (HDR-1 to HDR-9, INIT-2 to INIT-4), then read what the
//! attach hands out: participant entries (PART-3, PART-6), mailboxes and their rings.
//!
//! Two ways to build the bytes, chosen by the first input byte:
//! - 0, `Raw`: the rest of the input is the mapping (seeded with the golden `region.bin`);
//! - otherwise, `Formatted`: a real 1.0 region from small parameters, then header fields overwritten with
//!   chosen values, raw patches anywhere, a mapping length off by a delta, and optionally a
//!   repaired checksum, so that the fuzzer reaches every HDR-6 check behind the CRC.
//!
//! The oracle is an independent reading of HDR-9's order and HDR-6's bounds written from the
//! spec text: attach must report exactly the code it predicts, and must never panic.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use knit_core::geometry::Params;
use knit_core::layout::HEADER_CRC_OFFSET;
use knit_core::mailbox::{HostMailbox, WorkerMailbox};
use knit_core::{Error, ErrorCode, HostIdentity, Region};
use knit_fuzz::AlignedMem;
use libfuzzer_sys::fuzz_target;
use zerocopy::IntoBytes;

const MAX_MAPPING: usize = 1 << 18;

#[derive(Arbitrary, Debug)]
struct Formatted {
    worker_slots: u8,
    channel_slots: u8,
    inflight_shift: u8,
    req_shift: u8,
    resp_shift: u8,
    chan_shift: u8,
    max_message_len: u32,
    fields: Vec<(u8, Value)>,
    patches: Vec<(u32, Vec<u8>)>,
    mapping_delta: i16,
    fix_crc: bool,
    init_state: Option<u32>,
    poison: Option<u32>,
}

/// A value for a header field, often relative to the value the creator wrote.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Value {
    Raw(u64),
    Delta(i16),
    Times(u8),
    PowerOfTwo(u8),
    Zero,
}

/// `(offset, size)` of every non-reserved header field after `major` (§1.1).
const FIELDS: [(usize, usize); 23] = [
    (0x08, 2),
    (0x0A, 2),
    (0x0C, 4),
    (0x10, 8),
    (0x18, 8),
    (0x20, 8),
    (0x28, 4),
    (0x2C, 4),
    (0x30, 4),
    (0x34, 4),
    (0x38, 4),
    (0x3C, 4),
    (0x40, 4),
    (0x44, 4),
    (0x48, 8),
    (0x50, 8),
    (0x58, 8),
    (0x60, 8),
    (0x68, 8),
    (0x70, 8),
    (0x78, 8),
    (0x90, 8),
    (0xFC, 4),
];

fn get(h: &[u8], off: usize, size: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..size].copy_from_slice(&h[off..off + size]);
    u64::from_le_bytes(b)
}

fn put(h: &mut [u8], off: usize, size: usize, v: u64) {
    h[off..off + size].copy_from_slice(&v.to_le_bytes()[..size]);
}

impl Value {
    fn apply(self, old: u64) -> u64 {
        match self {
            Value::Raw(v) => v,
            Value::Delta(d) => old.wrapping_add_signed(i64::from(d)),
            Value::Times(k) => old.wrapping_mul(u64::from(k)),
            Value::PowerOfTwo(s) => 1u64 << (s % 64),
            Value::Zero => 0,
        }
    }
}

/// CRC-32 (ISO-HDLC) written from spec/09 §9.4, bit by bit, independent of the core's table.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

fn header_crc(h: &[u8]) -> u32 {
    let mut copy = [0u8; 256];
    copy.copy_from_slice(&h[..256]);
    copy[HEADER_CRC_OFFSET..HEADER_CRC_OFFSET + 4].fill(0);
    crc32(&copy)
}

fn build(f: &Formatted) -> Option<Vec<u8>> {
    let channel_slots = u32::from(f.channel_slots % 3);
    let params = Params {
        worker_slots: 1 + u32::from(f.worker_slots % 3),
        channel_slots,
        inflight_max: 1 << (f.inflight_shift % 7),
        request_ring_cap: 4096 << (f.req_shift % 3),
        response_ring_cap: 4096 << (f.resp_shift % 3),
        channel_ring_cap: if channel_slots > 0 {
            4096 << (f.chan_shift % 2)
        } else {
            0
        },
        max_message_len: u64::from(f.max_message_len).max(1),
    };
    let host = HostIdentity {
        pid: 7,
        start_time: 11,
        impl_name: "fuzz",
    };
    let len = knit_core::Geometry::compute(&params).ok()?.region_len();
    let mem = AlignedMem::new(len);
    Region::format(mem.mem(), &params, &host, [0x5A; 16], 1).expect("valid params format");
    let mut bytes = mem.to_vec();
    for &(field, value) in f.fields.iter().take(8) {
        let (off, size) = FIELDS[usize::from(field) % FIELDS.len()];
        let v = value.apply(get(&bytes, off, size));
        put(&mut bytes, off, size, v);
    }
    let mapping = len
        .saturating_add_signed(isize::from(f.mapping_delta))
        .min(MAX_MAPPING);
    bytes.resize(mapping, 0);
    for (off, patch) in f.patches.iter().take(8) {
        if bytes.is_empty() {
            break;
        }
        let off = *off as usize % bytes.len();
        let n = patch.len().min(bytes.len() - off);
        bytes[off..off + n].copy_from_slice(&patch[..n]);
    }
    if bytes.len() >= 0x140 {
        if let Some(s) = f.init_state {
            put(&mut bytes, 0x100, 4, u64::from(s % 4));
        }
        if let Some(p) = f.poison {
            put(&mut bytes, 0x104, 4, u64::from(p));
        }
        if f.fix_crc {
            let crc = header_crc(&bytes);
            put(&mut bytes, HEADER_CRC_OFFSET, 4, u64::from(crc));
        }
    }
    Some(bytes)
}

/// What attach must answer, from the spec alone: `Some(code)` for a refusal, `None` for success.
fn expected(bytes: &[u8]) -> Option<ErrorCode> {
    // HDR-9: size, init_state, magic, major, crc, features, region_len, geometry, poison.
    if bytes.len() < 0x140 {
        return Some(ErrorCode::RegionTooSmall);
    }
    match get(bytes, 0x100, 4) {
        2 => {}
        0 | 1 => return Some(ErrorCode::NotReady),
        _ => return Some(ErrorCode::BadLayout),
    }
    if bytes[..8] != *b"KNIT\r\n\x1a\n" {
        return Some(ErrorCode::BadMagic);
    }
    if get(bytes, 0x08, 2) != 1 {
        return Some(ErrorCode::UnsupportedVersion);
    }
    if get(bytes, 0xF8, 4) != u64::from(header_crc(bytes)) {
        return Some(ErrorCode::BadChecksum);
    }
    if get(bytes, 0x18, 8) & !1 != 0 {
        return Some(ErrorCode::MissingFeature);
    }
    if get(bytes, 0x10, 8) > bytes.len() as u64 {
        return Some(ErrorCode::RegionTooSmall);
    }
    if !layout_ok(bytes) {
        return Some(ErrorCode::BadLayout);
    }
    if get(bytes, 0x104, 4) != 0 {
        return Some(ErrorCode::Poisoned);
    }
    None
}

fn pow2_in(v: u64, lo: u64, hi: u64) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

/// HDR-6 as the spec words it, with `u128` arithmetic so nothing can overflow here.
fn layout_ok(h: &[u8]) -> bool {
    let f = |off: usize, size: usize| u128::from(get(h, off, size));
    let (header_len, region_len) = (f(0x0C, 4), f(0x10, 8));
    let (cache_line, workers, channels) = (f(0x28, 4), f(0x2C, 4), f(0x30, 4));
    let (inflight, req, resp, chan_cap) = (f(0x34, 4), f(0x38, 4), f(0x3C, 4), f(0x40, 4));
    let (p_stride, max_msg) = (f(0x44, 4), f(0x48, 8));
    let (p_off, m_off, m_stride, c_off, c_stride) =
        (f(0x50, 8), f(0x58, 8), f(0x60, 8), f(0x68, 8), f(0x70, 8));
    let cap_ok = |c: u128| pow2_in(c as u64, 4096, 1 << 30);
    let first_free = 0x40 + header_len;
    let basics = header_len % 64 == 0
        && header_len >= 256
        && first_free <= region_len
        && cache_line == 64
        && (1..=1024).contains(&workers)
        && channels <= 4096
        && pow2_in(inflight as u64, 1, 65536)
        && cap_ok(req)
        && cap_ok(resp)
        && (channels == 0 || cap_ok(chan_cap))
        && (1..=1u128 << 40).contains(&max_msg)
        && p_off % 64 == 0
        && m_off % 64 == 0
        && p_stride % 64 == 0
        && p_stride >= 128
        && m_stride % 64 == 0
        && m_stride >= (8 * inflight).next_multiple_of(64) + 256 + req + resp;
    if !basics {
        return false;
    }
    let parts = (p_off, p_off + (workers + 1) * p_stride);
    let mboxes = (m_off, m_off + workers * m_stride);
    let inside = |(s, e): (u128, u128)| s >= first_free && e <= region_len;
    let apart = |a: (u128, u128), b: (u128, u128)| a.1 <= b.0 || b.1 <= a.0;
    if !(inside(parts) && inside(mboxes) && apart(parts, mboxes)) {
        return false;
    }
    if channels == 0 {
        return chan_cap == 0 && c_off == 0 && c_stride == 0;
    }
    let chans = (c_off, c_off + channels * c_stride);
    c_off % 64 == 0
        && c_stride % 64 == 0
        && c_stride >= 192 + chan_cap
        && inside(chans)
        && apart(parts, chans)
        && apart(mboxes, chans)
}

/// The sticky-failure rule (RING-13): a failed poll fails again with the same error.
fn check_sticky(first: Error, again: Result<(), Error>) {
    assert_eq!(
        again,
        Err(first),
        "a failed mailbox must keep failing the same way"
    );
}

/// Reads what an attached region hands out; nothing here may panic.
fn exercise(region: &Region<'_>, bytes: &[u8]) {
    let g = *region.geometry();
    // HDR-5: the geometry is the header copy; re-encoding it gives the same field bytes.
    let again = g.to_header([0; 16], 0);
    let again = again.as_bytes();
    assert_eq!(
        again[..0x78],
        bytes[..0x78],
        "geometry round-trips the header"
    );
    assert_eq!(region.memory().len(), g.region_len());
    for i in 0..=g.worker_slots() {
        let (off, len) = g.participant_range(i).expect("entry inside the table");
        assert!(off + len <= g.region_len());
        let p = region.participant(i).expect("entry view");
        if let Err(e) = p.snapshot() {
            assert_eq!(e.code, ErrorCode::BadParticipant, "{e}");
        }
    }
    assert!(region.participant(g.worker_slots() + 1).is_err());
    let mailboxes = [0, g.worker_slots() - 1];
    for m in mailboxes {
        let l = g.mailbox_layout(m).expect("mailbox inside the region");
        let base = g.mailboxes_off() + u64::from(m) * g.mailbox_stride();
        for span in [
            l.cancel,
            l.request_ctrl,
            l.request_data,
            l.response_ctrl,
            l.response_data,
        ] {
            assert!(span.offset as u64 >= base);
            assert!((span.end() as u64) <= base + g.mailbox_stride());
            assert!(span.end() <= g.region_len());
        }
        let mb = region.mailbox(m).expect("mailbox view");
        let mut host =
            HostMailbox::new(mb, g.inflight_max(), g.max_message_len()).expect("valid geometry");
        for _ in 0..4 {
            match host.poll() {
                Ok(polled) => drop(polled),
                Err(e) => {
                    check_sticky(e, host.poll().map(drop));
                    break;
                }
            }
        }
        let mut worker =
            WorkerMailbox::new(mb, g.inflight_max(), g.max_message_len()).expect("valid geometry");
        for _ in 0..4 {
            match worker.poll() {
                Ok(polled) => drop(polled),
                Err(e) => {
                    check_sticky(e, worker.poll().map(drop));
                    break;
                }
            }
        }
    }
    for j in 0..g.channel_slots().min(4) {
        let l = g.channel_layout(j).expect("channel slot inside the region");
        assert!(l.ring_data.end() <= g.region_len());
        region.channel_slot(j).expect("channel view");
    }
    // INIT-3: once poisoned, the same bytes no longer attach.
    assert!(region.poison(ErrorCode::BadRecord, Some(0)));
    let e = Region::attach(region.memory()).expect_err("poisoned region attaches");
    assert_eq!(e.code, ErrorCode::Poisoned);
}

fn run(bytes: &[u8]) {
    let mem = AlignedMem::from_bytes(bytes);
    let want = expected(bytes);
    match Region::attach(mem.mem()) {
        Ok(region) => {
            assert_eq!(want, None, "attach accepted what the spec refuses");
            exercise(&region, bytes);
        }
        Err(e) => assert_eq!(Some(e.code), want, "attach: {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, raw)) if raw.len() <= MAX_MAPPING => run(raw),
        Some((_, rest)) => {
            if let Ok(f) = Formatted::arbitrary_take_rest(Unstructured::new(rest)) {
                if let Some(bytes) = build(&f) {
                    run(&bytes);
                }
            }
        }
        _ => {}
    }
});
