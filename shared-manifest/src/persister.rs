//! The persister: the one task that owns a document (a run's manifest) and is the only writer of
//! its file and its `.heartbeat` sidecar.
//!
//! Everyone else holds a cloneable [`Persister`] handle around a *bounded* channel. The task
//! drains everything queued (`recv_many`), applies it in order, then writes once: N quick updates
//! cost one write. Writes happen one at a time (the task awaits each before reading the next
//! batch), on the blocking pool so fsync never stalls the async workers.
//!
//! - `flush()` is a message in the same channel, so every update sent before it sits in the same
//!   batch or an earlier one; it is acknowledged only after that batch's write is durable.
//! - `close()` is an explicit message, not the drop of the last sender: other handles (a stage
//!   task, a heartbeat ticker) may still be alive. The task then refuses new messages, applies
//!   what was already queued (those sends succeeded, so they must not be lost), writes, and hands
//!   the document back. "Closed" means the task has ended: nothing more will be written.
//! - Errors live in a slot shared by every handle, so whoever asks next gets the real error (with
//!   the path and the OS error), not a bare "closed". A rejected update is reported and the task
//!   goes on; the first failed write ends the task, and the last good file stays intact.
//! - [`Persister::failed`] resolves on that failed write, without anyone sending: the run watches
//!   it to stop its stages at once instead of finding out at its next flush.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, oneshot};

use crate::atomic::write_atomic;
use crate::document::{Document, Sidecar};
use crate::errors::{AtomicWriteError, PersistError};

/// Queue bound. Bounded so a producer that outruns the disk waits (backpressure) instead of
/// growing memory without limit. The writer drains in batches, so the bound is reached only when
/// writes are far slower than updates; logs and output never go through this channel.
const CHANNEL_CAPACITY: usize = 1024;
/// Most messages applied per write: bounds how long the flushes of a long queue wait.
const BATCH: usize = 256;

/// Where the persister writes: [`AtomicSink`] in production; tests swap it to observe writes.
pub trait Sink: Send + 'static {
    /// Writes `bytes` to `path` durably, all or nothing. Called on the blocking pool, one call at
    /// a time.
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError>;

    /// Writes a file that only needs to be atomic, not durable (the heartbeat: the manifest
    /// holds the same time durably). Defaults to [`Sink::write`].
    fn write_relaxed(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        self.write(path, bytes)
    }

    /// Writes several files durably, each all or nothing, renamed in the given order so that
    /// a later one is never newer than an earlier one after a crash. Defaults to
    /// [`Sink::write`] of each in turn.
    fn write_in_order(&mut self, files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
        for (path, bytes) in files {
            self.write(path, bytes)?;
        }
        Ok(())
    }

    /// Removes `path` durably (the directory is fsynced); a missing file is not an error.
    fn remove(&mut self, path: &Path) -> Result<(), AtomicWriteError> {
        crate::atomic::remove_durable(path)
    }
}

/// The real sink: [`write_atomic`].
#[derive(Debug, Default, Clone, Copy)]
pub struct AtomicSink;

impl Sink for AtomicSink {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        write_atomic(path, bytes)
    }

    fn write_relaxed(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        crate::atomic::write_atomic_relaxed(path, bytes)
    }

    fn write_in_order(&mut self, files: &[(&Path, &[u8])]) -> Result<(), AtomicWriteError> {
        crate::atomic::write_atomic_all(files)
    }
}

/// The files a persister writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// The document.
    pub main: PathBuf,
    /// Its sidecar, for documents that render one (the manifest's `manifest.ext.json`).
    pub sidecar: Option<PathBuf>,
    /// The heartbeat file, for documents that have one.
    pub heartbeat: Option<PathBuf>,
}

impl Targets {
    /// Just the document's file.
    pub fn new(main: PathBuf) -> Targets {
        Targets {
            main,
            sidecar: None,
            heartbeat: None,
        }
    }

