//! A container image registry that serves the OCI Distribution
//! Specification v1.1, with the Docker Registry v2 conventions clients rely
//! on, over filesystem storage.
//!
//! The library is private to the project except for [`main`], the entry
//! point that the `registry` binary calls and that a downstream binary calls
//! to link extensions published elsewhere.
//!
//! A request flows through the modules like this: `server` accepts the
//! connection and hands it to the axum router of `api`, whose `trace`
//! middleware opens the request span. `api::route` splits the path (names
//! contain slashes, so axum patterns cannot), the handler in `api::blobs`,
//! `api::uploads`, `api::manifests` or `api::lists` validates names, tags
//! and digests with `reference` and manifests with `manifest`, and calls the
//! `storage::Storage` trait, implemented for the filesystem by
//! `storage::FsStorage`. Every failure becomes an `api::ApiError`, which
//! writes the OCI error body in one place.
//!
//! Extensions are crates linked by Cargo features (`ext-<name>`, or `full`
//! for all). `extensions` finds them at startup, reads their configuration
//! and connects the enabled ones; handlers emit signals through its
//! `Dispatcher` after each change is stored.
//!
//! Not here yet: authentication, object storage backends, and garbage
//! collection of blobs that no repository links.

pub mod api;
mod cli;
pub mod extensions;
mod logging;
pub mod manifest;
pub mod reference;
mod server;
pub mod storage;

use std::process::ExitCode;

// A linked crate that nothing names is dropped by the linker, and its
// `inventory` registrations with it, so each feature-gated extension is
// named here.
#[cfg(feature = "ext-foo")]
use registry_ext_foo as _;
#[cfg(feature = "ext-metrics")]
use registry_ext_metrics as _;
#[cfg(feature = "ext-notify")]
use registry_ext_notify as _;
#[cfg(feature = "ext-search")]
use registry_ext_search as _;

/// Runs the registry command line: parses arguments, loads the
/// configuration, and serves or runs the chosen command.
///
/// Exit status: 0 on a clean stop, 1 when serving fails (for example the
/// address is taken), 2 on a configuration or usage error.
pub fn main() -> ExitCode {
    cli::run()
}
