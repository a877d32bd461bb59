//! The pure decoders of peer-written record bodies and payloads: REQUEST / RESPONSE / HELLO /
//! DATA heads and `CHANNEL_OPEN` (spec/05 §5.2, spec/06 §6.2, MSG-7), the function table of a
//! HELLO (FN-1), typed arrays (CT-2, CT-3) and which record types each ring admits (RING-11,
//! spec/09 §9.3).
//!
//! The first input byte picks the decoder (mod 5): 0 heads (then the record type, u16 LE, then
//! the body), 1 function table, 2 function table built from `(id, name)` pairs, 3 typed array,
//! 4 ring admission (kind, type, flags).
//!
//! Each decoder is compared with an oracle written from the spec text: it must accept exactly
//! what the oracle accepts, refuse the rest with the code the spec names, and what it accepts
//! must re-encode to the same bytes (reserved fields aside, CONV-4).
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use knit_core::fntable::{self, FunctionTable};
use knit_core::message::MessageHead;
use knit_core::records::{
    Admission, ChannelOpen, DataHead, HelloHead, RequestHead, ResponseHead, RingKind,
    FLAG_SKIPPABLE, TYPE_CHANNEL_OPEN, TYPE_CONT, TYPE_DATA, TYPE_END, TYPE_HELLO, TYPE_REQUEST,
    TYPE_RESPONSE, TYPE_SHUTDOWN,
};
use knit_core::typed_array;
use knit_core::ErrorCode;
use libfuzzer_sys::fuzz_target;

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// `body[..n]` with the given reserved byte ranges zeroed: what an encoder writes (CONV-4).
fn canonical(body: &[u8], n: usize, reserved: &[(usize, usize)]) -> Vec<u8> {
    let mut v = body[..n].to_vec();
    for &(start, end) in reserved {
        v[start..end].fill(0);
    }
    v
}

fn heads(rtype: u16, body: &[u8]) {
    // REQUEST: 40 bytes, request_id non-zero (CALL-1), reserved at 32..40.
    match RequestHead::decode(body) {
        Ok(h) => {
            assert!(body.len() >= 40 && u64_at(body, 0) != 0);
            assert_eq!(h.encode()[..], canonical(body, 40, &[(32, 40)])[..]);
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::BadRecord);
            assert!(body.len() < 40 || u64_at(body, 0) == 0);
        }
    }
    match ResponseHead::decode(body) {
        Ok(h) => assert_eq!(h.encode()[..], body[..24]),
        Err(e) => assert!(e.code == ErrorCode::BadRecord && body.len() < 24),
    }
    match HelloHead::decode(body) {
        Ok(h) => assert_eq!(h.encode()[..], body[..8]),
        Err(e) => assert!(e.code == ErrorCode::BadRecord && body.len() < 8),
    }
    match DataHead::decode(body) {
        Ok(h) => assert_eq!(h.encode()[..], canonical(body, 16, &[(4, 8)])[..]),
        Err(e) => assert!(e.code == ErrorCode::BadRecord && body.len() < 16),
    }
    // MSG-7: CHANNEL_OPEN has exactly its 16 bytes.
    match ChannelOpen::decode(body) {
        Ok(h) => assert_eq!(h.encode()[..], body[..]),
        Err(e) => assert!(e.code == ErrorCode::BadRecord && body.len() != 16),
    }
    let message_type = matches!(rtype, TYPE_REQUEST | TYPE_RESPONSE | TYPE_HELLO | TYPE_DATA);
    match MessageHead::decode(rtype, body) {
        Ok(h) => {
            assert!(message_type);
            assert_eq!(h.rtype(), rtype);
            let n = h.len();
            let enc = h.encode();
            let reserved: &[(usize, usize)] = match rtype {
                TYPE_REQUEST => &[(32, 40)],
                TYPE_DATA => &[(4, 8)],
                _ => &[],
            };
            assert_eq!(enc[..n], canonical(body, n, reserved)[..]);
            assert_eq!(h.with_payload_len(7).payload_len(), 7);
        }
        Err(e) if !message_type => assert_eq!(e.code, ErrorCode::UnknownRecord),
        Err(e) => assert_eq!(e.code, ErrorCode::BadRecord),
    }
}

/// FN-1 from the spec text: `Some(id by name)` for a valid table, `None` otherwise.
fn table_oracle(p: &[u8]) -> Option<BTreeMap<String, u32>> {
    let count = u32::from_le_bytes(p.get(..4)?.try_into().ok()?);
    p.get(4..8)?;
    let mut at = 8usize;
    let mut names = BTreeMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..count {
        let head = p.get(at..at + 8)?;
        let id = u32::from_le_bytes(head[..4].try_into().ok()?);
        let name_len = usize::from(u16::from_le_bytes([head[4], head[5]]));
        if !(1..=255).contains(&name_len) {
            return None;
        }
        let name = std::str::from_utf8(p.get(at + 8..at + 8 + name_len)?).ok()?;
        let end = (at + 8 + name_len).next_multiple_of(8);
        p.get(at..end)?;
        if names.insert(name.to_owned(), id).is_some() || !ids.insert(id) {
            return None;
        }
        at = end;
    }
    (at == p.len()).then_some(names)
}

