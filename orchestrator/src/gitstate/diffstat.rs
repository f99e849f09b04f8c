//! What changed between two snapshots: counts, and the changed files by name (capped).

/// How many changed files a [`DiffStat`] lists by name (it always counts them all).
pub const DIFF_FILES_LISTED: usize = 200;

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Path relative to the snapshot's root.
    pub path: String,
    /// `added`, `modified`, `deleted` or `type-changed`.
    pub status: &'static str,
    /// Lines added (git, text files only).
    pub insertions: Option<u64>,
    /// Lines removed (git, text files only).
    pub deletions: Option<u64>,
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffStat {
    /// Files added, modified, deleted or changed in type.
    pub files_changed: usize,
    /// Lines added over every text file (0 outside git: no line counts there).
    pub insertions: u64,
    /// Lines removed over every text file.
    pub deletions: u64,
    /// The changed files, at most [`DIFF_FILES_LISTED`], sorted by path.
    pub files: Vec<FileChange>,
    /// True when more files changed than `files` lists.
    pub truncated: bool,
}

/// Sorts, counts and caps a list of changes.
pub fn stat(mut files: Vec<FileChange>, insertions: u64, deletions: u64) -> DiffStat {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let files_changed = files.len();
    let truncated = files_changed > DIFF_FILES_LISTED;
    files.truncate(DIFF_FILES_LISTED);
    DiffStat {
        files_changed,
        insertions,
        deletions,
        files,
        truncated,
    }
}
