//! Process identity and liveness (spec/02 §2.3, PART-8, LIVE-2): a process is named by its pid
//! *and* its start time, so that a reused pid is never taken for the original process.
//!
//! On Linux the start time is field 22 (`starttime`, clock ticks since boot) of
//! `/proc/<pid>/stat`. The second field (`comm`, the executable name in parentheses) may itself
//! contain spaces and `)`, so the fields are parsed after the *last* `)` of the line.

use std::fs::File;
use std::io::Read;

use knit_core::ErrorCode;
use rustix::io::Errno;

use crate::error::{Error, Result};

/// Bytes of `/proc/<pid>/stat` read: the line is about 300 bytes (52 numeric fields and a
/// `comm` of at most 64 bytes), so this holds it whole with room to spare, and bounds the read.
const STAT_READ_MAX: usize = 4096;

/// Index of `starttime` (field 22) among the fields after `comm` (field 3, `state`, is index 0).
const STARTTIME_INDEX: usize = 22 - 3;

/// A process as the protocol records it in a participant entry (PART-2, PART-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProcessIdentity {
    /// Operating-system process id.
    pub pid: u32,
    /// Start time in clock ticks since boot (`/proc/<pid>/stat` field 22); never 0 for a
    /// process whose identity was read.
    pub start_time: u64,
}

impl ProcessIdentity {
    /// The identity of the calling process.
    pub fn current() -> Result<Self> {
        let pid = rustix::process::getpid()
            .as_raw_nonzero()
            .get()
            .unsigned_abs();
        Self::of(pid)
    }

    /// The identity of process `pid`, read from `/proc/<pid>/stat`, whatever its state
    /// (a zombie still has one; see [`ProcessIdentity::is_alive`]).
    pub fn of(pid: u32) -> Result<Self> {
        let stat = read_stat(pid)?;
        Ok(ProcessIdentity {
            pid,
            start_time: stat.start_time,
        })
    }

    /// True when this process still runs (see [`is_alive`]).
    pub fn is_alive(&self) -> bool {
        is_alive(self.pid, self.start_time)
    }
}

/// The fields of `/proc/<pid>/stat` that liveness needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3, the state letter (`R`, `S`, `D`, `Z`, `X`, …).
    pub state: u8,
    /// Field 22, `starttime` in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Parses the text of a `/proc/<pid>/stat` file, or `None` when it is not one: the
    /// fields are taken after the last `)`, so a `comm` holding spaces or `)` cannot shift them.
    pub fn parse(text: &[u8]) -> Option<Self> {
        let close = text.iter().rposition(|&b| b == b')')?;
        let rest = text.get(close + 1..)?;
        let mut fields = rest
            .split(u8::is_ascii_whitespace)
            .filter(|f| !f.is_empty());
        let state = match fields.next()? {
            [letter] if letter.is_ascii_alphabetic() => *letter,
            _ => return None,
        };
        // `nth` counts from the field after `state`.
        let start = fields.nth(STARTTIME_INDEX - 1)?;
        let start_time = std::str::from_utf8(start).ok()?.parse::<u64>().ok()?;
        Some(ProcStat { state, start_time })
    }

    /// True unless the state is zombie (`Z`) or dead (`X`, or the old `x`).
    pub fn is_running(&self) -> bool {
        !matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// PART-8 / LIVE-2: true when process `pid` exists, started at `start_time` and is neither a
/// zombie nor dead.
///
/// LIVE-8: false only on evidence of death (see [`check_alive`]); a check that could not be
/// completed (e.g. no descriptor left to open `/proc`) answers true, so that the caller keeps
/// waiting and checks again at its next interval instead of failing a live peer's calls.
pub fn is_alive(pid: u32, start_time: u64) -> bool {
    check_alive(pid, start_time).unwrap_or(true)
}

/// The liveness of process `pid` recorded with `start_time` (PART-8, LIVE-2, LIVE-8):
/// `Ok(false)` on evidence of death — no such process, a pid that no process can have (0 or
/// above `i32::MAX`), another start time (a reused pid) or a zombie / dead state;
/// `Ok(true)` when the process runs; an error when the check could not be made.
pub fn check_alive(pid: u32, start_time: u64) -> Result<bool> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return Ok(false);
    }
    match read_stat(pid) {
        Ok(stat) => Ok(stat.start_time == start_time && stat.is_running()),
        // No such entry, or the process went away between open and read.
        Err(Error::Os { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound
                || source.raw_os_error() == Some(Errno::SRCH.raw_os_error()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Reads and parses `/proc/<pid>/stat`, reading at most 4 KiB (a stat line is far shorter).
pub fn read_stat(pid: u32) -> Result<ProcStat> {
    if pid == 0 || i32::try_from(pid).is_err() {
        return Err(Error::Protocol {
            error: knit_core::Error::value(
                ErrorCode::InvalidArgument,
                "pid",
                u64::from(pid),
                i32::MAX.unsigned_abs().into(),
            ),
            context: String::new(),
        });
    }
    let path = format!("/proc/{pid}/stat");
    let file = File::open(&path).map_err(|e| Error::os("open", &path, e))?;
    let mut text = Vec::with_capacity(512);
    file.take(STAT_READ_MAX as u64)
        .read_to_end(&mut text)
        .map_err(|e| Error::os("read", &path, e))?;
    ProcStat::parse(&text).ok_or_else(|| {
        Error::os(
            "parse",
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, "not a stat line"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stat line with fields 3..=22 numbered by their own value, after `comm`.
    fn line(comm: &str, state: char, start: u64) -> String {
        let middle: Vec<String> = (4..22).map(|i| i.to_string()).collect();
        format!(
            "1234 ({comm}) {state} {} {start} 23 24 25\n",
            middle.join(" ")
        )
    }

    #[test]
    fn parses_state_and_field_22() {
        let stat = ProcStat::parse(line("cat", 'S', 987_654).as_bytes()).expect("parse");
        assert_eq!(
            stat,
            ProcStat {
                state: b'S',
                start_time: 987_654
            }
        );
        assert!(stat.is_running());
    }

    #[test]
    fn comm_with_spaces_and_parentheses_does_not_shift_fields() {
        for comm in [
            "a b",
            "x) S 1 2 3 (",
            ") )",
            "(",
            "tab\there",
            "new\nline",
            "",
        ] {
            let stat = ProcStat::parse(line(comm, 'R', 42).as_bytes()).expect(comm);
            assert_eq!(
                stat,
                ProcStat {
                    state: b'R',
                    start_time: 42
                },
                "{comm:?}"
            );
        }
    }

    #[test]
    fn zombies_and_dead_are_not_running() {
        for s in ['Z', 'X', 'x'] {
            let stat = ProcStat::parse(line("z", s, 7).as_bytes()).expect("parse");
            assert!(!stat.is_running(), "{s}");
        }
    }

    #[test]
    fn malformed_lines_are_refused() {
        for bad in [
            "",
            "1234 cat S 1 2",
            "1234 (cat) S 4 5 6",
            "1234 (cat) SS 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 99",
            "1234 (cat) 5 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 99",
            "1234 (cat) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 -9",
            "1234 (cat) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 99999999999999999999999",
        ] {
            assert_eq!(ProcStat::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn out_of_range_pids_are_not_alive() {
        assert_eq!(check_alive(0, 1).ok(), Some(false));
        assert_eq!(check_alive(u32::MAX, 1).ok(), Some(false));
        assert!(!is_alive(0, 1));
        assert!(!is_alive(u32::MAX, 1));
        assert_eq!(
            read_stat(0).expect_err("pid 0").code(),
            ErrorCode::InvalidArgument
        );
    }
}
