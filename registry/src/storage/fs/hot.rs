//! The content of small blobs kept in memory (`storage.cache`).
//!
//! A blob never changes under its digest, so an entry stays valid for as
//! long as the blob's file exists. NOTE: nothing removes blob files while
//! the process runs, and a garbage collector would have to drop entries.
//! Each request still checks the repository's link before it reads.

use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;

use crate::reference::Digest;

/// Blob content by digest, bounded by the total size of the content.
#[derive(Debug)]
pub struct HotBlobs {
    /// The bytes that all entries may take together. Zero disables the cache.
    capacity: u64,
    /// The largest blob that is kept.
    max_blob_size: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    entries: LruCache<Digest, Bytes>,
    used: u64,
}

impl HotBlobs {
    pub fn new(capacity: u64, max_blob_size: u64) -> Self {
        Self {
            capacity,
            max_blob_size: max_blob_size.min(capacity),
            state: Mutex::new(State {
                entries: LruCache::unbounded(),
                used: 0,
            }),
        }
    }

    /// Tells whether a blob of `size` bytes would be kept once read.
    pub fn admits(&self, size: u64) -> bool {
        size <= self.max_blob_size && self.capacity > 0
    }

    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        if self.capacity == 0 {
            return None;
        }
        self.lock().entries.get(digest).cloned()
    }

    /// Keeps `content`, dropping the least recently read entries until it
    /// fits.
    pub fn insert(&self, digest: Digest, content: Bytes) {
        let size = content.len() as u64;
        if !self.admits(size) {
            return;
        }
        let mut state = self.lock();
        if let Some(old) = state.entries.put(digest, content) {
            state.used -= old.len() as u64;
        }
        state.used += size;
        while state.used > self.capacity {
            match state.entries.pop_lru() {
                Some((_, dropped)) => state.used -= dropped.len() as u64,
                None => break,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent after every statement that can panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::Algorithm;

    fn digest(n: u8) -> Digest {
        Digest::of(Algorithm::Sha256, &[n])
    }

    #[test]
    fn drops_least_recently_read_first() {
        let hot = HotBlobs::new(10, 4);
        hot.insert(digest(1), Bytes::from_static(b"aaaa"));
        hot.insert(digest(2), Bytes::from_static(b"bbbb"));
        assert!(hot.get(&digest(1)).is_some());
        hot.insert(digest(3), Bytes::from_static(b"cccc"));
        assert!(hot.get(&digest(2)).is_none());
        assert_eq!(hot.get(&digest(1)).unwrap(), "aaaa");
        assert_eq!(hot.get(&digest(3)).unwrap(), "cccc");
    }

    #[test]
    fn refuses_large_blobs_and_a_zero_capacity() {
        let hot = HotBlobs::new(10, 4);
        hot.insert(digest(1), Bytes::from_static(b"aaaaa"));
        assert!(hot.get(&digest(1)).is_none());
        let off = HotBlobs::new(0, 4);
        assert!(!off.admits(1));
        off.insert(digest(1), Bytes::from_static(b"a"));
        assert!(off.get(&digest(1)).is_none());
    }
}
