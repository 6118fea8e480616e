//! Blob uploads: monolithic, chunked and streamed sessions, mounts, limits,
//! and sessions that outlive the process.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, StatusCode, header};
use bytes::Bytes;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::support::{Registry, Reply, request, sha256, sha512, with_query};

/// PATCHes `bytes` with a matching Content-Length and, when given, a
/// Content-Range.
async fn patch(registry: &Registry, location: &str, bytes: &[u8], range: Option<&str>) -> Reply {
    let mut builder = request(Method::PATCH, location).header(header::CONTENT_LENGTH, bytes.len());
    if let Some(range) = range {
        builder = builder.header(header::CONTENT_RANGE, range);
    }
    registry
        .send(builder.body(Body::from(bytes.to_vec())).unwrap())
        .await
}

/// Finishes a session with `?digest=` and `bytes` as its last chunk.
async fn commit(registry: &Registry, location: &str, digest: &str, bytes: &[u8]) -> Reply {
    let uri = with_query(location, &format!("digest={digest}"));
    registry.send_bytes(Method::PUT, &uri, bytes).await
}

/// Returns the last path segment of a session Location: its upload id.
fn upload_id(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

/// Builds a request body fed through a channel of capacity one, so the
/// request stays open until the sender is dropped.
fn channel_body() -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Body) {
    let (sender, mut receiver) = mpsc::channel(1);
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    (sender, Body::from_stream(stream))
}

#[tokio::test]
async fn post_opens_session() {
    let registry = Registry::new();

    let reply = registry
        .send_bytes(Method::POST, "/v2/a/blobs/uploads/", b"")
        .await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").expect("Location");
    assert!(
        location.starts_with("/v2/a/blobs/uploads/"),
        "Location: {location}"
    );
    assert_eq!(reply.header("range"), Some("0-0"));
    let id = reply
        .header("docker-upload-uuid")
        .expect("Docker-Upload-UUID");
    assert_eq!(upload_id(location), id);
    assert!(uuid::Uuid::try_parse(id).is_ok(), "upload id {id}");
}

#[tokio::test]
async fn post_without_trailing_slash_opens_session() {
    let registry = Registry::new();

    let reply = registry
        .send_bytes(Method::POST, "/v2/a/blobs/uploads", b"")
        .await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.header("location").is_some());
}

#[tokio::test]
async fn monolithic_post_stores_blob() {
    let registry = Registry::new();
    let content = b"monolithic blob";
    let digest = sha256(content);

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={digest}"),
            content,
        )
        .await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    let location = format!("/v2/a/blobs/{digest}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(&stored.body[..], content);
}

#[tokio::test]
async fn monolithic_post_wrong_digest_stores_nothing() {
    let registry = Registry::new();
    let claimed = sha256(b"claimed");

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={claimed}"),
            b"actual",
        )
        .await;
    let actual = registry
        .head(&format!("/v2/a/blobs/{}", sha256(b"actual")))
        .await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(actual.status, StatusCode::NOT_FOUND);
    assert!(registry.blob_files().is_empty());
}

#[tokio::test]
async fn empty_blob_is_stored() {
    let registry = Registry::new();

    let digest = registry.push_blob("a", b"").await;
    let reply = registry.head(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-length"), Some("0"));
}

#[tokio::test]
async fn post_then_put_stores_blob() {
    let registry = Registry::new();
    let content = b"post then put";
    let digest = sha256(content);
    let location = registry.start_upload("a").await;

    let reply = commit(&registry, &location, &digest, content).await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    let blob_location = format!("/v2/a/blobs/{digest}");
    assert_eq!(reply.header("location"), Some(blob_location.as_str()));
    assert_eq!(&stored.body[..], content);
}

#[tokio::test]
async fn chunks_in_order_are_appended() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    let first = patch(&registry, &location, b"01234", Some("0-4")).await;
    let next = first.header("location").expect("Location").to_owned();
    let second = patch(&registry, &next, b"56789", Some("5-9")).await;
    let next = second.header("location").expect("Location").to_owned();
    let digest = sha256(b"0123456789");
    let done = commit(&registry, &next, &digest, b"").await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.header("range"), Some("0-4"));
    assert_eq!(
        first.header("docker-upload-uuid"),
        Some(upload_id(&location))
    );
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(second.header("range"), Some("0-9"));
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(&stored.body[..], b"0123456789");
}

#[tokio::test]
async fn content_range_with_bytes_unit_is_accepted() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    let reply = patch(&registry, &location, b"01234", Some("bytes 0-4/*")).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(reply.header("range"), Some("0-4"));
}

