//! [`RawRing`]: the runner's own producer of a ring. It writes correct records the way spec/03
//! and spec/07 say (PAD at the wrap, fragments of at most `cap / 2`), and, as an adversary, any
//! bytes at all: headers that lie about their length, records across the end, positions that go
//! backwards. It is a second, independent producer next to knit-core's, which makes every live
//! case a differential test of the implementation under test.

use knit_core::records::{FLAG_FIRST, FLAG_LAST, TYPE_CONT, TYPE_PAD};
use knit_core::ring::{RecordHeader, RingRef, HEAD_OFFSET, TAIL_OFFSET};
use knit_core::{Error, ErrorCode, Result};
use std::sync::atomic::Ordering;

/// A producer of one ring with a private tail.
pub struct RawRing<'a> {
    ring: RingRef<'a>,
    cap: u64,
    /// Private position one past the last record written.
    pub tail: u64,
    /// The last tail stored.
    pub published: u64,
    /// The last valid head loaded.
    pub head_seen: u64,
}

impl<'a> RawRing<'a> {
    /// The producer of a freshly reset ring.
    pub fn new(ring: RingRef<'a>) -> Self {
        RawRing {
            cap: ring.capacity() as u64,
            ring,
            tail: 0,
            published: 0,
            head_seen: 0,
        }
    }

    /// Data bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Loads `head` (Acquire) and checks it as a producer must (RING-8): a multiple of 8, never
    /// behind the last seen, never past the published tail. A violation is `BAD_POSITION`.
    pub fn load_head(&mut self) -> Result<u64> {
        let head = self
            .ring
            .ctrl
            .atomic_u64(HEAD_OFFSET)?
            .load(Ordering::Acquire);
        if head % 8 != 0 || head < self.head_seen || head > self.published {
            return Err(Error::value(
                ErrorCode::BadPosition,
                "ring.head",
                head,
                self.published,
            ));
        }
        self.head_seen = head;
        Ok(head)
    }

    /// Free bytes after loading `head`.
    pub fn free(&mut self) -> Result<u64> {
        let head = self.load_head()?;
        Ok(self.cap - (self.tail - head))
    }

    fn write_at(&self, pos: u64, bytes: &[u8]) -> Result<()> {
        let off = (pos % self.cap) as usize;
        let first = bytes.len().min(self.cap as usize - off);
        self.ring.data.write(off, &bytes[..first])?;
        if first < bytes.len() {
            self.ring.data.write(0, &bytes[first..])?;
        }
        Ok(())
    }

    /// Writes one record whose header says `len`, `rtype`, `flags` and whose body is `body`
    /// (the header may lie about the length). Pads at the wrap unless `no_pad`. Returns false,
    /// writing nothing, when the ring lacks room now. Does not publish.
    pub fn append(
        &mut self,
        len: u32,
        rtype: u16,
        flags: u16,
        body: &[u8],
        no_pad: bool,
    ) -> Result<bool> {
        let size = 8 + (body.len() as u64).next_multiple_of(8);
        let off = self.tail % self.cap;
        let pad = if off + size > self.cap && !no_pad {
            self.cap - off
        } else {
            0
        };
        if self.tail - self.head_seen + pad + size > self.cap && self.free()? < pad + size {
            return Ok(false);
        }
        if pad > 0 {
            let h = RecordHeader {
                len: (pad - 8) as u32,
                rtype: TYPE_PAD,
                flags: 0,
            };
            self.write_at(self.tail, &h.to_bytes())?;
            self.tail += pad;
        }
        let mut bytes = RecordHeader { len, rtype, flags }.to_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes.resize(size as usize, 0);
        self.write_at(self.tail, &bytes)?;
        self.tail += size;
        Ok(true)
    }

    /// Stores the private tail (Release; RING-3).
    pub fn publish(&mut self) -> Result<()> {
        self.ring
            .ctrl
            .atomic_u64(TAIL_OFFSET)?
            .store(self.tail, Ordering::Release);
        self.published = self.tail;
        Ok(())
    }

    /// Stores any tail (adversary), keeping the private one.
    pub fn store_tail(&self, tail: u64) -> Result<()> {
        self.ring
            .ctrl
            .atomic_u64(TAIL_OFFSET)?
            .store(tail, Ordering::Release);
        Ok(())
    }

    /// The records of a message: a first record of `rtype` with `head` and as much of `payload`
    /// as fits in `cap / 2`, then CONT records (MSG-1, MSG-2, MSG-5).
    pub fn fragments(&self, rtype: u16, head: &[u8], payload: &[u8]) -> Vec<(u16, u16, Vec<u8>)> {
        let max_body = (self.cap / 2 - 8) as usize;
        let mut out = Vec::new();
        let first_room = max_body - head.len();
        let take = payload.len().min(first_room);
        let mut body = head.to_vec();
        body.extend_from_slice(&payload[..take]);
        let mut sent = take;
        out.push((
            rtype,
            FLAG_FIRST | if sent == payload.len() { FLAG_LAST } else { 0 },
            body,
        ));
        while sent < payload.len() {
            let n = (payload.len() - sent).min(max_body);
            let last = if sent + n == payload.len() {
                FLAG_LAST
            } else {
                0
            };
            out.push((TYPE_CONT, last, payload[sent..sent + n].to_vec()));
            sent += n;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::Aligned;
    use knit_core::message::{Accept, Incoming, Reassembler};
    use knit_core::records::{DataHead, RingKind, TYPE_DATA};
    use knit_core::ring::{Consumer, RING_CTRL_LEN};

    #[test]
    fn fragments_written_raw_reassemble_with_knit_core() {
        let mut mem = Aligned::zeroed(RING_CTRL_LEN + 4096);
        let view = mem.mem();
        let ring = RingRef::new(
            view.sub(0, RING_CTRL_LEN).unwrap(),
            view.sub(RING_CTRL_LEN, 4096).unwrap(),
        )
        .unwrap();
        let mut raw = RawRing::new(ring);
        let mut consumer = Consumer::new(ring);
        let mut reasm = Reassembler::new(RingKind::Channel, 1 << 20);
        for round in 0..5u64 {
            let payload = crate::payload::payload(round, 5000);
            let head = DataHead {
                content_type: 0,
                payload_len: payload.len() as u64,
            }
            .encode();
            let mut got = None;
            let mut pending = raw
                .fragments(TYPE_DATA, &head, &payload)
                .into_iter()
                .peekable();
            while got.is_none() {
                while let Some((t, f, b)) = pending.peek() {
                    if !raw.append(b.len() as u32, *t, *f, b, false).unwrap() {
                        break;
                    }
                    pending.next();
                }
                raw.publish().unwrap();
                let polled = reasm.poll(&mut consumer, |_| Ok(Accept::Deliver)).unwrap();
                if let Some(Incoming::Message(m)) = polled.incoming {
                    got = m.payload.into_vec();
                }
            }
            assert_eq!(got.unwrap(), payload, "round {round}");
        }
    }
}
