//! Following a submitted Ray job to its end: the WebSocket log tail is decoded into records as
//! it comes (live output, `exec:chunk` events through the shared emitter), the job's status is
//! polled beside it, cancellation and the runner-side timeout stop the job, and the wrapper's
//! exit record decides the outcome.
//!
//! Ray's tail closes normally when the job ends, but also when the head goes away: a clean
//! close proves nothing. So after any close without the exit record the runner asks for the
//! job's status; a terminal job's whole log is read once more (the records already seen are
//! skipped by their sequence numbers); a running one is tailed again (Ray replays from the
//! start, the decoder skips the replay). The head must answer within [`UNREACHABLE_AFTER`] of
//! the last answer, or the attempt is lost: never a hang.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::api::{Client, JobDetails, JobStatus};
use super::records::{Decoder, Exit, Record};
use super::verdict::{self, End, Stop};
use crate::capture::Tail;
use crate::emit::Emitter;
use crate::errors::ExecError;
use crate::ndjson::StageLog;
use crate::outcome::{ExecResult, Outcome, RemoteInfo};
use crate::spec::{CancelRequest, ExecSpec};

/// The head must answer again within this long after its last answer.
const UNREACHABLE_AFTER: Duration = Duration::from_secs(10);
/// How often the job's status is asked for while its log is tailed.
const POLL: Duration = Duration::from_secs(5);
/// Connecting the tail may take this long.
const WS_CONNECT: Duration = Duration::from_secs(10);
/// A terminal job's tail should close within seconds; after this it is closed by us.
const TERMINAL_CLOSE: Duration = Duration::from_secs(5);
/// Beyond the timeout and grace the wrapper enforces itself, the runner waits this long
/// before it stops the job on its own (a wrapper that cannot enforce it).
const TIMEOUT_SLACK: Duration = Duration::from_secs(30);
/// After a graceful stop: the wrapper's grace, then up to this long for the job to end.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// After an immediate stop (a second Ctrl-C).
const IMMEDIATE_STOP_WAIT: Duration = Duration::from_secs(3);
/// Largest chunk event, as for a local stage.
const CHUNK_BYTES: usize = 64 * 1024;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A Ray attempt after its start.
pub(crate) enum RayAttempt {
    /// The job runs (submitted now or attached to).
    Running(Box<Job>),
    /// No job runs; `exec:end` is logged.
    Ended(Box<ExecResult>),
}

/// A submitted job being followed.
pub(crate) struct Job {
    pub(crate) client: Arc<Client>,
    pub(crate) spec: ExecSpec,
    pub(crate) remote: RemoteInfo,
    pub(crate) nonce: String,
    pub(crate) correlation_id: String,
    pub(crate) started: Instant,
    /// The wrapper's exit record, once decoded.
    pub(crate) exit: Option<Exit>,
}

/// A result without output.
pub(crate) fn ended(
    outcome: Outcome,
    remote: Option<RemoteInfo>,
    duration: Duration,
) -> ExecResult {
    ExecResult {
        outcome,
        process: None,
        remote,
        duration,
        stdout: Default::default(),
        stderr: Default::default(),
        chunk_events: Vec::new(),
        dropped_chunk_events: 0,
        leaked_processes: false,
        redactions: 0,
    }
}

/// `exec:end`: the local event's fields plus `executor` (and `extra`, e.g. an error).
pub(crate) fn end_event(
    log: &mut StageLog,
    correlation_id: &str,
    attempt: u32,
    result: &ExecResult,
    extra: &[(&str, Value)],
) -> Result<(), ExecError> {
    let mut end: Map<String, Value> =
        crate::child::end_fields(correlation_id, attempt, result, result.duration);
    if let Some(r) = &result.remote {
        end.insert(
            "executor".into(),
            json!({
                "kind": r.kind, "address": r.address, "submission_id": r.submission_id,
                "node": r.node, "status": r.status,
            }),
        );
    }
    match &result.outcome {
        Outcome::SpawnFailed { message } | Outcome::Lost { message } => {
            end.insert("error".into(), Value::String(message.clone()));
        }
        _ => {}
    }
    for (k, v) in extra {
        end.insert((*k).to_owned(), v.clone());
    }
    log.write_fields(end)?;
    log.flush_buffer()
}

/// One stream's undelivered bytes and its tail.
struct Buf {
    name: &'static str,
    pending: Vec<u8>,
    tail: Tail,
}

impl Job {
    fn unreachable(&self, detail: impl std::fmt::Display) -> String {
        format!("Ray unreachable at {}: {detail}", self.remote.address)
    }

