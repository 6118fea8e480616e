//! `GET`, `HEAD`, `PUT` and `DELETE /v2/<name>/manifests/<reference>` for
//! every manifest type the registry stores.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use serde_json::json;

use crate::support::{
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_CONFIG, OCI_INDEX,
    OCI_MANIFEST, Registry, Reply, descriptor, image_manifest, index_manifest, request, sha256,
    sha512,
};

/// Pushes the config and layer of a Docker schema 2 image and returns its
/// manifest.
async fn docker_image(registry: &Registry, repo: &str, seed: &str) -> Vec<u8> {
    let config = format!("{{\"docker\":\"{seed}\"}}");
    let layer = format!("docker layer of {seed}");
    let config_digest = registry.push_blob(repo, config.as_bytes()).await;
    let layer_digest = registry.push_blob(repo, layer.as_bytes()).await;
    image_manifest(
        DOCKER_MANIFEST,
        descriptor(DOCKER_CONFIG, &config_digest, config.len()),
        &[descriptor(DOCKER_LAYER, &layer_digest, layer.len())],
    )
}

async fn get_with_accept(registry: &Registry, uri: &str, accept: &str) -> Reply {
    let request = request(Method::GET, uri)
        .header(header::ACCEPT, accept)
        .body(Body::empty())
        .unwrap();
    registry.send(request).await
}

/// Checks that a GET returned `bytes` under `media_type` with matching
/// headers.
fn assert_served(reply: &Reply, media_type: &str, bytes: &[u8]) {
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(&reply.body[..], bytes);
    assert_eq!(reply.header("content-type"), Some(media_type));
    let digest = sha256(bytes);
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    let length = bytes.len().to_string();
    assert_eq!(reply.header("content-length"), Some(length.as_str()));
}

#[tokio::test]
async fn put_by_tag_is_created() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let digest = sha256(&manifest);

    let reply = registry
        .put_manifest("a", "latest", OCI_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::CREATED);
    let location = format!("/v2/a/manifests/{digest}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.header("oci-subject"), None);
}

