//! Offloading: hash large buffers in worker processes while the main thread stays free.
//!
//! The main thread starts async calls (they resolve on the pool's reactor thread) and keeps
//! ticking; it prints how often it ticked while the workers hashed, as proof that it never
//! blocked on the work.
//!
//! Run: `cargo run -p knit --release --example offload`

use std::error::Error;
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use knit::{CallFuture, CallResult, Pool, Worker};

/// FNV-1a over 8-byte words: a stand-in for real work.
fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for c in bytes.chunks(8) {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future once, without blocking.
fn poll_once(f: &mut CallFuture, waker: &Waker) -> Option<CallResult> {
    match Pin::new(f).poll(&mut Context::from_waker(waker)) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// Buffers hashed, and the size of each.
const BUFFERS: usize = 8;
const SIZE: usize = 16 << 20;

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(knit::serve::ENV_REGION).is_some() {
        Worker::from_env()?
            .handle("hash", |_ctx, req| {
                Ok(hash(req.payload).to_le_bytes().to_vec())
            })
            .run()?;
        return Ok(());
    }
    let pool = Pool::builder()
        .workers(2)
        .process(Command::new(std::env::current_exe()?))
        .build()?;
    let buffers: Vec<Vec<u8>> = (0..BUFFERS)
        .map(|i| vec![u8::try_from(i).unwrap_or(0); SIZE])
        .collect();
    // The expected results, computed up front so that the loop below does nothing heavy.
    let expected: Vec<u64> = buffers.iter().map(|b| hash(b)).collect();
    let started = Instant::now();
    // Each buffer moves into its call (no copy); requests that do not fit the ring at once
    // are written by the pool's sender thread, so `call_async` returns at once.
    let mut pending: Vec<(usize, CallFuture)> = buffers
        .into_iter()
        .enumerate()
        .map(|(i, b)| (i, pool.call_async("hash", b)))
        .collect();
    let waker = Waker::from(Arc::new(Noop));
    let mut ticks = 0u64;
    while !pending.is_empty() {
        // The main thread's own work: here, a tick every millisecond.
        std::thread::sleep(Duration::from_millis(1));
        ticks += 1;
        let mut still = Vec::new();
        for (i, mut f) in pending {
            match poll_once(&mut f, &waker) {
                Some(r) => {
                    let h = u64::from_le_bytes(r?.bytes().try_into()?);
                    assert_eq!(h, expected[i], "buffer {i}");
                    println!("buffer {i}: {h:016x} (main thread ticked {ticks} times so far)");
                }
                None => still.push((i, f)),
            }
        }
        pending = still;
    }
    let mib = (BUFFERS * SIZE) >> 20;
    println!(
        "hashed {mib} MiB in {:?} off the main thread, which ticked {ticks} times meanwhile",
        started.elapsed()
    );
    Ok(())
}
