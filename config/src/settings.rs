//! The typed settings: every top-level section except `extensions`, which
//! belongs to the extensions, and `flavors`, which is merged away before this
//! point.
//!
//! Key names follow the Go registry's `config.yml` where the concept is the
//! same. Every key is optional, and a section that is present but empty
//! (`http:` with nothing under it) takes its defaults.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::size::ByteSize;
use crate::storage::Storage;

/// All typed settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The file format version, as in the Go registry's files (`version: 0.1`).
    /// It is accepted as a string or a number and otherwise ignored.
    /// Default: none.
    #[serde(
        deserialize_with = "deserialize_version",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<String>,

    /// Logging. Default: see [`Log`].
    #[serde(deserialize_with = "null_as_default")]
    pub log: Log,

    /// The HTTP listener and its timeouts. Default: see [`Http`].
    #[serde(deserialize_with = "null_as_default")]
    pub http: Http,

    /// Storage of blobs and metadata. Default: see [`Storage`].
    #[serde(deserialize_with = "null_as_default")]
    pub storage: Storage,

    /// Limits on request sizes and concurrency. Default: see [`Limits`].
    #[serde(deserialize_with = "null_as_default")]
    pub limits: Limits,

    /// Delivery of signals to extensions. Default: see [`Signals`].
    #[serde(deserialize_with = "null_as_default")]
    pub signals: Signals,
}

/// The `log` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// The maximum level of events that are logged, where `trace` is the
    /// highest and `error` the lowest. Default: `info`.
    pub level: LogLevel,

    /// The output format. Default: `text`.
    pub formatter: LogFormatter,

    /// The access log, one line per request. Default: enabled.
    #[serde(rename = "accesslog", deserialize_with = "null_as_default")]
    pub access_log: AccessLog,
}

/// A log level, written in lowercase in the file.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Failures that need an operator.
    Error,
    /// Degraded operation.
    Warn,
    /// Lifecycle events.
    #[default]
    Info,
    /// Decisions with their inputs.
    Debug,
    /// Per-chunk detail.
    Trace,
}

impl LogLevel {
    /// Returns the level as written in the file, which is also the name that
    /// `tracing` filter directives use.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A log output format, written in lowercase in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatter {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The `log.accesslog` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLog {
    /// Turns the access log off. Default: `false`.
    pub disabled: bool,
}

/// The `http` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    /// The IP address and port to listen on, such as `0.0.0.0:5000` or
    /// `[::]:5000`. Host names are rejected, so that loading never depends on
    /// name resolution. Default: `127.0.0.1:5000`.
    #[serde(deserialize_with = "deserialize_socket_addr")]
    pub addr: SocketAddr,

    /// The maximum time that requests in flight get to finish after a
    /// shutdown signal. Zero stops without waiting. Default: `30s`.
    #[serde(rename = "draintimeout", with = "crate::duration")]
    pub drain_timeout: Duration,

    /// The maximum time for a whole request that has no streamed body, such
    /// as a manifest, a tag list or a catalog request. Must be greater than
    /// zero. Default: `60s`.
    #[serde(
        rename = "requesttimeout",
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub request_timeout: Duration,

    /// The maximum time that an upload or download body may go without moving
    /// a byte before the request is aborted. Must be greater than zero.
    /// Default: `5m`.
    #[serde(
        rename = "idletimeout",
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub idle_timeout: Duration,

    /// The maximum total size of a request's headers. Must be greater than
    /// zero. Default: `64KiB`.
    #[serde(
        rename = "maxheadersize",
        deserialize_with = "crate::size::deserialize_nonzero"
    )]
    pub max_header_size: ByteSize,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
            drain_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(5 * 60),
            max_header_size: ByteSize::kib(64),
        }
    }
}

