//! A registry over `FsStorage` in a temporary folder, driven through its
//! router with `oneshot`, and helpers that push blobs and manifests.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use registry::api::{self, ApiSettings, AppState};
use registry::extensions::Dispatcher;
use registry::storage::FsStorage;
use serde_json::{Value, json};
use sha2::Digest as _;
use tempfile::TempDir;
use tower::ServiceExt;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Returns the settings that every test starts from, with deletes on, a
/// 4 MiB manifest limit and more upload slots than any test uses at once.
pub fn settings() -> ApiSettings {
    ApiSettings {
        delete_enabled: true,
        manifest_max_bytes: 4 * 1024 * 1024,
        idle_timeout: Duration::from_secs(30),
        max_uploads: 16,
        access_log: false,
        request_timeout: Duration::from_secs(60),
    }
}

/// A registry whose storage root lives in its own temporary folder.
#[derive(Debug)]
pub struct Registry {
    pub app: Router,
    /// The temporary folder that contains the storage root; removed on drop.
    dir: TempDir,
    root: PathBuf,
    settings: ApiSettings,
}

impl Registry {
    /// Opens a registry with the default test settings.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// Opens a registry with settings changed by `configure`.
    pub fn with(configure: impl FnOnce(&mut ApiSettings)) -> Self {
        let dir = TempDir::new().expect("temporary folder");
        let root = dir.path().join("root");
        let mut settings = settings();
        configure(&mut settings);
        Self::open(dir, root, settings)
    }

    /// Opens a registry whose storage root is `root`, somewhere inside
    /// `dir`.
    pub fn open(dir: TempDir, root: PathBuf, settings: ApiSettings) -> Self {
        let storage = FsStorage::open(&root).expect("storage opens");
        let dispatcher = Arc::new(Dispatcher::empty());
        let state = AppState::new(Arc::new(storage), settings.clone(), dispatcher);
        Self {
            app: api::router(state),
            dir,
            root,
            settings,
        }
    }

    /// Drops the router and its storage, as a process exit would, and opens
    /// new ones over the same folder.
    pub fn reopen(self) -> Self {
        let Self {
            app,
            dir,
            root,
            settings,
        } = self;
        drop(app);
        Self::open(dir, root, settings)
    }

    /// Returns the storage root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns the temporary folder that contains the storage root.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Sends a request through the router and collects the whole response.
    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        Reply::collect(response).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(request(Method::GET, uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn head(&self, uri: &str) -> Reply {
        self.send(request(Method::HEAD, uri).body(Body::empty()).unwrap())
            .await
    }

    pub async fn delete(&self, uri: &str) -> Reply {
        self.send(request(Method::DELETE, uri).body(Body::empty()).unwrap())
            .await
    }

    /// Sends a request with a body and a Content-Length that matches it.
    pub async fn send_bytes(&self, method: Method, uri: &str, bytes: &[u8]) -> Reply {
        let request = request(method, uri)
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.send(request).await
    }

    /// Opens an upload session in `repo` and returns its Location.
    pub async fn start_upload(&self, repo: &str) -> String {
        let reply = self
            .send_bytes(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), b"")
            .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
        reply.header("location").expect("Location").to_owned()
    }

    /// Stores a blob in `repo` with a monolithic POST and returns its sha256
    /// digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let reply = self.send_bytes(Method::POST, &uri, bytes).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        digest
    }

    /// PUTs a manifest under `reference` with `content_type`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Reply {
        let request = request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(Body::from(bytes.to_vec()))
            .unwrap();
        self.send(request).await
    }

    /// Pushes the config and one layer of an image, both derived from
    /// `seed`, and returns an OCI image manifest that references them.
    pub async fn push_image_blobs(&self, repo: &str, seed: &str) -> Vec<u8> {
        let config = format!("{{\"seed\":\"{seed}\"}}");
        let layer = format!("layer of {seed}");
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let layer_digest = self.push_blob(repo, layer.as_bytes()).await;
        image_manifest(
            OCI_MANIFEST,
            descriptor(OCI_CONFIG, &config_digest, config.len()),
            &[descriptor(OCI_LAYER, &layer_digest, layer.len())],
        )
    }

    /// Pushes an OCI image under `reference` and returns its manifest's
    /// digest and bytes.
    pub async fn push_image(&self, repo: &str, reference: &str, seed: &str) -> (String, Vec<u8>) {
        let manifest = self.push_image_blobs(repo, seed).await;
        let reply = self
            .put_manifest(repo, reference, OCI_MANIFEST, &manifest)
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        (sha256(&manifest), manifest)
    }

    /// Returns the content files under `blobs/`.
    pub fn blob_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        walk(&self.root.join("blobs"), &mut |path| {
            if path.is_file() {
                files.push(path.to_owned());
            }
        });
        files
    }
}

/// A collected response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads the whole body of `response`.
    pub async fn collect(response: axum::response::Response) -> Self {
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Self {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Returns a header as text, or `None` when it is absent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|value| value.to_str().expect("visible ASCII header"))
    }

    /// Returns every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|value| value.to_str().expect("visible ASCII header"))
            .collect()
    }

    /// Parses the body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// Returns the `code` of the first entry of an OCI error body.
    pub fn error_code(&self) -> String {
        let body = self.json();
        body["errors"][0]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no OCI error code in {body}"))
            .to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Starts a request builder.
pub fn request(method: Method, uri: &str) -> axum::http::request::Builder {
    Request::builder().method(method).uri(uri)
}

/// Appends a query to a Location that may already carry one.
pub fn with_query(location: &str, query: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}{query}")
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(bytes)))
}

pub fn descriptor(media_type: &str, digest: &str, size: usize) -> Value {
    json!({ "mediaType": media_type, "digest": digest, "size": size })
}

/// Builds an image manifest, pretty-printed so that a registry that
/// re-serialized it would serve other bytes.
pub fn image_manifest(media_type: &str, config: Value, layers: &[Value]) -> Vec<u8> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": layers,
    });
    serde_json::to_vec_pretty(&manifest).unwrap()
}

/// Builds an index or manifest list of `manifests`.
pub fn index_manifest(media_type: &str, manifests: &[Value]) -> Vec<u8> {
    let index = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    });
    serde_json::to_vec_pretty(&index).unwrap()
}

/// Calls `visit` for every path under `dir`, depth first.
pub fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("directory entry").path();
        visit(&path);
        if path.is_dir() {
            walk(&path, visit);
        }
    }
}

/// Lists the paths under `dir` that are not inside `root`.
pub fn paths_outside(dir: &Path, root: &Path) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    walk(dir, &mut |path| {
        if !path.starts_with(root) {
            paths.insert(path.to_owned());
        }
    });
    paths
}
