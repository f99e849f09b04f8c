//! `status --run <id>`: a run's state from its manifest, with the heartbeat's age and whether
//! it is stale (a runner that died leaves `in_progress` with an old heartbeat).

use std::time::SystemTime;

use serde_json::json;
use shared_manifest::schema::Manifest;
use shared_manifest::RunStatus;

use crate::cli::{Format, StatusArgs};
use crate::errors::AppError;
use crate::exit;
use crate::record::layout::Roots;

/// Runs `status` (once, or with `--watch` until the run ends); returns the exit code.
pub fn status(args: StatusArgs) -> Result<i32, AppError> {
    let (roots, path) = super::common::locate_run(&args.run, args.task.as_deref())?;
    if !args.watch {
        let v = view(&roots, &path)?;
        match args.format {
            Format::Json => crate::report::output::json(&v.json),
            Format::Text => crate::report::output::line(v.text.trim_end()),
        }
        return Ok(exit::OK);
    }
    // Watch: poll the manifest (written atomically, so every read is a whole document) and
    // print on change; ndjson in JSON mode. Ends when the run is terminal or abandoned.
    let interval = std::time::Duration::from_secs_f64(args.interval.max(0.1));
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let mut last = String::new();
    loop {
        let v = view(&roots, &path)?;
        if v.fingerprint != last {
            match args.format {
                Format::Json => crate::report::output::line(&v.json.to_string()),
                Format::Text if tty => {
                    crate::report::output::line(&format!("\x1b[2J\x1b[H{}", v.text.trim_end()))
                }
                Format::Text => crate::report::output::line(&format!("{}\n", v.text.trim_end())),
            }
            last = v.fingerprint;
        }
        if v.done {
            return Ok(exit::OK);
        }
        std::thread::sleep(interval);
    }
}

/// One reading of a run.
struct View {
    json: serde_json::Value,
    text: String,
    /// What a watcher redraws on: statuses and results, not the heartbeat's age.
    fingerprint: String,
    /// Terminal, or abandoned by its runner: nothing more will change by itself.
    done: bool,
}

fn view(roots: &Roots, path: &std::path::Path) -> Result<View, AppError> {
    let path = path.to_owned();
    let mut text = String::new();
    let raw = std::fs::read_to_string(&path)
        .map_err(|e| AppError::Conflict(format!("cannot read `{}`: {e}", path.display())))?;
    let m: Manifest = serde_json::from_str(&raw).map_err(|e| {
        AppError::Conflict(format!("`{}` is not a valid manifest: {e}", path.display()))
    })?;
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
    Ok(View {
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
