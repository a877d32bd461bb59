//! `knit conformance`: the command line of the runner (conformance/README.md).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Failure;
use crate::case::{self, Case};
use crate::exec::{Config, Runner};
use crate::mutate;
use crate::outcome::{CaseResult, Outcome};
use crate::report;
use crate::spec;

/// Parsed options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Agents under test.
    pub agents: Vec<String>,
    /// The peer.
    pub peer: Option<String>,
    /// Case id filters (a trailing `*` matches a prefix).
    pub cases: Vec<String>,
    /// Group filters.
    pub groups: Vec<String>,
    /// Only list.
    pub list: bool,
    /// Print frames.
    pub debug: bool,
    /// Report directory.
    pub report: Option<PathBuf>,
    /// Expected-failure file.
    pub expected: Option<PathBuf>,
    /// Seed.
    pub seed: u64,
    /// `conformance/`.
    pub suite: PathBuf,
    /// `spec/`.
    pub spec: PathBuf,
    /// Skip the generated mutations.
    pub no_mutations: bool,
}

const USAGE: &str = "usage: knit conformance --agent \"<command>\" [--agent ...] [--peer \"<command>\"] [--case ID]... [--group G]... [--list] [--debug] [--report DIR] [--expected FILE] [--seed N] [--suite DIR] [--spec DIR] [--no-mutations]";

/// Parses the arguments after `conformance`.
pub fn parse(args: &[String]) -> Result<Options, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut o = Options {
        suite: root.join("conformance"),
        spec: root.join("spec"),
        seed: 1,
        ..Options::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--agent" => o.agents.push(val()?),
            "--peer" => o.peer = Some(val()?),
            "--case" => o.cases.push(val()?),
            "--group" => o.groups.push(val()?),
            "--list" => o.list = true,
            "--debug" => o.debug = true,
            "--report" => o.report = Some(PathBuf::from(val()?)),
            "--expected" => o.expected = Some(PathBuf::from(val()?)),
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--suite" => o.suite = PathBuf::from(val()?),
            "--spec" => o.spec = PathBuf::from(val()?),
            "--no-mutations" => o.no_mutations = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if o.agents.is_empty() && !o.list {
        return Err(format!("--agent is required\n{USAGE}"));
    }
    Ok(o)
}

fn selected(id: &str, group: &str, o: &Options) -> bool {
    let by_case = o.cases.is_empty() || o.cases.iter().any(|c| glob(c, id));
    let by_group = o.groups.is_empty() || o.groups.iter().any(|g| g == group);
    by_case && by_group
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().unwrap_or((&"", &[]));
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    for (i, part) in rest.iter().enumerate() {
        let last = i + 1 == rest.len();
        if last {
            return remaining.ends_with(part);
        }
        match remaining.find(part) {
            Some(at) => remaining = &remaining[at + part.len()..],
            None => return false,
        }
    }
    remaining.is_empty()
}

/// Runs the suite; the exit status is 0 when the run passed (README §6).
pub fn run(args: &[String]) -> i32 {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    match run_options(&o) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("knit conformance: {e}");
            2
        }
    }
}

