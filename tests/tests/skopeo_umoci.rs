//! An image built with umoci in an OCI layout goes into the registry and
//! back out with skopeo, with the same manifest and layer digests.

use registry_e2e::Registry;
use registry_e2e::layout::{OciLayout, layer_digests};
use registry_e2e::pseudo_random_bytes;
use registry_e2e::sha256_digest;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;

const REPOSITORY: &str = "e2e/umoci";

#[test]
fn umoci_image_round_trips_through_skopeo() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let skopeo = Skopeo::new();

    // Two layers: the first with a 2 MiB file that gzip cannot shrink, so
    // skopeo's upload is more than a few bytes.
    let source = OciLayout::new(work.path().join("source"));
    let umoci = Umoci;
    umoci.init(source.dir());
    umoci.new_image(source.dir(), "v1");
    let data = pseudo_random_bytes(2, 2 * 1024 * 1024);
    umoci.add_layer(
        source.dir(),
        "v1",
        &[
            ("etc/e2e/first.txt", b"first layer\n"),
            ("opt/e2e/data.bin", &data),
        ],
    );
    umoci.add_layer(
        source.dir(),
        "v1",
        &[("etc/e2e/second.txt", b"second layer\n")],
    );

    let source_descriptor = source.descriptor("v1");
    let source_manifest = source.json_blob(&source_descriptor.digest);
    let source_layers = layer_digests(&source_manifest);
    assert_eq!(source_layers.len(), 2, "umoci built {source_manifest}");

    // Push under two tags. The second copy finds every blob present.
    let remote = |tag: &str| format!("docker://{}/{REPOSITORY}:{tag}", registry.host());
    skopeo.copy(&source.reference("v1"), &remote("v1"), &[]);
    skopeo.copy(&source.reference("v1"), &remote("latest"), &[]);

    // The registry serves the manifest bytes that were pushed.
    let served = skopeo.inspect_raw(&remote("v1"));
    assert_eq!(sha256_digest(&served), source_descriptor.digest);
    let pushed = source.blob(&source_descriptor.digest);
    assert!(
        served == pushed,
        "the served manifest differs from the pushed one"
    );

    let inspected = skopeo.inspect(&remote("v1"));
    assert_eq!(inspected["Digest"], source_descriptor.digest.as_str());
    let inspected_layers: Vec<&str> = inspected["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("skopeo inspect returned no Layers: {inspected}"))
        .iter()
        .map(|layer| layer.as_str().expect("a layer digest is a string"))
        .collect();
    assert_eq!(inspected_layers, source_layers);

    let mut tags = skopeo.list_tags(&format!("docker://{}/{REPOSITORY}", registry.host()));
    tags.sort();
    assert_eq!(tags, ["latest", "v1"]);

    // Pull into a new layout: the same manifest, config and layers.
    let pulled = OciLayout::new(work.path().join("pulled"));
    skopeo.copy(&remote("v1"), &pulled.reference("v1"), &[]);
    let pulled_descriptor = pulled.descriptor("v1");
    assert_eq!(pulled_descriptor.digest, source_descriptor.digest);
    let pulled_manifest = pulled.json_blob(&pulled_descriptor.digest);
    assert_eq!(layer_digests(&pulled_manifest), source_layers);

    let config_digest = source_manifest["config"]["digest"]
        .as_str()
        .expect("the manifest names its config");
    assert!(
        pulled.blob(config_digest) == source.blob(config_digest),
        "the pulled config differs from the pushed one"
    );
    for digest in &source_layers {
        // `blob` checks that each file hashes to its digest.
        assert!(
            pulled.blob(digest) == source.blob(digest),
            "the pulled layer {digest} differs from the pushed one"
        );
    }
}
