//! The host's end of channels opened by workers (spec/06): announcements read from a response
//! ring are attached (CHAN-2) and kept by `(worker, tag)` until the caller takes them as a
//! [`Receiver`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use knit_core::channel::{self, ChannelEnd, ChannelEvent, ChannelReader};
use knit_core::records::ChannelOpen;
use knit_core::ErrorCode;

use super::inner::{lock, Inner, WorkerSlot, DEAD};
use super::slot::CallSlot;
use crate::call::CallError;
use crate::futex::Futex;
use crate::spin::{wait, Stop};

/// Channels announced and not yet taken, by `(worker position, tag)`: the attached end, or
/// why it could not be attached (a channel aborted before the host read its announcement).
pub(crate) type Incoming = HashMap<(usize, u64), Result<ChannelReader<'static>, CallError>>;

/// One message received on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The content type the writer gave.
    pub content_type: u32,
    /// The payload, in private memory.
    pub bytes: Vec<u8>,
}

impl Inner {
    /// CHAN-2: attaches the host's end of a channel worker `w` announced. A violation is
    /// returned for the caller to poison the region; a channel already aborted is dropped, and
    /// so is one nobody can read (`wanted` false): dropping the reader aborts it (CHAN-5), so
    /// the handler's sends fail instead of waiting for room that never comes.
    pub(crate) fn accept_channel(
        &self,
        w: &WorkerSlot,
        open: ChannelOpen,
        wanted: bool,
    ) -> Result<(), knit_core::Error> {
        let position = (w.index - 1) as usize;
        // Held across the check, the attach and the insert; ends are released and forgotten
        // under it too (see `Receiver`'s and `Sender`'s drop).
        let mut attached = lock(&self.attached);
        // CHAN-14: a slot the host holds an end of cannot have been reopened.
        if attached.iter().any(|&(index, _)| index == open.channel) {
            return Err(knit_core::Error::value(
                ErrorCode::BadChannel,
                "channel_open.channel (a slot the host still holds)",
                open.channel.into(),
                0,
            ));
        }
        match channel::attach(&self.region_view, open, 0, w.index) {
            Ok(ChannelEnd::Reader(reader)) if !wanted => {
                drop(reader);
                w.bell.ring(&Futex);
                Ok(())
            }
            Ok(ChannelEnd::Reader(reader)) => {
                attached.insert((open.channel, open.epoch));
                // A second announcement with the same tag replaces (and so aborts) the first.
                let replaced = lock(&self.channels).insert((position, open.tag), Ok(reader));
                if let Some(Ok(old)) = replaced {
                    forget(&mut attached, old);
                    w.bell.ring(&Futex);
                }
                Ok(())
            }
            // The host writes no channel a worker opened: dropping the end aborts it.
            Ok(ChannelEnd::Writer(writer)) => {
                drop(writer);
                w.bell.ring(&Futex);
                Ok(())
            }
            Err(e) if e.code.is_violation() => Err(e),
            // CHAN-2, CHAN-5: aborted before the host attached; the caller hears why.
            Err(e) => {
                let replaced =
                    lock(&self.channels).insert((position, open.tag), Err(CallError::from(e)));
                if let Some(Ok(old)) = replaced {
                    forget(&mut attached, old);
                    w.bell.ring(&Futex);
                }
                Ok(())
            }
        }
    }

    /// Drops the announced channels not yet taken whose `(worker position, tag)` matches
    /// `stale` (dropping a reader aborts its channel and releases it) and forgets their ends
    /// in `attached`, so that their slots can be announced again (CHAN-14).
    pub(crate) fn drop_incoming(&self, mut stale: impl FnMut(&(usize, u64)) -> bool) {
        let removed: Vec<_> = {
            let mut channels = lock(&self.channels);
            let keys: Vec<(usize, u64)> = channels.keys().copied().filter(|k| stale(k)).collect();
            keys.iter().filter_map(|k| channels.remove(k)).collect()
        };
        let mut attached = lock(&self.attached);
        for reader in removed.into_iter().flatten() {
            forget(&mut attached, reader);
        }
    }
}

/// Drops (aborting and releasing) a reading end and forgets it in `attached`.
fn forget(attached: &mut HashSet<(u32, u32)>, reader: ChannelReader<'static>) {
    let ch = reader.channel();
    drop(reader);
    attached.remove(&(ch.index, ch.epoch));
}

/// Waits until the worker of call `slot` announced a channel tagged with its request id, or the
/// call ended without one (`CHANNEL_CLOSED`).
pub(crate) fn take(
    inner: &Arc<Inner>,
    worker: usize,
    slot: &CallSlot,
) -> Result<Receiver, CallError> {
    let w = inner
        .workers
        .get(worker)
        .ok_or_else(|| CallError::new(ErrorCode::InvalidArgument, "worker index"))?;
    let find = || {
        let id = slot.id();
        if id == 0 {
            return None;
        }
        lock(&inner.channels).remove(&(worker, id))
    };
    let mut found = None;
    let ready = || {
        inner.pump(w);
        found = find();
        found.is_some() || slot.is_done()
    };
    match wait(&inner.host_bell, inner.config.spin, 0, ready, || {
        inner.check_open()
    }) {
        Ok(()) | Err(Stop::Deadline) => {}
        Err(Stop::Failed(e)) => return Err(e),
    }
    // The announcement precedes the response on the ring, so a finished call that opened a
    // channel has it in the table by now.
    match found.or_else(find) {
        Some(Err(e)) => Err(e),
        Some(Ok(reader)) => Ok(Receiver {
            reader: Some(reader),
            worker,
            inner: Arc::clone(inner),
            failed: false,
        }),
        None => Err(CallError::new(
            ErrorCode::ChannelClosed,
            "the call ended without opening a channel",
        )),
    }
}

