//! One runner per run: an exclusive `flock` on `run.lock` in the run directory, held for as long
//! as the runner works on the run. The file also records the holder's pid and start time so
//! `resume` can name it and `cancel` can signal it. A lock left by a dead process is free by
//! construction: the kernel drops a `flock` when its holder dies.
//!
//! Two short windows make the lock tolerant of harmless overlaps (both bounded by [`SETTLE`]):
//! - `status` and `cancel` probe the lock with a *shared* `flock` for a moment; an `acquire`
//!   that meets such a probe retries instead of reporting the run as locked.
//! - The winner writes its pid just *after* taking the lock, so a loser (or a probe) may read an
//!   empty file, or the previous holder's pid; readers re-read until the file names a live
//!   process.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

/// Longest an `acquire` retries a busy lock, and a reader waits for the holder's pid: far longer
/// than a probe holds its shared lock or a winner takes to write its pid (microseconds), short
/// enough that a second `resume` of a running run still fails at once to a human.
const SETTLE: Duration = Duration::from_millis(200);
/// Pause between retries.
const STEP: Duration = Duration::from_millis(5);

/// The holder recorded in a lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Runner pid.
    pub pid: i32,
    /// Its start time in clock ticks, to tell it from a reused pid.
    pub start_ticks: Option<u64>,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another runner holds it.
    #[error("run is locked by a running runner (pid {})", holder.as_ref().map_or("unknown".to_owned(), |h| h.pid.to_string()))]
    Held {
        /// Who, when the file says.
        holder: Option<Holder>,
    },
    /// The lock file could not be opened or written.
    #[error("cannot use lock file `{}`", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl LockError {
    /// As the command reports it: another runner holding the lock is a run-state conflict
    /// (exit 3, `context` says what could not be done); a lock file that cannot be opened or
    /// written is a storage failure (exit 4, with the OS error as the cause).
    pub fn into_app(self, context: &str) -> crate::errors::AppError {
        match self {
            LockError::Held { .. } => {
                crate::errors::AppError::Conflict(format!("{context}: {self}"))
            }
            LockError::Io { path, source } => crate::errors::AppError::storage(&path, source),
        }
    }
}

/// A held run lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct RunLock {
    _lock: Flock<File>,
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let start_ticks = parts.next().and_then(|t| t.parse().ok());
    Some(Holder { pid, start_ticks })
}

impl Holder {
    /// True when the holder is a process that is alive and, when the start time is recorded,
    /// the same process (not a reused pid).
    pub fn is_live(&self) -> bool {
        let Ok(pid) = u32::try_from(self.pid) else {
            return false;
        };
        match self.start_ticks {
            Some(ticks) => exec::process_start_ticks(pid) == Some(ticks),
            None => {
                use nix::sys::signal::kill;
                matches!(
                    kill(nix::unistd::Pid::from_raw(self.pid), None),
                    Ok(()) | Err(nix::errno::Errno::EPERM)
                )
            }
        }
    }
}

/// The holder of a lock known to be held, read until the file names a live process or
/// [`SETTLE`] passes (then the last reading, which may be `None`).
fn read_settled(file: &mut File) -> Option<Holder> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let holder = read_holder(file);
        if holder.as_ref().is_some_and(Holder::is_live) || Instant::now() >= deadline {
            return holder;
        }
        std::thread::sleep(STEP);
    }
}

/// Takes the lock at `path`. Does not wait for a holder: a busy lock is retried only for
/// [`SETTLE`] (blocking the thread), so a momentary probe by `status` never fails a `resume`,
/// then reported as [`LockError::Held`].
pub fn acquire(path: &Path) -> Result<RunLock, LockError> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io)?;
    let deadline = Instant::now() + SETTLE;
    let mut file = file;
    let locked = loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Err((back, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = back;
                std::thread::sleep(STEP);
            }
            other => break other,
        }
    };
    match locked {
        Ok(mut lock) => {
            let me = std::process::id();
            let text = format!(
                "{me} {}\n",
                exec::process_start_ticks(me).map_or(String::new(), |t| t.to_string())
            );
            lock.set_len(0).map_err(io)?;
            lock.rewind().map_err(io)?;
            lock.write_all(text.as_bytes()).map_err(io)?;
            Ok(RunLock { _lock: lock })
        }
        Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held {
            holder: read_settled(&mut file),
        }),
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    }
}

