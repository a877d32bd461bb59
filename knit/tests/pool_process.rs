//! The pool with worker processes (`knit-test-worker`): real processes, real kills.
//!
//! Covers MAP-5 (the worker finds its region from the environment), MBX-2/3, CALL-3/5/6/8,
//! CANCEL-1..3, FN-2, LIVE-1/2/3/4/5, HDR-2 and MAP-3 (no name left in /dev/shm).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use knit::{block_on, CallOptions, Pool, RegionHandle};
use knit_core::ErrorCode;

const WORKER: &str = env!("CARGO_BIN_EXE_knit-test-worker");
const HOST: &str = env!("CARGO_BIN_EXE_knit-test-host");

fn pool(workers: u32, restart: bool) -> Pool {
    Pool::builder()
        .workers(workers)
        .process(Command::new(WORKER))
        .restart(restart)
        .build()
        .expect("pool starts")
}

fn shm_exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// The worker's checksum (see src/bin/knit-test-worker.rs), recomputed here.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = bytes.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ bytes.len() as u64
}

/// xorshift64*: a deterministic generator for sizes and contents.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn kill9(pid: u32) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
}

#[test]
fn process_worker_answers_and_leaves_no_region() {
    let pool = pool(1, false);
    let name = pool.region_name().unwrap().to_owned();
    assert_eq!(
        pool.call("hello", "World!").unwrap().text(),
        Some("Hello, World!")
    );
    assert!(pool.call("nope", "").unwrap_err().is_unknown_function());
    let e = pool.call("panic", "").unwrap_err();
    assert!(
        e.is_handler_failed() && e.message.contains("panicked on purpose"),
        "{e}"
    );
    assert_eq!(
        pool.call("echo", "still serving").unwrap().text(),
        Some("still serving")
    );
    let pid = pool.workers()[0].pid.unwrap();
    drop(pool);
    assert!(!shm_exists(&name), "MAP-3");
    // MBX-3: the worker detached and exited by itself; it is not running any more.
    assert!(!knit::is_alive(
        pid,
        knit::ProcessIdentity::of(pid).map_or(0, |i| i.start_time)
    ));
}

#[test]
fn kill_9_mid_call_fails_outstanding_calls_and_the_pool_recovers() {
    let pool = pool(1, true);
    let before = pool.workers()[0].pid.unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| pool.call_async("sleep_ms", &10_000u64.to_le_bytes()))
        .collect();
    // Let the worker read the first request (not needed for correctness: a request still in
    // the ring fails the same way).
    std::thread::sleep(Duration::from_millis(50));
    let killed = Instant::now();
    kill9(before);
    let mut latency = None;
    for f in calls {
        let e = block_on(f).unwrap_err();
        latency.get_or_insert_with(|| killed.elapsed());
        assert!(e.is_peer_died(), "LIVE-3: {e}");
        assert!(e.message.contains("died"), "{e}");
    }
    println!(
        "kill -9 to PEER_DIED: {:?} (LIVE-1 bound: 100 ms)",
        latency.unwrap()
    );
    // LIVE-5: a new process serves the slot under a new epoch.
    let r = pool.call("pid", "").unwrap();
    let after = u32::from_le_bytes(r.bytes().try_into().unwrap());
    assert_ne!(after, before);
    assert_eq!(pool.workers()[0].starts, 2);
    assert_eq!(
        pool.call("hello", "again").unwrap().text(),
        Some("Hello, again")
    );
}

#[test]
fn blocking_call_sees_peer_died_when_the_worker_exits_mid_call() {
    let pool = pool(1, false);
    let e = pool.call("exit", "").unwrap_err();
    assert!(e.is_peer_died(), "{e}");
    // Without restart, later calls fail with PEER_DIED too.
    assert!(pool.call("hello", "x").unwrap_err().is_peer_died());
}

