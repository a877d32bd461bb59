//! The worker side of live cases: [`ServeThread`] runs the knit runtime's worker with built-in
//! behaviours; [`RawWorker`] claims a slot and writes whatever it is told (the adversary, and
//! the peer that is killed at named points).

use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knit::{Futex, ProcessIdentity, RegionHandle, ServeOutcome};
use knit_core::message::{Accept, Incoming, MessageHead, Reassembler};
use knit_core::participant::Identity;
use knit_core::records::{HelloHead, RingKind, TYPE_HELLO};
use knit_core::ring::Consumer;
use knit_core::ErrorCode;
use serde_json::{json, Value};

use crate::behaviour::{worker, Function};
use crate::host::{error_reply, Reply};
use crate::images::lay_records_raw;
use crate::raw::RawRing;

/// A knit worker serving on its own thread.
pub struct ServeThread {
    done: Receiver<Reply>,
    outcome: Option<Reply>,
    thread: Option<JoinHandle<()>>,
}

impl ServeThread {
    /// Starts serving `slot` of `region` with `fs`.
    pub fn start(region: &str, slot: u32, fs: &[Function], spin: Option<&str>) -> ServeThread {
        let w = worker(region, slot, fs, spin);
        let (tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let reply = match w.serve() {
                Ok(ServeOutcome::Shutdown | ServeOutcome::Stopped) => {
                    json!({"status": "ok", "outcome": "shutdown"})
                }
                Err(e) => error_reply(e.code(), e.to_string()),
            };
            let _ = tx.send(reply);
        });
        ServeThread {
            done,
            outcome: None,
            thread: Some(thread),
        }
    }

    /// Waits at most `timeout` for the worker to end (`TIMED_OUT` while it runs).
    pub fn wait(&mut self, timeout: Duration) -> Reply {
        if let Some(o) = &self.outcome {
            return o.clone();
        }
        match self.done.recv_timeout(timeout) {
            Ok(r) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                self.outcome = Some(r.clone());
                r
            }
            Err(_) => error_reply(ErrorCode::TimedOut, "the worker still runs"),
        }
    }

    /// True once the worker ended.
    pub fn ended(&mut self) -> bool {
        self.wait(Duration::ZERO)
            .get("class")
            .and_then(Value::as_str)
            != Some("TIMED_OUT")
    }
}

type RawJob = Box<dyn FnOnce(&mut RawState<'_>) -> Reply + Send>;

/// A worker that writes what it is told, on its own thread.
pub struct RawWorker {
    jobs: Option<Sender<(RawJob, Sender<Reply>)>>,
    thread: Option<JoinHandle<()>>,
}

/// The raw worker's state.
pub struct RawState<'a> {
    region: knit_core::region::Region<'a>,
    responses: RawRing<'a>,
    requests: Consumer<'a>,
    reassembler: Reassembler,
    host_bell: Option<knit_core::wait::Doorbell<'a>>,
    /// The last request id read.
    pub last_request: u64,
}

impl RawWorker {
    /// Attaches to `region` and claims and activates `slot` (PART-2) without sending HELLO.
    pub fn attach(region: &str, slot: u32) -> Result<RawWorker, String> {
        Self::attach_as(region, slot, true)
    }

