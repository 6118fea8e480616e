//! Counting of storage operations and their failures, for telemetry.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use registry_signals::telemetry::{MetricFamily, MetricKind};

use super::{
    BlobContent, ByteRange, Chunk, ManifestDeleteOutcome, ManifestPut, ManifestPutOutcome, Result,
    Storage, StorageError, StoredManifest, UploadStatus,
};
use crate::manifest::Descriptor;
use crate::reference::{Algorithm, Digest, RepoName, Tag};

/// A storage operation, one per method of [`Storage`].
#[derive(Debug, Clone, Copy)]
enum Operation {
    BlobSize,
    BlobRead,
    BlobDelete,
    BlobMount,
    UploadStart,
    UploadStatus,
    UploadAppend,
    UploadCommit,
    UploadCancel,
    PurgeUploads,
    ManifestByDigest,
    ManifestByTag,
    ManifestPut,
    ManifestDelete,
    TagDelete,
    Tags,
    Repositories,
    Referrers,
}

const OPERATIONS: usize = 18;

impl Operation {
    const ALL: [Operation; OPERATIONS] = [
        Operation::BlobSize,
        Operation::BlobRead,
        Operation::BlobDelete,
        Operation::BlobMount,
        Operation::UploadStart,
        Operation::UploadStatus,
        Operation::UploadAppend,
        Operation::UploadCommit,
        Operation::UploadCancel,
        Operation::PurgeUploads,
        Operation::ManifestByDigest,
        Operation::ManifestByTag,
        Operation::ManifestPut,
        Operation::ManifestDelete,
        Operation::TagDelete,
        Operation::Tags,
        Operation::Repositories,
        Operation::Referrers,
    ];

    fn name(self) -> &'static str {
        match self {
            Operation::BlobSize => "blob_size",
            Operation::BlobRead => "blob_read",
            Operation::BlobDelete => "blob_delete",
            Operation::BlobMount => "blob_mount",
            Operation::UploadStart => "upload_start",
            Operation::UploadStatus => "upload_status",
            Operation::UploadAppend => "upload_append",
            Operation::UploadCommit => "upload_commit",
            Operation::UploadCancel => "upload_cancel",
            Operation::PurgeUploads => "purge_uploads",
            Operation::ManifestByDigest => "manifest_by_digest",
            Operation::ManifestByTag => "manifest_by_tag",
            Operation::ManifestPut => "manifest_put",
            Operation::ManifestDelete => "manifest_delete",
            Operation::TagDelete => "tag_delete",
            Operation::Tags => "tags",
            Operation::Repositories => "repositories",
            Operation::Referrers => "referrers",
        }
    }
}

/// Counts per operation: calls, and calls that failed on the server's side.
#[derive(Debug, Default)]
pub struct StorageCounters {
    calls: [AtomicU64; OPERATIONS],
    errors: [AtomicU64; OPERATIONS],
}

impl StorageCounters {
    /// Returns the counters as metrics.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        let mut calls = MetricFamily::new(
            "registry_storage_operations_total",
            "Storage operations by operation.",
            MetricKind::Counter,
        );
        let mut errors = MetricFamily::new(
            "registry_storage_errors_total",
            "Storage operations that failed with a server-side error, by operation.",
            MetricKind::Counter,
        );
        for operation in Operation::ALL {
            let index = operation as usize;
            let labels = [("operation", operation.name())];
            calls = calls.sample(&labels, self.calls[index].load(Ordering::Relaxed) as f64);
            errors = errors.sample(&labels, self.errors[index].load(Ordering::Relaxed) as f64);
        }
        vec![calls, errors]
    }
}

/// A storage that counts the operations of the one it wraps. Client
/// mistakes (an unknown blob, a digest mismatch) are not errors here; only
/// I/O failures are.
#[derive(Debug)]
pub struct MeteredStorage<S> {
    inner: S,
    counters: Arc<StorageCounters>,
}

