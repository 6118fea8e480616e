//! Blob uploads: `POST /v2/<name>/blobs/uploads/` and the session endpoints
//! `GET`, `PATCH`, `PUT` and `DELETE /v2/<name>/blobs/uploads/<id>`.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::OwnedSemaphorePermit;

use registry_signals::{BlobMounted, BlobPushed, Signal};

use super::blobs::header_value;
use super::body;
use super::context::request_context;
use super::{ApiError, AppState, ErrorCode};
use crate::reference::{Algorithm, Digest, RepoName};
use crate::storage::{Chunk, StorageError, UploadStatus};

/// Opens an upload session, stores a blob in one request (`?digest=`), or
/// mounts a blob from another repository (`?mount=&from=`).
pub async fn start(
    state: &AppState,
    name: &str,
    parts: &Parts,
    request_body: Body,
) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let query = query(parts);

    if let Some(mount) = query.get("mount") {
        let digest = Digest::parse(mount).map_err(ApiError::digest_invalid)?;
        let from = match query.get("from") {
            Some(from) => Some(RepoName::parse(from).map_err(ApiError::name_invalid)?),
            None => None,
        };
        if let Some(size) = state
            .storage
            .blob_mount(&repo, &digest, from.as_ref())
            .await?
        {
            tracing::debug!(%digest, size, from = from.as_ref().map(RepoName::as_str), "blob mounted");
            let signal = Signal::from(BlobMounted {
                repository: repo.to_string(),
                digest: digest.to_string(),
                size,
                source_repository: from.as_ref().map(RepoName::to_string),
            });
            state
                .dispatcher
                .emit(&request_context(state, parts), vec![signal])
                .await;
            return Ok(blob_created(&repo, &digest));
        }
        // The spec requires a new session when the mount cannot be done, so
        // that the client uploads the blob instead.
        let status = state.storage.upload_start(&repo, Algorithm::Sha256).await?;
        return Ok(session_response(StatusCode::ACCEPTED, &repo, &status));
    }

    if let Some(digest) = query.get("digest") {
        let digest = Digest::parse(digest).map_err(ApiError::digest_invalid)?;
        let _permit = upload_permit(state)?;
        let chunk = request_chunk(state, parts, request_body)?;
        let status = state
            .storage
            .upload_start(&repo, digest.algorithm())
            .await?;
        let result = commit(state, parts, &repo, &status.id, &digest, Some(chunk)).await;
        if result.is_err() {
            // The client never saw this session's id, so nothing could resume
            // it. A digest mismatch has removed it already, and a failed
            // cancel leaves it to the purge of stale sessions.
            let _ = state.storage.upload_cancel(&repo, &status.id).await;
        }
        return result;
    }

    let algorithm = match query.get("digest-algorithm") {
        Some(name) => Algorithm::parse(name).map_err(ApiError::digest_invalid)?,
        None => Algorithm::Sha256,
    };
    let status = state.storage.upload_start(&repo, algorithm).await?;
    tracing::debug!(upload = %status.id, "upload session opened");
    Ok(session_response(StatusCode::ACCEPTED, &repo, &status))
}

/// Reports how many bytes a session holds.
pub async fn status(state: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let status = state.storage.upload_status(&repo, id).await?;
    Ok(session_response(StatusCode::NO_CONTENT, &repo, &status))
}

/// Appends a chunk (with `Content-Range`) or a streamed body (without).
pub async fn patch(
    state: &AppState,
    name: &str,
    id: &str,
    parts: &Parts,
    request_body: Body,
) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let _permit = upload_permit(state)?;
    let chunk = request_chunk(state, parts, request_body)?;
    match state.storage.upload_append(&repo, id, chunk).await {
        Ok(status) => Ok(session_response(StatusCode::ACCEPTED, &repo, &status)),
        Err(error) => Err(with_session_headers(state, &repo, id, error).await),
    }
}

/// Commits a session with `?digest=`, after an optional last chunk.
pub async fn put(
    state: &AppState,
    name: &str,
    id: &str,
    parts: &Parts,
    request_body: Body,
) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let query = query(parts);
    let digest = query.get("digest").ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            "the digest query parameter is required to finish an upload",
        )
    })?;
    let digest = Digest::parse(digest).map_err(ApiError::digest_invalid)?;

    // A body is present unless the request declares none.
    let has_body = parts.headers.contains_key(header::CONTENT_RANGE)
        || body::content_length(&parts.headers)? != Some(0);
    let _permit = if has_body {
        Some(upload_permit(state)?)
    } else {
        None
    };
    let last = if has_body {
        Some(request_chunk(state, parts, request_body)?)
    } else {
        None
    };
    commit(state, parts, &repo, id, &digest, last).await
}

