//! The metrics extension: serves Prometheus metrics of the registry's HTTP
//! requests, of everything that the registry and other extensions publish
//! to the shared telemetry, and of the process, in the text exposition
//! format 0.0.4.
//!
//! Link it with `cargo build --features ext-metrics`. It is enabled when
//! linked, unless its section says `enabled: false`. Its section,
//! `extensions.metrics`, has two keys:
//!
//! ```yaml
//! extensions:
//!   metrics:
//!     # The HTTP path of the metrics. It must start with / and stay
//!     # outside /v2/. Default: /metrics.
//!     path: /metrics
//!     # A separate listener (IP address and port). When set, the metrics
//!     # are served only there, and the registry's own listener returns
//!     # 404 for `path`. Default: none.
//!     addr: 127.0.0.1:5001
//! ```
//!
//! A port that cannot be bound stops startup. On the registry's listener a
//! scrape is itself a request, counted under `route="extension"`, but on
//! the separate listener it is not counted.
//!
//! # Metrics
//!
//! Requests, counted by this extension as they complete:
//!
//! - `registry_http_requests_total{route, method, status}`: counter.
//! - `registry_http_request_duration_seconds{route, method}`: histogram
//!   from 100 µs to 60 s, from the first byte of the request to the end of
//!   the response body, or to the response head for a body of known length
//!   up to 64 KiB, which leaves with the head.
//! - `registry_http_request_bytes_total{route, method}` and
//!   `registry_http_response_bytes_total{route, method}`: counters of body
//!   bytes read and sent (for a small body of known length, its length).
//!
//! `route` is one of `base`, `catalog`, `tags`, `referrers`, `manifest`,
//! `blob`, `blob_upload` (the POST that starts an upload),
//! `blob_upload_session`, `extension` (a route of an extension) and
//! `unknown` (a path that is no endpoint). `method` is `GET`, `HEAD`,
//! `PUT`, `POST`, `PATCH`, `DELETE`, `OPTIONS` or `other`. A route name
//! that this extension does not know counts as `other`, and so does a
//! 17th distinct status code of one route and method. A route or method
//! appears once it has a request.
//!
//! Published by the registry:
//!
//! - `registry_storage_operations_total{operation}` and
//!   `registry_storage_errors_total{operation}`: counters.
//! - `registry_upload_requests_in_flight`: gauge.
//! - `registry_events_total{signal}`: counter.
//! - `registry_extension_events_delivered_total{extension}`,
//!   `registry_extension_events_dropped_total{extension}`,
//!   `registry_extension_receiver_panics_total{extension}`,
//!   `registry_extension_handoff_failures_total{extension}`: counters, and
//!   `registry_extension_queue_depth{extension}`: gauge.
//!
//! Published by other extensions when they are linked and enabled, such as
//! `registry_notify_*` by `endpoint` (events delivered, failed attempts,
//! retrying, events pending and dropped) and `registry_search_*`.
//!
//! Every family in the shared telemetry is served, whatever its name, and
//! families of one name from several publishers are merged. What the text
//! format cannot carry is left out and logged once at warn: an invalid
//! metric or label name, a name of the request or process metrics, a
//! second type for one name, and a series that repeats another's labels.
//!
//! Read from `/proc` on each scrape, on Linux: `process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_virtual_memory_bytes`,
//! `process_open_fds`, `process_max_fds` and `process_start_time_seconds`.
//!
//! # Cost
//!
//! The request observer runs inside the registry for every request. It
//! takes no lock and allocates nothing: it adds to at most five relaxed
//! atomic counters in a table sharded by thread (see `requests`). A scrape
//! does the rest: it sums the shards, calls every telemetry collector and
//! reads `/proc`.

mod config;
#[cfg(test)]
mod parse;
mod process;
mod requests;
mod server;
mod shared;
mod text;

use std::sync::Arc;

use registry_signals::axum::Router;
use registry_signals::{ExtensionContext, RequestRecord, Shutdown};

pub use config::{DEFAULT_PATH, MetricsConfig};

registry_signals::extension!(name: "metrics", config: MetricsConfig, enabled_by_default: true);

/// Counts a completed request.
fn observe_request(record: &RequestRecord<'_>, config: &MetricsConfig) {
    config.runtime.requests.record(record);
}

registry_signals::observer!("metrics", observe_request);

/// Reads the fixed process values and, when `addr` is set, binds the
/// separate listener, so that a taken port stops startup.
fn start(config: &MetricsConfig, _context: &ExtensionContext) -> Result<(), String> {
    config.runtime.process();

    let Some(address) = config.listen_addr()? else {
        tracing::info!(path = %config.path, "metrics served on the registry's listener");
        return Ok(());
    };
    let listener = server::bind(address)?;
    let bound = listener
        .local_addr()
        .map_err(|error| format!("reading the address of extensions.metrics.addr: {error}"))?;
    tracing::info!(address = %bound, path = %config.path, "metrics listening");
    *lock_listener(config) = Some(listener);
    Ok(())
}

registry_signals::setup!("metrics", start);

/// Serves the metrics on the registry's listener, unless `addr` is set.
fn main_routes(config: Arc<MetricsConfig>, context: &ExtensionContext) -> Router {
    if config.addr.is_some() {
        return Router::new();
    }
    server::router(server::Scrape {
        config,
        telemetry: context.telemetry().clone(),
    })
}

registry_signals::routes!("metrics", main_routes);

/// Serves the metrics on the listener that setup bound, until shutdown.
/// Returns at once when `addr` is not set.
async fn serve_separately(
    config: Arc<MetricsConfig>,
    context: ExtensionContext,
    shutdown: Shutdown,
) {
    let Some(listener) = lock_listener(&config).take() else {
        return;
    };
    let router = server::router(server::Scrape {
        config,
        telemetry: context.telemetry().clone(),
    });
    server::serve(listener, router, shutdown).await;
}

registry_signals::task!("metrics", serve_separately);

fn lock_listener(
    config: &MetricsConfig,
) -> std::sync::MutexGuard<'_, Option<std::net::TcpListener>> {
    config
        .runtime
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}
