//! Direct requests to the registry's HTTP API, for checking what a client
//! tool stored: the manifest bytes and media type, blobs, tags, the catalog
//! and referrers.

use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::{Registry, sha256_digest};

/// The `Accept` header of manifest requests: the four manifest types that
/// the tests push, so the registry serves each under its own media type.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A blocking HTTP client for one registry's API.
///
/// A call panics with the path, the status and the body when the status is
/// not the expected one, so a test reads as a list of checks. Use it only in
/// synchronous tests: the blocking client runs its own runtime, which panics
/// inside another.
#[derive(Debug)]
pub struct Api {
    client: Client,
    /// `http://HOST:PORT`, without a trailing slash.
    base: String,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct ServedManifest {
    /// The `Content-Type` header.
    pub media_type: String,
    /// The `Docker-Content-Digest` header.
    pub digest: String,
    /// The body, which must hash to `digest`.
    pub bytes: Vec<u8>,
    /// The body parsed as JSON.
    pub json: Value,
}

impl Api {
    /// Creates a client for the running process of `registry`. The client
    /// ignores proxy variables such as `HTTP_PROXY`.
    pub fn new(registry: &Registry) -> Api {
        let client = Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_else(|e| panic!("building an HTTP client failed: {e}"));
        Api {
            client,
            base: format!("http://{}", registry.host()),
        }
    }

    /// Fetches the manifest `reference` (a tag or a digest) of `repository`
    /// and checks that its body hashes to its `Docker-Content-Digest`.
    ///
    /// # Panics
    ///
    /// When the status is not 200, a header is missing, the digest does not
    /// match or the body is not JSON.
    pub fn manifest(&self, repository: &str, reference: &str) -> ServedManifest {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = self.get_manifest(&path);
        let (headers, bytes) = read_ok(response, &path);
        let media_type = header(&headers, "content-type", &path);
        let digest = header(&headers, "docker-content-digest", &path);
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "GET {path}: the body does not hash to Docker-Content-Digest"
        );
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("GET {path}: the manifest is not valid JSON: {e}"));
        ServedManifest {
            media_type,
            digest,
            bytes,
            json,
        }
    }

    /// Returns the status of `GET` on the manifest `reference`, for checks
    /// that it is gone (404).
    pub fn manifest_status(&self, repository: &str, reference: &str) -> u16 {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.get_manifest(&path).status().as_u16()
    }

    /// Fetches the blob `digest` of `repository` and checks that its bytes
    /// hash to the digest.
    ///
    /// # Panics
    ///
    /// When the status is not 200 or the bytes do not match.
    pub fn blob(&self, repository: &str, digest: &str) -> Vec<u8> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self.send(self.client.get(self.url(&path)), &path);
        let (_, bytes) = read_ok(response, &path);
        assert_eq!(
            sha256_digest(&bytes),
            digest,
            "GET {path}: the blob does not hash to its digest"
        );
        bytes
    }

    /// Returns the status of `GET` on the blob `digest`.
    pub fn blob_status(&self, repository: &str, digest: &str) -> u16 {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = self.send(self.client.get(self.url(&path)), &path);
        response.status().as_u16()
    }

    /// Returns the tags of `repository` from `GET /v2/<name>/tags/list`, in
    /// the order the registry lists them.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        let path = format!("/v2/{repository}/tags/list");
        let listing = self.get_json(&path);
        strings(&listing["tags"], &path)
    }

    /// Returns the repositories of `GET /v2/_catalog`.
    pub fn catalog(&self) -> Vec<String> {
        let listing = self.get_json("/v2/_catalog");
        strings(&listing["repositories"], "/v2/_catalog")
    }

    /// Fetches `GET /v2/<name>/referrers/<digest>`, with the `artifactType`
    /// query parameter when `artifact_type` is given.
    ///
    /// Returns the image index and the `OCI-Filters-Applied` header, if
    /// any.
    ///
    /// # Panics
    ///
    /// When the status is not 200, the media type is not an OCI image index
    /// or the body is not JSON.
    pub fn referrers(
        &self,
        repository: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> (Value, Option<String>) {
        let path = format!("/v2/{repository}/referrers/{digest}");
        let mut request = self.client.get(self.url(&path));
        if let Some(artifact_type) = artifact_type {
            request = request.query(&[("artifactType", artifact_type)]);
        }
        let response = self.send(request, &path);
        let (headers, bytes) = read_ok(response, &path);
        let media_type = header(&headers, "content-type", &path);
        assert_eq!(
            media_type, "application/vnd.oci.image.index.v1+json",
            "GET {path}: Content-Type"
        );
        let filters = headers
            .get("oci-filters-applied")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let index = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("GET {path}: the referrers index is not JSON: {e}"));
        (index, filters)
    }

    fn get_manifest(&self, path: &str) -> Response {
        let request = self
            .client
            .get(self.url(path))
            .header("accept", MANIFEST_ACCEPT);
        self.send(request, path)
    }

    fn get_json(&self, path: &str) -> Value {
        let response = self.send(self.client.get(self.url(path)), path);
        let (_, bytes) = read_ok(response, path);
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("GET {path}: the body is not valid JSON: {e}"))
    }

    fn send(&self, request: reqwest::blocking::RequestBuilder, path: &str) -> Response {
        request
            .send()
            .unwrap_or_else(|e| panic!("GET {path} on {} failed: {e}", self.base))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Reads the whole body and checks that the status is 200, showing the body
/// otherwise. Returns the headers and the body.
fn read_ok(response: Response, path: &str) -> (HeaderMap, Vec<u8>) {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .bytes()
        .unwrap_or_else(|e| panic!("GET {path}: reading the body failed: {e}"))
        .to_vec();
    assert_eq!(
        status,
        StatusCode::OK,
        "GET {path}: status; body: {}",
        String::from_utf8_lossy(&bytes)
    );
    (headers, bytes)
}

fn header(headers: &HeaderMap, name: &str, path: &str) -> String {
    let value = headers
        .get(name)
        .unwrap_or_else(|| panic!("GET {path}: the response has no {name} header"));
    value
        .to_str()
        .unwrap_or_else(|e| panic!("GET {path}: the {name} header is not text: {e}"))
        .to_owned()
}

fn strings(value: &Value, path: &str) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("GET {path}: expected an array, found {value}"))
        .iter()
        .map(|entry| {
            entry
                .as_str()
                .unwrap_or_else(|| panic!("GET {path}: {entry} is not a string"))
                .to_owned()
        })
        .collect()
}
