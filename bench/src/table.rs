//! Measured values by metric and column, with their medians and spreads,
//! and their rendering as an aligned text table or a Markdown table.

use crate::stats::{median, paired_ratios, relative_spread};

/// The better direction of a metric, for the reader of a ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

/// One row of a table: what is measured, and in which unit.
#[derive(Debug, Clone)]
pub struct Metric {
    pub key: String,
    pub label: String,
    pub unit: &'static str,
    pub better: Better,
}

impl Metric {
    pub fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        unit: &'static str,
        better: Better,
    ) -> Metric {
        Metric {
            key: key.into(),
            label: label.into(),
            unit,
            better,
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    metric: Metric,
    /// One list of samples (one per round) for each column.
    samples: Vec<Vec<f64>>,
}

/// Samples of several metrics for several columns (servers). The first
/// column is the baseline that ratios are computed against.
#[derive(Debug, Clone)]
pub struct MetricTable {
    pub columns: Vec<String>,
    rows: Vec<Row>,
}

impl MetricTable {
    /// Returns an empty table with `metrics` as rows, in that order.
    pub fn new(columns: Vec<String>, metrics: Vec<Metric>) -> MetricTable {
        let rows = metrics
            .into_iter()
            .map(|metric| Row {
                metric,
                samples: vec![Vec::new(); columns.len()],
            })
            .collect();
        MetricTable { columns, rows }
    }

    /// Adds one sample of metric `key` for column `column`. A key that is
    /// not a row of the table is a bug in the caller and panics.
    pub fn record(&mut self, key: &str, column: usize, value: f64) {
        let row = self
            .rows
            .iter_mut()
            .find(|row| row.metric.key == key)
            .unwrap_or_else(|| panic!("no metric {key:?} in the table"));
        row.samples[column].push(value);
    }

    fn row(&self, key: &str) -> Option<&Row> {
        self.rows.iter().find(|row| row.metric.key == key)
    }

    /// Returns the median of metric `key` for `column`, or `None` when it
    /// has no sample.
    pub fn median(&self, key: &str, column: usize) -> Option<f64> {
        median(&self.row(key)?.samples[column])
    }

    /// Returns the ratios of metric `key` in `column` to the first column,
    /// one per round, in round order.
    pub fn ratios_to_first(&self, key: &str, column: usize) -> Vec<f64> {
        self.row(key).map_or_else(Vec::new, |row| {
            paired_ratios(&row.samples[column], &row.samples[0])
        })
    }

    /// Returns the label of metric `key`.
    pub fn label(&self, key: &str) -> String {
        self.row(key)
            .map_or(key, |row| row.metric.label.as_str())
            .to_owned()
    }

    /// Renders the table: one row per metric with samples, each cell the
    /// median with its spread over rounds and, after the first column, the
    /// ratio to the first column.
    pub fn render(&self) -> Table {
        let mut header = vec!["metric".to_owned(), "unit".to_owned()];
        header.extend(self.columns.iter().cloned());
        let mut table = Table::new(header);
        for row in &self.rows {
            if row.samples.iter().all(Vec::is_empty) {
                continue;
            }
            // The arrow shows which direction is better.
            let arrow = match row.metric.better {
                Better::Higher => "↑",
                Better::Lower => "↓",
            };
            let unit = format!("{} {arrow}", row.metric.unit);
            let mut cells = vec![row.metric.label.clone(), unit];
            for (column, samples) in row.samples.iter().enumerate() {
                let baseline = (column > 0).then_some(row.samples[0].as_slice());
                cells.push(format_cell(samples, baseline));
            }
            table.rows.push(cells);
        }
        table
    }
}

/// Formats the median of `samples` and its spread over rounds, then, when
/// `baseline` is given, the median of the per-round ratios to it and their
/// spread. A spread shows as ±n%: half the range relative to the median,
/// left out below 1%.
fn format_cell(samples: &[f64], baseline: Option<&[f64]>) -> String {
    let Some(value) = median(samples) else {
        return "-".to_owned();
    };
    let mut cell = format_number(value) + &format_spread(samples);
    let ratios = baseline.map_or_else(Vec::new, |baseline| paired_ratios(samples, baseline));
    if let Some(ratio) = median(&ratios) {
        cell.push_str(&format!(
            " ({}{})",
            format_ratio(ratio),
            format_spread(&ratios)
        ));
    }
    cell
}

/// Formats the spread of `values` as ` ±n%`, or nothing below 1% or for
/// fewer than two values.
fn format_spread(values: &[f64]) -> String {
    match relative_spread(values) {
        Some(spread) if spread >= 0.01 => format!(" ±{:.0}%", spread * 50.0),
        _ => String::new(),
    }
}

/// Formats a ratio with two significant decimals, as in `0.48x` or `12x`.
pub fn format_ratio(ratio: f64) -> String {
    if ratio >= 10.0 {
        format!("{ratio:.0}x")
    } else if ratio >= 0.1 {
        format!("{ratio:.2}x")
    } else {
        format!("{ratio:.3}x")
    }
}

/// Formats a value with precision by magnitude: thousands separators at
/// 100 and above, one decimal from 10, two below 10, three significant
/// digits below 0.1.
pub fn format_number(value: f64) -> String {
    if value.is_nan() {
        return "-".to_owned();
    }
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        group_thousands(value.round() as i64)
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 0.1 || magnitude == 0.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn group_thousands(value: i64) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    if value < 0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// Rows of text cells under a header.
#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: Vec<String>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    /// Renders the table with columns padded to their widest cell, the
    /// first column left-aligned and the others right-aligned.
    pub fn to_text(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    if i == 0 {
                        format!("{cell:<width$}", width = widths[i])
                    } else {
                        format!("{cell:>width$}", width = widths[i])
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        let mut text = line(&self.header);
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        text.push_str(&line(&rule));
        for row in &self.rows {
            text.push_str(&line(row));
        }
        text
    }

    /// Renders the table in Markdown, with the value columns right-aligned.
    pub fn to_markdown(&self) -> String {
        let escape = |cell: &String| cell.replace('|', "\\|");
        let mut text = format!(
            "| {} |\n",
            self.header
                .iter()
                .map(escape)
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let alignments: Vec<&str> = (0..self.header.len())
            .map(|i| if i == 0 { "---" } else { "---:" })
            .collect();
        text.push_str(&format!("|{}|\n", alignments.join("|")));
        for row in &self.rows {
            text.push_str(&format!(
                "| {} |\n",
                row.iter().map(escape).collect::<Vec<_>>().join(" | ")
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_by_magnitude() {
        assert_eq!(format_number(1234567.4), "1,234,567");
        assert_eq!(format_number(123.6), "124");
        assert_eq!(format_number(12.34), "12.3");
        assert_eq!(format_number(1.234), "1.23");
        assert_eq!(format_number(0.01234), "0.012");
        assert_eq!(format_number(0.0), "0.00");
        assert_eq!(format_number(-1500.0), "-1,500");
    }

    #[test]
    fn ratios_keep_two_digits() {
        assert_eq!(format_ratio(0.4812), "0.48x");
        assert_eq!(format_ratio(1.0), "1.00x");
        assert_eq!(format_ratio(23.4), "23x");
    }

    #[test]
    fn cells_show_spread_and_ratio() {
        let mut table = MetricTable::new(
            vec!["a".to_owned(), "b".to_owned()],
            vec![Metric::new("rps", "requests", "req/s", Better::Higher)],
        );
        for value in [90.0, 100.0, 110.0] {
            table.record("rps", 0, value * 10.0);
            table.record("rps", 1, value * 5.0);
        }
        let rendered = table.render();
        assert_eq!(rendered.rows.len(), 1);
        // The spread is (max - min) / median / 2, shown as ±.
        assert_eq!(rendered.rows[0][2], "1,000 ±10%");
        // Each round's ratio is 0.5, so the ratio has no spread.
        assert_eq!(rendered.rows[0][3], "500 ±10% (0.50x)");
        assert_eq!(table.median("rps", 0), Some(1000.0));
    }

    #[test]
    fn ratio_spread_comes_from_rounds() {
        let mut table = MetricTable::new(
            vec!["a".to_owned(), "b".to_owned()],
            vec![Metric::new("rps", "requests", "req/s", Better::Higher)],
        );
        // Per-round ratios 0.9, 1.0 and 1.1.
        for (a, b) in [(100.0, 90.0), (200.0, 200.0), (300.0, 330.0)] {
            table.record("rps", 0, a);
            table.record("rps", 1, b);
        }
        assert_eq!(table.render().rows[0][3], "200 ±60% (1.00x ±10%)");
    }

    #[test]
    fn rows_without_samples_are_left_out() {
        let table = MetricTable::new(
            vec!["a".to_owned()],
            vec![Metric::new("x", "x", "s", Better::Lower)],
        );
        assert!(table.render().rows.is_empty());
    }

    #[test]
    fn markdown_and_text_layout() {
        let mut table = Table::new(vec!["metric".to_owned(), "value".to_owned()]);
        table.rows.push(vec!["a|b".to_owned(), "1".to_owned()]);
        assert_eq!(
            table.to_markdown(),
            "| metric | value |\n|---|---:|\n| a\\|b | 1 |\n"
        );
        assert_eq!(
            table.to_text(),
            "metric  value\n------  -----\na|b         1\n"
        );
    }
}
