//! Push and pull with the `oci-client` crate: an image with a config and two
//! layers goes in, and the same bytes under the same digests come out.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE, OciManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry_e2e::{Registry, pseudo_random_bytes, sha256_digest};
use serde_json::json;

const REPOSITORY: &str = "e2e/oci-client";

/// A layer larger than two of oci-client's 4 MiB chunks, so that a chunked
/// push sends three PATCH requests, the last one shorter.
const LARGE_LAYER_LEN: usize = 9 * 1024 * 1024 + 123;

fn client(monolithic: bool) -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        use_monolithic_push: monolithic,
        ..ClientConfig::default()
    })
}

fn image_config() -> Vec<u8> {
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [] },
    });
    serde_json::to_vec(&config).expect("the config serializes")
}

/// Pushes an image by tag, pulls it back by tag and by digest, and checks
/// every blob and the manifest by digest.
async fn push_and_pull(monolithic: bool, tag: &str) {
    let registry = Registry::start();
    let client = client(monolithic);
    let auth = RegistryAuth::Anonymous;
    let reference = Reference::with_tag(registry.host(), REPOSITORY.into(), tag.into());

    let config_bytes = image_config();
    let layer_bytes = [
        pseudo_random_bytes(1, LARGE_LAYER_LEN),
        b"a small second layer".to_vec(),
    ];
    let layers: Vec<ImageLayer> = layer_bytes
        .iter()
        .map(|bytes| ImageLayer::oci_v1(bytes.clone(), None))
        .collect();
    let config = Config::oci_v1(config_bytes.clone(), None);
    client
        .push(&reference, &layers, config, &auth, None)
        .await
        .expect("pushing the image with oci-client");

    // Pull by tag: the config, the layers and the manifest's descriptors.
    let image = client
        .pull(&reference, &auth, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pulling the image by tag");
    let manifest = image.manifest.expect("pull returns the manifest");
    assert_eq!(manifest.config.digest, sha256_digest(&config_bytes));
    assert_eq!(
        sha256_digest(&image.config.data),
        sha256_digest(&config_bytes)
    );
    assert_eq!(image.layers.len(), layer_bytes.len(), "number of layers");
    for (index, pushed) in layer_bytes.iter().enumerate() {
        let expected = sha256_digest(pushed);
        assert_eq!(
            manifest.layers[index].digest, expected,
            "layer {index} in the manifest"
        );
        assert_eq!(
            manifest.layers[index].size,
            pushed.len() as i64,
            "layer {index} size in the manifest"
        );
    }
    // `Client::pull` downloads layers concurrently and returns them in the
    // order they finish (oci-client 0.18), so they are matched by digest.
    let mut pulled: Vec<String> = image
        .layers
        .iter()
        .map(|layer| sha256_digest(&layer.data))
        .collect();
    let mut pushed: Vec<String> = layer_bytes.iter().map(|b| sha256_digest(b)).collect();
    pulled.sort();
    pushed.sort();
    assert_eq!(pulled, pushed, "digests of the pulled layers");

    // The manifest's digest is the hash of the bytes served by tag, and a
    // HEAD by tag reports the same digest.
    let digest = image.digest.expect("pull returns the manifest digest");
    let (by_tag, by_tag_digest) = client
        .pull_manifest_raw(&reference, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("pulling the raw manifest by tag");
    assert_eq!(
        sha256_digest(&by_tag),
        digest,
        "hash of the manifest served by tag"
    );
    assert_eq!(
        by_tag_digest, digest,
        "digest reported for the manifest by tag"
    );
    let head_digest = client
        .fetch_manifest_digest(&reference, &auth)
        .await
        .expect("fetching the manifest digest by tag");
    assert_eq!(head_digest, digest, "digest from HEAD by tag");

    // Pull by digest: the same bytes, and a manifest that names the same
    // blobs.
    let by_digest_reference =
        Reference::with_digest(registry.host(), REPOSITORY.into(), digest.clone());
    let (by_digest, _) = client
        .pull_manifest_raw(&by_digest_reference, &auth, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("pulling the raw manifest by digest");
    assert_eq!(
        sha256_digest(&by_digest),
        digest,
        "hash of the manifest by digest"
    );
    assert!(
        by_digest == by_tag,
        "the manifest by digest differs from the one by tag"
    );
    let (parsed, _) = client
        .pull_manifest(&by_digest_reference, &auth)
        .await
        .expect("pulling the manifest by digest");
    let OciManifest::Image(parsed) = parsed else {
        panic!("the manifest by digest is not an image manifest: {parsed:?}");
    };
    assert_eq!(parsed.config.digest, manifest.config.digest);
    let parsed_layers: Vec<&str> = parsed.layers.iter().map(|l| l.digest.as_str()).collect();
    let expected_layers: Vec<&str> = manifest.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(parsed_layers, expected_layers);

    let tags = client
        .list_tags(&reference, &auth, None, None)
        .await
        .expect("listing tags");
    assert_eq!(tags.name, REPOSITORY);
    assert_eq!(tags.tags, vec![tag.to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_round_trips() {
    push_and_pull(false, "chunked").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_push_round_trips() {
    push_and_pull(true, "monolithic").await;
}