    /// Like [`RawWorker::attach`]; with `activate` false the entry is only claimed (left
    /// ATTACHING), as by a worker that dies during its attach.
    pub fn attach_as(region: &str, slot: u32, activate: bool) -> Result<RawWorker, String> {
        let (tx, rx) = mpsc::channel::<(RawJob, Sender<Reply>)>();
        let (ready_tx, ready_rx) = mpsc::channel();
        let region = region.to_owned();
        let thread = std::thread::spawn(move || {
            let setup = (|| -> Result<RegionHandle, String> {
                let handle = RegionHandle::attach(&region, Duration::from_secs(1))
                    .map_err(|e| e.to_string())?;
                let r = handle.region();
                let me = r.participant(slot).map_err(|e| e.to_string())?;
                let id = ProcessIdentity::current().map_err(|e| e.to_string())?;
                me.claim().map_err(|e| e.to_string())?;
                let identity = Identity {
                    pid: id.pid,
                    start_time: id.start_time,
                    impl_name: "knit-conformance raw",
                };
                if activate {
                    me.activate(&identity, knit::monotonic_ns())
                        .map_err(|e| e.to_string())?;
                }
                Ok(handle)
            })();
            let handle = match setup {
                Ok(h) => h,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let r = handle.region();
            let Some(Ok(mbx)) = slot.checked_sub(1).map(|m| r.mailbox(m)) else {
                return;
            };
            let mut state = RawState {
                region: r,
                responses: RawRing::new(mbx.response),
                requests: Consumer::new(mbx.request),
                reassembler: Reassembler::new(RingKind::Request, r.geometry().max_message_len()),
                host_bell: r.participant(0).ok().and_then(|p| p.doorbell().ok()),
                last_request: 0,
            };
            let _ = ready_tx.send(Ok(()));
            while let Ok((job, reply)) = rx.recv() {
                let _ = reply.send(job(&mut state));
            }
        });
        ready_rx
            .recv()
            .map_err(|_| "raw worker thread died".to_owned())??;
        Ok(RawWorker {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a job; the receiver gets its reply when it ran.
    pub fn submit(
        &self,
        job: impl FnOnce(&mut RawState<'_>) -> Reply + Send + 'static,
    ) -> Receiver<Reply> {
        let (tx, rx) = mpsc::channel();
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send((Box::new(job), tx));
        }
        rx
    }

    /// Runs a command and waits for its reply: `hello`, `write`, `read`, `respond`.
    pub fn command(&self, op: &str, args: &Value, wait: bool) -> Reply {
        let op = op.to_owned();
        let args = args.clone();
        let rx = self.submit(move |s| s.command(&op, &args));
        if !wait {
            return json!({"status": "ok", "queued": true});
        }
        rx.recv()
            .unwrap_or_else(|_| error_reply(ErrorCode::InvalidArgument, "raw worker ended"))
    }

    /// Stops the thread (the entry stays as it is: a raw worker never detaches by itself).
    pub fn close(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        self.close();
    }
}

impl RawState<'_> {
    /// `hello {functions}`, `write {records, publish}`, `read {timeout_ms}`, or `respond
    /// {records, timeout_ms}` (read the next request, then write `records` with every
    /// `"$request_id"` replaced by its id, `"$request_id+1"` by the next one).
    pub fn command(&mut self, op: &str, a: &Value) -> Reply {
        let timeout =
            Duration::from_millis(a.get("timeout_ms").and_then(Value::as_u64).unwrap_or(5000));
        match op {
            "hello" => {
                let names: Vec<(u32, String)> = a
                    .get("functions")
                    .and_then(Value::as_array)
                    .map(|v| {
                        v.iter()
                            .filter_map(|n| n.as_str())
                            .zip(1u32..)
                            .map(|(n, i)| (i, n.to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let table = crate::images::fntable(&names);
                let head = HelloHead {
                    payload_len: table.len() as u64,
                }
                .encode();
                let records = self.responses.fragments(TYPE_HELLO, &head, &table);
                for (t, f, b) in records {
                    match self.responses.append(b.len() as u32, t, f, &b, false) {
                        Ok(true) => {}
                        Ok(false) => {
                            return error_reply(ErrorCode::WouldBlock, "no room for HELLO")
                        }
                        Err(e) => return error_reply(e.code, e.to_string()),
                    }
                }
                self.publish(true)
            }
            "write" => {
                let list = a
                    .get("records")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let list: Vec<Value> = list
                    .iter()
                    .map(|r| substitute_id(r, self.last_request))
                    .collect();
                if let Err(e) = lay_records_raw(&mut self.responses, &list) {
                    return error_reply(ErrorCode::InvalidArgument, e);
                }
                self.publish(a.get("publish").and_then(Value::as_bool) != Some(false))
            }
            "read" => self.read(timeout),
            "store_tail" => {
                let tail = match (a.get("value"), a.get("delta").and_then(Value::as_i64)) {
                    (Some(v), _) => crate::images::int_value(v, 8).unwrap_or(0),
                    (None, Some(d)) => self.responses.tail.wrapping_add_signed(d),
                    (None, None) => self.responses.tail,
                };
                match self.responses.store_tail(tail) {
                    Ok(()) => self.publish(false),
                    Err(e) => error_reply(e.code, e.to_string()),
                }
            }
            "poke" => {
                let mut offset = a.get("offset").and_then(Value::as_u64).unwrap_or(0) as usize;
                if let Some(i) = a.get("participant").and_then(Value::as_u64) {
                    match u32::try_from(i)
                        .ok()
                        .and_then(|i| self.region.geometry().participant_range(i))
                    {
                        Some((base, _)) => offset += base,
                        None => {
                            return error_reply(ErrorCode::InvalidArgument, "participant index")
                        }
                    }
                }
                let bytes = match crate::images::patch_bytes(a) {
                    Ok(b) => b,
                    Err(e) => return error_reply(ErrorCode::InvalidArgument, e),
                };
                match self.region.memory().write(offset, &bytes) {
                    Ok(()) => {
                        if let Some(b) = self.host_bell {
                            b.ring(&Futex);
                        }
                        json!({"status": "ok"})
                    }
                    Err(e) => error_reply(e.code, e.to_string()),
                }
            }
            "respond" => {
                let r = self.read(timeout);
                if r.get("status").and_then(Value::as_str) != Some("ok") {
                    return r;
                }
                self.command("write", a)
            }
            other => error_reply(
                ErrorCode::InvalidArgument,
                format!("unknown raw op {other}"),
            ),
        }
    }

    fn publish(&mut self, publish: bool) -> Reply {
        if publish {
            if let Err(e) = self.responses.publish() {
                return error_reply(e.code, e.to_string());
            }
            if let Some(b) = self.host_bell {
                b.ring(&Futex);
            }
        }
        json!({"status": "ok"})
    }

    /// Waits for the next complete request (or control record) and says what it was.
    fn read(&mut self, timeout: Duration) -> Reply {
        let start = Instant::now();
        loop {
            let polled = self
                .reassembler
                .poll(&mut self.requests, |_| Ok(Accept::Deliver));
            let reply = match polled {
                Err(e) => return error_reply(e.code, e.to_string()),
                Ok(p) => match p.incoming {
                    Some(Incoming::Message(m)) => {
                        let id = match m.head {
                            MessageHead::Request(r) => r.request_id,
                            _ => 0,
                        };
                        m.payload.release();
                        Some((
                            id,
                            json!({"status": "ok", "type": "REQUEST", "request_id": id.to_string()}),
                        ))
                    }
                    Some(Incoming::Shutdown) => {
                        Some((0, json!({"status": "ok", "type": "SHUTDOWN"})))
                    }
                    Some(_) => Some((0, json!({"status": "ok", "type": "OTHER"}))),
                    None => None,
                },
            };
            self.requests.publish_head();
            if let Some((id, r)) = reply {
                if id != 0 {
                    self.last_request = id;
                }
                return r;
            }
            if start.elapsed() >= timeout {
                return error_reply(ErrorCode::TimedOut, "no request came");
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

fn substitute_id(v: &Value, id: u64) -> Value {
    match v {
        Value::String(s) if s == "$request_id" => json!(id.to_string()),
        Value::String(s) if s == "$request_id+1" => json!((id + 1).to_string()),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_id(x, id)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute_id(x, id)))
                .collect(),
        ),
        other => other.clone(),
    }
}
