//! Every refusal of HDR-1 to HDR-9 and INIT-2 to INIT-4, each with its exact error code, and a
//! property test: no mutation of a valid header makes attaching panic, and every refusal is an
//! attach-class error.

use core::ptr::NonNull;

use knit_core::geometry::{Geometry, Params};
use knit_core::layout::{
    RegionHeader, FEATURE_CHANNELS, HEADER_LEN, INIT_STATE_OFFSET, MAGIC, POISON_CODE_OFFSET,
};
use knit_core::region::{HostIdentity, Region};
use knit_core::{ErrorClass, ErrorCode, Result, SharedMem};
use proptest::prelude::*;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

/// 8-aligned private bytes, seen only through [`SharedMem`] while a view exists.
struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8).max(1)];
        words.as_mut_bytes()[..bytes.len()].copy_from_slice(bytes);
        Aligned {
            words,
            len: bytes.len(),
        }
    }

    fn mem(&mut self) -> SharedMem<'_> {
        let ptr = NonNull::new(self.words.as_mut_ptr().cast::<u8>()).expect("vec pointer");
        // SAFETY: `words` holds at least `len` bytes, 8-aligned; the `&mut self` borrow keeps
        // every other access to them away for as long as the view lives.
        unsafe { SharedMem::new(ptr, self.len) }
    }
}

const HOST: HostIdentity<'static> = HostIdentity {
    pid: 4242,
    start_time: 123_456,
    impl_name: "knit-rs 1.0",
};

fn params() -> Params {
    Params {
        worker_slots: 2,
        channel_slots: 2,
        inflight_max: 8,
        request_ring_cap: 4096,
        response_ring_cap: 8192,
        channel_ring_cap: 4096,
        max_message_len: 1 << 20,
    }
}

/// A valid, READY region image.
fn valid_image(p: &Params) -> Vec<u8> {
    let len = Geometry::compute(p).unwrap().region_len();
    let mut buf = Aligned::from_bytes(&vec![0u8; len]);
    Region::format(buf.mem(), p, &HOST, [3; 16], 42).unwrap();
    let mut out = vec![0u8; len];
    buf.mem().read(0, &mut out).unwrap();
    out
}

fn attach(bytes: &[u8]) -> Result<Geometry> {
    let mut buf = Aligned::from_bytes(bytes);
    Region::attach(buf.mem()).map(|r| *r.geometry())
}

fn header_of(image: &[u8]) -> RegionHeader {
    RegionHeader::read_from_bytes(&image[..HEADER_LEN]).unwrap()
}

/// The image with its header changed by `f`; `recrc` recomputes `header_crc` afterwards so that
/// the change reaches the checks behind HDR-4.
fn mutated(image: &[u8], recrc: bool, f: impl FnOnce(&mut RegionHeader)) -> Vec<u8> {
    let mut h = header_of(image);
    f(&mut h);
    if recrc {
        h.header_crc = U32::new(h.checksum());
    }
    let mut out = image.to_vec();
    out[..HEADER_LEN].copy_from_slice(h.as_bytes());
    out
}

fn code_of(bytes: &[u8]) -> ErrorCode {
    match attach(bytes) {
        Ok(_) => panic!("attach succeeded"),
        Err(e) => e.code,
    }
}

/// A change to a header, named in a table of cases.
type Mutation = Box<dyn Fn(&mut RegionHeader)>;

fn layout_refusal(what: &str, f: impl FnOnce(&mut RegionHeader)) {
    let image = valid_image(&params());
    let e = attach(&mutated(&image, true, f)).expect_err(what);
    assert_eq!(e.code, ErrorCode::BadLayout, "{what}: {e}");
}

#[test]
fn the_valid_image_attaches() {
    let image = valid_image(&params());
    let g = attach(&image).unwrap();
    assert_eq!(g, Geometry::compute(&params()).unwrap());
}

#[test]
fn hdr_1_wrong_magic() {
    let image = valid_image(&params());
    for i in 0..8 {
        let bad = mutated(&image, true, |h| h.magic[i] ^= 0x20);
        let e = attach(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadMagic);
        assert_eq!(e.expected, u64::from_le_bytes(MAGIC));
    }
}