/// The `limits` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The maximum size of a manifest on push. Must be greater than zero.
    /// Default: `4MiB`.
    #[serde(
        rename = "manifestsize",
        deserialize_with = "crate::size::deserialize_nonzero"
    )]
    pub manifest_size: ByteSize,

    /// The maximum number of upload requests (POST, PATCH and PUT with a
    /// body) in flight at once. Must be greater than zero. Default: `1000`.
    #[serde(rename = "maxuploads")]
    pub max_uploads: NonZeroU32,
}

const DEFAULT_MAX_UPLOADS: NonZeroU32 = match NonZeroU32::new(1000) {
    Some(count) => count,
    None => panic!("the default upload limit is zero"),
};

impl Default for Limits {
    fn default() -> Self {
        Limits {
            manifest_size: ByteSize::mib(4),
            max_uploads: DEFAULT_MAX_UPLOADS,
        }
    }
}

/// The `signals` section: how events reach the receivers of extensions and
/// how long guards may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Signals {
    /// The maximum number of events waiting for each extension. An event
    /// that finds the queue full is dropped and counted. Must be greater
    /// than zero. Default: `1024`.
    #[serde(rename = "queuesize")]
    pub queue_size: NonZeroU32,

    /// The maximum time that queued events get to reach their receivers
    /// after a shutdown signal. Zero drops them. Default: `10s`.
    #[serde(rename = "draintimeout", with = "crate::duration")]
    pub drain_timeout: Duration,

    /// The maximum time a guard may take to decide on a manifest push; a
    /// guard that takes longer rejects the push. Must be greater than zero.
    /// Default: `5s`.
    #[serde(
        rename = "guardtimeout",
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub guard_timeout: Duration,

    /// The maximum time the response to a change waits for the work that
    /// its durable hand-offs left (a sync to disk, say). Work that takes
    /// longer is logged and counted as failed, and the response goes out.
    /// Must be greater than zero. Default: `5s`.
    #[serde(
        rename = "handofftimeout",
        serialize_with = "crate::duration::serialize",
        deserialize_with = "crate::duration::deserialize_nonzero"
    )]
    pub handoff_timeout: Duration,
}

const DEFAULT_QUEUE_SIZE: NonZeroU32 = match NonZeroU32::new(1024) {
    Some(count) => count,
    None => panic!("the default queue size is zero"),
};

impl Default for Signals {
    fn default() -> Self {
        Signals {
            queue_size: DEFAULT_QUEUE_SIZE,
            drain_timeout: Duration::from_secs(10),
            guard_timeout: Duration::from_secs(5),
            handoff_timeout: Duration::from_secs(5),
        }
    }
}

/// Deserializes a section that may be written as an empty key (`http:`),
/// which YAML reads as null, into its defaults.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Deserializes `version` from a string or a number.
fn deserialize_version<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    struct VersionVisitor;

    impl Visitor<'_> for VersionVisitor {
        type Value = Option<String>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a version string or number such as 0.1")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(Some(text.to_owned()))
        }

        fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
            Ok(Some(number.to_string()))
        }

        fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
            Ok(Some(number.to_string()))
        }

        fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
            Ok(Some(number.to_string()))
        }
    }

    deserializer.deserialize_any(VersionVisitor)
}

/// Deserializes an IP socket address, with an error message that shows the
/// expected form.
fn deserialize_socket_addr<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SocketAddr, D::Error> {
    struct SocketAddrVisitor;

    impl Visitor<'_> for SocketAddrVisitor {
        type Value = SocketAddr;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an IP address and port such as 127.0.0.1:5000 or [::]:5000")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<SocketAddr, E> {
            text.parse().map_err(|_| {
                // The Go registry accepts `:5000` for all interfaces, so point
                // its users at the explicit form.
                let hint = if text.starts_with(':') {
                    format!(", or 0.0.0.0{text} for all interfaces")
                } else {
                    String::new()
                };
                E::custom(format!(
                    "invalid socket address {text:?}: expected an IP address and port such as 127.0.0.1:5000 or [::]:5000{hint} (host names are not accepted)"
                ))
            })
        }
    }

    deserializer.deserialize_str(SocketAddrVisitor)
}
