//! The Knit demo: a Rust host hands calls to worker processes written in different languages,
//! through shared-memory mailboxes, and checks that they all compute the same answers.
//!
//! `scripts/demo` builds the workers and runs this. By hand:
//! `knit-demo [--c C_WORKER] [--python PYTHON_WORKER] [--node NODE_WORKER]`; the Rust worker is
//! this program itself, started again with `KNIT_REGION` / `KNIT_SLOT` set (spec MAP-5).

use std::error::Error;
use std::process::Command;
use std::time::{Duration, Instant};

use knit::{Pool, SpinPolicy, Worker};

/// FNV-1a 64 over little-endian 8-byte words, then the tail bytes, xor the length: the
/// `checksum` every demo worker implements, in its own language.
fn checksum(bytes: &[u8]) -> u64 {
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let word = u64::from_le_bytes(w.try_into().expect("chunks_exact yields 8 bytes"));
        h = (h ^ word).wrapping_mul(PRIME);
    }
    for &b in words.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
    }
    h ^ bytes.len() as u64
}

fn serve_as_rust_worker() -> Result<(), Box<dyn Error>> {
    Worker::from_env()?
        .handle("hello", |_ctx, req| {
            Ok(format!("Hello, {}", req.text()?).into_bytes())
        })
        .handle("checksum", |_ctx, req| {
            Ok(checksum(req.payload).to_le_bytes().to_vec())
        })
        .run()?;
    Ok(())
}

/// One worker language: how to start it.
struct Language {
    name: &'static str,
    command: Command,
}

fn languages() -> Result<Vec<Language>, Box<dyn Error>> {
    let mut out = vec![Language {
        name: "Rust",
        command: Command::new(std::env::current_exe()?),
    }];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let path = args.next().ok_or_else(|| format!("{flag} needs a path"))?;
        match flag.as_str() {
            "--c" => out.push(Language {
                name: "C",
                command: Command::new(path),
            }),
            "--python" => {
                let mut command = Command::new("python3");
                command.arg(path);
                out.push(Language {
                    name: "Python",
                    command,
                });
            }
            "--node" => {
                let mut command = Command::new("node");
                command.arg(path);
                out.push(Language {
                    name: "Node.js",
                    command,
                });
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(out)
}

/// A deterministic 1 MiB payload.
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The `pct`-th percentile (nearest rank) of a sorted, non-empty list.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[(sorted.len() - 1) * pct / 100]
}

fn run_host() -> Result<(), Box<dyn Error>> {
    let big = payload();
    let expected = checksum(&big);
    println!(
        "Knit demo: one Rust host, one worker process per language, calls through shared memory\n"
    );
    let mut all_agree = true;
    for mut lang in languages()? {
        let started = Instant::now();
        let pool = Pool::builder()
            .process(std::mem::replace(&mut lang.command, Command::new("true")))
            .spin(SpinPolicy::Balanced)
            .build()
            .map_err(|e| format!("starting the {} worker: {e}", lang.name))?;
        let pid = pool.workers().first().and_then(|w| w.pid).unwrap_or(0);
        let hello = pool.call("hello", "World!")?;
        let sum = pool.call("checksum", big.as_slice())?;
        let sum = u64::from_le_bytes(
            sum.bytes()
                .try_into()
                .map_err(|_| "checksum is not 8 bytes")?,
        );
        let agrees = sum == expected;
        all_agree &= agrees;

        let small = [7u8; 64];
        let mut times: Vec<Duration> = (0..2000)
            .map(|_| {
                let t = Instant::now();
                pool.call("checksum", &small[..]).map(|_| t.elapsed())
            })
            .collect::<Result<_, _>>()?;
        times.sort();
        println!(
            "{:<8} worker pid {pid:<7} started in {:>4} ms",
            lang.name,
            started.elapsed().as_millis()
        );
        println!(
            "        hello(\"World!\")        -> {:?}",
            hello.text().unwrap_or("<not UTF-8>")
        );
        println!(
            "        checksum(1 MiB)        -> {sum:016x} {}",
            if agrees {
                "(matches the host's)"
            } else {
                "(DIFFERS from the host's)"
            }
        );
        println!(
            "        64 B call round trip   p50 {:>6.1} µs, p99 {:>6.1} µs over {} calls\n",
            percentile(&times, 50).as_secs_f64() * 1e6,
            percentile(&times, 99).as_secs_f64() * 1e6,
            times.len()
        );
        pool.shutdown();
    }
    if !all_agree {
        return Err("a worker computed a different checksum".into());
    }
    println!("every worker agreed with the host.");
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    if std::env::var_os(knit::serve::ENV_REGION).is_some() {
        return serve_as_rust_worker();
    }
    run_host()
}
