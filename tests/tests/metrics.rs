//! The metrics extension in a real binary built with `--features
//! ext-metrics`. Known traffic shows up in `/metrics` with exact counts,
//! and the output parses as the Prometheus text format. The separate
//! listener serves the metrics alone. A taken port or an invalid path
//! stops the registry before it serves.
//!
//! The scrape is parsed by a strict parser in this file, written apart
//! from the extension's encoder so that a mistake in one does not hide in
//! the other.

#![cfg(feature = "ext-metrics")]

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use registry_e2e::{Launch, Registry, pseudo_random_bytes, sha256_digest, workspace_binary};
use reqwest::blocking::{Client, Response};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const REPOSITORY: &str = "e2e/metrics";

/// The time a registry has to report requests to its observers after their
/// responses, which happens when the server finishes the response body.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

fn metrics_binary() -> PathBuf {
    workspace_binary("registry", "registry", &["ext-metrics"])
}

fn start(extra_config: &str) -> Registry {
    Registry::start_with(Launch {
        binary: Some(metrics_binary()),
        extra_config: extra_config.to_owned(),
        env: Vec::new(),
    })
}

fn client() -> Client {
    Client::builder()
        .no_proxy()
        .build()
        .expect("building an HTTP client")
}

// ---- a strict parser of the text format ------------------------------------

/// One family of a scrape: its name, its unescaped help, its type and its
/// samples.
#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: String,
    kind: String,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    /// Label names and unescaped values, sorted by name.
    labels: Vec<(String, String)>,
    value: f64,
}

/// A parsed scrape, with the text for failure messages.
#[derive(Debug)]
struct Scrape {
    text: String,
    families: Vec<Family>,
}

impl Scrape {
    /// Returns the value of sample `name` with exactly `labels`, or `None`
    /// when the scrape has no such series.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: Vec<(String, String)> = labels
            .iter()
            .map(|(label, value)| ((*label).to_owned(), (*value).to_owned()))
            .collect();
        wanted.sort();
        self.families
            .iter()
            .flat_map(|family| &family.samples)
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// Returns the value, or 0 for a series that does not exist yet: the
    /// extension writes a request series only once it has a request.
    fn get_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    fn family(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|family| family.name == name)
    }
}

