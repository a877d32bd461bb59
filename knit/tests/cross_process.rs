//! Cross-process smoke test: a host process and a worker process (this test binary run again)
//! pass thousands of records of random sizes through a real mailbox of a named region, both
//! ways, parking on their doorbells with the shared futex, and check every byte end to end.
//!
//! The host formats the region (INIT-1), reserves worker entry 1 (PART-4) and starts the worker
//! with `KNIT_REGION` / `KNIT_SLOT` (MAP-5). The worker attaches (INIT-2, MAP-6), claims and
//! activates its entry (PART-2), checks every request body byte for byte against the
//! deterministic generator, and answers each with (sequence, FNV-1a of the body, length). The
//! host checks each answer, the worker's running checksum, its clean detach (PART-5), the
//! object's mode 0600 (MAP-1) and, after unlinking, that the name is gone (MAP-3).

use std::cell::Cell;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU32;

use knit::{
    attach_region, monotonic_ns, realtime_ns, unlink, Futex, Mapping, ProcessIdentity, RegionDir,
    RegionName, WaitOutcome, DEFAULT_ATTACH_TIMEOUT,
};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::ParticipantState;
use knit_core::participant::Identity;
use knit_core::records::{FLAGS_SINGLE, TYPE_REQUEST, TYPE_RESPONSE};
use knit_core::region::Region;
use knit_core::ring::{Consumer, Producer};
use knit_core::wait::{wait_until, Parker, WaitPolicy};
use knit_core::{Error as CoreError, ErrorCode};

/// Records sent each way.
const RECORDS: u64 = 4000;
/// Seed of the payload generator, passed to the worker.
const SEED: u64 = 0x6b6e_6974_2d72_696e;
/// Environment variables of the worker (MAP-5) and of this test.
const ENV_REGION: &str = "KNIT_REGION";
const ENV_SLOT: &str = "KNIT_SLOT";
const ENV_SEED: &str = "KNIT_TEST_SEED";
const ENV_RECORDS: &str = "KNIT_TEST_RECORDS";
/// The worker's entry and mailbox.
const SLOT: u32 = 1;
/// Hang guard for the whole exchange: a broken wake-up fails the test instead of hanging it.
/// It bounds nothing that is measured.
const HANG_GUARD_NS: u64 = 120_000_000_000;
/// Reply body: sequence (8), FNV-1a of the request body (8), request body length (8).
const REPLY_LEN: usize = 24;

/// Small rings so that both directions fill, wrap (PAD records) and park often.
fn params() -> Params {
    Params {
        worker_slots: 1,
        channel_slots: 0,
        inflight_max: 16,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 0,
        max_message_len: 1 << 20,
    }
}

/// The futex parker, counting the parks that a `FUTEX_WAKE` ended. A private (per-process)
/// futex would never be woken from the other process: every park would end by timeout.
#[derive(Default)]
struct CountingFutex {
    futex: Futex,
    woken: Cell<u64>,
}

impl Parker for CountingFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout_ns: u64) {
        if self.futex.wait_outcome(word, expected, timeout_ns) == WaitOutcome::Woken {
            self.woken.set(self.woken.get() + 1);
        }
    }

    fn wake_all(&self, word: &AtomicU32) {
        self.futex.wake_all(word);
    }
}

