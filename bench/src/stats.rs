//! Medians over rounds and latency percentiles.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Returns the median of `values`, the mean of the two middle values for
/// an even count, or `None` for an empty slice. NaN values are ignored.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        Some(sorted[middle])
    } else {
        Some((sorted[middle - 1] + sorted[middle]) / 2.0)
    }
}

/// Returns the spread of `values` around their median, `(max - min) /
/// median`, as a fraction; `None` for fewer than two values or a zero
/// median.
pub fn relative_spread(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let middle = median(values)?;
    if middle == 0.0 {
        return None;
    }
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    Some((max - min) / middle)
}

/// Returns `samples[i] / baseline[i]` for each round `i` with a non-zero
/// baseline: the ratios of two servers measured in the same round. Pairing
/// by round cancels a drift that affects both servers of a round alike.
pub fn paired_ratios(samples: &[f64], baseline: &[f64]) -> Vec<f64> {
    samples
        .iter()
        .zip(baseline)
        .filter(|(_, base)| **base != 0.0)
        .map(|(sample, base)| sample / base)
        .collect()
}

/// Latencies of one load, in microseconds, from 1 µs to 10 minutes at
/// three significant digits.
#[derive(Debug, Clone)]
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("the bounds are valid constants"),
        }
    }
}

impl Latencies {
    /// Records one duration; a longer one than the histogram's maximum is
    /// recorded as the maximum.
    pub fn record(&mut self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(micros.max(1));
    }

    /// Adds every duration recorded in `other`.
    pub fn merge(&mut self, other: &Latencies) {
        // Every `Latencies` gets its bounds from `default`, the only
        // constructor, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Returns the duration at `quantile` (0.5 for the median, 0.99 for
    /// p99), or `None` when nothing was recorded. The value is the upper
    /// end of its histogram bucket, at most 0.1% above the recorded one.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        if self.histogram.is_empty() {
            return None;
        }
        Some(Duration::from_micros(
            self.histogram.value_at_quantile(quantile),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_count() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    }

    #[test]
    fn median_even_count() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn median_empty_and_nan() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn spread_relative_to_median() {
        assert_eq!(relative_spread(&[90.0, 100.0, 110.0]), Some(0.2));
        assert_eq!(relative_spread(&[100.0]), None);
        assert_eq!(relative_spread(&[0.0, 0.0]), None);
    }

    #[test]
    fn paired_ratios_per_round() {
        // Both servers got twice as fast in round 2: the ratio stays 0.5.
        assert_eq!(
            paired_ratios(&[50.0, 100.0, 60.0], &[100.0, 200.0, 100.0]),
            [0.5, 0.5, 0.6]
        );
        assert!(paired_ratios(&[1.0], &[0.0]).is_empty());
        assert!(paired_ratios(&[], &[]).is_empty());
    }

    #[test]
    fn latency_percentiles() {
        let mut latencies = Latencies::default();
        for micros in 1..=1000 {
            latencies.record(Duration::from_micros(micros));
        }
        let p50 = latencies.quantile(0.5).unwrap().as_micros();
        let p99 = latencies.quantile(0.99).unwrap().as_micros();
        // Three significant digits keep values under 1,000 µs exact.
        assert_eq!(p50, 500);
        assert_eq!(p99, 990);
    }

    #[test]
    fn latency_merge_and_empty() {
        let mut total = Latencies::default();
        assert_eq!(total.quantile(0.5), None);

        let mut part = Latencies::default();
        part.record(Duration::from_millis(2));
        part.record(Duration::from_millis(2));
        let mut other = Latencies::default();
        other.record(Duration::from_micros(1500));
        total.merge(&part);
        total.merge(&other);
        // Of 1.5, 2 and 2 ms the median is 2 ms; values below 2,048 µs are
        // kept exactly.
        assert_eq!(total.quantile(0.5), Some(Duration::from_millis(2)));
        assert_eq!(total.quantile(0.0), Some(Duration::from_micros(1500)));
    }
}