/// Parses a scrape, failing on anything that Prometheus rejects and also
/// on a family without `# HELP` or `# TYPE`, a blank line, or a missing
/// final line feed.
fn parse(text: &str) -> Result<Vec<Family>, String> {
    if !text.ends_with('\n') {
        return Err("the scrape does not end with a line feed".to_owned());
    }
    let mut families: Vec<Family> = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut series: HashSet<(String, Vec<(String, String)>)> = HashSet::new();

    for (index, line) in text.lines().enumerate() {
        let fail = |message: &str| format!("line {}: {message}: {line:?}", index + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text"))?;
            if !is_metric_name(name) {
                return Err(fail("invalid metric name"));
            }
            if !names.insert(name.to_owned()) {
                return Err(fail("a second block for one family"));
            }
            families.push(Family {
                name: name.to_owned(),
                help: unescape(help, false).map_err(|m| fail(&m))?,
                kind: String::new(),
                samples: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without type"))?;
            let family = families
                .last_mut()
                .filter(|family| family.name == name && family.kind.is_empty())
                .ok_or_else(|| fail("TYPE not right after the family's HELP"))?;
            if !["counter", "gauge", "histogram"].contains(&kind) {
                return Err(fail("unexpected type"));
            }
            family.kind = kind.to_owned();
        } else if line.is_empty() || line.starts_with('#') {
            return Err(fail("blank line or unexpected comment"));
        } else {
            let sample = parse_sample(line).map_err(|m| fail(&m))?;
            let family = families
                .last_mut()
                .filter(|family| !family.kind.is_empty())
                .ok_or_else(|| fail("sample before a TYPE line"))?;
            let suffixes: &[&str] = if family.kind == "histogram" {
                &["_bucket", "_sum", "_count"]
            } else {
                &[""]
            };
            let belongs = suffixes
                .iter()
                .any(|suffix| sample.name == format!("{}{suffix}", family.name));
            if !belongs {
                return Err(fail("sample outside the current family"));
            }
            if !series.insert((sample.name.clone(), sample.labels.clone())) {
                return Err(fail("duplicate series"));
            }
            family.samples.push(sample);
        }
    }

    for family in &families {
        if family.kind.is_empty() {
            return Err(format!("family {} has no TYPE line", family.name));
        }
        if family.kind == "histogram" {
            check_histogram(family)?;
        }
    }
    Ok(families)
}

/// Checks each series of a histogram: buckets in increasing `le` order with
/// non-decreasing counts, `+Inf` last and equal to `_count`, and a `_sum`.
fn check_histogram(family: &Family) -> Result<(), String> {
    let without_le = |sample: &Sample| -> Vec<(String, String)> {
        sample
            .labels
            .iter()
            .filter(|(label, _)| label != "le")
            .cloned()
            .collect()
    };
    let mut keys: Vec<Vec<(String, String)>> = Vec::new();
    for sample in &family.samples {
        let key = without_le(sample);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }

    for key in keys {
        let of = |suffix: &str| -> Vec<&Sample> {
            let name = format!("{}{suffix}", family.name);
            family
                .samples
                .iter()
                .filter(|sample| sample.name == name && without_le(sample) == key)
                .collect()
        };
        let fail = |message: &str| format!("histogram {} {key:?}: {message}", family.name);
        let mut bound = f64::NEG_INFINITY;
        let mut cumulative = 0.0;
        for bucket in of("_bucket") {
            let le = bucket
                .labels
                .iter()
                .find(|(label, _)| label == "le")
                .map(|(_, value)| parse_value(value))
                .ok_or_else(|| fail("bucket without le"))??;
            if le <= bound {
                return Err(fail("le not increasing"));
            }
            if bucket.value < cumulative {
                return Err(fail("bucket counts decrease"));
            }
            bound = le;
            cumulative = bucket.value;
        }
        if bound != f64::INFINITY {
            return Err(fail("no +Inf bucket last"));
        }
        let count = of("_count");
        if count.len() != 1 || count[0].value != cumulative {
            return Err(fail("_count differs from the +Inf bucket"));
        }
        if of("_sum").len() != 1 {
            return Err(fail("no _sum"));
        }
    }
    Ok(())
}

/// Parses `name{label="value",...} value`, without a timestamp.
fn parse_sample(line: &str) -> Result<Sample, String> {
    let end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..end];
    if !is_metric_name(name) {
        return Err("invalid metric name".to_owned());
    }

    let mut rest = &line[end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        rest = inside;
        loop {
            let (label, after) = rest.split_once("=\"").ok_or("label without =\"")?;
            if !is_label_name(label) || labels.iter().any(|(seen, _)| seen == label) {
                return Err(format!("invalid or repeated label name {label:?}"));
            }
            // The value ends at the first quote that no backslash escapes.
            let mut escaped = false;
            let close = after
                .char_indices()
                .find(|&(_, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes
                })
                .map(|(index, _)| index)
                .ok_or("unterminated label value")?;
            labels.push((label.to_owned(), unescape(&after[..close], true)?));
            rest = &after[close + 1..];
            if let Some(next) = rest.strip_prefix(',') {
                rest = next;
            } else if let Some(next) = rest.strip_prefix('}') {
                rest = next;
                break;
            } else {
                return Err("expected , or } after a label value".to_owned());
            }
        }
    }

    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    if value.contains(' ') {
        return Err("a timestamp or extra text after the value".to_owned());
    }
    labels.sort();
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: parse_value(value)?,
    })
}

