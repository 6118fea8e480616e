//! The base endpoint, unknown paths and methods a route does not serve.

use axum::body::Body;
use axum::http::{Method, StatusCode};

use crate::support::{Registry, request};

#[tokio::test]
async fn base_returns_api_version() {
    let registry = Registry::new();

    let reply = registry.get("/v2/").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn base_without_slash_is_served() {
    let registry = Registry::new();

    let reply = registry.get("/v2").await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

#[tokio::test]
async fn errors_carry_api_version() {
    let registry = Registry::new();

    let reply = registry.get("/v2/a/manifests/missing").await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
}

#[tokio::test]
async fn responses_carry_request_id() {
    let registry = Registry::new();

    let first = registry.get("/v2/").await;
    let second = registry.get("/v2/").await;

    let first_id = first.header("x-request-id").expect("X-Request-Id");
    let second_id = second.header("x-request-id").expect("X-Request-Id");
    assert_ne!(first_id, second_id);
}

#[tokio::test]
async fn path_outside_v2_is_not_found() {
    let registry = Registry::new();

    let reply = registry.get("/v3/a/manifests/latest").await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "UNSUPPORTED");
}

#[tokio::test]
async fn unknown_endpoint_is_not_found() {
    let registry = Registry::new();

    for uri in ["/v2/a/unknown/x", "/v2/manifests/latest", "/v2/tags/list"] {
        let reply = registry.get(uri).await;

        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(reply.error_code(), "UNSUPPORTED", "{uri}");
    }
}

#[tokio::test]
async fn wrong_method_lists_allowed_ones() {
    let registry = Registry::new();
    let digest = format!("sha256:{}", "a".repeat(64));
    let cases = [
        (
            Method::POST,
            "/v2/a/manifests/latest".to_owned(),
            "GET, HEAD, PUT, DELETE",
        ),
        (
            Method::PUT,
            format!("/v2/a/blobs/{digest}"),
            "GET, HEAD, DELETE",
        ),
        (Method::GET, "/v2/a/blobs/uploads/".to_owned(), "POST"),
        (Method::POST, "/v2/a/tags/list".to_owned(), "GET, HEAD"),
        (Method::DELETE, "/v2/_catalog".to_owned(), "GET, HEAD"),
        (
            Method::PUT,
            format!("/v2/a/referrers/{digest}"),
            "GET, HEAD",
        ),
        (
            Method::POST,
            "/v2/a/blobs/uploads/0b7e6b3a-3c2e-4f0e-9d8c-1a2b3c4d5e6f".to_owned(),
            "GET, PATCH, PUT, DELETE",
        ),
    ];

    for (method, uri, allowed) in cases {
        let reply = registry
            .send(request(method.clone(), &uri).body(Body::empty()).unwrap())
            .await;

        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(reply.header("allow"), Some(allowed), "{method} {uri}");
        assert_eq!(reply.error_code(), "UNSUPPORTED", "{method} {uri}");
    }
}

#[tokio::test]
async fn base_rejects_post_with_allow() {
    let registry = Registry::new();

    let reply = registry
        .send(request(Method::POST, "/v2/").body(Body::empty()).unwrap())
        .await;

    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    let allow = reply.header("allow").expect("Allow header");
    assert!(allow.contains("GET"), "Allow: {allow}");
}
