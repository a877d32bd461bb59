//! `knit-agent`: the reference agent of the Knit conformance suite. It answers the driver
//! protocol of `conformance/README.md` on stdin/stdout with the Rust implementation: knit-core
//! decodes images, the knit runtime's worker serves, and the reference host of the suite calls.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter};
use std::time::Duration;

use knit_conformance::frame::{read_frame, write_frame, FrameError};
use knit_conformance::host::{error_reply, HostActor};
use knit_conformance::images::{apply, params};
use knit_conformance::payload::unhex;
use knit_conformance::validate::{validate, Refusal};
use knit_conformance::workers::{RawWorker, ServeThread};
use knit_core::ErrorCode;
use serde_json::{json, Value};

/// What the agent holds between commands.
#[derive(Default)]
struct Agent {
    images: HashMap<String, Vec<u8>>,
    serves: Vec<ServeThread>,
    host: Option<HostActor>,
    raw: Option<RawWorker>,
    spawned: Option<std::process::Child>,
}

const CAPABILITIES: [&str; 11] = [
    "channels",
    "spawn",
    "validate.region",
    "validate.ring",
    "validate.participant",
    "validate.fntable",
    "validate.typed_array",
    "worker",
    "host",
    "raw",
    "stats",
];

fn invalid(detail: impl Into<String>) -> Value {
    error_reply(ErrorCode::InvalidArgument, detail)
}

fn ok(v: Value) -> Value {
    let mut v = v;
    v["status"] = json!("ok");
    v
}

fn str_arg<'a>(c: &'a Value, k: &str) -> Result<&'a str, Value> {
    c.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("`{k}` is required")))
}

impl Agent {
    fn handle(&mut self, c: &Value) -> Value {
        let cmd = c.get("cmd").and_then(Value::as_str).unwrap_or("");
        let r = match cmd {
            "hello" => Ok(ok(json!({
                "name": "knit-rs",
                "version": env!("CARGO_PKG_VERSION"),
                "spec_versions": ["1.0"],
                "capabilities": CAPABILITIES,
            }))),
            "put_image" => self.put_image(c),
            "validate" => self.validate(c),
            "serve" => self.serve(c),
            "wait_worker" => Ok(self.wait_worker(c)),
            "host_create" => self.host_create(c),
            "host_reserve" => self.host("reserve", c),
            "host_wait_hello" => self.host("wait_hello", c),
            "call" => self.host("call", c),
            "call_batch" => self.host("call_batch", c),
            "host_channel_call" => self.host("channel_call", c),
            "host_shutdown" => self.host("shutdown", c),
            "host_close" => {
                self.host = None;
                Ok(ok(json!({})))
            }
            "raw_attach" => self.raw_attach(c, true),
            "raw_claim" => self.raw_attach(c, false),
            "raw_hello" => self.raw("hello", c),
            "raw_write" => self.raw("write", c),
            "raw_read" => self.raw("read", c),
            "raw_respond" => self.raw("respond", c),
            "raw_store_tail" => self.raw("store_tail", c),
            "stats" => Ok(ok(stats())),
            "spawn_worker" => self.spawn_worker(c),
            "wait_spawned" => Ok(self.wait_spawned(c)),
            "reset" => {
                self.reset();
                Ok(ok(json!({})))
            }
            "exit" => Ok(ok(json!({}))),
            c if c.starts_with("channel_") => Ok(
                json!({"status": "skipped", "reason": "the reference runtime has no channels API yet"}),
            ),
            other => Err(invalid(format!("unknown command {other:?}"))),
        };
        r.unwrap_or_else(|e| e)
    }

    fn put_image(&mut self, c: &Value) -> Result<Value, Value> {
        let name = str_arg(c, "name")?;
        let bytes = unhex(str_arg(c, "hex")?).ok_or_else(|| invalid("hex"))?;
        self.images.insert(name.to_owned(), bytes);
        Ok(ok(json!({})))
    }