    /// A run's manifest: `manifest.json`, its sidecar next to it and, while the run is
    /// going, its heartbeat file.
    pub fn manifest(main: PathBuf, heartbeat: Option<PathBuf>) -> Targets {
        Targets {
            sidecar: Some(crate::sidecar::sidecar_path(&main)),
            main,
            heartbeat,
        }
    }
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersisterStats {
    /// Completed writes of the document.
    pub writes: u64,
    /// Completed writes of its sidecar (skipped when unchanged).
    pub sidecar_writes: u64,
    /// Completed writes of the heartbeat file.
    pub heartbeat_writes: u64,
}

enum Msg<D: Document> {
    Apply(D::Update),
    /// Applied at once, but its write may wait up to the given time for the next write (see
    /// [`Persister::send_deferred`]).
    ApplyDeferred(D::Update, std::time::Duration),
    /// Acknowledged after the write covering everything queued before it.
    Flush(oneshot::Sender<()>),
    /// Receives the document once everything queued is written.
    Close(oneshot::Sender<D>),
    /// Like `Flush`, then runs on the written document (a read-only look, e.g. to build
    /// derived files from exactly what is on disk).
    Inspect(Look<D>),
}

/// A read-only look at the document, run by the task after a write.
type Look<D> = Box<dyn FnOnce(&D) + Send>;

/// State every handle can read. The task sets the errors *before* it drops an acknowledgement
/// or closes the channel, so a caller woken by either always finds the error in place.
#[derive(Default)]
struct Shared {
    // Relaxed is enough: tests read them after an acknowledgement, which orders them.
    writes: AtomicU64,
    sidecar_writes: AtomicU64,
    heartbeat_writes: AtomicU64,
    /// The first error of the run (rejected update or failed write): what flush and close report.
    first: Mutex<Option<PersistError>>,
    /// The failure that ended the task: what every call reports afterwards.
    failed: Mutex<Option<PersistError>>,
    /// Becomes `true` once `failed` is set. A watch rather than a `Notify`: a waiter that
    /// subscribes after the failure still sees it.
    ended_by_failure: tokio::sync::watch::Sender<bool>,
}

/// The slots hold plain data and are never locked across a panic point that leaves them
/// half-updated, so a poisoned lock is still consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn record(&self, e: PersistError) {
        lock(&self.first).get_or_insert(e);
    }

    fn fail(&self, e: PersistError) {
        self.record(e.duplicate());
        lock(&self.failed).get_or_insert(e);
        self.ended_by_failure.send_replace(true);
    }

    /// What an acknowledged flush or close reports.
    fn outcome(&self) -> Result<(), PersistError> {
        lock(&self.first)
            .as_ref()
            .map_or(Ok(()), |e| Err(e.duplicate()))
    }

    /// What a call reports when the task is gone: the failure that ended it, else `Closed`.
    fn gone(&self) -> PersistError {
        lock(&self.failed)
            .as_ref()
            .map_or(PersistError::Closed, PersistError::duplicate)
    }
}

/// Handle to the task that owns a document. Cheap to clone; every clone talks to the same task.
pub struct Persister<D: Document> {
    tx: mpsc::Sender<Msg<D>>,
    shared: Arc<Shared>,
}

