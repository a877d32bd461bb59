//! The suite catches bugs: the reference agent built with a deliberately broken knit-core
//! (`--cfg knit_mutant="..."`, see knit-core/src/ring/consumer.rs) fails the cases that check
//! what the mutant breaks. Each mutant is built once into its own target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use knit_conformance::case;
use knit_conformance::exec::{Config, Runner};
use knit_conformance::spec;

/// The workspace the mutants are built from: `KNIT_WORKSPACE` when set (a checkout other than
/// the one this test was built in), else two levels above this crate.
fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("KNIT_WORKSPACE") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// One mutant at a time: each build uses both cores, and the cases measure liveness bounds.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Builds `knit-agent` with `--cfg knit_mutant="<name>"` and returns the binary.
fn build_mutant(name: &str) -> PathBuf {
    let base =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let dir = base.join("mutants").join(name);
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "knit-agent"])
        .current_dir(root())
        .env("CARGO_TARGET_DIR", &dir)
        .env("RUSTFLAGS", format!("--cfg knit_mutant=\"{name}\""))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building mutant {name}");
    dir.join("debug/knit-agent")
}

/// A runner for `agent`.
fn runner(agent: &Path) -> Runner {
    let cfg = Config {
        suite_dir: root().join("conformance"),
        spec_dir: root().join("spec"),
        agent: agent.display().to_string(),
        peer: None,
        debug: false,
        seed: 1,
    };
    Runner::new(cfg).unwrap()
}

/// Runs the named cases against `agent`; returns (id, outcome name) of each.
fn run(agent: &Path, ids: &[&str]) -> Vec<(String, &'static str)> {
    let clauses = spec::clauses(&root().join("spec")).unwrap();
    let cases = case::load_all(&root().join("conformance/cases"), &clauses).unwrap();
    let mut runner = runner(agent);
    ids.iter()
        .map(|id| {
            let c = cases
                .iter()
                .find(|c| c.id == *id)
                .unwrap_or_else(|| panic!("no case {id}"));
            (c.id.clone(), runner.run_case(c).outcome.name())
        })
        .collect()
}

fn caught(outcome: &str) -> bool {
    matches!(outcome, "FAIL" | "CRASH" | "HANG")
}

#[test]
fn a_consumer_without_the_record_length_check_fails_the_length_cases() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let agent = build_mutant("skip_len_check");
    let results = run(
        &agent,
        &[
            "adversarial.record-over-half",
            "adversarial.record-past-tail",
            "adversarial.record-across-end",
            "adversarial.live-record-past-tail",
            "adversarial.live-torn-publication",
            "adversarial.host-response-past-tail",
            "layout.golden-region",
        ],
    );
    for (id, outcome) in &results[..6] {
        assert!(caught(outcome), "{id} did not catch the mutant: {outcome}");
    }
    assert_eq!(results[6].1, "PASS", "an unrelated case still passes");
    // The generated mutations and the frozen regression vector catch it too.
    let mut runner = runner(&agent);
    let generated = knit_conformance::cli::run_mutations(&mut runner);
    assert!(
        generated.iter().any(|r| caught(r.outcome.name())),
        "no mutation caught the mutant"
    );
    let frozen = knit_conformance::cli::run_regressions(&mut runner);
    assert!(frozen
        .iter()
        .any(|r| r.id == "regression.record-past-tail" && caught(r.outcome.name())));
}

/// The attack is a race: each of the case's 40 fresh regions catches this mutant with a chance
/// of about one in three (the other two end in a violation a correct consumer may report as
/// well), so a miss of all 40 is about one in ten million.
#[test]
fn a_consumer_that_reads_the_length_twice_fails_the_double_fetch_attack() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let agent = build_mutant("double_read_len");
    let results = run(
        &agent,
        &["adversarial.live-double-fetch", "calls.echo-round-trip"],
    );
    assert!(
        caught(results[0].1),
        "the double-fetch attack did not catch the mutant: {}",
        results[0].1
    );
    assert_eq!(results[1].1, "PASS", "without an attacker the mutant works");
}
