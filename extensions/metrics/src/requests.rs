//! Counting completed HTTP requests: a fixed table of atomic counters per
//! route and method, with status codes in slots claimed on first use.
//!
//! Every request of the registry passes through [`RequestMetrics::record`],
//! so it takes no lock and allocates nothing. It finds its counters by
//! index, and finds the slot of its status code, or claims a free one with
//! a compare-and-swap. Then it adds to at most five counters with relaxed
//! atomics. The table is sharded by thread, so that tokio workers on
//! different cores add to different cache lines, and a scrape sums the
//! shards.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use registry_signals::RequestRecord;

use crate::text::{MetricType, TextEncoder};

/// The route names of [`RequestRecord::route`], and `other` for a name
/// that this table does not know, such as one added to the registry later.
const ROUTES: [&str; 11] = [
    "base",
    "catalog",
    "tags",
    "referrers",
    "manifest",
    "blob",
    "blob_upload",
    "blob_upload_session",
    "extension",
    "unknown",
    "other",
];

/// The methods counted by name, and `other` for the rest, so that a client
/// cannot add series by sending made-up methods.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "other",
];

/// The upper bounds of the latency buckets, in nanoseconds: 100 µs to 60 s.
/// A manifest GET takes about 0.3 ms and a large blob push many seconds,
/// hence the wide range.
const BUCKET_NANOS: [u64; 18] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
    60_000_000_000,
];

/// The number of distinct status codes counted per route and method and
/// shard. A code seen after all slots are taken counts under
/// `status="other"`.
const STATUS_SLOTS: usize = 16;

/// The maximum number of shards, whatever the number of cores.
const MAX_SHARDS: usize = 16;

const REQUESTS: &str = "registry_http_requests_total";
const DURATION: &str = "registry_http_request_duration_seconds";
const REQUEST_BYTES: &str = "registry_http_request_bytes_total";
const RESPONSE_BYTES: &str = "registry_http_response_bytes_total";

/// The family and sample names this table writes, which shared metrics
/// must not reuse.
pub const RESERVED_NAMES: [&str; 7] = [
    REQUESTS,
    DURATION,
    "registry_http_request_duration_seconds_bucket",
    "registry_http_request_duration_seconds_sum",
    "registry_http_request_duration_seconds_count",
    REQUEST_BYTES,
    RESPONSE_BYTES,
];

/// The counters of one route and method in one shard.
#[derive(Debug, Default)]
struct RouteCounters {
    /// Requests per latency bucket, not cumulative. The last entry counts
    /// the requests slower than the last bound.
    buckets: [AtomicU64; BUCKET_NANOS.len() + 1],
    duration_nanos: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// The status code that each slot counts, or 0 while the slot is free.
    /// A slot is claimed once and keeps its code for the life of the
    /// process.
    statuses: [AtomicU16; STATUS_SLOTS],
    status_counts: [AtomicU64; STATUS_SLOTS],
    /// Requests whose status found every slot taken by other codes.
    other_statuses: AtomicU64,
}

impl RouteCounters {
    /// Returns the slot that counts `status`, claiming a free one if no slot
    /// has it yet, or `None` when all are taken.
    fn status_slot(&self, status: u16) -> Option<usize> {
        if status == 0 {
            return None;
        }
        for (index, slot) in self.statuses.iter().enumerate() {
            let current = slot.load(Ordering::Relaxed);
            if current == status {
                return Some(index);
            }
            if current != 0 {
                continue;
            }
            // Another thread may claim the slot between the load and here.
            // When it claimed the slot for the same code, the slot is ours
            // too.
            match slot.compare_exchange(0, status, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(index),
                Err(claimed) if claimed == status => return Some(index),
                Err(_) => {}
            }
        }
        None
    }
}

/// One shard: a cell per route and method, aligned so that two shards
/// never share a cache line.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    cells: Vec<RouteCounters>,
}

impl Shard {
    fn new() -> Self {
        let cells = (0..ROUTES.len() * METHODS.len())
            .map(|_| RouteCounters::default())
            .collect();
        Self { cells }
    }
}

/// The request counters of one registry process.
#[derive(Debug)]
pub struct RequestMetrics {
    shards: Box<[Shard]>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_shards(cores.min(MAX_SHARDS))
    }
}

/// The totals of one route and method over all shards.
#[derive(Debug, Default, Clone, PartialEq)]
struct Totals {
    buckets: [u64; BUCKET_NANOS.len() + 1],
    duration_nanos: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// Requests by status code, in increasing order of code.
    statuses: BTreeMap<u16, u64>,
    other_statuses: u64,
}

