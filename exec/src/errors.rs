//! Exec errors: only log I/O can fail a stage's execution (a process that cannot start is an
//! `Outcome`, not an error).

use std::path::PathBuf;

/// A stage log could not be written.
#[derive(Debug, thiserror::Error)]
#[error("write log `{}`", path.display())]
pub struct ExecError {
    /// The log file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}
