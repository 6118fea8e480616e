//! Upload sessions survive a crash: the registry is killed with SIGKILL in
//! the middle of a chunked upload, restarted on the same storage, and the
//! client finishes the upload from the `Range` that the new process reports.

use bytes::Bytes;
use futures_util::stream;
use registry_e2e::{Registry, pseudo_random_bytes, sha256_digest};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, LOCATION, RANGE};
use reqwest::{Client, StatusCode};

const REPOSITORY: &str = "e2e/resume";

/// The blob: a little over 3 MiB, so that it spans several of the
/// registry's write batches.
const BLOB_LEN: usize = 3 * 1024 * 1024 + 17;

/// The first chunk, which the registry acknowledges before the crash.
const FIRST_CHUNK_LEN: usize = 1024 * 1024 + 5;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("the response has no {name} header: {headers:?}"))
        .to_str()
        .unwrap_or_else(|e| panic!("the {name} header is not text: {e}"))
}

/// Returns the path and query of a `Location`, which may be absolute. The
/// port changes on restart, so only this part stays valid.
fn session_path(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_owned(),
        None => location.to_owned(),
    }
}

/// Returns the length of the upload that a `Range: 0-<last>` header reports.
fn range_len(range: &str) -> usize {
    let last = range
        .strip_prefix("0-")
        .unwrap_or_else(|| panic!("invalid upload Range {range:?}: expected 0-<last byte>"));
    let last: usize = last
        .parse()
        .unwrap_or_else(|e| panic!("invalid upload Range {range:?}: {e}"));
    last + 1
}

/// Opens an upload session and returns its path.
async fn start_upload(client: &Client, registry: &Registry) -> String {
    let response = client
        .post(registry.url(&format!("/v2/{REPOSITORY}/blobs/uploads/")))
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .expect("POST to open an upload session");
    assert_eq!(response.status(), StatusCode::ACCEPTED, "POST status");
    session_path(header(response.headers(), LOCATION.as_str()))
}

/// Sends `chunk` as the bytes at `start` of the upload at `path`, and returns
/// the session path from the response.
async fn patch_chunk(
    client: &Client,
    registry: &Registry,
    path: &str,
    start: usize,
    chunk: &[u8],
) -> String {
    let end = start + chunk.len() - 1;
    let response = client
        .patch(registry.url(path))
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_RANGE, format!("{start}-{end}"))
        .header(CONTENT_LENGTH, chunk.len().to_string())
        .body(chunk.to_vec())
        .send()
        .await
        .expect("PATCH of a chunk");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "PATCH {start}-{end} status"
    );
    assert_eq!(
        header(response.headers(), RANGE.as_str()),
        format!("0-{end}")
    );
    session_path(header(response.headers(), LOCATION.as_str()))
}

/// Returns the number of bytes that the session at `path` holds, from its
/// status `Range`.
async fn upload_offset(client: &Client, registry: &Registry, path: &str) -> usize {
    let response = client
        .get(registry.url(path))
        .send()
        .await
        .expect("GET of the upload status");
    assert_eq!(
        response.status(),
        StatusCode::NO_CONTENT,
        "upload status code"
    );
    range_len(header(response.headers(), RANGE.as_str()))
}

/// Commits the upload at `path` with the blob's digest, then checks that
/// the blob is served with the same bytes.
async fn commit_and_verify(client: &Client, registry: &Registry, path: &str, blob: &[u8]) {
    let digest = sha256_digest(blob);
    let separator = if path.contains('?') { '&' } else { '?' };
    let response = client
        .put(registry.url(&format!("{path}{separator}digest={digest}")))
        .header(CONTENT_LENGTH, "0")
        .send()
        .await
        .expect("PUT to commit the upload");
    assert_eq!(response.status(), StatusCode::CREATED, "PUT status");
    assert_eq!(header(response.headers(), "docker-content-digest"), digest);

    let response = client
        .get(registry.url(&format!("/v2/{REPOSITORY}/blobs/{digest}")))
        .send()
        .await
        .expect("GET of the blob");
    assert_eq!(response.status(), StatusCode::OK, "blob GET status");
    let served = response.bytes().await.expect("reading the blob body");
    assert_eq!(served.len(), blob.len(), "length of the served blob");
    assert_eq!(sha256_digest(&served), digest, "digest of the served blob");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_after_sigkill_between_chunks() {
    let mut registry = Registry::start();
    let client = Client::new();
    let blob = pseudo_random_bytes(3, BLOB_LEN);

    let path = start_upload(&client, &registry).await;
    let path = patch_chunk(&client, &registry, &path, 0, &blob[..FIRST_CHUNK_LEN]).await;

    // SIGKILL, then a new process on the same storage, maybe on a new port.
    tokio::task::block_in_place(|| registry.restart());

    let offset = upload_offset(&client, &registry, &path).await;
    assert_eq!(offset, FIRST_CHUNK_LEN, "bytes held after the restart");

    let path = patch_chunk(&client, &registry, &path, offset, &blob[offset..]).await;
    commit_and_verify(&client, &registry, &path, &blob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_resumes_after_sigkill_during_patch() {
    let mut registry = Registry::start();
    let client = Client::new();
    let blob = pseudo_random_bytes(4, BLOB_LEN);

    let path = start_upload(&client, &registry).await;
    let path = patch_chunk(&client, &registry, &path, 0, &blob[..FIRST_CHUNK_LEN]).await;

    // A streamed PATCH (no Content-Range, no Content-Length) whose body
    // stops after `sent` bytes and stays open, so the process is killed
    // while it is still reading the request.
    let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(64);
    let body = stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::io::Error>(chunk), receiver))
    });
    let request = client
        .patch(registry.url(&path))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(body))
        .send();
    let in_flight = tokio::spawn(request);

    let sent = 2 * 1024 * 1024;
    for piece in blob[FIRST_CHUNK_LEN..FIRST_CHUNK_LEN + sent].chunks(64 * 1024) {
        sender
            .send(Bytes::copy_from_slice(piece))
            .await
            .expect("the request body stream is open");
    }
    // Give the registry time to write some of those bytes. However much it
    // wrote, the checks below hold; the pause only makes a partial write
    // likely.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tokio::task::block_in_place(|| registry.restart());
    drop(sender);
    let outcome = in_flight.await.expect("the PATCH task did not panic");
    assert!(
        outcome.is_err(),
        "the interrupted PATCH returned a response: {outcome:?}"
    );

    // The session contains the acknowledged chunk plus any prefix of the
    // interrupted one, and the client resumes from there.
    let offset = upload_offset(&client, &registry, &path).await;
    assert!(
        offset >= FIRST_CHUNK_LEN,
        "the restart lost acknowledged bytes: {offset} < {FIRST_CHUNK_LEN}"
    );
    assert!(
        offset <= FIRST_CHUNK_LEN + sent,
        "the session holds {offset} bytes, more than the {} sent",
        FIRST_CHUNK_LEN + sent
    );

    let path = patch_chunk(&client, &registry, &path, offset, &blob[offset..]).await;
    commit_and_verify(&client, &registry, &path, &blob).await;
}
