//! skopeo against the registry beyond a plain round trip: copies that force
//! the OCI and the Docker schema 2 manifest formats, inspect, tag listing,
//! and delete. Each check compares digests with the image that umoci built
//! and with what the registry's API serves.

use registry_e2e::Registry;
use registry_e2e::api::Api;
use registry_e2e::command::{SKOPEO, output};
use registry_e2e::layout::{IMAGE_MANIFEST, OciLayout, layer_digests};
use registry_e2e::sha256_digest;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;
use serde_json::Value;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

#[test]
fn skopeo_copy_in_oci_and_docker_formats() {
    const REPOSITORY: &str = "e2e/skopeo-formats";
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let skopeo = Skopeo::new();

    let layout = OciLayout::new(work.path().join("layout"));
    build_image(&layout, "v1", b"copied in two formats\n");
    let source = layout.descriptor("v1");
    let source_manifest = layout.json_blob(&source.digest);
    let source_config = config_digest(&source_manifest);
    let source_layers = layer_digests(&source_manifest);

    let remote = |tag: &str| format!("docker://{}/{REPOSITORY}:{tag}", registry.host());
    copy_with_format(&layout.reference("v1"), &remote("oci"), "oci");
    copy_with_format(&layout.reference("v1"), &remote("v2s2"), "v2s2");

    // --format oci keeps umoci's manifest byte for byte.
    let oci = api.manifest(REPOSITORY, "oci");
    assert_eq!(oci.media_type, IMAGE_MANIFEST, "media type of the oci tag");
    assert_eq!(oci.digest, source.digest, "digest of the oci tag");
    assert!(
        oci.bytes == layout.blob(&source.digest),
        "the oci tag serves other bytes than umoci's manifest"
    );

    // --format v2s2 writes a Docker schema 2 manifest over the same config
    // and layer blobs, under Docker media types.
    let docker = api.manifest(REPOSITORY, "v2s2");
    assert_eq!(
        docker.media_type, DOCKER_MANIFEST,
        "media type of the v2s2 tag"
    );
    assert_eq!(docker.json["mediaType"], DOCKER_MANIFEST, "mediaType field");
    assert_ne!(docker.digest, source.digest, "digest of the v2s2 tag");
    assert_eq!(docker.json["config"]["mediaType"], DOCKER_CONFIG);
    assert_eq!(config_digest(&docker.json), source_config);
    assert_eq!(layer_digests(&docker.json), source_layers);
    for layer in docker.json["layers"].as_array().expect("layers") {
        assert_eq!(layer["mediaType"], DOCKER_LAYER, "layer {layer}");
    }
    assert!(
        api.blob(REPOSITORY, &source_config) == layout.blob(&source_config),
        "the served configuration differs from umoci's"
    );

    // skopeo inspect reads the same digests.
    let inspected = skopeo.inspect(&remote("v2s2"));
    assert_eq!(
        inspected["Digest"],
        docker.digest.as_str(),
        "inspect Digest"
    );
    let inspected_layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("skopeo inspect returned no Layers: {inspected}"))
        .iter()
        .map(|layer| layer.as_str().expect("a layer digest is a string"))
        .collect();
    assert_eq!(inspected_layers, source_layers, "inspect Layers");
    assert_eq!(inspected["Architecture"], "amd64", "inspect Architecture");
    let raw = skopeo.inspect_raw(&remote("v2s2"));
    assert!(raw == docker.bytes, "inspect --raw differs from the API");
    let raw_config = skopeo_stdout(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &remote("v2s2"),
    ]);
    assert_eq!(
        sha256_digest(&raw_config),
        source_config,
        "inspect --config"
    );

    let mut tags = skopeo.list_tags(&format!("docker://{}/{REPOSITORY}", registry.host()));
    tags.sort();
    assert_eq!(tags, ["oci", "v2s2"], "list-tags");

    // Pulled into a `dir:` directory, the Docker manifest keeps its bytes
    // and every blob is stored under its digest.
    let pulled = work.path().join("pulled");
    skopeo_stdout(&[
        "copy",
        "--src-tls-verify=false",
        &remote("v2s2"),
        &format!("dir:{}", pulled.display()),
    ]);
    let pulled_manifest =
        std::fs::read(pulled.join("manifest.json")).expect("reading the pulled manifest.json");
    assert_eq!(
        sha256_digest(&pulled_manifest),
        docker.digest,
        "digest of the pulled manifest"
    );
    for digest in source_layers.iter().chain([&source_config]) {
        let hex = digest.trim_start_matches("sha256:");
        let bytes = std::fs::read(pulled.join(hex))
            .unwrap_or_else(|e| panic!("reading the pulled blob {digest} failed: {e}"));
        assert_eq!(sha256_digest(&bytes), *digest, "pulled blob");
    }

    // Copying between repositories of the registry converts the Docker
    // manifest back to OCI over the same layers. skopeo (1.9.3) writes the
    // configuration again as an OCI configuration, so only its content is
    // compared.
    const CONVERTED: &str = "e2e/skopeo-converted";
    let converted_remote = format!("docker://{}/{CONVERTED}:oci", registry.host());
    copy_with_format(&remote("v2s2"), &converted_remote, "oci");
    let converted = api.manifest(CONVERTED, "oci");
    assert_eq!(converted.media_type, IMAGE_MANIFEST, "converted media type");
    assert_eq!(layer_digests(&converted.json), source_layers);
    let converted_config: Value =
        serde_json::from_slice(&api.blob(CONVERTED, &config_digest(&converted.json)))
            .expect("the converted configuration is JSON");
    let source_config_json = layout.json_blob(&source_config);
    for field in ["architecture", "os", "rootfs"] {
        assert_eq!(
            converted_config[field], source_config_json[field],
            "{field} of the converted configuration"
        );
    }
    for digest in &source_layers {
        assert!(
            api.blob(CONVERTED, digest) == layout.blob(digest),
            "the layer {digest} in {CONVERTED} differs from umoci's"
        );
    }
}

