//! A worker served by a host that breaks the channel rules (SEC-5: the worker treats the
//! host's memory as hostile): this test plays the host with the protocol core directly.

use knit::{Futex, RegionHandle, Worker};
use knit_core::channel::{self, ChannelEnd, EndRole};
use knit_core::geometry::Params;
use knit_core::mailbox::{HostEvent, HostMailbox};
use knit_core::ErrorCode;

const SLOT: u32 = 1;

fn params() -> Params {
    Params {
        worker_slots: 1,
        channel_slots: 2,
        inflight_max: 4,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: 4096,
        max_message_len: 1 << 16,
    }
}

#[test]
fn a_second_announcement_of_a_held_slot_is_bad_channel() {
    let handle = RegionHandle::create(&params()).unwrap();
    let name = handle.name().unwrap().as_str().to_owned();
    let region = handle.region();
    let g = *region.geometry();
    region.participant(SLOT).unwrap().reserve().unwrap();
    let worker = std::thread::spawn(move || {
        Worker::new(name, SLOT)
            .handle("noop", |_ctx, _req| Ok(Vec::new()))
            .serve()
    });
    let mut host = HostMailbox::new(
        region.mailbox(SLOT - 1).unwrap(),
        g.inflight_max(),
        g.max_message_len(),
    )
    .unwrap();
    // MBX-2: wait for the worker's HELLO.
    loop {
        let polled = host.poll().unwrap();
        if matches!(polled.event, Some(HostEvent::Hello(_))) {
            break;
        }
        std::thread::yield_now();
    }
    // CHAN-1: a channel from the host to the worker, announced twice (CHAN-2).
    let opened = channel::open(&region, 0, SLOT, EndRole::Writer, 7)
        .unwrap()
        .unwrap();
    let Ok(ChannelEnd::Writer(_writer)) = channel::attach(&region, opened.announcement(), 0, SLOT)
    else {
        panic!("the host's end is the writer");
    };
    for _ in 0..2 {
        assert!(host.send_channel_open(&opened.announcement()).unwrap().done);
    }
    // A worker that let the duplicate through would read this and end cleanly instead.
    assert!(host.send_shutdown().unwrap().done);
    region
        .participant(SLOT)
        .unwrap()
        .doorbell()
        .unwrap()
        .ring(&Futex);
    // CHAN-14: the worker holds the slot, so the second announcement is forged: a violation
    // that poisons the region (ERR-2) and ends the worker (LIVE-7).
    let e = worker.join().unwrap().unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadChannel, "{e}");
    assert_eq!(region.poison_code(), ErrorCode::BadChannel as u32);
    assert_eq!(region.poisoned_by(), SLOT + 1);
    handle.unlink().unwrap();
}
