//! A stage's output, from its ndjson log (`commands/NN-<slug>.ndjson`), decoded by
//! `exec::logread` like every other reader of the logs:
//! - `GET …/stages/{stage}/log?stream=stdout|stderr&offset=N&limit=M`: the bytes of one stream
//!   exactly as the stage wrote them (non-UTF-8 included), streamed, never held whole;
//! - `GET …/stages/{stage}/tail?before=B&max=M`: the latest chunks of both streams as text,
//!   newest last, for the page's log view; `before` pages further back ("load earlier");
//! - `GET …/stages/{stage}/log/events?from=B`: Server-Sent Events, one `chunk` per new chunk
//!   line (its `id:` the log offset after it, so a reconnect resumes there), `end` when the
//!   stage has ended.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::Json;
use exec::logread::{self, Stream};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::serve::error::{blocking, ApiError};
use crate::serve::paths;
use crate::serve::sse::{last_event_id, sse, SseResponse};
use crate::serve::state::AppState;

/// Most bytes of output in one tail page unless asked.
const DEFAULT_TAIL: usize = 64 * 1024;
/// Most bytes of output in one tail page.
const MAX_TAIL: usize = 1024 * 1024;
/// Bytes per piece of a download.
const PIECE: usize = 64 * 1024;
/// Most output read for one batch of log events before it is sent.
const BATCH: usize = 256 * 1024;

/// The log of stage `stage` (its id) of run `run_id`, and the log's file name.
fn stage_log(state: &AppState, run_id: &str, stage: &str) -> Result<(PathBuf, PathBuf), ApiError> {
    let run = paths::locate(&state.roots, &state.runs_real(), run_id)?;
    let m = crate::history::read_manifest(&run.manifest).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("run `{run_id}` cannot be read: {}", e.one_line()),
        )
    })?;
    let c = m
        .commands
        .iter()
        .find(|c| c.id == stage)
        .ok_or_else(|| ApiError::not_found(format!("run `{run_id}` has no stage `{stage}`")))?;
    let log = c
        .log_path
        .as_deref()
        .and_then(|p| paths::recorded_in_run(&state.roots, &run, p))
        .ok_or_else(|| {
            ApiError::not_found(format!("stage `{stage}` of run `{run_id}` has no log yet"))
        })?;
    Ok((log, run.manifest))
}

/// Download parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct DownloadParams {
    stream: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// `GET /api/runs/{id}/stages/{stage}/log?stream=stdout|stderr&offset=N&limit=M`.
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((run_id, stage)): Path<(String, String)>,
    q: Result<Query<DownloadParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query(q)?;
    let name = p.stream.unwrap_or_else(|| "stdout".to_owned());
    let stream = Stream::parse(&name).ok_or_else(|| {
        ApiError::bad_request(format!("stream must be `stdout` or `stderr`, not `{name}`"))
    })?;
    let (log, _) = {
        let s = state.clone();
        let stage = stage.clone();
        blocking(move || stage_log(&s, &run_id, &stage)).await?
    };
    let offset = p.offset.unwrap_or(0);
    let limit = p.limit;
    // The copy runs on a blocking thread and hands the body over in pieces through a small
    // channel: a 200 MiB log costs a few pieces of memory, and a client that goes away stops
    // the copy (the send fails).
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut w = PieceWriter {
            tx,
            buf: Vec::with_capacity(PIECE),
        };
        let result = logread::copy_stream(&log, stream, offset, limit, &mut w);
        match result.and_then(|_| w.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => {
                let _ = w.tx.blocking_send(Err(e));
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|piece| (piece, rx))
    });
    let file = format!("{}.{}", safe_name(&stage), stream.as_str());
    let mut res = Body::from_stream(body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// A stage id made safe for a file name in a header.
fn safe_name(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() {
        "stage".to_owned()
    } else {
        out
    }
}

/// Buffers output into pieces for the response body.
struct PieceWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for PieceWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PIECE {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(PIECE)));
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// Tail parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct TailParams {
    before: Option<u64>,
    max: Option<usize>,
}

