//! The storage contract and its filesystem backend.
//!
//! `Storage` owns blobs, manifests, tags, repositories and upload sessions.
//! The HTTP layer validates names and digests before calling it and turns its
//! errors into OCI error responses, so a backend never receives raw request
//! text.
//! Every operation that changes state reports what changed (a repository
//! created, a tag moved) so that the caller can fire signals exactly once.

mod fs;
mod metered;
mod paths;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

pub use fs::FsStorage;
pub use metered::{MeteredStorage, StorageCounters};

use crate::manifest::{Descriptor, ParsedManifest};
use crate::reference::{Algorithm, Digest, RepoName, Tag};

/// A stream of body bytes, in or out.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An inclusive byte range of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// Returns the number of bytes in the range.
    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    /// Returns false, because an inclusive range contains at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The bytes of a blob, or of a range of it.
pub struct BlobContent {
    /// Size of the whole blob.
    pub size: u64,
    /// The range served, or `None` for the whole blob.
    pub range: Option<ByteRange>,
    pub body: ByteStream,
}

impl std::fmt::Debug for BlobContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobContent")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// The state of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    pub id: String,
    /// Bytes received so far.
    pub offset: u64,
}

/// A chunk sent to an upload session.
pub struct Chunk {
    /// The offset the client says the chunk starts at (from `Content-Range`),
    /// or `None` for a streamed body appended at the current offset.
    pub start: Option<u64>,
    /// The length the client declared (from `Content-Range` or
    /// `Content-Length`), checked against what arrives.
    pub declared_len: Option<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("start", &self.start)
            .field("declared_len", &self.declared_len)
            .finish_non_exhaustive()
    }
}

/// A manifest as stored.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A manifest to store, already parsed and validated.
#[derive(Debug)]
pub struct ManifestPut {
    pub digest: Digest,
    pub bytes: Bytes,
    pub parsed: ParsedManifest,
    /// Tags to point at the manifest: the tag of a PUT by tag, or the `tag`
    /// query parameters of a PUT by digest.
    pub tags: Vec<Tag>,
}

/// A tag that now points at a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagChange {
    pub tag: Tag,
    /// The manifest it pointed at before, when it moved.
    pub previous: Option<Digest>,
}

/// The changes that storing a manifest made.
#[derive(Debug, Clone, Default)]
pub struct ManifestPutOutcome {
    /// This was the first manifest of the repository.
    pub repository_created: bool,
    /// The repository did not have this manifest before.
    pub manifest_created: bool,
    /// Tags created or moved; a tag that already pointed at this manifest is
    /// not listed.
    pub tags: Vec<TagChange>,
}

/// The changes that deleting a manifest made.
#[derive(Debug, Clone, Default)]
pub struct ManifestDeleteOutcome {
    /// Tags that pointed at the manifest and were removed with it.
    pub tags: Vec<Tag>,
    /// The repository has no manifest left.
    pub repository_deleted: bool,
}

/// A storage failure. Client mistakes have their own variants; `Io` is a
/// server fault.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("blob {0} is not in the repository")]
    BlobUnknown(Digest),
    #[error("manifest {0} is not in the repository")]
    ManifestUnknown(String),
    #[error("repository {0} is not known to the registry")]
    NameUnknown(RepoName),
    #[error("upload {0} is not known to the registry")]
    UploadUnknown(String),
    #[error("chunk starts at byte {start} but the upload has {offset} bytes")]
    ChunkOutOfOrder { start: u64, offset: u64 },
    #[error("body had {actual} bytes but {declared} were declared")]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("manifest references {0}, which is not in the repository")]
    ManifestBlobUnknown(Digest),
    #[error("manifest gives size {declared} for blob {digest}, but the blob has {actual} bytes")]
    ManifestSizeMismatch {
        digest: Digest,
        declared: u64,
        actual: u64,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the request body failed: {0}")]
    Body(io::Error),
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Blobs, manifests, tags, repositories and upload sessions.
///
/// Implementations must make each change atomic: a crash leaves the old
/// state or the new one, never partial content that a reader can see.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Returns the size of a blob linked into `repo`.
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64>;

    /// Opens a blob linked into `repo`, whole or a range of it. The range is
    /// already checked against the size by the caller's `blob_size`.
    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent>;

    /// Removes the link of a blob from `repo`. The content stays while other
    /// repositories link it.
    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()>;

    /// Links a blob into `repo` from `from`, or from anywhere in the registry
    /// when `from` is `None`. Returns the blob's size, or `None` when the
    /// source does not have it.
    async fn blob_mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>>;

    /// Opens an upload session for `repo` that hashes with `algorithm` while
    /// bytes arrive. A commit with another algorithm rehashes the stored
    /// bytes.
    async fn upload_start(&self, repo: &RepoName, algorithm: Algorithm) -> Result<UploadStatus>;

    /// Returns the state of an upload session of `repo`.
    async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus>;

    /// Appends a chunk. On any failure the session keeps the bytes it had.
    async fn upload_append(&self, repo: &RepoName, id: &str, chunk: Chunk) -> Result<UploadStatus>;

    /// Appends an optional last chunk, verifies the digest, stores the blob
    /// and links it into `repo`. Returns the blob's size. A digest mismatch
    /// ends the session and stores nothing.
    async fn upload_commit(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64>;

    /// Ends an upload session and discards its bytes.
    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()>;

    /// Removes upload sessions that received nothing for `max_age`. Returns
    /// how many were removed.
    async fn purge_uploads(&self, max_age: Duration) -> Result<usize>;

    /// Reads a manifest by digest.
    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest>;

    /// Reads the manifest a tag points at.
    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest>;

    /// Stores a manifest and points its tags at it, after checking that the
    /// blobs and manifests it references are in `repo`.
    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<ManifestPutOutcome>;

    /// Removes a manifest, the tags that point at it, and its entry in the
    /// referrers of its subject.
    async fn manifest_delete(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<ManifestDeleteOutcome>;

    /// Removes a tag and returns the digest it pointed at.
    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<Digest>;

    /// Lists the tags of `repo` in ASCII order. The list is shared, so that
    /// a backend can keep it between requests.
    async fn tags(&self, repo: &RepoName) -> Result<Arc<Vec<String>>>;

    /// Lists the repositories that hold at least one manifest, in ASCII
    /// order.
    async fn repositories(&self) -> Result<Arc<Vec<String>>>;

    /// Lists the manifests in `repo` whose `subject` is `digest`.
    async fn referrers(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Descriptor>>;
}
