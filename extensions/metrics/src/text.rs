//! The Prometheus text exposition format, version 0.0.4: `# HELP` and
//! `# TYPE` lines, then one line per sample.
//!
//! The format is described at
//! <https://prometheus.io/docs/instrumenting/exposition_formats/>. The
//! encoder writes no timestamps, because every value is read at the moment
//! of the scrape, and it never checks names: callers pass names that
//! [`is_valid_metric_name`] and [`is_valid_label_name`] accept.

use std::fmt::Write as _;

/// The `Content-Type` of a response in this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The type of a metric family, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
        }
    }
}

/// Writes metric families into a string, one family after another.
///
/// Each family starts with [`family`](Self::family), followed by its
/// samples. The text format requires all samples of a family to follow its
/// `# TYPE` line without other families in between, which callers ensure by
/// writing each family in one go.
#[derive(Debug, Default)]
pub struct TextEncoder {
    output: String,
}

impl TextEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the `# HELP` and `# TYPE` lines that start a family.
    pub fn family(&mut self, name: &str, help: &str, kind: MetricType) {
        self.output.push_str("# HELP ");
        self.output.push_str(name);
        self.output.push(' ');
        escape_help(&mut self.output, help);
        self.output.push('\n');

        self.output.push_str("# TYPE ");
        self.output.push_str(name);
        self.output.push(' ');
        self.output.push_str(kind.as_str());
        self.output.push('\n');
    }

    /// Writes one sample line: `name{label="value",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.output.push_str(name);
        write_labels(&mut self.output, labels, None);
        self.output.push(' ');
        write_value(&mut self.output, value);
        self.output.push('\n');
    }

    /// Writes the lines of one histogram series: a cumulative `_bucket`
    /// line for each of `bounds` and for `+Inf`, then `_sum` and `_count`.
    ///
    /// `counts` contains the observations of each bucket alone, not the
    /// cumulative ones: `counts[i]` for values above `bounds[i - 1]` up to
    /// `bounds[i]`, and the last entry for values above the last bound.
    /// `bounds` must be sorted in increasing order and `counts` must be one
    /// longer.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(counts.len(), bounds.len() + 1);
        let mut cumulative = 0u64;
        let mut bound_text = String::new();
        for (index, count) in counts.iter().enumerate() {
            cumulative += count;
            bound_text.clear();
            match bounds.get(index) {
                Some(bound) => write_value(&mut bound_text, *bound),
                None => bound_text.push_str("+Inf"),
            }
            self.output.push_str(name);
            self.output.push_str("_bucket");
            write_labels(&mut self.output, labels, Some(&bound_text));
            let _ = writeln!(self.output, " {cumulative}");
        }

        self.output.push_str(name);
        self.output.push_str("_sum");
        write_labels(&mut self.output, labels, None);
        self.output.push(' ');
        write_value(&mut self.output, sum);
        self.output.push('\n');

        self.output.push_str(name);
        self.output.push_str("_count");
        write_labels(&mut self.output, labels, None);
        let _ = writeln!(self.output, " {cumulative}");
    }

    /// Returns the text written so far.
    pub fn finish(self) -> String {
        self.output
    }
}

/// Returns whether `name` is a valid metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_' || first == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Returns whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`,
/// and not one of the names that start with `__`, which Prometheus reserves
/// for its own use.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// Writes `{name="value",...}`, with `le="bound"` last when given, or
/// nothing when there are no labels at all.
fn write_labels(output: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    output.push('{');
    let mut first = true;
    let all = labels.iter().copied().chain(le.map(|bound| ("le", bound)));
    for (name, value) in all {
        if !first {
            output.push(',');
        }
        first = false;
        output.push_str(name);
        output.push_str("=\"");
        escape_label_value(output, value);
        output.push('"');
    }
    output.push('}');
}

/// Writes a sample value as Go's `ParseFloat` reads it back: `NaN`, `+Inf`
/// and `-Inf` for the special values, and otherwise the shortest decimal
/// that parses to the same `f64`.
fn write_value(output: &mut String, value: f64) {
    if value.is_nan() {
        output.push_str("NaN");
    } else if value == f64::INFINITY {
        output.push_str("+Inf");
    } else if value == f64::NEG_INFINITY {
        output.push_str("-Inf");
    } else {
        let _ = write!(output, "{value}");
    }
}

/// Escapes a label value: backslash, double quote and line feed become
/// `\\`, `\"` and `\n`.
fn escape_label_value(output: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => output.push_str("\\\\"),
            '"' => output.push_str("\\\""),
            '\n' => output.push_str("\\n"),
            c => output.push(c),
        }
    }
}

/// Escapes a help text: backslash and line feed become `\\` and `\n`. A
/// double quote stays as it is in this format.
fn escape_help(output: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => output.push_str("\\\\"),
            '\n' => output.push_str("\\n"),
            c => output.push(c),
        }
    }
}

#[cfg(test)]
mod tests;
