//! Channels from a worker to the host (spec/06) through the runtime: ordered delivery with
//! backpressure (CHAN-3, CHAN-6), close (CHAN-4), abort (CHAN-5), a dead writer (CHAN-8) and
//! slot reuse after release (CHAN-9).

use std::process::Command;

use knit::{CallFuture, HandlerError, Handlers, Pool};
use knit_core::ErrorCode;

const WORKER: &str = env!("CARGO_BIN_EXE_knit-test-worker");

fn count(payload: &[u8]) -> Result<u32, HandlerError> {
    Ok(u32::from_le_bytes(
        payload.try_into().map_err(|_| "want 4 bytes")?,
    ))
}

fn handlers() -> Handlers {
    Handlers::new()
        .handle_streaming("stream", |ctx, req| {
            let n = count(req.payload)?;
            let mut tx = ctx.open_channel_to_host()?;
            for i in 0..n {
                // Sizes from 0 to 9000 bytes: some fragmented on a 4 KiB channel ring.
                let msg = vec![(i % 251) as u8; (i as usize * 97) % 9001];
                tx.send(&msg)?;
            }
            tx.close()?;
            Ok(n.to_le_bytes().to_vec())
        })
        .handle_streaming("abort_after", |ctx, req| {
            let n = count(req.payload)?;
            let mut tx = ctx.open_channel_to_host()?;
            for i in 0..n {
                tx.send(&i.to_le_bytes())?;
            }
            tx.abort(1500)?;
            Ok(Vec::new())
        })
        .handle_streaming("no_channel", |_ctx, _req| Ok(Vec::new()))
        .handle("not_streaming", |ctx, _req| {
            let e = ctx.open_channel_to_host().unwrap_err();
            Ok(format!("{}", e.code()).into_bytes())
        })
}

fn pool() -> Pool {
    Pool::builder()
        .workers(2)
        .threads(handlers())
        .channels(2, 4096)
        .build()
        .unwrap()
}

fn expect_stream(f: &CallFuture, n: u32) {
    let rx = f.channel().unwrap();
    let mut got = 0u32;
    for (i, msg) in rx.enumerate() {
        let i = u32::try_from(i).unwrap();
        assert_eq!(
            msg.unwrap(),
            vec![(i % 251) as u8; (i as usize * 97) % 9001],
            "message {i}"
        );
        got += 1;
    }
    assert_eq!(got, n, "every message once, in order, then the end");
}

#[test]
fn a_stream_arrives_in_order_with_backpressure() {
    let pool = pool();
    for round in 0..5 {
        // More calls than slots over the rounds: slots are released and reused (CHAN-9).
        let f = pool.call_async("stream", &200u32.to_le_bytes());
        expect_stream(&f, 200);
        assert_eq!(
            f.wait().unwrap().bytes(),
            200u32.to_le_bytes(),
            "round {round}"
        );
    }
}

#[test]
fn an_abort_reaches_the_reader_with_its_code() {
    let pool = pool();
    // Aborted after 3 messages: either the host attached before the abort and sees it on a
    // receive, or the slot was already ABORTED when the announcement was read (CHAN-2).
    let f = pool.call_async("abort_after", &3u32.to_le_bytes());
    let e = match f.channel() {
        Err(e) => e,
        Ok(mut rx) => loop {
            match rx.recv() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("an aborted channel has no clean end"),
                Err(e) => break e,
            }
        },
    };
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(
        e.message.contains("0x5dc") || e.message.contains("1500"),
        "{e}"
    );
    // With a long stream the host is attached and receiving when the abort comes.
    let f = pool.call_async("abort_after", &5000u32.to_le_bytes());
    let mut rx = f.channel().unwrap();
    let mut seen = 0u32;
    let e = loop {
        match rx.recv() {
            Ok(Some(m)) => {
                assert_eq!(m.bytes, seen.to_le_bytes(), "in order");
                seen += 1;
            }
            Ok(None) => panic!("an aborted channel has no clean end"),
            Err(e) => break e,
        }
    };
    assert!(seen <= 5000);
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    assert!(f.wait().is_ok());
}

