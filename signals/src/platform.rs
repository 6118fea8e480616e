//! The registry's side of routes, tasks and setup functions: a read-only
//! view of the stored content, the shared telemetry, a private data folder,
//! and the shutdown signal.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::telemetry::Telemetry;

/// A boxed future that may be sent between threads.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A manifest as stored, read through [`RegistryView`].
#[derive(Debug, Clone)]
pub struct StoredManifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A failed read through [`RegistryView`]: a storage error or an invalid
/// name or reference, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewError(pub String);

impl fmt::Display for ViewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ViewError {}

/// Read-only access to the registry's content, implemented by the registry.
pub trait RegistryView: Send + Sync {
    /// Returns every repository name, sorted.
    fn repositories(&self) -> BoxFuture<'_, Result<Vec<String>, ViewError>>;

    /// Returns the tags of a repository, sorted; empty when it does not
    /// exist.
    fn tags<'a>(&'a self, repository: &'a str) -> BoxFuture<'a, Result<Vec<String>, ViewError>>;

    /// Returns a manifest by tag or digest, or `None` when it is not stored.
    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredManifest>, ViewError>>;
}

/// The registry as an extension's routes, tasks and setup see it.
#[derive(Clone)]
pub struct ExtensionContext {
    name: &'static str,
    registry: Arc<dyn RegistryView>,
    telemetry: Arc<Telemetry>,
    data_dir: PathBuf,
    instance_id: Arc<str>,
}

impl fmt::Debug for ExtensionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtensionContext")
            .field("name", &self.name)
            .field("data_dir", &self.data_dir)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl ExtensionContext {
    /// Builds the context of extension `name`. The registry calls this; a
    /// test of an extension may call it with its own view.
    pub fn new(
        name: &'static str,
        registry: Arc<dyn RegistryView>,
        telemetry: Arc<Telemetry>,
        data_dir: PathBuf,
        instance_id: &str,
    ) -> Self {
        Self {
            name,
            registry,
            telemetry,
            data_dir,
            instance_id: Arc::from(instance_id),
        }
    }

    /// Returns the extension's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Returns the read-only view of the stored content.
    pub fn registry(&self) -> &Arc<dyn RegistryView> {
        &self.registry
    }

    /// Returns the telemetry that every extension and the registry publish
    /// their metrics to.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Returns the folder that belongs to this extension alone:
    /// `extensions/<name>` under the storage root. It may not exist yet.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Returns the id of the registry process, new at every start.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }
}

/// The end of a task's life: triggered once when the registry shuts down,
/// after requests in flight and queued events have been handled.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

/// The registry's end of a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(tokio::sync::watch::Sender<bool>);

impl Shutdown {
    /// Creates a shutdown signal and the trigger that fires it.
    pub fn channel() -> (ShutdownTrigger, Shutdown) {
        let (sender, receiver) = tokio::sync::watch::channel(false);
        (ShutdownTrigger(sender), Shutdown(receiver))
    }

    /// Returns whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until shutdown begins. Returns at once when it has.
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped, which also ends the task.
        let _ = self.0.wait_for(|triggered| *triggered).await;
    }

    /// Sleeps for `duration` and returns `true`, or returns `false` as soon
    /// as shutdown begins.
    pub async fn sleep(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.wait() => false,
        }
    }
}

impl ShutdownTrigger {
    /// Begins shutdown for every [`Shutdown`] of this channel.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// One completed HTTP request, as request observers see it: once its
/// response body has been sent or abandoned, or at the response head for a
/// small body of known length.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    /// The route's name: `base`, `catalog`, `tags`, `referrers`, `manifest`,
    /// `blob`, `blob_upload` (the POST that starts an upload),
    /// `blob_upload_session`, `extension` or `unknown`.
    pub route: &'static str,
    pub method: &'a str,
    pub status: u16,
    /// From the first byte of the request to the end of the response body,
    /// or to the response head for a body of known length up to 64 KiB,
    /// which goes out with the head.
    pub duration: Duration,
    /// Bytes of request body read.
    pub bytes_in: u64,
    /// Bytes of response body sent, or the length of a body of known
    /// length up to 64 KiB.
    pub bytes_out: u64,
}
