//! Repository names, tags and digests, checked against the grammar of the
//! OCI Distribution Specification.
//!
//! Every value that reaches storage passes through one of these types, and
//! the grammar is what keeps a request from naming a path outside the
//! storage root: no accepted name, tag or digest contains `..`, a leading
//! `/`, a backslash or a component that starts with `_` or `.`.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// Maximum length of a repository name. Many clients limit the whole reference
/// (host, `/` and name) to 255 characters, so longer names could not be
/// pulled by them anyway.
pub const MAX_NAME_LEN: usize = 255;

/// Maximum length of a tag, as the tag grammar `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
/// allows.
pub const MAX_TAG_LEN: usize = 128;

/// A repository name such as `library/alpine`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoName(String);

/// A tag such as `latest` or `v1.2.3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag(String);

/// The digest algorithms the registry verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

/// A content digest: an algorithm and the lowercase hex of the hash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The reference of a manifest request: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

/// The reason a name, tag or digest was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error(
        "invalid repository name {0:?}: each path component must match \
         [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)* and the whole name must be at most 255 characters"
    )]
    InvalidName(String),
    #[error("invalid tag {0:?}: a tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}")]
    InvalidTag(String),
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits> or sha512:<128 hex digits>")]
    InvalidDigest(String),
    #[error("unsupported digest algorithm {0:?}: only sha256 and sha512 are supported")]
    UnsupportedAlgorithm(String),
}

impl RepoName {
    /// Parses a repository name.
    ///
    /// # Errors
    ///
    /// `InvalidName` when a component breaks the grammar, a component is
    /// empty (`a//b`, a leading or trailing `/`), or the name is too long.
    pub fn parse(name: &str) -> Result<Self, ReferenceError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name.split('/').all(is_name_component);
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(ReferenceError::InvalidName(shorten(name)))
        }
    }

    /// Returns the name as it appears in URLs.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Maximum length of a rejected value that error messages repeat.
const MAX_ECHO: usize = 200;

/// Cuts a rejected value for an error message, so that a huge value does
/// not come back whole in the response.
fn shorten(text: &str) -> String {
    if text.len() <= MAX_ECHO {
        return text.to_owned();
    }
    let mut end = MAX_ECHO;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Checks one component against `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_name_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;

    // The component is runs of [a-z0-9] joined by one separator each.
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }

        let separator_start = i;
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        debug_assert!(i > separator_start);
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Tag {
    /// Parses a tag.
    ///
    /// # Errors
    ///
    /// `InvalidTag` when the tag breaks `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    pub fn parse(tag: &str) -> Result<Self, ReferenceError> {
        let bytes = tag.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_');
        let rest_ok = bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && bytes.len() <= MAX_TAG_LEN {
            Ok(Self(tag.to_owned()))
        } else {
            Err(ReferenceError::InvalidTag(shorten(tag)))
        }
    }

    /// Returns the tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Algorithm {
    /// Parses an algorithm name as it appears before the `:` of a digest.
    ///
    /// # Errors
    ///
    /// `UnsupportedAlgorithm` for any name other than `sha256` and `sha512`.
    pub fn parse(name: &str) -> Result<Self, ReferenceError> {
        match name {
            "sha256" => Ok(Self::Sha256),
            "sha512" => Ok(Self::Sha512),
            other => Err(ReferenceError::UnsupportedAlgorithm(shorten(other))),
        }
    }

    /// Returns the name used in digests and storage paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }

    /// Starts an incremental hash with this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Self::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

impl Digest {
    /// Parses `algorithm:hex`.
    ///
    /// # Errors
    ///
    /// `UnsupportedAlgorithm` for an algorithm other than sha256 and sha512;
    /// `InvalidDigest` when the form is wrong or the hex has the wrong length
    /// or uppercase or non-hex characters.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let invalid = || ReferenceError::InvalidDigest(shorten(text));
        let (algorithm, hex) = text.split_once(':').ok_or_else(invalid)?;

        // The OCI descriptor grammar allows other algorithm names; they are
        // well formed but not ones this registry can verify.
        let well_formed_algorithm = !algorithm.is_empty()
            && algorithm
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b));
        if !well_formed_algorithm {
            return Err(invalid());
        }
        let algorithm = Algorithm::parse(algorithm)?;

        let hex_ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(invalid());
        }
        Ok(Self {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Computes the digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Self {
        let mut hasher = algorithm.hasher();
        hasher.update(bytes);
        hasher.finish()
    }

    /// Returns the algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Returns the lowercase hex of the hash.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Reference {
    /// Parses the `<reference>` of a manifest URL: a digest when it contains
    /// `:`, a tag otherwise.
    ///
    /// # Errors
    ///
    /// The error of `Digest::parse` or `Tag::parse`.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.contains(':') {
            Digest::parse(text).map(Self::Digest)
        } else {
            Tag::parse(text).map(Self::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tag(tag) => tag.fmt(f),
            Self::Digest(digest) => digest.fmt(f),
        }
    }
}

