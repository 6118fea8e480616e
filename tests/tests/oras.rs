//! oras-py, the Python SDK of ORAS, pushes and pulls artifacts of custom
//! types, and pushes artifacts whose `subject` is an image, which the
//! referrers API then lists. The client runs `tests/python/oras_artifacts.py`
//! in the tests' virtual environment.

use std::path::Path;

use registry_e2e::api::Api;
use registry_e2e::layout::IMAGE_MANIFEST;
use registry_e2e::python::PythonVenv;
use registry_e2e::skopeo::Skopeo;
use registry_e2e::umoci::Umoci;
use registry_e2e::{Registry, pseudo_random_bytes, sha256_digest};
use serde_json::{Value, json};

const SCRIPT: &str = "oras_artifacts.py";

/// The artifact types: oras-py puts them in the config descriptor.
const BUNDLE_TYPE: &str = "application/vnd.e2e.bundle.v1+json";
const SIGNATURE_TYPE: &str = "application/vnd.e2e.signature.v1+json";
const SBOM_TYPE: &str = "application/vnd.e2e.sbom.v1+json";

/// The media type of every file layer.
const FILE_TYPE: &str = "application/vnd.e2e.file.v1";

/// The annotation in which oras-py stores a layer's file name.
const TITLE: &str = "org.opencontainers.image.title";