/// Undoes `\\` and `\n`, and `\"` in label values; any other escape or a
/// raw quote in a label value is an error.
fn unescape(text: &str, label_value: bool) -> Result<String, String> {
    let mut output = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('\\') => output.push('\\'),
                Some('n') => output.push('\n'),
                Some('"') if label_value => output.push('"'),
                other => return Err(format!("invalid escape \\{other:?}")),
            },
            '"' if label_value => return Err("raw double quote".to_owned()),
            c => output.push(c),
        }
    }
    Ok(output)
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text.contains(|c: char| c.is_ascii_alphabetic() && c != 'e') => {
            Err(format!("invalid value {text:?}"))
        }
        _ => text
            .parse()
            .map_err(|e| format!("invalid value {text:?}: {e}")),
    }
}

fn is_metric_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

fn is_label_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && !name.starts_with("__")
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[test]
fn parser_rejects_malformed_scrapes() {
    // The checks below are only as strong as this parser.
    let cases = [
        "# HELP a A.\n# TYPE a gauge\na 1",
        "a 1\n",
        "# HELP a A.\na 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\n\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n",
        "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x=\"1\"} 2\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"a\"b\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
    ];
    for text in cases {
        assert!(parse(text).is_err(), "parsed:\n{text}");
    }
    let valid = "# HELP a Help \\\\ \"q\".\n# TYPE a gauge\na{x=\"q\\\"\\\\\\n\",y=\"\"} -1.5e-7\n";
    let families = parse(valid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(families[0].help, "Help \\ \"q\".");
    assert_eq!(families[0].samples[0].labels[0].1, "q\"\\\n");
    assert_eq!(families[0].samples[0].value, -1.5e-7);
}

// ---- requests to the registry ----------------------------------------------

/// Fetches and parses `url`, and checks the status and the content type.
fn scrape(client: &Client, url: &str) -> Scrape {
    let response = client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url} failed: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {url}: status");
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap_or("(not text)").to_owned());
    assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "GET {url}");
    let text = response
        .text()
        .unwrap_or_else(|e| panic!("GET {url}: reading the body failed: {e}"));
    let families = parse(&text).unwrap_or_else(|e| panic!("GET {url}: {e}\n{text}"));
    Scrape { text, families }
}

/// Scrapes until `ready` accepts the scrape or [`SETTLE_TIMEOUT`] passes,
/// and returns the last scrape.
fn scrape_until(client: &Client, url: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let scrape = scrape(client, url);
        if ready(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(response: Response) -> u16 {
    response.status().as_u16()
}

/// Pushes `bytes` as a blob with a monolithic upload (POST, then PUT with
/// the whole body), and returns its digest.
fn push_blob(client: &Client, registry: &Registry, bytes: &[u8]) -> String {
    let digest = sha256_digest(bytes);
    let start = client
        .post(registry.url(&format!("/v2/{REPOSITORY}/blobs/uploads/")))
        .send()
        .expect("POST of an upload");
    assert_eq!(start.status().as_u16(), 202, "POST of an upload");
    let location = start
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .expect("the upload has a Location")
        .to_owned();
    let location = if location.starts_with('/') {
        registry.url(&location)
    } else {
        location
    };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = client
        .put(format!("{location}{separator}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .expect("PUT of an upload");
    assert_eq!(put.status().as_u16(), 201, "PUT of blob {digest}");
    digest
}

/// Returns an OCI image manifest of a config and layers, given as
/// `(digest, size)`.
fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|(digest, size)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": size,
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config.0,
            "size": config.1,
        },
        "layers": layers,
    });
    serde_json::to_vec(&manifest).expect("a manifest serializes")
}

/// Returns the `address` field of the `metrics listening` log line.
fn metrics_address(registry: &Registry) -> SocketAddr {
    registry
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["message"] == "metrics listening")
        .and_then(|event| event["address"].as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no `metrics listening` line:\n{}", registry.log()))
}

// ---- tests -----------------------------------------------------------------

