//! Channels from the host to a worker (spec/06), opened for one call with
//! `Pool::call_with_channel` and read by the handler with `Context::take_input_channel`:
//! ordered, complete delivery with backpressure and fragments (CHAN-3, CHAN-6, MSG-*), close
//! (CHAN-4), abort in both directions (CHAN-5), a dead reader (CHAN-8), cancellation, and
//! slot reuse (CHAN-9).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use knit::{HandlerError, Handlers, Pool};
use knit_core::ErrorCode;

const WORKER: &str = env!("CARGO_BIN_EXE_knit-test-worker");

/// The digest the test worker computes: messages, bytes, FNV-1a over every byte in order.
fn digest<'m>(messages: impl IntoIterator<Item = &'m [u8]>) -> Vec<u8> {
    let (mut n, mut len, mut hash) = (0u64, 0u64, 0xcbf2_9ce4_8422_2325u64);
    for m in messages {
        n += 1;
        len += m.len() as u64;
        for &b in m {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    [n, len, hash]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// xorshift64*: deterministic sizes and contents.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Messages of random sizes from 0 to 12 KiB: many fit one record of a 4 KiB channel ring
/// (at most 2 KiB), many are fragmented, and the ring fills again and again.
fn random_messages(seed: u64, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| {
            let len = if rng.next() % 4 == 0 {
                (rng.next() % 12_288) as usize
            } else {
                (rng.next() % 2_000) as usize
            };
            (0..len).map(|_| rng.next() as u8).collect()
        })
        .collect()
}

#[test]
fn a_worker_process_digests_a_long_stream_in_order() {
    let pool = Pool::builder()
        .workers(2)
        .process(Command::new(WORKER))
        .channels(2, 4096)
        .build()
        .unwrap();
    for round in 0..4u64 {
        let messages = random_messages(0x9E37_79B9 + round, 1_500);
        let (call, mut input) = pool.call_with_channel("digest", "").unwrap();
        for m in &messages {
            input.send(m).unwrap();
        }
        input.close().unwrap();
        let expected = digest(messages.iter().map(Vec::as_slice));
        assert_eq!(call.wait().unwrap().bytes(), expected, "round {round}");
    }
    // More calls than slots over the rounds: every slot was released and reused (CHAN-9).
}

#[test]
fn concurrent_streams_to_several_workers() {
    let pool = Pool::builder()
        .workers(2)
        .process(Command::new(WORKER))
        .channels(4, 4096)
        .build()
        .unwrap();
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let pool = &pool;
            s.spawn(move || {
                for round in 0..3 {
                    let messages = random_messages(t * 100 + round, 300);
                    let (call, mut input) = pool.call_with_channel("digest", "").unwrap();
                    for m in &messages {
                        input.send(m).unwrap();
                    }
                    input.close().unwrap();
                    let expected = digest(messages.iter().map(Vec::as_slice));
                    assert_eq!(call.wait().unwrap().bytes(), expected);
                }
            });
        }
    });
}

#[test]
fn a_dead_reader_is_peer_died_for_the_sender() {
    let pool = Pool::builder()
        .process(Command::new(WORKER))
        .channels(1, 4096)
        .restart(true)
        .build()
        .unwrap();
    let (call, mut input) = pool
        .call_with_channel("digest_then_exit", &3u32.to_le_bytes())
        .unwrap();
    // The worker reads three messages and exits; the sender fills the ring and then waits
    // for a reader that is gone (CHAN-8).
    let chunk = vec![7u8; 1000];
    let e = loop {
        if let Err(e) = input.send(&chunk) {
            break e;
        }
    };
    assert_eq!(e.code(), Some(ErrorCode::PeerDied), "{e}");
    assert!(call.wait().unwrap_err().is_peer_died());
    drop(input);
    // CHAN-10: the restarted worker gets a channel in the only slot again.
    let (call, mut input) = pool.call_with_channel("digest", "").unwrap();
    input.send(b"after the restart").unwrap();
    input.close().unwrap();
    assert_eq!(
        call.wait().unwrap().bytes(),
        digest([&b"after the restart"[..]])
    );
}

