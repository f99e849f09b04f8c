//! A snapshot of the working tree: `HEAD`, a digest of every file the work tree holds (tracked
//! and untracked-but-not-ignored, staged or not), and the difference between two snapshots.
//!
//! In a git work tree the digest is a git tree id, computed **without touching the user's
//! index**: the index is copied to a temporary file (so git's stat cache spares re-reading
//! unchanged files, and tracked files that an ignore rule would match stay in), `git add -A`
//! runs against that copy (`GIT_INDEX_FILE`), `git write-tree` turns it into a tree, and the
//! copy is deleted. The objects it writes land in the repository's object store, where an
//! unreferenced tree is garbage-collected like any other. Two snapshots of the same files have
//! the same tree id, whatever the index, the branch or the commit timestamps say, and the tree
//! id is exactly the tree a commit of those files would have (`git commit-tree`).
//!
//! Outside a git work tree the digest is `sha256:<hex>` over the sorted list of every regular
//! file and symbolic link below the directory (see `files.rs`).
//!
//! Directories the runner writes itself (`.runs`, `out`) are always left out: otherwise every
//! run would change what it measures.
//!
//! This is the one place that computes a tree digest: the loop stage, delivery and the resume
//! fingerprints all call [`take`].

use std::path::{Path, PathBuf};

use crate::gitstate::diffstat::{DiffStat, FileChange};
use crate::gitstate::errors::SnapshotError;
use crate::gitstate::files::{self, FileEntry};
use crate::gitstate::git::{Git, GitError};

/// What a snapshot was computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A git work tree: the digest is a git tree id.
    Git,
    /// A plain directory: the digest is `sha256:<hex>` over its files.
    Files,
}

impl SnapshotKind {
    /// `git` or `files`, as records spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Git => "git",
            SnapshotKind::Files => "files",
        }
    }
}

/// The state of a working tree at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Git work tree or plain directory.
    pub kind: SnapshotKind,
    /// The top of the work tree (git), or the directory (files).
    pub root: PathBuf,
    /// The commit `HEAD` points to; `None` outside git or on an unborn branch.
    pub head: Option<String>,
    /// The branch `HEAD` names (`main`); `None` when detached or outside git.
    pub branch: Option<String>,
    /// The digest of the working tree: a git tree id, or `sha256:<hex>`.
    pub tree: String,
    /// The tree of `HEAD` (git only): the working tree is clean when it equals [`tree`].
    ///
    /// [`tree`]: Snapshot::tree
    pub head_tree: Option<String>,
    /// Every file and its digest (files only): what a later diff compares against.
    pub listing: Option<Vec<FileEntry>>,
}

impl Snapshot {
    /// True when the working tree differs from `HEAD`'s tree (git only; outside git there is
    /// nothing to compare with).
    pub fn dirty(&self) -> Option<bool> {
        match self.kind {
            SnapshotKind::Git => Some(self.head_tree.as_deref() != Some(self.tree.as_str())),
            SnapshotKind::Files => None,
        }
    }
}

/// What a snapshot leaves out and how its git processes run.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Directories to leave out (absolute; ignored when outside the tree).
    pub exclude: Vec<PathBuf>,
    /// Extra variables for the git processes (the run marks them with its id, so that a
    /// resume can find what a killed runner left running).
    pub env: Vec<(String, String)>,
    /// Where the temporary index goes; default: the system's temp directory.
    pub temp_dir: Option<PathBuf>,
}

/// Takes a snapshot of the working tree containing `dir` (git), or of `dir` itself.
pub fn take(dir: &Path, opts: &SnapshotOptions) -> Result<Snapshot, SnapshotError> {
    match crate::gitstate::git::work_tree_top(dir) {
        Some(top) => take_git(&top, opts),
        None => {
            let listing = files::list(dir, &canonical_all(&opts.exclude))?;
            Ok(Snapshot {
                kind: SnapshotKind::Files,
                root: dir.to_owned(),
                head: None,
                branch: None,
                tree: files::digest(&listing),
                head_tree: None,
                listing: Some(listing),
            })
        }
    }
}

/// Only the digest of the working tree containing `dir` (see [`take`]).
pub fn tree_digest(dir: &Path, opts: &SnapshotOptions) -> Result<String, SnapshotError> {
    take(dir, opts).map(|s| s.tree)
}

fn canonical_all(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect()
}

fn take_git(top: &Path, opts: &SnapshotOptions) -> Result<Snapshot, SnapshotError> {
    let mut git = Git::in_dir(top);
    git.env.extend(opts.env.iter().cloned());
    let head = git.optional(["rev-parse", "-q", "--verify", "HEAD^{commit}"])?;
    let head_tree = match &head {
        Some(_) => git.optional(["rev-parse", "-q", "--verify", "HEAD^{tree}"])?,
        // An unborn branch: compare with the empty tree, so an empty directory is clean.
        None => Some(git.text(["hash-object", "-t", "tree", "/dev/null"])?),
    };
    let branch = git.optional(["symbolic-ref", "-q", "--short", "HEAD"])?;
    let tree = worktree_tree(&git, top, opts)?;
    Ok(Snapshot {
        kind: SnapshotKind::Git,
        root: top.to_owned(),
        head,
        branch,
        tree,
        head_tree,
        listing: None,
    })
}

/// A temporary index file, deleted (with its lock file) when dropped.
struct TempIndex(PathBuf);

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let mut lock = self.0.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}

