//! The seed's hello, across processes: the host calls `hello("World!")`, a worker process (this
//! same program, started again with `KNIT_REGION` / `KNIT_SLOT` set, MAP-5) answers.
//!
//! Run: `cargo run -p knit --example hello`

use std::error::Error;
use std::process::Command;

use knit::{Pool, Worker};

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(knit::serve::ENV_REGION).is_some() {
        // The worker side.
        Worker::from_env()?
            .handle("hello", |_ctx, req| {
                Ok(format!("Hello, {}", req.text()?).into_bytes())
            })
            .run()?;
        return Ok(());
    }
    // The host side: one worker process, this program again.
    let pool = Pool::builder()
        .process(Command::new(std::env::current_exe()?))
        .build()?;
    let answer = pool.call("hello", "World!")?;
    println!("{}", answer.text().unwrap_or("<not UTF-8>"));
    Ok(())
}
