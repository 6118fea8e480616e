//! Upload sessions on disk.
//!
//! A session is a folder `uploads/<id>/` with `info` (repository, digest
//! algorithm, start time, as JSON) and `data` (the bytes so far). Both are on
//! disk, so a restarted process continues where the last one stopped. The
//! running hash lives in memory only; after a restart, or when the cached
//! hash does not cover exactly the bytes on disk, the stored bytes are hashed
//! again. The data is synced when the upload is committed, before the blob
//! becomes visible, and a failed append truncates `data` back to where it
//! started. A process killed in
//! the middle of an append cannot truncate: the session then keeps the
//! bytes that arrived, and the client resumes from the offset that the
//! status request reports.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{FsStorage, blocking, files};
use crate::reference::{Algorithm, Digest, Hasher, RepoName};
use crate::storage::{Chunk, Result, StorageError, UploadStatus};

/// Bytes collected from the request before one blocking task writes them
/// and another hashes them. Each upload in flight holds about two batches.
const WRITE_BATCH: usize = 512 << 10;

/// The in-memory state of a session, guarded by its mutex.
#[derive(Debug)]
pub(super) struct Session {
    repository: RepoName,
    algorithm: Algorithm,
    /// The hash of the first `offset` bytes of `data`, when known.
    hashed: Option<(u64, Hasher)>,
}

/// The `info` file of a session.
#[derive(Debug, Serialize, Deserialize)]
struct Info {
    repository: String,
    algorithm: String,
    started: u64,
}

/// Checks that an upload id is a UUID in canonical form, so that it cannot
/// name a path outside `uploads/`.
fn canonical_id(id: &str) -> Option<String> {
    let parsed = uuid::Uuid::try_parse(id).ok()?;
    let canonical = parsed.hyphenated().to_string();
    (canonical == id).then_some(canonical)
}

impl FsStorage {
    pub(super) async fn start_upload(
        &self,
        repo: &RepoName,
        algorithm: Algorithm,
    ) -> Result<UploadStatus> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let dir = self.layout.upload(&id);
        let info = Info {
            repository: repo.to_string(),
            algorithm: algorithm.as_str().to_owned(),
            started: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let info = serde_json::to_vec(&info).expect("upload info serializes");

        blocking(move || {
            fs::create_dir_all(&dir)?;
            File::create(dir.join("data"))?;
            fs::write(dir.join("info"), info)?;
            files::sync_dir(&dir)
        })
        .await
        .map_err(|e| StorageError::io("creating upload session", e))?;

        let session = Session {
            repository: repo.clone(),
            algorithm,
            hashed: Some((0, algorithm.hasher())),
        };
        self.sessions
            .lock()
            .expect("session map lock")
            .insert(id.clone(), Arc::new(tokio::sync::Mutex::new(session)));
        Ok(UploadStatus { id, offset: 0 })
    }