fn table(payload: &[u8]) {
    let want = table_oracle(payload);
    match FunctionTable::decode(payload) {
        Ok(t) => {
            let want = want.expect("decoder accepted a table FN-1 refuses");
            assert_eq!(t.len(), want.len());
            for (name, &id) in &want {
                assert_eq!(t.lookup(name).ok(), Some(id));
                assert!(t.contains_id(id));
                assert_eq!(t.name_of(id), Some(name.as_str()));
            }
            let again = FunctionTable::decode(&t.encode()).expect("an encoded table decodes");
            assert_eq!(again, t);
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::BadRecord, "{e}");
            assert!(want.is_none(), "decoder refused a valid table: {e}");
        }
    }
    // The borrowing iterator yields each entry or one error, and stops.
    if let Ok(mut it) = fntable::entries(payload) {
        let mut n = 0usize;
        for item in it.by_ref() {
            n += 1;
            if item.is_err() {
                break;
            }
        }
        assert!(n <= payload.len() / 16 + 1);
        assert!(it.next().is_none());
    }
}

fn new_table(list: &[(u32, String)]) {
    let pairs: Vec<(u32, &str)> = list.iter().map(|(i, n)| (*i, n.as_str())).collect();
    let valid = pairs.iter().all(|(_, n)| (1..=255).contains(&n.len()))
        && pairs
            .iter()
            .map(|p| p.0)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == pairs.len()
        && pairs
            .iter()
            .map(|p| p.1)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            == pairs.len();
    match FunctionTable::new(pairs.iter().copied()) {
        Ok(t) => {
            assert!(valid);
            let bytes = t.encode();
            assert_eq!(Some(bytes.len()), fntable::encoded_len(&pairs).ok());
            let mut direct = vec![0u8; bytes.len()];
            let n = fntable::encode_into(&pairs, &mut direct).expect("valid table encodes");
            assert_eq!(n, bytes.len());
            let a = FunctionTable::decode(&bytes).expect("table decodes");
            let b = FunctionTable::decode(&direct).expect("table decodes");
            assert_eq!(a, t);
            assert_eq!(b, t);
        }
        Err(e) => {
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(!valid);
        }
    }
}

fn typed(payload: &[u8]) {
    // CT-2 from the spec text.
    let oracle = || -> Option<(u16, Vec<u64>, usize)> {
        let dtype = u16::from_le_bytes(payload.get(..2)?.try_into().ok()?);
        let itemsize: u64 = match dtype {
            1 | 2 | 13 => 1,
            3 | 4 | 9 | 12 => 2,
            5 | 6 | 10 => 4,
            7 | 8 | 11 => 8,
            _ => return None,
        };
        let ndim = usize::from(u16::from_le_bytes(payload.get(2..4)?.try_into().ok()?));
        payload.get(4..8)?;
        if ndim > 32 {
            return None;
        }
        let head = 8 + 8 * ndim;
        let shape: Vec<u64> = payload
            .get(8..head)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
        let bytes = count.checked_mul(itemsize)?;
        (bytes == (payload.len() - head) as u64).then_some((dtype, shape, head))
    };
    match typed_array::decode(payload) {
        Ok(a) => {
            let (dtype, shape, head) = oracle().expect("decoder accepted what CT-2 refuses");
            assert_eq!(a.dtype as u16, dtype);
            assert_eq!(a.shape.dims(), &shape[..]);
            assert_eq!(a.elements, head..payload.len());
            let again = typed_array::encode(a.dtype, &a.shape, &payload[head..])
                .expect("a decoded array encodes");
            assert_eq!(again[..4], payload[..4]);
            assert_eq!(again[8..], payload[8..]);
        }
        Err(e) => {
            // CT-3: an argument error, never a violation.
            assert_eq!(e.code, ErrorCode::InvalidArgument);
            assert!(oracle().is_none(), "decoder refused a valid array: {e}");
        }
    }
}

fn admit(kind: u8, rtype: u16, flags: u16) {
    let (kind, allowed): (RingKind, &[u16]) = match kind % 3 {
        0 => (
            RingKind::Request,
            &[TYPE_CONT, TYPE_REQUEST, TYPE_SHUTDOWN, TYPE_CHANNEL_OPEN],
        ),
        1 => (
            RingKind::Response,
            &[TYPE_CONT, TYPE_RESPONSE, TYPE_HELLO, TYPE_CHANNEL_OPEN],
        ),
        _ => (RingKind::Channel, &[TYPE_CONT, TYPE_DATA, TYPE_END]),
    };
    let got = kind.admit(rtype, flags);
    if allowed.contains(&rtype) {
        assert_eq!(got, Ok(Admission::Process));
    } else if flags & FLAG_SKIPPABLE != 0 {
        assert_eq!(got, Ok(Admission::Skip));
    } else {
        assert_eq!(got.map_err(|e| e.code), Err(ErrorCode::UnknownRecord));
    }
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    let lo = b.get(off).copied().unwrap_or(0);
    let hi = b.get(off + 1).copied().unwrap_or(0);
    u16::from_le_bytes([lo, hi])
}

// The first byte picks the decoder; the rest is its input as raw bytes (so that seeds are
// plain record bodies and payloads, e.g. from the golden vectors).
fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => heads(u16_at(rest, 0), rest.get(2..).unwrap_or_default()),
        1 => table(rest),
        2 => {
            if let Ok(list) = Vec::<(u32, String)>::arbitrary_take_rest(Unstructured::new(rest)) {
                new_table(&list);
            }
        }
        3 => typed(rest),
        _ => admit(
            rest.first().copied().unwrap_or(0),
            u16_at(rest, 1),
            u16_at(rest, 3),
        ),
    }
});
