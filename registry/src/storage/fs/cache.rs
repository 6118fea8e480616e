//! An in-memory cache of what the filesystem backend reads on every pull:
//! tags, manifests, blob links, the tag lists and the repository list.
//!
//! The cache is exact, not merely fresh enough, because this process is the
//! only writer of its root (see the backend's docs). Every change to disk
//! runs inside `Cache::change`, which bumps the epoch before and after the
//! change and drops the affected entries. A reader inserts what it read
//! only when the epoch was even (no change under way) and did not move
//! while it read, so a value read before a change can never be cached after
//! it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::reference::{Digest, RepoName};
use crate::storage::StoredManifest;

/// Most manifest bytes kept. When the cache holds more, the next insert
/// empties it, and it refills from what is read next. Manifests are usually
/// a few KiB, so this fits thousands.
const MAX_MANIFEST_BYTES: usize = 64 << 20;

/// Most tags and blob links kept, over all repositories; past it the cache
/// is emptied like for manifests.
const MAX_ENTRIES: usize = 200_000;

/// A reader's view of the epoch when it started reading from disk.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
pub struct Cache {
    /// Odd while a change is under way; bumped twice by each change.
    epoch: AtomicU64,
    entries: RwLock<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    repositories: HashMap<RepoName, RepoEntries>,
    /// The sorted names of all repositories.
    repository_list: Option<Arc<Vec<String>>>,
    /// Bytes of all cached manifests.
    manifest_bytes: usize,
    /// Cached tags and blob links in all repositories.
    count: usize,
}

#[derive(Debug, Default)]
struct RepoEntries {
    tags: HashMap<String, Digest>,
    manifests: HashMap<Digest, StoredManifest>,
    /// Blob sizes by digest, for blobs linked into the repository.
    blob_links: HashMap<Digest, u64>,
    /// The sorted tag names.
    tag_list: Option<Arc<Vec<String>>>,
}

impl Cache {
    /// Records the epoch before a read from disk.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.epoch.load(Ordering::Acquire))
    }

    /// Returns whether a value read since `ticket` may be cached.
    fn still_valid(&self, ticket: Ticket) -> bool {
        ticket.0.is_multiple_of(2) && self.epoch.load(Ordering::Acquire) == ticket.0
    }

    /// Starts a change to disk in `repo`. When the returned guard drops,
    /// after the change (or after the change failed or was cancelled),
    /// everything cached for `repo` and the repository list are dropped. The
    /// caller holds the repository's lock.
    pub fn change<'a>(&'a self, repo: &'a RepoName) -> ChangeGuard<'a> {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        ChangeGuard {
            cache: self,
            repo,
            blob_link: None,
            repository_list: true,
        }
    }

    fn forget(&self, repo: &RepoName, repository_list: bool) {
        let mut entries = write(&self.entries);
        if let Some(removed) = entries.repositories.remove(repo) {
            entries.manifest_bytes -= removed.manifest_bytes();
            entries.count -= removed.tags.len() + removed.blob_links.len();
        }
        if repository_list {
            entries.repository_list = None;
        }
    }

    /// Inserts under `ticket` with `insert`, which returns the manifest
    /// bytes and the entries it added. Empties the cache first when it is
    /// full.
    fn insert(&self, ticket: Ticket, insert: impl FnOnce(&mut Entries) -> (usize, usize)) {
        let mut entries = write(&self.entries);
        if !self.still_valid(ticket) {
            return;
        }
        if entries.manifest_bytes > MAX_MANIFEST_BYTES || entries.count > MAX_ENTRIES {
            *entries = Entries::default();
        }
        let (bytes, count) = insert(&mut entries);
        entries.manifest_bytes += bytes;
        entries.count += count;
    }

    pub fn tag(&self, repo: &RepoName, tag: &str) -> Option<Digest> {
        let entries = read(&self.entries);
        entries.repositories.get(repo)?.tags.get(tag).cloned()
    }

    pub fn insert_tag(&self, ticket: Ticket, repo: &RepoName, tag: &str, digest: &Digest) {
        self.insert(ticket, |entries| {
            let repo = entries.repositories.entry(repo.clone()).or_default();
            let added = repo.tags.insert(tag.to_owned(), digest.clone()).is_none();
            (0, usize::from(added))
        });
    }

    pub fn manifest(&self, repo: &RepoName, digest: &Digest) -> Option<StoredManifest> {
        let entries = read(&self.entries);
        entries
            .repositories
            .get(repo)?
            .manifests
            .get(digest)
            .cloned()
    }

    pub fn insert_manifest(&self, ticket: Ticket, repo: &RepoName, manifest: &StoredManifest) {
        self.insert(ticket, |entries| {
            let repo = entries.repositories.entry(repo.clone()).or_default();
            let previous = repo
                .manifests
                .insert(manifest.digest.clone(), manifest.clone());
            match previous {
                Some(_) => (0, 0),
                None => (manifest.bytes.len(), 0),
            }
        });
    }

    pub fn blob_link(&self, repo: &RepoName, digest: &Digest) -> Option<u64> {
        let entries = read(&self.entries);
        entries
            .repositories
            .get(repo)?
            .blob_links
            .get(digest)
            .copied()
    }

    pub fn insert_blob_link(&self, ticket: Ticket, repo: &RepoName, digest: &Digest, size: u64) {
        self.insert(ticket, |entries| {
            let repo = entries.repositories.entry(repo.clone()).or_default();
            let added = repo.blob_links.insert(digest.clone(), size).is_none();
            (0, usize::from(added))
        });
    }

    /// Starts a change that removes the link of `digest` from `repo`.
    /// When the returned guard drops, that cached link is dropped.
    pub fn change_blob_link<'a>(
        &'a self,
        repo: &'a RepoName,
        digest: &'a Digest,
    ) -> ChangeGuard<'a> {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        ChangeGuard {
            cache: self,
            repo,
            blob_link: Some(digest),
            repository_list: false,
        }
    }

    fn forget_blob_link(&self, repo: &RepoName, digest: &Digest) {
        let mut entries = write(&self.entries);
        let removed = entries
            .repositories
            .get_mut(repo)
            .and_then(|repo| repo.blob_links.remove(digest));
        if removed.is_some() {
            entries.count -= 1;
        }
    }

    pub fn tag_list(&self, repo: &RepoName) -> Option<Arc<Vec<String>>> {
        let entries = read(&self.entries);
        entries.repositories.get(repo)?.tag_list.clone()
    }

    pub fn insert_tag_list(&self, ticket: Ticket, repo: &RepoName, tags: Arc<Vec<String>>) {
        self.insert(ticket, |entries| {
            let repo = entries.repositories.entry(repo.clone()).or_default();
            repo.tag_list = Some(tags);
            (0, 0)
        });
    }

    pub fn repositories(&self) -> Option<Arc<Vec<String>>> {
        read(&self.entries).repository_list.clone()
    }

    pub fn insert_repositories(&self, ticket: Ticket, names: Arc<Vec<String>>) {
        self.insert(ticket, |entries| {
            entries.repository_list = Some(names);
            (0, 0)
        });
    }
}

