//! One reading of a run for `status` and `serve`: the JSON object of `status --run ID --format
//! json` (and of `serve`'s `GET /api/runs/{id}`), the text `status` prints, and what `--watch`
//! redraws on. Built in one place so the CLI and the dashboard can never disagree.

use std::path::Path;

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
    // The record untyped (manifest and sidecar merged): `commands` are shown as recorded (every
    // key, ours and other tools'), and keys our types do not know (the peer's
    // `cloud_execution`) are read here.
    let raw_value =
        shared_manifest::read_value(&path).map_err(|e| AppError::Conflict(e.describe()))?;
    let m: Manifest = serde_json::from_value(raw_value.clone()).map_err(|e| {
        AppError::Conflict(format!("`{}` is not a valid manifest: {e}", path.display()))
    })?;
    let act = crate::control::activity::observe(&path, &m);
    let abandoned = act.abandoned(m.status);
    let json = json!({
        "run_id": m.run_id,
        "status": m.status,
        "status_detail": m.status_detail,
        "started_at": m.started_at,
        "completed_at": m.completed_at,
        "manifest": roots.rel(&path),
        "artifact_root": m.artifact_root,
        "log_path": m.log_path,
        "heartbeat_at": m.heartbeat_at,
        "activity": {
            "manifest_heartbeat_at": act.manifest_heartbeat_at,
            "heartbeat_file_at": act.heartbeat_file_at,
            "runner_log_mtime_at": act.runner_log_mtime_at,
            "observed_at": act.observed_at,
            "observed_source": act.observed_source,
            "stale": act.stale,
            "stale_threshold_seconds": act.stale_threshold_seconds,
            "age_seconds": act.age_seconds,
            "runner_alive": act.live,
            "abandoned": abandoned,
        },
        "commands": commands_with_waits(&raw_value, &m),
        "child_runs": m.child_runs,
        "runtime_mode_requested": m.runtime_mode_requested,
        "runtime_mode": m.runtime_mode,
        "runtime_provider": m.runtime_provider,
        "runtime_fallback": m.runtime_fallback,
        "cloud_execution": raw_value.get("cloud_execution").cloned().unwrap_or(serde_json::Value::Null),
        "cloud_fallback": m.cloud_fallback,
        "task_id": m.task_id,
        "pipeline_id": m.pipeline_id,
        "summary": m.summary,
    });
    let mut json = json;
    merge(&mut json, super::waiting::run_json(&m));
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
        for line in super::waiting::run_lines(&m) {
            push(&mut text, &line);
        }
        if abandoned {
            push(
                &mut text,
                "Runner: none (abandoned: the runner died; `resume --run` continues it)",
            );
        }
        if m.status == RunStatus::InProgress {
            let age = act
                .age_seconds
                .map_or("never".to_owned(), |a| format!("{a}s ago"));
            let note = if act.lock_held {
                ""
            } else if act.live {
                " (no lock: a runner without one, such as the peer, is keeping it fresh)"
            } else if act.stale == Some(true) {
                " (stale: the runner may have died)"
            } else {
                ""
            };
            push(&mut text, &format!("Heartbeat: {age}{note}"));
        }
        push(&mut text, &format!("Manifest: {}", roots.rel(&path)));
        push(&mut text, "Commands:");
        for c in &m.commands {
            push(&mut text, &super::waiting::stage_line(&m, c));
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

/// The recorded commands (every key, as written); one that waits for something now gets
/// `waiting` (`approval` or `locks`). The key is left out otherwise, so that a peer run's
/// commands read exactly as the peer's own `status` shows them.
fn commands_with_waits(raw: &serde_json::Value, m: &Manifest) -> serde_json::Value {
    let mut commands = raw.get("commands").cloned().unwrap_or_else(|| json!([]));
    if let Some(list) = commands.as_array_mut() {
        for (v, c) in list.iter_mut().zip(&m.commands) {
            if let Some(wait) = super::waiting::stage_wait(m, c) {
                merge(v, json!({ "waiting": wait }));
            }
        }
    }
    commands
}

/// Adds the keys of object `extra` to object `v`.
fn merge(v: &mut serde_json::Value, extra: serde_json::Value) {
    if let (Some(v), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        v.extend(extra);
    }
}

fn push(text: &mut String, line: &str) {
    text.push_str(line);
    text.push('\n');
}
