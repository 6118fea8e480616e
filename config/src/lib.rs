//! Loading of the registry's configuration: one YAML file, or built-in
//! defaults when there is none, turned into typed [`Settings`] plus one
//! untyped section per extension.
//!
//! This crate owns the file format: the top-level `flavors` overlays that
//! `SETTINGS_FLAVOR` selects, `_env:VAR` and `_env:VAR:default` substitution,
//! the typed settings with their defaults, and error messages that name the
//! key path, the value and the variable. [`load`] is a pure function of the
//! file's text and an environment map, so tests need no process environment.
//! This crate does not act on the settings. It opens no sockets or
//! directories and sets up no logging. It also does not know which extensions
//! exist. Each extension deserializes its own `extensions.<name>` section
//! through [`ExtensionSection`], and the registry decides what to do with a
//! section for an extension that it does not contain.
//!
//! Loading runs these steps in order:
//!
//! 1. Parse the YAML. No text, an empty file or a file of comments is an
//!    empty mapping. YAML merge keys (`<<`) are applied.
//! 2. Remove `flavors` and deep-merge the flavor named by `SETTINGS_FLAVOR`.
//! 3. Replace `_env:` values everywhere, so unused flavors need none of their
//!    variables.
//! 4. Set `extensions` aside and deserialize the rest into [`Settings`],
//!    rejecting unknown keys.

mod deserialize;
mod duration;
mod env;
mod error;
mod extension;
mod flavor;
mod mask;
mod path;
mod settings;
mod size;
mod storage;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

pub use crate::error::ConfigError;
pub use crate::extension::ExtensionSection;
pub use crate::settings::{
    AccessLog, Http, Limits, Log, LogFormatter, LogLevel, Settings, Signals,
};
pub use crate::size::{ByteSize, ParseByteSizeError};
pub use crate::storage::{
    BlobCache, Delete, FilesystemStorage, Maintenance, Storage, StorageBackend, UploadPurging,
};

use crate::env::EnvOrigins;
use crate::error::describe_value;

/// The environment variable that names the configuration file when no path
/// is given to [`load_file`].
pub const CONFIG_VARIABLE: &str = "REGISTRY_CONFIG";

/// The environment variable that selects a flavor from the file's `flavors`.
pub const FLAVOR_VARIABLE: &str = flavor::FLAVOR_VARIABLE;

/// A loaded configuration: the typed settings, the extension sections and
/// the file they came from.
///
/// [`Default`] is the configuration that [`load`] returns for no file.
#[derive(Clone, Default)]
pub struct Config {
    /// The typed settings.
    pub settings: Settings,
    /// The `extensions` sections by name, after flavors and substitution.
    extensions: BTreeMap<String, Value>,
    /// The `_env:` variables behind substituted values, keyed by full path.
    origins: EnvOrigins,
    /// The file that was read, if any.
    source: Option<PathBuf>,
}

impl Config {
    /// Returns the names of the sections under `extensions`, sorted.
    pub fn extension_names(&self) -> impl Iterator<Item = &str> {
        self.extensions.keys().map(String::as_str)
    }

    /// Returns the section `extensions.<name>`, or `None` when the file has
    /// no such key.
    pub fn extension(&self, name: &str) -> Option<ExtensionSection> {
        let value = self.extensions.get(name)?;
        let section_path = path::join_key(extension::EXTENSIONS_KEY, name);
        Some(ExtensionSection::new(
            name,
            value.clone(),
            self.origins.under(&section_path),
        ))
    }

    /// Returns the effective configuration as YAML, after flavors and
    /// `_env:` substitution, with every default filled in and the extension
    /// sections under `extensions`.
    ///
    /// Values under keys whose lowercased name contains `secret`,
    /// `password`, `token`, `accesskey`, `secretkey` or `credential` are
    /// replaced by `********`, unless they are null.
    pub fn to_masked_yaml(&self) -> String {
        let mut root = match serde_yaml::to_value(&self.settings) {
            Ok(Value::Mapping(root)) => root,
            // Every settings type serializes to a mapping without failing,
            // because paths are written lossily. This arm only guards against
            // a future field that breaks that.
            Ok(_) | Err(_) => Mapping::new(),
        };

        let extensions: Mapping = self
            .extensions
            .keys()
            .filter_map(|name| self.extension(name))
            .map(|section| (Value::from(section.name()), section.masked_value()))
            .collect();
        root.insert(
            Value::from(extension::EXTENSIONS_KEY),
            Value::Mapping(extensions),
        );

        let mut root = Value::Mapping(root);
        mask::mask_secrets(&mut root);
        serde_yaml::to_string(&root).unwrap_or_default()
    }

