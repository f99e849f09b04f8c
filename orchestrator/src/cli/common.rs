//! What several verbs share: the task id, finding a run, the run's JSON object and the end of
//! a run (history, JUnit, exit code).

use std::path::Path;

use crate::engine::state::RunReport;
use crate::env_vars;
use crate::errors::AppError;

/// Task id from the environment: `MCP_RUNNER_TASK_ID` > `CODEX_ORCHESTRATOR_TASK_ID` > `TASK`.
pub(crate) fn task_from_env() -> Option<String> {
    [
        env_vars::MCP_RUNNER_TASK_ID,
        env_vars::TASK_ID,
        env_vars::TASK,
    ]
    .iter()
    .find_map(|n| env_vars::non_blank(n))
}

/// `--task` > environment > `0101`, checked to be usable as a directory name.
pub(crate) fn task_id(flag: Option<&str>) -> Result<String, AppError> {
    let task = flag
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .or_else(task_from_env)
        .unwrap_or_else(|| "0101".to_owned());
    if let Some(problem) = crate::record::layout::id_problem(&task) {
        return Err(AppError::Usage(format!(
            "task id `{}` cannot be used as a directory name: it {problem}",
            crate::record::layout::show_id(&task)
        )));
    }
    Ok(task)
}

/// A run id given as `flag`: usable as a directory name, else a usage error.
pub(crate) fn check_run_flag(flag: &str, run: &str) -> Result<(), AppError> {
    match crate::record::layout::id_problem(run) {
        None => Ok(()),
        Some(problem) => Err(AppError::Usage(format!(
            "{flag} `{}` is not a run id: it {problem}",
            crate::record::layout::show_id(run)
        ))),
    }
}

/// `--junit PATH`, checked before the run starts (the report is written when it ends, into
/// directories created as needed): the path must not be a directory, and its nearest existing
/// ancestor must be a directory (a file in the way could never hold the report).
pub(crate) fn check_junit_path(path: &Path) -> Result<(), AppError> {
    let bad = |why: String| {
        Err(AppError::Usage(format!(
            "--junit `{}`: {why}",
            path.display()
        )))
    };
    if path.is_dir() {
        return bad("is a directory (name the report file)".to_owned());
    }
    if path.file_name().is_none() {
        return bad("names no file".to_owned());
    }
    let mut dir = path.parent();
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return bad(format!(
                    "its directory cannot be created: `{}` is not a directory",
                    d.display()
                ))
            }
            Err(_) => dir = d.parent(),
        }
    }
    Ok(())
}

/// Says on stderr that `appserver` was asked for and `cli` runs (start and resume alike).
pub(crate) fn note_runtime_fallback(runtime: &crate::modes::RuntimeDecision) {
    if runtime.fallback.occurred {
        crate::console::err_line("note: runtime mode `appserver` is not available for shell stages; running with `cli` (recorded in runtime_fallback)");
    }
}

/// The `--format json` object of a finished run: the peer's keys in its order, then ours
/// (`start` prints it as is, `resume` adds its own).
pub(crate) fn run_json(report: &crate::engine::state::RunReport) -> serde_json::Value {
    let m = &report.manifest;
    let mut json = serde_json::json!({
        "run_id": m.run_id,
        "status": m.status,
        "artifact_root": m.artifact_root,
        "manifest": report.dir.rel(&report.dir.manifest()),
        "log_path": m.log_path,
        "summary": m.summary,
        "runtime_mode_requested": m.runtime_mode_requested,
        "runtime_mode": m.runtime_mode,
        "runtime_provider": m.runtime_provider,
        "runtime_fallback": m.runtime_fallback,
        "cloud_fallback_reason": m.cloud_fallback.as_ref().map(|c| c.reason.clone()),
        "issue_log": null,
        "issue_log_error": null,
        "status_detail": m.status_detail,
    });
    if !m.delivery.is_empty() {
        json["delivery"] = serde_json::to_value(&m.delivery).unwrap_or_default();
    }
    json
}

/// The peer's text block for a finished run (`start`, `resume`, `flow`), for stdout: scripts
/// scrape these lines. `label` is `Run started`, `Run resumed`, `Docs-review run`, ...
pub(crate) fn run_text(report: &crate::engine::state::RunReport, label: &str) -> String {
    let m = &report.manifest;
    let mut out = format!(
        "{label}: {}\nStatus: {}\nManifest: {}\nLog: {}\n",
        m.run_id,
        m.status.as_str(),
        report.dir.rel(&report.dir.manifest()),
        m.log_path
    );
    out.push_str(&format!(
        "Runtime: {} (requested {}) via {}\n",
        m.runtime_mode.as_str(),
        m.runtime_mode_requested.as_str(),
        m.runtime_provider
    ));
    if let Some(f) = m.runtime_fallback.as_ref().filter(|f| f.occurred) {
        out.push_str(&format!(
            "Runtime fallback: {} ({})\n",
            f.code.as_deref().unwrap_or("runtime-fallback"),
            f.reason.as_deref().unwrap_or("n/a")
        ));
    }
    if let Some(c) = &m.cloud_fallback {
        out.push_str(&format!("Cloud fallback: {}\n", c.reason));
    }
    if let Some(summary) = m.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        out.push_str("Summary:\n");
        for line in summary.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// Executes a prepared top-level run and ends it the same way for `start` and `resume`: a fatal
/// (storage) error wins over the run's outcome; the run goes into the history index (warnings
/// only) and, when asked, a JUnit report. Returns the run and its exit code.
pub(crate) async fn finish_run(
    ctx: &crate::engine::context::Ctx,
    prepared: crate::engine::state::Prepared,
    junit: Option<&std::path::Path>,
) -> Result<(crate::engine::state::RunReport, i32), AppError> {
    let report = crate::engine::run::execute(prepared).await;
    if let Some(fatal) = ctx.fatal.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(fatal);
    }
    let report = report?;
    after_run(&report, junit)?;
    let code = match report.manifest.status {
        shared_manifest::RunStatus::Succeeded => success_code(&report.manifest),
        shared_manifest::RunStatus::Cancelled => ctx
            .cancel_signal()
            .map_or(crate::exit::RUN_FAILED, crate::exit::interrupted),
        _ => crate::exit::RUN_FAILED,
    };
    Ok((report, code))
}

/// The exit code of a run that succeeded: 0, or `DELIVERY_FAILED` when its gates passed and
/// a delivery failed (the one rule: `shared_manifest::delivery_state::outcome`).
pub(crate) fn success_code(m: &shared_manifest::schema::Manifest) -> i32 {
    let phases: Vec<_> = m.delivery.iter().map(|d| d.phase).collect();
    match shared_manifest::delivery_state::outcome(m.status, &phases) {
        shared_manifest::Outcome::DeliveryFailed => crate::exit::DELIVERY_FAILED,
        _ => crate::exit::OK,
    }
}

/// After a run: the history index is a convenience, so failing to record the run is only a
/// `warning:`. The JUnit file was asked for, so failing to write it is an error (exit 4).
pub(crate) fn after_run(report: &RunReport, junit: Option<&Path>) -> Result<(), AppError> {
    let roots = report.dir.roots();
    // Noted, not recorded: the next reader of the index records the run (off the exit path).
    if let Err(e) = crate::history::note_finished(roots, &report.dir.manifest()) {
        crate::console::err_line(&format!(
            "warning: run `{}` is not in the run history: {}",
            report.manifest.run_id,
            e.one_line()
        ));
    }
    if let Some(path) = junit {
        crate::report::junit::write(path, &crate::report::junit::render(&report.manifest, roots))?;
    }
    Ok(())
}
