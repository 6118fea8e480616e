//! Signals and guards, with test-only extensions that this file links into
//! its own test binary (never into the shipped registry): `recorder` keeps
//! every event, `panicky` panics on each tag, `gatekeeper` rejects pushes of
//! the tag `forbidden`, `slowpoke` blocks its worker to fill its queue,
//! `courier` hands manifest pushes off inside the request.
//!
//! The registry runs in process through its router, so the tests can read
//! the dispatcher's counters. Every test uses repositories of its own, and
//! reads only their events, because the test extensions are shared by all
//! tests of this binary.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use registry::api::{self, ApiSettings, AppState};
use registry::extensions::{self, Dispatcher};
use registry::storage::FsStorage;
use registry_signals::{
    Event, ExtensionConfig, ManifestCandidate, NoConfig, Receipt, Rejection, Signal, TagCreated,
};
use serde::Deserialize;
use sha2::Digest as _;
use tower::ServiceExt;

// ---- test-only extensions ------------------------------------------------

/// Events seen by `recorder`, with the label from its configuration.
static RECORDED: Mutex<Vec<(String, Signal)>> = Mutex::new(Vec::new());

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RecorderConfig {
    label: String,
}
impl ExtensionConfig for RecorderConfig {}

registry_signals::extension!(name: "recorder", config: RecorderConfig, enabled_by_default: false);

fn record(event: &Event, config: &RecorderConfig) {
    RECORDED
        .lock()
        .unwrap()
        .push((config.label.clone(), event.signal.clone()));
}

macro_rules! recorder_for {
    ($($fn_name:ident: $payload:ident),* $(,)?) => {
        $(
            fn $fn_name(event: &Event, _payload: &registry_signals::$payload, config: &RecorderConfig) {
                record(event, config);
            }
            registry_signals::receiver!("recorder", $fn_name);
        )*
    };
}

recorder_for!(
    record_repository_created: RepositoryCreated,
    record_repository_updated: RepositoryUpdated,
    record_repository_deleted: RepositoryDeleted,
    record_tag_created: TagCreated,
    record_tag_deleted: TagDeleted,
    record_manifest_pushed: ManifestPushed,
    record_manifest_deleted: ManifestDeleted,
    record_blob_pushed: BlobPushed,
    record_blob_mounted: BlobMounted,
    record_blob_deleted: BlobDeleted,
    record_manifest_pulled: ManifestPulled,
    record_blob_pulled: BlobPulled,
);

registry_signals::extension!(name: "panicky", config: NoConfig, enabled_by_default: false);

fn panic_on_tag(_event: &Event, tag: &TagCreated, _config: &NoConfig) {
    panic!("panicky receiver refuses tag {}", tag.tag);
}
registry_signals::receiver!("panicky", panic_on_tag);

registry_signals::extension!(name: "gatekeeper", config: NoConfig, enabled_by_default: false);

fn reject_forbidden(
    candidate: &ManifestCandidate<'_>,
    _config: &NoConfig,
) -> Result<(), Rejection> {
    match candidate.tag {
        Some("forbidden") => Err(Rejection::new("the tag forbidden is reserved")),
        Some("explode") => panic!("gatekeeper cannot decide"),
        _ => Ok(()),
    }
}
registry_signals::guard!("gatekeeper", reject_forbidden);

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct SlowpokeConfig {
    delay_ms: u64,
}
impl ExtensionConfig for SlowpokeConfig {}

registry_signals::extension!(name: "slowpoke", config: SlowpokeConfig, enabled_by_default: false);

fn dawdle(_event: &Event, _blob: &registry_signals::BlobPushed, config: &SlowpokeConfig) {
    std::thread::sleep(Duration::from_millis(config.delay_ms));
}
registry_signals::receiver!("slowpoke", dawdle);

/// Manifest pushes handed off to `courier`, by repository and tag.
static HANDED_OFF: Mutex<Vec<(String, Option<String>)>> = Mutex::new(Vec::new());

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct CourierConfig {
    stall_ms: u64,
}
impl ExtensionConfig for CourierConfig {}

registry_signals::extension!(name: "courier", config: CourierConfig, enabled_by_default: false);

