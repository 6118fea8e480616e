//! The metrics that the registry and other extensions publish to the shared
//! [`Telemetry`](registry_signals::telemetry::Telemetry), written in the
//! text format.
//!
//! Publishers are independent, so their families are checked before they
//! are written. Families of one name from several collectors are merged
//! into one block, because the text format allows a name only once. What
//! the format cannot carry is left out and logged once at warn: an invalid
//! metric or label name, a name that this extension writes itself, a
//! second family of one name with another type, and a series that repeats
//! the labels of an earlier one.

use std::collections::{HashMap, HashSet};

use registry_signals::telemetry::{MetricFamily, MetricKind, Sample};

use crate::text::{MetricType, TextEncoder, is_valid_label_name, is_valid_metric_name};

/// Writes `families` after merging and checking them. `reserved` lists the
/// sample names that this extension writes itself. `first_report` returns
/// whether a problem, by its key, is new and should be logged.
pub fn encode(
    encoder: &mut TextEncoder,
    families: Vec<MetricFamily>,
    reserved: &[&str],
    first_report: &dyn Fn(&str) -> bool,
) {
    for family in merge(families, reserved, first_report) {
        let samples = unique_samples(&family, first_report);
        if samples.is_empty() {
            continue;
        }

        let kind = match family.kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        encoder.family(&family.name, &family.help, kind);
        for sample in samples {
            let labels: Vec<(&str, &str)> = sample
                .labels
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            encoder.sample(&family.name, &labels, sample.value);
        }
    }
}

/// Merges the families of one name in the order in which each name first
/// appears, and drops those that cannot be written. The help text of the
/// first family of a name wins.
fn merge(
    families: Vec<MetricFamily>,
    reserved: &[&str],
    first_report: &dyn Fn(&str) -> bool,
) -> Vec<MetricFamily> {
    let mut merged: Vec<MetricFamily> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for family in families {
        let name = family.name.clone();
        if !is_valid_metric_name(&name) {
            if first_report(&format!("invalid name {name}")) {
                tracing::warn!(metric = %name, "shared metric left out: invalid metric name");
            }
            continue;
        }
        if reserved.contains(&name.as_str()) {
            if first_report(&format!("reserved {name}")) {
                tracing::warn!(
                    metric = %name,
                    "shared metric left out: the metrics extension writes this name itself"
                );
            }
            continue;
        }

        match by_name.get(&name) {
            Some(&index) if merged[index].kind == family.kind => {
                merged[index].samples.extend(family.samples);
            }
            Some(&index) => {
                if first_report(&format!("type {name}")) {
                    tracing::warn!(
                        metric = %name,
                        first = ?merged[index].kind,
                        second = ?family.kind,
                        "shared metric left out: published twice with different types"
                    );
                }
            }
            None => {
                by_name.insert(name, merged.len());
                merged.push(family);
            }
        }
    }
    merged
}

