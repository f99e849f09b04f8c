//! The contract between the persister and the document it owns.
//!
//! The persister is generic so it can be tested with a toy document and so the manifest's own
//! rules (state machines) stay in the manifest's module: the persister only applies updates in
//! order and writes the result.

use serde::Serialize;

/// An update the document refused (an illegal state transition, an unknown stage...). The
/// persister keeps the document unchanged for that update and reports the error to the run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApplyError(pub String);

/// A document owned by a persister task.
pub trait Document: Serialize + Send + 'static {
    /// One change to the document, sent over the persister's channel.
    type Update: Send + 'static;

    /// Applies one update. Pure and synchronous so it can be tested without tokio.
    fn apply(&mut self, update: Self::Update) -> Result<(), ApplyError>;

    /// Text of the `.heartbeat` sidecar file, if the document has one. The persister rewrites the
    /// sidecar (atomically) whenever this value changes.
    fn heartbeat(&self) -> Option<String> {
        None
    }
}
