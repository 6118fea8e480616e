//! The runtime state of the extension: the index, the channel of updates
//! from the receivers to the task, readiness, and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use registry_signals::telemetry::{MetricFamily, MetricKind};
use tokio::sync::{mpsc, watch};

use crate::index::Index;

/// A change of the registry's content, sent by a receiver to the task that
/// applies it to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// The repository exists; nothing changes when the index has it.
    AddRepository { repository: String },
    /// The repository and all its tags are gone.
    RemoveRepository { repository: String },
    /// The tag points at the manifest `digest`, pushed just now.
    SetTag {
        repository: String,
        tag: String,
        digest: String,
        /// The manifest's description when the event carried the
        /// manifest; `None` to read it through the registry's view.
        description: Option<Option<String>>,
    },
    /// The tag is gone.
    RemoveTag { repository: String, tag: String },
}

/// The outcome of a search request, counted for the metrics.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Ok,
    /// 400: an invalid `n`, `page` or repeated parameter.
    Rejected,
    /// 503: the first index build did not finish within `readytimeout`.
    Unavailable,
}

/// The state shared by the receivers, the routes and the task.
#[derive(Debug)]
pub struct SearchState {
    /// The index that requests read. The task replaces it after a build
    /// and changes it for each update, while requests only take the read
    /// lock. Nothing keeps either lock across an `.await`.
    index: RwLock<Index>,
    /// The receivers' end of the update channel. Sending never blocks,
    /// because the channel is unbounded. It fails once the task has dropped
    /// its end, and the update is then dropped and counted.
    updates: mpsc::UnboundedSender<Update>,
    /// The task's end of the update channel, taken once when the task
    /// starts. Updates queue here from startup, while the first build
    /// runs, and are applied after it.
    pending: Mutex<Option<mpsc::UnboundedReceiver<Update>>>,
    /// `true` once the first build from storage has finished. Requests wait
    /// on it for up to `readytimeout`.
    ready: watch::Sender<bool>,
    requests_ok: AtomicU64,
    requests_rejected: AtomicU64,
    requests_unavailable: AtomicU64,
    builds_ok: AtomicU64,
    builds_failed: AtomicU64,
    /// Updates that could not be sent because the task had stopped.
    updates_dropped: AtomicU64,
}

impl Default for SearchState {
    fn default() -> Self {
        let (updates, pending) = mpsc::unbounded_channel();
        Self {
            index: RwLock::default(),
            updates,
            pending: Mutex::new(Some(pending)),
            ready: watch::Sender::new(false),
            requests_ok: AtomicU64::new(0),
            requests_rejected: AtomicU64::new(0),
            requests_unavailable: AtomicU64::new(0),
            builds_ok: AtomicU64::new(0),
            builds_failed: AtomicU64::new(0),
            updates_dropped: AtomicU64::new(0),
        }
    }
}

impl SearchState {
    /// Queues an update for the task.
    pub fn send(&self, update: Update) {
        if let Err(error) = self.updates.send(update) {
            self.updates_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                target: "registry_ext_search",
                update = ?error.0,
                "search: update dropped because the index task has stopped"
            );
        }
    }

    /// Takes the task's end of the update channel. Returns `None` after
    /// the first call.
    pub fn take_updates(&self) -> Option<mpsc::UnboundedReceiver<Update>> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Locks the index for reading. A panic in another holder of the lock
    /// leaves the index usable, because each change completes before the
    /// lock is released.
    pub fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the index for writing.
    pub fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the first build as finished, which releases waiting requests.
    pub fn mark_ready(&self) {
        self.ready.send_replace(true);
    }

    /// Waits up to `timeout` for the first build and returns whether it
    /// has finished.
    pub async fn wait_until_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ready.subscribe();
        if *ready.borrow() {
            return true;
        }
        // `wait_for` fails only when the sender is dropped, and `self`,
        // which owns the sender, outlives this call.
        matches!(
            tokio::time::timeout(timeout, ready.wait_for(|ready| *ready)).await,
            Ok(Ok(_))
        )
    }

    /// Counts a search request.
    pub fn count_request(&self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Ok => &self.requests_ok,
            Outcome::Rejected => &self.requests_rejected,
            Outcome::Unavailable => &self.requests_unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a build of the index from storage.
    pub fn count_build(&self, succeeded: bool) {
        let counter = if succeeded {
            &self.builds_ok
        } else {
            &self.builds_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns the extension's metrics, for the registry's telemetry.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64;
        let repositories = self.read_index().len() as f64;
        vec![
            MetricFamily::new(
                "registry_search_repositories",
                "Repositories in the search index.",
                MetricKind::Gauge,
            )
            .sample(&[], repositories),
            MetricFamily::new(
                "registry_search_requests_total",
                "Search requests by outcome: ok, rejected (400) or unavailable (503).",
                MetricKind::Counter,
            )
            .sample(&[("outcome", "ok")], load(&self.requests_ok))
            .sample(&[("outcome", "rejected")], load(&self.requests_rejected))
            .sample(
                &[("outcome", "unavailable")],
                load(&self.requests_unavailable),
            ),
            MetricFamily::new(
                "registry_search_index_builds_total",
                "Builds of the search index from storage, at startup and at each rebuild interval.",
                MetricKind::Counter,
            )
            .sample(&[("outcome", "ok")], load(&self.builds_ok))
            .sample(&[("outcome", "failed")], load(&self.builds_failed)),
            MetricFamily::new(
                "registry_search_updates_dropped_total",
                "Index updates dropped because the index task had stopped.",
                MetricKind::Counter,
            )
            .sample(&[], load(&self.updates_dropped)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_wait_for_readiness() {
        let state = SearchState::default();
        assert!(!state.wait_until_ready(Duration::from_millis(10)).await);
        state.mark_ready();
        assert!(state.wait_until_ready(Duration::ZERO).await);
    }

    #[tokio::test]
    async fn updates_reach_the_task_in_order() {
        let state = SearchState::default();
        let mut updates = state.take_updates().expect("first take");
        assert!(state.take_updates().is_none());
        state.send(Update::AddRepository {
            repository: "a".to_owned(),
        });
        state.send(Update::RemoveRepository {
            repository: "a".to_owned(),
        });
        assert!(matches!(
            updates.recv().await,
            Some(Update::AddRepository { .. })
        ));
        assert!(matches!(
            updates.recv().await,
            Some(Update::RemoveRepository { .. })
        ));
    }

    #[test]
    fn update_after_task_stopped_is_counted() {
        let state = SearchState::default();
        drop(state.take_updates());
        state.send(Update::AddRepository {
            repository: "a".to_owned(),
        });
        let metrics = state.metrics();
        let dropped = metrics
            .iter()
            .find(|m| m.name == "registry_search_updates_dropped_total")
            .unwrap();
        assert_eq!(dropped.samples[0].value, 1.0);
    }
}
