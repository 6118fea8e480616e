//! Events: a signal with its id, time and request context.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::signal::Signal;

/// One occurrence of a signal, as a receiver gets it.
#[derive(Debug, Clone)]
pub struct Event {
    /// A unique id (a UUID), stable across redeliveries, so receivers can
    /// drop duplicates.
    pub id: String,
    /// When the change happened.
    pub timestamp: SystemTime,
    /// The request that caused the event, shared by all its events.
    pub context: Arc<RequestContext>,
    pub signal: Signal,
}

/// The request behind an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// The request id, also sent to the client as `X-Request-Id`.
    pub request_id: String,
    /// The authenticated user, when authentication is configured.
    pub actor: Option<String>,
    /// The address of the client's connection.
    pub remote_addr: Option<SocketAddr>,
    /// The client's `User-Agent` header.
    pub user_agent: Option<String>,
    /// The HTTP method of the request.
    pub method: String,
    /// The `Host` header the client used, for building URLs.
    pub host: Option<String>,
    /// The id of the registry process, new at every start.
    pub instance_id: String,
}
