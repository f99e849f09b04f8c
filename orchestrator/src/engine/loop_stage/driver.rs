//! The loop stage's driver: it reads where the loop is from the manifest (the record the
//! persister owns), does that step, records its result, and goes round until the loop's table
//! says it has ended. Because every step starts from the durable record, a resumed runner
//! continues at the recorded iteration and step: a half-done build runs again, a verify run is
//! resumed or read back, and no completed iteration is repeated.
//!
//! Each step's result is made durable (a flush) before the next step starts: those are the
//! points a resume starts from.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde_json::{json, Value};
use shared_manifest::work_record::{LoopRecord, SnapshotRecord};
use shared_manifest::{
    CommandEvent, LoopChange, LoopPhase, LoopResult, LoopSettings, LoopStart, LoopStep, LoopStop,
    RunStatus, StageFinish,
};

use crate::config::{LoopStage, Stage};
use crate::engine::loop_stage::build::{loop_update, run_build, Built};
use crate::engine::loop_stage::verify::{run_verify, Verified};
use crate::engine::loop_stage::{feedback, snapshot};
use crate::engine::stage_end::{record_end, StageEnd};
use crate::engine::state::{RunReport, RunState};
use crate::errors::AppError;

/// Runs loop stage `pos` (0-based) to its end.
pub async fn run_loop(
    run: Arc<RunState>,
    pos: usize,
    stage: Stage,
    spec: LoopStage,
) -> Result<StageEnd, AppError> {
    let index = pos + 1;
    let started = Instant::now();
    let d = Driver {
        run: run.clone(),
        pos,
        index,
        loop_dir: run.dir.loop_dir(index, &stage.id),
        stage,
        spec,
    };
    d.begin().await?;
    let mut report: Option<Box<RunReport>> = None;
    let mut problem: Option<String> = None;
    loop {
        let rec = d.record().await?;
        let LoopPhase::Active(step) = rec.state() else {
            break;
        };
        d.tell(&rec);
        if run.ctx.stopping() {
            d.stop(d.interruption()).await?;
            continue;
        }
        let deadline = deadline_of(&rec);
        if deadline.is_some_and(|t| Instant::now() >= t) {
            d.stop(LoopStop::Timeout).await?;
            continue;
        }
        match step {
            LoopStep::SnapshotBefore | LoopStep::SnapshotAfter => {
                // Before the build: against the last iteration's snapshot after its build; after
                // it: against the snapshot before it.
                let previous = if step == LoopStep::SnapshotBefore {
                    rec.iterations
                        .iter()
                        .rev()
                        .filter(|i| i.iteration < rec.iteration)
                        .find_map(|i| i.after.clone())
                } else {
                    rec.current().and_then(|i| i.before.clone())
                };
                match snapshot::take(&run, &d.loop_dir, previous.as_ref()).await {
                    Ok((snap, _)) => d.save(LoopChange::SnapshotTaken(snap)).await?,
                    Err(msg) => {
                        problem = Some(format!("cannot take a snapshot of the work tree: {msg}"));
                        d.stop(LoopStop::Error).await?;
                    }
                }
            }
            LoopStep::Building => {
                match run_build(&run, index, &d.stage, &d.spec, &rec, deadline).await? {
                    Built::Done(b) => d.save(LoopChange::BuildEnded(b)).await?,
                    Built::Stopped => d.stop(d.interruption()).await?,
                    Built::OutOfTime => d.stop(LoopStop::Timeout).await?,
                }
            }
            LoopStep::Verifying => match run_verify(&run, index, &d.spec, &rec, deadline).await? {
                Verified::Verdict(r) => {
                    let status = r.manifest.status;
                    report = Some(r);
                    d.save(LoopChange::VerifyEnded { status }).await?;
                    d.iteration_completed(status).await?;
                }
                Verified::Stopped => d.stop(d.interruption()).await?,
                Verified::OutOfTime => d.stop(LoopStop::Timeout).await?,
            },
            LoopStep::Feedback => {
                crate::engine::crash::test_hold_point("loop-feedback").await;
                let verify = match report.take() {
                    Some(r) => r,
                    None => d.verify_report(&rec)?,
                };
                match d.feedback(&rec, &verify).await {
                    Ok(f) => d.save(LoopChange::FeedbackWritten(f)).await?,
                    Err(msg) => {
                        problem = Some(format!("cannot write the feedback: {msg}"));
                        d.stop(LoopStop::Error).await?;
                        continue;
                    }
                }
                if rec.iteration >= rec.limit {
                    d.stop(LoopStop::BudgetSpent).await?;
                } else {
                    d.save(LoopChange::NextIteration).await?;
                }
            }
            LoopStep::Pending => {
                return Err(AppError::Internal(
                    "an active loop in its pending step".into(),
                ))
            }
        }
    }
    let rec = d.record().await?;
    d.finish(&rec, started, problem).await
}

