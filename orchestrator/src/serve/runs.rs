//! The runs resources: `GET /api/runs` (the history index corrected by the live tracker,
//! filtered and paged, newest first; an unfinished run whose runner died is `abandoned`), `GET /api/pipelines` (pass rate and latest runs per
//! pipeline), `GET /api/runs/{id}` (exactly the object of `status --run ID --format json`) and
//! `POST /api/runs/{id}/cancel` (the path of `cancel --run`).

use std::collections::HashMap;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::control::cancel::CancelError;
use crate::history::{parse_since, RunFilter, RunRow};
use crate::serve::error::{blocking, ApiError};
use crate::serve::live::{row_json, with_activity, LiveRow, Snapshot};
use crate::serve::paths;
use crate::serve::state::AppState;

/// Rows per page unless asked.
const DEFAULT_LIMIT: u32 = 50;
/// Most rows per page.
const MAX_LIMIT: u32 = 500;
/// Latest runs per pipeline in `/api/pipelines` unless asked.
const DEFAULT_TREND: u32 = 20;

/// `GET /api/runs` parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    status: Option<String>,
    pipeline: Option<String>,
    task: Option<String>,
    since: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn blank_is_none(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// `GET /api/runs?status=&pipeline=&task=&since=&limit=&offset=`.
pub(crate) async fn list(
    State(state): State<AppState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query(q)?;
    let status = blank_is_none(p.status);
    if let Some(s) = &status {
        if ![
            "queued",
            "in_progress",
            "succeeded",
            "failed",
            "cancelled",
            "unreadable",
        ]
        .contains(&s.as_str())
        {
            return Err(ApiError::bad_request(format!("unknown status `{s}`")));
        }
    }
    let since_ms = blank_is_none(p.since)
        .map(|s| parse_since(&s, SystemTime::now()).map_err(ApiError::bad_request))
        .transpose()?;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let offset = p.offset.unwrap_or(0);
    let filter = RunFilter {
        task: blank_is_none(p.task),
        pipeline: blank_is_none(p.pipeline),
        status,
        since_ms,
        limit: None,
    };
    let snapshot = state.live.snapshot.borrow().clone();
    let s = state.clone();
    let page = blocking(move || page(&s, &snapshot, filter, offset, limit)).await?;
    Ok(Json(page))
}

/// One page. Runs are placed by their keys (start time, id) first: the index's keys for the
/// filter (enough of them to fill the page after the tracker's corrections), minus hidden runs
/// and runs the tracker has a newer row for, merged with the tracker's rows. Only the page's
/// index rows are then read whole: a page deep in a long history costs its keys, not its rows.
fn page(
    state: &AppState,
    snap: &Snapshot,
    filter: RunFilter,
    offset: u32,
    limit: u32,
) -> Result<Value, ApiError> {
    let (offset, limit) = (offset as usize, limit as usize);
    let want = offset + limit + 1;
    // (started_ms, run_id, the tracker's row if it has one)
    let mut keys: Vec<(i64, String, Option<&LiveRow>)> = Vec::new();
    if filter.status.as_deref() != Some("unreadable") {
        let fetch = RunFilter {
            limit: Some(
                u32::try_from(want + snap.hidden.len() + snap.rows.len()).unwrap_or(u32::MAX),
            ),
            ..filter.clone()
        };
        for (ms, id) in state.with_index(|i| i.keys(&fetch))? {
            if !snap.hidden.contains(&id) && !snap.rows.contains_key(&id) {
                keys.push((ms, id, None));
            }
        }
    }
    for live in snap.rows.values() {
        if matches(live, &filter) {
            keys.push((live.started_ms(), live.run_id().to_owned(), Some(live)));
        }
    }
    keys.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    let has_more = keys.len() > offset + limit;
    let page: Vec<_> = keys.into_iter().skip(offset).take(limit).collect();
    let wanted: Vec<String> = page
        .iter()
        .filter(|k| k.2.is_none())
        .map(|k| k.1.clone())
        .collect();
    let mut rows: HashMap<String, RunRow> = state
        .with_index(|i| i.rows(&wanted))?
        .into_iter()
        .map(|r| (r.run_id.clone(), r))
        .collect();
    let runs: Vec<Value> = page
        .into_iter()
        .filter_map(|(_, id, live)| match live {
            Some(l) => Some(l.to_json()),
            // Gone from the index between the two queries (a rebuild): left out.
            None => rows.remove(&id).map(|r| row_json(&r)),
        })
        .map(|row| with_activity(&state.roots, row))
        .collect();
    Ok(json!({ "runs": runs, "offset": offset, "limit": limit, "has_more": has_more }))
}

/// The filter, applied to a row the index does not hold.
fn matches(row: &LiveRow, f: &RunFilter) -> bool {
    match row {
        LiveRow::Run(r) => run_matches(r, f),
        LiveRow::Unreadable { task_id, .. } => {
            f.status.as_deref().is_none_or(|s| s == "unreadable")
                && f.pipeline.is_none()
                && f.task.as_deref().is_none_or(|t| t == task_id)
                && f.since_ms.is_none()
        }
    }
}

fn run_matches(r: &RunRow, f: &RunFilter) -> bool {
    let started_ms = crate::time::parse(&r.started_at)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    f.task.as_deref().is_none_or(|t| t == r.task_id)
        && f.pipeline.as_deref().is_none_or(|p| p == r.pipeline_id)
        && f.status.as_deref().is_none_or(|s| s == r.status)
        && f.since_ms.is_none_or(|s| started_ms >= s)
}

/// `GET /api/pipelines` parameters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PipelineParams {
    last: Option<u32>,
}

/// `GET /api/pipelines?last=N`: per pipeline, runs by status, pass rate, the last N runs.
pub(crate) async fn pipelines(
    State(state): State<AppState>,
    q: Result<Query<PipelineParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let last = query(q)?.last.unwrap_or(DEFAULT_TREND).clamp(1, 200);
    let trends = blocking(move || state.with_index(|i| i.pipeline_trends(last))).await?;
    Ok(Json(json!({ "pipelines": trends })))
}

/// `GET /api/runs/{id}`: the object `status --run ID --format json` prints.
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        crate::report::status::read(&state.roots, &run.manifest)
            .map(|v| Json(v.json))
            .map_err(|e| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("run `{run_id}` cannot be shown: {e}"),
                )
            })
    })
    .await
}

/// `POST /api/runs/{id}/cancel`: SIGTERM to the run's runner, as `cancel --run` does; the
/// runner records the run `cancelled`. 202 when the request was delivered.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        match crate::control::cancel::request(&run.manifest, &run_id) {
            Ok(pid) => Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "run_id": run_id, "cancel_requested": true, "runner_pid": pid })),
            )),
            Err(e @ CancelError::Signal { .. }) => Err(ApiError::internal(e.one_line())),
            Err(e) => Err(ApiError::new(StatusCode::CONFLICT, e.one_line())),
        }
    })
    .await
}
