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
    pool: Option<knit::Pool>,
}

const CAPABILITIES: [&str; 12] = [
    "pool",
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
            "pool_start" => self.pool_start(c),
            "pool_call" => self.pool_call(c),
            "pool_workers" => self.pool_workers(),
            "pool_stop" => {
                self.pool = None;
                Ok(ok(json!({})))
            }
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

    /// Starts the runtime's own host, `knit::Pool`, with `workers` workers serving
    /// `functions`: threads of this process, or (`process: true`) processes of this program
    /// started the way a host starts them (MAP-5). `restart` restarts dead workers (LIVE-5).
    fn pool_start(&mut self, c: &Value) -> Result<Value, Value> {
        let fs = knit_conformance::behaviour::functions(c.get("functions")).map_err(invalid)?;
        let workers = c
            .get("workers")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(1);
        let mut b = knit::Pool::builder().workers(workers).channels(1, 4096);
        if let Some(n) = c.get("max_message_len").and_then(Value::as_u64) {
            b = b.max_message_len(n);
        }
        if let Some(on) = c.get("restart").and_then(Value::as_bool) {
            b = b.restart(on);
        }
        b = if c.get("process").and_then(Value::as_bool) == Some(true) {
            let exe = std::env::current_exe()
                .map_err(|e| error_reply(ErrorCode::OsError, e.to_string()))?;
            let mut cmd = std::process::Command::new(exe);
            cmd.arg(SERVE_ENV_FLAG).env(
                FUNCTIONS_ENV,
                c.get("functions").map(Value::to_string).unwrap_or_default(),
            );
            b.process(cmd)
        } else {
            let mut handlers = knit::Handlers::new();
            for f in fs {
                let name = f.name.clone();
                handlers = handlers.handle(&name, move |ctx, req| f.run(ctx, req));
            }
            b.threads(handlers)
        };
        let pool = b
            .build()
            .map_err(|e| error_reply(e.code(), e.to_string()))?;
        let region = pool.region_name().unwrap_or_default().to_owned();
        self.pool = Some(pool);
        Ok(ok(json!({"region": region})))
    }

    /// A call through `knit::Pool`: `payload(seed, len)` to `function`, with `deadline_ms`.
    fn pool_call(&mut self, c: &Value) -> Result<Value, Value> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| invalid("no pool: pool_start first"))?;
        let function = str_arg(c, "function")?;
        let seed = c.get("seed").and_then(Value::as_u64).unwrap_or(0);
        let len = c
            .get("len")
            .and_then(Value::as_u64)
            .and_then(|l| usize::try_from(l).ok())
            .unwrap_or(0);
        let body = knit_conformance::payload::payload(seed, len);
        let mut options = knit::CallOptions::default();
        if let Some(ms) = c.get("deadline_ms").and_then(Value::as_u64) {
            options.deadline = Some(Duration::from_millis(ms));
        }
        Ok(match pool.call_with_options(function, &body[..], options) {
            Ok(r) => ok(json!({
                "content_type": r.content_type(),
                "len": r.bytes().len(),
                "digest": knit_conformance::payload::digest(r.bytes()),
            })),
            Err(e) => knit_conformance::host::status_reply(e.status, e.message),
        })
    }

    fn pool_workers(&mut self) -> Result<Value, Value> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| invalid("no pool: pool_start first"))?;
        let list: Vec<Value> = pool
            .workers()
            .iter()
            .map(|w| json!({"index": w.index, "ready": w.ready, "dead": w.dead, "starts": w.starts, "pid": w.pid}))
            .collect();
        Ok(ok(json!({"workers": list})))
    }

    fn reset(&mut self) {
        self.pool = None;
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
/// The functions such a worker process serves (a JSON list as in `serve`; `echo` when unset).
const FUNCTIONS_ENV: &str = "KNIT_AGENT_FUNCTIONS";

/// The worker process: region and slot from the environment or arguments (MAP-5), the
/// functions of `KNIT_AGENT_FUNCTIONS`.
fn serve_from_env() -> i32 {
    let spec = std::env::var(FUNCTIONS_ENV)
        .ok()
        .and_then(|s| serde_json::from_str::<Value>(&s).ok())
        .unwrap_or_else(|| json!([{"name": "echo"}]));
    let fs = match knit_conformance::behaviour::functions(Some(&spec)) {
        Ok(fs) => fs,
        Err(e) => {
            eprintln!("knit-agent worker: {e}");
            return 2;
        }
    };
    let run = knit::Worker::from_env().and_then(|mut w| {
        for f in fs {
            let name = f.name.clone();
            w = w.handle(&name, move |ctx, req| f.run(ctx, req));
        }
        w.run()
    });
    match run {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("knit-agent worker: {e}");
            1
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == SERVE_ENV_FLAG) {
        std::process::exit(serve_from_env());
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
