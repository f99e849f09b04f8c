//! The persister: the one task that owns a document (a run's manifest) and is the only writer of
//! its file and its `.heartbeat` sidecar.
//!
//! Everyone else holds a cloneable [`Persister`] handle around a *bounded* channel: bounded so a
//! runaway producer waits instead of growing memory without limit (updates are small and the
//! writer drains them in batches, so the bound is never reached in practice). The task drains
//! everything queued (`recv_many`), applies it in order, then writes once: N quick updates cost
//! one write. Writes happen one at a time (the task awaits each before reading the next batch),
//! on the blocking pool so fsync never stalls the async workers.
//!
//! Ending: `close()` sends an explicit `Close` (other handles may still be alive, e.g. a
//! heartbeat task), the task writes what is left and returns the document. The first write
//! failure is stored where every handle sees it: later sends, flushes and the close report it,
//! and nothing else is written (the last good file stays intact).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::atomic::write_atomic;
use crate::document::{ApplyError, Document};
use crate::errors::{AtomicWriteError, PersistError};

/// Queue bound: far above what a run produces between two writes.
const CHANNEL_CAPACITY: usize = 1024;
/// Most messages applied per batch.
const BATCH: usize = 256;

/// Where the persister writes; swapped in tests to observe writes.
pub trait Sink: Send + 'static {
    /// Writes `bytes` to `path` durably (all or nothing).
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError>;
}

/// The real sink: [`write_atomic`].
#[derive(Debug, Default)]
pub struct AtomicSink;

impl Sink for AtomicSink {
    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
        write_atomic(path, bytes)
    }
}

enum Msg<U> {
    Apply(U),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
}

/// Counters, for tests and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersisterStats {
    /// Document writes.
    pub writes: u64,
    /// Heartbeat sidecar writes.
    pub heartbeat_writes: u64,
}

#[derive(Debug, Default)]
struct Shared {
    writes: AtomicU64,
    heartbeat_writes: AtomicU64,
    /// The first write failure: ends the task.
    failed: Mutex<Option<PersistError>>,
    /// The first rejected update: reported, the task goes on.
    rejected: Mutex<Option<ApplyError>>,
}

impl Shared {
    fn error(&self) -> Option<PersistError> {
        if let Some(e) = self.failed.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Some(e.duplicate());
        }
        self.rejected.lock().unwrap_or_else(|p| p.into_inner()).clone().map(PersistError::Apply)
    }
}

/// Handle to the task that owns a document.
pub struct Persister<D: Document> {
    tx: mpsc::Sender<Msg<D::Update>>,
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<D>>>>,
}

impl<D: Document> Clone for Persister<D> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), shared: self.shared.clone(), task: self.task.clone() }
    }
}

impl<D: Document> std::fmt::Debug for Persister<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persister").field("stats", &self.stats()).finish()
    }
}

impl<D: Document> Persister<D> {
    /// Starts the owning task (inside a tokio runtime). Nothing is written until the first
    /// update arrives.
    pub fn spawn(doc: D, path: PathBuf, heartbeat_path: Option<PathBuf>) -> Persister<D> {
        Self::spawn_with_sink(doc, path, heartbeat_path, Box::new(AtomicSink))
    }

    /// [`Persister::spawn`] with another sink (tests, benchmarks).
    pub fn spawn_with_sink(doc: D, path: PathBuf, heartbeat_path: Option<PathBuf>, sink: Box<dyn Sink>) -> Persister<D> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared::default());
        let owner = Owner { doc, path, heartbeat_path, sink: Some(sink), shared: shared.clone(), last_heartbeat: None };
        let task = tokio::spawn(owner.run(rx));
        Persister { tx, shared, task: Arc::new(Mutex::new(Some(task))) }
    }

    /// Queues an update. Fails once the writer has failed or stopped.
    pub async fn send(&self, update: D::Update) -> Result<(), PersistError> {
        if let Some(e) = self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return Err(e.duplicate());
        }
        self.tx.send(Msg::Apply(update)).await.map_err(|_| self.closed_error())
    }

    /// Barrier: returns once everything sent before is durable (or the error that prevented it).
    pub async fn flush(&self) -> Result<(), PersistError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Flush(ack)).await.map_err(|_| self.closed_error())?;
        done.await.map_err(|_| self.closed_error())?;
        match self.shared.error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Writes what is left, stops the task and returns the document (or the first error).
    pub async fn close(self) -> Result<D, PersistError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(Msg::Close(ack)).await.map_err(|_| self.closed_error())?;
        let _ = done.await;
        let handle = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        let doc = match handle {
            Some(h) => h.await.map_err(|_| PersistError::Closed)?,
            None => return Err(PersistError::Closed),
        };
        match self.shared.error() {
            Some(e) => Err(e),
            None => Ok(doc),
        }
    }

    /// Writes so far.
    pub fn stats(&self) -> PersisterStats {
        PersisterStats {
            writes: self.shared.writes.load(Ordering::Relaxed),
            heartbeat_writes: self.shared.heartbeat_writes.load(Ordering::Relaxed),
        }
    }

    fn closed_error(&self) -> PersistError {
        self.shared.error().unwrap_or(PersistError::Closed)
    }
}

