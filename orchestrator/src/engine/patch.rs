//! Plan patches at run time: after a command stage exits successfully, the file it was given
//! in `CODEX_ORCHESTRATOR_PLAN_PATCH_PATH` (if it wrote one) is validated against the plan as
//! it stands (`config::plan_patch`: the config's own checks), recorded through the persister
//! (`StagesAdded`: the new stages' records and the patch, in the same write as the stage's
//! end, durable before anything else), announced (`plan_update` in `events.jsonl`, a progress note), and only then becomes the
//! run's plan, whose new stages the scheduler picks up when it joins the stage. A refused
//! patch fails its stage and adds nothing. Patches are applied one at a time
//! (`RunState::patching`), so each is checked against the plan it extends and recorded in
//! that order.

use std::sync::Arc;

use serde_json::json;
use shared_manifest::schema::PlanPatchRecord;
use shared_manifest::ManifestUpdate;

use crate::config::plan_patch;
use crate::config::Stage;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// Clears the patch file of stage `index` before an attempt: only what this attempt writes
/// counts (an earlier attempt's file, or an earlier runner's, must not be applied).
pub fn clear(run: &RunState, index: usize, stage: &Stage) -> Result<(), AppError> {
    let path = run.dir.plan_patch(index, &stage.id);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AppError::storage(&path, e)),
    }
}

/// What a stage's plan patch came to.
pub enum Patch<'a> {
    /// It wrote none (or an earlier runner recorded it already).
    Absent,
    /// Refused: the stage fails with this message and nothing is added.
    Refused(String),
    /// Valid, not yet recorded: see [`Accepted`].
    Accepted(Box<Accepted<'a>>),
}

/// A valid patch, recorded in the same manifest write as its stage's end (`stage_end.rs`), so
/// a crash leaves both or neither: never the patch with its stage still `running`, which a
/// resume would run again. It holds the patching turn until it is merged.
pub struct Accepted<'a> {
    _turn: tokio::sync::MutexGuard<'a, ()>,
    /// `StagesAdded`: the new stages' records and the patch (until it is sent).
    update: Option<ManifestUpdate>,
    next: crate::plan::Plan,
    ids: Vec<String>,
    first: usize,
    index: usize,
    stage_id: String,
}

/// Checks the patch stage `index` wrote, if it wrote one.
pub async fn check<'a>(
    run: &'a RunState,
    index: usize,
    stage: &Stage,
) -> Result<Patch<'a>, AppError> {
    let path = run.dir.plan_patch(index, &stage.id);
    let text = match crate::files::read_regular_text(&path, crate::config::load::MAX_CONFIG_BYTES) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => return Ok(Patch::Absent),
        Err(e) => {
            return Ok(Patch::Refused(format!(
                "cannot read its plan patch `{}`: {e}",
                run.dir.rel(&path)
            )))
        }
    };
    let turn = run.patching.lock().await;
    let current = run.plan();
    if current.patched_by.contains(&stage.id) {
        // Its patch was recorded by an earlier runner of this run (a resume replayed it):
        // a stage is never asked for its patch twice.
        run.ctx.reporter.run_note(
            &run.label(),
            &run.dir.run_id,
            &format!(
                "stage `{}`: plan patch already applied by an earlier runner; ignored",
                stage.id
            ),
        );
        return Ok(Patch::Absent);
    }
    let standing = plan_patch::Standing::of(
        &current.pipeline,
        current.dynamic,
        current.max_dynamic_stages(),
    );
    let patch = match plan_patch::parse(&path, &text, &standing, &stage.id) {
        Ok(p) => p,
        Err(e) => return Ok(Patch::Refused(format!("plan patch refused: {e}"))),
    };
    let next = current
        .extended(&stage.id, &patch.stages)
        .map_err(|e| AppError::Internal(format!("a validated plan patch has a bad graph: {e}")))?;
    let first = current.pipeline.stages.len();
    let secrets = exec::Secrets::new(run.ctx.secrets.values(std::env::vars_os(), &next.vars));
    let shown = |text: &str| match &secrets {
        Some(s) => s.redact_str(text).0,
        None => text.to_owned(),
    };
    let records = (first..next.pipeline.stages.len())
        .map(|i| crate::engine::records::pending(&run.ctx, &next, i, &shown))
        .collect();
    let ids: Vec<String> = patch.stages.iter().map(|s| s.id.clone()).collect();
    // Recorded masked like the stages' records; a resume reads a masked one from its file.
    let (stages, masked) = crate::plan::patch_record::masked(&patch.raw, secrets.as_ref());
    let update = ManifestUpdate::StagesAdded {
        records,
        patch: PlanPatchRecord {
            added_by: stage.id.clone(),
            at: crate::time::now(),
            stage_ids: ids.clone(),
            stages,
            masked,
        },
    };
    Ok(Patch::Accepted(Box::new(Accepted {
        _turn: turn,
        update: Some(update),
        next,
        ids,
        first,
        index,
        stage_id: stage.id.clone(),
    })))
}

impl Accepted<'_> {
    /// The update that records the patch, for the write of its stage's end.
    pub fn take_update(&mut self) -> Option<ManifestUpdate> {
        self.update.take()
    }

    /// Once the patch is durable (with its stage's end): announced, then the run's plan, whose
    /// new stages the scheduler picks up when it joins the stage. Durable before it is
    /// announced: a reader woken by `plan_update` (the dashboard) finds the new stages in the
    /// manifest, and a crash never leaves an event naming stages the record does not have.
    pub fn merge(self, run: &RunState) {
        run.emit(
            "plan_update",
            json!({
                "added_by": self.stage_id, "stage_index": self.index, "stage_ids": self.ids,
                "first_index": self.first + 1, "total_stages": self.next.pipeline.stages.len(),
            }),
        );
        run.ctx.reporter.run_note(
            &run.label(),
            &run.dir.run_id,
            &format!(
                "stage `{}` added {} stage(s): {}",
                self.stage_id,
                self.ids.len(),
                self.ids.join(", ")
            ),
        );
        run.set_plan(Arc::new(self.next));
    }
}