/// The loop's deadline as an instant, from the recorded wall-clock time.
fn deadline_of(rec: &LoopRecord) -> Option<Instant> {
    let at = crate::time::parse(rec.deadline.as_deref()?)?;
    let left = at
        .duration_since(SystemTime::now())
        .unwrap_or(std::time::Duration::ZERO);
    // Past what the clock can hold means no deadline in practice.
    Instant::now().checked_add(left)
}

/// One loop stage while it runs.
struct Driver {
    run: Arc<RunState>,
    pos: usize,
    index: usize,
    stage: Stage,
    spec: LoopStage,
    loop_dir: std::path::PathBuf,
}

impl Driver {
    /// The loop's record as the persister has made it durable.
    async fn record(&self) -> Result<LoopRecord, AppError> {
        let pos = self.pos;
        self.run
            .persister
            .inspect(move |m| {
                m.commands
                    .get(pos)
                    .and_then(|c| c.loop_record.as_deref().cloned())
            })
            .await?
            .ok_or_else(|| AppError::Internal("a loop stage without its loop record".into()))
    }

    /// Records a step's result, durably: the next step starts from it.
    async fn save(&self, change: LoopChange) -> Result<(), AppError> {
        self.run
            .persister
            .send(loop_update(self.index, change))
            .await?;
        self.run.persister.flush().await?;
        Ok(())
    }

    async fn stop(&self, why: LoopStop) -> Result<(), AppError> {
        self.save(LoopChange::Stopped(why)).await
    }

    /// What stopping now is: a cancel, or the runner's own failure.
    fn interruption(&self) -> LoopStop {
        if self.run.ctx.has_fatal() {
            LoopStop::Error
        } else {
            LoopStop::Cancelled
        }
    }

    fn settings(&self) -> LoopSettings {
        LoopSettings {
            verify: self.spec.verify.clone(),
            max_iterations: self.spec.max_iterations,
            max_wall_clock_ms: self.spec.max_wall_clock.map(crate::time::millis),
            stop_when_unchanged: self.spec.stop_when_unchanged,
        }
    }

