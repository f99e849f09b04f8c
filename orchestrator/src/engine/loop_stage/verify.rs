//! An iteration's verify: the loop's `verify` pipeline run as a child run, like a sub-pipeline
//! (recorded in `child_runs`, its manifest beside the parent's), with its own cancellation so
//! that the loop's wall-clock budget can stop it alone. On a resume, a verify run recorded for
//! the iteration is taken as it ended (`succeeded`/`failed`: a verdict) or resumed under its
//! lock where it stopped (crashed, cancelled), never started afresh.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shared_manifest::schema::ChildRun;
use shared_manifest::work_record::LoopRecord;
use shared_manifest::{LoopChange, RunStatus};

use crate::config::LoopStage;
use crate::engine::earlier_run::{take_over, Earlier, Seeker};
use crate::engine::loop_stage::build::loop_update;
use crate::engine::state::{RunReport, RunState};
use crate::errors::AppError;

/// How a verify run ended, as the loop needs it.
#[derive(Debug)]
pub(crate) enum Verified {
    /// It ended `succeeded` or `failed`.
    Verdict(Box<RunReport>),
    /// The run is stopping (or the child was cancelled on its own): resumable.
    Stopped,
    /// The loop's wall-clock budget ran out while it ran.
    OutOfTime,
}

/// Runs (or resumes, or reads back) iteration `rec.iteration`'s verify run of loop stage `index`.
pub(crate) async fn run_verify(
    run: &Arc<RunState>,
    index: usize,
    spec: &LoopStage,
    rec: &LoopRecord,
    deadline: Option<Instant>,
) -> Result<Verified, AppError> {
    let ctx = &run.ctx;
    let pipeline = ctx
        .config
        .pipeline(&spec.verify)
        .expect("verify pipelines are checked at load");
    // Checked with the top-level plan (the verify pipeline is reachable from it).
    let plan = crate::plan::build_one(&ctx.config, pipeline, &ctx.cli_vars, ctx.concurrency_flag)?
        .into_shared();
    let (child_ctx, forward) = ctx.for_child();
    let earlier = match rec.current().and_then(|i| i.verify.as_ref()) {
        Some(v) => {
            let seeker = Seeker {
                what: "verify",
                reason: "loop-resume",
                ended: &[RunStatus::Succeeded, RunStatus::Failed],
            };
            take_over(seeker, run, &child_ctx, &plan, &v.run_id).await?
        }
        None => None,
    };
    let prepared = match earlier {
        Some(Earlier::Ended(report)) => {
            forward.abort();
            return Ok(Verified::Verdict(report));
        }
        Some(Earlier::Resumed(prepared)) => prepared,
        None => {
            (run.children.prepare)(
                child_ctx.clone(),
                plan,
                Some(run.dir.run_id.clone()),
                run.depth + 1,
            )
            .await?
        }
    };
    let dir = prepared.dir().clone();
    run.persister
        .send(loop_update(
            index,
            LoopChange::VerifyStarted(ChildRun {
                run_id: dir.run_id.clone(),
                pipeline_id: spec.verify.clone(),
                status: RunStatus::InProgress,
                manifest: dir.rel(&dir.manifest()),
            }),
        ))
        .await?;
    // Durable before the child runs: a resume must find this child, not start another.
    run.persister.flush().await?;
    let out_of_time = Arc::new(AtomicBool::new(false));
    let watcher = deadline.map(|d| {
        let (flag, child) = (out_of_time.clone(), child_ctx.clone());
        tokio::spawn(async move {
            tokio::time::sleep_until(d.into()).await;
            flag.store(true, Ordering::SeqCst);
            child.cancel_gracefully(0);
        })
    });
    let ended = (run.children.execute)(prepared).await;
    forward.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    let fatal = child_ctx
        .fatal
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(fatal) = fatal {
        ctx.fail_fatally(fatal);
        return Ok(Verified::Stopped);
    }
    let report = ended?;
    // The parent's `child_runs` says how the child ended, verdict or not.
    run.persister
        .send(shared_manifest::ManifestUpdate::ChildRunUpdated {
            run_id: report.dir.run_id.clone(),
            status: report.manifest.status,
        })
        .await?;
    if ctx.stopping() {
        return Ok(Verified::Stopped);
    }
    if out_of_time.load(Ordering::SeqCst) {
        return Ok(Verified::OutOfTime);
    }
    Ok(match report.manifest.status {
        RunStatus::Succeeded | RunStatus::Failed => Verified::Verdict(Box::new(report)),
        // Cancelled by a request of its own (its control.json): not a verdict.
        _ => Verified::Stopped,
    })
}
