//! Handlers that write their result straight into the response ring
//! (`Handlers::handle_in_place`, loan, spec/03 §3.3): the bytes arrive intact, the buffer a
//! one-record result is written into lies inside the shared region (the in-place path), a
//! larger result falls back to the copying path, and CALL-3 (exactly one response) holds
//! whatever the handler does after writing.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use knit::{HandlerError, Handlers, Pool, Responded};
use knit_core::ErrorCode;

const WORKER: &str = env!("CARGO_BIN_EXE_knit-test-worker");

/// Where `reverse_traced` wrote each result, by the result's length (tests run at once, each
/// with its own lengths): the buffer's address and length, and whether the writer said it was
/// in place.
static BUFFERS: Mutex<Option<HashMap<usize, Traced>>> = Mutex::new(None);

/// A buffer's address and length, and whether the writer said it was in place.
type Traced = (usize, usize, bool);

/// What `reverse_traced` recorded for its result of `len` bytes. The pool's one worker runs
/// calls in order, so once a later call is answered the handler has returned.
fn traced(pool: &Pool, len: usize) -> Traced {
    pool.call("typed", "").unwrap();
    BUFFERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
        .and_then(|m| m.remove(&len))
        .unwrap()
}

fn reverse_into(input: &[u8], buf: &mut [u8]) -> usize {
    for (dst, src) in buf.iter_mut().zip(input.iter().rev()) {
        *dst = *src;
    }
    input.len()
}

fn handlers() -> Handlers {
    Handlers::new()
        .handle_in_place("reverse", |_ctx, req, out| {
            let input = req.payload;
            out.write_with(input.len(), |buf| reverse_into(input, buf))
        })
        .handle_in_place("reverse_traced", |_ctx, req, out| {
            let input = req.payload;
            let mut at = (0, 0);
            let done = out.write_with(input.len(), |buf| {
                at = (buf.as_ptr() as usize, buf.len());
                reverse_into(input, buf)
            })?;
            BUFFERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(HashMap::new)
                .insert(input.len(), (at.0, at.1, done.is_in_place()));
            Ok(done)
        })
        .handle_in_place("typed", |ctx, req, out| {
            ctx.set_content_type(0x8000_0001);
            out.send(req.payload)
        })
        .handle_in_place("overclaim", |_ctx, _req, out| out.write_with(8, |_| 9))
        .handle_in_place("too_large", |_ctx, _req, out| {
            out.write_with(1 << 20, |_| 0)
        })
        .handle_in_place("panic_in_fill", |_ctx, _req, out| {
            out.write_with(16, |_| panic!("fill gave up"))
        })
        .handle_in_place("fail_after_writing", |_ctx, _req, out| {
            let _written: Responded = out.write_with(2, |buf| {
                buf.copy_from_slice(b"ok");
                2
            })?;
            Err(HandlerError::failed("too late: the result is out"))
        })
        .handle_in_place("forget", |_ctx, _req, _out| {
            // A `Responded` can only come from a writer; this handler keeps none.
            Err(HandlerError::new(1234, "no result"))
        })
}

fn pool() -> Pool {
    Pool::builder()
        .threads(handlers())
        .ring_sizes(8192, 8192)
        .max_message_len(1 << 16)
        .build()
        .unwrap()
}

/// The region's address range in this process.
fn region_range(pool: &Pool) -> std::ops::Range<usize> {
    let mem = pool.region().region().memory();
    let start = mem.as_ptr() as usize;
    start..start + mem.len()
}

fn reversed(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().rev().copied().collect()
}

#[test]
fn a_result_that_fits_one_record_is_written_in_the_ring() {
    let pool = pool();
    let region = region_range(&pool);
    for len in [0usize, 1, 7, 100, 1000, 4096 - 8 - 24] {
        let input: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let answer = pool.call("reverse_traced", &input).unwrap();
        assert_eq!(answer.bytes(), reversed(&input), "{len} bytes");
        let (at, cap, in_place) = traced(&pool, len);
        assert!(in_place, "{len} bytes fit one record of an 8 KiB ring");
        assert_eq!(cap, len);
        assert!(
            region.contains(&at) && at + cap <= region.end,
            "the buffer of {len} bytes is inside the shared region"
        );
    }
}

