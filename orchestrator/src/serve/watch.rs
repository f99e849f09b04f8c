//! Waking the tasks that follow files under `.runs` when something changes there, without busy
//! polling: one inotify instance (the `notify` crate) for the whole server and one watch per
//! directory, however many followers it has (50 browsers on one run cost one watch). Where
//! inotify cannot help (no instance, watch limit reached, a directory that does not exist yet,
//! a filesystem that reports nothing), a follower falls back to a slow poll; where it can, the
//! same poll, slower still, is a safety net for a missed event.
//!
//! Directories, not files, are watched: a manifest is replaced by a rename (a new inode each
//! write), and a file that does not exist yet cannot be watched at all. A directory watch sees
//! both, and appends to the files in it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::watch;

/// How long a follower whose directory inotify watches waits before looking anyway.
pub(crate) const POLL_WATCHED: Duration = Duration::from_secs(5);
/// How often a follower looks when inotify does not watch its directory.
pub(crate) const POLL_UNWATCHED: Duration = Duration::from_secs(1);

/// Handle to the server's directory watches; cheap to clone.
#[derive(Clone)]
pub(crate) struct DirWatch {
    inner: Arc<Inner>,
}

struct Inner {
    /// The inotify instance; `None` when it could not be created (every follower polls).
    /// Locked only to add or remove a watch, never from the event callback: `notify` runs the
    /// callback on its own thread and `watch()` waits for that thread, so the callback must not
    /// wait for this lock.
    watcher: Mutex<Option<RecommendedWatcher>>,
    /// Per watched directory, its followers' wake-up channel.
    dirs: Mutex<HashMap<PathBuf, Entry>>,
    /// Bumped on every event anywhere: the runs tracker (a thread of its own) waits on it.
    any: (Mutex<u64>, Condvar),
    /// Directories with events since the runs list last took them.
    dirty: Mutex<HashSet<PathBuf>>,
}

struct Entry {
    tx: watch::Sender<u64>,
    users: usize,
    watched: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl DirWatch {
    /// Starts the inotify instance (or, failing that, a watcher that only polls).
    pub(crate) fn new() -> DirWatch {
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let (Ok(event), Some(inner)) = (res, weak.upgrade()) {
                    inner.on_event(&event.paths);
                }
            });
            let watcher = match watcher {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "no inotify: following files by polling");
                    None
                }
            };
            Inner {
                watcher: Mutex::new(watcher),
                dirs: Mutex::new(HashMap::new()),
                any: (Mutex::new(0), Condvar::new()),
                dirty: Mutex::new(HashSet::new()),
            }
        });
        DirWatch { inner }
    }

    /// Follows `dir` until the returned subscription is dropped.
    pub(crate) fn subscribe(&self, dir: &Path) -> Subscription {
        let (rx, first) = {
            let mut dirs = lock(&self.inner.dirs);
            let entry = dirs.entry(dir.to_owned()).or_insert_with(|| Entry {
                tx: watch::channel(0).0,
                users: 0,
                watched: false,
            });
            entry.users += 1;
            (entry.tx.subscribe(), entry.users == 1)
        };
        let watched = if first {
            let ok = lock(&self.inner.watcher)
                .as_mut()
                .is_some_and(|w| w.watch(dir, RecursiveMode::NonRecursive).is_ok());
            if let Some(e) = lock(&self.inner.dirs).get_mut(dir) {
                e.watched = ok;
            }
            ok
        } else {
            lock(&self.inner.dirs).get(dir).is_some_and(|e| e.watched)
        };
        Subscription {
            rx,
            dir: dir.to_owned(),
            watched,
            inner: self.inner.clone(),
        }
    }

    /// How many events there have been anywhere so far.
    pub(crate) fn generation(&self) -> u64 {
        *lock(&self.inner.any.0)
    }

    /// Blocks until the event count differs from `seen` or `timeout` passes; returns the
    /// count. For the runs tracker's thread.
    pub(crate) fn wait_any(&self, seen: u64, timeout: Duration) -> u64 {
        let (count, cv) = &self.inner.any;
        let guard = lock(count);
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |n| *n == seen)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }

    /// Wakes every [`DirWatch::wait_any`] (the server is stopping).
    pub(crate) fn wake(&self) {
        self.inner.bump_any();
    }

    /// The directories that had events since the last call.
    pub(crate) fn take_dirty(&self) -> HashSet<PathBuf> {
        std::mem::take(&mut *lock(&self.inner.dirty))
    }
}

