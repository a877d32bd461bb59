//! Reports (conformance/README.md §7): a JSON record per case, `index.json`, `JUnit` XML, an HTML
//! page with the grids and the clause coverage table, and the one-line conformance statement.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::case::Case;
use crate::outcome::{CaseResult, Outcome};
use crate::spec::Clause;

/// Per clause: the ids of the cases that name it and their outcomes.
pub type Coverage = BTreeMap<String, Vec<(String, Outcome)>>;

/// Which cases name each clause, and their outcomes in this run (`SKIP` for cases not run).
pub fn coverage(spec: &[Clause], cases: &[Case], results: &[CaseResult]) -> Coverage {
    let mut cov: Coverage = spec.iter().map(|c| (c.id.clone(), Vec::new())).collect();
    for case in cases {
        let outcome = results
            .iter()
            .find(|r| r.id == case.id)
            .map_or(Outcome::Skip, |r| r.outcome);
        for c in &case.clauses {
            cov.entry(c.id.clone())
                .or_default()
                .push((case.id.clone(), outcome));
        }
    }
    cov
}

/// MUST clauses that no case names: each is a failure of the suite itself.
pub fn uncovered_musts(spec: &[Clause], cov: &Coverage) -> Vec<String> {
    spec.iter()
        .filter(|c| c.level == "MUST" && cov.get(&c.id).map_or(true, Vec::is_empty))
        .map(|c| c.id.clone())
        .collect()
}

/// Counts for the statement: (passed, total) of MUST and SHOULD cases, and skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// MUST cases passed.
    pub must_passed: usize,
    /// MUST cases run or skipped.
    pub must_total: usize,
    /// SHOULD cases passed.
    pub should_passed: usize,
    /// SHOULD cases.
    pub should_total: usize,
    /// Skipped cases.
    pub skipped: usize,
    /// Outcome counts.
    pub by_outcome: [usize; 9],
}

fn outcome_index(o: Outcome) -> usize {
    o as usize
}

/// Totals of a run.
pub fn totals(results: &[CaseResult]) -> Totals {
    let mut t = Totals::default();
    for r in results {
        t.by_outcome[outcome_index(r.outcome)] += 1;
        if r.outcome == Outcome::Skip {
            t.skipped += 1;
        }
        let passed = r.outcome.is_success();
        match r.level.as_str() {
            "MUST" => {
                t.must_total += 1;
                t.must_passed += usize::from(passed);
            }
            "SHOULD" => {
                t.should_total += 1;
                t.should_passed += usize::from(passed);
            }
            _ => {}
        }
    }
    t
}

/// Clauses of one level: how many the spec has, and how many passed (named by at least one
/// case, every one of which passed in this run).
pub fn clauses_passed(spec: &[Clause], cov: &Coverage, level: &str) -> (usize, usize) {
    let of_level: Vec<&Clause> = spec.iter().filter(|c| c.level == level).collect();
    let passed = of_level
        .iter()
        .filter(|c| {
            cov.get(&c.id).is_some_and(|cases| {
                !cases.is_empty() && cases.iter().all(|(_, o)| *o == Outcome::Pass)
            })
        })
        .count();
    (passed, of_level.len())
}

