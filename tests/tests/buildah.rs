//! buildah builds images from scratch and pushes them to the registry: one
//! image that a second storage pulls back, and manifest lists over two
//! architectures pushed with `buildah manifest push --all`, as an OCI index
//! and as a Docker manifest list. The registry's API must serve the pushed
//! lists and manifests under the digests that buildah reported, with layers
//! that unpack to the files that were built.

use std::path::Path;

use registry_e2e::Registry;
use registry_e2e::api::Api;
use registry_e2e::containers::{ContainerStorage, read_digest_file};
use registry_e2e::layer::{diff_id, file_in_layer};
use registry_e2e::layout::{Descriptor, IMAGE_INDEX, IMAGE_MANIFEST, layer_digests, manifests};
use serde_json::Value;

const FILE_PATH: &str = "etc/e2e/buildah.txt";

/// The platforms of the manifest list, as `(os, architecture)`.
const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

#[test]
fn buildah_push_and_pull_round_trip() {
    const REPOSITORY: &str = "e2e/buildah";
    let registry = Registry::start();
    let api = Api::new(&registry);
    let content = b"built from scratch by buildah\n";

    let builder = ContainerStorage::new();
    let config_digest = builder.build_scratch_image(
        "localhost/e2e-buildah:v1",
        &[(FILE_PATH, content)],
        "linux",
        "amd64",
    );

    let reference = format!("{}/{REPOSITORY}:v1", registry.host());
    let digest_file = builder.path("push.digest");
    builder.buildah([
        "push",
        &builder.policy_flag(),
        "--tls-verify=false",
        "--format=oci",
        &format!("--digestfile={}", digest_file.display()),
        "localhost/e2e-buildah:v1",
        &format!("docker://{reference}"),
    ]);
    let pushed_digest = read_digest_file(&digest_file);

    let served = api.manifest(REPOSITORY, "v1");
    assert_eq!(
        served.digest, pushed_digest,
        "digest of the tagged manifest"
    );
    assert_eq!(served.media_type, IMAGE_MANIFEST, "manifest media type");
    assert_eq!(served.json["config"]["digest"], config_digest.as_str());
    check_layer(&api, REPOSITORY, &served.json, content);

    // A second storage pulls the image by tag, and a working container
    // made from it has the file.
    let puller = ContainerStorage::new();
    puller.buildah([
        "pull",
        "--quiet",
        &puller.policy_flag(),
        "--tls-verify=false",
        &reference,
    ]);
    let inspect = |format: &str| {
        let stdout = puller.buildah(["inspect", "--type=image", "--format", format, &reference]);
        String::from_utf8_lossy(&stdout).trim().to_owned()
    };
    assert_eq!(
        inspect("{{.FromImageDigest}}"),
        pushed_digest,
        "manifest digest of the pulled image"
    );
    assert_eq!(
        format!("sha256:{}", inspect("{{.FromImageID}}")),
        config_digest,
        "ID of the pulled image"
    );

    let container = text(&puller.buildah(["from", "--quiet", &reference]));
    let mount_point = text(&puller.buildah(["mount", &container]));
    let pulled_file = Path::new(&mount_point).join(FILE_PATH);
    let pulled = std::fs::read(&pulled_file)
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", pulled_file.display()));
    puller.buildah(["umount", &container]);
    assert_eq!(pulled, content, "{FILE_PATH} in the pulled image");
}

