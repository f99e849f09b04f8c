//! One reading of a run for `status` and `serve`: the JSON object of `status --run ID --format
//! json` (and of `serve`'s `GET /api/runs/{id}`), the text `status` prints, and what `--watch`
//! redraws on. Built in one place so the CLI and the dashboard can never disagree.

use std::path::Path;
use std::time::SystemTime;

use serde_json::json;
use shared_manifest::schema::Manifest;
use shared_manifest::RunStatus;

use crate::errors::AppError;
use crate::record::layout::Roots;

/// One reading of a run.
#[derive(Debug, Clone)]
pub struct StatusView {
    /// The `--format json` object.
    pub json: serde_json::Value,
    /// The text `status` prints.
    pub text: String,
    /// What a watcher redraws on: statuses and results, not the heartbeat's age.
    pub fingerprint: String,
    /// Terminal, or abandoned by its runner: nothing more will change by itself.
    pub done: bool,
}

/// Reads the manifest at `path` (of a run under `roots`) and builds its status view.
pub fn read(roots: &Roots, path: &Path) -> Result<StatusView, AppError> {
    let path = path.to_owned();
    let mut text = String::new();
    let m: Manifest =
        shared_manifest::read_manifest(&path).map_err(|e| AppError::Conflict(e.describe()))?;
    let age = m
        .heartbeat_at
        .as_deref()
        .and_then(crate::time::parse)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs_f64());
    // A live runner holds the run's lock; without one an unfinished run was abandoned (the
    // runner crashed or was killed) and only `resume` moves it on.
    let runner_alive = crate::control::lock::runner_alive(&path);
    let abandoned = !m.status.is_terminal() && !runner_alive;
    let stale =
        !m.status.is_terminal() && age.is_none_or(|a| a > m.heartbeat_stale_after_seconds as f64);
    let json = {
        let commands: Vec<_> = m
                .commands
                .iter()
                .map(|c| json!({
                    "index": c.index, "id": c.id, "title": c.title, "kind": c.kind, "status": c.status,
                    "started_at": c.started_at, "completed_at": c.completed_at, "exit_code": c.exit_code,
                    "summary": c.summary, "log_path": c.log_path, "error_file": c.error_file,
                    "sub_run_id": c.sub_run_id, "attempts": c.attempts,
                }))
                .collect();
        let out = json!({
            "run_id": m.run_id,
            "task_id": m.task_id,
            "pipeline_id": m.pipeline_id,
            "status": m.status,
            "status_detail": m.status_detail,
            "started_at": m.started_at,
            "completed_at": m.completed_at,
            "manifest": roots.rel(&path),
            "artifact_root": m.artifact_root,
            "log_path": m.log_path,
            "heartbeat_at": m.heartbeat_at,
            "summary": m.summary,
            "activity": {
                "heartbeat_at": m.heartbeat_at,
                "age_seconds": age.map(|a| (a * 1000.0).round() / 1000.0),
                "stale": stale,
                "runner_alive": runner_alive,
                "abandoned": abandoned,
                "stale_threshold_seconds": m.heartbeat_stale_after_seconds,
            },
            "commands": commands,
        });
        out
    };
    {
        let detail = m
            .status_detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        push(&mut text, &format!("Run: {}", m.run_id));
        push(
            &mut text,
            &format!("Pipeline: {} ({})", m.pipeline_id, m.pipeline_title),
        );
        push(&mut text, &format!("Status: {}{detail}", m.status.as_str()));
        if abandoned {
            push(
                &mut text,
                "Runner: none (abandoned: the runner died; `resume --run` continues it)",
            );
        }
        if m.status == RunStatus::InProgress {
            let age = age.map_or("never".to_owned(), |a| format!("{a:.0}s ago"));
            push(
                &mut text,
                &format!(
                    "Heartbeat: {age}{}",
                    if stale {
                        " (stale: the runner may have died)"
                    } else {
                        ""
                    }
                ),
            );
        }
        push(&mut text, &format!("Manifest: {}", roots.rel(&path)));
        push(&mut text, "Commands:");
        for c in &m.commands {
            let summary = c
                .summary
                .as_deref()
                .and_then(|s| s.lines().next())
                .map(|s| format!(" — {s}"))
                .unwrap_or_default();
            push(
                &mut text,
                &format!("  [{}] {}{summary}", c.status.as_str(), c.title),
            );
        }
    }
    let fingerprint = {
        let mut f = json.clone();
        f["activity"] = serde_json::Value::Null;
        f["heartbeat_at"] = serde_json::Value::Null;
        f.to_string()
    };
    Ok(StatusView {
        json,
        text,
        fingerprint,
        done: m.status.is_terminal() || abandoned,
    })
}

fn push(text: &mut String, line: &str) {
    text.push_str(line);
    text.push('\n');
}