/// The one-line conformance statement (README §7.2): clauses of the spec passed by level (a
/// clause passes when every case naming it passed), then the case counts.
pub fn statement(agent: &str, t: &Totals, spec: &[Clause], cov: &Coverage) -> String {
    let (must, musts) = clauses_passed(spec, cov, "MUST");
    let (should, shoulds) = clauses_passed(spec, cov, "SHOULD");
    format!(
        "knit conformance {}, spec {}, {agent}: MUST {must}/{musts} clauses passed, SHOULD {should}/{shoulds} clauses passed; cases: MUST {}/{}, SHOULD {}/{}, {} skipped",
        crate::SUITE_VERSION,
        crate::SPEC_VERSION,
        t.must_passed,
        t.must_total,
        t.should_passed,
        t.should_total,
        t.skipped
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `JUnit` XML of a run.
pub fn junit(agent: &str, results: &[CaseResult]) -> String {
    let failures = results
        .iter()
        .filter(|r| r.outcome.is_failure() || r.outcome == Outcome::XPass)
        .count();
    let skipped = results
        .iter()
        .filter(|r| r.outcome == Outcome::Skip)
        .count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"knit-conformance {}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">\n",
        esc(agent),
        results.len()
    );
    for r in results {
        let _ = write!(
            x,
            "  <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            esc(&r.group),
            esc(&r.id),
            Duration::from_millis(r.duration_ms).as_secs_f64()
        );
        match r.outcome {
            o if o.is_failure() || o == Outcome::XPass => {
                let _ = write!(
                    x,
                    "<failure message=\"{}\">{}</failure>",
                    o.name(),
                    esc(&r.detail)
                );
            }
            Outcome::Skip => {
                let _ = write!(x, "<skipped message=\"{}\"/>", esc(&r.detail));
            }
            _ => {}
        }
        x.push_str("</testcase>\n");
    }
    x.push_str("</testsuite>\n");
    x
}

/// The HTML page: implementation × case grid, host × worker grid, clause coverage.
pub fn html(
    runs: &[(String, Vec<CaseResult>)],
    matrix: &[(String, String, String)],
    cov: &Coverage,
    spec: &[Clause],
) -> String {
    let mut h = String::from("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Knit conformance</title><style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}.PASS{background:#9e9}.FAIL,.CRASH,.HANG,.XPASS{background:#e99}.SKIP{background:#ddd}.NON-STRICT,.INFO{background:#ee9}.XFAIL{background:#fc9}</style></head><body><h1>Knit conformance</h1>");
    h.push_str("<h2>Implementation × case</h2><table><tr><th>case</th><th>level</th>");
    for (name, _) in runs {
        let _ = write!(h, "<th>{}</th>", esc(name));
    }
    h.push_str("</tr>");
    if let Some((_, first)) = runs.first() {
        for (i, r) in first.iter().enumerate() {
            let _ = write!(
                h,
                "<tr><td title=\"{}\">{}</td><td>{}</td>",
                esc(&r.title),
                esc(&r.id),
                r.level
            );
            for (_, rs) in runs {
                let o = rs.get(i).map_or("SKIP", |x| x.outcome.name());
                let _ = write!(h, "<td class=\"{o}\">{o}</td>");
            }
            h.push_str("</tr>");
        }
    }
    h.push_str(
        "</table><h2>Host × worker</h2><table><tr><th>host</th><th>worker</th><th>result</th></tr>",
    );
    for (host, worker, result) in matrix {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(host),
            esc(worker),
            esc(result)
        );
    }
    h.push_str("</table><h2>Clause coverage</h2><table><tr><th>clause</th><th>level</th><th>cases</th></tr>");
    for c in spec {
        let cases = cov
            .get(&c.id)
            .map(|v| {
                v.iter()
                    .map(|(id, o)| format!("<span class=\"{}\">{}</span>", o.name(), esc(id)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let missing = if cases.is_empty() && c.level == "MUST" {
            " class=\"FAIL\""
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr><td{missing}>{}</td><td>{}</td><td>{cases}</td></tr>",
            c.id, c.level
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// Writes every report file of one run into `dir`.
pub fn write_all(
    dir: &Path,
    agent: &str,
    results: &[CaseResult],
    cov: &Coverage,
    spec: &[Clause],
    matrix: &[(String, String, String)],
) -> Result<(), String> {
    let cases_dir = dir.join("cases");
    std::fs::create_dir_all(&cases_dir).map_err(|e| format!("{}: {e}", cases_dir.display()))?;
    let w = |p: &Path, text: String| {
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))
    };
    for r in results {
        w(
            &cases_dir.join(format!("{}.json", r.id)),
            serde_json::to_string_pretty(r).map_err(|e| e.to_string())?,
        )?;
    }
    let t = totals(results);
    let uncovered = uncovered_musts(spec, cov);
    let index = json!({
        "suite": crate::SUITE_VERSION,
        "spec": crate::SPEC_VERSION,
        "agent": agent,
        "statement": statement(agent, &t, spec, cov),
        "uncovered_must_clauses": uncovered,
        "cases": results.iter().map(|r| json!({"id": r.id, "outcome": r.outcome, "level": r.level, "duration_ms": r.duration_ms})).collect::<Vec<Value>>(),
        "coverage": cov.iter().map(|(k, v)| (k.clone(), json!(v.iter().map(|(id, o)| json!([id, o])).collect::<Vec<_>>()))).collect::<serde_json::Map<String, Value>>(),
        "matrix": matrix.iter().map(|(h, w, r)| json!({"host": h, "worker": w, "result": r})).collect::<Vec<_>>(),
    });
    w(
        &dir.join("index.json"),
        serde_json::to_string_pretty(&index).map_err(|e| e.to_string())?,
    )?;
    w(&dir.join("junit.xml"), junit(agent, results))?;
    w(
        &dir.join("index.html"),
        html(&[(agent.to_owned(), results.to_vec())], matrix, cov, spec),
    )?;
    Ok(())
}
