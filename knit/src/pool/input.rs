//! Channels from the host to a worker (spec/06), opened for one call: the host announces the
//! channel (`CHANNEL_OPEN`, tag = the call's request id) and then sends the call's REQUEST on
//! the same request ring, so the worker holds the channel before the handler runs (MSG-2
//! keeps the two records in that order). The host writes with a [`Sender`]; the handler reads
//! with [`crate::Context::take_input_channel`].

use std::sync::atomic::Ordering;
use std::sync::Arc;

use knit_core::channel::{self, ChannelEnd, ChannelWriter, EndRole};
use knit_core::mailbox::HostMailbox;
use knit_core::ErrorCode;

use super::inner::{lock, HostState, Inner, WorkerSlot, DEAD, READY};
use super::slot::CallSlot;
use crate::call::{CallError, Payload, CONTENT_BYTES};
use crate::futex::Futex;
use crate::spin::{wait, Stop};

impl Inner {
    /// Opens a channel to worker `w` (CHAN-1, CHAN-11), announces it (CHAN-2) tagged with the
    /// id the request will carry, then sends the request (CALL-1, CALL-2, MSG-2) and registers
    /// `slot` for its response. Returns the request id, the host's writing end and the
    /// worker's start count when it was opened (a restarted worker never saw the channel).
    ///
    /// Everything happens under the worker's lock, so no other request takes the id in
    /// between. Once the slot is opened it must be announced (an unannounced slot would stay
    /// held), so from there on this waits for ring room whatever the backpressure policy.
    pub(crate) fn send_with_channel(
        &self,
        w: &WorkerSlot,
        function_id: u32,
        payload: &Payload<'_>,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
    ) -> Result<(u64, ChannelWriter<'static>, u64), CallError> {
        let max = self.region_view.geometry().max_message_len();
        if payload.bytes.len() as u64 > max {
            // CALL-10, checked before a slot is opened for a call that cannot be sent.
            return Err(CallError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "a request of {} bytes exceeds max_message_len ({max})",
                    payload.bytes.len()
                ),
            ));
        }
        loop {
            let (seen_head, seen_tail);
            {
                let mut st = lock(&w.state);
                if w.phase() != READY || st.mailbox.is_none() {
                    return Err(self.unavailable(w));
                }
                // Taken before the drain: a response published after it changes the tail
                // (ending the wait below), one published before is drained here.
                seen_head = w.mailbox.request.load_head();
                seen_tail = w.mailbox.response.load_tail();
                self.drain_locked(w, &mut st);
                // CALL-2: an id whose cancel entry is free, or wait (unlocked) for one.
                if let Some(id) = st.mailbox.as_ref().and_then(HostMailbox::next_request_id) {
                    // Restarts happen under this lock (LIVE-5): the count is this epoch's.
                    let starts = w.restarts.load(Ordering::Acquire);
                    let writer = self.open_to(w, id)?;
                    let sent = self.announce(w, &mut st, &writer).and_then(|()| {
                        self.send_pinned(w, &mut st, id, function_id, payload, deadline_ns, slot)
                    });
                    return match sent {
                        Ok(()) => Ok((id, writer, starts)),
                        Err(e) => {
                            self.discard(writer);
                            Err(e)
                        }
                    };
                }
            }
            self.wait_for_room(w, seen_head, seen_tail, deadline_ns)?;
        }
    }

    /// CHAN-1, CHAN-11: claims a FREE slot with the host as writer and worker `w` as reader,
    /// tagged `tag`, and attaches the host's end. `WOULD_BLOCK` when no slot is free.
    fn open_to(&self, w: &WorkerSlot, tag: u64) -> Result<ChannelWriter<'static>, CallError> {
        let region = &self.region_view;
        let opened = channel::open(region, 0, w.index, EndRole::Writer, tag)
            .map_err(|e| self.channel_failure(e))?
            .ok_or_else(|| {
                CallError::new(
                    ErrorCode::WouldBlock,
                    "no free channel slot (see PoolBuilder::channels)",
                )
            })?;
        let announcement = opened.announcement();
        // The host attaches its own end the way the worker will (CHAN-2).
        let mut attached = lock(&self.attached);
        match channel::attach(region, announcement, 0, w.index) {
            Ok(ChannelEnd::Writer(writer)) => {
                // CHAN-10: this end is attached; a dead worker's release leaves it to us.
                attached.insert((opened.index, opened.epoch));
                Ok(writer)
            }
            Ok(ChannelEnd::Reader(_)) => Err(CallError::new(
                ErrorCode::BadChannel,
                "opened as writer, attached as reader",
            )),
            Err(e) => Err(self.channel_failure(e)),
        }
    }

    /// Drops a writing end the host attached (which aborts its channel and releases the end)
    /// and forgets it in `attached`, under that lock (CHAN-14).
    fn discard(&self, writer: ChannelWriter<'static>) {
        let ch = writer.channel();
        let mut attached = lock(&self.attached);
        drop(writer);
        attached.remove(&(ch.index, ch.epoch));
    }

    /// CHAN-2: writes the announcement on `w`'s request ring, waiting (with the lock held,
    /// draining responses) for room.
    fn announce(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        writer: &ChannelWriter<'static>,
    ) -> Result<(), CallError> {
        let announcement = writer.channel().announcement();
        loop {
            let seen_head = w.mailbox.request.load_head();
            let Some(mbx) = st.mailbox.as_mut() else {
                return Err(self.unavailable(w));
            };
            let sent = match mbx.send_channel_open(&announcement) {
                Ok(sent) => sent,
                Err(e) => {
                    self.violation(w, st, e);
                    return Err(e.into());
                }
            };
            if sent.published {
                w.bell.ring(&Futex);
            }
            if sent.done {
                return Ok(());
            }
            self.wait_locked(w, st, seen_head)?;
        }
    }

    /// Sends the request with the id the announcement named, waiting (locked) for room.
    #[allow(clippy::too_many_arguments)]
    fn send_pinned(
        &self,
        w: &WorkerSlot,
        st: &mut HostState,
        id: u64,
        function_id: u32,
        payload: &Payload<'_>,
        deadline_ns: u64,
        slot: &Arc<CallSlot>,
    ) -> Result<(), CallError> {
        let Some(mbx) = st.mailbox.as_mut() else {
            return Err(self.unavailable(w));
        };
        // The id's cancel entry was free and nothing else was started since: only draining
        // happened, which frees entries (CALL-2).
        let Some(mut out) = mbx.start_request_with_id(
            id,
            function_id,
            payload.content_type,
            deadline_ns,
            &payload.bytes,
        )?
        else {
            return Err(CallError::new(
                ErrorCode::InvalidArgument,
                "the announced request id is no longer free",
            ));
        };
        // Async: the reactor drains the response for the future.
        self.register(w, st, id, slot, deadline_ns, true);
        self.write_all(w, st, &mut out)
    }

    /// A core error of a channel operation; a violation poisons the region (ERR-2).
    /// Runs one step on a writing end with `attached` locked, and forgets the end there if the
    /// step released it (closed, aborted, peer gone, a violation): a drain then never sees the
    /// slot reopened by the worker while this end is still listed (CHAN-14).
    fn writer_step<R>(
        &self,
        writer: &mut ChannelWriter<'static>,
        step: impl FnOnce(&mut ChannelWriter<'static>) -> R,
    ) -> R {
        let mut attached = lock(&self.attached);
        let outcome = step(writer);
        if !writer.is_live() {
            let ch = writer.channel();
            attached.remove(&(ch.index, ch.epoch));
        }
        outcome
    }

    fn channel_failure(&self, e: knit_core::Error) -> CallError {
        if e.code.is_violation() {
            self.region_view.poison(e.code, Some(0));
            self.poisoned.store(true, Ordering::Release);
            self.monitor_signal.notify();
        }
        CallError::from(e)
    }
}

