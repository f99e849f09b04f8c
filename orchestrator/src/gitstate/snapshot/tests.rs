//! Snapshots against real git in temp repositories.

use std::path::Path;
use std::process::Command;

use super::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(dir.path().join("a.txt"), "one\ntwo\n").expect("w");
    std::fs::write(dir.path().join(".gitignore"), "*.log\n").expect("w");
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "first"]);
    dir
}

fn write(dir: &Path, name: &str, text: &str) {
    if let Some(parent) = dir.join(name).parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(dir.join(name), text).expect("write");
}

fn opts(exclude: &[&Path]) -> SnapshotOptions {
    SnapshotOptions {
        exclude: exclude.iter().map(|p| p.to_path_buf()).collect(),
        ..SnapshotOptions::default()
    }
}

#[test]
fn a_clean_tree_is_the_head_tree() {
    let r = repo();
    let s = take(r.path(), &opts(&[])).expect("snapshot");
    assert_eq!(s.kind, SnapshotKind::Git);
    assert_eq!(
        s.head.as_deref(),
        Some(git(r.path(), &["rev-parse", "HEAD"]).as_str())
    );
    assert_eq!(s.tree, git(r.path(), &["rev-parse", "HEAD^{tree}"]));
    assert_eq!(s.branch.as_deref(), Some("main"));
    assert_eq!(s.dirty(), Some(false));
}

#[test]
fn untracked_and_unstaged_files_count_and_the_users_index_is_untouched() {
    let r = repo();
    write(r.path(), "a.txt", "one\nTWO\nthree\n");
    write(r.path(), "new/b.txt", "b\n");
    write(r.path(), "ignored.log", "noise\n");
    // Something staged that the work tree then changes again: the work tree wins.
    write(r.path(), "staged.txt", "staged\n");
    git(r.path(), &["add", "staged.txt"]);
    write(r.path(), "staged.txt", "changed after staging\n");
    let index = r.path().join(".git/index");
    // `git status` itself may refresh the index: once before looking, and never while looking.
    git(r.path(), &["status", "--porcelain"]);
    let before = (
        std::fs::read(&index).expect("index"),
        std::fs::metadata(&index)
            .expect("meta")
            .modified()
            .expect("mtime"),
        git(r.path(), &["status", "--porcelain"]),
    );
    let s = take(r.path(), &opts(&[])).expect("snapshot");
    let after = (
        std::fs::read(&index).expect("index"),
        std::fs::metadata(&index)
            .expect("meta")
            .modified()
            .expect("mtime"),
        git(r.path(), &["status", "--porcelain"]),
    );
    assert_eq!(before, after, "the user's index is exactly as it was");
    assert_eq!(s.dirty(), Some(true));
    // The reference: the same files committed the ordinary way in a copy.
    let listing = git(r.path(), &["ls-tree", "-r", "--name-only", &s.tree]);
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names, [".gitignore", "a.txt", "new/b.txt", "staged.txt"]);
    let blob = git(
        r.path(),
        &["cat-file", "-p", &format!("{}:staged.txt", s.tree)],
    );
    assert_eq!(blob, "changed after staging");
    // No temporary index is left behind.
    let scratch = tempfile::tempdir().expect("scratch");
    let with_scratch = SnapshotOptions {
        temp_dir: Some(scratch.path().to_owned()),
        ..opts(&[])
    };
    assert_eq!(take(r.path(), &with_scratch).expect("again").tree, s.tree);
    let leftovers = std::fs::read_dir(scratch.path()).expect("scratch").count();
    assert_eq!(leftovers, 0);
}

#[test]
fn a_tracked_file_matching_an_ignore_rule_stays_in() {
    let r = repo();
    write(r.path(), "kept.log", "tracked on purpose\n");
    git(r.path(), &["add", "-f", "kept.log"]);
    git(r.path(), &["commit", "-q", "-m", "force-add"]);
    let s = take(r.path(), &opts(&[])).expect("snapshot");
    assert_eq!(s.dirty(), Some(false), "kept.log is part of the tree");
}