fn thread_pool(handlers: Handlers) -> Pool {
    Pool::builder()
        .threads(handlers)
        .channels(1, 4096)
        .build()
        .unwrap()
}

#[test]
fn a_handler_that_takes_no_channel_aborts_it() {
    let pool = thread_pool(Handlers::new().handle("ignore", |_ctx, _req| Ok(b"done".to_vec())));
    let (call, mut input) = pool.call_with_channel("ignore", "").unwrap();
    assert_eq!(call.wait().unwrap().bytes(), b"done");
    // The handler returned without taking the channel: the worker aborted it (CANCELLED).
    let chunk = [1u8; 1000];
    let e = loop {
        if let Err(e) = input.send(&chunk) {
            break e;
        }
    };
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(
        e.message.contains("found 0x4,"),
        "the code is CANCELLED: {e}"
    );
    drop(input);
    // The slot is free again (the handler may abort this one before the host writes to it).
    let (call, input) = pool.call_with_channel("ignore", "").unwrap();
    drop(input);
    assert!(call.wait().is_ok());
}

#[test]
fn aborts_reach_the_other_end_with_their_code() {
    let handlers = Handlers::new()
        .handle("read_then_abort", |ctx, _req| {
            let mut input = ctx.take_input_channel()?;
            input.recv()?;
            input.abort(1234)?;
            Ok(Vec::new())
        })
        .handle("read_all", |ctx, _req| {
            let mut seen = 0u32;
            for m in ctx.take_input_channel()? {
                match m {
                    Ok(_) => seen += 1,
                    Err(e) => {
                        return Err(HandlerError::new(
                            e.code() as u32,
                            format!("after {seen} messages: {e}"),
                        ))
                    }
                }
            }
            Ok(seen.to_le_bytes().to_vec())
        });
    let pool = thread_pool(handlers);
    // The handler aborts: the host's sends fail with its code.
    let (call, mut input) = pool.call_with_channel("read_then_abort", "").unwrap();
    let e = loop {
        if let Err(e) = input.send(b"more") {
            break e;
        }
    };
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(e.message.contains("found 0x4d2,"), "the code is 1234: {e}");
    assert!(call.wait().is_ok());
    drop(input);
    // The host aborts: the handler's receive fails with the host's code.
    let (call, mut input) = pool.call_with_channel("read_all", "").unwrap();
    input.send(b"one").unwrap();
    input.send(b"two").unwrap();
    input.abort(4321).unwrap();
    // Either the worker attached before the abort and a receive fails, or it found the slot
    // ABORTED when it attached (CHAN-2); the handler hears the code either way.
    let e = call.wait().unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(e.message.contains("found 0x10e1,"), "the code is 4321: {e}");
    // A channel closed without messages is an empty stream.
    let (call, input) = pool.call_with_channel("read_all", "").unwrap();
    input.close().unwrap();
    assert_eq!(call.wait().unwrap().bytes(), 0u32.to_le_bytes());
}

#[test]
fn a_cancelled_call_stops_its_waiting_handler() {
    static WAITING: AtomicUsize = AtomicUsize::new(0);
    static CANCELLED: AtomicUsize = AtomicUsize::new(0);
    let handlers = Handlers::new()
        .handle("wait_for_input", |ctx, _req| {
            let mut input = ctx.take_input_channel()?;
            WAITING.fetch_add(1, Ordering::SeqCst);
            match input.recv() {
                Err(e) if e.code() == ErrorCode::Cancelled => {
                    CANCELLED.fetch_add(1, Ordering::SeqCst);
                    Err(e.into())
                }
                other => Ok(format!("{other:?}").into_bytes()),
            }
        })
        .handle("ping", |_ctx, _req| Ok(Vec::new()));
    let pool = thread_pool(handlers);
    let (call, input) = pool.call_with_channel("wait_for_input", "").unwrap();
    // Nothing is sent: the handler waits until the call is cancelled (CANCEL-1), then its
    // receive fails and the channel is aborted, which the sender sees.
    while WAITING.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    call.cancel();
    assert!(call.wait().unwrap_err().is_cancelled());
    let mut input = input;
    let e = loop {
        if let Err(e) = input.send(&[0u8; 1000]) {
            break e;
        }
    };
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(
        e.message.contains("found 0x4,"),
        "the code is CANCELLED: {e}"
    );
    // The one worker runs calls in order: once `ping` is answered, the handler has returned.
    pool.call("ping", "").unwrap();
    assert_eq!(CANCELLED.load(Ordering::SeqCst), 1);
}

