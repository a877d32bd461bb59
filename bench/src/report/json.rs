//! The machine-readable report: every row with its raw numbers and ratios, the bars, the
//! conditions. `schema` changes when a field changes meaning.

use serde_json::{json, Value};

use super::bars;
use super::{ratio, Report};
use crate::results::{Kind, Label};

/// The version of this layout.
pub const SCHEMA: u32 = 1;

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Floor => "floor",
        Kind::Knit => "knit",
        Kind::Peer => "peer",
    }
}

fn label(l: Label) -> Value {
    json!({ "id": l.id, "title": l.title, "mode": l.mode.name(), "kind": kind(l.kind) })
}

/// Renders `report` as a JSON value.
pub fn render(r: &Report) -> Value {
    let m = &r.machine;
    let round_trips: Vec<Value> = r
        .round_trips
        .iter()
        .map(|row| {
            let knit = r.round_trip_knit(row.label.mode, row.payload);
            json!({
                "transport": label(row.label),
                "payload_bytes": row.payload,
                "samples": row.latency.samples,
                "p50_ns": row.latency.p50_ns,
                "p99_ns": row.latency.p99_ns,
                "p999_ns": row.latency.p999_ns,
                "mean_ns": row.latency.mean_ns,
                "min_ns": row.latency.min_ns,
                "max_ns": row.latency.max_ns,
                "calls_per_sec": row.calls_per_sec,
                "paired_floor_p50_ns": row.paired_floor_p50_ns,
                "p50_over_floor": r.over_floor(row),
                "p50_over_knit": knit.and_then(|k| r.over(row, k)),
            })
        })
        .collect();
    let streams: Vec<Value> = r
        .streams
        .iter()
        .map(|row| {
            let floor = if row.label.kind == Kind::Floor {
                Some(row.messages_per_sec())
            } else {
                r.stream_floor_rate_for(row)
            };
            json!({
                "transport": label(row.label),
                "message_bytes": row.message,
                "batch": row.batch,
                "messages": row.messages,
                "seconds": row.seconds,
                "messages_per_sec": row.messages_per_sec(),
                "gb_per_sec": row.gb_per_sec(),
                "paired_floor_messages_per_sec": row.paired_floor_rate,
                "rate_over_floor": ratio(Some(row.messages_per_sec()), floor),
            })
        })
        .collect();
    let bars: Vec<Value> = bars::evaluate(r)
        .iter()
        .map(|b| {
            json!({
                "bar": b.name,
                "ratio": b.ratio,
                "target": b.target.describe(),
                "met": b.met(),
                "shortfall_percent": b.shortfall_percent(),
                "detail": b.detail,
            })
        })
        .collect();
    let rounds = rounds(r);
    json!({
        "schema": SCHEMA,
        "run": {
            "quick": r.budget.quick,
            "rounds": r.rounds,
            "realtime_spinning": r.realtime_spinning,
            "profile": m.profile,
            "seconds": r.seconds,
            "warmup_ms": r.budget.warmup.as_millis(),
            "measure_ms": r.budget.measure.as_millis(),
            "max_samples": r.budget.max_samples,
            "stream_ms": r.budget.stream.as_millis(),
            "timer_overhead_ns": r.timer_overhead_ns,
        },
        "machine": {
            "cpu_model": m.cpu_model,
            "cpus": m.cpus,
            "uname": m.uname,
            "date": m.date,
            "clocksource": m.clocksource,
            "load_before": m.load_before,
            "load_after": m.load_after,
            "commit": m.commit,
            "scheduling": m.scheduling,
        },
        "bars": bars,
        "round_trips": round_trips,
        "round_trip_rounds": rounds,
        "streams": streams,
        "failures": r.failures.iter().map(|f| json!({ "case": f.case, "error": f.error })).collect::<Vec<_>>(),
    })
}

/// Every round's round-trip rows, compact.
fn rounds(r: &Report) -> Vec<Value> {
    r.round_trip_rounds
        .iter()
        .map(|round| {
            round
                .iter()
                .map(|row| {
                    json!({
                        "id": row.label.id,
                        "payload_bytes": row.payload,
                        "p50_ns": row.latency.p50_ns,
                        "paired_floor_p50_ns": row.paired_floor_p50_ns,
                    })
                })
                .collect::<Vec<_>>()
                .into()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn carries_rows_ratios_bars_and_failures() {
        let v = render(&sample());
        assert_eq!(v["schema"], SCHEMA);
        let rows = v["round_trips"].as_array().unwrap();
        assert_eq!(rows.len(), 25);
        let knit = rows
            .iter()
            .find(|r| r["transport"]["id"] == "knit-spin" && r["payload_bytes"] == 0)
            .unwrap();
        assert!((knit["p50_over_floor"].as_f64().unwrap() - 1.4).abs() < 1e-9);
        assert!((knit["p50_over_knit"].as_f64().unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(v["bars"].as_array().unwrap().len(), 4);
        assert_eq!(v["bars"][1]["met"], Value::Null);
        assert_eq!(v["streams"].as_array().unwrap().len(), 8);
        assert_eq!(v["failures"][0]["error"], "boom");
        assert_eq!(v["round_trip_rounds"].as_array().unwrap().len(), 2);
        assert_eq!(v["round_trip_rounds"][1][0]["id"], "floor-spin");
    }
}
