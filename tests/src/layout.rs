//! OCI image layouts: a directory with `oci-layout`, `index.json` and
//! `blobs/<algorithm>/<hex>`, as the OCI image specification defines it.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::sha256_digest;

/// The media type of an OCI image manifest.
pub const IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The media type of an OCI image index.
pub const IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The annotation that names a manifest in `index.json`, which the `oci:`
/// transport of skopeo and umoci treat as the tag.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor: the media type, digest and size by which a manifest
/// or index references content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    /// Reads a descriptor from its JSON form.
    ///
    /// # Panics
    ///
    /// When `mediaType`, `digest` or `size` is missing or of the wrong type.
    pub fn from_json(value: &Value) -> Descriptor {
        let field = |name: &str| {
            value
                .get(name)
                .unwrap_or_else(|| panic!("descriptor without {name}: {value}"))
        };
        Descriptor {
            media_type: field("mediaType")
                .as_str()
                .unwrap_or_else(|| panic!("descriptor mediaType is not a string: {value}"))
                .to_owned(),
            digest: field("digest")
                .as_str()
                .unwrap_or_else(|| panic!("descriptor digest is not a string: {value}"))
                .to_owned(),
            size: field("size")
                .as_u64()
                .unwrap_or_else(|| panic!("descriptor size is not a number: {value}")),
        }
    }
}

/// An OCI image layout on disk.
#[derive(Debug, Clone)]
pub struct OciLayout {
    dir: PathBuf,
}

impl OciLayout {
    /// Refers to the layout in `dir`, which need not exist yet.
    pub fn new(dir: impl Into<PathBuf>) -> OciLayout {
        OciLayout { dir: dir.into() }
    }

    /// Returns the layout's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Returns the skopeo reference of `tag` in this layout: `oci:DIR:TAG`.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Returns the descriptor that `index.json` holds for `tag`.
    ///
    /// # Panics
    ///
    /// When `index.json` cannot be read, or no entry or more than one entry
    /// has `tag` as its `org.opencontainers.image.ref.name`.
    pub fn descriptor(&self, tag: &str) -> Descriptor {
        let index = self.index();
        let entries: Vec<&Value> = manifests(&index)
            .iter()
            .filter(|entry| entry["annotations"][REF_NAME].as_str() == Some(tag))
            .collect();
        match entries.as_slice() {
            [entry] => Descriptor::from_json(entry),
            [] => panic!(
                "{} has no entry for tag {tag}: {index}",
                self.index_path().display()
            ),
            _ => panic!(
                "{} has several entries for tag {tag}: {index}",
                self.index_path().display()
            ),
        }
    }

    /// Returns the blob `digest`, after checking that its bytes hash to it.
    ///
    /// # Panics
    ///
    /// When the blob is missing, or its content does not match its digest.
    pub fn blob(&self, digest: &str) -> Vec<u8> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading blob {} failed: {e}", path.display()));
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "the content of {} does not match its digest",
            path.display()
        );
        bytes
    }

    /// Returns the JSON of the blob `digest`, such as a manifest or index.
    pub fn json_blob(&self, digest: &str) -> Value {
        let bytes = self.blob(digest);
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("blob {digest} is not valid JSON: {e}"))
    }

    /// Writes an image index over `children`, each with its platform
    /// (`os`, `architecture`), and names it `tag` in `index.json`.
    ///
    /// Returns the index's descriptor.
    pub fn add_index(&self, tag: &str, children: &[(Descriptor, &str, &str)]) -> Descriptor {
        let manifests: Vec<Value> = children
            .iter()
            .map(|(child, os, architecture)| {
                json!({
                    "mediaType": child.media_type,
                    "digest": child.digest,
                    "size": child.size,
                    "platform": { "os": os, "architecture": architecture },
                })
            })
            .collect();
        let index = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).expect("an index serializes");
        let descriptor = Descriptor {
            media_type: IMAGE_INDEX.to_owned(),
            digest: self.write_blob(&bytes),
            size: bytes.len() as u64,
        };

        let mut top = self.index();
        let entries = top["manifests"]
            .as_array_mut()
            .expect("checked by OciLayout::index");
        entries.push(json!({
            "mediaType": descriptor.media_type,
            "digest": descriptor.digest,
            "size": descriptor.size,
            "annotations": { REF_NAME: tag },
        }));
        let text = serde_json::to_vec(&top).expect("index.json serializes");
        std::fs::write(self.index_path(), text)
            .unwrap_or_else(|e| panic!("writing {} failed: {e}", self.index_path().display()));
        descriptor
    }

    /// Stores `bytes` as a sha256 blob and returns its digest.
    pub fn write_blob(&self, bytes: &[u8]) -> String {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("writing blob {} failed: {e}", path.display()));
        digest
    }

    /// Returns `index.json` as JSON.
    ///
    /// # Panics
    ///
    /// When it cannot be read or has no `manifests` array.
    pub fn index(&self) -> Value {
        let path = self.index_path();
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("reading {} failed: {e}", path.display()));
        let index: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
        manifests(&index);
        index
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let (algorithm, hex) = digest
            .split_once(':')
            .unwrap_or_else(|| panic!("invalid digest {digest:?}: expected ALGORITHM:HEX"));
        self.dir.join("blobs").join(algorithm).join(hex)
    }
}

/// Returns the `manifests` array of an image index.
///
/// # Panics
///
/// When the array is missing.
pub fn manifests(index: &Value) -> &Vec<Value> {
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("image index without a manifests array: {index}"))
}

/// Returns the digests of the `layers` of an image manifest, in order.
///
/// # Panics
///
/// When the array is missing or an entry is not a descriptor.
pub fn layer_digests(manifest: &Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .unwrap_or_else(|| panic!("image manifest without a layers array: {manifest}"))
        .iter()
        .map(|layer| Descriptor::from_json(layer).digest)
        .collect()
}
