//! The runner's side of live cases: the region it creates as host ([`HostActor`]), the worker
//! it runs ([`ServeThread`], [`RawWorker`]), the peer agent it starts and kills, and the
//! operations that cases name with `actor = "runner"`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::agent::Agent;
use crate::behaviour::functions;
use crate::exec::{Ctx, Runner, RunnerError};
use crate::host::HostActor;
use crate::images::params;
use crate::payload::hex;
use crate::workers::{RawWorker, ServeThread};
use knit_core::ErrorCode;

/// What the runner holds during one case.
#[derive(Default)]
pub struct Live {
    /// The region the runner created, as host.
    pub host: Option<HostActor>,
    /// The reference worker the runner runs.
    pub serve: Option<ServeThread>,
    /// The adversary worker.
    pub raw: Option<RawWorker>,
    /// The peer agent.
    pub peer: Option<Agent>,
    /// The region's bytes when the runner created it.
    before: Option<Vec<u8>>,
    /// Replies of queued adversary jobs, kept so that their threads are not cut short.
    pending: Vec<std::sync::mpsc::Receiver<Value>>,
}

/// The operations of `actor = "runner"` that the host thread answers.
pub const HOST_OPS: [&str; 15] = [
    "bells",
    "channel_call",
    "flip_calls",
    "reserve",
    "wait_hello",
    "call",
    "call_batch",
    "shutdown",
    "write",
    "store_tail",
    "poke",
    "poison",
    "state",
    "wait_state",
    "mark_dead",
];

fn snapshot(host: &HostActor) -> Option<Vec<u8>> {
    let r = host.run(|s| {
        let mem = s.region.memory();
        let mut bytes = vec![0u8; mem.len()];
        let _ = mem.read(0, &mut bytes);
        json!({"status": "ok", "hex": hex(&bytes)})
    });
    crate::payload::unhex(r.get("hex")?.as_str()?)
}

/// Rows of 16 bytes that differ, as `offset: before -> after`, at most 64 rows.
pub fn hex_diff(before: &[u8], after: &[u8]) -> String {
    let mut out = String::new();
    let len = before.len().max(after.len());
    let mut rows = 0;
    for off in (0..len).step_by(16) {
        let a = before.get(off..(off + 16).min(before.len())).unwrap_or(&[]);
        let b = after.get(off..(off + 16).min(after.len())).unwrap_or(&[]);
        if a != b {
            rows += 1;
            if rows > 64 {
                out.push_str("...\n");
                break;
            }
            let _ = writeln!(out, "{off:08x}: {} -> {}", hex(a), hex(b));
        }
    }
    out
}

impl Live {
    /// Ends the case: the region diff, then every actor stopped and the region unlinked.
    pub fn finish(&mut self) -> Option<String> {
        let diff = match (&self.before, &self.host) {
            (Some(b), Some(h)) => snapshot(h).map(|a| hex_diff(b, &a)),
            _ => None,
        };
        if let Some(p) = self.peer.take() {
            p.stop();
        }
        if let Some(mut r) = self.raw.take() {
            r.close();
        }
        if let Some(mut h) = self.host.take() {
            h.close();
        }
        if let Some(mut s) = self.serve.take() {
            let _ = s.wait(Duration::from_secs(1));
        }
        self.pending.clear();
        diff
    }
}

fn ok() -> Value {
    json!({"status": "ok"})
}

fn u64_of(a: &Value, k: &str, d: u64) -> u64 {
    crate::validate::u64_arg(a, k).unwrap_or(d)
}

impl Runner {
    /// The peer command: `--peer`, or the reference agent next to this executable.
    pub fn peer_command(&self) -> Result<String, String> {
        if let Some(p) = &self.cfg.peer {
            return Ok(p.clone());
        }
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let dir = exe.parent().ok_or("no directory for the executable")?;
        for cand in [dir.join("knit-agent"), dir.join("../knit-agent")] {
            if cand.exists() {
                return Ok(cand.display().to_string());
            }
        }
        Err(
            "no peer: pass --peer (the reference agent, knit-agent, is not next to this binary)"
                .into(),
        )
    }