    /// Follows the job to its end; see the module doc.
    pub(crate) async fn wait(
        mut self,
        log: &mut StageLog,
        mut cancel: watch::Receiver<CancelRequest>,
    ) -> Result<ExecResult, ExecError> {
        let spec = self.spec.clone();
        let mut em = Emitter::new(
            log,
            self.correlation_id.clone(),
            spec.attempt,
            spec.max_chunk_events,
        )
        .redacting(spec.secrets.clone());
        let mut out = Buf {
            name: "stdout",
            pending: Vec::new(),
            tail: Tail::new(spec.tail_bytes),
        };
        let mut err = Buf {
            name: "stderr",
            pending: Vec::new(),
            tail: Tail::new(spec.tail_bytes),
        };
        let mut decoder = Decoder::new(&self.nonce);
        let mut stop = Stop::default();
        let end = self
            .follow(
                &mut em,
                &mut out,
                &mut err,
                &mut decoder,
                &mut cancel,
                &mut stop,
            )
            .await?;
        for b in [&mut out, &mut err] {
            em.emit(b.name, &mut b.pending, true, &mut b.tail)?;
        }
        // The node and the final status, for the record. It also tells a stop from outside
        // the runner (the dashboard: the head answers) from a head that went away.
        let mut head_answered = true;
        if !matches!(end, End::Lost(_)) {
            let details = match &end {
                End::Terminal(j) => Some(j.clone()),
                _ => match self.client.job(&self.remote.submission_id).await {
                    Ok(j) => {
                        head_answered = j.is_some();
                        j
                    }
                    Err(_) => {
                        head_answered = false;
                        None
                    }
                },
            };
            if let Some(j) = details {
                if j.driver_node_id.is_some() {
                    self.remote.node = j.driver_node_id.clone();
                }
                self.remote.status = j.status.is_terminal().then(|| j.status.as_str().to_owned());
            }
        }
        let incomplete = match &end {
            End::Exit(x) => decoder.gaps > 0 || (x.records > 0 && x.records != decoder.records()),
            _ => decoder.gaps > 0,
        };
        if incomplete {
            tracing::warn!(
                job = %self.remote.submission_id,
                gaps = decoder.gaps,
                "records of the Ray job's output went missing; its log may be incomplete"
            );
        }
        let outcome = verdict::outcome(
            &self.remote,
            self.spec.timeout,
            end,
            &stop,
            decoder.records() > 0,
            head_answered,
        );
        let duration = self.started.elapsed();
        let result = ExecResult {
            outcome,
            process: None,
            remote: Some(self.remote.clone()),
            duration,
            stdout: out.tail.finish(),
            stderr: err.tail.finish(),
            chunk_events: std::mem::take(&mut em.retained),
            dropped_chunk_events: em.dropped,
            leaked_processes: false,
            redactions: em.redactions(),
        };
        let extra: Vec<(&str, Value)> = if incomplete {
            vec![("incomplete_output", Value::Bool(true))]
        } else {
            Vec::new()
        };
        end_event(em.log, &self.correlation_id, spec.attempt, &result, &extra)?;
        Ok(result)
    }