/// Runs with parsed options; `Ok(true)` when the run passed.
#[allow(clippy::too_many_lines)] // the run in order: load, run, mutations, coverage, reports
pub fn run_options(o: &Options) -> Result<bool, String> {
    let clauses = spec::clauses(&o.spec)?;
    let all_cases = case::load_all(&o.suite.join("cases"), &clauses)?;
    let cases: Vec<Case> = all_cases
        .iter()
        .filter(|c| selected(&c.id, &c.group, o))
        .cloned()
        .collect();
    if o.list {
        for c in &cases {
            let cl: Vec<String> = c
                .clauses
                .iter()
                .map(|x| format!("{} {}", x.id, x.level))
                .collect();
            println!(
                "{:<48} {:<6} {:<5} {:<22} {}",
                c.id,
                c.level(),
                c.target,
                c.roles.join(","),
                cl.join(", ")
            );
        }
        let cov = report::coverage(&clauses, &all_cases, &[]);
        let missing = report::uncovered_musts(&clauses, &cov);
        println!(
            "{} cases; MUST clauses without a case: {}",
            cases.len(),
            if missing.is_empty() {
                "none".into()
            } else {
                missing.join(", ")
            }
        );
        return Ok(missing.is_empty());
    }
    let expected = load_expected(o.expected.as_deref())?;
    let mut passed = true;
    let mut runs = Vec::new();
    for agent in &o.agents {
        let cfg = Config {
            suite_dir: o.suite.clone(),
            spec_dir: o.spec.clone(),
            agent: agent.clone(),
            peer: o.peer.clone(),
            debug: o.debug,
            seed: o.seed,
        };
        let mut runner = Runner::new(cfg)?;
        let mut results = Vec::new();
        for c in &cases {
            let r = runner.run_case(c);
            println!(
                "{:<10} {:<48} {:>6} ms  {}",
                r.outcome.name(),
                r.id,
                r.duration_ms,
                if r.outcome.is_success() {
                    String::new()
                } else {
                    r.detail.clone()
                }
            );
            results.push(r);
        }
        if !o.no_mutations && selected("mutation.", "mutation", o)
            || o.cases.iter().any(|c| c.starts_with("mutation"))
        {
            for r in run_mutations(&mut runner)
                .into_iter()
                .chain(run_regressions(&mut runner))
            {
                println!(
                    "{:<10} {:<48} {:>6} ms  {}",
                    r.outcome.name(),
                    r.id,
                    r.duration_ms,
                    r.detail
                );
                results.push(r);
            }
        }
        let name = runner.agent_name.clone();
        if let Some(a) = runner.agent.take() {
            a.stop();
        }
        apply_expected(&mut results, &expected);
        runs.push((name, results));
    }
    let cov = report::coverage(
        &clauses,
        &all_cases,
        runs.first().map_or(&[][..], |r| &r.1[..]),
    );
    let uncovered = report::uncovered_musts(&clauses, &cov);
    if !uncovered.is_empty() {
        println!(
            "suite failure: MUST clauses with no case: {}",
            uncovered.join(", ")
        );
        passed = false;
    }
    let matrix = if o.agents.len() > 1 {
        crate::matrix::run(&o.agents, o.debug)
    } else {
        Vec::new()
    };
    for (h, w, r) in &matrix {
        println!("interop host {h} × worker {w}: {r}");
        if r.starts_with("FAIL") {
            passed = false;
        }
    }
    for (i, (name, results)) in runs.iter().enumerate() {
        let failed: Vec<&CaseResult> = results
            .iter()
            .filter(|r| {
                (r.outcome.is_failure() && r.level == "MUST") || r.outcome == Outcome::XPass
            })
            .collect();
        if !failed.is_empty() {
            passed = false;
            println!(
                "{name}: {} failing case(s): {}",
                failed.len(),
                failed
                    .iter()
                    .map(|r| r.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(dir) = &o.report {
            let sub = if runs.len() > 1 {
                dir.join(format!("{i}-{}", sanitize(name)))
            } else {
                dir.clone()
            };
            report::write_all(&sub, name, results, &cov, &clauses, &matrix)?;
        }
        let own = report::coverage(&clauses, &all_cases, results);
        println!(
            "{}",
            report::statement(name, &report::totals(results), &clauses, &own)
        );
    }
    Ok(passed)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The expected-failure file: `[[xfail]] id = "..." reason = "..."`.
fn load_expected(path: Option<&Path>) -> Result<Vec<String>, String> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: Value = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(v.get("xfail")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("id")?.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// XFAIL for listed failures, XPASS for listed successes (README §7.3).
pub fn apply_expected(results: &mut [CaseResult], expected: &[String]) {
    for r in results.iter_mut() {
        if expected.iter().any(|e| e == &r.id) {
            if r.outcome.is_failure() {
                r.outcome = Outcome::XFail;
            } else if r.outcome.is_success() {
                r.outcome = Outcome::XPass;
                r.detail =
                    "listed as an expected failure, but passed: the expected-failure file is stale"
                        .into();
            }
        }
    }
}

/// Runs every generated mutation; one result per vector (README §4).
pub fn run_mutations(runner: &mut Runner) -> Vec<CaseResult> {
    let vectors = runner.vectors.clone();
    let mut out = Vec::new();
    for v in vectors.by_name.values() {
        let Some((kind, args)) = mutate::validate_as(v) else {
            continue;
        };
        let start = Instant::now();
        let list = mutate::mutations_of(v);
        let mut fails = Vec::new();
        let mut non_strict = 0usize;
        let mut wrong = 0usize;
        let mut outcome = Outcome::Pass;
        for m in &list {
            let want = mutate::oracle(&vectors, m);
            let mut cmd = args.clone();
            cmd["cmd"] = json!("validate");
            cmd["kind"] = json!(kind);
            cmd["image"] = json!(format!("vectors:{}", v.name));
            cmd["patches"] = Value::Array(
                m.patches
                    .iter()
                    .map(|(o, b)| json!([o, crate::payload::hex(b)]))
                    .collect(),
            );
            let reply = runner.agent().map_err(Failure::Crash).and_then(|a| {
                a.ensure_image(&format!("vectors:{}", v.name), &v.bytes)?;
                a.request(cmd, Duration::from_secs(5))
            });
            let reply = match reply {
                Ok(r) => r,
                Err(f) => {
                    outcome = if matches!(f, Failure::Hang) {
                        Outcome::Hang
                    } else {
                        Outcome::Crash
                    };
                    fails.push(json!({"mutation": m.what, "failure": format!("{f:?}")}));
                    runner.drop_agent();
                    continue;
                }
            };
            let got_verdict = reply
                .get("verdict")
                .and_then(Value::as_str)
                .unwrap_or("none");
            let got_class = reply.get("class").and_then(Value::as_str);
            let (want_verdict, want_class) = match &want {
                Ok(v) => (v.name(), v.class()),
                Err(_) => ("refused", None),
            };
            let status = reply.get("status").and_then(Value::as_str).unwrap_or("");
            if want.is_err() && status == "error" {
                continue;
            }
            if got_verdict != want_verdict {
                if !matches!(outcome, Outcome::Crash | Outcome::Hang) {
                    outcome = Outcome::Fail;
                }
                wrong += 1;
                fails.push(json!({"mutation": m.what, "expected": want_verdict, "expected_class": want_class, "observed": reply}));
            } else if got_class != want_class && strict_order(&kind, want_class) {
                // HDR-9 fixes the order of the attach checks, and RING-9 puts the ring's own
                // checks before everything else: another class there is another verdict.
                if !matches!(outcome, Outcome::Crash | Outcome::Hang) {
                    outcome = Outcome::Fail;
                }
                wrong += 1;
                fails.push(json!({"mutation": m.what, "expected_class": want_class, "observed_class": got_class}));
            } else if got_class != want_class {
                non_strict += 1;
                if outcome == Outcome::Pass {
                    outcome = Outcome::NonStrict;
                }
                if fails.len() < 20 {
                    fails.push(json!({"mutation": m.what, "expected_class": want_class, "observed_class": got_class}));
                }
            }
        }
        fails.truncate(40);
        out.push(CaseResult {
            id: format!("mutation.{}", v.name),
            title: format!("Generated mutations of the golden vector `{}`: same verdict as the reference, never a crash or a hang", v.name),
            group: "mutation".into(),
            clauses: vec![("SEC-1".into(), "MUST".into()), ("HDR-9".into(), "MUST".into()), ("RING-9".into(), "MUST".into())],
            level: "MUST".into(),
            target: "wire".into(),
            pair: json!({"agent": runner.agent_name}),
            outcome,
            expected: json!("the reference implementation's verdict for each mutation"),
            observed: Value::Array(fails.clone()),
            detail: format!(
                "{} mutations, {wrong} with another verdict, another class where the order is fixed, or a failure; {non_strict} with another message-level class",
                list.len()
            ),
            duration_ms: start.elapsed().as_millis() as u64,
            seed: runner.cfg.seed,
            stderr_tail: String::new(),
            region_diff: None,
            info: json!({"mutations": list.len()}),
        });
    }
    out
}

/// Runs every frozen regression vector (`vectors/v1/regressions/`): the agent must give the
/// verdict and class each one records (README §4).
pub fn run_regressions(runner: &mut Runner) -> Vec<CaseResult> {
    let dir = runner.cfg.suite_dir.join("vectors/v1/regressions");
    let Ok(vectors) = crate::images::Vectors::load(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in vectors.by_name.values() {
        let start = Instant::now();
        let (Some((kind, args)), Some(expected)) =
            (v.validate_as(), v.description.get("expected").cloned())
        else {
            continue;
        };
        let name = format!("regression:{}", v.name);
        let mut cmd = args.clone();
        cmd["cmd"] = json!("validate");
        cmd["kind"] = json!(kind);
        cmd["image"] = json!(name);
        cmd["patches"] = json!([]);
        let reply = runner.agent().map_err(Failure::Crash).and_then(|a| {
            a.ensure_image(&name, &v.bytes)?;
            a.request(cmd, Duration::from_secs(5))
        });
        let (outcome, observed, detail) = match reply {
            Ok(r) if crate::expect::first_match(std::slice::from_ref(&expected), &r).is_some() => {
                (Outcome::Pass, r, String::new())
            }
            Ok(r) => (
                Outcome::Fail,
                r,
                "another verdict than the frozen one".to_owned(),
            ),
            Err(f) => {
                runner.drop_agent();
                (
                    if matches!(f, Failure::Hang) {
                        Outcome::Hang
                    } else {
                        Outcome::Crash
                    },
                    Value::Null,
                    format!("{f:?}"),
                )
            }
        };
        let clauses = v
            .description
            .get("spec")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|c| Some((c.as_str()?.to_owned(), "MUST".to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        out.push(CaseResult {
            id: format!("regression.{}", v.name),
            title: v
                .description
                .get("found")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            group: "regression".into(),
            clauses,
            level: "MUST".into(),
            target: "wire".into(),
            pair: json!({"agent": runner.agent_name}),
            outcome,
            expected,
            observed,
            detail,
            duration_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
            seed: runner.cfg.seed,
            stderr_tail: String::new(),
            region_diff: None,
            info: Value::Null,
        });
    }
    out
}

/// True when the spec fixes which error a mutation of this kind must give first: every attach
/// check (HDR-9), and the ring's own checks (RING-8, RING-9 before RING-10 and RING-17) that
/// come before any message-level check.
fn strict_order(kind: &str, class: Option<&str>) -> bool {
    kind == "region"
        || matches!(
            class,
            Some("BAD_POSITION" | "BAD_RECORD_LENGTH" | "BAD_PADDING")
        )
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn case_patterns_match_like_globs() {
        assert!(glob("layout.bad-magic", "layout.bad-magic"));
        assert!(!glob("layout.bad", "layout.bad-magic"));
        assert!(glob("layout.*", "layout.bad-magic"));
        assert!(glob("*pool*", "calls.pool-thread-workers"));
        assert!(glob("*-magic", "layout.bad-magic"));
        assert!(!glob("*pool*", "calls.echo"));
    }
}
