//! Run slots (`maxConcurrentRuns`): at most N runs of one `.runs` directory execute stages at
//! once; the others wait in line, first come first served.
//!
//! Everything is an `flock`, so a runner killed with `kill -9` gives back what it held with its
//! file descriptors and no stale entry ever blocks anybody:
//! - a slot is an exclusive lock on `.runs/.slots/slot-<i>.lock`, `i < N`, held while the run
//!   executes;
//! - a place in line is a ticket file `.runs/.slots/queue/<arrival>` that its runner keeps an
//!   exclusive lock on. Names sort by arrival time (nanoseconds, then pid); a ticket whose lock
//!   is free belongs to a dead runner and is removed by whoever finds it. Only the first live
//!   ticket may take a free slot, which makes the line FIFO.
//!
//! A ticket is created under a temporary name, locked, then renamed into the line, so nobody
//! ever sees an unlocked live ticket.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

/// Where slots and the line live, under `.runs`.
pub const DIR: &str = ".slots";

/// The run slots of one `.runs` directory.
#[derive(Debug, Clone)]
pub struct Slots {
    dir: PathBuf,
    max: usize,
}

/// A place in line; leaves the line when dropped (or when its runner dies).
#[derive(Debug)]
pub struct Ticket {
    path: PathBuf,
    name: String,
    _lock: Flock<File>,
}

/// A run slot; free again when dropped (or when its runner dies).
#[derive(Debug)]
pub struct Slot {
    /// Which slot (0-based).
    pub index: usize,
    _lock: Flock<File>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Unlink before the lock goes with the file: a reader that opened the file just before
        // sees a free lock on a name that is gone, and its own removal finds nothing.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How a run got (or will get) to execute.
#[derive(Debug, Default)]
pub enum Admission {
    /// No run slots configured (or a sub-pipeline's child run, inside its parent's slot).
    #[default]
    Free,
    /// A slot, held until the run ends.
    Slot(Slot),
    /// In line for a slot.
    Queued(Slots, Ticket),
}

/// Whether a look at the line found a slot.
#[derive(Debug)]
pub enum Turn {
    /// A slot is ours: the ticket can go.
    Slot(Slot),
    /// Still waiting, at this place in line (1: next).
    InLine(usize),
}

impl Slots {
    /// The slots under `runs`, `max` of them.
    pub fn new(runs: &Path, max: usize) -> Slots {
        Slots {
            dir: runs.join(DIR),
            max: max.max(1),
        }
    }

    /// How many runs may execute at once.
    pub fn max(&self) -> usize {
        self.max
    }

    fn queue(&self) -> PathBuf {
        self.dir.join("queue")
    }

    /// Joins the line.
    pub fn join(&self) -> io::Result<Ticket> {
        let queue = self.queue();
        shared_manifest::atomic::create_dir_all_durable(&queue)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{nanos:024}-{:010}-{:08x}",
            std::process::id(),
            shared_manifest::entropy::random_u64() as u32
        );
        let tmp = queue.join(format!(".{name}"));
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        let path = queue.join(&name);
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Ticket {
            path,
            name,
            _lock: lock,
        })
    }

    /// The ticket's place in line (1: next), removing the tickets of dead runners it meets.
    pub fn position(&self, ticket: &Ticket) -> io::Result<usize> {
        let mut ahead = 0;
        for entry in std::fs::read_dir(self.queue())? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name >= ticket.name {
                continue;
            }
            if live(&self.queue().join(&name)) {
                ahead += 1;
            }
        }
        Ok(ahead + 1)
    }

    /// Takes a free slot when the ticket is first in line.
    pub fn try_take(&self, ticket: &Ticket) -> io::Result<Turn> {
        let position = self.position(ticket)?;
        if position > 1 {
            return Ok(Turn::InLine(position));
        }
        Ok(match self.free_slot()? {
            Some(slot) => Turn::Slot(slot),
            None => Turn::InLine(1),
        })
    }

    /// A free slot now, without joining the line, if nobody waits (`--no-wait`).
    pub fn try_take_now(&self) -> io::Result<Option<Slot>> {
        let queue = self.queue();
        shared_manifest::atomic::create_dir_all_durable(&queue)?;
        for entry in std::fs::read_dir(&queue)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && live(&queue.join(&name)) {
                return Ok(None);
            }
        }
        self.free_slot()
    }

    fn free_slot(&self) -> io::Result<Option<Slot>> {
        for index in 0..self.max {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(self.dir.join(format!("slot-{index}.lock")))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => return Ok(Some(Slot { index, _lock: lock })),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                Err((_, errno)) => return Err(io::Error::from(errno)),
            }
        }
        Ok(None)
    }
}

/// True when the ticket at `path` is held by a live runner; a dead runner's ticket is removed.
fn live(path: &Path) -> bool {
    let Ok(file) = File::open(path) else {
        // Gone meanwhile: its runner left the line.
        return false;
    };
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_probe) => {
            // Nobody holds it: its runner died. Removing it is safe (no live runner owns the
            // name) and keeps the directory short.
            let _ = std::fs::remove_file(path);
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(t: io::Result<Turn>) -> Option<Slot> {
        match t.expect("io") {
            Turn::Slot(s) => Some(s),
            Turn::InLine(_) => None,
        }
    }

    #[test]
    fn the_line_is_first_come_first_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slots = Slots::new(dir.path(), 1);
        let a = slots.join().expect("a");
        let b = slots.join().expect("b");
        let c = slots.join().expect("c");
        assert_eq!(slots.position(&a).expect("pos"), 1);
        assert_eq!(slots.position(&c).expect("pos"), 3);
        assert!(slot(slots.try_take(&b)).is_none(), "b is not first");
        let sa = slot(slots.try_take(&a)).expect("a is first and the slot is free");
        drop(a);
        assert!(
            slot(slots.try_take(&b)).is_none(),
            "b is first now, but the one slot is taken"
        );
        assert_eq!(slots.position(&c).expect("pos"), 2);
        drop(sa);
        assert!(slot(slots.try_take(&b)).is_some());
        assert!(slots.try_take_now().expect("io").is_none(), "c waits");
    }

    #[test]
    fn a_dead_runners_ticket_is_skipped_and_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slots = Slots::new(dir.path(), 2);
        let first = slots.join().expect("first");
        let second = slots.join().expect("second");
        // A runner killed with -9: its file stays, its lock is gone.
        let stale = first.path.clone();
        std::mem::forget(first);
        // The lock of a forgotten ticket is still held by this process's open file, so
        // release it the way the kernel does for a dead process: close every descriptor on it.
        // Simulated by replacing the file with an unlocked copy of the same name.
        std::fs::remove_file(&stale).expect("rm");
        std::fs::write(&stale, b"").expect("stale ticket");
        assert_eq!(slots.position(&second).expect("pos"), 1);
        assert!(!stale.exists(), "removed by the reader that found it dead");
        assert!(slot(slots.try_take(&second)).is_some());
    }

    #[test]
    fn no_wait_takes_a_free_slot_only_when_nobody_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let slots = Slots::new(dir.path(), 2);
        let s1 = slots.try_take_now().expect("io").expect("free");
        let s2 = slots.try_take_now().expect("io").expect("free");
        assert_ne!(s1.index, s2.index);
        assert!(slots.try_take_now().expect("io").is_none(), "both taken");
        drop(s1);
        let waiting = slots.join().expect("join");
        assert!(
            slots.try_take_now().expect("io").is_none(),
            "a free slot belongs to the one in line"
        );
        drop(waiting);
        assert!(slots.try_take_now().expect("io").is_some());
    }
}