#[tokio::test]
async fn out_of_order_chunk_is_unsatisfiable() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"01234", Some("0-4")).await;

    let gap = patch(&registry, &location, b"789", Some("7-9")).await;
    let repeat = patch(&registry, &location, b"01234", Some("0-4")).await;
    let status = registry.get(&location).await;

    assert_eq!(gap.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(gap.error_code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(gap.header("range"), Some("0-4"));
    assert_eq!(gap.header("location"), Some(location.as_str()));
    assert_eq!(repeat.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(repeat.header("range"), Some("0-4"));
    assert_eq!(status.header("range"), Some("0-4"));
}

#[tokio::test]
async fn streamed_patches_are_appended() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    // No Content-Range and no Content-Length: the body is appended as it
    // streams in.
    let streamed = |bytes: &'static [u8]| {
        request(Method::PATCH, &location)
            .body(Body::from(bytes))
            .unwrap()
    };
    let first = registry.send(streamed(b"streamed ")).await;
    let second = registry.send(streamed(b"upload")).await;
    let digest = sha256(b"streamed upload");
    let done = commit(&registry, &location, &digest, b"").await;

    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(first.header("range"), Some("0-8"));
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(second.header("range"), Some("0-14"));
    assert_eq!(done.status, StatusCode::CREATED);
}

#[tokio::test]
async fn put_appends_last_chunk() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"first,", Some("0-5")).await;
    let digest = sha256(b"first,last");

    let uri = with_query(&location, &format!("digest={digest}"));
    let request = request(Method::PUT, &uri)
        .header(header::CONTENT_RANGE, "6-9")
        .header(header::CONTENT_LENGTH, 4)
        .body(Body::from("last"))
        .unwrap();
    let reply = registry.send(request).await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(&stored.body[..], b"first,last");
}

#[tokio::test]
async fn status_reports_offset() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"01234", Some("0-4")).await;

    let reply = registry.get(&location).await;

    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("range"), Some("0-4"));
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(
        reply.header("docker-upload-uuid"),
        Some(upload_id(&location))
    );
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn cancel_ends_session() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"01234", None).await;

    let cancelled = registry.delete(&location).await;
    let status = registry.get(&location).await;
    let again = registry.delete(&location).await;

    assert_eq!(cancelled.status, StatusCode::NO_CONTENT);
    assert_eq!(status.status, StatusCode::NOT_FOUND);
    assert_eq!(status.error_code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn commit_ends_session() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    let digest = sha256(b"done");
    commit(&registry, &location, &digest, b"done").await;

    let status = registry.get(&location).await;
    let late = patch(&registry, &location, b"more", None).await;

    assert_eq!(status.status, StatusCode::NOT_FOUND);
    assert_eq!(status.error_code(), "BLOB_UPLOAD_UNKNOWN");
    assert_eq!(late.status, StatusCode::NOT_FOUND);
    assert_eq!(late.error_code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn digest_mismatch_stores_nothing() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"actual", None).await;
    let claimed = sha256(b"claimed");

    let reply = commit(&registry, &location, &claimed, b"").await;
    let claimed_blob = registry.head(&format!("/v2/a/blobs/{claimed}")).await;
    let actual_blob = registry
        .head(&format!("/v2/a/blobs/{}", sha256(b"actual")))
        .await;
    let session = registry.get(&location).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(claimed_blob.status, StatusCode::NOT_FOUND);
    assert_eq!(actual_blob.status, StatusCode::NOT_FOUND);
    assert_eq!(session.status, StatusCode::NOT_FOUND);
    assert_eq!(session.error_code(), "BLOB_UPLOAD_UNKNOWN");
    assert!(registry.blob_files().is_empty());
}

#[tokio::test]
async fn sha512_session_stores_blob() {
    let registry = Registry::new();
    let content = b"hashed with sha512";
    let digest = sha512(content);
    let reply = registry
        .send_bytes(
            Method::POST,
            "/v2/a/blobs/uploads/?digest-algorithm=sha512",
            b"",
        )
        .await;
    let location = reply.header("location").expect("Location").to_owned();

    patch(&registry, &location, content, None).await;
    let done = commit(&registry, &location, &digest, b"").await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(done.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(&stored.body[..], content);
    assert_eq!(
        stored.header("docker-content-digest"),
        Some(digest.as_str())
    );
}

#[tokio::test]
async fn sha512_monolithic_post_stores_blob() {
    let registry = Registry::new();
    let content = b"monolithic sha512";
    let digest = sha512(content);

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={digest}"),
            content,
        )
        .await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(&stored.body[..], content);
}

