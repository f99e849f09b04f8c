//! The scheduler: owns the state of a run's stages while it runs. It starts every stage whose
//! dependencies are done, up to the concurrency cap, applies the failure policies, and stops
//! starting stages on cancellation or a fatal error. Before it starts stages it asks the gate
//! (`gate.rs`: the requests of `control.json`), which may hold them back while paused.
//!
//! Stages run as tasks in a `JoinSet`; the scheduler alone decides what starts next, from the
//! results it joins, so there is no shared mutable stage state. The cap counts stages doing
//! work: a stage waiting for an approval or for a lock gives its seat back (`capacity.rs`).

use std::sync::Arc;

use shared_manifest::{CommandEvent, ManifestUpdate};
use tokio::task::JoinSet;

use crate::config::{OnFailure, StageKind};
use crate::engine::capacity::{Capacity, Seat};
use crate::engine::gate::Gate;
use crate::engine::locks::Acquired;
use crate::engine::stage_end::StageEnd;
use crate::engine::state::RunState;
use crate::errors::AppError;
use crate::plan::Plan;

/// What the run's end depends on.
#[derive(Debug, Default)]
pub struct Finished {
    /// `status_detail` of the first failure, in completion order.
    pub first_failure: Option<String>,
    /// Summary lines of every failure, in completion order.
    pub failure_lines: Vec<String>,
    /// A `cancel` in `control.json` stopped the run (it then looks like a SIGTERM).
    pub control_cancel: bool,
    /// Summary lines of the control requests honoured (pause, resume), in order.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Pending,
    Running,
    /// Ended and its dependents may run (succeeded, allowed failure, or failed under
    /// `onFailure: continue`).
    Satisfied,
    /// Ended and its dependents must not run (the run is aborting or failed fatally).
    Blocked,
    /// Ended (failed under `onFailure: skip-dependents`) or skipped because of such a failure,
    /// named by its position: its dependents are skipped, those a plan patch adds later too.
    Skipping(usize),
}

/// Runs the plan's stages; returns when none is running and none can start.
pub async fn run_stages(run: Arc<RunState>) -> Finished {
    // The plan as it stands: a stage's plan patch replaces the run's plan, and the new
    // stages join `slots` (pending) when that stage is joined.
    let mut plan = run.plan();
    let mut slots: Vec<Slot> = run
        .done
        .iter()
        .map(|&d| if d { Slot::Satisfied } else { Slot::Pending })
        .collect();
    leave_out_unselected(&run, &mut slots).await;
    let mut tasks: JoinSet<(usize, Result<Option<StageEnd>, AppError>)> = JoinSet::new();
    let mut finished = Finished::default();
    let mut aborting = false;
    let mut cancel = run.ctx.cancel.subscribe();
    // The gate reads control.json (pause, resume, cancel, fail) when a stage ends and every
    // second while stages run.
    let mut gate = Gate::new(&run);
    let capacity = Capacity::new(plan.concurrency);
    loop {
        if gate.check(&run).await && !aborting {
            for pos in 0..plan.pipeline.stages.len() {
                if slots[pos] != Slot::Pending {
                    continue;
                }
                if plan.graph.deps[pos]
                    .iter()
                    .all(|&d| slots[d] == Slot::Satisfied)
                {
                    let Some(seat) = capacity.try_take() else {
                        break;
                    };
                    slots[pos] = Slot::Running;
                    tasks.spawn(run_stage(run.clone(), pos, seat, capacity.clone()));
                }
            }
        }
        // A paused run with stages left waits for its resume (or a stop) even with nothing
        // running.
        let held =
            gate.paused() && !aborting && !run.ctx.stopping() && slots.contains(&Slot::Pending);
        if tasks.is_empty() && !held {
            break;
        }
        let joined = tokio::select! {
            joined = tasks.join_next(), if !tasks.is_empty() => joined,
            // Wake up to stop starting stages; the running ones see the same channel.
            _ = cancel.changed() => continue,
            // control.json is looked at while stages run too.
            () = gate.tick() => continue,
            // A waiting stage gave its seat back: another ready stage may start.
            () = capacity.freed() => continue,
        };
        let Some(joined) = joined else { break };
        // Before anything reads the plan: a patch merged while stages ran (by this stage or
        // another) has grown it, and `slots` must cover every stage it now has.
        grow(&run, &mut plan, &mut slots).await;
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
            // Stopped before it started (waiting for its locks): it stays pending.
            Ok(None) => slots[pos] = Slot::Pending,
            Err(e) => {
                slots[pos] = Slot::Blocked;
                run.ctx.fail_fatally(e);
            }
            Ok(Some(end)) => {
                let stage = &plan.pipeline.stages[pos];
                if end.event == CommandEvent::Fail {
                    finished.first_failure.get_or_insert(end.detail.clone());
                    finished.failure_lines.extend(end.failure_line.clone());
                    match run.ctx.on_failure(stage) {
                        OnFailure::Abort => {
                            slots[pos] = Slot::Blocked;
                            aborting = true;
                        }
                        OnFailure::Continue => slots[pos] = Slot::Satisfied,
                        OnFailure::SkipDependents => {
                            slots[pos] = Slot::Skipping(pos);
                            skip_dependents(&run, &plan, vec![pos], &mut slots).await;
                        }
                    }
                } else {
                    slots[pos] = Slot::Satisfied;
                }
            }
        }
    }
    finished.control_cancel = gate.cancelled();
    finished.notes = gate.into_notes();
    finished
}

