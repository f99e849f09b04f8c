//! `exec [OPTIONS] CMD ARGS...`: one command recorded as a one-stage run (pipeline `exec`,
//! stage `exec`, the same manifest and logs as `start`), with the peer's output modes:
//! `--jsonl` (the default unless stdout and stderr are both terminals) prints the peer's
//! events `{type, timestamp, payload}` as the command runs and ends with `run:summary`;
//! `--json [compact|pretty]` prints only `run:summary`; on a terminal the command's output
//! is streamed as it comes, then the run's id, status, manifest and log. Nothing else is
//! printed on stderr. The command's exit code passes through (1 when it had none).

use serde_json::{json, Value};

use super::exec_args::{parse, shell_join, ExecOptions, OutputMode, Parsed};
use super::start::{launch_with, Hooks, StartArgs};
use crate::cli::{ExecArgs, Format};
use crate::config::{
    CommandStage, Config, ConfigSource, OnFailure, Pipeline, RetryPolicy, Stage, StageKind,
};
use crate::errors::AppError;
use crate::exit;
use crate::report::exec_stream::{peer_event, Collected, Echo, ExecStream};
use crate::report::progress::Reporter;

/// Runs `exec`; returns the command's exit code (or 128+n when the runner was interrupted).
pub async fn exec(args: ExecArgs) -> Result<i32, AppError> {
    let here = std::env::current_dir()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let o = match parse(&args.raw, &here)? {
        Parsed::Help => {
            crate::report::output::line(HELP.trim_end());
            return Ok(exit::OK);
        }
        Parsed::Run(o) => o,
    };
    if !o.notify.is_empty() {
        crate::console::err_line("note: exec --notify has no effect here (no notifications are sent); the targets are listed in run:summary");
    }
    if o.otel_endpoint.is_some() {
        crate::console::err_line(
            "note: exec --otel-endpoint has no effect here (no telemetry is exported)",
        );
    }
    let tty = |s: &dyn std::io::IsTerminal| s.is_terminal();
    let interactive = o.mode.is_none() && tty(&std::io::stdout()) && tty(&std::io::stderr());
    let shell = shell_join(&o.command);
    // `--cwd` is relative to where exec was started (the peer's rule), not to the repo root.
    let cwd = o
        .cwd
        .as_ref()
        .map(|c| here.join(c).to_string_lossy().into_owned());
    let config = one_stage_config(&shell, cwd.clone());
    let echo = match (o.mode, interactive) {
        (Some(OutputMode::Json), _) => Echo::Nothing,
        (_, true) => Echo::Output,
        _ => Echo::Events,
    };
    if interactive {
        crate::report::output::line(&format!("$ {shell}"));
    }
    let follower = std::sync::Arc::new(std::sync::Mutex::new(None::<ExecStream>));
    let slot = follower.clone();
    let hooks = Hooks {
        reporter: Some(Reporter::silent()),
        on_prepared: Some(Box::new(move |dir| {
            let log = dir.stage_log(1, "exec");
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(ExecStream::follow(log, echo));
        })),
    };
    let start = StartArgs::for_pipeline("exec", o.task.clone(), Format::Json);
    let launched = launch_with(&start, Some(config), hooks).await;
    let seen = follower
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .map(ExecStream::finish)
        .unwrap_or_default();
    let launched = launched?;
    let m = &launched.report.manifest;
    let stage = &m.commands[0];
    let code = match launched.code {
        exit::OK | exit::RUN_FAILED => stage.exit_code.unwrap_or(exit::RUN_FAILED),
        interrupted => interrupted,
    };
    let summary = run_summary(&launched.report, &o, &shell, cwd.as_deref(), &seen);
    match (o.mode, interactive) {
        (Some(OutputMode::Json), _) => {
            if o.pretty {
                crate::report::output::json(&summary);
            } else {
                crate::report::output::line(&summary.to_string());
            }
        }
        (_, true) => {
            let dir = &launched.report.dir;
            crate::report::output::line(&format!(
                "\n{} {}\nManifest: {}\nLog: {}",
                m.run_id,
                m.status.as_str().to_uppercase(),
                dir.rel(&dir.manifest()),
                m.log_path
            ));
        }
        _ => crate::report::output::line(&summary.to_string()),
    }
    Ok(code)
}

