//! Guards: checks that run inside a manifest push, before anything is
//! stored, and may reject it.

use std::fmt;

/// A manifest about to be stored, as a guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct ManifestCandidate<'a> {
    pub repository: &'a str,
    /// The tag of a push by tag, or the first `tag` parameter of a push by
    /// digest.
    pub tag: Option<&'a str>,
    pub digest: &'a str,
    pub media_type: &'a str,
    /// The manifest exactly as pushed; it has already been validated.
    pub bytes: &'a [u8],
}

/// A guard's reason to reject a push. The client receives it as the
/// message of a 403 `DENIED` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
}

impl Rejection {
    /// Builds a rejection with the reason shown to the client.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}
