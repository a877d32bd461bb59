//! The command line: `knit-bench [--quick] [--out DIR] [--only ID,...]` runs the suite and
//! writes the report; `knit-bench peer ROLE key=value...` is the peer process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::budget::Budget;
use crate::machine::{load_average, Machine};
use crate::peer::{PeerArgs, PEER_COMMAND};
use crate::report::{bytes, Report};
use crate::results::{Failure, Kind, Label, Mode, RoundTripRow, StreamRow};
use crate::rounds::median_rows;
use crate::roundtrip::{self, RoundTripBench, PAYLOADS};
use crate::sched;
use crate::stream::{self, StreamBench, BATCHES, MESSAGES};
use crate::suite::Suite;
use crate::{error, Result};

const USAGE: &str = "\
usage: knit-bench [--quick] [--realtime] [--rounds N] [--out DIR] [--only ID[,ID...]] [--sizes N[,N...]] [--list]
  --quick   a few milliseconds per case: checks that every case runs (CI); numbers mean little
  --realtime  measure the spinning transports as SCHED_FIFO (root): other load cannot take a
            core from a spinning pair; parked transports stay SCHED_OTHER
  --rounds  run the whole suite N times (default 1) and keep, per case, the round with the
            median p50 (round trips) or rate (streams): robust against a disturbed round
  --out     where report.md, results.json, latency.svg and throughput.svg go (default bench-out)
  --only    run only the transports with these ids (see --list)
  --sizes   run only the round trips with these payload sizes in bytes (for profiling)
  --list    print the transport ids and exit";

/// What the command line asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Quick mode.
    pub quick: bool,
    /// Rounds of the whole suite.
    pub rounds: usize,
    /// Spinning transports run as `SCHED_FIFO`.
    pub realtime: bool,
    /// The output directory.
    pub out: PathBuf,
    /// Transport ids to run; empty for all.
    pub only: Vec<String>,
    /// Round-trip payload sizes to run; empty for all.
    pub sizes: Vec<usize>,
    /// Only list the transports.
    pub list: bool,
}

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            quick: false,
            rounds: 1,
            realtime: false,
            out: PathBuf::from("bench-out"),
            only: Vec::new(),
            sizes: Vec::new(),
            list: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--list" => o.list = true,
                "--realtime" => o.realtime = true,
                "--out" => {
                    o.out = it
                        .next()
                        .ok_or_else(|| error("--out needs a directory"))?
                        .into();
                }
                "--only" => {
                    let ids = it.next().ok_or_else(|| error("--only needs ids"))?;
                    o.only
                        .extend(ids.split(',').filter(|s| !s.is_empty()).map(str::to_owned));
                }
                "--rounds" => {
                    let n = it.next().ok_or_else(|| error("--rounds needs a count"))?;
                    o.rounds = n.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
                        error(format!("--rounds: {n:?} is not a count of at least 1"))
                    })?;
                }
                "--sizes" => {
                    let sizes = it.next().ok_or_else(|| error("--sizes needs sizes"))?;
                    for s in sizes.split(',').filter(|s| !s.is_empty()) {
                        o.sizes.push(
                            s.parse()
                                .map_err(|_| error(format!("--sizes: {s:?} is not a number")))?,
                        );
                    }
                }
                other => return Err(error(format!("unknown argument {other:?}\n{USAGE}"))),
            }
        }
        Ok(o)
    }

    fn selected(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| o == id)
    }

    fn payload_selected(&self, payload: usize) -> bool {
        self.sizes.is_empty() || self.sizes.contains(&payload)
    }
}

