//! The pool with thread workers (PART-9): calls, dispatch, errors crossing the boundary
//! (CALL-5, CALL-6, FN-2), deadlines (CALL-8, CALL-9), cancellation (CANCEL-1..3), async calls
//! and loans, and a clean shutdown that leaves no region name (MAP-3).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use knit::{block_on, Backpressure, CallOptions, HandlerError, Handlers, Pool, SpinPolicy};
use knit_core::ErrorCode;

fn handlers() -> Handlers {
    Handlers::new()
        .handle("hello", |_ctx, req| {
            Ok(format!("Hello, {}", req.text()?).into_bytes())
        })
        .handle("echo", |_ctx, req| Ok(req.payload.to_vec()))
        .handle("len", |_ctx, req| {
            Ok((req.payload.len() as u64).to_le_bytes().to_vec())
        })
        .handle("fail", |_ctx, _req| {
            Err(HandlerError::new(1234, "custom failure"))
        })
        .handle("panic", |_ctx, _req| panic!("boom in handler"))
        .handle("slot", |ctx, _req| {
            Ok(ctx.worker_slot().to_le_bytes().to_vec())
        })
        .handle("sleep_until_cancelled", |ctx, _req| {
            // Polls its cancel entry (CANCEL-3) for at most 10 s.
            for _ in 0..10_000 {
                if ctx.is_cancelled() {
                    return Err(HandlerError::new(
                        ErrorCode::Cancelled as u32,
                        "saw the cancel entry",
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(b"never cancelled".to_vec())
        })
        .handle("sleep_ms", |_ctx, req| {
            let ms = u64::from_le_bytes(req.payload.try_into().map_err(|_| "want 8 bytes")?);
            std::thread::sleep(Duration::from_millis(ms));
            Ok(Vec::new())
        })
}

fn pool(workers: u32) -> Pool {
    Pool::builder()
        .workers(workers)
        .threads(handlers())
        .build()
        .expect("pool starts")
}

fn shm_exists(name: &str) -> bool {
    std::path::Path::new("/dev/shm").join(name).exists()
}

#[test]
fn hello_round_trip_and_unlink_on_shutdown() {
    let pool = pool(1);
    let name = pool.region_name().expect("named region").to_owned();
    assert!(shm_exists(&name));
    let r = pool.call("hello", "World!").unwrap();
    assert_eq!(r.text(), Some("Hello, World!"));
    assert_eq!(
        r.content_type(),
        knit::call::CONTENT_UTF8,
        "the result keeps the request's type by default"
    );
    drop(pool);
    assert!(
        !shm_exists(&name),
        "MAP-3: the name is unlinked at shutdown"
    );
}

#[test]
fn payload_sizes_from_empty_to_fragmented() {
    let pool = Pool::builder()
        .threads(handlers())
        .ring_sizes(4096, 4096)
        .build()
        .unwrap();
    for len in [
        0usize,
        1,
        7,
        8,
        2000,
        2008,
        2047,
        2048,
        4096,
        10_000,
        100_003,
        1 << 20,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let r = pool.call("echo", &data).unwrap();
        assert_eq!(r.bytes().len(), len);
        assert!(r.bytes() == data.as_slice(), "echo of {len} bytes differs");
    }
}

#[test]
fn errors_cross_the_boundary() {
    let pool = pool(1);
    // FN-2: refused locally.
    let e = pool.call("no_such_function", "x").unwrap_err();
    assert!(e.is_unknown_function(), "{e}");
    assert!(e.message.contains("no_such_function"));
    // CALL-6 with an application code (CALL-7: delivered raw).
    let e = pool.call("fail", "x").unwrap_err();
    assert_eq!((e.status, e.message.as_str()), (1234, "custom failure"));
    assert_eq!(e.code(), None);
    assert_eq!(e.to_string(), "status 1234: custom failure");
    // A panic is HANDLER_FAILED with the panic message, and the worker keeps serving.
    let e = pool.call("panic", "x").unwrap_err();
    assert!(e.is_handler_failed(), "{e}");
    assert!(e.message.contains("boom in handler"), "{}", e.message);
    assert_eq!(
        pool.call("hello", "again").unwrap().text(),
        Some("Hello, again")
    );
}

#[test]
fn least_outstanding_dispatch_uses_every_worker() {
    let pool = Arc::new(pool(3));
    let seen = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (pool, seen) = (Arc::clone(&pool), Arc::clone(&seen));
            s.spawn(move || {
                for _ in 0..20 {
                    pool.call("sleep_ms", &2u64.to_le_bytes()).unwrap();
                    let r = pool.call("slot", "").unwrap();
                    let slot = u32::from_le_bytes(r.bytes().try_into().unwrap());
                    seen[(slot - 1) as usize].fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let counts: Vec<usize> = seen.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 60);
    assert!(
        counts.iter().filter(|&&c| c > 0).count() >= 2,
        "calls spread over workers: {counts:?}"
    );
}

#[test]
fn deadline_fails_the_call_and_cancels_it() {
    let pool = pool(1);
    let e = pool
        .call_with_options(
            "sleep_until_cancelled",
            "",
            CallOptions::deadline(Duration::from_millis(30)),
        )
        .unwrap_err();
    assert!(e.is_deadline_exceeded(), "{e}");
    // The worker saw the cancel entry set by CALL-8 and is free again.
    assert_eq!(
        pool.call("hello", "after").unwrap().text(),
        Some("Hello, after")
    );
    assert_eq!(pool.workers()[0].outstanding, 0);
}

#[test]
fn async_calls_resolve_and_cancel() {
    let pool = pool(2);
    let futures: Vec<_> = (0..50)
        .map(|i| pool.call_async("echo", format!("n{i}")))
        .collect();
    for (i, f) in futures.into_iter().enumerate() {
        assert_eq!(block_on(f).unwrap().text(), Some(format!("n{i}").as_str()));
    }
    let f = pool.call_async("sleep_until_cancelled", "");
    f.cancel();
    let e = block_on(f).unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    // Dropping a future cancels too; the pool stays usable and nothing stays outstanding.
    drop(pool.call_async("sleep_until_cancelled", ""));
    assert_eq!(pool.call("hello", "x").unwrap().text(), Some("Hello, x"));
    let outstanding: usize = pool.workers().iter().map(|w| w.outstanding).sum();
    assert_eq!(outstanding, 0);
    // An async call with a deadline is failed by the monitor (CALL-8).
    let f = pool.call_async_with_options(
        "sleep_until_cancelled",
        "",
        CallOptions::deadline(Duration::from_millis(20)),
    );
    assert!(f.wait().unwrap_err().is_deadline_exceeded());
}

#[test]
fn loaned_requests_are_written_in_place() {
    let pool = pool(1);
    let r = pool.call_loan("len", 1000, 0, |buf| buf.fill(7)).unwrap();
    assert_eq!(u64::from_le_bytes(r.bytes().try_into().unwrap()), 1000);
    let r = pool
        .call_loan("echo", 5, 0, |buf| buf.copy_from_slice(b"abcde"))
        .unwrap();
    assert_eq!(r.bytes(), b"abcde");
    let e = pool.call_loan("echo", 1 << 20, 0, |_| {}).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
}

#[test]
fn async_loans_are_written_in_place_and_answered_through_the_future() {
    let pool = pool(1);
    let opts = CallOptions::default();
    let futures: Vec<_> = (0..32u8)
        .map(|i| pool.call_loan_async("echo", 100 + usize::from(i), opts, |buf| buf.fill(i)))
        .collect();
    for (i, f) in (0..32u8).zip(futures) {
        let r = block_on(f).unwrap();
        assert_eq!(r.bytes(), vec![i; 100 + usize::from(i)].as_slice());
    }
    let mut filled = false;
    let e = block_on(pool.call_loan_async("echo", 1 << 20, opts, |_| filled = true)).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument));
    let e = block_on(pool.call_loan_async("nope", 8, opts, |_| filled = true)).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::UnknownFunction));
    assert!(!filled, "fill runs only for a call that goes out");
}

#[test]
fn full_rings_with_error_backpressure_say_would_block_and_lose_nothing() {
    let pool = Pool::builder()
        .threads(handlers())
        .ring_sizes(4096, 4096)
        .inflight(4)
        .backpressure(Backpressure::Error)
        .spin(SpinPolicy::NoSpin)
        .build()
        .unwrap();
    // Keep the worker busy, then fill the cancel table.
    let busy = pool.call_async("sleep_ms", &200u64.to_le_bytes());
    let mut queued = Vec::new();
    let mut refused = 0;
    for i in 0..20u32 {
        let f = pool.call_async("echo", i.to_le_bytes().to_vec());
        if f.is_failed() {
            let e = f.wait().unwrap_err();
            assert!(e.is_would_block(), "{e}");
            refused += 1;
        } else {
            queued.push((i, f));
        }
    }
    assert!(refused > 0, "a table of 4 entries refuses some of 21 calls");
    assert!(busy.wait().is_ok());
    for (i, f) in queued {
        assert_eq!(
            f.wait().unwrap().bytes(),
            i.to_le_bytes(),
            "every accepted call is answered"
        );
    }
}

#[test]
fn full_rings_with_wait_backpressure_deliver_everything() {
    let pool = Arc::new(
        Pool::builder()
            .threads(handlers())
            .ring_sizes(4096, 4096)
            .inflight(2)
            .build()
            .unwrap(),
    );
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let pool = Arc::clone(&pool);
            s.spawn(move || {
                for i in 0..200u32 {
                    let body = vec![(t * 7 + i) as u8; (i as usize * 37) % 3000];
                    let r = pool.call("echo", &body).unwrap();
                    assert!(r.bytes() == body.as_slice());
                }
            });
        }
    });
}

