//! A host process for the host-death test: starts a pool of `knit-test-worker` processes
//! (path in the first argument), prints `REGION <name>` and one `WORKER <pid>` line per worker,
//! then `READY`, and waits to be killed. The parent-death signal is switched off so that the
//! workers must notice the host's death through the protocol (LIVE-4).

use std::io::Write;
use std::process::Command;

use knit::Pool;

fn main() {
    let Some(worker) = std::env::args().nth(1) else {
        eprintln!("usage: knit-test-host <worker-binary> [workers]");
        std::process::exit(2);
    };
    let n = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let pool = match Pool::builder()
        .workers(n)
        .process(Command::new(worker))
        .parent_death_signal(false)
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("knit-test-host: {e}");
            std::process::exit(3);
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "REGION {}", pool.region_name().unwrap_or("-"));
    for w in pool.workers() {
        let _ = writeln!(out, "WORKER {}", w.pid.unwrap_or(0));
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();
    drop(out);
    loop {
        std::thread::park();
    }
}
