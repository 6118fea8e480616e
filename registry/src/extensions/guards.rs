//! Running guards inside a manifest push.
//!
//! Guards are plain functions, so each runs on tokio's blocking pool under
//! `signals.guardtimeout`. A guard that panics or times out rejects the
//! push: a registry that cannot tell whether a push is allowed must not
//! store it. A guard that timed out keeps running on its thread until it
//! returns; its result is ignored.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use registry_signals::{ExtensionState, GuardRegistration, Rejection};

use super::LinkedExtension;
use super::dispatch::{OwnedCandidate, panic_message};

/// The guards of enabled extensions.
pub(super) struct Guards {
    guards: Vec<(&'static str, &'static GuardRegistration, ExtensionState)>,
    timeout: Duration,
}

impl Guards {
    pub fn new(linked: &[LinkedExtension], timeout: Duration) -> Self {
        let mut guards = Vec::new();
        for extension in linked {
            if let Some(state) = &extension.state {
                for guard in &extension.guards {
                    guards.push((extension.name(), *guard, state.clone()));
                }
            }
        }
        Self { guards, timeout }
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }

    /// Runs the guards in registration order and stops at the first
    /// rejection.
    pub async fn check(&self, candidate: OwnedCandidate) -> Result<(), Rejection> {
        for (extension, guard, state) in &self.guards {
            let task_candidate = candidate.clone();
            let task_state = state.clone();
            let check = guard.check;
            let task = tokio::task::spawn_blocking(move || {
                catch_unwind(AssertUnwindSafe(|| {
                    check(&task_candidate.as_candidate(), &task_state)
                }))
                .map_err(|panic| panic_message(&panic).to_owned())
            });

            let reject = |reason: String| {
                Rejection::new(format!("push rejected by extension {extension}: {reason}"))
            };
            match tokio::time::timeout(self.timeout, task).await {
                Ok(Ok(Ok(Ok(())))) => {}
                Ok(Ok(Ok(Err(rejection)))) => {
                    tracing::info!(extension, guard = guard.name, reason = %rejection, "push rejected");
                    return Err(reject(rejection.reason));
                }
                Ok(Ok(Err(panic))) => {
                    tracing::error!(
                        extension,
                        guard = guard.name,
                        panic,
                        "guard panicked; rejecting the push"
                    );
                    return Err(reject("the extension's check failed".to_owned()));
                }
                Ok(Err(join_error)) => {
                    tracing::error!(extension, guard = guard.name, error = %join_error, "guard task failed; rejecting the push");
                    return Err(reject("the extension's check failed".to_owned()));
                }
                Err(_) => {
                    tracing::error!(
                        extension,
                        guard = guard.name,
                        timeout = %humantime::format_duration(self.timeout),
                        "guard timed out; rejecting the push (signals.guardtimeout)"
                    );
                    return Err(reject("the extension's check timed out".to_owned()));
                }
            }
        }
        Ok(())
    }
}
