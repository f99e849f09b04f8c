//! The persister: the one task that owns a document (a run's manifest) and is the only writer of
//! its files (`manifest.json`, its sidecar) and its `.heartbeat`.
//!
//! Everyone else holds a cloneable [`Persister`] handle around a *bounded* channel. The task
//! drains everything queued (`recv_many`) and applies it in order at once; it writes when a
//! barrier asks for it or when the pace allows (`pacing.rs`): updates nobody waits for are
//! gathered and written at most every `max(25 ms, 9 × the last write's cost)`, so that writing
//! takes at most a tenth of the wall time at any document size and N quick updates cost one
//! write. Writes happen one at a time on the persister's own thread (`writer.rs`): rendering
//! and fsync never stall the async workers, and the senders never wait for a write.
//!
//! - Group commit: an update may name files it refers to ([`Synced`]: a stage log, an error
//!   file); they are made durable right before the write that includes the update, in the same
//!   batch, so the document never claims more than those files hold.
//! - `flush()` is a message in the same channel, so every update sent before it sits in the same
//!   batch or an earlier one; it is acknowledged only after a write covering it is durable (at
//!   once if that write already happened), without waiting for the pace.
//! - `peek()` reads the document as updated so far, without asking for a write.
//! - `close()` is an explicit message, not the drop of the last sender: other handles (a stage
//!   task, a heartbeat ticker) may still be alive. The task then refuses new messages, applies
//!   what was already queued (those sends succeeded, so they must not be lost), writes, and hands
//!   the document back. "Closed" means the task has ended: nothing more will be written.
//! - Errors live in a slot shared by every handle, so whoever asks next gets the real error (with
//!   the path and the OS error), not a bare "closed". A rejected update is reported and the task
//!   goes on; the first failed write ends the task, and the last good file stays intact.
//! - [`Persister::failed`] resolves on that failed write, without anyone sending: the run watches
//!   it to stop its stages at once instead of finding out at its next flush.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::document::Document;
use crate::errors::PersistError;

mod owner;
pub mod pacing;
mod sink;
mod writer;

pub use sink::{AtomicSink, Sink, Synced, Targets};

/// Queue bound. Bounded so a producer that outruns the disk waits (backpressure) instead of
/// growing memory without limit. The task drains in batches and applies while it is not
/// writing, so the bound is reached only when a single write outlasts 1024 updates; logs and
/// output never go through this channel.
const CHANNEL_CAPACITY: usize = 1024;
/// Most messages taken from the queue at once (a bound on one turn of the loop, not on what
/// one write covers: everything applied before a write is in it).
const BATCH: usize = 256;

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersisterStats {
    /// Completed writes of the document.
    pub writes: u64,
    /// Completed writes of its sidecar (skipped when unchanged).
    pub sidecar_writes: u64,
    /// Completed writes of the heartbeat file.
    pub heartbeat_writes: u64,
    /// Bytes of the document's file over all writes.
    pub bytes: u64,
    /// Files and directories made durable for updates before the writes that include them.
    pub synced: u64,
    /// What the last write of the document cost (the pace's measure: see `pacing`).
    pub last_cost: Duration,
}

enum Msg<D: Document> {
    /// An update; its write may wait for the pace, or at most `within` when given, and is
    /// preceded by the syncs of `sync`.
    Apply {
        update: D::Update,
        within: Option<Duration>,
        sync: Synced,
    },
    /// Updates applied together: no write ever holds some of them without the others.
    ApplyAll {
        updates: Vec<D::Update>,
        sync: Synced,
    },
    /// Acknowledged after a durable write covering everything queued before it.
    Flush(oneshot::Sender<()>),
    /// Receives the document once everything queued is written.
    Close(oneshot::Sender<D>),
    /// Like `Flush`, then runs on the written document (a read-only look, e.g. to build
    /// derived files from exactly what is on disk).
    Inspect(Look<D>),
    /// Runs on the document as updated so far, written or not.
    Peek(Look<D>),
}

/// A read-only look at the document, run by the task.
type Look<D> = Box<dyn FnOnce(&D) + Send>;

