//! The signals and their payloads.
//!
//! State signals (`repository_*`, `tag_*`) fire exactly once per change of
//! state, after the change is durable, and never for a failed, rejected or
//! no-op request. Action signals (`*_pushed`, `*_mounted`, `*_deleted`,
//! `*_pulled`) fire once per successful request of that kind.
//!
//! Digests are carried as text (`sha256:…`), already validated by the
//! registry.

use std::fmt;

/// Every signal the registry fires, with its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Signal {
    RepositoryCreated(RepositoryCreated),
    RepositoryUpdated(RepositoryUpdated),
    RepositoryDeleted(RepositoryDeleted),
    TagCreated(TagCreated),
    TagDeleted(TagDeleted),
    ManifestPushed(ManifestPushed),
    ManifestDeleted(ManifestDeleted),
    BlobPushed(BlobPushed),
    BlobMounted(BlobMounted),
    BlobDeleted(BlobDeleted),
    ManifestPulled(ManifestPulled),
    BlobPulled(BlobPulled),
}

/// The kind of a signal without its payload, used to subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum SignalKind {
    RepositoryCreated,
    RepositoryUpdated,
    RepositoryDeleted,
    TagCreated,
    TagDeleted,
    ManifestPushed,
    ManifestDeleted,
    BlobPushed,
    BlobMounted,
    BlobDeleted,
    ManifestPulled,
    BlobPulled,
}

impl SignalKind {
    /// Every kind, in declaration order.
    pub const ALL: [SignalKind; 12] = [
        Self::RepositoryCreated,
        Self::RepositoryUpdated,
        Self::RepositoryDeleted,
        Self::TagCreated,
        Self::TagDeleted,
        Self::ManifestPushed,
        Self::ManifestDeleted,
        Self::BlobPushed,
        Self::BlobMounted,
        Self::BlobDeleted,
        Self::ManifestPulled,
        Self::BlobPulled,
    ];

    /// Returns the snake_case name, as in `tag_created`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RepositoryCreated => "repository_created",
            Self::RepositoryUpdated => "repository_updated",
            Self::RepositoryDeleted => "repository_deleted",
            Self::TagCreated => "tag_created",
            Self::TagDeleted => "tag_deleted",
            Self::ManifestPushed => "manifest_pushed",
            Self::ManifestDeleted => "manifest_deleted",
            Self::BlobPushed => "blob_pushed",
            Self::BlobMounted => "blob_mounted",
            Self::BlobDeleted => "blob_deleted",
            Self::ManifestPulled => "manifest_pulled",
            Self::BlobPulled => "blob_pulled",
        }
    }

    /// Returns the bit of this kind in a set of kinds stored as a `u32`.
    pub const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Signal {
    /// Returns the kind of this signal.
    pub fn kind(&self) -> SignalKind {
        match self {
            Self::RepositoryCreated(_) => SignalKind::RepositoryCreated,
            Self::RepositoryUpdated(_) => SignalKind::RepositoryUpdated,
            Self::RepositoryDeleted(_) => SignalKind::RepositoryDeleted,
            Self::TagCreated(_) => SignalKind::TagCreated,
            Self::TagDeleted(_) => SignalKind::TagDeleted,
            Self::ManifestPushed(_) => SignalKind::ManifestPushed,
            Self::ManifestDeleted(_) => SignalKind::ManifestDeleted,
            Self::BlobPushed(_) => SignalKind::BlobPushed,
            Self::BlobMounted(_) => SignalKind::BlobMounted,
            Self::BlobDeleted(_) => SignalKind::BlobDeleted,
            Self::ManifestPulled(_) => SignalKind::ManifestPulled,
            Self::BlobPulled(_) => SignalKind::BlobPulled,
        }
    }

    /// Returns the repository the signal is about.
    pub fn repository(&self) -> &str {
        match self {
            Self::RepositoryCreated(p) => &p.repository,
            Self::RepositoryUpdated(p) => &p.repository,
            Self::RepositoryDeleted(p) => &p.repository,
            Self::TagCreated(p) => &p.repository,
            Self::TagDeleted(p) => &p.repository,
            Self::ManifestPushed(p) => &p.repository,
            Self::ManifestDeleted(p) => &p.repository,
            Self::BlobPushed(p) => &p.repository,
            Self::BlobMounted(p) => &p.repository,
            Self::BlobDeleted(p) => &p.repository,
            Self::ManifestPulled(p) => &p.repository,
            Self::BlobPulled(p) => &p.repository,
        }
    }
}

