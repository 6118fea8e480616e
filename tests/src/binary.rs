//! Locating the `registry` binary under test.

use std::collections::BTreeMap;
use std::env;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The environment variable that names a prebuilt `registry` binary to test
/// instead of the one that cargo builds, for example a release build.
pub const BINARY_VARIABLE: &str = "REGISTRY_E2E_BINARY";

/// Returns the path of the `registry` binary, building it on first use.
///
/// With `REGISTRY_E2E_BINARY` set, that path is used as it is. Otherwise the
/// binary is built as [`workspace_binary`] builds it, with the registry's
/// default features. `CARGO_BIN_EXE_registry` cannot serve here, because
/// cargo sets it only for the tests of the package that owns the binary.
///
/// # Panics
///
/// When the build fails, with cargo's messages.
pub fn registry_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match env::var_os(BINARY_VARIABLE) {
        Some(path) => PathBuf::from(path),
        None => workspace_binary("registry", "registry", &[]),
    })
}

/// Returns the path of a binary of this workspace built with `features`,
/// building it on first use for each combination.
///
/// The build runs in the workspace's own target directory, so that it
/// reuses the dependencies that the tests were built with instead of
/// compiling a second copy of them. Cargo writes every build of the same
/// binary to one path, whatever its features, so the result is copied to
/// `target/e2e-builds/<package>-<bin>[-<features>]/<bin>`, and a lock file
/// there keeps test processes that build at the same time from copying one
/// another's build.
///
/// # Panics
///
/// When the build fails, with cargo's messages.
pub fn workspace_binary(package: &str, bin: &str, features: &[&str]) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let mut name = format!("{package}-{bin}");
    for feature in features {
        name.push('-');
        name.push_str(feature);
    }
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = built.get(&name) {
        return path.clone();
    }

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let builds = workspace.join("target/e2e-builds");
    fs::create_dir_all(&builds)
        .unwrap_or_else(|error| panic!("creating {}: {error}", builds.display()));
    let lock_path = builds.join("lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|error| panic!("creating {}: {error}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|error| panic!("locking {}: {error}", lock_path.display()));

    let mut build = escargot::CargoBuild::new()
        .manifest_path(workspace.join("Cargo.toml"))
        .package(package)
        .bin(bin);
    if !features.is_empty() {
        build = build.features(features.join(" "));
    }
    let output = build.run().unwrap_or_else(|error| {
        panic!(
            "building {bin} of {package} with features {features:?} failed \
             (set {BINARY_VARIABLE} to test a prebuilt registry binary): {error}"
        )
    });

    let directory = builds.join(&name);
    let path = directory.join(bin);
    let partial = directory.join(format!("{bin}.partial"));
    fs::create_dir_all(&directory)
        .and_then(|()| fs::copy(output.path(), &partial))
        .and_then(|_| fs::rename(&partial, &path))
        .unwrap_or_else(|error| {
            panic!(
                "copying {} to {}: {error}",
                output.path().display(),
                path.display()
            )
        });
    drop(lock);

    built.insert(name, path.clone());
    path
}
