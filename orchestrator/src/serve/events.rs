//! The event streams (Server-Sent Events):
//! - `GET /api/runs/{id}/events`: one SSE event per line of the run's `events.jsonl`, the line
//!   itself as data and its `seq` as `id:`. A reconnecting client sends the last id it saw
//!   (`Last-Event-ID`, or `?last_event_id=`) and gets exactly the lines after it: nothing
//!   missed, nothing twice. When the run has ended (its last line is `run_completed` or
//!   `run_failed`, or no runner holds it any more) an `end` event carries the run's status and
//!   the stream closes.
//! - `GET /api/events`: run-level changes across all runs, from the live tracker: `run` (a row
//!   as `/api/runs` gives it), `removed` (a run directory was deleted), `resync` (this client
//!   fell behind: reload the list).
//!
//! Each client reads the file itself from its own offset, woken by the directory watch: no
//! shared cursor to keep consistent, and a torn last line (a runner mid-write) is never sent,
//! because only lines ended by a newline are read.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::Event;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::serve::error::{blocking, ApiError};
use crate::serve::live::RunChange;
use crate::serve::paths;
use crate::serve::sse::{last_event_id, sse, SseResponse};
use crate::serve::state::AppState;
use crate::serve::watch::POLL_WATCHED;

/// Most lines read before they are sent.
const BATCH_LINES: usize = 512;

/// The part of an `events.jsonl` envelope the stream needs.
#[derive(Deserialize)]
struct Envelope<'a> {
    seq: u64,
    #[serde(borrow)]
    event: &'a str,
    #[serde(default)]
    payload: Option<Payload>,
}

/// The run's status, in the payload of the lines that end it.
#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    status: Option<String>,
}

/// Lines that end a run's stream (a cancelled run ends with `run_failed` too).
fn ends_run(event: &str) -> bool {
    matches!(event, "run_completed" | "run_failed")
}

/// `?last_event_id=` for clients that cannot set the header.
#[derive(Debug, Deserialize)]
pub(crate) struct RunEventParams {
    last_event_id: Option<u64>,
}

/// What one read of the file found.
struct Batch {
    events: Vec<Event>,
    /// Offset after the last complete line read.
    pos: u64,
    /// Highest `seq` seen (sent or skipped as already seen).
    last: u64,
    /// Whether the newest line read ends the run (then with the run's status).
    ended: Option<Option<String>>,
}

/// Reads complete lines of `path` after `pos`; lines with `seq <= last` are skipped.
fn read_batch(path: &Path, pos: u64, last: u64) -> Batch {
    let mut b = Batch {
        events: Vec::new(),
        pos,
        last,
        ended: None,
    };
    let Ok(file) = std::fs::File::open(path) else {
        return b;
    };
    let mut lines = 0;
    b.pos = exec::logread::lines_from(&file, pos, |_, line| {
        lines += 1;
        // A line that is not an envelope (damage, another tool's line) is skipped, not sent:
        // it has no `seq` to resume from.
        if let (Ok(text), Ok(env)) = (
            std::str::from_utf8(line),
            serde_json::from_slice::<Envelope<'_>>(line),
        ) {
            b.ended = Some(ends_run(env.event).then(|| {
                env.payload
                    .and_then(|p| p.status)
                    .unwrap_or_else(|| "finished".to_owned())
            }));
            if env.seq > b.last {
                b.last = env.seq;
                b.events
                    .push(Event::default().id(env.seq.to_string()).data(text));
            }
        }
        if lines >= BATCH_LINES {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap_or(pos);
    b
}

/// The run's status for the `end` event of a run whose runner is gone, whether it is finished
/// and whether it was abandoned (unfinished, and no runner holds it).
fn run_state(manifest: &Path) -> (String, bool, bool) {
    let alive = crate::control::lock::runner_alive(manifest);
    match crate::history::read_manifest(manifest) {
        Ok(m) => (
            m.status.as_str().to_owned(),
            m.status.is_terminal() && !alive,
            !m.status.is_terminal() && !alive,
        ),
        Err(_) => ("unreadable".to_owned(), !alive, false),
    }
}

/// `GET /api/runs/{id}/events`.
pub(crate) async fn run_events(
    State(state): State<AppState>,
    UrlPath(run_id): UrlPath<String>,
    headers: HeaderMap,
    q: Result<Query<RunEventParams>, QueryRejection>,
) -> Result<SseResponse, ApiError> {
    let from_query = q.ok().and_then(|Query(p)| p.last_event_id);
    let last = last_event_id(&headers).or(from_query).unwrap_or(0);
    let run = {
        let s = state.clone();
        blocking(move || paths::locate(&s.roots, &s.runs_real(), &run_id)).await?
    };
    Ok(sse(move |tx| async move {
        let path: PathBuf = run.dir.join("events.jsonl");
        let mut sub = state.dirs.subscribe(&run.dir);
        let (mut pos, mut last) = (0u64, last);
        // A run that is over says so in its last line; the runner's liveness is looked at only
        // now and then, for a run whose runner died before writing it.
        let mut checked = Instant::now();
        let mut over: Option<String> = None;
        loop {
            // Read inline: a few lines the runner has just written, from the page cache. A
            // blocking-pool hop per wake-up, times 50 clients, grew the pool to hundreds of
            // threads under load (see BENCHMARKS.md).
            loop {
                let b = read_batch(&path, pos, last);
                let progressed = b.pos != pos;
                pos = b.pos;
                last = b.last;
                if let Some(ended) = b.ended {
                    over = ended;
                }
                for ev in b.events {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
                if !progressed {
                    break;
                }
            }
            let mut gone = false;
            if over.is_none() && checked.elapsed() >= POLL_WATCHED {
                checked = Instant::now();
                let alive = state.runner_alive(&run.manifest).await;
                if !alive {
                    // Read once more: the runner may have written its last lines and exited
                    // since the read above.
                    gone = true;
                    for ev in read_batch(&path, pos, last).events {
                        if tx.send(ev).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let end = match (&over, gone) {
                (Some(status), _) => Some(json!({ "status": status, "abandoned": false })),
                (None, true) => {
                    let m = run.manifest.clone();
                    let (status, _, abandoned) = tokio::task::spawn_blocking(move || run_state(&m))
                        .await
                        .unwrap_or_default();
                    Some(json!({ "status": status, "abandoned": abandoned }))
                }
                (None, false) => None,
            };
            if let Some(mut data) = end {
                data["last_event_id"] = json!(last);
                let _ = tx
                    .send(Event::default().event("end").data(data.to_string()))
                    .await;
                return;
            }
            tokio::select! {
                _ = sub.changed() => {}
                _ = tx.closed() => return,
                _ = state.shutdown.cancelled() => return,
            }
        }
    }))
}

/// `GET /api/events`.
pub(crate) async fn all_events(State(state): State<AppState>) -> SseResponse {
    let mut rx = state.live.changes.subscribe();
    sse(move |tx| async move {
        loop {
            let ev = tokio::select! {
                r = rx.recv() => match r {
                    Ok(RunChange::Updated(row)) => Event::default().event("run").data(row.to_json().to_string()),
                    Ok(RunChange::Removed(id)) => Event::default()
                        .event("removed")
                        .data(json!({ "run_id": id }).to_string()),
                    Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                    Err(RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
                _ = state.shutdown.cancelled() => return,
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    })
}
