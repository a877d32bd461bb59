//! The runner scores agents that misbehave: a hang is HANG, an exit is CRASH and the next case
//! gets a fresh agent, `skipped` is SKIP, a wrong verdict is FAIL, and an agent that never
//! answers `hello` stops being started after a few tries. The agents are the small Python
//! script `fake_agent.py` next to this file.

use std::path::{Path, PathBuf};

use knit_conformance::case::{self, Case};
use knit_conformance::exec::{Config, Runner, MAX_START_FAILURES};
use knit_conformance::outcome::Outcome;
use knit_conformance::spec;

fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

fn cases(ids: &[&str]) -> Vec<Case> {
    let clauses = spec::clauses(&root().join("spec")).unwrap();
    let all = case::load_all(&root().join("conformance/cases"), &clauses).unwrap();
    ids.iter()
        .map(|id| all.iter().find(|c| c.id == *id).unwrap().clone())
        .collect()
}

fn runner(mode: &str) -> Runner {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_agent.py");
    Runner::new(Config {
        suite_dir: root().join("conformance"),
        spec_dir: root().join("spec"),
        agent: format!("python3 {} {mode}", script.display()),
        peer: None,
        debug: false,
        seed: 1,
    })
    .unwrap()
}

fn outcomes(mode: &str, ids: &[&str]) -> Vec<Outcome> {
    let mut r = runner(mode);
    cases(ids).iter().map(|c| r.run_case(c).outcome).collect()
}

const TWO: [&str; 2] = ["layout.bad-magic", "layout.golden-region"];

#[test]
fn a_crash_is_crash_and_the_next_case_gets_a_new_agent() {
    assert_eq!(
        outcomes("crash-on-validate", &TWO),
        [Outcome::Crash, Outcome::Crash]
    );
}

#[test]
fn a_hang_is_hang() {
    assert_eq!(outcomes("hang-on-validate", &TWO[..1]), [Outcome::Hang]);
}

#[test]
fn skipped_commands_skip_and_missing_capabilities_skip() {
    let got = outcomes(
        "skip-all",
        &[
            "layout.bad-magic",
            "versioning.golden-request",
            "errors.typed-array",
        ],
    );
    assert_eq!(got, [Outcome::Skip, Outcome::Skip, Outcome::Skip]);
}

#[test]
fn a_wrong_verdict_fails_and_a_right_one_passes() {
    assert_eq!(
        outcomes("wrong-verdict", &TWO),
        [Outcome::Fail, Outcome::Pass]
    );
}

#[test]
fn an_agent_that_never_says_hello_is_given_up_on() {
    let mut r = runner("silent");
    r.hello_timeout = std::time::Duration::from_millis(300);
    let c = cases(&TWO[..1]);
    for _ in 0..MAX_START_FAILURES {
        assert_eq!(r.run_case(&c[0]).outcome, Outcome::Crash);
    }
    assert!(r.broken.is_some());
    let later = r.run_case(&c[0]);
    assert_eq!(later.outcome, Outcome::Crash);
    assert!(
        later.detail.contains("cannot be started"),
        "{}",
        later.detail
    );
}
