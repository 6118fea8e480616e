//! The task that keeps the index current: it builds the index from storage
//! at startup, then applies the updates that the receivers send, and
//! rebuilds it at `rebuildinterval`.
//!
//! Updates queue from the moment the configuration is loaded, before the
//! first build starts, and are applied in order after it. Each update sets
//! the index to the state after its change, so applying one that the build
//! already saw changes nothing, and the index ends up as storage is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_signals::{ExtensionContext, RegistryView, Shutdown, ViewError};
use tokio::sync::mpsc;

use crate::config::SearchConfig;
use crate::description::manifest_description;
use crate::index::Index;
use crate::state::{SearchState, Update};

/// The first wait before another try when listing the repositories fails.
/// It doubles with each failure, up to [`MAX_RETRY_DELAY`].
const FIRST_RETRY_DELAY: Duration = Duration::from_secs(1);

const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// Runs [`maintain_index`] on a thread of its own with its own runtime,
/// and returns when it ends. The index's many small, long-lived allocations
/// then come from that thread's memory arena. Built on the registry's
/// runtime threads, they slowed down the allocations of every request: the
/// manifest GET rate fell to 0.92 times that of a build without extensions,
/// with an index of 10,000 repositories.
pub async fn maintain_index_apart(
    config: Arc<SearchConfig>,
    context: ExtensionContext,
    shutdown: Shutdown,
) {
    let (finished, done) = tokio::sync::oneshot::channel();
    let thread_config = config.clone();
    let spawned = std::thread::Builder::new()
        .name("search-index".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => {
                    runtime.block_on(maintain_index(thread_config, context, shutdown));
                    let _ = finished.send(Ok(()));
                }
                Err(error) => {
                    let _ = finished.send(Err(format!(
                        "cannot start the index thread's runtime: {error}"
                    )));
                }
            }
        });
    let outcome = match spawned {
        Ok(_) => match done.await {
            Ok(outcome) => outcome,
            // The sender was dropped without a send: the task panicked.
            Err(_) => Err("the index task panicked".to_owned()),
        },
        Err(error) => Err(format!("cannot start the index thread: {error}")),
    };
    if let Err(error) = outcome {
        tracing::error!(
            target: "registry_ext_search",
            %error,
            "search: the index is not maintained; searches answer 503 until it is built"
        );
        // Nothing applies updates now, so receivers stop queuing them:
        // their sends fail and are counted as dropped.
        drop(config.state.take_updates());
    }
}

