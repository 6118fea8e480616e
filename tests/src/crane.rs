//! crane, go-containerregistry's command-line client, built by
//! `bench/build-crane.sh` from Debian's source package.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::command::run;

/// The environment variable that names the crane binary. Without it, the
/// tests use `target/e2e-tools/crane` in the workspace, where `.ci/run`
/// builds it.
pub const CRANE_VARIABLE: &str = "REGISTRY_E2E_CRANE";

/// crane pointed at a registry on loopback over plain HTTP.
///
/// Every call passes `--insecure`, and `DOCKER_CONFIG` names an empty
/// directory, so crane reads no credentials of the machine.
#[derive(Debug)]
pub struct Crane {
    binary: PathBuf,
    /// The empty `DOCKER_CONFIG` directory, removed on drop.
    config: TempDir,
}

impl Crane {
    /// Finds the binary from `REGISTRY_E2E_CRANE`, or else at
    /// `target/e2e-tools/crane` in the workspace.
    ///
    /// # Panics
    ///
    /// When no file is there, with the command that builds it.
    pub fn find() -> Crane {
        let binary = match std::env::var_os(CRANE_VARIABLE) {
            Some(path) => PathBuf::from(path),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/e2e-tools/crane"),
        };
        if !binary.is_file() {
            panic!(
                "crane is missing at {}: build it from the workspace root with \
                 `bash bench/build-crane.sh target/e2e-tools/crane`, which installs Debian's \
                 golang-1.23-go and golang-github-google-go-containerregistry-dev from \
                 bookworm-backports (.ci/run does this), or set {CRANE_VARIABLE}",
                binary.display()
            );
        }
        let config = tempfile::Builder::new()
            .prefix("registry-e2e-crane-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"));
        Crane { binary, config }
    }

    /// Runs `crane ARGS --insecure` and returns its standard output.
    ///
    /// # Panics
    ///
    /// When crane fails, with its output in the message.
    pub fn run<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command();
        command.args(args).arg("--insecure");
        run(&mut command)
    }

    /// Runs `crane ARGS --insecure` and returns its standard output as
    /// trimmed text.
    pub fn run_text<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        String::from_utf8_lossy(&self.run(args)).trim().to_owned()
    }

    /// Returns a command for crane with the private `DOCKER_CONFIG`, for
    /// tests that check a failure with [`crate::command::output`].
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.env("DOCKER_CONFIG", self.config.path());
        command
    }
}