#[test]
fn known_traffic_is_counted_exactly() {
    const PINGS: usize = 5;
    const MANIFEST_GETS: usize = 4;
    const MISSING_MANIFESTS: usize = 3;
    const UNKNOWN_PATHS: usize = 2;
    const CATALOG_HEADS: usize = 2;

    let registry = start("");
    let client = client();
    let metrics_url = registry.url("/metrics");
    let before = scrape(&client, &metrics_url);

    // Three blobs: the config and two layers of sizes that no chunking
    // rounds to.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layers = [
        pseudo_random_bytes(1, 150_001),
        pseudo_random_bytes(2, 70_003),
    ];
    let config_digest = push_blob(&client, &registry, config);
    let layer_digests: Vec<String> = layers
        .iter()
        .map(|layer| push_blob(&client, &registry, layer))
        .collect();
    let blobs = 1 + layers.len();
    let blob_bytes = config.len() + layers.iter().map(Vec::len).sum::<usize>();

    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[
            (&layer_digests[0], layers[0].len()),
            (&layer_digests[1], layers[1].len()),
        ],
    );
    let put = client
        .put(registry.url(&format!("/v2/{REPOSITORY}/manifests/v1")))
        .header("content-type", MANIFEST_TYPE)
        .body(manifest.clone())
        .send()
        .expect("PUT of the manifest");
    assert_eq!(put.status().as_u16(), 201, "PUT of the manifest");

    for _ in 0..MANIFEST_GETS {
        let response = client
            .get(registry.url(&format!("/v2/{REPOSITORY}/manifests/v1")))
            .header("accept", MANIFEST_TYPE)
            .send()
            .expect("GET of the manifest");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.bytes().expect("the manifest body").len(),
            manifest.len()
        );
    }
    let blob = client
        .get(registry.url(&format!("/v2/{REPOSITORY}/blobs/{}", layer_digests[1])))
        .send()
        .expect("GET of a blob");
    assert_eq!(blob.status().as_u16(), 200);
    assert_eq!(blob.bytes().expect("the blob body").len(), layers[1].len());
    for _ in 0..PINGS {
        let ping = client.get(registry.url("/v2/")).send().expect("GET /v2/");
        assert_eq!(status(ping), 200);
    }
    for _ in 0..MISSING_MANIFESTS {
        let missing = client
            .get(registry.url(&format!("/v2/{REPOSITORY}/manifests/missing")))
            .send()
            .expect("GET of a missing manifest");
        assert_eq!(status(missing), 404);
    }
    for _ in 0..CATALOG_HEADS {
        let head = client
            .head(registry.url("/v2/_catalog"))
            .send()
            .expect("HEAD of the catalog");
        assert_eq!(status(head), 200);
    }
    for _ in 0..UNKNOWN_PATHS {
        let unknown = client
            .get(registry.url("/not-an-endpoint"))
            .send()
            .expect("GET of an unknown path");
        assert_eq!(status(unknown), 404);
    }

    let requests = |scrape: &Scrape, route: &str, method: &str, code: &str| {
        let labels = [("route", route), ("method", method), ("status", code)];
        scrape.get_or_zero("registry_http_requests_total", &labels)
            - before.get_or_zero("registry_http_requests_total", &labels)
    };
    // The last requests reach the observer when the server finishes their
    // bodies, which may be just after the client read them.
    let after = scrape_until(&client, &metrics_url, |scrape| {
        requests(scrape, "unknown", "GET", "404") >= UNKNOWN_PATHS as f64
    });
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.get_or_zero(name, labels) - before.get_or_zero(name, labels)
    };
    let text = &after.text;

    // Requests by route, method and status.
    let expected_requests = [
        ("base", "GET", "200", PINGS),
        ("manifest", "GET", "200", MANIFEST_GETS),
        ("manifest", "GET", "404", MISSING_MANIFESTS),
        ("manifest", "PUT", "201", 1),
        ("blob", "GET", "200", 1),
        ("blob_upload", "POST", "202", blobs),
        ("blob_upload_session", "PUT", "201", blobs),
        ("unknown", "GET", "404", UNKNOWN_PATHS),
        ("catalog", "HEAD", "200", CATALOG_HEADS),
    ];
    for (route, method, code, count) in expected_requests {
        assert_eq!(
            requests(&after, route, method, code),
            count as f64,
            "requests {route} {method} {code}:\n{text}"
        );
    }
    let scrapes = after.get_or_zero(
        "registry_http_requests_total",
        &[("route", "extension"), ("method", "GET"), ("status", "200")],
    );
    assert!(scrapes >= 1.0, "the first scrape is not counted:\n{text}");

    // The histogram counts each request once.
    let duration_count = |route: &str, method: &str| {
        let labels = [("route", route), ("method", method)];
        delta("registry_http_request_duration_seconds_count", &labels)
    };
    assert_eq!(duration_count("base", "GET"), PINGS as f64, "{text}");
    let manifest_gets = (MANIFEST_GETS + MISSING_MANIFESTS) as f64;
    assert_eq!(duration_count("manifest", "GET"), manifest_gets, "{text}");
    assert_eq!(
        duration_count("blob_upload", "POST"),
        blobs as f64,
        "{text}"
    );
    let base_seconds = delta(
        "registry_http_request_duration_seconds_sum",
        &[("route", "base"), ("method", "GET")],
    );
    assert!(base_seconds > 0.0, "no time for the pings:\n{text}");
    assert!(
        base_seconds < 10.0,
        "{base_seconds} s for {PINGS} pings:\n{text}"
    );

    // Body bytes: uploads read every blob byte, and downloads send them.
    let bytes_in = |route: &str, method: &str| {
        let labels = [("route", route), ("method", method)];
        delta("registry_http_request_bytes_total", &labels)
    };
    let bytes_out = |route: &str, method: &str| {
        let labels = [("route", route), ("method", method)];
        delta("registry_http_response_bytes_total", &labels)
    };
    assert_eq!(
        bytes_in("blob_upload_session", "PUT"),
        blob_bytes as f64,
        "{text}"
    );
    assert_eq!(bytes_in("manifest", "PUT"), manifest.len() as f64, "{text}");
    assert_eq!(bytes_out("blob", "GET"), layers[1].len() as f64, "{text}");
    let manifest_bytes = (MANIFEST_GETS * manifest.len()) as f64;
    assert!(bytes_out("manifest", "GET") >= manifest_bytes, "{text}");
    // A response to HEAD sends no body, whatever its length would be.
    assert_eq!(bytes_out("catalog", "HEAD"), 0.0, "{text}");

    // Storage operations that the registry published.
    let storage = |operation: &str| {
        delta(
            "registry_storage_operations_total",
            &[("operation", operation)],
        )
    };
    assert_eq!(storage("upload_start"), blobs as f64, "{text}");
    assert_eq!(storage("upload_commit"), blobs as f64, "{text}");
    assert_eq!(storage("manifest_put"), 1.0, "{text}");
    assert!(storage("manifest_by_tag") >= manifest_gets, "{text}");
    let storage_errors = after
        .family("registry_storage_errors_total")
        .unwrap_or_else(|| panic!("no storage errors family:\n{text}"));
    assert!(
        storage_errors.samples.iter().all(|s| s.value == 0.0),
        "storage errors:\n{text}"
    );

    // Events by signal.
    let events = |signal: &str| delta("registry_events_total", &[("signal", signal)]);
    assert_eq!(events("manifest_pushed"), 1.0, "{text}");
    assert_eq!(events("tag_created"), 1.0, "{text}");
    assert_eq!(events("blob_pushed"), blobs as f64, "{text}");
    assert_eq!(events("manifest_pulled"), MANIFEST_GETS as f64, "{text}");
    assert_eq!(events("blob_pulled"), 1.0, "{text}");
    assert_eq!(
        after.get("registry_upload_requests_in_flight", &[]),
        Some(0.0),
        "{text}"
    );

    // Process metrics from /proc.
    let process = |name: &str| {
        after
            .get(name, &[])
            .unwrap_or_else(|| panic!("no {name}:\n{text}"))
    };
    assert!(process("process_resident_memory_bytes") > 1e6, "{text}");
    assert!(process("process_cpu_seconds_total") > 0.0, "{text}");
    assert!(process("process_open_fds") >= 3.0, "{text}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs_f64();
    let started = process("process_start_time_seconds");
    assert!(started <= now + 1.0, "started {started}, now {now}");
    assert!(started > now - 600.0, "started {started}, now {now}");

    // Every family has a help text.
    for family in &after.families {
        assert!(!family.help.is_empty(), "{} has no help", family.name);
    }
}