#[test]
fn skopeo_delete_removes_the_manifest() {
    const REPOSITORY: &str = "e2e/skopeo-delete";
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let skopeo = Skopeo::new();

    // Two different images, so that deleting one leaves the other.
    let layout = OciLayout::new(work.path().join("layout"));
    build_image(&layout, "deleted", b"deleted by skopeo\n");
    add_image(&layout, "kept", b"kept after the delete\n");
    let deleted_digest = layout.descriptor("deleted").digest;
    let kept_digest = layout.descriptor("kept").digest;
    assert_ne!(deleted_digest, kept_digest, "the two images must differ");

    let remote = |tag: &str| format!("docker://{}/{REPOSITORY}:{tag}", registry.host());
    skopeo.copy(&layout.reference("deleted"), &remote("deleted"), &[]);
    skopeo.copy(&layout.reference("kept"), &remote("kept"), &[]);
    assert_eq!(api.manifest(REPOSITORY, "deleted").digest, deleted_digest);

    // skopeo resolves the tag and deletes the manifest by digest.
    skopeo_stdout(&["delete", "--tls-verify=false", &remote("deleted")]);
    assert_eq!(
        api.manifest_status(REPOSITORY, &deleted_digest),
        404,
        "GET of the deleted manifest by digest"
    );
    assert_eq!(
        api.manifest_status(REPOSITORY, "deleted"),
        404,
        "GET of the deleted manifest's tag"
    );
    assert_eq!(api.tags(REPOSITORY), ["kept"], "tags after the delete");
    assert_eq!(api.manifest(REPOSITORY, "kept").digest, kept_digest);

    // skopeo itself now fails to inspect the deleted image.
    let mut inspect = SKOPEO.command();
    inspect
        .args([
            "--insecure-policy",
            "inspect",
            "--raw",
            "--tls-verify=false",
        ])
        .arg(format!(
            "docker://{}/{REPOSITORY}@{deleted_digest}",
            registry.host()
        ));
    let result = output(&mut inspect);
    assert!(
        !result.status.success(),
        "skopeo inspect of the deleted manifest succeeded: {}",
        String::from_utf8_lossy(&result.stdout)
    );
}

/// Creates the layout and an image with one layer under `tag`.
fn build_image(layout: &OciLayout, tag: &str, content: &[u8]) {
    Umoci.init(layout.dir());
    add_image(layout, tag, content);
}

/// Adds an image with one layer under `tag` to an existing layout.
fn add_image(layout: &OciLayout, tag: &str, content: &[u8]) {
    let umoci = Umoci;
    umoci.new_image(layout.dir(), tag);
    umoci.add_layer(layout.dir(), tag, &[("etc/e2e/skopeo.txt", content)]);
}

/// Copies with `skopeo copy --format FORMAT`, which converts the manifest
/// when the source has another format, so digests may change.
fn copy_with_format(source: &str, destination: &str, format: &str) {
    skopeo_stdout(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        format,
        source,
        destination,
    ]);
}

/// Runs `skopeo --insecure-policy ARGS` and returns its standard output.
fn skopeo_stdout(args: &[&str]) -> Vec<u8> {
    SKOPEO.run(std::iter::once("--insecure-policy").chain(args.iter().copied()))
}

fn config_digest(manifest: &Value) -> String {
    manifest["config"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the manifest names no config: {manifest}"))
        .to_owned()
}
