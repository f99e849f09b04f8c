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
    /// The result could not be written to stdout (exit 4, like storage: an I/O failure).
    #[error(transparent)]
    Output(#[from] crate::console::StdoutError),
    /// A bug: a stage task panicked. (An illegal state transition arrives as
    /// `Persist(PersistError::Apply)`.) The run is recorded failed with `internal-error`.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A storage failure at `path`.
    pub fn storage(path: &Path, source: std::io::Error) -> AppError {
        AppError::Storage {
            path: path.to_owned(),
            source,
        }
    }

    /// A bug in the runner rather than a storage or input problem: an illegal state transition
    /// refused by the manifest, or a stage task that panicked. The run fails (exit 1) with
    /// `status_detail` `internal-error`, never a silent overwrite and never "storage".
    pub fn is_internal(&self) -> bool {
        matches!(
            self,
            AppError::Internal(_) | AppError::Persist(shared_manifest::PersistError::Apply(_))
        )
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        if self.is_internal() {
            return exit::RUN_FAILED;
        }
        match self {
            AppError::Config(e) if e.is_storage() => exit::STORAGE,
            AppError::Usage(_) | AppError::Config(_) | AppError::Mode(_) => exit::USAGE,
            AppError::Conflict(_) => exit::CONFLICT,
            AppError::Storage { .. }
            | AppError::Write(_)
            | AppError::Persist(_)
            | AppError::Exec(_)
            | AppError::Output(_) => exit::STORAGE,
            AppError::Internal(_) => exit::RUN_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_illegal_transition_is_an_internal_error_not_a_storage_failure() {
        let illegal = AppError::Persist(shared_manifest::PersistError::Apply(
            shared_manifest::ApplyError("illegal stage transition: succeeded on Start".into()),
        ));
        assert!(illegal.is_internal());
        assert_eq!(illegal.exit_code(), exit::RUN_FAILED);
        assert_eq!(AppError::Internal("x".into()).exit_code(), exit::RUN_FAILED);
        let closed = AppError::Persist(shared_manifest::PersistError::Closed);
        assert!(!closed.is_internal());
        assert_eq!(closed.exit_code(), exit::STORAGE);
        let disk = AppError::storage(Path::new(".runs"), std::io::Error::other("full"));
        assert_eq!(disk.exit_code(), exit::STORAGE);
    }
}