    fn validate(&mut self, c: &Value) -> Result<Value, Value> {
        let kind = str_arg(c, "kind")?;
        let base = self
            .images
            .get(str_arg(c, "image")?)
            .ok_or_else(|| invalid("no such image"))?;
        let mut patches = Vec::new();
        for p in c
            .get("patches")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let off = p
                .get(0)
                .and_then(Value::as_u64)
                .and_then(|o| usize::try_from(o).ok())
                .ok_or_else(|| invalid("patch offset"))?;
            let bytes = p
                .get(1)
                .and_then(Value::as_str)
                .and_then(unhex)
                .ok_or_else(|| invalid("patch hex"))?;
            if off > 1 << 30 {
                return Err(invalid("patch offset too large"));
            }
            patches.push((off, bytes));
        }
        let image = apply(base, &patches);
        match validate(kind, &image, c) {
            Ok(v) => Ok(ok(v.to_json())),
            Err(Refusal::BadArgs(e)) => Err(invalid(e)),
            Err(Refusal::Skipped(e)) => Ok(json!({"status": "skipped", "reason": e})),
        }
    }

    fn serve(&mut self, c: &Value) -> Result<Value, Value> {
        let region = str_arg(c, "region")?;
        let slot = c
            .get("slot")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| invalid("slot"))?;
        let fs = knit_conformance::behaviour::functions(c.get("functions")).map_err(invalid)?;
        self.serves.push(ServeThread::start(
            region,
            slot,
            &fs,
            c.get("spin").and_then(Value::as_str),
        ));
        Ok(ok(json!({})))
    }

    fn wait_worker(&mut self, c: &Value) -> Value {
        let timeout =
            Duration::from_millis(c.get("timeout_ms").and_then(Value::as_u64).unwrap_or(5000));
        match self.serves.last_mut() {
            Some(s) => s.wait(timeout),
            None => invalid("no worker"),
        }
    }

    fn host_create(&mut self, c: &Value) -> Result<Value, Value> {
        let p = params(c.get("params")).map_err(invalid)?;
        let host = HostActor::create(p).map_err(|e| error_reply(ErrorCode::OsError, e))?;
        let name = host.name.clone();
        self.host = Some(host);
        Ok(ok(json!({"region": name})))
    }

    fn host(&mut self, op: &str, c: &Value) -> Result<Value, Value> {
        let host = self
            .host
            .as_ref()
            .ok_or_else(|| invalid("no region: host_create first"))?;
        Ok(host.command(op, c))
    }

    fn raw_attach(&mut self, c: &Value, activate: bool) -> Result<Value, Value> {
        let region = str_arg(c, "region")?;
        let slot = c
            .get("slot")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| invalid("slot"))?;
        self.raw = Some(
            RawWorker::attach_as(region, slot, activate)
                .map_err(|e| error_reply(ErrorCode::SlotTaken, e))?,
        );
        Ok(ok(json!({})))
    }

    fn raw(&mut self, op: &str, c: &Value) -> Result<Value, Value> {
        let raw = self
            .raw
            .as_ref()
            .ok_or_else(|| invalid("no raw worker: raw_attach first"))?;
        // `wait: false` queues the command and answers at once (the runner kills this process
        // at a named point while the command waits for the host).
        let wait = c.get("wait").and_then(Value::as_bool) != Some(false);
        Ok(raw.command(op, c, wait))
    }

    /// Starts this program as a worker process the way a host starts one (MAP-5): the region
    /// and slot in `KNIT_REGION` / `KNIT_SLOT` (`via: "env"`) or as `--knit-region NAME
    /// --knit-slot N` (`via: "args"`). The child serves `echo` through `Worker::from_env`.
    fn spawn_worker(&mut self, c: &Value) -> Result<Value, Value> {
        let region = str_arg(c, "region")?;
        let slot = c
            .get("slot")
            .and_then(Value::as_u64)
            .unwrap_or(1)
            .to_string();
        let exe =
            std::env::current_exe().map_err(|e| error_reply(ErrorCode::OsError, e.to_string()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg(SERVE_ENV_FLAG)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        if c.get("via").and_then(Value::as_str) == Some("args") {
            cmd.args(["--knit-region", region, "--knit-slot", &slot]);
        } else {
            cmd.env("KNIT_REGION", region).env("KNIT_SLOT", &slot);
        }
        let child = cmd
            .spawn()
            .map_err(|e| error_reply(ErrorCode::OsError, e.to_string()))?;
        let pid = child.id();
        self.spawned = Some(child);
        Ok(ok(json!({"pid": pid})))
    }

    fn wait_spawned(&mut self, c: &Value) -> Value {
        let timeout =
            Duration::from_millis(c.get("timeout_ms").and_then(Value::as_u64).unwrap_or(5000));
        let Some(child) = self.spawned.as_mut() else {
            return invalid("no spawned worker");
        };
        let start = std::time::Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.spawned = None;
                    return ok(json!({"exit_code": status.code()}));
                }
                Ok(None) if start.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    return error_reply(ErrorCode::TimedOut, "the worker process still runs")
                }
                Err(e) => return error_reply(ErrorCode::OsError, e.to_string()),
            }
        }
    }

    fn reset(&mut self) {
        if let Some(mut child) = self.spawned.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.host = None;
        self.raw = None;
        for mut s in self.serves.drain(..) {
            let _ = s.wait(Duration::from_secs(2));
        }
    }
}

/// Open descriptors, region mappings and threads of this process (README §3.8).
fn stats() -> Value {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let mappings = maps
        .lines()
        .filter(|l| l.contains("/dev/shm/knit-") || l.contains("memfd:knit"))
        .count();
    let threads = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Threads:")
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    json!({"fds": fds, "mappings": mappings, "threads": threads})
}

/// The flag that makes this program a worker process (see `Agent::spawn_worker`).
const SERVE_ENV_FLAG: &str = "--serve-from-env";

fn main() {
    if std::env::args().any(|a| a == SERVE_ENV_FLAG) {
        let code = match knit::Worker::from_env()
            .and_then(|w| w.handle("echo", |_, req| Ok(req.payload.to_vec())).run())
        {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("knit-agent worker: {e}");
                1
            }
        };
        std::process::exit(code);
    }
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    let mut agent = Agent::default();
    loop {
        let cmd = match read_frame(&mut input) {
            Ok(c) => c,
            Err(FrameError::Closed) => break,
            Err(FrameError::BadJson(e)) => {
                let _ = write_frame(&mut output, &invalid(format!("malformed command: {e}")));
                continue;
            }
            Err(e) => {
                eprintln!("knit-agent: {e}");
                break;
            }
        };
        let mut reply = agent.handle(&cmd);
        reply["id"] = cmd.get("id").cloned().unwrap_or(Value::Null);
        if write_frame(&mut output, &reply).is_err() {
            break;
        }
        if cmd.get("cmd").and_then(Value::as_str) == Some("exit") {
            break;
        }
    }
    agent.reset();
}
