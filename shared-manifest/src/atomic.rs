//! The one durable write path: temp file in the target's directory with a collision-free random
//! name, write, fsync, rename over the target, fsync the directory. Readers see the old or the
//! new content, never a mix; after the function returns, a power cut keeps the new content.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::errors::{AtomicWriteError, WriteStep};

mod create_only;
pub use create_only::{write_create_only, Created};

/// Writes `bytes` to `target` atomically and durably.
///
/// Several writers of the same target (threads or processes) never collide: each has its own
/// temp file, and the last rename wins with a complete payload. On failure the target keeps its
/// previous content and the temp file is removed.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_with(target, bytes, true)
}

/// [`write_atomic`] without the fsyncs: readers still see the old or the new content, never a
/// mix, while the system runs. A power cut may lose the write, and for a file that did not
/// exist before it may leave an empty file (the rename can reach the disk before the data:
/// ext4 orders them only when renaming over an existing file), so readers of such files must
/// treat empty or unparseable content as missing. Only for files that are hints or derived from a
/// durable record (the `.heartbeat` sidecar duplicates the manifest's `heartbeat_at`, and its
/// only job after a crash is to be stale; the `mcp/` redirect, `run-summary.json` and
/// `.resume-token` are rebuilt from the manifest when damaged, see the orchestrator's
/// `record::heal`).
pub fn write_atomic_relaxed(target: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
    write_atomic_with(target, bytes, false)
}

fn write_atomic_with(target: &Path, bytes: &[u8], durable: bool) -> Result<(), AtomicWriteError> {
    write_atomic_in_order(&[target], durable, &mut |_, out| {
        out.write_all(bytes)?;
        Ok(true)
    })
}

/// [`write_atomic`] of several files, renamed in the given order: every temp file is written
/// and fsynced first, then each is renamed over its target and its directory fsynced before
/// the next rename. So after a crash or a power cut, a later file is never newer than an
/// earlier one; and the time between the renames is one directory fsync.
pub fn write_atomic_all(files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
    let targets: Vec<&Path> = files.iter().map(|(p, _)| *p).collect();
    write_atomic_in_order(&targets, true, &mut |i, out| {
        out.write_all(files[i].1)?;
        Ok(true)
    })
}

/// Produces file `i` of a [`write_atomic_rendered`] into `out` (its temp file, buffered), and
/// says whether to keep it: `false` leaves that target as it is (its temp file is removed).
pub type Render<'a> = dyn FnMut(usize, &mut dyn Write) -> io::Result<bool> + 'a;

/// [`write_atomic_all`] of files rendered straight into their temp files: no file is ever
/// whole in memory. The same protocol: each temp file is written (through a buffer) and
/// fsynced, one after the other, then all are renamed in order. An error of `render` is a
/// [`WriteStep::Write`] error of that file, and nothing is renamed.
pub fn write_atomic_rendered(
    targets: &[&Path],
    render: &mut Render<'_>,
) -> Result<(), AtomicWriteError> {
    write_atomic_in_order(targets, true, render)
}

/// A temp file written, not renamed yet.
struct Staged<'a> {
    target: &'a Path,
    dir: &'a Path,
    tmp: std::path::PathBuf,
}

fn write_atomic_in_order(
    targets: &[&Path],
    durable: bool,
    render: &mut Render<'_>,
) -> Result<(), AtomicWriteError> {
    let mut staged: Vec<Staged<'_>> = Vec::with_capacity(targets.len());
    let mut renamed = 0;
    let result = (|| {
        for (i, target) in targets.iter().enumerate() {
            if let Some(s) = stage(target, durable, &mut |out| render(i, out))? {
                staged.push(s);
            }
        }
        for s in &staged {
            let err = |step, source| AtomicWriteError {
                path: s.target.to_owned(),
                step,
                source,
            };
            std::fs::rename(&s.tmp, s.target).map_err(|e| err(WriteStep::Rename, e))?;
            renamed += 1;
            // Without this the rename itself may not survive a power cut, and a later rename
            // could survive without this one.
            if durable {
                fsync_dir(s.dir).map_err(|e| err(WriteStep::FsyncDir, e))?;
            }
        }
        Ok(())
    })();
    // After its rename a temp name is free again and could belong to another writer by now.
    if result.is_err() {
        for s in &staged[renamed..] {
            let _ = std::fs::remove_file(&s.tmp);
        }
    }
    result
}

/// Buffer between a renderer and its temp file: large enough that a large record is written
/// in few system calls, small next to the record itself.
const WRITE_BUFFER: usize = 64 * 1024;