#[test]
fn separate_addr_serves_metrics_only_there() {
    let registry =
        start("extensions:\n  metrics:\n    addr: 127.0.0.1:0\n    path: /internal/metrics\n");
    let client = client();
    let metrics_url = format!("http://{}/internal/metrics", metrics_address(&registry));

    for _ in 0..3 {
        let ping = client.get(registry.url("/v2/")).send().expect("GET /v2/");
        assert_eq!(status(ping), 200);
    }
    for path in ["/internal/metrics", "/metrics"] {
        let response = client
            .get(registry.url(path))
            .send()
            .expect("GET on the registry");
        assert_eq!(
            status(response),
            404,
            "GET {path} on the registry's listener"
        );
    }
    let wrong_path = client
        .get(metrics_url.replace("/internal/metrics", "/metrics"))
        .send()
        .expect("GET /metrics on the metrics listener");
    assert_eq!(
        status(wrong_path),
        404,
        "GET /metrics on the metrics listener"
    );

    // The harness's readiness check adds one ping or more.
    let ping_series = [("route", "base"), ("method", "GET"), ("status", "200")];
    let unknown_series = [("route", "unknown"), ("method", "GET"), ("status", "404")];
    let metrics = scrape_until(&client, &metrics_url, |scrape| {
        scrape.get_or_zero("registry_http_requests_total", &unknown_series) >= 2.0
    });
    let text = &metrics.text;
    let pings = metrics.get_or_zero("registry_http_requests_total", &ping_series);
    assert!(pings >= 4.0, "{pings} pings:\n{text}");
    let unknown = metrics.get_or_zero("registry_http_requests_total", &unknown_series);
    assert_eq!(unknown, 2.0, "{text}");
    assert!(
        metrics
            .family("registry_storage_operations_total")
            .is_some(),
        "{text}"
    );

    // Scrapes on the separate listener are not requests of the registry.
    let again = scrape(&client, &metrics_url);
    assert!(
        !again.text.contains("route=\"extension\""),
        "scrapes were counted:\n{}",
        again.text
    );
}

