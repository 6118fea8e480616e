//! The HTTP API: the OCI Distribution Specification v1.1 under `/v2/`.
//!
//! Repository names contain slashes, so axum's path patterns cannot split
//! `/v2/<name>/manifests/<reference>`. One fallback route takes every path
//! under `/v2/`, `route::parse` splits it from the end, and `dispatch` picks
//! the handler by route and method. Handlers validate names, tags and
//! digests before they touch storage, and return `ApiError` for every
//! failure.

mod blobs;
mod body;
mod context;
mod error;
mod lists;
mod manifests;
mod route;
mod trace;
mod uploads;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tracing::Instrument;

pub use error::{ApiError, ErrorCode};
use route::Route;

use crate::extensions::{Dispatcher, Observers};
use crate::reference::RepoName;
use crate::storage::Storage;

/// Number of locks that order the changes of repositories. Two repositories
/// that share a lock only wait for each other's manifest changes.
const ORDER_LOCKS: usize = 64;

/// Settings of the API that handlers read on each request.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Whether DELETE of blobs, manifests and tags is allowed.
    pub delete_enabled: bool,
    /// Largest manifest body accepted, in bytes.
    pub manifest_max_bytes: u64,
    /// Maximum time a request body may send nothing before the request
    /// fails.
    pub idle_timeout: Duration,
    /// Maximum number of upload requests that stream a body at once.
    pub max_uploads: usize,
    /// Whether each request is logged at info when it completes.
    pub access_log: bool,
    /// Maximum time a request without a streamed blob body may take.
    pub request_timeout: Duration,
}

/// The state every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub storage: Arc<dyn Storage>,
    pub settings: Arc<ApiSettings>,
    /// Permits for upload requests that carry a body; a request that finds
    /// none left gets a 429 response. Created with `max_uploads` permits, and a
    /// permit is held until the upload request's response is built.
    pub upload_permits: Arc<Semaphore>,
    /// Routes events to extensions and runs guards.
    pub dispatcher: Arc<Dispatcher>,
    /// Held while a manifest or tag change is committed and its signals are
    /// emitted, so that extensions see one repository's events in commit
    /// order. Indexed by a hash of the repository name.
    order_locks: Arc<Vec<tokio::sync::Mutex<()>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state shared by all handlers.
    pub fn new(
        storage: Arc<dyn Storage>,
        settings: ApiSettings,
        dispatcher: Arc<Dispatcher>,
    ) -> Self {
        let permits = settings.max_uploads;
        Self {
            storage,
            settings: Arc::new(settings),
            upload_permits: Arc::new(Semaphore::new(permits)),
            dispatcher,
            order_locks: Arc::new(
                (0..ORDER_LOCKS)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
        }
    }

    /// Locks the ordering of `repo`'s changes until the guard drops.
    pub async fn order(&self, repo: &RepoName) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        repo.hash(&mut hasher);
        self.order_locks[hasher.finish() as usize % ORDER_LOCKS]
            .lock()
            .await
    }
}

/// Builds the router of the whole API.
pub fn router(state: AppState) -> Router {
    router_with(state, Vec::new(), Observers::default())
        .expect("the API's own routes do not overlap")
}

/// Builds the router of the API with the routes of extensions beside it,
/// and the request observers of extensions.
///
/// # Errors
///
/// When an extension's routes overlap the API's or another extension's.
pub fn router_with(
    state: AppState,
    extension_routers: Vec<(&'static str, Router)>,
    observers: Observers,
) -> Result<Router, String> {
    let access_log = state.settings.access_log;
    let mut app: Router = Router::new()
        .route("/v2", axum::routing::any(base))
        .route("/v2/", axum::routing::any(base))
        .route("/v2/{*path}", axum::routing::any(dispatch))
        .with_state(state);
    for (extension, router) in extension_routers {
        // axum panics when two routers serve one path.
        let base = app.clone();
        app = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || base.merge(router)))
            .map_err(|panic| {
                let reason = crate::extensions::panic_text(&panic);
                format!("extension {extension:?} serves a path that is already served: {reason}")
            })?;
    }
    let trace = trace::Trace::new(access_log, observers);
    Ok(app
        .fallback(not_found)
        .layer(axum::middleware::from_fn(move |request, next| {
            trace.clone().run(request, next)
        })))
}