#[tokio::test]
async fn commit_with_other_algorithm_rehashes() {
    let registry = Registry::new();
    let content = b"opened as sha256";
    let digest = sha512(content);
    let location = registry.start_upload("a").await;
    patch(&registry, &location, content, None).await;

    let reply = commit(&registry, &location, &digest, b"").await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(&stored.body[..], content);
}

#[tokio::test]
async fn short_body_keeps_previous_bytes() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"hello", None).await;

    let request = request(Method::PATCH, &location)
        .header(header::CONTENT_LENGTH, 10)
        .body(Body::from("world"))
        .unwrap();
    let reply = registry.send(request).await;
    let status = registry.get(&location).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "SIZE_INVALID");
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), Some("0-4"));
}

#[tokio::test]
async fn long_body_keeps_previous_bytes() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"hello", None).await;

    let request = request(Method::PATCH, &location)
        .header(header::CONTENT_LENGTH, 3)
        .body(Body::from("world"))
        .unwrap();
    let reply = registry.send(request).await;
    patch(&registry, &location, b"world", None).await;
    let digest = sha256(b"helloworld");
    let done = commit(&registry, &location, &digest, b"").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "SIZE_INVALID");
    // The commit succeeds only if the rejected bytes were cut off again.
    assert_eq!(done.status, StatusCode::CREATED);
}

#[tokio::test]
async fn content_range_disagreeing_with_length_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    let request = request(Method::PATCH, &location)
        .header(header::CONTENT_RANGE, "0-9")
        .header(header::CONTENT_LENGTH, 5)
        .body(Body::from("01234"))
        .unwrap();
    let reply = registry.send(request).await;
    let status = registry.get(&location).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "SIZE_INVALID");
    assert_eq!(status.header("range"), Some("0-0"));
}

#[tokio::test]
async fn malformed_content_range_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    for range in ["abc", "5-2", "0-"] {
        let reply = patch(&registry, &location, b"01234", Some(range)).await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{range}");
        assert_eq!(reply.error_code(), "BLOB_UPLOAD_INVALID", "{range}");
    }
}

#[tokio::test]
async fn malformed_content_length_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    let request = request(Method::PATCH, &location)
        .header(header::CONTENT_LENGTH, "five")
        .body(Body::from("01234"))
        .unwrap();
    let reply = registry.send(request).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "SIZE_INVALID");
}

#[tokio::test]
async fn invalid_upload_id_is_unknown() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    let uppercase = upload_id(&location).to_uppercase();
    let digest = sha256(b"x");
    let ids = [
        "not-a-uuid",
        "..",
        "..%2F..",
        "..%2F..%2Fblobs",
        "%2e%2e",
        uppercase.as_str(),
    ];

    for id in ids {
        let uri = format!("/v2/a/blobs/uploads/{id}");
        let put_uri = format!("{uri}?digest={digest}");
        let replies = [
            ("GET", registry.get(&uri).await),
            ("PATCH", patch(&registry, &uri, b"x", None).await),
            (
                "PUT",
                registry.send_bytes(Method::PUT, &put_uri, b"x").await,
            ),
            ("DELETE", registry.delete(&uri).await),
        ];

        for (method, reply) in replies {
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {id}");
            assert_eq!(reply.error_code(), "BLOB_UPLOAD_UNKNOWN", "{method} {id}");
        }
    }
}

#[tokio::test]
async fn session_is_bound_to_repository() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"01234", None).await;
    let other = location.replacen("/v2/a/", "/v2/b/", 1);
    let digest = sha256(b"01234");

    let replies = [
        ("GET", registry.get(&other).await),
        ("PATCH", patch(&registry, &other, b"56789", None).await),
        ("PUT", commit(&registry, &other, &digest, b"").await),
        ("DELETE", registry.delete(&other).await),
    ];
    let own = registry.get(&location).await;

    for (method, reply) in replies {
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(reply.error_code(), "BLOB_UPLOAD_UNKNOWN", "{method}");
    }
    assert_eq!(own.status, StatusCode::NO_CONTENT);
    assert_eq!(own.header("range"), Some("0-4"));
}