    /// The loop: tail, poll, stop; returns how it ended. `Err` only for the logs.
    async fn follow(
        &mut self,
        em: &mut Emitter<'_>,
        out: &mut Buf,
        err: &mut Buf,
        decoder: &mut Decoder,
        cancel: &mut watch::Receiver<CancelRequest>,
        stop: &mut Stop,
    ) -> Result<End, ExecError> {
        let id = self.remote.submission_id.clone();
        let mut socket: Option<Box<Socket>> = None;
        let mut last_answer = Instant::now();
        let mut next_poll = Instant::now() + POLL;
        let mut terminal_since: Option<Instant> = None;
        let mut retry_at = Instant::now();
        // The runner-side timeout counts from the command's start (the `b` record).
        let mut backstop: Option<Instant> = None;
        let mut cancel_open = true;
        // A stop asked for before the job was followed acts at once.
        if *cancel.borrow_and_update() != CancelRequest::None {
            let request = *cancel.borrow();
            self.stop(request, stop).await;
        }
        loop {
            if let Some(x) = self.exit.take() {
                return Ok(End::Exit(x));
            }
            let deadline = [backstop, stop.give_up_at].into_iter().flatten().min();
            let event = match socket.as_mut() {
                Some(ws) => tokio::select! {
                    msg = ws.next() => Event::Frame(msg),
                    changed = cancel.changed(), if cancel_open => Event::Cancel(changed.is_ok()),
                    () = tokio::time::sleep_until(deadline.unwrap_or(next_poll)), if deadline.is_some() => Event::Deadline,
                    () = tokio::time::sleep_until(next_poll) => Event::Poll,
                },
                None => tokio::select! {
                    step = self.reconnect(retry_at) => Event::Reconnected(step),
                    changed = cancel.changed(), if cancel_open => Event::Cancel(changed.is_ok()),
                    () = tokio::time::sleep_until(deadline.unwrap_or(retry_at)), if deadline.is_some() => Event::Deadline,
                },
            };
            match event {
                Event::Frame(Some(Ok(Message::Text(text)))) => {
                    last_answer = Instant::now();
                    self.feed(em, out, err, decoder, text.as_str(), &mut backstop)?;
                }
                Event::Frame(Some(Ok(Message::Close(_)) | Err(_)) | None) => {
                    socket = None;
                    retry_at = Instant::now();
                }
                Event::Frame(Some(Ok(_))) => {}
                Event::Poll => {
                    next_poll = Instant::now() + POLL;
                    match self.client.job(&id).await {
                        Ok(Some(j)) => {
                            last_answer = Instant::now();
                            if j.driver_node_id.is_some() {
                                self.remote.node.clone_from(&j.driver_node_id);
                            }
                            if j.status.is_terminal() {
                                let since = *terminal_since.get_or_insert_with(Instant::now);
                                if since.elapsed() >= TERMINAL_CLOSE {
                                    // Ray did not close the tail: read the log instead.
                                    socket = None;
                                }
                            }
                        }
                        Ok(None) => return Ok(End::Lost(self.forgotten(&id))),
                        Err(e) if last_answer.elapsed() >= UNREACHABLE_AFTER => {
                            return Ok(End::Lost(self.unreachable(e)))
                        }
                        Err(e) => tracing::debug!(error = %e, "Ray status poll failed; retrying"),
                    }
                }
                Event::Reconnected(step) => match step {
                    Step::Socket(ws) => {
                        last_answer = Instant::now();
                        decoder.restart();
                        socket = Some(ws);
                    }
                    Step::Terminal(job) => {
                        // Everything the tail did not deliver is in the log file.
                        match self.client.logs(&id).await {
                            Ok(text) => {
                                self.feed(em, out, err, decoder, &text, &mut backstop)?;
                                let mut records = Vec::new();
                                decoder.finish(&mut |r| records.push(r));
                                for r in records {
                                    self.record(em, out, err, r, &mut backstop)?;
                                }
                                self.flush(em, out, err)?;
                            }
                            Err(e) => {
                                tracing::warn!(job = %id, error = %e, "cannot read the Ray job's log")
                            }
                        }
                        if let Some(x) = self.exit.take() {
                            return Ok(End::Exit(x));
                        }
                        return Ok(End::Terminal(job));
                    }
                    Step::Forgotten => return Ok(End::Lost(self.forgotten(&id))),
                    Step::Retry(e) => {
                        if last_answer.elapsed() >= UNREACHABLE_AFTER {
                            return Ok(End::Lost(self.unreachable(e)));
                        }
                        retry_at = Instant::now() + Duration::from_millis(500);
                    }
                    Step::Waiting => {
                        last_answer = Instant::now();
                        retry_at = Instant::now() + Duration::from_millis(500);
                    }
                },
                Event::Cancel(open) => {
                    if open {
                        let request = *cancel.borrow_and_update();
                        self.stop(request, stop).await;
                    } else {
                        // Every sender is gone: no cancellation can come any more.
                        cancel_open = false;
                    }
                }
                Event::Deadline => {
                    let now = Instant::now();
                    if stop.give_up_at.is_some_and(|t| t <= now) {
                        return Ok(End::Abandoned);
                    }
                    if backstop.is_some_and(|t| t <= now) {
                        backstop = None;
                        tracing::warn!(job = %id, "the Ray job outlived its timeout; stopping it");
                        stop.timed_out = true;
                        self.stop(CancelRequest::Graceful { signal: 15 }, stop)
                            .await;
                    }
                }
            }
        }
    }

