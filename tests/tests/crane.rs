//! crane (go-containerregistry) against the registry: copy between
//! repositories, digest, tag, ls, catalog, validate, append and delete, each
//! checked by digest through the registry's API.

use registry_e2e::Registry;
use registry_e2e::api::Api;
use registry_e2e::command::output;
use registry_e2e::crane::Crane;
use registry_e2e::layer::{diff_id, file_in_layer};
use registry_e2e::layout::{Descriptor, OciLayout, layer_digests, manifests};
use registry_e2e::sha256_digest;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;

const SOURCE: &str = "e2e/crane-source";
const COPY: &str = "e2e/crane-copy";

#[test]
fn crane_copy_tag_list_and_delete() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let crane = Crane::find();
    let host = registry.host();

    // The source image goes in with skopeo, which keeps umoci's digests.
    let layout = Umoci.one_layer_image(
        &work.path().join("layout"),
        "v1",
        &[("etc/e2e/crane.txt", b"copied by crane\n")],
    );
    let source = layout.descriptor("v1");
    Skopeo::new().copy(
        &layout.reference("v1"),
        &format!("docker://{host}/{SOURCE}:v1"),
        &[],
    );

    assert_eq!(
        crane.run_text(["digest", &format!("{host}/{SOURCE}:v1")]),
        source.digest,
        "crane digest of the source"
    );

    // crane copy keeps the manifest bytes, and every blob is in the new
    // repository.
    crane.run([
        "copy",
        &format!("{host}/{SOURCE}:v1"),
        &format!("{host}/{COPY}:v1"),
    ]);
    let copied = api.manifest(COPY, "v1");
    assert_eq!(copied.digest, source.digest, "digest of the copy");
    assert!(
        copied.bytes == layout.blob(&source.digest),
        "the copied manifest differs from umoci's"
    );
    let manifest = layout.json_blob(&source.digest);
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("the manifest names its config");
    for digest in layer_digests(&manifest).iter().map(String::as_str) {
        assert!(
            api.blob(COPY, digest) == layout.blob(digest),
            "the layer {digest} in {COPY} differs from umoci's"
        );
    }
    let config = crane.run(["config", &format!("{host}/{COPY}:v1")]);
    assert_eq!(sha256_digest(&config), config_digest, "crane config");
    let served = crane.run(["manifest", &format!("{host}/{COPY}:v1")]);
    assert!(
        served == copied.bytes,
        "crane manifest differs from the API"
    );

    // crane tag adds a tag to the same manifest; ls and the API list both.
    crane.run(["tag", &format!("{host}/{COPY}:v1"), "v2"]);
    assert_eq!(api.manifest(COPY, "v2").digest, source.digest, "tag v2");
    let mut listed: Vec<String> = crane
        .run_text(["ls", &format!("{host}/{COPY}")])
        .lines()
        .map(str::to_owned)
        .collect();
    listed.sort();
    assert_eq!(listed, ["v1", "v2"], "crane ls");
    let mut tags = api.tags(COPY);
    tags.sort();
    assert_eq!(tags, ["v1", "v2"], "tags in the API");

    let catalog: Vec<String> = crane
        .run_text(["catalog", &host])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(catalog, api.catalog(), "crane catalog and the API");
    assert_eq!(catalog, [COPY, SOURCE], "crane catalog");

    let validated = crane.run_text(["validate", "--remote", &format!("{host}/{COPY}:v2")]);
    assert!(
        validated.starts_with("PASS"),
        "crane validate printed {validated:?}"
    );

    // crane delete by digest removes the manifest and both of its tags,
    // and leaves the source repository alone.
    crane.run(["delete", &format!("{host}/{COPY}@{}", source.digest)]);
    assert_eq!(
        api.manifest_status(COPY, &source.digest),
        404,
        "GET of the deleted manifest"
    );
    for tag in ["v1", "v2"] {
        assert_eq!(
            api.manifest_status(COPY, tag),
            404,
            "GET of the tag {tag} of the deleted manifest"
        );
    }
    let mut digest_after_delete = crane.command();
    digest_after_delete.args(["digest", &format!("{host}/{COPY}:v1"), "--insecure"]);
    let result = output(&mut digest_after_delete);
    assert!(
        !result.status.success(),
        "crane digest of a deleted tag succeeded: {}",
        String::from_utf8_lossy(&result.stdout)
    );
    assert_eq!(
        api.manifest(SOURCE, "v1").digest,
        source.digest,
        "the source after the delete"
    );
}

