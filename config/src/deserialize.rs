//! Typed deserialization of a YAML tree, with errors that carry the full key
//! path and the `_env:` variable behind the value.

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use serde_yaml::Value;

use crate::env::EnvOrigins;
use crate::error::ConfigError;
use crate::mask::{is_secret_key, mask_in_message};
use crate::path;

/// Deserializes `value`, which sits at `prefix` in the file, into `T`.
///
/// # Errors
///
/// [`ConfigError::Invalid`] with the path of the offending key, serde's
/// message (which quotes the value for type and range errors) and the
/// variable when the value came from `_env:`. When any key on the path may
/// hold a secret, the value is masked in the message.
pub(crate) fn from_value<T: DeserializeOwned>(
    value: &Value,
    prefix: &str,
    origins: &EnvOrigins,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let tracked = error.path();
        let path = path::join_tracked(prefix, tracked);
        let mut message = error.inner().to_string();

        let secret = tracked.iter().any(|segment| match segment {
            Segment::Map { key } => is_secret_key(key),
            _ => false,
        });
        if secret && let Some(found) = value_at(value, tracked) {
            message = mask_in_message(&message, found);
        }

        let variable = origins.variable_at(&path).map(str::to_owned);
        ConfigError::Invalid {
            path,
            message,
            variable,
        }
    })
}

/// Follows a tracked path from `root`, returning `None` where it leaves the tree.
fn value_at<'a>(root: &'a Value, tracked: &serde_path_to_error::Path) -> Option<&'a Value> {
    let mut current = root;
    for segment in tracked {
        current = match segment {
            Segment::Map { key } => current.get(key.as_str())?,
            Segment::Seq { index } => current.get(*index)?,
            Segment::Enum { .. } | Segment::Unknown => return None,
        };
    }
    Some(current)
}
