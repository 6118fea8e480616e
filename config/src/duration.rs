//! Serde helpers for [`Duration`] fields written as humantime strings such as
//! `30s`, `5m` or `168h`, for use with `#[serde(with = "crate::duration")]`.

use std::fmt;
use std::time::Duration;

use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};

/// Serializes a duration as a humantime string, such as `30s` or `7days`.
pub(crate) fn serialize<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
}

/// Deserializes a duration from a string with units. A bare number is
/// rejected, because the file would not show whether it means seconds or
/// milliseconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    deserializer.deserialize_str(DurationVisitor)
}

/// Deserializes a duration like [`deserialize`] and rejects zero.
pub(crate) fn deserialize_nonzero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let duration = deserialize(deserializer)?;
    if duration.is_zero() {
        return Err(de::Error::custom(
            "invalid duration 0s: must be greater than zero",
        ));
    }
    Ok(duration)
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a duration with a unit, such as 30s, 5m or 168h")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text).map_err(|error| {
            E::custom(format!(
                "invalid duration {text:?}: {error} (expected a number with a unit, such as 30s, 5m or 168h)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, serde::Serialize)]
    struct Holder {
        #[serde(with = "super")]
        value: Duration,
    }

    fn parse(text: &str) -> Result<Duration, serde_yaml::Error> {
        serde_yaml::from_str::<Holder>(&format!("value: {text}")).map(|holder| holder.value)
    }

    #[test]
    fn duration_strings_parse_with_units() {
        let cases = [
            ("30s", 30),
            ("5m", 300),
            ("168h", 168 * 3600),
            ("1h 30m", 5400),
            ("2days", 2 * 86_400),
        ];
        for (text, seconds) in cases {
            assert_eq!(
                parse(text).unwrap(),
                Duration::from_secs(seconds),
                "duration {text:?}"
            );
        }
    }

    #[test]
    fn bare_number_duration_is_rejected() {
        // Read straight from text, the plain scalar reaches `visit_str`. Read
        // from a parsed `Value`, it is an integer and fails as a wrong type.
        let from_text = parse("30").unwrap_err().to_string();
        let value = serde_yaml::Value::from(30);
        let from_value = deserialize(&value).unwrap_err().to_string();
        assert!(from_text.contains("\"30\""), "{from_text}");
        assert!(from_text.contains("with a unit"), "{from_text}");
        assert!(from_value.contains("integer `30`"), "{from_value}");
        assert!(from_value.contains("with a unit"), "{from_value}");
    }

    #[test]
    fn unknown_duration_unit_names_value() {
        let error = parse("5x").unwrap_err().to_string();
        assert!(error.contains("\"5x\""), "{error}");
    }

    #[test]
    fn duration_serializes_as_humantime() {
        let yaml = serde_yaml::to_string(&Holder {
            value: Duration::from_secs(90),
        })
        .unwrap();
        assert_eq!(yaml, "value: 1m 30s\n");
    }
}