/// Returns the samples of `family` that can be written: valid label names,
/// each at most once per sample, and no two samples with the same labels.
fn unique_samples<'a>(
    family: &'a MetricFamily,
    first_report: &dyn Fn(&str) -> bool,
) -> Vec<&'a Sample> {
    let name = &family.name;
    let mut seen: HashSet<Vec<(&str, &str)>> = HashSet::new();
    let mut samples = Vec::with_capacity(family.samples.len());
    for sample in &family.samples {
        let mut labels: Vec<(&str, &str)> = sample
            .labels
            .iter()
            .map(|(label, value)| (label.as_str(), value.as_str()))
            .collect();
        if let Some((label, _)) = labels.iter().find(|(label, _)| !is_valid_label_name(label)) {
            if first_report(&format!("label {name} {label}")) {
                tracing::warn!(
                    metric = %name,
                    label = %label,
                    "shared metric sample left out: invalid label name"
                );
            }
            continue;
        }

        labels.sort_unstable();
        let repeated_label = labels.windows(2).any(|pair| pair[0].0 == pair[1].0);
        if repeated_label || !seen.insert(labels) {
            if first_report(&format!("series {name}")) {
                tracing::warn!(
                    metric = %name,
                    labels = ?sample.labels,
                    "shared metric sample left out: its labels repeat a label or an earlier series"
                );
            }
            continue;
        }
        samples.push(sample);
    }
    samples
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::parse::parse;

    fn encode_all(families: Vec<MetricFamily>, reserved: &[&str]) -> (String, Vec<String>) {
        let reports = RefCell::new(Vec::new());
        let first_report = |key: &str| {
            let mut reports = reports.borrow_mut();
            let new = !reports.iter().any(|k| k == key);
            if new {
                reports.push(key.to_owned());
            }
            new
        };
        let mut encoder = TextEncoder::new();
        encode(&mut encoder, families, reserved, &first_report);
        (encoder.finish(), reports.into_inner())
    }

    #[test]
    fn families_of_one_name_are_merged() {
        let families = vec![
            MetricFamily::new("registry_a_total", "A.", MetricKind::Counter)
                .sample(&[("extension", "foo")], 1.0),
            MetricFamily::new("registry_b", "B.", MetricKind::Gauge).sample(&[], 2.0),
            MetricFamily::new("registry_a_total", "Other help.", MetricKind::Counter)
                .sample(&[("extension", "bar")], 3.0),
        ];
        let (text, reports) = encode_all(families, &[]);
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));

        let names: Vec<&str> = parsed.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["registry_a_total", "registry_b"]);
        assert_eq!(parsed[0].help, "A.");
        assert_eq!(parsed[0].kind, "counter");
        let extensions: Vec<Option<&str>> = parsed[0]
            .samples
            .iter()
            .map(|s| s.label("extension"))
            .collect();
        assert_eq!(extensions, [Some("foo"), Some("bar")]);
        assert_eq!(parsed[0].samples[1].value, 3.0);
        assert!(reports.is_empty(), "{reports:?}");
    }

    #[test]
    fn conflicting_type_is_left_out() {
        let families = vec![
            MetricFamily::new("registry_a", "A.", MetricKind::Counter).sample(&[], 1.0),
            MetricFamily::new("registry_a", "A.", MetricKind::Gauge).sample(&[("x", "y")], 2.0),
        ];
        let (text, reports) = encode_all(families, &[]);
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].samples.len(), 1);
        assert_eq!(reports, ["type registry_a"]);
    }

    #[test]
    fn invalid_and_reserved_names_are_left_out() {
        let families = vec![
            MetricFamily::new("registry-bad", "Bad.", MetricKind::Gauge).sample(&[], 1.0),
            MetricFamily::new("process_open_fds", "Mine.", MetricKind::Gauge).sample(&[], 1.0),
            MetricFamily::new("registry_ok", "Ok.", MetricKind::Gauge)
                .sample(&[("bad-label", "x")], 1.0)
                .sample(&[("__reserved", "x")], 2.0)
                .sample(&[("good", "x")], 3.0),
        ];
        let (text, reports) = encode_all(families, &["process_open_fds"]);
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].name, "registry_ok");
        assert_eq!(parsed[0].samples.len(), 1);
        assert_eq!(parsed[0].samples[0].value, 3.0);
        assert_eq!(
            reports,
            [
                "invalid name registry-bad",
                "reserved process_open_fds",
                "label registry_ok bad-label",
                "label registry_ok __reserved",
            ]
        );
    }

    #[test]
    fn repeated_series_is_left_out() {
        let families = vec![
            MetricFamily::new("registry_a", "A.", MetricKind::Gauge)
                .sample(&[("x", "1"), ("y", "2")], 1.0)
                .sample(&[("y", "2"), ("x", "1")], 2.0)
                .sample(&[("x", "1"), ("x", "3")], 3.0),
        ];
        let (text, reports) = encode_all(families, &[]);
        let parsed = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(parsed[0].samples.len(), 1);
        assert_eq!(parsed[0].samples[0].value, 1.0);
        // One report per family, however many series repeat.
        assert_eq!(reports, ["series registry_a"]);
    }

    #[test]
    fn family_without_samples_is_left_out() {
        let families = vec![MetricFamily::new("registry_empty", "E.", MetricKind::Gauge)];
        let (text, _) = encode_all(families, &[]);
        assert_eq!(text, "");
    }

    #[test]
    fn problems_are_reported_once() {
        let family = || MetricFamily::new("registry-bad", "Bad.", MetricKind::Gauge);
        let (_, reports) = encode_all(vec![family(), family()], &[]);
        assert_eq!(reports, ["invalid name registry-bad"]);
    }
}
