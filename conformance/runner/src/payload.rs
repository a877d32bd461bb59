//! The payload generator and digest of the driver protocol (conformance/README.md §3.1):
//! payloads are named by a seed and a length, generated where they are sent, and answered with
//! a digest where they are received, so that no payload crosses the driver protocol.

/// `SplitMix64`: the generator every agent implements (README §3.1).
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose state starts at `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64-bit output.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// `payload(seed, len)`: the little-endian bytes of successive outputs, cut to `len`.
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(len.next_multiple_of(8));
    while out.len() < len {
        out.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The digest as the driver protocol writes it: 16 lowercase hex digits.
pub fn digest(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a64(bytes))
}

/// The length of call `i` of a `call_batch` (README §3.6): `min_len` plus the first 8 bytes of
/// `payload(seed + i, 8)` (LE) modulo the range.
pub fn batch_len(seed: u64, i: u64, min_len: u64, max_len: u64) -> u64 {
    let span = max_len.saturating_sub(min_len).saturating_add(1);
    let mut b = [0u8; 8];
    b.copy_from_slice(&payload(seed.wrapping_add(i), 8));
    min_len + u64::from_le_bytes(b) % span
}

/// Folds the digest of result `i` into a batch digest (README §3.6): the FNV-1a 64 of the
/// concatenation of `i` (u64 LE) and the 8 bytes of each digest written as hex (big-endian).
#[derive(Clone, Debug, Default)]
pub struct BatchDigest {
    bytes: Vec<u8>,
}

impl BatchDigest {
    /// Adds result `i` with its digest `d` (16 hex digits).
    pub fn push(&mut self, i: u64, d: u64) {
        self.bytes.extend_from_slice(&i.to_le_bytes());
        self.bytes.extend_from_slice(&d.to_be_bytes());
    }

    /// The batch digest.
    pub fn finish(&self) -> String {
        digest(&self.bytes)
    }
}

/// Parses a 16-digit digest back to its value.
pub fn parse_digest(s: &str) -> Option<u64> {
    (s.len() == 16)
        .then(|| u64::from_str_radix(s, 16).ok())
        .flatten()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Decodes lowercase or uppercase hex; `None` for odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() % 2 != 0 {
        return None;
    }
    s.chunks_exact(2)
        .map(|p| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(p[0])? * 16 + d(p[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check values of conformance/README.md §3.1; the README states the same.
    #[test]
    fn check_values_of_the_readme() {
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(digest(b""), "cbf29ce484222325");
        assert_eq!(digest(b"a"), "af63dc4c8601ec8c");
        assert_eq!(hex(&payload(1, 12)), README_PAYLOAD_1_12);
        assert_eq!(digest(&payload(1, 16)), README_DIGEST_1_16);
        assert_eq!(digest(&payload(7, 1000)), README_DIGEST_7_1000);
    }

    const README_PAYLOAD_1_12: &str = "c15c0289ec2d0a9167ec8e65";
    const README_DIGEST_1_16: &str = "56e6a4c0e205423a";
    const README_DIGEST_7_1000: &str = "bac5b7f22df668eb";

    #[test]
    fn payload_is_a_prefix_of_longer_payloads_and_hex_round_trips() {
        let long = payload(99, 100);
        for len in [0, 1, 7, 8, 9, 63, 100] {
            assert_eq!(payload(99, len), long[..len]);
        }
        assert_eq!(unhex(&hex(&long)).unwrap(), long);
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn batch_lengths_stay_in_range_and_digest_depends_on_order() {
        for i in 0..200 {
            let l = batch_len(5, i, 10, 20);
            assert!((10..=20).contains(&l));
        }
        let mut a = BatchDigest::default();
        a.push(0, 1);
        a.push(1, 2);
        let mut b = BatchDigest::default();
        b.push(0, 2);
        b.push(1, 1);
        assert_ne!(a.finish(), b.finish());
        assert_eq!(parse_digest(&a.finish()).map(|_| ()), Some(()));
    }
}
