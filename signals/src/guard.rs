//! Guards: checks that run inside a manifest push, before anything is
//! stored, and may reject it.

use std::fmt;

/// A manifest about to be stored, as a guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct ManifestCandidate<'a> {
    pub repository: &'a str,
    /// The tag of a push by tag, or the first `tag` parameter of a push by
    /// digest.
    pub tag: Option<&'a str>,
    pub digest: &'a str,
    pub media_type: &'a str,
    /// The manifest exactly as pushed; it has already been validated.
    pub bytes: &'a [u8],
}

/// A guard's reason to reject a push. The client receives it as the
/// message of a 403 `DENIED` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
}

impl Rejection {
    /// Builds a rejection with the reason shown to the client.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Rejection {}

/// What a hand-off returns: done, or a wait for work that it started.
///
/// A hand-off runs while the registry has the repository's ordering lock,
/// so that hand-offs see one repository's changes in order. A hand-off
/// that needs the lock only for the order (it queues a record for a writer
/// thread, say) returns a receipt for the rest, such as the sync to disk.
/// The registry awaits the receipt after it releases the lock and before
/// the response, so concurrent changes share the slow part.
pub struct Receipt(Option<crate::BoxFuture<'static, Result<(), String>>>);

impl Receipt {
    /// Returns the receipt of a hand-off that finished its work.
    pub fn done() -> Self {
        Self(None)
    }

    /// Returns the receipt of a hand-off whose work finishes with `work`, a
    /// future that must not block its thread (it may await a channel that
    /// a worker thread completes, for example).
    pub fn wait_for(
        work: impl std::future::Future<Output = Result<(), String>> + Send + 'static,
    ) -> Self {
        Self(Some(Box::pin(work)))
    }

    /// Waits for the work to finish and returns its outcome.
    ///
    /// # Errors
    ///
    /// The error of the work.
    pub async fn wait(self) -> Result<(), String> {
        match self.0 {
            Some(work) => work.await,
            None => Ok(()),
        }
    }

    /// Returns whether there is nothing to wait for.
    pub fn is_done(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Debug for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_done() {
            "Receipt(done)"
        } else {
            "Receipt(waiting)"
        })
    }
}
