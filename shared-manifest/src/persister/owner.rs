//! The persister's task: applies every message in order as soon as it arrives, and decides
//! when to write (a barrier, the pace, a deadline). Only this task touches the document.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::pacing::Pacer;
use super::sink::{Sink, Synced, Targets};
use super::writer::{commit, OnDisk, Writer};
use super::{Look, Msg, Shared, BATCH};
use crate::document::Document;
use crate::errors::PersistError;

/// What a write needs and gives back: it moves to the writer thread for the write, so the
/// task holds it (`Some`) at every other moment.
struct Desk<D> {
    doc: D,
    sink: Box<dyn Sink>,
    disk: OnDisk,
}

pub(super) struct Owner<D> {
    desk: Option<Desk<D>>,
    targets: Arc<Targets>,
    shared: Arc<Shared>,
    writer: Writer,
    pacer: Pacer,
    /// Since when applied updates are not written (`None`: the file is up to date).
    dirty_since: Option<Instant>,
    /// The latest moment the next write may happen (`send_deferred`).
    cap: Option<Instant>,
    /// Files to make durable before the next write.
    pending: Synced,
    /// Updates applied since the last write: the batch size the next write carries (`-vv`).
    unwritten: u64,
}

/// What `recv_many` cannot return: the deadline passed.
const DEADLINE: usize = usize::MAX;

impl<D: Document> Owner<D> {
    pub(super) fn new(
        doc: D,
        targets: Targets,
        sink: Box<dyn Sink>,
        shared: Arc<Shared>,
        writer: Writer,
    ) -> Self {
        let disk = OnDisk {
            // Unknown until the first write: a resumed run may have one from another layout.
            sidecar_may_exist: targets.sidecar.is_some(),
            ..OnDisk::default()
        };
        Owner {
            desk: Some(Desk { doc, sink, disk }),
            targets: Arc::new(targets),
            shared,
            writer,
            pacer: Pacer::default(),
            dirty_since: None,
            cap: None,
            pending: Synced::default(),
            unwritten: 0,
        }
    }

    fn doc(&self) -> &D {
        &self
            .desk
            .as_ref()
            .expect("the desk is back after every write")
            .doc
    }

    fn doc_mut(&mut self) -> &mut D {
        &mut self
            .desk
            .as_mut()
            .expect("the desk is back after every write")
            .doc
    }

    /// When the next write is due, if anything is unwritten.
    fn due(&self) -> Option<Instant> {
        let since = self.dirty_since?;
        let paced = self.pacer.due(since);
        Some(self.cap.map_or(paced, |c| c.min(paced)))
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Msg<D>>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut closer: Option<oneshot::Sender<D>> = None;
        loop {
            // `recv_many` returns 0 once the channel is closed (by a `Close`) or every handle is
            // dropped, *and* it is empty: everything accepted has been applied.
            let received = match self.due() {
                None => rx.recv_many(&mut batch, BATCH).await,
                Some(at) => tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = tokio::time::sleep_until(at) => DEADLINE,
                },
            };
            let closed = received == 0;
            let mut acks = Vec::new();
            let mut inspects: Vec<Look<D>> = Vec::new();
            for msg in batch.drain(..) {
                match msg {
                    Msg::Apply {
                        update,
                        within,
                        sync,
                    } => {
                        let now = Instant::now();
                        // A rejected update should leave the document as it was; counting it as
                        // a change costs at most one extra write and never hides a partial apply.
                        self.dirty_since.get_or_insert(now);
                        if let Some(w) = within {
                            let at = now + w;
                            self.cap = Some(self.cap.map_or(at, |c| c.min(at)));
                        }
                        self.pending.absorb(sync);
                        self.unwritten += 1;
                        self.apply(update);
                    }
                    Msg::ApplyAll { updates, sync } => {
                        self.dirty_since.get_or_insert(Instant::now());
                        self.pending.absorb(sync);
                        for update in updates {
                            self.apply(update);
                        }
                    }
                    Msg::Flush(ack) => acks.push(ack),
                    Msg::Inspect(look) => inspects.push(look),
                    // In order: it sees exactly the updates sent before it.
                    Msg::Peek(look) => look(self.doc()),
                    Msg::Close(reply) => {
                        // New sends fail from now on; what is queued still gets applied.
                        rx.close();
                        // Only one caller can get the document; a second one gets `Closed`.
                        closer.get_or_insert(reply);
                    }
                }
            }
            // Someone waits for durability, or the pace (or a deadline) says it is time.
            let barrier = !acks.is_empty() || !inspects.is_empty() || closer.is_some() || closed;
            let due = self.due().is_some_and(|at| at <= Instant::now());
            if self.dirty_since.is_some() && (barrier || due || received == DEADLINE) {
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
                look(self.doc());
            }
            if closed {
                break;
            }
        }
        if let Some(reply) = closer {
            if let Some(desk) = self.desk.take() {
                let _ = reply.send(desk.doc);
            }
        }
    }

    fn apply(&mut self, update: D::Update) {
        if let Err(e) = self.doc_mut().apply(update) {
            tracing::debug!(error = %e, "manifest update rejected");
            self.shared.record(PersistError::Apply(e));
        }
    }

    /// One write on the writer thread (group commit, see `writer.rs`), then the pace and the
    /// counters. The desk goes there and comes back; if the thread is gone (a panic), the task
    /// ends with `Closed`.
    async fn write(&mut self) -> Result<(), PersistError> {
        let mut desk = self
            .desk
            .take()
            .expect("the desk is back after every write");
        let sync = std::mem::take(&mut self.pending);
        let targets = Arc::clone(&self.targets);
        let (desk, result) = self
            .writer
            .run(move || {
                let r = commit(
                    &mut desk.doc,
                    desk.sink.as_mut(),
                    &targets,
                    &sync,
                    &mut desk.disk,
                );
                (desk, r)
            })
            .await
            .ok_or(PersistError::Closed)?;
        self.desk = Some(desk);
        let report = result?;
        tracing::debug!(
            updates = self.unwritten,
            cost_us = report.cost.as_micros() as u64,
            bytes = report.main_bytes,
            sidecar_bytes = report.sidecar_bytes.unwrap_or(0),
            synced = report.synced,
            "manifest written"
        );
        self.dirty_since = None;
        self.cap = None;
        self.unwritten = 0;
        let bytes = report.main_bytes + report.sidecar_bytes.unwrap_or(0);
        self.pacer.wrote(Instant::now(), report.cost, bytes);
        let s = &self.shared;
        s.writes.fetch_add(1, Ordering::Relaxed);
        s.bytes.fetch_add(report.main_bytes, Ordering::Relaxed);
        s.synced.fetch_add(report.synced, Ordering::Relaxed);
        let cost_ns = u64::try_from(report.cost.as_nanos()).unwrap_or(u64::MAX);
        s.last_cost_ns.store(cost_ns, Ordering::Relaxed);
        if report.sidecar_bytes.is_some() {
            s.sidecar_writes.fetch_add(1, Ordering::Relaxed);
        }
        if report.heartbeat {
            s.heartbeat_writes.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}