    /// Runs one `actor = "runner"` operation; its result is judged against the step's expect.
    #[allow(clippy::too_many_lines)] // one flat dispatch table reads better than split ones
    pub fn runner_op(&mut self, ctx: &mut Ctx, op: &str, a: &Value) -> Result<Value, RunnerError> {
        if HOST_OPS.contains(&op) {
            let host = ctx
                .live
                .host
                .as_ref()
                .ok_or("no region: create_region first")?;
            let start = Instant::now();
            let mut r = host.command(op, a);
            if let Some(v) = a.get("verify_batch") {
                let want = expected_batch(v);
                r["verified"] =
                    json!(r.get("digest").and_then(Value::as_str) == Some(want.as_str()));
            }
            r["elapsed_ms"] = json!(start.elapsed().as_millis() as u64);
            if op == "call_batch" {
                ctx.info = json!({"calls_per_s": r.get("calls_per_s"), "count": r.get("count")});
            }
            return Ok(r);
        }
        match op {
            "create_region" => {
                let p = params(a.get("params"))?;
                let host = HostActor::create(p)?;
                ctx.vars.insert("region".into(), json!(host.name));
                ctx.live.before = snapshot(&host);
                ctx.live.host = Some(host);
                Ok(ok())
            }
            "serve" => {
                let fs = functions(a.get("functions"))?;
                let region = a
                    .get("region")
                    .and_then(Value::as_str)
                    .ok_or("serve needs region")?;
                let slot = u64_of(a, "slot", 1) as u32;
                ctx.live.serve = Some(ServeThread::start(
                    region,
                    slot,
                    &fs,
                    a.get("spin").and_then(Value::as_str),
                ));
                Ok(ok())
            }
            "wait_serve" => {
                let s = ctx.live.serve.as_mut().ok_or("no worker: serve first")?;
                Ok(s.wait(Duration::from_millis(u64_of(a, "timeout_ms", 5000))))
            }
            "raw_attach" => {
                let region = a
                    .get("region")
                    .and_then(Value::as_str)
                    .ok_or("raw_attach needs region")?;
                let slot = u64_of(a, "slot", 1) as u32;
                ctx.live.raw = Some(RawWorker::attach(region, slot)?);
                Ok(ok())
            }
            "raw" => {
                let raw = ctx
                    .live
                    .raw
                    .as_ref()
                    .ok_or("no raw worker: raw_attach first")?;
                let sub = a
                    .get("op")
                    .and_then(Value::as_str)
                    .ok_or("raw needs op")?
                    .to_owned();
                if a.get("wait").and_then(Value::as_bool) == Some(false) {
                    let args = a.clone();
                    let rx = raw.submit(move |s| s.command(&sub, &args));
                    ctx.live.pending.push(rx);
                    return Ok(json!({"status": "ok", "queued": true}));
                }
                Ok(raw.command(&sub, a, true))
            }
            "kill_agent" => {
                self.drop_agent();
                Ok(ok())
            }
            "restart_agent" => {
                self.drop_agent();
                self.agent()?;
                Ok(ok())
            }
            "peer_start" => {
                let cmd = self.peer_command()?;
                ctx.live.peer = Some(Agent::start(&cmd, self.cfg.debug)?);
                Ok(ok())
            }
            "peer" => {
                let bound = ctx.left();
                let peer = ctx.live.peer.as_mut().ok_or("no peer: peer_start first")?;
                let mut cmd = a.clone();
                let name = a
                    .get("cmd")
                    .and_then(Value::as_str)
                    .ok_or("peer needs cmd")?
                    .to_owned();
                cmd["cmd"] = json!(name);
                let reply = match peer.request(cmd, bound) {
                    Ok(r) => r,
                    // A peer killed on purpose while it answered (liveness cases).
                    Err(f) if a.get("expect_crash").and_then(Value::as_bool) == Some(true) => {
                        json!({"status": "ok", "crashed": format!("{f:?}")})
                    }
                    Err(f) => {
                        return Err(RunnerError::Observed(
                            json!(format!("{f:?}")),
                            "the peer failed".into(),
                        ))
                    }
                };
                if let Some(n) = a.get("save_as").and_then(Value::as_str) {
                    ctx.vars.insert(n.to_owned(), reply.clone());
                }
                Ok(reply)
            }
            "kill_peer_after" => {
                let peer = ctx.live.peer.as_ref().ok_or("no peer")?;
                let pid = peer.pid();
                let ms = u64_of(a, "ms", 0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    crate::agent::kill_group(pid);
                });
                Ok(ok())
            }
            "kill_agent_after" => {
                let pid = self.agent()?.pid();
                let ms = u64_of(a, "ms", 0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    crate::agent::kill_group(pid);
                });
                Ok(ok())
            }
            "kill_pid_after" => {
                // A worker process the agent's own host started (found through `pool_workers`).
                let pid = a
                    .get("pid")
                    .and_then(Value::as_u64)
                    .and_then(|p| i32::try_from(p).ok())
                    .ok_or("kill_pid_after needs pid")?;
                let ms = u64_of(a, "ms", 0);
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(ms));
                    if let Some(p) = rustix::process::Pid::from_raw(pid) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                    }
                });
                Ok(ok())
            }
            "sleep" => {
                std::thread::sleep(Duration::from_millis(u64_of(a, "ms", 0)));
                Ok(ok())
            }
            "stats_check" => self.stats_check(ctx, a),
            "double_fetch" => self.double_fetch(ctx, a),
            "region_check" => Ok(region_check(a)),
            "unlink_region" => {
                // A region left by a peer that was killed (MAP-3: its creator cannot unlink).
                let name = a
                    .get("region")
                    .and_then(Value::as_str)
                    .ok_or("unlink_region needs region")?;
                let name = knit::RegionName::parse(name).map_err(|e| e.to_string())?;
                Ok(match knit::unlink(&name) {
                    Ok(()) => ok(),
                    Err(e) => json!({"status": "ok", "unlinked": false, "detail": e.to_string()}),
                })
            }
            other => Err(RunnerError::Suite(format!("unknown runner op {other}"))),
        }
    }

    /// Double-fetch attack in fresh regions (SEC-2, RING-12): up to `attempts` times, a new
    /// region, the agent's worker, and [`HostState`](crate::host::HostState)'s `flip_calls`.
    /// An attempt ends in exact echoes or in a violation the worker reported (`POISONED`); any
    /// other end (the worker gone without poisoning, another error, other bytes, the agent
    /// dead) is the observation returned at once.
    fn double_fetch(&mut self, ctx: &mut Ctx, a: &Value) -> Result<Value, RunnerError> {
        let attempts = u64_of(a, "attempts", 10);
        let fs = a
            .get("functions")
            .cloned()
            .unwrap_or_else(|| json!([{"name": "echo"}]));
        let mut poisoned = 0;
        for attempt in 0..attempts {
            let host = HostActor::create(params(Some(&json!({"worker_slots": 1})))?)?;
            let reserve = host.command("reserve", &json!({"slot": 1}));
            if reserve.get("status").and_then(Value::as_str) != Some("ok") {
                return Err(RunnerError::Suite(format!("reserve: {reserve}")));
            }
            let bound = ctx.left();
            let serve = json!({"cmd": "serve", "region": host.name, "slot": 1, "functions": fs});
            self.agent()?
                .request(serve, bound)
                .map_err(RunnerError::Agent)?;
            let hello = host.command("wait_hello", &json!({"slot": 1}));
            if hello.get("status").and_then(Value::as_str) != Some("ok") {
                return Ok(hello);
            }
            let mut r = host.command("flip_calls", &json!({"slot": 1, "count": u64_of(a, "count", 200), "len": u64_of(a, "len", 64), "timeout_ms": 3000}));
            let poison = host.command("poison", &json!({}));
            let clean = match r.get("status").and_then(Value::as_str) {
                Some("ok") => r.get("exact").and_then(Value::as_bool) == Some(true),
                _ => {
                    r.get("class").and_then(Value::as_str) == Some("POISONED")
                        && poison
                            .get("poison")
                            .and_then(Value::as_str)
                            .is_some_and(|p| {
                                ErrorCode::ALL
                                    .iter()
                                    .any(|c| c.is_violation() && c.name() == p)
                            })
                }
            };
            drop(host);
            let bound = ctx.left();
            let ended = self
                .agent()?
                .request(json!({"cmd": "wait_worker", "timeout_ms": 2000}), bound)
                .map_err(RunnerError::Agent)?;
            if !clean {
                r["attempt"] = json!(attempt);
                r["poison"] = poison["poison"].clone();
                r["worker_ended"] = ended;
                return Ok(r);
            }
            if poison.get("poison").and_then(Value::as_str) != Some("NONE") {
                poisoned += 1;
            }
        }
        Ok(json!({"status": "ok", "clean": true, "attempts": attempts, "poisoned": poisoned}))
    }

    /// Leak check: the agent's `stats` now against the values saved under `baseline`.
    fn stats_check(&mut self, ctx: &mut Ctx, a: &Value) -> Result<Value, RunnerError> {
        let bound = ctx.left();
        let now = self
            .agent()?
            .request(json!({"cmd": "stats"}), bound)
            .map_err(RunnerError::Agent)?;
        if now.get("status").and_then(Value::as_str) == Some("skipped") {
            return Ok(now);
        }
        let Some(key) = a.get("baseline").and_then(Value::as_str) else {
            return Ok(now);
        };
        let base = ctx.vars.get(key).cloned().unwrap_or(Value::Null);
        let grew: Vec<String> = ["fds", "mappings", "threads"]
            .iter()
            .filter(|k| {
                now.get(**k).and_then(Value::as_u64) > base.get(**k).and_then(Value::as_u64)
            })
            .map(|k| format!("{k}: {} -> {}", base[*k], now[*k]))
            .collect();
        Ok(json!({"status": "ok", "leaked": !grew.is_empty(), "grew": grew}))
    }
}

