//! The loads of a run: what each one sends, from how many clients and for
//! how long, and which table rows its result fills.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use http::Method;

use crate::content::MIB;
use crate::load::{LoadResult, LoadSpec, Operation, Stop};
use crate::ops::{Fetch, Mixed, PushBlob, PushedBlobs, TagManifest, Upload};
use crate::seed::{BASE_REPO, Content, MIXED_REPO, PUSH_REPO, TAGS_LARGE_REPO, TAGS_SMALL_REPO};
use crate::table::{Better, Metric, MetricTable};

/// Durations, counts and sizes of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    /// Runs only the comparison of builds with and without extensions.
    pub extensions_only: bool,
    /// Rounds of every load; each value reported is the median over them.
    pub rounds: usize,
    /// Rounds of the extension comparison, whose target (3%) is smaller
    /// than the spread of a few rounds.
    pub extension_rounds: usize,
    /// Length of each timed load, except the list and push loads.
    pub duration: Duration,
    /// Length of each tags-list and catalog load.
    pub list_duration: Duration,
    /// Tags in the smaller tags repository, and repositories in the catalog
    /// when the smaller size is measured.
    pub small_list: usize,
    /// The same for the larger size.
    pub large_list: usize,
    /// 64 MiB blobs pushed per push load.
    pub pushes: u64,
    /// Fresh starts of each server to time the startup.
    pub startup_samples: usize,
}

impl Plan {
    /// Returns the plan of a full run: about seven minutes on two cores.
    pub fn full() -> Plan {
        Plan {
            quick: false,
            extensions_only: false,
            rounds: 3,
            extension_rounds: 5,
            duration: Duration::from_secs(2),
            list_duration: Duration::from_secs(1),
            small_list: 1_000,
            large_list: 10_000,
            pushes: 6,
            startup_samples: 5,
        }
    }

    /// Returns the plan of a quick run, under a minute: one short round
    /// with lists of 100 and 1,000 entries.
    pub fn quick() -> Plan {
        Plan {
            quick: true,
            extensions_only: false,
            rounds: 1,
            extension_rounds: 1,
            duration: Duration::from_millis(300),
            list_duration: Duration::from_millis(200),
            small_list: 100,
            large_list: 1_000,
            pushes: 2,
            startup_samples: 1,
        }
    }
}

/// Clients of the request-rate loads on one small resource.
const MANY_CLIENTS: usize = 32;
/// Clients of the 1 MiB blob load.
const BLOB_CLIENTS: usize = 8;
/// Clients of the mixed load.
const MIXED_CLIENTS: usize = 50;
/// Size of the chunks of the chunked push.
const CHUNK: u64 = 8 * MIB as u64;
/// The page size (`n`) of each list request.
const PAGE: usize = 100;

/// One load of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    Ping,
    ManifestHead,
    ManifestGet,
    Blob1m,
    Blob64m,
    PushMonolithic,
    PushChunked,
    TagsSmall,
    TagsLarge,
    CatalogSmall,
    CatalogLarge,
    Mixed,
    /// A manifest PUT under a new tag, which fires the tag signals.
    TagPut,
    NginxSendfile,
    NginxBuffered,
}

/// The kind of result that a load reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Requests per second, latency percentiles, CPU per request.
    Rate,
    /// MiB/s and CPU per GiB.
    Throughput,
}

