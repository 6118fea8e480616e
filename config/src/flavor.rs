//! Flavors: named overlays in the file's top-level `flavors:` mapping, one of
//! which `SETTINGS_FLAVOR` selects and deep-merges over the rest of the file.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use crate::error::{ConfigError, describe_value};
use crate::path;

/// The environment variable that selects a flavor.
pub(crate) const FLAVOR_VARIABLE: &str = "SETTINGS_FLAVOR";

/// The top-level key that contains the flavors.
const FLAVORS_KEY: &str = "flavors";

/// Removes `flavors` from `root` and merges the flavor that `SETTINGS_FLAVOR`
/// selects over what remains.
///
/// An unset or empty `SETTINGS_FLAVOR` selects no flavor, and the flavors are
/// dropped unused. The shape of `flavors` is checked either way, so a mistake
/// in one flavor shows up whichever flavor runs.
///
/// # Errors
///
/// [`ConfigError::UnknownFlavor`] when the file does not define the selected
/// flavor (also when the file has no `flavors` at all), and
/// [`ConfigError::Invalid`] when `flavors` or one of its entries is not a
/// mapping or a flavor contains `flavors` itself.
pub(crate) fn apply_flavor(
    root: &mut Mapping,
    env: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let mut flavors = take_flavors(root)?;
    let Some(name) = env.get(FLAVOR_VARIABLE).filter(|name| !name.is_empty()) else {
        return Ok(());
    };

    let Some(overlay) = flavors.remove(name) else {
        return Err(ConfigError::UnknownFlavor {
            name: name.clone(),
            available: flavors.into_keys().collect(),
        });
    };
    merge_mapping(root, overlay);
    Ok(())
}

/// Removes and checks the `flavors` mapping. A null flavor is an empty overlay.
fn take_flavors(root: &mut Mapping) -> Result<BTreeMap<String, Mapping>, ConfigError> {
    let entries = match root.remove(FLAVORS_KEY) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Mapping(entries)) => entries,
        Some(other) => {
            return Err(ConfigError::Invalid {
                path: FLAVORS_KEY.to_owned(),
                message: format!(
                    "expected a mapping from flavor names to settings, found {}",
                    describe_value(&other)
                ),
                variable: None,
            });
        }
    };

    let mut flavors = BTreeMap::new();
    for (key, value) in entries {
        let flavor_path = path::join_key(FLAVORS_KEY, &path::key_text(&key));
        let Value::String(name) = key else {
            return Err(invalid(
                flavor_path,
                "flavor names must be strings".to_owned(),
            ));
        };
        let overlay = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(overlay) => overlay,
            other => {
                let message = format!(
                    "expected a mapping of settings, found {}",
                    describe_value(&other)
                );
                return Err(invalid(flavor_path, message));
            }
        };
        if overlay.contains_key(FLAVORS_KEY) {
            let message = "a flavor cannot contain `flavors`".to_owned();
            return Err(invalid(path::join_key(&flavor_path, FLAVORS_KEY), message));
        }
        flavors.insert(name, overlay);
    }
    Ok(flavors)
}

