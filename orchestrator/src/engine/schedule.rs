//! The scheduler: owns the state of a run's stages while it runs. It starts every stage whose
//! dependencies are done, up to the concurrency cap, applies the failure policies, and stops
//! starting stages on cancellation or a fatal error.
//!
//! Stages run as tasks in a `JoinSet`; the scheduler alone decides what starts next, from the
//! results it joins, so there is no shared mutable stage state.

use std::sync::Arc;

use shared_manifest::{CommandEvent, ManifestUpdate};
use tokio::task::JoinSet;

use crate::config::{OnFailure, StageKind};
use crate::engine::stage_end::StageEnd;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// What the run's end depends on.
#[derive(Debug, Default)]
pub struct Finished {
    /// `status_detail` of the first failure, in completion order.
    pub first_failure: Option<String>,
    /// Summary lines of every failure, in completion order.
    pub failure_lines: Vec<String>,
    /// A `cancel` in `control.json` stopped the run (it then looks like a SIGTERM).
    pub control_cancel: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Running,
    /// Ended and its dependents may run (succeeded, allowed failure, or failed under
    /// `onFailure: continue`).
    Satisfied,
    /// Ended and its dependents must not run.
    Blocked,
}

/// Runs the plan's stages; returns when none is running and none can start.
pub async fn run_stages(run: Arc<RunState>) -> Finished {
    let plan = run.plan.clone();
    let stages = &plan.pipeline.stages;
    let graph = &plan.graph;
    let mut slots: Vec<Slot> = run
        .done
        .iter()
        .map(|&d| if d { Slot::Satisfied } else { Slot::Pending })
        .collect();
    let mut tasks: JoinSet<(usize, Result<StageEnd, AppError>)> = JoinSet::new();
    let mut finished = Finished::default();
    let mut aborting = false;
    let mut cancel = run.ctx.cancel.subscribe();
    loop {
        if !aborting && !run.ctx.stopping() && !cancel_on_control_request(&run, &mut finished) {
            for pos in 0..stages.len() {
                if tasks.len() >= plan.concurrency {
                    break;
                }
                if slots[pos] != Slot::Pending {
                    continue;
                }
                if graph.deps[pos].iter().all(|&d| slots[d] == Slot::Satisfied) {
                    slots[pos] = Slot::Running;
                    let (run2, stage) = (run.clone(), stages[pos].clone());
                    tasks.spawn(async move {
                        let end = match stage.kind.clone() {
                            StageKind::Command(c) => {
                                crate::engine::stage::run_command(run2, pos, stage, c).await
                            }
                            StageKind::Subpipeline { pipeline, optional } => {
                                crate::engine::subpipeline::run_subpipeline(
                                    run2, pos, stage, pipeline, optional,
                                )
                                .await
                            }
                            StageKind::Loop(l) => {
                                crate::engine::loop_stage::run_loop(run2, pos, stage, l).await
                            }
                        };
                        (pos, end)
                    });
                }
            }
        }
        if tasks.is_empty() {
            break;
        }
        let joined = tokio::select! {
            joined = tasks.join_next() => joined,
            // Wake up to stop starting stages; the running ones see the same channel.
            _ = cancel.changed() => continue,
        };
        let Some(joined) = joined else { break };
        let (pos, end) = match joined {
            Ok(v) => v,
            Err(e) => {
                // A stage task panicked: a bug, reported as a fatal error rather than lost.
                run.ctx
                    .fail_fatally(AppError::Internal(format!("a stage task failed: {e}")));
                continue;
            }
        };
        match end {
            Err(e) => {
                slots[pos] = Slot::Blocked;
                run.ctx.fail_fatally(e);
            }
            Ok(end) => {
                let stage = &stages[pos];
                if end.event == CommandEvent::Fail {
                    finished.first_failure.get_or_insert(end.detail.clone());
                    finished.failure_lines.extend(end.failure_line.clone());
                    match stage.on_failure {
                        OnFailure::Abort => {
                            slots[pos] = Slot::Blocked;
                            aborting = true;
                        }
                        OnFailure::Continue => slots[pos] = Slot::Satisfied,
                        OnFailure::SkipDependents => {
                            slots[pos] = Slot::Blocked;
                            skip_dependents(&run, pos, &mut slots).await;
                        }
                    }
                } else {
                    slots[pos] = Slot::Satisfied;
                }
            }
        }
    }
    finished
}

/// Between stages: a `cancel` in the peer's `control.json` cancels the run as `cancel --run`
/// does (SIGTERM semantics: running stages get SIGTERM, grace, SIGKILL; exit 143). Returns
/// true when it did, and records that in `finished` for the run's summary.
fn cancel_on_control_request(run: &RunState, finished: &mut Finished) -> bool {
    let path = run.dir.control();
    let Some(seq) = crate::control::control_file::cancel_requested(&path, run.control_seq) else {
        return false;
    };
    crate::console::err_line(&format!(
        "cancel requested in `{}`: stopping the run",
        run.dir.rel(&path)
    ));
    run.emit(
        "run_canceled",
        serde_json::json!({ "requested_by": "control.json", "control_seq": seq }),
    );
    run.ctx
        .cancel_gracefully(nix::sys::signal::Signal::SIGTERM as i32);
    finished.control_cancel = true;
    true
}

/// Marks every pending stage downstream of `failed` as skipped, with the reason.
async fn skip_dependents(run: &RunState, failed: usize, slots: &mut [Slot]) {
    let stages = &run.plan.pipeline.stages;
    let mut todo = vec![failed];
    while let Some(n) = todo.pop() {
        for &d in &run.plan.graph.dependents[n] {
            if slots[d] != Slot::Pending {
                continue;
            }
            slots[d] = Slot::Blocked;
            let reason = format!("Skipped: dependency `{}` failed.", stages[failed].id);
            let update = ManifestUpdate::StageNotRun {
                index: d + 1,
                at: crate::time::now(),
                event: CommandEvent::Skip,
                reason: reason.clone(),
            };
            if let Err(e) = run.persister.send(update).await {
                run.ctx.fail_fatally(e.into());
            }
            run.emit(
                "step_skipped",
                serde_json::json!({
                    "stage_id": stages[d].id, "stage_index": d + 1, "reason": reason,
                }),
            );
            run.ctx.reporter.stage_skipped(
                &run.label(),
                d + 1,
                stages.len(),
                &stages[d].id,
                &reason,
            );
            todo.push(d);
        }
    }
}
