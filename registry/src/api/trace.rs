//! The request span, the request id, the headers every response carries,
//! and the records that request observers of extensions get.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};
use registry_signals::RequestRecord;
use tracing::Instrument;

use super::context::RequestId;
use crate::extensions::Observers;

/// The middleware's settings: the access log switch and the observers.
#[derive(Debug, Clone)]
pub struct Trace {
    access_log: bool,
    observers: Observers,
}

impl Trace {
    pub fn new(access_log: bool, observers: Observers) -> Self {
        Self {
            access_log,
            observers,
        }
    }

    /// Runs a request inside its span and stamps the response.
    ///
    /// The span carries a fresh request id (also sent back as
    /// `X-Request-Id`), the method, the path and, once the route is known,
    /// the repository. When `access_log` is on, one info line per request
    /// records the status and the time to the response head. When
    /// extensions observe requests, both bodies are counted and the
    /// observers are called once the response body ends, or at the
    /// response head when no body or a small one of known length follows.
    pub async fn run(self, mut request: Request, next: Next) -> Response {
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

        let mut observed = None;
        if !self.observers.is_empty() {
            let method = request.method().clone();
            // A request without a body, the common case, needs no counter.
            let bytes_in = if http_body::Body::size_hint(request.body()).exact() == Some(0) {
                None
            } else {
                let bytes_in = Arc::new(AtomicU64::new(0));
                let (parts, body) = request.into_parts();
                let counted = CountedBody::new(body, Counter::Shared(bytes_in.clone()));
                request = Request::from_parts(parts, Body::new(counted));
                Some(bytes_in)
            };
            observed = Some((bytes_in, method));
        }

        let mut response = next.run(request).instrument(span.clone()).await;

        let headers = response.headers_mut();
        headers.insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert("x-request-id", value);
        }
        if self.access_log {
            let status = response.status().as_u16();
            let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
            span.in_scope(|| tracing::info!(status, elapsed_ms, "request completed"));
        }

        let Some((bytes_in, method)) = observed else {
            return response;
        };
        let status = response.status().as_u16();
        // The API's handlers name the route of every path under `/v2`. A
        // route outside it that exists belongs to an extension.
        let route = match response.extensions().get::<RouteName>() {
            Some(RouteName(name)) => name,
            None if status == 404 => "unknown",
            None => "extension",
        };
        let finish = Finish {
            observers: self.observers,
            route,
            method,
            status,
            started,
            bytes_in,
        };
        // A small body of known length leaves with the head, so the
        // request is reported now, without a counting wrapper around it.
        // hyper sends no body in a response to HEAD, nor with 204 or 304.
        let bodiless = finish.method == Method::HEAD || matches!(status, 204 | 304);
        if bodiless {
            finish.report(0);
            return response;
        }
        if let Some(length) = http_body::Body::size_hint(response.body()).exact()
            && length <= SMALL_BODY
        {
            finish.report(length);
            return response;
        }
        response.map(|body| Body::new(CountedBody::new(body, Counter::Finish(finish, 0))))
    }
}

/// The largest response body of known length that observers get at the
/// response head instead of its end: a manifest or an error body. hyper
/// hands such a body to the socket in the same write as the head when the
/// socket's buffer takes it, so its end comes moments later.
const SMALL_BODY: u64 = 64 << 10;

/// The name of the API route that served a request, which the API's
/// handlers put into the response's extensions for the observers.
#[derive(Debug, Clone, Copy)]
pub struct RouteName(pub &'static str);

/// The end of a request that observers wait for.
struct Finish {
    observers: Observers,
    route: &'static str,
    method: Method,
    status: u16,
    started: Instant,
    /// The request body's counter; `None` for a request without a body.
    bytes_in: Option<Arc<AtomicU64>>,
}

impl Finish {
    fn report(&self, bytes_out: u64) {
        let record = RequestRecord {
            route: self.route,
            method: self.method.as_str(),
            status: self.status,
            duration: self.started.elapsed(),
            bytes_in: self
                .bytes_in
                .as_ref()
                .map_or(0, |count| count.load(Ordering::Relaxed)),
            bytes_out,
        };
        self.observers.observe(&record);
    }
}

/// The destination of a counted body's byte count: a counter shared with
/// the response (request bodies), or the observers once the body ends
/// (response bodies).
enum Counter {
    Shared(Arc<AtomicU64>),
    Finish(Finish, u64),
    Reported,
}

/// A body that counts the bytes of its data frames.
struct CountedBody {
    inner: Body,
    counter: Counter,
}

impl CountedBody {
    fn new(inner: Body, counter: Counter) -> Self {
        Self { inner, counter }
    }

    fn add(&mut self, bytes: u64) {
        match &mut self.counter {
            Counter::Shared(total) => {
                total.fetch_add(bytes, Ordering::Relaxed);
            }
            Counter::Finish(_, total) => *total += bytes,
            Counter::Reported => {}
        }
    }

    /// Calls the observers once, at the end of the body or when it is
    /// dropped before its end (the client went away).
    fn report(&mut self) {
        if let Counter::Finish(..) = self.counter
            && let Counter::Finish(finish, total) =
                std::mem::replace(&mut self.counter, Counter::Reported)
        {
            finish.report(total);
        }
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    self.add(len);
                }
            }
            Poll::Ready(None) => self.report(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        self.report();
    }
}