#[test]
fn a_larger_result_takes_the_copying_path() {
    let pool = pool();
    let region = region_range(&pool);
    let input: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
    let answer = pool.call("reverse_traced", &input).unwrap();
    assert_eq!(answer.bytes(), reversed(&input));
    let (at, cap, in_place) = traced(&pool, input.len());
    assert!(!in_place);
    assert_eq!(cap, input.len());
    assert!(
        !region.contains(&at),
        "a private buffer, outside the region"
    );
}

#[test]
fn in_place_both_ways_with_call_with() {
    let pool = pool();
    let input = b"zero copy on the request, the response and the read".to_vec();
    let seen = pool.call_with("reverse", &input, <[u8]>::to_vec).unwrap();
    assert_eq!(seen, reversed(&input));
}

#[test]
fn the_content_type_set_before_writing_is_sent() {
    let pool = pool();
    let answer = pool.call("typed", "text").unwrap();
    assert_eq!(
        (answer.content_type(), answer.bytes()),
        (0x8000_0001, &b"text"[..])
    );
}

#[test]
fn failures_are_answered_once_and_the_worker_keeps_serving() {
    let pool = pool();
    let e = pool.call("overclaim", "").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
    // CALL-10: a capacity beyond max_message_len is refused before anything is written.
    let e = pool.call("too_large", "").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::PayloadTooLarge), "{e}");
    // CALL-6: a panic while the loan is held abandons it; the call fails, nothing leaks out.
    let e = pool.call("panic_in_fill", "").unwrap_err();
    assert!(
        e.is_handler_failed() && e.message.contains("fill gave up"),
        "{e}"
    );
    let e = pool.call("forget", "").unwrap_err();
    assert_eq!(e.status, 1234, "{e}");
    // CALL-3: the result went out before the error; the error is not a second response
    // (which the host would refuse as UNKNOWN_REQUEST and poison the region).
    let answer = pool.call("fail_after_writing", "").unwrap();
    assert_eq!(answer.bytes(), b"ok");
    for round in 0..50 {
        let input = vec![round as u8; round * 37];
        assert_eq!(
            pool.call("reverse", &input).unwrap().bytes(),
            reversed(&input)
        );
    }
    assert_eq!(pool.region().region().poison_code(), 0);
}

#[test]
fn many_concurrent_in_place_results_fill_and_drain_the_ring() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let pool = Pool::builder()
        .threads(handlers())
        .ring_sizes(4096, 4096)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..4usize {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..200usize {
                    let input = vec![(t * 7 + i) as u8; (t * 131 + i * 17) % 1900];
                    let f = pool.call_async("reverse", input.clone());
                    assert_eq!(f.wait().unwrap().bytes(), reversed(&input));
                    CALLS.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(CALLS.load(Ordering::Relaxed), 800);
}

#[test]
fn handlers_get_runs_an_in_place_handler_into_a_buffer() {
    // Outside a serve loop (for example from a foreign-language binding), `get` hands out a
    // form that returns the bytes.
    let handlers = handlers();
    let id = handlers
        .table()
        .find(|(_, name)| *name == "reverse")
        .map(|(id, _)| id)
        .unwrap();
    assert!(handlers.is_in_place(id));
    assert!(!handlers.is_streaming(id));
    let pool = Pool::builder()
        .threads(Handlers::new().handle("via_get", move |ctx, req| {
            let f = handlers.get(id).unwrap();
            f(ctx, req)
        }))
        .build()
        .unwrap();
    assert_eq!(pool.call("via_get", "abc").unwrap().bytes(), b"cba");
}

#[test]
fn a_worker_process_writes_in_place() {
    let pool = Pool::builder()
        .process(Command::new(WORKER))
        .ring_sizes(8192, 8192)
        .build()
        .unwrap();
    for len in [0u32, 5, 4000, 50_000] {
        let answer = pool.call("pattern_in_place", &len.to_le_bytes()).unwrap();
        let expected: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        assert_eq!(answer.bytes(), expected, "{len} bytes");
    }
}