/// Park at once: this test is about the futex path, not about spinning (WAIT-1 allows 0).
fn policy() -> WaitPolicy {
    WaitPolicy {
        spin_iterations: 0,
        ..WaitPolicy::default()
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Request body `seq`: the sequence number, then pseudo-random bytes; 8 to `max_body` bytes.
fn body_for(seed: u64, seq: u64, max_body: usize) -> Vec<u8> {
    let mut state = seed ^ seq.wrapping_mul(0xd6e8_feb8_6659_fd93);
    let span = (max_body - 8 + 1) as u64;
    let len = 8 + (splitmix64(&mut state) % span) as usize;
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(&seq.to_le_bytes());
    while body.len() < len {
        let word = splitmix64(&mut state).to_le_bytes();
        let take = word.len().min(len - body.len());
        body.extend_from_slice(&word[..take]);
    }
    body
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn reply_for(seq: u64, body: &[u8]) -> [u8; REPLY_LEN] {
    let mut reply = [0u8; REPLY_LEN];
    reply[..8].copy_from_slice(&seq.to_le_bytes());
    reply[8..16].copy_from_slice(&fnv1a(FNV_OFFSET, body).to_le_bytes());
    reply[16..].copy_from_slice(&(body.len() as u64).to_le_bytes());
    reply
}

/// A wait's liveness check (LIVE-2, LIVE-4): the peer process is alive and the hang guard has
/// not run out.
fn liveness(peer: ProcessIdentity, deadline: u64) -> impl FnMut() -> Result<(), CoreError> {
    move || {
        if !peer.is_alive() {
            return Err(CoreError::new(ErrorCode::PeerDied, "peer process"));
        }
        if monotonic_ns() > deadline {
            return Err(CoreError::new(
                ErrorCode::TimedOut,
                "cross-process exchange hang guard",
            ));
        }
        Ok(())
    }
}

/// What the host side counted.
struct HostTally {
    checksum: u64,
    wakes: u64,
    woken: u64,
}

/// The host's half: sends every request, checks every reply.
fn run_host(region: &Region<'_>, worker: ProcessIdentity) -> Result<HostTally, CoreError> {
    let futex = CountingFutex::default();
    let mailbox = region.mailbox(SLOT - 1)?;
    let mut requests = Producer::new(mailbox.request);
    let mut replies = Consumer::new(mailbox.response);
    let max_body = mailbox.request.max_body_len();
    let host_bell = region.participant(0)?.doorbell()?;
    let worker_bell = region.participant(SLOT)?.doorbell()?;
    let deadline = monotonic_ns().saturating_add(HANG_GUARD_NS);
    let (mut sent, mut received, mut wakes) = (0u64, 0u64, 0u64);
    let mut checksum = FNV_OFFSET;
    let mut pending: Option<Vec<u8>> = None;
    while received < RECORDS {
        let mut progress = false;
        while sent < RECORDS {
            let body = pending
                .take()
                .unwrap_or_else(|| body_for(SEED, sent, max_body));
            if !requests.try_write(TYPE_REQUEST, FLAGS_SINGLE, &body)? {
                pending = Some(body);
                break;
            }
            checksum = fnv1a(checksum, &body);
            sent += 1;
            progress = true;
        }
        // RING-3 then WAIT-5: publish, then ring the consumer's doorbell.
        if requests.publish() && worker_bell.ring(&futex) {
            wakes += 1;
        }
        while let Some(record) = replies.peek()? {
            // RING-15: copy the peer-written body before deciding anything from it.
            let mut reply = [0u8; REPLY_LEN];
            let header = record.header();
            let body = record.body();
            assert_eq!(header.rtype, TYPE_RESPONSE);
            assert_eq!(body.len(), REPLY_LEN, "reply {received} length");
            reply.copy_from_slice(body);
            record.consume();
            let expected = body_for(SEED, received, max_body);
            assert_eq!(reply, reply_for(received, &expected), "reply {received}");
            received += 1;
            progress = true;
        }
        // WAIT-6: released space wakes a producer parked for it.
        if replies.publish_head() && worker_bell.ring(&futex) {
            wakes += 1;
        }
        if !progress {
            let free_before = requests.free_space()?;
            let want_space = sent < RECORDS;
            wait_until(
                &host_bell,
                &futex,
                &policy(),
                || {
                    !matches!(replies.peek(), Ok(None))
                        || (want_space && requests.free_space().map_or(true, |f| f > free_before))
                },
                liveness(worker, deadline),
            )?;
        }
    }
    Ok(HostTally {
        checksum,
        wakes,
        woken: futex.woken.get(),
    })
}

/// The worker's half: checks every request against the generator and answers it.
fn run_worker(
    region: &Region<'_>,
    slot: u32,
    seed: u64,
    records: u64,
) -> Result<(u64, u64, u64), CoreError> {
    let futex = CountingFutex::default();
    let me = region.participant(slot)?;
    let host = region.participant(0)?.snapshot()?;
    let host_id = host
        .identity
        .ok_or(CoreError::new(ErrorCode::BadParticipant, "host identity"))?;
    let host_identity = ProcessIdentity {
        pid: host_id.pid,
        start_time: host_id.start_time,
    };
    let mailbox = region.mailbox(slot - 1)?;
    let mut requests = Consumer::new(mailbox.request);
    let mut replies = Producer::new(mailbox.response);
    let max_body = mailbox.request.max_body_len();
    let my_bell = me.doorbell()?;
    let host_bell = region.participant(0)?.doorbell()?;
    let deadline = monotonic_ns().saturating_add(HANG_GUARD_NS);
    let (mut handled, mut wakes) = (0u64, 0u64);
    let mut checksum = FNV_OFFSET;
    let mut pending: Option<[u8; REPLY_LEN]> = None;
    while handled < records || pending.is_some() {
        let mut progress = false;
        if let Some(reply) = pending {
            if replies.try_write(TYPE_RESPONSE, FLAGS_SINGLE, &reply)? {
                pending = None;
                progress = true;
            }
        }
        while pending.is_none() {
            let Some(record) = requests.peek()? else {
                break;
            };
            // RING-15: a private copy of the body, then decisions.
            let body = record.body().to_vec();
            let rtype = record.header().rtype;
            record.consume();
            assert_eq!(rtype, TYPE_REQUEST);
            assert_eq!(body, body_for(seed, handled, max_body), "request {handled}");
            checksum = fnv1a(checksum, &body);
            let reply = reply_for(handled, &body);
            handled += 1;
            progress = true;
            if !replies.try_write(TYPE_RESPONSE, FLAGS_SINGLE, &reply)? {
                pending = Some(reply);
            }
        }
        if requests.publish_head() && host_bell.ring(&futex) {
            wakes += 1;
        }
        if replies.publish() && host_bell.ring(&futex) {
            wakes += 1;
        }
        if !progress {
            let free_before = replies.free_space()?;
            let blocked_on_space = pending.is_some();
            wait_until(
                &my_bell,
                &futex,
                &policy(),
                || {
                    if blocked_on_space {
                        replies.free_space().map_or(true, |f| f > free_before)
                    } else {
                        !matches!(requests.peek(), Ok(None))
                    }
                },
                liveness(host_identity, deadline),
            )?;
        }
    }
    Ok((checksum, wakes, futex.woken.get()))
}

/// The worker process: started by [`records_cross_processes_through_a_real_mailbox`] with the
/// region in its environment (MAP-5); not meant to run on its own.
#[test]
#[ignore = "the worker half of records_cross_processes_through_a_real_mailbox, which runs it"]
fn cross_process_worker() {
    let name = std::env::var(ENV_REGION).expect("KNIT_REGION: run by the cross-process test");
    let slot: u32 = std::env::var(ENV_SLOT)
        .expect("KNIT_SLOT")
        .parse()
        .expect("slot number");
    let seed: u64 = std::env::var(ENV_SEED)
        .expect("seed")
        .parse()
        .expect("seed number");
    let records: u64 = std::env::var(ENV_RECORDS)
        .expect("records")
        .parse()
        .expect("record count");

    let mapping = attach_region(&name, DEFAULT_ATTACH_TIMEOUT).expect("attach");
    let region = Region::attach(mapping.as_shared()).expect("region");
    // PART-2: claim the entry the host reserved, then publish the identity with ACTIVE.
    let me = region.participant(slot).expect("entry");
    me.claim().expect("claim");
    let identity = ProcessIdentity::current().expect("identity");
    let id = Identity {
        pid: identity.pid,
        start_time: identity.start_time,
        impl_name: "knit-test-worker",
    };
    me.activate(&id, monotonic_ns()).expect("activate");

    let (checksum, wakes, woken) =
        run_worker(&region, slot, seed, records).expect("worker exchange");

    // PART-5: DETACHED after the last ring write, then wake the host.
    assert!(me.detach().expect("detach"));
    region
        .participant(0)
        .and_then(|p| p.doorbell())
        .expect("host bell")
        .ring(&Futex::new());
    println!("KNIT-WORKER checksum={checksum:016x} records={records} wakes={wakes} woken={woken}");
}

/// What the worker printed at the end of a successful exchange.
struct WorkerReport {
    checksum: u64,
    records: u64,
    wakes: u64,
    woken: u64,
}

impl WorkerReport {
    /// Parses the `KNIT-WORKER key=value …` line (libtest may print it after its own text).
    fn parse(stdout: &str) -> Option<WorkerReport> {
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("KNIT-WORKER ").map(|(_, report)| report))?;
        let field = |key: &str, radix: u32| -> Option<u64> {
            let text = line
                .split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))?;
            u64::from_str_radix(text, radix).ok()
        };
        Some(WorkerReport {
            checksum: field("checksum=", 16)?,
            records: field("records=", 10)?,
            wakes: field("wakes=", 10)?,
            woken: field("woken=", 10)?,
        })
    }
}

