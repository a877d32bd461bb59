//! The report of a run: a Markdown table with ratios ([`markdown`]), a JSON file ([`json`])
//! and SVG plots ([`plot`]), with the bars of the brief evaluated ([`bars`]).

pub mod bars;
pub mod json;
pub mod markdown;
pub mod plot;

use std::path::{Path, PathBuf};

use crate::budget::Budget;
use crate::machine::Machine;
use crate::results::{Failure, Kind, Mode, RoundTripRow, StreamRow};
use crate::Result;

/// Everything a run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Where and when.
    pub machine: Machine,
    /// The limits each case ran with.
    pub budget: Budget,
    /// Rounds of the whole suite; each row is the round with the median p50 or rate.
    pub rounds: usize,
    /// Spinning transports were measured as `SCHED_FIFO` (`--realtime`).
    pub realtime_spinning: bool,
    /// What timing one call costs by itself (two clock reads), in nanoseconds. It is included
    /// in every latency sample.
    pub timer_overhead_ns: f64,
    /// Round-trip cases, in suite order then payload order.
    pub round_trips: Vec<RoundTripRow>,
    /// Stream cases, in suite order then size and batch order.
    pub streams: Vec<StreamRow>,
    /// Every round's round-trip rows, before the reduction to one row per case.
    pub round_trip_rounds: Vec<Vec<RoundTripRow>>,
    /// Cases that failed.
    pub failures: Vec<Failure>,
    /// Wall time of the run.
    pub seconds: f64,
}

/// The file names a report writes.
pub const MARKDOWN_FILE: &str = "report.md";
/// The JSON file.
pub const JSON_FILE: &str = "results.json";
/// The latency plot.
pub const LATENCY_SVG: &str = "latency.svg";
/// The throughput plot.
pub const THROUGHPUT_SVG: &str = "throughput.svg";

impl Report {
    /// The round-trip row of transport `id` at `payload` bytes.
    pub fn round_trip(&self, id: &str, payload: usize) -> Option<&RoundTripRow> {
        self.round_trips
            .iter()
            .find(|r| r.label.id == id && r.payload == payload)
    }

    /// The floor row of `mode` at `payload` bytes.
    pub fn round_trip_floor(&self, mode: Mode, payload: usize) -> Option<&RoundTripRow> {
        self.round_trips
            .iter()
            .find(|r| r.label.kind == Kind::Floor && r.label.mode == mode && r.payload == payload)
    }

    /// Knit's row of `mode` at `payload` bytes.
    pub fn round_trip_knit(&self, mode: Mode, payload: usize) -> Option<&RoundTripRow> {
        self.round_trips
            .iter()
            .find(|r| r.label.kind == Kind::Knit && r.label.mode == mode && r.payload == payload)
    }

    /// The floor stream row for `message` bytes and `batch`.
    pub fn stream_floor(&self, message: usize, batch: usize) -> Option<&StreamRow> {
        self.streams
            .iter()
            .find(|r| r.label.kind == Kind::Floor && r.message == message && r.batch == batch)
    }

    /// Knit's stream row of `mode` for `message` bytes and `batch`.
    pub fn stream_knit(&self, mode: Mode, message: usize, batch: usize) -> Option<&StreamRow> {
        self.streams.iter().find(|r| {
            r.label.kind == Kind::Knit
                && r.label.mode == mode
                && r.message == message
                && r.batch == batch
        })
    }

    /// The floor p50 that `row` is compared with: its paired floor (measured right before it),
    /// else the floor row of its mode and payload.
    pub fn floor_p50_for(&self, row: &RoundTripRow) -> Option<f64> {
        row.paired_floor_p50_ns.or_else(|| {
            self.round_trip_floor(row.label.mode, row.payload)
                .map(|f| f.latency.p50_ns)
        })
    }

