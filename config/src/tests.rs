//! Tests of [`load`] and [`load_file`] as a whole: defaults, parse errors,
//! typed settings and their error messages, masked output.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::test_support::{env, load_yaml};

fn root_directory(config: &Config) -> &Path {
    let StorageBackend::Filesystem(filesystem) = &config.settings.storage.backend;
    &filesystem.root_directory
}

/// Asserts that loading fails with [`ConfigError::Invalid`] at
/// `expected_path` and returns the error.
fn invalid_at(text: &str, pairs: &[(&str, &str)], expected_path: &str) -> ConfigError {
    let error = load_yaml(text, pairs).unwrap_err();
    match &error {
        ConfigError::Invalid { path, .. } => assert_eq!(path, expected_path, "{error}"),
        other => panic!("expected Invalid at {expected_path}, got {other:?}"),
    }
    error
}

#[test]
fn no_file_gives_defaults() {
    let config = load(None, &env(&[])).unwrap();
    let settings = &config.settings;
    assert_eq!(settings.http.addr, SocketAddr::from(([127, 0, 0, 1], 5000)));
    assert_eq!(root_directory(&config), Path::new("./data"));
    assert_eq!(settings.log.level, LogLevel::Info);
    assert_eq!(settings.log.formatter, LogFormatter::Text);
    assert!(!settings.log.access_log.disabled);
    assert_eq!(settings.http.drain_timeout, Duration::from_secs(30));
    assert_eq!(settings.http.request_timeout, Duration::from_secs(60));
    assert_eq!(settings.http.idle_timeout, Duration::from_secs(300));
    assert_eq!(settings.http.max_header_size, ByteSize(64 * 1024));
    assert!(settings.storage.delete.enabled);
    let purging = &settings.storage.maintenance.upload_purging;
    assert!(purging.enabled);
    assert_eq!(purging.age, Duration::from_secs(168 * 3600));
    assert_eq!(purging.interval, Duration::from_secs(24 * 3600));
    assert_eq!(settings.limits.manifest_size, ByteSize(4 * 1024 * 1024));
    assert_eq!(settings.limits.max_uploads.get(), 1000);
    assert_eq!(config.extension_names().count(), 0);
    assert_eq!(config.source(), None);
}

#[test]
fn empty_texts_give_defaults() {
    for text in ["", "\n", "# only a comment\n", "---\n", "~\n"] {
        let config = load_yaml(text, &[]).unwrap();
        assert_eq!(config.settings, Settings::default(), "text {text:?}");
    }
}

#[test]
fn empty_sections_take_defaults() {
    let config = load_yaml("log:\nhttp:\nstorage:\nlimits:\nextensions:\n", &[]).unwrap();
    assert_eq!(config.settings, Settings::default());
}

#[test]
fn empty_backend_key_selects_filesystem() {
    let config = load_yaml("storage:\n  filesystem:\n  delete:\n", &[]).unwrap();
    assert_eq!(root_directory(&config), Path::new("./data"));
    assert!(config.settings.storage.delete.enabled);
}

