//! How a stage's end is recorded, shared by command and sub-pipeline stages: what the
//! scheduler needs of it (`StageEnd`), the manifest update made durable, and the
//! `step_completed` / `step_failed` event.

use serde_json::Value;
use shared_manifest::{CommandEvent, ManifestUpdate, StageFinish, StagePhase, Synced};

use crate::config::Durability;
use crate::engine::patch::Accepted;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// How a stage ended, as the scheduler needs it.
#[derive(Debug, Clone)]
pub struct StageEnd {
    /// `Succeed`, `Fail` or `Skip` (allowFailure / optional sub-pipeline).
    pub event: CommandEvent,
    /// The run's `status_detail` when this is the run's first failure.
    pub detail: String,
    /// The run's summary line for a failure.
    pub failure_line: Option<String>,
}

/// Records a stage's end: the manifest update, then `step_completed` or `step_failed` with
/// `payload`, whose `status` key is filled in here. Returns the status as the manifest spells
/// it, read from the stage transition table rather than spelled again here.
///
/// `sync` names the files the record refers to (the stage log, an error file), already
/// written to the kernel: the persister makes them durable before the manifest that records
/// the end (group commit). With `durability: strict` the stage waits for that write, so its
/// end is durable before its dependents start; batched, it goes on at once and the write
/// follows within the persister's pace.
pub async fn record_end(
    run: &RunState,
    finish: StageFinish,
    payload: Value,
    sync: Synced,
) -> Result<&'static str, AppError> {
    record_end_patched(run, None, finish, payload, sync).await
}

/// [`record_end`] of a stage whose plan patch was accepted: the patch and the end go to the
/// manifest in one write, made durable whatever the durability (a crash leaves both or
/// neither, so a resume never runs the stage again for a patch it already recorded), and the
/// patch is merged into the run's plan before the stage's event.
pub async fn record_end_patched(
    run: &RunState,
    mut patch: Option<Accepted<'_>>,
    finish: StageFinish,
    mut payload: Value,
    sync: Synced,
) -> Result<&'static str, AppError> {
    let event = finish.event;
    let finished = ManifestUpdate::StageFinished(Box::new(finish));
    match patch.as_mut().and_then(Accepted::take_update) {
        Some(added) => run.persister.send_all(vec![added, finished], sync).await?,
        None => run.persister.send_synced(finished, sync).await?,
    }
    if patch.is_some() || run.ctx.durability() == Durability::Strict {
        run.persister.flush().await?;
    }
    if let Some(patch) = patch {
        patch.merge(run);
    }
    let status = StagePhase::Running
        .on(event)
        .map_or("failed", |p| p.status().as_str());
    payload["status"] = Value::from(status);
    let name = if event == CommandEvent::Fail {
        "step_failed"
    } else {
        "step_completed"
    };
    run.emit(name, payload);
    Ok(status)
}