impl Load {
    /// Returns the prefix of the load's metric keys.
    pub fn key(self) -> &'static str {
        match self {
            Load::Ping => "ping",
            Load::ManifestHead => "head",
            Load::ManifestGet => "get",
            Load::Blob1m => "blob1m",
            Load::Blob64m => "blob64m",
            Load::PushMonolithic => "push_mono",
            Load::PushChunked => "push_chunked",
            Load::TagsSmall => "tags_small",
            Load::TagsLarge => "tags_large",
            Load::CatalogSmall => "catalog_small",
            Load::CatalogLarge => "catalog_large",
            Load::Mixed => "mixed",
            Load::TagPut => "tag_put",
            Load::NginxSendfile => "nginx_sendfile",
            Load::NginxBuffered => "nginx_buffered",
        }
    }

    /// Returns the load as the table shows it: what is sent, and how.
    pub fn label(self, plan: &Plan) -> String {
        match self {
            Load::Ping => format!("GET /v2/, {MANY_CLIENTS} clients"),
            Load::ManifestHead => format!("manifest HEAD by tag, {MANY_CLIENTS} clients"),
            Load::ManifestGet => format!("manifest GET by tag, {MANY_CLIENTS} clients"),
            Load::Blob1m => format!("1 MiB blob GET, {BLOB_CLIENTS} clients"),
            Load::Blob64m => "64 MiB blob GET, 1 client".to_owned(),
            Load::PushMonolithic => "64 MiB monolithic push (POST, PUT), 1 client".to_owned(),
            Load::PushChunked => {
                "64 MiB chunked push (POST, 8 MiB PATCHes, PUT), 1 client".to_owned()
            }
            Load::TagsSmall => list_label("tags list", plan.small_list, "tags"),
            Load::TagsLarge => list_label("tags list", plan.large_list, "tags"),
            Load::CatalogSmall => list_label("catalog", plan.small_list, "repositories"),
            Load::CatalogLarge => list_label("catalog", plan.large_list, "repositories"),
            Load::Mixed => format!("mixed pushes and pulls, {MIXED_CLIENTS} clients"),
            Load::TagPut => format!("manifest PUT by new tag, {MANY_CLIENTS} clients"),
            Load::NginxSendfile => "nginx 64 MiB GET, sendfile on, 1 client".to_owned(),
            Load::NginxBuffered => {
                "nginx 64 MiB GET, sendfile off, output_buffers 2 1m, 1 client".to_owned()
            }
        }
    }

    /// Returns the name of the load in the rows that follow its first.
    fn short_label(self, plan: &Plan) -> String {
        let size = |entries: usize| crate::table::format_number(entries as f64);
        match self {
            Load::Ping => "GET /v2/".to_owned(),
            Load::ManifestHead => "manifest HEAD".to_owned(),
            Load::ManifestGet => "manifest GET".to_owned(),
            Load::Blob1m => "1 MiB blob GET".to_owned(),
            Load::Blob64m => "64 MiB blob GET".to_owned(),
            Load::PushMonolithic => "monolithic push".to_owned(),
            Load::PushChunked => "chunked push".to_owned(),
            Load::TagsSmall => format!("tags list of {}", size(plan.small_list)),
            Load::TagsLarge => format!("tags list of {}", size(plan.large_list)),
            Load::CatalogSmall => format!("catalog of {}", size(plan.small_list)),
            Load::CatalogLarge => format!("catalog of {}", size(plan.large_list)),
            Load::Mixed => "mixed load".to_owned(),
            Load::TagPut => "manifest PUT".to_owned(),
            Load::NginxSendfile => "nginx sendfile on".to_owned(),
            Load::NginxBuffered => "nginx sendfile off".to_owned(),
        }
    }

    fn shape(self) -> Shape {
        match self {
            Load::Blob64m
            | Load::PushMonolithic
            | Load::PushChunked
            | Load::NginxSendfile
            | Load::NginxBuffered => Shape::Throughput,
            _ => Shape::Rate,
        }
    }

    /// Returns the clients and the stop condition of the load.
    pub fn spec(self, plan: &Plan) -> LoadSpec {
        let clients = match self {
            Load::Ping | Load::ManifestHead | Load::ManifestGet | Load::TagPut => MANY_CLIENTS,
            Load::Blob1m => BLOB_CLIENTS,
            Load::Mixed => MIXED_CLIENTS,
            _ => 1,
        };
        let stop = match self {
            Load::PushMonolithic | Load::PushChunked => Stop::Count(plan.pushes),
            Load::TagsSmall | Load::TagsLarge | Load::CatalogSmall | Load::CatalogLarge => {
                Stop::After(plan.list_duration)
            }
            _ => Stop::After(plan.duration),
        };
        LoadSpec { clients, stop }
    }

    /// Returns the operation that the load's clients repeat.
    pub fn operation(self, content: &Content) -> Arc<dyn Operation> {
        let list = |path: String| Arc::new(Fetch::get(format!("{path}?n={PAGE}")));
        match self {
            Load::Ping => Arc::new(Fetch::get("/v2/".to_owned())),
            Load::ManifestHead => Arc::new(Fetch::manifest(Method::HEAD, BASE_REPO, "latest")),
            Load::ManifestGet => Arc::new(Fetch::manifest(Method::GET, BASE_REPO, "latest")),
            Load::Blob1m => Arc::new(Fetch::blob(BASE_REPO, &content.layer_1m)),
            Load::Blob64m => Arc::new(Fetch::blob(BASE_REPO, &content.layer_64m)),
            Load::PushMonolithic => Arc::new(PushBlob {
                repo: PUSH_REPO.to_owned(),
                family: content.push_blobs.clone(),
                upload: Upload::Monolithic,
                pushed: PushedBlobs::default(),
            }),
            Load::PushChunked => Arc::new(PushBlob {
                repo: PUSH_REPO.to_owned(),
                family: content.push_blobs.clone(),
                upload: Upload::Chunked(CHUNK),
                pushed: PushedBlobs::default(),
            }),
            Load::TagsSmall => list(format!("/v2/{TAGS_SMALL_REPO}/tags/list")),
            Load::TagsLarge => list(format!("/v2/{TAGS_LARGE_REPO}/tags/list")),
            Load::CatalogSmall | Load::CatalogLarge => list("/v2/_catalog".to_owned()),
            Load::Mixed => Arc::new(Mixed {
                repo: MIXED_REPO.to_owned(),
                config: content.config.clone(),
                layer: content.layer_1m.clone(),
                small_blobs: content.small_blobs.clone(),
                steps: (0..MIXED_CLIENTS).map(|_| AtomicU64::new(0)).collect(),
                next_manifest: content.next_tag.clone(),
                pushed: PushedBlobs::default(),
            }),
            Load::TagPut => Arc::new(TagManifest {
                repo: BASE_REPO.to_owned(),
                manifest: content.small_manifest.clone(),
                tag_prefix: "put-".to_owned(),
                next_tag: content.next_tag.clone(),
            }),
            Load::NginxSendfile => Arc::new(Fetch {
                expected_len: Some(content.layer_64m.len),
                ..Fetch::get("/sendfile/blob".to_owned())
            }),
            Load::NginxBuffered => Arc::new(Fetch {
                expected_len: Some(content.layer_64m.len),
                ..Fetch::get("/buffered/blob".to_owned())
            }),
        }
    }

    /// Returns the table rows that the load fills.
    pub fn metrics(self, plan: &Plan) -> Vec<Metric> {
        let key = self.key();
        let label = self.label(plan);
        let short = self.short_label(plan);
        let mut metrics = Vec::new();
        match self.shape() {
            Shape::Rate => {
                let unit = if self == Load::Mixed {
                    "ops/s"
                } else {
                    "req/s"
                };
                metrics.push(Metric::new(
                    format!("{key}_rps"),
                    label,
                    unit,
                    Better::Higher,
                ));
                metrics.push(Metric::new(
                    format!("{key}_p50"),
                    format!("{short}: p50 latency"),
                    "ms",
                    Better::Lower,
                ));
                metrics.push(Metric::new(
                    format!("{key}_p99"),
                    format!("{short}: p99 latency"),
                    "ms",
                    Better::Lower,
                ));
                let per = if self == Load::Mixed {
                    "operation"
                } else {
                    "request"
                };
                metrics.push(Metric::new(
                    format!("{key}_cpu"),
                    format!("{short}: server CPU per {per}"),
                    "µs",
                    Better::Lower,
                ));
            }
            Shape::Throughput => {
                metrics.push(Metric::new(
                    format!("{key}_mibs"),
                    label,
                    "MiB/s",
                    Better::Higher,
                ));
                metrics.push(Metric::new(
                    format!("{key}_cpu"),
                    format!("{short}: server CPU per GiB"),
                    "s",
                    Better::Lower,
                ));
            }
        }
        if self == Load::Mixed {
            metrics.push(Metric::new(
                format!("{key}_errors"),
                format!("{short}: failed operations"),
                "count",
                Better::Lower,
            ));
        }
        metrics
    }

    /// Adds the load's result to `table` in column `column`.
    pub fn record(self, result: &LoadResult, table: &mut MetricTable, column: usize) {
        let key = self.key();
        match self.shape() {
            Shape::Rate => {
                table.record(&format!("{key}_rps"), column, result.ops_per_second());
                table.record(&format!("{key}_p50"), column, result.latency_ms(0.5));
                table.record(&format!("{key}_p99"), column, result.latency_ms(0.99));
                table.record(&format!("{key}_cpu"), column, result.cpu_micros_per_op());
            }
            Shape::Throughput => {
                table.record(&format!("{key}_mibs"), column, result.mib_per_second());
                table.record(&format!("{key}_cpu"), column, result.cpu_seconds_per_gib());
            }
        }
        if self == Load::Mixed {
            table.record(&format!("{key}_errors"), column, result.errors as f64);
        }
    }

    /// Returns a one-line summary of a result for the progress output.
    pub fn summary(self, result: &LoadResult) -> String {
        let errors = if result.errors > 0 {
            format!(", {} failed", result.errors)
        } else {
            String::new()
        };
        match self.shape() {
            Shape::Rate => format!(
                "{:.0} req/s, p99 {:.2} ms, {:.1} µs CPU/req{errors}",
                result.ops_per_second(),
                result.latency_ms(0.99),
                result.cpu_micros_per_op()
            ),
            Shape::Throughput => format!(
                "{:.0} MiB/s, {:.3} s CPU/GiB{errors}",
                result.mib_per_second(),
                result.cpu_seconds_per_gib()
            ),
        }
    }
}

