//! The load generator's HTTP client: one HTTP/1.1 keep-alive connection
//! per simulated client, on hyper's low-level connection API.
//!
//! hyper's pooled clients and reqwest add a pool lookup and boxing to every
//! request. This benchmark shares two cores with the server it measures, so
//! it keeps that overhead off the request path.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// A request body made of shared buffers, sent without copying them.
#[derive(Debug, Default)]
pub struct Chunks {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl Chunks {
    /// Returns a body made of `parts` in order.
    pub fn new(parts: impl IntoIterator<Item = Bytes>) -> Chunks {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        Chunks { parts, remaining }
    }

    /// Returns an empty body.
    pub fn empty() -> Chunks {
        Chunks::default()
    }

    /// Returns the number of bytes left to send.
    pub fn len(&self) -> u64 {
        self.remaining
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Chunks {
        Chunks::new([bytes])
    }
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.remaining -= part.len() as u64;
        }
        Poll::Ready(next.map(|part| Ok(Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A response whose body was read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body, kept only when the request asked for it.
    pub body: Bytes,
    /// Bytes of body received, kept or not.
    pub body_len: u64,
}

impl Reply {
    /// Returns a header's value as text, or `None` when it is missing or
    /// not ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }
}

/// One HTTP/1.1 connection to a server, reopened when the server closes it.
#[derive(Debug)]
pub struct Connection {
    addr: SocketAddr,
    host: HeaderValue,
    /// The request half of the connection; `None` before the first request
    /// and after a failure, so the next request opens a new connection.
    /// The connection half runs in a task that ends when this is dropped.
    sender: Option<SendRequest<Chunks>>,
}

impl Connection {
    /// Returns a connection to `addr` that connects on its first request.
    pub fn new(addr: SocketAddr) -> Connection {
        let host = HeaderValue::from_str(&addr.to_string()).expect("a socket address is ASCII");
        Connection {
            addr,
            host,
            sender: None,
        }
    }

    /// Opens the TCP connection now, so that the first timed request does
    /// not pay for it.
    ///
    /// # Errors
    ///
    /// Fails when the server does not accept the connection.
    pub async fn connect(&mut self) -> Result<()> {
        self.ready_sender().await.map(|_| ())
    }

    async fn ready_sender(&mut self) -> Result<&mut SendRequest<Chunks>> {
        if let Some(sender) = &mut self.sender {
            if sender.ready().await.is_ok() {
                return Ok(self.sender.as_mut().expect("checked above"));
            }
            self.sender = None;
        }

        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("failed to connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP handshake with {} failed", self.addr))?;
        tokio::spawn(async move {
            // An error here is a closed or reset connection, which the next
            // request notices and reopens.
            let _ = connection.await;
        });
        Ok(self.sender.insert(sender))
    }

    /// Sends one request and reads the whole response. The body is kept
    /// when `keep_body` is true and only counted otherwise.
    ///
    /// # Errors
    ///
    /// Fails on a connection or protocol error; the connection is then
    /// dropped and the next request opens a new one. An HTTP error status is
    /// not an error here.
    pub async fn send(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, &str)],
        body: Chunks,
        keep_body: bool,
    ) -> Result<Reply> {
        let result = self
            .send_once(method, path_and_query, headers, body, keep_body)
            .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn send_once(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(&'static str, &str)],
        body: Chunks,
        keep_body: bool,
    ) -> Result<Reply> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path_and_query)
            .header(HOST, self.host.clone());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        // A body-less request carries Content-Length only where a body is
        // expected, as curl and the Go client do.
        if body.len() > 0 || method == Method::PUT || method == Method::PATCH {
            request = request.header(CONTENT_LENGTH, body.len());
        }
        let request = request
            .body(body)
            .with_context(|| format!("invalid request {method} {path_and_query}"))?;

        let sender = self.ready_sender().await?;
        let response = sender
            .send_request(request)
            .await
            .with_context(|| format!("{method} {path_and_query} failed"))?;
        let (parts, mut incoming) = response.into_parts();

        let mut body = BytesMut::new();
        let mut body_len = 0u64;
        while let Some(frame) = incoming.frame().await {
            let frame = frame
                .with_context(|| format!("reading the body of {method} {path_and_query} failed"))?;
            if let Ok(data) = frame.into_data() {
                body_len += data.len() as u64;
                if keep_body {
                    body.extend_from_slice(&data);
                }
            }
        }
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.freeze(),
            body_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_report_exact_size() {
        let body = Chunks::new([
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]);
        assert_eq!(body.len(), 5);
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
    }

    #[tokio::test]
    async fn chunks_yield_parts_in_order() {
        let body = Chunks::new([Bytes::from_static(b"abc"), Bytes::from_static(b"de")]);
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");
    }

    #[test]
    fn empty_chunks_end_at_once() {
        let body = Chunks::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
