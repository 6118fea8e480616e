//! The registry operations that seeding and the push loads perform, over
//! the OCI Distribution API: blob uploads (monolithic, chunked, by mount)
//! and manifest pushes.

use anyhow::{Result, bail};
use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::{Chunks, Connection, Reply};
use crate::content::{Blob, OCI_MANIFEST};

/// Fails unless `reply` has status `expected`, with the start of the body,
/// which contains the server's error message.
pub fn expect_status(reply: &Reply, expected: StatusCode, request: &str) -> Result<()> {
    if reply.status == expected {
        return Ok(());
    }
    let body = String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)]).into_owned();
    bail!(
        "{request}: expected {expected}, got {}: {body}",
        reply.status
    )
}

/// Returns the path and query of an upload `Location`, which may be an
/// absolute URL (distribution) or a path (this registry, crane).
pub fn location_path(location: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |slash| &rest[slash..]);
        }
    }
    location
}

/// Returns the upload location with the `digest` query parameter added.
pub fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    // A digest is `algorithm:hex`; the colon is allowed in a query.
    format!("{location}{separator}digest={digest}")
}

fn upload_location(reply: &Reply, request: &str) -> Result<String> {
    match reply.header("location") {
        Some(location) => Ok(location_path(location).to_owned()),
        None => bail!("{request}: {} without a Location header", reply.status),
    }
}

/// Starts an upload session in `repo` and returns its location.
///
/// # Errors
///
/// Fails unless the server returns 202 with a `Location`.
pub async fn start_upload(connection: &mut Connection, repo: &str) -> Result<String> {
    let path = format!("/v2/{repo}/blobs/uploads/");
    let reply = connection
        .send(Method::POST, &path, &[], Chunks::empty(), true)
        .await?;
    expect_status(&reply, StatusCode::ACCEPTED, "POST upload")?;
    upload_location(&reply, "POST upload")
}

/// Pushes `blob` to `repo` in one PUT after the POST that opens the session
/// (the monolithic upload of the OCI Distribution spec).
///
/// # Errors
///
/// Fails on a transport error or an unexpected status.
pub async fn push_blob_monolithic(
    connection: &mut Connection,
    repo: &str,
    blob: &Blob,
) -> Result<()> {
    let location = start_upload(connection, repo).await?;
    finish_upload(connection, &location, blob, Chunks::new(blob.parts.clone())).await
}

async fn finish_upload(
    connection: &mut Connection,
    location: &str,
    blob: &Blob,
    body: Chunks,
) -> Result<()> {
    let path = with_digest(location, &blob.digest);
    let headers = [("content-type", "application/octet-stream")];
    let reply = connection
        .send(Method::PUT, &path, &headers, body, true)
        .await?;
    expect_status(&reply, StatusCode::CREATED, "PUT upload")
}

/// Pushes `blob` to `repo` in PATCH requests of `chunk_size` bytes with
/// `Content-Range`, then a PUT with no body that commits the digest.
///
/// # Errors
///
/// Fails on a transport error or an unexpected status.
pub async fn push_blob_chunked(
    connection: &mut Connection,
    repo: &str,
    blob: &Blob,
    chunk_size: u64,
) -> Result<()> {
    let mut location = start_upload(connection, repo).await?;
    let mut start = 0u64;
    while start < blob.len {
        let end = (start + chunk_size).min(blob.len);
        // Content-Range of a chunk is `first-last`, both inclusive.
        let range = format!("{start}-{}", end - 1);
        let headers = [
            ("content-type", "application/octet-stream"),
            ("content-range", range.as_str()),
        ];
        let body = Chunks::new(blob.range(start, end));
        let reply = connection
            .send(Method::PATCH, &location, &headers, body, true)
            .await?;
        // The spec requires 202 for a chunk; crane 0.14 returns 204.
        if !matches!(reply.status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
            expect_status(&reply, StatusCode::ACCEPTED, "PATCH chunk")?;
        }
        location = upload_location(&reply, "PATCH chunk")?;
        start = end;
    }
    finish_upload(connection, &location, blob, Chunks::empty()).await
}

/// Makes `blob` available in `repo`: mounts it from `from`, or uploads it
/// when the server opens an upload instead (as crane does, which has no
/// cross-repository mount).
///
/// # Errors
///
/// Fails on a transport error or an unexpected status.
pub async fn mount_or_push(
    connection: &mut Connection,
    repo: &str,
    from: &str,
    blob: &Blob,
) -> Result<()> {
    let path = format!(
        "/v2/{repo}/blobs/uploads/?mount={}&from={from}",
        blob.digest
    );
    let reply = connection
        .send(Method::POST, &path, &[], Chunks::empty(), true)
        .await?;
    match reply.status {
        StatusCode::CREATED => Ok(()),
        StatusCode::ACCEPTED => {
            let location = upload_location(&reply, "POST mount")?;
            finish_upload(connection, &location, blob, Chunks::new(blob.parts.clone())).await
        }
        _ => expect_status(&reply, StatusCode::CREATED, "POST mount"),
    }
}

/// Deletes the blob at `path` (`/v2/<name>/blobs/<digest>`).
///
/// # Errors
///
/// Fails on a transport error or a status other than 202.
pub async fn delete_blob(connection: &mut Connection, path: &str) -> Result<()> {
    let reply = connection
        .send(Method::DELETE, path, &[], Chunks::empty(), true)
        .await?;
    expect_status(&reply, StatusCode::ACCEPTED, "DELETE blob")
}

/// Pushes an OCI image manifest to `repo` under `reference`, a tag or a
/// digest.
///
/// # Errors
///
/// Fails on a transport error or a status other than 201.
pub async fn put_manifest(
    connection: &mut Connection,
    repo: &str,
    reference: &str,
    manifest: &Bytes,
) -> Result<()> {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let headers = [("content-type", OCI_MANIFEST)];
    let reply = connection
        .send(Method::PUT, &path, &headers, manifest.clone().into(), true)
        .await?;
    expect_status(&reply, StatusCode::CREATED, "PUT manifest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_path_of_absolute_url() {
        assert_eq!(
            location_path("http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=s"),
            "/v2/a/blobs/uploads/x?_state=s"
        );
        assert_eq!(location_path("http://host"), "/");
    }

    #[test]
    fn location_path_of_relative_path() {
        assert_eq!(
            location_path("/v2/a/blobs/uploads/x"),
            "/v2/a/blobs/uploads/x"
        );
    }

    #[test]
    fn digest_joins_existing_query() {
        assert_eq!(
            with_digest("/u?_state=s", "sha256:ab"),
            "/u?_state=s&digest=sha256:ab"
        );
        assert_eq!(with_digest("/u", "sha256:ab"), "/u?digest=sha256:ab");
    }
}
