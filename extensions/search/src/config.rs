//! The `extensions.search` section.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use registry_signals::ExtensionConfig;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::state::SearchState;

/// The page size of a request without `n`. docker search always sends `n`
/// (its `--limit`, 25 by default in docker 20.10).
pub const DEFAULT_PAGE_SIZE: usize = 25;

/// The largest `n` accepted by default: docker 20.10 rejects a `--limit`
/// above 100 before it sends the search request.
pub const DEFAULT_MAX_PAGE_SIZE: usize = 100;

const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

const DEFAULT_REBUILD_INTERVAL: Duration = Duration::from_secs(3600);

/// The `extensions.search` section, and the extension's runtime state.
///
/// The registry loads this type once per process and shares it, in an
/// `Arc`, with the receivers, the routes, the setup function and the task,
/// so the index lives in the skipped field `state`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    /// The number of results per page when a request has no `n`. Must be
    /// from 1 to `maxpagesize`. Default: `25`.
    #[serde(rename = "defaultpagesize")]
    pub default_page_size: usize,

    /// The largest `n` accepted; a request with a larger one gets 400. Must
    /// be at least 1. Default: `100`, the largest `--limit` of docker search,
    /// so a smaller value makes `docker search --limit` fail above it.
    #[serde(rename = "maxpagesize")]
    pub max_page_size: usize,

    /// Whether a query also matches the descriptions of repositories, not
    /// only their names. Default: `true`.
    #[serde(rename = "matchdescriptions")]
    pub match_descriptions: bool,

    /// The maximum time a search request waits for the first index build
    /// after startup. A request still waiting then gets 503, and with zero
    /// every request during the build gets 503 at once. Default: `10s`.
    #[serde(rename = "readytimeout", deserialize_with = "deserialize_duration")]
    pub ready_timeout: Duration,

    /// The time between two rebuilds of the index from storage, which
    /// bring back changes whose events were dropped because the
    /// extension's queue was full (`signals.queuesize`). Zero turns
    /// rebuilds off. Default: `1h`.
    #[serde(rename = "rebuildinterval", deserialize_with = "deserialize_duration")]
    pub rebuild_interval: Duration,

    /// The index, the update channel and the counters, created with the
    /// configuration and shared by every registration of the extension.
    #[serde(skip)]
    pub(crate) state: Arc<SearchState>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            default_page_size: DEFAULT_PAGE_SIZE,
            max_page_size: DEFAULT_MAX_PAGE_SIZE,
            match_descriptions: true,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            rebuild_interval: DEFAULT_REBUILD_INTERVAL,
            state: Arc::default(),
        }
    }
}

impl ExtensionConfig for SearchConfig {
    fn validate(&self) -> Result<(), String> {
        if self.max_page_size == 0 {
            return Err("invalid maxpagesize 0: must be at least 1".to_owned());
        }
        if self.default_page_size == 0 || self.default_page_size > self.max_page_size {
            return Err(format!(
                "invalid defaultpagesize {}: must be from 1 to maxpagesize ({})",
                self.default_page_size, self.max_page_size
            ));
        }
        Ok(())
    }
}

/// Deserializes a duration written with a unit, such as `30s` or `1h`. A
/// bare number is rejected, because the file would not show its unit.
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(DurationVisitor)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration with a unit, such as 10s, 5m or 1h")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|error| {
            E::custom(format!(
                "invalid duration {text:?}: {error} (expected a number with a unit, such as 10s, 5m or 1h)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<SearchConfig, String> {
        let config: SearchConfig = serde_json::from_value(json).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn empty_section_uses_defaults() {
        let config = parse(serde_json::json!({})).unwrap();
        assert_eq!(config.default_page_size, 25);
        assert_eq!(config.max_page_size, 100);
        assert!(config.match_descriptions);
        assert_eq!(config.ready_timeout, Duration::from_secs(10));
        assert_eq!(config.rebuild_interval, Duration::from_secs(3600));
    }

    #[test]
    fn settings_are_read() {
        let config = parse(serde_json::json!({
            "defaultpagesize": 10,
            "maxpagesize": 50,
            "matchdescriptions": false,
            "readytimeout": "2s",
            "rebuildinterval": "0s",
        }))
        .unwrap();
        assert_eq!(config.default_page_size, 10);
        assert_eq!(config.max_page_size, 50);
        assert!(!config.match_descriptions);
        assert_eq!(config.ready_timeout, Duration::from_secs(2));
        assert_eq!(config.rebuild_interval, Duration::ZERO);
    }

    #[test]
    fn unknown_key_is_rejected() {
        let error = parse(serde_json::json!({ "pagesize": 10 })).unwrap_err();
        assert!(error.contains("unknown field `pagesize`"), "{error}");
    }

    #[test]
    fn page_sizes_are_validated() {
        let cases = [
            (
                serde_json::json!({ "maxpagesize": 0 }),
                "invalid maxpagesize 0",
            ),
            (
                serde_json::json!({ "defaultpagesize": 0 }),
                "invalid defaultpagesize 0",
            ),
            (
                serde_json::json!({ "defaultpagesize": 30, "maxpagesize": 20 }),
                "invalid defaultpagesize 30: must be from 1 to maxpagesize (20)",
            ),
        ];
        for (section, expected) in cases {
            let error = parse(section.clone()).unwrap_err();
            assert!(error.contains(expected), "{section}: {error}");
        }
    }

    #[test]
    fn duration_without_unit_is_rejected() {
        let error = parse(serde_json::json!({ "readytimeout": "10" })).unwrap_err();
        assert!(error.contains("invalid duration \"10\""), "{error}");
    }
}