/// The host's reading end of a channel a worker opened. Iterate it, or call
/// [`Receiver::recv`]; dropping it before the end aborts the channel with `CANCELLED`.
pub struct Receiver {
    /// Dropped before `inner`, which keeps the region mapped.
    reader: Option<ChannelReader<'static>>,
    worker: usize,
    inner: Arc<Inner>,
    failed: bool,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("channel", &self.reader.as_ref().map(ChannelReader::channel))
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// The next message, `Ok(None)` at the end of the stream (CHAN-4), waiting for the writer
    /// meanwhile. Fails with `CHANNEL_ABORTED` (CHAN-5), `PEER_DIED` when the worker died
    /// (CHAN-8), or a violation's code (the region is then poisoned).
    pub fn recv(&mut self) -> Result<Option<Message>, CallError> {
        let Some(w) = self.inner.workers.get(self.worker) else {
            return Err(CallError::new(ErrorCode::InvalidArgument, "worker index"));
        };
        loop {
            let inner = &self.inner;
            let reader = self
                .reader
                .as_mut()
                .ok_or_else(|| CallError::new(ErrorCode::ChannelClosed, "the channel has ended"))?;
            let mut released = false;
            // CHAN-14: a receive may release this end (END, abort, a violation); it is then
            // forgotten in `attached` under the same lock, so that a drain never sees the
            // slot reopened by the worker while this end is still listed.
            let mut attached = lock(&inner.attached);
            // In its own block, so that the received message (which may borrow the ring) is
            // gone before the head is published.
            let outcome = match reader.recv() {
                Ok(got) => {
                    released |= got.released;
                    Ok(match got.event {
                        Some(ChannelEvent::Message(m)) => {
                            let content_type = m.content_type();
                            let len = m.bytes().len();
                            Some(match m.into_vec() {
                                Some(bytes) => Ok(Some(Message {
                                    content_type,
                                    bytes,
                                })),
                                None => Err(CallError::new(
                                    ErrorCode::PayloadTooLarge,
                                    format!("a message of {len} bytes could not be held"),
                                )),
                            })
                        }
                        Some(ChannelEvent::End) => Some(Ok(None)),
                        None => None,
                    })
                }
                Err(e) => Err(e),
            };
            forget_if_released(&mut attached, reader);
            drop(attached);
            let outcome = outcome.map_err(|e| fail(inner, e))?;
            released |= reader.publish_head();
            if released {
                // WAIT-6: the worker may wait for room.
                w.bell.ring(&Futex);
            }
            if let Some(outcome) = outcome {
                return outcome;
            }
            let dead = || w.phase() == DEAD;
            let waited = {
                let reader = &*reader;
                wait(
                    &inner.host_bell,
                    inner.config.spin,
                    0,
                    || reader.is_ready() || dead(),
                    || inner.check_open(),
                )
            };
            if let Err(Stop::Failed(e)) = waited {
                return Err(e);
            }
            if dead() && !reader.is_ready() {
                // CHAN-8: the writer died; this end is released and reports PEER_DIED.
                let mut attached = lock(&inner.attached);
                let _ = reader.peer_died();
                forget_if_released(&mut attached, reader);
                return Err(CallError::new(
                    ErrorCode::PeerDied,
                    format!("worker {} died", w.index),
                ));
            }
        }
    }

    /// Aborts the channel with `code` (CHAN-5): the worker's sends fail with `CHANNEL_ABORTED`.
    pub fn abort(&mut self, code: u32) -> Result<(), CallError> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(());
        };
        let mut attached = lock(&self.inner.attached);
        let aborted = reader.abort(code);
        forget_if_released(&mut attached, reader);
        drop(attached);
        let changed = aborted.map_err(CallError::from)?;
        if changed {
            if let Some(w) = self.inner.workers.get(self.worker) {
                w.bell.ring(&Futex);
            }
        }
        Ok(())
    }
}

/// Forgets a reading end in `attached` once it is released (CHAN-14); the caller holds the
/// lock across the operation that may have released it.
fn forget_if_released(attached: &mut HashSet<(u32, u32)>, reader: &ChannelReader<'static>) {
    if !reader.is_live() {
        let ch = reader.channel();
        attached.remove(&(ch.index, ch.epoch));
    }
}

/// A core error of a channel end; a violation poisons the region (ERR-2, RING-13).
fn fail(inner: &Inner, e: knit_core::Error) -> CallError {
    if e.code.is_violation() {
        inner.region_view.poison(e.code, Some(0));
        inner.poisoned.store(true, Ordering::Release);
        inner.monitor_signal.notify();
    }
    CallError::from(e)
}

impl Iterator for Receiver {
    type Item = Result<Vec<u8>, CallError>;

    /// The next message's bytes; `None` after the end of the stream or after an error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.recv() {
            Ok(Some(m)) => Some(Ok(m.bytes)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            let ch = reader.channel();
            // Released and forgotten under one lock, so that a drain cannot see the slot
            // reopened while it is still listed (CHAN-14).
            let mut attached = lock(&self.inner.attached);
            // Dropping the reader aborts a channel still open and releases this end.
            drop(reader);
            attached.remove(&(ch.index, ch.epoch));
            drop(attached);
            if let Some(w) = self.inner.workers.get(self.worker) {
                w.bell.ring(&Futex);
            }
        }
    }
}
