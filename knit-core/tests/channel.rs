//! Channels (spec/06) over one formatted in-memory region: open, announce, attach, send and
//! receive (in place, fragmented, loaned), close, abort from either side, slot reuse, release
//! for a dead participant, and every `BAD_CHANNEL` case written as raw garbage into the slot.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use knit_core::channel::{
    attach, open, release_for_dead, ChannelEnd, ChannelEvent, ChannelReader, ChannelState,
    ChannelWriter, DeadRelease, EndRole, OpenedChannel, READER_RELEASED, WRITER_RELEASED,
};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::{
    CH_ABORT_CODE, CH_EPOCH, CH_READER, CH_RELEASED, CH_STATE, CH_TAG, CH_WRITER,
};
use knit_core::mailbox::{HostMailbox, WorkerEvent, WorkerMailbox};
use knit_core::participant::Identity;
use knit_core::records::{ChannelOpen, DataHead, FLAGS_SINGLE, FLAG_FIRST, TYPE_END, TYPE_REQUEST};
use knit_core::region::Region;
use knit_core::ring::Producer;
use knit_core::{Error, ErrorCode, SharedMem};

const HOST: u32 = 0;
const W1: u32 = 1;
const W2: u32 = 2;
const MAX_MESSAGE: u64 = 1 << 20;
const RING: u32 = 4096;

fn params(channel_slots: u32) -> Params {
    Params {
        worker_slots: 2,
        channel_slots,
        inflight_max: 4,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: if channel_slots == 0 { 0 } else { RING },
        max_message_len: MAX_MESSAGE,
    }
}

/// A freshly formatted region in leaked, 8-aligned memory.
fn region(channel_slots: u32) -> Region<'static> {
    let p = params(channel_slots);
    let len = Geometry::compute(&p).expect("geometry").region_len();
    let words: &'static mut [u64] = Box::leak(vec![0u64; len.div_ceil(8)].into_boxed_slice());
    let ptr = NonNull::new(words.as_mut_ptr().cast::<u8>()).expect("non-null");
    // SAFETY: the allocation is leaked (lives for 'static), 8-aligned, at least `len` bytes,
    // and after this point only accessed through the returned view.
    let mem = unsafe { SharedMem::new(ptr, words.len() * 8) };
    let host = Identity {
        pid: 1,
        start_time: 0,
        impl_name: "knit-core channel tests",
    };
    Region::format(mem, &p, &host, [9; 16], 0).expect("format")
}

