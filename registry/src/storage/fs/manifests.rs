//! Manifests, tags, referrers and the repository list on disk.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::{FsStorage, blocking, files};
use crate::manifest::{self, Descriptor};
use crate::reference::{Digest, RepoName, Tag};
use crate::storage::{
    ManifestDeleteOutcome, ManifestPut, ManifestPutOutcome, Result, StorageError, StoredManifest,
    TagChange,
};

impl FsStorage {
    pub(super) async fn read_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<StoredManifest> {
        if let Some(manifest) = self.cache.manifest(repo, digest) {
            return Ok(manifest);
        }
        let ticket = self.cache.ticket();
        let revision = self.layout.revision(repo, digest);
        let blob = self.layout.blob(digest);
        let found = blocking(move || {
            let Some(media_type) = files::read_optional(&revision)? else {
                return Ok(None);
            };
            let Some(bytes) = files::read_optional(&blob)? else {
                return Ok(None);
            };
            Ok(Some((media_type, bytes)))
        })
        .await
        .map_err(|e| StorageError::io(format!("reading manifest {digest}"), e))?;

        let (media_type, bytes) =
            found.ok_or_else(|| StorageError::ManifestUnknown(digest.to_string()))?;
        let manifest = StoredManifest {
            digest: digest.clone(),
            media_type: String::from_utf8_lossy(&media_type).into_owned(),
            bytes: Bytes::from(bytes),
        };
        self.cache.insert_manifest(ticket, repo, &manifest);
        Ok(manifest)
    }

