//! The persister's writer thread and what it does for one write: the group commit.
//!
//! One write, in this order, all on the writer thread so that neither rendering a large
//! document nor an fsync ever holds up an async worker (the scheduler keeps starting stages):
//! 1. the files the batch's updates refer to are made durable (stage logs, error files, then
//!    the directories they were created in);
//! 2. the document's sidecar and then the document itself are rendered, each straight into its temp file and
//!    made durable (an unchanged sidecar's temp file is dropped), then renamed, the sidecar's
//!    rename first (see `sidecar.rs` for why that order);
//! 3. a sidecar the document no longer has is removed;
//! 4. the heartbeat file is rewritten when the heartbeat changed (atomic, not durable).
//!
//! So the record never says a stage ended while that stage's log on disk is shorter than what
//! the record claims, even after a power cut: the log was fsynced first.
//!
//! One dedicated thread, not the blocking pool: writes are strictly one at a time anyway, a
//! long-lived thread saves a hand-off per write, and every write of a run happens on the same
//! thread (which keeps fault injection by thread, `strace --inject ... when=N`, exact).

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::sink::{Sink, Synced, Targets};
use crate::document::{Document, SidecarMode};
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
    let mode = doc.sidecar();
    let with_sidecar = mode == SidecarMode::Write;
    let mut paths: Vec<&Path> = Vec::with_capacity(2);
    if with_sidecar {
        let path = targets
            .sidecar
            .as_deref()
            .ok_or(PersistError::NoSidecarPath)?;
        paths.push(path);
    }
    paths.push(&targets.main);
    // Each file is rendered straight into its temp file (the sidecar first, then the
    // document), so neither is ever whole in memory; the sidecar is hashed as it streams and
    // its temp file dropped when it is what the disk already holds.
    let previous = state.sidecar;
    let mut refused: Option<serde_json::Error> = None;
    let mut new_sidecar = None;
    let mut main_bytes = 0;
    let written = sink.write_rendered(&paths, &mut |i, out| {
        let sidecar = with_sidecar && i == 0;
        let mut tally = Tally::new(out, sidecar);
        let rendered = if sidecar {
            doc.render_sidecar(&mut tally)
        } else {
            doc.render_main(&mut tally)
        };
        if let Err(e) = rendered {
            return Err(io_error(e, &mut refused));
        }
        if !sidecar {
            main_bytes = tally.bytes;
            return Ok(true);
        }
        let hash = tally.hash.finish();
        if previous == Some(hash) {
            return Ok(false);
        }
        new_sidecar = Some((hash, tally.bytes));
        Ok(true)
    });
    if let Some(e) = refused {
        return Err(PersistError::Serialize(e));
    }
    written?;
    report.main_bytes = main_bytes;
    if let Some((hash, len)) = new_sidecar {
        state.sidecar = Some(hash);
        state.sidecar_may_exist = true;
        report.sidecar_bytes = Some(len);
    }
    let remove = mode == SidecarMode::Remove;
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

/// What a renderer wrote, counted (and, for the sidecar, fingerprinted) on its way to the
/// file.
struct Tally<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
    /// A 64-bit fingerprint of the sidecar's bytes (not stored, only compared within one run);
    /// fed only when `hashing`.
    hash: DefaultHasher,
    hashing: bool,
}

impl<'a> Tally<'a> {
    fn new(out: &'a mut dyn Write, hashing: bool) -> Tally<'a> {
        Tally {
            out,
            bytes: 0,
            hash: DefaultHasher::new(),
            hashing,
        }
    }
}

impl Write for Tally<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes += n as u64;
        if self.hashing {
            // `Hasher::write` streams: the fingerprint does not depend on how the bytes were
            // cut into calls.
            self.hash.write(&buf[..n]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A rendering error as the sink sees it: an I/O error of the file stays one (the sink names
/// the path and the step); anything else is kept in `refused` for the persister to report as
/// the document's own failure.
fn io_error(e: serde_json::Error, refused: &mut Option<serde_json::Error>) -> std::io::Error {
    if e.is_io() {
        return e.into();
    }
    let io = std::io::Error::other(e.to_string());
    *refused = Some(e);
    io
}
