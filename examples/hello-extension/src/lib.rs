//! An extension as someone outside this repository would publish it: it
//! logs a greeting when a repository is created.
//!
//! ```yaml
//! extensions:
//!   hello:
//!     greeting: Welcome
//! ```

use registry_signals::{Event, ExtensionConfig, RepositoryCreated};
use serde::Deserialize;

/// The `extensions.hello` section.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HelloConfig {
    /// The word the log line starts with. Default: `Hello`.
    pub greeting: String,
}

impl Default for HelloConfig {
    fn default() -> Self {
        Self {
            greeting: "Hello".to_owned(),
        }
    }
}

impl ExtensionConfig for HelloConfig {}

registry_signals::extension!(name: "hello", config: HelloConfig, enabled_by_default: true);

fn greet(_event: &Event, created: &RepositoryCreated, config: &HelloConfig) {
    tracing::info!(
        target: "hello_extension",
        repository = %created.repository,
        "{}, {}!",
        config.greeting,
        created.repository
    );
}

registry_signals::receiver!("hello", greet);
