//! Extensions in real binaries: the default build links none, a build with
//! `--features ext-foo` logs each created tag once, and a downstream binary
//! links an extension from outside the registry's crates.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use registry_e2e::layout::OciLayout;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;
use registry_e2e::{Launch, Registry, registry_binary, workspace_binary};

/// Runs `registry extensions` with a configuration file and returns its
/// output.
fn list_extensions(binary: &Path, config: &str) -> String {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let path = dir.path().join("config.yml");
    std::fs::write(&path, config).expect("writing the configuration");
    let output = Command::new(binary)
        .arg("extensions")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("running {} failed: {e}", binary.display()));
    assert!(
        output.status.success(),
        "registry extensions failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the listing is UTF-8")
}

/// Builds a one-layer image with umoci and returns its layout.
fn build_image(dir: &Path) -> OciLayout {
    Umoci.one_layer_image(
        &dir.join("layout"),
        "v1",
        &[("etc/e2e/hello.txt", b"hello\n")],
    )
}

/// Returns the JSON log lines whose message is `message`.
fn log_events(registry: &Registry, message: &str) -> Vec<serde_json::Value> {
    registry
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == message)
        .collect()
}

/// Waits until the log has `count` lines with `message`, and returns them.
/// Receivers run on a worker thread, so their lines follow the response.
fn wait_for_events(registry: &Registry, message: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = log_events(registry, message);
        if events.len() >= count || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn default_build_links_no_extension() {
    let listing = list_extensions(registry_binary(), "{}\n");
    assert!(
        listing.contains("no extensions are linked"),
        "unexpected listing:\n{listing}"
    );
    assert!(!listing.contains("foo"), "foo is linked:\n{listing}");
}

#[test]
fn default_build_rejects_foo_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, "extensions:\n  foo:\n    setting: x\n").unwrap();
    let output = Command::new(registry_binary())
        .arg("check-config")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--features ext-foo"), "{stderr}");
}

#[test]
fn foo_build_lists_foo() {
    let binary = workspace_binary("registry", "registry", &["ext-foo"]);
    let listing = list_extensions(&binary, "{}\n");
    assert!(listing.contains("foo (enabled)"), "{listing}");
    assert!(listing.contains("receives: tag_created"), "{listing}");

    let listing = list_extensions(&binary, "extensions:\n  foo:\n    enabled: false\n");
    assert!(listing.contains("foo (disabled)"), "{listing}");
}

#[test]
fn foo_logs_each_created_tag_once() {
    let binary = workspace_binary("registry", "registry", &["ext-foo"]);
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let image = build_image(work.path());
    let registry = Registry::start_with(Launch {
        binary: Some(binary),
        extra_config: "extensions:\n  foo:\n    setting: _env:EXTENSION_FOO_SETTING\n".to_owned(),
        env: vec![("EXTENSION_FOO_SETTING".to_owned(), "from-env".to_owned())],
    });
    let skopeo = Skopeo::new();
    let remote = |tag: &str| format!("docker://{}/e2e/foo:{tag}", registry.host());

    skopeo.copy(&image.reference("v1"), &remote("v1"), &[]);
    let events = wait_for_events(&registry, "foo: tag created", 1);
    assert_eq!(events.len(), 1, "log:\n{}", registry.log());
    let event = &events[0];
    assert_eq!(event["repository"], "e2e/foo");
    assert_eq!(event["tag"], "v1");
    assert_eq!(event["digest"], image.descriptor("v1").digest.as_str());
    assert_eq!(event["setting"], "from-env");

    // The same image under the same tag changes nothing; a new tag is one
    // more line. The new tag's line also proves that the repeat's line, had
    // there been one, would have arrived: events reach foo in order.
    skopeo.copy(&image.reference("v1"), &remote("v1"), &[]);
    skopeo.copy(&image.reference("v1"), &remote("v2"), &[]);
    let events = wait_for_events(&registry, "foo: tag created", 2);
    let tags: Vec<&str> = events.iter().map(|e| e["tag"].as_str().unwrap()).collect();
    assert_eq!(tags, ["v1", "v2"], "log:\n{}", registry.log());
}

#[test]
fn downstream_binary_fires_its_receiver() {
    let binary = workspace_binary("custom-registry", "custom-registry", &[]);
    let listing = list_extensions(&binary, "{}\n");
    assert!(listing.contains("hello (enabled)"), "{listing}");

    let work = tempfile::tempdir().expect("creating a temporary directory");
    let image = build_image(work.path());
    let registry = Registry::start_with(Launch {
        binary: Some(binary),
        extra_config: "extensions:\n  hello:\n    greeting: Welcome\n".to_owned(),
        env: Vec::new(),
    });
    let remote = format!("docker://{}/e2e/downstream:v1", registry.host());
    Skopeo::new().copy(&image.reference("v1"), &remote, &[]);

    let events = wait_for_events(&registry, "Welcome, e2e/downstream!", 1);
    assert_eq!(events.len(), 1, "log:\n{}", registry.log());
    assert_eq!(events[0]["repository"], "e2e/downstream");
}