/// The media types of a pushed manifest list: `(buildah's --format, list,
/// child manifest)`.
type ListFormat = (&'static str, &'static str, &'static str);

const OCI_LIST: ListFormat = ("oci", IMAGE_INDEX, IMAGE_MANIFEST);
const DOCKER_LIST: ListFormat = (
    "v2s2",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
);

#[test]
fn buildah_oci_index_push_all() {
    push_manifest_list("e2e/buildah-index", OCI_LIST);
}

#[test]
fn buildah_docker_manifest_list_push_all() {
    push_manifest_list("e2e/buildah-list", DOCKER_LIST);
}

/// Builds one image per platform, pushes a manifest list over them with
/// `buildah manifest push --all --format FORMAT`, and checks the list and
/// each child through the API. A second storage then pulls the arm64 image
/// through the list.
fn push_manifest_list(repository: &str, (format, list_type, child_type): ListFormat) {
    let registry = Registry::start();
    let api = Api::new(&registry);

    // One image per platform, each with a file that names it.
    let builder = ContainerStorage::new();
    let list = "localhost/e2e-buildah-list:v1";
    builder.buildah(["manifest", "create", list]);
    let mut config_digests = Vec::new();
    for (os, architecture) in PLATFORMS {
        let image = format!("localhost/e2e-buildah-{architecture}:v1");
        let content = platform_content(os, architecture);
        let config_digest =
            builder.build_scratch_image(&image, &[(FILE_PATH, &content)], os, architecture);
        builder.buildah(["manifest", "add", list, &image]);
        config_digests.push(config_digest);
    }

    let reference = format!("docker://{}/{repository}:v1", registry.host());
    let digest_file = builder.path("push.digest");
    builder.buildah([
        "manifest",
        "push",
        "--all",
        "--quiet",
        &builder.policy_flag(),
        "--tls-verify=false",
        &format!("--format={format}"),
        &format!("--digestfile={}", digest_file.display()),
        list,
        &reference,
    ]);
    let pushed_digest = read_digest_file(&digest_file);

    // The registry serves the index under the digest that buildah wrote,
    // with one child per platform, in the order they were added.
    let index = api.manifest(repository, "v1");
    assert_eq!(index.digest, pushed_digest, "digest of the tagged index");
    assert_eq!(index.media_type, list_type, "list media type");
    assert_eq!(index.json["mediaType"], list_type, "mediaType in the list");
    let children = manifests(&index.json);
    assert_eq!(
        children.len(),
        PLATFORMS.len(),
        "children of {}",
        index.json
    );

    // Each child by digest: the size and media type of its descriptor, the
    // platform's configuration, and a layer with the platform's file.
    // buildah compresses the layers for the push, and converts the local
    // OCI manifests for v2s2, so the children are checked through their
    // content. The configurations keep their bytes either way.
    for ((child, (os, architecture)), config_digest) in
        children.iter().zip(PLATFORMS).zip(&config_digests)
    {
        let descriptor = Descriptor::from_json(child);
        assert_eq!(child["platform"]["os"], os, "platform of {child}");
        assert_eq!(
            child["platform"]["architecture"], architecture,
            "platform of {child}"
        );

        let manifest = api.manifest(repository, &descriptor.digest);
        assert_eq!(manifest.media_type, descriptor.media_type, "{architecture}");
        assert_eq!(manifest.media_type, child_type, "{architecture}");
        assert_eq!(
            manifest.bytes.len() as u64,
            descriptor.size,
            "size of the {architecture} manifest"
        );
        assert_eq!(
            manifest.json["config"]["digest"],
            config_digest.as_str(),
            "configuration of the {architecture} manifest"
        );

        let config: Value = serde_json::from_slice(&api.blob(repository, config_digest))
            .expect("the configuration is JSON");
        assert_eq!(config["os"], os, "os in the {architecture} configuration");
        assert_eq!(
            config["architecture"], architecture,
            "architecture in the {architecture} configuration"
        );
        check_layer(
            &api,
            repository,
            &manifest.json,
            &platform_content(os, architecture),
        );
    }

    // A second storage pulls the arm64 image through the index.
    let puller = ContainerStorage::new();
    let pulled_reference = format!("{}/{repository}:v1", registry.host());
    puller.buildah([
        "pull",
        "--quiet",
        &puller.policy_flag(),
        "--tls-verify=false",
        "--os=linux",
        "--arch=arm64",
        &pulled_reference,
    ]);
    let stdout = puller.buildah([
        "inspect",
        "--type=image",
        "--format",
        "{{.FromImageID}}",
        &pulled_reference,
    ]);
    assert_eq!(
        format!("sha256:{}", text(&stdout)),
        config_digests[1],
        "ID of the image pulled for linux/arm64"
    );
}

/// Checks the single layer of `manifest`: its uncompressed digest is the
/// configuration's only `diff_id`, and it contains `FILE_PATH` with
/// `content`.
fn check_layer(api: &Api, repository: &str, manifest: &Value, content: &[u8]) {
    let layers = layer_digests(manifest);
    assert_eq!(layers.len(), 1, "layers of {manifest}");
    let layer = api.blob(repository, &layers[0]);

    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("the manifest names its configuration");
    let config: Value = serde_json::from_slice(&api.blob(repository, config_digest))
        .expect("the configuration is JSON");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        diff_id(&layer),
        "uncompressed digest of the layer {}",
        layers[0]
    );
    assert_eq!(
        file_in_layer(&layer, FILE_PATH).as_deref(),
        Some(content),
        "{FILE_PATH} in the layer {}",
        layers[0]
    );
}

fn platform_content(os: &str, architecture: &str) -> Vec<u8> {
    format!("built by buildah for {os}/{architecture}\n").into_bytes()
}

fn text(stdout: &[u8]) -> String {
    String::from_utf8_lossy(stdout).trim().to_owned()
}
