//! The reading end of a channel: DATA messages in order (in place for one record, reassembled
//! otherwise), end-of-stream on END (CHAN-4), abort (CHAN-5).

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use super::end::EndCore;
use super::OpenedChannel;
use crate::error::{Error, ErrorCode, Result};
use crate::message::{Accept, Incoming, MessageHead, Payload, Reassembler};
use crate::ring::Consumer;

/// The end of a channel named `reader` (CHAN-3): the only consumer of the channel's ring.
///
/// Every receive first checks the channel's state (CHAN-12): once it is ABORTED, receives fail
/// with `CHANNEL_ABORTED` carrying the code (`Error::found`), undelivered messages are
/// discarded and this end is released (CHAN-5). END releases it too (CHAN-4). Dropping a
/// reader before END aborts the channel with `CANCELLED`, so the writer stops sending.
pub struct ChannelReader<'a> {
    end: EndCore<'a>,
    consumer: Consumer<'a>,
    reassembler: Reassembler,
    /// END was consumed: every later receive reports end-of-stream again.
    ended: bool,
}

/// What [`ChannelReader::recv`] delivers.
#[derive(Debug)]
pub enum ChannelEvent<'c, 'a> {
    /// The next DATA message, in the order written (CHAN-3).
    Message(ChannelMessage<'c, 'a>),
    /// End-of-stream: the writer closed the channel after every message delivered before
    /// (CHAN-4). Reported again by every later receive.
    End,
}

/// The outcome of one [`ChannelReader::recv`].
#[derive(Debug)]
pub struct Received<'c, 'a> {
    /// A message or the end of the stream; `None` when nothing is complete now (the writer
    /// has not published more yet, or one call's record budget ran out: call again before
    /// waiting, see [`ChannelReader::is_ready`]).
    pub event: Option<ChannelEvent<'c, 'a>>,
    /// A new `head` was stored: ring the writer's doorbell (WAIT-6).
    pub released: bool,
}

/// One DATA message.
///
/// A one-record message is borrowed in place (zero copy, RING-15): its bytes are the writer's
/// and untrusted, to be copied before anything is decided from them. Its record is released
/// when the message is dropped (or [`ChannelMessage::release`]d); the reader stores the new
/// `head` at its next receive, or at once with [`ChannelReader::publish_head`].
pub struct ChannelMessage<'c, 'a> {
    content_type: u32,
    payload: Option<Payload<'c, 'a>>,
}

impl ChannelMessage<'_, '_> {
    /// The content type the writer gave (spec/09 §9.2; delivered as is, CT-1).
    pub fn content_type(&self) -> u32 {
        self.content_type
    }

    /// The payload bytes; empty when a fragmented payload could not be held (see
    /// [`ChannelMessage::is_available`]).
    pub fn bytes(&self) -> &[u8] {
        self.payload.as_ref().map_or(&[], Payload::bytes)
    }

    /// True when the payload is borrowed in place from the ring.
    pub fn is_in_place(&self) -> bool {
        matches!(self.payload, Some(Payload::InPlace(_)))
    }

    /// False when the message's records were validated and released but its payload could not
    /// be held (no `alloc` feature, or the allocation failed): the receiver reports
    /// `PAYLOAD_TOO_LARGE` to its user.
    pub fn is_available(&self) -> bool {
        !matches!(self.payload, Some(Payload::Unavailable { .. }))
    }

    /// The payload in private memory (an in-place body is copied, then released); `None` when
    /// it is unavailable.
    #[cfg(feature = "alloc")]
    pub fn into_vec(mut self) -> Option<Vec<u8>> {
        self.payload.take().and_then(Payload::into_vec)
    }

    /// Releases the record of an in-place message (RING-6); same as dropping the message.
    pub fn release(mut self) {
        if let Some(payload) = self.payload.take() {
            payload.release();
        }
    }
}

impl Drop for ChannelMessage<'_, '_> {
    fn drop(&mut self) {
        // An in-place record must be consumed exactly once, or it would be delivered again.
        if let Some(payload) = self.payload.take() {
            payload.release();
        }
    }
}

impl core::fmt::Debug for ChannelMessage<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelMessage")
            .field("content_type", &self.content_type)
            .field("payload", &self.payload)
            .finish()
    }
}

impl<'a> ChannelReader<'a> {
    pub(crate) fn new(end: EndCore<'a>, consumer: Consumer<'a>, reassembler: Reassembler) -> Self {
        ChannelReader {
            end,
            consumer,
            reassembler,
            ended: false,
        }
    }

    /// The channel this end belongs to.
    pub fn channel(&self) -> OpenedChannel {
        self.end.channel()
    }

    /// This participant's index.
    pub fn me(&self) -> u32 {
        self.end.me()
    }

    /// The writer's participant index: the doorbell to ring after storing a `head` (WAIT-6).
    pub fn peer(&self) -> u32 {
        self.end.peer()
    }

