//! Helpers for the end-to-end tests, which run the real `registry` binary and
//! drive it with real clients: the `oci-client` crate, `skopeo` and `umoci`.
//!
//! [`Registry`] starts the binary on a free port of 127.0.0.1 with a
//! temporary storage directory, and kills it when dropped. The binary comes
//! from [`registry_binary`], which builds it with cargo once per test
//! process. [`command`] runs external programs and names the Debian package
//! to install when one is missing, because these tests fail rather than skip
//! without their tools. [`skopeo`] and [`umoci`] wrap those two tools, and
//! [`layout`] reads and writes OCI image layouts, the directories that umoci
//! builds and skopeo copies to and from.
//!
//! [`containers`] runs podman and buildah on a private storage, [`crane`]
//! and [`python`] find the clients that `.ci/run` builds or installs outside
//! Debian's packages (crane, oras-py, python-dxf), [`api`] checks what a
//! client stored through the registry's HTTP API, and [`layer`] reads the
//! gzip tar layers that clients push.
//!
//! [`docker`] starts a private `dockerd` for a test and stops it when
//! dropped, and runs the `docker` command line against it.
//!
//! Every helper panics with a message that names what failed, so a test
//! reads as a list of steps and checks.

pub mod api;
mod binary;
pub mod command;
pub mod containers;
pub mod crane;
pub mod docker;
pub mod layer;
pub mod layout;
pub mod python;
mod server;
pub mod skopeo;
pub mod umoci;

use sha2::{Digest as _, Sha256};

pub use binary::{registry_binary, workspace_binary};
pub use server::{Launch, Registry};

/// Returns the OCI digest of `bytes`: `sha256:` and the lowercase hex hash.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Returns `len` pseudo-random bytes that are the same for the same `seed`.
///
/// The bytes do not compress, so a gzip layer built from them stays about
/// as large as they are and its upload takes several chunks.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    // xorshift64*: good enough for test data, and no extra dependency. The
    // state must not be zero, so the seed is mixed with a fixed odd value.
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}
