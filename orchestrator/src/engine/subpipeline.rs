//! A sub-pipeline stage: a child run of another pipeline, recorded in the parent's
//! `child_runs`. On a resume the stage takes over its earlier child run (resumed under that
//! run's lock, or taken as it is when it had succeeded) instead of starting a new one.

use std::sync::Arc;

use serde_json::{json, Value};
use shared_manifest::schema::ChildRun;
use shared_manifest::{ManifestUpdate, RunStatus};

use crate::engine::earlier_run::{take_over, Earlier, Seeker};
use crate::engine::stage_end::{record_end, StageEnd};
use crate::engine::state::{RunReport, RunState};
use crate::errors::AppError;

/// A sub-pipeline stage: a child run of another pipeline, recorded in `child_runs`.
pub async fn run_subpipeline(
    run: Arc<RunState>,
    pos: usize,
    stage: crate::config::Stage,
    pipeline: String,
    optional: bool,
) -> Result<StageEnd, AppError> {
    let index = pos + 1;
    let ctx = run.ctx.clone();
    let child_pipeline = ctx
        .config
        .pipeline(&pipeline)
        .expect("sub-pipelines are checked at load")
        .clone();
    let child_plan = crate::plan::build_one(
        &ctx.config,
        &child_pipeline,
        &ctx.cli_vars,
        ctx.concurrency_flag,
    )?
    .into_shared();
    let started = std::time::Instant::now();
    // On a resume the stage may already have a child run (a crashed or failed one): that run
    // is resumed, so its succeeded stages do not run twice and it does not stay `in_progress`
    // forever; a child that had already succeeded is taken as it is.
    let previous = run
        .persister
        .peek(move |m| m.commands.get(pos).and_then(|c| c.sub_run_id.clone()))
        .await?;
    let earlier = match previous {
        Some(id) => {
            let seeker = Seeker {
                what: "child",
                reason: "parent-resume",
                ended: &[RunStatus::Succeeded],
            };
            take_over(seeker, &run, &ctx, &child_plan, &id).await?
        }
        None => None,
    };
    let prepared = match earlier {
        Some(Earlier::Ended(report)) => {
            run.persister
                .send(ManifestUpdate::SubRunStarted {
                    index,
                    at: crate::time::now(),
                    child: ChildRun {
                        run_id: report.dir.run_id.clone(),
                        pipeline_id: pipeline.clone(),
                        status: RunStatus::Succeeded,
                        manifest: report.dir.rel(&report.dir.manifest()),
                    },
                })
                .await?;
            return finish_subpipeline(&run, index, &stage, &pipeline, optional, started, &report)
                .await;
        }
        Some(Earlier::Resumed(prepared)) => prepared,
        None => {
            (run.children.prepare)(
                ctx.clone(),
                child_plan,
                Some(run.dir.run_id.clone()),
                run.depth + 1,
            )
            .await?
        }
    };
    let child_dir = prepared.dir().clone();
    run.persister
        .send(ManifestUpdate::SubRunStarted {
            index,
            at: crate::time::now(),
            child: ChildRun {
                run_id: child_dir.run_id.clone(),
                pipeline_id: pipeline.clone(),
                status: RunStatus::InProgress,
                manifest: child_dir.rel(&child_dir.manifest()),
            },
        })
        .await?;
    // A barrier: the parent's link to its child is durable before the child runs a stage, so
    // a resume after a crash takes that child run over (and kills its survivors) instead of
    // starting another one beside it.
    run.persister.flush().await?;
    run.emit(
        "step_started",
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "subpipeline",
            "status": "running", "log_path": Value::Null,
        }),
    );
    let report = (run.children.execute)(prepared).await?;
    finish_subpipeline(&run, index, &stage, &pipeline, optional, started, &report).await
}

/// Records a sub-pipeline stage's end from its child run's final manifest.
async fn finish_subpipeline(
    run: &Arc<RunState>,
    index: usize,
    stage: &crate::config::Stage,
    pipeline: &str,
    optional: bool,
    started: std::time::Instant,
    report: &RunReport,
) -> Result<StageEnd, AppError> {
    use shared_manifest::{CommandEvent, StageFinish};
    let child = &report.manifest;
    run.persister
        .send(ManifestUpdate::ChildRunUpdated {
            run_id: child.run_id.clone(),
            status: child.status,
        })
        .await?;
    let event = match child.status {
        RunStatus::Succeeded => CommandEvent::Succeed,
        _ if optional && child.status == RunStatus::Failed => CommandEvent::Skip,
        _ => CommandEvent::Fail,
    };
    let summary = child
        .summary
        .clone()
        .unwrap_or_else(|| format!("Sub-pipeline {} {}", pipeline, child.status.as_str()));
    record_end(
        run,
        StageFinish {
            index,
            at: crate::time::now(),
            event,
            exit_code: None,
            summary: Some(summary.clone()),
            error_file: None,
            outcome: Some(child.status.as_str().to_owned()),
            signal: None,
            duration_ms: Some(crate::time::millis(started.elapsed())),
            stdout_bytes: None,
            stderr_bytes: None,
            leaked_processes: false,
            dropped_chunk_events: None,
            redactions: None,
        },
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "subpipeline",
            "status": Value::Null, "exit_code": Value::Null, "summary": summary, "log_path": Value::Null,
            "sub_run_id": child.run_id,
        }),
        // The child run's own record is durable: its runner closed it before returning.
        shared_manifest::Synced::default(),
    )
    .await?;
    Ok(StageEnd {
        event,
        detail: format!("subpipeline:{}:failed", stage.id),
        failure_line: (event == CommandEvent::Fail).then(|| {
            format!(
                "Sub-pipeline '{}' ({}) {}.",
                stage.title,
                pipeline,
                child.status.as_str()
            )
        }),
    })
}
