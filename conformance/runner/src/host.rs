//! [`HostActor`]: a reference host on its own thread, driven by commands. The runner plays the
//! host side of live cases with it, and the reference agent answers the `host_*` commands with
//! it. It owns the region (created named, spec/11) and, per worker slot, the runner's own
//! request producer ([`RawRing`]) and knit-core's response consumer and reassembler.
//!
//! Every reply is a driver-protocol reply body (`{"status": "ok", ...}` or `{"status":
//! "error", "class": ...}`), so the agent forwards it as is and the runner judges it as is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knit::liveness::{peer_status, PeerStatus};
use knit::{Futex, RegionHandle};
use knit_core::fntable::FunctionTable;
use knit_core::geometry::Params;
use knit_core::layout::ParticipantState;
use knit_core::message::{Accept, Incoming, MessageHead, Reassembler};
use knit_core::records::{RequestHead, RingKind, FLAGS_SINGLE, TYPE_REQUEST, TYPE_SHUTDOWN};
use knit_core::region::Region;
use knit_core::ring::Consumer;
use knit_core::wait::Doorbell;
use knit_core::{Error, ErrorCode};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

use crate::images::{lay_records_raw, payload_of};
use crate::payload::{digest, fnv1a64, payload, BatchDigest};
use crate::raw::RawRing;

/// The longest a host parks before it checks liveness again (WAIT-4).
const PARK_NS: u64 = 10_000_000;

/// A reply body.
pub type Reply = Value;

/// An error reply with a registry code.
pub fn error_reply(code: ErrorCode, detail: impl Into<String>) -> Reply {
    json!({"status": "error", "class": code.name(), "code": code as u32, "detail": detail.into()})
}

/// An error reply for a raw status (CALL-7: unknown codes keep their number as class).
pub fn status_reply(status: u32, detail: impl Into<String>) -> Reply {
    let class =
        ErrorCode::from_u32(status).map_or_else(|| status.to_string(), |c| c.name().to_owned());
    json!({"status": "error", "class": class, "code": status, "detail": detail.into()})
}

fn core_reply(e: &Error) -> Reply {
    error_reply(e.code, e.to_string())
}

