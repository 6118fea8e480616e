//! docker pushes to and pulls from the registry: an image made with
//! `docker import` round-trips with the same manifest and image ID, a second
//! repository gets the shared layer by cross-repository mount, and a pulled
//! image runs.
//!
//! Each test starts its own registry and then its own dockerd, which needs
//! the registry's address for `--insecure-registry`.

use registry_e2e::Registry;
use registry_e2e::api::Api;
use registry_e2e::docker::{Dockerd, busybox_rootfs_tarball, pushed_digest};
use registry_e2e::layout::layer_digests;

/// The media type of the manifests that docker 20.10 pushes.
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A registry, a dockerd that may reach it over plain HTTP, and a directory
/// for the files of the test.
struct Setup {
    docker: Dockerd,
    registry: Registry,
    work: tempfile::TempDir,
}

impl Setup {
    fn start() -> Setup {
        let registry = Registry::start();
        let docker = Dockerd::start(&[&registry.host()]);
        let work = tempfile::tempdir().expect("creating a temporary directory");
        Setup {
            docker,
            registry,
            work,
        }
    }

    /// Returns `HOST:PORT/repository:tag` on the registry.
    fn reference(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.registry.host())
    }

    /// Imports the busybox root filesystem as `repository:tag` of the
    /// registry and returns the image ID.
    fn import_busybox(&self, repository: &str, tag: &str) -> String {
        let tarball = busybox_rootfs_tarball(self.work.path());
        self.docker
            .import(&tarball, &self.reference(repository, tag))
    }
}

#[test]
fn imported_image_round_trips_through_docker() {
    let setup = Setup::start();
    let docker = &setup.docker;
    let api = Api::new(&setup.registry);
    let reference = setup.reference("e2e/docker", "1.0");
    let imported_id = setup.import_busybox("e2e/docker", "1.0");

    let output = docker.push(&reference);

    // The registry serves the manifest under the digest that docker
    // printed and recorded.
    let served = api.manifest("e2e/docker", "1.0");
    assert_eq!(served.media_type, DOCKER_MANIFEST);
    assert_eq!(pushed_digest(&output), served.digest);
    let repo_digest = format!("{}/e2e/docker@{}", setup.registry.host(), served.digest);
    assert_eq!(docker.repo_digests(&reference), [repo_digest.as_str()]);

    // The image ID is the digest of the configuration, which the registry
    // serves as a blob. `blob` checks that each blob hashes to its digest.
    assert_eq!(served.json["config"]["digest"], imported_id.as_str());
    api.blob("e2e/docker", &imported_id);
    let layers = layer_digests(&served.json);
    assert_eq!(
        layers.len(),
        1,
        "docker import makes one layer: {}",
        served.json
    );
    api.blob("e2e/docker", &layers[0]);

    // Pull into an image store without the image.
    docker.remove_image(&reference);
    assert!(
        !docker.has_image(&imported_id),
        "the image is still present"
    );
    docker.pull(&reference);
    assert_eq!(docker.image_id(&reference), imported_id);
    assert_eq!(docker.repo_digests(&reference), [repo_digest]);
}

#[test]
fn shared_layer_is_mounted_from_other_repository() {
    let setup = Setup::start();
    let docker = &setup.docker;
    let api = Api::new(&setup.registry);
    let base = setup.reference("e2e/base", "1");
    setup.import_busybox("e2e/base", "1");
    docker.push(&base);

    // A derived image: the base layer and one more.
    let context = setup.work.path().join("context");
    std::fs::create_dir(&context).expect("creating the build context");
    std::fs::write(context.join("greeting.txt"), "hello from a second layer\n")
        .expect("writing greeting.txt");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {base}\nCOPY greeting.txt /greeting.txt\n"),
    )
    .expect("writing the Dockerfile");
    let derived = setup.reference("e2e/derived", "1");
    docker.build(&context, &derived);

    // docker mounts the base layer from e2e/base instead of uploading it
    // again, and uploads only the new layer.
    let output = docker.push(&derived);
    let mounted: Vec<&str> = output
        .lines()
        .filter(|line| line.ends_with(": Mounted from e2e/base"))
        .collect();
    assert_eq!(mounted.len(), 1, "docker push printed:\n{output}");
    let pushed = output.lines().filter(|line| line.ends_with(": Pushed"));
    assert_eq!(pushed.count(), 1, "docker push printed:\n{output}");

    // Both manifests list the same first layer, and e2e/derived serves it.
    let base_manifest = api.manifest("e2e/base", "1");
    let derived_manifest = api.manifest("e2e/derived", "1");
    assert_eq!(pushed_digest(&output), derived_manifest.digest);
    let base_layers = layer_digests(&base_manifest.json);
    let derived_layers = layer_digests(&derived_manifest.json);
    assert_eq!(base_layers.len(), 1, "{}", base_manifest.json);
    assert_eq!(derived_layers.len(), 2, "{}", derived_manifest.json);
    assert_eq!(derived_layers[0], base_layers[0]);
    let from_base = api.blob("e2e/base", &base_layers[0]);
    let from_derived = api.blob("e2e/derived", &derived_layers[0]);
    assert!(
        from_base == from_derived,
        "the mounted layer differs between the repositories"
    );
}

#[test]
fn pulled_image_runs_without_network() {
    let setup = Setup::start();
    let docker = &setup.docker;
    let reference = setup.reference("e2e/run", "1");
    let imported_id = setup.import_busybox("e2e/run", "1");
    let digest = pushed_digest(&docker.push(&reference));

    // Pull by digest into an image store without the image.
    docker.remove_image(&reference);
    assert!(
        !docker.has_image(&imported_id),
        "the image is still present"
    );
    let by_digest = format!("{}/e2e/run@{digest}", setup.registry.host());
    docker.pull(&by_digest);
    assert_eq!(docker.image_id(&by_digest), imported_id);

    let stdout = docker.run([
        "run",
        "--rm",
        "--network=none",
        "--pull=never",
        &by_digest,
        "/bin/busybox",
        "echo",
        "hello",
    ]);
    assert_eq!(stdout, "hello\n");
}