impl<D: Document> Clone for Persister<D> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<D: Document> std::fmt::Debug for Persister<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<D: Document> Persister<D> {
    /// Starts the task that owns `doc` and writes it to `targets`. Nothing is written until
    /// the first update arrives.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn(doc: D, targets: Targets) -> Persister<D> {
        Self::spawn_with_sink(doc, targets, Box::new(AtomicSink))
    }

    /// [`Persister::spawn`] writing through another [`Sink`]: for tests and benchmarks.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn spawn_with_sink(doc: D, targets: Targets, sink: Box<dyn Sink>) -> Persister<D> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared::default());
        let owner = Owner {
            doc,
            // Unknown until the first write: a resumed run may have one from an earlier layout.
            sidecar_on_disk: targets.sidecar.is_some(),
            targets,
            sink: Some(sink),
            shared: Arc::clone(&shared),
            last_heartbeat: None,
            last_sidecar: None,
        };
        // Detached: the document comes back through `close`, errors through `shared`.
        tokio::spawn(owner.run(rx));
        Persister { tx, shared }
    }

    /// Queues an update (waits only if the queue is full). `Ok` means queued, not written: use
    /// [`Persister::flush`] to know it is durable. Fails once the task has ended.
    pub async fn send(&self, update: D::Update) -> Result<(), PersistError> {
        self.tx
            .send(Msg::Apply(update))
            .await
            .map_err(|_| self.shared.gone())
    }

    /// Queues an update whose write may wait up to `within` for the next write (a flush, another
    /// update, or the deadline), so that it shares that write. For records that must reach
    /// the file soon but not at once: a stage that started is written when it ends if it ends
    /// quickly, one write instead of two. Readers of the file see it at most `within` late.
    pub async fn send_deferred(
        &self,
        update: D::Update,
        within: std::time::Duration,
    ) -> Result<(), PersistError> {
        self.tx
            .send(Msg::ApplyDeferred(update, within))
            .await
            .map_err(|_| self.shared.gone())
    }

    /// Barrier: returns once a write including every update sent before this call is durable.
    /// Returns the run's first error instead (a failed write or a rejected update).
    pub async fn flush(&self) -> Result<(), PersistError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Flush(ack))
            .await
            .map_err(|_| self.shared.gone())?;
        // A dropped ack means the task ended (failed write, close, panic) before writing.
        done.await.map_err(|_| self.shared.gone())?;
        self.shared.outcome()
    }

    /// A barrier like [`Persister::flush`] that also returns `f` of the document as written:
    /// derived files (summaries, metrics) are built from exactly the durable state.
    pub async fn inspect<R: Send + 'static>(
        &self,
        f: impl FnOnce(&D) -> R + Send + 'static,
    ) -> Result<R, PersistError> {
        let (tx, rx) = oneshot::channel();
        let look: Look<D> = Box::new(move |d: &D| {
            let _ = tx.send(f(d));
        });
        self.tx
            .send(Msg::Inspect(look))
            .await
            .map_err(|_| self.shared.gone())?;
        let value = rx.await.map_err(|_| self.shared.gone())?;
        self.shared.outcome().map(|()| value)
    }

    /// Writes everything queued, ends the task and returns the document, or the run's first
    /// error. Works while other handles are alive; their later calls get
    /// [`PersistError::Closed`], as does a second concurrent `close`.
    pub async fn close(self) -> Result<D, PersistError> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Msg::Close(reply))
            .await
            .map_err(|_| self.shared.gone())?;
        let doc = done.await.map_err(|_| self.shared.gone())?;
        self.shared.outcome().map(|()| doc)
    }

    /// Resolves with the error once a write has failed and the task has ended; pending forever
    /// when no write fails (including after a clean `close`). Lets a run react to a storage
    /// fault while its stages are still running, before anyone sends or flushes again.
    pub async fn failed(&self) -> PersistError {
        let mut rx = self.shared.ended_by_failure.subscribe();
        // `Shared` owns the sender and we hold `Shared`, so the channel cannot close under us.
        if rx.wait_for(|ended| *ended).await.is_err() {
            std::future::pending::<()>().await;
        }
        self.shared.gone()
    }

    /// Writes completed so far.
    pub fn stats(&self) -> PersisterStats {
        PersisterStats {
            writes: self.shared.writes.load(Ordering::Relaxed),
            sidecar_writes: self.shared.sidecar_writes.load(Ordering::Relaxed),
            heartbeat_writes: self.shared.heartbeat_writes.load(Ordering::Relaxed),
        }
    }
}

/// The task's state; only the task touches it.
struct Owner<D> {
    doc: D,
    targets: Targets,
    /// Moved into the blocking pool for each write and back; `None` only during a write.
    sink: Option<Box<dyn Sink>>,
    shared: Arc<Shared>,
    last_heartbeat: Option<String>,
    /// Hash of the sidecar bytes last written: an unchanged sidecar is not written again.
    last_sidecar: Option<u64>,
    /// A sidecar file may exist (so an inline layout must remove it).
    sidecar_on_disk: bool,
}