    /// Starts the stage: a fresh loop, or the recorded one where it was (a new round after a
    /// verdict that failed it).
    async fn begin(&self) -> Result<(), AppError> {
        let pos = self.pos;
        let existing = self
            .run
            .persister
            .inspect(move |m| {
                m.commands
                    .get(pos)
                    .and_then(|c| c.loop_record.as_deref().cloned())
            })
            .await?;
        let deadline = self
            .spec
            .max_wall_clock
            .map(|d| crate::time::format(crate::time::deadline(SystemTime::now(), d)));
        let start = match existing.as_ref().map(LoopRecord::state) {
            None | Some(LoopPhase::Pending) => LoopStart::Fresh {
                settings: self.settings(),
                deadline,
            },
            Some(LoopPhase::Active(_) | LoopPhase::Interrupted(_)) => LoopStart::Resume,
            Some(LoopPhase::Exhausted | LoopPhase::TimedOut | LoopPhase::Stalled) => {
                LoopStart::NewRound {
                    settings: self.settings(),
                    deadline,
                }
            }
            Some(LoopPhase::Passed) => {
                return Err(AppError::Internal(format!(
                    "loop stage `{}` passed already and was started again",
                    self.stage.id
                )))
            }
        };
        let how = match &start {
            LoopStart::Fresh { .. } => "start",
            LoopStart::Resume => "resume",
            LoopStart::NewRound { .. } => "new-round",
        };
        self.save(LoopChange::Began {
            command: self.spec.build.command.clone(),
            start,
        })
        .await?;
        let rec = self.record().await?;
        let run = &self.run;
        run.emit(
            "step_started",
            json!({
                "stage_id": self.stage.id, "stage_index": self.index, "title": self.stage.title,
                "kind": "loop", "status": "running", "log_path": Value::Null,
                "loop": { "start": how, "iteration": rec.iteration, "limit": rec.limit,
                          "round": rec.round, "verify": self.spec.verify },
            }),
        );
        run.ctx.reporter.stage_started(
            &run.label(),
            self.index,
            run.plan().pipeline.stages.len(),
            &self.stage.id,
            &format!("loop: {}", self.spec.build.command),
        );
        Ok(())
    }

    /// Says where the loop is: an event and a progress line per step.
    fn tell(&self, rec: &LoopRecord) {
        let run = &self.run;
        run.emit(
            "loop_phase_started",
            json!({
                "stage_id": self.stage.id, "stage_index": self.index,
                "iteration": rec.iteration, "limit": rec.limit, "round": rec.round,
                "phase": rec.phase, "progress": rec.progress(),
            }),
        );
        run.ctx.reporter.stage_progress(
            &run.label(),
            (self.index, run.plan().pipeline.stages.len()),
            &self.stage.id,
            &rec.progress(),
        );
    }

    /// `loop_iteration_completed`, once the iteration's verify run has its verdict.
    async fn iteration_completed(&self, status: RunStatus) -> Result<(), AppError> {
        let rec = self.record().await?;
        let it = rec.current();
        self.run.emit(
            "loop_iteration_completed",
            json!({
                "stage_id": self.stage.id, "stage_index": self.index,
                "iteration": rec.iteration, "limit": rec.limit,
                "build": it.and_then(|i| i.build.as_ref()).map(|b| json!({
                    "succeeded": b.succeeded, "exit_code": b.exit_code, "outcome": b.outcome,
                    "duration_ms": b.duration_ms, "log_path": b.log_path,
                })),
                "changed": it.and_then(|i| i.changed),
                "tree": it.and_then(|i| i.after.as_ref()).map(|s| s.tree.clone()),
                "verify_run_id": it.and_then(|i| i.verify.as_ref()).map(|v| v.run_id.clone()),
                "verdict": if status == RunStatus::Succeeded { "passed" } else { "failed" },
            }),
        );
        Ok(())
    }

    /// The iteration's verify run read back (a resume that stopped in the feedback step).
    fn verify_report(&self, rec: &LoopRecord) -> Result<Box<RunReport>, AppError> {
        let ctx = &self.run.ctx;
        let v = rec
            .current()
            .and_then(|i| i.verify.as_ref())
            .ok_or_else(|| AppError::Internal("feedback without a verify run".into()))?;
        let dir = ctx.roots.run_dir(&ctx.task, &v.run_id);
        let manifest = crate::history::read_manifest(&dir.manifest()).map_err(|e| {
            AppError::Conflict(format!("cannot read verify run `{}`: {e}", v.run_id))
        })?;
        Ok(Box::new(RunReport { dir, manifest }))
    }

    async fn feedback(
        &self,
        rec: &LoopRecord,
        verify: &RunReport,
    ) -> Result<shared_manifest::work_record::FeedbackRef, String> {
        let it = rec.current();
        let pair: Option<(&SnapshotRecord, &SnapshotRecord)> =
            it.and_then(|i| Some((i.before.as_ref()?, i.after.as_ref()?)));
        let changes = match pair {
            Some((a, b)) => snapshot::diff_of(&self.run, &self.loop_dir, a, b).await,
            None => None,
        };
        feedback::write(
            &self.run,
            &self.stage.id,
            &self.loop_dir,
            rec,
            verify,
            changes.as_ref(),
        )
    }