/// Records the push; fails for the tag `fail`, and stalls for the tag
/// `stall`.
fn hand_off_push(
    _event: &Event,
    pushed: &registry_signals::ManifestPushed,
    config: &CourierConfig,
) -> Result<Receipt, String> {
    match pushed.tag.as_deref() {
        Some("fail") => return Err("courier cannot store this event".to_owned()),
        // A hand-off must not block, so a stall is a receipt that waits.
        Some("stall") => {
            let stall = Duration::from_millis(config.stall_ms);
            return Ok(Receipt::wait_for(async move {
                tokio::time::sleep(stall).await;
                Ok(())
            }));
        }
        // The receipt fails, as a sync to disk that fails after the
        // record was queued.
        Some("fail-later") => {
            return Ok(Receipt::wait_for(async {
                Err("courier lost the event".to_owned())
            }));
        }
        _ => {}
    }
    let entry = (pushed.repository.clone(), pushed.tag.clone());
    Ok(Receipt::wait_for(async move {
        HANDED_OFF.lock().unwrap().push(entry);
        Ok(())
    }))
}
registry_signals::handoff!("courier", hand_off_push);

// ---- harness ---------------------------------------------------------------

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A registry in process with the extensions that `yaml` enables.
struct Harness {
    app: Router,
    dispatcher: Arc<Dispatcher>,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new(yaml: &str) -> Self {
        Self::with_env(yaml, &BTreeMap::new())
    }

    fn with_env(yaml: &str, env: &BTreeMap<String, String>) -> Self {
        let config = registry_config::load(Some(yaml), env).expect("test configuration loads");
        let linked = extensions::load(&config).expect("extensions load");
        let dispatcher = Arc::new(Dispatcher::start(&linked, &config.settings.signals));

        let dir = tempfile::TempDir::new().unwrap();
        let storage = FsStorage::open(dir.path().join("root")).unwrap();
        let settings = ApiSettings {
            delete_enabled: true,
            manifest_max_bytes: 4 << 20,
            idle_timeout: Duration::from_secs(30),
            max_uploads: 64,
            access_log: false,
            request_timeout: Duration::from_secs(60),
        };
        let state = AppState::new(Arc::new(storage), settings, dispatcher.clone());
        Self {
            app: api::router(state),
            dispatcher,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, bytes.to_vec())
    }