/// Takes the lock at `path` if it is free, without waiting and without creating the file:
/// `None` when there is no lock file, `Some(Err(Held))` when a runner holds it.
pub fn try_acquire(path: &Path) -> Option<Result<RunLock, LockError>> {
    let io = |source| LockError::Io {
        path: path.to_owned(),
        source,
    };
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(io(e))),
    };
    Some(match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(RunLock { _lock: lock }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(LockError::Held { holder: None }),
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    })
}

/// True when a live runner holds the lock of the run whose manifest is at `manifest`: without
/// one, an unfinished run was abandoned (its runner crashed or was killed).
pub fn runner_alive(manifest: &Path) -> bool {
    holder(&manifest.with_file_name("run.lock")).is_some()
}

/// Who holds the lock at `path`, if a live process does (without taking it).
pub fn holder(path: &Path) -> Option<Option<Holder>> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We could take it: nobody holds it (dropping our shared lock releases it at once).
        Ok(_) => None,
        Err((mut file, _)) => Some(read_settled(&mut file)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_naming_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("run.lock");
        let held = acquire(&p).expect("first");
        match acquire(&p) {
            Err(LockError::Held { holder: Some(h) }) => {
                assert_eq!(h.pid as u32, std::process::id())
            }
            other => panic!("expected Held, got {other:?}"),
        }
        assert!(holder(&p).is_some());
        drop(held);
        assert!(holder(&p).is_none());
        acquire(&p).expect("free again");
    }

    /// What `holder` does, held for `hold` on another open file description.
    fn probe_for(p: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
        let file = File::open(p).expect("open");
        let lock = Flock::lock(file, FlockArg::LockSharedNonblock).expect("shared");
        std::thread::spawn(move || {
            std::thread::sleep(hold);
            drop(lock);
        })
    }

    #[test]
    fn a_momentary_shared_probe_does_not_fail_an_acquire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("run.lock");
        drop(acquire(&p).expect("create"));
        let probe = probe_for(&p, Duration::from_millis(30));
        acquire(&p).expect("the probe ends well within the retry window");
        probe.join().expect("probe");
    }

    /// A winner that has the lock but has not written its pid yet (it writes after `delay`,
    /// over what the file held), then holds on until told.
    fn slow_winner(p: &Path, delay: Duration) -> std::sync::mpsc::Sender<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(p)
            .expect("open");
        let mut lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("exclusive");
        let (done, wait) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let me = std::process::id();
            let ticks = exec::process_start_ticks(me).expect("ticks");
            let text = format!("{me} {ticks}\n");
            lock.write_all(text.as_bytes()).expect("write");
            lock.set_len(text.len() as u64).expect("trim");
            let _ = wait.recv();
            drop(lock);
        });
        done
    }

    #[test]
    fn readers_wait_briefly_for_the_winner_to_write_its_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("run.lock");
        // The previous holder, long gone, left its pid in the file.
        std::fs::write(&p, "999999999 1\n").expect("stale");
        let release = slow_winner(&p, Duration::from_millis(40));
        let me = std::process::id() as i32;
        match holder(&p) {
            Some(Some(h)) => assert_eq!(h.pid, me, "not the stale or empty content"),
            other => panic!("expected the winner, got {other:?}"),
        }
        match acquire(&p) {
            Err(LockError::Held { holder: Some(h) }) => assert_eq!(h.pid, me),
            other => panic!("expected Held naming the winner, got {other:?}"),
        }
        release.send(()).expect("release");
    }
}
