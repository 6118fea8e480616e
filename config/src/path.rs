//! Key paths such as `storage.filesystem.rootdirectory` or `extensions.notify.endpoints[0].url`,
//! the form that every error message uses to point into the file.

use serde_path_to_error::Segment;
use serde_yaml::Value;

/// Appends a mapping key to `parent`, with a dot unless `parent` is the top level.
pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Appends a sequence index to `parent` as `[index]`.
pub(crate) fn join_index(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Formats a mapping key for a path. YAML allows keys that are not strings,
/// so numbers and booleans are written as they appear in the file.
pub(crate) fn key_text(key: &Value) -> String {
    match key {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null => "null".to_owned(),
        _ => "?".to_owned(),
    }
}

/// Appends the path that `serde_path_to_error` recorded to `prefix`, in the same
/// form as [`join_key`] and [`join_index`] so that both can be compared.
pub(crate) fn join_tracked(prefix: &str, tracked: &serde_path_to_error::Path) -> String {
    let mut path = prefix.to_owned();
    for segment in tracked {
        path = match segment {
            Segment::Seq { index } => join_index(&path, *index),
            Segment::Map { key } => join_key(&path, key),
            Segment::Enum { variant } => join_key(&path, variant),
            Segment::Unknown => join_key(&path, "?"),
        };
    }
    path
}

/// Returns `path`, or a phrase for the top level when the path is empty.
pub(crate) fn display(path: &str) -> &str {
    if path.is_empty() { "top level" } else { path }
}
