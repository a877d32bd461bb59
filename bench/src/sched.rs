//! Real-time scheduling for the spinning cases (`--realtime`): a spinning pair needs both
//! cores of a two-core machine at once, and any other runnable task takes one away for a whole
//! time slice. As `SCHED_FIFO` the pair keeps its cores (the kernel still leaves others 5%).
//! Parked cases stay `SCHED_OTHER`: a real-time sleeper is woken differently (a remote
//! preemption instead of the normal wake-up path), which would change what they measure.
//!
//! The policy is set with util-linux's `chrt` on the benchmark's main thread, so no unsafe code
//! is needed; threads and processes started afterwards (pool threads, peers) inherit it.

use std::process::Command;

use crate::{error, Result};

/// The `SCHED_FIFO` priority of the spinning cases.
pub const PRIORITY: u32 = 10;

/// Switches the main thread to `SCHED_FIFO` ([`PRIORITY`]) or back to `SCHED_OTHER`.
pub fn set_realtime(on: bool) -> Result<()> {
    let pid = std::process::id().to_string();
    let prio = if on {
        PRIORITY.to_string()
    } else {
        "0".to_owned()
    };
    let policy = if on { "--fifo" } else { "--other" };
    let status = Command::new("chrt")
        .args([policy, "--pid", &prio, &pid])
        .status()
        .map_err(|e| error(format!("chrt: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(error(format!(
            "chrt {policy} --pid {prio} {pid} failed ({status}); --realtime needs root"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returning_to_the_normal_policy_always_works() {
        // Setting SCHED_OTHER on ourselves needs no privilege.
        set_realtime(false).unwrap();
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        assert!(crate::machine::scheduling(&stat)
            .unwrap()
            .starts_with("SCHED_OTHER"));
    }
}
