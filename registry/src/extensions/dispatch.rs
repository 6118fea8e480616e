//! Delivery of events to the receivers of enabled extensions.
//!
//! Each enabled extension with receivers has a bounded queue and a worker
//! thread of its own. A request only pushes into the queues (`try_send`,
//! never waiting), so a slow or stuck extension costs requests nothing; a
//! full queue drops the event and counts it. The events of one change go
//! into a queue together, so that they wake its worker once. The worker calls the receivers
//! in registration order and catches their panics. Events of one repository
//! are emitted in commit order (the API holds the repository's ordering lock
//! while it commits and emits), and a single queue keeps that order.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use registry_config::Signals;
use registry_signals::telemetry::{MetricFamily, MetricKind};
use registry_signals::{
    Event, ExtensionState, HandoffRegistration, ManifestCandidate, Receipt, ReceiverRegistration,
    Rejection, RequestContext, Signal, SignalKind,
};

use super::LinkedExtension;
use super::guards::Guards;

/// The pause of a worker after it emptied its queue, before it waits for
/// more. Receivers get events up to this much later. On the benchmark's
/// virtual machine, a wake-up costs the two threads about 10 µs of CPU (an
/// estimate from the per-thread CPU of a worker). With a 1 ms pause, a
/// stream of 1,500 manifest PUTs a second woke each worker for almost every
/// PUT. With 5 ms, a worker wakes at most 200 times a second, and the
/// default queue of 1,024 events still takes 200,000 events a second.
const WORKER_PAUSE: Duration = Duration::from_millis(5);

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
    /// Hand-offs that returned an error, panicked or timed out.
    pub handoff_failures: AtomicU64,
}

/// One enabled extension's hand-offs.
struct Handoffs {
    name: &'static str,
    /// Signal kinds its hand-offs take, as bits.
    kinds: u32,
    registrations: Vec<&'static HandoffRegistration>,
    state: ExtensionState,
    stats: Arc<ExtensionStats>,
    /// When a failure was last logged, for rate limiting.
    last_failure_log: Mutex<Option<Instant>>,
}

/// One enabled extension's end of the delivery.
struct Worker {
    name: &'static str,
    /// Signal kinds its receivers take, as bits.
    kinds: u32,
    /// The sending end of its queue, which carries the events of one
    /// change at a time. Taken (and so closed) at shutdown, which lets the
    /// worker finish the queue and stop.
    sender: Mutex<Option<SyncSender<Vec<Arc<Event>>>>>,
    /// The events that the queue takes (`signals.queuesize`).
    capacity: u64,
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
    handoffs: Arc<Vec<Handoffs>>,
    /// Union of the kinds any worker or hand-off takes, to skip building
    /// unused events.
    subscribed: u32,
    /// Union of the kinds any hand-off takes.
    handed_off: u32,
    handoff_timeout: Duration,
    /// Events built, by signal kind.
    emitted: [AtomicU64; SignalKind::ALL.len()],
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
        let mut handoffs = Vec::new();
        let mut subscribed = 0;
        let mut handed_off = 0;

