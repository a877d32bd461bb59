//! The runner: runs cases against an agent, step by step, and scores them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::{Agent, Failure};
use crate::case::{Case, Step};
use crate::expect::{first_match, Score};
use crate::images::{self, Vectors};
use crate::live::Live;
use crate::outcome::{CaseResult, Outcome};

/// Grace added to a case's time bound before an unanswered command is a HANG.
pub const GRACE: Duration = Duration::from_secs(2);

/// What the runner is told to do.
#[derive(Clone, Debug)]
pub struct Config {
    /// `conformance/` (cases, vectors, expected).
    pub suite_dir: PathBuf,
    /// `spec/`.
    pub spec_dir: PathBuf,
    /// The agent under test.
    pub agent: String,
    /// The peer agent (reference agent by default).
    pub peer: Option<String>,
    /// Print every frame.
    pub debug: bool,
    /// Seed of the run (stress sizes, mutation order).
    pub seed: u64,
}

/// How one step ended.
#[derive(Clone, Debug)]
pub enum StepOutcome {
    /// An expectation matched.
    Matched(Score, Value),
    /// None matched.
    Mismatch {
        /// What was seen.
        observed: Value,
        /// Why it does not match.
        detail: String,
    },
    /// The agent cannot run it.
    Skip(String),
    /// The agent died.
    Crash(String),
    /// The agent stopped answering.
    Hang,
}

/// State of one case while it runs.
pub struct Ctx {
    /// Values saved by earlier steps (`$region`, ...).
    pub vars: BTreeMap<String, Value>,
    /// When the case's time bound ends.
    pub deadline: Instant,
    /// What the runner side holds: regions, actors.
    pub live: Live,
    /// Information for the report (throughput).
    pub info: Value,
    /// The case id.
    pub case_id: String,
}

impl Ctx {
    /// Time left before the case's bound, plus the grace.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now()) + GRACE
    }
}

/// The runner with its agent.
pub struct Runner {
    /// The configuration.
    pub cfg: Config,
    /// The golden vectors.
    pub vectors: Vectors,
    /// The agent, started on first use and after a crash.
    pub agent: Option<Agent>,
    /// Name and version of the agent from its first `hello`.
    pub agent_name: String,
    /// Capabilities of the agent.
    pub caps: Vec<String>,
    /// Why the agent could not be started, after [`MAX_START_FAILURES`] tries in a row: every
    /// later case fails at once instead of waiting for another `hello` that will not come.
    pub broken: Option<String>,
    start_failures: u32,
    /// How long a new agent has to answer `hello`.
    pub hello_timeout: Duration,
}

/// Starts in a row that may fail before the runner gives up on an agent.
pub const MAX_START_FAILURES: u32 = 3;

impl Runner {
    /// A runner; the agent is started by the first case.
    pub fn new(cfg: Config) -> Result<Runner, String> {
        let vectors = Vectors::load(&cfg.suite_dir.join("vectors/v1"))?;
        Ok(Runner {
            cfg,
            vectors,
            agent: None,
            agent_name: String::new(),
            caps: Vec::new(),
            broken: None,
            start_failures: 0,
            hello_timeout: crate::agent::HELLO_TIMEOUT,
        })
    }

    /// The agent, started when there is none.
    pub fn agent(&mut self) -> Result<&mut Agent, String> {
        if let Some(why) = &self.broken {
            return Err(format!("the agent cannot be started: {why}"));
        }
        if self.agent.is_none() {
            let a = match Agent::start_with(&self.cfg.agent, self.cfg.debug, self.hello_timeout) {
                Ok(a) => a,
                Err(e) => {
                    self.start_failures += 1;
                    if self.start_failures >= MAX_START_FAILURES {
                        self.broken = Some(e.clone());
                    }
                    return Err(e);
                }
            };
            self.start_failures = 0;
            self.agent_name = a.name();
            self.caps = a.capabilities();
            self.agent = Some(a);
        }
        self.agent.as_mut().ok_or_else(|| "no agent".into())
    }

    /// Kills the agent; the next case starts a new one.
    pub fn drop_agent(&mut self) {
        if let Some(mut a) = self.agent.take() {
            a.kill();
        }
    }

