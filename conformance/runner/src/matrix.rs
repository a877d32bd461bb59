//! The interop matrix (conformance/README.md §8): every agent as host against every agent as
//! worker, self-pairs included, skipped with a reason when a side lacks the capability.

use std::time::Duration;

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::live::expected_batch;

const BOUND: Duration = Duration::from_secs(20);

fn ok(r: &Value) -> bool {
    r.get("status").and_then(Value::as_str) == Some("ok")
}

/// One pair: host agent creates a region and calls; worker agent serves. The result is `PASS`,
/// `SKIP: <reason>` or `FAIL: <what>`.
pub fn pair(host_cmd: &str, worker_cmd: &str, debug: bool) -> String {
    let (mut host, mut worker) = match (
        Agent::start(host_cmd, debug),
        Agent::start(worker_cmd, debug),
    ) {
        (Ok(h), Ok(w)) => (h, w),
        (Err(e), _) | (_, Err(e)) => return format!("FAIL: {e}"),
    };
    if !host.capabilities().iter().any(|c| c == "host") {
        return "SKIP: the host side lacks capability `host`".into();
    }
    if !worker.capabilities().iter().any(|c| c == "worker") {
        return "SKIP: the worker side lacks capability `worker`".into();
    }
    let mut steps = || -> Result<(), String> {
        let req = |a: &mut Agent, v: Value| -> Result<Value, String> {
            let r = a
                .request(v.clone(), BOUND)
                .map_err(|f| format!("{} on {}: {f:?}", v["cmd"], a.command()))?;
            if ok(&r) {
                Ok(r)
            } else {
                Err(format!("{} answered {r}", v["cmd"]))
            }
        };
        let created = req(
            &mut host,
            json!({"cmd": "host_create", "params": {"worker_slots": 1, "channel_slots": 1, "max_message_len": "1048576"}}),
        )?;
        let region = created.get("region").cloned().unwrap_or(Value::Null);
        req(&mut host, json!({"cmd": "host_reserve", "slot": 1}))?;
        req(
            &mut worker,
            json!({"cmd": "serve", "region": region, "slot": 1, "functions": [{"name": "echo"}, {"name": "checksum"}]}),
        )?;
        req(
            &mut host,
            json!({"cmd": "host_wait_hello", "slot": 1, "timeout_ms": 5000}),
        )?;
        let r = req(
            &mut host,
            json!({"cmd": "call", "slot": 1, "function": "echo", "seed": 7, "len": 5000}),
        )?;
        let want = crate::payload::digest(&crate::payload::payload(7, 5000));
        if r.get("digest").and_then(Value::as_str) != Some(want.as_str()) {
            return Err(format!("echo digest {r}"));
        }
        let batch = json!({"seed": 3, "count": 200, "min_len": 0, "max_len": 3000});
        let mut cmd = json!({"cmd": "call_batch", "slot": 1, "function": "echo", "window": 4});
        for (k, v) in batch.as_object().into_iter().flatten() {
            cmd[k] = v.clone();
        }
        let r = req(&mut host, cmd)?;
        if r.get("digest").and_then(Value::as_str) != Some(expected_batch(&batch).as_str()) {
            return Err(format!("batch digest {r}"));
        }
        req(
            &mut host,
            json!({"cmd": "host_shutdown", "slot": 1, "timeout_ms": 5000}),
        )?;
        req(
            &mut worker,
            json!({"cmd": "wait_worker", "timeout_ms": 5000}),
        )?;
        req(&mut host, json!({"cmd": "host_close"}))?;
        Ok(())
    };
    let result = steps();
    host.stop();
    worker.stop();
    match result {
        Ok(()) => "PASS".into(),
        Err(e) => format!("FAIL: {e}"),
    }
}

/// Every host × worker pair.
pub fn run(agents: &[String], debug: bool) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for h in agents {
        for w in agents {
            out.push((h.clone(), w.clone(), pair(h, w, debug)));
        }
    }
    out
}