/// The tree id of the work tree at `top`, through a copy of the index.
fn worktree_tree(git: &Git, top: &Path, opts: &SnapshotOptions) -> Result<String, SnapshotError> {
    // Never blocks on the kernel's entropy pool (see `shared_manifest::entropy`).
    let name = format!(
        "co-snapshot-{}-{:016x}.index",
        std::process::id(),
        shared_manifest::entropy::random_u64()
    );
    let dir = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let temp = TempIndex(dir.join(name));
    let index = PathBuf::from(git.text(["rev-parse", "--git-path", "index"])?);
    let index = if index.is_absolute() {
        index
    } else {
        top.join(index)
    };
    // Reading the user's index is safe: git replaces it by rename, never in place.
    match std::fs::copy(&index, &temp.0) {
        // With the index's own modification time: git trusts an entry's cached stat data
        // only when the file's mtime is older than the index file's ("racily clean" entries
        // are re-read). A copy stamped now would make a file rewritten with the same size in
        // the same clock tick as it was staged look unchanged.
        Ok(_) => {
            let stamp = std::fs::metadata(&index).and_then(|m| m.modified());
            let copy = std::fs::OpenOptions::new().write(true).open(&temp.0);
            if let Err(source) = stamp.and_then(|t| copy.and_then(|f| f.set_modified(t))) {
                return Err(GitError::Io {
                    path: temp.0.clone(),
                    source,
                }
                .into());
            }
        }
        // A repository without an index yet (nothing ever staged): start from nothing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(GitError::Io {
                path: temp.0.clone(),
                source,
            }
            .into())
        }
    }
    let git = git.with_env("GIT_INDEX_FILE", temp.0.to_string_lossy().into_owned());
    let top_real = std::fs::canonicalize(top).unwrap_or_else(|_| top.to_owned());
    let mut args: Vec<String> = vec!["add".into(), "-A".into(), "--".into(), ".".into()];
    for ex in canonical_all(&opts.exclude) {
        let Ok(rel) = ex.strip_prefix(&top_real) else {
            continue;
        };
        let rel = rel.to_string_lossy().into_owned();
        // An ignored directory is left out anyway, and naming it in a pathspec makes
        // `git add` fail ("paths are ignored"): exclude only what git would add.
        let ignored = git
            .run(["check-ignore", "-q", "--no-index", "--", &rel])
            .is_ok();
        if !rel.is_empty() && !ignored {
            args.push(format!(":(exclude,literal){rel}"));
        }
    }
    git.run(&args)?;
    Ok(git.text(["write-tree"])?)
}

/// What changed from `from` to `to` (two snapshots of the same tree).
pub fn diff(
    from: &Snapshot,
    to: &Snapshot,
    opts: &SnapshotOptions,
) -> Result<DiffStat, SnapshotError> {
    match (from.kind, to.kind) {
        (SnapshotKind::Git, SnapshotKind::Git) => {
            let mut git = Git::in_dir(&to.root);
            git.env.extend(opts.env.iter().cloned());
            diff_trees(&git, &from.tree, &to.tree)
        }
        (SnapshotKind::Files, SnapshotKind::Files) => {
            let empty = Vec::new();
            Ok(files::diff(
                from.listing.as_ref().unwrap_or(&empty),
                to.listing.as_ref().unwrap_or(&empty),
            ))
        }
        (a, b) => Err(SnapshotError::Mismatch {
            from: a.as_str(),
            to: b.as_str(),
        }),
    }
}

/// `git diff-tree` between two tree ids: one pass for the line counts, one for the statuses.
pub fn diff_trees(git: &Git, from: &str, to: &str) -> Result<DiffStat, SnapshotError> {
    if from == to {
        return Ok(DiffStat::default());
    }
    let base = ["diff-tree", "-r", "-z", "--no-renames", "--no-ext-diff"];
    let numstat = git.run(base.iter().copied().chain(["--numstat", from, to]))?;
    let statuses = git.run(base.iter().copied().chain(["--name-status", from, to]))?;
    let mut files: Vec<FileChange> = Vec::new();
    // `--name-status -z`: `<status>\0<path>\0` per file.
    let mut parts = statuses.split(|&b| b == 0).filter(|p| !p.is_empty());
    while let (Some(status), Some(path)) = (parts.next(), parts.next()) {
        files.push(FileChange {
            path: String::from_utf8_lossy(path).into_owned(),
            status: match status.first() {
                Some(b'A') => "added",
                Some(b'D') => "deleted",
                Some(b'T') => "type-changed",
                _ => "modified",
            },
            insertions: None,
            deletions: None,
        });
    }
    // `--numstat -z`: `<added>\t<removed>\t<path>\0` per file; `-` for binary files.
    let (mut insertions, mut deletions) = (0u64, 0u64);
    for entry in numstat.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let mut f = text.splitn(3, '\t');
        let (Some(a), Some(d), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (a, d) = (a.parse::<u64>().ok(), d.parse::<u64>().ok());
        insertions += a.unwrap_or(0);
        deletions += d.unwrap_or(0);
        if let Some(file) = files.iter_mut().find(|c| c.path == path) {
            file.insertions = a;
            file.deletions = d;
        }
    }
    Ok(crate::gitstate::diffstat::stat(
        files, insertions, deletions,
    ))
}

#[cfg(test)]
mod tests;
