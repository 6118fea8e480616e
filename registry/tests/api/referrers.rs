//! `GET /v2/<name>/referrers/<digest>` and its `artifactType` filter.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::{OCI_INDEX, OCI_MANIFEST, Registry, Reply, descriptor, sha256};

const SIGNATURE: &str = "application/vnd.example.signature.v1";
const SBOM_CONFIG: &str = "application/vnd.example.sbom.config.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";

/// Pushes an artifact manifest whose subject is `subject` and returns its
/// digest and size.
async fn push_referrer(
    registry: &Registry,
    repo: &str,
    subject: &(String, usize),
    artifact_type: Option<&str>,
    config_media_type: &str,
    annotation: &str,
) -> (String, usize) {
    let config_digest = registry.push_blob(repo, b"{}").await;
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_media_type, &config_digest, 2),
        "layers": [],
        "subject": descriptor(OCI_MANIFEST, &subject.0, subject.1),
        "annotations": { "org.example.note": annotation },
    });
    if let Some(artifact_type) = artifact_type {
        manifest["artifactType"] = json!(artifact_type);
    }
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&bytes);
    let reply = registry
        .put_manifest(repo, &digest, OCI_MANIFEST, &bytes)
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    (digest, bytes.len())
}

/// Pushes an image to refer to and returns its digest and size.
async fn push_subject(registry: &Registry, repo: &str) -> (String, usize) {
    let (digest, bytes) = registry.push_image(repo, "latest", "subject").await;
    (digest, bytes.len())
}

/// Returns the `manifests` of a referrers response, sorted by digest.
fn referrers(reply: &Reply) -> Vec<Value> {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let body = reply.json();
    let mut manifests = body["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests array in {body}"))
        .clone();
    manifests.sort_by_key(|m| m["digest"].as_str().unwrap_or_default().to_owned());
    manifests
}

fn sorted(mut descriptors: Vec<Value>) -> Vec<Value> {
    descriptors.sort_by_key(|m| m["digest"].as_str().unwrap_or_default().to_owned());
    descriptors
}

#[tokio::test]
async fn referrers_lists_descriptors() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    let signature = push_referrer(
        &registry,
        "a",
        &subject,
        Some(SIGNATURE),
        EMPTY_CONFIG,
        "signed",
    )
    .await;
    let sbom = push_referrer(&registry, "a", &subject, None, SBOM_CONFIG, "sbom").await;

    let reply = registry
        .get(&format!("/v2/a/referrers/{}", subject.0))
        .await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some(OCI_INDEX));
    assert_eq!(reply.header("oci-filters-applied"), None);
    let body = reply.json();
    assert_eq!(body["schemaVersion"], json!(2));
    assert_eq!(body["mediaType"], json!(OCI_INDEX));
    let expected = sorted(vec![
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": signature.0,
            "size": signature.1,
            "artifactType": SIGNATURE,
            "annotations": { "org.example.note": "signed" },
        }),
        // Without artifactType, the config's media type is listed instead.
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": sbom.0,
            "size": sbom.1,
            "artifactType": SBOM_CONFIG,
            "annotations": { "org.example.note": "sbom" },
        }),
    ]);
    assert_eq!(referrers(&reply), expected);
}

#[tokio::test]
async fn index_referrer_is_listed() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [],
        "subject": descriptor(OCI_MANIFEST, &subject.0, subject.1),
    }))
    .unwrap();
    let digest = sha256(&index);
    registry.put_manifest("a", &digest, OCI_INDEX, &index).await;

    let reply = registry
        .get(&format!("/v2/a/referrers/{}", subject.0))
        .await;

    let expected = vec![json!({
        "mediaType": OCI_INDEX,
        "digest": digest,
        "size": index.len(),
        "artifactType": "application/vnd.example.bundle",
    })];
    assert_eq!(referrers(&reply), expected);
}

#[tokio::test]
async fn artifact_type_filter_is_applied() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    let signature = push_referrer(
        &registry,
        "a",
        &subject,
        Some(SIGNATURE),
        EMPTY_CONFIG,
        "signed",
    )
    .await;
    push_referrer(&registry, "a", &subject, None, SBOM_CONFIG, "sbom").await;

    let reply = registry
        .get(&format!(
            "/v2/a/referrers/{}?artifactType={SIGNATURE}",
            subject.0
        ))
        .await;

    assert_eq!(reply.header("oci-filters-applied"), Some("artifactType"));
    let listed = referrers(&reply);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], json!(signature.0));
}

#[tokio::test]
async fn filter_without_match_is_empty() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    push_referrer(
        &registry,
        "a",
        &subject,
        Some(SIGNATURE),
        EMPTY_CONFIG,
        "signed",
    )
    .await;

    let reply = registry
        .get(&format!(
            "/v2/a/referrers/{}?artifactType=application/vnd.example.none",
            subject.0
        ))
        .await;

    assert_eq!(reply.header("oci-filters-applied"), Some("artifactType"));
    assert_eq!(referrers(&reply), Vec::<Value>::new());
}

#[tokio::test]
async fn referrers_of_unknown_subject_are_empty() {
    let registry = Registry::new();
    push_subject(&registry, "a").await;
    let unknown = sha256(b"no such subject");

    let known_repo = registry.get(&format!("/v2/a/referrers/{unknown}")).await;
    let unknown_repo = registry
        .get(&format!("/v2/missing/referrers/{unknown}"))
        .await;

    assert_eq!(known_repo.header("content-type"), Some(OCI_INDEX));
    assert_eq!(referrers(&known_repo), Vec::<Value>::new());
    assert_eq!(unknown_repo.header("content-type"), Some(OCI_INDEX));
    assert_eq!(referrers(&unknown_repo), Vec::<Value>::new());
}

#[tokio::test]
async fn referrers_with_invalid_digest_is_rejected() {
    let registry = Registry::new();

    for digest in [
        "sha256:zz",
        "latest",
        "md5:5d41402abc4b2a76b9719d911017c592",
    ] {
        let reply = registry.get(&format!("/v2/a/referrers/{digest}")).await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{digest}");
        assert_eq!(reply.error_code(), "DIGEST_INVALID", "{digest}");
    }
}

#[tokio::test]
async fn deleted_referrer_is_unlisted() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    let signature = push_referrer(
        &registry,
        "a",
        &subject,
        Some(SIGNATURE),
        EMPTY_CONFIG,
        "signed",
    )
    .await;
    let sbom = push_referrer(&registry, "a", &subject, None, SBOM_CONFIG, "sbom").await;

    let deleted = registry
        .delete(&format!("/v2/a/manifests/{}", signature.0))
        .await;
    let reply = registry
        .get(&format!("/v2/a/referrers/{}", subject.0))
        .await;

    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    let listed = referrers(&reply);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["digest"], json!(sbom.0));
}

#[tokio::test]
async fn referrers_are_per_repository() {
    let registry = Registry::new();
    let subject = push_subject(&registry, "a").await;
    push_subject(&registry, "b").await;
    push_referrer(
        &registry,
        "a",
        &subject,
        Some(SIGNATURE),
        EMPTY_CONFIG,
        "signed",
    )
    .await;

    let reply = registry
        .get(&format!("/v2/b/referrers/{}", subject.0))
        .await;

    assert_eq!(referrers(&reply), Vec::<Value>::new());
}
