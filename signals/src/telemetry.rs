//! Metrics that the registry and extensions publish, and that an exporter
//! (the metrics extension) reads.
//!
//! A publisher registers a [`Collector`] once, usually in its setup
//! function; the exporter calls every collector on each scrape. Values are
//! read at that moment, so a collector reads its own atomics and keeps no
//! history.

use std::fmt;
use std::sync::{Arc, RwLock};

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One metric: its name, help text, kind and labelled values.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    /// The name in Prometheus form, such as `registry_storage_errors_total`.
    pub name: String,
    pub help: String,
    pub kind: MetricKind,
    pub samples: Vec<Sample>,
}

/// One value of a metric with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl MetricFamily {
    /// Starts a metric with no samples.
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricKind) -> Self {
        Self {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Adds a sample with `labels`, given as name and value pairs.
    pub fn sample(mut self, labels: &[(&str, &str)], value: f64) -> Self {
        self.samples.push(Sample {
            labels: labels
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            value,
        });
        self
    }
}

/// A source of metrics, called on every scrape.
pub trait Collector: Send + Sync {
    /// Returns the current value of each metric of this source.
    fn collect(&self) -> Vec<MetricFamily>;
}

impl<F> Collector for F
where
    F: Fn() -> Vec<MetricFamily> + Send + Sync,
{
    fn collect(&self) -> Vec<MetricFamily> {
        self()
    }
}

/// The collectors of one registry process.
#[derive(Default)]
pub struct Telemetry {
    collectors: RwLock<Vec<Arc<dyn Collector>>>,
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.read().len();
        f.debug_struct("Telemetry")
            .field("collectors", &count)
            .finish()
    }
}

impl Telemetry {
    /// Adds a collector that every later scrape calls.
    pub fn register(&self, collector: Arc<dyn Collector>) {
        self.collectors
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(collector);
    }

    /// Calls every collector and returns their metrics in registration
    /// order.
    pub fn collect(&self) -> Vec<MetricFamily> {
        let collectors = self.read().clone();
        collectors.iter().flat_map(|c| c.collect()).collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<dyn Collector>>> {
        self.collectors.read().unwrap_or_else(|e| e.into_inner())
    }
}