    pub(super) async fn upload_state(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        let _guard = session.lock().await;
        let offset = self.data_len(id).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            offset,
        })
    }

    pub(super) async fn append_upload(
        &self,
        repo: &RepoName,
        id: &str,
        chunk: Chunk,
    ) -> Result<UploadStatus> {
        let session = self.session(repo, id).await?;
        let mut session = session.lock().await;
        let offset = self.append_locked(&mut session, id, chunk).await?;
        Ok(UploadStatus {
            id: id.to_owned(),
            offset,
        })
    }

    pub(super) async fn commit_upload(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64> {
        let handle = self.session(repo, id).await?;
        let mut session = handle.lock().await;
        let size = match last {
            Some(chunk) => self.append_locked(&mut session, id, chunk).await?,
            None => self.data_len(id).await?,
        };

        // Use the running hash when it covers every byte; otherwise (another
        // algorithm, or a restart since the last append) hash the file.
        let data = self.layout.upload(id).join("data");
        let actual = match session.hashed.take() {
            Some((hashed, hasher))
                if hashed == size && session.algorithm == expected.algorithm() =>
            {
                hasher.finish()
            }
            _ => {
                let path = data.clone();
                let algorithm = expected.algorithm();
                blocking(move || files::hash_file(&path, algorithm, size))
                    .await
                    .map_err(|e| StorageError::io("hashing upload", e))?
            }
        };

        if &actual != expected {
            drop(session);
            self.remove_session(id).await?;
            return Err(StorageError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }

        // Renaming over an existing blob is atomic and leaves identical
        // bytes, so concurrent uploads of one blob both succeed.
        let blob = self.layout.blob(expected);
        blocking(move || {
            let parent = blob.parent().expect("blob paths have a parent");
            fs::create_dir_all(parent)?;
            File::open(&data)?.sync_data()?;
            fs::rename(&data, &blob)?;
            files::sync_dir(parent)
        })
        .await
        .map_err(|e| StorageError::io(format!("storing blob {expected}"), e))?;

        self.write_layer_link(repo, expected).await?;
        drop(session);
        self.remove_session(id).await?;
        Ok(size)
    }

    pub(super) async fn cancel_upload(&self, repo: &RepoName, id: &str) -> Result<()> {
        let session = self.session(repo, id).await?;
        let _guard = session.lock().await;
        self.remove_session(id).await
    }

    pub(super) async fn purge_stale_uploads(&self, max_age: Duration) -> Result<usize> {
        let uploads = self.layout.uploads();
        let stale = blocking(move || {
            let now = SystemTime::now();
            let mut stale = Vec::new();
            for id in files::list_dir(&uploads)? {
                // The data file's modification time is the last append.
                let dir = uploads.join(&id);
                let modified = fs::metadata(dir.join("data"))
                    .or_else(|_| fs::metadata(&dir))
                    .and_then(|m| m.modified());
                let age = modified
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or(Duration::MAX);
                if age >= max_age {
                    stale.push(id);
                }
            }
            Ok(stale)
        })
        .await
        .map_err(|e| StorageError::io("listing upload sessions", e))?;

        let mut purged = 0;
        for id in stale {
            // An id that is not a UUID is left over from something else;
            // remove it as well, because nothing can ever use it.
            let handle = canonical_id(&id).and_then(|id| self.cached_session(&id));
            let _guard = match &handle {
                Some(handle) => Some(handle.lock().await),
                None => None,
            };
            self.remove_session(&id).await?;
            purged += 1;
        }
        Ok(purged)
    }

    /// Writes the link that makes a blob visible in `repo`.
    pub(super) async fn write_layer_link(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let link = self.layout.layer_link(repo, digest);
        let tmp = self.layout.tmp();
        let content = digest.to_string();
        blocking(move || files::write_atomic(&tmp, &link, content.as_bytes()))
            .await
            .map_err(|e| StorageError::io(format!("linking blob {digest}"), e))
    }

    fn cached_session(&self, id: &str) -> Option<Arc<tokio::sync::Mutex<Session>>> {
        self.sessions
            .lock()
            .expect("session map lock")
            .get(id)
            .cloned()
    }

    /// Finds a session of `repo`, loading it from disk after a restart.
    async fn session(&self, repo: &RepoName, id: &str) -> Result<Arc<tokio::sync::Mutex<Session>>> {
        let unknown = || StorageError::UploadUnknown(id.to_owned());
        let id = canonical_id(id).ok_or_else(unknown)?;

        let handle = match self.cached_session(&id) {
            Some(handle) => handle,
            None => {
                let info_path = self.layout.upload(&id).join("info");
                let bytes = blocking(move || files::read_optional(&info_path))
                    .await
                    .map_err(|e| StorageError::io("reading upload session", e))?
                    .ok_or_else(unknown)?;
                let info: Info = serde_json::from_slice(&bytes)
                    .map_err(|e| StorageError::io("reading upload session", io::Error::other(e)))?;
                let session = Session {
                    repository: RepoName::parse(&info.repository).map_err(|e| {
                        StorageError::io("reading upload session", io::Error::other(e))
                    })?,
                    algorithm: Algorithm::parse(&info.algorithm).map_err(|e| {
                        StorageError::io("reading upload session", io::Error::other(e))
                    })?,
                    hashed: None,
                };
                let mut sessions = self.sessions.lock().expect("session map lock");
                sessions
                    .entry(id.clone())
                    .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(session)))
                    .clone()
            }
        };

        // A session belongs to the repository it was opened in.
        if handle.lock().await.repository != *repo {
            return Err(unknown());
        }
        Ok(handle)
    }

    async fn data_len(&self, id: &str) -> Result<u64> {
        let data = self.layout.upload(id).join("data");
        match tokio::fs::metadata(&data).await {
            Ok(metadata) => Ok(metadata.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StorageError::UploadUnknown(id.to_owned()))
            }
            Err(e) => Err(StorageError::io("reading upload session", e)),
        }
    }

    async fn remove_session(&self, id: &str) -> Result<()> {
        self.sessions.lock().expect("session map lock").remove(id);
        let dir = self.layout.upload(id);
        blocking(move || files::remove_dir_optional(&dir))
            .await
            .map_err(|e| StorageError::io("removing upload session", e))
    }

    /// Appends a chunk while the caller holds the session's lock, and
    /// returns the new length. On failure the data is cut back to where it
    /// was.
    async fn append_locked(&self, session: &mut Session, id: &str, chunk: Chunk) -> Result<u64> {
        let offset = self.data_len(id).await?;
        if let Some(start) = chunk.start
            && start != offset
        {
            return Err(StorageError::ChunkOutOfOrder { start, offset });
        }

        let data = self.layout.upload(id).join("data");
        let hasher = match session.hashed.take() {
            Some((hashed, hasher)) if hashed == offset => hasher,
            _ => {
                let path = data.clone();
                let algorithm = session.algorithm;
                blocking(move || rehash(&path, algorithm, offset))
                    .await
                    .map_err(|e| StorageError::io("hashing upload", e))?
            }
        };

        let file = OpenOptions::new()
            .append(true)
            .open(&data)
            .map_err(|e| StorageError::io("opening upload session", e))?;
        let written = write_body(file, hasher, chunk).await;

        match written {
            Ok((len, hasher)) => {
                session.hashed = Some((offset + len, hasher));
                Ok(offset + len)
            }
            Err(error) => {
                // Leave the session as the client last saw it.
                let path = data.clone();
                let truncated = blocking(move || {
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(offset)?;
                    file.sync_all()
                })
                .await;
                if let Err(e) = truncated {
                    return Err(StorageError::io("restoring upload session", e));
                }
                Err(error)
            }
        }
    }
}

