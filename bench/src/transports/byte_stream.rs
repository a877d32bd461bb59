//! Round trips and streams over a kernel byte stream (Unix socket, pipe), with a fair,
//! ordinary framing: each message is an 8-byte little-endian length and the payload, written
//! with one `write` per send, and read through a buffered reader.

use std::io::{BufReader, ErrorKind, Read, Write};
use std::time::Duration;

use crate::peer::PeerProcess;
use crate::roundtrip::{RoundTrip, MAX_PAYLOAD};
use crate::stream::{Stream, StreamCount, Timer};
use crate::{error, Result};

/// The length value that asks a sink for the count it received since the last report.
const REPORT: u64 = u64::MAX;

/// Capacity of the readers' buffers.
const READ_BUFFER: usize = 256 << 10;

/// The host's end of a byte stream.
#[derive(Debug)]
pub struct Framed<R: Read, W: Write> {
    reader: BufReader<R>,
    writer: W,
    out: Vec<u8>,
}

impl<R: Read, W: Write> Framed<R, W> {
    /// Frames over `reader` and `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        Framed {
            reader: BufReader::with_capacity(READ_BUFFER, reader),
            writer,
            out: Vec::new(),
        }
    }

    /// One echo round trip: sends `request` as one frame and reads the echoed frame.
    pub fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        self.out.clear();
        push_frame(&mut self.out, request);
        self.writer.write_all(&self.out)?;
        let len = read_len(&mut self.reader)?.ok_or_else(|| error("peer closed the stream"))?;
        let len = checked_len(len)?;
        reply.resize(len, 0);
        self.reader.read_exact(reply)?;
        Ok(())
    }

    /// Sends frames of `message` bytes, `batch` per write, for `duration`; then asks the sink
    /// for its count.
    pub fn stream(
        &mut self,
        message: usize,
        batch: usize,
        duration: Duration,
    ) -> Result<StreamCount> {
        let payload = vec![0x5au8; message];
        self.out.clear();
        for _ in 0..batch {
            push_frame(&mut self.out, &payload);
        }
        let timer = Timer::start(duration);
        let mut sent = 0u64;
        while !timer.done() {
            self.writer.write_all(&self.out)?;
            sent += batch as u64;
        }
        self.writer.write_all(&REPORT.to_le_bytes())?;
        let received =
            read_len(&mut self.reader)?.ok_or_else(|| error("sink closed the stream"))?;
        Ok(StreamCount {
            sent,
            received,
            elapsed: timer.elapsed(),
        })
    }

    /// The writing half, to close it (end of stream tells the peer to exit).
    pub fn into_writer(self) -> W {
        self.writer
    }
}

/// The host's side of a byte-stream transport: the framed stream and its peer process.
pub struct Connection<R: Read, W: Write> {
    framed: Framed<R, W>,
    peer: PeerProcess,
    /// Ends the writing half, which tells the peer to exit.
    end: fn(W) -> Result<()>,
}

impl<R: Read, W: Write> Connection<R, W> {
    /// A connection to `peer` over `framed`; `end` closes the writing half at the close.
    pub fn new(framed: Framed<R, W>, peer: PeerProcess, end: fn(W) -> Result<()>) -> Self {
        Connection { framed, peer, end }
    }
}

impl<R: Read, W: Write> RoundTrip for Connection<R, W> {
    fn call(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Result<()> {
        self.framed.call(request, reply)
    }
    fn close(self: Box<Self>) -> Result<()> {
        let Connection { framed, peer, end } = *self;
        end(framed.into_writer())?;
        peer.finish()
    }
}

impl<R: Read, W: Write> Stream for Connection<R, W> {
    fn run(&mut self, message: usize, batch: usize, duration: Duration) -> Result<StreamCount> {
        self.framed.stream(message, batch, duration)
    }
    fn close(self: Box<Self>) -> Result<()> {
        RoundTrip::close(self)
    }
}

fn push_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads a length word; `None` at a clean end of stream.
fn read_len(reader: &mut impl Read) -> Result<Option<u64>> {
    let mut word = [0u8; 8];
    match reader.read_exact(&mut word) {
        Ok(()) => Ok(Some(u64::from_le_bytes(word))),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn checked_len(len: u64) -> Result<usize> {
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or_else(|| error(format!("frame length {len} out of range")))
}

/// What a peer does with the frames it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serve {
    /// Writes every frame back.
    Echo,
    /// Counts frames and answers each report request with the count.
    Sink,
}

impl Serve {
    /// Parses `echo` or `sink`.
    pub fn parse(s: &str) -> Result<Serve> {
        match s {
            "echo" => Ok(Serve::Echo),
            "sink" => Ok(Serve::Sink),
            _ => Err(error(format!("unknown serve mode {s:?}"))),
        }
    }

    /// The argument value.
    pub fn name(self) -> &'static str {
        match self {
            Serve::Echo => "echo",
            Serve::Sink => "sink",
        }
    }
}

/// The peer: serves frames from `reader` until the host closes the stream.
pub fn serve(reader: impl Read, mut writer: impl Write, how: Serve) -> Result<()> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
    let mut body = vec![0u8; MAX_PAYLOAD];
    let mut out = Vec::with_capacity(MAX_PAYLOAD + 8);
    let mut count = 0u64;
    while let Some(len) = read_len(&mut reader)? {
        if how == Serve::Sink && len == REPORT {
            writer.write_all(&count.to_le_bytes())?;
            writer.flush()?;
            count = 0;
            continue;
        }
        let n = checked_len(len)?;
        let frame = body
            .get_mut(..n)
            .ok_or_else(|| error("frame larger than the buffer"))?;
        reader.read_exact(frame)?;
        match how {
            Serve::Echo => {
                out.clear();
                push_frame(&mut out, frame);
                writer.write_all(&out)?;
                writer.flush()?;
            }
            Serve::Sink => count += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn echo_and_sink_over_a_socket_pair() {
        for how in [Serve::Echo, Serve::Sink] {
            let (host, peer) = UnixStream::pair().unwrap();
            let (peer_r, peer_w) = (peer.try_clone().unwrap(), peer);
            let t = std::thread::spawn(move || serve(peer_r, peer_w, how));
            let mut framed = Framed::new(host.try_clone().unwrap(), host);
            match how {
                Serve::Echo => {
                    let mut reply = Vec::new();
                    framed.call(b"hello", &mut reply).unwrap();
                    assert_eq!(reply, b"hello");
                    framed.call(&[], &mut reply).unwrap();
                    assert!(reply.is_empty());
                }
                Serve::Sink => {
                    let c = framed.stream(64, 4, Duration::from_millis(5)).unwrap();
                    assert_eq!(c.sent, c.received);
                    assert_eq!(c.sent % 4, 0);
                }
            }
            drop(framed.into_writer().shutdown(std::net::Shutdown::Write));
            t.join().unwrap().unwrap();
        }
    }

    #[test]
    fn an_oversized_frame_is_refused_not_allocated() {
        assert!(checked_len(MAX_PAYLOAD as u64 + 1).is_err());
        assert!(checked_len(u64::MAX - 1).is_err());
        assert_eq!(checked_len(3).unwrap(), 3);
    }
}