/// The first manifest of a new repository was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryCreated {
    pub repository: String,
}

/// A later manifest push or delete changed a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryUpdated {
    pub repository: String,
    /// The manifest pushed or deleted.
    pub digest: String,
}

/// The last manifest and tag of a repository are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryDeleted {
    pub repository: String,
}

/// A tag now points at a manifest: it is new, or it moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagCreated {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
    /// The manifest the tag pointed at before it moved; `None` for a new tag.
    pub previous_digest: Option<String>,
}

/// A tag was removed, directly or with its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagDeleted {
    pub repository: String,
    pub tag: String,
    /// The manifest the tag pointed at.
    pub digest: String,
}

/// A manifest was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPushed {
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// The tag of a push by tag; `None` for a push by digest.
    pub tag: Option<String>,
    /// Every tag the push named: the tag of a push by tag, or the `tag`
    /// parameters of a push by digest. Empty for a push by digest alone.
    pub tags: Vec<String>,
    /// The digest in the manifest's `subject` field.
    pub subject: Option<String>,
    /// The manifest exactly as stored, shared and not copied, so that a
    /// receiver can read its annotations without a trip to storage.
    pub bytes: bytes::Bytes,
}

/// A manifest was removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDeleted {
    pub repository: String,
    pub digest: String,
}

/// An upload was committed and its digest verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPushed {
    pub repository: String,
    pub digest: String,
    pub size: u64,
}

/// A blob was mounted from another repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMounted {
    pub repository: String,
    pub digest: String,
    pub size: u64,
    /// The repository named by `from`; `None` for a mount without `from`.
    pub source_repository: Option<String>,
}

/// A blob's link was removed from a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDeleted {
    pub repository: String,
    pub digest: String,
}

/// A manifest was served to a GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestPulled {
    pub repository: String,
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// The tag of a pull by tag.
    pub tag: Option<String>,
}

/// A blob was served to a GET, whole or in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobPulled {
    pub repository: String,
    pub digest: String,
    /// Size of the whole blob in bytes.
    pub size: u64,
}

/// A payload type with its place in [`Signal`]. Receivers name the payload
/// they take, and this trait lets the registration find the signal kind and
/// the payload in an event.
pub trait Payload: Sized + 'static {
    /// The signal kind this payload belongs to.
    const KIND: SignalKind;

    /// Returns the payload of `signal` if it is of this kind.
    fn from_signal(signal: &Signal) -> Option<&Self>;
}

macro_rules! payloads {
    ($($name:ident),* $(,)?) => {
        $(
            impl Payload for $name {
                const KIND: SignalKind = SignalKind::$name;

                fn from_signal(signal: &Signal) -> Option<&Self> {
                    match signal {
                        Signal::$name(payload) => Some(payload),
                        _ => None,
                    }
                }
            }

            impl From<$name> for Signal {
                fn from(payload: $name) -> Self {
                    Signal::$name(payload)
                }
            }
        )*
    };
}

payloads!(
    RepositoryCreated,
    RepositoryUpdated,
    RepositoryDeleted,
    TagCreated,
    TagDeleted,
    ManifestPushed,
    ManifestDeleted,
    BlobPushed,
    BlobMounted,
    BlobDeleted,
    ManifestPulled,
    BlobPulled,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_bits_and_names() {
        let mut bits = 0u32;
        let mut names = std::collections::BTreeSet::new();
        for kind in SignalKind::ALL {
            assert_eq!(bits & kind.bit(), 0, "{kind} shares a bit");
            bits |= kind.bit();
            assert!(names.insert(kind.name()), "{kind} shares a name");
        }
    }

    #[test]
    fn payload_finds_its_signal() {
        let signal = Signal::from(TagDeleted {
            repository: "a".into(),
            tag: "t".into(),
            digest: "sha256:x".into(),
        });
        assert_eq!(signal.kind(), TagDeleted::KIND);
        assert!(TagDeleted::from_signal(&signal).is_some());
        assert!(TagCreated::from_signal(&signal).is_none());
        assert_eq!(signal.repository(), "a");
    }
}
