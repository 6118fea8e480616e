//! Request bodies and the headers that describe them.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use super::{ApiError, ErrorCode};
use crate::storage::{ByteRange, ByteStream};

/// Turns a request body into a stream that fails when no byte arrives for
/// `idle`, so a stalled client cannot hold an upload slot forever.
pub fn stream(body: Body, idle: Duration) -> ByteStream {
    let inner = body.into_data_stream();
    Box::pin(IdleTimeout::new(inner, idle))
}

/// Reads a whole body of at most `max` bytes.
///
/// # Errors
///
/// 413 when the body is larger than `max` (checked against Content-Length
/// first, then while reading), 400 when the body fails or stalls.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    max: u64,
    idle: Duration,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::SizeInvalid,
            format!("manifest is larger than the limit of {max} bytes (limits.manifestsize)"),
        )
    };
    if content_length(headers)?.is_some_and(|len| len > max) {
        return Err(too_large());
    }

    let mut stream = stream(body, idle);
    let mut buffer = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::ManifestInvalid,
                format!("reading the request body failed: {e}"),
            )
        })?;
        if (buffer.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// Returns the Content-Length header, if present.
///
/// # Errors
///
/// 400 `SIZE_INVALID` when it is not a number.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::SizeInvalid,
                format!("invalid Content-Length {value:?}"),
            )
        })
}

/// Parses the Content-Range of an upload chunk: `<start>-<end>`, inclusive.
/// Also accepts the `bytes <start>-<end>/<total>` form of RFC 9110, which
/// some clients send.
///
/// # Errors
///
/// 400 `BLOB_UPLOAD_INVALID` when the header is malformed or `end < start`.
pub fn content_range(headers: &HeaderMap) -> Result<Option<ByteRange>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BlobUploadInvalid,
            format!("invalid Content-Range {value:?}: expected <start>-<end>"),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let text = text
        .strip_prefix("bytes=")
        .or_else(|| text.strip_prefix("bytes "))
        .unwrap_or(text);
    let text = text.split_once('/').map_or(text, |(range, _)| range);
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.parse().map_err(|_| invalid())?;
    let end: u64 = end.parse().map_err(|_| invalid())?;
    // The length `end - start + 1` must fit in a u64.
    if end < start || end - start == u64::MAX {
        return Err(invalid());
    }
    Ok(Some(ByteRange { start, end }))
}

/// The outcome of reading a `Range` request header against a blob size.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable range: serve the whole blob.
    Whole,
    Partial(ByteRange),
    /// A valid range that lies outside the blob, which gets a 416 response.
    Unsatisfiable,
}

/// Reads a `Range` header of the form `bytes=a-b`, `bytes=a-` or `bytes=-n`.
/// A header with several ranges or in another unit is ignored, as RFC 9110
/// allows, and the whole blob is served.
pub fn range(headers: &HeaderMap, size: u64) -> RangeRequest {
    let Some(text) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeRequest::Whole;
    };
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };

    let (start, end) = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if end >= start => (start, end.min(size.saturating_sub(1))),
        // RFC 9110 makes a range whose last position is before its first
        // invalid, and an invalid Range header is ignored.
        (Ok(_), Ok(_)) => return RangeRequest::Whole,
        (Ok(start), Err(_)) if last.is_empty() => (start, size.saturating_sub(1)),
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 || size == 0 {
                return RangeRequest::Unsatisfiable;
            }
            (size.saturating_sub(suffix), size - 1)
        }
        _ => return RangeRequest::Whole,
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Partial(ByteRange { start, end })
}

/// A body stream that fails with `TimedOut` when no chunk arrives for a
/// while.
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }
}

impl<S> Stream for IdleTimeout<S>
where
    S: Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    type Item = io::Result<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;

        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            let idle = self.idle;
            let next = tokio::time::Instant::now() + idle;
            self.deadline.as_mut().reset(next);
            return Poll::Ready(item.map(|chunk| chunk.map_err(io::Error::other)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let message = format!(
                "no data received for {}",
                humantime::format_duration(self.idle)
            );
            return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, message))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    #[test]
    fn range_forms() {
        let cases = [
            (
                "bytes=0-9",
                RangeRequest::Partial(ByteRange { start: 0, end: 9 }),
            ),
            (
                "bytes=5-",
                RangeRequest::Partial(ByteRange { start: 5, end: 99 }),
            ),
            (
                "bytes=-10",
                RangeRequest::Partial(ByteRange { start: 90, end: 99 }),
            ),
            (
                "bytes=90-500",
                RangeRequest::Partial(ByteRange { start: 90, end: 99 }),
            ),
            (
                "bytes=-500",
                RangeRequest::Partial(ByteRange { start: 0, end: 99 }),
            ),
            ("bytes=100-200", RangeRequest::Unsatisfiable),
            ("bytes=50-10", RangeRequest::Whole),
            ("bytes=-0", RangeRequest::Unsatisfiable),
            ("bytes=0-1,5-6", RangeRequest::Whole),
            ("items=0-1", RangeRequest::Whole),
            ("bytes=x-y", RangeRequest::Whole),
        ];
        for (text, expected) in cases {
            assert_eq!(
                range(&headers(header::RANGE, text), 100),
                expected,
                "{text}"
            );
        }
    }

    #[test]
    fn content_range_forms() {
        let parse = |text| content_range(&headers(header::CONTENT_RANGE, text));
        assert_eq!(
            parse("0-99").unwrap(),
            Some(ByteRange { start: 0, end: 99 })
        );
        assert_eq!(
            parse("bytes 10-19/*").unwrap(),
            Some(ByteRange { start: 10, end: 19 })
        );
        assert!(parse("9-0").is_err());
        assert!(parse("0-18446744073709551615").is_err());
        assert!(parse("abc").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn idle_body_times_out() {
        let (_sender, body) = {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, io::Error>>(1);
            let stream = tokio_stream_from(rx);
            (tx, Body::from_stream(stream))
        };
        let mut stream = stream(body, Duration::from_secs(5));
        let result = stream.next().await.unwrap();
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
    }

    fn tokio_stream_from(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, io::Error>>,
    ) -> impl Stream<Item = Result<Bytes, io::Error>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
