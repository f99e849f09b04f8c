//! A loop's snapshots: the work tree before and after each build, with what changed since the
//! loop's previous snapshot, turned into the manifest's record. The digest itself is
//! `gitstate`'s; outside git the file listing of each snapshot is kept in the loop's directory
//! (`snapshots/<hex>.json`) so that a later diff, possibly by a resumed runner, can name the
//! files that changed.

use std::path::{Path, PathBuf};

use shared_manifest::work_record::{
    DiffRecord, FileChangeRecord, SnapshotRecord, DIFF_FILES_RECORDED,
};

use crate::engine::state::RunState;
use crate::gitstate::files::FileEntry;
use crate::gitstate::{DiffStat, Git, Snapshot, SnapshotKind, SnapshotOptions};

/// What a loop's snapshot leaves out (the runner's own directories) and how its git processes
/// are marked (with the run id, so a resume finds them if the runner is killed meanwhile).
pub(crate) fn options(run: &RunState) -> SnapshotOptions {
    let roots = &run.ctx.roots;
    SnapshotOptions {
        exclude: vec![roots.runs.clone(), roots.out.clone()],
        env: vec![(crate::env_vars::RUN_ID.to_owned(), run.dir.run_id.clone())],
        temp_dir: None,
    }
}

/// A snapshot and what changed since `previous`, computed off the async workers.
pub(crate) async fn take(
    run: &RunState,
    loop_dir: &Path,
    previous: Option<&SnapshotRecord>,
) -> Result<(SnapshotRecord, Option<DiffStat>), String> {
    let repo = run.ctx.roots.repo.clone();
    let opts = options(run);
    let listings = loop_dir.join("snapshots");
    let previous = previous.cloned();
    tokio::task::spawn_blocking(move || take_blocking(&repo, &opts, &listings, previous.as_ref()))
        .await
        .map_err(|e| format!("the snapshot task failed: {e}"))?
}

fn take_blocking(
    repo: &Path,
    opts: &SnapshotOptions,
    listings: &Path,
    previous: Option<&SnapshotRecord>,
) -> Result<(SnapshotRecord, Option<DiffStat>), String> {
    let snap = crate::gitstate::take(repo, opts).map_err(|e| one_line(&e))?;
    if let Some(listing) = &snap.listing {
        save_listing(listings, &snap.tree, listing)?;
    }
    let diff = match previous {
        None => None,
        Some(prev) => diff_since(&snap, prev, opts, listings),
    };
    let record = SnapshotRecord {
        kind: snap.kind.as_str().to_owned(),
        head: snap.head.clone(),
        branch: snap.branch.clone(),
        tree: snap.tree.clone(),
        dirty: snap.dirty(),
        taken_at: crate::time::now(),
        diff: diff
            .as_ref()
            .zip(previous)
            .map(|(d, p)| record_of(d, &p.tree)),
    };
    Ok((record, diff))
}

/// What changed from the snapshot recorded as `prev` to `snap`; `None` when it cannot be
/// told (a listing lost outside git, a tree garbage-collected meanwhile): the record then
/// has the digests only.
fn diff_since(
    snap: &Snapshot,
    prev: &SnapshotRecord,
    opts: &SnapshotOptions,
    listings: &Path,
) -> Option<DiffStat> {
    match snap.kind {
        SnapshotKind::Git if prev.kind == "git" => {
            let mut git = Git::in_dir(&snap.root);
            git.env.extend(opts.env.iter().cloned());
            crate::gitstate::snapshot::diff_trees(&git, &prev.tree, &snap.tree).ok()
        }
        SnapshotKind::Files if prev.kind == "files" => {
            let before = load_listing(listings, &prev.tree)?;
            Some(crate::gitstate::files::diff(
                &before,
                snap.listing.as_deref().unwrap_or_default(),
            ))
        }
        _ => None,
    }
}

/// The manifest's record of a diff: counts, and the first few files.
pub(crate) fn record_of(d: &DiffStat, against: &str) -> DiffRecord {
    DiffRecord {
        against: against.to_owned(),
        files_changed: d.files_changed as u64,
        insertions: d.insertions,
        deletions: d.deletions,
        files: d
            .files
            .iter()
            .take(DIFF_FILES_RECORDED)
            .map(|f| FileChangeRecord {
                path: f.path.clone(),
                status: f.status.to_owned(),
                insertions: f.insertions,
                deletions: f.deletions,
            })
            .collect(),
        truncated: d.truncated || d.files.len() > DIFF_FILES_RECORDED,
    }
}

fn listing_path(dir: &Path, tree: &str) -> PathBuf {
    dir.join(format!("{}.json", tree.trim_start_matches("sha256:")))
}

fn save_listing(dir: &Path, tree: &str, listing: &[FileEntry]) -> Result<(), String> {
    let path = listing_path(dir, tree);
    if path.exists() {
        return Ok(());
    }
    shared_manifest::atomic::create_dir_all_durable(dir).map_err(|e| one_line(&e))?;
    let bytes = serde_json::to_vec(listing).map_err(|e| e.to_string())?;
    shared_manifest::atomic::write_atomic(&path, &bytes).map_err(|e| one_line(&e))
}

fn load_listing(dir: &Path, tree: &str) -> Option<Vec<FileEntry>> {
    let bytes = std::fs::read(listing_path(dir, tree)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An error and its causes on one line.
pub(crate) fn one_line(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What changed between two recorded snapshots (the feedback's full list, beyond what the
/// record names); `None` when it cannot be told any more.
pub(crate) async fn diff_of(
    run: &RunState,
    loop_dir: &Path,
    from: &SnapshotRecord,
    to: &SnapshotRecord,
) -> Option<DiffStat> {
    let repo = run.ctx.roots.repo.clone();
    let opts = options(run);
    let listings = loop_dir.join("snapshots");
    let (from, to) = (from.clone(), to.clone());
    tokio::task::spawn_blocking(move || {
        if from.tree == to.tree {
            return Some(DiffStat::default());
        }
        match (from.kind.as_str(), to.kind.as_str()) {
            ("git", "git") => {
                let top = crate::gitstate::git::work_tree_top(&repo)?;
                let mut git = Git::in_dir(&top);
                git.env.extend(opts.env.iter().cloned());
                crate::gitstate::snapshot::diff_trees(&git, &from.tree, &to.tree).ok()
            }
            ("files", "files") => Some(crate::gitstate::files::diff(
                &load_listing(&listings, &from.tree)?,
                &load_listing(&listings, &to.tree)?,
            )),
            _ => None,
        }
    })
    .await
    .ok()
    .flatten()
}
