use std::sync::Arc;

use super::*;
use crate::parse::{Family, parse};

fn record<'a>(route: &'static str, method: &'a str, status: u16, micros: u64) -> RequestRecord<'a> {
    RequestRecord {
        route,
        method,
        status,
        duration: Duration::from_micros(micros),
        bytes_in: 0,
        bytes_out: 0,
    }
}

fn encode_parsed(metrics: &RequestMetrics) -> (String, Vec<Family>) {
    let mut encoder = TextEncoder::new();
    metrics.encode(&mut encoder);
    let text = encoder.finish();
    let families = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    (text, families)
}

/// Returns the value of the sample `name` with exactly `labels`.
fn value(families: &[Family], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut wanted: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    wanted.sort();
    families
        .iter()
        .flat_map(|family| &family.samples)
        .find(|sample| {
            let mut labels = sample.labels.clone();
            labels.sort();
            sample.name == name && labels == wanted
        })
        .map(|sample| sample.value)
}

#[test]
fn no_requests_write_nothing() {
    let (text, _) = encode_parsed(&RequestMetrics::with_shards(2));
    assert_eq!(text, "");
}

#[test]
fn requests_counted_by_route_method_and_status() {
    let metrics = RequestMetrics::with_shards(2);
    for _ in 0..3 {
        metrics.record(&record("manifest", "GET", 200, 300));
    }
    metrics.record(&record("manifest", "GET", 404, 100));
    metrics.record(&record("manifest", "HEAD", 200, 100));
    metrics.record(&record("base", "GET", 200, 50));
    let (text, families) = encode_parsed(&metrics);

    let requests = |route, method, status| {
        let labels = [("route", route), ("method", method), ("status", status)];
        value(&families, "registry_http_requests_total", &labels)
    };
    assert_eq!(requests("manifest", "GET", "200"), Some(3.0), "{text}");
    assert_eq!(requests("manifest", "GET", "404"), Some(1.0), "{text}");
    assert_eq!(requests("manifest", "HEAD", "200"), Some(1.0), "{text}");
    assert_eq!(requests("base", "GET", "200"), Some(1.0), "{text}");
    assert_eq!(requests("blob", "GET", "200"), None, "{text}");

    let count = |route, method| {
        let labels = [("route", route), ("method", method)];
        value(
            &families,
            "registry_http_request_duration_seconds_count",
            &labels,
        )
    };
    assert_eq!(count("manifest", "GET"), Some(4.0), "{text}");
    assert_eq!(count("manifest", "HEAD"), Some(1.0), "{text}");
    assert_eq!(count("base", "GET"), Some(1.0), "{text}");
}

#[test]
fn families_come_in_fixed_order() {
    let metrics = RequestMetrics::with_shards(1);
    metrics.record(&record("blob", "GET", 200, 100));
    metrics.record(&record("base", "GET", 200, 100));
    let (text, families) = encode_parsed(&metrics);

    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "registry_http_requests_total",
            "registry_http_request_duration_seconds",
            "registry_http_request_bytes_total",
            "registry_http_response_bytes_total",
        ],
        "{text}"
    );
    let kinds: Vec<&str> = families.iter().map(|f| f.kind.as_str()).collect();
    assert_eq!(kinds, ["counter", "histogram", "counter", "counter"]);
    // Routes in the table's order, whatever the order of the requests.
    let routes: Vec<&str> = families[0]
        .samples
        .iter()
        .map(|s| s.label("route").unwrap())
        .collect();
    assert_eq!(routes, ["base", "blob"]);
}