#[test]
fn full_file_sets_every_field() {
    let text = "\
version: 0.1
log:
  level: debug
  formatter: json
  accesslog:
    disabled: true
http:
  addr: '[::]:8080'
  draintimeout: 0s
  requesttimeout: 2m
  idletimeout: 45s
  maxheadersize: 16KiB
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: false
  maintenance:
    uploadpurging:
      enabled: false
      age: 48h
      interval: 1h
  cache:
    blobmemory: 0
    maxblobsize: 64KiB
limits:
  manifestsize: 1048576
  maxuploads: 8
";
    let settings = load_yaml(text, &[]).unwrap().settings;
    assert_eq!(settings.version.as_deref(), Some("0.1"));
    assert_eq!(settings.log.level, LogLevel::Debug);
    assert_eq!(settings.log.formatter, LogFormatter::Json);
    assert!(settings.log.access_log.disabled);
    assert_eq!(settings.http.addr.to_string(), "[::]:8080");
    assert_eq!(settings.http.drain_timeout, Duration::ZERO);
    assert_eq!(settings.http.request_timeout, Duration::from_secs(120));
    assert_eq!(settings.http.idle_timeout, Duration::from_secs(45));
    assert_eq!(settings.http.max_header_size, ByteSize::kib(16));
    let StorageBackend::Filesystem(filesystem) = &settings.storage.backend;
    assert_eq!(filesystem.root_directory, Path::new("/var/lib/registry"));
    assert!(!settings.storage.delete.enabled);
    let purging = &settings.storage.maintenance.upload_purging;
    assert!(!purging.enabled);
    assert_eq!(purging.age, Duration::from_secs(48 * 3600));
    assert_eq!(purging.interval, Duration::from_secs(3600));
    assert_eq!(settings.storage.cache.blob_memory, ByteSize(0));
    assert_eq!(settings.storage.cache.max_blob_size, ByteSize::kib(64));
    assert_eq!(settings.limits.manifest_size, ByteSize::mib(1));
    assert_eq!(settings.limits.max_uploads.get(), 8);
}

#[test]
fn version_accepts_string_or_number() {
    let from_number = load_yaml("version: 0.1\n", &[]).unwrap();
    let from_string = load_yaml("version: '0.1'\n", &[]).unwrap();
    assert_eq!(from_number.settings.version.as_deref(), Some("0.1"));
    assert_eq!(from_string.settings.version.as_deref(), Some("0.1"));
    invalid_at("version: [1]\n", &[], "version");
}

#[test]
fn syntax_error_reports_line() {
    let error = load_yaml("http:\n  addr: 127.0.0.1:5000\n bad: [\n", &[]).unwrap_err();
    let ConfigError::Syntax { line, .. } = &error else {
        panic!("expected Syntax, got {error:?}");
    };
    assert_eq!(*line, Some(3), "{error}");
    assert!(error.to_string().contains("line 3"), "{error}");
}

#[test]
fn non_mapping_top_level_is_rejected() {
    let cases = [
        ("- a\n- b\n", "a sequence"),
        ("just text\n", "string \"just text\""),
        ("5\n", "number `5`"),
    ];
    for (text, found_text) in cases {
        let error = load_yaml(text, &[]).unwrap_err();
        let ConfigError::TopLevel { found } = &error else {
            panic!("expected TopLevel for {text:?}, got {error:?}");
        };
        assert_eq!(found, found_text);
    }
}

#[test]
fn unknown_key_names_full_path() {
    let text = "storage:\n  filesystem:\n    rootdir: /srv\n";
    let error = invalid_at(text, &[], "storage.filesystem.rootdir");
    let message = error.to_string();
    assert!(
        message.starts_with("storage.filesystem.rootdir: "),
        "{message}"
    );
    assert!(message.contains("rootdirectory"), "{message}");
}

#[test]
fn unknown_sections_name_their_path() {
    let cases = [
        ("auth:\n  htpasswd: {}\n", "auth"),
        ("http:\n  port: 5000\n", "http.port"),
        ("storage:\n  s3: {}\n", "storage.s3"),
        (
            "log:\n  accesslog:\n    enabled: true\n",
            "log.accesslog.enabled",
        ),
    ];
    for (text, path) in cases {
        invalid_at(text, &[], path);
    }
}

#[test]
fn wrong_type_names_path_and_value() {
    let cases = [
        (
            "storage:\n  delete:\n    enabled: yes\n",
            "storage.delete.enabled",
            "\"yes\"",
        ),
        (
            "limits:\n  maxuploads: many\n",
            "limits.maxuploads",
            "\"many\"",
        ),
        ("limits:\n  maxuploads: 0\n", "limits.maxuploads", "`0`"),
        ("limits:\n  maxuploads: -1\n", "limits.maxuploads", "`-1`"),
        ("log:\n  level: verbose\n", "log.level", "`verbose`"),
        (
            "log:\n  formatter: logstash\n",
            "log.formatter",
            "`logstash`",
        ),
        ("http:\n  draintimeout: 30\n", "http.draintimeout", "`30`"),
        (
            "http:\n  idletimeout: soon\n",
            "http.idletimeout",
            "\"soon\"",
        ),
        (
            "limits:\n  manifestsize: 4XB\n",
            "limits.manifestsize",
            "\"4XB\"",
        ),
        ("http: 5000\n", "http", "`5000`"),
    ];
    for (text, path, value) in cases {
        let message = invalid_at(text, &[], path).to_string();
        assert!(message.contains(value), "expected {value} in: {message}");
    }
}

