//! A writer and a reader on two threads, each waiting for the other only through the wake
//! conditions a runtime would park on (`is_ready`, WAIT-2 step 3): every message arrives once,
//! in order, then END (CHAN-3, CHAN-4, CHAN-6), and an abort from either side reaches the
//! other with its code (CHAN-5). No timing is asserted; a lost wake-up shows as a wait that
//! never ends, which the bounded waits below turn into a failure.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::thread;

use knit_core::channel::{
    attach, open, ChannelEnd, ChannelEvent, ChannelReader, ChannelState, ChannelWriter, EndRole,
};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::CH_STATE;
use knit_core::participant::Identity;
use knit_core::region::Region;
use knit_core::{ErrorCode, SharedMem};

/// Yields between checks of a wake condition; far more than any scheduler needs to run the
/// other thread, so reaching it means the condition never became true.
const MAX_WAIT_ROUNDS: u64 = 50_000_000;

fn region() -> Region<'static> {
    let p = Params {
        worker_slots: 1,
        channel_slots: 1,
        inflight_max: 1,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 4096,
        max_message_len: 1 << 16,
    };
    let len = Geometry::compute(&p).expect("geometry").region_len();
    let words: &'static mut [u64] = Box::leak(vec![0u64; len.div_ceil(8)].into_boxed_slice());
    let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: the allocation is leaked (lives for 'static), 8-aligned, at least `len` bytes,
    // and after this point only accessed through the returned view.
    let mem = unsafe { SharedMem::new(ptr, words.len() * 8) };
    let host = Identity {
        pid: 1,
        start_time: 0,
        impl_name: "knit-core channel threads",
    };
    Region::format(mem, &p, &host, [5; 16], 0).expect("format")
}

fn ends(r: &Region<'static>) -> (ChannelWriter<'static>, ChannelReader<'static>) {
    let opened = open(r, 1, 0, EndRole::Writer, 0).unwrap().unwrap();
    let ChannelEnd::Writer(w) = attach(r, opened.announcement(), 1, 0).unwrap() else {
        panic!("writer")
    };
    let ChannelEnd::Reader(rd) = attach(r, opened.announcement(), 0, 1).unwrap() else {
        panic!("reader")
    };
    (w, rd)
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    for _ in 0..MAX_WAIT_ROUNDS {
        if ready() {
            return;
        }
        thread::yield_now();
    }
    panic!("{what}: the wake condition never became true (lost wake-up)");
}

/// Sizes from a fixed pseudo-random sequence: one-record and fragmented messages mixed.
fn sizes(n: usize) -> Vec<usize> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 4 == 0 {
                (x % 9000) as usize
            } else {
                (x % 300) as usize
            }
        })
        .collect()
}

fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 13 + j) as u8).collect()
}

/// The runtime moves ends to the threads that use them: checked at compile time.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<ChannelWriter<'static>>();
    assert_send::<ChannelReader<'static>>();
};

#[test]
fn two_threads_stream_many_messages_in_order() {
    let r = region();
    let (mut w, mut rd) = ends(&r);
    let lens = sizes(2000);
    let expected: Vec<Vec<u8>> = lens
        .iter()
        .enumerate()
        .map(|(i, &n)| payload(i, n))
        .collect();
    thread::scope(|s| {
        let expected_w = &expected;
        s.spawn(move || {
            for (i, bytes) in expected_w.iter().enumerate() {
                let mut out = w.start(i as u32, bytes).unwrap();
                while !w.write(&mut out).unwrap().done {
                    wait_until("writer waiting for space", || w.is_ready());
                }
            }
            while !w.close().unwrap().done {
                wait_until("writer waiting to close", || w.is_ready());
            }
        });
        let mut next = 0usize;
        loop {
            // The event borrows the reader; decide inside, wait outside.
            let ended = match rd.recv().unwrap().event {
                Some(ChannelEvent::Message(m)) => {
                    assert_eq!(m.content_type() as usize, next);
                    assert_eq!(m.bytes(), expected[next].as_slice(), "message {next}");
                    next += 1;
                    continue;
                }
                Some(ChannelEvent::End) => true,
                None => false,
            };
            if ended {
                break;
            }
            wait_until("reader waiting for data", || rd.is_ready());
        }
        assert_eq!(next, expected.len(), "every message before END (CHAN-4)");
    });
    let state = r
        .channel_slot(0)
        .unwrap()
        .ctrl
        .atomic_u32(CH_STATE)
        .unwrap()
        .load(Ordering::Acquire);
    assert_eq!(state, ChannelState::Free as u32);
}

#[test]
fn an_abort_from_the_reader_stops_a_streaming_writer() {
    let r = region();
    let (mut w, mut rd) = ends(&r);
    thread::scope(|s| {
        let writer = s.spawn(move || {
            let chunk = [1u8; 700];
            for i in 0u32.. {
                let mut out = match w.start(i, &chunk) {
                    Ok(out) => out,
                    Err(e) => return e,
                };
                loop {
                    match w.write(&mut out) {
                        Ok(sent) if sent.done => break,
                        Ok(_) => wait_until("writer waiting for space", || w.is_ready()),
                        Err(e) => return e,
                    }
                }
            }
            unreachable!("the writer only stops on an error")
        });
        let mut taken = 0;
        while taken < 50 {
            let got = match rd.recv().unwrap().event {
                Some(ChannelEvent::Message(_)) => true,
                Some(ChannelEvent::End) => panic!("no END was written"),
                None => false,
            };
            if got {
                taken += 1;
            } else {
                wait_until("reader waiting for data", || rd.is_ready());
            }
        }
        assert_eq!(rd.abort(4242), Ok(true));
        let e = writer.join().unwrap();
        assert_eq!((e.code, e.found), (ErrorCode::ChannelAborted, 4242));
    });
    let state = r
        .channel_slot(0)
        .unwrap()
        .ctrl
        .atomic_u32(CH_STATE)
        .unwrap()
        .load(Ordering::Acquire);
    assert_eq!(state, ChannelState::Free as u32, "both ends released");
}