impl Inner {
    fn on_event(&self, paths: &[PathBuf]) {
        let mut touched: Vec<&Path> = Vec::with_capacity(paths.len() * 2);
        for p in paths {
            touched.push(p);
            if let Some(parent) = p.parent() {
                touched.push(parent);
            }
        }
        // Dirty before anyone wakes: a woken follower or tracker finds its directory there.
        lock(&self.dirty).extend(touched.iter().map(|p| p.to_path_buf()));
        {
            let dirs = lock(&self.dirs);
            for p in &touched {
                if let Some(e) = dirs.get(*p) {
                    e.tx.send_modify(|g| *g = g.wrapping_add(1));
                }
            }
        }
        self.bump_any();
    }

    fn bump_any(&self) {
        let (count, cv) = &self.any;
        let mut n = lock(count);
        *n = n.wrapping_add(1);
        cv.notify_all();
    }
}

/// One follower's interest in one directory.
pub(crate) struct Subscription {
    rx: watch::Receiver<u64>,
    dir: PathBuf,
    watched: bool,
    inner: Arc<Inner>,
}

impl Subscription {
    /// Returns when something in the directory changed, or when the poll interval has passed
    /// (the caller then looks for itself).
    pub(crate) async fn changed(&mut self) {
        let wait = if self.watched {
            POLL_WATCHED
        } else {
            POLL_UNWATCHED
        };
        let _ = tokio::time::timeout(wait, self.rx.changed()).await;
    }

    /// True when inotify watches the directory.
    pub(crate) fn watched(&self) -> bool {
        self.watched
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut dirs = lock(&self.inner.dirs);
            match dirs.get_mut(&self.dir) {
                Some(e) => {
                    e.users -= 1;
                    if e.users == 0 {
                        let watched = e.watched;
                        dirs.remove(&self.dir);
                        watched
                    } else {
                        false
                    }
                }
                None => false,
            }
        };
        if last {
            if let Some(w) = lock(&self.inner.watcher).as_mut() {
                // Fails when the directory is gone (the kernel dropped the watch): fine.
                let _ = w.unwatch(&self.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Woken by the event, not by the poll: a follower's channel moves only on an inotify
    /// event (a poll is `changed()` timing out), so the test waits on the channel itself, with
    /// a deadline far beyond any poll interval, instead of timing `changed()`.
    #[tokio::test]
    async fn a_write_in_a_watched_directory_wakes_its_followers_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = DirWatch::new();
        let mut a = hub.subscribe(dir.path());
        let mut b = hub.subscribe(dir.path());
        assert!(a.watched(), "inotify is available here");
        std::fs::write(dir.path().join("events.jsonl"), "x\n").expect("write");
        for sub in [&mut a, &mut b] {
            tokio::time::timeout(Duration::from_secs(60), sub.rx.changed())
                .await
                .expect("woken by the event (nothing else moves the channel)")
                .expect("the hub is alive");
        }
        assert!(hub.take_dirty().contains(dir.path()));
        drop(a);
        drop(b);
        assert!(
            lock(&hub.inner.dirs).is_empty(),
            "the last follower unwatches"
        );
    }

    #[tokio::test]
    async fn a_missing_directory_is_polled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = DirWatch::new();
        let sub = hub.subscribe(&dir.path().join("not-yet"));
        assert!(!sub.watched());
    }
}