fn list_label(list_name: &str, entries: usize, noun: &str) -> String {
    format!(
        "{list_name}, first page (n={PAGE}) of {} {noun}, 1 client",
        crate::table::format_number(entries as f64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_match_recorded_keys() {
        let plan = Plan::quick();
        let loads = [Load::Ping, Load::Blob64m, Load::Mixed, Load::TagsLarge];
        let metrics: Vec<Metric> = loads.iter().flat_map(|load| load.metrics(&plan)).collect();
        let mut table = MetricTable::new(vec!["a".to_owned()], metrics);
        let result = LoadResult {
            operations: 10,
            elapsed: Duration::from_secs(1),
            bytes: 1 << 30,
            ..LoadResult::default()
        };
        // `record` panics on a key that `metrics` did not declare.
        for load in loads {
            load.record(&result, &mut table, 0);
        }
        assert_eq!(table.median("ping_rps", 0), Some(10.0));
        assert_eq!(table.median("blob64m_mibs", 0), Some(1024.0));
        assert_eq!(table.median("mixed_errors", 0), Some(0.0));
    }

    #[test]
    fn list_labels_name_sizes() {
        let plan = Plan::full();
        assert_eq!(
            Load::CatalogLarge.label(&plan),
            "catalog, first page (n=100) of 10,000 repositories, 1 client"
        );
        assert_eq!(Load::CatalogLarge.short_label(&plan), "catalog of 10,000");
        assert_eq!(Load::PushChunked.short_label(&plan), "chunked push");
    }
}
