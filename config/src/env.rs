//! `_env:` substitution: string values of the form `_env:VAR` or
//! `_env:VAR:default` are replaced by the variable's value from the
//! environment map, or by the default when the variable is unset.
//!
//! A variable that is set to the empty string counts as set, so its value is
//! the empty string and the default is not used. Only the first colon after
//! the name separates it from the default, so `_env:ADDR:127.0.0.1:5000` has
//! the default `127.0.0.1:5000`. There is no escape for a literal string that
//! starts with `_env:`.

use std::collections::BTreeMap;

use serde_yaml::Value;

use crate::error::ConfigError;
use crate::path;

/// The prefix that marks a string value for substitution.
const PREFIX: &str = "_env:";

/// The variable that supplied each substituted value, keyed by the value's
/// path, so that an error at that path can name the variable.
#[derive(Debug, Clone, Default)]
pub(crate) struct EnvOrigins(BTreeMap<String, String>);

impl EnvOrigins {
    /// Returns the variable that supplied the value at `path`, if any.
    pub(crate) fn variable_at(&self, path: &str) -> Option<&str> {
        self.0.get(path).map(String::as_str)
    }

    /// Returns the origins of values at `prefix` and below it.
    pub(crate) fn under(&self, prefix: &str) -> EnvOrigins {
        let entries = self
            .0
            .range(prefix.to_owned()..)
            .take_while(|(path, _)| path.starts_with(prefix))
            .filter(|(path, _)| {
                let rest = &path[prefix.len()..];
                rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')
            })
            .map(|(path, variable)| (path.clone(), variable.clone()));
        EnvOrigins(entries.collect())
    }
}

/// Replaces every `_env:` string in `value`, which sits at `path`, and records
/// where each replacement came from in `origins`.
///
/// Strings are replaced anywhere in the tree, including inside sequences.
/// Mapping keys are never replaced.
///
/// # Errors
///
/// [`ConfigError::MissingVariable`] when a variable is unset and has no
/// default, and [`ConfigError::Invalid`] when the variable name is empty or
/// contains whitespace or `=`.
pub(crate) fn substitute(
    value: &mut Value,
    path: &str,
    env: &BTreeMap<String, String>,
    origins: &mut EnvOrigins,
) -> Result<(), ConfigError> {
    match value {
        Value::String(text) => {
            if let Some(reference) = text.strip_prefix(PREFIX) {
                let (variable, resolved) = resolve(reference, path, env)?;
                origins.0.insert(path.to_owned(), variable);
                *value = resolved;
            }
        }
        Value::Sequence(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                substitute(item, &path::join_index(path, index), env, origins)?;
            }
        }
        Value::Mapping(entries) => {
            for (key, item) in entries.iter_mut() {
                let item_path = path::join_key(path, &path::key_text(key));
                substitute(item, &item_path, env, origins)?;
            }
        }
        Value::Tagged(tagged) => substitute(&mut tagged.value, path, env, origins)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// Looks up the variable in `reference` (the text after `_env:`) and returns
/// its name and the typed value.
fn resolve(
    reference: &str,
    path: &str,
    env: &BTreeMap<String, String>,
) -> Result<(String, Value), ConfigError> {
    let (variable, default) = match reference.split_once(':') {
        Some((variable, default)) => (variable, Some(default)),
        None => (reference, None),
    };

    let invalid_name = variable.is_empty()
        || variable
            .chars()
            .any(|character| character.is_whitespace() || character == '=');
    if invalid_name {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            message: format!(
                "invalid environment variable name {variable:?} in `{PREFIX}{reference}` (write `_env:VAR` or `_env:VAR:default`)"
            ),
            variable: None,
        });
    }

    let raw = match (env.get(variable), default) {
        (Some(value), _) => value.as_str(),
        (None, Some(default)) => default,
        (None, None) => {
            return Err(ConfigError::MissingVariable {
                path: path.to_owned(),
                variable: variable.to_owned(),
            });
        }
    };
    Ok((variable.to_owned(), typed_scalar(raw)))
}

