//! Create-only durable writes: the first writer of a name wins, whole, and every later writer
//! learns it lost. Used for decisions dropped into a run directory by another process (an
//! approval): two approvers at once must not both "win", and the runner must never read half
//! a decision.
//!
//! `O_CREAT|O_EXCL` alone would give the first-wins rule but not atomicity: a crash between the
//! create and the write leaves an empty file that blocks every later decision. So the content
//! goes to a temp file first (written and fsynced), then `link(2)` publishes it under the final
//! name, which fails with `EEXIST` when the name is taken. Readers see no file or the whole one.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

use crate::errors::{AtomicWriteError, WriteStep};

/// Whether [`write_create_only`] published the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created `target` with the given content, durably.
    Created,
    /// `target` existed already (another writer won); nothing was written.
    Exists,
}

/// Creates `target` with `bytes` unless it exists: atomically (never partial), durably (file
/// and directory fsynced before returning `Created`), and exactly once among any number of
/// concurrent writers, threads or processes.
pub fn write_create_only(target: &Path, bytes: &[u8]) -> Result<Created, AtomicWriteError> {
    let err = |step, source| AtomicWriteError {
        path: target.to_owned(),
        step,
        source,
    };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        return Err(err(WriteStep::Create, e));
    };
    if target.exists() {
        return Ok(Created::Exists);
    }
    // The temp name follows `write_atomic`'s pattern, so a crash before the cleanup below
    // leaves a file that `remove_stale_temps` recognises.
    let (tmp, mut file) = loop {
        let suffix = crate::entropy::random_u64();
        let tmp = dir.join(format!(".{name}.{suffix:016x}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(WriteStep::Create, e)),
        }
    };
    let result = (|| {
        file.write_all(bytes)
            .map_err(|e| err(WriteStep::Write, e))?;
        file.sync_all().map_err(|e| err(WriteStep::Fsync, e))?;
        drop(file);
        match std::fs::hard_link(&tmp, target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Created::Exists),
            Err(e) => return Err(err(WriteStep::Rename, e)),
        }
        Ok(Created::Created)
    })();
    // The temp name is ours alone (create_new); the published name is a second link to the
    // same inode, so removing the temp one never touches the result.
    let _ = std::fs::remove_file(&tmp);
    if result.as_ref().is_ok_and(|c| *c == Created::Created) {
        // Both the new link and the removed temp name: the directory must reach the disk
        // before the caller reports the decision as made.
        super::fsync_dir(dir).map_err(|e| err(WriteStep::FsyncDir, e))?;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_writer_wins_and_the_rest_learn_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("decision.json");
        let wins = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..16u8 {
                let (target, wins) = (&target, &wins);
                s.spawn(move || {
                    let body = format!("{{\"writer\":{t},\"pad\":\"{}\"}}", "x".repeat(8192));
                    if write_create_only(target, body.as_bytes()).expect("no error")
                        == Created::Created
                    {
                        wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(wins.into_inner(), 1, "exactly one writer created the file");
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&target).expect("read")).expect("whole JSON");
        assert!(v["writer"].is_u64());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 1, "no temp file left behind: {left:?}");
    }

    #[test]
    fn an_existing_file_is_never_touched() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("d.json");
        std::fs::write(&target, b"first").expect("write");
        assert_eq!(
            write_create_only(&target, b"second").expect("ok"),
            Created::Exists
        );
        assert_eq!(std::fs::read(&target).expect("read"), b"first");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("nope/d.json");
        let e = write_create_only(&target, b"x").expect_err("no directory");
        assert_eq!(e.path, target);
        assert_eq!(e.step, WriteStep::Create);
    }
}