/// Creates a temp file next to `target` with a collision-free name, has `fill` write it
/// (through a buffer; a payload larger than the buffer goes straight through), fsyncs it when
/// `durable`. `None` when `fill` says not to keep it. On failure, or when not kept, nothing is
/// left behind.
fn stage<'a>(
    target: &'a Path,
    durable: bool,
    fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<bool>,
) -> Result<Option<Staged<'a>>, AtomicWriteError> {
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
        // `/` or `..`: there is no name to rename onto.
        let e = io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name");
        return Err(err(WriteStep::Create, e));
    };
    let (tmp, file) = loop {
        let suffix = crate::entropy::random_u64();
        let tmp = dir.join(format!(".{name}.{suffix:016x}.tmp"));
        // `create_new`: a name collision (two writers, same random suffix) can never make one
        // writer truncate the other's temp file; it just draws again.
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(err(WriteStep::Create, e)),
        }
    };
    let written = {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, &file);
        fill(&mut out).and_then(|keep| out.flush().map(|()| keep))
    }
    .map_err(|e| err(WriteStep::Write, e))
    .and_then(|keep| {
        if durable && keep {
            file.sync_all().map_err(|e| err(WriteStep::Fsync, e))?;
        }
        Ok(keep)
    });
    drop(file);
    match written {
        Ok(true) => Ok(Some(Staged { target, dir, tmp })),
        Ok(false) => {
            let _ = std::fs::remove_file(&tmp);
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// fsyncs a directory so a rename or a creation in it survives a power cut.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its missing parents, fsyncing the parent of each directory it created.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        // Another runner created it meanwhile: fine, it is durable on their side.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    fsync_dir(
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Removes `path` and fsyncs its directory so the removal survives a power cut; a file that
/// is already gone is fine.
pub fn remove_durable(path: &Path) -> Result<(), AtomicWriteError> {
    let err = |step, source| AtomicWriteError {
        path: path.to_owned(),
        step,
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err(WriteStep::Remove, e)),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fsync_dir(dir).map_err(|e| err(WriteStep::FsyncDir, e))
}

/// True for names `write_atomic` uses for temp files: `.<file name>.<16 hex digits>.tmp`.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.len() > 22
        && name.ends_with(".tmp")
        && name[..name.len() - 4]
            .rsplit('.')
            .next()
            .is_some_and(|hex| hex.len() == 16 && hex.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Removes temp files left in `dir` by a writer that died mid-write; returns how many.
///
/// Only for a directory nobody is writing to at the moment (a runner at start or resume, holding
/// the run lock): a live writer's temp file would be removed and its rename would fail.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() || !is_temp_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => n += 1,
            // Someone else cleaned it up first: the goal is met.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Appends one line with a single `O_APPEND` write, then `fdatasync`: lines appended by several
/// processes at once never interleave, and the line is durable when this returns.
pub fn append_line_durable(path: &Path, line: &str) -> io::Result<()> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let mut f = OpenOptions::new().create(true).append(true).open(path)?;
    f.write_all(&buf)?;
    f.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_writers_of_one_target_never_collide_or_tear() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("manifest.json");
        std::thread::scope(|s| {
            for t in 0..16u8 {
                let target = &target;
                s.spawn(move || {
                    for i in 0..50u32 {
                        let payload = format!(
                            "{{\"writer\":{t},\"i\":{i},\"pad\":\"{}\"}}",
                            "x".repeat(4096)
                        );
                        write_atomic(target, payload.as_bytes()).expect("every write succeeds");
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&target).expect("read");
        let v: serde_json::Value = serde_json::from_str(&text).expect("one complete payload");
        assert_eq!(v["i"], 49);
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("manifest.json")],
            "no temp file remains"
        );
    }

    #[test]
    fn failed_write_keeps_the_old_content_and_names_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("m.json");
        write_atomic(&target, b"old").expect("write");
        // Renaming a file over a non-empty directory fails: the target stays a directory and
        // the temp file is removed.
        let blocked = dir.path().join("d");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), "x").expect("write");
        let e = write_atomic(&blocked, b"new").expect_err("rename over a directory fails");
        assert!(e.to_string().contains("d` (rename)"), "{e}");
        assert_eq!(std::fs::read(&target).expect("read"), b"old");
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 0);
    }

    #[test]
    fn files_written_in_order_all_land_or_leave_no_temp_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        write_atomic_all(&[(&a, b"1"), (&b, b"2")]).expect("both");
        assert_eq!(std::fs::read(&a).expect("a"), b"1");
        assert_eq!(std::fs::read(&b).expect("b"), b"2");
        // The second rename fails (a non-empty directory is in the way): the first file is
        // new, the second keeps its place, and no temp file is left.
        let blocked = dir.path().join("d");
        std::fs::create_dir(&blocked).expect("mkdir");
        std::fs::write(blocked.join("x"), "x").expect("w");
        let e = write_atomic_all(&[(&a, b"3"), (&blocked, b"4")]).expect_err("rename fails");
        assert_eq!(e.step, WriteStep::Rename);
        assert_eq!(std::fs::read(&a).expect("a"), b"3");
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 0);
    }

    #[test]
    fn rendered_files_stream_in_order_and_a_file_not_kept_stays_as_it_was() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, "old a").expect("w");
        // Larger than the write buffer: it goes to the file in pieces, never whole in memory.
        let big = "x".repeat(3 * WRITE_BUFFER + 7);
        write_atomic_rendered(&[&a, &b], &mut |i, out| {
            if i == 0 {
                out.write_all(b"new a")?;
                return Ok(false);
            }
            for chunk in big.as_bytes().chunks(1000) {
                out.write_all(chunk)?;
            }
            Ok(true)
        })
        .expect("write");
        assert_eq!(
            std::fs::read(&a).expect("a"),
            b"old a",
            "not kept: unchanged"
        );
        assert_eq!(std::fs::read_to_string(&b).expect("b"), big);
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 0);
    }

    #[test]
    fn a_render_that_fails_renames_nothing_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, "old a").expect("w");
        std::fs::write(&b, "old b").expect("w");
        let e = write_atomic_rendered(&[&a, &b], &mut |i, out| {
            out.write_all(b"partial")?;
            if i == 1 {
                return Err(io::Error::other("the renderer failed"));
            }
            Ok(true)
        })
        .expect_err("fails");
        assert_eq!(e.step, WriteStep::Write);
        assert_eq!(e.path, b);
        assert_eq!(
            std::fs::read(&a).expect("a"),
            b"old a",
            "staged, never renamed"
        );
        assert_eq!(std::fs::read(&b).expect("b"), b"old b");
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 0);
    }

    #[test]
    fn removal_is_durable_and_a_missing_file_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("gone.json");
        std::fs::write(&f, "x").expect("w");
        remove_durable(&f).expect("remove");
        assert!(!f.exists());
        remove_durable(&f).expect("already gone");
    }

    #[test]
    fn stale_temps_are_recognised_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".manifest.json.0123456789abcdef.tmp"), "x").expect("w");
        std::fs::write(dir.path().join("manifest.json"), "{}").expect("w");
        std::fs::write(dir.path().join(".heartbeat"), "t").expect("w");
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 1);
        assert!(dir.path().join("manifest.json").exists());
        assert!(dir.path().join(".heartbeat").exists());
        assert!(!is_temp_name(".heartbeat"));
    }

    #[test]
    fn stale_temp_cleanup_skips_directories_and_lookalikes() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join(".m.json.0123456789abcdef.tmp")).expect("mkdir");
        for keep in [
            "m.json.0123456789abcdef.tmp",
            ".m.json.0123456789abcdeg.tmp",
            ".m.json.tmp",
        ] {
            std::fs::write(dir.path().join(keep), "x").expect("w");
        }
        assert_eq!(remove_stale_temps(dir.path()).expect("clean"), 0);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 4);
    }

    #[test]
    fn temp_names_are_exactly_the_write_atomic_pattern() {
        assert!(is_temp_name(".m.json.0123456789abcdef.tmp"));
        assert!(is_temp_name(&format!(".x.{:016x}.tmp", 0u64)));
        assert!(is_temp_name(&format!(".a.b.{:016x}.tmp", u64::MAX)));
        for not in [
            "m.json.0123456789abcdef.tmp",  // no leading dot
            "..0123456789abcdef.tmp",       // empty file name
            ".m.0123456789abcde.tmp",       // 15 digits
            ".m.0123456789abcdef0.tmp",     // 17 digits
            ".m.0123456789abcdeg.tmp",      // not hex
            ".m.0123456789abcdef.tmp.json", // not a temp suffix
            ".m.json.tmp",
        ] {
            assert!(!is_temp_name(not), "{not}");
        }
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        let e = write_atomic(Path::new("/"), b"x").expect_err("no file name");
        assert_eq!(e.step, WriteStep::Create);
        assert_eq!(e.source.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn appended_lines_from_many_threads_stay_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("metrics.json");
        std::thread::scope(|s| {
            for t in 0..8 {
                let p = &p;
                s.spawn(move || {
                    for i in 0..200 {
                        append_line_durable(
                            p,
                            &format!("{{\"t\":{t},\"i\":{i},\"pad\":\"{}\"}}", "y".repeat(300)),
                        )
                        .expect("append");
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&p).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1600);
        for l in lines {
            serde_json::from_str::<serde_json::Value>(l).expect("whole line");
        }
    }

    #[test]
    fn created_directories_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a/b/c");
        create_dir_all_durable(&deep).expect("create");
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).expect("idempotent");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("w");
        create_dir_all_durable(&file.join("sub")).expect_err("a file is in the way");
    }
}