#[test]
fn bucket_bounds_are_inclusive() {
    let metrics = RequestMetrics::with_shards(1);
    let exactly = |nanos: u64| RequestRecord {
        duration: Duration::from_nanos(nanos),
        ..record("tags", "GET", 200, 0)
    };
    metrics.record(&exactly(0));
    metrics.record(&exactly(100_000));
    metrics.record(&exactly(100_001));
    metrics.record(&exactly(60_000_000_000));
    metrics.record(&exactly(60_000_000_001));
    metrics.record(&RequestRecord {
        duration: Duration::MAX,
        ..record("tags", "GET", 200, 0)
    });
    let (text, families) = encode_parsed(&metrics);

    let bucket = |le| {
        let labels = [("route", "tags"), ("method", "GET"), ("le", le)];
        value(
            &families,
            "registry_http_request_duration_seconds_bucket",
            &labels,
        )
    };
    assert_eq!(bucket("0.0001"), Some(2.0), "{text}");
    assert_eq!(bucket("0.00025"), Some(3.0), "{text}");
    assert_eq!(bucket("30"), Some(3.0), "{text}");
    assert_eq!(bucket("60"), Some(4.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(6.0), "{text}");
    let bounds = families[1]
        .samples
        .iter()
        .filter(|s| s.name.ends_with("_bucket"));
    assert_eq!(bounds.count(), BUCKET_NANOS.len() + 1, "{text}");
}

#[test]
fn duration_sum_is_in_seconds() {
    let metrics = RequestMetrics::with_shards(1);
    metrics.record(&record("catalog", "GET", 200, 1_500));
    metrics.record(&record("catalog", "GET", 200, 2_500));
    let (text, families) = encode_parsed(&metrics);
    let labels = [("route", "catalog"), ("method", "GET")];
    let sum = value(
        &families,
        "registry_http_request_duration_seconds_sum",
        &labels,
    );
    assert_eq!(sum, Some(0.004), "{text}");
}

#[test]
fn body_bytes_are_summed() {
    let metrics = RequestMetrics::with_shards(2);
    for bytes in [1_000, 24, 0] {
        metrics.record(&RequestRecord {
            bytes_in: bytes,
            bytes_out: bytes * 2,
            ..record("blob_upload_session", "PUT", 201, 100)
        });
    }
    let (text, families) = encode_parsed(&metrics);
    let labels = [("route", "blob_upload_session"), ("method", "PUT")];
    let bytes_in = value(&families, "registry_http_request_bytes_total", &labels);
    let bytes_out = value(&families, "registry_http_response_bytes_total", &labels);
    assert_eq!(bytes_in, Some(1_024.0), "{text}");
    assert_eq!(bytes_out, Some(2_048.0), "{text}");
}

#[test]
fn unknown_route_and_method_count_as_other() {
    let metrics = RequestMetrics::with_shards(1);
    metrics.record(&record("made_up_route", "GET", 200, 100));
    metrics.record(&record("base", "BREW", 405, 100));
    metrics.record(&record("base", "get", 405, 100));
    let (text, families) = encode_parsed(&metrics);

    let requests = |route, method, status| {
        let labels = [("route", route), ("method", method), ("status", status)];
        value(&families, "registry_http_requests_total", &labels)
    };
    assert_eq!(requests("other", "GET", "200"), Some(1.0), "{text}");
    assert_eq!(requests("base", "other", "405"), Some(2.0), "{text}");
    assert!(!text.contains("made_up_route"), "{text}");
    assert!(!text.contains("BREW"), "{text}");
}

#[test]
fn statuses_beyond_the_slots_count_as_other() {
    let metrics = RequestMetrics::with_shards(1);
    let statuses: Vec<u16> = (0..STATUS_SLOTS as u16 + 3).map(|i| 200 + i).collect();
    for status in &statuses {
        metrics.record(&record("manifest", "PUT", *status, 100));
    }
    // A code that has a slot keeps counting there.
    metrics.record(&record("manifest", "PUT", 200, 100));
    let (text, families) = encode_parsed(&metrics);

    let requests = |status| {
        let labels = [("route", "manifest"), ("method", "PUT"), ("status", status)];
        value(&families, "registry_http_requests_total", &labels)
    };
    assert_eq!(requests("200"), Some(2.0), "{text}");
    let last_slotted = (200 + STATUS_SLOTS - 1).to_string();
    assert_eq!(requests(last_slotted.as_str()), Some(1.0), "{text}");
    let first_unslotted = (200 + STATUS_SLOTS).to_string();
    assert_eq!(requests(first_unslotted.as_str()), None, "{text}");
    assert_eq!(requests("other"), Some(3.0), "{text}");
}

#[test]
fn concurrent_records_are_all_counted() {
    let metrics = Arc::new(RequestMetrics::with_shards(4));
    let threads = 8;
    let per_thread = 5_000;
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let metrics = Arc::clone(&metrics);
            std::thread::spawn(move || {
                // Half the threads race to claim the slot of 404 on the same
                // cell, where only one claim may win.
                let status = if thread % 2 == 0 { 200 } else { 404 };
                for _ in 0..per_thread {
                    metrics.record(&RequestRecord {
                        bytes_out: 10,
                        ..record("blob", "GET", status, 700)
                    });
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("a recording thread panicked");
    }
    let (text, families) = encode_parsed(&metrics);

    let requests = |status| {
        let labels = [("route", "blob"), ("method", "GET"), ("status", status)];
        value(&families, "registry_http_requests_total", &labels)
    };
    let half = f64::from(threads / 2 * per_thread);
    assert_eq!(requests("200"), Some(half), "{text}");
    assert_eq!(requests("404"), Some(half), "{text}");
    let labels = [("route", "blob"), ("method", "GET")];
    let count = value(
        &families,
        "registry_http_request_duration_seconds_count",
        &labels,
    );
    assert_eq!(count, Some(2.0 * half), "{text}");
    let bytes_out = value(&families, "registry_http_response_bytes_total", &labels);
    assert_eq!(bytes_out, Some(20.0 * half), "{text}");
}
