//! The built-in behaviours a worker agent registers (conformance/README.md §3.2), as handlers of
//! the knit runtime's worker.

use std::time::{Duration, Instant};

use knit::{Context, HandlerError, HandlerResult, Request, Worker};
use knit_core::ErrorCode;
use serde_json::Value;

use crate::payload::{fnv1a64, payload, BatchDigest};

/// One function to register: its name, behaviour and arguments.
#[derive(Clone, Debug)]
pub struct Function {
    /// Name in the HELLO.
    pub name: String,
    /// `echo`, `checksum`, `fail`, `sleep` or `generate`.
    pub behaviour: String,
    /// Milliseconds for `sleep`.
    pub ms: u64,
    /// Status for `fail`.
    pub code: u32,
}

impl Function {
    /// From `{name, behaviour, ms?, code?}`; the behaviour defaults to the name.
    pub fn from_json(v: &Value) -> Result<Function, String> {
        let name = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a function needs a name")?
            .to_owned();
        let behaviour = v
            .get("behaviour")
            .and_then(Value::as_str)
            .unwrap_or(&name)
            .to_owned();
        if !["echo", "checksum", "fail", "sleep", "generate", "drain"].contains(&behaviour.as_str())
        {
            return Err(format!("unknown behaviour {behaviour}"));
        }
        Ok(Function {
            name,
            behaviour,
            ms: v.get("ms").and_then(Value::as_u64).unwrap_or(0),
            code: v
                .get("code")
                .and_then(Value::as_u64)
                .map_or(ErrorCode::HandlerFailed as u32, |c| c as u32),
        })
    }

    /// Runs the behaviour.
    pub fn run(&self, ctx: &Context<'_>, req: Request<'_>) -> HandlerResult {
        match self.behaviour.as_str() {
            "echo" => Ok(req.payload.to_vec()),
            "checksum" => {
                ctx.set_content_type(0);
                Ok(fnv1a64(req.payload).to_le_bytes().to_vec())
            }
            "fail" => Err(HandlerError::new(self.code, "fail")),
            "sleep" => {
                let end = Instant::now() + Duration::from_millis(self.ms);
                while Instant::now() < end {
                    if ctx.is_cancelled() {
                        return Err(HandlerError::new(
                            ErrorCode::Cancelled as u32,
                            "cancelled while sleeping",
                        ));
                    }
                    std::thread::sleep(Duration::from_micros(500));
                }
                Ok(req.payload.to_vec())
            }
            "generate" => {
                let word = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(req.payload.get(i..i + 8)?);
                    Some(u64::from_le_bytes(b))
                };
                let (Some(seed), Some(len)) = (word(0), word(8)) else {
                    return Err(HandlerError::new(
                        ErrorCode::InvalidArgument as u32,
                        "generate needs seed and len",
                    ));
                };
                let len = usize::try_from(len).map_err(|_| HandlerError::failed("len"))?;
                ctx.set_content_type(0);
                Ok(payload(seed, len))
            }
            "drain" => {
                // The channel the host opened for this call (spec/06): every message until
                // END, folded into the batch digest of README §3.6; the result is its 16 hex
                // digits. A receive error (CHANNEL_ABORTED, PEER_DIED, a violation) becomes
                // the call's status.
                let mut rx = ctx.take_input_channel().map_err(HandlerError::from)?;
                let mut d = BatchDigest::default();
                let mut i = 0u64;
                while let Some(m) = rx.recv().map_err(HandlerError::from)? {
                    d.push(i, fnv1a64(&m.bytes));
                    i += 1;
                }
                ctx.set_content_type(1);
                Ok(d.finish().into_bytes())
            }
            other => Err(HandlerError::failed(format!("unknown behaviour {other}"))),
        }
    }
}

/// Parses a `functions` list.
pub fn functions(v: Option<&Value>) -> Result<Vec<Function>, String> {
    v.and_then(Value::as_array)
        .ok_or("functions must be a list")?
        .iter()
        .map(Function::from_json)
        .collect()
}

/// A knit worker for `slot` of region `name` serving `fs` in order (ids 1, 2, ...).
pub fn worker(name: &str, slot: u32, fs: &[Function], spin: Option<&str>) -> Worker {
    let mut w = Worker::new(name, slot);
    if spin == Some("none") {
        w = w.spin(knit::SpinPolicy::NoSpin);
    }
    for f in fs {
        let f = f.clone();
        w = w.handle(&f.name.clone(), move |ctx, req| f.run(ctx, req));
    }
    w
}
