//! A worker process for the runtime's integration tests and examples: started by a pool with
//! `KNIT_REGION` / `KNIT_SLOT` (MAP-5), it serves a fixed set of functions until SHUTDOWN.

use std::time::Duration;

use knit::{HandlerError, Worker};

/// FNV-1a over 8-byte words (and the tail bytes): fast enough for megabytes in debug builds.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut chunks = bytes.chunks_exact(8);
    for c in chunks.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    for &b in chunks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^ bytes.len() as u64
}

/// A streaming digest of the input channel: message count, total bytes and FNV-1a over every
/// byte in order.
#[derive(Default)]
struct Digest {
    messages: u64,
    bytes: u64,
    hash: u64,
}

impl Digest {
    fn new() -> Self {
        Digest {
            hash: 0xcbf2_9ce4_8422_2325,
            ..Digest::default()
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.messages += 1;
        self.bytes += bytes.len() as u64;
        for &b in bytes {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn encode(&self) -> Vec<u8> {
        [self.messages, self.bytes, self.hash]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }
}

fn millis(payload: &[u8]) -> Result<u64, HandlerError> {
    let b: [u8; 8] = payload
        .try_into()
        .map_err(|_| HandlerError::failed("want 8 bytes (u64 milliseconds)"))?;
    Ok(u64::from_le_bytes(b))
}

fn count(payload: &[u8]) -> Result<u32, HandlerError> {
    let b: [u8; 4] = payload
        .try_into()
        .map_err(|_| HandlerError::failed("want 4 bytes (u32 count)"))?;
    Ok(u32::from_le_bytes(b))
}

fn main() {
    let worker = match Worker::from_env() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("knit-test-worker: {e}");
            std::process::exit(2);
        }
    };
    let outcome = worker
        .handle("hello", |_ctx, req| {
            Ok(format!("Hello, {}", req.text()?).into_bytes())
        })
        .handle("echo", |_ctx, req| Ok(req.payload.to_vec()))
        .handle("checksum", |_ctx, req| {
            Ok(checksum(req.payload).to_le_bytes().to_vec())
        })
        .handle("pid", |_ctx, _req| {
            Ok(std::process::id().to_le_bytes().to_vec())
        })
        .handle("panic", |_ctx, _req| {
            panic!("worker process panicked on purpose")
        })
        .handle("exit", |_ctx, _req| std::process::exit(7))
        .handle("sleep_ms", |_ctx, req| {
            std::thread::sleep(Duration::from_millis(millis(req.payload)?));
            Ok(Vec::new())
        })
        .handle("sleep_until_cancelled", |ctx, req| {
            let limit = millis(req.payload)?;
            for _ in 0..limit {
                if ctx.is_cancelled() {
                    return Err(HandlerError::new(
                        knit_core::ErrorCode::Cancelled as u32,
                        "saw the cancel entry",
                    ));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(b"not cancelled".to_vec())
        })
        .handle_streaming("progress", |ctx, req| {
            let n = count(req.payload)?;
            let mut tx = ctx.open_channel_to_host()?;
            for i in 0..n {
                tx.send(format!("step {i} of {n}").as_bytes())?;
            }
            tx.close()?;
            Ok(Vec::new())
        })
        .handle_in_place("pattern_in_place", |_ctx, req, out| {
            // `len` bytes of a pattern, written in the response ring when they fit one record.
            let len = count(req.payload)? as usize;
            out.write_with(len, |buf| {
                for (i, b) in buf.iter_mut().enumerate() {
                    *b = (i % 251) as u8;
                }
                len
            })
        })
        .handle("digest", |ctx, _req| {
            // Reads the host's channel to the end, each message in place (zero copy).
            let mut input = ctx.take_input_channel()?;
            let mut digest = Digest::new();
            while input.recv_with(|_, bytes| digest.update(bytes))?.is_some() {}
            Ok(digest.encode())
        })
        .handle("digest_then_exit", |ctx, req| {
            let n = count(req.payload)?;
            let mut input = ctx.take_input_channel()?;
            for _ in 0..n {
                input.recv()?;
            }
            std::process::exit(11)
        })
        .handle_streaming("progress_then_exit", |ctx, req| {
            let n = count(req.payload)?;
            let mut tx = ctx.open_channel_to_host()?;
            for i in 0..n {
                tx.send(format!("step {i}").as_bytes())?;
            }
            std::process::exit(9)
        })
        .run();
    if let Err(e) = outcome {
        eprintln!("knit-test-worker: {e}");
        std::process::exit(3);
    }
}