#[tokio::test]
async fn put_by_digest_is_created() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let digest = sha256(&manifest);

    let reply = registry
        .put_manifest("a", &digest, OCI_MANIFEST, &manifest)
        .await;
    let served = registry.get(&format!("/v2/a/manifests/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_served(&served, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn put_by_sha512_digest_is_served() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let digest = sha512(&manifest);

    let reply = registry
        .put_manifest("a", &digest, OCI_MANIFEST, &manifest)
        .await;
    let served = registry.get(&format!("/v2/a/manifests/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(&served.body[..], &manifest[..]);
    assert_eq!(
        served.header("docker-content-digest"),
        Some(digest.as_str())
    );
}

#[tokio::test]
async fn get_by_tag_returns_exact_bytes() {
    let registry = Registry::new();
    let (_, manifest) = registry.push_image("a", "latest", "one").await;

    let reply = registry.get("/v2/a/manifests/latest").await;

    assert_served(&reply, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn get_by_digest_returns_exact_bytes() {
    let registry = Registry::new();
    let (digest, manifest) = registry.push_image("a", "latest", "one").await;

    let reply = registry.get(&format!("/v2/a/manifests/{digest}")).await;

    assert_served(&reply, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn head_returns_headers_without_body() {
    let registry = Registry::new();
    let (digest, manifest) = registry.push_image("a", "latest", "one").await;
    let length = manifest.len().to_string();

    for reference in ["latest", digest.as_str()] {
        let reply = registry.head(&format!("/v2/a/manifests/{reference}")).await;

        assert_eq!(reply.status, StatusCode::OK, "{reference}");
        assert!(reply.body.is_empty(), "{reference}");
        assert_eq!(
            reply.header("content-type"),
            Some(OCI_MANIFEST),
            "{reference}"
        );
        assert_eq!(
            reply.header("docker-content-digest"),
            Some(digest.as_str()),
            "{reference}"
        );
        assert_eq!(
            reply.header("content-length"),
            Some(length.as_str()),
            "{reference}"
        );
    }
}

#[tokio::test]
async fn oci_index_is_stored() {
    let registry = Registry::new();
    let (child, child_bytes) = registry.push_image("a", "child", "one").await;
    let index = index_manifest(
        OCI_INDEX,
        &[descriptor(OCI_MANIFEST, &child, child_bytes.len())],
    );

    let by_tag = registry.put_manifest("a", "multi", OCI_INDEX, &index).await;
    let by_digest = registry
        .put_manifest("a", &sha256(&index), OCI_INDEX, &index)
        .await;
    let served = registry.get("/v2/a/manifests/multi").await;

    assert_eq!(by_tag.status, StatusCode::CREATED);
    assert_eq!(by_digest.status, StatusCode::CREATED);
    assert_served(&served, OCI_INDEX, &index);
}

#[tokio::test]
async fn docker_manifest_is_stored() {
    let registry = Registry::new();
    let manifest = docker_image(&registry, "a", "one").await;

    let by_tag = registry
        .put_manifest("a", "latest", DOCKER_MANIFEST, &manifest)
        .await;
    let by_digest = registry
        .put_manifest("a", &sha256(&manifest), DOCKER_MANIFEST, &manifest)
        .await;
    let served = registry.get("/v2/a/manifests/latest").await;

    assert_eq!(by_tag.status, StatusCode::CREATED);
    assert_eq!(by_digest.status, StatusCode::CREATED);
    assert_served(&served, DOCKER_MANIFEST, &manifest);
}

#[tokio::test]
async fn docker_manifest_list_is_stored() {
    let registry = Registry::new();
    let child = docker_image(&registry, "a", "one").await;
    let child_digest = sha256(&child);
    registry
        .put_manifest("a", &child_digest, DOCKER_MANIFEST, &child)
        .await;
    let list = index_manifest(
        DOCKER_MANIFEST_LIST,
        &[descriptor(DOCKER_MANIFEST, &child_digest, child.len())],
    );

    let by_tag = registry
        .put_manifest("a", "latest", DOCKER_MANIFEST_LIST, &list)
        .await;
    let by_digest = registry
        .put_manifest("a", &sha256(&list), DOCKER_MANIFEST_LIST, &list)
        .await;
    let served = registry.get("/v2/a/manifests/latest").await;

    assert_eq!(by_tag.status, StatusCode::CREATED);
    assert_eq!(by_digest.status, StatusCode::CREATED);
    assert_served(&served, DOCKER_MANIFEST_LIST, &list);
}

#[tokio::test]
async fn artifact_with_unknown_config_is_stored() {
    let registry = Registry::new();
    let config = b"{\"tool\":\"example\"}";
    let config_digest = registry.push_blob("a", config).await;
    let manifest = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.report.v1",
        "config": descriptor("application/vnd.example.config.v1+json", &config_digest, config.len()),
        "layers": [],
    }))
    .unwrap();

    let by_tag = registry
        .put_manifest("a", "report", OCI_MANIFEST, &manifest)
        .await;
    let by_digest = registry
        .put_manifest("a", &sha256(&manifest), OCI_MANIFEST, &manifest)
        .await;
    let served = registry.get("/v2/a/manifests/report").await;

    assert_eq!(by_tag.status, StatusCode::CREATED);
    assert_eq!(by_digest.status, StatusCode::CREATED);
    assert_served(&served, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn unknown_manifest_type_is_stored() {
    let registry = Registry::new();
    let media_type = "application/vnd.example.custom.v1+json";
    let manifest = br#"{"artifactType":"application/vnd.example.thing","data":[1,2,3]}"#;

    let reply = registry
        .put_manifest("a", "custom", media_type, manifest)
        .await;
    let served = registry.get("/v2/a/manifests/custom").await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_served(&served, media_type, manifest);
}

#[tokio::test]
async fn media_type_from_body_without_content_type() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;

    let request = request(Method::PUT, "/v2/a/manifests/latest")
        .body(Body::from(manifest.clone()))
        .unwrap();
    let reply = registry.send(request).await;
    let served = registry.get("/v2/a/manifests/latest").await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_served(&served, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn missing_blob_is_manifest_blob_unknown() {
    let registry = Registry::new();
    let config_digest = registry.push_blob("a", b"{}").await;
    let manifest = image_manifest(
        OCI_MANIFEST,
        descriptor(OCI_CONFIG, &config_digest, 2),
        &[descriptor(
            "application/vnd.oci.image.layer.v1.tar",
            &sha256(b"never pushed"),
            12,
        )],
    );

    let reply = registry
        .put_manifest("a", "latest", OCI_MANIFEST, &manifest)
        .await;
    let tag = registry.get("/v2/a/manifests/latest").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(tag.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn blob_of_other_repository_is_manifest_blob_unknown() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;

    let reply = registry
        .put_manifest("b", "latest", OCI_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn wrong_blob_size_is_rejected() {
    let registry = Registry::new();
    let config_digest = registry.push_blob("a", b"{}").await;
    let manifest = image_manifest(OCI_MANIFEST, descriptor(OCI_CONFIG, &config_digest, 3), &[]);

    let reply = registry
        .put_manifest("a", "latest", OCI_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn index_with_missing_child_is_rejected() {
    let registry = Registry::new();
    let index = index_manifest(
        OCI_INDEX,
        &[descriptor(OCI_MANIFEST, &sha256(b"no such manifest"), 16)],
    );

    let reply = registry.put_manifest("a", "multi", OCI_INDEX, &index).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn missing_subject_is_accepted() {
    let registry = Registry::new();
    let subject = sha256(b"subject pushed later");
    let config_digest = registry.push_blob("a", b"{}").await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": descriptor("application/vnd.oci.empty.v1+json", &config_digest, 2),
        "layers": [],
        "subject": descriptor(OCI_MANIFEST, &subject, 100),
    }))
    .unwrap();

    let reply = registry
        .put_manifest("a", &sha256(&manifest), OCI_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.header("oci-subject"), Some(subject.as_str()));
}

#[tokio::test]
async fn oversized_manifest_is_rejected() {
    let registry = Registry::with(|settings| settings.manifest_max_bytes = 1024);
    let padding = "x".repeat(2048);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
        "annotations": { "padding": padding },
    }))
    .unwrap();

    let declared = registry
        .put_manifest("a", "big", OCI_INDEX, &manifest)
        .await;
    // Without Content-Length the limit is enforced while reading.
    let streamed = registry
        .send(
            request(Method::PUT, "/v2/a/manifests/big")
                .header(header::CONTENT_TYPE, OCI_INDEX)
                .body(Body::from(manifest.clone()))
                .unwrap(),
        )
        .await;
    let tag = registry.get("/v2/a/manifests/big").await;

    assert_eq!(declared.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(declared.error_code(), "SIZE_INVALID");
    assert_eq!(streamed.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(streamed.error_code(), "SIZE_INVALID");
    assert_eq!(tag.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn manifest_at_limit_is_accepted() {
    let registry = Registry::with(|settings| settings.manifest_max_bytes = 1024);
    let mut manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [],
    }))
    .unwrap();
    // Trailing whitespace is valid JSON and pads the body to the limit.
    manifest.resize(1024, b' ');

    let reply = registry
        .put_manifest("a", "edge", OCI_INDEX, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
}

#[tokio::test]
async fn put_by_other_digest_is_rejected() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let other = sha256(b"another body");

    let reply = registry
        .put_manifest("a", &other, OCI_MANIFEST, &manifest)
        .await;
    let stored = registry
        .get(&format!("/v2/a/manifests/{}", sha256(&manifest)))
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(stored.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn malformed_json_is_manifest_invalid() {
    let registry = Registry::new();

    for body in [&b"{not json"[..], b"[]", b"{}", b""] {
        let reply = registry
            .put_manifest("a", "latest", OCI_MANIFEST, body)
            .await;

        let body_text = String::from_utf8_lossy(body);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body_text}");
        assert_eq!(reply.error_code(), "MANIFEST_INVALID", "{body_text}");
    }
}

#[tokio::test]
async fn content_type_mismatch_is_manifest_invalid() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;

    let reply = registry
        .put_manifest("a", "latest", DOCKER_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn schema1_manifest_is_rejected() {
    let registry = Registry::new();
    let cases = [
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ];

    for media_type in cases {
        let manifest = format!(
            r#"{{"schemaVersion":1,"mediaType":"{media_type}","name":"a","tag":"latest","fsLayers":[]}}"#
        );
        let reply = registry
            .put_manifest("a", "latest", media_type, manifest.as_bytes())
            .await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{media_type}");
        assert_eq!(reply.error_code(), "MANIFEST_INVALID", "{media_type}");
    }
}

#[tokio::test]
async fn tag_parameters_create_tags() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let digest = sha256(&manifest);

    let reply = registry
        .put_manifest(
            "a",
            &format!("{digest}?tag=v1&tag=stable"),
            OCI_MANIFEST,
            &manifest,
        )
        .await;
    let v1 = registry.get("/v2/a/manifests/v1").await;
    let stable = registry.get("/v2/a/manifests/stable").await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header_all("oci-tag"), vec!["v1", "stable"]);
    assert_served(&v1, OCI_MANIFEST, &manifest);
    assert_served(&stable, OCI_MANIFEST, &manifest);
}

#[tokio::test]
async fn tag_parameter_on_put_by_tag_is_rejected() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;

    let reply = registry
        .put_manifest("a", "latest?tag=v1", OCI_MANIFEST, &manifest)
        .await;
    let v1 = registry.get("/v2/a/manifests/v1").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");
    assert_eq!(v1.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn invalid_tag_parameter_is_rejected() {
    let registry = Registry::new();
    let manifest = registry.push_image_blobs("a", "one").await;
    let digest = sha256(&manifest);

    let reply = registry
        .put_manifest("a", &format!("{digest}?tag=.bad"), OCI_MANIFEST, &manifest)
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "MANIFEST_INVALID");
}

#[tokio::test]
async fn accept_of_other_type_is_not_found() {
    let registry = Registry::new();
    registry.push_image("a", "latest", "one").await;
    let uri = "/v2/a/manifests/latest";

    let other = get_with_accept(&registry, uri, DOCKER_MANIFEST).await;
    let listed = get_with_accept(
        &registry,
        uri,
        &format!("{DOCKER_MANIFEST}, {OCI_MANIFEST}"),
    )
    .await;
    let wildcard = get_with_accept(&registry, uri, "*/*").await;

    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(wildcard.status, StatusCode::OK);
}

#[tokio::test]
async fn tag_moves_to_new_manifest() {
    let registry = Registry::new();
    let (first, _) = registry.push_image("a", "latest", "one").await;
    let (second, manifest) = registry.push_image("a", "latest", "two").await;

    let latest = registry.get("/v2/a/manifests/latest").await;
    let old = registry.get(&format!("/v2/a/manifests/{first}")).await;

    assert_ne!(first, second);
    assert_served(&latest, OCI_MANIFEST, &manifest);
    assert_eq!(old.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_manifest_is_manifest_unknown() {
    let registry = Registry::new();
    registry.push_image("a", "latest", "one").await;
    let absent = sha256(b"absent");

    for reference in ["missing", absent.as_str()] {
        let reply = registry.get(&format!("/v2/a/manifests/{reference}")).await;

        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reference}");
        assert_eq!(reply.error_code(), "MANIFEST_UNKNOWN", "{reference}");
    }
}

#[tokio::test]
async fn manifest_invisible_from_other_repository() {
    let registry = Registry::new();
    let (digest, _) = registry.push_image("a", "latest", "one").await;
    registry.push_image("b", "other", "two").await;

    let by_digest = registry.get(&format!("/v2/b/manifests/{digest}")).await;
    let by_tag = registry.get("/v2/b/manifests/latest").await;

    assert_eq!(by_digest.status, StatusCode::NOT_FOUND);
    assert_eq!(by_digest.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(by_tag.status, StatusCode::NOT_FOUND);
    assert_eq!(by_tag.error_code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn delete_by_digest_removes_its_tags() {
    let registry = Registry::new();
    let (digest, _) = registry.push_image("a", "latest", "one").await;
    registry
        .put_manifest(
            "a",
            &format!("{digest}?tag=v1"),
            OCI_MANIFEST,
            &registry.push_image_blobs("a", "one").await,
        )
        .await;
    registry.push_image("a", "other", "two").await;

    let deleted = registry.delete(&format!("/v2/a/manifests/{digest}")).await;
    let latest = registry.get("/v2/a/manifests/latest").await;
    let v1 = registry.get("/v2/a/manifests/v1").await;
    let by_digest = registry.get(&format!("/v2/a/manifests/{digest}")).await;
    let other = registry.get("/v2/a/manifests/other").await;
    let tags = registry.get("/v2/a/tags/list").await;

    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(latest.status, StatusCode::NOT_FOUND);
    assert_eq!(latest.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(v1.status, StatusCode::NOT_FOUND);
    assert_eq!(by_digest.status, StatusCode::NOT_FOUND);
    assert_eq!(by_digest.error_code(), "MANIFEST_UNKNOWN");
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(tags.json()["tags"], json!(["other"]));
}

#[tokio::test]
async fn delete_by_tag_removes_only_tag() {
    let registry = Registry::new();
    let (digest, manifest) = registry.push_image("a", "latest", "one").await;
    registry
        .put_manifest("a", "stable", OCI_MANIFEST, &manifest)
        .await;

    let deleted = registry.delete("/v2/a/manifests/latest").await;
    let latest = registry.get("/v2/a/manifests/latest").await;
    let stable = registry.get("/v2/a/manifests/stable").await;
    let by_digest = registry.get(&format!("/v2/a/manifests/{digest}")).await;
    let tags = registry.get("/v2/a/tags/list").await;

    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(latest.status, StatusCode::NOT_FOUND);
    assert_eq!(latest.error_code(), "MANIFEST_UNKNOWN");
    assert_served(&stable, OCI_MANIFEST, &manifest);
    assert_served(&by_digest, OCI_MANIFEST, &manifest);
    assert_eq!(tags.json()["tags"], json!(["stable"]));
}

#[tokio::test]
async fn delete_unknown_manifest_is_manifest_unknown() {
    let registry = Registry::new();
    registry.push_image("a", "latest", "one").await;
    let absent = sha256(b"absent");

    for reference in ["missing", absent.as_str()] {
        let reply = registry
            .delete(&format!("/v2/a/manifests/{reference}"))
            .await;

        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{reference}");
        assert_eq!(reply.error_code(), "MANIFEST_UNKNOWN", "{reference}");
    }
}

#[tokio::test]
async fn delete_last_manifest_removes_repository() {
    let registry = Registry::new();
    let (digest, _) = registry.push_image("gone", "latest", "one").await;
    registry.push_image("kept", "latest", "two").await;

    let before = registry.get("/v2/_catalog").await;
    let deleted = registry
        .delete(&format!("/v2/gone/manifests/{digest}"))
        .await;
    let after = registry.get("/v2/_catalog").await;
    let tags = registry.get("/v2/gone/tags/list").await;

    assert_eq!(before.json()["repositories"], json!(["gone", "kept"]));
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(after.json()["repositories"], json!(["kept"]));
    assert_eq!(tags.status, StatusCode::NOT_FOUND);
    assert_eq!(tags.error_code(), "NAME_UNKNOWN");
}

#[tokio::test]
async fn delete_disabled_keeps_manifest() {
    let registry = Registry::with(|settings| settings.delete_enabled = false);
    let (digest, manifest) = registry.push_image("a", "latest", "one").await;

    let by_digest = registry.delete(&format!("/v2/a/manifests/{digest}")).await;
    let by_tag = registry.delete("/v2/a/manifests/latest").await;
    let served = registry.get("/v2/a/manifests/latest").await;

    assert_eq!(by_digest.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(by_digest.error_code(), "UNSUPPORTED");
    assert_eq!(by_tag.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(by_tag.error_code(), "UNSUPPORTED");
    assert_served(&served, OCI_MANIFEST, &manifest);
}
