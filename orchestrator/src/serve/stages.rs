//! `GET /api/runs/{id}/stages`: what the run page draws beyond the status object: each
//! stage's `dependsOn` and level in the graph, its result in full (outcome, signal, timeout,
//! bytes written, why it was skipped), its error file, and the time span of every attempt for
//! the timeline, read from `runner.ndjson`'s `exec:begin` / `exec:end` lines, and an approval
//! stage's request (prompt, approvers, deadline, decision) with whether it waits for one now,
//! and for a stage a plan patch added, the stage that added it and when (`added_by`,
//! `added_at`; the patches themselves in `plan_patches`).

use std::collections::HashMap;
use std::ops::ControlFlow;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use shared_manifest::schema::{CommandRecord, Manifest};

use crate::graph::{Node, StageGraph};
use crate::record::layout::Roots;
use crate::serve::error::{blocking, ApiError};
use crate::serve::paths::{self, RunLoc};
use crate::serve::state::AppState;

/// One attempt of a stage on the timeline.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub(crate) struct Span {
    attempt: Option<u64>,
    started_at: String,
    /// `None` while it runs.
    ended_at: Option<String>,
    exit_code: Option<i64>,
    signal: Option<String>,
    status: Option<String>,
}

/// The fields of `exec:begin` / `exec:end` lines the timeline needs.
#[derive(Deserialize)]
struct ExecLine {
    #[serde(rename = "type")]
    kind: String,
    index: usize,
    attempt: Option<u64>,
    timestamp: String,
    exit_code: Option<i64>,
    signal: Option<String>,
    status: Option<String>,
}

/// `GET /api/runs/{id}/stages`.
pub(crate) async fn stages(
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    blocking(move || {
        let run = paths::locate(&state.roots, &state.runs_real(), &run_id)?;
        let m = crate::history::read_manifest(&run.manifest).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("run `{run_id}` cannot be shown: {}", e.one_line()),
            )
        })?;
        Ok(Json(describe(&state.roots, &run, &m)))
    })
    .await
}

fn describe(roots: &Roots, run: &RunLoc, m: &Manifest) -> Value {
    let nodes: Vec<Node<'_>> = m
        .commands
        .iter()
        .map(|c| Node {
            id: &c.id,
            depends_on: c.depends_on.as_deref(),
        })
        .collect();
    // A manifest written by another tool (or damaged) may not form a graph: then each stage
    // waits for the one before it, as the peer runs them.
    let levels = StageGraph::build(&nodes)
        .map(|g| g.levels)
        .unwrap_or_else(|_| (0..m.commands.len()).collect());
    let mut spans = attempt_spans(run);
    let added = m.added_stages();
    let stages: Vec<Value> = m
        .commands
        .iter()
        .zip(&levels)
        .map(|(c, level)| {
            let mut v = stage(roots, run, c, *level, spans.remove(&c.index));
            // What the stage waits for now (`approval`, `locks`), as `status` says it: the
            // run page offers Approve / Reject on a stage waiting for approval.
            v["waiting"] = json!(crate::report::waiting::stage_wait(m, c));
            // A stage a plan patch added: which stage added it, and when.
            let patch = added.get(c.id.as_str());
            v["added_by"] = json!(patch.map(|p| &p.added_by));
            v["added_at"] = json!(patch.map(|p| &p.at));
            v
        })
        .collect();
    json!({
        "run_id": m.run_id,
        "pipeline_id": m.pipeline_id,
        "pipeline_title": m.pipeline_title,
        "task_id": m.task_id,
        "parent_run_id": m.parent_run_id,
        "started_at": m.started_at,
        "completed_at": m.completed_at,
        "levels": levels.iter().max().map_or(0, |l| l + 1),
        "stages": stages,
        "plan_patches": m.plan_patches.iter().map(|p| json!({
            "added_by": p.added_by, "at": p.at, "stage_ids": p.stage_ids,
        })).collect::<Vec<_>>(),
    })
}

fn stage(
    roots: &Roots,
    run: &RunLoc,
    c: &CommandRecord,
    level: usize,
    spans: Option<Vec<Span>>,
) -> Value {
    // A stage without exec lines (a sub-pipeline, or a log from another tool) spans its
    // recorded start and end.
    let spans = spans.unwrap_or_else(|| {
        c.started_at
            .iter()
            .map(|s| Span {
                attempt: None,
                started_at: s.clone(),
                ended_at: c.completed_at.clone(),
                exit_code: c.exit_code.map(i64::from),
                signal: c.signal.clone(),
                status: Some(c.status.as_str().to_owned()),
            })
            .collect()
    });
    let error = c
        .error_file
        .as_deref()
        .and_then(|p| paths::recorded_in_run(roots, run, p))
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let rel = |p: &Option<String>| {
        p.as_deref()
            .and_then(|p| paths::recorded_in_run(roots, run, p))
            .and_then(|p| {
                p.strip_prefix(&run.dir)
                    .ok()
                    .map(|r| r.to_string_lossy().into_owned())
            })
    };
    json!({
        "index": c.index,
        "id": c.id,
        "title": c.title,
        "kind": c.kind,
        "command": c.command,
        "status": c.status,
        "depends_on": c.depends_on,
        "level": level,
        "started_at": c.started_at,
        "completed_at": c.completed_at,
        "duration_ms": crate::history::record::stage_duration_ms(c),
        "attempts": c.attempts,
        "exit_code": c.exit_code,
        "signal": c.signal,
        "outcome": c.outcome,
        "timeout_ms": c.timeout_ms,
        "summary": c.summary,
        "skip_reason": c.skip_reason,
        "sub_run_id": c.sub_run_id,
        "approval": c.approval,
        "stdout_bytes": c.stdout_bytes,
        "stderr_bytes": c.stderr_bytes,
        "log_file": rel(&c.log_path),
        "error_file": rel(&c.error_file),
        "error": error,
        "spans": spans,
    })
}

/// Every attempt of every stage, by stage index, from `runner.ndjson`. An attempt starts at
/// its `exec:begin` and ends at the `exec:end` of the same attempt; a resumed run has several
/// attempts numbered 1, each in its turn.
fn attempt_spans(run: &RunLoc) -> HashMap<usize, Vec<Span>> {
    let mut out: HashMap<usize, Vec<Span>> = HashMap::new();
    let Ok(file) = std::fs::File::open(run.dir.join("runner.ndjson")) else {
        return out;
    };
    let _ = exec::logread::lines_from(&file, 0, |_, line| {
        let begin = line.starts_with(br#"{"type":"exec:begin""#);
        if !begin && !line.starts_with(br#"{"type":"exec:end""#) {
            return ControlFlow::Continue(());
        }
        let Ok(e) = serde_json::from_slice::<ExecLine>(line) else {
            return ControlFlow::Continue(());
        };
        let spans = out.entry(e.index).or_default();
        if begin && e.kind == "exec:begin" {
            spans.push(Span {
                attempt: e.attempt,
                started_at: e.timestamp,
                ..Span::default()
            });
        } else if let Some(s) = spans
            .iter_mut()
            .rev()
            .find(|s| s.attempt == e.attempt && s.ended_at.is_none())
        {
            s.ended_at = Some(e.timestamp);
            s.exit_code = e.exit_code;
            s.signal = e.signal;
            s.status = e.status;
        }
        ControlFlow::Continue(())
    });
    out
}