impl<D: Document> Owner<D> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg<D>>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut closer = None;
        // Applied but not written yet: set by deferred updates, until the write that covers
        // them (which must happen by `due`).
        let mut due: Option<tokio::time::Instant> = None;
        loop {
            // `recv_many` returns 0 once the channel is closed (by a `Close`) or every handle is
            // dropped, *and* it is empty: everything accepted has been applied.
            let received = match due {
                None => rx.recv_many(&mut batch, BATCH).await,
                Some(at) => tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = tokio::time::sleep_until(at) => usize::MAX,
                },
            };
            let closed = received == 0;
            // Write now: a non-deferred update, a barrier, the end of the channel, or the
            // deadline of a deferred one.
            let mut changed = received == usize::MAX || (closed && due.is_some());
            let mut acks = Vec::new();
            let mut inspects: Vec<Look<D>> = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Msg::Apply(update) => {
                        // A rejected update should leave the document as it was; counting it as a
                        // change costs at most one extra write and never hides a partial apply.
                        changed = true;
                        self.apply(update);
                    }
                    Msg::ApplyDeferred(update, within) => {
                        let at = tokio::time::Instant::now() + within;
                        due = Some(due.map_or(at, |d| d.min(at)));
                        self.apply(update);
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Inspect(look) => inspects.push(look),
                    Msg::Close(reply) => {
                        // New sends fail from now on; what is queued still gets applied.
                        rx.close();
                        // Only one caller can get the document; a second one gets `Closed`.
                        closer.get_or_insert(reply);
                    }
                }
            }
            // A barrier covers deferred updates too: they were sent before it.
            changed |=
                due.is_some() && (!acks.is_empty() || !inspects.is_empty() || closer.is_some());
            if changed {
                due = None;
                if let Err(e) = self.write().await {
                    tracing::debug!(error = %e, "manifest write failed; the writer stops");
                    // Error first, then close, then the acks drop on return: whoever wakes up
                    // finds the error.
                    self.shared.fail(e);
                    rx.close();
                    return;
                }
            }
            for ack in acks {
                // The flusher may have stopped waiting; nothing to do then.
                let _ = ack.send(());
            }
            for look in inspects {
                look(&self.doc);
            }
            if closed {
                break;
            }
        }
        if let Some(reply) = closer {
            let _ = reply.send(self.doc);
        }
    }

    fn apply(&mut self, update: D::Update) {
        if let Err(e) = self.doc.apply(update) {
            tracing::debug!(error = %e, "manifest update rejected");
            self.shared.record(PersistError::Apply(e));
        }
    }

    /// One write of the document: its sidecar (when it changed), then the document, then the
    /// heartbeat file (when it changed).
    ///
    /// The sidecar goes first and durably (its rename and a directory fsync complete before the
    /// document's rename starts): after a crash or a power cut between the two, the sidecar is
    /// ahead of the document, never behind. Ahead is harmless: the document decides every
    /// status, and a resume clears the extension fields of every stage it puts back to
    /// pending; behind would lose the details (attempts, outcome, process) of stages the
    /// document already records as ended. The document goes before the heartbeat: a reader
    /// who sees a fresh heartbeat finds a manifest at least as fresh.
    async fn write(&mut self) -> Result<(), PersistError> {
        let rendered = self.doc.render().map_err(PersistError::Serialize)?;
        let remove_sidecar = rendered.sidecar == Sidecar::Remove;
        let mut files = Vec::with_capacity(2);
        let mut sidecar_hash = None;
        if let Sidecar::Write(bytes) = rendered.sidecar {
            let path = self
                .targets
                .sidecar
                .clone()
                .ok_or(PersistError::NoSidecarPath)?;
            let hash = hash_of(&bytes);
            if self.last_sidecar != Some(hash) {
                files.push((path, bytes));
                sidecar_hash = Some(hash);
            }
        }
        files.push((self.targets.main.clone(), rendered.main));
        self.with_sink(move |sink| {
            let refs: Vec<(&Path, &[u8])> = files
                .iter()
                .map(|(p, b)| (p.as_path(), b.as_slice()))
                .collect();
            sink.write_in_order(&refs)
        })
        .await?;
        if sidecar_hash.is_some() {
            self.shared.sidecar_writes.fetch_add(1, Ordering::Relaxed);
            self.last_sidecar = sidecar_hash;
            self.sidecar_on_disk = true;
        }
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        if remove_sidecar && self.sidecar_on_disk {
            if let Some(path) = self.targets.sidecar.clone() {
                self.with_sink(move |sink| sink.remove(&path)).await?;
            }
            self.sidecar_on_disk = false;
            self.last_sidecar = None;
        }
        let Some(path) = self.targets.heartbeat.clone() else {
            return Ok(());
        };
        let beat = self.doc.heartbeat();
        if let Some(text) = beat
            .as_ref()
            .filter(|b| Some(*b) != self.last_heartbeat.as_ref())
        {
            let bytes = text.clone().into_bytes();
            self.with_sink(move |sink| sink.write_relaxed(&path, &bytes))
                .await?;
            self.shared.heartbeat_writes.fetch_add(1, Ordering::Relaxed);
            self.last_heartbeat = beat;
        }
        Ok(())
    }

    /// Runs `f` on the sink on the blocking pool (fsync must not stall the async workers).
    async fn with_sink(
        &mut self,
        f: impl FnOnce(&mut dyn Sink) -> Result<(), AtomicWriteError> + Send + 'static,
    ) -> Result<(), PersistError> {
        let mut sink = self
            .sink
            .take()
            .expect("the sink is put back after every write");
        let (sink, result) = tokio::task::spawn_blocking(move || {
            let r = f(sink.as_mut());
            (sink, r)
        })
        .await
        // The sink panicked (its message is already printed) or the runtime is shutting down.
        .map_err(|_| PersistError::Closed)?;
        self.sink = Some(sink);
        result.map_err(PersistError::Write)
    }
}

/// A 64-bit fingerprint of a sidecar's bytes (not stored, only compared within one run).
fn hash_of(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