/// The batch digest an echo worker must produce for `{seed, count, min_len, max_len}`.
pub fn expected_batch(v: &Value) -> String {
    let seed = u64_of(v, "seed", 0);
    let count = u64_of(v, "count", 0);
    let (min_len, max_len) = (u64_of(v, "min_len", 0), u64_of(v, "max_len", 64));
    let mut d = crate::payload::BatchDigest::default();
    for i in 0..count {
        let len = crate::payload::batch_len(seed, i, min_len, max_len) as usize;
        d.push(
            i,
            crate::payload::fnv1a64(&crate::payload::payload(seed.wrapping_add(i), len)),
        );
    }
    d.finish()
}

/// Checks a region another participant created (the agent as host): name form (MAP-2),
/// permissions (MAP-1), existence (MAP-3), and, with `params`, that its header, host entry and
/// zero bytes are what a 1.0 creator writes (LAYOUT-1, LAYOUT-2, PART-1, FEAT-1, INIT-1), with
/// a non-zero random `region_id` (HDR-8).
pub fn region_check(a: &Value) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let Some(name) = a.get("region").and_then(Value::as_str) else {
        return crate::host::error_reply(
            knit_core::ErrorCode::InvalidArgument,
            "region_check needs region",
        );
    };
    let name_ok = name.len() == 37
        && name.starts_with("knit-")
        && name[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let path = std::path::Path::new("/dev/shm").join(name);
    let meta = std::fs::symlink_metadata(&path);
    let exists = meta.is_ok();
    let mode = meta
        .as_ref()
        .map(|m| format!("{:o}", m.permissions().mode() & 0o777))
        .unwrap_or_default();
    let regular = meta.as_ref().is_ok_and(std::fs::Metadata::is_file);
    let mut out = json!({"status": "ok", "name_ok": name_ok, "exists": exists, "mode": mode, "regular": regular});
    if let (true, Some(p)) = (exists, a.get("params")) {
        let Ok(bytes) = std::fs::read(&path) else {
            return out;
        };
        let Ok(want) = crate::images::build_region(&json!({"params": p})) else {
            return out;
        };
        // Bytes that legitimately differ: created_unix_ns, region_id, header_crc, and the host
        // entry's pid, start_time, heartbeat and impl_name (0x140 + 0x08..0x40).
        let masked = |off: usize| {
            (0x78..0x90).contains(&off)
                || (0xF8..0xFC).contains(&off)
                || (0x148..0x180).contains(&off)
        };
        let same_len = bytes.len() == want.len();
        let mismatch = bytes
            .iter()
            .zip(&want)
            .enumerate()
            .find(|(i, (a, b))| !masked(*i) && a != b)
            .map(|(i, _)| i);
        let id = bytes.get(0x80..0x90).unwrap_or(&[]);
        out["layout_matches"] = json!(same_len && mismatch.is_none());
        out["first_difference"] = json!(mismatch);
        out["region_id_nonzero"] = json!(id.iter().any(|&b| b != 0));
        out["crc_ok"] = json!(crate::images::crc_fix(&bytes)
            .is_some_and(|(_, c)| bytes.get(0xF8..0xFC) == Some(&c[..])));
        let mut mem = crate::mem::Aligned::from_bytes(&bytes);
        let host = knit_core::region::Region::attach(mem.mem())
            .ok()
            .and_then(|r| r.participant(0).ok()?.snapshot().ok());
        out["host_state"] = json!(host.map(|h| crate::host::state_name(h.state)));
        out["host_pid_nonzero"] = json!(host.and_then(|h| h.identity).is_some_and(|i| i.pid != 0));
    }
    out
}
