//! The one place where failures become HTTP responses.
//!
//! Every handler returns `ApiError` on failure, and its `IntoResponse` writes
//! the error body of the OCI Distribution Specification:
//! `{"errors":[{"code":…,"message":…,"detail":…}]}`. Client mistakes are
//! logged at debug; server faults are logged once here at error, with the
//! request span that carries the request id, and the client sees only a
//! generic message.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::manifest::ManifestError;
use crate::reference::ReferenceError;
use crate::storage::StorageError;

/// The error codes of the OCI Distribution Specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    /// A server fault (500). Codes for 5xx are outside the spec's list, which
    /// covers 4xx bodies only; these two are the Go registry's.
    Unknown,
    /// The registry could not finish the request in time (503).
    Unavailable,
}

impl ErrorCode {
    /// Returns the code as it appears in the error body.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::Unknown => "UNKNOWN",
            Self::Unavailable => "UNAVAILABLE",
        }
    }
}

/// A failed request: the status, the OCI code and a message for the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Extra headers, such as `Range` on a 416 for an upload.
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// For server faults: the cause, logged but never sent.
    internal: Option<String>,
}

impl ApiError {
    /// Builds a client error.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            internal: None,
        }
    }

    /// Builds a server fault whose cause is logged and not shown.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: ErrorCode::Unknown,
            message: "internal server error; the registry log has the cause under this \
                      response's X-Request-Id"
                .to_owned(),
            headers: Vec::new(),
            internal: Some(cause.to_string()),
        }
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn name_invalid(error: ReferenceError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::NameInvalid,
            error.to_string(),
        )
    }

    pub fn digest_invalid(error: ReferenceError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::DigestInvalid,
            error.to_string(),
        )
    }

    /// Builds the error for a request that ran past `http.requesttimeout`.
    pub fn timed_out(limit: std::time::Duration) -> Self {
        tracing::warn!(
            limit = %humantime::format_duration(limit),
            "request timed out (http.requesttimeout)"
        );
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!(
                "the request did not complete within {} (http.requesttimeout); retry later",
                humantime::format_duration(limit)
            ),
        )
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// Builds the error for a DELETE while deletes are turned off. The spec allows
    /// 400 or 405; 405 says that the method, not the request, is the problem.
    pub fn delete_disabled() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "deletes are disabled on this registry (storage.delete.enabled is false)",
        )
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        use StatusCode as S;
        let message = error.to_string();
        match error {
            StorageError::BlobUnknown(_) => {
                Self::new(S::NOT_FOUND, ErrorCode::BlobUnknown, message)
            }
            StorageError::ManifestUnknown(_) => {
                Self::new(S::NOT_FOUND, ErrorCode::ManifestUnknown, message)
            }
            StorageError::NameUnknown(_) => {
                Self::new(S::NOT_FOUND, ErrorCode::NameUnknown, message)
            }
            StorageError::UploadUnknown(_) => {
                Self::new(S::NOT_FOUND, ErrorCode::BlobUploadUnknown, message)
            }
            // The spec requires 416 for a chunk that does not start where
            // the last one ended.
            StorageError::ChunkOutOfOrder { .. } => Self::new(
                S::RANGE_NOT_SATISFIABLE,
                ErrorCode::BlobUploadInvalid,
                message,
            ),
            StorageError::SizeMismatch { .. } => {
                Self::new(S::BAD_REQUEST, ErrorCode::SizeInvalid, message)
            }
            StorageError::DigestMismatch { .. } => {
                Self::new(S::BAD_REQUEST, ErrorCode::DigestInvalid, message)
            }
            StorageError::ManifestBlobUnknown(_) => {
                Self::new(S::BAD_REQUEST, ErrorCode::ManifestBlobUnknown, message)
            }
            StorageError::ManifestSizeMismatch { .. } => {
                Self::new(S::BAD_REQUEST, ErrorCode::ManifestInvalid, message)
            }
            StorageError::Body(_) => {
                Self::new(S::BAD_REQUEST, ErrorCode::BlobUploadInvalid, message)
            }
            StorageError::Io { .. } => Self::internal(message),
        }
    }
}

impl From<ManifestError> for ApiError {
    fn from(error: ManifestError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestInvalid,
            error.to_string(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self.internal {
            Some(cause) => tracing::error!(error = %cause, "request failed"),
            None => tracing::debug!(
                status = self.status.as_u16(),
                code = self.code.as_str(),
                message = %self.message,
                "request rejected"
            ),
        }

        let body = json!({
            "errors": [{ "code": self.code.as_str(), "message": self.message }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().append(name, value);
        }
        response
    }
}
