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
}

const CAPABILITIES: [&str; 9] = [
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
            "host_shutdown" => self.host("shutdown", c),
            "host_close" => {
                self.host = None;
                Ok(ok(json!({})))
            }
            "raw_attach" => self.raw_attach(c),
            "raw_hello" => self.raw("hello", c),
            "raw_write" => self.raw("write", c),
            "raw_read" => self.raw("read", c),
            "stats" => Ok(ok(stats())),
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

    fn raw_attach(&mut self, c: &Value) -> Result<Value, Value> {
        let region = str_arg(c, "region")?;
        let slot = c
            .get("slot")
            .and_then(Value::as_u64)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| invalid("slot"))?;
        self.raw = Some(
            RawWorker::attach(region, slot).map_err(|e| error_reply(ErrorCode::SlotTaken, e))?,
        );
        Ok(ok(json!({})))
    }

    fn raw(&mut self, op: &str, c: &Value) -> Result<Value, Value> {
        let raw = self
            .raw
            .as_ref()
            .ok_or_else(|| invalid("no raw worker: raw_attach first"))?;
        Ok(raw.command(op, c, true))
    }

    fn reset(&mut self) {
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

fn main() {
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
