//! Resource locks (`locks: ["deploy", ...]` on a stage): two stages holding the same name never
//! run at once, in one run or across runs of the same `.runs`. Each name is an exclusive
//! `flock` on `.runs/.locks/<name>.lock`, so a runner killed with `kill -9` releases its locks
//! with its file descriptors: no stale lock ever blocks.
//!
//! A stage's locks are taken all or nothing, in sorted order, without blocking: when one is
//! busy, every one taken so far is released and the caller tries again later. Nobody holds a
//! lock while waiting for another, so a lock cycle (stage A holds `a` and wants `b`, stage B
//! the reverse) cannot deadlock. `flock` locks belong to the open file, so two stages of the
//! same runner exclude each other exactly like two runners do.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the lock files are, under `.runs`.
pub const DIR: &str = ".locks";

/// Locks held by one stage; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct HeldLocks {
    _held: Vec<Flock<File>>,
}

/// The lock file of `name` under `runs`.
pub fn lock_path(runs: &Path, name: &str) -> PathBuf {
    runs.join(DIR).join(format!("{name}.lock"))
}

/// Takes every lock in `names` (sorted by the caller's config, unique) or none: `Ok(None)` when
/// one of them is held elsewhere. Never blocks.
pub fn try_acquire_all(runs: &Path, names: &[String]) -> std::io::Result<Option<HeldLocks>> {
    let dir = runs.join(DIR);
    shared_manifest::atomic::create_dir_all_durable(&dir)?;
    let mut held = Vec::with_capacity(names.len());
    for name in names {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(runs, name))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => held.push(lock),
            // Busy: release what we took (dropping `held`) and report.
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(std::io::Error::from(errno)),
        }
    }
    Ok(Some(HeldLocks { _held: held }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_shared_name_excludes_and_release_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = try_acquire_all(dir.path(), &names(&["db", "deploy"]))
            .expect("io")
            .expect("free");
        assert!(
            try_acquire_all(dir.path(), &names(&["deploy"]))
                .expect("io")
                .is_none(),
            "held by another stage of the same process"
        );
        let other = try_acquire_all(dir.path(), &names(&["cache"]))
            .expect("io")
            .expect("an unrelated name is free");
        drop(a);
        assert!(try_acquire_all(dir.path(), &names(&["deploy"]))
            .expect("io")
            .is_some());
        drop(other);
    }

    #[test]
    fn a_busy_lock_releases_the_ones_taken_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = try_acquire_all(dir.path(), &names(&["b"]))
            .expect("io")
            .expect("free");
        // `a` is free and taken first, then `b` is busy: `a` must not stay held.
        assert!(try_acquire_all(dir.path(), &names(&["a", "b"]))
            .expect("io")
            .is_none());
        assert!(
            try_acquire_all(dir.path(), &names(&["a"]))
                .expect("io")
                .is_some(),
            "all or nothing"
        );
        drop(b);
    }
}
