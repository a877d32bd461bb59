//! The peer process: the benchmark executable started again as `knit-bench peer <role>
//! key=value...`, so that every measurement crosses a real process boundary.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{error, Result};

/// The first argument that makes the executable a peer.
pub const PEER_COMMAND: &str = "peer";

/// An environment variable whose words are put before every peer command line, to run the
/// peers under a profiler: `KNIT_BENCH_PEER_PREFIX="valgrind --tool=callgrind"`.
pub const PREFIX_VAR: &str = "KNIT_BENCH_PEER_PREFIX";

/// How long a host waits for a peer to exit after asking it to stop.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The arguments a peer was started with: its role and `key=value` pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerArgs {
    role: String,
    values: BTreeMap<String, String>,
}

impl PeerArgs {
    /// Parses the arguments that follow [`PEER_COMMAND`]: a role, then `key=value` pairs.
    pub fn parse(args: &[String]) -> Result<PeerArgs> {
        let (role, rest) = args
            .split_first()
            .ok_or_else(|| error("peer: no role given"))?;
        let mut values = BTreeMap::new();
        for arg in rest {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| error(format!("peer: argument {arg:?} is not key=value")))?;
            values.insert(key.to_owned(), value.to_owned());
        }
        Ok(PeerArgs {
            role: role.clone(),
            values,
        })
    }

    /// The role, which names the transport the peer serves.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Result<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| error(format!("peer {}: missing argument {key}", self.role)))
    }

    /// The value of `key` as a number.
    pub fn get_usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key)?;
        v.parse()
            .map_err(|_| error(format!("peer {}: {key}={v} is not a number", self.role)))
    }
}

/// A command line that starts this executable as the peer of `role`.
#[derive(Debug)]
pub struct PeerCommand {
    command: Command,
}

impl PeerCommand {
    /// `<this executable> peer <role>`, with stdin closed and stdout and stderr inherited;
    /// preceded by the words of [`PREFIX_VAR`] when it is set.
    pub fn new(role: &str) -> Result<PeerCommand> {
        let exe = std::env::current_exe()?;
        let prefix = std::env::var(PREFIX_VAR).unwrap_or_default();
        let mut words = prefix.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        command.arg(PEER_COMMAND).arg(role).stdin(Stdio::null());
        Ok(PeerCommand { command })
    }

    /// Adds `key=value`.
    #[must_use]
    pub fn arg(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.command.arg(format!("{key}={value}"));
        self
    }

    /// The command, to adjust (standard streams, environment) before spawning.
    pub fn command(&mut self) -> &mut Command {
        &mut self.command
    }

    /// The command itself, for a runtime that starts the process (a Knit pool).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Starts the peer.
    pub fn spawn(mut self) -> Result<PeerProcess> {
        Ok(PeerProcess::new(self.command.spawn()?))
    }
}

/// A running peer. Dropping it kills the process if it has not exited; [`PeerProcess::finish`]
/// waits for a clean exit instead and reports a failure.
#[derive(Debug)]
pub struct PeerProcess {
    child: Option<Child>,
}

impl PeerProcess {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> PeerProcess {
        PeerProcess { child: Some(child) }
    }

    /// The child process, for its standard streams.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// The process id of the peer.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits at most [`EXIT_TIMEOUT`] for the peer to exit (the caller asked it to stop) and
    /// fails unless it exited with status 0.
    pub fn finish(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return if status.success() {
                    Ok(())
                } else {
                    Err(error(format!("peer exited with {status}")))
                };
            }
            if start.elapsed() > EXIT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error("peer did not exit when asked to stop"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn parses_role_and_pairs() {
        let a = PeerArgs::parse(&strings(&["floor-spin", "region=knit-00", "n=12"])).unwrap();
        assert_eq!(a.role(), "floor-spin");
        assert_eq!(a.get("region").unwrap(), "knit-00");
        assert_eq!(a.get_usize("n").unwrap(), 12);
        assert!(a.get("missing").is_err());
    }

    #[test]
    fn refuses_missing_role_bad_pairs_and_bad_numbers() {
        assert!(PeerArgs::parse(&[]).is_err());
        assert!(PeerArgs::parse(&strings(&["r", "novalue"])).is_err());
        let a = PeerArgs::parse(&strings(&["r", "n=x"])).unwrap();
        assert!(a.get_usize("n").is_err());
    }
}
