//! An approval stage: a human checkpoint. The stage records its request (prompt, approvers,
//! absolute deadline, where the decision goes), then waits for a decision file
//! (`control::approvals`) while the rest of the run goes on; the heartbeat keeps going. The
//! decision is checked and recorded (the peer's `approvals[]` and our record), and the stage
//! ends: approved is succeeded, rejected is failed with `Rejected by <actor>: <reason>`, and the
//! stage's `onFailure` applies as for any failure.
//!
//! The deadline is decided by the runner the same way as a person: it drops its own decision
//! file (`source: timeout`), so whichever decision is first wins and none is lost. On resume, a
//! request that was never decided is waited for again with its original deadline; a decided
//! (rejected) one is asked again as a new request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use shared_manifest::schema::{ApprovalRecord, ApprovalState};
use shared_manifest::{ApprovalDecided, CommandEvent, ManifestUpdate, StageFinish};

use crate::config::{ApprovalStage, OnTimeout, Stage};
use crate::control::approvals::{self, DecisionFile, TIMEOUT_SOURCE};
use crate::engine::stage_end::StageEnd;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// How often the decision file is looked for: a stat per tick, and what a person waits for
/// after deciding.
const POLL: Duration = Duration::from_millis(100);

/// Runs approval stage `pos` (0-based) to its decision, or until the run stops.
pub async fn run_approval(
    run: Arc<RunState>,
    pos: usize,
    stage: Stage,
    spec: ApprovalStage,
) -> Result<StageEnd, AppError> {
    let index = pos + 1;
    let started = Instant::now();
    let record = request(&run, pos, &stage, &spec).await?;
    let path = approvals::decision_path(&run.dir.dir, index, &stage.id, record.request);
    let deadline = record.deadline.as_deref().and_then(crate::time::parse);
    announce(&run, index, &stage, &record);
    let decision = match wait(&run, index, &stage, &record, &path, deadline).await? {
        Some(d) => d,
        None => return stopped(&run, index, &stage, started).await,
    };
    decided(&run, index, &stage, decision, started).await
}

/// Records the request (a new one, or the undecided one a resumed run waits for again) and
/// makes it durable: the `approve` verb reads it from the manifest.
async fn request(
    run: &RunState,
    pos: usize,
    stage: &Stage,
    spec: &ApprovalStage,
) -> Result<ApprovalRecord, AppError> {
    let index = pos + 1;
    let previous = run
        .persister
        .inspect(move |m| {
            m.commands
                .get(pos)
                .and_then(|c| c.approval.as_deref().cloned())
        })
        .await?;
    let now = SystemTime::now();
    let record = match previous {
        // The same request, deadline and all: a resume must not extend the wait.
        Some(r) if r.state == ApprovalState::Waiting => r,
        earlier => {
            let request = earlier.map_or(1, |r| r.request + 1);
            let path = approvals::decision_path(&run.dir.dir, index, &stage.id, request);
            ApprovalRecord {
                request,
                prompt: spec.prompt.clone(),
                approvers: spec.approvers.clone(),
                requested_at: crate::time::format(now),
                deadline: spec
                    .timeout
                    .map(|t| crate::time::format(crate::time::deadline(now, t))),
                on_timeout: spec.on_timeout.as_str().to_owned(),
                decision_file: run.dir.rel(&path),
                state: ApprovalState::Waiting,
                actor: None,
                reason: None,
                source: None,
                decided_at: None,
            }
        }
    };
    run.persister
        .send(ManifestUpdate::ApprovalRequested {
            index,
            at: crate::time::format(now),
            record: record.clone(),
        })
        .await?;
    run.persister.flush().await?;
    Ok(record)
}

