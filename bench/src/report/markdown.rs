//! The human report: conditions, bars, round-trip tables per payload with ratios to the floor
//! and to Knit, Knit's speed-up over each peer, streams, failures.

use std::fmt::Write;

use super::bars::{self, Bar};
use super::{bytes, ratio, Report};
use crate::results::{Kind, Mode, RoundTripRow};
use crate::roundtrip::PAYLOADS;
use crate::stream::{BATCHES, MESSAGES};

/// Renders `report` as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    conditions(&mut out, report);
    bar_table(&mut out, &bars::evaluate(report));
    round_trips(&mut out, report);
    per_round(&mut out, report);
    speedups(&mut out, report);
    streams(&mut out, report);
    failures(&mut out, report);
    out
}

fn conditions(out: &mut String, r: &Report) {
    let m = &r.machine;
    let run = if r.budget.quick {
        "quick (checks that every case runs; the numbers mean little)"
    } else {
        "full"
    };
    let _ = writeln!(out, "# Knit benchmark\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(
        out,
        "| run | {run}, {} build, {:.0} s |",
        m.profile, r.seconds
    );
    let _ = writeln!(out, "| date | {} |", m.date);
    let _ = writeln!(out, "| processor | {} × {} logical |", m.cpu_model, m.cpus);
    let _ = writeln!(out, "| kernel | {} |", m.uname);
    let _ = writeln!(out, "| clock source | {} |", m.clocksource);
    let _ = writeln!(
        out,
        "| load average (1, 5, 15 min) | before {}; after {} |",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        out,
        "| scheduling | {}{} |",
        m.scheduling,
        if r.realtime_spinning {
            format!(
                "; spinning transports measured as SCHED_FIFO priority {} (`--realtime`), parked ones as started",
                crate::sched::PRIORITY
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(out, "| commit | {} |", m.commit);
    let _ = writeln!(
        out,
        "| per case | warm-up {} ms, round trips {} ms or {} samples, streams {} ms; {} |",
        r.budget.warmup.as_millis(),
        r.budget.measure.as_millis(),
        r.budget.max_samples,
        r.budget.stream.as_millis(),
        if r.rounds > 1 {
            format!(
                "{} rounds of the whole suite, each row the round with the median ratio to its paired floor (floors: median p50 or rate)",
                r.rounds
            )
        } else {
            "one round".to_owned()
        }
    );
    let _ = writeln!(
        out,
        "| timer overhead | {:.0} ns per sample (two clock reads; included in every latency) |\n",
        r.timer_overhead_ns
    );
    let _ = writeln!(
        out,
        "Two processes, nothing pinned. Round trips: the peer echoes a request of the given size, \
         one call outstanding, each call timed alone. Floors: the same echo with no protocol \
         (a raw shared-memory ping-pong, spinning; the same with a futex sleep and wake each way, \
         parked).\n"
    );
}

fn bar_table(out: &mut String, bars: &[Bar]) {
    let _ = writeln!(out, "## Bars (p50 at 64 B, same run)\n");
    let _ = writeln!(
        out,
        "| bar | ratio | target | verdict | how |\n|---|---|---|---|---|"
    );
    for b in bars {
        let verdict = match (b.met(), b.shortfall_percent()) {
            (Some(true), _) => "met".to_owned(),
            (Some(false), Some(p)) => format!("**missed by {p:.0}%**"),
            (Some(false), None) => "**missed**".to_owned(),
            (None, _) => "not measured".to_owned(),
        };
        let value = b
            .ratio
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×"));
        let _ = writeln!(
            out,
            "| {} | {value} | {} | {verdict} | {} |",
            b.name,
            b.target.describe(),
            b.detail
        );
    }
    out.push('\n');
}

/// Microseconds with a precision that suits the value.
pub fn micros(ns: f64) -> String {
    let us = ns / 1e3;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 100.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

/// A rate with an SI suffix: `1.23 M`, `456 k`.
pub fn rate(v: f64) -> String {
    if v >= 1e9 {
        format!("{:.2} G", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn times(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}×"))
}

fn round_trips(out: &mut String, r: &Report) {
    let _ = writeln!(out, "## Round trips\n");
    let _ = writeln!(
        out,
        "Latency in µs. Right before each case of a transport, the floor of the same mode \
         (spinning: raw ping-pong; parked: raw futex ping-pong) is measured again for a short \
         slice at the same payload: the *paired floor*. On a virtual machine the speed of \
         core-to-core traffic changes over time (the vCPUs move), so a ratio is only fair \
         between measurements taken moments apart. `× floor`: p50 over the paired floor's p50. \
         `× Knit`: p50 over Knit's p50 of the same mode, both normalised by their paired floors \
         (above 1: Knit is faster). MB/s counts the payload one way.\n"
    );
    for &payload in &PAYLOADS {
        let rows: Vec<&RoundTripRow> = r
            .round_trips
            .iter()
            .filter(|x| x.payload == payload)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {}\n", bytes(payload));
        let _ = writeln!(
            out,
            "| transport | mode | p50 | p99 | p99.9 | calls/s | MB/s | paired floor p50 | × floor | × Knit |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for row in rows {
            let knit = r.round_trip_knit(row.label.mode, payload);
            let name = if row.label.kind == Kind::Knit {
                format!("**{}**", row.label.title)
            } else {
                row.label.title.to_owned()
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {} | {:.0} | {} | {} | {} |",
                row.label.mode.name(),
                micros(row.latency.p50_ns),
                micros(row.latency.p99_ns),
                micros(row.latency.p999_ns),
                rate(row.calls_per_sec),
                row.calls_per_sec * to_f64(payload) / 1e6,
                row.paired_floor_p50_ns
                    .map_or_else(|| "–".to_owned(), micros),
                times(r.over_floor(row)),
                times(knit.and_then(|k| r.over(row, k))),
            );
        }
        out.push('\n');
    }
}

/// Every round at the bars' payload: p50 and paired floor, so that a change of the machine's
/// behaviour between rounds is visible.
fn per_round(out: &mut String, r: &Report) {
    if r.round_trip_rounds.len() < 2 {
        return;
    }
    let payload = bars::BAR_PAYLOAD;
    let _ = writeln!(
        out,
        "## Every round at {} (p50 / paired floor p50, µs)\n",
        bytes(payload)
    );
    let _ = writeln!(
        out,
        "The rows above are, per case, the round with the median ratio to its paired floor.\n"
    );
    let mut header = String::from("| transport | mode |");
    let mut rule = String::from("|---|---|");
    for i in 1..=r.round_trip_rounds.len() {
        let _ = write!(header, " round {i} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for row in r.round_trips.iter().filter(|x| x.payload == payload) {
        let mut line = format!("| {} | {} |", row.label.title, row.label.mode.name());
        for round in &r.round_trip_rounds {
            let cell = round
                .iter()
                .find(|x| x.label.id == row.label.id && x.payload == payload)
                .map_or_else(
                    || "–".to_owned(),
                    |x| match x.paired_floor_p50_ns {
                        Some(f) => format!("{} / {}", micros(x.latency.p50_ns), micros(f)),
                        None => micros(x.latency.p50_ns),
                    },
                );
            let _ = write!(line, " {cell} |");
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn speedups(out: &mut String, r: &Report) {
    let peers: Vec<(&str, &str, Mode)> = {
        let mut v: Vec<(&str, &str, Mode)> = Vec::new();
        for row in &r.round_trips {
            let key = (row.label.id, row.label.title, row.label.mode);
            if row.label.kind != Kind::Knit && !v.contains(&key) {
                v.push(key);
            }
        }
        v
    };
    if peers.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "## Knit against each transport (p50 of the transport ÷ p50 of Knit)\n"
    );
    let _ = writeln!(
        out,
        "Each row against Knit in both modes: `spinning / parked`. Above 1: Knit is faster. \
         Between two rows of the same mode, each p50 is first divided by its paired floor (see \
         above), so that a change of the machine's speed between the two cases cancels out.\n"
    );
    let mut header = String::from("| transport | mode |");
    let mut rule = String::from("|---|---|");
    for &p in &PAYLOADS {
        let _ = write!(header, " {} |", bytes(p));
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for (id, title, mode) in peers {
        let mut line = format!("| {title} | {} |", mode.name());
        for &p in &PAYLOADS {
            let theirs = r.round_trip(id, p);
            let against = |mode| {
                let knit = r.round_trip_knit(mode, p)?;
                r.over(theirs?, knit)
            };
            let _ = write!(
                line,
                " {} / {} |",
                times(against(Mode::Spinning)),
                times(against(Mode::Parked))
            );
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn streams(out: &mut String, r: &Report) {
    if r.streams.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Streams (one way)\n");
    let _ = writeln!(
        out,
        "Messages sent back to back for the case's time; batch 1 publishes each message, batch \
         {} publishes {} at once. `% floor`: rate over the rate of the raw shared-memory ring \
         measured for the same case right before it (paired floor). `Knit ÷`: Knit's rate (same \
         mode) over this one's.\n",
        BATCHES[1], BATCHES[1]
    );
    let _ = writeln!(
        out,
        "| transport | mode | message | batch | messages/s | GB/s | % floor | Knit ÷ |\n\
         |---|---|---:|---:|---:|---:|---:|---:|"
    );
    for &m in &MESSAGES {
        for &b in &BATCHES {
            for row in r.streams.iter().filter(|x| x.message == m && x.batch == b) {
                let rate_now = Some(row.messages_per_sec());
                let floor = if row.label.kind == Kind::Floor {
                    rate_now
                } else {
                    r.stream_floor_rate_for(row)
                };
                let knit = r
                    .stream_knit(row.label.mode, m, b)
                    .map(crate::results::StreamRow::messages_per_sec);
                let pct = ratio(rate_now, floor)
                    .map_or_else(|| "–".to_owned(), |v| format!("{:.0}%", v * 100.0));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {b} | {} | {:.2} | {pct} | {} |",
                    row.label.title,
                    row.label.mode.name(),
                    bytes(m),
                    rate(row.messages_per_sec()),
                    row.gb_per_sec(),
                    times(ratio(knit, rate_now)),
                );
            }
        }
    }
    out.push('\n');
}

fn failures(out: &mut String, r: &Report) {
    if r.failures.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Failures\n");
    for f in &r.failures {
        let _ = writeln!(out, "- `{}`: {}", f.case, f.error.replace('\n', " "));
    }
    out.push('\n');
}

// Payload sizes stay far below 2^53.
#[allow(clippy::cast_precision_loss)]
fn to_f64(v: usize) -> f64 {
    v as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn renders_bars_tables_ratios_and_failures() {
        let md = render(&sample());
        assert!(md.starts_with("# Knit benchmark"));
        assert!(md.contains("| task call 64 B, spinning, within 1.5× of the raw cache-line ping-pong | 1.40× | ≤ 1.50× | met |"), "{md}");
        assert!(md.contains("not measured"));
        assert!(md.contains("### 1 MiB"));
        // The socket row at 0 B: no paired floor in the sample, so against the floor row:
        // 9000 / floor-futex 5000 = 1.80×, / Knit parked 5400 = 1.67×.
        assert!(
            md.contains(
                "| unix-socket | parked | 9.00 | 18.0 | 36.0 | 111.1 k | 0 | – | 1.80× | 1.67× |"
            ),
            "{md}"
        );
        assert!(md.contains("## Streams"));
        // With a paired floor, the row shows it and is compared with it.
        let mut r = sample();
        for row in &mut r.round_trips {
            if row.label.id == "unix-socket" && row.payload == 0 {
                row.paired_floor_p50_ns = Some(3000.0);
            }
        }
        let md = render(&r);
        assert!(md.contains("| 111.1 k | 0 | 3.00 | 3.00× |"), "{md}");
        // Two rounds in the sample: the per-round table lists both.
        assert!(md.contains("## Every round at 64 B"), "{md}");
        assert!(
            md.contains("| knit-spin | spinning | 0.30 | 0.30 |"),
            "{md}"
        );
        assert!(md.contains("- `x`: boom"));
    }

    #[test]
    fn formats_micros_and_rates() {
        assert_eq!(micros(1234.0), "1.23");
        assert_eq!(micros(12_345.0), "12.3");
        assert_eq!(micros(123_456.0), "123");
        assert_eq!(rate(1.5e9), "1.50 G");
        assert_eq!(rate(2.5e6), "2.50 M");
        assert_eq!(rate(1234.0), "1.2 k");
        assert_eq!(rate(12.0), "12");
    }
}
