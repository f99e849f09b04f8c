//! Why a snapshot or a diff could not be taken.

use std::path::PathBuf;

use crate::gitstate::git::GitError;

/// Why a snapshot or a diff could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A git command failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// A file of a plain directory could not be read.
    #[error("cannot read `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Two snapshots of different kinds cannot be compared.
    #[error("cannot compare a {from} snapshot with a {to} snapshot")]
    Mismatch {
        /// The kind of the first.
        from: &'static str,
        /// The kind of the second.
        to: &'static str,
    },
}
