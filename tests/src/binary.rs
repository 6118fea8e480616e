//! Locating the `registry` binary under test.

use std::env;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The environment variable that names a prebuilt `registry` binary to test
/// instead of the one that cargo builds, for example a release build.
pub const BINARY_VARIABLE: &str = "REGISTRY_E2E_BINARY";

/// Returns the path of the `registry` binary, building it on first use.
///
/// With `REGISTRY_E2E_BINARY` set, that path is used as it is. Otherwise the
/// first call runs `cargo build -p registry --bin registry` for this
/// workspace with the cargo that runs the tests, in the same target
/// directory, and later calls in the same test process reuse the path.
/// `CARGO_BIN_EXE_registry` cannot serve here, because cargo sets it only for
/// the tests of the package that owns the binary.
///
/// # Panics
///
/// When the build fails, with cargo's messages.
pub fn registry_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = env::var_os(BINARY_VARIABLE) {
            return PathBuf::from(path);
        }

        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let build = escargot::CargoBuild::new()
            .manifest_path(&manifest)
            .package("registry")
            .bin("registry")
            .run()
            .unwrap_or_else(|error| {
                panic!(
                    "building the registry binary with cargo failed \
                     (set {BINARY_VARIABLE} to test a prebuilt binary): {error}"
                )
            });
        build.path().to_path_buf()
    })
}

/// Returns the path of a binary of this workspace built with `features`,
/// building it on first use for each combination.
///
/// A build with features goes to its own target directory under
/// `target/e2e-builds/`, so that it never replaces the default `registry`
/// binary that other tests of the same run use.
///
/// # Panics
///
/// When the build fails, with cargo's messages.
pub fn workspace_binary(package: &str, bin: &str, features: &[&str]) -> PathBuf {
    static BUILT: OnceLock<std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>>> =
        OnceLock::new();
    let key = format!("{package}/{bin}/{}", features.join(","));
    let built = BUILT.get_or_init(Default::default);
    let mut built = built
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(path) = built.get(&key) {
        return path.clone();
    }

    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut build = escargot::CargoBuild::new()
        .manifest_path(workspace.join("Cargo.toml"))
        .package(package)
        .bin(bin);
    if !features.is_empty() {
        let directory = format!("{package}-{}", features.join("-"));
        build = build
            .features(features.join(" "))
            .target_dir(workspace.join("target/e2e-builds").join(directory));
    }
    let path = build
        .run()
        .unwrap_or_else(|error| {
            panic!("building {bin} of {package} with features {features:?} failed: {error}")
        })
        .path()
        .to_path_buf();
    built.insert(key, path.clone());
    path
}