/// The entry point of a benchmark executable built on `suite`.
pub fn main(suite: &Suite) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(PEER_COMMAND) {
        let result = args
            .get(1..)
            .ok_or_else(|| error("peer: no role"))
            .and_then(PeerArgs::parse)
            .and_then(|a| suite.serve_peer(&a));
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("knit-bench peer: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if options.list {
        for b in suite.round_trips() {
            println!("{:<16} round trips, {}", b.label().id, b.label().title);
        }
        for b in suite.streams() {
            println!("{:<16} streams, {}", b.label().id, b.label().title);
        }
        return ExitCode::SUCCESS;
    }
    match run(suite, &options) {
        Ok(report) if report.failures.is_empty() => ExitCode::SUCCESS,
        Ok(report) => {
            eprintln!("knit-bench: {} case(s) failed", report.failures.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("knit-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every selected case of `suite` and writes the report.
pub fn run(suite: &Suite, options: &Options) -> Result<Report> {
    let budget = if options.quick {
        Budget::quick()
    } else {
        Budget::full()
    };
    let started = Instant::now();
    let mut machine = Machine::describe();
    eprintln!(
        "knit-bench: {} run, {} build, load {}",
        if budget.quick { "quick" } else { "full" },
        machine.profile,
        machine.load_before
    );
    let mut failures = Vec::new();
    let mut rt_rounds = Vec::new();
    let mut st_rounds = Vec::new();
    for round in 1..=options.rounds {
        if options.rounds > 1 {
            eprintln!("knit-bench: round {round} of {}", options.rounds);
        }
        rt_rounds.push(run_round_trips(suite, options, &budget, &mut failures));
        st_rounds.push(run_streams(suite, options, &budget, &mut failures));
    }
    // Per case, the round with the median ratio to its paired floor (the median p50 or rate
    // for the floors themselves, which have none).
    let round_trips = median_rows(
        &rt_rounds,
        |r| (r.label.id, r.payload),
        |r| {
            r.paired_floor_p50_ns
                .map_or(r.latency.p50_ns, |f| r.latency.p50_ns / f)
        },
    );
    let streams = median_rows(
        &st_rounds,
        |r| (r.label.id, r.message, r.batch),
        |r| {
            r.paired_floor_rate
                .map_or(r.messages_per_sec(), |f| r.messages_per_sec() / f)
        },
    );
    machine.load_after = load_average();
    let report = Report {
        machine,
        budget,
        rounds: options.rounds,
        realtime_spinning: options.realtime,
        timer_overhead_ns: roundtrip::timer_overhead_ns(),
        round_trips,
        streams,
        round_trip_rounds: rt_rounds,
        failures,
        seconds: started.elapsed().as_secs_f64(),
    };
    for path in report.write(&options.out)? {
        eprintln!("knit-bench: wrote {}", path.display());
    }
    Ok(report)
}

fn run_round_trips(
    suite: &Suite,
    options: &Options,
    budget: &Budget,
    failures: &mut Vec<Failure>,
) -> Vec<RoundTripRow> {
    let mut rows = Vec::new();
    for bench in suite.round_trips() {
        let label = bench.label();
        if !options.selected(label.id) {
            continue;
        }
        // The floor is measured again right before each case of another transport.
        let floor = suite
            .round_trip_floor(label.mode)
            .filter(|_| label.kind != Kind::Floor);
        with_policy(options, label, failures, |failures| {
            for &payload in PAYLOADS.iter().filter(|&&p| options.payload_selected(p)) {
                let paired =
                    floor.and_then(|f| match round_trip_case(f, payload, &budget.paired()) {
                        Ok(row) => Some(row.latency.p50_ns),
                        Err(e) => {
                            let case = format!("{} paired floor {}", label.id, bytes(payload));
                            failures.push(failure(case, &e));
                            None
                        }
                    });
                match round_trip_case(bench.as_ref(), payload, budget) {
                    Ok(mut row) => {
                        row.paired_floor_p50_ns = paired;
                        eprintln!(
                            "  {:<20} {:<8} {:>7}  p50 {:>9.2} µs  p99 {:>9.2} µs  p99.9 {:>9.2} µs  ({} calls){}",
                            label.id,
                            label.mode.name(),
                            bytes(payload),
                            row.latency.p50_ns / 1e3,
                            row.latency.p99_ns / 1e3,
                            row.latency.p999_ns / 1e3,
                            row.latency.samples,
                            paired.map_or_else(String::new, |f| format!("  paired floor {:.2} µs", f / 1e3)),
                        );
                        rows.push(row);
                    }
                    Err(e) => {
                        let case = format!("{} round trip {}", label.id, bytes(payload));
                        failures.push(failure(case, &e));
                    }
                }
            }
        });
    }
    rows
}

/// One round-trip case on a connection of its own: connect, measure, close. A fresh
/// connection per case keeps an idle peer that busy-polls (iceoryx2's server, the raw floors)
/// from competing with the paired floor measured before the case.
fn round_trip_case(
    bench: &dyn RoundTripBench,
    payload: usize,
    budget: &Budget,
) -> crate::Result<RoundTripRow> {
    let mut rt = bench.connect()?;
    // A broken connection is dropped (its peer killed), not closed.
    let row = roundtrip::measure(rt.as_mut(), bench.label(), payload, budget)?;
    rt.close()?;
    Ok(row)
}

fn run_streams(
    suite: &Suite,
    options: &Options,
    budget: &Budget,
    failures: &mut Vec<Failure>,
) -> Vec<StreamRow> {
    let mut rows = Vec::new();
    for bench in suite.streams() {
        let label = bench.label();
        if !options.selected(label.id) {
            continue;
        }
        let floor = suite.stream_floor().filter(|_| label.kind != Kind::Floor);
        with_policy(options, label, failures, |failures| {
            for &m in &MESSAGES {
                for &b in &BATCHES {
                    let case = format!("{} stream {} × {b}", label.id, bytes(m));
                    let paired = floor.and_then(|f| match stream_case(f, m, b, &budget.paired()) {
                        Ok(row) => Some(row.messages_per_sec()),
                        Err(e) => {
                            failures.push(failure(format!("{case} paired floor"), &e));
                            None
                        }
                    });
                    match stream_case(bench.as_ref(), m, b, budget) {
                        Ok(mut row) => {
                            row.paired_floor_rate = paired;
                            eprintln!(
                                "  {:<20} {:<8} {:>7} × {:<2}  {:>12.0} msg/s  {:>7.3} GB/s{}",
                                label.id,
                                label.mode.name(),
                                bytes(m),
                                b,
                                row.messages_per_sec(),
                                row.gb_per_sec(),
                                paired.map_or_else(String::new, |f| format!(
                                    "  paired floor {f:.0} msg/s"
                                )),
                            );
                            rows.push(row);
                        }
                        Err(e) => failures.push(failure(case, &e)),
                    }
                }
            }
        });
    }
    rows
}

/// One stream case on a connection of its own (see [`round_trip_case`]).
fn stream_case(
    bench: &dyn StreamBench,
    message: usize,
    batch: usize,
    budget: &Budget,
) -> crate::Result<StreamRow> {
    let mut st = bench.connect()?;
    let row = stream::measure(st.as_mut(), bench.label(), message, batch, budget)?;
    st.close()?;
    Ok(row)
}

/// Runs `f` for one transport, as `SCHED_FIFO` when `--realtime` asks for it and the
/// transport spins (see [`sched`]).
fn with_policy(
    options: &Options,
    label: Label,
    failures: &mut Vec<Failure>,
    f: impl FnOnce(&mut Vec<Failure>),
) {
    let realtime = options.realtime && label.mode == Mode::Spinning;
    if realtime {
        if let Err(e) = sched::set_realtime(true) {
            failures.push(failure(format!("{} realtime", label.id), &e));
            return;
        }
    }
    f(failures);
    if realtime {
        if let Err(e) = sched::set_realtime(false) {
            failures.push(failure(format!("{} realtime", label.id), &e));
        }
    }
}

fn failure(case: String, e: &crate::Error) -> Failure {
    eprintln!("  FAILED {case}: {e}");
    Failure {
        case,
        error: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_options() {
        let o = Options::parse(&strings(&[
            "--quick", "--out", "x", "--only", "a,b", "--only", "c",
        ]))
        .unwrap();
        assert!(o.quick && !o.list && !o.realtime);
        assert!(Options::parse(&strings(&["--realtime"])).unwrap().realtime);
        assert_eq!(o.out, PathBuf::from("x"));
        assert_eq!(o.only, ["a", "b", "c"]);
        assert!(o.selected("b") && !o.selected("d"));
        let all = Options::parse(&[]).unwrap();
        assert!(all.selected("anything"));
        assert!(Options::parse(&strings(&["--out"])).is_err());
        assert!(Options::parse(&strings(&["--fast"])).is_err());
        assert!(Options::parse(&strings(&["--sizes", "x"])).is_err());
        assert!(Options::parse(&strings(&["--rounds", "0"])).is_err());
        assert_eq!(
            Options::parse(&strings(&["--rounds", "3"])).unwrap().rounds,
            3
        );
    }
}
