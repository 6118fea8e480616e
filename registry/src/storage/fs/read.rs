//! Streaming a blob file out in large reads on the blocking pool.
//!
//! Each read takes one trip to tokio's blocking pool, so reads are large
//! (`CHUNK`) and the next one starts while the last chunk is being sent.
//! The first chunk is read together with the open, so a blob of up to one
//! chunk costs a single trip. The file moves from one read task to the next,
//! so the reads are sequential and need no shared file position.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::PathBuf;

use bytes::Bytes;
use futures_util::stream;
use tokio::task::JoinHandle;

use super::blocking;
use crate::storage::ByteStream;

/// Bytes read per trip to the blocking pool. Larger reads cost fewer trips
/// but more memory per download in flight: two chunks per download.
const CHUNK: u64 = 256 << 10;

type ReadTask = JoinHandle<io::Result<(File, Bytes)>>;

/// Opens `path` and streams `len` bytes from `start`. Returns `None` when
/// the file does not exist.
pub async fn stream_file(path: PathBuf, start: u64, len: u64) -> io::Result<Option<ByteStream>> {
    let opened = blocking(move || match File::open(&path) {
        Ok(mut file) => {
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            let first = read_chunk(&mut file, len.min(CHUNK))?;
            Ok(Some((file, first)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await?;
    let Some((file, first)) = opened else {
        return Ok(None);
    };

    let remaining = len - first.len() as u64;
    let first_stream = stream::once(async move { Ok(first) });
    if remaining == 0 {
        return Ok(Some(Box::pin(first_stream)));
    }

    // The state is the bytes still to request after the read that is
    // already running, which owns the file.
    let next = spawn_read(file, remaining);
    let rest = stream::unfold((remaining, Some(next)), |(remaining, pending)| async move {
        let task = pending?;
        let (file, chunk) = match task.await {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Some((Err(e), (0, None))),
            Err(e) => {
                let error = io::Error::other(format!("blob read task failed: {e}"));
                return Some((Err(error), (0, None)));
            }
        };
        let remaining = remaining - chunk.len() as u64;
        let pending = (remaining > 0).then(|| spawn_read(file, remaining));
        Some((Ok(chunk), (remaining, pending)))
    });
    Ok(Some(Box::pin(futures_util::StreamExt::chain(
        first_stream,
        rest,
    ))))
}

/// Reads the whole file of `size` bytes in one trip to the blocking pool.
/// Returns `None` when the file does not exist.
pub async fn read_file(path: PathBuf, size: u64) -> io::Result<Option<Bytes>> {
    blocking(move || match File::open(&path) {
        Ok(mut file) => read_chunk(&mut file, size).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    })
    .await
}

fn spawn_read(mut file: File, remaining: u64) -> ReadTask {
    tokio::task::spawn_blocking(move || {
        let chunk = read_chunk(&mut file, remaining.min(CHUNK))?;
        Ok((file, chunk))
    })
}

/// Reads exactly `len` bytes from the file's position. `read_to_end` fills
/// the buffer without zeroing it first. A file shorter than that is an
/// error, because blob files never shrink.
fn read_chunk(file: &mut File, len: u64) -> io::Result<Bytes> {
    let mut buffer = Vec::with_capacity(len as usize);
    file.by_ref().take(len).read_to_end(&mut buffer)?;
    if (buffer.len() as u64) < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("blob file ended {} bytes early", len - buffer.len() as u64),
        ));
    }
    Ok(Bytes::from(buffer))
}
