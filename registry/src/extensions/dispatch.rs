//! Delivery of events to the receivers of enabled extensions.
//!
//! Each enabled extension with receivers has a bounded queue and a worker
//! thread of its own. A request only pushes into the queues (`try_send`,
//! never waiting), so a slow or stuck extension costs requests nothing; a
//! full queue drops the event and counts it. The worker calls the receivers
//! in registration order and catches their panics. Events of one repository
//! are emitted in commit order (the API holds the repository's ordering lock
//! while it commits and emits), and a single queue keeps that order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use registry_config::Signals;
use registry_signals::{
    Event, ExtensionState, ManifestCandidate, ReceiverRegistration, Rejection, RequestContext,
    Signal, SignalKind,
};

use super::LinkedExtension;
use super::guards::Guards;

/// Minimum time between two warnings about dropped events of one extension.
const DROP_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Counters of one extension's deliveries.
#[derive(Debug, Default)]
pub struct ExtensionStats {
    /// Events handed to its receivers (one per event, whatever the number of
    /// receivers).
    pub delivered: AtomicU64,
    /// Events dropped because its queue was full.
    pub dropped: AtomicU64,
    /// Receiver calls that panicked.
    pub panics: AtomicU64,
    /// Events in its queue.
    pub queued: AtomicU64,
}

/// One enabled extension's end of the delivery.
struct Worker {
    name: &'static str,
    /// Signal kinds its receivers take, as bits.
    kinds: u32,
    /// The sending end of its queue. Taken (and so closed) at shutdown,
    /// which lets the worker finish the queue and stop.
    sender: Mutex<Option<SyncSender<Arc<Event>>>>,
    stats: Arc<ExtensionStats>,
    /// When a drop was last logged, for rate limiting.
    last_drop_warning: Mutex<Option<Instant>>,
    /// Signals that the worker thread ended, after its queue was drained.
    finished: Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
}

