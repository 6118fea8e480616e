//! The filesystem backend: the embedded default.
//!
//! Blob content is stored once under `blobs/` and linked into each
//! repository that pushed or mounted it (see `paths` for the layout). Every
//! file a reader can see is written whole to `tmp/`, synced and renamed into
//! place, so a crash leaves the old state or the new one.
//!
//! Changes to one repository's manifests and tags are serialized by an
//! in-process lock, which makes the reported outcomes (a tag moved, the
//! repository emptied) exact. Several processes over one root directory are
//! not coordinated: run one registry process per filesystem root.

mod cache;
mod files;
mod hot;
mod manifests;
mod read;
mod uploads;

use std::collections::HashMap;
use std::hash::{Hash, Hasher as _};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::paths::Layout;
use super::{
    BlobContent, ByteRange, Chunk, ManifestDeleteOutcome, ManifestPut, ManifestPutOutcome, Result,
    Storage, StorageError, StoredManifest, UploadStatus,
};
use crate::manifest::Descriptor;
use crate::reference::{Algorithm, Digest, RepoName, Tag};

/// Number of locks that repositories are spread over. Two repositories that
/// share a lock only wait for each other's manifest writes.
const REPOSITORY_LOCKS: usize = 64;

/// Storage in a folder of the local filesystem.
#[derive(Debug)]
pub struct FsStorage {
    layout: Layout,
    /// Serialize manifest and tag changes per repository; the index is a hash
    /// of the repository name. Held for the whole of one change.
    repository_locks: Vec<tokio::sync::Mutex<()>>,
    /// Upload sessions touched since this process started, by id. An entry
    /// is created on first use (from the session's `info` file after a
    /// restart), keeps the running hash, and is removed when the session is
    /// committed, cancelled or purged. Its mutex serializes requests to one
    /// session.
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<uploads::Session>>>>,
    /// The data that pulls read, kept in memory and dropped on every change.
    cache: cache::Cache,
    /// The content of small blobs that pulls read.
    hot: hot::HotBlobs,
}

impl FsStorage {
    /// Opens storage rooted at `root`, creating the folder if needed, with
    /// the default `storage.cache` settings.
    ///
    /// # Errors
    ///
    /// When the root or its subfolders cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        Self::open_with(root, &registry_config::BlobCache::default())
    }

    /// Opens storage rooted at `root`, keeping small blobs in memory as set
    /// by `cache`.
    ///
    /// # Errors
    ///
    /// When the root or its subfolders cannot be created.
    pub fn open_with(
        root: impl Into<PathBuf>,
        cache: &registry_config::BlobCache,
    ) -> io::Result<Self> {
        let layout = Layout::new(root.into());
        for dir in [
            layout.root().join("blobs"),
            layout.repositories(),
            layout.uploads(),
            layout.tmp(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display()))
            })?;
        }

        // Files left in tmp/ by a process that died mid-write were never
        // renamed into place, so nothing refers to them. Removing them also
        // proves that the root is writable before the first request.
        let tmp = layout.tmp();
        files::remove_dir_optional(&tmp)
            .and_then(|()| std::fs::create_dir_all(&tmp))
            .and_then(|()| files::write_atomic(&tmp, &tmp.join("probe"), b"probe"))
            .and_then(|()| std::fs::remove_file(tmp.join("probe")))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot write under {}: {e}", tmp.display()),
                )
            })?;
        Ok(Self {
            layout,
            repository_locks: (0..REPOSITORY_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            sessions: Mutex::new(HashMap::new()),
            cache: cache::Cache::default(),
            hot: hot::HotBlobs::new(cache.blob_memory.as_u64(), cache.max_blob_size.as_u64()),
        })
    }

    /// Returns the root folder.
    pub fn root(&self) -> &std::path::Path {
        self.layout.root()
    }

    fn repository_lock(&self, repo: &RepoName) -> &tokio::sync::Mutex<()> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        repo.hash(&mut hasher);
        &self.repository_locks[hasher.finish() as usize % REPOSITORY_LOCKS]
    }

    /// Returns the size of a blob if `repo` links it and its content exists.
    async fn linked_blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        if let Some(size) = self.cache.blob_link(repo, digest) {
            return Ok(Some(size));
        }
        let ticket = self.cache.ticket();
        let link = self.layout.layer_link(repo, digest);
        let blob = self.layout.blob(digest);
        let size = blocking(move || {
            if !files::exists(&link)? {
                return Ok(None);
            }
            match std::fs::metadata(&blob) {
                Ok(metadata) => Ok(Some(metadata.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| StorageError::io(format!("reading blob {digest}"), e))?;
        if let Some(size) = size {
            self.cache.insert_blob_link(ticket, repo, digest, size);
        }
        Ok(size)
    }
}

/// Runs blocking filesystem work on tokio's blocking pool.
async fn blocking<T, F>(work: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("blocking task failed: {e}"))))
}

