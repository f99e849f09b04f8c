//! Exec errors. Only the runner's own I/O can fail a stage's execution: writing its logs, or
//! waiting for its process. A command that cannot start, fails, times out or is cancelled is an
//! [`Outcome`](crate::Outcome), not an error.

use std::path::PathBuf;

/// Why running a stage could not be completed (and recorded).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// A log file could not be created or opened.
    #[error("open log `{}`", path.display())]
    Open {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A log file could not be written or synced (disk full, I/O error).
    #[error("write log `{}`", path.display())]
    Write {
        /// The log file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the stage's process failed (the OS refused `waitpid`).
    #[error("wait for stage process {pid} (`sh -c` in `{}`)", cwd.display())]
    Wait {
        /// Pid of the stage's `sh`.
        pid: u32,
        /// Its working directory, to say which stage it was.
        cwd: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ExecError {
    /// The file (log) or directory (stage cwd) the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ExecError::Open { path, .. } | ExecError::Write { path, .. } => path,
            ExecError::Wait { cwd, .. } => cwd,
        }
    }
}