/// The host's writing end of a channel to the worker running one call
/// ([`crate::Pool::call_with_channel`]). Messages arrive in order, each once (CHAN-3).
///
/// Sends wait while the channel's ring is full (CHAN-6); [`Sender::try_send`] fails with
/// `WOULD_BLOCK` instead. [`Sender::close`] ends the stream (CHAN-4); dropping the sender
/// without closing it aborts the channel with `CANCELLED`, so the handler does not take a
/// truncated stream for a complete one. The worker reads the channel only while it runs the
/// call, and runs one call at a time: feed calls to one worker in the order they were made.
pub struct Sender {
    /// Dropped before `inner`, which keeps the region mapped.
    writer: Option<ChannelWriter<'static>>,
    worker: usize,
    /// The worker's start count when the channel was opened: a restarted worker is another
    /// process, which never saw the channel.
    starts: u64,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("channel", &self.writer.as_ref().map(ChannelWriter::channel))
            .finish_non_exhaustive()
    }
}

impl Sender {
    pub(crate) fn new(
        writer: ChannelWriter<'static>,
        worker: usize,
        starts: u64,
        inner: Arc<Inner>,
    ) -> Self {
        Sender {
            writer: Some(writer),
            worker,
            starts,
            inner,
        }
    }

    /// Sends `bytes` (content type 0), waiting while the ring is full (CHAN-6, WAIT-6).
    /// Fails with `CHANNEL_ABORTED` when the handler aborted or dropped its end (CHAN-5),
    /// `PEER_DIED` when the worker died (CHAN-8), `PAYLOAD_TOO_LARGE` beyond
    /// `max_message_len`.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        self.write(CONTENT_BYTES, bytes, true)
    }

    /// Sends `bytes` tagged with `content_type`, waiting while the ring is full.
    pub fn send_typed(&mut self, content_type: u32, bytes: &[u8]) -> Result<(), CallError> {
        self.write(content_type, bytes, true)
    }

    /// Sends `bytes` (content type 0) only if its first record fits now: `WOULD_BLOCK`, with
    /// nothing written, otherwise (CHAN-6). A message in fragments, once started, is finished.
    pub fn try_send(&mut self, bytes: &[u8]) -> Result<(), CallError> {
        self.write(CONTENT_BYTES, bytes, false)
    }

    fn write(&mut self, content_type: u32, bytes: &[u8], block: bool) -> Result<(), CallError> {
        let Sender {
            writer,
            worker,
            starts,
            inner,
        } = self;
        let writer = writer
            .as_mut()
            .ok_or_else(|| CallError::new(ErrorCode::ChannelClosed, "the channel has ended"))?;
        let w = inner
            .workers
            .get(*worker)
            .ok_or_else(|| CallError::new(ErrorCode::InvalidArgument, "worker index"))?;
        let gone = || w.phase() == DEAD || w.restarts.load(Ordering::Acquire) != *starts;
        let mut out = inner
            .writer_step(writer, |writer| writer.start(content_type, bytes))
            .map_err(|e| inner.channel_failure(e))?;
        loop {
            if gone() {
                return Err(peer_died(inner, writer, w));
            }
            let sent = inner
                .writer_step(writer, |writer| writer.write(&mut out))
                .map_err(|e| inner.channel_failure(e))?;
            if sent.published {
                // WAIT-5
                w.bell.ring(&Futex);
            }
            if sent.done {
                return Ok(());
            }
            if !block && !out.is_started() {
                return Err(CallError::new(
                    ErrorCode::WouldBlock,
                    "the channel's ring is full",
                ));
            }
            wait_for_reader(inner, writer, &gone)?;
        }
    }

    /// Closes the channel (CHAN-4): END after every message sent; the handler's receiver
    /// reports the end of the stream after the last message.
    pub fn close(mut self) -> Result<(), CallError> {
        let Sender {
            writer,
            worker,
            starts,
            inner,
        } = &mut self;
        let Some(writer) = writer.as_mut() else {
            return Ok(());
        };
        let w = inner
            .workers
            .get(*worker)
            .ok_or_else(|| CallError::new(ErrorCode::InvalidArgument, "worker index"))?;
        let gone = || w.phase() == DEAD || w.restarts.load(Ordering::Acquire) != *starts;
        loop {
            if gone() {
                return Err(peer_died(inner, writer, w));
            }
            let sent = inner
                .writer_step(writer, ChannelWriter::close)
                .map_err(|e| inner.channel_failure(e))?;
            if sent.published {
                w.bell.ring(&Futex);
            }
            if sent.done {
                return Ok(());
            }
            wait_for_reader(inner, writer, &gone)?;
        }
    }

    /// Aborts the channel with `code` (CHAN-5): the handler's receives fail with
    /// `CHANNEL_ABORTED` carrying it.
    pub fn abort(mut self, code: u32) -> Result<(), CallError> {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let changed = self
            .inner
            .writer_step(writer, |writer| writer.abort(code))
            .map_err(|e| self.inner.channel_failure(e))?;
        if changed {
            if let Some(w) = self.inner.workers.get(self.worker) {
                w.bell.ring(&Futex);
            }
        }
        Ok(())
    }
}

