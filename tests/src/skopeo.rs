//! skopeo, which copies images between OCI layouts and registries.

use tempfile::TempDir;

use crate::command::{SKOPEO, run_tool};

/// skopeo pointed at a registry on loopback, over plain HTTP.
///
/// Every call passes `--insecure-policy`, so no signature policy file
/// (`/etc/containers/policy.json`) is needed, and turns TLS verification off
/// for `docker://` references. skopeo then falls back to plain HTTP when the
/// TLS handshake fails (seen with skopeo 1.9.3, Debian bookworm's).
#[derive(Debug)]
pub struct Skopeo {
    /// A private `TMPDIR` for skopeo's temporary copies of blobs, removed
    /// on drop.
    temp: TempDir,
}

impl Default for Skopeo {
    fn default() -> Self {
        Self::new()
    }
}

impl Skopeo {
    /// Creates the wrapper and its temporary directory.
    pub fn new() -> Skopeo {
        let temp = tempfile::Builder::new()
            .prefix("registry-e2e-skopeo-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temporary directory failed: {e}"));
        Skopeo { temp }
    }

    /// Copies an image with `skopeo copy --preserve-digests`, so that the
    /// copy fails instead of rewriting a manifest. `extra` comes before the
    /// two references, for flags such as `--all`.
    pub fn copy(&self, source: &str, destination: &str, extra: &[&str]) {
        let mut args = vec![
            "copy",
            "--preserve-digests",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ];
        args.extend_from_slice(extra);
        args.push(source);
        args.push(destination);
        self.run(&args);
    }

    /// Returns the manifest bytes that `skopeo inspect --raw` fetches.
    pub fn inspect_raw(&self, reference: &str) -> Vec<u8> {
        self.run(&["inspect", "--raw", "--tls-verify=false", reference])
    }

    /// Returns the JSON of `skopeo inspect`.
    pub fn inspect(&self, reference: &str) -> serde_json::Value {
        let stdout = self.run(&["inspect", "--tls-verify=false", reference]);
        parse_json(&stdout, "skopeo inspect")
    }

    /// Returns the tags that `skopeo list-tags` lists for `repository`, a
    /// `docker://` reference without a tag.
    pub fn list_tags(&self, repository: &str) -> Vec<String> {
        let stdout = self.run(&["list-tags", "--tls-verify=false", repository]);
        let listing = parse_json(&stdout, "skopeo list-tags");
        let tags = listing["Tags"]
            .as_array()
            .unwrap_or_else(|| panic!("skopeo list-tags returned no Tags array: {listing}"));
        tags.iter()
            .map(|tag| tag.as_str().expect("a tag is a string").to_owned())
            .collect()
    }

    fn run(&self, args: &[&str]) -> Vec<u8> {
        let mut command = SKOPEO.command();
        command
            .arg("--insecure-policy")
            .args(args)
            .env("TMPDIR", self.temp.path());
        run_tool(&mut command, Some(SKOPEO))
    }
}

fn parse_json(bytes: &[u8], source: &str) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| {
        panic!(
            "{source} returned invalid JSON ({e}): {}",
            String::from_utf8_lossy(bytes)
        )
    })
}