/// An incremental hash for either supported algorithm.
#[derive(Debug, Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Feeds more bytes into the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(hasher) => hasher.update(bytes),
            Self::Sha512(hasher) => hasher.update(bytes),
        }
    }

    /// Finishes the hash and returns the digest.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Self::Sha256(hasher) => (Algorithm::Sha256, hex::encode(hasher.finalize())),
            Self::Sha512(hasher) => (Algorithm::Sha512, hex::encode(hasher.finalize())),
        };
        Digest { algorithm, hex }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_grammar() {
        let valid = [
            "a",
            "library/alpine",
            "a.b_c__d---e/f0",
            "conformance/repo1",
            "0/1/2/3",
        ];
        for name in valid {
            assert!(RepoName::parse(name).is_ok(), "{name} should be valid");
        }
        let invalid = [
            "",
            "A",
            "a/",
            "/a",
            "a//b",
            "..",
            "a/../b",
            "a/./b",
            "_a",
            "a_",
            "a___b",
            "a..b",
            "a.-b",
            "a\\b",
            "a b",
            "a/_manifests",
            "a%2fb",
        ];
        for name in invalid {
            assert!(RepoName::parse(name).is_err(), "{name} should be invalid");
        }
    }

    #[test]
    fn name_length_is_limited() {
        let longest = "a".repeat(MAX_NAME_LEN);
        assert!(RepoName::parse(&longest).is_ok());
        assert!(RepoName::parse(&format!("{longest}a")).is_err());
    }

    #[test]
    fn long_rejected_values_are_shortened() {
        let long = "A".repeat(10_000);
        let message = RepoName::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 500, "message has {} bytes", message.len());
    }

    #[test]
    fn tags_follow_the_grammar() {
        for tag in ["latest", "v1.2.3", "_x", "A-b_c.d", &"a".repeat(128)] {
            assert!(Tag::parse(tag).is_ok(), "{tag} should be valid");
        }
        for tag in ["", ".", "..", "-a", ".a", "a/b", "a:b", &"a".repeat(129)] {
            assert!(Tag::parse(tag).is_err(), "{tag} should be invalid");
        }
    }

    #[test]
    fn digests_parse_and_print() {
        let text = format!("sha256:{}", "a".repeat(64));
        let digest = Digest::parse(&text).unwrap();
        assert_eq!(digest.algorithm(), Algorithm::Sha256);
        assert_eq!(digest.to_string(), text);

        let text = format!("sha512:{}", "0".repeat(128));
        assert_eq!(Digest::parse(&text).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn malformed_digests_are_rejected() {
        let cases = [
            "sha256",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("sha512:{}", "a".repeat(64)),
            &format!("SHA256:{}", "a".repeat(64)),
            &format!("sha256:../{}", "a".repeat(61)),
        ];
        for text in cases {
            assert!(
                matches!(Digest::parse(text), Err(ReferenceError::InvalidDigest(_))),
                "{text} should be invalid"
            );
        }
    }

    #[test]
    fn other_algorithms_are_unsupported() {
        assert_eq!(
            Digest::parse("md5:abc"),
            Err(ReferenceError::UnsupportedAlgorithm("md5".into()))
        );
    }

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            Digest::of(Algorithm::Sha256, b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reference_chooses_tag_or_digest() {
        assert!(matches!(Reference::parse("latest"), Ok(Reference::Tag(_))));
        let digest = format!("sha256:{}", "b".repeat(64));
        assert!(matches!(
            Reference::parse(&digest),
            Ok(Reference::Digest(_))
        ));
        assert!(Reference::parse("sha256:zz").is_err());
    }
}