#[async_trait]
impl Storage for FsStorage {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        self.linked_blob_size(repo, digest)
            .await?
            .ok_or_else(|| StorageError::BlobUnknown(digest.clone()))
    }

    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        let size = self.blob_size(repo, digest).await?;
        let (start, len) = match range {
            Some(range) => (range.start, range.len()),
            None => (0, size),
        };
        let unknown = || StorageError::BlobUnknown(digest.clone());
        let failed = |e| StorageError::io(format!("reading blob {digest}"), e);
        if !self.hot.admits(size) {
            let body = read::stream_file(self.layout.blob(digest), start, len)
                .await
                .map_err(failed)?
                // Deleted between the size check and the open.
                .ok_or_else(unknown)?;
            return Ok(BlobContent { size, range, body });
        }

        let content = match self.hot.get(digest) {
            Some(content) => content,
            None => {
                let content = read::read_file(self.layout.blob(digest), size)
                    .await
                    .map_err(failed)?
                    .ok_or_else(unknown)?;
                self.hot.insert(digest.clone(), content.clone());
                content
            }
        };
        let part = content.slice(start as usize..(start + len) as usize);
        let body: super::ByteStream = Box::pin(futures_util::stream::once(async move { Ok(part) }));
        Ok(BlobContent { size, range, body })
    }

    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let link = self.layout.layer_link(repo, digest);
        let stop = self.layout.repository(repo);
        let change = self.cache.change_blob_link(repo, digest);
        let existed = blocking(move || files::remove_file_and_empty_parents(&link, &stop))
            .await
            .map_err(|e| StorageError::io(format!("deleting blob link {digest}"), e))?;
        drop(change);
        if existed {
            Ok(())
        } else {
            Err(StorageError::BlobUnknown(digest.clone()))
        }
    }

    async fn blob_mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>> {
        let size = match from {
            Some(from) => self.linked_blob_size(from, digest).await?,
            None => {
                let blob = self.layout.blob(digest);
                blocking(move || match std::fs::metadata(&blob) {
                    Ok(metadata) => Ok(Some(metadata.len())),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                })
                .await
                .map_err(|e| StorageError::io(format!("reading blob {digest}"), e))?
            }
        };
        let Some(size) = size else {
            return Ok(None);
        };

        self.write_layer_link(repo, digest).await?;
        Ok(Some(size))
    }

    async fn upload_start(&self, repo: &RepoName, algorithm: Algorithm) -> Result<UploadStatus> {
        self.start_upload(repo, algorithm).await
    }

    async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        self.upload_state(repo, id).await
    }

    async fn upload_append(&self, repo: &RepoName, id: &str, chunk: Chunk) -> Result<UploadStatus> {
        self.append_upload(repo, id, chunk).await
    }

    async fn upload_commit(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64> {
        self.commit_upload(repo, id, expected, last).await
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        self.cancel_upload(repo, id).await
    }

    async fn purge_uploads(&self, max_age: Duration) -> Result<usize> {
        self.purge_stale_uploads(max_age).await
    }

    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest> {
        self.read_manifest(repo, digest).await
    }

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest> {
        let digest = self.read_tag(repo, tag).await?;
        self.read_manifest(repo, &digest)
            .await
            .map_err(|e| match e {
                StorageError::ManifestUnknown(_) => StorageError::ManifestUnknown(tag.to_string()),
                other => other,
            })
    }

    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<ManifestPutOutcome> {
        self.put_manifest(repo, put).await
    }

    async fn manifest_delete(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<ManifestDeleteOutcome> {
        self.delete_manifest(repo, digest).await
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        self.delete_tag(repo, tag).await
    }

    async fn tags(&self, repo: &RepoName) -> Result<Arc<Vec<String>>> {
        self.list_tags(repo).await
    }

    async fn repositories(&self) -> Result<Arc<Vec<String>>> {
        self.list_repositories().await
    }

    async fn referrers(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Descriptor>> {
        self.list_referrers(repo, digest).await
    }
}
