//! Outcomes of cases (conformance/README.md §6) and the record kept per case for reports.

use serde::Serialize;
use serde_json::Value;

/// The outcome of one case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum Outcome {
    /// As the spec asks.
    #[serde(rename = "PASS")]
    Pass,
    /// Legal, but not what a SHOULD asks.
    #[serde(rename = "NON-STRICT")]
    NonStrict,
    /// An observation.
    #[serde(rename = "INFO")]
    Info,
    /// No expectation matched.
    #[serde(rename = "FAIL")]
    Fail,
    /// The agent died.
    #[serde(rename = "CRASH")]
    Crash,
    /// The agent stopped answering.
    #[serde(rename = "HANG")]
    Hang,
    /// Not run: missing capability or the agent said `skipped`.
    #[serde(rename = "SKIP")]
    Skip,
    /// Failed as the expected-failure file says.
    #[serde(rename = "XFAIL")]
    XFail,
    /// Passed although the expected-failure file lists it.
    #[serde(rename = "XPASS")]
    XPass,
}

impl Outcome {
    /// The report name.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::NonStrict => "NON-STRICT",
            Outcome::Info => "INFO",
            Outcome::Fail => "FAIL",
            Outcome::Crash => "CRASH",
            Outcome::Hang => "HANG",
            Outcome::Skip => "SKIP",
            Outcome::XFail => "XFAIL",
            Outcome::XPass => "XPASS",
        }
    }

    /// FAIL, CRASH or HANG.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Fail | Outcome::Crash | Outcome::Hang)
    }

    /// PASS, NON-STRICT or INFO.
    pub fn is_success(self) -> bool {
        matches!(self, Outcome::Pass | Outcome::NonStrict | Outcome::Info)
    }
}

/// Everything the report keeps about one case (README §7).
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// Case id.
    pub id: String,
    /// Case title.
    pub title: String,
    /// Group.
    pub group: String,
    /// Clause ids with their levels.
    pub clauses: Vec<(String, String)>,
    /// The strongest level.
    pub level: String,
    /// wire, api or both.
    pub target: String,
    /// The implementations involved: agent and peer names with versions.
    pub pair: Value,
    /// The outcome.
    pub outcome: Outcome,
    /// What the step that decided expected.
    pub expected: Value,
    /// What was observed.
    pub observed: Value,
    /// Why, in words.
    pub detail: String,
    /// Wall time.
    pub duration_ms: u64,
    /// The run's seed.
    pub seed: u64,
    /// The agent's stderr during the case (tail).
    pub stderr_tail: String,
    /// Hex diff of the region before and after, when the runner held one.
    pub region_diff: Option<String>,
    /// Throughput and other information.
    pub info: Value,
}
