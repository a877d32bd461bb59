//! What the numbers were measured on: processor, kernel, load, date, build.

use std::process::Command;

/// A description of the machine and the run's conditions.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Machine {
    /// Processor model from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Logical processors.
    pub cpus: usize,
    /// `uname -srvmo`.
    pub uname: String,
    /// UTC date and time of the run (`date -u`).
    pub date: String,
    /// `/proc/loadavg` when the run started.
    pub load_before: String,
    /// `/proc/loadavg` when the run ended.
    pub load_after: String,
    /// The clock source of the kernel, which decides what a clock read costs.
    pub clocksource: String,
    /// `git describe` of the tree, when available.
    pub commit: String,
    /// `"release"` or `"debug"`.
    pub profile: String,
}

impl Machine {
    /// Reads the description now (the load after the run is filled in later).
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
        Machine {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            uname: output("uname", &["-srvmo"]),
            date: output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            load_before: load_average(),
            load_after: String::new(),
            clocksource: std::fs::read_to_string(
                "/sys/devices/system/clocksource/clocksource0/current_clocksource",
            )
            .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned()),
            commit: output("git", &["describe", "--always", "--dirty"]),
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }
            .to_owned(),
        }
    }
}

/// The three load averages of `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_this_linux_machine() {
        let m = Machine::describe();
        assert!(m.cpus >= 1);
        assert!(m.uname.starts_with("Linux"), "{}", m.uname);
        assert_eq!(m.load_before.split(' ').count(), 3, "{}", m.load_before);
        assert!(m.date.ends_with('Z'), "{}", m.date);
    }
}