#[test]
fn crane_append_pushes_a_valid_image() {
    const REPOSITORY: &str = "e2e/crane-append";
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let crane = Crane::find();
    let host = registry.host();

    // A tar layer with one file; crane compresses it and builds the image.
    let content = b"appended by crane\n";
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive
        .append_data(&mut header, "etc/e2e/append.txt", &content[..])
        .expect("building the tar layer");
    let tar_bytes = archive.into_inner().expect("finishing the tar layer");
    let tar_path = work.path().join("layer.tar");
    std::fs::write(&tar_path, &tar_bytes).expect("writing the tar layer");

    // crane append prints the pushed reference with its digest.
    let reference = format!("{host}/{REPOSITORY}:v1");
    let printed = crane.run_text([
        "append",
        "--new_layer",
        &tar_path.display().to_string(),
        "--new_tag",
        &reference,
    ]);
    let (_, pushed_digest) = printed
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("crane append printed {printed:?}, not NAME@DIGEST"));

    let served = api.manifest(REPOSITORY, "v1");
    assert_eq!(served.digest, pushed_digest, "digest of the appended image");
    assert_eq!(
        served.json["mediaType"],
        served.media_type.as_str(),
        "Content-Type and mediaType of the manifest"
    );
    let layers = layer_digests(&served.json);
    assert_eq!(layers.len(), 1, "layers of {}", served.json);
    let layer = api.blob(REPOSITORY, &layers[0]);
    assert_eq!(
        diff_id(&layer),
        sha256_digest(&tar_bytes),
        "uncompressed layer"
    );
    assert_eq!(
        file_in_layer(&layer, "etc/e2e/append.txt").as_deref(),
        Some(&content[..]),
        "the file in the pushed layer"
    );

    let validated = crane.run_text(["validate", "--remote", &reference]);
    assert!(
        validated.starts_with("PASS"),
        "crane validate printed {validated:?}"
    );
}

#[test]
fn crane_copy_keeps_an_index() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let crane = Crane::find();
    let host = registry.host();

    // An index over two platform images, pushed with skopeo --all.
    let layout = OciLayout::new(work.path().join("layout"));
    let umoci = Umoci;
    umoci.init(layout.dir());
    let mut children = Vec::new();
    for architecture in ["amd64", "arm64"] {
        umoci.new_image(layout.dir(), architecture);
        let content = format!("crane index child for {architecture}\n");
        umoci.add_layer(
            layout.dir(),
            architecture,
            &[("etc/e2e/platform.txt", content.as_bytes())],
        );
        umoci.set_platform(layout.dir(), architecture, "linux", architecture);
        children.push((layout.descriptor(architecture), "linux", architecture));
    }
    let index = layout.add_index("multi", &children);
    Skopeo::new().copy(
        &layout.reference("multi"),
        &format!("docker://{host}/{SOURCE}:multi"),
        &["--all"],
    );

    crane.run([
        "copy",
        &format!("{host}/{SOURCE}:multi"),
        &format!("{host}/{COPY}:multi"),
    ]);
    let copied = api.manifest(COPY, "multi");
    assert_eq!(copied.digest, index.digest, "digest of the copied index");
    let copied_children: Vec<String> = manifests(&copied.json)
        .iter()
        .map(|child| Descriptor::from_json(child).digest)
        .collect();
    let expected: Vec<String> = children.iter().map(|(d, _, _)| d.digest.clone()).collect();
    assert_eq!(copied_children, expected, "children of the copied index");
    for digest in &expected {
        let child = api.manifest(COPY, digest);
        for layer in layer_digests(&child.json) {
            assert!(
                api.blob(COPY, &layer) == layout.blob(&layer),
                "the layer {layer} in {COPY} differs from umoci's"
            );
        }
    }
    assert_eq!(
        crane.run_text(["digest", &format!("{host}/{COPY}:multi")]),
        index.digest,
        "crane digest of the copied index"
    );
}