#[test]
fn oras_artifact_push_and_pull() {
    const REPOSITORY: &str = "e2e/oras";
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let venv = PythonVenv::find();

    // Two files uploaded in PATCH requests of at most 64 KiB: five for
    // data.bin, the last one shorter, and one for notes.txt.
    let files = [
        ("data.bin", pseudo_random_bytes(7, 300 * 1024)),
        ("notes.txt", b"an artifact pushed by oras-py\n".to_vec()),
    ];
    let config = br#"{"e2e":"bundle"}"#;
    let target = format!("{}/{REPOSITORY}:v1", registry.host());
    let pushed = push(
        &venv,
        work.path(),
        &target,
        BUNDLE_TYPE,
        config,
        &files,
        &["--chunk-size", "65536"],
    );
    let digest = pushed_digest(&pushed);

    // The manifest as the registry serves it: the artifact type in the
    // config descriptor, and one layer per file with its digest and name.
    let manifest = api.manifest(REPOSITORY, "v1");
    assert_eq!(manifest.digest, digest, "digest of the tagged artifact");
    assert_eq!(manifest.media_type, IMAGE_MANIFEST, "artifact media type");
    assert_eq!(manifest.json["config"]["mediaType"], BUNDLE_TYPE);
    assert_eq!(manifest.json["config"]["digest"], sha256_digest(config));
    assert!(
        api.blob(REPOSITORY, &sha256_digest(config)) == config,
        "the served config differs from the pushed one"
    );
    let layers = manifest.json["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), files.len(), "layers of {}", manifest.json);
    for (layer, (name, bytes)) in layers.iter().zip(&files) {
        assert_eq!(layer["digest"], sha256_digest(bytes), "digest of {name}");
        assert_eq!(layer["size"], bytes.len(), "size of {name}");
        assert_eq!(layer["mediaType"], FILE_TYPE, "media type of {name}");
        assert_eq!(layer["annotations"][TITLE], *name, "title of {name}");
    }

    // oras-py pulls the same files back.
    let outdir = work.path().join("pulled");
    std::fs::create_dir(&outdir).expect("creating the pull directory");
    let pulled = venv.run_script(
        SCRIPT,
        [
            "pull",
            "--target",
            &target,
            "--outdir",
            &outdir.display().to_string(),
        ],
    );
    assert_eq!(
        pulled["files"],
        json!(["data.bin", "notes.txt"]),
        "pulled files"
    );
    for (name, bytes) in &files {
        let pulled = std::fs::read(outdir.join(name))
            .unwrap_or_else(|e| panic!("reading the pulled {name} failed: {e}"));
        assert_eq!(
            sha256_digest(&pulled),
            sha256_digest(bytes),
            "digest of the pulled {name}"
        );
    }
}

#[test]
fn oras_referrers_of_an_image() {
    const REPOSITORY: &str = "e2e/oras-subject";
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let venv = PythonVenv::find();
    let host = registry.host();

    // The subject: an image built with umoci and pushed with skopeo.
    let layout = Umoci.one_layer_image(
        &work.path().join("layout"),
        "v1",
        &[("etc/e2e/subject.txt", b"the subject image\n")],
    );
    let image = layout.descriptor("v1");
    Skopeo::new().copy(
        &layout.reference("v1"),
        &format!("docker://{host}/{REPOSITORY}:v1"),
        &[],
    );
    let subject = json!({
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": image.size,
    });

    // Two artifacts of different types refer to the image.
    let mut referrers = Vec::new();
    for (tag, artifact_type) in [("signature", SIGNATURE_TYPE), ("sbom", SBOM_TYPE)] {
        let files = [(
            "payload.json",
            format!("{{\"kind\":\"{tag}\"}}").into_bytes(),
        )];
        let pushed = push(
            &venv,
            work.path(),
            &format!("{host}/{REPOSITORY}:{tag}"),
            artifact_type,
            b"{}",
            &files,
            &["--subject", &subject.to_string()],
        );
        // The registry confirms with OCI-Subject that it read the subject,
        // so clients need not maintain a referrers tag.
        assert_eq!(
            pushed["subject"], image.digest,
            "OCI-Subject header of the {tag} push"
        );
        let manifest = api.manifest(REPOSITORY, &pushed_digest(&pushed));
        assert_eq!(manifest.json["subject"], subject, "subject of the {tag}");
        referrers.push((artifact_type, manifest));
    }

    // Without a filter, both are listed with the artifact type taken from
    // their config descriptors, because they have no artifactType field.
    let (index, filters) = api.referrers(REPOSITORY, &image.digest, None);
    assert_eq!(filters, None, "OCI-Filters-Applied without a filter");
    let listed = referrer_entries(&index);
    assert_eq!(listed.len(), referrers.len(), "referrers: {index}");
    for (artifact_type, manifest) in &referrers {
        let entry = listed
            .iter()
            .find(|entry| entry["digest"] == manifest.digest.as_str())
            .unwrap_or_else(|| panic!("{} is not among the referrers {index}", manifest.digest));
        assert_eq!(entry["artifactType"], *artifact_type, "artifactType");
        assert_eq!(entry["mediaType"], IMAGE_MANIFEST, "mediaType");
        assert_eq!(entry["size"], manifest.bytes.len(), "size");
    }

    // With a filter, each type finds only its own artifact.
    for (artifact_type, manifest) in &referrers {
        let (index, filters) = api.referrers(REPOSITORY, &image.digest, Some(artifact_type));
        assert_eq!(
            filters.as_deref(),
            Some("artifactType"),
            "OCI-Filters-Applied"
        );
        let listed = referrer_entries(&index);
        assert_eq!(
            listed.len(),
            1,
            "referrers of type {artifact_type}: {index}"
        );
        assert_eq!(listed[0]["digest"], manifest.digest.as_str());
        assert_eq!(listed[0]["artifactType"], *artifact_type);
    }
    let (index, _) = api.referrers(REPOSITORY, &image.digest, Some("application/vnd.e2e.none"));
    assert!(
        referrer_entries(&index).is_empty(),
        "referrers of an unused type: {index}"
    );
}

/// Writes `config` and `files` under `work` and pushes them with oras-py
/// as an artifact of `artifact_type`, passing `extra` to the script (such
/// as `--subject`). Returns the script's JSON: the status, digest and
/// `OCI-Subject` header of the manifest push.
fn push(
    venv: &PythonVenv,
    work: &Path,
    target: &str,
    artifact_type: &str,
    config: &[u8],
    files: &[(&str, Vec<u8>)],
    extra: &[&str],
) -> Value {
    let directory = tempfile::tempdir_in(work).expect("creating a push directory");
    let config_path = directory.path().join("config.json");
    std::fs::write(&config_path, config).expect("writing the config");

    let mut args = vec![
        "push".to_owned(),
        "--target".to_owned(),
        target.to_owned(),
        "--artifact-type".to_owned(),
        artifact_type.to_owned(),
        "--config".to_owned(),
        config_path.display().to_string(),
        "--file-type".to_owned(),
        FILE_TYPE.to_owned(),
    ];
    for (name, bytes) in files {
        let path = directory.path().join(name);
        std::fs::write(&path, bytes).expect("writing a file of the artifact");
        args.push("--file".to_owned());
        args.push(path.display().to_string());
    }
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));

    let pushed = venv.run_script(SCRIPT, args);
    assert_eq!(
        pushed["status"], 201,
        "status of the manifest push: {pushed}"
    );
    pushed
}

fn pushed_digest(pushed: &Value) -> String {
    pushed["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the push returned no Docker-Content-Digest: {pushed}"))
        .to_owned()
}

fn referrer_entries(index: &Value) -> Vec<Value> {
    index["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("the referrers index has no manifests array: {index}"))
        .clone()
}
