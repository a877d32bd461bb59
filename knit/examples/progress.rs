//! Progress over a channel: a worker process reports its progress to the host while it works
//! (spec/06), and the host prints each report as it arrives, then the result.
//!
//! Run: `cargo run -p knit --example progress`

use std::error::Error;
use std::process::Command;
use std::time::Duration;

use knit::{Pool, Worker};

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(knit::serve::ENV_REGION).is_some() {
        // The worker: "count_primes" up to N, reporting every tenth of the way.
        Worker::from_env()?
            .handle_streaming("count_primes", |ctx, req| {
                let limit: u64 = req
                    .text()?
                    .trim()
                    .parse()
                    .map_err(|e| format!("not a number: {e}"))?;
                let mut progress = ctx.open_channel_to_host()?;
                let step = (limit / 10).max(1);
                let mut primes = 0u64;
                for n in 2..=limit {
                    if (2..=n).take_while(|d| d * d <= n).all(|d| n % d != 0) {
                        primes += 1;
                    }
                    if n % step == 0 {
                        progress.send(
                            format!("{}% ({primes} primes so far)", n * 100 / limit).as_bytes(),
                        )?;
                        // Slow enough to watch.
                        std::thread::sleep(Duration::from_millis(30));
                    }
                }
                progress.close()?;
                Ok(primes.to_string().into_bytes())
            })
            .run()?;
        return Ok(());
    }
    let pool = Pool::builder()
        .process(Command::new(std::env::current_exe()?))
        .channels(1, 4096)
        .build()?;
    let call = pool.call_async("count_primes", "200000");
    for report in call.channel()? {
        println!("progress: {}", String::from_utf8_lossy(&report?));
    }
    let result = call.wait()?;
    println!("primes up to 200000: {}", result.text().unwrap_or("?"));
    Ok(())
}