#[test]
fn disabled_extension_serves_nothing() {
    let registry = start("extensions:\n  metrics:\n    enabled: false\n");
    let response = client()
        .get(registry.url("/metrics"))
        .send()
        .expect("GET /metrics");
    assert_eq!(status(response), 404);
}

/// Writes a configuration for a registry on a free port of 127.0.0.1 with
/// `extensions` appended, and returns its folder and path.
fn write_config(extensions: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let storage = dir.path().join("storage");
    let root = serde_json::to_string(&storage.to_string_lossy()).expect("a string serializes");
    let config = format!(
        "http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    rootdirectory: {root}\n{extensions}"
    );
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).expect("writing the configuration");
    (dir, path)
}

#[test]
fn taken_addr_stops_startup() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port to take");
    let address = taken.local_addr().expect("the taken address");
    let (_dir, config) = write_config(&format!("extensions:\n  metrics:\n    addr: {address}\n"));

    let mut child = Command::new(metrics_binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the registry");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("waiting for the registry") {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the registry still runs 30 s after it failed to bind {address}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child
        .wait_with_output()
        .expect("reading the registry's output");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(
        !exit.success(),
        "the registry exited with {exit}:\n{stderr}"
    );
    assert!(stderr.contains("extensions.metrics.addr"), "{stderr}");
    assert!(stderr.contains(&address.to_string()), "{stderr}");
    assert!(!stderr.contains("registry listening"), "{stderr}");
}

#[test]
fn path_under_v2_fails_check_config() {
    let (_dir, config) = write_config("extensions:\n  metrics:\n    path: /v2/metrics\n");
    let output = Command::new(metrics_binary())
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("extensions.metrics"), "{stderr}");
    assert!(stderr.contains("/v2/metrics"), "{stderr}");
}
