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
    /// Removing a file that is no longer part of the record.
    Remove,
}

impl std::fmt::Display for WriteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WriteStep::Create => "create temp file",
            WriteStep::Write => "write",
            WriteStep::Fsync => "fsync",
            WriteStep::Rename => "rename",
            WriteStep::FsyncDir => "fsync directory",
            WriteStep::Remove => "remove",
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
    /// The document has a sidecar but the persister was given no path for it (a bug).
    #[error("write the manifest's sidecar: no path was given for it")]
    NoSidecarPath,
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
            PersistError::NoSidecarPath => PersistError::NoSidecarPath,
        }
    }
}

/// Why a manifest (with its sidecar) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("read `{}`", path.display())]
    Io {
        /// The file: `manifest.json` or its sidecar.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON, or the merged document is not a manifest.
    #[error("parse `{}` as a manifest", path.display())]
    Parse {
        /// The file: `manifest.json` or its sidecar.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// The sidecar names another run.
    #[error("use `{}`: it belongs to run `{run_id}`", path.display())]
    Foreign {
        /// The sidecar.
        path: PathBuf,
        /// The run it names.
        run_id: String,
    },
}

impl ReadError {
    /// The file that could not be read.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ReadError::Io { path, .. }
            | ReadError::Parse { path, .. }
            | ReadError::Foreign { path, .. } => path,
        }
    }

    /// A short message naming the file by its name only, with its cause, for lines that
    /// already name the run: `cannot read manifest.json: No such file or directory`.
    pub fn one_line(&self) -> String {
        let name = self
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.message(&name)
    }

    /// The message naming the file by its full path, with its cause.
    pub fn describe(&self) -> String {
        self.message(&format!("`{}`", self.path().display()))
    }

    fn message(&self, name: &str) -> String {
        match self {
            ReadError::Io { source, .. } => format!("cannot read {name}: {source}"),
            ReadError::Parse { source, .. } => format!("{name} is not a valid manifest: {source}"),
            ReadError::Foreign { run_id, .. } => {
                format!("{name} belongs to another run (`{run_id}`)")
            }
        }
    }
}
