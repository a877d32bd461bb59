//! Latency percentiles from per-call samples.

/// A summary of latency samples in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// Number of samples.
    pub samples: usize,
    /// Median.
    pub p50_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Smallest sample.
    pub min_ns: f64,
    /// Largest sample.
    pub max_ns: f64,
}

impl Latency {
    /// Summarises `samples` (sorted in place). `None` when there are none.
    pub fn from_samples(samples: &mut [u64]) -> Option<Latency> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let total: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Some(Latency {
            samples: samples.len(),
            p50_ns: percentile(samples, 500)?,
            p99_ns: percentile(samples, 990)?,
            p999_ns: percentile(samples, 999)?,
            mean_ns: ratio(total, samples.len()),
            min_ns: as_f64(*samples.first()?),
            max_ns: as_f64(*samples.last()?),
        })
    }
}

/// The nearest-rank percentile of sorted `samples`, given in parts per thousand (500 is the
/// median, 999 the 99.9th percentile; 1 to 1000). Integer arithmetic, so ranks are exact.
pub fn percentile(sorted: &[u64], per_mille: usize) -> Option<f64> {
    if sorted.is_empty() || !(1..=1000).contains(&per_mille) {
        return None;
    }
    let rank = per_mille.checked_mul(sorted.len())?.div_ceil(1000);
    sorted.get(rank.max(1) - 1).copied().map(as_f64)
}

// Nanosecond samples stay far below 2^53, so the conversion is exact.
#[allow(clippy::cast_precision_loss)]
fn as_f64(v: u64) -> f64 {
    v as f64
}

// A mean needs no exact integer.
#[allow(clippy::cast_precision_loss)]
fn ratio(total: u128, count: usize) -> f64 {
    total as f64 / count as f64
}

#[cfg(test)]
// Percentiles of integer samples are exact in f64.
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_thousand() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let l = Latency::from_samples(&mut v).unwrap();
        assert_eq!(l.samples, 1000);
        assert_eq!(l.p50_ns, 500.0);
        assert_eq!(l.p99_ns, 990.0);
        assert_eq!(l.p999_ns, 999.0);
        assert_eq!(l.min_ns, 1.0);
        assert_eq!(l.max_ns, 1000.0);
        assert!((l.mean_ns - 500.5).abs() < 1e-9);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let l = Latency::from_samples(&mut [42]).unwrap();
        assert_eq!((l.p50_ns, l.p99_ns, l.p999_ns), (42.0, 42.0, 42.0));
    }

    #[test]
    fn empty_and_out_of_range_give_none() {
        assert!(Latency::from_samples(&mut []).is_none());
        assert_eq!(percentile(&[1, 2], 0), None);
        assert_eq!(percentile(&[1, 2], 1001), None);
        assert_eq!(percentile(&[1, 2], 1000), Some(2.0));
        assert_eq!(percentile(&[1, 2], 500), Some(1.0));
    }
}
