//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`, with ranges.

use axum::body::Body;
use axum::http::{Method, StatusCode, header};

use crate::support::{Registry, Reply, request, sha256};

const CONTENT: &[u8] = b"0123456789";

async fn get_range(registry: &Registry, uri: &str, range: &str) -> Reply {
    let request = request(Method::GET, uri)
        .header(header::RANGE, range)
        .body(Body::empty())
        .unwrap();
    registry.send(request).await
}

#[tokio::test]
async fn get_present_blob_returns_bytes() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], CONTENT);
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.header("content-length"), Some("10"));
}

#[tokio::test]
async fn head_present_blob_returns_headers() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = registry.head(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(reply.header("content-length"), Some("10"));
}

#[tokio::test]
async fn get_absent_blob_is_blob_unknown() {
    let registry = Registry::new();
    let digest = sha256(b"never pushed");

    let reply = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn head_absent_blob_is_not_found() {
    let registry = Registry::new();
    let digest = sha256(b"never pushed");

    let reply = registry.head(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn blob_invisible_from_other_repository() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let get = registry.get(&format!("/v2/b/blobs/{digest}")).await;
    let head = registry.head(&format!("/v2/b/blobs/{digest}")).await;

    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(get.error_code(), "BLOB_UNKNOWN");
    assert_eq!(head.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn range_with_both_ends_is_partial() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = get_range(&registry, &format!("/v2/a/blobs/{digest}"), "bytes=2-5").await;

    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"2345");
    assert_eq!(reply.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(reply.header("content-length"), Some("4"));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
}

#[tokio::test]
async fn range_without_end_reaches_last_byte() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = get_range(&registry, &format!("/v2/a/blobs/{digest}"), "bytes=7-").await;

    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"789");
    assert_eq!(reply.header("content-range"), Some("bytes 7-9/10"));
    assert_eq!(reply.header("content-length"), Some("3"));
}

#[tokio::test]
async fn suffix_range_returns_last_bytes() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = get_range(&registry, &format!("/v2/a/blobs/{digest}"), "bytes=-4").await;

    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&reply.body[..], b"6789");
    assert_eq!(reply.header("content-range"), Some("bytes 6-9/10"));
    assert_eq!(reply.header("content-length"), Some("4"));
}

#[tokio::test]
async fn head_with_range_sends_no_body() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let request = request(Method::HEAD, &format!("/v2/a/blobs/{digest}"))
        .header(header::RANGE, "bytes=2-5")
        .body(Body::empty())
        .unwrap();
    let reply = registry.send(request).await;

    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert!(reply.body.is_empty());
    assert_eq!(reply.header("content-range"), Some("bytes 2-5/10"));
    assert_eq!(reply.header("content-length"), Some("4"));
}

#[tokio::test]
async fn range_past_end_is_unsatisfiable() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;
    let uri = format!("/v2/a/blobs/{digest}");

    for range in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
        let reply = get_range(&registry, &uri, range).await;

        assert_eq!(reply.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(reply.header("content-range"), Some("bytes */10"), "{range}");
    }
}

#[tokio::test]
async fn reversed_range_is_ignored() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;

    let reply = get_range(&registry, &format!("/v2/a/blobs/{digest}"), "bytes=5-2").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], CONTENT);
}

#[tokio::test]
async fn delete_blob_then_get_is_unknown() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;
    let uri = format!("/v2/a/blobs/{digest}");

    let deleted = registry.delete(&uri).await;
    let after = registry.get(&uri).await;

    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    assert_eq!(after.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn delete_keeps_blob_in_other_repository() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", CONTENT).await;
    registry.push_blob("b", CONTENT).await;

    let deleted = registry.delete(&format!("/v2/a/blobs/{digest}")).await;
    let other = registry.get(&format!("/v2/b/blobs/{digest}")).await;

    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(&other.body[..], CONTENT);
}

#[tokio::test]
async fn delete_absent_blob_is_unknown() {
    let registry = Registry::new();
    let digest = sha256(b"never pushed");

    let reply = registry.delete(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn delete_disabled_is_method_not_allowed() {
    let registry = Registry::with(|settings| settings.delete_enabled = false);
    let digest = registry.push_blob("a", CONTENT).await;
    let uri = format!("/v2/a/blobs/{digest}");

    let deleted = registry.delete(&uri).await;
    let after = registry.get(&uri).await;

    assert_eq!(deleted.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(deleted.error_code(), "UNSUPPORTED");
    assert_eq!(after.status, StatusCode::OK);
}

/// A blob of several read chunks (1 MiB each) with a length that is no
/// multiple of the chunk.
fn large_blob() -> Vec<u8> {
    (0..3 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn large_blob_is_served_whole() {
    let registry = Registry::new();
    let content = large_blob();
    let digest = registry.push_blob("big", &content).await;

    let reply = registry.get(&format!("/v2/big/blobs/{digest}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body.len(), content.len());
    assert!(reply.body == content, "served bytes differ");
}

#[tokio::test]
async fn range_across_read_chunks_is_exact() {
    let registry = Registry::new();
    let content = large_blob();
    let digest = registry.push_blob("big", &content).await;

    let uri = format!("/v2/big/blobs/{digest}");
    let reply = get_range(&registry, &uri, "bytes=1048570-2097160").await;
    assert_eq!(reply.status, StatusCode::PARTIAL_CONTENT);
    assert!(
        reply.body[..] == content[1_048_570..=2_097_160],
        "range bytes differ"
    );
}
