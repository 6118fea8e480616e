//! Serving the metrics: the scrape handler, its router, and the separate
//! listener of `addr`.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use registry_signals::Shutdown;
use registry_signals::axum::Router;
use registry_signals::axum::extract::State;
use registry_signals::axum::http::header;
use registry_signals::axum::response::IntoResponse;
use registry_signals::axum::routing::get;
use registry_signals::telemetry::Telemetry;

use crate::config::MetricsConfig;
use crate::text::{CONTENT_TYPE, TextEncoder};
use crate::{process, requests, shared};

/// The sources of a scrape: this extension's counters and the shared
/// telemetry.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub config: Arc<MetricsConfig>,
    pub telemetry: Arc<Telemetry>,
}

impl Scrape {
    /// Returns every metric in the text format: the request families
    /// first, then the shared ones in the order their collectors were
    /// registered, then the process ones.
    pub fn render(&self) -> String {
        let runtime = &self.config.runtime;
        let mut encoder = TextEncoder::new();
        runtime.requests.encode(&mut encoder);

        let reserved: Vec<&str> = requests::RESERVED_NAMES
            .iter()
            .chain(&process::RESERVED_NAMES)
            .copied()
            .collect();
        let first_report = |key: &str| runtime.first_report(key);
        shared::encode(
            &mut encoder,
            self.telemetry.collect(),
            &reserved,
            &first_report,
        );

        runtime.process().encode(&mut encoder);
        encoder.finish()
    }
}

/// Returns a router that serves the metrics at the configured path.
pub fn router(scrape: Scrape) -> Router {
    let path = scrape.config.path.clone();
    Router::new()
        .route(&path, get(serve_scrape))
        .with_state(scrape)
}

async fn serve_scrape(State(scrape): State<Scrape>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrape.render())
}

/// Binds the separate listener, so that a taken or invalid address stops
/// startup.
///
/// # Errors
///
/// When the address cannot be bound, with the address and the reason.
pub fn bind(address: SocketAddr) -> Result<TcpListener, String> {
    let fail = |error: std::io::Error| {
        format!(
            "binding extensions.metrics.addr {address} failed: {error} (choose a free \
             address, or remove addr to serve the metrics on the registry's listener)"
        )
    };
    let listener = TcpListener::bind(address).map_err(fail)?;
    // Tokio requires a non-blocking socket.
    listener.set_nonblocking(true).map_err(fail)?;
    Ok(listener)
}

/// Serves `router` on `listener` until shutdown begins, then lets scrapes
/// in progress finish.
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: Shutdown) {
    let address = listener
        .local_addr()
        .map_or_else(|_| "unknown".to_owned(), |address| address.to_string());
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%address, %error, "metrics listener failed to start");
            return;
        }
    };
    let stopped = async move { shutdown.wait().await };
    let served = registry_signals::axum::serve(listener, router)
        .with_graceful_shutdown(stopped)
        .await;
    match served {
        Ok(()) => tracing::info!(%address, "metrics listener stopped"),
        Err(error) => tracing::error!(%address, %error, "metrics listener failed"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use registry_signals::RequestRecord;
    use registry_signals::axum::body::{Body, to_bytes};
    use registry_signals::axum::http::{Request, StatusCode};
    use registry_signals::telemetry::{MetricFamily, MetricKind};
    use tower::ServiceExt as _;

    use super::*;
    use crate::parse::parse;

    fn scrape_with(config: MetricsConfig) -> Scrape {
        Scrape {
            config: Arc::new(config),
            telemetry: Arc::new(Telemetry::default()),
        }
    }

    async fn get(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = router
            .oneshot(request)
            .await
            .expect("the router returns a response");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_owned());
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            content_type,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn scrape_has_content_type_and_all_parts() {
        let scrape = scrape_with(MetricsConfig::default());
        scrape.config.runtime.requests.record(&RequestRecord {
            route: "base",
            method: "GET",
            status: 200,
            duration: Duration::from_micros(300),
            bytes_in: 0,
            bytes_out: 2,
        });
        scrape.telemetry.register(Arc::new(|| {
            vec![
                MetricFamily::new("registry_events_total", "Events.", MetricKind::Counter)
                    .sample(&[("signal", "manifest_pushed")], 4.0),
            ]
        }));

        let (status, content_type, body) = get(router(scrape), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            content_type.as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let families = parse(&body).unwrap_or_else(|e| panic!("{e}:\n{body}"));
        let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
        let position = |name: &str| {
            names
                .iter()
                .position(|n| *n == name)
                .unwrap_or_else(|| panic!("{name} is missing:\n{body}"))
        };
        // Requests first, shared metrics next, process metrics last.
        assert!(position("registry_http_requests_total") < position("registry_events_total"));
        if cfg!(target_os = "linux") {
            assert!(position("registry_events_total") < position("process_open_fds"));
        }
        let events = &families[position("registry_events_total")];
        assert_eq!(events.samples[0].value, 4.0);
    }

    #[test]
    fn shared_family_cannot_reuse_own_names() {
        let scrape = scrape_with(MetricsConfig::default());
        scrape.config.runtime.requests.record(&RequestRecord {
            route: "manifest",
            method: "GET",
            status: 200,
            duration: Duration::from_millis(2),
            bytes_in: 0,
            bytes_out: 10,
        });
        scrape.telemetry.register(Arc::new(|| {
            ["registry_http_request_duration_seconds", "process_open_fds"]
                .iter()
                .map(|name| MetricFamily::new(*name, "Copy.", MetricKind::Gauge).sample(&[], 1.0))
                .collect()
        }));

        let text = scrape.render();
        let families = parse(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        let duration = families
            .iter()
            .find(|f| f.name == "registry_http_request_duration_seconds")
            .unwrap_or_else(|| panic!("no duration histogram:\n{text}"));
        assert_eq!(duration.kind, "histogram");
        assert!(!text.contains("Copy."), "{text}");
    }

    #[tokio::test]
    async fn configured_path_serves_and_others_do_not() {
        let config = MetricsConfig {
            path: "/internal/metrics".to_owned(),
            ..MetricsConfig::default()
        };
        let app = router(scrape_with(config));
        let (status, _, _) = get(app.clone(), "/internal/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let (status, _, _) = get(app, "/metrics").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[test]
    fn taken_address_fails_with_message() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let message = bind(address).unwrap_err();
        assert!(message.contains("extensions.metrics.addr"), "{message}");
        assert!(message.contains(&address.to_string()), "{message}");
    }

    #[tokio::test]
    async fn listener_serves_until_shutdown() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let (trigger, shutdown) = Shutdown::channel();
        let app = router(scrape_with(MetricsConfig::default()));
        let task = tokio::spawn(serve(listener, app, shutdown));

        let response = raw_get(address, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(
            response.contains("content-type: text/plain; version=0.0.4; charset=utf-8\r\n"),
            "{response}"
        );

        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the listener stops after shutdown")
            .expect("the task does not panic");
        let refused = tokio::net::TcpStream::connect(address).await;
        assert!(refused.is_err(), "the port still accepts connections");
    }

    /// Sends `GET path` over a new connection and returns the whole
    /// response.
    async fn raw_get(address: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }
}