#[test]
fn calls_without_a_channel_say_so() {
    let pool = pool();
    let f = pool.call_async("no_channel", "");
    assert_eq!(
        f.channel().unwrap_err().code(),
        Some(ErrorCode::ChannelClosed)
    );
    let r = pool.call("not_streaming", "").unwrap();
    assert_eq!(r.text(), Some("INVALID_ARGUMENT"));
}

#[test]
fn a_dead_writer_is_peer_died_for_the_reader() {
    let pool = Pool::builder()
        .process(Command::new(WORKER))
        .channels(1, 4096)
        .restart(true)
        .build()
        .unwrap();
    let f = pool.call_async("progress_then_exit", &5u32.to_le_bytes());
    let mut rx = f.channel().unwrap();
    let mut seen = 0;
    let e = loop {
        match rx.recv() {
            Ok(Some(_)) => seen += 1,
            Ok(None) => panic!("the writer died before END"),
            Err(e) => break e,
        }
    };
    assert_eq!(seen, 5, "messages written before the death are delivered");
    assert_eq!(e.code(), Some(ErrorCode::PeerDied), "{e}");
    assert!(f.wait().unwrap_err().is_peer_died());
    drop(rx);
    // CHAN-10: the restarted worker can open a channel in the only slot again.
    let f = pool.call_async("progress", &3u32.to_le_bytes());
    let msgs: Vec<Vec<u8>> = f.channel().unwrap().map(Result::unwrap).collect();
    assert_eq!(msgs.len(), 3);
    assert!(f.wait().is_ok());
}

/// A blocking call cannot take a channel, so one its handler opens is aborted at once: the
/// handler's sends fail with `CHANNEL_ABORTED` instead of waiting for ever for a reader, the
/// call ends, and the worker serves the next call. (Before, a handler streaming more than the
/// channel ring holds blocked its worker for good.)
#[test]
fn a_channel_opened_for_a_blocking_call_is_aborted_not_left_to_fill() {
    let pool = Pool::builder()
        .workers(1)
        .threads(handlers())
        .channels(1, 4096)
        .build()
        .unwrap();
    // 200 messages of up to 9 KiB: far more than the 4 KiB ring can hold unread.
    let e = pool.call("stream", &200u32.to_le_bytes()).unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ChannelAborted), "{e}");
    // The worker is free, and the slot was released: a streamed call works end to end.
    let f = pool.call_async("stream", &3u32.to_le_bytes());
    let got: Vec<_> = f.channel().unwrap().map(|m| m.unwrap().len()).collect();
    assert_eq!(got, vec![0, 97, 194]);
    assert_eq!(f.wait().unwrap().bytes(), &3u32.to_le_bytes());
}

#[test]
fn a_receiver_kept_after_its_end_does_not_hold_the_slot() {
    // One slot: every stream reopens it. The host's end is released when END (or an abort)
    // is received, so the next announcement of the slot is legitimate (CHAN-9, CHAN-14)
    // although the previous receivers are still alive.
    let pool = Pool::builder()
        .threads(handlers())
        .channels(1, 4096)
        .build()
        .unwrap();
    let mut kept = Vec::new();
    for round in 0..20u32 {
        let f = pool.call_async("stream", &3u32.to_le_bytes());
        let mut rx = f.channel().unwrap();
        let mut got = 0;
        while rx.recv().unwrap().is_some() {
            got += 1;
        }
        assert_eq!(got, 3, "round {round}");
        assert_eq!(f.wait().unwrap().bytes(), 3u32.to_le_bytes());
        kept.push(rx);
        // Aborted: received by a live receiver, or already aborted when announced (CHAN-2).
        let f = pool.call_async("abort_after", &1u32.to_le_bytes());
        let e = match f.channel() {
            Err(e) => e,
            Ok(mut rx) => loop {
                match rx.recv() {
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("an aborted stream does not end cleanly"),
                    Err(e) => {
                        kept.push(rx);
                        break e;
                    }
                }
            },
        };
        assert_eq!(
            e.code(),
            Some(ErrorCode::ChannelAborted),
            "round {round}: {e}"
        );
        f.wait().unwrap();
    }
    // A poisoned pool (BAD_CHANNEL for a slot it thought it held) would refuse this.
    let f = pool.call_async("stream", &1u32.to_le_bytes());
    expect_stream(&f, 1);
    f.wait().unwrap();
}
