//! The extension API of the registry: the signals it fires, the events that
//! carry them, and the registration of extensions, receivers and guards.
//!
//! An extension is a crate that depends on this crate and on
//! `registry-config`, never on the `registry` crate. It declares itself with
//! [`extension!`], registers receivers with [`receiver!`] and guards with
//! [`guard!`]; the registry collects them at startup (through `inventory`),
//! reads each extension's `extensions.<name>` section into its config type,
//! and connects the receivers of enabled extensions.
//!
//! ```ignore
//! use registry_signals::{Event, ExtensionConfig, TagCreated};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Config {
//!     setting: String,
//! }
//! impl ExtensionConfig for Config {}
//!
//! registry_signals::extension!(name: "foo", config: Config, enabled_by_default: true);
//!
//! fn log_tag(_event: &Event, tag: &TagCreated, config: &Config) {
//!     tracing::info!(repository = %tag.repository, tag = %tag.tag, setting = %config.setting, "tag created");
//! }
//! registry_signals::receiver!("foo", log_tag);
//! ```
//!
//! Receivers run off the request path: each enabled extension has its own
//! bounded queue and worker thread, events reach it in the order the changes
//! happened, and a panic in a receiver is caught and counted. A receiver
//! should return quickly; slow work belongs in the extension's own tasks.
//! Guards run inside the request, before a manifest is stored, with a time
//! limit, and may reject the push.
//!
//! This crate owns the vocabulary and the registration only. Delivery,
//! queues and the configuration file belong to the registry.

pub mod event;
pub mod guard;
pub mod platform;
pub mod registration;
pub mod signal;
pub mod telemetry;

pub use event::{Event, RequestContext};
pub use guard::{ManifestCandidate, Receipt, Rejection};
pub use platform::{
    BoxFuture, ExtensionContext, RegistryView, RequestRecord, Shutdown, ShutdownTrigger,
    StoredManifest, ViewError,
};
pub use registration::{
    ExtensionConfig, ExtensionRegistration, ExtensionState, GuardRegistration, HandoffRegistration,
    NoConfig, ObserverRegistration, ReceiverRegistration, RoutesRegistration, SetupRegistration,
    TaskRegistration, extensions, guards, handoffs, observers, receivers, routes, setups, tasks,
};
pub use signal::{
    BlobDeleted, BlobMounted, BlobPulled, BlobPushed, ManifestDeleted, ManifestPulled,
    ManifestPushed, Payload, RepositoryCreated, RepositoryDeleted, RepositoryUpdated, Signal,
    SignalKind, TagCreated, TagDeleted,
};

/// Re-exported so that the registration macros work in crates that do not
/// depend on `inventory` themselves.
#[doc(hidden)]
pub use inventory;

/// Re-exported so that extensions build their routes with the registry's
/// version of axum.
pub use axum;
