//! Why a delivery step failed. Recorded in the run's `delivery[]` entry (one line, causes
//! included); the run's own status is never changed by it.

use std::path::PathBuf;

use crate::gitstate::{GitError, SnapshotError};

/// A failed delivery step.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A git command failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The work tree could not be snapshotted.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// `git` and `github` deliveries need a git work tree.
    #[error("`{}` is not in a git work tree", .0.display())]
    NotGit(PathBuf),
    /// A file of the evidence could not be read or written.
    #[error("cannot write or read `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `gh` could not be started.
    #[error("cannot run `gh {args}` (the GitHub CLI; install it and run `gh auth login`)")]
    GhSpawn {
        /// Its arguments.
        args: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `gh` ran and failed.
    #[error("`gh {args}` failed with exit code {code}: {output}")]
    Gh {
        /// Its arguments.
        args: String,
        /// Its exit code (-1: killed).
        code: i32,
        /// Its stderr (or stdout), trimmed and capped.
        output: String,
    },
    /// Anything else, said in words (a template, an unexpected answer).
    #[error("{0}")]
    Other(String),
}

impl DeliveryError {
    /// The error and its causes on one line, for the record.
    pub fn one_line(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(s) = source {
            let more = s.to_string();
            if !text.contains(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            source = s.source();
        }
        text
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> DeliveryError {
        DeliveryError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