/// One stage's task: its resource locks (held until it ends), then the stage by its kind,
/// in `seat` (given back while the stage only waits). `None`: the run stopped while it waited
/// for its locks, so it never started.
async fn run_stage(
    run: Arc<RunState>,
    pos: usize,
    seat: Seat,
    capacity: Capacity,
) -> (usize, Result<Option<StageEnd>, AppError>) {
    let stage = run.plan().pipeline.stages[pos].clone();
    let mut seat = Some(seat);
    if matches!(stage.kind, StageKind::Approval(_)) {
        // It waits for a person and does no work: no seat.
        capacity.give_back(seat.take());
    }
    let acquired =
        crate::engine::locks::acquire(&run, pos, &stage, || capacity.give_back(seat.take())).await;
    let _held = match acquired {
        Ok(Acquired::Held(held)) => held,
        Ok(Acquired::Stopped) => return (pos, Ok(None)),
        Err(e) => return (pos, Err(e)),
    };
    let _seat = match seat {
        Some(seat) => Some(seat),
        // It waited for its locks: a seat again before it starts, unless the run stops.
        None if !matches!(stage.kind, StageKind::Approval(_)) => tokio::select! {
            seat = capacity.take() => Some(seat),
            () = stopped(&run) => return (pos, Ok(None)),
        },
        None => None,
    };
    let end = match stage.kind.clone() {
        StageKind::Command(c) => crate::engine::stage::run_command(run, pos, stage, c).await,
        StageKind::Subpipeline { pipeline, optional } => {
            crate::engine::subpipeline::run_subpipeline(run, pos, stage, pipeline, optional).await
        }
        StageKind::Approval(a) => crate::engine::approval::run_approval(run, pos, stage, a).await,
        StageKind::Loop(l) => crate::engine::loop_stage::run_loop(run, pos, stage, l).await,
    };
    (pos, end.map(Some))
}

/// Before anything starts: every pending stage the run's selection leaves out is recorded
/// skipped (outcome `not_selected`) and counts as done for its dependents. On a resume the
/// stages an earlier selection left out are pending again (`RunResumed`), so the resumed
/// runner's selection (given to `resume`, else the recorded one) decides them anew.
async fn leave_out_unselected(run: &RunState, slots: &mut [Slot]) {
    let plan = run.plan();
    let Some(selection) = &plan.selection else {
        return;
    };
    let stages = &plan.pipeline.stages;
    let reason = selection.reason();
    for (pos, slot) in slots.iter_mut().enumerate() {
        if selection.runs(pos) || *slot != Slot::Pending {
            continue;
        }
        *slot = Slot::Satisfied;
        let update = ManifestUpdate::StageNotSelected {
            index: pos + 1,
            at: crate::time::now(),
            reason: reason.clone(),
        };
        if let Err(e) = run.persister.send(update).await {
            run.ctx.fail_fatally(e.into());
        }
        run.emit(
            "step_skipped",
            serde_json::json!({
                "stage_id": stages[pos].id, "stage_index": pos + 1, "reason": reason,
                "outcome": "not_selected",
            }),
        );
        run.ctx.reporter.stage_skipped(
            &run.label(),
            pos + 1,
            stages.len(),
            &stages[pos].id,
            &reason,
        );
    }
}

/// Resolves once the run is stopping (cancelled, or a fatal error).
async fn stopped(run: &RunState) {
    let mut cancel = run.ctx.cancel.subscribe();
    while !run.ctx.stopping() {
        if cancel.changed().await.is_err() {
            // Nobody can cancel any more.
            std::future::pending::<()>().await;
        }
    }
}

/// Takes up the run's plan as it stands: the stages a plan patch added are pending from now on
/// (a patch is recorded and merged before its stage's end reaches the scheduler), and those
/// that depend on a stage skipping its dependents are skipped at once, as a config stage in
/// their place would have been.
async fn grow(run: &RunState, plan: &mut Arc<Plan>, slots: &mut Vec<Slot>) {
    *plan = run.plan();
    if slots.len() >= plan.pipeline.stages.len() {
        return;
    }
    slots.resize(plan.pipeline.stages.len(), Slot::Pending);
    let skipping = (0..slots.len())
        .filter(|&n| matches!(slots[n], Slot::Skipping(_)))
        .collect();
    skip_dependents(run, plan, skipping, slots).await;
}

/// Marks every pending stage downstream of the `from` stages (each `Slot::Skipping`) as
/// skipped, with the reason naming the stage whose failure skips it.
async fn skip_dependents(run: &RunState, plan: &Plan, from: Vec<usize>, slots: &mut [Slot]) {
    let stages = &plan.pipeline.stages;
    let mut todo = from;
    while let Some(n) = todo.pop() {
        let Slot::Skipping(failed) = slots[n] else {
            continue;
        };
        for &d in &plan.graph.dependents[n] {
            if slots[d] != Slot::Pending {
                continue;
            }
            slots[d] = Slot::Skipping(failed);
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
