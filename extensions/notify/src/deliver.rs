//! Sending outbox events to the endpoints: one loop per endpoint, in order,
//! with retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::Rng;
use registry_signals::Shutdown;
use registry_signals::telemetry::{Collector, MetricFamily, MetricKind};
use sha2::Sha256;

use crate::config::{Endpoint, Format, NotifyConfig};
use crate::envelope::{self, Record};
use crate::outbox::{Outbox, Reader};

/// The time a delivery loop waits after it is woken by an append, so that
/// one POST carries the events of concurrent requests.
const LINGER: Duration = Duration::from_millis(10);

/// The header that carries the signature of a body.
const SIGNATURE_HEADER: &str = "x-registry-signature-256";

/// Counters of one endpoint.
#[derive(Debug, Default)]
struct Stats {
    delivered: AtomicU64,
    failed: AtomicU64,
    /// 1 while the endpoint waits to retry.
    retrying: AtomicU64,
}

#[derive(Debug)]
struct EndpointState {
    endpoint: Endpoint,
    stats: Stats,
    /// The endpoint's own client, which trusts its `ca`.
    client: reqwest::Client,
}

/// The delivery of one registry process.
#[derive(Debug)]
pub struct Delivery {
    endpoints: Vec<Arc<EndpointState>>,
    outbox: Arc<Outbox>,
}

impl Delivery {
    pub fn new(config: &NotifyConfig, outbox: Arc<Outbox>) -> Result<Self, String> {
        // The ring provider serves HTTPS endpoints; installing it twice (a
        // second registry in one process) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let built_in_roots: Vec<reqwest::Certificate> = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter_map(|der| reqwest::Certificate::from_der(der).ok())
            .collect();
        let endpoints = config
            .endpoints
            .iter()
            .filter(|endpoint| !endpoint.disabled)
            .map(|endpoint| {
                Ok(Arc::new(EndpointState {
                    endpoint: endpoint.clone(),
                    stats: Stats::default(),
                    client: client(endpoint, &built_in_roots)?,
                }))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { endpoints, outbox })
    }

    /// Runs one delivery loop per endpoint until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut loops = tokio::task::JoinSet::new();
        for state in &self.endpoints {
            let delivery = self.clone();
            let state = state.clone();
            let shutdown = shutdown.clone();
            loops.spawn(async move { delivery.deliver(&state, shutdown).await });
        }
        while loops.join_next().await.is_some() {}
    }

    async fn deliver(&self, state: &EndpointState, mut shutdown: Shutdown) {
        let endpoint = &state.endpoint;
        let shared = self.outbox.shared().clone();
        let cursor = shared.cursor(&endpoint.name);
        let mut appended = shared.appended.subscribe();
        let mut reader = self.outbox.reader();
        let batch_size = match endpoint.format {
            Format::Docker => endpoint.max_batch,
            Format::CloudEvents => 1,
        };

        let read_max = batch_size * 4;
        while !shutdown.is_triggered() {
            let after = cursor.seq.load(Ordering::Relaxed);
            let events = match read(&mut reader, after, read_max).await {
                Ok(events) => events,
                Err(error) => {
                    tracing::error!(endpoint = %endpoint.name, %error, "notify: cannot read the outbox");
                    if !shutdown.sleep(Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if events.is_empty() {
                // Wait for an append; the timeout covers a missed wake-up.
                tokio::select! {
                    _ = appended.changed() => {
                        // Let the events of concurrent requests gather, so
                        // that one POST carries them.
                        if !shutdown.sleep(LINGER).await {
                            return;
                        }
                    }
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.wait() => return,
                }
                continue;
            }

            // Events this endpoint ignores are skipped, in order, with the
            // ones it receives.
            let last_seq = events.last().map_or(after, |(seq, _)| *seq);
            let received: Vec<&Record> = events
                .iter()
                .map(|(_, record)| record)
                .filter(|record| endpoint.wants(record))
                .collect();
            for batch in received.chunks(batch_size) {
                if !self.send_until_delivered(state, batch, &mut shutdown).await {
                    return;
                }
                state
                    .stats
                    .delivered
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            if let Err(error) = self.outbox.advance(&endpoint.name, last_seq) {
                tracing::error!(endpoint = %endpoint.name, %error, "notify: cannot save the cursor");
            }
            // The read came back short, so it caught up: under a stream of
            // changes the next events would arrive one or two at a time,
            // so gather them first. Ignored events count here, so that an
            // endpoint that ignores most events still keeps up.
            if events.len() < read_max && !shutdown.sleep(LINGER).await {
                return;
            }
        }
    }

    /// Sends one batch until the endpoint accepts it. Returns `false` when
    /// shutdown began first.
    async fn send_until_delivered(
        &self,
        state: &EndpointState,
        batch: &[&Record],
        shutdown: &mut Shutdown,
    ) -> bool {
        let endpoint = &state.endpoint;
        let (body, content_type) = match endpoint.format {
            Format::Docker => (envelope::docker_body(batch), envelope::ENVELOPE_MEDIA_TYPE),
            Format::CloudEvents => (
                envelope::cloudevent_body(batch[0]),
                envelope::CLOUDEVENTS_MEDIA_TYPE,
            ),
        };
        let mut attempt: u32 = 0;
        loop {
            let sent = tokio::select! {
                sent = post(state, &body, content_type) => sent,
                () = shutdown.wait() => return false,
            };
            match sent {
                Ok(()) => {
                    state.stats.retrying.store(0, Ordering::Relaxed);
                    return true;
                }
                Err(error) => {
                    state.stats.failed.fetch_add(1, Ordering::Relaxed);
                    state.stats.retrying.store(1, Ordering::Relaxed);
                    let delay = backoff(endpoint, attempt);
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(
                        endpoint = %endpoint.name,
                        events = batch.len(),
                        first_event_id = %batch[0].id(),
                        attempt,
                        retry_in_ms = delay.as_millis() as u64,
                        %error,
                        "notify: delivery failed; retrying"
                    );
                    if !shutdown.sleep(delay).await {
                        return false;
                    }
                }
            }
        }
    }
}

/// Builds the client of an endpoint. A redirect is a failed attempt:
/// following one would resend the body and headers elsewhere, or turn the
/// POST into a GET. HTTPS certificates may chain to the system's
/// certificates, to the Mozilla roots built in (the container image has no
/// certificate store), or to the endpoint's `ca`.
fn client(
    endpoint: &Endpoint,
    built_in_roots: &[reqwest::Certificate],
) -> Result<reqwest::Client, String> {
    let at = format!("endpoint {:?}", endpoint.name);
    let mut roots = built_in_roots.to_vec();
    roots.extend(
        endpoint
            .ca_certificates()
            .map_err(|error| format!("{at}: {error}"))?,
    );
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("registry-notify/", env!("CARGO_PKG_VERSION")))
        .tls_certs_merge(roots)
        .build()
        .map_err(|e| format!("{at}: cannot build the HTTP client: {e}"))
}

/// Sends one POST to the endpoint of `state`.
async fn post(state: &EndpointState, body: &[u8], content_type: &str) -> Result<(), String> {
    let endpoint = &state.endpoint;
    let mut request = state
        .client
        .post(&endpoint.url)
        .timeout(endpoint.timeout)
        .header(reqwest::header::CONTENT_TYPE, content_type);
    for (name, values) in &endpoint.headers {
        for value in values {
            request = request.header(name.as_str(), value.as_str());
        }
    }
    if let Some(secret) = &endpoint.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, body));
    }
    let url = redacted(&endpoint.url);
    let response = request
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| format!("POST {url} failed: {}", error_chain(&e.without_url())))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {url} returned {status}"))
    }
}