#[test]
fn hdr_2_unsupported_major_names_both_versions() {
    let image = valid_image(&params());
    for major in [0u16, 2, 0xFFFF] {
        // The checksum is not fixed: the version is checked before it (HDR-9).
        let bad = mutated(&image, false, |h| {
            h.major = U16::new(major);
            h.minor = U16::new(3);
        });
        let e = attach(&bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        assert_eq!(e.found, u64::from(major) << 16 | 3);
        assert_eq!(e.expected, 1 << 16);
    }
}

#[test]
fn ver_2_any_minor_of_major_1_attaches() {
    let image = valid_image(&params());
    let g = attach(&mutated(&image, true, |h| h.minor = U16::new(9))).unwrap();
    assert_eq!(g.minor(), 9);
}

#[test]
fn hdr_3_unknown_required_feature_names_the_bits() {
    let image = valid_image(&params());
    let bits = 1u64 << 5 | 1 << 63;
    let bad = mutated(&image, true, |h| {
        h.required_features = U64::new(bits | FEATURE_CHANNELS);
    });
    let e = attach(&bad).unwrap_err();
    assert_eq!((e.code, e.found), (ErrorCode::MissingFeature, bits));
    // A required bit the implementation knows is fine, and optional bits are ignored (FEAT-2).
    let known = mutated(&image, true, |h| {
        h.required_features = U64::new(FEATURE_CHANNELS);
        h.optional_features = U64::new(u64::MAX);
    });
    assert!(attach(&known).is_ok());
}

#[test]
fn hdr_4_bad_checksum() {
    let image = valid_image(&params());
    let flipped_crc = mutated(&image, false, |h| {
        h.header_crc = U32::new(h.header_crc.get() ^ 1);
    });
    assert_eq!(code_of(&flipped_crc), ErrorCode::BadChecksum);
    // Reserved bytes are covered too (and otherwise ignored: CONV-4).
    let reserved = mutated(&image, false, |h| h.reserved0[50] = 1);
    assert_eq!(code_of(&reserved), ErrorCode::BadChecksum);
    assert!(attach(&mutated(&image, true, |h| h.reserved0[50] = 1)).is_ok());
    let region_len = mutated(&image, false, |h| {
        h.region_len = U64::new(h.region_len.get() - 64);
    });
    assert_eq!(code_of(&region_len), ErrorCode::BadChecksum);
}

#[test]
fn hdr_4_checksum_does_not_cover_the_control_block() {
    let image = valid_image(&params());
    let mut changed = image.clone();
    // Reserved bytes of the control block.
    changed[0x120] = 0xEE;
    assert!(attach(&changed).is_ok());
}

#[test]
fn hdr_6_geometry_fields_out_of_bounds() {
    let cases: Vec<(&str, Mutation)> = vec![
        ("header_len 0", Box::new(|h| h.header_len = U32::new(0))),
        ("header_len 192", Box::new(|h| h.header_len = U32::new(192))),
        ("header_len 257", Box::new(|h| h.header_len = U32::new(257))),
        (
            "header_len past region_len",
            Box::new(|h| h.header_len = U32::new(0xFFFF_FFC0)),
        ),
        ("cache_line 128", Box::new(|h| h.cache_line = U32::new(128))),
        ("cache_line 0", Box::new(|h| h.cache_line = U32::new(0))),
        ("worker_slots 0", Box::new(|h| h.worker_slots = U32::new(0))),
        (
            "worker_slots 1025",
            Box::new(|h| h.worker_slots = U32::new(1025)),
        ),
        (
            "channel_slots 4097",
            Box::new(|h| h.channel_slots = U32::new(4097)),
        ),
        ("inflight_max 0", Box::new(|h| h.inflight_max = U32::new(0))),
        ("inflight_max 6", Box::new(|h| h.inflight_max = U32::new(6))),
        (
            "inflight_max 131072",
            Box::new(|h| h.inflight_max = U32::new(131_072)),
        ),
        (
            "request_ring_cap 2048",
            Box::new(|h| h.request_ring_cap = U32::new(2048)),
        ),
        (
            "request_ring_cap 5000",
            Box::new(|h| h.request_ring_cap = U32::new(5000)),
        ),
        (
            "request_ring_cap 2^31",
            Box::new(|h| h.request_ring_cap = U32::new(1 << 31)),
        ),
        (
            "response_ring_cap 0",
            Box::new(|h| h.response_ring_cap = U32::new(0)),
        ),
        (
            "response_ring_cap 12288",
            Box::new(|h| h.response_ring_cap = U32::new(12288)),
        ),
        (
            "channel_ring_cap 0 with channels",
            Box::new(|h| h.channel_ring_cap = U32::new(0)),
        ),
        (
            "channel_ring_cap 4095",
            Box::new(|h| h.channel_ring_cap = U32::new(4095)),
        ),
        (
            "participant_stride 64",
            Box::new(|h| h.participant_stride = U32::new(64)),
        ),
        (
            "participant_stride 130",
            Box::new(|h| h.participant_stride = U32::new(130)),
        ),
        (
            "max_message_len 0",
            Box::new(|h| h.max_message_len = U64::new(0)),
        ),
        (
            "max_message_len 2^40+1",
            Box::new(|h| h.max_message_len = U64::new((1 << 40) + 1)),
        ),
        (
            "mailbox_stride too small",
            Box::new(|h| h.mailbox_stride = U64::new(h.mailbox_stride.get() - 64)),
        ),
        (
            "mailbox_stride not 64-aligned",
            Box::new(|h| h.mailbox_stride = U64::new(h.mailbox_stride.get() + 8)),
        ),
        (
            "channel_stride too small",
            Box::new(|h| h.channel_stride = U64::new(192 + 4096 - 64)),
        ),
        (
            "channel_stride not 64-aligned",
            Box::new(|h| h.channel_stride = U64::new(h.channel_stride.get() + 32)),
        ),
        (
            "region_len shorter than the sections",
            Box::new(|h| h.region_len = U64::new(h.region_len.get() - 64)),
        ),
        ("region_len 0", Box::new(|h| h.region_len = U64::new(0))),
    ];
    for (what, f) in cases {
        layout_refusal(what, f);
    }
}

#[test]
fn hdr_6_no_channel_slots_means_zero_channel_fields() {
    let p = Params {
        channel_slots: 0,
        ..params()
    };
    let image = valid_image(&p);
    assert!(attach(&image).is_ok());
    for what in ["cap", "off", "stride"] {
        let bad = mutated(&image, true, |h| match what {
            "cap" => h.channel_ring_cap = U32::new(4096),
            "off" => h.channels_off = U64::new(h.mailboxes_off.get()),
            _ => h.channel_stride = U64::new(4288),
        });
        assert_eq!(code_of(&bad), ErrorCode::BadLayout, "{what}");
    }
}

#[test]
fn hdr_6_offsets_not_64_aligned() {
    layout_refusal("participants_off", |h| {
        h.participants_off = U64::new(0x140 + 8);
    });
    layout_refusal("mailboxes_off", |h| {
        h.mailboxes_off = U64::new(h.mailboxes_off.get() + 32);
    });
    layout_refusal("channels_off", |h| {
        h.channels_off = U64::new(h.channels_off.get() + 4);
    });
}

#[test]
fn hdr_6_overlapping_sections() {
    layout_refusal("mailboxes over participants", |h| {
        h.mailboxes_off = U64::new(h.participants_off.get());
    });
    layout_refusal("mailboxes start inside the participant table", |h| {
        h.mailboxes_off = U64::new(h.mailboxes_off.get() - 64);
    });
    layout_refusal("channels over mailboxes", |h| {
        h.channels_off = U64::new(h.mailboxes_off.get());
    });
    layout_refusal("channels over participants", |h| {
        h.channels_off = U64::new(0x140);
    });
}

#[test]
fn hdr_6_sections_before_0x140_or_in_the_header_extension() {
    layout_refusal("participants in the control block", |h| {
        h.participants_off = U64::new(0x100);
    });
    layout_refusal("participants at 0", |h| h.participants_off = U64::new(0));
    // A 320-byte header has a 64-byte extension at 0x140: the participant table may not be there.
    layout_refusal("participants in the extension", |h| {
        h.header_len = U32::new(320);
    });
}

#[test]
fn hdr_6_overflow_in_stride_times_count_is_a_refusal() {
    layout_refusal("mailbox_stride * worker_slots", |h| {
        h.mailbox_stride = U64::new(!63);
    });
    layout_refusal("channel_stride * channel_slots", |h| {
        h.channel_stride = U64::new(1 << 63);
    });
    layout_refusal("channels_off + size", |h| {
        h.channels_off = U64::new(!63);
    });
    layout_refusal("participants_off + size", |h| {
        h.participants_off = U64::new(!63);
    });
    layout_refusal("participant_stride * count", |h| {
        h.participant_stride = U32::new(!63);
    });
}

#[test]
fn ver_3_an_attacher_follows_the_offset_table_not_its_defaults() {
    // A later minor's layout: a 320-byte header, larger strides, sections in another order.
    let p = params();
    let image = valid_image(&p);
    let g = Geometry::compute(&p).unwrap();
    let len = g.region_len() + 4096;
    let mut bigger = image.clone();
    bigger.resize(len, 0);
    let moved = mutated(&bigger, true, |h| {
        h.minor = U16::new(1);
        h.header_len = U32::new(320);
        h.region_len = U64::new(len as u64);
        h.participant_stride = U32::new(192);
        // Channel slots first, right after the extension, then participants, then mailboxes.
        h.channels_off = U64::new(0x180);
        h.channel_stride = U64::new(4288 + 64);
        let participants = 0x180 + 2 * (4288 + 64);
        h.participants_off = U64::new(participants);
        h.mailboxes_off = U64::new(participants + 3 * 192);
    });
    let got = attach(&moved).unwrap();
    assert_eq!(got.header_len(), 320);
    assert_eq!(
        got.participant_range(2),
        Some((0x180 + 2 * 4352 + 2 * 192, 192))
    );
    assert_eq!(got.channel_layout(1).unwrap().ctrl.offset, 0x180 + 4352);
    let last = got.mailbox_layout(1).unwrap();
    assert!(last.response_data.end() <= len);
}

#[test]
fn hdr_7_mapping_too_short() {
    let image = valid_image(&params());
    // The mapping ends before region_len.
    let e = attach(&image[..image.len() - 64]).unwrap_err();
    assert_eq!(
        (e.code, e.found, e.expected),
        (
            ErrorCode::RegionTooSmall,
            image.len() as u64 - 64,
            image.len() as u64
        )
    );
    // Not even the header and control block.
    for len in [0usize, 8, 0x100, 0x13F] {
        assert_eq!(code_of(&image[..len]), ErrorCode::RegionTooSmall, "{len}");
    }
    // region_len claims more than the mapping holds.
    let bad = mutated(&image, true, |h| {
        h.region_len = U64::new(h.region_len.get() + 4096);
    });
    assert_eq!(code_of(&bad), ErrorCode::RegionTooSmall);
    let huge = mutated(&image, true, |h| h.region_len = U64::new(u64::MAX));
    assert_eq!(code_of(&huge), ErrorCode::RegionTooSmall);
}

#[test]
fn init_2_not_ready_and_init_4_unknown_state() {
    let image = valid_image(&params());
    for (state, code) in [
        (0u32, ErrorCode::NotReady),
        (1, ErrorCode::NotReady),
        (3, ErrorCode::BadLayout),
        (7, ErrorCode::BadLayout),
        (u32::MAX, ErrorCode::BadLayout),
    ] {
        let mut bad = image.clone();
        bad[INIT_STATE_OFFSET..INIT_STATE_OFFSET + 4].copy_from_slice(&state.to_le_bytes());
        let e = attach(&bad).unwrap_err();
        assert_eq!(
            (e.code, e.found),
            (code, u64::from(state)),
            "init_state {state}"
        );
    }
}

#[test]
fn init_3_poisoned() {
    let image = valid_image(&params());
    let mut bad = image.clone();
    bad[POISON_CODE_OFFSET..POISON_CODE_OFFSET + 4].copy_from_slice(&207u32.to_le_bytes());
    let e = attach(&bad).unwrap_err();
    assert_eq!((e.code, e.found), (ErrorCode::Poisoned, 207));
}

#[test]
fn hdr_9_the_first_failing_check_in_order_wins() {
    let image = valid_image(&params());
    let set_init = |img: &mut Vec<u8>, v: u32| {
        img[INIT_STATE_OFFSET..INIT_STATE_OFFSET + 4].copy_from_slice(&v.to_le_bytes());
    };
    let everything_wrong = |h: &mut RegionHeader| {
        h.magic[0] = b'X';
        h.major = U16::new(2);
        h.header_crc = U32::new(0);
        h.required_features = U64::new(1 << 40);
        h.region_len = U64::new(u64::MAX);
        h.cache_line = U32::new(1);
    };
    // init_state before anything in the header.
    let mut img = mutated(&image, false, everything_wrong);
    set_init(&mut img, 1);
    assert_eq!(code_of(&img), ErrorCode::NotReady);
    set_init(&mut img, 2);
    assert_eq!(code_of(&img), ErrorCode::BadMagic);
    let img = mutated(&img, false, |h| h.magic = MAGIC);
    assert_eq!(code_of(&img), ErrorCode::UnsupportedVersion);
    let img = mutated(&img, false, |h| h.major = U16::new(1));
    assert_eq!(code_of(&img), ErrorCode::BadChecksum);
    let img = mutated(&img, true, |_| {});
    assert_eq!(code_of(&img), ErrorCode::MissingFeature);
    let img = mutated(&img, true, |h| h.required_features = U64::new(0));
    assert_eq!(code_of(&img), ErrorCode::RegionTooSmall);
    let img = mutated(&img, true, |h| h.region_len = U64::new(image.len() as u64));
    assert_eq!(code_of(&img), ErrorCode::BadLayout);
    let mut img = mutated(&img, true, |h| h.cache_line = U32::new(64));
    img[POISON_CODE_OFFSET] = 200;
    assert_eq!(code_of(&img), ErrorCode::Poisoned);
    img[POISON_CODE_OFFSET] = 0;
    assert!(attach(&img).is_ok());
}

/// Every section a geometry hands out lies inside the region: the accessors never panic and a
/// region that attached can be walked completely.
fn walk(bytes: &[u8]) -> Result<()> {
    let mut buf = Aligned::from_bytes(bytes);
    let region = Region::attach(buf.mem())?;
    let g = *region.geometry();
    for i in 0..=g.worker_slots() {
        let p = region
            .participant(i)
            .expect("participant inside the region");
        // A participant entry may hold garbage; reading it must give a value or an error.
        let _ = p.snapshot();
    }
    for m in 0..g.worker_slots() {
        region.mailbox(m).expect("mailbox inside the region");
    }
    for j in 0..g.channel_slots() {
        region
            .channel_slot(j)
            .expect("channel slot inside the region");
    }
    assert!(region.participant(g.worker_slots() + 1).is_err());
    Ok(())
}

fn assert_attach_class(r: Result<()>) {
    if let Err(e) = r {
        assert_eq!(e.code.class(), ErrorClass::Attach, "{e}");
    }
}

/// The offsets of the header's numeric fields and their sizes (`header_crc` is recomputed).
const FIELDS: [(usize, usize); 20] = [
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
];

/// Values that sit on or near the bounds the checks use, plus anything at all.
fn interesting_value() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        0u64..0x4000,
        prop::sample::select(vec![
            0u64,
            1,
            63,
            64,
            128,
            256,
            320,
            0x140,
            4096,
            1 << 30,
            1 << 31,
            1 << 40,
            u64::MAX
        ]),
        (0u32..64).prop_map(|s| 1u64 << s),
        (0u32..64).prop_map(|s| (1u64 << s).wrapping_sub(64)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random bytes anywhere in the header and control block, checksum left as it is.
    #[test]
    fn random_byte_mutations_never_panic(edits in prop::collection::vec((0usize..0x140, any::<u8>()), 1..8)) {
        let image = valid_image(&params());
        let mut bad = image.clone();
        for (off, byte) in edits {
            bad[off] = byte;
        }
        assert_attach_class(walk(&bad));
    }

    /// Random values in header fields with the checksum recomputed, so the geometry checks
    /// (HDR-6, HDR-7) see them; the mapping length varies too.
    #[test]
    fn random_field_mutations_with_valid_crc_never_panic(
        edits in prop::collection::vec((0usize..FIELDS.len(), interesting_value()), 1..4),
        extra in prop_oneof![Just(0usize), 0usize..8192],
        shorten in prop_oneof![Just(0usize), 0usize..8192],
    ) {
        let image = valid_image(&params());
        let mut bytes = image.clone();
        bytes.resize(image.len() + extra, 0);
        for (field, value) in edits {
            let (off, size) = FIELDS[field];
            bytes[off..off + size].copy_from_slice(&value.to_le_bytes()[..size]);
        }
        let mut bad = mutated(&bytes, true, |_| {});
        bad.truncate(bad.len().saturating_sub(shorten));
        assert_attach_class(walk(&bad));
    }
}
