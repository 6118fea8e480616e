//! The project's performance targets, checked against a run's results.
//!
//! A target that compares two servers measured in the same round is judged
//! round by round: met when every round meets it, missed when no round
//! does, and inconclusive otherwise, because the rounds then disagree more
//! than the margin. The other targets compare medians.

use crate::stats::median;
use crate::suite::Results;
use crate::table::{MetricTable, format_number, format_ratio};

const REGISTRY: usize = 0;
const DISTRIBUTION: usize = 1;
const CRANE: usize = 2;

/// Whether a run met a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// Some rounds met the target and others did not.
    Inconclusive,
    /// A value the check needs was not measured (no `--registry-full`, say).
    NotMeasured,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Inconclusive => "inconclusive",
            Verdict::NotMeasured => "not measured",
        }
    }

    fn from_bool(met: bool) -> Verdict {
        if met { Verdict::Met } else { Verdict::Missed }
    }

    /// Judges per-round values: met when `meets` holds for every round,
    /// missed when it holds for none, inconclusive otherwise, and not
    /// measured when there is no round.
    fn per_round(values: &[f64], meets: impl Fn(f64) -> bool) -> Verdict {
        let met = values.iter().filter(|value| meets(**value)).count();
        match met {
            _ if values.is_empty() => Verdict::NotMeasured,
            0 => Verdict::Missed,
            _ if met == values.len() => Verdict::Met,
            _ => Verdict::Inconclusive,
        }
    }

    /// Returns the verdict of two conditions that must both hold.
    fn and(self, other: Verdict) -> Verdict {
        use Verdict::{Inconclusive, Met, Missed, NotMeasured};
        match (self, other) {
            (NotMeasured, _) | (_, NotMeasured) => NotMeasured,
            (Missed, _) | (_, Missed) => Missed,
            (Inconclusive, _) | (_, Inconclusive) => Inconclusive,
            (Met, Met) => Met,
        }
    }
}

/// One target and what the run measured for it.
#[derive(Debug, Clone)]
pub struct Check {
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
}

impl Check {
    fn not_measured(target: String) -> Check {
        Check {
            target,
            measured: "-".to_owned(),
            verdict: Verdict::NotMeasured,
        }
    }
}

/// Checks every target against `results`, or only the extension targets
/// after a run of the extension comparison alone.
pub fn evaluate(results: &Results) -> Vec<Check> {
    if results.plan.extensions_only {
        return extension_cost(results);
    }
    let table = &results.comparison;
    let mut checks = Vec::new();

    for key in ["ping", "head", "get", "tags_small", "tags_large"] {
        checks.push(rate_and_cpu_vs_crane(table, key));
    }
    checks.push(blob_1m_vs_crane(table));
    checks.push(blob_64m_vs_nginx(results));
    for key in ["push_mono", "push_chunked"] {
        checks.push(push_vs_distribution_and_sha(results, key));
    }
    checks.push(idle_rss(table));
    checks.push(peak_rss(table));
    for (small, large) in [
        ("tags_small", "tags_large"),
        ("catalog_small", "catalog_large"),
    ] {
        checks.push(list_growth(results, small, large));
    }
    checks.extend(extension_cost(results));
    checks
}

/// Returns the medians of `keys` in `column`, or `None` if one is missing.
fn medians<const N: usize>(
    table: &MetricTable,
    keys: [&str; N],
    column: usize,
) -> Option<[f64; N]> {
    let mut values = [0.0; N];
    for (value, key) in values.iter_mut().zip(keys) {
        *value = table.median(key, column)?;
    }
    Some(values)
}

fn rate_and_cpu_vs_crane(table: &MetricTable, key: &str) -> Check {
    let (rps, cpu) = (format!("{key}_rps"), format!("{key}_cpu"));
    let target = format!(
        "{}: req/s at least crane's, server CPU per request at most crane's",
        table.label(&rps)
    );
    let (Some([ours, our_cpu]), Some([theirs, their_cpu])) = (
        medians(table, [&rps, &cpu], REGISTRY),
        medians(table, [&rps, &cpu], CRANE),
    ) else {
        return Check::not_measured(target);
    };
    Check {
        target,
        measured: format!(
            "{} req/s at {} µs vs crane {} req/s at {} µs",
            format_number(ours),
            format_number(our_cpu),
            format_number(theirs),
            format_number(their_cpu)
        ),
        // Per round, crane's value divided by ours.
        verdict: Verdict::per_round(&table.ratios_to_first(&rps, CRANE), |r| r <= 1.0).and(
            Verdict::per_round(&table.ratios_to_first(&cpu, CRANE), |r| r >= 1.0),
        ),
    }
}