    /// True until the end is released (END, abort, peer gone) or stopped by a violation.
    pub fn is_live(&self) -> bool {
        self.end.is_live()
    }

    /// True once END was consumed (CHAN-4).
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Receives the next message, or end-of-stream.
    ///
    /// Validates the ring (RING-8 to RING-11) and the fragments (MSG-1 to MSG-4, MSG-6).
    /// Fails with `CHANNEL_ABORTED` once the channel is aborted (CHAN-5), `PEER_DIED` when the
    /// writer's end was released without END (CHAN-13), a violation code for a broken ring,
    /// message or slot (the caller poisons the region).
    pub fn recv(&mut self) -> Result<Received<'_, 'a>> {
        if self.ended {
            return Ok(Received {
                event: Some(ChannelEvent::End),
                released: false,
            });
        }
        self.end.check_open()?;
        // CHAN-13: `released` is loaded before the ring's tail, so an END that the writer
        // published before releasing is seen by the poll below.
        let released_before = self.end.load_released();
        // Records of in-place messages released since the last call: store their head now, so
        // that the poll's own `released` says whether it consumed anything.
        let earlier = self.consumer.publish_head();
        let ChannelReader {
            end,
            consumer,
            reassembler,
            ended,
        } = self;
        let polled = match reassembler.poll(consumer, |head| match head {
            MessageHead::Data(_) => Ok(Accept::Deliver),
            // RING-11 already refuses the other heads on a channel ring; kept as a backstop.
            _ => Err(Error::value(
                ErrorCode::UnknownRecord,
                "record.type",
                u64::from(head.rtype()),
                0,
            )),
        }) {
            Ok(polled) => polled,
            Err(e) => return Err(end.fail_or_abort(e)),
        };
        let released = earlier | polled.released;
        match polled.incoming {
            Some(Incoming::Message(message)) => {
                let MessageHead::Data(head) = message.head else {
                    return Err(end.fail(Error::new(
                        ErrorCode::UnknownRecord,
                        "non-DATA message on a channel ring",
                    )));
                };
                let message = ChannelMessage {
                    content_type: head.content_type,
                    payload: Some(message.payload),
                };
                Ok(Received {
                    event: Some(ChannelEvent::Message(message)),
                    released,
                })
            }
            Some(Incoming::End) => {
                // CHAN-4: every earlier message was delivered; release this end.
                *ended = true;
                end.finish(Error::new(
                    ErrorCode::ChannelClosed,
                    "channel closed by its writer",
                ));
                end.check_released_cleanly()?;
                Ok(Received {
                    event: Some(ChannelEvent::End),
                    released,
                })
            }
            Some(Incoming::Shutdown | Incoming::ChannelOpen(_)) => Err(end.fail(Error::new(
                ErrorCode::UnknownRecord,
                "control record on a channel ring",
            ))),
            None => {
                // The poll stored no head: it consumed nothing, the ring was empty.
                if !polled.released {
                    end.check_peer_released(released_before)?;
                }
                Ok(Received {
                    event: None,
                    released,
                })
            }
        }
    }

    /// Stores the ring's `head` after in-place messages were released; true when it stored:
    /// ring the writer's doorbell (WAIT-6).
    pub fn publish_head(&mut self) -> bool {
        self.end.is_live() && self.consumer.publish_head()
    }

    /// CHAN-5: aborts the channel with `code` (non-zero, else `INVALID_ARGUMENT`) and releases
    /// this end; messages not yet received are discarded. True when this call changed the
    /// state: ring the writer's doorbell (WAIT-5). False when the channel was already aborted
    /// or ended.
    pub fn abort(&mut self, code: u32) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        self.end.abort(code)
    }

    /// CHAN-8: the runtime found the writer dead (LIVE-2): releases this end; later receives
    /// fail with `PEER_DIED`.
    pub fn peer_died(&mut self) -> Result<()> {
        self.end.peer_died()
    }

    /// The wake condition of a waiting reader (WAIT-2 step 3): true when the writer published
    /// beyond what this reader consumed, the channel's state changed, or the writer released.
    /// Decides nothing itself: the caller receives again.
    pub fn is_ready(&self) -> bool {
        !self.end.is_live()
            || self.consumer.ring().load_tail() != self.consumer.head()
            || self.end.changed()
    }
}

impl core::fmt::Debug for ChannelReader<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChannelReader")
            .field("end", &self.end)
            .field("consumer", &self.consumer)
            .field("in_message", &self.reassembler.in_message())
            .field("ended", &self.ended)
            .finish()
    }
}

impl Drop for ChannelReader<'_> {
    /// A reader dropped before END aborts with `CANCELLED` and releases (see the type's docs).
    fn drop(&mut self) {
        self.end.abandon();
    }
}
