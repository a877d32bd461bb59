//! Cases as data (conformance/README.md §5): one TOML file per case under `cases/<group>/`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::spec::{rank, Clause};

/// The groups a case may belong to.
pub const GROUPS: [&str; 10] = [
    "layout",
    "versioning",
    "ring",
    "calls",
    "errors",
    "cancellation",
    "channels",
    "liveness",
    "adversarial",
    "stress",
];

/// A clause a case checks, with the level the spec gives it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ClauseRef {
    /// Clause id.
    pub id: String,
    /// `MUST`, `SHOULD` or `MAY`.
    pub level: String,
}

/// One step: who does what, and the acceptable outcomes.
#[derive(Clone, Debug, Deserialize)]
pub struct Step {
    /// `agent`, `runner` or `peer`.
    pub actor: String,
    /// The command or runner operation.
    pub op: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Value,
    /// Acceptable outcomes; empty means "any `ok` reply".
    #[serde(default)]
    pub expect: Vec<Value>,
}

/// A case file.
#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    /// Stable id: `<group>.<slug>`.
    pub id: String,
    /// One line saying what it checks.
    pub title: String,
    /// One of [`GROUPS`].
    pub group: String,
    /// `wire`, `api` or `both`.
    pub target: String,
    /// The agent's roles.
    pub roles: Vec<String>,
    /// What plays the other side: `none`, `reference`, `adversary` or `peer`.
    #[serde(default = "none")]
    pub side: String,
    /// Time bound of the whole case.
    pub time_bound_ms: u64,
    /// Capabilities the agent must have.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The clauses it checks.
    pub clauses: Vec<ClauseRef>,
    /// Parameters of the region the runner creates for live cases.
    #[serde(default)]
    pub region: Value,
    /// The steps.
    #[serde(default)]
    pub steps: Vec<Step>,
    /// Where it was read from.
    #[serde(skip)]
    pub path: PathBuf,
}

fn none() -> String {
    "none".into()
}

impl Case {
    /// The strongest level among the case's clauses.
    pub fn level(&self) -> &str {
        self.clauses
            .iter()
            .map(|c| c.level.as_str())
            .max_by_key(|l| rank(l))
            .unwrap_or("MAY")
    }
}

/// Reads every case under `dir` and checks it against the spec's clauses: ids unique and equal
/// to `<group>.<file stem>`, known group and target, clauses that exist with their spec level.
pub fn load_all(dir: &Path, spec: &[Clause]) -> Result<Vec<Case>, String> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    files.sort();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        match load(&path, spec) {
            Ok(c) => cases.push(c),
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    let mut ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    ids.sort_unstable();
    for w in ids.windows(2) {
        if w[0] == w[1] {
            problems.push(format!("duplicate case id {}", w[0]));
        }
    }
    if problems.is_empty() {
        Ok(cases)
    } else {
        Err(problems.join("\n"))
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = e.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().and_then(|x| x.to_str()) == Some("toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Reads and checks one case file.
pub fn load(path: &Path, spec: &[Clause]) -> Result<Case, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut case: Case = toml::from_str(&text).map_err(|e| e.to_string())?;
    path.clone_into(&mut case.path);
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dir = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    if case.id != format!("{dir}.{stem}") || case.group != dir {
        return Err(format!(
            "id {} and group {} must be {dir}.{stem} and {dir}",
            case.id, case.group
        ));
    }
    if !GROUPS.contains(&case.group.as_str()) {
        return Err(format!("unknown group {}", case.group));
    }
    if !["wire", "api", "both"].contains(&case.target.as_str()) {
        return Err(format!("unknown target {}", case.target));
    }
    if case.clauses.is_empty() {
        return Err("a case names at least one clause".into());
    }
    for c in &case.clauses {
        match spec.iter().find(|s| s.id == c.id) {
            None => return Err(format!("unknown clause {}", c.id)),
            Some(s) if s.level != c.level => {
                return Err(format!(
                    "{} is {} in the spec, not {}",
                    c.id, s.level, c.level
                ))
            }
            Some(_) => {}
        }
    }
    if case.steps.is_empty() {
        return Err("a case has at least one step".into());
    }
    Ok(case)
}
