//! Where the filesystem backend keeps each kind of object.
//!
//! ```text
//! <root>/blobs/<alg>/<first two hex>/<hex>        content, shared by all repositories
//! <root>/repositories/<name>/_layers/<alg>/<hex>  link: the blob is in this repository
//! <root>/repositories/<name>/_manifests/revisions/<alg>/<hex>
//!                                                 link to a manifest; holds its media type
//! <root>/repositories/<name>/_manifests/tags/<tag>
//!                                                 holds the digest the tag points at
//! <root>/repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>
//!                                                 descriptor of a manifest whose subject
//!                                                 is the first digest
//! <root>/uploads/<id>/data, <root>/uploads/<id>/info
//!                                                 upload sessions
//! <root>/tmp/                                     files being written before their rename
//! ```
//!
//! Repository name components never start with `_` (the name grammar forbids
//! it), so `_layers`, `_manifests` and `_referrers` cannot collide with a
//! nested repository.

use std::path::{Path, PathBuf};

use crate::reference::{Digest, RepoName, Tag};

#[derive(Debug, Clone)]
pub(super) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    pub fn repositories(&self) -> PathBuf {
        self.root.join("repositories")
    }

    pub fn repository(&self, repo: &RepoName) -> PathBuf {
        self.repositories().join(repo.as_str())
    }

    pub fn layer_link(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        self.repository(repo)
            .join("_layers")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn manifests(&self, repo: &RepoName) -> PathBuf {
        self.repository(repo).join("_manifests")
    }

    pub fn revisions(&self, repo: &RepoName) -> PathBuf {
        self.manifests(repo).join("revisions")
    }

    pub fn revision(&self, repo: &RepoName, digest: &Digest) -> PathBuf {
        self.revisions(repo)
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    pub fn tags(&self, repo: &RepoName) -> PathBuf {
        self.manifests(repo).join("tags")
    }

    pub fn tag(&self, repo: &RepoName, tag: &Tag) -> PathBuf {
        self.tags(repo).join(tag.as_str())
    }

    pub fn referrers_root(&self, repo: &RepoName) -> PathBuf {
        self.repository(repo).join("_referrers")
    }

    pub fn referrers(&self, repo: &RepoName, subject: &Digest) -> PathBuf {
        self.referrers_root(repo)
            .join(subject.algorithm().as_str())
            .join(subject.hex())
    }

    pub fn referrer(&self, repo: &RepoName, subject: &Digest, referrer: &Digest) -> PathBuf {
        let file = format!("{}-{}", referrer.algorithm().as_str(), referrer.hex());
        self.referrers(repo, subject).join(file)
    }

    pub fn uploads(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// Returns the folder of an upload session. `id` must be a validated
    /// UUID.
    pub fn upload(&self, id: &str) -> PathBuf {
        self.uploads().join(id)
    }

    pub fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }
}