#[test]
fn call_with_runs_the_closure_on_the_result() {
    let pool = pool(1);
    let n = pool.call_with("echo", "in place", <[u8]>::len).unwrap();
    assert_eq!(n, 8);
    let data = vec![9u8; 300_000];
    let sum = pool
        .call_with("echo", &data, |b| {
            b.iter().map(|&x| u64::from(x)).sum::<u64>()
        })
        .unwrap();
    assert_eq!(
        sum, 2_700_000,
        "a fragmented result is reassembled, then handed to the closure"
    );
    assert!(pool.call_with("fail", "", |_| ()).unwrap_err().status == 1234);
}

#[test]
fn a_corrupt_response_ring_poisons_the_region_and_fails_calls() {
    let pool = pool(1);
    assert!(pool.call("echo", "fine").is_ok());
    // A hostile worker publishes a tail that is not a multiple of 8 (RING-8).
    let mailbox = pool.region().region().mailbox(0).unwrap();
    mailbox.response.ctrl.write_u64(0, 0x1_0003).unwrap();
    let e = pool.call("echo", "after").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Poisoned), "{e}");
    assert_eq!(
        pool.region().region().poison_code(),
        ErrorCode::BadPosition as u32
    );
    // LIVE-6: later calls fail at once with POISONED and name the first violation (LIVE-7).
    let e = pool.call("echo", "later").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::Poisoned));
    assert!(e.message.contains("BAD_POSITION"), "{e}");
}
