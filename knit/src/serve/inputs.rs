//! Channels the host opened to this worker (spec/06), held from their announcement until the
//! call they belong to takes them.
//!
//! The host announces such a channel (`CHANNEL_OPEN`, tag = the request id of its call) on the
//! request ring right before the REQUEST itself (MSG-2 keeps the two in that order on one
//! ring), so the worker has attached it when the handler runs. A channel its call does not
//! take is dropped when the call ends, which aborts it with `CANCELLED` (CHAN-5) so that the
//! host's sender stops; so is one whose call never comes (ids only grow, CALL-1).

use std::cell::RefCell;

use knit_core::channel::{self, ChannelEnd, ChannelReader};
use knit_core::records::ChannelOpen;
use knit_core::region::Region;
use knit_core::{Error, ErrorCode};

/// The reading ends attached and not yet taken, with their tags, and why channels the host
/// aborted before this worker attached them could not be (for their calls to report).
/// At most `channel_slots` ends (CHAN-14: no two name the same slot) and `inflight_max`
/// failures (one per outstanding call, CALL-2).
pub(crate) struct Inputs<'a> {
    held: RefCell<Vec<(u64, ChannelReader<'a>)>>,
    failed: RefCell<Vec<(u64, Error)>>,
    max_failed: usize,
}

impl<'a> Inputs<'a> {
    pub(crate) fn new(inflight_max: u32) -> Self {
        Inputs {
            held: RefCell::new(Vec::new()),
            failed: RefCell::new(Vec::new()),
            max_failed: inflight_max as usize,
        }
    }

    /// CHAN-2: attaches this worker's end of the channel the host announced. A reading end is
    /// held until its call takes it; a writing end is not something this worker API offers
    /// (the host reads only the channels workers open for a call), so it is dropped, which
    /// aborts the channel. A violation (`BAD_CHANNEL`) is returned for the caller to poison the
    /// region. True when an end was dropped (aborted): ring the host's doorbell.
    pub(crate) fn accept(
        &self,
        region: &Region<'a>,
        me: u32,
        open: ChannelOpen,
    ) -> Result<bool, Error> {
        // CHAN-14: while this worker holds an end of a slot, the slot cannot be FREE, so the
        // host cannot have opened it again. Checked before attaching, so that a second end of
        // one slot never exists (CHAN-3) and the store stays within `channel_slots`.
        if self
            .held
            .borrow()
            .iter()
            .any(|(_, r)| r.channel().index == open.channel)
        {
            return Err(Error::value(
                ErrorCode::BadChannel,
                "channel_open.channel (a slot this worker still holds)",
                open.channel.into(),
                0,
            ));
        }
        match channel::attach(region, open, me, 0) {
            Ok(ChannelEnd::Reader(reader)) => {
                let mut held = self.held.borrow_mut();
                // A second announcement with the same tag replaces the first (which is
                // dropped, so aborted).
                let replaced = held
                    .iter()
                    .position(|(tag, _)| *tag == open.tag)
                    .map(|i| held.swap_remove(i));
                held.push((open.tag, reader));
                drop(held);
                let dropped = replaced.is_some();
                drop(replaced);
                Ok(dropped)
            }
            Ok(ChannelEnd::Writer(writer)) => {
                drop(writer);
                Ok(true)
            }
            Err(e) if e.code.is_violation() => Err(e),
            // CHAN-2, CHAN-5: aborted before this worker attached (`attach` released this
            // end); the call hears why.
            Err(e) => {
                let mut failed = self.failed.borrow_mut();
                failed.retain(|(tag, _)| *tag != open.tag);
                if failed.len() >= self.max_failed {
                    // More than a correct host can have outstanding: forget the oldest.
                    if let Some(i) = (0..failed.len()).min_by_key(|&i| failed.get(i).map(|f| f.0)) {
                        failed.swap_remove(i);
                    }
                }
                failed.push((open.tag, e));
                Ok(false)
            }
        }
    }

    /// Takes the reading end announced with `tag`, or why it could not be attached.
    pub(crate) fn take(&self, tag: u64) -> Option<Result<ChannelReader<'a>, Error>> {
        let mut held = self.held.borrow_mut();
        if let Some(i) = held.iter().position(|(t, _)| *t == tag) {
            return Some(Ok(held.swap_remove(i).1));
        }
        let mut failed = self.failed.borrow_mut();
        let i = failed.iter().position(|(t, _)| *t == tag)?;
        Some(Err(failed.swap_remove(i).1))
    }

    /// Drops (aborting with `CANCELLED`) every end whose tag is at most `request_id`: its call
    /// has ended or, ids growing strictly (CALL-1), will never come. True when any was
    /// dropped: ring the host's doorbell.
    pub(crate) fn drop_up_to(&self, request_id: u64) -> bool {
        // The common case after every call: no channel was announced at all.
        if self.held.borrow().is_empty() && self.failed.borrow().is_empty() {
            return false;
        }
        self.failed
            .borrow_mut()
            .retain(|(tag, _)| *tag > request_id);
        let stale: Vec<ChannelReader<'a>> = {
            let mut held = self.held.borrow_mut();
            let (stale, kept) = held.drain(..).partition(|(tag, _)| *tag <= request_id);
            *held = kept;
            stale.into_iter().map(|(_, r)| r).collect()
        };
        let any = !stale.is_empty();
        drop(stale);
        any
    }

    /// Drops every end (the loop is ending). True when any was dropped.
    pub(crate) fn clear(&self) -> bool {
        self.drop_up_to(u64::MAX)
    }
}