fn blob_1m_vs_crane(table: &MetricTable) -> Check {
    let target = format!("{}: req/s at least crane's", table.label("blob1m_rps"));
    let (Some([ours]), Some([theirs])) = (
        medians(table, ["blob1m_rps"], REGISTRY),
        medians(table, ["blob1m_rps"], CRANE),
    ) else {
        return Check::not_measured(target);
    };
    Check {
        target,
        measured: format!(
            "{} vs crane {} req/s",
            format_number(ours),
            format_number(theirs)
        ),
        verdict: Verdict::per_round(&table.ratios_to_first("blob1m_rps", CRANE), |r| r <= 1.0),
    }
}

fn blob_64m_vs_nginx(results: &Results) -> Check {
    let target = "64 MiB blob GET: at least the faster of nginx's two modes".to_owned();
    let (Some([ours]), Some([sendfile, buffered])) = (
        medians(&results.comparison, ["blob64m_mibs"], REGISTRY),
        medians(
            &results.limits,
            ["nginx_sendfile_mibs", "nginx_buffered_mibs"],
            0,
        ),
    ) else {
        return Check::not_measured(target);
    };
    let best = sendfile.max(buffered);
    Check {
        target,
        measured: format!(
            "{} MiB/s vs nginx {} (sendfile on) and {} (off)",
            format_number(ours),
            format_number(sendfile),
            format_number(buffered)
        ),
        verdict: Verdict::from_bool(ours >= best),
    }
}

fn push_vs_distribution_and_sha(results: &Results, key: &str) -> Check {
    let mibs = format!("{key}_mibs");
    let target = format!(
        "{}: at least 3x distribution and half the in-process sha256 rate",
        results.comparison.label(&mibs)
    );
    let (Some([ours]), Some([theirs]), Some([sha])) = (
        medians(&results.comparison, [&mibs], REGISTRY),
        medians(&results.comparison, [&mibs], DISTRIBUTION),
        medians(&results.limits, ["sha256_mibs"], 0),
    ) else {
        return Check::not_measured(target);
    };
    Check {
        target,
        measured: format!(
            "{} MiB/s = {} distribution, {} of sha256's {} MiB/s",
            format_number(ours),
            format_ratio(ours / theirs),
            format_ratio(ours / sha),
            format_number(sha)
        ),
        // Per round, distribution's rate divided by ours.
        verdict: Verdict::per_round(
            &results.comparison.ratios_to_first(&mibs, DISTRIBUTION),
            |r| r <= 1.0 / 3.0,
        )
        .and(Verdict::from_bool(ours >= 0.5 * sha)),
    }
}

fn idle_rss(table: &MetricTable) -> Check {
    let target = "idle RSS at most 10 MiB".to_owned();
    let Some([ours]) = medians(table, ["idle_rss"], REGISTRY) else {
        return Check::not_measured(target);
    };
    Check {
        target,
        measured: format!("{} MiB", format_number(ours)),
        verdict: Verdict::from_bool(ours <= 10.0),
    }
}

fn peak_rss(table: &MetricTable) -> Check {
    let target = "peak RSS over the run at most a quarter of distribution's".to_owned();
    let (Some([ours]), Some([theirs])) = (
        medians(table, ["peak_rss"], REGISTRY),
        medians(table, ["peak_rss"], DISTRIBUTION),
    ) else {
        return Check::not_measured(target);
    };
    Check {
        target,
        measured: format!(
            "{} MiB vs distribution {} MiB ({})",
            format_number(ours),
            format_number(theirs),
            format_ratio(ours / theirs)
        ),
        verdict: Verdict::from_bool(ours <= theirs / 4.0),
    }
}

