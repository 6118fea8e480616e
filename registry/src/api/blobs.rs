//! `GET`, `HEAD` and `DELETE /v2/<name>/blobs/<digest>`.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use registry_signals::{BlobDeleted, BlobPulled, Signal, SignalKind};

use super::body::{self, RangeRequest};
use super::context::request_context;
use super::{ApiError, AppState, ErrorCode};
use crate::reference::{Digest, RepoName};

/// Parses the repository name and digest of a blob route.
pub fn parse_target(name: &str, digest: &str) -> Result<(RepoName, Digest), ApiError> {
    let repo = RepoName::parse(name).map_err(ApiError::name_invalid)?;
    let digest = Digest::parse(digest).map_err(ApiError::digest_invalid)?;
    Ok((repo, digest))
}

/// Serves a blob, whole or the byte range the `Range` header requests.
pub async fn get(
    state: &AppState,
    name: &str,
    digest: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let (repo, digest) = parse_target(name, digest)?;
    let size = state.storage.blob_size(&repo, &digest).await?;

    let range = match body::range(&parts.headers, size) {
        RangeRequest::Whole => None,
        RangeRequest::Partial(range) => Some(range),
        RangeRequest::Unsatisfiable => {
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::SizeInvalid,
                format!("requested range is outside the blob of {size} bytes"),
            )
            .with_header(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{size}")),
            ));
        }
    };

    let digest_header = header_value(&digest.to_string());
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest_header.clone())
        .header(header::ETAG, header_value(&format!("\"{digest}\"")))
        // Content-addressed bytes never change.
        .header(header::CACHE_CONTROL, "max-age=31536000");
    let length = match range {
        Some(range) => {
            builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", range.start, range.end)),
            );
            range.len()
        }
        None => size,
    };
    builder = builder.header(header::CONTENT_LENGTH, length);

    if parts.method == Method::HEAD {
        return Ok(builder.body(Body::empty()).expect("valid response"));
    }
    let content = state.storage.blob_read(&repo, &digest, range).await?;
    if state.dispatcher.wants(SignalKind::BlobPulled) {
        let signal = Signal::from(BlobPulled {
            repository: repo.to_string(),
            digest: digest.to_string(),
            size,
        });
        state
            .dispatcher
            .emit(&request_context(state, parts), vec![signal])
            .await;
    } else {
        state.dispatcher.count(SignalKind::BlobPulled);
    }
    Ok(builder
        .body(Body::from_stream(content.body))
        .expect("valid response"))
}

/// Removes a blob from a repository.
pub async fn delete(
    state: &AppState,
    name: &str,
    digest: &str,
    parts: &Parts,
) -> Result<Response, ApiError> {
    let (repo, digest) = parse_target(name, digest)?;
    if !state.settings.delete_enabled {
        return Err(ApiError::delete_disabled());
    }
    state.storage.blob_delete(&repo, &digest).await?;
    tracing::debug!(%digest, "blob deleted");
    let signal = Signal::from(BlobDeleted {
        repository: repo.to_string(),
        digest: digest.to_string(),
    });
    state
        .dispatcher
        .emit(&request_context(state, parts), vec![signal])
        .await;
    Ok((StatusCode::ACCEPTED, [(header::CONTENT_LENGTH, "0")]).into_response())
}

/// Builds a header value from text that the registry produced itself.
pub fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("registry-built header values are visible ASCII")
}
