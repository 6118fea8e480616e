//! Parsing and validation of pushed manifests.
//!
//! The registry stores the bytes it was given and serves them unchanged; this
//! module only reads them to learn what they reference (so that a manifest
//! cannot point at content the repository lacks), what their `subject` is
//! (for the referrers API), and whether they are well formed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reference::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// A descriptor as it appears in a manifest (`config`, `layers[]`,
/// `manifests[]`, `subject`), and as the referrers API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

/// The facts the registry needs from an accepted manifest.
#[derive(Debug, Clone)]
pub struct ParsedManifest {
    /// The media type to store and serve it under.
    pub media_type: String,
    /// Blobs that must already be in the repository.
    pub blobs: Vec<(Digest, u64)>,
    /// Manifests that must already be in the repository.
    pub manifests: Vec<Digest>,
    /// The digest in the `subject` field, if any.
    pub subject: Option<Digest>,
    /// `artifactType` for the referrers API: the manifest's own field, or for
    /// an image manifest without one the config's media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

/// The reason a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    NotJson(serde_json::Error),
    #[error("manifest must be a JSON object")]
    NotObject,
    #[error("Content-Type {content_type:?} does not match the manifest's mediaType {media_type:?}")]
    MediaTypeMismatch {
        content_type: String,
        media_type: String,
    },
    #[error("Docker schema 1 manifests ({0}) are not supported; push a schema 2 or OCI manifest")]
    Schema1(String),
    #[error("manifest has no media type: set Content-Type or the mediaType field")]
    NoMediaType,
    #[error("invalid media type {0:?}: expected type/subtype of letters, digits and !#$&^_.+-")]
    InvalidMediaType(String),
    #[error("manifest is not valid JSON for its media type: {0}")]
    DuplicateOrMalformed(serde_json::Error),
    #[error("invalid manifest of type {media_type}: {reason}")]
    Invalid { media_type: String, reason: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageManifest {
    schema_version: Option<i64>,
    artifact_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexManifest {
    schema_version: Option<i64>,
    artifact_type: Option<String>,
    manifests: Vec<Descriptor>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Reads only what a manifest of an unknown media type may share with the
/// OCI ones, so that artifacts of any type can still declare a subject.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OtherManifest {
    artifact_type: Option<String>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// Parses and validates a manifest body.
///
/// `content_type` is the request's Content-Type without parameters, or
/// `None` when the request had none. The media type stored is the
/// Content-Type when given, otherwise the body's `mediaType` field,
/// otherwise the OCI type its shape implies (`manifests` for an index,
/// `config` for an image manifest).
///
/// # Errors
///
/// A `ManifestError` naming what is wrong: not JSON, mismatched media types,
/// schema 1, a missing or malformed required field, a malformed digest.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedManifest, ManifestError> {
    let value: Value = serde_json::from_slice(body).map_err(ManifestError::NotJson)?;
    let object = value.as_object().ok_or(ManifestError::NotObject)?;
    let body_type = object.get("mediaType").and_then(Value::as_str);

    // The spec requires a client to send the body's mediaType as the
    // Content-Type; a disagreement means one of them is wrong.
    let content_type = content_type.filter(|t| !is_generic_content_type(t));
    if let (Some(content_type), Some(body_type)) = (content_type, body_type)
        && content_type != body_type
    {
        return Err(ManifestError::MediaTypeMismatch {
            content_type: content_type.to_owned(),
            media_type: body_type.to_owned(),
        });
    }
    let media_type = match content_type.or(body_type) {
        Some(media_type) => media_type.to_owned(),
        None if object.contains_key("manifests") => OCI_INDEX.to_owned(),
        None if object.contains_key("config") => OCI_MANIFEST.to_owned(),
        None => return Err(ManifestError::NoMediaType),
    };

    if !is_valid_media_type(&media_type) {
        return Err(ManifestError::InvalidMediaType(media_type));
    }
    // Known types are read again straight from the bytes: a JSON value keeps
    // only the last of duplicate keys, where the typed read rejects them,
    // and clients could disagree on which duplicate counts.
    let known = matches!(
        media_type.as_str(),
        OCI_MANIFEST | DOCKER_MANIFEST | OCI_INDEX | DOCKER_MANIFEST_LIST
    );
    if known {
        reject_duplicates(&media_type, body)?;
    }
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => parse_image(media_type, value),
        OCI_INDEX | DOCKER_MANIFEST_LIST => parse_index(media_type, value),
        DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1(media_type)),
        _ => parse_other(media_type, value),
    }
}

/// Checks a media type against the OCI image spec's grammar,
/// `[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}` on each side of one `/`. The
/// stored type is served as the Content-Type header, so it must be a
/// valid header value.
fn is_valid_media_type(media_type: &str) -> bool {
    let part = |text: &str| {
        let bytes = text.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 127
            && bytes[0].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    media_type
        .split_once('/')
        .is_some_and(|(kind, subtype)| part(kind) && part(subtype))
}

/// Content types that tell nothing about the manifest, which some clients
/// send by default.
fn is_generic_content_type(content_type: &str) -> bool {
    matches!(
        content_type,
        "application/octet-stream" | "application/json" | "text/plain"
    )
}

/// Rejects a manifest whose known fields appear twice at any level that
/// the registry reads.
fn reject_duplicates(media_type: &str, body: &[u8]) -> Result<(), ManifestError> {
    let result = match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => serde_json::from_slice::<ImageManifest>(body).map(drop),
        _ => serde_json::from_slice::<IndexManifest>(body).map(drop),
    };
    match result {
        Err(error) if error.to_string().starts_with("duplicate field") => {
            Err(ManifestError::DuplicateOrMalformed(error))
        }
        // Other errors are reported with the field's path by the typed read
        // of the value below.
        _ => Ok(()),
    }
}

fn parse_image(media_type: String, value: Value) -> Result<ParsedManifest, ManifestError> {
    let manifest: ImageManifest = from_value(&media_type, value)?;
    check_schema_version(&media_type, manifest.schema_version)?;

    let mut blobs = vec![(
        descriptor_digest(&media_type, "config", &manifest.config)?,
        manifest.config.size,
    )];
    for (i, layer) in manifest.layers.iter().enumerate() {
        let digest = descriptor_digest(&media_type, &format!("layers[{i}]"), layer)?;
        // Non-distributable layers live elsewhere by definition, and a
        // foreign layer with URLs is fetched from those URLs.
        if !is_foreign_layer(layer) {
            blobs.push((digest, layer.size));
        }
    }

    let subject = subject_digest(&media_type, manifest.subject.as_ref())?;
    let artifact_type = manifest
        .artifact_type
        .filter(|t| !t.is_empty())
        .or_else(|| Some(manifest.config.media_type.clone()));
    Ok(ParsedManifest {
        media_type,
        blobs,
        manifests: Vec::new(),
        subject,
        artifact_type,
        annotations: manifest.annotations,
    })
}

fn parse_index(media_type: String, value: Value) -> Result<ParsedManifest, ManifestError> {
    let index: IndexManifest = from_value(&media_type, value)?;
    check_schema_version(&media_type, index.schema_version)?;

    let mut manifests = Vec::with_capacity(index.manifests.len());
    for (i, child) in index.manifests.iter().enumerate() {
        manifests.push(descriptor_digest(
            &media_type,
            &format!("manifests[{i}]"),
            child,
        )?);
    }

    let subject = subject_digest(&media_type, index.subject.as_ref())?;
    Ok(ParsedManifest {
        media_type,
        blobs: Vec::new(),
        manifests,
        subject,
        artifact_type: index.artifact_type.filter(|t| !t.is_empty()),
        annotations: index.annotations,
    })
}

fn parse_other(media_type: String, value: Value) -> Result<ParsedManifest, ManifestError> {
    let other: OtherManifest = from_value(&media_type, value)?;
    let subject = subject_digest(&media_type, other.subject.as_ref())?;
    Ok(ParsedManifest {
        media_type,
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type: other.artifact_type.filter(|t| !t.is_empty()),
        annotations: other.annotations,
    })
}

fn from_value<T: serde::de::DeserializeOwned>(
    media_type: &str,
    value: Value,
) -> Result<T, ManifestError> {
    serde_json::from_value(value).map_err(|e| ManifestError::Invalid {
        media_type: media_type.to_owned(),
        reason: e.to_string(),
    })
}

fn check_schema_version(media_type: &str, version: Option<i64>) -> Result<(), ManifestError> {
    match version {
        Some(2) => Ok(()),
        Some(other) => Err(ManifestError::Invalid {
            media_type: media_type.to_owned(),
            reason: format!("schemaVersion is {other}, expected 2"),
        }),
        None => Err(ManifestError::Invalid {
            media_type: media_type.to_owned(),
            reason: "schemaVersion is missing, expected 2".to_owned(),
        }),
    }
}

fn descriptor_digest(
    media_type: &str,
    field: &str,
    descriptor: &Descriptor,
) -> Result<Digest, ManifestError> {
    Digest::parse(&descriptor.digest).map_err(|e| ManifestError::Invalid {
        media_type: media_type.to_owned(),
        reason: format!("{field}: {e}"),
    })
}

fn subject_digest(
    media_type: &str,
    subject: Option<&Descriptor>,
) -> Result<Option<Digest>, ManifestError> {
    subject
        .map(|s| descriptor_digest(media_type, "subject", s))
        .transpose()
}

fn is_foreign_layer(layer: &Descriptor) -> bool {
    let non_distributable =
        layer.media_type.contains(".nondistributable.") || layer.media_type.contains(".foreign.");
    non_distributable || layer.urls.as_ref().is_some_and(|urls| !urls.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn image(subject: Option<&str>) -> Vec<u8> {
        let mut manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('a'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest('b'), "size": 3},
                {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar", "digest": digest('c'), "size": 4},
            ],
            "annotations": {"k": "v"},
        });
        if let Some(subject) = subject {
            manifest["subject"] =
                serde_json::json!({"mediaType": OCI_MANIFEST, "digest": subject, "size": 5});
        }
        serde_json::to_vec(&manifest).unwrap()
    }