/// CHAN-8: the worker died (or was replaced); this end is released.
fn peer_died(inner: &Inner, writer: &mut ChannelWriter<'static>, w: &WorkerSlot) -> CallError {
    let _ = inner.writer_step(writer, ChannelWriter::peer_died);
    CallError::new(
        ErrorCode::PeerDied,
        format!("worker {} died with the channel open", w.index),
    )
}

/// Waits (spin, then park on the host's doorbell) until the reader released room, the
/// channel changed, or the worker is gone.
fn wait_for_reader(
    inner: &Inner,
    writer: &ChannelWriter<'static>,
    gone: &dyn Fn() -> bool,
) -> Result<(), CallError> {
    match wait(
        &inner.host_bell,
        inner.config.spin,
        0,
        || writer.is_ready() || gone(),
        || inner.check_open(),
    ) {
        Ok(()) | Err(Stop::Deadline) => Ok(()),
        Err(Stop::Failed(e)) => Err(e),
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            // Released and forgotten under one lock, so that a drain cannot see the slot
            // reopened while it is still listed (CHAN-14). A writer still open aborts the
            // channel (CANCELLED).
            self.inner.discard(writer);
            if let Some(w) = self.inner.workers.get(self.worker) {
                w.bell.ring(&Futex);
            }
        }
    }
}