/// Routes events from requests to the extensions that receive them, and
/// runs guards.
pub struct Dispatcher {
    workers: Vec<Worker>,
    /// Union of the kinds any worker takes, to skip building unused events.
    subscribed: u32,
    guards: Guards,
    drain_timeout: Duration,
    instance_id: String,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.workers.iter().map(|w| w.name).collect();
        f.debug_struct("Dispatcher")
            .field("workers", &names)
            .field("instance_id", &self.instance_id)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// Starts a worker for each enabled extension that has receivers.
    pub fn start(linked: &[LinkedExtension], settings: &Signals) -> Self {
        let capacity = settings.queue_size.get() as usize;
        let mut workers = Vec::new();
        let mut subscribed = 0;

        for extension in linked {
            let Some(state) = &extension.state else {
                continue;
            };
            if extension.receivers.is_empty() {
                continue;
            }
            let (sender, receiver) = sync_channel(capacity);
            let (finished_sender, finished) = tokio::sync::oneshot::channel();
            let stats = Arc::new(ExtensionStats::default());

            let worker_stats = stats.clone();
            let receivers = extension.receivers.clone();
            let state = state.clone();
            let name = extension.name();
            let spawned = std::thread::Builder::new()
                .name(format!("ext-{name}"))
                .spawn(move || {
                    run_worker(name, &receivers, &state, receiver, &worker_stats);
                    let _ = finished_sender.send(());
                });
            if let Err(error) = spawned {
                tracing::error!(extension = name, %error, "cannot start the extension's worker");
                continue;
            }

            subscribed |= extension.kinds();
            workers.push(Worker {
                name,
                kinds: extension.kinds(),
                sender: Mutex::new(Some(sender)),
                stats,
                last_drop_warning: Mutex::new(None),
                finished: Mutex::new(Some(finished)),
            });
        }

        Self {
            workers,
            subscribed,
            guards: Guards::new(linked, settings.guard_timeout),
            drain_timeout: settings.drain_timeout,
            instance_id: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Builds a dispatcher with no extensions, for tests of the API alone.
    pub fn empty() -> Self {
        Self::start(&[], &Signals::default())
    }

    /// Returns the id of this registry process, carried by every event.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Returns whether any enabled extension receives `kind`.
    pub fn wants(&self, kind: SignalKind) -> bool {
        self.subscribed & kind.bit() != 0
    }

    /// Returns whether any guard is registered by an enabled extension.
    pub fn has_guards(&self) -> bool {
        !self.guards.is_empty()
    }

    /// Returns the delivery counters by extension name.
    pub fn stats(&self) -> Vec<(&'static str, Arc<ExtensionStats>)> {
        self.workers
            .iter()
            .map(|w| (w.name, w.stats.clone()))
            .collect()
    }

    /// Queues events for every extension that receives them, in order.
    /// Never waits: a full queue drops the event for that extension.
    pub fn emit(&self, context: &Arc<RequestContext>, signals: Vec<Signal>) {
        for signal in signals {
            let kind = signal.kind();
            if !self.wants(kind) {
                continue;
            }
            let event = Arc::new(Event {
                id: uuid::Uuid::new_v4().to_string(),
                timestamp: SystemTime::now(),
                context: context.clone(),
                signal,
            });
            for worker in self.workers.iter().filter(|w| w.kinds & kind.bit() != 0) {
                worker.send(event.clone());
            }
        }
    }

    /// Runs every guard on a manifest about to be stored.
    ///
    /// # Errors
    ///
    /// The first rejection, naming the extension. A guard that panics or
    /// runs out of time also rejects.
    pub async fn check(&self, candidate: OwnedCandidate) -> Result<(), Rejection> {
        self.guards.check(candidate).await
    }

    /// Closes the queues and waits up to `signals.draintimeout` for the
    /// workers to deliver what is queued.
    pub async fn shutdown(&self) {
        for worker in &self.workers {
            worker.sender.lock().expect("sender lock").take();
        }
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        for worker in &self.workers {
            let finished = worker.finished.lock().expect("finished lock").take();
            let Some(finished) = finished else { continue };
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                tracing::warn!(
                    extension = worker.name,
                    undelivered = worker.stats.queued.load(Ordering::Relaxed),
                    "signal drain timeout reached; queued events are lost"
                );
            }
        }
    }
}

impl Worker {
    fn send(&self, event: Arc<Event>) {
        let sender = self.sender.lock().expect("sender lock");
        let Some(sender) = sender.as_ref() else {
            // Shutting down: the queue is closed.
            return;
        };
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                self.warn_dropped(&event, dropped);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    fn warn_dropped(&self, event: &Event, dropped: u64) {
        let mut last = self.last_drop_warning.lock().expect("drop warning lock");
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < DROP_WARNING_INTERVAL) {
            return;
        }
        *last = Some(now);
        tracing::warn!(
            extension = self.name,
            signal = %event.signal.kind(),
            dropped_total = dropped,
            "extension queue is full; dropping events (signals.queuesize)"
        );
    }
}

/// Delivers events until the queue is closed and empty.
fn run_worker(
    name: &'static str,
    receivers: &[&'static ReceiverRegistration],
    state: &ExtensionState,
    queue: Receiver<Arc<Event>>,
    stats: &ExtensionStats,
) {
    while let Ok(event) = queue.recv() {
        stats.queued.fetch_sub(1, Ordering::Relaxed);
        let kind = event.signal.kind();
        for receiver in receivers.iter().filter(|r| r.kind == kind) {
            let outcome = catch_unwind(AssertUnwindSafe(|| (receiver.receive)(&event, state)));
            if let Err(panic) = outcome {
                stats.panics.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    extension = name,
                    signal = %kind,
                    receiver = receiver.name,
                    event_id = %event.id,
                    panic = panic_message(&panic),
                    "receiver panicked"
                );
            }
        }
        stats.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

/// Returns the text of a panic payload, when it has one.
pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-text panic payload")
}

/// A manifest about to be stored, owned so that guards can run on the
/// blocking pool.
#[derive(Debug, Clone)]
pub struct OwnedCandidate {
    pub repository: String,
    pub tag: Option<String>,
    pub digest: String,
    pub media_type: String,
    pub bytes: bytes::Bytes,
}

impl OwnedCandidate {
    /// Borrows the candidate in the form guards take.
    pub fn as_candidate(&self) -> ManifestCandidate<'_> {
        ManifestCandidate {
            repository: &self.repository,
            tag: self.tag.as_deref(),
            digest: &self.digest,
            media_type: &self.media_type,
            bytes: &self.bytes,
        }
    }
}
