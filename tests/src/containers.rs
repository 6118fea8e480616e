//! podman and buildah, each run against a private container storage, so
//! that tests never touch the machine's images and never contact a registry
//! other than the one under test.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::command::{Tool, run_tool};

/// podman, which pushes and pulls images like docker, without a daemon.
pub const PODMAN: Tool = Tool {
    program: "podman",
    package: "podman",
};

/// buildah, which builds images and manifest lists.
pub const BUILDAH: Tool = Tool {
    program: "buildah",
    package: "buildah",
};

/// The signature policy of every pull and push: accept any image, so that
/// no `/etc/containers/policy.json` is needed.
const POLICY: &str = r#"{"default":[{"type":"insecureAcceptAnything"}]}"#;

/// A private container storage and configuration for podman and buildah.
///
/// Both tools use the `vfs` storage driver, which needs no kernel overlay
/// support or fuse, under a temporary directory that is removed on drop.
/// The environment points them at files in that directory:
///
/// - `registries.conf` is empty, so it lists no unqualified-search
///   registry. The short-name aliases of the drop-in directory
///   `/etc/containers/registries.conf.d` still apply, and some point at
///   docker.io, so tests name images by fully qualified
///   `127.0.0.1:PORT/...` or `localhost/...` references only.
/// - `storage.conf` names the same driver and directories as the flags.
/// - `containers.conf` is empty, so the host's settings do not apply.
/// - `auth.json` has no credentials, so none of the machine's are sent.
/// - `policy.json` accepts any image; pass [`ContainerStorage::policy_flag`]
///   to `pull`, `push` and `manifest push`.
///
/// podman also gets `--cgroup-manager cgroupfs` and `--events-backend file`,
/// because no systemd runs on CI machines.
///
/// NOTE: this was only run as root, as `.ci/run` runs. Rootless podman and
/// buildah would need subordinate UID ranges, which nothing here sets up.
/// As root, containers/image keeps its blob info cache (which compressed
/// blob each layer was pushed as) in `/var/lib/containers/cache`, shared
/// with the machine and with other tests.
#[derive(Debug)]
pub struct ContainerStorage {
    /// The storage root, run root, configuration files and `TMPDIR`,
    /// removed on drop.
    dir: TempDir,
}

impl Default for ContainerStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl ContainerStorage {
    /// Creates an empty storage and its configuration files.
    pub fn new() -> ContainerStorage {
        let dir = tempfile::Builder::new()
            .prefix("registry-e2e-containers-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"));
        let storage = ContainerStorage { dir };

        for directory in ["root", "runroot", "tmp", "context"] {
            let path = storage.path(directory);
            std::fs::create_dir_all(&path)
                .unwrap_or_else(|e| panic!("creating {} failed: {e}", path.display()));
        }
        let storage_conf = format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = {:?}\nrunroot = {:?}\n",
            storage.path("root").display().to_string(),
            storage.path("runroot").display().to_string(),
        );
        storage.write("storage.conf", storage_conf.as_bytes());
        storage.write("registries.conf", b"");
        storage.write("containers.conf", b"");
        storage.write("policy.json", POLICY.as_bytes());
        storage.write("auth.json", br#"{"auths":{}}"#);
        storage
    }

    /// Returns the `--signature-policy` flag that names this storage's
    /// permissive policy.
    pub fn policy_flag(&self) -> String {
        format!("--signature-policy={}", self.path("policy.json").display())
    }

    /// Runs podman with `args` and returns its standard output.
    ///
    /// # Panics
    ///
    /// When podman is missing (naming the package to install) or fails.
    pub fn podman<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(PODMAN);
        command
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file")
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(args);
        run_tool(&mut command, Some(PODMAN))
    }

    /// Runs buildah with `args` and returns its standard output.
    ///
    /// # Panics
    ///
    /// When buildah is missing (naming the package to install) or fails.
    pub fn buildah<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(BUILDAH);
        command.args(args);
        run_tool(&mut command, Some(BUILDAH))
    }

    /// Builds an image from scratch with buildah: one layer that contains
    /// `files` (paths relative to the root filesystem, and contents), and a
    /// configuration for `os`/`architecture`. Commits it in OCI format
    /// under `name` and returns its image ID, which is the digest of its
    /// configuration (`sha256:...`).
    pub fn build_scratch_image(
        &self,
        name: &str,
        files: &[(&str, &[u8])],
        os: &str,
        architecture: &str,
    ) -> String {
        // The working container is named after the image, so that several
        // builds in one storage do not collide.
        let container = format!("{}-working", name.replace(['/', ':', '.'], "-"));
        self.buildah(["from", "--quiet", "--name", &container, "scratch"]);

        // One `buildah copy` of a directory makes one layer for all files.
        let context = self.path("context").join(&container);
        for (path, contents) in files {
            let target = context.join(path);
            let parent = target.parent().expect("a file path has a parent");
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("creating {} failed: {e}", parent.display()));
            std::fs::write(&target, contents)
                .unwrap_or_else(|e| panic!("writing {} failed: {e}", target.display()));
        }
        self.buildah([
            OsStr::new("copy"),
            OsStr::new(&container),
            context.as_os_str(),
            OsStr::new("/"),
        ]);

        self.buildah(["config", "--os", os, "--arch", architecture, &container]);
        let stdout = self.buildah([
            "commit", "--quiet", "--rm", "--format", "oci", &container, name,
        ]);
        let id = String::from_utf8_lossy(&stdout).trim().to_owned();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "buildah commit printed {id:?} instead of an image ID"
        );
        format!("sha256:{id}")
    }

    /// Returns a path for a new file in this storage's directory, such as a
    /// `--digestfile`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Returns a command for `tool` with the storage flags and environment.
    fn command(&self, tool: Tool) -> Command {
        let mut command = tool.command();
        command
            .arg("--storage-driver=vfs")
            .arg("--root")
            .arg(self.path("root"))
            .arg("--runroot")
            .arg(self.path("runroot"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("REGISTRY_AUTH_FILE", self.path("auth.json"))
            .env("TMPDIR", self.path("tmp"));
        command
    }

    fn write(&self, name: &str, contents: &[u8]) {
        let path = self.path(name);
        std::fs::write(&path, contents)
            .unwrap_or_else(|e| panic!("writing {} failed: {e}", path.display()));
    }
}

/// Returns the digest that podman or buildah wrote to `digest_file` with
/// `--digestfile`.
pub fn read_digest_file(digest_file: &Path) -> String {
    let text = std::fs::read_to_string(digest_file)
        .unwrap_or_else(|e| panic!("reading {} failed: {e}", digest_file.display()));
    text.trim().to_owned()
}
