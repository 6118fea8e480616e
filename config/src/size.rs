//! [`ByteSize`], a number of bytes written as an integer or with a unit.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A size in bytes.
///
/// The file may give a non-negative integer (`4194304`) or a string with a
/// whole number and one of the units `B`, `KB` (1000), `KiB` (1024), `MB`,
/// `MiB`, `GB` or `GiB`, such as `4MiB` or `64 KiB`. Units are matched
/// without regard to case. A string without a unit is a number of bytes.
/// Fractions, negative numbers and other units are rejected.
///
/// It serializes with the largest binary unit that divides it exactly, such
/// as `4MiB`, or in bytes (`1000B`) when none does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Units with their multipliers, matched without regard to case.
const UNITS: [(&str, u64); 7] = [
    ("b", 1),
    ("kb", 1000),
    ("kib", KIB),
    ("mb", 1000 * 1000),
    ("mib", MIB),
    ("gb", 1000 * 1000 * 1000),
    ("gib", GIB),
];

impl ByteSize {
    /// Returns a size of `count` kibibytes (1024 bytes each).
    pub const fn kib(count: u64) -> Self {
        ByteSize(count * KIB)
    }

    /// Returns a size of `count` mebibytes (1024 KiB each).
    pub const fn mib(count: u64) -> Self {
        ByteSize(count * MIB)
    }

    /// Returns the number of bytes.
    pub const fn as_u64(self) -> u64 {
        self.0
    }
}

/// The reason a size string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {text:?}: {reason} (expected a whole number of bytes, optionally with a unit B, KB, KiB, MB, MiB, GB or GiB, such as 4MiB)"
)]
pub struct ParseByteSizeError {
    text: String,
    reason: &'static str,
}

impl FromStr for ByteSize {
    type Err = ParseByteSizeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| ParseByteSizeError {
            text: text.to_owned(),
            reason,
        };

        let trimmed = text.trim();
        let digits_end = trimmed
            .find(|character: char| !character.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        if digits.is_empty() {
            return Err(fail("it does not start with a whole number"));
        }

        let unit = unit.trim_start();
        let multiplier = if unit.is_empty() {
            1
        } else {
            UNITS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(unit))
                .map(|(_, multiplier)| *multiplier)
                .ok_or_else(|| fail("unknown unit"))?
        };

        let count: u64 = digits
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        count
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| fail("the size is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        for (unit, multiplier) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
            if bytes != 0 && bytes.is_multiple_of(multiplier) {
                return write!(formatter, "{}{unit}", bytes / multiplier);
            }
        }
        write!(formatter, "{bytes}B")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl Visitor<'_> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a size in bytes such as 4194304 or 4MiB")
    }

    fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(bytes))
    }

    fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
        u64::try_from(bytes)
            .map(ByteSize)
            .map_err(|_| E::custom(format!("invalid size `{bytes}`: must not be negative")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
        text.parse().map_err(E::custom)
    }
}

/// Deserializes a [`ByteSize`] that must be greater than zero, for use with
/// `#[serde(deserialize_with)]`.
pub(crate) fn deserialize_nonzero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ByteSize, D::Error> {
    let size = ByteSize::deserialize(deserializer)?;
    if size.0 == 0 {
        return Err(de::Error::custom(
            "invalid size 0: must be greater than zero",
        ));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_strings_parse_with_units() {
        let cases = [
            ("0", 0),
            ("1000", 1000),
            ("12B", 12),
            ("1KB", 1000),
            ("64KiB", 65_536),
            ("64 KiB", 65_536),
            ("4MiB", 4 * 1024 * 1024),
            ("4mib", 4 * 1024 * 1024),
            ("2MB", 2_000_000),
            ("1GB", 1_000_000_000),
            ("3GiB", 3 * 1024 * 1024 * 1024),
        ];
        for (text, bytes) in cases {
            assert_eq!(
                text.parse::<ByteSize>(),
                Ok(ByteSize(bytes)),
                "size {text:?}"
            );
        }
    }

    #[test]
    fn invalid_size_strings_are_rejected() {
        let cases = [
            "",
            "MiB",
            "-5",
            "1.5MiB",
            "4XB",
            "4 M",
            "four",
            "99999999999999999999",
            "20000000000GiB",
        ];
        for text in cases {
            let error = text.parse::<ByteSize>().unwrap_err();
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
    }

    #[test]
    fn size_display_uses_largest_unit() {
        let cases = [
            (0, "0B"),
            (1000, "1000B"),
            (2048, "2KiB"),
            (4 * 1024 * 1024, "4MiB"),
            (1024 * 1024 * 1024, "1GiB"),
            (1536 * 1024, "1536KiB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(ByteSize(bytes).to_string(), text);
            assert_eq!(text.parse::<ByteSize>(), Ok(ByteSize(bytes)));
        }
    }

    #[test]
    fn size_deserializes_from_integer_or_string() {
        let from_integer: ByteSize = serde_yaml::from_str("1024").unwrap();
        let from_string: ByteSize = serde_yaml::from_str("1KiB").unwrap();
        assert_eq!(from_integer, ByteSize(1024));
        assert_eq!(from_string, ByteSize(1024));
    }

    #[test]
    fn negative_size_names_value() {
        let error = serde_yaml::from_str::<ByteSize>("-5").unwrap_err();
        assert!(error.to_string().contains("`-5`"), "{error}");
        assert!(error.to_string().contains("negative"), "{error}");
    }

    #[test]
    fn fractional_and_boolean_sizes_are_rejected() {
        for text in ["1.5", "true", "[1]"] {
            let error = serde_yaml::from_str::<ByteSize>(text).unwrap_err();
            assert!(
                error.to_string().contains("expected a size"),
                "{text}: {error}"
            );
        }
    }
}
