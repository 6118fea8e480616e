//! python-dxf, a Python client that uses a registry as a blob store, driven
//! through its `dxf` command. Blobs go in and come out under their digests.
//! An alias, which is a tag on a manifest over the blobs, names them, and
//! deletes remove them.

use std::process::Command;

use registry_e2e::api::Api;
use registry_e2e::command::{output, run};
use registry_e2e::python::PythonVenv;
use registry_e2e::{Registry, pseudo_random_bytes, sha256_digest};

const REPOSITORY: &str = "e2e/dxf";
const MOUNTED: &str = "e2e/dxf-mounted";

/// The `dxf` command against one registry over plain HTTP.
struct Dxf {
    venv: PythonVenv,
    host: String,
}

impl Dxf {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.venv.command("dxf", "python-dxf");
        command
            .args(args)
            .env("DXF_HOST", &self.host)
            .env("DXF_INSECURE", "1")
            .env("DXF_PROGRESS", "0");
        command
    }

    /// Runs `dxf ARGS` and returns its standard output.
    fn run(&self, args: &[&str]) -> Vec<u8> {
        run(&mut self.command(args))
    }

    /// Runs `dxf ARGS` and returns its output lines.
    fn lines(&self, args: &[&str]) -> Vec<String> {
        String::from_utf8_lossy(&self.run(args))
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn dxf_blobs_and_aliases_round_trip() {
    let work = tempfile::tempdir().expect("creating a temporary directory");
    let registry = Registry::start();
    let api = Api::new(&registry);
    let dxf = Dxf {
        venv: PythonVenv::find(),
        host: registry.host(),
    };

    // A small blob and one of 3 MiB.
    let blobs = [
        b"a small blob pushed by python-dxf\n".to_vec(),
        pseudo_random_bytes(11, 3 * 1024 * 1024),
    ];
    let mut digests = Vec::new();
    for (index, bytes) in blobs.iter().enumerate() {
        let path = work.path().join(format!("blob-{index}"));
        std::fs::write(&path, bytes).expect("writing a blob file");
        let printed = dxf.lines(&["push-blob", REPOSITORY, &path.display().to_string()]);
        assert_eq!(printed, [sha256_digest(bytes)], "push-blob of blob {index}");
        digests.push(sha256_digest(bytes));
    }

    // Each blob comes back through dxf and through the API with its bytes.
    for (bytes, digest) in blobs.iter().zip(&digests) {
        let pulled = dxf.run(&["pull-blob", REPOSITORY, digest]);
        assert_eq!(sha256_digest(&pulled), *digest, "pull-blob {digest}");
        assert!(
            api.blob(REPOSITORY, digest) == *bytes,
            "GET of the blob {digest}"
        );
        assert_eq!(
            dxf.lines(&["blob-size", REPOSITORY, digest]),
            [bytes.len().to_string()],
            "blob-size {digest}"
        );
    }

    // An alias is a tag on a Docker schema 2 manifest whose layers are the
    // blobs and whose config descriptor names the first blob. dxf prints
    // the manifest it pushed, which the API serves under its digest.
    let mut set_alias = vec!["set-alias", REPOSITORY, "v1"];
    set_alias.extend(digests.iter().map(String::as_str));
    let manifest = dxf.run(&set_alias);
    let served = api.manifest(REPOSITORY, "v1");
    assert_eq!(
        sha256_digest(&manifest),
        served.digest,
        "digest of the manifest that set-alias pushed"
    );
    assert_eq!(
        served.media_type, "application/vnd.docker.distribution.manifest.v2+json",
        "media type of the alias"
    );
    assert_eq!(
        dxf.lines(&["get-digest", REPOSITORY, "v1"]),
        [digests[0].clone()],
        "get-digest, which prints the config digest"
    );
    assert_eq!(
        dxf.lines(&["get-alias", REPOSITORY, "v1"]),
        digests,
        "get-alias"
    );
    assert_eq!(
        dxf.lines(&["list-aliases", REPOSITORY]),
        ["v1"],
        "list-aliases"
    );
    assert_eq!(
        dxf.lines(&["list-repos"]),
        [REPOSITORY],
        "list-repos, which lists repositories with a manifest"
    );

    // A cross-repository mount makes the large blob readable elsewhere.
    assert_eq!(
        dxf.lines(&["mount-blob", MOUNTED, REPOSITORY, &digests[1]]),
        [digests[1].clone()],
        "mount-blob"
    );
    assert!(
        api.blob(MOUNTED, &digests[1]) == blobs[1],
        "GET of the mounted blob"
    );

    // del-alias deletes the manifest by digest, and del-blob the blob link.
    assert_eq!(
        dxf.lines(&["del-alias", REPOSITORY, "v1"]),
        digests,
        "del-alias"
    );
    assert_eq!(
        api.manifest_status(REPOSITORY, &served.digest),
        404,
        "GET of the deleted manifest"
    );
    assert_eq!(
        api.manifest_status(REPOSITORY, "v1"),
        404,
        "GET of the deleted alias"
    );
    dxf.run(&["del-blob", REPOSITORY, &digests[0]]);
    assert_eq!(
        api.blob_status(REPOSITORY, &digests[0]),
        404,
        "GET of the deleted blob"
    );
    let pull_deleted = output(&mut dxf.command(&["pull-blob", REPOSITORY, &digests[0]]));
    assert!(
        !pull_deleted.status.success(),
        "pull-blob of the deleted blob succeeded"
    );

    // The other blob and the mounted one stay.
    assert!(
        api.blob(REPOSITORY, &digests[1]) == blobs[1],
        "GET of the blob that was not deleted"
    );
    assert!(
        api.blob(MOUNTED, &digests[1]) == blobs[1],
        "GET of the mounted blob after the delete"
    );
}