    /// Records the stage's end from the loop's end.
    async fn finish(
        &self,
        rec: &LoopRecord,
        started: Instant,
        problem: Option<String>,
    ) -> Result<StageEnd, AppError> {
        let run = &self.run;
        let stage = &self.stage;
        let state = rec.state();
        let event = state.stage_event().unwrap_or(CommandEvent::Fail);
        let result = rec.result.unwrap_or(LoopResult::Error);
        let last_verify = rec
            .current()
            .and_then(|i| i.verify.as_ref())
            .map(|v| v.run_id.clone());
        let n = rec.iteration;
        let summary = match state {
            LoopPhase::Passed => format!(
                "Loop passed at iteration {n}/{} (verify run {}).",
                rec.limit,
                last_verify.as_deref().unwrap_or("?")
            ),
            LoopPhase::Exhausted => format!(
                "Loop exhausted: {n} iteration(s) and the last verify run ({}) failed.",
                last_verify.as_deref().unwrap_or("?")
            ),
            LoopPhase::Stalled => format!(
                "Loop stalled at iteration {n}: the build changed nothing after a failed verify."
            ),
            LoopPhase::TimedOut => format!(
                "Loop timed out at iteration {n} ({}) after its wall-clock budget of {}ms.",
                rec.phase.doing(),
                rec.max_wall_clock_ms.unwrap_or(0)
            ),
            _ => {
                // Why, as any stage says it: a signal, the run's budget, a `fail` request.
                let why = problem.clone().unwrap_or_else(|| run.ctx.stop_note());
                format!(
                    "{why} — loop interrupted at iteration {n} ({}).",
                    rec.phase.doing()
                )
            }
        };
        let outcome = match result {
            LoopResult::Cancelled => "cancelled",
            other => other.detail(),
        };
        let status = record_end(
            run,
            StageFinish {
                index: self.index,
                at: crate::time::now(),
                event,
                exit_code: None,
                summary: Some(summary.clone()),
                error_file: None,
                outcome: Some(outcome.to_owned()),
                signal: None,
                duration_ms: Some(crate::time::millis(started.elapsed())),
                stdout_bytes: None,
                stderr_bytes: None,
                leaked_processes: false,
                dropped_chunk_events: None,
                // Each build's output was masked as it was logged; the loop itself prints none.
                redactions: None,
            },
            json!({
                "stage_id": stage.id, "stage_index": self.index, "title": stage.title,
                "kind": "loop", "status": Value::Null, "exit_code": Value::Null,
                "summary": summary, "log_path": Value::Null, "sub_run_id": last_verify,
                "loop": { "result": result, "iterations": n, "limit": rec.limit },
            }),
            // The loop's own files (build logs, feedback) were made durable as they were
            // written; the end has nothing more to sync.
            shared_manifest::Synced::default(),
        )
        .await?;
        run.emit(
            "loop_completed",
            json!({
                "stage_id": stage.id, "stage_index": self.index, "result": result,
                "iteration": n, "limit": rec.limit, "round": rec.round,
                "progress": rec.progress(),
            }),
        );
        run.ctx.reporter.stage_finished(
            &run.label(),
            (self.index, run.plan().pipeline.stages.len()),
            &stage.id,
            status,
            started.elapsed(),
            &summary,
        );
        let detail = match result {
            LoopResult::Cancelled | LoopResult::Error => format!("stage:{}:failed", stage.id),
            other => format!("stage:{}:{}", stage.id, other.detail()),
        };
        Ok(StageEnd {
            event,
            detail,
            failure_line: (event == CommandEvent::Fail)
                .then(|| format!("Stage '{}' failed: {summary}", stage.title)),
        })
    }
}