    /// `row`'s p50 over its floor's ([`Report::floor_p50_for`]); 1 for a floor row.
    pub fn over_floor(&self, row: &RoundTripRow) -> Option<f64> {
        if row.label.kind == Kind::Floor {
            return Some(1.0);
        }
        ratio(Some(row.latency.p50_ns), self.floor_p50_for(row))
    }

    /// How many times slower `row` is than `knit` (p50 over p50). When both have a paired
    /// floor of the same mode, each p50 is first divided by its own paired floor, so that a
    /// change of the machine's speed between the two measurements (on this VM the vCPUs'
    /// placement changes over time) cancels out.
    pub fn over(&self, row: &RoundTripRow, knit: &RoundTripRow) -> Option<f64> {
        match (row.paired_floor_p50_ns, knit.paired_floor_p50_ns) {
            (Some(_), Some(_)) if row.label.mode == knit.label.mode => {
                ratio(self.over_floor(row), self.over_floor(knit))
            }
            _ => ratio(Some(row.latency.p50_ns), Some(knit.latency.p50_ns)),
        }
    }

    /// The floor rate that a stream row is compared with: its paired floor, else the floor
    /// row of the same case.
    pub fn stream_floor_rate_for(&self, row: &StreamRow) -> Option<f64> {
        row.paired_floor_rate.or_else(|| {
            self.stream_floor(row.message, row.batch)
                .map(StreamRow::messages_per_sec)
        })
    }

    /// Writes the Markdown, JSON and SVG files into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let md = dir.join(MARKDOWN_FILE);
        std::fs::write(&md, markdown::render(self))?;
        let js = dir.join(JSON_FILE);
        std::fs::write(
            &js,
            serde_json::to_string_pretty(&json::render(self))? + "\n",
        )?;
        let lat = dir.join(LATENCY_SVG);
        plot::latency(self, &lat)?;
        let thr = dir.join(THROUGHPUT_SVG);
        plot::throughput(self, &thr)?;
        Ok(vec![md, js, lat, thr])
    }
}