/// The first page of a list should cost less than twice as much server CPU
/// at the larger size as at the smaller. The p50 latency is shown but not
/// judged. With one client, it moves between two levels from run to run:
/// 0.02 and 0.1 ms were both seen for the same registry build.
fn list_growth(results: &Results, small: &str, large: &str) -> Check {
    let plan = &results.plan;
    let table = &results.comparison;
    let noun = if small.starts_with("tags") {
        "tags list"
    } else {
        "catalog"
    };
    let target = format!(
        "{noun} first page: server CPU per request at {} entries less than 2x that at {}",
        format_number(plan.large_list as f64),
        format_number(plan.small_list as f64)
    );
    let keys = |prefix: &str| [format!("{prefix}_cpu"), format!("{prefix}_p50")];
    let [small_cpu_key, small_p50_key] = keys(small);
    let [large_cpu_key, large_p50_key] = keys(large);
    let (Some([small_cpu, small_p50]), Some([large_cpu, large_p50])) = (
        medians(table, [&small_cpu_key, &small_p50_key], REGISTRY),
        medians(table, [&large_cpu_key, &large_p50_key], REGISTRY),
    ) else {
        return Check::not_measured(target);
    };
    let cpu_ratio = large_cpu / small_cpu;
    let latency_ratio = large_p50 / small_p50;
    Check {
        target,
        measured: format!(
            "CPU {} (from {} to {} µs), p50 {} (from {} to {} ms)",
            format_ratio(cpu_ratio),
            format_number(small_cpu),
            format_number(large_cpu),
            format_ratio(latency_ratio),
            format_number(small_p50),
            format_number(large_p50)
        ),
        verdict: Verdict::from_bool(cpu_ratio < 2.0),
    }
}

/// Every extension linked and enabled should cost at most 3% of each push
/// and pull throughput, judged round by round because the two builds run
/// back to back in each round.
fn extension_cost(results: &Results) -> Vec<Check> {
    let target = |label: &str| format!("{label}: all extensions cost at most 3%");
    let rows = [
        ("tag_put_rps", "manifest PUT by new tag"),
        ("get_rps", "manifest GET by tag"),
        ("blob1m_rps", "1 MiB blob GET"),
        ("push_mono_mibs", "64 MiB push"),
        ("blob64m_mibs", "64 MiB blob GET"),
    ];
    let Some(table) = &results.extensions else {
        return rows
            .iter()
            .map(|(_, label)| Check::not_measured(target(label)))
            .collect();
    };
    rows.iter()
        .map(|(key, label)| {
            let ratios = table.ratios_to_first(key, 1);
            let (Some([plain]), Some([full]), Some(ratio)) = (
                medians(table, [key], 0),
                medians(table, [key], 1),
                median(&ratios),
            ) else {
                return Check::not_measured(target(label));
            };
            let lowest = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            Check {
                target: target(label),
                measured: format!(
                    "{} with vs {} without: {} (per round {} to {})",
                    format_number(full),
                    format_number(plain),
                    format_ratio(ratio),
                    format_ratio(lowest),
                    format_ratio(highest)
                ),
                verdict: Verdict::per_round(&ratios, |r| r >= 0.97),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_round_verdicts() {
        let at_most_one = |r: f64| r <= 1.0;
        assert_eq!(
            Verdict::per_round(&[0.5, 0.9, 1.0], at_most_one),
            Verdict::Met
        );
        assert_eq!(
            Verdict::per_round(&[1.1, 1.5], at_most_one),
            Verdict::Missed
        );
        assert_eq!(
            Verdict::per_round(&[0.9, 1.1], at_most_one),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::per_round(&[], at_most_one), Verdict::NotMeasured);
    }

    #[test]
    fn and_takes_the_worse_verdict() {
        use Verdict::{Inconclusive, Met, Missed, NotMeasured};
        assert_eq!(Met.and(Met), Met);
        assert_eq!(Met.and(Inconclusive), Inconclusive);
        assert_eq!(Inconclusive.and(Missed), Missed);
        assert_eq!(Missed.and(NotMeasured), NotMeasured);
    }
}
