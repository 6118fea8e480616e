//! The example extension of the guide: on every `tag_created` it logs one
//! line at info with the repository, the tag, the digest and its `setting`.
//!
//! Its section, `extensions.foo`, has one key:
//!
//! ```yaml
//! extensions:
//!   foo:
//!     setting: _env:EXTENSION_FOO_SETTING:hello
//! ```
//!
//! Link it with `cargo build --features ext-foo`; turn it off with
//! `enabled: false`.

use registry_signals::{Event, ExtensionConfig, TagCreated};
use serde::Deserialize;

/// The `extensions.foo` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FooConfig {
    /// Text added to each log line. Default: empty.
    pub setting: String,
}

impl ExtensionConfig for FooConfig {}

registry_signals::extension!(name: "foo", config: FooConfig, enabled_by_default: true);

/// Logs a created or moved tag.
fn log_tag_created(_event: &Event, tag: &TagCreated, config: &FooConfig) {
    tracing::info!(
        target: "registry_ext_foo",
        repository = %tag.repository,
        tag = %tag.tag,
        digest = %tag.digest,
        setting = %config.setting,
        "foo: tag created"
    );
}

registry_signals::receiver!("foo", log_tag_created);