struct Owner<D> {
    doc: D,
    path: PathBuf,
    heartbeat_path: Option<PathBuf>,
    /// Moved into the blocking pool for each write and back.
    sink: Option<Box<dyn Sink>>,
    shared: Arc<Shared>,
    last_heartbeat: Option<String>,
}

impl<D: Document> Owner<D> {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg<D::Update>>) -> D {
        let mut batch = Vec::with_capacity(BATCH);
        let mut failed = false;
        // `recv_many` returns 0 only when every handle is gone: then there is nobody left to
        // tell, and the document is returned to nobody.
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            let mut dirty = false;
            let mut acks = Vec::new();
            let mut close = None;
            for msg in batch.drain(..) {
                match msg {
                    Msg::Apply(u) if !failed && close.is_none() => match self.doc.apply(u) {
                        Ok(()) => dirty = true,
                        Err(e) => {
                            tracing::error!(error = %e, "manifest update rejected");
                            self.shared.rejected.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        }
                    },
                    Msg::Apply(_) => {}
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Close(ack) => close = Some(ack),
                }
            }
            if dirty && !failed {
                if let Err(e) = self.write_all().await {
                    tracing::error!(error = %e, "manifest write failed");
                    *self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    failed = true;
                }
            }
            for ack in acks {
                let _ = ack.send(());
            }
            if let Some(ack) = close {
                let _ = ack.send(());
                break;
            }
        }
        self.doc
    }

    /// The document, then the heartbeat sidecar when it changed.
    async fn write_all(&mut self) -> Result<(), PersistError> {
        let mut bytes = serde_json::to_vec_pretty(&self.doc).map_err(PersistError::Serialize)?;
        bytes.push(b'\n');
        self.write(self.path.clone(), bytes).await?;
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        let beat = self.doc.heartbeat();
        if let (Some(path), Some(text)) = (self.heartbeat_path.clone(), beat.as_ref()) {
            if self.last_heartbeat.as_ref() != Some(text) {
                self.write(path, text.clone().into_bytes()).await?;
                self.shared.heartbeat_writes.fetch_add(1, Ordering::Relaxed);
                self.last_heartbeat = beat;
            }
        }
        Ok(())
    }

    async fn write(&mut self, path: PathBuf, bytes: Vec<u8>) -> Result<(), PersistError> {
        let mut sink = self.sink.take().expect("the sink is always returned after a write");
        let (sink, result) = tokio::task::spawn_blocking(move || {
            let r = sink.write(&path, &bytes);
            (sink, r)
        })
        .await
        .map_err(|_| PersistError::Closed)?;
        self.sink = Some(sink);
        result.map_err(PersistError::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use std::sync::atomic::AtomicUsize;

    #[derive(Debug, Serialize, Default)]
    struct Toy {
        items: Vec<u32>,
        beat: Option<String>,
    }

    enum ToyUpdate {
        Push(u32),
        Beat(String),
        Reject,
    }

    impl Document for Toy {
        type Update = ToyUpdate;
        fn apply(&mut self, u: ToyUpdate) -> Result<(), ApplyError> {
            match u {
                ToyUpdate::Push(n) => self.items.push(n),
                ToyUpdate::Beat(b) => self.beat = Some(b),
                ToyUpdate::Reject => return Err(ApplyError("illegal".into())),
            }
            Ok(())
        }
        fn heartbeat(&self) -> Option<String> {
            self.beat.clone()
        }
    }

    /// Records writes, can hold the first one until released, and checks no two overlap.
    struct Probe {
        gate: Option<std::sync::mpsc::Receiver<()>>,
        entered: Option<std::sync::mpsc::Sender<()>>,
        in_flight: Arc<AtomicUsize>,
        max_in_flight: Arc<AtomicUsize>,
        fail: bool,
        inner: AtomicSink,
    }

    impl Sink for Probe {
        fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<(), AtomicWriteError> {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(entered) = self.entered.take() {
                let _ = entered.send(());
            }
            if let Some(gate) = self.gate.take() {
                let _ = gate.recv();
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            let r = if self.fail {
                Err(AtomicWriteError {
                    path: path.to_owned(),
                    step: crate::errors::WriteStep::Fsync,
                    source: std::io::Error::from_raw_os_error(5),
                })
            } else {
                self.inner.write(path, bytes)
            };
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            r
        }
    }

    fn probe(gate: Option<std::sync::mpsc::Receiver<()>>, fail: bool) -> (Box<Probe>, Arc<AtomicUsize>) {
        let max = Arc::new(AtomicUsize::new(0));
        (Box::new(Probe { gate, entered: None, in_flight: Arc::new(AtomicUsize::new(0)), max_in_flight: max.clone(), fail, inner: AtomicSink }), max)
    }

    fn read(p: &Path) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read")).expect("json")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_updates_coalesce_into_one_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        let (gate_tx, gate_rx) = std::sync::mpsc::channel();
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (mut sink, _) = probe(Some(gate_rx), false);
        sink.entered = Some(entered_tx);
        let p = Persister::spawn_with_sink(Toy::default(), path.clone(), None, sink);
        // The first update's write blocks on the gate; the next 99 queue up behind it and must
        // all land in the one write that follows.
        p.send(ToyUpdate::Push(0)).await.expect("send");
        tokio::task::spawn_blocking(move || entered_rx.recv()).await.expect("join").expect("write entered");
        for i in 1..100 {
            p.send(ToyUpdate::Push(i)).await.expect("send");
        }
        gate_tx.send(()).expect("release");
        p.flush().await.expect("flush");
        let v = read(&path);
        assert_eq!(v["items"].as_array().expect("items").len(), 100);
        assert_eq!(p.stats().writes, 2, "100 updates cost 2 writes: the held one and one for the 99 queued");
        let doc = p.close().await.expect("close");
        assert_eq!(doc.items.len(), 100);
    }

    #[tokio::test]
    async fn flush_is_a_barrier() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        let p = Persister::spawn(Toy::default(), path.clone(), None);
        for round in 0..20u32 {
            p.send(ToyUpdate::Push(round)).await.expect("send");
            p.flush().await.expect("flush");
            assert_eq!(read(&path)["items"].as_array().expect("items").len() as u32, round + 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_two_writes_in_flight() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sink, max) = probe(None, false);
        let p = Persister::spawn_with_sink(Toy::default(), dir.path().join("m.json"), None, sink);
        let mut tasks = Vec::new();
        for t in 0..8u32 {
            let p = p.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..50 {
                    p.send(ToyUpdate::Push(t * 100 + i)).await.expect("send");
                    if i % 7 == 0 {
                        p.flush().await.expect("flush");
                    }
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let doc = p.close().await.expect("close");
        assert_eq!(doc.items.len(), 400);
        assert_eq!(max.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn write_error_surfaces_on_flush_send_and_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        let (sink, _) = probe(None, true);
        let p = Persister::spawn_with_sink(Toy::default(), path.clone(), None, sink);
        p.send(ToyUpdate::Push(1)).await.expect("queued before the failure");
        let e = p.flush().await.expect_err("the write failed");
        assert!(matches!(e, PersistError::Write(_)));
        let text = format!("{e} / {}", std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default());
        assert!(text.contains("m.json") && text.contains("fsync"), "{text}");
        assert!(p.send(ToyUpdate::Push(2)).await.is_err(), "sends after a failure are refused");
        assert!(matches!(p.close().await, Err(PersistError::Write(_))));
        assert!(!path.exists(), "nothing was written");
    }

    #[tokio::test]
    async fn write_to_a_missing_directory_fails_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone/m.json");
        let p = Persister::spawn(Toy::default(), path, None);
        p.send(ToyUpdate::Push(1)).await.expect("send");
        let e = p.flush().await.expect_err("no directory");
        assert!(e.to_string().contains("gone/m.json"), "{e}");
    }

    #[tokio::test]
    async fn rejected_update_is_reported_and_the_rest_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.json");
        let p = Persister::spawn(Toy::default(), path.clone(), None);
        p.send(ToyUpdate::Push(1)).await.expect("send");
        p.send(ToyUpdate::Reject).await.expect("send");
        p.send(ToyUpdate::Push(2)).await.expect("send");
        assert!(matches!(p.flush().await, Err(PersistError::Apply(_))));
        assert_eq!(read(&path)["items"], serde_json::json!([1, 2]));
    }

    #[tokio::test]
    async fn heartbeat_written_only_when_it_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hb = dir.path().join(".heartbeat");
        let p = Persister::spawn(Toy::default(), dir.path().join("m.json"), Some(hb.clone()));
        p.send(ToyUpdate::Beat("t1".into())).await.expect("send");
        p.flush().await.expect("flush");
        p.send(ToyUpdate::Push(1)).await.expect("send");
        p.flush().await.expect("flush");
        p.send(ToyUpdate::Beat("t2".into())).await.expect("send");
        p.flush().await.expect("flush");
        assert_eq!(std::fs::read_to_string(&hb).expect("hb"), "t2");
        assert_eq!(p.stats(), PersisterStats { writes: 3, heartbeat_writes: 2 });
    }

    #[tokio::test]
    async fn close_works_while_other_handles_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = Persister::spawn(Toy::default(), dir.path().join("m.json"), None);
        let other = p.clone();
        p.send(ToyUpdate::Push(7)).await.expect("send");
        let doc = p.close().await.expect("close");
        assert_eq!(doc.items, vec![7]);
        assert!(other.send(ToyUpdate::Push(8)).await.is_err(), "the task is gone");
    }
}
