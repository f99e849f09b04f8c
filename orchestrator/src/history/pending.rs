//! Runs that ended but are not in the index yet.
//!
//! A runner does not open the index at its end: opening SQLite, checking its schema and
//! writing a transaction cost a few milliseconds and about two hundred syscalls on the exit
//! path of every run, for data that is derived and rebuildable. The runner only appends its
//! manifest's path to `.runs/index.pending` (one line, one `write`, no fsync), and whoever
//! opens the index next (a `runs` query) records those runs first.
//!
//! Concurrency: appenders hold an exclusive `flock` on the file while they write their line;
//! the reader takes the file away by renaming it to `index.pending.taken-<unique>` under that
//! same lock, so no line is half written when it reads. An appender that locked the file after
//! it was renamed sees that its descriptor is no longer `index.pending` and appends again to
//! the new one. Readers take turns under the index's own lock (the caller holds it). A reader
//! that dies after the rename leaves its taken file, which the next reader records too;
//! recording a run twice replaces its rows. A line lost to a power cut (no fsync) leaves that
//! run out of the index until `runs reindex` (or the next rebuild): derived data.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::errors::HistoryError;
use crate::record::layout::Roots;

/// The notes, in `.runs`.
const FILE_NAME: &str = "index.pending";
/// Notes a reader took: `index.pending.taken-<pid>-<nanoseconds>`.
const TAKEN_PREFIX: &str = "index.pending.taken";
/// An appender retries this often when readers keep taking the file between its open and its
/// lock (each retry means a reader just took a whole file: it cannot go on for long).
const APPEND_TRIES: usize = 8;

/// Notes that the run whose manifest is `manifest` ended, for the next reader of the index.
pub fn note(roots: &Roots, manifest: &Path) -> Result<(), HistoryError> {
    let path = roots.runs.join(FILE_NAME);
    let mut line = roots.rel(manifest);
    line.push('\n');
    let io = |e| HistoryError::io(&path, e);
    for _ in 0..APPEND_TRIES {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let mut locked =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| io(errno.into()))?;
        // Still the file named `index.pending`, not one a reader has taken meanwhile?
        let ours = locked.metadata().map_err(io)?.ino();
        match std::fs::metadata(&path) {
            Ok(m) if m.ino() == ours => return locked.write_all(line.as_bytes()).map_err(io),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
    }
    Err(io(std::io::Error::other("readers kept taking the file")))
}

/// True when there may be notes to take (one `stat`, for the common case of none).
pub(super) fn any(runs: &Path) -> bool {
    runs.join(FILE_NAME).exists() || !taken_files(runs).is_empty()
}

/// Notes taken from `index.pending` (and from earlier readers that died): the manifests to
/// record, repo-relative or absolute. Forget them once they are recorded.
pub(super) struct Notes {
    /// One line per noted run, each once.
    pub(super) manifests: Vec<String>,
    files: Vec<PathBuf>,
}

impl Notes {
    /// Removes the taken files: their runs are in the index.
    pub(super) fn forget(self) -> Result<(), HistoryError> {
        for f in &self.files {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(HistoryError::io(f, e)),
            }
        }
        Ok(())
    }
}

/// Takes every note. The caller holds the index's lock, so no other reader takes them too.
pub(super) fn take(runs: &Path) -> Result<Notes, HistoryError> {
    let pending = runs.join(FILE_NAME);
    match std::fs::File::open(&pending) {
        Ok(file) => {
            let locked = Flock::lock(file, FlockArg::LockExclusive)
                .map_err(|(_, errno)| HistoryError::io(&pending, errno.into()))?;
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let taken = runs.join(format!("{TAKEN_PREFIX}-{}-{stamp}", std::process::id()));
            std::fs::rename(&pending, &taken).map_err(|e| HistoryError::io(&pending, e))?;
            drop(locked);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HistoryError::io(&pending, e)),
    }
    let files = taken_files(runs);
    let mut manifests: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| HistoryError::io(f, e))?;
        for line in text.lines().filter(|l| !l.is_empty()) {
            if seen.insert(line.to_owned()) {
                manifests.push(line.to_owned());
            }
        }
    }
    Ok(Notes { manifests, files })
}

/// Files of taken notes in `runs`, oldest name first.
fn taken_files(runs: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(runs) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(TAKEN_PREFIX))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// A noted path: relative to the repo root, or absolute (a runs directory outside the repo).
pub(super) fn resolve(roots: &Roots, line: &str) -> PathBuf {
    let p = Path::new(line);
    if p.is_absolute() {
        p.to_owned()
    } else {
        roots.repo.join(p)
    }
}
