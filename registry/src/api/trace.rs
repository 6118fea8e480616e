//! The request span, the request id, and the headers every response carries.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::context::RequestId;

/// Runs a request inside its span and stamps the response.
///
/// The span carries a fresh request id (also sent back as `X-Request-Id`),
/// the method, the path and, once the route is known, the repository. When
/// `access_log` is on, one info line per request records the status and the
/// time to the response head.
pub async fn trace_request(access_log: bool, mut request: Request, next: Next) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    request
        .extensions_mut()
        .insert(RequestId(Arc::from(request_id.as_str())));
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        repository = tracing::field::Empty,
    );
    let started = Instant::now();

    let mut response = next.run(request).instrument(span.clone()).await;

    let headers = response.headers_mut();
    headers.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", value);
    }
    if access_log {
        let status = response.status().as_u16();
        let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        span.in_scope(|| tracing::info!(status, elapsed_ms, "request completed"));
    }
    response
}