impl<S> MeteredStorage<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            counters: Arc::default(),
        }
    }

    /// Returns the counters, shared with the telemetry.
    pub fn counters(&self) -> Arc<StorageCounters> {
        self.counters.clone()
    }

    fn record<T>(&self, operation: Operation, result: &Result<T>) {
        let index = operation as usize;
        self.counters.calls[index].fetch_add(1, Ordering::Relaxed);
        if let Err(StorageError::Io { .. }) = result {
            self.counters.errors[index].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[async_trait]
impl<S: Storage> Storage for MeteredStorage<S> {
    async fn blob_size(&self, repo: &RepoName, digest: &Digest) -> Result<u64> {
        let result = self.inner.blob_size(repo, digest).await;
        self.record(Operation::BlobSize, &result);
        result
    }

    async fn blob_read(
        &self,
        repo: &RepoName,
        digest: &Digest,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        let result = self.inner.blob_read(repo, digest, range).await;
        self.record(Operation::BlobRead, &result);
        result
    }

    async fn blob_delete(&self, repo: &RepoName, digest: &Digest) -> Result<()> {
        let result = self.inner.blob_delete(repo, digest).await;
        self.record(Operation::BlobDelete, &result);
        result
    }

    async fn blob_mount(
        &self,
        repo: &RepoName,
        digest: &Digest,
        from: Option<&RepoName>,
    ) -> Result<Option<u64>> {
        let result = self.inner.blob_mount(repo, digest, from).await;
        self.record(Operation::BlobMount, &result);
        result
    }

    async fn upload_start(&self, repo: &RepoName, algorithm: Algorithm) -> Result<UploadStatus> {
        let result = self.inner.upload_start(repo, algorithm).await;
        self.record(Operation::UploadStart, &result);
        result
    }

    async fn upload_status(&self, repo: &RepoName, id: &str) -> Result<UploadStatus> {
        let result = self.inner.upload_status(repo, id).await;
        self.record(Operation::UploadStatus, &result);
        result
    }

    async fn upload_append(&self, repo: &RepoName, id: &str, chunk: Chunk) -> Result<UploadStatus> {
        let result = self.inner.upload_append(repo, id, chunk).await;
        self.record(Operation::UploadAppend, &result);
        result
    }

    async fn upload_commit(
        &self,
        repo: &RepoName,
        id: &str,
        expected: &Digest,
        last: Option<Chunk>,
    ) -> Result<u64> {
        let result = self.inner.upload_commit(repo, id, expected, last).await;
        self.record(Operation::UploadCommit, &result);
        result
    }

    async fn upload_cancel(&self, repo: &RepoName, id: &str) -> Result<()> {
        let result = self.inner.upload_cancel(repo, id).await;
        self.record(Operation::UploadCancel, &result);
        result
    }

    async fn purge_uploads(&self, max_age: Duration) -> Result<usize> {
        let result = self.inner.purge_uploads(max_age).await;
        self.record(Operation::PurgeUploads, &result);
        result
    }

    async fn manifest_by_digest(&self, repo: &RepoName, digest: &Digest) -> Result<StoredManifest> {
        let result = self.inner.manifest_by_digest(repo, digest).await;
        self.record(Operation::ManifestByDigest, &result);
        result
    }

    async fn manifest_by_tag(&self, repo: &RepoName, tag: &Tag) -> Result<StoredManifest> {
        let result = self.inner.manifest_by_tag(repo, tag).await;
        self.record(Operation::ManifestByTag, &result);
        result
    }

    async fn manifest_put(&self, repo: &RepoName, put: ManifestPut) -> Result<ManifestPutOutcome> {
        let result = self.inner.manifest_put(repo, put).await;
        self.record(Operation::ManifestPut, &result);
        result
    }

    async fn manifest_delete(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<ManifestDeleteOutcome> {
        let result = self.inner.manifest_delete(repo, digest).await;
        self.record(Operation::ManifestDelete, &result);
        result
    }

    async fn tag_delete(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        let result = self.inner.tag_delete(repo, tag).await;
        self.record(Operation::TagDelete, &result);
        result
    }

    async fn tags(&self, repo: &RepoName) -> Result<Arc<Vec<String>>> {
        let result = self.inner.tags(repo).await;
        self.record(Operation::Tags, &result);
        result
    }

    async fn repositories(&self) -> Result<Arc<Vec<String>>> {
        let result = self.inner.repositories().await;
        self.record(Operation::Repositories, &result);
        result
    }

    async fn referrers(&self, repo: &RepoName, digest: &Digest) -> Result<Vec<Descriptor>> {
        let result = self.inner.referrers(repo, digest).await;
        self.record(Operation::Referrers, &result);
        result
    }
}