#[test]
fn a_channel_is_taken_once_and_only_by_its_call() {
    let handlers = Handlers::new().handle("take_twice", |ctx, _req| {
        let outcome = || match ctx.take_input_channel() {
            Ok(_) => "taken".to_owned(),
            Err(e) => e.code().to_string(),
        };
        let (first, second) = (outcome(), outcome());
        Ok(format!("{first} {second}").into_bytes())
    });
    let pool = thread_pool(handlers);
    let (call, _input) = pool.call_with_channel("take_twice", "").unwrap();
    assert_eq!(call.wait().unwrap().text(), Some("taken CHANNEL_CLOSED"));
    // A plain call has no channel.
    assert_eq!(
        pool.call("take_twice", "").unwrap().text(),
        Some("CHANNEL_CLOSED CHANNEL_CLOSED")
    );
}

#[test]
fn without_free_slots_the_open_is_refused() {
    let pool = thread_pool(Handlers::new().handle("hold", |ctx, _req| {
        let mut input = ctx.take_input_channel()?;
        while input.recv()?.is_some() {}
        Ok(Vec::new())
    }));
    let (call, input) = pool.call_with_channel("hold", "").unwrap();
    // The only slot is held by the first channel (CHAN-1).
    let e = pool.call_with_channel("hold", "").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::WouldBlock), "{e}");
    input.close().unwrap();
    assert!(call.wait().is_ok());
    // A pool without channel slots refuses at once.
    let none = Pool::builder()
        .threads(Handlers::new().handle("hold", |_ctx, _req| Ok(Vec::new())))
        .build()
        .unwrap();
    let e = none.call_with_channel("hold", "").unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::InvalidArgument), "{e}");
}

#[test]
fn a_sender_kept_after_an_abort_does_not_hold_the_slot() {
    // One slot. The handler aborts the host's channel; the host's end is released when its
    // send sees the abort, so the worker may reopen the slot for a stream of its own (CHAN-9,
    // CHAN-14) while the failed sender is still alive.
    let handlers = Handlers::new()
        .handle("read_then_abort", |ctx, _req| {
            let mut input = ctx.take_input_channel()?;
            input.recv()?;
            input.abort(1234)?;
            Ok(Vec::new())
        })
        .handle_streaming("one_message", |ctx, _req| {
            let mut tx = ctx.open_channel_to_host()?;
            tx.send(b"hi")?;
            tx.close()?;
            Ok(Vec::new())
        });
    let pool = thread_pool(handlers);
    let mut kept = Vec::new();
    for round in 0..10 {
        let (call, mut input) = pool.call_with_channel("read_then_abort", "").unwrap();
        let e = loop {
            if let Err(e) = input.send(b"more") {
                break e;
            }
        };
        assert_eq!(
            e.code(),
            Some(ErrorCode::ChannelAborted),
            "round {round}: {e}"
        );
        assert!(call.wait().is_ok());
        kept.push(input);
        let f = pool.call_async("one_message", "");
        let mut rx = f.channel().unwrap();
        assert_eq!(rx.recv().unwrap().unwrap().bytes, b"hi", "round {round}");
        assert!(rx.recv().unwrap().is_none());
        assert!(f.wait().is_ok());
    }
}