    /// Pushes a blob and returns its digest.
    async fn push_blob(&self, repo: &str, content: &[u8]) -> String {
        let digest = sha256(content);
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let (status, body) = self.send(Method::POST, &uri, None, content.to_vec()).await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "blob push: {}",
            String::from_utf8_lossy(&body)
        );
        digest
    }

    /// Pushes an image manifest whose config is `config`, and returns its
    /// digest and the status of the manifest PUT.
    async fn push_image(&self, repo: &str, reference: &str, config: &[u8]) -> (String, StatusCode) {
        let config_digest = self.push_blob(repo, config).await;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [],
        });
        let bytes = serde_json::to_vec(&manifest).unwrap();
        let digest = sha256(&bytes);
        let uri = format!("/v2/{repo}/manifests/{reference}");
        let (status, _) = self
            .send(Method::PUT, &uri, Some(OCI_MANIFEST), bytes)
            .await;
        (digest, status)
    }

    /// Waits until every worker has emptied its queue.
    async fn settle(&self) {
        for _ in 0..500 {
            let busy = self
                .dispatcher
                .stats()
                .iter()
                .any(|(_, stats)| stats.queued.load(Ordering::SeqCst) > 0);
            if !busy {
                // The worker decrements `queued` before it calls the
                // receivers; give the last call time to finish.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("extension queues did not drain within 5 seconds");
    }

    fn stats(&self, extension: &str) -> Arc<registry::extensions::ExtensionStats> {
        self.dispatcher
            .stats()
            .into_iter()
            .find(|(name, _)| *name == extension)
            .map(|(_, stats)| stats)
            .unwrap_or_else(|| panic!("extension {extension} has no worker"))
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The recorded events of one repository, as `signal_name` strings.
fn recorded_names(repo: &str) -> Vec<String> {
    recorded(repo)
        .iter()
        .map(|(_, signal)| signal.kind().name().to_owned())
        .collect()
}

fn recorded(repo: &str) -> Vec<(String, Signal)> {
    RECORDED
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, signal)| signal.repository() == repo)
        .cloned()
        .collect()
}

const RECORDER_ONLY: &str = "extensions:\n  recorder:\n    enabled: true\n";

// ---- tests -------------------------------------------------------------------

#[tokio::test]
async fn first_push_fires_state_and_action_signals() {
    let harness = Harness::new(RECORDER_ONLY);
    let (digest, status) = harness.push_image("sig/first", "v1", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    harness.settle().await;

    assert_eq!(
        recorded_names("sig/first"),
        [
            "blob_pushed",
            "repository_created",
            "manifest_pushed",
            "tag_created"
        ]
    );
    let events = recorded("sig/first");
    let Signal::TagCreated(tag) = &events[3].1 else {
        panic!("fourth event is not tag_created");
    };
    assert_eq!(tag.digest, digest);
    assert_eq!(tag.previous_digest, None);
}

#[tokio::test]
async fn repeated_push_creates_no_tag() {
    let harness = Harness::new(RECORDER_ONLY);
    harness.push_image("sig/repeat", "v1", b"{}").await;
    harness.settle().await;
    let before = recorded_names("sig/repeat").len();

    let (_, status) = harness.push_image("sig/repeat", "v1", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    harness.settle().await;

    let after = recorded_names("sig/repeat");
    assert_eq!(after[before..], ["blob_pushed", "manifest_pushed"]);
}

#[tokio::test]
async fn moved_tag_carries_previous_digest() {
    let harness = Harness::new(RECORDER_ONLY);
    let (first, _) = harness.push_image("sig/move", "v1", b"{\"a\":1}").await;
    let (second, _) = harness.push_image("sig/move", "v1", b"{\"a\":2}").await;
    harness.settle().await;

    let moves: Vec<TagCreated> = recorded("sig/move")
        .into_iter()
        .filter_map(|(_, signal)| match signal {
            Signal::TagCreated(tag) => Some(tag),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 2);
    assert_eq!(moves[1].digest, second);
    assert_eq!(moves[1].previous_digest.as_deref(), Some(first.as_str()));
    assert!(recorded_names("sig/move").contains(&"repository_updated".to_owned()));
}

#[tokio::test]
async fn manifest_delete_fires_tag_and_repository_deletes() {
    let harness = Harness::new(RECORDER_ONLY);
    let (digest, _) = harness.push_image("sig/delete", "a", b"{}").await;
    let uri = format!("/v2/sig/delete/manifests/{digest}?tag=b");
    let manifest_uri = format!("/v2/sig/delete/manifests/{digest}");
    let (status, bytes) = harness
        .send(Method::GET, &manifest_uri, None, Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = harness
        .send(Method::PUT, &uri, Some(OCI_MANIFEST), bytes)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    harness.settle().await;
    let before = recorded_names("sig/delete").len();

    let (status, _) = harness
        .send(Method::DELETE, &manifest_uri, None, Vec::new())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    harness.settle().await;

    let names = recorded_names("sig/delete");
    assert_eq!(
        names[before..],
        [
            "manifest_deleted",
            "tag_deleted",
            "tag_deleted",
            "repository_deleted"
        ]
    );
}

#[tokio::test]
async fn failed_requests_fire_nothing() {
    let harness = Harness::new(RECORDER_ONLY);

    // A manifest whose config blob is missing, a blob with a wrong digest,
    // and a delete of a manifest that does not exist.
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(b"missing"), "size": 7},
        "layers": [],
    });
    let (status, _) = harness
        .send(
            Method::PUT,
            "/v2/sig/failed/manifests/v1",
            Some(OCI_MANIFEST),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let uri = format!("/v2/sig/failed/blobs/uploads/?digest={}", sha256(b"other"));
    let (status, _) = harness
        .send(Method::POST, &uri, None, b"content".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let uri = format!("/v2/sig/failed/manifests/{}", sha256(b"none"));
    let (status, _) = harness.send(Method::DELETE, &uri, None, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    harness.settle().await;

    assert!(recorded_names("sig/failed").is_empty());
}

#[tokio::test]
async fn pulls_fire_on_get_not_head() {
    let harness = Harness::new(RECORDER_ONLY);
    let (digest, _) = harness.push_image("sig/pull", "v1", b"{}").await;
    harness.settle().await;
    let before = recorded_names("sig/pull").len();

    harness
        .send(Method::HEAD, "/v2/sig/pull/manifests/v1", None, Vec::new())
        .await;
    let (status, _) = harness
        .send(Method::GET, "/v2/sig/pull/manifests/v1", None, Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK);
    let blob = format!("/v2/sig/pull/blobs/{}", sha256(b"{}"));
    harness.send(Method::HEAD, &blob, None, Vec::new()).await;
    let (status, _) = harness.send(Method::GET, &blob, None, Vec::new()).await;
    assert_eq!(status, StatusCode::OK);
    harness.settle().await;

    let events = recorded("sig/pull");
    let names: Vec<&str> = events[before..]
        .iter()
        .map(|(_, s)| s.kind().name())
        .collect();
    assert_eq!(names, ["manifest_pulled", "blob_pulled"]);
    let Signal::ManifestPulled(pulled) = &events[before].1 else {
        panic!("first pull event is not manifest_pulled");
    };
    assert_eq!(pulled.digest, digest);
    assert_eq!(pulled.tag.as_deref(), Some("v1"));
}

#[tokio::test]
async fn receiver_panic_is_isolated_and_counted() {
    let harness = Harness::new(
        "extensions:\n  recorder:\n    enabled: true\n  panicky:\n    enabled: true\n",
    );
    let (_, status) = harness.push_image("sig/panic", "v1", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, status) = harness.push_image("sig/panic", "v2", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    harness.settle().await;

    assert_eq!(harness.stats("panicky").panics.load(Ordering::SeqCst), 2);
    assert_eq!(harness.stats("panicky").delivered.load(Ordering::SeqCst), 2);
    let tags = recorded_names("sig/panic")
        .into_iter()
        .filter(|name| name == "tag_created")
        .count();
    assert_eq!(tags, 2, "the recorder still receives every tag");
}

#[tokio::test]
async fn guard_rejection_is_denied_and_stores_nothing() {
    let harness = Harness::new(
        "extensions:\n  recorder:\n    enabled: true\n  gatekeeper:\n    enabled: true\n",
    );
    let (digest, status) = harness.push_image("sig/guarded", "forbidden", b"{}").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = harness
        .send(
            Method::PUT,
            "/v2/sig/guarded/manifests/forbidden",
            Some(OCI_MANIFEST),
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an invalid manifest fails before guards run"
    );
    assert!(String::from_utf8_lossy(&body).contains("MANIFEST_INVALID"));

    let uri = format!("/v2/sig/guarded/manifests/{digest}");
    let (status, _) = harness.send(Method::GET, &uri, None, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = harness
        .send(Method::GET, "/v2/sig/guarded/tags/list", None, Vec::new())
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    harness.settle().await;

    assert_eq!(recorded_names("sig/guarded"), ["blob_pushed"]);
}

#[tokio::test]
async fn guard_rejection_reason_reaches_client() {
    let harness = Harness::new("extensions:\n  gatekeeper:\n    enabled: true\n");
    let config = harness.push_blob("sig/reason", b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
    });
    let (status, body) = harness
        .send(
            Method::PUT,
            "/v2/sig/reason/manifests/forbidden",
            Some(OCI_MANIFEST),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("gatekeeper"), "{message}");
    assert!(
        message.contains("the tag forbidden is reserved"),
        "{message}"
    );
}

#[tokio::test]
async fn panicking_guard_rejects_push() {
    let harness = Harness::new("extensions:\n  gatekeeper:\n    enabled: true\n");
    let (_, status) = harness.push_image("sig/explode", "explode", b"{}").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, status) = harness.push_image("sig/explode", "fine", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn disabled_extension_receives_nothing() {
    let harness = Harness::new("extensions:\n  recorder:\n    enabled: false\n");
    harness.push_image("sig/disabled", "v1", b"{}").await;
    harness.settle().await;
    assert!(recorded_names("sig/disabled").is_empty());
    let workers: Vec<&str> = harness
        .dispatcher
        .stats()
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert!(!workers.contains(&"recorder"), "workers: {workers:?}");
}

#[tokio::test]
async fn concurrent_tag_moves_arrive_in_order() {
    let harness = Arc::new(Harness::new(RECORDER_ONLY));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let harness = harness.clone();
        tasks.push(tokio::spawn(async move {
            let config = format!("{{\"n\":{i}}}");
            let (_, status) = harness
                .push_image("sig/order", "moving", config.as_bytes())
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    harness.settle().await;

    // Each move names the digest the tag had before; in commit order every
    // event's previous digest is the digest of the event before it.
    let moves: Vec<TagCreated> = recorded("sig/order")
        .into_iter()
        .filter_map(|(_, signal)| match signal {
            Signal::TagCreated(tag) => Some(tag),
            _ => None,
        })
        .collect();
    assert_eq!(moves.len(), 24);
    assert_eq!(moves[0].previous_digest, None);
    for pair in moves.windows(2) {
        assert_eq!(
            pair[1].previous_digest.as_deref(),
            Some(pair[0].digest.as_str())
        );
    }
}

#[tokio::test]
async fn full_queue_drops_and_counts() {
    let harness = Harness::new(
        "signals:\n  queuesize: 1\nextensions:\n  slowpoke:\n    enabled: true\n    delay_ms: 200\n",
    );
    let pushes = 6;
    for i in 0..pushes {
        harness
            .push_blob("sig/overflow", format!("blob {i}").as_bytes())
            .await;
    }
    // Wait for the worker: at most two events fit (one in the receiver and
    // one in the queue), so this takes about 400 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;

    let stats = harness.stats("slowpoke");
    let delivered = stats.delivered.load(Ordering::SeqCst);
    let dropped = stats.dropped.load(Ordering::SeqCst);
    assert!(dropped >= 1, "no event was dropped");
    assert_eq!(
        delivered + dropped,
        pushes,
        "every event is either delivered or counted as dropped"
    );
}

#[tokio::test]
async fn env_value_reaches_extension_config() {
    let env = BTreeMap::from([("RECORDER_LABEL".to_owned(), "from-env".to_owned())]);
    let harness = Harness::with_env(
        "extensions:\n  recorder:\n    enabled: true\n    label: _env:RECORDER_LABEL:unset\n",
        &env,
    );
    harness.push_blob("sig/env", b"labelled").await;
    harness.settle().await;

    let labels: Vec<String> = recorded("sig/env")
        .into_iter()
        .map(|(label, _)| label)
        .collect();
    assert_eq!(labels, ["from-env"]);
}

#[tokio::test]
async fn env_default_reaches_extension_config() {
    let harness = Harness::new(
        "extensions:\n  recorder:\n    enabled: true\n    label: _env:RECORDER_LABEL_UNSET:fallback:with:colons\n",
    );
    harness.push_blob("sig/envdefault", b"labelled").await;
    harness.settle().await;

    let labels: Vec<String> = recorded("sig/envdefault")
        .into_iter()
        .map(|(label, _)| label)
        .collect();
    assert_eq!(labels, ["fallback:with:colons"]);
}

fn handed_off(repo: &str) -> Vec<Option<String>> {
    HANDED_OFF
        .lock()
        .unwrap()
        .iter()
        .filter(|(repository, _)| repository == repo)
        .map(|(_, tag)| tag.clone())
        .collect()
}

/// Returns the failed hand-offs of `extension` from the dispatcher's
/// metrics.
fn handoff_failures(harness: &Harness, extension: &str) -> f64 {
    harness
        .dispatcher
        .metrics()
        .into_iter()
        .find(|family| family.name == "registry_extension_handoff_failures_total")
        .and_then(|family| {
            family
                .samples
                .into_iter()
                .find(|sample| sample.labels[0].1 == extension)
        })
        .map_or(0.0, |sample| sample.value)
}

#[tokio::test]
async fn handoff_runs_before_the_response() {
    let harness = Harness::new("extensions:\n  courier:\n    enabled: true\n");
    let (_, status) = harness.push_image("sig/handoff", "v1", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    // No waiting: the hand-off finished before the response was built.
    assert_eq!(handed_off("sig/handoff"), [Some("v1".to_owned())]);
}

#[tokio::test]
async fn failed_handoff_keeps_push_and_counts() {
    let harness = Harness::new(
        "extensions:\n  courier:\n    enabled: true\n  recorder:\n    enabled: true\n",
    );
    let (_, status) = harness.push_image("sig/handoff-fail", "fail", b"{}").await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(handed_off("sig/handoff-fail").is_empty());
    assert_eq!(handoff_failures(&harness, "courier"), 1.0);
    let (_, status) = harness
        .push_image("sig/handoff-fail", "fail-later", b"{}")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(handoff_failures(&harness, "courier"), 2.0);
    // Receivers still get the event.
    harness.settle().await;
    assert!(recorded_names("sig/handoff-fail").contains(&"manifest_pushed".to_owned()));
}

#[tokio::test]
async fn stalled_handoff_times_out_and_counts() {
    let harness = Harness::new(
        "signals:\n  handofftimeout: 100ms\nextensions:\n  courier:\n    enabled: true\n    stall_ms: 2000\n",
    );
    let started = std::time::Instant::now();
    let (_, status) = harness
        .push_image("sig/handoff-stall", "stall", b"{}")
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the push waited {:?} for a stalled hand-off",
        started.elapsed()
    );
    assert_eq!(handoff_failures(&harness, "courier"), 1.0);
}

#[test]
fn unknown_extension_section_names_feature() {
    let config =
        registry_config::load(Some("extensions:\n  nosuch: {}\n"), &BTreeMap::new()).unwrap();
    let error = extensions::load(&config).unwrap_err().to_string();
    assert!(error.contains("--features ext-nosuch"), "{error}");
}

#[test]
fn misspelled_extension_key_names_path() {
    let config = registry_config::load(
        Some("extensions:\n  recorder:\n    enabled: true\n    lable: x\n"),
        &BTreeMap::new(),
    )
    .unwrap();
    let error = extensions::load(&config).unwrap_err().to_string();
    assert!(error.contains("extensions.recorder.lable"), "{error}");
}

#[test]
fn foo_is_linked_only_with_its_feature() {
    let foo_extension = registry_signals::extensions().any(|e| e.name == "foo");
    let foo_receivers = registry_signals::receivers().any(|r| r.extension == "foo");
    assert_eq!(foo_extension, cfg!(feature = "ext-foo"));
    assert_eq!(foo_receivers, cfg!(feature = "ext-foo"));
}

#[test]
fn shipped_extensions_are_linked_only_with_their_features() {
    let linked = |name: &str| registry_signals::extensions().any(|e| e.name == name);
    assert_eq!(linked("notify"), cfg!(feature = "ext-notify"));
    assert_eq!(linked("search"), cfg!(feature = "ext-search"));
    assert_eq!(linked("metrics"), cfg!(feature = "ext-metrics"));
    // Each brings more than its declaration.
    let handoffs = registry_signals::handoffs().any(|h| h.extension == "notify");
    let search_routes = registry_signals::routes().any(|r| r.extension == "search");
    let observers = registry_signals::observers().any(|o| o.extension == "metrics");
    assert_eq!(handoffs, cfg!(feature = "ext-notify"));
    assert_eq!(search_routes, cfg!(feature = "ext-search"));
    assert_eq!(observers, cfg!(feature = "ext-metrics"));
}

#[tokio::test]
async fn abandoned_push_completes_and_fires() {
    let harness = Harness::new(RECORDER_ONLY);
    let config = harness.push_blob("sig/abandoned", b"{}").await;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [],
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/v2/sig/abandoned/manifests/v1")
        .header(header::CONTENT_TYPE, OCI_MANIFEST)
        .body(Body::from(bytes))
        .unwrap();

    // The client gives up as soon as the request has started, as one that
    // disconnects would; the push must still finish and fire its signals.
    let started = harness.app.clone().oneshot(request);
    let _ = tokio::time::timeout(Duration::from_micros(1), started).await;

    for _ in 0..200 {
        let (status, _) = harness
            .send(
                Method::GET,
                "/v2/sig/abandoned/manifests/v1",
                None,
                Vec::new(),
            )
            .await;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.settle().await;
    let names = recorded_names("sig/abandoned");
    assert!(
        names.contains(&"tag_created".to_owned()),
        "recorded: {names:?}"
    );
    assert!(
        names.contains(&"manifest_pushed".to_owned()),
        "recorded: {names:?}"
    );
}