impl Totals {
    fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl RequestMetrics {
    fn with_shards(shards: usize) -> Self {
        let shards = (0..shards.max(1)).map(|_| Shard::new()).collect();
        Self { shards }
    }

    /// Counts one completed request.
    pub fn record(&self, record: &RequestRecord<'_>) {
        let route = route_index(record.route);
        let method = method_index(record.method);
        let cell = &self.shard().cells[route * METHODS.len() + method];

        let nanos = duration_nanos(record.duration);
        // The first bound that is at least `nanos`, since a bucket counts
        // the values less than or equal to its bound.
        let bucket = BUCKET_NANOS.partition_point(|&bound| bound < nanos);
        cell.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        cell.duration_nanos.fetch_add(nanos, Ordering::Relaxed);
        if record.bytes_in > 0 {
            cell.bytes_in.fetch_add(record.bytes_in, Ordering::Relaxed);
        }
        if record.bytes_out > 0 {
            cell.bytes_out
                .fetch_add(record.bytes_out, Ordering::Relaxed);
        }

        match cell.status_slot(record.status) {
            Some(slot) => cell.status_counts[slot].fetch_add(1, Ordering::Relaxed),
            None => cell.other_statuses.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Returns this thread's shard. Threads take shards in turn as they
    /// first record, so the first threads, usually the runtime's workers,
    /// each get their own.
    fn shard(&self) -> &Shard {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
        }
        let index = INDEX.with(|index| {
            if index.get() == usize::MAX {
                index.set(NEXT.fetch_add(1, Ordering::Relaxed));
            }
            index.get()
        });
        &self.shards[index % self.shards.len()]
    }

    /// Sums the shards for one route and method.
    fn totals(&self, cell_index: usize) -> Totals {
        let mut totals = Totals::default();
        for shard in self.shards.iter() {
            let cell = &shard.cells[cell_index];
            for (total, bucket) in totals.buckets.iter_mut().zip(&cell.buckets) {
                *total += bucket.load(Ordering::Relaxed);
            }
            totals.duration_nanos += cell.duration_nanos.load(Ordering::Relaxed);
            totals.bytes_in += cell.bytes_in.load(Ordering::Relaxed);
            totals.bytes_out += cell.bytes_out.load(Ordering::Relaxed);
            totals.other_statuses += cell.other_statuses.load(Ordering::Relaxed);
            for (status, count) in cell.statuses.iter().zip(&cell.status_counts) {
                let status = status.load(Ordering::Relaxed);
                let count = count.load(Ordering::Relaxed);
                if status != 0 && count > 0 {
                    *totals.statuses.entry(status).or_default() += count;
                }
            }
        }
        totals
    }

    /// Writes the request families: requests by route, method and status,
    /// the latency histogram and the body bytes by route and method. Only
    /// routes and methods that saw a request appear.
    pub fn encode(&self, encoder: &mut TextEncoder) {
        let mut seen: Vec<(&str, &str, Totals)> = Vec::new();
        for (route_index, route) in ROUTES.iter().enumerate() {
            for (method_index, method) in METHODS.iter().enumerate() {
                let totals = self.totals(route_index * METHODS.len() + method_index);
                if totals.count() > 0 {
                    seen.push((route, method, totals));
                }
            }
        }
        if seen.is_empty() {
            return;
        }

        encoder.family(
            REQUESTS,
            "HTTP requests completed, by route, method and status code.",
            MetricType::Counter,
        );
        for (route, method, totals) in &seen {
            for (status, count) in &totals.statuses {
                let status = status.to_string();
                let labels = [("route", *route), ("method", *method), ("status", &status)];
                encoder.sample(REQUESTS, &labels, *count as f64);
            }
            if totals.other_statuses > 0 {
                let labels = [("route", *route), ("method", *method), ("status", "other")];
                encoder.sample(REQUESTS, &labels, totals.other_statuses as f64);
            }
        }

        encoder.family(
            DURATION,
            "Time from the first byte of the request to the end of the response body, \
             by route and method.",
            MetricType::Histogram,
        );
        let bounds = BUCKET_NANOS.map(|nanos| nanos as f64 / 1e9);
        for (route, method, totals) in &seen {
            let labels = [("route", *route), ("method", *method)];
            let sum = totals.duration_nanos as f64 / 1e9;
            encoder.histogram(DURATION, &labels, &bounds, &totals.buckets, sum);
        }

        encoder.family(
            REQUEST_BYTES,
            "Bytes of request bodies read, by route and method.",
            MetricType::Counter,
        );
        for (route, method, totals) in &seen {
            let labels = [("route", *route), ("method", *method)];
            encoder.sample(REQUEST_BYTES, &labels, totals.bytes_in as f64);
        }

        encoder.family(
            RESPONSE_BYTES,
            "Bytes of response bodies sent, by route and method.",
            MetricType::Counter,
        );
        for (route, method, totals) in &seen {
            let labels = [("route", *route), ("method", *method)];
            encoder.sample(RESPONSE_BYTES, &labels, totals.bytes_out as f64);
        }
    }
}

fn route_index(route: &str) -> usize {
    let last = ROUTES.len() - 1;
    ROUTES[..last]
        .iter()
        .position(|known| *known == route)
        .unwrap_or(last)
}

fn method_index(method: &str) -> usize {
    match method {
        "GET" => 0,
        "HEAD" => 1,
        "PUT" => 2,
        "POST" => 3,
        "PATCH" => 4,
        "DELETE" => 5,
        "OPTIONS" => 6,
        _ => 7,
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
