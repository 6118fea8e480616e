//! The `extensions.metrics` section, and the state that one registry
//! process keeps beside it.

use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Mutex, OnceLock};

use registry_signals::ExtensionConfig;
use serde::Deserialize;

use crate::process::ProcessMetrics;
use crate::requests::RequestMetrics;

/// The default of `path`.
pub const DEFAULT_PATH: &str = "/metrics";

/// The `extensions.metrics` section.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// The HTTP path that serves the metrics. Default: `/metrics`.
    pub path: String,
    /// The IP address and port of a separate listener, such as
    /// `127.0.0.1:5001`. When set, the metrics are served only there and
    /// not on the registry's listener. Default: none.
    pub addr: Option<String>,
    /// The counters and resources of the running extension. All
    /// registrations of one registry process share one `Arc` of this
    /// config, so they share this state too.
    #[serde(skip)]
    pub(crate) runtime: Runtime,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            path: DEFAULT_PATH.to_owned(),
            addr: None,
            runtime: Runtime::default(),
        }
    }
}

impl ExtensionConfig for MetricsConfig {
    fn validate(&self) -> Result<(), String> {
        validate_path(&self.path)?;
        self.listen_addr()?;
        Ok(())
    }
}

impl MetricsConfig {
    /// Returns `addr` parsed, or `None` when it is not set.
    ///
    /// # Errors
    ///
    /// When `addr` is not an IP address and port.
    pub fn listen_addr(&self) -> Result<Option<SocketAddr>, String> {
        let Some(text) = &self.addr else {
            return Ok(None);
        };
        text.parse().map(Some).map_err(|_| {
            format!(
                "addr: invalid socket address {text:?}: expected an IP address and port \
                 such as 127.0.0.1:5001 or [::1]:5001 (host names are not accepted)"
            )
        })
    }
}

/// Checks `path`: it must start with `/`, must stay outside the `/v2/`
/// API, and may contain only letters, digits, `/`, `-`, `.`, `_` and `~`,
/// which rules out the `{capture}` and `*` syntax of axum routes.
fn validate_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "path: {path:?} must start with /, such as {DEFAULT_PATH}"
        ));
    }
    if path == "/v2" || path.starts_with("/v2/") {
        return Err(format!(
            "path: {path:?} is inside the registry API under /v2/; choose another path, such as {DEFAULT_PATH}"
        ));
    }
    let invalid = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '.' | '_' | '~')));
    if let Some(c) = invalid {
        return Err(format!(
            "path: {path:?} contains {c:?}; use only letters, digits, /, -, ., _ and ~"
        ));
    }
    Ok(())
}

/// The state of the running extension.
#[derive(Default)]
pub(crate) struct Runtime {
    /// The request counters that the observer updates.
    pub requests: RequestMetrics,
    /// The process metrics, created by setup or by the first scrape.
    pub process: OnceLock<ProcessMetrics>,
    /// The listener of `addr`. Setup binds it, so that a taken port stops
    /// startup, and the serving task takes it out. It is `None` before
    /// setup, after the task started, and when `addr` is not set.
    pub listener: Mutex<Option<TcpListener>>,
    /// The problems with shared metrics that were already logged, so that
    /// each is logged once and not on every scrape.
    pub reported: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").finish_non_exhaustive()
    }
}

impl Runtime {
    /// Returns the process metrics, reading their fixed parts on first use.
    pub fn process(&self) -> &ProcessMetrics {
        self.process.get_or_init(ProcessMetrics::new)
    }

    /// Returns whether `key` is reported for the first time, and marks it.
    pub fn first_report(&self, key: &str) -> bool {
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        reported.insert(key.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use registry_config::ConfigError;

    use super::*;

    /// Loads `extensions.metrics` from YAML the way the registry does:
    /// through the extension's registration, which also validates.
    fn load(yaml: &str) -> Result<std::sync::Arc<MetricsConfig>, ConfigError> {
        let config = registry_config::load(Some(yaml), &BTreeMap::new())?;
        let section = config
            .extension("metrics")
            .unwrap_or_else(|| registry_config::ExtensionSection::missing("metrics"));
        let registration = registry_signals::extensions()
            .find(|registration| registration.name == "metrics")
            .expect("the extension is registered");
        let state = (registration.load)(&section)?;
        Ok(state
            .downcast::<MetricsConfig>()
            .expect("the state is a MetricsConfig"))
    }

    fn invalid_message(yaml: &str) -> String {
        match load(yaml) {
            Ok(config) => panic!("{yaml:?} loaded as {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn missing_section_uses_defaults() {
        let config = load("{}\n").expect("defaults load");
        assert_eq!(config.path, "/metrics");
        assert_eq!(config.addr, None);
        assert_eq!(config.listen_addr(), Ok(None));
    }

    #[test]
    fn section_sets_path_and_addr() {
        let yaml =
            "extensions:\n  metrics:\n    path: /internal/metrics\n    addr: 127.0.0.1:5001\n";
        let config = load(yaml).expect("the section loads");
        assert_eq!(config.path, "/internal/metrics");
        let expected: SocketAddr = "127.0.0.1:5001".parse().unwrap();
        assert_eq!(config.listen_addr(), Ok(Some(expected)));
    }

    #[test]
    fn unknown_key_is_rejected() {
        let message = invalid_message("extensions:\n  metrics:\n    listen: 127.0.0.1:5001\n");
        assert!(message.contains("extensions.metrics.listen"), "{message}");
    }

    #[test]
    fn path_under_v2_is_rejected() {
        for path in ["/v2", "/v2/", "/v2/metrics"] {
            let message = invalid_message(&format!("extensions:\n  metrics:\n    path: {path}\n"));
            assert!(message.contains("extensions.metrics"), "{message}");
            assert!(message.contains("inside the registry API"), "{message}");
        }
    }

    #[test]
    fn relative_path_is_rejected() {
        let message = invalid_message("extensions:\n  metrics:\n    path: metrics\n");
        assert!(message.contains("must start with /"), "{message}");
    }

    #[test]
    fn route_syntax_in_path_is_rejected() {
        for path in ["/metrics/{name}", "/metrics/*rest", "/metrics?x=1", "/a b"] {
            let yaml = format!("extensions:\n  metrics:\n    path: \"{path}\"\n");
            let message = invalid_message(&yaml);
            assert!(message.contains("use only letters"), "{path}: {message}");
        }
    }

    #[test]
    fn paths_beside_v2_are_accepted() {
        for path in [
            "/",
            "/metrics",
            "/v2metrics",
            "/v1/metrics",
            "/-/metrics_1.txt",
        ] {
            let yaml = format!("extensions:\n  metrics:\n    path: {path}\n");
            let config = load(&yaml).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(config.path, path);
        }
    }

    #[test]
    fn host_name_addr_is_rejected() {
        let message = invalid_message("extensions:\n  metrics:\n    addr: localhost:5001\n");
        assert!(message.contains("extensions.metrics"), "{message}");
        assert!(message.contains("\"localhost:5001\""), "{message}");
        assert!(message.contains("host names are not accepted"), "{message}");
    }

    #[test]
    fn addr_without_port_is_rejected() {
        let message = invalid_message("extensions:\n  metrics:\n    addr: 127.0.0.1\n");
        assert!(message.contains("invalid socket address"), "{message}");
    }
}
