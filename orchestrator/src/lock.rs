//! One runner per run: an exclusive `flock` on `run.lock` in the run directory, held for as long
//! as the runner works on the run. The file also records the holder's pid and start time so
//! `resume` can name it and `cancel` can signal it. A lock left by a dead process is free by
//! construction: the kernel drops a `flock` when its holder dies.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

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

/// Takes the lock at `path` without waiting.
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
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
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
            holder: read_holder(&mut file),
        }),
        Err((_, errno)) => Err(io(std::io::Error::from(errno))),
    }
}

/// Who holds the lock at `path`, if a live process does (without taking it).
pub fn holder(path: &Path) -> Option<Option<Holder>> {
    let file = OpenOptions::new().read(true).write(true).open(path).ok()?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        // We could take it: nobody holds it (dropping our shared lock releases it at once).
        Ok(_) => None,
        Err((mut file, _)) => Some(read_holder(&mut file)),
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
}