/// Returns `url` with its password, if any, replaced, for logs.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("********"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Returns an error's message followed by those of its sources, so that a
/// timeout or a refused connection is named.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads from the outbox on the task's own thread. The lines were written
/// moments ago, so they are in the page cache, and one read takes at most
/// 256 KiB. A trip to the blocking pool per read cost more than the read.
async fn read(reader: &mut Reader, after: u64, max: usize) -> std::io::Result<Vec<(u64, Record)>> {
    reader.read(after, max)
}

/// Returns `sha256=<hex>`, the HMAC-SHA256 of `body` with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Returns the delay before retry number `attempt` (from 0): a random
/// time between half and all of `backoff * 2^attempt`, capped at `maxbackoff`.
fn backoff(endpoint: &Endpoint, attempt: u32) -> Duration {
    let ceiling = endpoint
        .backoff
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(endpoint.max_backoff);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
}

/// The delivery counters as metrics.
#[derive(Debug)]
pub struct Metrics(pub Arc<Delivery>);

impl Collector for Metrics {
    fn collect(&self) -> Vec<MetricFamily> {
        let delivery = &self.0;
        let shared = delivery.outbox.shared();
        let last = shared.last_seq.load(Ordering::Relaxed);
        let mut families = [
            MetricFamily::new(
                "registry_notify_events_delivered_total",
                "Events that endpoints accepted.",
                MetricKind::Counter,
            ),
            MetricFamily::new(
                "registry_notify_attempts_failed_total",
                "POSTs to endpoints that failed and will be retried.",
                MetricKind::Counter,
            ),
            MetricFamily::new(
                "registry_notify_retrying",
                "1 while the endpoint waits to retry a failed POST.",
                MetricKind::Gauge,
            ),
            MetricFamily::new(
                "registry_notify_events_pending",
                "Events in the outbox that the endpoint has not received or skipped yet.",
                MetricKind::Gauge,
            ),
            MetricFamily::new(
                "registry_notify_events_dropped_total",
                "Events removed by the outbox's disk bound before the endpoint received them.",
                MetricKind::Counter,
            ),
        ];
        for state in &delivery.endpoints {
            let name = state.endpoint.name.as_str();
            let cursor = shared.cursor(name);
            let values = [
                state.stats.delivered.load(Ordering::Relaxed),
                state.stats.failed.load(Ordering::Relaxed),
                state.stats.retrying.load(Ordering::Relaxed),
                last.saturating_sub(cursor.seq.load(Ordering::Relaxed)),
                cursor.dropped.load(Ordering::Relaxed),
            ];
            for (family, value) in families.iter_mut().zip(values) {
                family.samples.push(registry_signals::telemetry::Sample {
                    labels: vec![("endpoint".to_owned(), name.to_owned())],
                    value: value as f64,
                });
            }
        }
        let mut families: Vec<MetricFamily> = families.into();
        families.push(
            MetricFamily::new(
                "registry_notify_outbox_syncs_total",
                "Syncs to disk of the outbox; each covers the events of one or more changes.",
                MetricKind::Counter,
            )
            .sample(&[], shared.syncs.load(Ordering::Relaxed) as f64),
        );
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_known_vector() {
        // RFC 4231, test case 2.
        let signed = signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signed,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