#[test]
fn the_runners_own_directories_are_left_out_and_digests_are_stable() {
    let r = repo();
    let runs = r.path().join(".runs");
    write(r.path(), ".runs/0101/cli/x/manifest.json", "{}");
    let a = take(r.path(), &opts(&[&runs])).expect("a");
    write(
        r.path(),
        ".runs/0101/cli/x/manifest.json",
        "{\"changed\":1}",
    );
    let b = take(r.path(), &opts(&[&runs])).expect("b");
    assert_eq!(a.tree, b.tree);
    assert_eq!(a.dirty(), Some(false));
    // Without the exclusion the run directory would be measured.
    let c = take(r.path(), &opts(&[])).expect("c");
    assert_ne!(c.tree, a.tree);
}

#[test]
fn diff_counts_lines_and_names_files() {
    let r = repo();
    let a = take(r.path(), &opts(&[])).expect("a");
    write(r.path(), "a.txt", "one\nTWO\nthree\n");
    write(r.path(), "b.bin", "\0\x01binary");
    std::fs::remove_file(r.path().join(".gitignore")).expect("rm");
    let b = take(r.path(), &opts(&[])).expect("b");
    let d = diff(&a, &b, &opts(&[])).expect("diff");
    assert_eq!(d.files_changed, 3);
    assert_eq!((d.insertions, d.deletions), (2, 2));
    let files: Vec<(&str, &str, Option<u64>)> = d
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.status, f.insertions))
        .collect();
    assert_eq!(
        files,
        [
            (".gitignore", "deleted", Some(0)),
            ("a.txt", "modified", Some(2)),
            ("b.bin", "added", None),
        ]
    );
    assert_eq!(diff(&b, &b, &opts(&[])).expect("same"), DiffStat::default());
}

#[test]
fn an_unborn_branch_is_clean_only_when_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q"]);
    let empty = take(dir.path(), &opts(&[])).expect("empty");
    assert_eq!(empty.head, None);
    assert_eq!(empty.dirty(), Some(false));
    write(dir.path(), "x", "x");
    assert_eq!(take(dir.path(), &opts(&[])).expect("x").dirty(), Some(true));
}

#[test]
fn outside_git_the_digest_covers_file_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "a.txt", "a");
    write(dir.path(), "sub/b.txt", "b");
    write(dir.path(), ".runs/x", "run output");
    let runs = dir.path().join(".runs");
    let a = take(dir.path(), &opts(&[&runs])).expect("a");
    assert_eq!(a.kind, SnapshotKind::Files);
    assert!(
        a.tree.starts_with("sha256:") && a.tree.len() == 71,
        "{}",
        a.tree
    );
    assert_eq!(a.dirty(), None);
    write(dir.path(), ".runs/x", "more run output");
    assert_eq!(
        take(dir.path(), &opts(&[&runs])).expect("same").tree,
        a.tree
    );
    write(dir.path(), "sub/b.txt", "B");
    write(dir.path(), "c.txt", "c");
    let b = take(dir.path(), &opts(&[&runs])).expect("b");
    assert_ne!(a.tree, b.tree);
    let d = diff(&a, &b, &opts(&[])).expect("diff");
    let files: Vec<(&str, &str)> = d
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.status))
        .collect();
    assert_eq!(files, [("c.txt", "added"), ("sub/b.txt", "modified")]);
    // The same content elsewhere has the same digest: it is a function of the files only.
    let other = tempfile::tempdir().expect("tempdir");
    write(other.path(), "a.txt", "a");
    write(other.path(), "sub/b.txt", "B");
    write(other.path(), "c.txt", "c");
    assert_eq!(take(other.path(), &opts(&[])).expect("o").tree, b.tree);
}

#[test]
fn a_diff_listing_is_capped_but_counts_everything() {
    let files: Vec<FileChange> = (0..250)
        .map(|i| FileChange {
            path: format!("f{i:03}"),
            status: "added",
            insertions: Some(1),
            deletions: Some(0),
        })
        .collect();
    let d = crate::gitstate::diffstat::stat(files, 250, 0);
    assert_eq!(d.files_changed, 250);
    assert_eq!(d.files.len(), crate::gitstate::diffstat::DIFF_FILES_LISTED);
    assert!(d.truncated);
}
