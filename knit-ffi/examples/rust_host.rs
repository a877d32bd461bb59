//! A Rust host driving a worker process of any language through the Rust runtime, the other
//! direction of the C tests: `rust_host WORKER [ARGS...]` starts a pool of that command and
//! checks the functions every Knit test worker serves (hello, echo, checksum, panic, unknown
//! function, cancellation, peer death). Prints one line per check and exits non-zero when any
//! fails. scripts/test-c runs it against the C test worker.

use std::process::{Command, ExitCode};
use std::time::Duration;

use knit_rt::{CallError, CallOptions, Pool};

/// FNV-1a over little-endian 8-byte words, then the tail bytes, xor the length.
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

/// Deterministic test bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) {
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            self.failed += 1;
        }
    }
}

fn start(argv: &[String], restart: bool) -> Result<Pool, knit_rt::Error> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    Pool::builder()
        .workers(1)
        .process(cmd)
        .restart(restart)
        .build()
}

/// Results and payloads of every size, in and out of fragments.
fn check_calls(pool: &Pool, c: &mut Checks) {
    let hello = pool.call("hello", "Rust");
    let text = hello.as_ref().ok().and_then(knit_rt::Response::text);
    c.check("hello", text == Some("Hello, Rust"));
    for (i, len) in [0usize, 1, 4095, 4096, 131_073, 1 << 20]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64 + 1);
        let echo = pool.call("echo", &data);
        let same = echo.as_ref().is_ok_and(|r| r.bytes() == data.as_slice());
        c.check(&format!("echo {len} bytes"), same);
        let sum = pool.call("checksum", &data);
        let want = checksum(&data).to_le_bytes();
        c.check(
            &format!("checksum {len} bytes"),
            sum.as_ref().is_ok_and(|r| r.bytes() == want),
        );
    }
}

/// Every way a call fails, ending with the worker's death.
fn check_failures(pool: &Pool, c: &mut Checks) {
    let unknown = pool.call("nope", "");
    let is_unknown = unknown
        .as_ref()
        .err()
        .is_some_and(CallError::is_unknown_function);
    c.check("unknown function", is_unknown);
    let failed = pool.call("panic", "");
    let crossed = failed
        .as_ref()
        .err()
        .is_some_and(|e| e.is_handler_failed() && e.message.contains("on purpose"));
    c.check("handler failure crosses with its message", crossed);
    let short = CallOptions::deadline(Duration::from_millis(20));
    let deadline = pool.call_with_options("sleep_ms", &300u64.to_le_bytes(), short);
    c.check(
        "deadline",
        deadline
            .as_ref()
            .err()
            .is_some_and(CallError::is_deadline_exceeded),
    );
    let slow = pool.call_async("sleep_until_cancelled", &10_000u64.to_le_bytes());
    std::thread::sleep(Duration::from_millis(20));
    slow.cancel();
    let cancelled = slow.wait();
    c.check(
        "cancellation",
        cancelled
            .as_ref()
            .err()
            .is_some_and(CallError::is_cancelled),
    );
    let after = pool.call_with_options("echo", "x", CallOptions::deadline(Duration::from_secs(3)));
    c.check(
        "the worker is free again after the cancelled call",
        after.is_ok(),
    );
    let died = pool.call("exit", "");
    c.check(
        "peer death",
        died.as_ref().err().is_some_and(CallError::is_peer_died),
    );
}

/// A pool with restart on recovers from its worker's death.
fn check_restart(argv: &[String], c: &mut Checks) {
    match start(argv, true) {
        Ok(pool) => {
            let died = pool.call("exit", "");
            c.check(
                "peer death with restart on",
                died.as_ref().err().is_some_and(CallError::is_peer_died),
            );
            let again = pool.call("hello", "again");
            let text = again.as_ref().ok().and_then(knit_rt::Response::text);
            c.check("restarted worker answers", text == Some("Hello, again"));
        }
        Err(e) => c.check(&format!("restart pool starts ({e})"), false),
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.is_empty() {
        eprintln!("usage: rust_host WORKER [ARGS...]");
        return ExitCode::from(2);
    }
    let mut c = Checks { failed: 0 };
    match start(&argv, false) {
        Ok(pool) => {
            check_calls(&pool, &mut c);
            check_failures(&pool, &mut c);
        }
        Err(e) => {
            eprintln!("rust_host: starting {}: {e}", argv[0]);
            return ExitCode::from(3);
        }
    }
    check_restart(&argv, &mut c);
    if c.failed == 0 {
        println!("rust_host: all checks passed against {}", argv[0]);
        ExitCode::SUCCESS
    } else {
        println!(
            "rust_host: {} check(s) FAILED against {}",
            c.failed, argv[0]
        );
        ExitCode::FAILURE
    }
}