/// `a / b` when both exist and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// A byte count as people write it: `0 B`, `64 B`, `4 KiB`, `1 MiB`.
pub fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::results::Label;
    use crate::stats::Latency;

    pub(crate) fn latency(p50: f64) -> Latency {
        Latency {
            samples: 1000,
            p50_ns: p50,
            p99_ns: p50 * 2.0,
            p999_ns: p50 * 4.0,
            mean_ns: p50 * 1.1,
            min_ns: p50 * 0.9,
            max_ns: p50 * 10.0,
        }
    }

    pub(crate) fn row(
        id: &'static str,
        kind: Kind,
        mode: Mode,
        payload: usize,
        p50: f64,
    ) -> RoundTripRow {
        RoundTripRow {
            label: Label {
                id,
                title: id,
                mode,
                kind,
            },
            payload,
            latency: latency(p50),
            calls_per_sec: 1e9 / p50,
            paired_floor_p50_ns: None,
        }
    }

    pub(crate) fn stream(
        id: &'static str,
        kind: Kind,
        mode: Mode,
        message: usize,
        batch: usize,
        rate: f64,
    ) -> StreamRow {
        StreamRow {
            label: Label {
                id,
                title: id,
                mode,
                kind,
            },
            message,
            batch,
            messages: 1_000_000,
            seconds: 1e6 / rate,
            paired_floor_rate: None,
        }
    }

    /// A report with a floor, Knit and a peer at every size, and a few streams.
    // Payload sizes are exact in f64.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn sample() -> Report {
        let mut round_trips = Vec::new();
        for &p in &crate::roundtrip::PAYLOADS {
            let scale = 1.0 + p as f64 / 1000.0;
            round_trips.push(row(
                "floor-spin",
                Kind::Floor,
                Mode::Spinning,
                p,
                200.0 * scale,
            ));
            round_trips.push(row(
                "floor-futex",
                Kind::Floor,
                Mode::Parked,
                p,
                5000.0 * scale,
            ));
            round_trips.push(row(
                "knit-spin",
                Kind::Knit,
                Mode::Spinning,
                p,
                280.0 * scale,
            ));
            round_trips.push(row(
                "knit-parked",
                Kind::Knit,
                Mode::Parked,
                p,
                5400.0 * scale,
            ));
            round_trips.push(row(
                "unix-socket",
                Kind::Peer,
                Mode::Parked,
                p,
                9000.0 * scale,
            ));
        }
        let mut streams = Vec::new();
        for &m in &crate::stream::MESSAGES {
            for &b in &crate::stream::BATCHES {
                streams.push(stream("shm-ring", Kind::Floor, Mode::Spinning, m, b, 4e6));
                streams.push(stream("unix-socket", Kind::Peer, Mode::Parked, m, b, 1e6));
            }
        }
        Report {
            machine: Machine::default(),
            budget: Budget::quick(),
            rounds: 1,
            realtime_spinning: false,
            timer_overhead_ns: 20.0,
            round_trips: round_trips.clone(),
            streams,
            round_trip_rounds: vec![round_trips.clone(), round_trips],
            failures: vec![Failure {
                case: "x".into(),
                error: "boom".into(),
            }],
            seconds: 1.0,
        }
    }

    #[test]
    fn finds_floors_and_knit_rows_by_mode() {
        let r = sample();
        assert_eq!(
            r.round_trip_floor(Mode::Spinning, 64).unwrap().label.id,
            "floor-spin"
        );
        assert_eq!(
            r.round_trip_floor(Mode::Parked, 64).unwrap().label.id,
            "floor-futex"
        );
        assert_eq!(
            r.round_trip_knit(Mode::Parked, 0).unwrap().label.id,
            "knit-parked"
        );
        assert!(r.round_trip("unix-socket", 3).is_none());
        assert_eq!(r.stream_floor(64, 32).unwrap().label.id, "shm-ring");
        assert!(r.stream_knit(Mode::Spinning, 64, 1).is_none());
    }

    #[test]
    fn paired_floors_take_precedence_and_normalise_comparisons() {
        let mut r = sample();
        let knit = r.round_trip_knit(Mode::Spinning, 64).unwrap().clone();
        // Without paired floors: against the floor row (200·1.064), 1.4.
        assert!((r.over_floor(&knit).unwrap() - 1.4).abs() < 1e-9);
        let mut knit_paired = knit.clone();
        knit_paired.paired_floor_p50_ns = Some(knit.latency.p50_ns / 2.0);
        assert!((r.over_floor(&knit_paired).unwrap() - 2.0).abs() < 1e-9);
        // A peer measured when the machine was twice as slow, with its own paired floor.
        let mut peer = knit_paired.clone();
        peer.label.kind = Kind::Peer;
        peer.latency.p50_ns = knit.latency.p50_ns * 6.0;
        peer.paired_floor_p50_ns = Some(knit.latency.p50_ns);
        // Raw: 6×; normalised: (6 / 1) / (1 / 0.5) = 3×.
        assert!((r.over(&peer, &knit_paired).unwrap() - 3.0).abs() < 1e-9);
        assert!((r.over(&peer, &knit).unwrap() - 6.0).abs() < 1e-9);
        r.round_trips.clear();
        assert_eq!(r.over_floor(&knit), None);
    }

    #[test]
    fn formats_sizes_and_ratios() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(64), "64 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1 << 20), "1 MiB");
        assert_eq!(bytes(1000), "1000 B");
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }

    #[test]
    fn writes_all_four_files() {
        let dir = std::env::temp_dir().join(format!("knit-bench-report-{}", std::process::id()));
        let files = sample().write(&dir).unwrap();
        assert_eq!(files.len(), 4);
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() > 100, "{}", f.display());
        }
        let svg = std::fs::read_to_string(dir.join(LATENCY_SVG)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("knit-spin"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
