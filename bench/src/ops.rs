//! The operations that the loads repeat: reads, blob pushes, manifest
//! pushes, and the mixed push-and-pull client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http::{Method, StatusCode};

use crate::api;
use crate::client::{Chunks, Connection};
use crate::content::{Blob, BlobFamily, OCI_MANIFEST, image_manifest};
use crate::load::Operation;

/// A GET or HEAD request that must return 200, with a body of
/// `expected_len` bytes when that is given.
#[derive(Debug)]
pub struct Fetch {
    pub method: Method,
    pub path: String,
    /// Sent as `Accept`: the manifest media type for manifest requests,
    /// since distribution 2.8 returns 404 to a client that does not accept
    /// OCI manifests.
    pub accept: Option<&'static str>,
    pub expected_len: Option<u64>,
}

impl Fetch {
    /// Returns a GET of `path`.
    pub fn get(path: String) -> Fetch {
        Fetch {
            method: Method::GET,
            path,
            accept: None,
            expected_len: None,
        }
    }

    /// Returns a request for the manifest `reference` of `repo`.
    pub fn manifest(method: Method, repo: &str, reference: &str) -> Fetch {
        Fetch {
            method,
            path: format!("/v2/{repo}/manifests/{reference}"),
            accept: Some(OCI_MANIFEST),
            expected_len: None,
        }
    }

    /// Returns a GET of `blob` from `repo` that checks its length.
    pub fn blob(repo: &str, blob: &Blob) -> Fetch {
        Fetch {
            method: Method::GET,
            path: format!("/v2/{repo}/blobs/{}", blob.digest),
            accept: None,
            expected_len: Some(blob.len),
        }
    }

    async fn fetch(&self, connection: &mut Connection) -> Result<u64> {
        let accept;
        let headers: &[(&'static str, &str)] = match self.accept {
            Some(media_type) => {
                accept = [("accept", media_type)];
                &accept
            }
            None => &[],
        };
        let reply = connection
            .send(
                self.method.clone(),
                &self.path,
                headers,
                Chunks::empty(),
                false,
            )
            .await?;
        if reply.status != StatusCode::OK {
            bail!("{} {}: status {}", self.method, self.path, reply.status);
        }
        if let Some(expected) = self.expected_len
            && reply.body_len != expected
        {
            bail!(
                "{} {}: {} bytes, expected {expected}",
                self.method,
                self.path,
                reply.body_len
            );
        }
        Ok(reply.body_len)
    }
}

impl Operation for Fetch {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        _client: usize,
    ) -> BoxFuture<'a, Result<u64>> {
        self.fetch(connection).boxed()
    }
}

/// The upload method of a blob push.
#[derive(Debug, Clone, Copy)]
pub enum Upload {
    /// POST, then one PUT with the whole blob.
    Monolithic,
    /// POST, PATCH chunks of this many bytes, then a PUT with no body.
    Chunked(u64),
}

/// Paths of pushed blobs, shared by the clients of one load.
#[derive(Debug, Default)]
pub struct PushedBlobs(Mutex<Vec<String>>);

impl PushedBlobs {
    fn add(&self, repo: &str, blob: &Blob) {
        let path = format!("/v2/{repo}/blobs/{}", blob.digest);
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(path);
    }

    fn paths(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Pushes a new blob of `family` to `repo` on every run.
#[derive(Debug)]
pub struct PushBlob {
    pub repo: String,
    pub family: Arc<BlobFamily>,
    pub upload: Upload,
    pub pushed: PushedBlobs,
}

impl PushBlob {
    async fn push(&self, connection: &mut Connection) -> Result<u64> {
        let blob = self.family.next();
        match self.upload {
            Upload::Monolithic => api::push_blob_monolithic(connection, &self.repo, &blob).await?,
            Upload::Chunked(size) => {
                api::push_blob_chunked(connection, &self.repo, &blob, size).await?
            }
        }
        self.pushed.add(&self.repo, &blob);
        Ok(blob.len)
    }
}

impl Operation for PushBlob {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        _client: usize,
    ) -> BoxFuture<'a, Result<u64>> {
        self.push(connection).boxed()
    }

    fn pushed_blobs(&self) -> Vec<String> {
        self.pushed.paths()
    }
}

/// Pushes the same manifest to `repo` under a new tag on every run, so each
/// run creates a tag.
#[derive(Debug)]
pub struct TagManifest {
    pub repo: String,
    pub manifest: Bytes,
    pub tag_prefix: String,
    pub next_tag: Arc<AtomicU64>,
}

impl TagManifest {
    async fn push(&self, connection: &mut Connection) -> Result<u64> {
        let tag = format!(
            "{}{}",
            self.tag_prefix,
            self.next_tag.fetch_add(1, Ordering::Relaxed)
        );
        api::put_manifest(connection, &self.repo, &tag, &self.manifest).await?;
        Ok(self.manifest.len() as u64)
    }
}

impl Operation for TagManifest {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        _client: usize,
    ) -> BoxFuture<'a, Result<u64>> {
        self.push(connection).boxed()
    }
}

/// A client of the mixed load. Each client cycles through six operations:
/// manifest GET, 1 MiB blob GET, manifest GET, 1 MiB blob GET, a push of a
/// new small blob (POST and PUT), and a push of a new manifest under a new
/// tag. So a third of the operations write.
#[derive(Debug)]
pub struct Mixed {
    pub repo: String,
    pub config: Blob,
    pub layer: Blob,
    pub small_blobs: Arc<BlobFamily>,
    /// Each client's position in the cycle, indexed by client number.
    pub steps: Vec<AtomicU64>,
    /// Source of unique tags and manifest notes, shared by all clients and
    /// rounds.
    pub next_manifest: Arc<AtomicU64>,
    pub pushed: PushedBlobs,
}

impl Mixed {
    async fn step(&self, connection: &mut Connection, client: usize) -> Result<u64> {
        let step = self.steps[client].fetch_add(1, Ordering::Relaxed) % 6;
        match step {
            0 | 2 => {
                Fetch::manifest(Method::GET, &self.repo, "latest")
                    .fetch(connection)
                    .await
            }
            1 | 3 => Fetch::blob(&self.repo, &self.layer).fetch(connection).await,
            4 => {
                let blob = self.small_blobs.next();
                api::push_blob_monolithic(connection, &self.repo, &blob).await?;
                self.pushed.add(&self.repo, &blob);
                Ok(blob.len)
            }
            _ => {
                let number = self.next_manifest.fetch_add(1, Ordering::Relaxed);
                let note = format!("mixed-{number}");
                let manifest = image_manifest(&self.config, &[&self.layer], Some(&note));
                api::put_manifest(connection, &self.repo, &note, &manifest).await?;
                Ok(manifest.len() as u64)
            }
        }
    }
}

impl Operation for Mixed {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        client: usize,
    ) -> BoxFuture<'a, Result<u64>> {
        self.step(connection, client).boxed()
    }

    fn pushed_blobs(&self) -> Vec<String> {
        self.pushed.paths()
    }
}
