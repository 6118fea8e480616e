//! podman builds an image from scratch, pushes it to the registry and pulls
//! it back into a second, empty storage. The registry must serve the
//! manifest that podman pushed, with a layer that unpacks to the built file.
//! The pulled image must have the same manifest and configuration digests.

use registry_e2e::Registry;
use registry_e2e::api::Api;
use registry_e2e::containers::{ContainerStorage, read_digest_file};
use registry_e2e::layer::{diff_id, file_in_layer};
use registry_e2e::layout::{IMAGE_MANIFEST, layer_digests};
use serde_json::Value;

const REPOSITORY: &str = "e2e/podman";

const FILE_PATH: &str = "etc/e2e/podman.txt";
const FILE_CONTENT: &[u8] = b"pushed by podman\n";

#[test]
fn podman_push_and_pull_round_trip() {
    let registry = Registry::start();
    let api = Api::new(&registry);
    let reference = format!("{}/{REPOSITORY}:v1", registry.host());

    // `podman build` of a Containerfile without RUN needs no container
    // runtime. It prints the image ID, the hex digest of the configuration.
    let builder = ContainerStorage::new();
    let context = builder.path("context/podman");
    std::fs::create_dir_all(&context).expect("creating the build context");
    std::fs::write(context.join("podman.txt"), FILE_CONTENT).expect("writing the context");
    std::fs::write(
        context.join("Containerfile"),
        format!("FROM scratch\nCOPY podman.txt /{FILE_PATH}\n"),
    )
    .expect("writing the Containerfile");
    let stdout = builder.podman([
        "build",
        "--quiet",
        "--format=oci",
        "--tag",
        &reference,
        &context.display().to_string(),
    ]);
    let config_digest = format!("sha256:{}", last_line(&stdout));
    let built = builder.podman(["image", "inspect", &reference]);
    let built: Value = serde_json::from_slice(&built).expect("podman image inspect prints JSON");
    let built_diff_ids = built[0]["RootFS"]["Layers"].clone();
    assert_eq!(
        built_diff_ids.as_array().map(Vec::len),
        Some(1),
        "layers of the built image: {built}"
    );

    let digest_file = builder.path("push.digest");
    builder.podman([
        "push",
        &builder.policy_flag(),
        "--tls-verify=false",
        "--format=oci",
        &format!("--digestfile={}", digest_file.display()),
        &reference,
    ]);
    let pushed_digest = read_digest_file(&digest_file);

    // The registry serves that manifest by tag and by digest. The local
    // layer is uncompressed and podman compresses it for the push, so the
    // pushed layer is checked by its uncompressed digest and its file.
    let served = api.manifest(REPOSITORY, "v1");
    assert_eq!(
        served.digest, pushed_digest,
        "digest of the tagged manifest"
    );
    assert_eq!(served.media_type, IMAGE_MANIFEST, "manifest media type");
    let by_digest = api.manifest(REPOSITORY, &pushed_digest);
    assert!(
        by_digest.bytes == served.bytes,
        "the manifest by digest differs from the manifest by tag"
    );
    assert_eq!(served.json["config"]["digest"], config_digest.as_str());
    let config: Value = serde_json::from_slice(&api.blob(REPOSITORY, &config_digest))
        .expect("the configuration is JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"], built_diff_ids,
        "diff_ids of the served configuration"
    );
    let layers = layer_digests(&served.json);
    assert_eq!(layers.len(), 1, "layers of {}", served.json);
    let layer = api.blob(REPOSITORY, &layers[0]);
    assert_eq!(
        diff_id(&layer),
        built_diff_ids[0],
        "uncompressed digest of the pushed layer"
    );
    assert_eq!(
        file_in_layer(&layer, FILE_PATH).as_deref(),
        Some(FILE_CONTENT),
        "{FILE_PATH} in the pushed layer"
    );

    // A second storage pulls the image by tag: same manifest, same
    // configuration, and the file in the mounted root filesystem.
    let puller = ContainerStorage::new();
    puller.podman([
        "pull",
        &puller.policy_flag(),
        "--tls-verify=false",
        &reference,
    ]);
    let inspect = |format: &str| {
        last_line(&puller.podman(["image", "inspect", "--format", format, &reference]))
    };
    assert_eq!(
        inspect("{{.Digest}}"),
        pushed_digest,
        "digest of the pulled image"
    );
    assert_eq!(
        format!("sha256:{}", inspect("{{.Id}}")),
        config_digest,
        "ID of the pulled image"
    );

    let mount_point = last_line(&puller.podman(["image", "mount", &reference]));
    let pulled_file = std::path::Path::new(&mount_point).join(FILE_PATH);
    let pulled_content = std::fs::read(&pulled_file)
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", pulled_file.display()));
    puller.podman(["image", "unmount", &reference]);
    assert_eq!(
        pulled_content, FILE_CONTENT,
        "{FILE_PATH} in the pulled image"
    );

    // Pulling by digest finds the same image.
    let by_digest_reference = format!("{}/{REPOSITORY}@{pushed_digest}", registry.host());
    let stdout = puller.podman([
        "pull",
        &puller.policy_flag(),
        "--tls-verify=false",
        &by_digest_reference,
    ]);
    assert_eq!(
        format!("sha256:{}", last_line(&stdout)),
        config_digest,
        "image ID pulled by digest"
    );
}

/// Returns the last non-empty line of a tool's output, trimmed.
fn last_line(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| panic!("the tool printed nothing"))
        .trim()
        .to_owned()
}