/// Tells the event stream and the person watching that the stage waits.
fn announce(run: &RunState, index: usize, stage: &Stage, record: &ApprovalRecord) {
    run.emit(
        "step_started",
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "approval",
            "status": "running", "log_path": null,
        }),
    );
    run.emit(
        "approval_requested",
        json!({
            "stage_id": stage.id, "stage_index": index, "request": record.request,
            "prompt": record.prompt, "approvers": record.approvers, "deadline": record.deadline,
            "on_timeout": record.on_timeout, "decision_file": record.decision_file,
        }),
    );
    let who = record
        .approvers
        .as_ref()
        .map_or("anyone".to_owned(), |a| a.join(", "));
    let until = record
        .deadline
        .as_deref()
        .map(|d| format!("; {} at {d}", record.on_timeout))
        .unwrap_or_default();
    run.ctx.reporter.stage_waiting(
        &run.label(),
        (index, run.plan().pipeline.stages.len()),
        &stage.id,
        &format!(
            "approval — {} (approvers: {who}{until}; `codex-orchestrator approve --run {} --stage {} --actor NAME`)",
            record.prompt, run.dir.run_id, stage.id
        ),
    );
}

/// Waits for a valid decision; `None` when the run stops first. At the deadline the runner
/// drops its own decision (create-only, so a person's decision made at the same moment wins
/// if it was first) and takes whichever is there.
async fn wait(
    run: &RunState,
    index: usize,
    stage: &Stage,
    record: &ApprovalRecord,
    path: &Path,
    deadline: Option<SystemTime>,
) -> Result<Option<DecisionFile>, AppError> {
    let mut cancel = run.ctx.cancel.subscribe();
    loop {
        let past = deadline.is_some_and(|d| SystemTime::now() >= d);
        match approvals::read(path) {
            Ok(Some(file)) => match approvals::check(&file, (&stage.id, index), record, past) {
                Ok(()) => return Ok(Some(file)),
                Err(why) => set_aside(run, stage, path, &why)?,
            },
            Ok(None) => {}
            Err(why) => set_aside(run, stage, path, &why)?,
        }
        if past {
            timeout_decision(run, index, stage, record, path)?;
            continue;
        }
        if run.ctx.stopping() {
            return Ok(None);
        }
        let nap = deadline
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .map_or(POLL, |left| left.min(POLL));
        tokio::select! {
            () = tokio::time::sleep(nap) => {}
            _ = cancel.changed() => {}
        }
    }
}

/// The runner's own decision at the deadline, by `onTimeout`.
fn timeout_decision(
    run: &RunState,
    index: usize,
    stage: &Stage,
    record: &ApprovalRecord,
    path: &Path,
) -> Result<(), AppError> {
    let decision = if record.on_timeout == OnTimeout::Approve.as_str() {
        ApprovalState::Approved
    } else {
        ApprovalState::Rejected
    };
    let waited = record
        .deadline
        .as_deref()
        .and_then(crate::time::parse)
        .zip(crate::time::parse(&record.requested_at))
        .and_then(|(d, r)| d.duration_since(r).ok())
        .map_or_else(String::new, |d| {
            format!(" within {}ms", crate::time::millis(d))
        });
    let file = DecisionFile {
        run_id: run.dir.run_id.clone(),
        stage_id: stage.id.clone(),
        stage_index: index,
        request: record.request,
        decision,
        actor: TIMEOUT_SOURCE.to_owned(),
        reason: Some(format!("no decision{waited}")),
        source: TIMEOUT_SOURCE.to_owned(),
        timestamp: crate::time::now(),
    };
    // `Exists`: someone decided first; the next look reads their decision.
    approvals::write(path, &file)?;
    Ok(())
}

/// Moves a file that is not a valid decision for this request out of the way (it would block
/// every later decision, the name being create-only) and says why.
fn set_aside(run: &RunState, stage: &Stage, path: &Path, why: &str) -> Result<(), AppError> {
    let mut aside = PathBuf::from(format!("{}.invalid", path.display()));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = PathBuf::from(format!("{}.invalid.{n}", path.display()));
    }
    std::fs::rename(path, &aside).map_err(|e| AppError::storage(path, e))?;
    crate::console::err_line(&format!(
        "warning: stage `{}`: ignored the decision in `{}`: {why} (moved to `{}`)",
        stage.id,
        run.dir.rel(path),
        run.dir.rel(&aside)
    ));
    run.emit(
        "approval_invalid",
        json!({ "stage_id": stage.id, "decision_file": run.dir.rel(&aside), "reason": why }),
    );
    Ok(())
}

