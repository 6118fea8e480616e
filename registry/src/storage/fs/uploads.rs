//! Upload sessions on disk.
//!
//! A session is a folder `uploads/<id>/` with `info` (repository, digest
//! algorithm, start time, as JSON) and `data` (the bytes so far). Both are on
//! disk, so a restarted process continues where the last one stopped. The
//! running hash lives in memory only; after a restart, or when the cached
//! hash does not cover exactly the bytes on disk, the stored bytes are hashed
//! again. Each append is synced before it is acknowledged, and a failed
//! append truncates `data` back to where it started. A process killed in
//! the middle of an append cannot truncate: the session then keeps the
//! bytes that arrived, and the client resumes from the offset that the
//! status request reports.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{FsStorage, blocking, files};
use crate::reference::{Algorithm, Digest, Hasher, RepoName};
use crate::storage::{Chunk, Result, StorageError, UploadStatus};

/// Bytes collected from the request before they are written and hashed in
/// one blocking call.
const WRITE_BATCH: usize = 1 << 20;

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

/// Streams a chunk's body into `file`, hashing as it goes. Writing and
/// hashing run on the blocking pool one batch behind the network, so the
/// next batch arrives while the last one is written. Returns the bytes
/// written and the hasher, synced to disk.
async fn write_body(file: File, hasher: Hasher, chunk: Chunk) -> Result<(u64, Hasher)> {
    let Chunk {
        declared_len,
        mut body,
        ..
    } = chunk;
    // The file and hasher are with the pending write while it runs.
    let mut state = Some((file, hasher));
    let mut pending: Option<WriteTask> = None;
    let mut batch = BytesMut::with_capacity(WRITE_BATCH);
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
                batch.extend_from_slice(&bytes);
                false
            }
            Some(Err(e)) => {
                drain(pending).await;
                return Err(StorageError::Body(e));
            }
            None => true,
        };

        if batch.len() >= WRITE_BATCH || (done && !batch.is_empty()) {
            if let Some(task) = pending.take() {
                state = Some(join_write(task).await?);
            }
            let bytes = batch.split().freeze();
            let (mut file, mut hasher) = state.take().expect("no write is pending");
            pending = Some(tokio::task::spawn_blocking(move || {
                file.write_all(&bytes)?;
                hasher.update(&bytes);
                Ok((file, hasher))
            }));
        }
        if done {
            break;
        }
    }

    if let Some(task) = pending.take() {
        state = Some(join_write(task).await?);
    }
    if let Some(declared) = declared_len
        && total != declared
    {
        return Err(StorageError::SizeMismatch {
            declared,
            actual: total,
        });
    }

    let (file, hasher) = state.expect("no write is pending");
    let file = blocking(move || file.sync_data().map(|()| file))
        .await
        .map_err(|e| StorageError::io("syncing upload", e))?;
    drop(file);
    Ok((total, hasher))
}

type WriteTask = tokio::task::JoinHandle<io::Result<(File, Hasher)>>;

async fn join_write(task: WriteTask) -> Result<(File, Hasher)> {
    task.await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
        .map_err(|e| StorageError::io("writing upload", e))
}

/// Waits for a write that is still running before the caller truncates the
/// file, so the truncation is not undone by a late write.
async fn drain(pending: Option<WriteTask>) {
    if let Some(task) = pending {
        let _ = task.await;
    }
}
