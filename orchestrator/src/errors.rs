//! The binary's error type and its one map to exit codes. Only `main_impl` prints errors.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;
use crate::exit;
use crate::modes::ModeError;

/// Everything that can end a command before or outside a run's own outcome.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad usage (flags, arguments).
    #[error("{0}")]
    Usage(String),
    /// Bad config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Impossible mode request.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// Run-state conflict: not found, locked, cannot resume.
    #[error("{0}")]
    Conflict(String),
    /// `.runs` could not be written.
    #[error("cannot write `{}`", path.display())]
    Storage {
        /// What could not be written.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An atomic write failed.
    #[error(transparent)]
    Write(#[from] shared_manifest::errors::AtomicWriteError),
    /// The manifest persister failed.
    #[error("cannot record the run")]
    Persist(#[from] shared_manifest::PersistError),
    /// A stage log could not be written.
    #[error("cannot write a stage log")]
    Exec(#[from] exec::ExecError),
}

impl AppError {
    /// A storage failure at `path`.
    pub fn storage(path: &Path, source: std::io::Error) -> AppError {
        AppError::Storage {
            path: path.to_owned(),
            source,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            AppError::Usage(_) | AppError::Config(_) | AppError::Mode(_) => exit::USAGE,
            AppError::Conflict(_) => exit::CONFLICT,
            AppError::Storage { .. }
            | AppError::Write(_)
            | AppError::Persist(_)
            | AppError::Exec(_) => exit::STORAGE,
        }
    }
}
