//! Generated mutations of the golden vectors (conformance/README.md §4): every described
//! integer field set to nearby and extreme values, and bytes flipped. The reference decoder is
//! the oracle: the agent must reach the same verdict, and never crash or hang.

use serde_json::{json, Value};

use crate::images::{Vector, Vectors};
use crate::validate::{validate, Refusal, Verdict};

/// One mutation: which vector, what was changed, the patches.
#[derive(Clone, Debug)]
pub struct Mutation {
    /// The vector mutated.
    pub vector: String,
    /// What was changed, for people.
    pub what: String,
    /// `(offset, bytes)` patches over the vector.
    pub patches: Vec<(usize, Vec<u8>)>,
}

/// How a vector is validated: kind and extra arguments (README §3.4).
pub fn validate_as(v: &Vector) -> Option<(String, Value)> {
    if let Some(x) = v.validate_as() {
        return Some(x);
    }
    match v.name.as_str() {
        "region" => Some(("region".into(), json!({}))),
        "participant" => Some(("participant".into(), json!({"index": 1}))),
        "ring-after-wrap" => Some(("ring".into(), json!({"ring_kind": "channel"}))),
        _ => None,
    }
}

fn int_size(ty: &str) -> Option<usize> {
    match ty {
        "u16" => Some(2),
        "u32" => Some(4),
        "u64" => Some(8),
        _ => None,
    }
}

/// The values an integer field is set to: ±1..3 around its value, 0, 1, MAX, MAX−1.
pub fn nearby(value: u64, size: usize) -> Vec<u64> {
    let max = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * size)) - 1
    };
    let mut out = Vec::new();
    for d in 1..=3u64 {
        out.push(value.wrapping_add(d) & max);
        out.push(value.wrapping_sub(d) & max);
    }
    out.extend([0, 1, max, max - 1]);
    out.sort_unstable();
    out.dedup();
    out.retain(|&v| v != value);
    out
}

/// Every mutation of `v`: its integer fields (except the consumer's own `head` of a ring image,
/// which is the validator's state rather than peer input) and byte flips of the first 0x140
/// bytes and of every integer field.
pub fn mutations_of(v: &Vector) -> Vec<Mutation> {
    let mut out = Vec::new();
    let mut flipped = std::collections::BTreeSet::new();
    for f in &v.fields {
        let Some(size) = int_size(&f.ty) else {
            continue;
        };
        if f.name.starts_with("ring") && f.name.rsplit('.').next() == Some("head") {
            continue;
        }
        let Some(bytes) = v.bytes.get(f.offset..f.offset + size) else {
            continue;
        };
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(bytes);
        let value = u64::from_le_bytes(b);
        for n in nearby(value, size) {
            out.push(Mutation {
                vector: v.name.clone(),
                what: format!("{} = {n:#x} (was {value:#x})", f.name),
                patches: vec![(f.offset, n.to_le_bytes()[..size].to_vec())],
            });
        }
        flipped.extend(f.offset..f.offset + size);
    }
    if v.name == "region" {
        flipped.extend(0..0x140usize);
    }
    for off in flipped {
        if let Some(&b) = v.bytes.get(off) {
            out.push(Mutation {
                vector: v.name.clone(),
                what: format!("byte {off:#x} flipped"),
                patches: vec![(off, vec![!b])],
            });
        }
    }
    out
}

/// Every mutation of every validatable vector.
pub fn all(vectors: &Vectors) -> Vec<Mutation> {
    vectors
        .by_name
        .values()
        .filter(|v| validate_as(v).is_some())
        .flat_map(mutations_of)
        .collect()
}

/// The reference verdict for a mutation.
pub fn oracle(vectors: &Vectors, m: &Mutation) -> Result<Verdict, Refusal> {
    let v = vectors.get(&m.vector).map_err(Refusal::BadArgs)?;
    let (kind, args) = validate_as(v).ok_or_else(|| Refusal::BadArgs("not validatable".into()))?;
    let bytes = crate::images::apply(&v.bytes, &m.patches);
    validate(&kind, &bytes, &args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearby_values_cover_neighbours_and_extremes() {
        let n = nearby(4096, 4);
        for v in [
            4093,
            4094,
            4095,
            4097,
            4098,
            4099,
            0,
            1,
            0xFFFF_FFFF,
            0xFFFF_FFFE,
        ] {
            assert!(n.contains(&v), "{v}");
        }
        assert!(!n.contains(&4096));
        assert_eq!(
            nearby(0, 2).iter().filter(|&&v| v == 0xFFFF).count(),
            1,
            "wraps and dedups"
        );
    }

    #[test]
    fn the_golden_vectors_yield_mutations_that_the_oracle_judges() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../vectors/v1");
        let vectors = Vectors::load(&dir).unwrap();
        let all = all(&vectors);
        assert!(all.len() > 1000, "{} mutations", all.len());
        let mut rejected = 0;
        for m in &all {
            if let Ok(Verdict::Invalid { .. }) = oracle(&vectors, m) {
                rejected += 1;
            }
        }
        assert!(
            rejected > all.len() / 4,
            "{rejected} of {} rejected",
            all.len()
        );
    }
}