/// Serves `GET /v2/`, which confirms to clients that this is a registry of
/// API version 2.
async fn base(method: Method) -> Response {
    let mut response = if method != Method::GET && method != Method::HEAD {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            format!("method {method} not allowed on /v2/; allowed: GET, HEAD"),
        )
        .with_header(header::ALLOW, HeaderValue::from_static("GET, HEAD"))
        .into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
    };
    response.extensions_mut().insert(trace::RouteName("base"));
    response
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::Unsupported,
        "no such endpoint; the registry API is under /v2/",
    )
}

/// Routes a request under `/v2/` to its handler.
async fn dispatch(State(state): State<AppState>, request: Request<Body>) -> Response {
    let path = request.uri().path().to_owned();
    let route = match route::parse(&path) {
        Some(route) => route,
        None => {
            let mut response = not_found().await.into_response();
            response
                .extensions_mut()
                .insert(trace::RouteName("unknown"));
            return response;
        }
    };
    let route_name = trace::RouteName(route.name());
    if let Some(repository) = route.repository() {
        tracing::Span::current().record("repository", repository);
    }

    let (parts, request_body) = request.into_parts();
    let streams_body = route.streams_body(&parts.method);

    // A request that changes state runs in a task of its own, so that a
    // client that disconnects, or a timeout, cannot stop it between storing
    // a change and firing its signals; only the wait for it ends early.
    let changes_state = !matches!(parts.method, Method::GET | Method::HEAD);
    let handler = {
        let state = state.clone();
        async move { handle(&state, &route, parts, request_body).await }
    };
    let run = async move {
        if changes_state {
            let task = tokio::spawn(handler.instrument(tracing::Span::current()));
            task.await
                .unwrap_or_else(|error| Err(ApiError::internal(format!("handler failed: {error}"))))
        } else {
            handler.await
        }
    };

    // Requests that stream a blob body in or out are bounded by
    // `http.idletimeout` instead, because their length has no limit.
    let result = if streams_body {
        run.await
    } else {
        let limit = state.settings.request_timeout;
        tokio::time::timeout(limit, run)
            .await
            .unwrap_or_else(|_| Err(ApiError::timed_out(limit)))
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(route_name);
    response
}

/// Calls the handler of a route and method.
async fn handle(
    state: &AppState,
    route: &Route,
    parts: Parts,
    request_body: Body,
) -> Result<Response, ApiError> {
    let method = parts.method.clone();
    match (route, &method) {
        // hyper sends no body in a response to HEAD, so the GET handlers
        // serve both.
        (Route::Catalog, &Method::GET | &Method::HEAD) => lists::catalog(state, &parts).await,
        (Route::Tags { name }, &Method::GET | &Method::HEAD) => {
            lists::tags(state, name, &parts).await
        }
        (Route::Referrers { name, digest }, &Method::GET | &Method::HEAD) => {
            lists::referrers(state, name, digest, &parts).await
        }
        (Route::Blob { name, digest }, &Method::GET | &Method::HEAD) => {
            blobs::get(state, name, digest, &parts).await
        }
        (Route::Blob { name, digest }, &Method::DELETE) => {
            blobs::delete(state, name, digest, &parts).await
        }
        (Route::UploadStart { name }, &Method::POST) => {
            uploads::start(state, name, &parts, request_body).await
        }
        (Route::Upload { name, id }, &Method::GET) => uploads::status(state, name, id).await,
        (Route::Upload { name, id }, &Method::PATCH) => {
            uploads::patch(state, name, id, &parts, request_body).await
        }
        (Route::Upload { name, id }, &Method::PUT) => {
            uploads::put(state, name, id, &parts, request_body).await
        }
        (Route::Upload { name, id }, &Method::DELETE) => uploads::cancel(state, name, id).await,
        (Route::Manifest { name, reference }, &Method::GET | &Method::HEAD) => {
            manifests::get(state, name, reference, &parts).await
        }
        (Route::Manifest { name, reference }, &Method::PUT) => {
            manifests::put(state, name, reference, &parts, request_body).await
        }
        (Route::Manifest { name, reference }, &Method::DELETE) => {
            manifests::delete(state, name, reference, &parts).await
        }
        _ => Err(method_not_allowed(route)),
    }
}

fn method_not_allowed(route: &Route) -> ApiError {
    let allowed = route.allowed_methods();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Unsupported,
        format!("method not allowed here; allowed: {allowed}"),
    )
    .with_header(header::ALLOW, HeaderValue::from_static(allowed))
}
