//! `approve` / `reject --run ID [--stage S] --actor NAME [--reason TEXT]`: decide a waiting
//! approval stage. The decision goes through `control::approvals::decide` (the dashboard's
//! path too): checked against the request the runner recorded, then dropped as a create-only
//! file the runner picks up. Exit 2 when the request can never succeed as given (unknown
//! stage, not an approval, actor not allowed), 3 when the run is not in a state to take it
//! (not waiting, someone decided first).

use serde_json::json;
use shared_manifest::schema::ApprovalState;

use crate::cli::{DecideArgs, Format};
use crate::control::approvals::{self, DecisionError, DecisionRequest, ErrorKind};
use crate::errors::AppError;
use crate::exit;

/// Runs `approve` (`Approved`) or `reject` (`Rejected`); returns the exit code.
pub fn decide(args: DecideArgs, decision: ApprovalState) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&args.run, args.task.as_deref(), false)?;
    let (roots, manifest) = (located.roots, located.manifest);
    let decided = approvals::decide(
        &manifest,
        DecisionRequest {
            stage: args.stage.as_deref(),
            decision,
            actor: &args.actor,
            reason: args.reason.as_deref(),
            source: "cli",
        },
    )
    .map_err(to_app)?;
    let f = &decided.file;
    let next = if decided.runner_alive {
        "its runner records it and the run goes on".to_owned()
    } else {
        format!(
            "no runner holds the run now: `codex-orchestrator resume --run {}` applies it",
            f.run_id
        )
    };
    crate::console::err_line(&format!(
        "{} stage `{}` of run {} as `{}`; {next}",
        f.decision.as_str(),
        f.stage_id,
        f.run_id,
        f.actor
    ));
    if args.format == Format::Json {
        crate::report::output::json(&json!({
            "run_id": f.run_id,
            "stage_id": f.stage_id,
            "stage_index": f.stage_index,
            "request": f.request,
            "decision": f.decision.as_str(),
            "actor": f.actor,
            "reason": f.reason,
            "source": f.source,
            "timestamp": f.timestamp,
            "decision_file": roots.rel(&decided.path),
            "runner_alive": decided.runner_alive,
        }));
    }
    Ok(exit::OK)
}

/// The exit code follows the kind of failure; the message keeps its cause on one line.
fn to_app(e: DecisionError) -> AppError {
    let message = match &e {
        DecisionError::Manifest { source, .. } => format!("{e}: {}", source.one_line()),
        _ => e.to_string(),
    };
    match e.kind() {
        ErrorKind::Usage => AppError::Usage(message),
        ErrorKind::Conflict => AppError::Conflict(message),
        ErrorKind::Storage => match e {
            DecisionError::Write(w) => AppError::Write(w),
            other => AppError::Conflict(other.to_string()),
        },
    }
}
