//! The notify extension: webhooks for pushes, pulls, mounts and deletes.
//!
//! Each event is sent to every configured endpoint as a POST, in the
//! envelope of the Go registry's notifications
//! (`application/vnd.docker.distribution.events.v2+json`, a JSON object
//! with an `events` array), so that receivers written for registry:2 work
//! unchanged, or as a CloudEvents 1.0 JSON event per POST
//! (`format: cloudevents`).
//!
//! ```yaml
//! extensions:
//!   notify:
//!     outbox:
//!       directory: /var/lib/registry/extensions/notify   # default: under the storage root
//!       maxsize: 256MiB          # disk bound of undelivered events
//!       sync: always             # or interval: sync within syncinterval of a write
//!       syncinterval: 1s         # with interval: time from a write to its sync
//!       syncdelay: 5ms           # with always: wait for other changes to share a sync
//!     endpoints:
//!       - name: audit            # letters, digits, `.`, `_` and `-`
//!         url: https://hooks.example.com/registry
//!         headers:
//!           Authorization: [Bearer _env:AUDIT_TOKEN]
//!         timeout: 5s            # per POST
//!         backoff: 1s            # first retry delay, doubled up to maxbackoff
//!         maxbackoff: 5m
//!         maxbatch: 50           # events per envelope (1 with cloudevents)
//!         secret: _env:AUDIT_SECRET   # signs each body with HMAC-SHA256
//!         ca: /etc/registry/hooks-ca.pem   # https: also trust this CA
//!         format: docker         # or cloudevents
//!         ignoredmediatypes: [application/octet-stream]
//!         ignore:
//!           actions: [pull]
//!           mediatypes: []
//! ```
//!
//! Delivery is at least once:
//! - An event is written to the outbox, an append-only log on disk, inside
//!   the request that caused it: after the change is stored and before the
//!   client gets its response (a durable hand-off). A registry killed after
//!   a push was acknowledged still sends its events when it starts again.
//!   With `sync: always` (the default), each change's events are also
//!   synced to disk before the response. With `sync: interval`, the outbox
//!   is synced within `syncinterval` of a write, so a crash of the machine
//!   can lose the events of that last interval. Pull events are appended
//!   by the extension's worker, not in the request, because a pull changes
//!   nothing, so a killed registry may lose the last of them. At shutdown,
//!   after the registry's queues drained, the outbox is synced. A write that
//!   fails (a full disk) is logged and counted, and the events of that
//!   change are lost, except those written before the failure, which are
//!   still sent; a sync that fails or outlasts
//!   `signals.handofftimeout` is logged and counted, and the events stay.
//! - Each endpoint has a cursor, the sequence number of the last event it
//!   received, so it gets every event in order, each event's `id` stays the
//!   same on every attempt, and receivers can drop duplicates by id.
//! - A failed POST (an error, a timeout or a status other than 2xx) is
//!   retried with exponential backoff and jitter, without limit.
//! - Disk use is bounded by `outbox.maxsize`. Delivered events are removed
//!   segment by segment. When undelivered events reach the bound, the
//!   oldest segment is removed anyway: its events are lost for the
//!   endpoints that had not received them, which is logged as a warning
//!   and counted in `registry_notify_events_dropped_total`.
//!
//! A signature is the header `X-Registry-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body with the endpoint's secret.
//!
//! Metrics, per endpoint: `registry_notify_events_delivered_total`,
//! `registry_notify_attempts_failed_total`, `registry_notify_retrying`
//! (1 while the endpoint waits to retry), `registry_notify_events_pending`
//! and `registry_notify_events_dropped_total`; for the whole outbox,
//! `registry_notify_outbox_syncs_total`.

mod config;
mod deliver;
mod envelope;
mod outbox;

use std::sync::{Arc, OnceLock};

use registry_signals::{
    BlobDeleted, BlobMounted, BlobPulled, BlobPushed, Event, ExtensionContext, ManifestDeleted,
    ManifestPulled, ManifestPushed, Receipt, Shutdown, TagDeleted,
};

pub use config::{Endpoint, Format, Ignore, NotifyConfig, OutboxSettings, SyncMode};

use crate::deliver::Delivery;
use crate::outbox::Outbox;

registry_signals::extension!(name: "notify", config: NotifyConfig, enabled_by_default: true);

/// The running state of the extension, created by its setup function.
struct Runtime {
    outbox: Arc<Outbox>,
    delivery: Arc<Delivery>,
}

/// The slot of the runtime, kept in the configuration, which every
/// registration of one registry process shares.
#[derive(Default)]
pub(crate) struct RuntimeCell(OnceLock<Runtime>);

impl std::fmt::Debug for RuntimeCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "RuntimeCell(started)"
        } else {
            "RuntimeCell(empty)"
        })
    }
}

