//! The Python virtual environment with the tests' Python clients: oras-py
//! (`oras`) and python-dxf (`dxf`), pinned in `tests/python/requirements.txt`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::command::run;

/// The environment variable that names the virtual environment's directory.
/// Without it, the tests use `target/e2e-venv` in the workspace, where
/// `.ci/run` creates it.
pub const VENV_VARIABLE: &str = "REGISTRY_E2E_VENV";

/// A Python virtual environment made with `python3 -m venv`.
#[derive(Debug, Clone)]
pub struct PythonVenv {
    dir: PathBuf,
}

impl PythonVenv {
    /// Finds the virtual environment from `REGISTRY_E2E_VENV`, or else at
    /// `target/e2e-venv` in the workspace.
    ///
    /// # Panics
    ///
    /// When the directory has no `bin/python`, with the commands that
    /// create it.
    pub fn find() -> PythonVenv {
        let dir = match std::env::var_os(VENV_VARIABLE) {
            Some(dir) => PathBuf::from(dir),
            None => workspace_dir().join("target/e2e-venv"),
        };
        let venv = PythonVenv { dir };
        if !venv.bin("python").is_file() {
            panic!(
                "no Python virtual environment at {}: create it from the workspace root with \
                 `python3 -m venv target/e2e-venv && target/e2e-venv/bin/pip install \
                 -r tests/python/requirements.txt` (Debian package `python3-venv`; .ci/run \
                 does this), or set {VENV_VARIABLE} to another one",
                venv.dir.display()
            );
        }
        venv
    }

    /// Returns a command for the program `name` of the environment's `bin`
    /// directory, such as `python` or `dxf`.
    ///
    /// # Panics
    ///
    /// When the program is missing, naming the PyPI package to install.
    pub fn command(&self, name: &str, package: &str) -> Command {
        let program = self.bin(name);
        if !program.is_file() {
            panic!(
                "{} is missing: install the PyPI package `{package}` into {} with \
                 `pip install -r tests/python/requirements.txt` (which .ci/run does)",
                program.display(),
                self.dir.display()
            );
        }
        Command::new(program)
    }

    /// Runs `tests/python/<script>` with the environment's Python and
    /// returns the JSON object on the last line of its standard output.
    ///
    /// # Panics
    ///
    /// When the script fails or its last line is not JSON.
    pub fn run_script<I, S>(&self, script: &str, args: I) -> serde_json::Value
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let path = workspace_dir().join("tests/python").join(script);
        let mut command = self.command("python", "python3");
        command.arg(&path).args(args);
        let stdout = run(&mut command);
        let text = String::from_utf8_lossy(&stdout);
        let last = text.lines().rev().find(|line| !line.trim().is_empty());
        let last = last.unwrap_or_else(|| panic!("{script} printed nothing"));
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("{script} printed {last:?}, which is not JSON: {e}"))
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// Returns the workspace root, the parent of this crate's directory.
fn workspace_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}
