//! Property: whatever the message sizes (one record, fragmented, larger than the ring, empty),
//! the mix of copied and loaned sends, and the interleaving of writer and reader steps, the
//! reader receives exactly the messages written, in order, each once, then end-of-stream
//! (CHAN-3, CHAN-4, CHAN-6, MSG-1 to MSG-3), and the slot ends FREE (CHAN-9).

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use knit_core::channel::{
    attach, open, ChannelEnd, ChannelEvent, ChannelReader, ChannelState, ChannelWriter, EndRole,
    OutgoingData,
};
use knit_core::geometry::{Geometry, Params};
use knit_core::layout::CH_STATE;
use knit_core::participant::Identity;
use knit_core::region::Region;
use knit_core::SharedMem;
use proptest::prelude::*;

const RING: u32 = 4096;
/// The largest payload a loan can carry: one record of at most `RING / 2` bytes (RING-1)
/// holding the 8-byte record header and the 16-byte DATA head.
const MAX_LOAN: usize = RING as usize / 2 - 8 - 16;

fn region() -> Region<'static> {
    let p = Params {
        worker_slots: 1,
        channel_slots: 1,
        inflight_max: 1,
        request_ring_cap: 4096,
        response_ring_cap: 4096,
        channel_ring_cap: RING,
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
        impl_name: "knit-core channel proptest",
    };
    Region::format(mem, &p, &host, [3; 16], 0).expect("format")
}

fn ends(r: &Region<'static>) -> (ChannelWriter<'static>, ChannelReader<'static>) {
    let opened = open(r, 0, 1, EndRole::Writer, 0).unwrap().unwrap();
    let ChannelEnd::Writer(w) = attach(r, opened.announcement(), 0, 1).unwrap() else {
        panic!("writer")
    };
    let ChannelEnd::Reader(rd) = attach(r, opened.announcement(), 1, 0).unwrap() else {
        panic!("reader")
    };
    (w, rd)
}

/// The payload of message `i`: `len` bytes that differ from message to message.
fn payload(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (i.wrapping_mul(31).wrapping_add(j.wrapping_mul(7))) as u8)
        .collect()
}

#[derive(Clone, Debug)]
struct Spec {
    content_type: u32,
    len: usize,
    loan: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    let len = prop_oneof![3 => 0usize..64, 3 => 0usize..MAX_LOAN + 100, 2 => 0usize..12_000];
    (any::<u32>(), len, any::<bool>()).prop_map(|(content_type, len, loan)| Spec {
        content_type,
        len,
        loan,
    })
}

/// The writer's side of the simulation: one message in progress at a time.
struct Sender<'p> {
    payloads: &'p [Vec<u8>],
    specs: &'p [Spec],
    next: usize,
    current: Option<OutgoingData<'p>>,
    closed: bool,
}

impl Sender<'_> {
    /// One writer step: makes whatever progress the ring allows. Returns whether anything
    /// was written.
    fn step(&mut self, w: &mut ChannelWriter<'static>) -> bool {
        if self.closed {
            return false;
        }
        if self.current.is_none() && self.next < self.specs.len() {
            let spec = &self.specs[self.next];
            let bytes = &self.payloads[self.next];
            if spec.loan && bytes.len() <= MAX_LOAN {
                let Some(mut loan) = w.loan(spec.content_type, bytes.len()).unwrap() else {
                    return false;
                };
                loan.payload()[..bytes.len()].copy_from_slice(bytes);
                loan.commit(bytes.len()).unwrap();
                assert!(w.publish());
                self.next += 1;
                return true;
            }
            self.current = Some(w.start(spec.content_type, bytes).unwrap());
        }
        if let Some(out) = self.current.as_mut() {
            let sent = w.write(out).unwrap();
            if sent.done {
                self.current = None;
                self.next += 1;
            }
            return sent.published;
        }
        let closed = w.close().unwrap();
        self.closed = closed.done;
        closed.done
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_message_arrives_once_in_order(
        specs in prop::collection::vec(spec(), 0..24),
        schedule in prop::collection::vec(0u8..4, 1..64),
    ) {
        let r = region();
        let (mut w, mut rd) = ends(&r);
        let payloads: Vec<Vec<u8>> = specs.iter().enumerate().map(|(i, s)| payload(i, s.len)).collect();
        let mut sender = Sender { payloads: &payloads, specs: &specs, next: 0, current: None, closed: false };
        let mut received: Vec<(u32, Vec<u8>)> = Vec::new();
        let mut ended = false;
        // The schedule repeats: 0 and 1 step the writer, 2 the reader, 3 both. A schedule
        // made of one kind of step alone could not finish, so every 64th step is both.
        for step in 0..200_000usize {
            if ended {
                break;
            }
            let choice = if step % 64 == 63 { 3 } else { schedule[step % schedule.len()] };
            if choice != 2 {
                sender.step(&mut w);
            }
            if choice >= 2 {
                match rd.recv().unwrap().event {
                    Some(ChannelEvent::Message(m)) => received.push((m.content_type(), m.into_vec().unwrap())),
                    Some(ChannelEvent::End) => ended = true,
                    None => {}
                }
            }
        }
        prop_assert!(ended, "the stream ended");
        let expected: Vec<(u32, Vec<u8>)> =
            specs.iter().zip(&payloads).map(|(s, p)| (s.content_type, p.clone())).collect();
        prop_assert_eq!(received.len(), expected.len());
        prop_assert!(received == expected, "messages differ");
        let state = r.channel_slot(0).unwrap().ctrl.atomic_u32(CH_STATE).unwrap().load(Ordering::Acquire);
        prop_assert_eq!(state, ChannelState::Free as u32);
    }

    #[test]
    fn a_blocked_writer_is_not_ready_until_the_reader_releases(lens in prop::collection::vec(1usize..3000, 1..16)) {
        let r = region();
        let (mut w, mut rd) = ends(&r);
        for (i, len) in lens.iter().enumerate() {
            let bytes = payload(i, *len);
            let mut out = w.start(0, &bytes).unwrap();
            let mut rounds = 0;
            while !w.write(&mut out).unwrap().done {
                // CHAN-6: no space and nothing dropped; the writer waits only for the reader.
                prop_assert!(!w.is_ready(), "nothing changed since the failed attempt");
                let mut progressed = false;
                while !progressed {
                    let received = rd.recv().unwrap();
                    let released = received.released;
                    drop(received);
                    progressed = released || rd.publish_head();
                    rounds += 1;
                    prop_assert!(rounds < 1_000, "the reader always frees space eventually");
                }
                prop_assert!(w.is_ready(), "the reader stored a new head");
            }
        }
    }
}