/// A change in progress; see [`Cache::change`].
#[derive(Debug)]
pub struct ChangeGuard<'a> {
    cache: &'a Cache,
    repo: &'a RepoName,
    /// The one blob link the change removes; `None` for a change that may
    /// touch anything in the repository.
    blob_link: Option<&'a Digest>,
    /// Whether the change may have created or removed the repository, which
    /// drops the repository list. True unless the caller calls `keep_repository_list`.
    repository_list: bool,
}

impl ChangeGuard<'_> {
    /// Records that the change neither created nor removed the repository,
    /// so the cached repository list stays.
    pub fn keep_repository_list(&mut self) {
        self.repository_list = false;
    }
}

impl Drop for ChangeGuard<'_> {
    fn drop(&mut self) {
        match self.blob_link {
            Some(digest) => self.cache.forget_blob_link(self.repo, digest),
            None => self.cache.forget(self.repo, self.repository_list),
        }
        self.cache.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl RepoEntries {
    fn manifest_bytes(&self) -> usize {
        self.manifests.values().map(|m| m.bytes.len()).sum()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> RepoName {
        RepoName::parse("a/b").unwrap()
    }

    fn digest(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn read_before_change_is_not_cached() {
        let cache = Cache::default();
        let ticket = cache.ticket();
        drop(cache.change(&repo()));
        cache.insert_tag(ticket, &repo(), "latest", &digest('a'));
        assert_eq!(cache.tag(&repo(), "latest"), None);
    }

    #[test]
    fn read_during_change_is_not_cached() {
        let cache = Cache::default();
        let name = repo();
        let change = cache.change(&name);
        let ticket = cache.ticket();
        cache.insert_tag(ticket, &name, "latest", &digest('a'));
        drop(change);
        assert_eq!(cache.tag(&name, "latest"), None);
    }

    #[test]
    fn quiet_read_is_cached_until_change() {
        let cache = Cache::default();
        let ticket = cache.ticket();
        cache.insert_tag(ticket, &repo(), "latest", &digest('a'));
        assert_eq!(cache.tag(&repo(), "latest"), Some(digest('a')));

        drop(cache.change(&repo()));
        assert_eq!(cache.tag(&repo(), "latest"), None);
    }

    #[test]
    fn change_leaves_other_repositories() {
        let cache = Cache::default();
        let other = RepoName::parse("other").unwrap();
        let ticket = cache.ticket();
        cache.insert_tag(ticket, &other, "v1", &digest('b'));
        drop(cache.change(&repo()));
        assert_eq!(cache.tag(&other, "v1"), Some(digest('b')));
    }
}
