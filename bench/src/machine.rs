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
    /// The benchmark's scheduling policy, real-time priority and nice value (`/proc/self/stat`).
    pub scheduling: String,
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
            scheduling: std::fs::read_to_string("/proc/self/stat")
                .ok()
                .and_then(|s| scheduling(&s))
                .unwrap_or_else(|| "unknown".to_owned()),
        }
    }
}

/// The policy, real-time priority and nice value from the text of `/proc/<pid>/stat`
/// (fields 19, 40 and 41, counted after the parenthesised command name).
pub fn scheduling(stat: &str) -> Option<String> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts with field 3 (state).
    let field = |n: usize| rest.split_whitespace().nth(n - 3);
    let nice = field(19)?;
    let rt_priority = field(40)?;
    let policy = match field(41)? {
        "0" => "SCHED_OTHER",
        "1" => "SCHED_FIFO",
        "2" => "SCHED_RR",
        "3" => "SCHED_BATCH",
        "5" => "SCHED_IDLE",
        "6" => "SCHED_DEADLINE",
        _ => "unknown policy",
    };
    Some(format!(
        "{policy}, real-time priority {rt_priority}, nice {nice}"
    ))
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
        assert!(m.scheduling.starts_with("SCHED_"), "{}", m.scheduling);
    }

    #[test]
    fn reads_policy_priority_and_nice_from_a_stat_line() {
        // pid (comm with ) inside) state ppid ... : fields 19 = 5, 40 = 10, 41 = 1.
        let mut fields: Vec<String> = (3..=52).map(|i| format!("{i}")).collect();
        fields[19 - 3] = "5".into();
        fields[40 - 3] = "10".into();
        fields[41 - 3] = "1".into();
        let line = format!("42 (a) b) {}", fields.join(" "));
        assert_eq!(
            scheduling(&line).unwrap(),
            "SCHED_FIFO, real-time priority 10, nice 5"
        );
        assert_eq!(scheduling("no parenthesis"), None);
    }
}
