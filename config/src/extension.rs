//! Extension sections: `extensions.<name>` belongs to the extension called
//! `<name>`, which deserializes it into its own type.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use crate::env::EnvOrigins;
use crate::error::{ConfigError, describe_value};
use crate::mask::mask_secrets;
use crate::{deserialize, path};

/// The top-level key that contains the extension sections.
pub(crate) const EXTENSIONS_KEY: &str = "extensions";

/// The key that turns an extension on or off, read by [`ExtensionSection::enabled`].
const ENABLED_KEY: &str = "enabled";

/// Removes `extensions` from `root` and returns its sections by name.
///
/// # Errors
///
/// [`ConfigError::Invalid`] when `extensions` is neither null nor a mapping,
/// or an extension name is not a string.
pub(crate) fn take_sections(root: &mut Mapping) -> Result<BTreeMap<String, Value>, ConfigError> {
    let entries = match root.remove(EXTENSIONS_KEY) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Mapping(entries)) => entries,
        Some(other) => {
            return Err(ConfigError::Invalid {
                path: EXTENSIONS_KEY.to_owned(),
                message: format!(
                    "expected a mapping from extension names to sections, found {}",
                    describe_value(&other)
                ),
                variable: None,
            });
        }
    };

    let mut sections = BTreeMap::new();
    for (key, value) in entries {
        let Value::String(name) = key else {
            return Err(ConfigError::Invalid {
                path: path::join_key(EXTENSIONS_KEY, &path::key_text(&key)),
                message: "extension names must be strings".to_owned(),
                variable: None,
            });
        };
        sections.insert(name, value);
    }
    Ok(sections)
}

/// The `extensions.<name>` section of one extension, after flavors and
/// `_env:` substitution.
///
/// The section may be missing, null or a mapping. Its `enabled` key is read
/// by [`enabled`](Self::enabled) and left out of what
/// [`deserialize`](Self::deserialize) returns, so the extension's own type
/// does not declare it.
#[derive(Clone)]
pub struct ExtensionSection {
    name: String,
    value: Value,
    /// The `_env:` variables behind values in this section, keyed by full path.
    origins: EnvOrigins,
}

impl ExtensionSection {
    pub(crate) fn new(name: &str, value: Value, origins: EnvOrigins) -> Self {
        ExtensionSection {
            name: name.to_owned(),
            value,
            origins,
        }
    }

    /// Builds the section of an extension that the file does not mention:
    /// it has no `enabled` key and deserializes from an empty mapping.
    pub fn missing(name: &str) -> Self {
        ExtensionSection::new(name, Value::Null, EnvOrigins::default())
    }

    /// Returns the extension's name, the key under `extensions`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the section's `enabled` key, or `None` when the key or the
    /// whole section is missing or null.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] at `extensions.<name>.enabled` when the value
    /// is not `true` or `false`, and at `extensions.<name>` when the section
    /// is not a mapping.
    pub fn enabled(&self) -> Result<Option<bool>, ConfigError> {
        let Some(entries) = self.entries()? else {
            return Ok(None);
        };

        match entries.get(ENABLED_KEY) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(other) => {
                let path = path::join_key(&self.path(), ENABLED_KEY);
                Err(ConfigError::Invalid {
                    message: format!("expected true or false, found {}", describe_value(other)),
                    variable: self.origins.variable_at(&path).map(str::to_owned),
                    path,
                })
            }
        }
    }

    /// Deserializes the section, without its `enabled` key, into the
    /// extension's own type. A missing or null section deserializes from an
    /// empty mapping.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Invalid`] with the full path, such as
    /// `extensions.<name>.<key>`, the value where serde quotes it, and the
    /// variable when the value came from `_env:`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let mut entries = self.entries()?.cloned().unwrap_or_default();
        entries.remove(ENABLED_KEY);
        deserialize::from_value(&Value::Mapping(entries), &self.path(), &self.origins)
    }

    /// Returns the section with secrets masked, for output.
    pub(crate) fn masked_value(&self) -> Value {
        let mut value = self.value.clone();
        mask_secrets(&mut value);
        value
    }

    fn path(&self) -> String {
        path::join_key(EXTENSIONS_KEY, &self.name)
    }

    /// Returns the section's mapping, or `None` for a null section.
    fn entries(&self) -> Result<Option<&Mapping>, ConfigError> {
        match &self.value {
            Value::Null => Ok(None),
            Value::Mapping(entries) => Ok(Some(entries)),
            other => {
                let path = self.path();
                Err(ConfigError::Invalid {
                    message: format!(
                        "expected a mapping of settings, found {}",
                        describe_value(other)
                    ),
                    variable: self.origins.variable_at(&path).map(str::to_owned),
                    path,
                })
            }
        }
    }
}

