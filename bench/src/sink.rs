//! A webhook receiver for the extension comparison: it accepts every
//! request on 127.0.0.1 with 204 and counts the bodies, so that the notify
//! extension delivers its events for real while the loads run.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running receiver, stopped when dropped.
#[derive(Debug)]
pub struct WebhookSink {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl WebhookSink {
    /// Starts the receiver on a free port.
    pub async fn start() -> Result<WebhookSink> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("failed to bind the webhook receiver")?;
        let addr = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        let counter = counter.clone();
                        async move {
                            // Read the whole body, as a real receiver would.
                            let _ = request.into_body().collect().await;
                            counter.fetch_add(1, Ordering::Relaxed);
                            let mut response = Response::new(Empty::<Bytes>::new());
                            *response.status_mut() = StatusCode::NO_CONTENT;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(WebhookSink {
            addr,
            received,
            task,
        })
    }

    /// Returns the number of POSTs received.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