/// The one-stage config `exec` runs: pipeline `exec`, stage `exec` (so its log is
/// `commands/01-exec.ndjson`, as on the peer).
fn one_stage_config(shell: &str, cwd: Option<String>) -> Config {
    let stage = Stage {
        id: "exec".into(),
        title: format!("Execute {shell}"),
        kind: StageKind::Command(CommandStage {
            command: shell.to_owned(),
            args: None,
            cwd,
            env: Vec::new(),
            timeout: None,
            allow_failure: false,
            summary_hint: None,
            executor: None,
        }),
        depends_on: None,
        on_failure: OnFailure::Abort,
        retries: RetryPolicy::default(),
        plan: None,
        locks: Vec::new(),
    };
    Config {
        path: "<exec>".into(),
        source: ConfigSource::Inline,
        default_pipeline: Some("exec".into()),
        runtime_mode: None,
        pipelines: vec![Pipeline {
            id: "exec".into(),
            title: "CLI Exec Command".into(),
            description: None,
            stages: vec![stage],
            concurrency: None,
            vars: Vec::new(),
            executor: None,
            delivery: Vec::new(),
            max_wall_clock: None,
            max_dynamic_stages: None,
            inputs: Vec::new(),
        }],
        record: Default::default(),
        max_concurrent_runs: None,
        secrets: Default::default(),
    }
}

/// The peer's `run:summary` event, its keys in the peer's order (`metrics` and `memory`, which
/// the peer may add, are not: tokens, cost and memory snapshots have no meaning here).
fn run_summary(
    report: &crate::engine::state::RunReport,
    o: &ExecOptions,
    shell: &str,
    cwd: Option<&str>,
    seen: &Collected,
) -> Value {
    let m = &report.manifest;
    let stage = &m.commands[0];
    let dir = &report.dir;
    let begin = seen.begin.as_ref().map(|b| &b["payload"]);
    let end = seen.end.as_ref().map(|e| &e["payload"]);
    let field = |v: Option<&Value>, k: &str| v.map_or(Value::Null, |p| p[k].clone());
    let correlation = field(begin, "correlationId");
    let session = field(begin, "sessionId");
    let cwd_used = begin
        .map(|b| b["cwd"].clone())
        .unwrap_or_else(|| json!(cwd));
    let status = m.status.as_str();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let started_ms = seen
        .begin
        .as_ref()
        .and_then(|b| b["timestamp"].as_str())
        .and_then(crate::time::parse)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis());
    let exit_code = field(end, "exitCode");
    let signal = field(end, "signal");
    let exec_meta = json!({
        "command": shell, "args": [], "cwd": cwd_used, "sessionId": session, "persisted": false,
        "correlationId": correlation, "handleId": null, "exitCode": exit_code,
        "signal": signal, "timedOut": stage.outcome.as_deref() == Some("timed_out"),
        "timeoutMs": null,
    });
    let payload = json!({
        "status": status,
        "run": {
            "id": m.run_id, "taskId": m.task_id, "pipelineId": m.pipeline_id,
            "manifest": dir.rel(&dir.manifest()), "artifactRoot": m.artifact_root,
            "summary": stage.summary,
        },
        "result": {
            "exitCode": exit_code, "signal": signal, "durationMs": field(end, "durationMs"),
            "status": status, "sandboxState": "unsandboxed", "correlationId": correlation,
            "attempts": stage.attempts.unwrap_or(1),
        },
        "command": {
            "argv": o.command, "shell": shell, "cwd": cwd_used, "sessionId": session,
            "persisted": false,
        },
        "outputs": { "stdout": text(&seen.stdout), "stderr": text(&seen.stderr) },
        "logs": { "runner": m.log_path, "command": stage.log_path },
        "toolRun": {
            "id": format!("cli-command:{}:exec:{started_ms}", m.run_id),
            "tool": "cli:command", "approvalSource": "not-required", "retryCount": 0,
            "sandboxState": "unsandboxed", "status": status,
            "startedAt": stage.started_at, "completedAt": stage.completed_at,
            "attemptCount": stage.attempts.unwrap_or(1),
            "events": seen.flat,
            "metadata": {
                "stageId": "exec", "pipelineId": m.pipeline_id, "runId": m.run_id,
                "commandIndex": 1, "command": shell, "args": [], "cwd": cwd_used,
                "sessionId": session, "correlationId": correlation, "persisted": false,
                "handleId": null, "timeoutMs": null, "exec": exec_meta,
            },
        },
        "notifications": { "targets": o.notify, "delivered": [], "failures": [] },
    });
    peer_event("run:summary", &json!(crate::time::now()), payload)
}

const HELP: &str = "\
Run one command as a one-stage run (pipeline `exec`), recorded like `start`.

Usage: codex-orchestrator exec [OPTIONS] [--] CMD [ARGS]...

Every token before `--` that starts with `--` is an option; put command arguments that start
with `--` after `--`. A single CMD with spaces that is not a path is split like a shell line.

Options:
  --json [compact|pretty]  print only the run:summary event (pretty by default)
  --jsonl                  print every exec event as a JSON line, then run:summary
                           (the default unless stdout and stderr are both terminals)
  --cwd <PATH>             working directory (relative to the current directory)
  --task <ID>              task id (default as for `start`)
  --notify <URI>           accepted for the peer; has no effect here
  --otel-endpoint <URL>    accepted for the peer; has no effect here
  --help                   print this help

On a terminal, the command's output is streamed as it comes, followed by the run's id,
status, manifest and log. The exit code is the command's (1 when it had none).
";
