//! The `extensions.notify` section.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use registry_config::ByteSize;
use registry_signals::{ExtensionConfig, SignalKind};
use serde::Deserialize;

use crate::RuntimeCell;
use crate::envelope::Record;
use crate::outbox::SyncPolicy;

/// The `extensions.notify` section.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// The endpoints that receive events. Default: none, and then the
    /// extension does nothing.
    pub endpoints: Vec<Endpoint>,

    /// The outbox on disk.
    pub outbox: OutboxSettings,

    /// The scheme and host of the `url` in each event's target, such as
    /// `https://registry.example.com`. Default: `http://` and the `Host`
    /// header of the request.
    #[serde(rename = "urlbase")]
    pub url_base: Option<String>,

    #[serde(skip)]
    pub(crate) runtime: RuntimeCell,
}

/// The `extensions.notify.outbox` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxSettings {
    /// The folder of the outbox. Default: `extensions/notify/outbox` under
    /// the storage root.
    pub directory: Option<PathBuf>,

    /// The disk space that the outbox may take. Default: `256MiB`.
    #[serde(rename = "maxsize")]
    pub max_size: ByteSize,

    /// When the events of a change are synced to disk. Default: `always`.
    pub sync: SyncMode,

    /// With `sync: interval`, the maximum time between the write of an
    /// event and its sync to disk. Default: `1s`.
    #[serde(rename = "syncinterval", with = "humantime_serde")]
    pub sync_interval: Duration,

    /// With `sync: always`, the maximum time that the events of a change
    /// wait for those of other changes, so that one sync to disk covers
    /// them all. The sync thread waits only while changes arrive closer
    /// together than this; a lone change is synced at once. `0s` syncs at
    /// once always. Default: `5ms`.
    #[serde(rename = "syncdelay", with = "humantime_serde")]
    pub sync_delay: Duration,
}

/// The values of `outbox.sync`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The events of a change are written to the outbox before the
    /// response, which survives a killed or restarted registry. They are
    /// synced to disk within `syncinterval`, so a crash of the machine or
    /// a power loss can lose the events of that last interval.
    Interval,
    /// The events of a change are synced to disk before the response.
    #[default]
    Always,
}

impl OutboxSettings {
    /// Returns the outbox's sync policy.
    pub(crate) fn sync_policy(&self) -> SyncPolicy {
        match self.sync {
            SyncMode::Interval => SyncPolicy::Interval(self.sync_interval),
            SyncMode::Always => SyncPolicy::Always {
                delay: self.sync_delay,
            },
        }
    }
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            directory: None,
            max_size: ByteSize::mib(256),
            sync: SyncMode::Always,
            sync_interval: Duration::from_secs(1),
            sync_delay: DEFAULT_SYNC_DELAY,
        }
    }
}

/// The default of `outbox.syncdelay`. On the benchmark's virtual machine a
/// sync costs about 130 µs of CPU, an estimate from the CPU per request at
/// several delays. Under the benchmark's stream of manifest PUTs to one
/// repository, the CPU per PUT with notify was 1.10 to 1.28 times that
/// without extensions at 2 ms, and 1.01 to 1.02 times at 5 ms. The median
/// latency went from 4 ms to 6.6 ms.
const DEFAULT_SYNC_DELAY: Duration = Duration::from_millis(5);

/// The upper bound of `outbox.syncdelay`: each change waits up to this
/// long before its response.
const MAX_SYNC_DELAY: Duration = Duration::from_millis(100);

/// The upper bound of `outbox.syncinterval`: a crash of the machine can
/// lose the events of up to this long.
const MAX_SYNC_INTERVAL: Duration = Duration::from_secs(60);

/// The body format of an endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The Go registry's envelope, with up to `maxbatch` events per POST.
    #[default]
    Docker,
    /// One CloudEvents 1.0 event per POST, in structured JSON mode.
    CloudEvents,
}

/// Events that an endpoint does not receive.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ignore {
    /// Target media types to leave out.
    #[serde(rename = "mediatypes")]
    pub media_types: Vec<String>,
    /// Actions to leave out: `push`, `pull`, `mount` or `delete`.
    pub actions: Vec<String>,
}