/// Starts this test binary as the worker of `name` (MAP-5: `KNIT_REGION`, `KNIT_SLOT`).
fn spawn_worker(name: &RegionName) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    Command::new(exe)
        .args([
            "cross_process_worker",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_REGION, name.as_str())
        .env(ENV_SLOT, SLOT.to_string())
        .env(ENV_SEED, SEED.to_string())
        .env(ENV_RECORDS, RECORDS.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn worker")
}

/// Unlinks the test's region even when an assertion fails first (MAP-3).
struct Unlink(RegionName);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = unlink(&self.0);
    }
}

#[test]
fn records_cross_processes_through_a_real_mailbox() {
    let region_len = Geometry::compute(&params()).expect("geometry").region_len();
    let (mapping, name) = Mapping::create_named(region_len).expect("create");
    let _guard = Unlink(name.clone());
    let me = ProcessIdentity::current().expect("identity");
    let host = Identity {
        pid: me.pid,
        start_time: me.start_time,
        impl_name: "knit-test-host",
    };
    let region_id = knit::random::region_id().expect("region id");
    let region = Region::format(
        mapping.as_shared(),
        &params(),
        &host,
        region_id,
        realtime_ns(),
    )
    .expect("format");
    region
        .participant(SLOT)
        .expect("entry")
        .reserve()
        .expect("reserve");

    // MAP-1: the object is owner-only.
    let mode = std::fs::metadata(name.shm_path())
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let mut child = spawn_worker(&name);
    let worker = ProcessIdentity::of(child.id()).expect("worker identity");
    let outcome = run_host(&region, worker);
    if outcome.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("worker output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tally = outcome.unwrap_or_else(|e| {
        panic!("host side failed: {e}\nworker stdout:\n{stdout}\nworker stderr:\n{stderr}")
    });
    assert!(
        output.status.success(),
        "worker failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    let report = WorkerReport::parse(&stdout)
        .unwrap_or_else(|| panic!("no report from the worker:\n{stdout}"));

    // Both ends saw the same bytes in the same order.
    assert_eq!(
        report.checksum, tally.checksum,
        "payload checksum differs between the processes"
    );
    assert_eq!(report.records, RECORDS);
    // With no spinning, thousands of records through 4 KiB rings make both sides park; the
    // doorbells must have issued wakes, and some park must have ended by a FUTEX_WAKE made in
    // the other process (a private futex would only ever time out).
    assert!(
        tally.wakes + report.wakes > 0,
        "no doorbell ever issued a wake"
    );
    assert!(
        tally.woken + report.woken > 0,
        "no park was ended by the other process's FUTEX_WAKE"
    );

    // PART-5: the worker left cleanly, as a DETACHED entry with its identity.
    let entry = region
        .participant(SLOT)
        .expect("entry")
        .snapshot()
        .expect("snapshot");
    assert_eq!(entry.state, ParticipantState::Detached);
    assert_eq!(entry.identity.map(|i| i.pid), Some(worker.pid));
    assert!(!worker.is_alive(), "the reaped worker is not alive");

    // MAP-3: the creator unlinks; the name is gone from the system.
    unlink(&name).expect("unlink");
    assert!(!name.shm_path().exists());
    assert!(!RegionDir::system().names().expect("list").contains(&name));
}