        for extension in linked {
            let Some(state) = &extension.state else {
                continue;
            };
            let stats = Arc::new(ExtensionStats::default());
            if extension.handoff_kinds() != 0 {
                handed_off |= extension.handoff_kinds();
                handoffs.push(Handoffs {
                    name: extension.name(),
                    kinds: extension.handoff_kinds(),
                    registrations: extension.handoffs.clone(),
                    state: state.clone(),
                    stats: stats.clone(),
                    last_failure_log: Mutex::new(None),
                });
            }
            if extension.kinds() == 0 {
                continue;
            }
            let (sender, receiver) = sync_channel(capacity);
            let (finished_sender, finished) = tokio::sync::oneshot::channel();

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
                capacity: capacity as u64,
                stats,
                last_drop_warning: Mutex::new(None),
                finished: Mutex::new(Some(finished)),
            });
        }

        Self {
            workers,
            handoffs: Arc::new(handoffs),
            subscribed: subscribed | handed_off,
            handed_off,
            handoff_timeout: settings.handoff_timeout,
            emitted: Default::default(),
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

    /// Counts a signal that fired without an event, because no extension
    /// takes its kind.
    pub fn count(&self, kind: SignalKind) {
        self.emitted[kind as usize].fetch_add(1, Ordering::Relaxed);
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

    /// Emits events and waits for their durable hand-offs: `emit_ordered`
    /// and then [`Pending::finish`]. For changes made without the
    /// repository's ordering lock.
    pub async fn emit(&self, context: &Arc<RequestContext>, signals: Vec<Signal>) {
        self.emit_ordered(context, signals).finish().await;
    }

    /// Runs the durable hand-offs of the events, then queues the events
    /// for every extension that receives them, in order. Queuing never
    /// waits: a full queue drops the event for that extension.
    ///
    /// Call it while holding the repository's ordering lock, so that
    /// hand-offs and receivers see the repository's changes in order. The
    /// hand-offs run here, on the request's task, and may leave work to
    /// wait for (a sync to disk): release the lock, then call
    /// [`Pending::finish`] before the response, so that concurrent changes
    /// share that wait, for at most `signals.handofftimeout`. A failed or
    /// late hand-off is logged and counted, because the change is already
    /// stored.
    pub fn emit_ordered(&self, context: &Arc<RequestContext>, signals: Vec<Signal>) -> Pending {
        let deadline = tokio::time::Instant::now() + self.handoff_timeout;
        let mut events = Vec::with_capacity(signals.len());
        for signal in signals {
            let kind = signal.kind();
            self.emitted[kind as usize].fetch_add(1, Ordering::Relaxed);
            if !self.wants(kind) {
                continue;
            }
            events.push(Arc::new(Event {
                id: uuid::Uuid::new_v4().to_string(),
                timestamp: SystemTime::now(),
                context: context.clone(),
                signal,
            }));
        }

        let mut pending = Pending {
            handoffs: self.handoffs.clone(),
            receipts: Vec::new(),
            deadline,
            timeout: self.handoff_timeout,
        };
        if events
            .iter()
            .any(|e| self.handed_off & e.signal.kind().bit() != 0)
        {
            // A trip to the blocking pool would cost two thread switches
            // inside the ordering lock, which serializes the changes of a
            // repository, so hand-offs must not block (see `handoff!`).
            pending.receipts = run_handoffs(&self.handoffs, &events);
        }
        for worker in &self.workers {
            let batch: Vec<Arc<Event>> = events
                .iter()
                .filter(|e| worker.kinds & e.signal.kind().bit() != 0)
                .cloned()
                .collect();
            if !batch.is_empty() {
                worker.send(batch);
            }
        }
        pending
    }

    /// Returns the delivery counters as metrics: events by signal, and
    /// deliveries, drops, panics, queue depth and failed hand-offs by
    /// extension.
    pub fn metrics(&self) -> Vec<MetricFamily> {
        let mut events = MetricFamily::new(
            "registry_events_total",
            "Events fired, by signal.",
            MetricKind::Counter,
        );
        for kind in SignalKind::ALL {
            let count = self.emitted[kind as usize].load(Ordering::Relaxed);
            events = events.sample(&[("signal", kind.name())], count as f64);
        }

        let families = [
            (
                "registry_extension_events_delivered_total",
                "Events handed to the receivers of each extension.",
                MetricKind::Counter,
            ),
            (
                "registry_extension_events_dropped_total",
                "Events dropped because the extension's queue was full.",
                MetricKind::Counter,
            ),
            (
                "registry_extension_receiver_panics_total",
                "Receiver calls that panicked, by extension.",
                MetricKind::Counter,
            ),
            (
                "registry_extension_queue_depth",
                "Events waiting in each extension's queue.",
                MetricKind::Gauge,
            ),
            (
                "registry_extension_handoff_failures_total",
                "Durable hand-offs that failed or timed out, by extension.",
                MetricKind::Counter,
            ),
        ];
        let mut per_extension: Vec<MetricFamily> = families
            .iter()
            .map(|(name, help, kind)| MetricFamily::new(*name, *help, *kind))
            .collect();
        let mut seen: Vec<(&str, &ExtensionStats)> = Vec::new();
        for worker in &self.workers {
            seen.push((worker.name, &worker.stats));
        }
        for handoffs in self.handoffs.iter() {
            if !seen.iter().any(|(name, _)| *name == handoffs.name) {
                seen.push((handoffs.name, &handoffs.stats));
            }
        }
        for (name, stats) in seen {
            let values = [
                stats.delivered.load(Ordering::Relaxed),
                stats.dropped.load(Ordering::Relaxed),
                stats.panics.load(Ordering::Relaxed),
                stats.queued.load(Ordering::Relaxed),
                stats.handoff_failures.load(Ordering::Relaxed),
            ];
            for (family, value) in per_extension.iter_mut().zip(values) {
                family.samples.push(registry_signals::telemetry::Sample {
                    labels: vec![("extension".to_owned(), name.to_owned())],
                    value: value as f64,
                });
            }
        }

        let mut all = vec![events];
        all.append(&mut per_extension);
        all
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
    /// Queues the events of one change, dropping those that do not fit.
    fn send(&self, mut batch: Vec<Arc<Event>>) {
        let sender = self.sender.lock().expect("sender lock");
        let Some(sender) = sender.as_ref() else {
            // Shutting down: the queue is closed.
            return;
        };
        let count = batch.len() as u64;
        let before = self.stats.queued.fetch_add(count, Ordering::Relaxed);
        let room = self.capacity.saturating_sub(before);
        if room < count {
            let excess = batch.split_off(room as usize);
            self.drop_events(&excess);
            if batch.is_empty() {
                return;
            }
        }
        // The channel takes as many changes as the queue takes events, and
        // a change has at least one event, so the count above fills first.
        match sender.try_send(batch) {
            Ok(()) => {}
            Err(TrySendError::Full(batch)) => self.drop_events(&batch),
            Err(TrySendError::Disconnected(batch)) => {
                self.stats
                    .queued
                    .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            }
        }
    }

    /// Counts events that were counted as queued but did not fit.
    fn drop_events(&self, events: &[Arc<Event>]) {
        let count = events.len() as u64;
        self.stats.queued.fetch_sub(count, Ordering::Relaxed);
        let dropped = self.stats.dropped.fetch_add(count, Ordering::Relaxed) + count;
        self.warn_dropped(&events[0], dropped);
    }

    fn warn_dropped(&self, event: &Event, dropped: u64) {
        if !log_due(&self.last_drop_warning) {
            return;
        }
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
    queue: Receiver<Vec<Arc<Event>>>,
    stats: &ExtensionStats,
) {
    while let Ok(first) = queue.recv() {
        deliver(name, receivers, state, first, stats);
        while let Ok(batch) = queue.try_recv() {
            deliver(name, receivers, state, batch, stats);
        }
        // Events that arrive during the pause queue up without waking the
        // thread, so a stream of changes wakes it about once per pause
        // instead of once per change.
        std::thread::sleep(WORKER_PAUSE);
    }
}

/// Calls the receivers of each event in `batch`, catching their panics.
fn deliver(
    name: &'static str,
    receivers: &[&'static ReceiverRegistration],
    state: &ExtensionState,
    batch: Vec<Arc<Event>>,
    stats: &ExtensionStats,
) {
    for event in batch {
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

/// The hand-offs of emitted events whose work is still running, returned
/// by [`Dispatcher::emit_ordered`].
#[must_use = "call finish before the response"]
pub struct Pending {
    handoffs: Arc<Vec<Handoffs>>,
    receipts: Vec<(usize, Arc<Event>, Receipt)>,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("receipts", &self.receipts.len())
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Waits for the work the hand-offs left, up to the deadline of
    /// `signals.handofftimeout`.
    pub async fn finish(self) {
        let waiting: Vec<_> = self
            .receipts
            .into_iter()
            .filter(|(_, _, receipt)| !receipt.is_done())
            .collect();
        if waiting.is_empty() {
            return;
        }
        let count = waiting.len();
        let handoffs = self.handoffs.clone();
        let work = async move {
            for (index, event, receipt) in waiting {
                let outcome =
                    futures_util::FutureExt::catch_unwind(AssertUnwindSafe(receipt.wait())).await;
                let error = match outcome {
                    Ok(Ok(())) => continue,
                    Ok(Err(message)) => message,
                    Err(panic) => format!("panicked: {}", panic_message(&panic)),
                };
                handoffs[index].failed(&event, "receipt", &error);
            }
        };
        if tokio::time::timeout_at(self.deadline, work).await.is_err() {
            for handoffs in self.handoffs.iter() {
                handoffs
                    .stats
                    .handoff_failures
                    .fetch_add(1, Ordering::Relaxed);
            }
            tracing::error!(
                timeout = %humantime::format_duration(self.timeout),
                receipts = count,
                "durable hand-offs did not finish in time (signals.handofftimeout); \
                 the response goes out"
            );
        }
    }
}

impl Handoffs {
    /// Counts a failed hand-off and logs it, at most once per interval.
    fn failed(&self, event: &Event, handoff: &str, error: &str) {
        let failures = self.stats.handoff_failures.fetch_add(1, Ordering::Relaxed) + 1;
        // A full disk fails every hand-off, so one line per interval with
        // the running count is enough.
        if !log_due(&self.last_failure_log) {
            return;
        }
        tracing::error!(
            extension = self.name,
            signal = %event.signal.kind(),
            handoff,
            event_id = %event.id,
            failures_total = failures,
            %error,
            "durable hand-off failed; more failures within 10 s are only counted"
        );
    }
}

/// Returns whether a rate-limited log line is due: when none was written
/// within `DROP_WARNING_INTERVAL`. If so, records now as its time.
fn log_due(last: &Mutex<Option<Instant>>) -> bool {
    let mut last = last.lock().expect("log time lock");
    let now = Instant::now();
    if last.is_some_and(|at| now.duration_since(at) < DROP_WARNING_INTERVAL) {
        return false;
    }
    *last = Some(now);
    true
}

/// Calls every hand-off that takes each event, in order, catching panics,
/// and returns the receipts with the index of their extension.
fn run_handoffs(handoffs: &[Handoffs], events: &[Arc<Event>]) -> Vec<(usize, Arc<Event>, Receipt)> {
    let mut receipts = Vec::new();
    for event in events {
        let kind = event.signal.kind();
        for (index, extension) in handoffs.iter().enumerate() {
            if extension.kinds & kind.bit() == 0 {
                continue;
            }
            for registration in extension.registrations.iter().filter(|r| r.kind == kind) {
                let outcome = catch_unwind(AssertUnwindSafe(|| {
                    (registration.hand_off)(event, &extension.state)
                }));
                match outcome {
                    Ok(Ok(receipt)) => receipts.push((index, event.clone(), receipt)),
                    Ok(Err(message)) => extension.failed(event, registration.name, &message),
                    Err(panic) => {
                        let message = format!("panicked: {}", panic_message(&panic));
                        extension.failed(event, registration.name, &message);
                    }
                }
            }
        }
    }
    receipts
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