#[tokio::test]
async fn put_without_digest_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    let reply = registry.send_bytes(Method::PUT, &location, b"data").await;
    let status = registry.get(&location).await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert_eq!(status.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn put_with_malformed_digest_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;

    for digest in ["sha256:xyz", "sha256", "SHA256:abc"] {
        let reply = commit(&registry, &location, digest, b"").await;

        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{digest}");
        assert_eq!(reply.error_code(), "DIGEST_INVALID", "{digest}");
    }
}

#[tokio::test]
async fn unsupported_algorithm_is_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    let md5 = "md5:5d41402abc4b2a76b9719d911017c592";

    let put = commit(&registry, &location, md5, b"hello").await;
    let post = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={md5}"),
            b"hello",
        )
        .await;
    let open = registry
        .send_bytes(
            Method::POST,
            "/v2/a/blobs/uploads/?digest-algorithm=md5",
            b"",
        )
        .await;

    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.error_code(), "DIGEST_INVALID");
    assert_eq!(post.status, StatusCode::BAD_REQUEST);
    assert_eq!(post.error_code(), "DIGEST_INVALID");
    assert_eq!(open.status, StatusCode::BAD_REQUEST);
    assert_eq!(open.error_code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn mount_from_repository_links_blob() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", b"shared layer").await;

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}&from=a"),
            b"",
        )
        .await;
    let mounted = registry.get(&format!("/v2/b/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    let location = format!("/v2/b/blobs/{digest}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(reply.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(mounted.status, StatusCode::OK);
    assert_eq!(&mounted.body[..], b"shared layer");
}

#[tokio::test]
async fn mount_from_repository_without_blob_opens_session() {
    let registry = Registry::new();
    let digest = registry.push_blob("c", b"held by c only").await;

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}&from=a"),
            b"",
        )
        .await;
    let blob = registry.head(&format!("/v2/b/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    let location = reply.header("location").expect("Location");
    assert!(
        location.starts_with("/v2/b/blobs/uploads/"),
        "Location: {location}"
    );
    assert!(reply.header("docker-upload-uuid").is_some());
    assert_eq!(blob.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn mount_without_from_links_known_blob() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", b"known anywhere").await;

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}"),
            b"",
        )
        .await;
    let mounted = registry.head(&format!("/v2/b/blobs/{digest}")).await;

    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(mounted.status, StatusCode::OK);
}

#[tokio::test]
async fn mount_of_unknown_blob_opens_session() {
    let registry = Registry::new();
    let digest = sha256(b"nowhere");

    let reply = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}"),
            b"",
        )
        .await;

    assert_eq!(reply.status, StatusCode::ACCEPTED);
    assert!(reply.header("location").is_some());
}

#[tokio::test]
async fn mount_with_invalid_parameters_is_rejected() {
    let registry = Registry::new();
    let digest = registry.push_blob("a", b"layer").await;

    let bad_from = registry
        .send_bytes(
            Method::POST,
            &format!("/v2/b/blobs/uploads/?mount={digest}&from=..%2Fa"),
            b"",
        )
        .await;
    let bad_digest = registry
        .send_bytes(
            Method::POST,
            "/v2/b/blobs/uploads/?mount=sha256:zz&from=a",
            b"",
        )
        .await;

    assert_eq!(bad_from.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_from.error_code(), "NAME_INVALID");
    assert_eq!(bad_digest.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_digest.error_code(), "DIGEST_INVALID");
}