/// `GET /api/runs/{id}/stages/{stage}/tail?before=B&max=M`: chunks (both streams, in order)
/// ending before log offset `B` (default: the end), at most about `M` bytes of output.
/// `from` is where the next page back starts, `end` where following the log continues.
pub(crate) async fn tail(
    State(state): State<AppState>,
    Path((run_id, stage)): Path<(String, String)>,
    q: Result<Query<TailParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(q)?;
    let max = p.max.unwrap_or(DEFAULT_TAIL).clamp(1, MAX_TAIL);
    blocking(move || {
        let (log, _) = stage_log(&state, &run_id, &stage)?;
        let file = std::fs::File::open(&log)
            .map_err(|e| ApiError::internal(format!("cannot read the log: {e}")))?;
        let mut chunks: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        let mut end: Option<u64> = None;
        let mut from = 0u64;
        let mut ended = false;
        let mut earlier = false;
        logread::lines_before(&file, p.before.unwrap_or(u64::MAX), |at, line| {
            if end.is_none() {
                end = Some(at + line.len() as u64 + 1);
                ended = line.starts_with(br#"{"type":"command:end""#);
            }
            from = at;
            if let Some(c) = logread::parse_chunk(line) {
                bytes += c.data.len();
                chunks.push(chunk_json(&c, at + line.len() as u64 + 1));
                if bytes >= max {
                    earlier = at > 0;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        })
        .map_err(|e| ApiError::internal(format!("cannot read the log: {e}")))?;
        chunks.reverse();
        let end = end.unwrap_or(0);
        Ok(Json(json!({
            "chunks": chunks, "from": from.min(end), "end": end, "earlier": earlier, "ended": ended,
        })))
    })
    .await
}

fn chunk_json(c: &logread::Chunk, end: u64) -> Value {
    json!({
        "stream": c.stream.as_str(),
        "attempt": c.attempt,
        "text": String::from_utf8_lossy(&c.data),
        "end": end,
    })
}

/// Follow parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct FollowParams {
    from: Option<u64>,
}

/// `GET /api/runs/{id}/stages/{stage}/log/events?from=B`.
pub(crate) async fn follow(
    State(state): State<AppState>,
    Path((run_id, stage)): Path<(String, String)>,
    headers: HeaderMap,
    q: Result<Query<FollowParams>, QueryRejection>,
) -> Result<SseResponse, ApiError> {
    let p = query(q)?;
    let (log, manifest) = {
        let s = state.clone();
        blocking(move || stage_log(&s, &run_id, &stage)).await?
    };
    let from = last_event_id(&headers).or(p.from).unwrap_or(0);
    Ok(sse(move |tx| async move {
        let dir = log.parent().map(PathBuf::from).unwrap_or_default();
        let mut sub = state.dirs.subscribe(&dir);
        let mut pos = from;
        let mut checked = std::time::Instant::now();
        loop {
            // Read what is there, in batches, until the complete lines run out.
            let mut drained = false;
            while !drained {
                let (events, next, ended) = read_batch(&log, pos);
                drained = next == pos;
                pos = next;
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                if ended {
                    let _ = tx.send(Event::default().event("end").data("{}")).await;
                    return;
                }
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = tx.closed() => return,
                _ = state.shutdown.cancelled() => return,
            }
            // No runner: the stage will not write more (its runner died mid-stage). Looked at
            // now and then, not on every wake.
            if checked.elapsed() >= crate::serve::watch::POLL_WATCHED {
                checked = std::time::Instant::now();
                let alive = state.runner_alive(&manifest).await;
                if !alive {
                    let (events, _, _) = read_batch(&log, pos);
                    for ev in events {
                        let _ = tx.send(ev).await;
                    }
                    let _ = tx
                        .send(Event::default().event("end").data(r#"{"runner":"gone"}"#))
                        .await;
                    return;
                }
            }
        }
    }))
}

/// Events for the complete lines after `pos` (up to [`BATCH`] bytes of output), the offset
/// after them, and whether the stage's `command:end` was among them. Read inline, as the run's
/// event stream is (see `events.rs`): fresh lines from the page cache, at most [`BATCH`].
fn read_batch(log: &std::path::Path, pos: u64) -> (Vec<Event>, u64, bool) {
    let mut events = Vec::new();
    let mut ended = false;
    let mut bytes = 0usize;
    let Ok(file) = std::fs::File::open(log) else {
        return (events, pos, false);
    };
    let next = logread::lines_from(&file, pos, |at, line| {
        let end = at + line.len() as u64 + 1;
        if line.starts_with(br#"{"type":"command:end""#) {
            ended = true;
            return ControlFlow::Break(());
        }
        if line.starts_with(br#"{"type":"exec:begin""#) {
            let attempt = serde_json::from_slice::<Value>(line)
                .ok()
                .and_then(|v| v["attempt"].as_u64());
            events.push(
                Event::default()
                    .event("attempt")
                    .id(end.to_string())
                    .data(json!({ "attempt": attempt }).to_string()),
            );
        } else if let Some(c) = logread::parse_chunk(line) {
            bytes += c.data.len();
            events.push(
                Event::default()
                    .event("chunk")
                    .id(end.to_string())
                    .data(chunk_json(&c, end).to_string()),
            );
            if bytes >= BATCH {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })
    .unwrap_or(pos);
    (events, next, ended)
}