    /// Without a tail: after `retry_at`, the job's status; a running job's tail is connected.
    async fn reconnect(&self, retry_at: Instant) -> Step {
        tokio::time::sleep_until(retry_at).await;
        let id = &self.remote.submission_id;
        match self.client.job(id).await {
            Err(e) => Step::Retry(e.to_string()),
            Ok(None) => Step::Forgotten,
            Ok(Some(j)) if j.status.is_terminal() => Step::Terminal(j),
            Ok(Some(j)) => {
                let url = self.client.tail_url(id);
                match tokio::time::timeout(WS_CONNECT, tokio_tungstenite::connect_async(url)).await
                {
                    Ok(Ok((ws, _))) => Step::Socket(Box::new(ws)),
                    Ok(Err(e)) if j.status == JobStatus::Pending => {
                        tracing::debug!(error = %e, "tail not available yet");
                        Step::Waiting
                    }
                    Ok(Err(e)) => Step::Retry(format!("log tail: {e}")),
                    Err(_) => Step::Retry("log tail: connecting timed out".to_owned()),
                }
            }
        }
    }

    fn forgotten(&self, id: &str) -> String {
        self.unreachable(format!(
            "the head no longer knows job `{id}` (was it restarted?)"
        ))
    }

    /// Asks the job to stop (again, for an immediate request) and bounds the wait for it.
    async fn stop(&self, request: CancelRequest, stop: &mut Stop) {
        let wait = match request {
            CancelRequest::None => return,
            CancelRequest::Graceful { .. } => {
                if stop.give_up_at.is_some() {
                    return;
                }
                self.spec.kill_grace.min(super::MAX_STOP_GRACE) + STOP_WAIT
            }
            CancelRequest::Immediate { .. } => IMMEDIATE_STOP_WAIT,
        };
        if !stop.timed_out {
            stop.cancelled = true;
        }
        let give_up = Instant::now() + wait;
        stop.give_up_at = Some(stop.give_up_at.map_or(give_up, |t| t.min(give_up)));
        if let Err(e) = self.client.stop(&self.remote.submission_id).await {
            tracing::warn!(job = %self.remote.submission_id, error = %e, "cannot stop the Ray job");
        }
    }

    /// Decodes a piece of log text and logs the output it holds.
    fn feed(
        &mut self,
        em: &mut Emitter<'_>,
        out: &mut Buf,
        err: &mut Buf,
        decoder: &mut Decoder,
        text: &str,
        backstop: &mut Option<Instant>,
    ) -> Result<(), ExecError> {
        let mut records = Vec::new();
        decoder.feed(text, &mut |r| records.push(r));
        for r in records {
            self.record(em, out, err, r, backstop)?;
        }
        // One piece of the tail is about a second of output: log it now (live).
        self.flush(em, out, err)
    }

    fn record(
        &mut self,
        em: &mut Emitter<'_>,
        out: &mut Buf,
        err: &mut Buf,
        record: Record,
        backstop: &mut Option<Instant>,
    ) -> Result<(), ExecError> {
        let (this, other, bytes) = match record {
            Record::Stdout(b) => (out, err, b),
            Record::Stderr(b) => (err, out, b),
            Record::Begin(b) => {
                self.remote.host = b.host;
                if let Some(t) = self.spec.timeout {
                    // Saturating: a timeout past what the clock can hold has no backstop.
                    *backstop = Instant::now()
                        .checked_add(t)
                        .and_then(|at| at.checked_add(self.spec.kill_grace + TIMEOUT_SLACK));
                }
                return Ok(());
            }
            Record::Exit(x) => {
                self.exit = Some(x);
                return Ok(());
            }
        };
        // The other stream's output came first: log it first, so `sequence` keeps the order.
        em.emit(other.name, &mut other.pending, false, &mut other.tail)?;
        this.pending.extend_from_slice(&bytes);
        if this.pending.len() >= CHUNK_BYTES {
            em.emit(this.name, &mut this.pending, false, &mut this.tail)?;
        }
        Ok(())
    }

    fn flush(&self, em: &mut Emitter<'_>, out: &mut Buf, err: &mut Buf) -> Result<(), ExecError> {
        for b in [out, err] {
            em.emit(b.name, &mut b.pending, false, &mut b.tail)?;
        }
        // To the file now (a piece of the tail comes about once a second), so followers of
        // the stage log (`exec`'s live output, `serve`) see the output as it comes.
        em.log.flush_buffer()
    }
}

/// What woke the follow loop.
enum Event {
    Frame(Option<Result<Message, tokio_tungstenite::tungstenite::Error>>),
    Poll,
    Reconnected(Step),
    Cancel(bool),
    Deadline,
}

/// What a reconnection found.
enum Step {
    Socket(Box<Socket>),
    Terminal(JobDetails),
    Forgotten,
    /// The job waits for resources and has no tail yet.
    Waiting,
    Retry(String),
}