    /// Returns the file that the configuration was read from, or `None` for
    /// built-in defaults and for [`load`].
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }
}

/// Lists the settings, the extension names and the source, but no extension
/// values, which may hold secrets.
impl fmt::Debug for Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Config")
            .field("settings", &self.settings)
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

/// Loads a configuration from the text of a YAML file, or from the built-in
/// defaults when `text` is `None`, with `env` as the environment.
///
/// `env` supplies `SETTINGS_FLAVOR` and the variables of `_env:` values.
/// Nothing is read from the process environment. With no text, an empty text
/// or only comments, the result is [`Config::default`], unless
/// `SETTINGS_FLAVOR` is set, which is then an unknown flavor.
///
/// # Errors
///
/// Every [`ConfigError`] variant except `Read` and `InFile`: YAML syntax
/// errors, a top level that is not a mapping, an unknown flavor, an unset
/// variable without a default, and invalid values or unknown keys.
pub fn load(text: Option<&str>, env: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
    let mut root = parse_root(text.unwrap_or(""))?;
    flavor::apply_flavor(&mut root, env)?;

    let mut root = Value::Mapping(root);
    let mut origins = EnvOrigins::default();
    env::substitute(&mut root, "", env, &mut origins)?;

    let Value::Mapping(mut root) = root else {
        // Substitution replaces only strings, so the root stays a mapping.
        return Err(top_level_error(&root));
    };
    let extensions = extension::take_sections(&mut root)?;
    let settings = deserialize::from_value(&Value::Mapping(root), "", &origins)?;

    Ok(Config {
        settings,
        extensions,
        origins,
        source: None,
    })
}

/// Reads and loads the file named by `path`, or by `env["REGISTRY_CONFIG"]`
/// when `path` is `None`. With neither, or with an empty `REGISTRY_CONFIG`,
/// it returns [`load`]`(None, env)`, the built-in defaults.
///
/// # Errors
///
/// [`ConfigError::Read`] when the file cannot be read, and
/// [`ConfigError::InFile`] around any error from [`load`], so the message
/// starts with the file's path.
pub fn load_file(
    path: Option<&Path>,
    env: &BTreeMap<String, String>,
) -> Result<Config, ConfigError> {
    let path = match path {
        Some(path) => Some(path.to_path_buf()),
        None => env
            .get(CONFIG_VARIABLE)
            .filter(|value| !value.is_empty())
            .map(PathBuf::from),
    };
    let Some(path) = path else {
        return load(None, env);
    };

    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let mut config = load(Some(&text), env).map_err(|error| ConfigError::InFile {
        path: path.clone(),
        error: Box::new(error),
    })?;
    config.source = Some(path);
    Ok(config)
}

/// Parses the text into the top-level mapping.
fn parse_root(text: &str) -> Result<Mapping, ConfigError> {
    let mut root: Value =
        serde_yaml::from_str(text).map_err(|error| ConfigError::syntax(&error))?;
    root.apply_merge()
        .map_err(|error| ConfigError::syntax(&error))?;

    match root {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(root) => Ok(root),
        other => Err(top_level_error(&other)),
    }
}

fn top_level_error(found: &Value) -> ConfigError {
    ConfigError::TopLevel {
        found: describe_value(found),
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod test_support {
    use std::collections::BTreeMap;

    use crate::{Config, ConfigError, load};

    /// Builds an environment map from pairs.
    pub(crate) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// Loads `text` with the environment built from `pairs`.
    pub(crate) fn load_yaml(text: &str, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        load(Some(text), &env(pairs))
    }
}