/// Builds the index at startup and keeps it current until shutdown.
pub async fn maintain_index(
    config: Arc<SearchConfig>,
    context: ExtensionContext,
    mut shutdown: Shutdown,
) {
    let state = &config.state;
    let Some(mut updates) = state.take_updates() else {
        tracing::error!(
            target: "registry_ext_search",
            "search: the index task started twice; the second one stops"
        );
        return;
    };
    let view = context.registry().as_ref();

    // The first build, retried until it succeeds or shutdown begins.
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        tokio::select! {
            built = rebuild(state, view) => {
                if built {
                    break;
                }
            }
            () = shutdown.wait() => return,
        }
        tracing::warn!(
            target: "registry_ext_search",
            retry_in = ?delay,
            "search: index build failed; searches wait until a retry succeeds"
        );
        if !shutdown.sleep(delay).await {
            return;
        }
        delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
    state.mark_ready();

    let rebuild_interval = config.rebuild_interval;
    let mut next_rebuild = tokio::time::Instant::now() + rebuild_interval;
    loop {
        let rebuild_due = async {
            if rebuild_interval.is_zero() {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep_until(next_rebuild).await;
        };
        tokio::select! {
            update = updates.recv() => match update {
                Some(update) => apply(state, view, update).await,
                // The state owns a sender, so the channel stays open.
                None => return,
            },
            () = rebuild_due => {
                rebuild(state, view).await;
                next_rebuild = tokio::time::Instant::now() + rebuild_interval;
            }
            () = shutdown.wait() => break,
        }
    }
    drain(state, &mut updates);
}

/// Builds a new index from storage and puts it in place of the current one,
/// keeping the order of pushes that the current one recorded. Returns
/// whether the build succeeded. A failure is logged and counted, and the
/// current index stays.
async fn rebuild(state: &SearchState, view: &dyn RegistryView) -> bool {
    let started = Instant::now();
    match build_index(view).await {
        Ok(mut index) => {
            let mut current = state.write_index();
            index.keep_recency_of(&current);
            *current = index;
            state.count_build(true);
            tracing::info!(
                target: "registry_ext_search",
                repositories = current.len(),
                elapsed = ?started.elapsed(),
                "search: index built from storage"
            );
            true
        }
        Err(error) => {
            state.count_build(false);
            tracing::error!(
                target: "registry_ext_search",
                %error,
                "search: listing repositories for the index failed"
            );
            false
        }
    }
}

/// Reads every repository, its tags and the description of each tag's
/// manifest through `view`.
///
/// NOTE: storage keeps no push time, so tags count as pushed in the order
/// listed (name order), and after a restart the description comes from
/// the tag that sorts last among those with one.
///
/// # Errors
///
/// When the repositories cannot be listed. A repository whose tags or
/// manifests cannot be read is indexed with what could be read, and the
/// failure is logged.
pub async fn build_index(view: &dyn RegistryView) -> Result<Index, ViewError> {
    let mut index = Index::default();
    // Manifests by digest, because tags of several repositories often point
    // at the same one.
    let mut descriptions: HashMap<String, Option<String>> = HashMap::new();

    for repository in view.repositories().await? {
        index.add_repository(&repository);
        let tags = match view.tags(&repository).await {
            Ok(tags) => tags,
            Err(error) => {
                tracing::warn!(
                    target: "registry_ext_search",
                    %repository,
                    %error,
                    "search: listing tags failed; the repository is indexed without tags"
                );
                continue;
            }
        };

        for tag in tags {
            match view.manifest(&repository, &tag).await {
                Ok(Some(manifest)) => {
                    let description = descriptions
                        .entry(manifest.digest.clone())
                        .or_insert_with(|| manifest_description(&manifest.bytes))
                        .clone();
                    index.set_tag(&repository, &tag, &manifest.digest, description);
                }
                // Deleted since the listing; its event follows.
                Ok(None) => {}
                Err(error) => tracing::warn!(
                    target: "registry_ext_search",
                    %repository,
                    %tag,
                    %error,
                    "search: reading a tagged manifest failed; the tag is not indexed"
                ),
            }
        }
    }
    Ok(index)
}

/// Applies one update to the index, reading the manifest of a new tag
/// through `view` for its description.
pub async fn apply(state: &SearchState, view: &dyn RegistryView, update: Update) {
    match update {
        Update::AddRepository { repository } => state.write_index().add_repository(&repository),
        Update::RemoveRepository { repository } => {
            state.write_index().remove_repository(&repository);
        }
        Update::RemoveTag { repository, tag } => state.write_index().remove_tag(&repository, &tag),
        Update::SetTag {
            repository,
            tag,
            digest,
            description: known,
        } => {
            // A push by tag fires both `manifest_pushed` and, when the tag
            // moves, `tag_created`: the second only refreshes recency.
            if state.write_index().touch_tag(&repository, &tag, &digest) {
                return;
            }
            // Only this task writes the index, because `take_updates` lets
            // one task run, so no change can slip in while the read awaits.
            let read = match known {
                Some(description) => Ok(description),
                None => view
                    .manifest(&repository, &digest)
                    .await
                    .map(|manifest| manifest.and_then(|m| manifest_description(&m.bytes))),
            };
            let description = match read {
                Ok(description) => description,
                Err(error) => {
                    tracing::warn!(
                        target: "registry_ext_search",
                        %repository,
                        %tag,
                        %digest,
                        %error,
                        "search: reading a pushed manifest failed; the tag is indexed without a description"
                    );
                    None
                }
            };
            state
                .write_index()
                .set_tag(&repository, &tag, &digest, description);
        }
    }
}

/// Logs the updates still queued at shutdown, which no one will apply.
fn drain(state: &SearchState, updates: &mut mpsc::UnboundedReceiver<Update>) {
    updates.close();
    let mut left = 0usize;
    while updates.try_recv().is_ok() {
        left += 1;
    }
    tracing::info!(
        target: "registry_ext_search",
        updates_not_applied = left,
        repositories = state.read_index().len(),
        "search: index task stopped"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use registry_signals::{BoxFuture, StoredManifest};

    use super::*;
    use crate::description::DESCRIPTION_ANNOTATION;

    /// The tags of one repository, each with the digest and bytes of its
    /// manifest.
    type Tags = BTreeMap<String, (String, Vec<u8>)>;

    /// A registry in memory: repositories with tags that point at manifests.
    #[derive(Default)]
    struct FakeView {
        content: Mutex<BTreeMap<String, Tags>>,
        fail_listing: Mutex<bool>,
    }

    impl FakeView {
        fn push(&self, repository: &str, tag: &str, digest: &str, description: Option<&str>) {
            let annotations = match description {
                Some(text) => serde_json::json!({ DESCRIPTION_ANNOTATION: text }),
                None => serde_json::json!({}),
            };
            let bytes = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "annotations": annotations,
            }))
            .unwrap();
            self.content
                .lock()
                .unwrap()
                .entry(repository.to_owned())
                .or_default()
                .insert(tag.to_owned(), (digest.to_owned(), bytes));
        }
    }

    impl RegistryView for FakeView {
        fn repositories(&self) -> BoxFuture<'_, Result<Vec<String>, ViewError>> {
            let result = if *self.fail_listing.lock().unwrap() {
                Err(ViewError("disk on fire".to_owned()))
            } else {
                Ok(self.content.lock().unwrap().keys().cloned().collect())
            };
            Box::pin(async move { result })
        }

        fn tags<'a>(
            &'a self,
            repository: &'a str,
        ) -> BoxFuture<'a, Result<Vec<String>, ViewError>> {
            let tags = self
                .content
                .lock()
                .unwrap()
                .get(repository)
                .map(|tags| tags.keys().cloned().collect())
                .unwrap_or_default();
            Box::pin(async move { Ok(tags) })
        }

        fn manifest<'a>(
            &'a self,
            repository: &'a str,
            reference: &'a str,
        ) -> BoxFuture<'a, Result<Option<StoredManifest>, ViewError>> {
            let content = self.content.lock().unwrap();
            let found = content.get(repository).and_then(|tags| {
                tags.iter()
                    .find(|(tag, (digest, _))| *tag == reference || digest == reference)
                    .map(|(_, (digest, bytes))| StoredManifest {
                        digest: digest.clone(),
                        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                        bytes: bytes.clone().into(),
                    })
            });
            Box::pin(async move { Ok(found) })
        }
    }

    fn set_tag(repository: &str, tag: &str, digest: &str) -> Update {
        Update::SetTag {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            digest: digest.to_owned(),
            description: None,
        }
    }

    #[tokio::test]
    async fn build_reads_repositories_tags_and_descriptions() {
        let view = FakeView::default();
        view.push("e2e/web", "v1", "sha256:1", Some("The web app"));
        view.push("e2e/db", "v1", "sha256:2", None);
        let index = build_index(&view).await.unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.description("e2e/web"), Some("The web app"));
        assert_eq!(index.description("e2e/db"), None);
        assert_eq!(index.tag_digest("e2e/db", "v1"), Some("sha256:2"));
    }

    #[tokio::test]
    async fn build_fails_when_listing_fails() {
        let view = FakeView::default();
        *view.fail_listing.lock().unwrap() = true;
        let error = build_index(&view).await.unwrap_err();
        assert_eq!(error.to_string(), "disk on fire");
    }

    #[tokio::test]
    async fn updates_change_the_index() {
        let view = FakeView::default();
        let state = SearchState::default();

        view.push("app", "v1", "sha256:1", Some("first"));
        apply(&state, &view, set_tag("app", "v1", "sha256:1")).await;
        assert_eq!(state.read_index().description("app"), Some("first"));

        view.push("app", "v2", "sha256:2", Some("second"));
        apply(&state, &view, set_tag("app", "v2", "sha256:2")).await;
        assert_eq!(state.read_index().description("app"), Some("second"));

        // A second push of v1 makes its description the current one.
        apply(&state, &view, set_tag("app", "v1", "sha256:1")).await;
        assert_eq!(state.read_index().description("app"), Some("first"));

        let remove_tag = Update::RemoveTag {
            repository: "app".to_owned(),
            tag: "v1".to_owned(),
        };
        apply(&state, &view, remove_tag).await;
        assert_eq!(state.read_index().description("app"), Some("second"));

        let remove = Update::RemoveRepository {
            repository: "app".to_owned(),
        };
        apply(&state, &view, remove).await;
        assert!(state.read_index().is_empty());

        let add = Update::AddRepository {
            repository: "bare".to_owned(),
        };
        apply(&state, &view, add).await;
        assert!(state.read_index().contains("bare"));
    }

    #[tokio::test]
    async fn tag_of_missing_manifest_has_no_description() {
        let view = FakeView::default();
        let state = SearchState::default();
        apply(&state, &view, set_tag("gone", "v1", "sha256:9")).await;
        let index = state.read_index();
        assert!(index.contains("gone"));
        assert_eq!(index.description("gone"), None);
    }

    #[tokio::test]
    async fn task_builds_then_applies_queued_updates() {
        let view = Arc::new(FakeView::default());
        view.push("before", "v1", "sha256:1", Some("from storage"));
        let config = Arc::new(SearchConfig::default());

        // An update queued before the task starts, as from a push during
        // startup.
        view.push("during", "v1", "sha256:2", Some("from an event"));
        config.state.send(set_tag("during", "v1", "sha256:2"));

        let context = ExtensionContext::new(
            "search",
            view.clone(),
            Arc::default(),
            std::env::temp_dir(),
            "test",
        );
        let (trigger, shutdown) = Shutdown::channel();
        let task = tokio::spawn(maintain_index(config.clone(), context, shutdown));

        assert!(config.state.wait_until_ready(Duration::from_secs(5)).await);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !config.state.read_index().contains("during") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        {
            let index = config.state.read_index();
            assert_eq!(index.description("before"), Some("from storage"));
            assert_eq!(index.description("during"), Some("from an event"));
        }

        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the task stops on shutdown")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn task_rebuilds_at_the_interval() {
        let view = Arc::new(FakeView::default());
        view.push("app", "v1", "sha256:1", Some("first"));
        let config = Arc::new(SearchConfig {
            rebuild_interval: Duration::from_secs(60),
            ..SearchConfig::default()
        });
        let context = ExtensionContext::new(
            "search",
            view.clone(),
            Arc::default(),
            std::env::temp_dir(),
            "test",
        );
        let (trigger, shutdown) = Shutdown::channel();
        let task = tokio::spawn(maintain_index(config.clone(), context, shutdown));
        assert!(config.state.wait_until_ready(Duration::from_secs(5)).await);

        // Changes whose events were dropped: no update is sent.
        view.push("missed", "v1", "sha256:2", Some("from a rebuild"));
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(!config.state.read_index().contains("missed"));
        tokio::time::sleep(Duration::from_secs(31)).await;
        {
            let index = config.state.read_index();
            assert_eq!(index.description("missed"), Some("from a rebuild"));
            assert_eq!(index.description("app"), Some("first"));
        }

        trigger.trigger();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn task_retries_a_failed_build() {
        let view = Arc::new(FakeView::default());
        view.push("app", "v1", "sha256:1", None);
        *view.fail_listing.lock().unwrap() = true;
        let config = Arc::new(SearchConfig::default());
        let context = ExtensionContext::new(
            "search",
            view.clone(),
            Arc::default(),
            std::env::temp_dir(),
            "test",
        );
        let (trigger, shutdown) = Shutdown::channel();
        let task = tokio::spawn(maintain_index(config.clone(), context, shutdown));

        assert!(
            !config
                .state
                .wait_until_ready(Duration::from_millis(500))
                .await
        );
        *view.fail_listing.lock().unwrap() = false;
        assert!(config.state.wait_until_ready(Duration::from_secs(5)).await);
        assert!(config.state.read_index().contains("app"));

        trigger.trigger();
        task.await.unwrap();
    }
}
