//! The report of a run, as text for the terminal and as Markdown for
//! BENCHMARKS.md. Both carry the same tables.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::suite::Results;
use crate::table::{Table, format_number};
use crate::targets::Check;

/// A rendered section: a heading and either a table or lines of text.
struct Section {
    heading: String,
    table: Option<Table>,
    lines: Vec<String>,
}

fn sections(results: &Results, checks: &[Check], command: &str) -> Vec<Section> {
    let machine = &results.machine;
    let plan = &results.plan;
    let mut header = vec![
        format!("date: {} (UTC)", utc_date_time(SystemTime::now())),
        format!("command: {command}"),
        format!(
            "machine: {}, {} cores, {} GiB memory, Linux {}, sha_ni {}",
            machine.cpu_model,
            machine.cores,
            format_number(machine.memory_bytes as f64 / (1u64 << 30) as f64),
            machine.kernel,
            if machine.sha_ni { "present" } else { "absent" }
        ),
        format!(
            "plan: {} mode; rounds: {} ({} for the extension comparison); {:.1} s per load, {:.1} s per list load, {} blobs per push load; the run took {:.0} s",
            match (plan.quick, plan.extensions_only) {
                (_, true) => "extensions-only",
                (true, false) => "quick",
                (false, false) => "full",
            },
            plan.rounds,
            plan.extension_rounds,
            plan.duration.as_secs_f64(),
            plan.list_duration.as_secs_f64(),
            plan.pushes,
            results.elapsed.as_secs_f64()
        ),
    ];
    let capacity = results.elapsed.as_secs_f64() * machine.cores.max(1) as f64;
    header.push(format!(
        "other processes used {:.1} of the machine's {:.0} CPU-seconds during the run ({:.1}%)",
        results.others_cpu.as_secs_f64(),
        capacity,
        100.0 * results.others_cpu.as_secs_f64() / capacity
    ));
    header.push(
        "each value is the median over rounds; (n.nnx) is the median over rounds of the ratio \
         to the first column in the same round; ±n% after a value or a ratio is half its \
         range over rounds relative to its median; ↑ marks higher-is-better, ↓ \
         lower-is-better"
            .to_owned(),
    );

    let mut sections = vec![Section {
        heading: "Run".to_owned(),
        table: None,
        lines: header,
    }];
    if !plan.extensions_only {
        sections.push(Section {
            heading: "Registries compared".to_owned(),
            table: Some(results.comparison.render()),
            lines: Vec::new(),
        });
        sections.push(Section {
            heading: "Machine limits".to_owned(),
            table: Some(results.limits.render()),
            lines: Vec::new(),
        });
    }
    if let Some(extensions) = &results.extensions {
        sections.push(Section {
            heading: "Cost of extensions".to_owned(),
            table: Some(extensions.render()),
            lines: Vec::new(),
        });
    }

    let mut targets = Table::new(vec![
        "target".to_owned(),
        "measured".to_owned(),
        "verdict".to_owned(),
    ]);
    for check in checks {
        targets.rows.push(vec![
            check.target.clone(),
            check.measured.clone(),
            check.verdict.as_str().to_owned(),
        ]);
    }
    sections.push(Section {
        heading: "Targets".to_owned(),
        table: Some(targets),
        lines: Vec::new(),
    });
    if !results.notes.is_empty() {
        sections.push(Section {
            heading: "Notes".to_owned(),
            table: None,
            lines: results.notes.clone(),
        });
    }
    sections
}

/// Renders the report for the terminal.
pub fn to_text(results: &Results, checks: &[Check], command: &str) -> String {
    let mut text = String::new();
    for section in sections(results, checks, command) {
        let _ = writeln!(text, "\n== {} ==\n", section.heading);
        for line in &section.lines {
            let _ = writeln!(text, "{line}");
        }
        if let Some(table) = &section.table {
            text.push_str(&table.to_text());
        }
    }
    text
}

/// Renders the report as Markdown, with `###` headings, to paste under a
/// heading of BENCHMARKS.md.
pub fn to_markdown(results: &Results, checks: &[Check], command: &str) -> String {
    let mut text = String::new();
    for section in sections(results, checks, command) {
        let _ = writeln!(text, "### {}\n", section.heading);
        for line in &section.lines {
            let _ = writeln!(text, "- {line}");
        }
        if !section.lines.is_empty() {
            text.push('\n');
        }
        if let Some(table) = &section.table {
            text.push_str(&table.to_markdown());
            text.push('\n');
        }
    }
    text
}

/// Formats `time` as `YYYY-MM-DD HH:MM`, in UTC.
fn utc_date_time(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days((seconds / 86_400) as i64);
    let minute_of_day = (seconds % 86_400) / 60;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian date, with
/// Howard Hinnant's `civil_from_days` algorithm (eras of 400 years).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        // 2000-02-29, a leap day of a year divisible by 400.
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn utc_date_time_format() {
        let time = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(utc_date_time(time), "2023-11-14 22:13");
    }
}
