//! Readings from `/proc`: a process's CPU time and memory, and the
//! machine's CPU, memory and kernel for the report header.
//!
//! The parsers take the file's text, so the tests need no live process.

use std::time::Duration;

use anyhow::{Context, Result, bail};

/// Memory of one process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct ProcessReading {
    /// Resident set size (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size since the process started (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads the memory of process `pid` from `/proc/<pid>/status`.
///
/// # Errors
///
/// Fails when the process is gone or a value is missing.
pub fn read_process(pid: u32) -> Result<ProcessReading> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("failed to read /proc/{pid}/status"))?;
    let kib = |key| {
        status_kib(&status, key).with_context(|| format!("{key} missing in /proc/{pid}/status"))
    };
    Ok(ProcessReading {
        rss_bytes: kib("VmRSS")? * 1024,
        peak_rss_bytes: kib("VmHWM")? * 1024,
    })
}

/// Returns the CPU time of process `pid`: user plus system time of all its
/// threads, at the clock-tick resolution of `/proc` (10 ms at the usual
/// 100 ticks per second).
///
/// # Errors
///
/// Fails when the process is gone or its stat line does not parse.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    Ok(ticks_to_duration(stat_cpu_ticks(&stat)?))
}

/// Converts clock ticks (`utime`, `stime`) to a duration with the kernel's
/// `CLK_TCK`.
pub fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|value| u64::try_from(value).ok())
        .filter(|&value| value > 0)
        .unwrap_or(100);
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// Parses `utime + stime` (fields 14 and 15) out of a `/proc/<pid>/stat`
/// line, in clock ticks.
///
/// # Errors
///
/// Fails when the line has no `)` or too few fields after it.
pub fn stat_cpu_ticks(stat: &str) -> Result<u64> {
    Ok(stat_fields(stat, 14..=15)?.iter().sum())
}

/// Parses `utime + stime + cutime + cstime` (fields 14 to 17) out of a
/// `/proc/<pid>/stat` line, in clock ticks: the process's own CPU time and
/// that of its children that it has waited for.
///
/// # Errors
///
/// Fails when the line has no `)` or too few fields after it.
pub fn stat_cpu_ticks_with_children(stat: &str) -> Result<u64> {
    Ok(stat_fields(stat, 14..=17)?.iter().sum())
}

/// Parses the numeric fields `numbers` (1-based, as in proc(5)) of a
/// `/proc/<pid>/stat` line. The command name in field 2 sits between
/// parentheses and may contain spaces and parentheses itself, so fields are
/// counted from the last `)`.
fn stat_fields(stat: &str, numbers: std::ops::RangeInclusive<usize>) -> Result<Vec<u64>> {
    let Some(end_of_name) = stat.rfind(')') else {
        bail!("invalid stat line: no ')' after the command name");
    };
    // Field 3 (state) is the first after the name.
    let fields: Vec<&str> = stat[end_of_name + 1..].split_whitespace().collect();
    numbers
        .map(|number| {
            let field = fields
                .get(number - 3)
                .with_context(|| format!("invalid stat line: no field {number}"))?;
            field
                .parse()
                .with_context(|| format!("invalid stat field {number}: {field:?}"))
        })
        .collect()
}

/// Parses the busy time of all CPUs out of `/proc/stat`, in clock ticks:
/// user, nice, system, irq, softirq and steal of the `cpu` line (guest time
/// is part of user).
///
/// # Errors
///
/// Fails when the `cpu` line is missing or has fewer than 8 numbers.
pub fn machine_busy_ticks(stat: &str) -> Result<u64> {
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        bail!("no cpu line in /proc/stat");
    };
    let numbers: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|field| {
            field
                .parse()
                .with_context(|| format!("invalid /proc/stat field {field:?}"))
        })
        .collect::<Result<_>>()?;
    if numbers.len() < 8 {
        bail!("invalid /proc/stat cpu line: {} numbers", numbers.len());
    }
    // user nice system idle iowait irq softirq steal
    Ok(numbers[0] + numbers[1] + numbers[2] + numbers[5] + numbers[6] + numbers[7])
}

/// CPU time of the whole machine and of this process with the children
/// that it has waited for, at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    machine_busy: u64,
    this_process_tree: u64,
}

impl CpuSnapshot {
    /// Reads `/proc/stat` and `/proc/self/stat`.
    ///
    /// # Errors
    ///
    /// Fails when either file cannot be read or parsed.
    pub fn read() -> Result<CpuSnapshot> {
        let machine = std::fs::read_to_string("/proc/stat").context("failed to read /proc/stat")?;
        let this =
            std::fs::read_to_string("/proc/self/stat").context("failed to read /proc/self/stat")?;
        Ok(CpuSnapshot {
            machine_busy: machine_busy_ticks(&machine)?,
            this_process_tree: stat_cpu_ticks_with_children(&this)?,
        })
    }