/// Returns a hasher that has consumed the first `len` bytes of a file.
fn rehash(path: &std::path::Path, algorithm: Algorithm, len: u64) -> io::Result<Hasher> {
    use std::io::Read;
    let mut hasher = algorithm.hasher();
    let mut reader = File::open(path)?.take(len);
    let mut buffer = vec![0; WRITE_BATCH];
    loop {
        let n = reader.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buffer[..n]);
    }
}

/// Streams a chunk's body into `file`, hashing as it goes. The body is cut
/// into batches of about `WRITE_BATCH` bytes; for each batch one blocking
/// task writes and another hashes, in parallel, while the next batch
/// arrives. Each write also starts the disk's writeback of its range, so
/// the sync at the commit waits only for the last batches. Returns the
/// bytes written and the hasher.
async fn write_body(file: File, hasher: Hasher, chunk: Chunk) -> Result<(u64, Hasher)> {
    let Chunk {
        declared_len,
        mut body,
        ..
    } = chunk;
    let mut offset = file
        .metadata()
        .map_err(|e| StorageError::io("reading upload session", e))?
        .len();
    // The file and the hasher are with the pending tasks while they run.
    let mut state = Some((file, hasher));
    let mut pending: Option<BatchTasks> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batch_len = 0;
    let mut total: u64 = 0;

    loop {
        let next = body.next().await;
        let done = match next {
            Some(Ok(bytes)) => {
                total += bytes.len() as u64;
                if let Some(declared) = declared_len
                    && total > declared
                {
                    drain(pending).await;
                    return Err(StorageError::SizeMismatch {
                        declared,
                        actual: total,
                    });
                }
                batch_len += bytes.len();
                batch.push(bytes);
                false
            }
            Some(Err(e)) => {
                drain(pending).await;
                return Err(StorageError::Body(e));
            }
            None => true,
        };

        if batch_len >= WRITE_BATCH || (done && batch_len > 0) {
            if let Some(tasks) = pending.take() {
                state = Some(tasks.join().await?);
            }
            let (file, hasher) = state.take().expect("no batch is pending");
            let bytes = Arc::new(std::mem::take(&mut batch));
            pending = Some(BatchTasks::spawn(file, hasher, bytes, offset));
            offset += batch_len as u64;
            batch_len = 0;
        }
        if done {
            break;
        }
    }

    if let Some(tasks) = pending.take() {
        state = Some(tasks.join().await?);
    }
    if let Some(declared) = declared_len
        && total != declared
    {
        return Err(StorageError::SizeMismatch {
            declared,
            actual: total,
        });
    }

    // No sync here: a session's bytes survive a crash of the process in
    // the page cache, and after a crash of the machine the client starts
    // the upload again. The commit syncs before the blob becomes visible.
    let (file, hasher) = state.expect("no batch is pending");
    drop(file);
    Ok((total, hasher))
}