type Job = Box<dyn FnOnce(&mut HostState<'_>) -> Reply + Send>;

/// The host thread and its command queue.
pub struct HostActor {
    jobs: Option<Sender<(Job, Sender<Reply>)>>,
    thread: Option<JoinHandle<()>>,
    /// The region's name.
    pub name: String,
}

impl HostActor {
    /// Creates a named region with `params` and starts the host thread.
    pub fn create(params: Params) -> Result<HostActor, String> {
        let (tx, rx) = mpsc::channel::<(Job, Sender<Reply>)>();
        let (name_tx, name_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let handle = match RegionHandle::create(&params) {
                Ok(h) => h,
                Err(e) => {
                    let _ = name_tx.send(Err(e.to_string()));
                    return;
                }
            };
            let name = handle
                .name()
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default();
            let _ = name_tx.send(Ok(name));
            let mut state = HostState {
                region: handle.region(),
                slots: BTreeMap::new(),
            };
            serve_jobs(&mut state, &rx);
            state.teardown();
            drop(state);
            let _ = handle.unlink();
        });
        let name = name_rx
            .recv()
            .map_err(|_| "host thread died".to_owned())??;
        Ok(HostActor {
            jobs: Some(tx),
            thread: Some(thread),
            name,
        })
    }

    /// Runs `job` on the host thread and waits for its reply.
    pub fn run(&self, job: impl FnOnce(&mut HostState<'_>) -> Reply + Send + 'static) -> Reply {
        let (tx, rx) = mpsc::channel();
        let Some(jobs) = &self.jobs else {
            return error_reply(ErrorCode::InvalidArgument, "host closed");
        };
        if jobs.send((Box::new(job), tx)).is_err() {
            return error_reply(ErrorCode::InvalidArgument, "host thread ended");
        }
        rx.recv()
            .unwrap_or_else(|_| error_reply(ErrorCode::InvalidArgument, "host thread ended"))
    }

    /// Runs a command given as a JSON object (`op` and arguments); see [`HostState::command`].
    pub fn command(&self, op: &str, args: &Value) -> Reply {
        let op = op.to_owned();
        let args = args.clone();
        self.run(move |s| s.command(&op, &args))
    }

    /// Stops the thread, drops the region and unlinks its name (MAP-3).
    pub fn close(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HostActor {
    fn drop(&mut self) {
        self.close();
    }
}

fn serve_jobs(state: &mut HostState<'_>, rx: &Receiver<(Job, Sender<Reply>)>) {
    while let Ok((job, reply)) = rx.recv() {
        let _ = reply.send(job(state));
    }
}

/// What the host keeps per worker slot.
pub struct SlotState<'a> {
    requests: RawRing<'a>,
    responses: Consumer<'a>,
    reassembler: Reassembler,
    table: Option<FunctionTable>,
    names: Vec<String>,
    last_id: u64,
    outstanding: BTreeSet<u64>,
    abandoned: BTreeSet<u64>,
    failed: Option<Error>,
    /// Responses read while the host waited for request space (so that neither side waits
    /// for the other with both rings full), by request id.
    completed: BTreeMap<u64, Answer>,
}

/// The host thread's state: the region and its slots.
pub struct HostState<'a> {
    /// The region.
    pub region: Region<'a>,
    slots: BTreeMap<u32, SlotState<'a>>,
}

/// A response as the host read it.
struct Answer {
    status: u32,
    content_type: u32,
    bytes: Vec<u8>,
}

fn arg_u64(args: &Value, key: &str, default: u64) -> u64 {
    crate::validate::u64_arg(args, key).unwrap_or(default)
}

impl<'a> HostState<'a> {
    /// Runs one command: `reserve`, `wait_hello`, `call`, `call_batch`, `shutdown`, `write`,
    /// `store_tail`, `poke`, `poison`, `state`, `mark_dead`.
    pub fn command(&mut self, op: &str, a: &Value) -> Reply {
        let slot = arg_u64(a, "slot", 1) as u32;
        let timeout = Duration::from_millis(arg_u64(a, "timeout_ms", 5000));
        match op {
            "reserve" => self.reserve(slot),
            "wait_hello" => self.wait_hello(
                slot,
                timeout,
                Duration::from_millis(arg_u64(a, "attach_timeout_ms", 5000)),
            ),
            "bells" => {
                // `wait_sleeping`: poll (bounded by `timeout_ms`) until the worker announced
                // sleep, so that the check does not depend on catching it between two parks.
                let start = Instant::now();
                loop {
                    let r = self.bells(slot);
                    let asleep = r
                        .get("worker_sleepers")
                        .and_then(Value::as_u64)
                        .unwrap_or(0)
                        > 0;
                    if asleep
                        || a.get("wait_sleeping").and_then(Value::as_bool) != Some(true)
                        || start.elapsed() > timeout
                    {
                        break r;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            "call" => self.call(slot, a, timeout),
            "call_batch" => self.call_batch(slot, a, timeout),
            "shutdown" => self.shutdown(slot, timeout),
            "write" => self.write(slot, a),
            "store_tail" => self.store_tail(slot, a),
            "poke" => self.poke(a),
            "poison" => {
                json!({"status": "ok", "poison": poison_name(self.region.poison_code()), "poisoned_by": self.region.poisoned_by()})
            }
            "state" => self.state(slot),
            "wait_state" => self.wait_state(slot, a, timeout),
            "mark_dead" => self.mark_dead(slot),
            "flip_calls" => self.flip_calls(slot, a, timeout),
            "channel_call" => self.channel_call(slot, a, timeout),
            other => error_reply(
                ErrorCode::InvalidArgument,
                format!("unknown host op {other}"),
            ),
        }
    }

    /// Leaves the region: SHUTDOWN to every worker still ACTIVE (MBX-3), DEAD for one that does
    /// not detach within a second (the host gives up on it, LIVE-3), then the host's own
    /// DETACHED (PART-5) and every doorbell rung (WAIT-5).
    fn teardown(&mut self) {
        let slots: Vec<u32> = self.slots.keys().copied().collect();
        for slot in slots {
            let active =
                |h: &Self| h.state(slot).get("state").and_then(Value::as_str) == Some("ACTIVE");
            if active(self) && self.region.poison_code() == 0 {
                let _ = self.shutdown(slot, Duration::from_millis(500));
            }
            if active(self) {
                if let Ok(p) = self.region.participant(slot) {
                    let _ = p.mark_dead(ParticipantState::Active);
                }
            }
        }
        if let Ok(p) = self.region.participant(0) {
            let _ = p.detach();
        }
        for i in 0..=self.region.geometry().worker_slots() {
            if let Some(b) = self.doorbell(i) {
                b.ring(&Futex);
            }
        }
    }

    /// MBX-4 then PART-4: reset both rings and the cancel table, then reserve the entry.
    fn reserve(&mut self, slot: u32) -> Reply {
        let r = (|| -> knit_core::Result<u32> {
            let mbx = self.region.mailbox(
                slot.checked_sub(1)
                    .ok_or(Error::new(ErrorCode::InvalidArgument, "slot 0"))?,
            )?;
            mbx.request.reset();
            mbx.response.reset();
            mbx.cancel.zero(0, mbx.cancel.len())?;
            let epoch = self.region.participant(slot)?.reserve()?;
            let g = self.region.geometry();
            self.slots.insert(
                slot,
                SlotState {
                    requests: RawRing::new(mbx.request),
                    responses: Consumer::new(mbx.response),
                    reassembler: Reassembler::new(RingKind::Response, g.max_message_len()),
                    table: None,
                    names: Vec::new(),
                    last_id: 0,
                    outstanding: BTreeSet::new(),
                    abandoned: BTreeSet::new(),
                    failed: None,
                    completed: BTreeMap::new(),
                },
            );
            Ok(epoch)
        })();
        match r {
            Ok(epoch) => json!({"status": "ok", "epoch": epoch}),
            Err(e) => core_reply(&e),
        }
    }

    fn doorbell(&self, index: u32) -> Option<Doorbell<'a>> {
        self.region.participant(index).ok()?.doorbell().ok()
    }

    /// A violation found in the worker's memory: poison (RING-13, ERR-2), wake the worker, and
    /// keep failing this slot.
    fn violation(&mut self, slot: u32, e: Error) -> Reply {
        if e.code.is_violation() {
            self.region.poison(e.code, Some(0));
            if let Some(b) = self.doorbell(slot) {
                b.ring(&Futex);
            }
            if let Some(s) = self.slots.get_mut(&slot) {
                s.failed = Some(e);
            }
        }
        core_reply(&e)
    }

    /// LIVE-6, LIVE-2: `Err` with the reply when the region is poisoned or the worker is gone.
    fn check(&mut self, slot: u32) -> Result<(), Reply> {
        let poison = self.region.poison_code();
        if poison != 0 {
            return Err(error_reply(
                ErrorCode::Poisoned,
                format!("region poisoned with {}", poison_name(poison)),
            ));
        }
        let p = self.region.participant(slot).map_err(|e| core_reply(&e))?;
        match peer_status(&p) {
            Ok(PeerStatus::Active | PeerStatus::Starting(_)) => Ok(()),
            Ok(status) => {
                // LIVE-3: DEAD (a compare-and-swap from what was seen), then the caller fails
                // what is outstanding with PEER_DIED after delivering what was published.
                if status == PeerStatus::Died {
                    let _ = p.mark_dead(ParticipantState::Active);
                }
                Err(error_reply(
                    ErrorCode::PeerDied,
                    format!("worker {slot}: {status:?}"),
                ))
            }
            Err(e) => Err(self.violation(slot, e)),
        }
    }

    /// Waits until `ready` (checked after every park) or `timeout`, checking the worker.
    fn wait(
        &mut self,
        slot: u32,
        timeout: Duration,
        mut ready: impl FnMut(&mut Self) -> Option<Reply>,
    ) -> Reply {
        let start = Instant::now();
        let bell = self.doorbell(0);
        loop {
            if let Some(r) = ready(self) {
                return r;
            }
            if let Err(r) = self.check(slot) {
                // LIVE-3: what the worker published before it died is still delivered.
                if let Some(done) = ready(self) {
                    return done;
                }
                return r;
            }
            if start.elapsed() >= timeout {
                return error_reply(ErrorCode::TimedOut, "the host's wait ran out");
            }
            let tail = self
                .slots
                .get(&slot)
                .map_or(0, |s| s.responses.ring().load_tail());
            if let Some(b) = bell {
                let slots = &self.slots;
                b.park(&Futex, PARK_NS, || {
                    slots
                        .get(&slot)
                        .is_some_and(|s| s.responses.ring().load_tail() != tail)
                });
            }
        }
    }

    /// Polls the response ring once: `Some(event)` or `None` when nothing is complete.
    // s, p, m, r, b: slot, polled, message, response, bytes; one decision table, kept whole.
    #[allow(clippy::many_single_char_names, clippy::too_many_lines)]
    fn poll(&mut self, slot: u32) -> Result<Option<Polled>, Reply> {
        let Some(s) = self.slots.get_mut(&slot) else {
            return Err(error_reply(ErrorCode::InvalidArgument, "slot not reserved"));
        };
        if let Some(e) = s.failed {
            return Err(core_reply(&e));
        }
        let have_table = s.table.is_some();
        let outstanding = &s.outstanding;
        let abandoned = &mut s.abandoned;
        let polled = s.reassembler.poll(&mut s.responses, |head| match head {
            MessageHead::Response(r) if outstanding.contains(&r.request_id) => Ok(Accept::Deliver),
            // CALL-4: a late response to an abandoned call is discarded.
            MessageHead::Response(r) if abandoned.remove(&r.request_id) => Ok(Accept::Drop),
            MessageHead::Response(r) => Err(Error::value(
                ErrorCode::UnknownRequest,
                "response.request_id",
                r.request_id,
                0,
            )),
            // MBX-5: one HELLO per epoch.
            MessageHead::Hello(_) if have_table => {
                Err(Error::new(ErrorCode::BadRecord, "second HELLO"))
            }
            MessageHead::Hello(_) => Ok(Accept::Deliver),
            _ => Err(Error::value(
                ErrorCode::UnknownRecord,
                "record.type",
                u64::from(head.rtype()),
                0,
            )),
        });
        let released = match &polled {
            Ok(p) => p.released,
            Err(_) => false,
        };
        let event = match polled {
            Err(e) => return Err(self.violation(slot, e)),
            Ok(p) => match p.incoming {
                None => None,
                Some(Incoming::Message(m)) => {
                    let bytes = m.payload.into_vec();
                    match (m.head, bytes) {
                        (MessageHead::Hello(_), Some(b)) => Some(Polled::Hello(b)),
                        (MessageHead::Response(r), Some(b)) => Some(Polled::Response(
                            r.request_id,
                            Answer {
                                status: r.status,
                                content_type: r.content_type,
                                bytes: b,
                            },
                        )),
                        (MessageHead::Response(r), None) => Some(Polled::Response(
                            r.request_id,
                            Answer {
                                status: ErrorCode::PayloadTooLarge as u32,
                                content_type: 1,
                                bytes: b"response payload could not be held".to_vec(),
                            },
                        )),
                        _ => None,
                    }
                }
                Some(Incoming::ChannelOpen(_)) => Some(Polled::ChannelOpen),
                Some(Incoming::Shutdown | Incoming::End) => {
                    return Err(self.violation(
                        slot,
                        Error::new(
                            ErrorCode::UnknownRecord,
                            "control record on a response ring",
                        ),
                    ))
                }
            },
        };
        // In-place payloads were released by copying them out: publish that head too.
        let published = self
            .slots
            .get_mut(&slot)
            .is_some_and(|s| s.responses.publish_head());
        if released || published {
            if let Some(b) = self.doorbell(slot) {
                b.ring(&Futex); // WAIT-6
            }
        }
        if let Some(Polled::Hello(bytes)) = &event {
            match FunctionTable::decode(bytes) {
                Ok(t) => {
                    let mut fs: Vec<_> = t
                        .functions()
                        .iter()
                        .map(|f| (f.id, f.name.clone()))
                        .collect();
                    fs.sort_unstable();
                    if let Some(s) = self.slots.get_mut(&slot) {
                        s.names = fs.into_iter().map(|(_, n)| n).collect();
                        s.table = Some(t);
                    }
                }
                Err(e) => return Err(self.violation(slot, e)),
            }
        }
        if let Some(Polled::Response(id, _)) = &event {
            if let Some(s) = self.slots.get_mut(&slot) {
                s.outstanding.remove(id);
            }
        }
        Ok(event)
    }

    /// The doorbell words of the host and of `slot` (WAIT-2, WAIT-3: who announced sleep).
    fn bells(&self, slot: u32) -> Reply {
        let words = |i: u32| -> Option<(u32, u32)> {
            let (seq, sleepers) = self.region.participant(i).ok()?.bell_words().ok()?;
            Some((
                seq.load(Ordering::Acquire),
                sleepers.load(Ordering::Acquire),
            ))
        };
        match (words(0), words(slot)) {
            (Some((hs, hn)), Some((ws, wn))) => {
                json!({"status": "ok", "host_seq": hs, "host_sleepers": hn, "worker_seq": ws, "worker_sleepers": wn})
            }
            _ => error_reply(ErrorCode::InvalidArgument, "slot"),
        }
    }

    /// Reads every complete response now in the ring into `completed`.
    fn drain(&mut self, slot: u32) -> Result<(), Reply> {
        for _ in 0..4096 {
            match self.poll(slot)? {
                Some(Polled::Response(id, ans)) => {
                    if let Some(s) = self.slots.get_mut(&slot) {
                        s.completed.insert(id, ans);
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        Ok(())
    }

    fn wait_hello(&mut self, slot: u32, timeout: Duration, attach_timeout: Duration) -> Reply {
        let start = Instant::now();
        self.wait(slot, timeout, |h| {
            // LIVE-2: an entry still RESERVED or ATTACHING after the attach timeout is a worker
            // that never came.
            if start.elapsed() > attach_timeout {
                let st = h.state(slot);
                if matches!(
                    st.get("state").and_then(Value::as_str),
                    Some("RESERVED" | "ATTACHING")
                ) {
                    if let Ok(p) = h.region.participant(slot) {
                        if let Ok(seen) = p.state() {
                            let _ = p.mark_dead(seen);
                        }
                    }
                    return Some(error_reply(
                        ErrorCode::PeerDied,
                        "the worker did not attach within the attach timeout",
                    ));
                }
            }
            if let Some(s) = h.slots.get(&slot) {
                if s.table.is_some() {
                    return Some(json!({"status": "ok", "functions": s.names}));
                }
            }
            match h.poll(slot) {
                Err(r) => Some(r),
                Ok(Some(Polled::Hello(_))) => h
                    .slots
                    .get(&slot)
                    .map(|s| json!({"status": "ok", "functions": s.names})),
                // MBX-2: HELLO comes first.
                Ok(Some(_)) => Some(h.violation(
                    slot,
                    Error::new(ErrorCode::BadRecord, "a message before HELLO"),
                )),
                Ok(None) => None,
            }
        })
    }

    /// Writes one message, waiting for room; `Err` with the reply when that fails.
    fn send(
        &mut self,
        slot: u32,
        records: Vec<(u16, u16, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<(), Reply> {
        let start = Instant::now();
        for (t, f, b) in records {
            loop {
                let s = self
                    .slots
                    .get_mut(&slot)
                    .ok_or_else(|| error_reply(ErrorCode::InvalidArgument, "slot not reserved"))?;
                match s.requests.append(b.len() as u32, t, f, &b, false) {
                    Ok(true) => break,
                    Ok(false) => {
                        let _ = s.requests.publish();
                        if let Some(bell) = self.doorbell(slot) {
                            bell.ring(&Futex);
                        }
                        // The worker may be waiting for response space: read responses too.
                        self.drain(slot)?;
                        self.check(slot)?;
                        if start.elapsed() > timeout {
                            let s = self.slots.get(&slot).ok_or_else(|| {
                                error_reply(ErrorCode::InvalidArgument, "slot not reserved")
                            })?;
                            let (rt, rh) = (s.requests.tail, s.requests.head_seen);
                            let (pt, ph) = (s.responses.ring().load_tail(), s.responses.head());
                            return Err(error_reply(
                                ErrorCode::TimedOut,
                                format!("no room in the request ring (request tail {rt}, head {rh}; response tail {pt}, head {ph})"),
                            ));
                        }
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    Err(e) => return Err(self.violation(slot, e)),
                }
            }
        }
        let s = self
            .slots
            .get_mut(&slot)
            .ok_or_else(|| error_reply(ErrorCode::InvalidArgument, "slot not reserved"))?;
        s.requests.publish().map_err(|e| core_reply(&e))?;
        if let Some(bell) = self.doorbell(slot) {
            bell.ring(&Futex); // WAIT-5
        }
        Ok(())
    }

    /// Starts a call: FN-2 resolution, CALL-10, CALL-1/CALL-2 id, the request written.
    fn start_call(
        &mut self,
        slot: u32,
        function: &str,
        content_type: u32,
        deadline_ns: u64,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u64, Reply> {
        self.start_call_as(
            slot,
            function,
            None,
            content_type,
            deadline_ns,
            body,
            timeout,
        )
    }

    /// [`Self::start_call`], with `function_id` given directly (skipping FN-2 resolution, so
    /// that a worker can be sent an id its HELLO does not have).
    #[allow(clippy::too_many_arguments)]
    fn start_call_as(
        &mut self,
        slot: u32,
        function: &str,
        function_id: Option<u32>,
        content_type: u32,
        deadline_ns: u64,
        body: &[u8],
        timeout: Duration,
    ) -> Result<u64, Reply> {
        let max = self.region.geometry().max_message_len();
        let inflight = u64::from(self.region.geometry().inflight_max());
        let s = self
            .slots
            .get_mut(&slot)
            .ok_or_else(|| error_reply(ErrorCode::InvalidArgument, "slot not reserved"))?;
        if let Some(e) = s.failed {
            return Err(core_reply(&e));
        }
        let table = s
            .table
            .as_ref()
            .ok_or_else(|| error_reply(ErrorCode::InvalidArgument, "no HELLO yet (MBX-2)"))?;
        let function_id = match function_id {
            Some(id) => id,
            None => table.lookup(function).map_err(|e| core_reply(&e))?,
        };
        if body.len() as u64 > max {
            return Err(error_reply(
                ErrorCode::PayloadTooLarge,
                format!("{} bytes > max_message_len {max}", body.len()),
            ));
        }
        // CALL-1, CALL-2: strictly increasing, never two live ids on one cancel entry.
        let mut id = s.last_id + 1;
        while s
            .outstanding
            .iter()
            .chain(s.abandoned.iter())
            .any(|&o| o % inflight == id % inflight)
        {
            id += 1;
            if id > s.last_id + inflight {
                return Err(error_reply(
                    ErrorCode::WouldBlock,
                    "every cancel entry is in use",
                ));
            }
        }
        s.last_id = id;
        s.outstanding.insert(id);
        let head = RequestHead {
            request_id: id,
            function_id,
            content_type,
            deadline_ns,
            payload_len: body.len() as u64,
        }
        .encode();
        let records = s.requests.fragments(TYPE_REQUEST, &head, body);
        self.send(slot, records, timeout)?;
        Ok(id)
    }

    fn cancel_entry(&self, slot: u32, id: u64) -> Option<&'a std::sync::atomic::AtomicU64> {
        let entries = u64::from(self.region.geometry().inflight_max());
        let mbx = self.region.mailbox(slot.checked_sub(1)?).ok()?;
        mbx.cancel.atomic_u64(8 * (id % entries) as usize).ok()
    }

    #[allow(clippy::too_many_lines)] // the call and its waiting, in order
    fn call(&mut self, slot: u32, a: &Value, timeout: Duration) -> Reply {
        let function = a
            .get("function")
            .and_then(Value::as_str)
            .unwrap_or("echo")
            .to_owned();
        let body = match a.get("payload") {
            Some(p) => match payload_of(p) {
                Ok(b) => b,
                Err(e) => return error_reply(ErrorCode::InvalidArgument, e),
            },
            None => payload(arg_u64(a, "seed", 0), arg_u64(a, "len", 0) as usize),
        };
        let content_type = arg_u64(a, "content_type", 0) as u32;
        let now = knit::monotonic_ns();
        let deadline = a
            .get("deadline_ms")
            .and_then(Value::as_u64)
            .map_or(0, |ms| now + ms * 1_000_000);
        // An absolute deadline written as is (for example 1: long past), not enforced here.
        let wire_deadline = a
            .get("deadline_ns")
            .and_then(Value::as_u64)
            .unwrap_or(deadline);
        let function_id = a
            .get("function_id")
            .and_then(Value::as_u64)
            .and_then(|f| u32::try_from(f).ok());
        let cancel_at = a
            .get("cancel_after_ms")
            .and_then(Value::as_u64)
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let id = match self.start_call_as(
            slot,
            &function,
            function_id,
            content_type,
            wire_deadline,
            &body,
            timeout,
        ) {
            Ok(id) => id,
            Err(r) => return r,
        };
        self.wait(slot, timeout, |h| {
            if cancel_at.is_some_and(|t| Instant::now() >= t) {
                // CANCEL-1: the entry holds the id, the worker's bell rings, the call fails at once.
                if let Some(e) = h.cancel_entry(slot, id) {
                    e.store(id, Ordering::Release);
                }
                if let Some(b) = h.doorbell(slot) {
                    b.ring(&Futex);
                }
                h.abandon(slot, id);
                return Some(error_reply(ErrorCode::Cancelled, "cancelled by the host"));
            }
            if deadline != 0 && knit::monotonic_ns() >= deadline {
                // CALL-8: fail, abandon, set the cancel entry.
                if let Some(e) = h.cancel_entry(slot, id) {
                    e.store(id, Ordering::Release);
                }
                h.abandon(slot, id);
                return Some(error_reply(
                    ErrorCode::DeadlineExceeded,
                    "deadline passed at the host",
                ));
            }
            if let Some(ans) = h.slots.get_mut(&slot).and_then(|s| s.completed.remove(&id)) {
                return Some(answer_reply(&ans));
            }
            match h.poll(slot) {
                Err(r) => Some(r),
                Ok(Some(Polled::Response(rid, ans))) if rid == id => Some(answer_reply(&ans)),
                Ok(Some(Polled::Response(..) | Polled::ChannelOpen | Polled::Hello(_)) | None) => {
                    None
                }
            }
        })
    }

    /// Double-fetch attack (SEC-2, RING-12, RING-15): `count` echo calls; while each request
    /// waits for its answer, another thread keeps rewriting the published record's `len`
    /// between its true value and 8 bytes less. A consumer that loads every field once either
    /// answers with the exact payload or reports a violation; one that reads `len` twice can
    /// be made to answer with other bytes. Stops at the first answer that is not an exact echo.
    fn flip_calls(&mut self, slot: u32, a: &Value, timeout: Duration) -> Reply {
        let count = arg_u64(a, "count", 100);
        let len = arg_u64(a, "len", 64) as usize;
        let mut answered = 0u64;
        for i in 0..count {
            let body = payload(i, len);
            let Some(s) = self.slots.get(&slot) else {
                return error_reply(ErrorCode::InvalidArgument, "slot not reserved");
            };
            let cap = s.requests.cap();
            let pos = s.requests.tail;
            let Some(Ok(mbx)) = slot.checked_sub(1).map(|m| self.region.mailbox(m)) else {
                return error_reply(ErrorCode::InvalidArgument, "slot");
            };
            let data = mbx.request.data;
            let id = match self.start_call(slot, "echo", 0, 0, &body, timeout) {
                Ok(id) => id,
                Err(r) => return r,
            };
            // Only a record that did not wrap is flipped (its header is where `pos` says).
            let off = (pos % cap) as usize;
            let true_len = (40 + len) as u32;
            // The other value: by default one far past the tail and the data area, which a
            // consumer that loads `len` once refuses (RING-9) and one that reads it again after
            // validating may use to read out of bounds.
            let other = a
                .get("flip_to")
                .and_then(Value::as_u64)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0x7FFF_FFF8);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let reply = std::thread::scope(|sc| {
                sc.spawn(|| {
                    let mut n = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        let v = if n % 2 == 0 { other } else { true_len };
                        let _ = data.write(off, &v.to_le_bytes());
                        n = n.wrapping_add(1);
                        std::hint::spin_loop();
                    }
                    let _ = data.write(off, &true_len.to_le_bytes());
                });
                let r = self.wait(slot, timeout, |h| match h.poll(slot) {
                    Err(r) => Some(r),
                    Ok(Some(Polled::Response(rid, ans))) if rid == id => Some(answer_reply(&ans)),
                    Ok(_) => None,
                });
                stop.store(true, Ordering::Relaxed);
                r
            });
            if reply.get("status").and_then(Value::as_str) != Some("ok") {
                let mut r = reply;
                r["answered"] = json!(answered);
                return r;
            }
            if reply.get("digest").and_then(Value::as_str) != Some(digest(&body).as_str()) {
                return json!({"status": "ok", "exact": false, "answered": answered, "call": i, "observed": reply});
            }
            answered += 1;
        }
        json!({"status": "ok", "exact": true, "answered": answered})
    }

    /// A call with a channel from the host to the worker (spec/06): the host opens a slot
    /// (CHAN-1, CHAN-11), announces it before the call's REQUEST (CHAN-2, tag = the call's id),
    /// writes `count` DATA messages of `payload(seed + i, len_i)` (README §3.6 lengths)
    /// waiting for space (CHAN-6), then END (CHAN-4), and reads the answer of the worker's
    /// `drain` function: the batch digest of what it received. `abort_after = n` aborts the
    /// channel with `abort_code` after message `n` instead (CHAN-5); `garbage_state` writes 9
    /// into the slot's `state` before announcing it (CHAN-7). `verified` says whether the
    /// digest is the one of the messages sent.
    #[allow(clippy::too_many_lines)] // one call with its channel, in order
    fn channel_call(&mut self, slot: u32, a: &Value, timeout: Duration) -> Reply {
        use knit_core::channel::{self, ChannelEnd, EndRole};
        let count = arg_u64(a, "count", 10);
        let seed = arg_u64(a, "seed", 0);
        let (min_len, max_len) = (arg_u64(a, "min_len", 0), arg_u64(a, "max_len", 64));
        let abort_after = a.get("abort_after").and_then(Value::as_u64);
        let pause = Duration::from_millis(arg_u64(a, "pause_ms", 0));
        let Some(id) = self.next_id(slot) else {
            return error_reply(ErrorCode::WouldBlock, "every cancel entry is in use");
        };
        let opened = match channel::open(&self.region, 0, slot, EndRole::Writer, id) {
            Ok(Some(o)) => o,
            Ok(None) => return error_reply(ErrorCode::WouldBlock, "no FREE channel slot"),
            Err(e) => return core_reply(&e),
        };
        let mut writer = match channel::attach(&self.region, opened.announcement(), 0, slot) {
            Ok(ChannelEnd::Writer(w)) => w,
            Ok(ChannelEnd::Reader(_)) => {
                return error_reply(ErrorCode::InvalidArgument, "opened as reader")
            }
            Err(e) => return core_reply(&e),
        };
        if a.get("garbage_state").and_then(Value::as_bool) == Some(true) {
            if let Ok(s) = self.region.channel_slot(opened.index) {
                let _ = s.ctrl.write_u32(0, 9);
            }
        }
        let announcement = opened.announcement().encode().to_vec();
        let open_record = (
            knit_core::records::TYPE_CHANNEL_OPEN,
            FLAGS_SINGLE,
            announcement,
        );
        // `announce_twice`: the same announcement again, a duplicate the worker refuses (CHAN-14).
        let mut records = vec![open_record.clone()];
        if a.get("announce_twice").and_then(Value::as_bool) == Some(true) {
            records.push(open_record);
        }
        if let Err(r) = self.send(slot, records, timeout) {
            return r;
        }
        match self.start_call(slot, "drain", 0, 0, &[], timeout) {
            Ok(got) if got == id => {}
            Ok(got) => {
                return error_reply(
                    ErrorCode::InvalidArgument,
                    format!("call id {got} is not the channel's tag {id}"),
                )
            }
            Err(r) => return r,
        }
        let bell = self.doorbell(slot);
        let start = Instant::now();
        let mut expected = BatchDigest::default();
        let mut outcome = None;
        'messages: for i in 0..count {
            if abort_after == Some(i) {
                let _ = writer.abort(u32::try_from(arg_u64(a, "abort_code", 4000)).unwrap_or(4000));
                if let Some(b) = bell {
                    b.ring(&Futex);
                }
                break;
            }
            let len = crate::payload::batch_len(seed, i, min_len, max_len) as usize;
            let body = payload(seed.wrapping_add(i), len);
            expected.push(i, fnv1a64(&body));
            let mut out = match writer.start(0, &body) {
                Ok(o) => o,
                Err(e) => {
                    outcome = Some(core_reply(&e));
                    break;
                }
            };
            loop {
                match writer.write(&mut out) {
                    Ok(sent) => {
                        if sent.published {
                            if let Some(b) = bell {
                                b.ring(&Futex);
                            }
                        }
                        if sent.done {
                            break;
                        }
                    }
                    Err(e) => {
                        outcome = Some(core_reply(&e));
                        break 'messages;
                    }
                }
                if let Err(r) = self.check(slot) {
                    outcome = Some(r);
                    break 'messages;
                }
                if start.elapsed() > timeout {
                    outcome = Some(error_reply(ErrorCode::TimedOut, "the channel stayed full"));
                    break 'messages;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        if outcome.is_none() && abort_after.map_or(true, |n| n >= count) {
            loop {
                match writer.close() {
                    Ok(sent) => {
                        if sent.published {
                            if let Some(b) = bell {
                                b.ring(&Futex);
                            }
                        }
                        if sent.done {
                            break;
                        }
                    }
                    Err(e) => {
                        outcome = Some(core_reply(&e));
                        break;
                    }
                }
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        drop(writer);
        let mut reply = self.wait(slot, timeout, |h| {
            if let Some(ans) = h.slots.get_mut(&slot).and_then(|s| s.completed.remove(&id)) {
                return Some(answer_reply_with_bytes(&ans));
            }
            match h.poll(slot) {
                Err(r) => Some(r),
                Ok(Some(Polled::Response(rid, ans))) if rid == id => {
                    Some(answer_reply_with_bytes(&ans))
                }
                Ok(_) => None,
            }
        });
        let want = expected.finish();
        reply["verified"] = json!(reply.get("text").and_then(Value::as_str) == Some(want.as_str()));
        if let Some(o) = outcome {
            reply["sender"] = o;
        }
        reply
    }

    /// The id the next call would get (CALL-1, CALL-2), without taking it.
    fn next_id(&self, slot: u32) -> Option<u64> {
        let inflight = u64::from(self.region.geometry().inflight_max());
        let s = self.slots.get(&slot)?;
        (s.last_id + 1..=s.last_id + inflight).find(|id| {
            !s.outstanding
                .iter()
                .chain(s.abandoned.iter())
                .any(|&o| o % inflight == id % inflight)
        })
    }

    fn abandon(&mut self, slot: u32, id: u64) {
        if let Some(s) = self.slots.get_mut(&slot) {
            if s.outstanding.remove(&id) {
                s.abandoned.insert(id);
            }
        }
    }

    /// README §3.6 `call_batch`, with every result checked by its digest by the caller.
    fn call_batch(&mut self, slot: u32, a: &Value, timeout: Duration) -> Reply {
        let function = a
            .get("function")
            .and_then(Value::as_str)
            .unwrap_or("echo")
            .to_owned();
        let count = arg_u64(a, "count", 1);
        let seed = arg_u64(a, "seed", 0);
        let (min_len, max_len) = (arg_u64(a, "min_len", 0), arg_u64(a, "max_len", 64));
        let window = arg_u64(a, "window", 1).max(1);
        let mut results: BTreeMap<u64, u64> = BTreeMap::new();
        let mut ids: BTreeMap<u64, u64> = BTreeMap::new();
        let mut next = 0u64;
        let start = Instant::now();
        while (results.len() as u64) < count {
            while next < count && (ids.len() as u64) < window {
                let len = crate::payload::batch_len(seed, next, min_len, max_len) as usize;
                let body = payload(seed.wrapping_add(next), len);
                match self.start_call(slot, &function, 0, 0, &body, timeout) {
                    Ok(id) => {
                        ids.insert(id, next);
                    }
                    Err(r) => return r,
                }
                next += 1;
            }
            let r = self.wait(slot, timeout, |h| {
                let stashed = h.slots.get_mut(&slot).and_then(|s| s.completed.pop_first());
                let polled = match stashed {
                    Some(x) => Some(x),
                    None => match h.poll(slot) {
                        Err(r) => return Some(r),
                        Ok(Some(Polled::Response(rid, ans))) => Some((rid, ans)),
                        Ok(_) => None,
                    },
                };
                polled.map(|(rid, ans)| json!({"status": "ok", "id": rid, "digest": fnv1a64(&ans.bytes), "st": ans.status}))
            });
            if r.get("status").and_then(Value::as_str) != Some("ok") {
                return r;
            }
            let rid = r.get("id").and_then(Value::as_u64).unwrap_or(0);
            let Some(i) = ids.remove(&rid) else {
                return error_reply(
                    ErrorCode::UnknownRequest,
                    format!("response to {rid}, which is not outstanding"),
                );
            };
            if r.get("st").and_then(Value::as_u64) != Some(0) {
                return status_reply(
                    r.get("st").and_then(Value::as_u64).unwrap_or(0) as u32,
                    format!("call {i} failed"),
                );
            }
            if results
                .insert(i, r.get("digest").and_then(Value::as_u64).unwrap_or(0))
                .is_some()
            {
                return error_reply(
                    ErrorCode::UnknownRequest,
                    format!("call {i} answered twice"),
                );
            }
        }
        let mut d = BatchDigest::default();
        for (i, r) in &results {
            d.push(*i, *r);
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        json!({"status": "ok", "count": count, "digest": d.finish(), "calls_per_s": (f64::from(u32::try_from(count).unwrap_or(u32::MAX)) / secs).round()})
    }

    fn shutdown(&mut self, slot: u32, timeout: Duration) -> Reply {
        if let Err(r) = self.send(
            slot,
            vec![(TYPE_SHUTDOWN, FLAGS_SINGLE, Vec::new())],
            timeout,
        ) {
            return r;
        }
        self.wait_state(slot, &json!({"state": ["DETACHED", "DEAD"]}), timeout)
    }

    fn state(&self, slot: u32) -> Reply {
        match self.region.participant(slot).and_then(|p| p.snapshot()) {
            Ok(s) => json!({"status": "ok", "state": state_name(s.state), "epoch": s.epoch}),
            Err(e) => core_reply(&e),
        }
    }

    /// Waits (without judging liveness) until the entry is in one of `state` (a name or a list).
    fn wait_state(&mut self, slot: u32, a: &Value, timeout: Duration) -> Reply {
        let want: Vec<String> = match a.get("state") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(v)) => v
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => vec!["DETACHED".into()],
        };
        let start = Instant::now();
        loop {
            let r = self.state(slot);
            if r.get("state")
                .and_then(Value::as_str)
                .is_some_and(|s| want.iter().any(|w| w == s))
            {
                return r;
            }
            if r.get("status").and_then(Value::as_str) != Some("ok") || start.elapsed() >= timeout {
                return r;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// LIVE-2/LIVE-3 as the host decides: waits until the worker is not alive, stores DEAD.
    fn mark_dead(&mut self, slot: u32) -> Reply {
        let start = Instant::now();
        loop {
            match self.check(slot) {
                Err(r) if r.get("class").and_then(Value::as_str) == Some("PEER_DIED") => {
                    let latency = start.elapsed().as_millis() as u64;
                    let mut r = self.state(slot);
                    r["latency_ms"] = json!(latency);
                    return r;
                }
                Err(r) => return r,
                Ok(()) if start.elapsed() > Duration::from_secs(5) => {
                    return error_reply(ErrorCode::TimedOut, "the worker still looks alive");
                }
                Ok(()) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Adversary: writes records (source form) into a ring of `slot` at the host's private
    /// tail, publishing unless `publish = false`.
    fn write(&mut self, slot: u32, a: &Value) -> Reply {
        let Some(s) = self.slots.get_mut(&slot) else {
            return error_reply(ErrorCode::InvalidArgument, "slot not reserved");
        };
        let list = a
            .get("records")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Err(e) = lay_records_raw(&mut s.requests, &list) {
            return error_reply(ErrorCode::InvalidArgument, e);
        }
        if a.get("publish").and_then(Value::as_bool) != Some(false) {
            let _ = s.requests.publish();
        }
        if let Some(b) = self.doorbell(slot) {
            b.ring(&Futex);
        }
        json!({"status": "ok"})
    }

    /// Adversary: stores `tail` = `value`, or the private tail plus `delta`.
    fn store_tail(&mut self, slot: u32, a: &Value) -> Reply {
        let Some(s) = self.slots.get_mut(&slot) else {
            return error_reply(ErrorCode::InvalidArgument, "slot not reserved");
        };
        let tail = match (a.get("value"), a.get("delta").and_then(Value::as_i64)) {
            (Some(v), _) => crate::images::int_value(v, 8).unwrap_or(0),
            (None, Some(d)) => s.requests.tail.wrapping_add_signed(d),
            (None, None) => s.requests.tail,
        };
        let r = s.requests.store_tail(tail);
        if let Some(b) = self.doorbell(slot) {
            b.ring(&Futex);
        }
        match r {
            Ok(()) => json!({"status": "ok", "tail": tail.to_string()}),
            Err(e) => core_reply(&e),
        }
    }

    /// Adversary: writes bytes at a region offset, or at a participant entry field.
    fn poke(&mut self, a: &Value) -> Reply {
        let mut offset = arg_u64(a, "offset", 0) as usize;
        if let Some(i) = a.get("participant").and_then(Value::as_u64) {
            let range = u32::try_from(i)
                .ok()
                .and_then(|i| self.region.geometry().participant_range(i));
            let Some((base, _)) = range else {
                return error_reply(ErrorCode::InvalidArgument, "participant index");
            };
            offset += base;
        }
        let bytes = match crate::images::patch_bytes(a) {
            Ok(b) => b,
            Err(e) => return error_reply(ErrorCode::InvalidArgument, e),
        };
        match self.region.memory().write(offset, &bytes) {
            Ok(()) => {
                for i in 0..=self.region.geometry().worker_slots() {
                    if let Some(b) = self.doorbell(i) {
                        b.ring(&Futex);
                    }
                }
                json!({"status": "ok"})
            }
            Err(e) => core_reply(&e),
        }
    }
}

enum Polled {
    Hello(Vec<u8>),
    Response(u64, Answer),
    ChannelOpen,
}

/// [`answer_reply`] plus the result as `text` when it is short UTF-8 (the `drain` digest).
fn answer_reply_with_bytes(a: &Answer) -> Reply {
    let mut r = answer_reply(a);
    if a.status == 0 && a.bytes.len() <= 64 {
        if let Ok(t) = std::str::from_utf8(&a.bytes) {
            r["text"] = json!(t);
        }
    }
    r
}

fn answer_reply(a: &Answer) -> Reply {
    if a.status == 0 {
        json!({"status": "ok", "content_type": a.content_type, "len": a.bytes.len(), "digest": digest(&a.bytes)})
    } else {
        status_reply(a.status, String::from_utf8_lossy(&a.bytes))
    }
}

/// A participant state's name.
pub fn state_name(s: ParticipantState) -> &'static str {
    match s {
        ParticipantState::Empty => "EMPTY",
        ParticipantState::Reserved => "RESERVED",
        ParticipantState::Attaching => "ATTACHING",
        ParticipantState::Active => "ACTIVE",
        ParticipantState::Detached => "DETACHED",
        ParticipantState::Dead => "DEAD",
    }
}

/// `poison_code` as a registry name, `"NONE"` for 0.
pub fn poison_name(code: u32) -> String {
    if code == 0 {
        return "NONE".into();
    }
    ErrorCode::from_u32(code).map_or_else(|| code.to_string(), |c| c.name().to_owned())
}