/// Parses `raw` as a YAML scalar, so that `true`, `5000`, `0.5` and `null`
/// become typed values and anything else stays a string.
///
/// Only text made of letters, digits and `+-._~` is parsed. Any other text is
/// kept as is, because the YAML parser would drop a comment (`abc #1` becomes
/// `abc`) or read quotes, anchors and tags, which a password or URL may
/// contain. The empty string stays an empty string instead of becoming null.
fn typed_scalar(raw: &str) -> Value {
    let plain = !raw.is_empty()
        && raw
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || "+-._~".contains(character));
    if plain
        && let Ok(value @ (Value::Null | Value::Bool(_) | Value::Number(_))) =
            serde_yaml::from_str::<Value>(raw)
    {
        return value;
    }
    Value::String(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::load_yaml;

    #[test]
    fn typed_scalar_parses_plain_tokens() {
        let cases = [
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
            ("5000", Value::from(5000)),
            ("-3", Value::from(-3)),
            ("0.5", Value::from(0.5)),
            ("null", Value::Null),
            ("~", Value::Null),
            ("", Value::from("")),
            ("yes", Value::from("yes")),
            ("127.0.0.1:5000", Value::from("127.0.0.1:5000")),
            ("abc #1", Value::from("abc #1")),
            ("5 # comment", Value::from("5 # comment")),
            ("'quoted'", Value::from("'quoted'")),
            ("[1, 2]", Value::from("[1, 2]")),
            ("a: b", Value::from("a: b")),
            (" 5", Value::from(" 5")),
        ];
        for (raw, expected) in cases {
            assert_eq!(typed_scalar(raw), expected, "raw value {raw:?}");
        }
    }

    #[test]
    fn env_reference_uses_variable_value() {
        let config = load_yaml(
            "storage:\n  filesystem:\n    rootdirectory: _env:ROOT\n",
            &[("ROOT", "/srv/registry")],
        )
        .unwrap();
        let crate::StorageBackend::Filesystem(filesystem) = &config.settings.storage.backend;
        assert_eq!(filesystem.root_directory.to_str(), Some("/srv/registry"));
    }

    #[test]
    fn unset_variable_uses_default() {
        let config = load_yaml("http:\n  addr: _env:ADDR:0.0.0.0:6000\n", &[]).unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "0.0.0.0:6000");
    }

    #[test]
    fn set_variable_overrides_default() {
        let config = load_yaml(
            "http:\n  addr: _env:ADDR:0.0.0.0:6000\n",
            &[("ADDR", "127.0.0.1:7000")],
        )
        .unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "127.0.0.1:7000");
    }

    #[test]
    fn default_keeps_all_its_colons() {
        let config = load_yaml(
            "extensions:\n  foo:\n    url: _env:URL:http://h:1/a:b\n",
            &[],
        )
        .unwrap();
        let section = config.extension("foo").unwrap();
        let value: BTreeMap<String, String> = section.deserialize().unwrap();
        assert_eq!(value["url"], "http://h:1/a:b");
    }

    #[test]
    fn empty_default_is_empty_string() {
        let config = load_yaml("extensions:\n  foo:\n    name: '_env:NAME:'\n", &[]).unwrap();
        let value: BTreeMap<String, Value> =
            config.extension("foo").unwrap().deserialize().unwrap();
        assert_eq!(value["name"], Value::from(""));
    }

    #[test]
    fn unset_variable_without_default_fails() {
        let error = load_yaml("log:\n  level: _env:LOG_LEVEL\n", &[]).unwrap_err();
        assert!(
            matches!(
                &error,
                ConfigError::MissingVariable { path, variable }
                    if path == "log.level" && variable == "LOG_LEVEL"
            ),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("log.level"), "{message}");
        assert!(message.contains("LOG_LEVEL"), "{message}");
    }

    #[test]
    fn set_but_empty_variable_counts_as_set() {
        let yaml = "extensions:\n  foo:\n    prefix: _env:PREFIX:default\n";
        let config = load_yaml(yaml, &[("PREFIX", "")]).unwrap();
        let value: BTreeMap<String, Value> =
            config.extension("foo").unwrap().deserialize().unwrap();
        assert_eq!(value["prefix"], Value::from(""));
    }

    #[test]
    fn substituted_values_get_yaml_types() {
        let yaml = "limits:\n  maxuploads: _env:UPLOADS:5000\nstorage:\n  delete:\n    enabled: _env:DELETE\n";
        let config = load_yaml(yaml, &[("DELETE", "false")]).unwrap();
        assert_eq!(config.settings.limits.max_uploads.get(), 5000);
        assert!(!config.settings.storage.delete.enabled);
    }

    #[test]
    fn substitution_reaches_into_sequences() {
        let yaml = "extensions:\n  foo:\n    hosts: [a, _env:HOST, '_env:PORT:80']\n";
        let config = load_yaml(yaml, &[("HOST", "b")]).unwrap();
        let value: BTreeMap<String, Vec<Value>> =
            config.extension("foo").unwrap().deserialize().unwrap();
        assert_eq!(
            value["hosts"],
            [Value::from("a"), Value::from("b"), Value::from(80)]
        );
    }

    #[test]
    fn missing_variable_in_sequence_names_index() {
        let error = load_yaml("extensions:\n  foo:\n    hosts: [a, _env:HOST]\n", &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::MissingVariable { path, .. } if path == "extensions.foo.hosts[1]"),
            "{error:?}"
        );
    }

    #[test]
    fn empty_variable_name_is_invalid() {
        let error = load_yaml("log:\n  level: '_env::info'\n", &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { path, .. } if path == "log.level"),
            "{error:?}"
        );
    }

    #[test]
    fn mapping_keys_are_not_substituted() {
        let config = load_yaml("extensions:\n  foo:\n    _env:KEY: 1\n", &[("KEY", "x")]).unwrap();
        let value: BTreeMap<String, u8> = config.extension("foo").unwrap().deserialize().unwrap();
        assert_eq!(value.get("_env:KEY"), Some(&1));
    }

    #[test]
    fn origins_under_matches_whole_segments() {
        let mut origins = EnvOrigins::default();
        origins.0.insert("extensions.foo.a".into(), "A".into());
        origins.0.insert("extensions.foo[0]".into(), "B".into());
        origins.0.insert("extensions.foobar.c".into(), "C".into());
        let under = origins.under("extensions.foo");
        assert_eq!(under.variable_at("extensions.foo.a"), Some("A"));
        assert_eq!(under.variable_at("extensions.foo[0]"), Some("B"));
        assert_eq!(under.variable_at("extensions.foobar.c"), None);
    }
}
