//! The bars of the brief (DESIGN.md §5 and the benchmark issue), evaluated on one run's p50s
//! at 64 B, each against rows measured in the same run.

use super::{ratio, Report};
use crate::results::{Mode, RoundTripRow};

/// The label id the peers crate gives iceoryx2's request-response rows.
pub const ICEORYX2_RR: &str = "iceoryx2-rr";

/// The payload the bars are stated for.
pub const BAR_PAYLOAD: usize = 64;

/// How a ratio is compared with its target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The ratio must be at most this.
    AtMost(f64),
    /// The ratio must be at least this.
    AtLeast(f64),
}

impl Target {
    /// Whether `value` meets the target.
    pub fn met_by(self, value: f64) -> bool {
        match self {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        }
    }

    /// `≤ 1.50×` or `≥ 5.00×`.
    pub fn describe(self) -> String {
        match self {
            Target::AtMost(t) => format!("≤ {t:.2}×"),
            Target::AtLeast(t) => format!("≥ {t:.2}×"),
        }
    }
}

/// One bar: what is compared, the target, and the outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Bar {
    /// What the bar says.
    pub name: &'static str,
    /// The ratio: numerator row p50 over denominator row p50.
    pub ratio: Option<f64>,
    /// The target of the ratio.
    pub target: Target,
    /// How the ratio is formed, with the two p50s.
    pub detail: String,
}

impl Bar {
    /// `Some(true)` when met, `Some(false)` when missed, `None` when a row is missing.
    pub fn met(&self) -> Option<bool> {
        self.ratio.map(|r| self.target.met_by(r))
    }

    /// When missed: by how much, as a percentage of the target.
    pub fn shortfall_percent(&self) -> Option<f64> {
        let r = self.ratio?;
        match self.target {
            Target::AtMost(t) if r > t => Some((r / t - 1.0) * 100.0),
            Target::AtLeast(t) if r < t => Some((t / r - 1.0) * 100.0),
            _ => None,
        }
    }
}

/// Evaluates every bar on `report`. Knit against a floor uses the paired floor (measured
/// right before Knit's case); Knit against iceoryx2 (both spinning) divides each p50 by its own
/// paired floor first ([`Report::over`]); Knit against the Unix socket compares raw p50s, since
/// the two wait differently.
pub fn evaluate(report: &Report) -> Vec<Bar> {
    let knit_spin = report.round_trip_knit(Mode::Spinning, BAR_PAYLOAD);
    let knit_parked = report.round_trip_knit(Mode::Parked, BAR_PAYLOAD);
    let iceoryx2 = report.round_trip(ICEORYX2_RR, BAR_PAYLOAD);
    let socket = report.round_trip("unix-socket", BAR_PAYLOAD);
    let p50 = |row: Option<&RoundTripRow>| row.map(|r| r.latency.p50_ns);
    let floor = |row: Option<&RoundTripRow>| row.and_then(|r| report.floor_p50_for(r));
    let against_floor = |row: Option<&RoundTripRow>| row.and_then(|r| report.over_floor(r));
    vec![
        Bar {
            name: "task call 64 B, spinning, within 1.5× of the raw cache-line ping-pong",
            ratio: against_floor(knit_spin),
            target: Target::AtMost(1.5),
            detail: format!(
                "p50 Knit spinning ({}) ÷ p50 raw ping-pong measured right before it ({})",
                show(p50(knit_spin)),
                show(floor(knit_spin))
            ),
        },
        Bar {
            name: "task call 64 B, spinning, at least 5× faster than iceoryx2 request-response",
            ratio: iceoryx2.zip(knit_spin).and_then(|(i, k)| report.over(i, k)),
            target: Target::AtLeast(5.0),
            detail: format!(
                "(p50 iceoryx2 {} ÷ its paired floor {}) ÷ (p50 Knit {} ÷ its paired floor {})",
                show(p50(iceoryx2)),
                show(floor(iceoryx2)),
                show(p50(knit_spin)),
                show(floor(knit_spin))
            ),
        },
        Bar {
            name: "task call 64 B, parked, within 1.1× of the raw futex ping-pong",
            ratio: against_floor(knit_parked),
            target: Target::AtMost(1.1),
            detail: format!(
                "p50 Knit parked ({}) ÷ p50 raw futex ping-pong measured right before it ({})",
                show(p50(knit_parked)),
                show(floor(knit_parked))
            ),
        },
        Bar {
            name: "task call 64 B, spinning, several (≥ 3) times faster than a Unix socket",
            ratio: ratio(p50(socket), p50(knit_spin)),
            target: Target::AtLeast(3.0),
            detail: format!(
                "p50 Unix socket ({}) ÷ p50 Knit spinning ({})",
                show(p50(socket)),
                show(p50(knit_spin))
            ),
        },
    ]
}

fn show(v: Option<f64>) -> String {
    v.map_or_else(
        || "not measured".to_owned(),
        |ns| format!("{:.2} µs", ns / 1e3),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn evaluates_met_missed_and_unmeasured_bars() {
        let bars = evaluate(&sample());
        assert_eq!(bars.len(), 4);
        // Knit spinning 280·1.064 over the floor's 200·1.064: 1.4, met.
        let spin = &bars[0];
        assert!((spin.ratio.unwrap() - 1.4).abs() < 1e-9);
        assert_eq!(spin.met(), Some(true));
        assert_eq!(spin.shortfall_percent(), None);
        // No iceoryx2 row in the default build.
        assert_eq!(bars[1].ratio, None);
        assert_eq!(bars[1].met(), None);
        assert!(bars[1].detail.contains("not measured"));
        // Parked: 5400 / 5000 = 1.08, met.
        assert_eq!(bars[2].met(), Some(true));
        // Socket 9000 / Knit 280: about 32×, met.
        assert_eq!(bars[3].met(), Some(true));
    }

    #[test]
    fn shortfall_is_relative_to_the_target() {
        let b = Bar {
            name: "x",
            ratio: Some(1.65),
            target: Target::AtMost(1.5),
            detail: String::new(),
        };
        assert_eq!(b.met(), Some(false));
        assert!((b.shortfall_percent().unwrap() - 10.0).abs() < 1e-9);
        let b = Bar {
            ratio: Some(4.0),
            target: Target::AtLeast(5.0),
            ..b
        };
        assert!((b.shortfall_percent().unwrap() - 25.0).abs() < 1e-9);
        assert_eq!(Target::AtLeast(5.0).describe(), "≥ 5.00×");
    }
}
