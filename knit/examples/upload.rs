//! Upload: the host streams text to a worker process over a channel (spec/06), the worker
//! counts words as the chunks arrive, each read in place in the channel's ring, and writes its
//! answer in place in the response ring (zero copy both ways on the worker's side).
//!
//! Run: `cargo run -p knit --example upload`

use std::error::Error;
use std::process::Command;

use knit::{Pool, Worker};

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(knit::serve::ENV_REGION).is_some() {
        // The worker.
        Worker::from_env()?
            .handle_in_place("word_count", |ctx, _req, out| {
                let mut input = ctx.take_input_channel()?;
                let (mut bytes, mut words, mut in_word) = (0usize, 0usize, false);
                // A word may span two chunks: `in_word` carries over.
                while input
                    .recv_with(|_content_type, chunk| {
                        bytes += chunk.len();
                        for b in chunk {
                            let letter = !b.is_ascii_whitespace();
                            if letter && !in_word {
                                words += 1;
                            }
                            in_word = letter;
                        }
                    })?
                    .is_some()
                {}
                let summary = format!("{bytes} bytes, {words} words");
                out.write_with(summary.len(), |buf| {
                    buf.copy_from_slice(summary.as_bytes());
                    summary.len()
                })
            })
            .run()?;
        return Ok(());
    }
    let pool = Pool::builder()
        .process(Command::new(std::env::current_exe()?))
        .channels(1, 64 << 10)
        .build()?;
    let (call, mut input) = pool.call_with_channel("word_count", "")?;
    for i in 0..10_000 {
        input
            .send(format!("line {i}: the quick brown fox jumps over the lazy dog\n").as_bytes())?;
    }
    input.close()?;
    println!("the worker counted {}", call.wait()?.text().unwrap_or("?"));
    Ok(())
}
