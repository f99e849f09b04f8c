//! The persister's writer thread and what it does for one write: the group commit.
//!
//! One write, in this order, all on the writer thread so that neither rendering a large
//! document nor an fsync ever holds up an async worker (the scheduler keeps starting stages):
//! 1. the files the batch's updates refer to are made durable (stage logs, error files, then
//!    the directories they were created in);
//! 2. the document is rendered;
//! 3. its sidecar (when it changed) and then the document are written durably, the sidecar's
//!    rename first (see `sidecar.rs` for why that order);
//! 4. a sidecar the document no longer has is removed;
//! 5. the heartbeat file is rewritten when the heartbeat changed (atomic, not durable).
//!
//! So the record never says a stage ended while that stage's log on disk is shorter than what
//! the record claims, even after a power cut: the log was fsynced first.
//!
//! One dedicated thread, not the blocking pool: writes are strictly one at a time anyway, a
//! long-lived thread saves a hand-off per write, and every write of a run happens on the same
//! thread (which keeps fault injection by thread, `strace --inject ... when=N`, exact).

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sink::{Sink, Synced, Targets};
use crate::document::{Document, Rendered, Sidecar};
use crate::errors::PersistError;

type Job = Box<dyn FnOnce() + Send>;

/// Runs jobs one at a time, in order, off the async runtime.
pub(super) enum Writer {
    /// A thread of its own (it ends when the persister does: the sender is dropped).
    Thread(mpsc::Sender<Job>),
    /// The runtime's blocking pool, when no thread could be started.
    Pool,
}

impl Writer {
    pub(super) fn start() -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("persister".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
        match spawned {
            Ok(_) => Writer::Thread(tx),
            Err(e) => {
                tracing::debug!(error = %e, "no writer thread; the persister uses the blocking pool");
                Writer::Pool
            }
        }
    }

    /// Runs `f` and returns its result; `None` if it panicked (its message is already printed)
    /// or the runtime is shutting down.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        match self {
            Writer::Thread(jobs) => {
                let (tx, rx) = oneshot::channel();
                jobs.send(Box::new(move || {
                    let _ = tx.send(f());
                }))
                .ok()?;
                rx.await.ok()
            }
            Writer::Pool => tokio::task::spawn_blocking(f).await.ok(),
        }
    }
}

/// What the writer remembers of the files between writes.
#[derive(Debug, Default, Clone)]
pub(super) struct OnDisk {
    /// Fingerprint of the sidecar bytes last written: an unchanged sidecar is not rewritten.
    pub(super) sidecar: Option<u64>,
    /// A sidecar file may exist (so an inline layout must remove it).
    pub(super) sidecar_may_exist: bool,
    /// The heartbeat text last written.
    pub(super) heartbeat: Option<String>,
}

/// What one write did, for the stats and the pace.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Report {
    /// Wall time of the whole write: syncs, rendering, files.
    pub(super) cost: Duration,
    /// Bytes of the document's file.
    pub(super) main_bytes: u64,
    /// Bytes of the sidecar, when it was written.
    pub(super) sidecar_bytes: Option<u64>,
    /// The heartbeat file was rewritten.
    pub(super) heartbeat: bool,
    /// Files and directories synced before the document.
    pub(super) synced: u64,
}

/// One write: see the module doc for the order. `state` is updated for every step that
/// completed, so a failure halfway leaves it true to the disk.
pub(super) fn commit<D: Document>(
    doc: &mut D,
    sink: &mut dyn Sink,
    targets: &Targets,
    sync: &Synced,
    state: &mut OnDisk,
) -> Result<Report, PersistError> {
    let started = Instant::now();
    let mut report = Report::default();
    for f in &sync.files {
        sink.sync_file(f)?;
    }
    for d in &sync.dirs {
        sink.sync_dir(d)?;
    }
    report.synced = (sync.files.len() + sync.dirs.len()) as u64;
    let Rendered { main, sidecar } = doc.render().map_err(PersistError::Serialize)?;
    let mut files: Vec<(&Path, &[u8])> = Vec::with_capacity(2);
    let mut new_sidecar = None;
    let remove = sidecar == Sidecar::Remove;
    if let Sidecar::Write(bytes) = &sidecar {
        let path = targets
            .sidecar
            .as_deref()
            .ok_or(PersistError::NoSidecarPath)?;
        let hash = fingerprint(bytes);
        if state.sidecar != Some(hash) {
            files.push((path, bytes));
            new_sidecar = Some((hash, bytes.len() as u64));
        }
    }
    files.push((&targets.main, &main));
    sink.write_in_order(&files)?;
    report.main_bytes = main.len() as u64;
    if let Some((hash, len)) = new_sidecar {
        state.sidecar = Some(hash);
        state.sidecar_may_exist = true;
        report.sidecar_bytes = Some(len);
    }
    if remove && state.sidecar_may_exist {
        if let Some(path) = &targets.sidecar {
            sink.remove(path)?;
        }
        state.sidecar_may_exist = false;
        state.sidecar = None;
    }
    if let Some(path) = &targets.heartbeat {
        let beat = doc.heartbeat();
        if let Some(text) = beat
            .as_ref()
            .filter(|b| Some(*b) != state.heartbeat.as_ref())
        {
            sink.write_relaxed(path, text.as_bytes())?;
            state.heartbeat = beat;
            report.heartbeat = true;
        }
    }
    report.cost = started.elapsed();
    Ok(report)
}

/// A 64-bit fingerprint of a sidecar's bytes (not stored, only compared within one run).
fn fingerprint(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