    /// Runs one case.
    #[allow(clippy::too_many_lines)] // one case from start to teardown, in order
    pub fn run_case(&mut self, case: &Case) -> CaseResult {
        let start = Instant::now();
        let mut result = CaseResult {
            id: case.id.clone(),
            title: case.title.clone(),
            group: case.group.clone(),
            clauses: case
                .clauses
                .iter()
                .map(|c| (c.id.clone(), c.level.clone()))
                .collect(),
            level: case.level().to_owned(),
            target: case.target.clone(),
            pair: Value::Null,
            outcome: Outcome::Pass,
            expected: Value::Null,
            observed: Value::Null,
            detail: String::new(),
            duration_ms: 0,
            seed: self.cfg.seed,
            stderr_tail: String::new(),
            region_diff: None,
            info: Value::Null,
        };
        if let Err(e) = self.agent() {
            result.outcome = Outcome::Crash;
            result.detail = e;
            return result;
        }
        result.pair = json!({"agent": self.agent_name, "peer": self.cfg.peer.clone().unwrap_or_else(|| "reference (in-process)".into())});
        if let Some(missing) = case.requires.iter().find(|r| !self.caps.contains(r)) {
            result.outcome = Outcome::Skip;
            result.detail = format!("the agent lacks capability `{missing}`");
            return result;
        }
        if let Some(a) = self.agent.as_ref() {
            a.clear_stderr();
        }
        let mut ctx = Ctx {
            vars: BTreeMap::new(),
            deadline: start + Duration::from_millis(case.time_bound_ms),
            live: Live::default(),
            info: Value::Null,
            case_id: case.id.clone(),
        };
        let mut worst = Score::Pass;
        for (i, step) in case.steps.iter().enumerate() {
            let outcome = self.step(&mut ctx, step);
            match outcome {
                StepOutcome::Matched(score, observed) => {
                    worst = worst.min(score);
                    result.observed = observed;
                }
                StepOutcome::Mismatch { observed, detail } => {
                    result.outcome = Outcome::Fail;
                    result.expected = json!({"step": i, "op": step.op, "expect": step.expect});
                    result.observed = observed;
                    result.detail = detail;
                    break;
                }
                StepOutcome::Skip(reason) => {
                    result.outcome = Outcome::Skip;
                    result.detail = reason;
                    break;
                }
                StepOutcome::Crash(how) => {
                    result.outcome = Outcome::Crash;
                    result.expected = json!({"step": i, "op": step.op, "expect": step.expect});
                    result.detail = how;
                    break;
                }
                StepOutcome::Hang => {
                    result.outcome = Outcome::Hang;
                    result.expected = json!({"step": i, "op": step.op, "expect": step.expect});
                    result.detail = format!(
                        "no reply within {} ms (+{} s grace)",
                        case.time_bound_ms,
                        GRACE.as_secs()
                    );
                    break;
                }
            }
        }
        if result.outcome == Outcome::Pass {
            result.outcome = match worst {
                Score::Pass => Outcome::Pass,
                Score::NonStrict => Outcome::NonStrict,
                Score::Info => Outcome::Info,
            };
        }
        result.region_diff = ctx.live.finish();
        result.info = ctx.info;
        if let Some(a) = self.agent.as_mut() {
            result.stderr_tail = a.stderr_tail();
        }
        if matches!(result.outcome, Outcome::Crash | Outcome::Hang) {
            if let Some(a) = self.agent.as_ref() {
                result.stderr_tail = a.stderr_tail();
            }
            self.drop_agent();
        } else if let Some(a) = self.agent.as_mut() {
            // Leave nothing behind for the next case.
            if a.request(json!({"cmd": "reset"}), Duration::from_secs(5))
                .is_err()
            {
                self.drop_agent();
            }
        }
        result.duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        result
    }

