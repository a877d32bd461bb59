//! Several rounds of the whole suite, reduced to one row per case: the round whose metric is
//! the median. A round disturbed by other load on the machine (a spinner descheduled for a
//! time slice) then does not decide the result, and the rows of one case stay whole (the
//! percentiles of the chosen round belong together).

/// From the rows of every round, one row per key: the one with the median `metric` (the lower
/// median for an even count), in the order keys first appear.
pub fn median_rows<R: Clone, K: PartialEq>(
    rounds: &[Vec<R>],
    key: impl Fn(&R) -> K,
    metric: impl Fn(&R) -> f64,
) -> Vec<R> {
    let mut keys: Vec<K> = Vec::new();
    for row in rounds.iter().flatten() {
        let k = key(row);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.iter()
        .filter_map(|k| {
            let mut same: Vec<&R> = rounds.iter().flatten().filter(|r| key(r) == *k).collect();
            same.sort_by(|a, b| metric(a).total_cmp(&metric(b)));
            let middle = same.len().checked_sub(1)? / 2;
            same.get(middle).map(|r| (*r).clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_median_round_per_key_in_first_seen_order() {
        let rounds = vec![
            vec![("a", 5.0), ("b", 1.0)],
            vec![("a", 100.0), ("b", 3.0)],
            vec![("b", 2.0), ("a", 7.0), ("c", 9.0)],
        ];
        let rows = median_rows(&rounds, |r| r.0, |r| r.1);
        assert_eq!(rows, vec![("a", 7.0), ("b", 2.0), ("c", 9.0)]);
    }

    #[test]
    fn an_even_count_takes_the_lower_median_and_nothing_gives_nothing() {
        let rounds = vec![vec![("a", 4.0)], vec![("a", 1.0)]];
        assert_eq!(median_rows(&rounds, |r| r.0, |r| r.1), vec![("a", 1.0)]);
        let empty: Vec<Vec<(&str, f64)>> = Vec::new();
        assert!(median_rows(&empty, |r| r.0, |r| r.1).is_empty());
    }
}
