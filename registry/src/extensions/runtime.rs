//! The parts of enabled extensions that live beside the request path:
//! setup functions, routes, background tasks and request observers.
//!
//! Startup runs every setup function, builds every router and starts every
//! task, in extension name order. Shutdown fires the tasks' shared
//! `Shutdown` after requests and queued events are done, and waits for the
//! tasks up to a deadline.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use registry_signals::telemetry::Telemetry;
use registry_signals::{
    BoxFuture, ExtensionContext, ExtensionState, ObserverRegistration, RegistryView, RequestRecord,
    Shutdown, ShutdownTrigger, StoredManifest, ViewError,
};
use tokio::task::JoinHandle;

use super::LinkedExtension;
use crate::reference::{Digest, RepoName, Tag};
use crate::storage::{Storage, StorageError};

/// An extension that could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("extension {extension:?} failed to start: {message}")]
    Setup {
        extension: &'static str,
        message: String,
    },
}

/// The request observers of enabled extensions.
#[derive(Clone, Default)]
pub struct Observers(Arc<Vec<(&'static ObserverRegistration, ExtensionState)>>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(o, _)| o.name).collect();
        f.debug_tuple("Observers").field(&names).finish()
    }
}

impl Observers {
    /// Returns whether no observer is registered, so that requests need no
    /// counting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Calls every observer with a completed request. A panic is caught
    /// and logged, because it must not reach the connection.
    pub fn observe(&self, record: &RequestRecord<'_>) {
        for (observer, state) in self.0.iter() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                (observer.observe)(record, state)
            }));
            if let Err(panic) = outcome {
                tracing::error!(
                    observer = observer.name,
                    panic = super::dispatch::panic_message(&panic),
                    "request observer panicked"
                );
            }
        }
    }
}

/// The running parts of the enabled extensions.
#[derive(Debug)]
pub struct ExtensionRuntime {
    /// Routers to merge into the API, by extension name.
    routers: Vec<(&'static str, axum::Router)>,
    observers: Observers,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    trigger: ShutdownTrigger,
}

impl ExtensionRuntime {
    /// Runs the setup functions, builds the routers and starts the tasks of
    /// every enabled extension. Must run inside the tokio runtime.
    ///
    /// # Errors
    ///
    /// The first setup function that fails, with the extension's name.
    pub fn start(
        linked: &[LinkedExtension],
        storage: Arc<dyn Storage>,
        telemetry: Arc<Telemetry>,
        storage_root: &Path,
        instance_id: &str,
    ) -> Result<Self, StartError> {
        let view: Arc<dyn RegistryView> = Arc::new(StorageView(storage));
        let (trigger, shutdown) = Shutdown::channel();
        let mut routers = Vec::new();
        let mut observers = Vec::new();
        let mut tasks = Vec::new();

        let enabled = linked
            .iter()
            .filter_map(|e| e.state.as_ref().map(|state| (e, state)));
        for (extension, state) in enabled {
            let name = extension.name();
            let context = ExtensionContext::new(
                name,
                view.clone(),
                telemetry.clone(),
                storage_root.join("extensions").join(name),
                instance_id,
            );
            for setup in &extension.setups {
                (setup.setup)(state, &context).map_err(|message| StartError::Setup {
                    extension: name,
                    message,
                })?;
            }
            for routes in &extension.routes {
                routers.push((name, (routes.routes)(state, &context)));
            }
            for observer in &extension.observers {
                observers.push((*observer, state.clone()));
            }
            for task in &extension.tasks {
                let future = (task.start)(state, context.clone(), shutdown.clone());
                let span =
                    tracing::info_span!("extension task", extension = name, task = task.name);
                tasks.push((
                    name,
                    tokio::spawn(tracing::Instrument::instrument(future, span)),
                ));
            }
        }

        Ok(Self {
            routers,
            observers: Observers(Arc::new(observers)),
            tasks,
            trigger,
        })
    }

    /// Takes the routers of the extensions, by extension name.
    pub fn take_routers(&mut self) -> Vec<(&'static str, axum::Router)> {
        std::mem::take(&mut self.routers)
    }

    /// Returns the request observers.
    pub fn observers(&self) -> Observers {
        self.observers.clone()
    }

    /// Fires the tasks' shutdown and waits for them up to `timeout` in all.
    /// A task still running then is aborted and logged.
    pub async fn shutdown(self, timeout: Duration) {
        self.trigger.trigger();
        let deadline = tokio::time::Instant::now() + timeout;
        for (extension, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::error!(extension, %error, "extension task failed");
                }
                Err(_) => {
                    task.abort();
                    tracing::warn!(
                        extension,
                        "extension task did not stop within signals.draintimeout; aborted"
                    );
                }
            }
        }
    }
}

/// The read-only view of storage that extensions get.
struct StorageView(Arc<dyn Storage>);

fn view_error(error: impl std::fmt::Display) -> ViewError {
    ViewError(error.to_string())
}

impl RegistryView for StorageView {
    fn repositories(&self) -> BoxFuture<'_, Result<Vec<String>, ViewError>> {
        Box::pin(async move {
            let list = self.0.repositories().await.map_err(view_error)?;
            Ok(list.as_ref().clone())
        })
    }

    fn tags<'a>(&'a self, repository: &'a str) -> BoxFuture<'a, Result<Vec<String>, ViewError>> {
        Box::pin(async move {
            let repo = RepoName::parse(repository).map_err(view_error)?;
            match self.0.tags(&repo).await {
                Ok(list) => Ok(list.as_ref().clone()),
                Err(StorageError::NameUnknown(_)) => Ok(Vec::new()),
                Err(error) => Err(view_error(error)),
            }
        })
    }

    fn manifest<'a>(
        &'a self,
        repository: &'a str,
        reference: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredManifest>, ViewError>> {
        Box::pin(async move {
            let repo = RepoName::parse(repository).map_err(view_error)?;
            let stored = if reference.contains(':') {
                let digest = Digest::parse(reference).map_err(view_error)?;
                self.0.manifest_by_digest(&repo, &digest).await
            } else {
                let tag = Tag::parse(reference).map_err(view_error)?;
                self.0.manifest_by_tag(&repo, &tag).await
            };
            match stored {
                Ok(stored) => Ok(Some(StoredManifest {
                    digest: stored.digest.to_string(),
                    media_type: stored.media_type,
                    bytes: stored.bytes,
                })),
                Err(StorageError::ManifestUnknown(_) | StorageError::NameUnknown(_)) => Ok(None),
                Err(error) => Err(view_error(error)),
            }
        })
    }
}