fn ctrl(r: &Region<'static>, index: u32) -> SharedMem<'static> {
    r.channel_slot(index).unwrap().ctrl
}

fn state(r: &Region<'static>, index: u32) -> u32 {
    ctrl(r, index)
        .atomic_u32(CH_STATE)
        .unwrap()
        .load(Ordering::Acquire)
}

fn released(r: &Region<'static>, index: u32) -> u32 {
    ctrl(r, index)
        .atomic_u32(CH_RELEASED)
        .unwrap()
        .load(Ordering::Acquire)
}

fn set_atomic(r: &Region<'static>, index: u32, off: usize, value: u32) {
    ctrl(r, index)
        .atomic_u32(off)
        .unwrap()
        .store(value, Ordering::Release);
}

fn writer(end: ChannelEnd<'static>) -> ChannelWriter<'static> {
    match end {
        ChannelEnd::Writer(w) => w,
        ChannelEnd::Reader(_) => panic!("expected the writing end"),
    }
}

fn reader(end: ChannelEnd<'static>) -> ChannelReader<'static> {
    match end {
        ChannelEnd::Reader(r) => r,
        ChannelEnd::Writer(_) => panic!("expected the reading end"),
    }
}

/// Host opens a channel it writes to worker 1; both ends attached.
fn host_to_worker(
    r: &Region<'static>,
    tag: u64,
) -> (
    OpenedChannel,
    ChannelWriter<'static>,
    ChannelReader<'static>,
) {
    let opened = open(r, HOST, W1, EndRole::Writer, tag)
        .unwrap()
        .expect("a free slot");
    let w = writer(attach(r, opened.announcement(), HOST, W1).unwrap());
    let rd = reader(attach(r, opened.announcement(), W1, HOST).unwrap());
    (opened, w, rd)
}

/// Writes `payload` completely, receiving on `rd` whenever the ring is full; returns what was
/// received meanwhile (as owned copies).
fn send_all(
    w: &mut ChannelWriter<'static>,
    rd: &mut ChannelReader<'static>,
    ct: u32,
    payload: &[u8],
) -> Vec<(u32, Vec<u8>)> {
    let mut got = Vec::new();
    let mut out = w.start(ct, payload).unwrap();
    for _ in 0..10_000 {
        if w.write(&mut out).unwrap().done {
            return got;
        }
        if let Some(m) = recv_message(rd) {
            got.push(m);
        }
    }
    panic!("message never completed");
}

/// One receive; a message is copied out and released.
fn recv_message(rd: &mut ChannelReader<'static>) -> Option<(u32, Vec<u8>)> {
    match rd.recv().unwrap().event {
        Some(ChannelEvent::Message(m)) => {
            Some((m.content_type(), m.into_vec().expect("available")))
        }
        Some(ChannelEvent::End) => panic!("unexpected END"),
        None => None,
    }
}

/// Starts and writes one message (as far as the ring allows).
fn send(
    w: &mut ChannelWriter<'static>,
    ct: u32,
    payload: &[u8],
) -> Result<knit_core::mailbox::Sent, Error> {
    let mut out = w.start(ct, payload)?;
    w.write(&mut out)
}

fn code(e: Error) -> (ErrorCode, u64) {
    (e.code, e.found)
}

// ---- life of a channel ----------------------------------------------------------------------

#[test]
fn round_trip_announced_through_the_mailbox() {
    let r = region(2);
    let opened = open(&r, HOST, W1, EndRole::Writer, 42).unwrap().unwrap();
    assert_eq!(
        opened,
        OpenedChannel {
            index: 0,
            epoch: 1,
            tag: 42
        }
    );
    assert_eq!(state(&r, 0), ChannelState::Open as u32);
    let mut w = writer(attach(&r, opened.announcement(), HOST, W1).unwrap());
    assert_eq!((w.me(), w.peer(), w.channel()), (HOST, W1, opened));

    // CHAN-2: the announcement travels as CHANNEL_OPEN on the host's request ring.
    let mb = r.mailbox(0).unwrap();
    let mut host_mb = HostMailbox::new(mb, 4, MAX_MESSAGE).unwrap();
    let mut worker_mb = WorkerMailbox::new(mb, 4, MAX_MESSAGE).unwrap();
    assert!(
        host_mb
            .send_channel_open(&opened.announcement())
            .unwrap()
            .done
    );
    let Some(WorkerEvent::ChannelOpen(received)) = worker_mb.poll().unwrap().event else {
        panic!("expected CHANNEL_OPEN");
    };
    let mut rd = reader(attach(&r, received, W1, HOST).unwrap());
    assert_eq!((rd.me(), rd.peer()), (W1, HOST));

    let small = b"hello channel";
    let big: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut got = send_all(&mut w, &mut rd, 1, small);
    got.extend(send_all(&mut w, &mut rd, 0x8000_0001, &big));
    got.extend(send_all(&mut w, &mut rd, 0, &[]));
    let closed = w.close().unwrap();
    assert!(closed.done && closed.published);
    assert!(!w.is_live(), "CHAN-4: the writer released after END");
    assert_eq!(released(&r, 0), WRITER_RELEASED);
    loop {
        match rd.recv().unwrap().event {
            Some(ChannelEvent::Message(m)) => got.push((m.content_type(), m.into_vec().unwrap())),
            Some(ChannelEvent::End) => break,
            None => {}
        }
    }
    assert_eq!(
        got,
        vec![(1, small.to_vec()), (0x8000_0001, big), (0, Vec::new())]
    );
    // CHAN-4: END releases the reader; the pair is complete, so the slot is FREE (CHAN-9).
    assert!(rd.is_ended() && !rd.is_live());
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
    assert_eq!(released(&r, 0), WRITER_RELEASED | READER_RELEASED);
    // End-of-stream is reported again, without touching the slot.
    assert!(matches!(rd.recv().unwrap().event, Some(ChannelEvent::End)));
    // The closed writer refuses more work (API misuse, not a protocol error).
    assert_eq!(
        w.start(0, b"late").unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(w.close().unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(
        w.abort(3),
        Ok(false),
        "abort of a finished end changes nothing"
    );
}

#[test]
fn a_worker_opens_a_channel_the_host_reads() {
    let r = region(1);
    let opened = open(&r, W2, HOST, EndRole::Writer, 7).unwrap().unwrap();
    let mut w = writer(attach(&r, opened.announcement(), W2, HOST).unwrap());
    let mut rd = reader(attach(&r, opened.announcement(), HOST, W2).unwrap());
    assert!(send(&mut w, 5, b"progress 50%").unwrap().done);
    assert_eq!(recv_message(&mut rd), Some((5, b"progress 50%".to_vec())));
    assert_eq!(recv_message(&mut rd), None, "nothing more published");
    assert!(w.close().unwrap().done);
    assert!(matches!(rd.recv().unwrap().event, Some(ChannelEvent::End)));
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn one_record_messages_are_delivered_in_place_and_released_on_drop() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    for i in 0..3u8 {
        assert!(send(&mut w, 1, &[i; 100]).unwrap().done);
    }
    for i in 0..3u8 {
        let received = rd.recv().unwrap();
        let Some(ChannelEvent::Message(m)) = received.event else {
            panic!("expected a message")
        };
        assert!(m.is_in_place() && m.is_available());
        assert_eq!(m.bytes(), &[i; 100]);
        // Dropping the message releases its record: the next receive delivers the next one,
        // never the same one again.
    }
    assert!(rd.recv().unwrap().event.is_none());
}

#[test]
fn loaned_messages_are_written_in_place() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    let mut loan = w.loan(3, 200).unwrap().expect("space");
    loan.payload()[..5].copy_from_slice(b"loan!");
    loan.commit(5).unwrap();
    assert!(w.publish(), "a committed loan is published on request");
    assert!(!w.publish(), "nothing new to publish");
    assert_eq!(recv_message(&mut rd), Some((3, b"loan!".to_vec())));
    // A loan that cannot fit one record is refused; so is one beyond max_message_len.
    assert_eq!(
        w.loan(0, RING as usize).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        w.loan(0, MAX_MESSAGE as usize + 1).unwrap_err().code,
        ErrorCode::PayloadTooLarge
    );
    // A loan dropped without commit sends nothing.
    let abandoned = w.loan(0, 10).unwrap();
    assert!(abandoned.is_some(), "space for a small loan");
    let _ = abandoned;
    assert!(!w.publish());
    assert_eq!(recv_message(&mut rd), None);
}

#[test]
fn backpressure_never_drops_and_wakes_on_release() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    let payload = [0xA5u8; 1000];
    let mut sent = 0u32;
    // CHAN-6: fill the ring until a message does not fit.
    let mut pending = loop {
        let mut out = w.start(sent, &payload).unwrap();
        let s = w.write(&mut out).unwrap();
        if !s.done {
            break out;
        }
        sent += 1;
    };
    assert!(
        sent >= 3,
        "a 4096-byte ring holds at least three 1 KiB messages"
    );
    assert!(!w.is_ready(), "blocked writer: nothing changed yet");
    assert!(!w.write(&mut pending).unwrap().done, "still no space");
    // The reader takes one message and stores its head: the writer may retry.
    assert_eq!(recv_message(&mut rd), Some((0, payload.to_vec())));
    {
        let polled = rd.recv().unwrap();
        let Some(ChannelEvent::Message(m)) = polled.event else {
            panic!("second message")
        };
        assert_eq!(m.content_type(), 1);
    }
    assert!(
        rd.publish_head(),
        "WAIT-6: the released head is stored on request"
    );
    assert!(w.is_ready(), "the reader's head moved");
    assert!(w.write(&mut pending).unwrap().done);
    sent += 1;
    // Every message arrives, in order, exactly once (CHAN-3).
    let mut next = 2;
    while let Some((ct, bytes)) = recv_message(&mut rd) {
        assert_eq!((ct, bytes.len()), (next, payload.len()));
        next += 1;
    }
    assert_eq!(next, sent);
    assert!(!rd.is_ready(), "nothing published beyond what was read");
}

#[test]
fn fragmented_messages_resume_and_block_other_writes_until_done() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    let big = vec![7u8; 9000];
    let mut out = w.start(1, &big).unwrap();
    assert!(
        !w.write(&mut out).unwrap().done,
        "9000 bytes exceed a 4096-byte ring"
    );
    assert!(out.is_started());
    // MSG-2: nothing else until it is finished.
    assert_eq!(
        w.start(1, b"x").unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(w.close().unwrap_err().code, ErrorCode::InvalidArgument);
    assert_eq!(w.loan(1, 8).unwrap_err().code, ErrorCode::InvalidArgument);
    let mut got = None;
    while !w.write(&mut out).unwrap().done {
        if let Some(m) = recv_message(&mut rd) {
            got = Some(m);
        }
    }
    while got.is_none() {
        got = recv_message(&mut rd);
    }
    assert_eq!(got, Some((1, big)));
    assert!(w.start(2, b"after").is_ok());
}

#[test]
fn payload_limit_is_checked_before_sending() {
    let r = region(1);
    let (_, mut w, _rd) = host_to_worker(&r, 0);
    let huge = vec![0u8; MAX_MESSAGE as usize + 1];
    let e = w.start(0, &huge).unwrap_err();
    assert_eq!(
        (e.code, e.found, e.expected),
        (ErrorCode::PayloadTooLarge, MAX_MESSAGE + 1, MAX_MESSAGE)
    );
}

// ---- abort ----------------------------------------------------------------------------------

#[test]
fn reader_abort_fails_the_writer_with_the_code() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    assert!(send(&mut w, 0, b"unread").unwrap().done);
    assert_eq!(
        rd.abort(0).unwrap_err().code,
        ErrorCode::InvalidArgument,
        "0 is never an abort code"
    );
    assert_eq!(rd.abort(1234), Ok(true), "CHAN-5: this call stored ABORTED");
    assert_eq!(state(&r, 0), ChannelState::Aborted as u32);
    assert_eq!(
        released(&r, 0),
        READER_RELEASED,
        "the aborting end released"
    );
    assert_eq!(
        code(rd.recv().unwrap_err()),
        (ErrorCode::ChannelAborted, 1234)
    );
    // The writer learns at its next operation, with the code, and releases (slot FREE).
    assert_eq!(
        code(send(&mut w, 0, b"more").unwrap_err()),
        (ErrorCode::ChannelAborted, 1234)
    );
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
    assert_eq!(
        code(w.close().unwrap_err()),
        (ErrorCode::ChannelAborted, 1234),
        "sticky"
    );
}

#[test]
fn a_writer_waiting_on_a_full_ring_sees_the_abort_not_a_full_ring() {
    // CHAN-5, CHAN-6: once the reader aborted, a write that found the ring full is answered
    // CHANNEL_ABORTED, never "no room yet" (which would have the writer wait for room that
    // never comes).
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    let chunk = [5u8; 512];
    let mut out = loop {
        let mut out = w.start(0, &chunk).unwrap();
        if !w.write(&mut out).unwrap().done {
            break out;
        }
    };
    assert_eq!(rd.abort(99), Ok(true));
    assert_eq!(
        code(w.write(&mut out).unwrap_err()),
        (ErrorCode::ChannelAborted, 99)
    );
    assert_eq!(
        code(send(&mut w, 0, b"after").unwrap_err()),
        (ErrorCode::ChannelAborted, 99)
    );
}

#[test]
fn writer_abort_discards_undelivered_messages() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    for _ in 0..2 {
        assert!(send(&mut w, 0, b"lost").unwrap().done);
    }
    assert!(rd.is_ready(), "two messages are published");
    assert_eq!(w.abort(77), Ok(true));
    assert_eq!(
        code(rd.recv().unwrap_err()),
        (ErrorCode::ChannelAborted, 77)
    );
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn concurrent_aborts_report_the_first_code() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    // The writer's code is stored first, but the reader wins the state change (as if the two
    // interleaved): both still report the code that was stored first.
    set_atomic(&r, 0, CH_ABORT_CODE, 5);
    assert_eq!(rd.abort(6), Ok(true));
    assert_eq!(code(rd.recv().unwrap_err()), (ErrorCode::ChannelAborted, 5));
    assert_eq!(w.abort(6), Ok(false), "already aborted: nothing stored");
    assert_eq!(
        code(send(&mut w, 0, b"x").unwrap_err()),
        (ErrorCode::ChannelAborted, 5)
    );
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn abort_before_the_peer_attached_is_reported_at_attach() {
    let r = region(1);
    let opened = open(&r, HOST, W1, EndRole::Reader, 1).unwrap().unwrap();
    let mut rd = reader(attach(&r, opened.announcement(), HOST, W1).unwrap());
    assert_eq!(rd.abort(4321), Ok(true));
    // CHAN-2: not a violation; the late end is released and the slot freed.
    let e = attach(&r, opened.announcement(), W1, HOST).unwrap_err();
    assert_eq!(code(e), (ErrorCode::ChannelAborted, 4321));
    assert!(!e.code.is_violation());
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn dropping_a_live_end_aborts_with_cancelled() {
    let r = region(2);
    let (_, w, mut rd) = host_to_worker(&r, 0);
    drop(w);
    assert_eq!(
        code(rd.recv().unwrap_err()),
        (ErrorCode::ChannelAborted, ErrorCode::Cancelled as u64)
    );
    assert_eq!(state(&r, 0), ChannelState::Free as u32);

    let (_, mut w, rd) = host_to_worker(&r, 0);
    drop(rd);
    assert_eq!(
        code(w.close().unwrap_err()),
        (ErrorCode::ChannelAborted, ErrorCode::Cancelled as u64)
    );
    // Dropping ends that are done (released) changes nothing.
    drop(w);
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn peer_died_releases_and_fails_later_operations() {
    let r = region(1);
    let (_, mut w, mut rd) = host_to_worker(&r, 0);
    rd.peer_died().unwrap();
    assert_eq!(released(&r, 0), READER_RELEASED);
    assert_eq!(rd.recv().unwrap_err().code, ErrorCode::PeerDied);
    w.peer_died().unwrap();
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
    assert_eq!(w.start(0, b"").unwrap_err().code, ErrorCode::PeerDied);
}

// ---- slots ----------------------------------------------------------------------------------

#[test]
fn slot_reuse_bumps_the_epoch_and_rejects_the_old_announcement() {
    let r = region(1);
    let (first, mut w, mut rd) = host_to_worker(&r, 10);
    assert!(w.close().unwrap().done);
    assert!(matches!(rd.recv().unwrap().event, Some(ChannelEvent::End)));
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
    let second = open(&r, W1, HOST, EndRole::Writer, 11).unwrap().unwrap();
    assert_eq!((second.index, second.epoch), (first.index, first.epoch + 1));
    assert_eq!(released(&r, 0), 0, "CHAN-1: released reset");
    let stale = ChannelOpen {
        tag: 11,
        ..first.announcement()
    };
    let e = attach(&r, stale, HOST, W1).unwrap_err();
    assert_eq!((e.code, e.found, e.expected), (ErrorCode::BadChannel, 2, 1));
    // The new opening works, and its ring starts empty at position 0.
    let mut w2 = writer(attach(&r, second.announcement(), W1, HOST).unwrap());
    let mut rd2 = reader(attach(&r, second.announcement(), HOST, W1).unwrap());
    assert!(send(&mut w2, 9, b"again").unwrap().done);
    assert_eq!(recv_message(&mut rd2), Some((9, b"again".to_vec())));
}

#[test]
fn no_free_slot_is_not_an_error() {
    let r = region(1);
    let _held = host_to_worker(&r, 0);
    assert_eq!(open(&r, HOST, W2, EndRole::Writer, 0), Ok(None));
    let none = region(0);
    assert_eq!(
        open(&none, HOST, W1, EndRole::Writer, 0).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
}

#[test]
fn open_refuses_pairs_outside_chan_11() {
    let r = region(1);
    for (me, peer) in [(W1, W2), (W1, W1), (HOST, HOST), (HOST, 3), (3, HOST)] {
        let e = open(&r, me, peer, EndRole::Writer, 0).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{me} {peer}");
    }
    assert_eq!(state(&r, 0), ChannelState::Free as u32, "nothing claimed");
}

#[test]
fn open_reports_a_garbage_state_while_scanning() {
    let r = region(2);
    set_atomic(&r, 0, CH_STATE, 9);
    assert_eq!(
        code(open(&r, HOST, W1, EndRole::Writer, 0).unwrap_err()),
        (ErrorCode::BadChannel, 9)
    );
}

// ---- attach: every BAD_CHANNEL case ---------------------------------------------------------

fn expect_bad(r: &Region<'static>, ann: ChannelOpen, me: u32, peer: u32) -> Error {
    let e = attach(r, ann, me, peer).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadChannel, "{e}");
    e
}

#[test]
fn attach_validates_the_announcement_against_the_slot() {
    let r = region(2);
    let opened = open(&r, HOST, W1, EndRole::Writer, 5).unwrap().unwrap();
    let ann = opened.announcement();
    // CHAN-2: index past the table, another epoch, another tag.
    expect_bad(&r, ChannelOpen { channel: 2, ..ann }, W1, HOST);
    expect_bad(
        &r,
        ChannelOpen {
            channel: u32::MAX,
            ..ann
        },
        W1,
        HOST,
    );
    expect_bad(&r, ChannelOpen { epoch: 2, ..ann }, W1, HOST);
    expect_bad(&r, ChannelOpen { tag: 6, ..ann }, W1, HOST);
    // A slot that was never opened.
    expect_bad(&r, ChannelOpen { channel: 1, ..ann }, W1, HOST);
    // A participant that is not named, or an announcer that is not the other end.
    expect_bad(&r, ann, W2, HOST);
    expect_bad(&r, ann, W1, W2);
    // API misuse is not a violation.
    assert_eq!(
        attach(&r, ann, W1, W1).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        attach(&r, ann, 3, HOST).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    // Still attachable by the right participants.
    assert!(matches!(
        attach(&r, ann, W1, HOST),
        Ok(ChannelEnd::Reader(_))
    ));
}

#[test]
fn attach_refuses_garbage_in_the_control_block() {
    let r = region(1);
    let opened = open(&r, HOST, W1, EndRole::Writer, 5).unwrap().unwrap();
    let ann = opened.announcement();
    let c = ctrl(&r, 0);
    let restore = |r: &Region<'static>| {
        set_atomic(r, 0, CH_STATE, ChannelState::Open as u32);
        c.write_u32(CH_WRITER, HOST).unwrap();
        c.write_u32(CH_READER, W1).unwrap();
        set_atomic(r, 0, CH_RELEASED, 0);
    };
    // CHAN-7: a state above 3.
    for raw in [4, 0xFFFF_FFFF] {
        set_atomic(&r, 0, CH_STATE, raw);
        assert_eq!(expect_bad(&r, ann, W1, HOST).found, u64::from(raw));
    }
    // CHAN-2: FREE or OPENING is not an announced channel.
    for s in [ChannelState::Free, ChannelState::Opening] {
        set_atomic(&r, 0, CH_STATE, s as u32);
        expect_bad(&r, ann, W1, HOST);
    }
    restore(&r);
    // CHAN-7: indices outside the participant table, or writer = reader.
    c.write_u32(CH_WRITER, 3).unwrap();
    assert_eq!(expect_bad(&r, ann, W1, HOST).what, "channel.writer");
    restore(&r);
    c.write_u32(CH_READER, 0xFFFF_FFFF).unwrap();
    assert_eq!(expect_bad(&r, ann, W1, HOST).what, "channel.reader");
    restore(&r);
    c.write_u32(CH_READER, HOST).unwrap();
    expect_bad(&r, ann, W1, HOST);
    restore(&r);
    // CHAN-2: this end's bit already set.
    set_atomic(&r, 0, CH_RELEASED, READER_RELEASED);
    expect_bad(&r, ann, W1, HOST);
    restore(&r);
    // A tag rewritten after the announcement.
    c.write_u64(CH_TAG, 6).unwrap();
    expect_bad(&r, ann, W1, HOST);
    c.write_u64(CH_TAG, 5).unwrap();
    assert!(
        attach(&r, ann, W1, HOST).is_ok(),
        "the restored slot is accepted"
    );
}

#[test]
fn an_attached_end_refuses_a_slot_it_no_longer_holds() {
    for raw in [
        ChannelState::Free as u32,
        ChannelState::Opening as u32,
        4,
        77,
    ] {
        let r = region(1);
        let (_, mut w, mut rd) = host_to_worker(&r, 0);
        set_atomic(&r, 0, CH_STATE, raw);
        // CHAN-12: both ends stop with BAD_CHANNEL and touch the slot no more.
        assert_eq!(
            send(&mut w, 0, b"x").unwrap_err().code,
            ErrorCode::BadChannel
        );
        assert_eq!(rd.recv().unwrap_err().code, ErrorCode::BadChannel);
        set_atomic(&r, 0, CH_STATE, ChannelState::Open as u32);
        assert_eq!(rd.recv().unwrap_err().code, ErrorCode::BadChannel, "sticky");
        assert_eq!(
            w.abort(1).unwrap_err().code,
            ErrorCode::BadChannel,
            "a violation stays reported"
        );
        drop((w, rd));
        assert_eq!(released(&r, 0), 0, "no release after a violation");
        assert_eq!(state(&r, 0), ChannelState::Open as u32);
    }
}

#[test]
fn own_bit_set_before_release_is_a_violation() {
    let r = region(1);
    let (_, mut w, _rd) = host_to_worker(&r, 0);
    set_atomic(&r, 0, CH_RELEASED, WRITER_RELEASED);
    let e = w.abort(8).unwrap_err();
    assert_eq!(
        (e.code, e.what),
        (
            ErrorCode::BadChannel,
            "channel.released (own bit set before this end released)"
        )
    );
}

// ---- ring and message violations propagate with their own codes ------------------------------

#[test]
fn a_broken_tail_is_bad_position_for_the_reader() {
    let r = region(1);
    let (_, _w, mut rd) = host_to_worker(&r, 0);
    let ring = r.channel_slot(0).unwrap().ring;
    ring.ctrl
        .atomic_u64(0)
        .unwrap()
        .store(12, Ordering::Release);
    assert_eq!(rd.recv().unwrap_err().code, ErrorCode::BadPosition);
    assert_eq!(
        rd.recv().unwrap_err().code,
        ErrorCode::BadPosition,
        "sticky"
    );
    assert_eq!(released(&r, 0), 0, "no release after a violation");
}

#[test]
fn a_broken_head_is_bad_position_for_the_writer() {
    let r = region(1);
    let (_, mut w, _rd) = host_to_worker(&r, 0);
    let ring = r.channel_slot(0).unwrap().ring;
    let big = vec![0u8; 3000];
    assert!(send(&mut w, 0, &big).unwrap().done);
    // The reader "releases" bytes it was never shown.
    ring.ctrl
        .atomic_u64(0x40)
        .unwrap()
        .store(1 << 20, Ordering::Release);
    assert_eq!(
        send(&mut w, 0, &big).unwrap_err().code,
        ErrorCode::BadPosition
    );
}

#[test]
fn foreign_records_on_a_channel_ring_are_refused() {
    let r = region(1);
    let (_, w, mut rd) = host_to_worker(&r, 0);
    // A hostile writer bypasses ChannelWriter and produces raw records.
    let mut raw = Producer::new(r.channel_slot(0).unwrap().ring);
    assert!(raw.try_write(TYPE_REQUEST, FLAGS_SINGLE, &[0; 40]).unwrap());
    raw.publish();
    assert_eq!(rd.recv().unwrap_err().code, ErrorCode::UnknownRecord);
    std::mem::forget(w);
}

#[test]
fn end_inside_a_fragmented_message_is_bad_fragment() {
    let r = region(1);
    let (_, w, mut rd) = host_to_worker(&r, 0);
    let mut raw = Producer::new(r.channel_slot(0).unwrap().ring);
    let head = DataHead {
        content_type: 0,
        payload_len: 100,
    }
    .encode();
    let mut first = head.to_vec();
    first.extend_from_slice(&[1; 10]);
    assert!(raw
        .try_write(knit_core::records::TYPE_DATA, FLAG_FIRST, &first)
        .unwrap());
    assert!(raw.try_write(TYPE_END, FLAGS_SINGLE, &[]).unwrap());
    raw.publish();
    assert_eq!(rd.recv().unwrap_err().code, ErrorCode::BadFragment);
    std::mem::forget(w);
}

// ---- CHAN-10 and CHAN-13: a dead participant ---------------------------------------------------

#[test]
fn release_for_dead_reader_lets_the_host_writer_see_peer_died() {
    let r = region(2);
    let (opened, mut w, rd) = host_to_worker(&r, 0);
    std::mem::forget(rd); // worker 1 dies holding its end
    let mut asked = Vec::new();
    let done = release_for_dead(&r, W1, |c| {
        asked.push(*c);
        true
    })
    .unwrap();
    assert_eq!(
        done,
        DeadRelease {
            ends_released: 1,
            slots_freed: 0
        }
    );
    assert_eq!(
        asked,
        vec![opened],
        "the host is asked whether it attached its end"
    );
    assert_eq!(released(&r, 0), READER_RELEASED);
    // CHAN-13: the writer learns once it lacks space, and releases; the slot is FREE.
    let payload = [0u8; 1000];
    let e = loop {
        match send(&mut w, 0, &payload) {
            Ok(s) if s.done => {}
            Ok(_) => panic!("a blocked write must see the reader gone"),
            Err(e) => break e,
        }
    };
    assert_eq!(e.code, ErrorCode::PeerDied);
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
    // A second pass finds nothing to do.
    assert_eq!(
        release_for_dead(&r, W1, |_| true),
        Ok(DeadRelease::default())
    );
}

#[test]
fn release_for_dead_writer_delivers_what_was_published_then_peer_died() {
    let r = region(1);
    let opened = open(&r, W1, HOST, EndRole::Writer, 0).unwrap().unwrap();
    let mut w = writer(attach(&r, opened.announcement(), W1, HOST).unwrap());
    let mut rd = reader(attach(&r, opened.announcement(), HOST, W1).unwrap());
    for i in 0..2u32 {
        assert!(send(&mut w, i, b"before death").unwrap().done);
    }
    std::mem::forget(w);
    let mut held = Vec::new();
    let done = release_for_dead(&r, W1, |c| {
        held.push(*c);
        true
    })
    .unwrap();
    assert_eq!(done.ends_released, 1);
    assert_eq!(
        held,
        vec![opened],
        "the host is asked whether it attached its end"
    );
    assert!(rd.is_ready());
    assert_eq!(recv_message(&mut rd), Some((0, b"before death".to_vec())));
    assert_eq!(recv_message(&mut rd), Some((1, b"before death".to_vec())));
    assert_eq!(rd.recv().unwrap_err().code, ErrorCode::PeerDied);
    assert_eq!(state(&r, 0), ChannelState::Free as u32);
}

#[test]
fn release_for_dead_frees_channels_the_host_never_attached() {
    let r = region(2);
    // Worker 2 opened a channel, attached its end and died before the host read the
    // announcement; a channel of worker 1 is left alone.
    let lost = open(&r, W2, HOST, EndRole::Reader, 0).unwrap().unwrap();
    std::mem::forget(reader(attach(&r, lost.announcement(), W2, HOST).unwrap()));
    let (_, _w, _rd) = host_to_worker(&r, 0);
    let done = release_for_dead(&r, W2, |_| false).unwrap();
    assert_eq!(
        done,
        DeadRelease {
            ends_released: 2,
            slots_freed: 1
        }
    );
    assert_eq!(state(&r, lost.index), ChannelState::Free as u32);
    assert_eq!(state(&r, 1 - lost.index), ChannelState::Open as u32);
    // The freed slot is reusable.
    assert_eq!(
        open(&r, W2, HOST, EndRole::Reader, 0)
            .unwrap()
            .map(|c| c.index),
        Some(lost.index)
    );
}

#[test]
fn release_for_dead_checks_its_arguments_and_the_slots() {
    let r = region(1);
    assert_eq!(
        release_for_dead(&r, HOST, |_| true).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    assert_eq!(
        release_for_dead(&r, 3, |_| true).unwrap_err().code,
        ErrorCode::InvalidArgument
    );
    let (_, _w, _rd) = host_to_worker(&r, 0);
    ctrl(&r, 0).write_u32(CH_READER, HOST).unwrap();
    assert_eq!(
        release_for_dead(&r, W1, |_| true).unwrap_err().code,
        ErrorCode::BadChannel
    );
    set_atomic(&r, 0, CH_STATE, 12);
    assert_eq!(
        release_for_dead(&r, W1, |_| true).unwrap_err().code,
        ErrorCode::BadChannel
    );
    // Restored, the slot names workers 0 and 1 only: releasing for worker 2 touches nothing.
    set_atomic(&r, 0, CH_STATE, ChannelState::Open as u32);
    ctrl(&r, 0).write_u32(CH_READER, W1).unwrap();
    set_atomic(&r, 0, CH_EPOCH, 1);
    assert_eq!(
        release_for_dead(&r, W2, |_| true),
        Ok(DeadRelease::default())
    );
}
