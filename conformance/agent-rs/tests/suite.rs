//! The whole conformance suite against the reference agent: every case passes, the generated
//! mutations match the reference verdicts, the frozen regression vectors give their verdicts,
//! and every MUST clause of the spec is named by a case.

use std::path::{Path, PathBuf};

use knit_conformance::case;
use knit_conformance::cli::{run_mutations, run_regressions, Options};
use knit_conformance::exec::{Config, Runner};
use knit_conformance::outcome::Outcome;
use knit_conformance::report;
use knit_conformance::spec;

/// The workspace root: two levels above this crate, taken lexically (not through symlinks).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn agent() -> String {
    env!("CARGO_BIN_EXE_knit-agent").to_owned()
}

#[test]
fn the_reference_agent_passes_every_case() {
    let clauses = spec::clauses(&root().join("spec")).unwrap();
    let cases = case::load_all(&root().join("conformance/cases"), &clauses).unwrap();
    let cfg = Config {
        suite_dir: root().join("conformance"),
        spec_dir: root().join("spec"),
        agent: agent(),
        peer: Some(agent()),
        debug: false,
        seed: 1,
    };
    let mut runner = Runner::new(cfg).unwrap();
    let mut results = Vec::new();
    for c in &cases {
        let r = runner.run_case(c);
        let skipped_for_channels =
            r.outcome == Outcome::Skip && c.requires.iter().any(|x| x == "channels");
        assert!(
            r.outcome == Outcome::Pass || skipped_for_channels,
            "{} {}: {} (observed {})\nstderr: {}",
            r.id,
            r.outcome.name(),
            r.detail,
            r.observed,
            r.stderr_tail
        );
        results.push(r);
    }
    let mutations = run_mutations(&mut runner);
    assert!(
        mutations.len() >= 10,
        "one mutation result per validatable vector"
    );
    for m in &mutations {
        assert_eq!(
            m.outcome,
            Outcome::Pass,
            "{}: {} {}",
            m.id,
            m.detail,
            m.observed
        );
    }
    let regressions = run_regressions(&mut runner);
    assert!(!regressions.is_empty(), "the frozen regression vectors run");
    for r in &regressions {
        assert_eq!(
            r.outcome,
            Outcome::Pass,
            "{}: {} {}",
            r.id,
            r.detail,
            r.observed
        );
    }
    let cov = report::coverage(&clauses, &cases, &results);
    assert_eq!(
        report::uncovered_musts(&clauses, &cov),
        Vec::<String>::new()
    );
    let t = report::totals(&results);
    assert_eq!(
        t.must_passed + t.skipped,
        t.must_total + t.should_total - t.should_passed
    );
    let statement = report::statement(&runner.agent_name, &t, &clauses, &cov);
    assert!(
        statement.starts_with("knit conformance 0.1.0, spec 1.0, knit-rs"),
        "{statement}"
    );
    let (must, musts) = report::clauses_passed(&clauses, &cov, "MUST");
    assert_eq!(must, musts, "every MUST clause passed: {statement}");
}

#[test]
fn the_command_line_lists_every_case_and_reports_coverage() {
    let o = Options {
        list: true,
        suite: root().join("conformance"),
        spec: root().join("spec"),
        ..Options::default()
    };
    assert_eq!(knit_conformance::cli::run_options(&o), Ok(true));
}
