//! A `git` delivery: the work tree (tracked and untracked-but-not-ignored files, as a snapshot
//! sees them) committed on top of `HEAD` and pushed to a branch of a remote — without moving
//! the user's branch, `HEAD` or index. The commit is made with `git commit-tree` from the
//! snapshot's tree (no index involved) and pushed by id (`git push <remote>
//! <commit>:refs/heads/<branch>`); no local branch is created. Its dates are the run's end,
//! so a retried delivery makes the very same commit and its push is a no-op.

use std::path::Path;

use crate::delivery::errors::DeliveryError;
use crate::gitstate::{Git, SnapshotKind, SnapshotOptions};

/// The identity used when git has none configured (`user.name`, `user.email`).
const FALLBACK_NAME: &str = "codex-orchestrator";
const FALLBACK_EMAIL: &str = "codex-orchestrator@localhost";

/// A commit of the work tree, or the news that there was nothing to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The new commit; `None` when the work tree equals `HEAD`'s tree.
    pub commit: Option<String>,
    /// `HEAD` (its parent), if any.
    pub parent: Option<String>,
    /// The tree committed (the snapshot's digest).
    pub tree: String,
}

/// Commits the work tree containing `repo` with `message`, dated `at` (Unix seconds).
pub fn commit(
    repo: &Path,
    opts: &SnapshotOptions,
    message: &str,
    at: u64,
) -> Result<Committed, DeliveryError> {
    let snap = crate::gitstate::take(repo, opts)?;
    if snap.kind != SnapshotKind::Git {
        return Err(DeliveryError::NotGit(repo.to_owned()));
    }
    if snap.dirty() == Some(false) {
        return Ok(Committed {
            commit: None,
            parent: snap.head,
            tree: snap.tree,
        });
    }
    let mut git = Git::in_dir(&snap.root);
    git.env.extend(opts.env.iter().cloned());
    let date = format!("@{at} +0000");
    git = git
        .with_env("GIT_AUTHOR_DATE", date.clone())
        .with_env("GIT_COMMITTER_DATE", date);
    // Without a configured identity `commit-tree` refuses; a delivery must not fail for that.
    if git.run(["var", "GIT_COMMITTER_IDENT"]).is_err() {
        for (k, v) in [
            ("GIT_AUTHOR_NAME", FALLBACK_NAME),
            ("GIT_AUTHOR_EMAIL", FALLBACK_EMAIL),
            ("GIT_COMMITTER_NAME", FALLBACK_NAME),
            ("GIT_COMMITTER_EMAIL", FALLBACK_EMAIL),
        ] {
            git = git.with_env(k, v);
        }
    }
    let mut args = vec!["commit-tree".to_owned(), snap.tree.clone()];
    if let Some(head) = &snap.head {
        args.push("-p".into());
        args.push(head.clone());
    }
    args.push("-m".into());
    args.push(message.to_owned());
    let commit = git.text(&args)?;
    Ok(Committed {
        commit: Some(commit),
        parent: snap.head,
        tree: snap.tree,
    })
}

/// Pushes `commit` to `refs/heads/<branch>` of `remote`.
pub fn push(
    repo: &Path,
    opts: &SnapshotOptions,
    remote: &str,
    commit: &str,
    branch: &str,
) -> Result<(), DeliveryError> {
    let mut git = Git::in_dir(repo);
    git.env.extend(opts.env.iter().cloned());
    git.run([
        "push",
        "--quiet",
        remote,
        &format!("{commit}:refs/heads/{branch}"),
    ])?;
    Ok(())
}

/// Checks, before a run starts, that `repo` is in a git work tree with remote `remote`.
pub fn check_remote(repo: &Path, remote: &str) -> Result<(), String> {
    let git = Git::in_dir(repo);
    if crate::gitstate::git::work_tree_top(repo).is_none() {
        return Err(format!(
            "`{}` is not in a git work tree (git and github deliveries push a commit)",
            repo.display()
        ));
    }
    git.run(["remote", "get-url", remote])
        .map(|_| ())
        .map_err(|_| format!("the repository has no remote `{remote}` (see `git remote -v`)"))
}

/// Checks that `branch` is a valid branch name.
pub fn check_branch(repo: &Path, branch: &str) -> Result<(), DeliveryError> {
    Git::in_dir(repo)
        .run(["check-ref-format", "--branch", branch])
        .map(|_| ())
        .map_err(|_| DeliveryError::Other(format!("`{branch}` is not a valid branch name")))
}
