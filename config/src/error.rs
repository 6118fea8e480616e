//! The error type that every loading step returns.

use std::path::PathBuf;

use serde_yaml::Value;

use crate::path;

/// A configuration that could not be read or is invalid.
///
/// Each message is one line that starts lowercase and names the key path, the
/// offending value where there is one and, for a value that came from
/// `_env:VAR`, the variable. In type and range errors, a value under a key
/// that may hold a secret is replaced by `********`, with the same rule as
/// [`Config::to_masked_yaml`](crate::Config::to_masked_yaml).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("failed to read configuration file {}: {source}", path.display())]
    Read {
        /// The file that was requested.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A file was read, and its contents are invalid for the reason in `error`.
    #[error("{}: {error}", path.display())]
    InFile {
        /// The file that contains the mistake.
        path: PathBuf,
        /// The mistake.
        error: Box<ConfigError>,
    },

    /// The text is not valid YAML.
    #[error("invalid YAML: {message}")]
    Syntax {
        /// The parser's message, which includes the line and column when the
        /// parser reports them.
        message: String,
        /// The 1-based line of the mistake, when known.
        line: Option<usize>,
        /// The 1-based column of the mistake, when known.
        column: Option<usize>,
    },

    /// The document is YAML but not a mapping of sections.
    #[error(
        "the configuration must be a mapping of sections such as `http` and `storage`, found {found}"
    )]
    TopLevel {
        /// A description of the document's value, such as `a sequence`.
        found: String,
    },

    /// `SETTINGS_FLAVOR` names a flavor that the file does not define.
    #[error(
        "unknown flavor `{name}` selected by SETTINGS_FLAVOR ({})",
        list_flavors(available)
    )]
    UnknownFlavor {
        /// The requested flavor.
        name: String,
        /// The flavors that the file defines, sorted.
        available: Vec<String>,
    },

    /// An `_env:VAR` value names a variable that is unset and gives no default.
    #[error(
        "{}: environment variable {variable} is not set and `_env:{variable}` has no default (set it or write `_env:{variable}:DEFAULT`)",
        path::display(path)
    )]
    MissingVariable {
        /// The key whose value is `_env:VAR`.
        path: String,
        /// The variable.
        variable: String,
    },

    /// A value is of the wrong type, out of range, or not allowed at its key.
    #[error("{}: {message}{}", path::display(path), describe_origin(variable))]
    Invalid {
        /// The key with the mistake, such as `storage.filesystem.rootdir`.
        path: String,
        /// The reason, including the value where there is one.
        message: String,
        /// The environment variable that supplied the value through `_env:`.
        variable: Option<String>,
    },
}

impl ConfigError {
    /// Builds a [`ConfigError::Syntax`] from a YAML parser error.
    pub(crate) fn syntax(error: &serde_yaml::Error) -> Self {
        let location = error.location();
        ConfigError::Syntax {
            message: error.to_string(),
            line: location.as_ref().map(|location| location.line()),
            column: location.as_ref().map(|location| location.column()),
        }
    }
}

/// Describes a YAML value for a message, in the words that serde uses.
pub(crate) fn describe_value(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("boolean `{flag}`"),
        Value::Number(number) => format!("number `{number}`"),
        Value::String(text) => format!("string {text:?}"),
        Value::Sequence(_) => "a sequence".to_owned(),
        Value::Mapping(_) => "a mapping".to_owned(),
        Value::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

fn list_flavors(available: &[String]) -> String {
    if available.is_empty() {
        "the configuration defines no flavors".to_owned()
    } else {
        format!("available: {}", available.join(", "))
    }
}

fn describe_origin(variable: &Option<String>) -> String {
    match variable {
        Some(variable) => format!(" (value from environment variable {variable})"),
        None => String::new(),
    }
}
