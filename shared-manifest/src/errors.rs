//! Errors of atomic writes and of the persister. Messages read well after "failed to" and name
//! the path; the OS error stays as the source.

use std::path::PathBuf;

use crate::document::ApplyError;

/// One step of the atomic write protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteStep {
    /// Creating the temp file.
    Create,
    /// Writing the bytes.
    Write,
    /// fsync of the temp file.
    Fsync,
    /// rename over the target.
    Rename,
    /// fsync of the directory.
    FsyncDir,
}

impl std::fmt::Display for WriteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteStep::Create => "create temp file",
            WriteStep::Write => "write",
            WriteStep::Fsync => "fsync",
            WriteStep::Rename => "rename",
            WriteStep::FsyncDir => "fsync directory",
        })
    }
}

/// An atomic write that did not happen; the target keeps its previous content.
#[derive(Debug, thiserror::Error)]
#[error("write `{}` ({step})", path.display())]
pub struct AtomicWriteError {
    /// The target.
    pub path: PathBuf,
    /// The step that failed.
    pub step: WriteStep,
    /// The OS error.
    #[source]
    pub source: std::io::Error,
}

/// Why the persister could not record an update.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// Writing the document or its heartbeat failed. The task ended: the last good file stays,
    /// and updates sent after the failure are not applied.
    #[error(transparent)]
    Write(#[from] AtomicWriteError),
    /// The document could not be serialized.
    #[error("serialize the manifest")]
    Serialize(#[source] serde_json::Error),
    /// The document refused an update (an illegal transition). The document stayed as it was
    /// for that update; the persister went on with the next ones.
    #[error("apply an update to the manifest")]
    Apply(#[source] ApplyError),
    /// The persister task is gone: closed (by this or another handle), or it panicked.
    #[error("reach the manifest writer (it stopped)")]
    Closed,
}

impl PersistError {
    /// A copy for every waiter of a shared failure (io errors are not `Clone`).
    pub(crate) fn duplicate(&self) -> PersistError {
        match self {
            PersistError::Write(e) => PersistError::Write(AtomicWriteError {
                path: e.path.clone(),
                step: e.step,
                source: std::io::Error::new(e.source.kind(), e.source.to_string()),
            }),
            PersistError::Serialize(e) => {
                PersistError::Serialize(serde_json::Error::io(std::io::Error::other(e.to_string())))
            }
            PersistError::Apply(e) => PersistError::Apply(e.clone()),
            PersistError::Closed => PersistError::Closed,
        }
    }
}