/// One webhook endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// A unique name, used in logs, metrics and the outbox's cursor files.
    pub name: String,

    /// The URL that receives the POSTs, `http` or `https`.
    pub url: String,

    /// Headers added to every POST. Each name takes a list of values, as in
    /// the Go registry.
    #[serde(default)]
    pub headers: BTreeMap<String, Vec<String>>,

    /// The time one POST may take. Default: `5s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,

    /// The first delay before a retry. Default: `1s`.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    pub backoff: Duration,

    /// The maximum delay between retries. Default: `5m`.
    #[serde(
        rename = "maxbackoff",
        default = "default_max_backoff",
        with = "humantime_serde"
    )]
    pub max_backoff: Duration,

    /// Events per POST in the docker format. Default: `50`.
    #[serde(rename = "maxbatch", default = "default_max_batch")]
    pub max_batch: usize,

    /// The key of the `X-Registry-Signature-256` header. Default: none, and
    /// bodies are not signed.
    #[serde(default)]
    pub secret: Option<String>,

    /// The body format. Default: `docker`.
    #[serde(default)]
    pub format: Format,

    /// Target media types to leave out, as in the Go registry.
    #[serde(rename = "ignoredmediatypes", default)]
    pub ignored_media_types: Vec<String>,

    /// Actions and media types to leave out.
    #[serde(default)]
    pub ignore: Ignore,

    /// A PEM file of CA certificates for an `https` URL, trusted besides
    /// the system's certificates and the Mozilla roots built into the
    /// registry: for a receiver whose certificate a private CA signed.
    /// Startup reads it. Default: none.
    #[serde(default)]
    pub ca: Option<PathBuf>,

    /// Turns the endpoint off without removing it. Default: `false`.
    #[serde(default)]
    pub disabled: bool,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

fn default_max_batch() -> usize {
    50
}

const ACTIONS: [&str; 4] = ["push", "pull", "mount", "delete"];

/// The largest `maxbatch`: a batch is one POST body held in memory.
const MAX_BATCH: usize = 1000;

/// Headers that the delivery sets itself, so a configured value would
/// corrupt the body or forge the signature.
const RESERVED_HEADERS: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "host",
    "content-type",
    "connection",
    "x-registry-signature-256",
];

impl Endpoint {
    /// Returns whether this endpoint receives `record`.
    pub(crate) fn wants(&self, record: &Record) -> bool {
        let action = record.action.as_str();
        let media_type = record.media_type.as_str();
        !self.disabled
            && !self.ignore.actions.iter().any(|a| a == action)
            && !self.ignore.media_types.iter().any(|m| m == media_type)
            && !self.ignored_media_types.iter().any(|m| m == media_type)
    }

    fn validate(&self, index: usize) -> Result<(), String> {
        let at = format!("endpoints[{index}]");
        let name_ok = !self.name.is_empty()
            && !self.name.starts_with('.')
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !name_ok {
            return Err(format!(
                "{at}.name: invalid name {:?}; use 1 to 64 letters, digits, '.', '_' or '-', \
                 not starting with '.'",
                self.name
            ));
        }

        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !scheme_ok || reqwest::Url::parse(&self.url).is_err() {
            return Err(format!(
                "{at}.url: invalid URL {:?}; expected an http or https URL",
                self.url
            ));
        }

        for (name, values) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("{at}.headers: invalid header name {name:?}"));
            }
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "{at}.headers.{name}: the delivery sets this header itself; remove it"
                ));
            }
            if values
                .iter()
                .any(|v| reqwest::header::HeaderValue::from_str(v).is_err())
            {
                return Err(format!("{at}.headers.{name}: invalid header value"));
            }
        }

        if self.timeout.is_zero() || self.backoff.is_zero() {
            return Err(format!(
                "{at}: timeout and backoff must be greater than zero"
            ));
        }
        if self.max_backoff < self.backoff {
            return Err(format!(
                "{at}.maxbackoff: {} is shorter than backoff {}",
                humantime::format_duration(self.max_backoff),
                humantime::format_duration(self.backoff)
            ));
        }
        if self.max_batch == 0 || self.max_batch > MAX_BATCH {
            return Err(format!(
                "{at}.maxbatch: {} is out of range; use 1 to {MAX_BATCH}",
                self.max_batch
            ));
        }

        if let Some(action) = self
            .ignore
            .actions
            .iter()
            .find(|a| !ACTIONS.contains(&a.as_str()))
        {
            return Err(format!(
                "{at}.ignore.actions: unknown action {action:?}; expected push, pull, mount or delete"
            ));
        }
        if self.secret.as_deref() == Some("") {
            return Err(format!("{at}.secret: must not be empty"));
        }
        if self.ca.is_some() && !self.url.starts_with("https://") {
            return Err(format!(
                "{at}.ca: set for the http URL {:?}; a CA applies to https URLs only",
                self.url
            ));
        }
        Ok(())
    }

    /// Reads the certificates of the `ca` file, which must contain at least
    /// one. Returns none when `ca` is not set. Startup calls it, not the
    /// validation, so that loading the configuration reads no file.
    pub(crate) fn ca_certificates(&self) -> Result<Vec<reqwest::Certificate>, String> {
        let Some(path) = &self.ca else {
            return Ok(Vec::new());
        };
        let pem = std::fs::read(path)
            .map_err(|e| format!("cannot read the ca file {}: {e}", path.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("invalid ca file {}: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!(
                "the ca file {} contains no PEM certificate",
                path.display()
            ));
        }
        Ok(certificates)
    }
}

