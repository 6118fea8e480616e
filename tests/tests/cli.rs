//! The commands of the `registry` binary that exit without serving:
//! `--version` and `check-config`, and `serve` with an invalid
//! configuration.

use std::path::Path;
use std::process::Command;

use registry_e2e::command::{output, run};
use registry_e2e::registry_binary;

/// Invalid configurations, each with the key path that its error must name.
const INVALID_CONFIGS: &[(&str, &str)] = &[
    ("http:\n  addr: 127.0.0.1:0\n  bogus: 1\n", "http.bogus"),
    ("http:\n  addr: localhost:5000\n", "http.addr"),
    ("log:\n  level: loud\n", "log.level"),
    (
        "storage:\n  delete:\n    enabled: maybe\n",
        "storage.delete.enabled",
    ),
    ("limits:\n  maxuploads: 0\n", "limits.maxuploads"),
];

fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.yml");
    std::fs::write(&path, text).expect("writing the configuration file");
    path
}

#[test]
fn version_prints_package_version() {
    let stdout = run(Command::new(registry_binary()).arg("--version"));

    // The workspace gives every crate one version, so this crate's version
    // is the binary's.
    let expected = format!("registry {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8_lossy(&stdout), expected);
}

#[test]
fn check_config_rejects_invalid_keys() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");

    for (text, key) in INVALID_CONFIGS {
        let path = write_config(dir.path(), text);
        let result = output(
            Command::new(registry_binary())
                .arg("check-config")
                .arg("--config")
                .arg(&path),
        );
        let stderr = String::from_utf8_lossy(&result.stderr);

        assert_eq!(
            result.status.code(),
            Some(2),
            "exit status for {key}, stderr: {stderr}"
        );
        assert!(
            stderr.contains(key),
            "the error does not name {key}: {stderr}"
        );
        assert!(
            result.stdout.is_empty(),
            "check-config printed a configuration for invalid {key}: {}",
            String::from_utf8_lossy(&result.stdout)
        );
    }
}

#[test]
fn check_config_names_missing_file() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let missing = dir.path().join("absent.yml");

    let result = output(
        Command::new(registry_binary())
            .arg("check-config")
            .arg("--config")
            .arg(&missing),
    );
    let stderr = String::from_utf8_lossy(&result.stderr);

    assert_eq!(result.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&*missing.to_string_lossy()),
        "the error does not name {}: {stderr}",
        missing.display()
    );
}

#[test]
fn check_config_prints_valid_config() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let root = dir.path().join("storage-root");
    let text = format!(
        "http:\n  addr: 127.0.0.1:0\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        serde_json::to_string(&root.to_string_lossy()).expect("a string serializes")
    );
    let path = write_config(dir.path(), &text);

    let stdout = run(Command::new(registry_binary())
        .arg("check-config")
        .arg("--config")
        .arg(&path));
    let stdout = String::from_utf8_lossy(&stdout);

    assert!(
        stdout.contains(&format!("rootdirectory: {}", root.display())),
        "the printed configuration lacks the storage root: {stdout}"
    );
    assert!(
        stdout.contains("addr: 127.0.0.1:0"),
        "the printed configuration lacks http.addr: {stdout}"
    );
    assert!(
        !root.exists(),
        "check-config created the storage root, but it must not touch storage"
    );
}

#[test]
fn serve_exits_2_on_invalid_config() {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let root = dir.path().join("storage-root");
    let text = format!(
        "http:\n  addr: 127.0.0.1:0\n  bogus: 1\nstorage:\n  filesystem:\n    rootdirectory: {}\n",
        serde_json::to_string(&root.to_string_lossy()).expect("a string serializes")
    );
    let path = write_config(dir.path(), &text);

    let result = output(
        Command::new(registry_binary())
            .arg("serve")
            .arg("--config")
            .arg(&path),
    );
    let stderr = String::from_utf8_lossy(&result.stderr);

    assert_eq!(result.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains("http.bogus"),
        "the error does not name http.bogus: {stderr}"
    );
    assert!(
        !root.exists(),
        "serve created storage despite the invalid configuration"
    );
}