#[test]
fn host_name_address_is_rejected() {
    let message = invalid_at("http:\n  addr: localhost:5000\n", &[], "http.addr").to_string();
    assert!(message.contains("\"localhost:5000\""), "{message}");
    assert!(message.contains("host names are not accepted"), "{message}");
}

#[test]
fn port_only_address_suggests_all_interfaces() {
    let message = invalid_at("http:\n  addr: ':5000'\n", &[], "http.addr").to_string();
    assert!(message.contains("0.0.0.0:5000"), "{message}");
}

#[test]
fn zero_values_are_rejected() {
    let cases = [
        ("http:\n  requesttimeout: 0s\n", "http.requesttimeout"),
        ("http:\n  idletimeout: 0s\n", "http.idletimeout"),
        ("http:\n  maxheadersize: 0\n", "http.maxheadersize"),
        ("limits:\n  manifestsize: 0MiB\n", "limits.manifestsize"),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      interval: 0s\n",
            "storage.maintenance.uploadpurging.interval",
        ),
        (
            "storage:\n  maintenance:\n    uploadpurging:\n      age: 0s\n",
            "storage.maintenance.uploadpurging.age",
        ),
    ];
    for (text, path) in cases {
        let message = invalid_at(text, &[], path).to_string();
        assert!(message.contains("greater than zero"), "{message}");
    }
}

#[test]
fn empty_root_directory_is_rejected() {
    let text = "storage:\n  filesystem:\n    rootdirectory: ''\n";
    invalid_at(text, &[], "storage.filesystem.rootdirectory");
}

#[test]
fn env_value_of_wrong_type_names_variable() {
    let text = "limits:\n  maxuploads: _env:MAX_UPLOADS\n";
    let error = invalid_at(text, &[("MAX_UPLOADS", "lots")], "limits.maxuploads");
    let ConfigError::Invalid { variable, .. } = &error else {
        unreachable!()
    };
    assert_eq!(variable.as_deref(), Some("MAX_UPLOADS"));
    let message = error.to_string();
    assert!(message.contains("\"lots\""), "{message}");
    assert!(
        message.contains("environment variable MAX_UPLOADS"),
        "{message}"
    );
}

#[test]
fn literal_value_error_has_no_variable() {
    let error = invalid_at("limits:\n  maxuploads: lots\n", &[], "limits.maxuploads");
    let ConfigError::Invalid { variable, .. } = &error else {
        unreachable!()
    };
    assert_eq!(variable, &None);
}

#[test]
fn merge_keys_are_applied() {
    // The anchor sits under `extensions`, the only place that accepts keys
    // that are not settings.
    let text = "\
extensions:
  shared: &off
    enabled: false
storage:
  delete:
    <<: *off
";
    let config = load_yaml(text, &[]).unwrap();
    assert!(!config.settings.storage.delete.enabled);

    let text = "extensions:\n  base: &base {a: 1}\n  foo:\n    <<: *base\n    b: 2\n";
    let config = load_yaml(text, &[]).unwrap();
    let value: BTreeMap<String, u8> = config.extension("foo").unwrap().deserialize().unwrap();
    assert_eq!(value.get("a"), Some(&1));
    assert_eq!(value.get("b"), Some(&2));
}

