//! Bounded waiting for the baselines' hand-written loops: a host gives up on a peer that does
//! not answer, and a peer gives up when its host is gone, so no benchmark can hang.

use std::time::{Duration, Instant};

use crate::{error, Result};

/// Spin iterations between two checks of the bound: rare enough to cost nothing measurable.
pub const SPINS_PER_CHECK: u32 = 1 << 16;

/// How long a host waits for one answer before it declares the peer stuck.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The bound of a wait.
#[derive(Clone, Copy, Debug)]
pub enum Patience {
    /// Give up after this long (the host waiting for its peer).
    For(Duration),
    /// Give up when the parent process changed, i.e. the host died (a peer).
    WhileParent(u32),
}

impl Patience {
    /// The patience of a host waiting for an answer.
    pub fn host() -> Patience {
        Patience::For(ANSWER_TIMEOUT)
    }

    /// The patience of a peer waiting for its host: as long as the host lives.
    pub fn peer() -> Patience {
        Patience::WhileParent(std::os::unix::process::parent_id())
    }

    /// A running check of this bound, started now.
    pub fn start(self) -> Watch {
        Watch {
            patience: self,
            started: Instant::now(),
        }
    }
}

/// A bound being checked.
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    patience: Patience,
    started: Instant,
}

impl Watch {
    /// An error once the bound is exceeded.
    pub fn check(&self) -> Result<()> {
        match self.patience {
            Patience::For(limit) if self.started.elapsed() > limit => Err(error(format!(
                "the peer did not answer within {} s",
                limit.as_secs()
            ))),
            Patience::WhileParent(ppid) if std::os::unix::process::parent_id() != ppid => {
                Err(error("the host process is gone"))
            }
            _ => Ok(()),
        }
    }
}

/// Spins until `done()` is true, checking `patience` every [`SPINS_PER_CHECK`] iterations.
pub fn spin_until(patience: Patience, mut done: impl FnMut() -> bool) -> Result<()> {
    let mut watch: Option<Watch> = None;
    let mut spins: u32 = 0;
    while !done() {
        std::hint::spin_loop();
        spins = spins.wrapping_add(1);
        if spins % SPINS_PER_CHECK == 0 {
            watch.get_or_insert_with(|| patience.start()).check()?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_until_returns_when_done() {
        let mut n = 0;
        spin_until(Patience::host(), || {
            n += 1;
            n == 3
        })
        .unwrap();
        assert_eq!(n, 3);
    }

    #[test]
    fn spin_until_gives_up_after_its_bound() {
        let r = spin_until(Patience::For(Duration::ZERO), || false);
        assert!(r.unwrap_err().to_string().contains("did not answer"));
    }

    #[test]
    fn a_peer_whose_parent_changed_gives_up() {
        let r = spin_until(Patience::WhileParent(u32::MAX), || false);
        assert!(r.unwrap_err().to_string().contains("host process is gone"));
    }
}
