//! The content pushed to every server before the loads, through the HTTP
//! API, so that each server stores it in its own way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::api;
use crate::client::Connection;
use crate::content::{Blob, BlobFamily, MIB, config_blob, image_manifest, random_bytes};

/// The repository with the blobs and the manifest that the read loads fetch.
pub const BASE_REPO: &str = "bench/base";
/// The repository that the blob push loads push to.
pub const PUSH_REPO: &str = "bench/push";
/// The repository of the mixed load.
pub const MIXED_REPO: &str = "bench/mixed";
/// The repositories whose tags list is measured, with the smaller and the
/// larger number of tags.
pub const TAGS_SMALL_REPO: &str = "bench/tags-small";
pub const TAGS_LARGE_REPO: &str = "bench/tags-large";

/// Repositories that exist besides those seeded for the catalog, so the
/// catalog seeding adds that many fewer.
pub const FIXED_REPOS: usize = 5;

/// Concurrent connections that seed tags and repositories.
const SEED_CLIENTS: usize = 32;

/// Blobs and manifests shared by all servers.
#[derive(Debug)]
pub struct Content {
    pub config: Blob,
    pub layer_1m: Blob,
    pub layer_64m: Blob,
    /// Config, 1 MiB layer and 64 MiB layer: `latest` in the base repository.
    pub base_manifest: Bytes,
    /// Config and 1 MiB layer: `latest` in the mixed repository.
    pub mixed_manifest: Bytes,
    /// Config only: each tag of the tags repositories and `v1` of each
    /// catalog repository.
    pub small_manifest: Bytes,
    /// New 64 MiB blobs for the push loads.
    pub push_blobs: Arc<BlobFamily>,
    /// New 256 KiB blobs for the pushes of the mixed load.
    pub small_blobs: Arc<BlobFamily>,
    /// The number of the next tag that a manifest PUT creates. Every round
    /// and every server continues it, so that each PUT stores a new tag
    /// instead of repeating one that an earlier round stored.
    pub next_tag: Arc<AtomicU64>,
}

impl Content {
    /// Generates the content; takes about a second for the 64 MiB blobs.
    pub fn generate() -> Content {
        let config = config_blob(1);
        let layer_1m = Blob::new(random_bytes(MIB, 2));
        let layer_64m = Blob::new(random_bytes(64 * MIB, 3));
        Content {
            base_manifest: image_manifest(&config, &[&layer_1m, &layer_64m], None),
            mixed_manifest: image_manifest(&config, &[&layer_1m], None),
            small_manifest: image_manifest(&config, &[], None),
            config,
            layer_1m,
            layer_64m,
            push_blobs: Arc::new(BlobFamily::new(64 * MIB, 4)),
            small_blobs: Arc::new(BlobFamily::new(256 * 1024, 5)),
            next_tag: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Pushes the fixed repositories (base, push, mixed, and the two tags
/// repositories with one tag each) to the server at `addr`.
///
/// # Errors
///
/// Fails on the first request that fails.
pub async fn seed_fixed(addr: SocketAddr, content: &Content) -> Result<()> {
    let mut connection = Connection::new(addr);
    for blob in [&content.config, &content.layer_1m, &content.layer_64m] {
        api::push_blob_monolithic(&mut connection, BASE_REPO, blob)
            .await
            .with_context(|| format!("failed to push blob {} to {BASE_REPO}", blob.digest))?;
    }
    api::put_manifest(&mut connection, BASE_REPO, "latest", &content.base_manifest).await?;

    api::mount_or_push(&mut connection, MIXED_REPO, BASE_REPO, &content.config).await?;
    api::mount_or_push(&mut connection, MIXED_REPO, BASE_REPO, &content.layer_1m).await?;
    api::put_manifest(
        &mut connection,
        MIXED_REPO,
        "latest",
        &content.mixed_manifest,
    )
    .await?;

    for repo in [PUSH_REPO, TAGS_SMALL_REPO, TAGS_LARGE_REPO] {
        api::mount_or_push(&mut connection, repo, BASE_REPO, &content.config).await?;
        api::put_manifest(&mut connection, repo, "latest", &content.small_manifest).await?;
    }
    Ok(())
}

/// Pushes the small manifest to `repo` under tags `t00000` up to
/// `t<count - 1>`, from 32 connections. Together with `latest` the
/// repository then has `count + 1` tags.
///
/// # Errors
///
/// Fails on the first request that fails.
pub async fn seed_tags(
    addr: SocketAddr,
    repo: &str,
    count: usize,
    content: &Content,
) -> Result<()> {
    let step = SeedTag {
        repo: repo.to_owned(),
        manifest: content.small_manifest.clone(),
    };
    run_parallel(addr, 0..count, Arc::new(step))
        .await
        .with_context(|| format!("failed to seed {count} tags in {repo}"))
}

/// Creates the catalog repositories `bench/catalog-<i>` for `i` in `range`,
/// each with the config blob (mounted from the base repository where the
/// server can) and the small manifest as `v1`, from 32 connections.
///
/// # Errors
///
/// Fails on the first request that fails.
pub async fn seed_repositories(
    addr: SocketAddr,
    range: std::ops::Range<usize>,
    content: &Content,
) -> Result<()> {
    let step = SeedRepository {
        config: content.config.clone(),
        manifest: content.small_manifest.clone(),
    };
    run_parallel(addr, range.clone(), Arc::new(step))
        .await
        .with_context(|| format!("failed to seed repositories {range:?}"))
}

/// One seeding request sequence, for one index.
trait SeedStep: Send + Sync + 'static {
    fn run<'a>(&'a self, connection: &'a mut Connection, index: usize)
    -> BoxFuture<'a, Result<()>>;
}

struct SeedTag {
    repo: String,
    manifest: Bytes,
}

impl SeedStep for SeedTag {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        index: usize,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let tag = format!("t{index:05}");
            api::put_manifest(connection, &self.repo, &tag, &self.manifest).await
        }
        .boxed()
    }
}

struct SeedRepository {
    config: Blob,
    manifest: Bytes,
}

impl SeedStep for SeedRepository {
    fn run<'a>(
        &'a self,
        connection: &'a mut Connection,
        index: usize,
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let repo = format!("bench/catalog-{index:05}");
            api::mount_or_push(connection, &repo, BASE_REPO, &self.config).await?;
            api::put_manifest(connection, &repo, "v1", &self.manifest).await
        }
        .boxed()
    }
}

/// Runs `step` once for each index of `range`, from 32 connections that
/// take the next index until none is left.
async fn run_parallel(
    addr: SocketAddr,
    range: std::ops::Range<usize>,
    step: Arc<dyn SeedStep>,
) -> Result<()> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let workers: Vec<_> = (0..SEED_CLIENTS)
        .map(|_| {
            let next = next.clone();
            let step = step.clone();
            let end = range.end;
            tokio::spawn(async move {
                let mut connection = Connection::new(addr);
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= end {
                        return Ok(());
                    }
                    if let Err(error) = step.run(&mut connection, index).await {
                        // Stops the other workers after their current index.
                        next.store(end, Ordering::Relaxed);
                        return Err(error.context(format!("index {index}")));
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.context("a seeding task panicked")??;
    }
    Ok(())
}
