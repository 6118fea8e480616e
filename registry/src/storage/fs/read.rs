//! Streaming a blob file out in large reads on the blocking pool.
//!
//! Each read takes one trip to tokio's blocking pool, so reads are large
//! (`CHUNK`) and the next one starts while the last chunk is being sent.
//! The first chunk is read together with the open, so a blob of up to one
//! chunk costs a single trip.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use tokio::task::JoinHandle;

use super::blocking;
use crate::storage::ByteStream;

/// Bytes read per trip to the blocking pool.
const CHUNK: u64 = 1 << 20;

type ReadTask = JoinHandle<io::Result<Bytes>>;

/// Opens `path` and streams `len` bytes from `start`. Returns `None` when
/// the file does not exist.
pub async fn stream_file(path: PathBuf, start: u64, len: u64) -> io::Result<Option<ByteStream>> {
    let opened = blocking(move || match File::open(&path) {
        Ok(file) => {
            let first = read_chunk(&file, start, len.min(CHUNK))?;
            Ok(Some((Arc::new(file), first)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let Some((file, first)) = opened else {
        return Ok(None);
    };

    let mut offset = start + first.len() as u64;
    let end = start + len;
    let first_stream = stream::once(async move { Ok(first) });
    if offset >= end {
        return Ok(Some(Box::pin(first_stream)));
    }

    // The state is the file, the next offset to request, and the read that
    // is already running.
    let next = spawn_read(&file, offset, end);
    offset = (offset + CHUNK).min(end);
    let rest = stream::unfold(
        (file, offset, Some(next)),
        move |(file, offset, pending)| async move {
            let task = pending?;
            let chunk = match task.await {
                Ok(Ok(chunk)) => chunk,
                Ok(Err(e)) => return Some((Err(e), (file, end, None))),
                Err(e) => {
                    let error = io::Error::other(format!("blob read task failed: {e}"));
                    return Some((Err(error), (file, end, None)));
                }
            };
            let pending = (offset < end).then(|| spawn_read(&file, offset, end));
            let offset = (offset + CHUNK).min(end);
            Some((Ok(chunk), (file, offset, pending)))
        },
    );
    Ok(Some(Box::pin(futures_util::StreamExt::chain(
        first_stream,
        rest,
    ))))
}

fn spawn_read(file: &Arc<File>, offset: u64, end: u64) -> ReadTask {
    let file = file.clone();
    let len = (end - offset).min(CHUNK);
    tokio::task::spawn_blocking(move || read_chunk(&file, offset, len))
}

/// Reads exactly `len` bytes at `offset`. A file shorter than that is an
/// error, because blob files never shrink.
fn read_chunk(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    let mut buffer = BytesMut::zeroed(len as usize);
    file.read_exact_at(&mut buffer, offset)?;
    Ok(buffer.freeze())
}