/// Opens the outbox and registers the delivery metrics. Without endpoints
/// there is nothing to send, so nothing is opened.
fn open(config: &NotifyConfig, context: &ExtensionContext) -> Result<(), String> {
    if config.endpoints.is_empty() {
        return Ok(());
    }
    let directory = config
        .outbox
        .directory
        .clone()
        .unwrap_or_else(|| context.data_dir().join("outbox"));

    // A disabled endpoint keeps its cursor file, but its cursor does not
    // keep delivered segments on disk.
    let names: Vec<String> = config
        .endpoints
        .iter()
        .filter(|e| !e.disabled)
        .map(|e| e.name.clone())
        .collect();
    let outbox = Outbox::open(
        &directory,
        config.outbox.max_size.as_u64(),
        config.outbox.sync_policy(),
        &names,
    )
    .map_err(|e| format!("failed to open the outbox in {}: {e}", directory.display()))?;
    let outbox = Arc::new(outbox);
    let delivery = Arc::new(Delivery::new(config, outbox.clone())?);
    context
        .telemetry()
        .register(Arc::new(deliver::Metrics(delivery.clone())));

    let runtime = Runtime { outbox, delivery };
    if config.runtime.0.set(runtime).is_err() {
        return Err("the extension was set up twice".to_owned());
    }
    tracing::info!(
        outbox = %directory.display(),
        endpoints = ?names,
        "notify: outbox open"
    );
    Ok(())
}

registry_signals::setup!("notify", open);

/// Sends outbox events to every endpoint until shutdown, then syncs the
/// outbox. The registry stops tasks after its connections closed and its
/// queues drained, so that last sync covers every event of the process.
async fn run(config: Arc<NotifyConfig>, _context: ExtensionContext, shutdown: Shutdown) {
    let Some(runtime) = config.runtime.0.get() else {
        return;
    };
    runtime.delivery.clone().run(shutdown).await;
    if let Err(error) = runtime.outbox.flush().await {
        tracing::error!(%error, "notify: cannot sync the outbox at shutdown");
    }
}

registry_signals::task!("notify", run);

/// Queues an event for the outbox. With `durable`, the receipt waits
/// until it is on disk.
fn append(config: &NotifyConfig, event: &Event, durable: bool) -> Result<Receipt, String> {
    let Some(runtime) = config.runtime.0.get() else {
        return Ok(Receipt::done());
    };
    let records: Vec<_> = envelope::records(event, config.url_base.as_deref())
        .into_iter()
        .filter(|record| config.wanted_by_any(record))
        .collect();
    if records.is_empty() {
        return Ok(Receipt::done());
    }
    match runtime.outbox.append(records, durable)? {
        Some(synced) => Ok(Receipt::wait_for(async move {
            synced
                .await
                .map_err(|_| "the outbox sync thread stopped".to_owned())?
        })),
        None => Ok(Receipt::done()),
    }
}

fn manifest_pushed(
    event: &Event,
    _: &ManifestPushed,
    config: &NotifyConfig,
) -> Result<Receipt, String> {
    append(config, event, true)
}

fn blob_pushed(event: &Event, _: &BlobPushed, config: &NotifyConfig) -> Result<Receipt, String> {
    append(config, event, true)
}

fn blob_mounted(event: &Event, _: &BlobMounted, config: &NotifyConfig) -> Result<Receipt, String> {
    append(config, event, true)
}

fn manifest_deleted(
    event: &Event,
    _: &ManifestDeleted,
    config: &NotifyConfig,
) -> Result<Receipt, String> {
    append(config, event, true)
}

fn tag_deleted(event: &Event, _: &TagDeleted, config: &NotifyConfig) -> Result<Receipt, String> {
    append(config, event, true)
}

fn blob_deleted(event: &Event, _: &BlobDeleted, config: &NotifyConfig) -> Result<Receipt, String> {
    append(config, event, true)
}

registry_signals::handoff!("notify", manifest_pushed);
registry_signals::handoff!("notify", blob_pushed);
registry_signals::handoff!("notify", blob_mounted);
registry_signals::handoff!("notify", manifest_deleted);
registry_signals::handoff!("notify", tag_deleted);
registry_signals::handoff!("notify", blob_deleted);

/// Appends a pull event and logs a failure, because receivers return
/// nothing.
fn append_pull(config: &NotifyConfig, event: &Event) {
    // A pull's append has nothing to wait for.
    if let Err(error) = append(config, event, false) {
        tracing::error!(event_id = %event.id, %error, "notify: cannot append a pull event");
    }
}

fn manifest_pulled(event: &Event, _: &ManifestPulled, config: &NotifyConfig) {
    append_pull(config, event);
}

fn blob_pulled(event: &Event, _: &BlobPulled, config: &NotifyConfig) {
    append_pull(config, event);
}

registry_signals::receiver!("notify", manifest_pulled);
registry_signals::receiver!("notify", blob_pulled);