impl NotifyConfig {
    /// Returns whether any endpoint receives `record`.
    pub(crate) fn wanted_by_any(&self, record: &Record) -> bool {
        self.endpoints.iter().any(|e| e.wants(record))
    }
}

impl ExtensionConfig for NotifyConfig {
    /// Takes a kind when an enabled endpoint receives its action, so that
    /// endpoints that ignore pulls cost pulls nothing.
    fn receives(&self, kind: SignalKind) -> bool {
        let action = match kind {
            SignalKind::ManifestPushed | SignalKind::BlobPushed => "push",
            SignalKind::BlobMounted => "mount",
            SignalKind::ManifestDeleted | SignalKind::TagDeleted | SignalKind::BlobDeleted => {
                "delete"
            }
            SignalKind::ManifestPulled | SignalKind::BlobPulled => "pull",
            _ => return false,
        };
        self.endpoints
            .iter()
            .any(|e| !e.disabled && !e.ignore.actions.iter().any(|a| a == action))
    }

    fn validate(&self) -> Result<(), String> {
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            endpoint.validate(index)?;
        }
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if self.endpoints[..index]
                .iter()
                .any(|e| e.name == endpoint.name)
            {
                return Err(format!(
                    "endpoints[{index}].name: {:?} is used by another endpoint",
                    endpoint.name
                ));
            }
        }
        if self.outbox.max_size.as_u64() < 1 << 20 {
            return Err(format!(
                "outbox.maxsize: {} is too small; the minimum is 1MiB",
                self.outbox.max_size
            ));
        }
        if self.outbox.sync_interval.is_zero() || self.outbox.sync_interval > MAX_SYNC_INTERVAL {
            return Err(format!(
                "outbox.syncinterval: {} is out of range; use more than 0s and at most {}, \
                 or sync: always to sync each change before its response",
                humantime::format_duration(self.outbox.sync_interval),
                humantime::format_duration(MAX_SYNC_INTERVAL)
            ));
        }
        if self.outbox.sync_delay > MAX_SYNC_DELAY {
            return Err(format!(
                "outbox.syncdelay: {} is too long, because every change waits up to \
                 that long before its response; the maximum is {}",
                humantime::format_duration(self.outbox.sync_delay),
                humantime::format_duration(MAX_SYNC_DELAY)
            ));
        }
        if let Some(base) = &self.url_base {
            let http = base.starts_with("http://") || base.starts_with("https://");
            if !http || reqwest::Url::parse(base).is_err() {
                return Err(format!(
                    "urlbase: invalid URL {base:?}; expected an http or https URL"
                ));
            }
        }
        if self
            .outbox
            .directory
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err("outbox.directory: must not be empty".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(extra: &str) -> Result<(), String> {
        let yaml = format!("endpoints:\n  - name: e\n    url: http://127.0.0.1:1/\n{extra}");
        let config: NotifyConfig = serde_yaml::from_str(&yaml).map_err(|e| e.to_string())?;
        config.validate()
    }

    #[test]
    fn reserved_headers_are_rejected() {
        for header in [
            "Content-Length",
            "transfer-encoding",
            "Host",
            "X-Registry-Signature-256",
        ] {
            let error = endpoint(&format!("    headers:\n      {header}: [x]\n")).unwrap_err();
            assert!(
                error.contains("sets this header itself"),
                "{header}: {error}"
            );
        }
        assert!(endpoint("    headers:\n      X-Custom: [x]\n").is_ok());
    }

    #[test]
    fn maxbatch_is_bounded() {
        assert!(endpoint("    maxbatch: 1000\n").is_ok());
        let error = endpoint("    maxbatch: 1001\n").unwrap_err();
        assert!(error.contains("use 1 to 1000"), "{error}");
    }

    #[test]
    fn ca_needs_an_https_url() {
        let error = endpoint("    ca: /nonexistent/ca.pem\n").unwrap_err();
        assert!(error.contains("applies to https URLs only"), "{error}");

        let yaml =
            "endpoints:\n  - name: e\n    url: https://127.0.0.1:1/\n    ca: /nonexistent/ca.pem\n";
        let config: NotifyConfig = serde_yaml::from_str(yaml).unwrap();
        assert!(config.validate().is_ok());
        let error = config.endpoints[0].ca_certificates().unwrap_err();
        assert!(error.contains("cannot read the ca file"), "{error}");
    }

    #[test]
    fn dot_names_are_rejected() {
        for name in [".", "..", ".hidden"] {
            let yaml = format!("endpoints:\n  - name: '{name}'\n    url: http://127.0.0.1:1/\n");
            let config: NotifyConfig = serde_yaml::from_str(&yaml).unwrap();
            assert!(config.validate().is_err(), "{name} was accepted");
        }
    }

    #[test]
    fn ignored_pulls_are_not_received() {
        let yaml = "endpoints:\n  - name: e\n    url: http://127.0.0.1:1/\n    ignore:\n      actions: [pull]\n";
        let config: NotifyConfig = serde_yaml::from_str(yaml).unwrap();
        assert!(!config.receives(SignalKind::ManifestPulled));
        assert!(!config.receives(SignalKind::BlobPulled));
        assert!(config.receives(SignalKind::ManifestPushed));
        let none = NotifyConfig::default();
        assert!(!none.receives(SignalKind::ManifestPushed));
    }

    #[test]
    fn sync_defaults_to_always() {
        let config = NotifyConfig::default();
        assert_eq!(
            config.outbox.sync_policy(),
            SyncPolicy::Always {
                delay: Duration::from_millis(5)
            }
        );
        let config: NotifyConfig =
            serde_yaml::from_str("outbox:\n  sync: interval\n  syncinterval: 3s\n").unwrap();
        assert_eq!(
            config.outbox.sync_policy(),
            SyncPolicy::Interval(Duration::from_secs(3))
        );
    }

    #[test]
    fn syncinterval_is_bounded() {
        for value in ["0s", "2m"] {
            let yaml = format!("outbox:\n  syncinterval: {value}\n");
            let config: NotifyConfig = serde_yaml::from_str(&yaml).unwrap();
            let error = config.validate().unwrap_err();
            assert!(error.contains("outbox.syncinterval"), "{error}");
            assert!(error.contains("at most 1m"), "{error}");
        }
        let error = serde_yaml::from_str::<NotifyConfig>("outbox:\n  sync: sometimes\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown variant `sometimes`"), "{error}");
    }

    #[test]
    fn syncdelay_is_bounded() {
        let config: NotifyConfig = serde_yaml::from_str("outbox:\n  syncdelay: 0s\n").unwrap();
        assert_eq!(config.outbox.sync_delay, Duration::ZERO);
        assert!(config.validate().is_ok());

        let config: NotifyConfig = serde_yaml::from_str("outbox:\n  syncdelay: 1s\n").unwrap();
        let error = config.validate().unwrap_err();
        assert!(
            error.contains("outbox.syncdelay: 1s is too long"),
            "{error}"
        );
        assert!(error.contains("the maximum is 100ms"), "{error}");
    }

    #[test]
    fn urlbase_must_be_http() {
        let config: NotifyConfig =
            serde_yaml::from_str("urlbase: 'javascript:alert(1)'\n").unwrap();
        assert!(config.validate().unwrap_err().contains("urlbase"));
    }
}
