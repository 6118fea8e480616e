//! Reading a repository's description from the annotations of a manifest.

/// The annotation of the OCI image specification that contains a
/// human-readable description of the software in an image.
pub const DESCRIPTION_ANNOTATION: &str = "org.opencontainers.image.description";

/// The maximum number of characters kept of a description, which bounds
/// the memory of the index and the size of a page of results. docker 20.10
/// shows only the first 45 characters unless it gets `--no-trunc`.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;

/// Returns the description annotation of an image manifest or image index.
/// Each run of whitespace, line breaks included, becomes one space so that
/// the text fits on one line of docker's table, and the text is cut to
/// [`MAX_DESCRIPTION_CHARS`].
///
/// Returns `None` when the bytes are not a JSON object, when it has no such
/// annotation, or when the value is not a string or is blank. Docker's own
/// manifest types have no annotations, so their result is `None`.
pub fn manifest_description(manifest: &[u8]) -> Option<String> {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    let text = manifest
        .get("annotations")?
        .get(DESCRIPTION_ANNOTATION)?
        .as_str()?;

    let description = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(MAX_DESCRIPTION_CHARS)
        .collect::<String>();
    (!description.is_empty()).then_some(description)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with(annotations: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "annotations": annotations,
        }))
        .unwrap()
    }

    #[test]
    fn annotation_is_the_description() {
        let manifest = manifest_with(serde_json::json!({
            DESCRIPTION_ANNOTATION: "The web frontend",
            "org.opencontainers.image.title": "web",
        }));
        assert_eq!(
            manifest_description(&manifest).as_deref(),
            Some("The web frontend")
        );
    }

    #[test]
    fn whitespace_runs_become_one_space() {
        let manifest = manifest_with(serde_json::json!({
            DESCRIPTION_ANNOTATION: "  first line\n\tsecond   line \n",
        }));
        assert_eq!(
            manifest_description(&manifest).as_deref(),
            Some("first line second line")
        );
    }

    #[test]
    fn long_description_is_cut() {
        let long = "é".repeat(MAX_DESCRIPTION_CHARS + 10);
        let manifest = manifest_with(serde_json::json!({ DESCRIPTION_ANNOTATION: long }));
        let description = manifest_description(&manifest).unwrap();
        assert_eq!(description.chars().count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn missing_or_unusable_annotation_is_none() {
        let cases: [(&str, Vec<u8>); 6] = [
            ("no annotations", br#"{"schemaVersion":2}"#.to_vec()),
            (
                "other annotations",
                manifest_with(serde_json::json!({"a": "b"})),
            ),
            (
                "blank value",
                manifest_with(serde_json::json!({ DESCRIPTION_ANNOTATION: " \n " })),
            ),
            (
                "number value",
                manifest_with(serde_json::json!({ DESCRIPTION_ANNOTATION: 7 })),
            ),
            (
                "annotations not an object",
                br#"{"annotations":[]}"#.to_vec(),
            ),
            ("not JSON", b"\x00\x01".to_vec()),
        ];
        for (case, manifest) in cases {
            assert_eq!(manifest_description(&manifest), None, "{case}");
        }
    }
}
