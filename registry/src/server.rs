//! The server: listen, accept connections, run background maintenance, and
//! drain on SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use registry_config::{Config, StorageBackend};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::api::{self, ApiSettings, AppState};
use registry_signals::telemetry::{Collector, MetricFamily, MetricKind, Telemetry};

use crate::extensions::{Dispatcher, ExtensionRuntime, LinkedExtension};
use crate::storage::{FsStorage, MeteredStorage, Storage, StorageCounters};

/// Serves until SIGINT or SIGTERM, then lets requests in flight finish for
/// up to `http.draintimeout`.
///
/// # Errors
///
/// When the storage root cannot be created or the address cannot be bound.
pub async fn serve(config: Config, linked: Vec<LinkedExtension>) -> anyhow::Result<()> {
    let settings = &config.settings;
    let StorageBackend::Filesystem(filesystem) = &settings.storage.backend;
    let root = &filesystem.root_directory;
    let storage = FsStorage::open_with(root, &settings.storage.cache)
        .with_context(|| format!("opening storage under {}", root.display()))?;
    let storage = MeteredStorage::new(storage);
    let storage_counters = storage.counters();
    let storage: Arc<dyn Storage> = Arc::new(storage);

    let api_settings = ApiSettings {
        delete_enabled: settings.storage.delete.enabled,
        manifest_max_bytes: settings.limits.manifest_size.as_u64(),
        idle_timeout: settings.http.idle_timeout,
        max_uploads: settings.limits.max_uploads.get() as usize,
        access_log: !settings.log.access_log.disabled,
        request_timeout: settings.http.request_timeout,
    };
    let linked_names: Vec<&str> = linked.iter().map(LinkedExtension::name).collect();
    let enabled_names: Vec<&str> = linked
        .iter()
        .filter(|e| e.enabled())
        .map(LinkedExtension::name)
        .collect();
    tracing::info!(linked = ?linked_names, enabled = ?enabled_names, "extensions");
    let dispatcher = Arc::new(Dispatcher::start(&linked, &settings.signals));
    let state = AppState::new(storage.clone(), api_settings, dispatcher.clone());
    let telemetry = Arc::new(Telemetry::default());
    telemetry.register(registry_collector(&state, storage_counters));
    let mut extensions = ExtensionRuntime::start(
        &linked,
        storage.clone(),
        telemetry,
        root,
        dispatcher.instance_id(),
    )?;
    let app = api::router_with(state, extensions.take_routers(), extensions.observers())
        .map_err(anyhow::Error::msg)?;

    let listener = TcpListener::bind(settings.http.addr)
        .await
        .with_context(|| format!("binding {}", settings.http.addr))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        %address,
        storage = %root.display(),
        version = env!("CARGO_PKG_VERSION"),
        "registry listening"
    );

    let purging = &settings.storage.maintenance.upload_purging;
    let purge_task = purging
        .enabled
        .then(|| tokio::spawn(purge_uploads(storage, purging.age, purging.interval)));

    // hyper needs a read buffer of at least 8 KiB for HTTP/1.1, so smaller
    // header limits act as 8 KiB there; HTTP/2 takes the limit as it is.
    let max_header_size =
        usize::try_from(settings.http.max_header_size.as_u64()).unwrap_or(usize::MAX);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.http.request_timeout)
        .max_buf_size(max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_size).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let idle_timeout = settings.http.idle_timeout;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Running out of file descriptors is the usual cause;
                    // back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);

        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(request)
        });
        // A client that stops reading a response would otherwise hold its
        // connection, and an open blob file, for as long as it likes.
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(idle_timeout));
        let stream = Box::pin(stream);
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }

    drop(listener);
    let drain = settings.http.drain_timeout;
    tracing::info!(drain_timeout = %humantime::format_duration(drain), "shutting down");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(drain) => {
            tracing::warn!("drain timeout reached; closing the remaining connections");
        }
        () = shutdown_signal() => {
            tracing::warn!("second stop signal; closing the remaining connections now");
        }
    }
    if let Some(task) = purge_task {
        task.abort();
    }
    dispatcher.shutdown().await;
    extensions.shutdown(settings.signals.drain_timeout).await;
    Ok(())
}

/// Builds the collector of the registry's own metrics: storage operations,
/// upload requests in flight, and the delivery of events to extensions.
fn registry_collector(state: &AppState, storage: Arc<StorageCounters>) -> Arc<dyn Collector> {
    let permits = state.upload_permits.clone();
    let max_uploads = state.settings.max_uploads;
    let dispatcher = state.dispatcher.clone();
    Arc::new(move || {
        let in_flight = max_uploads.saturating_sub(permits.available_permits());
        let mut metrics = storage.metrics();
        metrics.push(
            MetricFamily::new(
                "registry_upload_requests_in_flight",
                "Upload requests (POST, PATCH and PUT with a body) in progress.",
                MetricKind::Gauge,
            )
            .sample(&[], in_flight as f64),
        );
        metrics.extend(dispatcher.metrics());
        metrics
    })
}

/// Removes stale upload sessions every `interval`, starting at startup.
async fn purge_uploads(storage: Arc<dyn Storage>, age: Duration, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        match storage.purge_uploads(age).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "purged stale upload sessions"),
            Err(error) => tracing::warn!(%error, "purging upload sessions failed"),
        }
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("received SIGINT"),
        () = terminate => tracing::info!("received SIGTERM"),
    }
}
