//! Errors of the run history index. Queries turn them into `AppError`s (exit 4: the index lives
//! under `.runs` and could not be used or recreated); after a run they are only warnings.

use std::path::{Path, PathBuf};

use crate::errors::AppError;

/// What can go wrong with `.runs/index.sqlite`.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite refused an operation on the index.
    #[error("cannot use the run index `{}`", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// A file around the index (its lock, a corrupt copy to remove) could not be used.
    #[error("cannot use `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl HistoryError {
    pub(crate) fn index(path: &Path, source: rusqlite::Error) -> HistoryError {
        HistoryError::Index {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> HistoryError {
        HistoryError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when SQLite found the file damaged: rebuild it and try again.
    pub fn is_corrupt(&self) -> bool {
        match self {
            HistoryError::Index { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
            ),
            HistoryError::Io { .. } => false,
        }
    }

    /// The error and its causes on one line, for a `warning:`.
    pub fn one_line(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }
}

impl From<HistoryError> for AppError {
    fn from(e: HistoryError) -> AppError {
        // A storage failure (exit 4): the index could be neither read nor recreated. The
        // path stays in the message, the SQLite or io error becomes the cause.
        match e {
            HistoryError::Index { path, source } => {
                AppError::storage(&path, std::io::Error::other(source))
            }
            HistoryError::Io { path, source } => AppError::storage(&path, source),
        }
    }
}
