//! The request context that events carry, and the id the trace middleware
//! gives each request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use axum::http::header;
use axum::http::request::Parts;
use registry_signals::RequestContext;

use super::AppState;

/// The id of a request, put into its extensions by the trace middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Builds the context of the events a request causes.
pub fn request_context(state: &AppState, parts: &Parts) -> Arc<RequestContext> {
    let text = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    Arc::new(RequestContext {
        request_id: parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.to_string())
            .unwrap_or_default(),
        actor: None,
        remote_addr: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0),
        user_agent: text(header::USER_AGENT),
        method: parts.method.to_string(),
        host: text(header::HOST),
        instance_id: state.dispatcher.instance_id().to_owned(),
    })
}