    #[test]
    fn image_manifest_lists_distributable_blobs() {
        let parsed = parse(Some(OCI_MANIFEST), &image(None)).unwrap();
        let blobs: Vec<String> = parsed.blobs.iter().map(|(d, _)| d.to_string()).collect();
        assert_eq!(blobs, vec![digest('a'), digest('b')]);
        assert_eq!(
            parsed.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(parsed.subject.is_none());
    }

    #[test]
    fn subject_is_extracted() {
        let parsed = parse(None, &image(Some(&digest('d')))).unwrap();
        assert_eq!(parsed.subject.unwrap().to_string(), digest('d'));
        assert_eq!(parsed.media_type, OCI_MANIFEST);
    }

    #[test]
    fn index_lists_child_manifests() {
        let body = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest('e'), "size": 1}],
        });
        let parsed = parse(None, &serde_json::to_vec(&body).unwrap()).unwrap();
        assert_eq!(parsed.media_type, OCI_INDEX);
        assert_eq!(parsed.manifests.len(), 1);
        assert!(parsed.artifact_type.is_none());
    }

    #[test]
    fn mismatched_content_type_is_rejected() {
        let result = parse(Some(DOCKER_MANIFEST), &image(None));
        assert!(matches!(
            result,
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
    }

    #[test]
    fn bad_bodies_are_rejected() {
        assert!(matches!(parse(None, b"{"), Err(ManifestError::NotJson(_))));
        assert!(matches!(parse(None, b"[]"), Err(ManifestError::NotObject)));
        assert!(matches!(
            parse(None, b"{}"),
            Err(ManifestError::NoMediaType)
        ));
        let schema1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(matches!(
            parse(None, schema1),
            Err(ManifestError::Schema1(_))
        ));
        let no_config =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        assert!(matches!(
            parse(None, no_config),
            Err(ManifestError::Invalid { .. })
        ));
        let bad_digest =
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:zz","size":1}]}"#;
        assert!(matches!(
            parse(None, bad_digest),
            Err(ManifestError::Invalid { .. })
        ));
    }

    #[test]
    fn malformed_media_types_are_rejected() {
        for media_type in ["text", "a/b\nc", "/x", "x/", "a/b/c", "a b/c"] {
            let result = parse(Some(media_type), b"{}");
            assert!(
                matches!(result, Err(ManifestError::InvalidMediaType(_))),
                "{media_type:?}"
            );
        }
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"x/y","digest":"{d}","size":1}},"config":{{"mediaType":"x/y","digest":"{d}","size":1}},"layers":[]}}"#,
            d = digest('a')
        );
        let result = parse(Some(OCI_MANIFEST), body.as_bytes());
        assert!(matches!(
            result,
            Err(ManifestError::DuplicateOrMalformed(_))
        ));
    }

    #[test]
    fn unknown_media_types_are_stored_as_artifacts() {
        let body = br#"{"artifactType":"application/x.test","subject":{"mediaType":"x","digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff","size":1}}"#;
        let parsed = parse(Some("application/vnd.example.thing+json"), body).unwrap();
        assert_eq!(parsed.media_type, "application/vnd.example.thing+json");
        assert!(parsed.subject.is_some());
        assert_eq!(parsed.artifact_type.as_deref(), Some("application/x.test"));
    }
}