    fn step(&mut self, ctx: &mut Ctx, step: &Step) -> StepOutcome {
        let args = substitute(&step.args, &ctx.vars);
        match step.actor.as_str() {
            "agent" => {
                let cmd = match self.agent_command(ctx, &step.op, &args) {
                    Ok(c) => c,
                    Err(e) => return suite_error(e),
                };
                let bound = ctx.left();
                let start = Instant::now();
                let reply = match self.agent() {
                    Ok(a) => a.request(cmd, bound),
                    Err(e) => return StepOutcome::Crash(e),
                };
                // The runner's own measure of how long the agent took (liveness bounds).
                let reply = reply.map(|mut r| {
                    r["elapsed_ms"] =
                        json!(u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX));
                    r
                });
                self.judge(ctx, step, &args, reply)
            }
            "runner" => match self.runner_op(ctx, &step.op, &args) {
                Ok(observed) => judge_value(&step.expect, observed),
                Err(RunnerError::Suite(e)) => suite_error(e),
                Err(RunnerError::Agent(f)) => failure(f),
                Err(RunnerError::Observed(observed, detail)) => {
                    StepOutcome::Mismatch { observed, detail }
                }
            },
            other => suite_error(format!("unknown actor {other}")),
        }
    }

    /// Scores an agent reply against a step's expectations; saves `save_as` values.
    pub fn judge(
        &mut self,
        ctx: &mut Ctx,
        step: &Step,
        args: &Value,
        reply: Result<Value, Failure>,
    ) -> StepOutcome {
        let reply = match reply {
            Ok(r) => r,
            Err(f) => return failure(f),
        };
        if reply.get("status").and_then(Value::as_str) == Some("skipped") {
            let reason = reply
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("no reason given");
            return StepOutcome::Skip(format!("agent skipped `{}`: {reason}", step.op));
        }
        if let Some(name) = args.get("save_as").and_then(Value::as_str) {
            ctx.vars.insert(name.to_owned(), reply.clone());
        }
        judge_value(&step.expect, reply)
    }

    /// The driver command for an agent step; `validate` images are resolved and stored first.
    fn agent_command(&mut self, ctx: &Ctx, op: &str, args: &Value) -> Result<Value, String> {
        let mut cmd = args.clone();
        if !cmd.is_object() {
            cmd = json!({});
        }
        cmd["cmd"] = json!(op);
        if op == "validate" {
            let spec = args.get("image").ok_or("validate needs image")?;
            let image = images::resolve(spec, &self.vectors, &ctx.case_id)?;
            let agent = self.agent()?;
            if image.base_name.starts_with("case:") {
                agent.forget_image(&image.base_name);
            }
            agent
                .ensure_image(&image.base_name, &image.base)
                .map_err(|f| format!("storing the image failed: {f:?}"))?;
            cmd["image"] = json!(image.base_name);
            cmd["patches"] = Value::Array(
                image
                    .patches
                    .iter()
                    .map(|(o, b)| json!([o, crate::payload::hex(b)]))
                    .collect(),
            );
        }
        if let Value::Object(m) = &mut cmd {
            m.remove("save_as");
        }
        Ok(cmd)
    }
}

/// What a runner operation may fail with.
#[derive(Debug)]
pub enum RunnerError {
    /// The case or the suite is wrong.
    Suite(String),
    /// The agent failed while the operation ran.
    Agent(Failure),
    /// The operation saw something the case does not accept.
    Observed(Value, String),
}

impl From<String> for RunnerError {
    fn from(s: String) -> Self {
        RunnerError::Suite(s)
    }
}

impl From<&str> for RunnerError {
    fn from(s: &str) -> Self {
        RunnerError::Suite(s.to_owned())
    }
}

fn failure(f: Failure) -> StepOutcome {
    match f {
        Failure::Hang => StepOutcome::Hang,
        Failure::Crash(how) => StepOutcome::Crash(how),
        Failure::Protocol(e) => StepOutcome::Mismatch {
            observed: Value::Null,
            detail: format!("driver protocol violated: {e}"),
        },
    }
}

fn suite_error(e: impl std::fmt::Display) -> StepOutcome {
    StepOutcome::Mismatch {
        observed: Value::Null,
        detail: format!("suite error: {e}"),
    }
}

/// Scores a value against expectations.
pub fn judge_value(expect: &[Value], observed: Value) -> StepOutcome {
    match first_match(expect, &observed) {
        Some(score) => StepOutcome::Matched(score, observed),
        None => StepOutcome::Mismatch {
            detail: "no expectation matched".into(),
            observed,
        },
    }
}

/// Replaces every string `"$name"` (or `"$name.field"`) in `v` by the saved value.
pub fn substitute(v: &Value, vars: &BTreeMap<String, Value>) -> Value {
    match v {
        Value::String(s) if s.starts_with('$') => {
            let path: Vec<&str> = s[1..].split('.').collect();
            let mut cur = match vars.get(path[0]) {
                Some(x) => x.clone(),
                None => return v.clone(),
            };
            for p in &path[1..] {
                let next = match p.parse::<usize>() {
                    Ok(i) if cur.is_array() => cur.get(i),
                    _ => cur.get(*p),
                };
                cur = next.cloned().unwrap_or(Value::Null);
            }
            cur
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}