/// State every handle can read. The task sets the errors *before* it drops an acknowledgement
/// or closes the channel, so a caller woken by either always finds the error in place.
#[derive(Default)]
struct Shared {
    // Relaxed is enough: tests read them after an acknowledgement, which orders them.
    writes: AtomicU64,
    sidecar_writes: AtomicU64,
    heartbeat_writes: AtomicU64,
    bytes: AtomicU64,
    synced: AtomicU64,
    /// `PersisterStats::last_cost`, in nanoseconds.
    last_cost_ns: AtomicU64,
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
        Self::spawn_on(doc, targets, sink, writer::Writer::start())
    }

    /// For tests with tokio's paused clock: writes on the blocking pool, which (unlike a thread
    /// of our own) stops the clock from jumping ahead while a write is in flight.
    #[cfg(test)]
    fn spawn_on_pool(doc: D, targets: Targets) -> Persister<D> {
        Self::spawn_on(doc, targets, Box::new(AtomicSink), writer::Writer::Pool)
    }

    fn spawn_on(
        doc: D,
        targets: Targets,
        sink: Box<dyn Sink>,
        writer: writer::Writer,
    ) -> Persister<D> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared::default());
        let owner = owner::Owner::new(doc, targets, sink, Arc::clone(&shared), writer);
        // Detached: the document comes back through `close`, errors through `shared`.
        tokio::spawn(owner.run(rx));
        Persister { tx, shared }
    }

    async fn put(&self, msg: Msg<D>) -> Result<(), PersistError> {
        self.tx.send(msg).await.map_err(|_| self.shared.gone())
    }

    /// Queues an update (waits only if the queue is full). `Ok` means queued, not written: it
    /// is written within the pace (see `pacing.rs`); use [`Persister::flush`] to know it is
    /// durable. Fails once the task has ended.
    pub async fn send(&self, update: D::Update) -> Result<(), PersistError> {
        self.put(Msg::Apply {
            update,
            within: None,
            sync: Synced::default(),
        })
        .await
    }

    /// Queues an update that records what `sync` names: those files are made durable before
    /// the write that includes the update (group commit). The sender does not wait for it.
    pub async fn send_synced(&self, update: D::Update, sync: Synced) -> Result<(), PersistError> {
        self.put(Msg::Apply {
            update,
            within: None,
            sync,
        })
        .await
    }

    /// Queues updates that reach the file together: a write holds all of them or none (a crash
    /// never leaves one recorded without the others). Like [`Persister::send_synced`] else.
    pub async fn send_all(
        &self,
        updates: Vec<D::Update>,
        sync: Synced,
    ) -> Result<(), PersistError> {
        self.put(Msg::ApplyAll { updates, sync }).await
    }

    /// Queues an update whose write must happen within `within` even if the pace would wait
    /// longer (it may share an earlier write). Readers of the file see it at most `within`
    /// late.
    pub async fn send_deferred(
        &self,
        update: D::Update,
        within: Duration,
    ) -> Result<(), PersistError> {
        self.put(Msg::Apply {
            update,
            within: Some(within),
            sync: Synced::default(),
        })
        .await
    }

    /// Barrier: returns once a write including every update sent before this call is durable.
    /// Returns the run's first error instead (a failed write or a rejected update).
    pub async fn flush(&self) -> Result<(), PersistError> {
        let (ack, done) = oneshot::channel();
        self.put(Msg::Flush(ack)).await?;
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
        self.put(Msg::Inspect(look)).await?;
        let value = rx.await.map_err(|_| self.shared.gone())?;
        self.shared.outcome().map(|()| value)
    }

    /// `f` of the document with every update sent before this call applied, written or not:
    /// no write is asked for. For decisions that need the record's state, not its durability.
    pub async fn peek<R: Send + 'static>(
        &self,
        f: impl FnOnce(&D) -> R + Send + 'static,
    ) -> Result<R, PersistError> {
        let (tx, rx) = oneshot::channel();
        let look: Look<D> = Box::new(move |d: &D| {
            let _ = tx.send(f(d));
        });
        self.put(Msg::Peek(look)).await?;
        rx.await.map_err(|_| self.shared.gone())
    }

    /// Writes everything queued, ends the task and returns the document, or the run's first
    /// error. Works while other handles are alive; their later calls get
    /// [`PersistError::Closed`], as does a second concurrent `close`.
    pub async fn close(self) -> Result<D, PersistError> {
        let (reply, done) = oneshot::channel();
        self.put(Msg::Close(reply)).await?;
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
        let s = &self.shared;
        PersisterStats {
            writes: s.writes.load(Ordering::Relaxed),
            sidecar_writes: s.sidecar_writes.load(Ordering::Relaxed),
            heartbeat_writes: s.heartbeat_writes.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            synced: s.synced.load(Ordering::Relaxed),
            last_cost: Duration::from_nanos(s.last_cost_ns.load(Ordering::Relaxed)),
        }
    }
}

#[cfg(test)]
mod tests;
