//! The quick mode, end to end: the benchmark executable runs every case of the default build
//! between two real processes and writes a complete report. Nothing about time is asserted.

use std::process::Command;

#[test]
fn quick_mode_runs_every_case_and_writes_the_report() {
    let out = std::env::temp_dir().join(format!("knit-bench-quick-{}", std::process::id()));
    let status = Command::new(env!("CARGO_BIN_EXE_knit-bench"))
        .args(["--quick", "--out"])
        .arg(&out)
        .status()
        .expect("start knit-bench");
    assert!(status.success(), "knit-bench --quick failed: {status}");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["failures"].as_array().unwrap().len(), 0);
    assert_eq!(json["run"]["quick"], true);
    let round_trips = json["round_trips"].as_array().unwrap();
    let streams = json["streams"].as_array().unwrap();
    // Every default transport at every payload / message size and batch.
    for id in [
        "floor-spin",
        "floor-futex",
        "knit-spin",
        "knit-parked",
        "unix-socket",
        "pipe",
    ] {
        let n = round_trips
            .iter()
            .filter(|r| r["transport"]["id"] == id)
            .count();
        assert_eq!(n, 5, "{id}: {n} round-trip rows");
    }
    for id in [
        "shm-ring",
        "knit-channel-spin",
        "knit-channel-parked",
        "unix-socket",
        "pipe",
    ] {
        let n = streams
            .iter()
            .filter(|r| r["transport"]["id"] == id)
            .count();
        assert_eq!(n, 4, "{id}: {n} stream rows");
    }
    for r in round_trips {
        assert!(r["samples"].as_u64().unwrap() > 0, "{r}");
        assert!(
            r["p50_ns"].as_f64().unwrap() <= r["p999_ns"].as_f64().unwrap(),
            "{r}"
        );
    }
    for r in streams {
        assert!(r["messages"].as_u64().unwrap() > 0, "{r}");
    }
    // The bars that the default build can evaluate have a ratio; iceoryx2's has none.
    let bars = json["bars"].as_array().unwrap();
    assert!(bars[0]["ratio"].as_f64().is_some());
    assert!(bars[1]["ratio"].is_null());

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("## Bars") && md.contains("### 1 MiB") && md.contains("## Streams"));
    for (svg, series) in [("latency.svg", "knit-spin"), ("throughput.svg", "shm-ring")] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.starts_with("<svg") && text.contains(series), "{svg}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}