#[test]
fn ten_thousand_calls_of_random_sizes_are_answered_exactly_once() {
    let pool = Arc::new(pool(2, false));
    let total = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (pool, total) = (Arc::clone(&pool), &total);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut buf = vec![0u8; 1 << 20];
                for i in 0..2500 {
                    // Log-uniform sizes from 0 B to 1 MiB, with both ends present.
                    let len = match i {
                        0 => 0,
                        1 => 1 << 20,
                        _ => (rng.next() % (1u64 << (rng.next() % 21))) as usize,
                    };
                    let fill = rng.next();
                    for (j, chunk) in buf[..len].chunks_mut(8).enumerate() {
                        let v = (fill ^ j as u64).to_le_bytes();
                        chunk.copy_from_slice(&v[..chunk.len()]);
                    }
                    let body = &buf[..len];
                    let r = pool.call("checksum", body).unwrap();
                    assert_eq!(
                        u64::from_le_bytes(r.bytes().try_into().unwrap()),
                        checksum(body),
                        "call {i} of {len} bytes"
                    );
                    total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(total.into_inner(), 10_000);
    assert!(pool.workers().iter().all(|w| w.outstanding == 0));
}

#[test]
fn tiny_rings_and_many_async_calls_lose_nothing() {
    let pool = Pool::builder()
        .workers(2)
        .process(Command::new(WORKER))
        .ring_sizes(4096, 4096)
        .inflight(2)
        .build()
        .unwrap();
    let futures: Vec<_> = (0..400u32)
        .map(|i| {
            (
                i,
                pool.call_async("echo", vec![i as u8; (i as usize * 13) % 5000]),
            )
        })
        .collect();
    for (i, f) in futures {
        let r = block_on(f).unwrap();
        assert_eq!(
            r.bytes(),
            vec![i as u8; (i as usize * 13) % 5000].as_slice(),
            "call {i}"
        );
    }
}

#[test]
fn cancellation_and_deadline_reach_the_worker() {
    let pool = pool(1, false);
    let f = pool.call_async("sleep_until_cancelled", &5_000u64.to_le_bytes());
    std::thread::sleep(Duration::from_millis(20));
    f.cancel();
    assert!(block_on(f).unwrap_err().is_cancelled());
    let e = pool
        .call_with_options(
            "sleep_until_cancelled",
            &5_000u64.to_le_bytes(),
            CallOptions::deadline(Duration::from_millis(50)),
        )
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    // The worker noticed both (CANCEL-2) and is free: this call does not queue behind 5 s.
    let r = pool
        .call_with_options(
            "echo",
            "free",
            CallOptions::deadline(Duration::from_secs(2)),
        )
        .unwrap();
    assert_eq!(r.text(), Some("free"));
}

#[test]
fn a_worker_that_cannot_start_is_a_clear_error() {
    let e = Pool::builder()
        .process(Command::new("/nonexistent/knit-worker"))
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("/nonexistent/knit-worker"), "{text}");
    let e = Pool::builder()
        .process(Command::new("/bin/false"))
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert_eq!(e.code(), ErrorCode::PeerDied, "{text}");
    assert!(
        text.contains("/bin/false") && text.contains("exit"),
        "{text}"
    );
}

#[test]
fn unsupported_major_is_refused_naming_both_versions() {
    let params = knit_core::geometry::Params {
        channel_slots: 0,
        channel_ring_cap: 0,
        ..Default::default()
    };
    let handle = RegionHandle::create(&params).unwrap();
    let name = handle.name().unwrap().as_str().to_owned();
    // HDR-2: a region of major 2.
    handle
        .region()
        .memory()
        .write(8, &2u16.to_le_bytes())
        .unwrap();
    let e = RegionHandle::attach(&name, Duration::from_millis(100)).unwrap_err();
    let text = e.to_string();
    handle.unlink().unwrap();
    assert_eq!(e.code(), ErrorCode::UnsupportedVersion, "{text}");
    assert!(
        text.contains("region version 2.0") && text.contains("supports 1.0"),
        "{text}"
    );
}

#[test]
fn workers_exit_when_their_host_is_killed() {
    let mut host = Command::new(HOST)
        .arg(WORKER)
        .arg("2")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(host.stdout.take().unwrap()).lines();
    let mut region = String::new();
    let mut workers = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(r) = line.strip_prefix("REGION ") {
            region = r.to_owned();
        } else if let Some(p) = line.strip_prefix("WORKER ") {
            let pid: u32 = p.parse().unwrap();
            workers.push(knit::ProcessIdentity::of(pid).unwrap());
        } else if line == "READY" {
            break;
        }
    }
    assert_eq!(workers.len(), 2);
    let killed = Instant::now();
    kill9(host.id());
    let _ = host.wait();
    // LIVE-4: each worker sees its host gone at its next check (at most 50 ms parked) and
    // exits; the bound here only keeps a broken build from hanging.
    while workers.iter().any(knit::ProcessIdentity::is_alive)
        && killed.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    let elapsed = killed.elapsed();
    // MAP-3: a dead host cannot unlink; that is `knit gc`'s job. Clean up here.
    let _ = knit::unlink(&knit::RegionName::parse(&region).unwrap());
    assert!(
        workers.iter().all(|w| !w.is_alive()),
        "workers still alive after {elapsed:?}"
    );
    println!("host kill -9 to every worker gone: {elapsed:?}");
}

/// MBX-3 / PART-5: at shutdown a process worker reads SHUTDOWN and detaches by itself. (With
/// the default parent-death signal, workers used to be killed instead: the monitor thread that
/// spawned them ended before the SHUTDOWN was sent, and the kernel signals a child when the
/// *thread* that forked it exits.)
#[test]
fn process_workers_detach_cleanly_at_shutdown() {
    let pool = pool(2, false);
    assert_eq!(
        pool.call("hello", "World").unwrap().text(),
        Some("Hello, World")
    );
    pool.shutdown();
    let region = pool.region().region();
    for index in 1..=2 {
        let state = region.participant(index).unwrap().state().unwrap();
        assert_eq!(
            state,
            knit_core::layout::ParticipantState::Detached,
            "worker {index} did not detach"
        );
    }
}