/// Merges `overlay` into `base`: mappings merge key by key, recursively, and
/// any other overlay value (null included) replaces the base value.
fn merge_mapping(base: &mut Mapping, overlay: Mapping) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(base_entries)), Value::Mapping(overlay_entries)) => {
                merge_mapping(base_entries, overlay_entries);
            }
            (Some(base_value), value) => *base_value = value,
            (None, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn invalid(path: String, message: String) -> ConfigError {
    ConfigError::Invalid {
        path,
        message,
        variable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StorageBackend;
    use crate::test_support::load_yaml;

    const FLAVORED: &str = "\
http:
  addr: 127.0.0.1:5000
  draintimeout: 10s
storage:
  filesystem:
    rootdirectory: /base
  delete:
    enabled: true
flavors:
  prod:
    http:
      addr: _env:ADDR:0.0.0.0:80
    storage:
      filesystem:
        rootdirectory: /prod
  dev: ~
";

    #[test]
    fn flavor_merges_nested_mappings() {
        let config = load_yaml(FLAVORED, &[("SETTINGS_FLAVOR", "prod")]).unwrap();
        let settings = &config.settings;
        assert_eq!(settings.http.addr.to_string(), "0.0.0.0:80");
        assert_eq!(settings.http.drain_timeout.as_secs(), 10);
        let StorageBackend::Filesystem(filesystem) = &settings.storage.backend;
        assert_eq!(filesystem.root_directory.to_str(), Some("/prod"));
        assert!(settings.storage.delete.enabled);
    }

    #[test]
    fn flavor_values_get_env_substitution() {
        let config = load_yaml(
            FLAVORED,
            &[("SETTINGS_FLAVOR", "prod"), ("ADDR", "10.0.0.1:8080")],
        )
        .unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "10.0.0.1:8080");
    }

    #[test]
    fn unset_flavor_ignores_flavors() {
        let config = load_yaml(FLAVORED, &[]).unwrap();
        let StorageBackend::Filesystem(filesystem) = &config.settings.storage.backend;
        assert_eq!(filesystem.root_directory.to_str(), Some("/base"));
        assert_eq!(config.settings.http.addr.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn empty_flavor_variable_selects_none() {
        let config = load_yaml(FLAVORED, &[("SETTINGS_FLAVOR", "")]).unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn null_flavor_changes_nothing() {
        let config = load_yaml(FLAVORED, &[("SETTINGS_FLAVOR", "dev")]).unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn unknown_flavor_lists_available_ones() {
        let error = load_yaml(FLAVORED, &[("SETTINGS_FLAVOR", "staging")]).unwrap_err();
        let ConfigError::UnknownFlavor { name, available } = &error else {
            panic!("expected UnknownFlavor, got {error:?}");
        };
        assert_eq!(name, "staging");
        assert_eq!(available, &["dev", "prod"]);
        let message = error.to_string();
        assert!(message.contains("staging"), "{message}");
        assert!(message.contains("dev, prod"), "{message}");
    }

    #[test]
    fn flavor_without_flavors_section_fails() {
        let error = load_yaml("log:\n  level: info\n", &[("SETTINGS_FLAVOR", "prod")]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::UnknownFlavor { available, .. } if available.is_empty()),
            "{error:?}"
        );
        assert!(error.to_string().contains("defines no flavors"), "{error}");
    }

    #[test]
    fn unused_flavor_skips_substitution() {
        let yaml = "flavors:\n  prod:\n    http:\n      addr: _env:PROD_ADDR\n";
        let config = load_yaml(yaml, &[]).unwrap();
        assert_eq!(config.settings.http.addr.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn flavor_must_be_a_mapping() {
        let error = load_yaml("flavors:\n  prod: 5\n", &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { path, .. } if path == "flavors.prod"),
            "{error:?}"
        );
    }

    #[test]
    fn flavors_must_be_a_mapping() {
        let error = load_yaml("flavors: [prod]\n", &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { path, .. } if path == "flavors"),
            "{error:?}"
        );
    }

    #[test]
    fn nested_flavors_are_rejected() {
        let error = load_yaml("flavors:\n  prod:\n    flavors: {}\n", &[]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { path, .. } if path == "flavors.prod.flavors"),
            "{error:?}"
        );
    }

    #[test]
    fn merge_replaces_non_mapping_values() {
        let mut base: Mapping =
            serde_yaml::from_str("a: {b: 1, c: [1, 2]}\nd: {e: 1}\nf: 1\n").unwrap();
        let overlay: Mapping = serde_yaml::from_str("a: {c: [3]}\nd: ~\ng: 2\n").unwrap();
        merge_mapping(&mut base, overlay);
        let expected: Mapping =
            serde_yaml::from_str("a: {b: 1, c: [3]}\nd: ~\nf: 1\ng: 2\n").unwrap();
        assert_eq!(base, expected);
    }
}