/// Records the decision durably (an operator decision is a barrier) and ends the stage.
async fn decided(
    run: &RunState,
    index: usize,
    stage: &Stage,
    d: DecisionFile,
    started: Instant,
) -> Result<StageEnd, AppError> {
    let approved = d.decision == ApprovalState::Approved;
    let verb = if approved { "Approved" } else { "Rejected" };
    let summary = match d.reason.as_deref().filter(|r| !r.trim().is_empty()) {
        Some(reason) => format!("{verb} by {}: {reason}", d.actor),
        None => format!("{verb} by {}.", d.actor),
    };
    let duration = started.elapsed();
    let at = crate::time::now();
    run.persister
        .send(ManifestUpdate::ApprovalDecided(Box::new(ApprovalDecided {
            index,
            at: at.clone(),
            decided_at: d.timestamp.clone(),
            decision: d.decision,
            actor: d.actor.clone(),
            reason: d.reason.clone(),
            source: d.source.clone(),
            summary: summary.clone(),
            duration_ms: crate::time::millis(duration),
        })))
        .await?;
    run.persister.flush().await?;
    run.emit(
        "approval_decided",
        json!({
            "stage_id": stage.id, "stage_index": index, "request": d.request,
            "decision": d.decision.as_str(), "actor": d.actor, "reason": d.reason,
            "source": d.source, "decided_at": d.timestamp,
        }),
    );
    let event = if approved {
        CommandEvent::Succeed
    } else {
        CommandEvent::Fail
    };
    let status = if approved { "succeeded" } else { "failed" };
    end_events(run, index, stage, status, &summary, duration);
    Ok(StageEnd {
        event,
        detail: format!("stage:{}:failed", stage.id),
        failure_line: (!approved)
            .then(|| format!("Stage '{}' was rejected: {summary}", stage.title)),
    })
}

/// The run stopped while the stage waited: the stage fails, its request stays undecided (a
/// resume waits for it again, same deadline).
async fn stopped(
    run: &RunState,
    index: usize,
    stage: &Stage,
    started: Instant,
) -> Result<StageEnd, AppError> {
    let duration = started.elapsed();
    let summary = format!("{} while waiting for approval.", run.ctx.stop_note());
    run.persister
        .send(ManifestUpdate::StageFinished(Box::new(StageFinish {
            index,
            at: crate::time::now(),
            event: CommandEvent::Fail,
            exit_code: None,
            summary: Some(summary.clone()),
            error_file: None,
            outcome: Some("cancelled".into()),
            signal: None,
            duration_ms: Some(crate::time::millis(duration)),
            stdout_bytes: None,
            stderr_bytes: None,
            leaked_processes: false,
            dropped_chunk_events: None,
            redactions: None,
        })))
        .await?;
    run.persister.flush().await?;
    end_events(run, index, stage, "failed", &summary, duration);
    Ok(StageEnd {
        event: CommandEvent::Fail,
        detail: format!("stage:{}:failed", stage.id),
        failure_line: Some(format!(
            "Stage '{}' was stopped while waiting for approval.",
            stage.title
        )),
    })
}

/// `step_completed` / `step_failed` and the progress line.
fn end_events(
    run: &RunState,
    index: usize,
    stage: &Stage,
    status: &str,
    summary: &str,
    duration: Duration,
) {
    run.emit(
        if status == "succeeded" {
            "step_completed"
        } else {
            "step_failed"
        },
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "approval",
            "status": status, "exit_code": null, "summary": summary, "log_path": null,
            "sub_run_id": null, "attempts": null,
        }),
    );
    run.ctx.reporter.stage_finished(
        &run.label(),
        (index, run.plan().pipeline.stages.len()),
        &stage.id,
        status,
        duration,
        summary,
    );
}