    pub(super) async fn read_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        if let Some(digest) = self.cache.tag(repo, tag.as_str()) {
            return Ok(digest);
        }
        let ticket = self.cache.ticket();
        let path = self.layout.tag(repo, tag);
        let content = blocking(move || files::read_optional(&path))
            .await
            .map_err(|e| StorageError::io(format!("reading tag {tag}"), e))?
            .ok_or_else(|| StorageError::ManifestUnknown(tag.to_string()))?;
        let digest = parse_stored_digest(&content, || format!("tag {tag} of {repo}"))?;
        self.cache.insert_tag(ticket, repo, tag.as_str(), &digest);
        Ok(digest)
    }

    pub(super) async fn put_manifest(
        &self,
        repo: &RepoName,
        put: ManifestPut,
    ) -> Result<ManifestPutOutcome> {
        let _guard = self.repository_lock(repo).lock().await;
        self.check_references(repo, &put).await?;

        let layout = self.layout.clone();
        let repo_owned = repo.clone();
        let digest = put.digest.clone();
        let mut change = self.cache.change(repo);
        let outcome = blocking(move || write_manifest(&layout, &repo_owned, put))
            .await
            .map_err(|e| StorageError::io(format!("storing manifest {digest}"), e))?;
        if !outcome.repository_created {
            change.keep_repository_list();
        }
        Ok(outcome)
    }

    /// Checks that every blob and child manifest that a manifest references
    /// is in the repository, and that blob sizes agree.
    async fn check_references(&self, repo: &RepoName, put: &ManifestPut) -> Result<()> {
        for (digest, declared) in &put.parsed.blobs {
            let actual = self
                .linked_blob_size(repo, digest)
                .await?
                .ok_or_else(|| StorageError::ManifestBlobUnknown(digest.clone()))?;
            if actual != *declared {
                return Err(StorageError::ManifestSizeMismatch {
                    digest: digest.clone(),
                    declared: *declared,
                    actual,
                });
            }
        }
        for digest in &put.parsed.manifests {
            let revision = self.layout.revision(repo, digest);
            let found = blocking(move || files::exists(&revision))
                .await
                .map_err(|e| StorageError::io(format!("reading manifest {digest}"), e))?;
            if !found {
                return Err(StorageError::ManifestBlobUnknown(digest.clone()));
            }
        }
        Ok(())
    }

    pub(super) async fn delete_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<ManifestDeleteOutcome> {
        let _guard = self.repository_lock(repo).lock().await;
        let mut change = self.cache.change(repo);
        let layout = self.layout.clone();
        let repo = repo.clone();
        let target = digest.clone();
        let outcome = blocking(move || remove_manifest(&layout, &repo, &target))
            .await
            .map_err(|e| StorageError::io(format!("deleting manifest {digest}"), e))?
            .ok_or_else(|| StorageError::ManifestUnknown(digest.to_string()))?;
        if !outcome.repository_deleted {
            change.keep_repository_list();
        }
        Ok(outcome)
    }

    pub(super) async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<Digest> {
        let _guard = self.repository_lock(repo).lock().await;
        let digest = self.read_tag(repo, tag).await?;
        let path = self.layout.tag(repo, tag);
        let tags = self.layout.tags(repo);
        let mut change = self.cache.change(repo);
        change.keep_repository_list();
        blocking(move || {
            files::remove_optional(&path)?;
            files::sync_dir(&tags)
        })
        .await
        .map_err(|e| StorageError::io(format!("deleting tag {tag}"), e))?;
        Ok(digest)
    }

    pub(super) async fn list_tags(&self, repo: &RepoName) -> Result<Arc<Vec<String>>> {
        if let Some(tags) = self.cache.tag_list(repo) {
            return Ok(tags);
        }
        let ticket = self.cache.ticket();
        let manifests = self.layout.manifests(repo);
        let tags = self.layout.tags(repo);
        let listed = blocking(move || {
            if !files::exists(&manifests)? {
                return Ok(None);
            }
            files::list_dir(&tags).map(Some)
        })
        .await
        .map_err(|e| StorageError::io(format!("listing tags of {repo}"), e))?;

        let mut tags = listed.ok_or_else(|| StorageError::NameUnknown(repo.clone()))?;
        tags.retain(|tag| Tag::parse(tag).is_ok());
        tags.sort_unstable();
        let tags = Arc::new(tags);
        self.cache.insert_tag_list(ticket, repo, tags.clone());
        Ok(tags)
    }

    pub(super) async fn list_repositories(&self) -> Result<Arc<Vec<String>>> {
        if let Some(names) = self.cache.repositories() {
            return Ok(names);
        }
        let ticket = self.cache.ticket();
        let root = self.layout.repositories();
        let mut names = blocking(move || {
            let mut names = Vec::new();
            collect_repositories(&root, "", &mut names)?;
            Ok(names)
        })
        .await
        .map_err(|e| StorageError::io("listing repositories", e))?;
        names.sort_unstable();
        let names = Arc::new(names);
        self.cache.insert_repositories(ticket, names.clone());
        Ok(names)
    }

    pub(super) async fn list_referrers(
        &self,
        repo: &RepoName,
        subject: &Digest,
    ) -> Result<Vec<Descriptor>> {
        let dir = self.layout.referrers(repo, subject);
        let mut descriptors = blocking(move || {
            let mut descriptors = Vec::new();
            for name in files::list_dir(&dir)? {
                // A referrer removed since the listing is simply left out.
                let Some(bytes) = files::read_optional(&dir.join(&name))? else {
                    continue;
                };
                let descriptor: Descriptor =
                    serde_json::from_slice(&bytes).map_err(io::Error::other)?;
                descriptors.push(descriptor);
            }
            Ok(descriptors)
        })
        .await
        .map_err(|e| StorageError::io(format!("listing referrers of {subject}"), e))?;
        descriptors.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(descriptors)
    }
}

