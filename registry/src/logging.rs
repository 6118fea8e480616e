//! Logging setup: `tracing` with text or JSON lines on standard error.

use std::io::IsTerminal;

use registry_config::{Log, LogFormatter};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides
/// `log.level` with full filter directives.
pub fn init(log: &Log) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(log.level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match log.formatter {
        LogFormatter::Text => builder.try_init(),
        LogFormatter::Json => builder.json().flatten_event(true).try_init(),
    };
    // A subscriber already installed (in tests) is not an error.
    drop(result);
}