/// Cancels a session.
pub async fn cancel(state: &AppState, name: &str, id: &str) -> Result<Response, ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    state.storage.upload_cancel(&repo, id).await?;
    tracing::debug!(upload = %id, "upload session cancelled");
    Ok((StatusCode::NO_CONTENT, [(header::CONTENT_LENGTH, "0")]).into_response())
}

async fn commit(
    state: &AppState,
    parts: &Parts,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
    last: Option<Chunk>,
) -> Result<Response, ApiError> {
    match state.storage.upload_commit(repo, id, digest, last).await {
        Ok(size) => {
            tracing::debug!(%digest, size, "blob stored");
            let signal = Signal::from(BlobPushed {
                repository: repo.to_string(),
                digest: digest.to_string(),
                size,
            });
            state
                .dispatcher
                .emit(&request_context(state, parts), vec![signal])
                .await;
            Ok(blob_created(repo, digest))
        }
        Err(error) => Err(with_session_headers(state, repo, id, error).await),
    }
}

/// Adds the session's `Location` and `Range` to a 416, so the client can
/// resume from the right offset.
async fn with_session_headers(
    state: &AppState,
    repo: &RepoName,
    id: &str,
    error: StorageError,
) -> ApiError {
    let out_of_order = matches!(error, StorageError::ChunkOutOfOrder { .. });
    let mut api_error = ApiError::from(error);
    if out_of_order && let Ok(status) = state.storage.upload_status(repo, id).await {
        api_error = api_error
            .with_header(
                header::LOCATION,
                header_value(&session_location(repo, &status.id)),
            )
            .with_header(header::RANGE, header_value(&range_header(status.offset)));
    }
    api_error
}

/// Builds the storage chunk of a request: its `Content-Range` start, its
/// declared length, and its body.
fn request_chunk(state: &AppState, parts: &Parts, request_body: Body) -> Result<Chunk, ApiError> {
    let headers = &parts.headers;
    let range = body::content_range(headers)?;
    let length = body::content_length(headers)?;
    if let (Some(range), Some(length)) = (range, length)
        && range.len() != length
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::SizeInvalid,
            format!(
                "Content-Range {}-{} covers {} bytes but Content-Length is {length}",
                range.start,
                range.end,
                range.len()
            ),
        ));
    }

    Ok(Chunk {
        start: range.map(|r| r.start),
        declared_len: range.map(|r| r.len()).or(length),
        body: body::stream(request_body, state.settings.idle_timeout),
    })
}

fn upload_permit(state: &AppState) -> Result<OwnedSemaphorePermit, ApiError> {
    state
        .upload_permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                format!(
                    "too many uploads in progress (limits.maxuploads is {}); retry later",
                    state.settings.max_uploads
                ),
            )
            .with_header(header::RETRY_AFTER, header_value("1"))
        })
}

fn query(parts: &Parts) -> HashMap<String, String> {
    let query = parts.uri.query().unwrap_or_default();
    url_pairs(query).collect()
}

/// Splits a query string into decoded pairs.
pub fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

/// Decodes `%XX` escapes and `+` as a space. Invalid escapes stay as they
/// are, and the value then fails validation with its text shown.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte as u8);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn blob_created(repo: &RepoName, digest: &Digest) -> Response {
    (
        StatusCode::CREATED,
        [
            (
                header::LOCATION,
                header_value(&format!("/v2/{repo}/blobs/{digest}")),
            ),
            (
                header::HeaderName::from_static("docker-content-digest"),
                header_value(&digest.to_string()),
            ),
            (header::CONTENT_LENGTH, header_value("0")),
        ],
    )
        .into_response()
}

fn session_location(repo: &RepoName, id: &str) -> String {
    format!("/v2/{repo}/blobs/uploads/{id}")
}

/// The `Range` header of a session: `0-<last byte>`. An empty session is
/// reported as `0-0`, as the Go registry does and clients expect.
fn range_header(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

fn session_response(status_code: StatusCode, repo: &RepoName, status: &UploadStatus) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        header_value(&session_location(repo, &status.id)),
    );
    headers.insert(header::RANGE, header_value(&range_header(status.offset)));
    headers.insert("docker-upload-uuid", header_value(&status.id));
    headers.insert(header::CONTENT_LENGTH, header_value("0"));
    (status_code, headers).into_response()
}