/// Stores the manifest content, its revision link, its referrer entry and
/// its tags, in that order, so that a tag never points at a manifest that
/// is not stored yet.
fn write_manifest(
    layout: &super::Layout,
    repo: &RepoName,
    put: ManifestPut,
) -> io::Result<ManifestPutOutcome> {
    let tmp = layout.tmp();
    let repository_created = !files::exists(&layout.revisions(repo))?
        || files::list_dir(&layout.revisions(repo))?.is_empty();

    let blob = layout.blob(&put.digest);
    if !files::exists(&blob)? {
        files::write_atomic(&tmp, &blob, &put.bytes)?;
    }

    let revision = layout.revision(repo, &put.digest);
    let media_type = put.parsed.media_type.as_bytes();
    let stored_media_type = files::read_optional(&revision)?;
    let manifest_created = stored_media_type.is_none();
    if stored_media_type.as_deref() != Some(media_type) {
        files::write_atomic(&tmp, &revision, media_type)?;
    }

    if let Some(subject) = &put.parsed.subject {
        let descriptor = Descriptor {
            media_type: put.parsed.media_type.clone(),
            digest: put.digest.to_string(),
            size: put.bytes.len() as u64,
            artifact_type: put.parsed.artifact_type.clone(),
            annotations: put.parsed.annotations.clone(),
            urls: None,
        };
        let json = serde_json::to_vec(&descriptor).map_err(io::Error::other)?;
        files::write_atomic(&tmp, &layout.referrer(repo, subject, &put.digest), &json)?;
    }

    let mut tags = Vec::new();
    for tag in put.tags {
        let path = layout.tag(repo, &tag);
        let previous = files::read_optional(&path)?;
        let previous = previous.and_then(|bytes| {
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| Digest::parse(text.trim()).ok())
        });
        if previous.as_ref() == Some(&put.digest) {
            continue;
        }
        files::write_atomic(&tmp, &path, put.digest.to_string().as_bytes())?;
        tags.push(TagChange { tag, previous });
    }

    Ok(ManifestPutOutcome {
        repository_created,
        manifest_created,
        tags,
    })
}

/// Removes a manifest and everything that points at it. Returns `None` when
/// the repository does not have it.
fn remove_manifest(
    layout: &super::Layout,
    repo: &RepoName,
    digest: &Digest,
) -> io::Result<Option<ManifestDeleteOutcome>> {
    let revision = layout.revision(repo, digest);
    if !files::exists(&revision)? {
        return Ok(None);
    }

    // Read the subject before the revision goes, to remove the referrer
    // entry. The content itself stays: other repositories may link it.
    if let Some(bytes) = files::read_optional(&layout.blob(digest))? {
        let media_type = files::read_optional(&revision)?.unwrap_or_default();
        let media_type = String::from_utf8_lossy(&media_type);
        if let Ok(parsed) = manifest::parse(Some(&media_type), &bytes)
            && let Some(subject) = parsed.subject
        {
            let entry = layout.referrer(repo, &subject, digest);
            files::remove_file_and_empty_parents(&entry, &layout.repository(repo))?;
        }
    }

    // Tags first, so that no tag points at a missing manifest even briefly.
    let tags_dir = layout.tags(repo);
    let mut removed_tags = Vec::new();
    for name in files::list_dir(&tags_dir)? {
        let path = tags_dir.join(&name);
        let points_here = files::read_optional(&path)?
            .is_some_and(|bytes| bytes.trim_ascii() == digest.to_string().as_bytes());
        if points_here
            && files::remove_optional(&path)?
            && let Ok(tag) = Tag::parse(&name)
        {
            removed_tags.push(tag);
        }
    }
    files::remove_file_and_empty_parents(&revision, &layout.manifests(repo))?;

    // With no manifest left the repository is gone from the catalog; its
    // blob links stay until they are deleted.
    let repository_deleted = files::list_dir(&layout.revisions(repo))?.is_empty();
    if repository_deleted {
        files::remove_dir_optional(&layout.manifests(repo))?;
        files::remove_dir_optional(&layout.referrers_root(repo))?;
    }
    files::sync_dir(&layout.repository(repo))?;

    removed_tags.sort();
    Ok(Some(ManifestDeleteOutcome {
        tags: removed_tags,
        repository_deleted,
    }))
}

/// Walks `dir` for repositories: folders that hold `_manifests`.
fn collect_repositories(dir: &Path, prefix: &str, names: &mut Vec<String>) -> io::Result<()> {
    for name in files::list_dir(dir)? {
        if name.starts_with('_') {
            continue;
        }
        let path = dir.join(&name);
        if !fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if files::exists(&path.join("_manifests"))? {
            names.push(full.clone());
        }
        collect_repositories(&path, &full, names)?;
    }
    Ok(())
}

fn parse_stored_digest(content: &[u8], what: impl Fn() -> String) -> Result<Digest> {
    let text = std::str::from_utf8(content).unwrap_or_default().trim();
    Digest::parse(text).map_err(|e| {
        StorageError::io(
            format!("reading {}", what()),
            io::Error::new(io::ErrorKind::InvalidData, e),
        )
    })
}
