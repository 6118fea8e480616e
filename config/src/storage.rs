//! The `storage` section: one backend plus the settings that apply to every
//! backend.
//!
//! The file names the backend by its key, as the Go registry does:
//!
//! ```yaml
//! storage:
//!   filesystem:
//!     rootdirectory: /var/lib/registry
//!   delete:
//!     enabled: true
//! ```
//!
//! `filesystem` is the only backend so far. When neither it nor any other
//! backend key is present, the filesystem backend with its defaults is used.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::settings::null_as_default;
use crate::size::ByteSize;

/// The `storage` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StorageSection", into = "StorageSection")]
pub struct Storage {
    /// The backend that stores blobs and metadata, chosen by its key in the
    /// file. Default: `filesystem` with its defaults.
    pub backend: StorageBackend,

    /// The `delete` section. Default: see [`Delete`].
    pub delete: Delete,

    /// The `maintenance` section. Default: see [`Maintenance`].
    pub maintenance: Maintenance,

    /// The `cache` section. Default: see [`BlobCache`].
    pub cache: BlobCache,
}

/// A storage backend and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageBackend {
    /// Files under a local directory, from the `storage.filesystem` section.
    Filesystem(FilesystemStorage),
}

impl StorageBackend {
    /// Returns the key that selects this backend in the file.
    pub fn name(&self) -> &'static str {
        match self {
            StorageBackend::Filesystem(_) => "filesystem",
        }
    }
}

impl Default for StorageBackend {
    fn default() -> Self {
        StorageBackend::Filesystem(FilesystemStorage::default())
    }
}

/// The `storage.filesystem` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesystemStorage {
    /// The directory that contains all stored data, relative to the working
    /// directory unless absolute. It must not be empty. Default: `./data`.
    #[serde(
        rename = "rootdirectory",
        serialize_with = "serialize_path",
        deserialize_with = "deserialize_directory"
    )]
    pub root_directory: PathBuf,
}

impl Default for FilesystemStorage {
    fn default() -> Self {
        FilesystemStorage {
            root_directory: PathBuf::from("./data"),
        }
    }
}

/// The `storage.delete` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Delete {
    /// Allows clients to delete manifests and blobs. The Go registry turns
    /// this off by default. Default: `true`.
    pub enabled: bool,
}

impl Default for Delete {
    fn default() -> Self {
        Delete { enabled: true }
    }
}

/// The `storage.cache` section: the content of small blobs kept in memory.
///
/// Configs and small layers are usually pulled more often than large
/// layers. A blob never changes under its digest, so a copy in memory needs
/// no invalidation. Blobs are added when they are read and the least recently
/// read are dropped first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlobCache {
    /// The memory that cached blob content may take in all. Zero turns the
    /// cache off. Default: `16MiB`.
    #[serde(rename = "blobmemory")]
    pub blob_memory: ByteSize,

    /// The largest blob that is cached. Larger blobs are always read from
    /// disk. Default: `1MiB`.
    #[serde(rename = "maxblobsize")]
    pub max_blob_size: ByteSize,
}

impl Default for BlobCache {
    fn default() -> Self {
        BlobCache {
            blob_memory: ByteSize::mib(16),
            max_blob_size: ByteSize::mib(1),
        }
    }
}

/// The `storage.maintenance` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Maintenance {
    /// Removal of abandoned uploads. Default: see [`UploadPurging`].
    #[serde(rename = "uploadpurging", deserialize_with = "null_as_default")]
    pub upload_purging: UploadPurging,
}

/// The `storage.maintenance.uploadpurging` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UploadPurging {
    /// Runs the purge. Default: `true`.
    pub enabled: bool,

    /// The age after which an upload that has not completed is removed. Must
    /// be greater than zero. Default: `168h`.
    #[serde(
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub age: Duration,

    /// The time between two purge runs. Must be greater than zero.
    /// Default: `24h`.
    #[serde(
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub interval: Duration,
}

impl Default for UploadPurging {
    fn default() -> Self {
        UploadPurging {
            enabled: true,
            age: Duration::from_secs(168 * 3600),
            interval: Duration::from_secs(24 * 3600),
        }
    }
}

/// The `storage` section as written in the file, with one optional key per
/// backend.
#[derive(Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct StorageSection {
    /// A present but empty `filesystem:` key selects the backend with its
    /// defaults, so null deserializes to `Some`.
    #[serde(
        deserialize_with = "present_as_some",
        skip_serializing_if = "Option::is_none"
    )]
    filesystem: Option<FilesystemStorage>,

    #[serde(deserialize_with = "null_as_default")]
    delete: Delete,

    #[serde(deserialize_with = "null_as_default")]
    maintenance: Maintenance,

    #[serde(deserialize_with = "null_as_default")]
    cache: BlobCache,
}

impl TryFrom<StorageSection> for Storage {
    type Error = String;

    fn try_from(section: StorageSection) -> Result<Self, Self::Error> {
        let mut backends = Vec::new();
        if let Some(filesystem) = section.filesystem {
            backends.push(StorageBackend::Filesystem(filesystem));
        }

        // A file that names two backends is ambiguous, so it is rejected
        // instead of one of them being picked silently.
        if backends.len() > 1 {
            let names: Vec<&str> = backends.iter().map(StorageBackend::name).collect();
            return Err(format!(
                "only one storage backend may be configured, found {}",
                names.join(" and ")
            ));
        }

        Ok(Storage {
            backend: backends.pop().unwrap_or_default(),
            delete: section.delete,
            maintenance: section.maintenance,
            cache: section.cache,
        })
    }
}

impl From<Storage> for StorageSection {
    fn from(storage: Storage) -> Self {
        let StorageBackend::Filesystem(filesystem) = storage.backend;
        StorageSection {
            filesystem: Some(filesystem),
            delete: storage.delete,
            maintenance: storage.maintenance,
            cache: storage.cache,
        }
    }
}

/// Deserializes a key that is present, even as null, to `Some`, with the
/// defaults for null. A missing key stays `None` through `#[serde(default)]`.
fn present_as_some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    null_as_default(deserializer).map(Some)
}

/// Deserializes a directory path and rejects the empty string.
fn deserialize_directory<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    let directory = PathBuf::deserialize(deserializer)?;
    if directory.as_os_str().is_empty() {
        return Err(serde::de::Error::custom("the directory must not be empty"));
    }
    Ok(directory)
}

/// Serializes a path as a string, replacing bytes that are not UTF-8 so that
/// a path set in code cannot make serialization fail.
fn serialize_path<S: Serializer>(path: &Path, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&path.to_string_lossy())
}