/// The two blocking tasks of one batch: the write and the hash.
struct BatchTasks {
    write: tokio::task::JoinHandle<io::Result<File>>,
    hash: tokio::task::JoinHandle<Hasher>,
}

impl BatchTasks {
    fn spawn(file: File, mut hasher: Hasher, bytes: Arc<Vec<Bytes>>, offset: u64) -> Self {
        let to_write = bytes.clone();
        let write = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let mut len = 0;
            for piece in to_write.iter() {
                file.write_all(piece)?;
                len += piece.len() as u64;
            }
            start_writeback(&file, offset, len);
            Ok(file)
        });
        let hash = tokio::task::spawn_blocking(move || {
            for piece in bytes.iter() {
                hasher.update(piece);
            }
            hasher
        });
        Self { write, hash }
    }

    async fn join(self) -> Result<(File, Hasher)> {
        let failed = |e: tokio::task::JoinError| {
            StorageError::io(
                "writing upload",
                io::Error::other(format!("blocking task failed: {e}")),
            )
        };
        let file = self
            .write
            .await
            .map_err(failed)?
            .map_err(|e| StorageError::io("writing upload", e))?;
        let hasher = self.hash.await.map_err(failed)?;
        Ok((file, hasher))
    }
}

/// Asks the kernel to start writing a range to disk without waiting for
/// it. `POSIX_FADV_DONTNEED` starts the writeback of dirty pages; pages
/// still dirty or under writeback stay cached. Only an optimization: a
/// failure is ignored, because the sync at the end of the request writes
/// everything anyway.
fn start_writeback(file: &File, offset: u64, len: u64) {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    let _ = nix::fcntl::posix_fadvise(
        file,
        offset,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// Waits for the tasks of a batch that are still running before the caller
/// truncates the file, so the truncation is not undone by a late write.
async fn drain(pending: Option<BatchTasks>) {
    if let Some(tasks) = pending {
        let _ = tasks.write.await;
        let _ = tasks.hash.await;
    }
}