/// Uploads one blob through two sessions, in `first` and `second`, and
/// commits both at once.
async fn commit_same_blob_twice(first: &str, second: &str) {
    let registry = Registry::new();
    // Larger than one write batch of the storage, so the two commits
    // overlap for longer than a trivial write would.
    let content = vec![7u8; 3 * 1024 * 1024];
    let digest = sha256(&content);
    let first_location = registry.start_upload(first).await;
    let second_location = registry.start_upload(second).await;
    patch(&registry, &first_location, &content, None).await;
    patch(&registry, &second_location, &content, None).await;

    let (first_reply, second_reply) = tokio::join!(
        commit(&registry, &first_location, &digest, b""),
        commit(&registry, &second_location, &digest, b""),
    );
    let first_blob = registry.head(&format!("/v2/{first}/blobs/{digest}")).await;
    let second_blob = registry.head(&format!("/v2/{second}/blobs/{digest}")).await;

    assert_eq!(first_reply.status, StatusCode::CREATED);
    assert_eq!(second_reply.status, StatusCode::CREATED);
    assert_eq!(registry.blob_files().len(), 1);
    assert_eq!(first_blob.status, StatusCode::OK);
    assert_eq!(second_blob.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_store_one_copy() {
    commit_same_blob_twice("a", "a").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_uploads_across_repositories_store_one_copy() {
    commit_same_blob_twice("a", "b").await;
}

#[tokio::test]
async fn upload_limit_rejects_second_patch() {
    let registry = Registry::with(|settings| settings.max_uploads = 1);
    let held_location = registry.start_upload("a").await;
    let other_location = registry.start_upload("a").await;

    let (sender, body) = channel_body();
    let held_request = request(Method::PATCH, &held_location).body(body).unwrap();
    let app = registry.app.clone();
    let held_task = tokio::spawn(async move { app.oneshot(held_request).await });
    sender.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
    // The channel holds one item, so this send returns only once the
    // handler has taken the first, which it does after taking its permit.
    sender.send(Ok(Bytes::from_static(b"cd"))).await.unwrap();

    let rejected = patch(&registry, &other_location, b"xy", None).await;
    drop(sender);
    let held_reply = Reply::collect(held_task.await.unwrap().unwrap()).await;
    let retried = patch(&registry, &other_location, b"xy", None).await;

    assert_eq!(rejected.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rejected.error_code(), "TOOMANYREQUESTS");
    assert!(rejected.header("retry-after").is_some());
    assert_eq!(held_reply.status, StatusCode::ACCEPTED);
    assert_eq!(held_reply.header("range"), Some("0-3"));
    assert_eq!(retried.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn session_survives_restart() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"before restart, ", Some("0-15")).await;

    let registry = registry.reopen();
    let status = registry.get(&location).await;
    let rest = patch(&registry, &location, b"after restart", Some("16-28")).await;
    let digest = sha256(b"before restart, after restart");
    let done = commit(&registry, &location, &digest, b"").await;
    let stored = registry.get(&format!("/v2/a/blobs/{digest}")).await;

    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), Some("0-15"));
    assert_eq!(rest.status, StatusCode::ACCEPTED);
    assert_eq!(rest.header("range"), Some("0-28"));
    assert_eq!(done.status, StatusCode::CREATED);
    assert_eq!(&stored.body[..], b"before restart, after restart");
}

#[tokio::test]
async fn restart_keeps_wrong_digest_rejected() {
    let registry = Registry::new();
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"some bytes", None).await;

    let registry = registry.reopen();
    let reply = commit(&registry, &location, &sha256(b"other bytes"), b"").await;

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "DIGEST_INVALID");
    assert!(registry.blob_files().is_empty());
}

#[tokio::test(start_paused = true)]
async fn stalled_patch_times_out_and_keeps_bytes() {
    let registry = Registry::with(|settings| settings.idle_timeout = Duration::from_secs(5));
    let location = registry.start_upload("a").await;
    patch(&registry, &location, b"hello", None).await;

    let (sender, body) = channel_body();
    sender.send(Ok(Bytes::from_static(b"ab"))).await.unwrap();
    let stalled = request(Method::PATCH, &location).body(body).unwrap();
    // The sender stays alive, so the body neither ends nor sends more, and
    // the paused clock runs ahead to the idle timeout.
    let reply = registry.send(stalled).await;
    let status = registry.get(&location).await;
    drop(sender);

    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.error_code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), Some("0-4"));
}

#[tokio::test]
async fn failed_monolithic_post_leaves_no_session() {
    let registry = Registry::new();
    let digest = sha256(b"0123456789");
    let uri = format!("/v2/a/blobs/uploads/?digest={digest}");

    let short = request(Method::POST, &uri)
        .header(header::CONTENT_LENGTH, 10)
        .body(Body::from("01234"))
        .unwrap();
    let short = registry.send(short).await;
    let wrong = registry.send_bytes(Method::POST, &uri, b"9876543210").await;
    let disagreeing = request(Method::POST, &uri)
        .header(header::CONTENT_RANGE, "0-9")
        .header(header::CONTENT_LENGTH, 5)
        .body(Body::from("01234"))
        .unwrap();
    let disagreeing = registry.send(disagreeing).await;
    let sessions = std::fs::read_dir(registry.root().join("uploads"))
        .unwrap()
        .count();

    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    assert_eq!(short.error_code(), "SIZE_INVALID");
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert_eq!(wrong.error_code(), "DIGEST_INVALID");
    assert_eq!(disagreeing.status, StatusCode::BAD_REQUEST);
    assert_eq!(disagreeing.error_code(), "SIZE_INVALID");
    assert_eq!(sessions, 0);
}
