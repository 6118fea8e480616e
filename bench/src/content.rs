//! The content that every server receives: pseudo-random blobs, families of
//! distinct blobs that share their bulk, and OCI image manifests.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Media type of the manifests that the benchmark pushes.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

pub const MIB: usize = 1024 * 1024;

/// Returns `len` pseudo-random bytes from `seed` (splitmix64), so every run
/// pushes the same content. Random bytes keep any compression in the path
/// from shrinking the transfer.
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut state = seed;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        data.extend_from_slice(&z.to_le_bytes());
    }
    data.truncate(len);
    Bytes::from(data)
}

/// Returns `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A blob to push: its parts in order and its digest.
#[derive(Debug, Clone)]
pub struct Blob {
    pub parts: Vec<Bytes>,
    pub digest: String,
    pub len: u64,
}

impl Blob {
    /// Returns a blob of one buffer.
    pub fn new(data: Bytes) -> Blob {
        Blob {
            digest: sha256_digest(&data),
            len: data.len() as u64,
            parts: vec![data],
        }
    }

    /// Returns the buffers that hold bytes `start..end` of the blob, sharing
    /// memory with the blob.
    pub fn range(&self, start: u64, end: u64) -> Vec<Bytes> {
        let mut slices = Vec::new();
        let mut offset = 0u64;
        for part in &self.parts {
            let part_end = offset + part.len() as u64;
            if part_end > start && offset < end {
                let from = start.saturating_sub(offset) as usize;
                let to = (end.min(part_end) - offset) as usize;
                slices.push(part.slice(from..to));
            }
            offset = part_end;
        }
        slices
    }

    /// Returns the descriptor of the blob as a layer.
    pub fn layer_descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": OCI_LAYER, "digest": self.digest, "size": self.len })
    }

    /// Returns the descriptor of the blob as an image config.
    pub fn config_descriptor(&self) -> serde_json::Value {
        json!({ "mediaType": OCI_CONFIG, "digest": self.digest, "size": self.len })
    }
}

/// Distinct blobs of one size that share all but their last 8 bytes, so a
/// benchmark can push a new blob every time without generating or hashing
/// 64 MiB each time. The hash state after the shared bytes is computed
/// once, and each blob only finishes it.
#[derive(Debug)]
pub struct BlobFamily {
    shared: Bytes,
    hashed_shared: Sha256,
    /// Source of the members' distinct 8-byte tails; shared by every
    /// caller, so no two pushes of a run send the same blob.
    next_member: AtomicU64,
}

impl BlobFamily {
    /// Returns a family of blobs of `len` bytes (at least 8).
    pub fn new(len: usize, seed: u64) -> BlobFamily {
        let shared = random_bytes(len.saturating_sub(8), seed);
        let hashed_shared = Sha256::new_with_prefix(&shared);
        BlobFamily {
            shared,
            hashed_shared,
            next_member: AtomicU64::new(0),
        }
    }

    /// Returns a blob of the family that no earlier call returned.
    pub fn next(&self) -> Blob {
        let member = self.next_member.fetch_add(1, Ordering::Relaxed);
        let tail = Bytes::copy_from_slice(&member.to_be_bytes());
        let mut hasher = self.hashed_shared.clone();
        hasher.update(&tail);
        Blob {
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
            len: (self.shared.len() + tail.len()) as u64,
            parts: vec![self.shared.clone(), tail],
        }
    }
}

/// Returns a small image config blob; `seed` makes it distinct.
pub fn config_blob(seed: u64) -> Blob {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [] },
        "config": { "Labels": { "bench.seed": seed.to_string() } },
    });
    Blob::new(Bytes::from(config.to_string()))
}

/// Returns the bytes of an OCI image manifest with `config` and `layers`,
/// and a `bench.note` annotation when `note` is given, which makes
/// manifests with the same blobs distinct.
pub fn image_manifest(config: &Blob, layers: &[&Blob], note: Option<&str>) -> Bytes {
    let layers: Vec<serde_json::Value> = layers.iter().map(|b| b.layer_descriptor()).collect();
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.config_descriptor(),
        "layers": layers,
    });
    if let Some(note) = note {
        manifest["annotations"] = json!({ "bench.note": note });
    }
    Bytes::from(manifest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_repeat_per_seed() {
        assert_eq!(random_bytes(100, 1), random_bytes(100, 1));
        assert_ne!(random_bytes(100, 1), random_bytes(100, 2));
        assert_eq!(random_bytes(13, 1).len(), 13);
    }

    #[test]
    fn family_members_are_distinct_and_hashed_whole() {
        let family = BlobFamily::new(1000, 7);
        let first = family.next();
        let second = family.next();
        assert_ne!(first.digest, second.digest);
        assert_eq!(first.len, 1000);

        let whole: Vec<u8> = first.parts.concat();
        assert_eq!(whole.len(), 1000);
        assert_eq!(first.digest, sha256_digest(&whole));
    }

    #[test]
    fn range_spans_parts() {
        let blob = Blob {
            parts: vec![Bytes::from_static(b"abcdef"), Bytes::from_static(b"gh")],
            digest: String::new(),
            len: 8,
        };
        let joined = |start, end| blob.range(start, end).concat();
        assert_eq!(joined(0, 8), b"abcdefgh");
        assert_eq!(joined(4, 7), b"efg");
        assert_eq!(joined(6, 8), b"gh");
        assert_eq!(joined(0, 3), b"abc");
    }
}
