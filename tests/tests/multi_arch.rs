//! A multi-architecture image index goes into the registry and back out with
//! `skopeo copy --all`, with the same index digest and child digests.

use registry_e2e::Registry;
use registry_e2e::layout::{Descriptor, IMAGE_INDEX, IMAGE_MANIFEST, OciLayout, layer_digests};
use registry_e2e::sha256_digest;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;
use serde_json::Value;

const REPOSITORY: &str = "e2e/multi-arch";

/// The platforms of the two child images, as `(os, architecture)`.
const PLATFORMS: [(&str, &str); 2] = [("linux", "amd64"), ("linux", "arm64")];

/// Builds one image per platform with umoci, each with a layer that names
/// its architecture, and an index over both under the tag `multi`.
fn build_index(layout: &OciLayout) -> (Descriptor, Vec<Descriptor>) {
    let umoci = Umoci;
    umoci.init(layout.dir());

    let mut children = Vec::new();
    for (os, architecture) in PLATFORMS {
        umoci.new_image(layout.dir(), architecture);
        let marker = format!("built for {os}/{architecture}\n");
        umoci.add_layer(
            layout.dir(),
            architecture,
            &[("etc/e2e/platform.txt", marker.as_bytes())],
        );
        umoci.set_platform(layout.dir(), architecture, os, architecture);
        children.push(layout.descriptor(architecture));
    }

    let with_platforms: Vec<(Descriptor, &str, &str)> = children
        .iter()
        .zip(PLATFORMS)
        .map(|(child, (os, architecture))| (child.clone(), os, architecture))
        .collect();
    let index = layout.add_index("multi", &with_platforms);
    (index, children)
}

#[test]
fn multi_arch_index_round_trips_through_skopeo() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let skopeo = Skopeo::new();

    let source = OciLayout::new(work.path().join("source"));
    let (index, children) = build_index(&source);
    for (child, (_, architecture)) in children.iter().zip(PLATFORMS) {
        let manifest = source.json_blob(&child.digest);
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .expect("the manifest names its config");
        let config = source.json_blob(config_digest);
        assert_eq!(
            config["architecture"], architecture,
            "umoci config of {architecture}"
        );
    }

    let remote = format!("docker://{}/{REPOSITORY}:v1", registry.host());
    skopeo.copy(&source.reference("multi"), &remote, &["--all"]);

    // The registry serves the index bytes that were pushed, and each child
    // by its digest.
    let served = skopeo.inspect_raw(&remote);
    assert_eq!(
        sha256_digest(&served),
        index.digest,
        "hash of the served index"
    );
    let served_index: Value = serde_json::from_slice(&served).expect("the index is JSON");
    assert_eq!(served_index["mediaType"], IMAGE_INDEX);
    for child in &children {
        let by_digest = format!("docker://{}/{REPOSITORY}@{}", registry.host(), child.digest);
        let served_child = skopeo.inspect_raw(&by_digest);
        assert_eq!(
            sha256_digest(&served_child),
            child.digest,
            "hash of the served child"
        );
        assert_eq!(child.media_type, IMAGE_MANIFEST);
    }

    // Pull everything into a new layout.
    let pulled = OciLayout::new(work.path().join("pulled"));
    skopeo.copy(&remote, &pulled.reference("multi"), &["--all"]);
    let pulled_index = pulled.descriptor("multi");
    assert_eq!(
        pulled_index.digest, index.digest,
        "digest of the pulled index"
    );
    assert_eq!(pulled_index.media_type, IMAGE_INDEX);

    let pulled_children: Vec<String> = pulled.json_blob(&pulled_index.digest)["manifests"]
        .as_array()
        .expect("the pulled index has manifests")
        .iter()
        .map(|entry| Descriptor::from_json(entry).digest)
        .collect();
    let expected_children: Vec<String> = children.iter().map(|c| c.digest.clone()).collect();
    assert_eq!(pulled_children, expected_children);

    for child in &children {
        let manifest = pulled.json_blob(&child.digest);
        let config_digest = manifest["config"]["digest"]
            .as_str()
            .expect("the manifest names its config");
        assert!(
            pulled.blob(config_digest) == source.blob(config_digest),
            "the pulled config {config_digest} differs from the pushed one"
        );
        for digest in layer_digests(&manifest) {
            // `blob` checks that each file hashes to its digest.
            assert!(
                pulled.blob(&digest) == source.blob(&digest),
                "the pulled layer {digest} differs from the pushed one"
            );
        }
    }
}