#[test]
fn masked_yaml_shows_effective_settings() {
    let text = "http:\n  addr: _env:ADDR\nextensions:\n  foo:\n    url: http://x\n";
    let config = load_yaml(text, &[("ADDR", "0.0.0.0:6000")]).unwrap();
    let yaml = config.to_masked_yaml();
    assert!(yaml.contains("addr: 0.0.0.0:6000"), "{yaml}");
    assert!(yaml.contains("rootdirectory: ./data"), "{yaml}");
    assert!(yaml.contains("draintimeout: 30s"), "{yaml}");
    assert!(yaml.contains("manifestsize: 4MiB"), "{yaml}");
    assert!(yaml.contains("url: http://x"), "{yaml}");
    assert!(!yaml.contains("flavors"), "{yaml}");
}

#[test]
fn masked_yaml_hides_extension_secrets() {
    let text = "\
extensions:
  notify:
    endpoints:
      - url: http://hook
        token: _env:HOOK_TOKEN
    password: hunter2
    secretKey: abc
";
    let config = load_yaml(text, &[("HOOK_TOKEN", "s3cr3t")]).unwrap();
    let yaml = config.to_masked_yaml();
    assert!(!yaml.contains("s3cr3t"), "{yaml}");
    assert!(!yaml.contains("hunter2"), "{yaml}");
    assert!(!yaml.contains("abc"), "{yaml}");
    assert!(yaml.contains("url: http://hook"), "{yaml}");
    assert_eq!(yaml.matches("'********'").count(), 3, "{yaml}");
}

#[test]
fn masked_yaml_loads_back_equal() {
    let text = "http:\n  idletimeout: 90s\nstorage:\n  filesystem:\n    rootdirectory: /srv\n";
    let config = load_yaml(text, &[]).unwrap();
    let reloaded = load_yaml(&config.to_masked_yaml(), &[]).unwrap();
    assert_eq!(reloaded.settings, config.settings);
}

#[test]
fn debug_output_hides_extension_values() {
    let config = load_yaml("extensions:\n  foo:\n    apikey: visible-only-here\n", &[]).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("foo"), "{debug}");
    assert!(!debug.contains("visible-only-here"), "{debug}");
}

/// A file under the system temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("registry-config-{}-{name}.yml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn load_file_reads_registry_config() {
    let file = TempFile::new("from-env", "http:\n  addr: 0.0.0.0:7000\n");
    let path = file.0.to_str().unwrap();
    let config = load_file(None, &env(&[("REGISTRY_CONFIG", path)])).unwrap();
    assert_eq!(config.settings.http.addr.to_string(), "0.0.0.0:7000");
    assert_eq!(config.source(), Some(file.0.as_path()));
}

#[test]
fn load_file_path_beats_variable() {
    let file = TempFile::new("explicit", "http:\n  addr: 0.0.0.0:7001\n");
    let pairs = [("REGISTRY_CONFIG", "/nonexistent/registry.yml")];
    let config = load_file(Some(&file.0), &env(&pairs)).unwrap();
    assert_eq!(config.settings.http.addr.to_string(), "0.0.0.0:7001");
}

#[test]
fn load_file_without_path_gives_defaults() {
    let config = load_file(None, &env(&[])).unwrap();
    assert_eq!(config.settings, Settings::default());
    assert_eq!(config.source(), None);

    let config = load_file(None, &env(&[("REGISTRY_CONFIG", "")])).unwrap();
    assert_eq!(config.source(), None);
}

#[test]
fn missing_file_error_names_path() {
    let missing = Path::new("/nonexistent/registry-config/config.yml");
    let error = load_file(Some(missing), &env(&[])).unwrap_err();
    assert!(
        matches!(&error, ConfigError::Read { path, .. } if path == missing),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("/nonexistent/registry-config/config.yml"),
        "{error}"
    );
}

#[test]
fn file_content_error_names_file_and_key() {
    let file = TempFile::new("invalid", "log:\n  level: loud\n");
    let error = load_file(Some(&file.0), &env(&[])).unwrap_err();
    let message = error.to_string();
    assert!(message.starts_with(file.0.to_str().unwrap()), "{message}");
    assert!(message.contains("log.level"), "{message}");
    let ConfigError::InFile { error: inner, .. } = &error else {
        panic!("expected InFile, got {error:?}");
    };
    assert!(matches!(**inner, ConfigError::Invalid { .. }), "{inner:?}");
}