/// Shows the section with secrets masked, so that it is safe to log.
impl fmt::Debug for ExtensionSection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ExtensionSection")
            .field("name", &self.name)
            .field("value", &self.masked_value())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::test_support::load_yaml;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct FooSettings {
        setting: u16,
        names: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RequiredSettings {
        #[allow(dead_code)]
        url: String,
    }

    fn section(text: &str, pairs: &[(&str, &str)]) -> ExtensionSection {
        load_yaml(text, pairs).unwrap().extension("foo").unwrap()
    }

    fn assert_invalid(error: &ConfigError, expected_path: &str, expected_variable: Option<&str>) {
        let ConfigError::Invalid { path, variable, .. } = error else {
            panic!("expected Invalid at {expected_path}, got {error:?}");
        };
        assert_eq!(path, expected_path, "{error}");
        assert_eq!(variable.as_deref(), expected_variable, "{error}");
    }

    #[test]
    fn extension_names_are_sorted() {
        let config =
            load_yaml("extensions:\n  zeta: ~\n  alpha: {}\n  mid: {a: 1}\n", &[]).unwrap();
        let names: Vec<&str> = config.extension_names().collect();
        assert_eq!(names, ["alpha", "mid", "zeta"]);
    }

    #[test]
    fn absent_extension_returns_none() {
        let config = load_yaml("extensions:\n  foo: {}\n", &[]).unwrap();
        assert!(config.extension("bar").is_none());
        assert_eq!(config.extension("foo").unwrap().name(), "foo");
    }

    #[test]
    fn extensions_must_be_a_mapping() {
        let error = load_yaml("extensions: [foo]\n", &[]).unwrap_err();
        assert_invalid(&error, "extensions", None);
    }

    #[test]
    fn section_deserializes_into_own_type() {
        let foo = section(
            "extensions:\n  foo:\n    setting: 7\n    names: [a, b]\n",
            &[],
        );
        let settings: FooSettings = foo.deserialize().unwrap();
        assert_eq!(settings.setting, 7);
        assert_eq!(settings.names, ["a", "b"]);
    }

    #[test]
    fn null_section_deserializes_as_empty() {
        let foo = section("extensions:\n  foo:\n", &[]);
        assert_eq!(
            foo.deserialize::<FooSettings>().unwrap(),
            FooSettings::default()
        );
        assert_eq!(foo.enabled().unwrap(), None);
    }

    #[test]
    fn missing_required_field_names_section() {
        let foo = section("extensions:\n  foo: {}\n", &[]);
        let error = foo.deserialize::<RequiredSettings>().unwrap_err();
        assert_invalid(&error, "extensions.foo", None);
        assert!(error.to_string().contains("missing field `url`"), "{error}");
    }

    #[test]
    fn unknown_extension_key_names_path() {
        let foo = section("extensions:\n  foo:\n    settings: 1\n", &[]);
        let error = foo.deserialize::<FooSettings>().unwrap_err();
        assert_invalid(&error, "extensions.foo.settings", None);
    }

    #[test]
    fn wrong_extension_value_names_path() {
        let foo = section("extensions:\n  foo:\n    setting: 70000\n", &[]);
        let error = foo.deserialize::<FooSettings>().unwrap_err();
        assert_invalid(&error, "extensions.foo.setting", None);
        assert!(error.to_string().contains("`70000`"), "{error}");
    }

    #[test]
    fn env_port_becomes_typed_number() {
        let foo = section(
            "extensions:\n  foo:\n    setting: _env:FOO_PORT:5000\n",
            &[],
        );
        assert_eq!(foo.deserialize::<FooSettings>().unwrap().setting, 5000);
    }

    #[test]
    fn env_error_in_extension_names_variable() {
        let text = "extensions:\n  foo:\n    names: [a, _env:SECOND]\n    setting: _env:FOO_PORT\n";
        let foo = section(text, &[("FOO_PORT", "high"), ("SECOND", "b")]);
        let error = foo.deserialize::<FooSettings>().unwrap_err();
        assert_invalid(&error, "extensions.foo.setting", Some("FOO_PORT"));
        let message = error.to_string();
        assert!(message.contains("\"high\""), "{message}");
        assert!(message.contains("FOO_PORT"), "{message}");
    }

    #[test]
    fn env_error_in_sequence_names_variable() {
        let text = "extensions:\n  foo:\n    names: [a, _env:SECOND]\n";
        let foo = section(text, &[("SECOND", "5")]);
        let error = foo.deserialize::<FooSettings>().unwrap_err();
        assert_invalid(&error, "extensions.foo.names[1]", Some("SECOND"));
    }

    #[test]
    fn deserialize_leaves_out_enabled() {
        let foo = section(
            "extensions:\n  foo:\n    enabled: true\n    setting: 1\n",
            &[],
        );
        assert_eq!(foo.deserialize::<FooSettings>().unwrap().setting, 1);
    }

    #[test]
    fn enabled_reads_booleans() {
        let cases = [
            ("extensions:\n  foo: {}\n", None),
            ("extensions:\n  foo:\n", None),
            ("extensions:\n  foo:\n    enabled: true\n", Some(true)),
            ("extensions:\n  foo:\n    enabled: false\n", Some(false)),
            (
                "extensions:\n  foo:\n    enabled: _env:FOO_ON:false\n",
                Some(false),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(section(text, &[]).enabled().unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn enabled_rejects_non_booleans() {
        let foo = section("extensions:\n  foo:\n    enabled: 'yes'\n", &[]);
        let error = foo.enabled().unwrap_err();
        assert_invalid(&error, "extensions.foo.enabled", None);
        assert!(error.to_string().contains("\"yes\""), "{error}");

        let foo = section(
            "extensions:\n  foo:\n    enabled: _env:FOO_ON\n",
            &[("FOO_ON", "on")],
        );
        let error = foo.enabled().unwrap_err();
        assert_invalid(&error, "extensions.foo.enabled", Some("FOO_ON"));
    }

    #[test]
    fn non_mapping_section_is_rejected() {
        let foo = section("extensions:\n  foo: [1]\n", &[]);
        assert_invalid(&foo.enabled().unwrap_err(), "extensions.foo", None);
        assert_invalid(
            &foo.deserialize::<FooSettings>().unwrap_err(),
            "extensions.foo",
            None,
        );
    }

    #[test]
    fn secret_value_is_masked_in_errors() {
        #[derive(Debug, Deserialize)]
        struct WithPassword {
            #[allow(dead_code)]
            password: u32,
        }

        let foo = section(
            "extensions:\n  foo:\n    password: _env:PASS\n",
            &[("PASS", "hunter2")],
        );
        let error = foo.deserialize::<WithPassword>().unwrap_err();
        assert_invalid(&error, "extensions.foo.password", Some("PASS"));
        let message = error.to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(message.contains("********"), "{message}");
    }

    #[test]
    fn debug_masks_section_secrets() {
        let foo = section(
            "extensions:\n  foo:\n    token: abc123\n    url: http://a\n",
            &[],
        );
        let debug = format!("{foo:?}");
        assert!(!debug.contains("abc123"), "{debug}");
        assert!(debug.contains("http://a"), "{debug}");
    }
}