    /// Returns the CPU time that other processes used since `earlier`: the
    /// machine's busy time less that of this process and of the servers it
    /// started and waited for. Children still running at either moment are
    /// counted as other processes.
    pub fn others_since(&self, earlier: &CpuSnapshot) -> Duration {
        let machine = self.machine_busy.saturating_sub(earlier.machine_busy);
        let ours = self
            .this_process_tree
            .saturating_sub(earlier.this_process_tree);
        ticks_to_duration(machine.saturating_sub(ours))
    }
}

/// Returns the value in kiB of a `Key:   1234 kB` line of
/// `/proc/<pid>/status` or `/proc/meminfo`, or `None` when the key is
/// missing or its value is not a number.
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Returns whether the first processor in `/proc/cpuinfo` text lists
/// `flag` among its `flags`.
pub fn cpu_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo_value(cpuinfo, "flags").is_some_and(|flags| flags.split_whitespace().any(|f| f == flag))
}

/// Returns the value of the first `key : value` line in `/proc/cpuinfo`
/// text.
pub fn cpuinfo_value<'a>(cpuinfo: &'a str, key: &str) -> Option<&'a str> {
    cpuinfo.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == key).then(|| value.trim())
    })
}

/// The machine that a run measured, for the report header.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub kernel: String,
    /// Whether the CPU has the SHA extensions (`sha_ni` in `/proc/cpuinfo`),
    /// which the `sha2` crate uses when present.
    pub sha_ni: bool,
}

impl Machine {
    /// Reads the machine's description from `/proc`. A missing file leaves
    /// its field as "unknown" or 0 rather than failing the run.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            cpu_model: cpuinfo_value(&cpuinfo, "model name")
                .unwrap_or("unknown")
                .to_owned(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_bytes: status_kib(&meminfo, "MemTotal").unwrap_or(0) * 1024,
            kernel,
            sha_ni: cpu_has_flag(&cpuinfo, "sha_ni"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_sum_utime_and_stime() {
        let line = "4242 (registry) S 1 4242 4242 0 -1 4194560 1093 0 0 0 \
                    150 37 0 0 20 0 3 0 1000 223408128 3300 18446744073709551615";
        assert_eq!(stat_cpu_ticks(line).unwrap(), 187);
    }

    #[test]
    fn stat_ticks_with_spaces_in_name() {
        let line = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 9 1 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_cpu_ticks(line).unwrap(), 10);
    }

    #[test]
    fn stat_ticks_with_children() {
        // cutime and cstime (fields 16 and 17) are 5 and 8.
        let line = "4242 (registry) S 1 4242 4242 0 -1 4194560 1093 0 0 0 \
                    150 37 5 8 20 0 3 0 1000 223408128 3300 18446744073709551615";
        assert_eq!(stat_cpu_ticks_with_children(line).unwrap(), 200);
    }

    #[test]
    fn machine_busy_excludes_idle_and_iowait() {
        let stat = "cpu  100 2 30 5000 70 4 5 6 0 0\ncpu0 50 1 15 2500 35 2 2 3 0 0\n";
        assert_eq!(machine_busy_ticks(stat).unwrap(), 147);
        assert!(machine_busy_ticks("cpu0 1 2 3\n").is_err());
        assert!(machine_busy_ticks("cpu  1 2 3\n").is_err());
    }

    #[test]
    fn stat_ticks_reject_short_line() {
        assert!(stat_cpu_ticks("1 (x) S 1 2 3").is_err());
        assert!(stat_cpu_ticks("no parenthesis here").is_err());
    }

    #[test]
    fn status_kib_reads_named_key() {
        let status = "Name:\tregistry\nVmHWM:\t   10240 kB\nVmRSS:\t    8192 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(8192));
        assert_eq!(status_kib(status, "VmHWM"), Some(10240));
    }

    #[test]
    fn status_kib_missing_key() {
        let status = "VmRSSX:\t1 kB\nName:\tx\n";
        assert_eq!(status_kib(status, "VmRSS"), None);
        assert_eq!(status_kib(status, "Name"), None);
    }

    #[test]
    fn cpuinfo_flags_match_whole_words() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz\n\
                       flags\t\t: fpu sse2 sha_ni avx2\n\nprocessor\t: 1\n";
        assert!(cpu_has_flag(cpuinfo, "sha_ni"));
        assert!(!cpu_has_flag(cpuinfo, "sha"));
        assert_eq!(
            cpuinfo_value(cpuinfo, "model name"),
            Some("Example CPU @ 2.00GHz")
        );
    }

    #[test]
    fn own_process_reading() {
        let reading = read_process(std::process::id()).unwrap();
        assert!(reading.rss_bytes > 0);
        assert!(reading.peak_rss_bytes >= reading.rss_bytes);
    }
}
