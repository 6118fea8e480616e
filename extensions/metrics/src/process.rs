//! The standard process metrics of Prometheus client libraries, read from
//! Linux's `/proc` on each scrape: CPU time, memory, open file descriptors
//! and the start time.
//!
//! On a system without `/proc`, or when a file cannot be read, the metrics
//! of that file are left out of the scrape rather than reported as zero.

use std::fs;

use crate::text::{MetricType, TextEncoder};

/// The family names this module writes, which shared metrics must not
/// reuse.
pub const RESERVED_NAMES: [&str; 6] = [
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

/// The process metrics of this process.
#[derive(Debug)]
pub struct ProcessMetrics {
    /// Clock ticks per second (`_SC_CLK_TCK`), the unit of the times in
    /// `/proc/self/stat`.
    ticks_per_second: Option<f64>,
    /// Bytes per page (`_SC_PAGESIZE`), the unit of the resident set size.
    page_size: Option<f64>,
    /// The start time in seconds since the Unix epoch, which does not
    /// change, so it is read once.
    start_time: Option<f64>,
}

/// The fields of `/proc/self/stat` that the metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    /// User and system CPU time, in clock ticks.
    utime: u64,
    stime: u64,
    /// Start time after boot, in clock ticks.
    starttime: u64,
    /// Virtual memory size, in bytes.
    vsize: u64,
    /// Resident set size, in pages.
    rss: u64,
}

impl ProcessMetrics {
    /// Reads the system's units and the process's start time.
    pub fn new() -> Self {
        let ticks_per_second = sysconf(nix::unistd::SysconfVar::CLK_TCK);
        let page_size = sysconf(nix::unistd::SysconfVar::PAGE_SIZE);
        let start_time = ticks_per_second.and_then(|ticks| {
            let stat = read_stat()?;
            let boot_time = parse_boot_time(&fs::read_to_string("/proc/stat").ok()?)?;
            Some(boot_time as f64 + stat.starttime as f64 / ticks)
        });
        Self {
            ticks_per_second,
            page_size,
            start_time,
        }
    }

    /// Writes the process families whose sources can be read now.
    pub fn encode(&self, encoder: &mut TextEncoder) {
        let stat = read_stat();
        if let (Some(stat), Some(ticks)) = (stat, self.ticks_per_second) {
            let seconds = (stat.utime + stat.stime) as f64 / ticks;
            write_one(
                encoder,
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                MetricType::Counter,
                seconds,
            );
        }
        if let (Some(stat), Some(page_size)) = (stat, self.page_size) {
            write_one(
                encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                MetricType::Gauge,
                stat.rss as f64 * page_size,
            );
        }
        if let Some(stat) = stat {
            write_one(
                encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                MetricType::Gauge,
                stat.vsize as f64,
            );
        }
        if let Some(open) = count_open_fds() {
            write_one(
                encoder,
                "process_open_fds",
                "Number of open file descriptors.",
                MetricType::Gauge,
                open as f64,
            );
        }
        let limits = fs::read_to_string("/proc/self/limits").ok();
        if let Some(max) = limits.as_deref().and_then(parse_max_open_files) {
            write_one(
                encoder,
                "process_max_fds",
                "Maximum number of open file descriptors.",
                MetricType::Gauge,
                max,
            );
        }
        if let Some(start_time) = self.start_time {
            write_one(
                encoder,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                MetricType::Gauge,
                start_time,
            );
        }
    }
}

fn write_one(encoder: &mut TextEncoder, name: &str, help: &str, kind: MetricType, value: f64) {
    encoder.family(name, help, kind);
    encoder.sample(name, &[], value);
}

fn sysconf(variable: nix::unistd::SysconfVar) -> Option<f64> {
    match nix::unistd::sysconf(variable) {
        Ok(Some(value)) if value > 0 => Some(value as f64),
        _ => None,
    }
}

fn read_stat() -> Option<Stat> {
    parse_stat(&fs::read_to_string("/proc/self/stat").ok()?)
}

/// Parses `/proc/<pid>/stat`, whose fields are described in proc(5). The
/// second field is the command name in parentheses, which may itself
/// contain spaces and parentheses, so the fields are counted from the last
/// `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_name) = text.rsplit_once(')')?;
    // Field 3 (the state) is the first after the name.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |number: usize| -> Option<u64> { fields.get(number - 3)?.parse().ok() };
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
        rss: field(24)?,
    })
}

/// Parses the `btime` line of `/proc/stat`: the boot time in seconds since
/// the Unix epoch.
fn parse_boot_time(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
}

/// Parses the soft limit of `Max open files` in `/proc/<pid>/limits`, with
/// `unlimited` as `+Inf`.
fn parse_max_open_files(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(f64::INFINITY),
        number => number.parse::<u64>().ok().map(|n| n as f64),
    }
}

/// Counts the entries of `/proc/self/fd`, which include the descriptor
/// that reads the folder.
fn count_open_fds() -> Option<usize> {
    Some(fs::read_dir("/proc/self/fd").ok()?.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_counted_after_name() {
        // A command name with a space and a parenthesis, as a process may
        // set with prctl.
        let text = "4242 (reg istry) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 75 0 0 20 0 9 0 123456 104857600 2048 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 1260 0 0 0 17 1 0 0 0 0 0\n";
        let stat = parse_stat(text).expect("the line parses");
        assert_eq!(stat.utime, 250);
        assert_eq!(stat.stime, 75);
        assert_eq!(stat.starttime, 123_456);
        assert_eq!(stat.vsize, 104_857_600);
        assert_eq!(stat.rss, 2048);
    }

    #[test]
    fn short_stat_is_rejected() {
        assert_eq!(parse_stat("1 (registry) S 1 2 3\n"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn boot_time_from_btime_line() {
        let text = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1767225600\nprocesses 7\n";
        assert_eq!(parse_boot_time(text), Some(1_767_225_600));
        assert_eq!(parse_boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn max_open_files_soft_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             95431                95431                processes \n\
                    Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(text), Some(1024.0));

        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), Some(f64::INFINITY));
        assert_eq!(parse_max_open_files("Max processes 1 1\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_process_metrics_are_plausible() {
        let metrics = ProcessMetrics::new();
        let mut encoder = TextEncoder::new();
        metrics.encode(&mut encoder);
        let text = encoder.finish();
        let families = crate::parse::parse(&text).expect("the output parses");
        let value = |name: &str| -> f64 {
            let family = families.iter().find(|f| f.name == name);
            let family = family.unwrap_or_else(|| panic!("{name} is missing:\n{text}"));
            family.samples[0].value
        };

        assert!(value("process_resident_memory_bytes") > 1e6, "{text}");
        assert!(value("process_virtual_memory_bytes") > 1e6, "{text}");
        assert!(value("process_cpu_seconds_total") >= 0.0, "{text}");
        assert!(value("process_open_fds") >= 3.0, "{text}");
        assert!(
            value("process_max_fds") >= value("process_open_fds"),
            "{text}"
        );

        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs_f64();
        let start = value("process_start_time_seconds");
        assert!(start <= now + 1.0, "start {start} is after now {now}");
        assert!(
            start > now - 86_400.0,
            "start {start} is a day before now {now}"
        );
    }
}
