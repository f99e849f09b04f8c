//! Taking over a child run recorded by an earlier attempt of its parent: a sub-pipeline
//! stage's child run, or a loop iteration's verify run. Both are found the same way on a
//! resume: the recorded run is read back, the plan patches its own stages recorded replayed
//! onto the pipeline it must still run (`Plan::replayed`), checked against that, and either
//! taken as it ended or resumed under its own lock, never started beside itself.

use std::sync::Arc;

use shared_manifest::schema::ResumeEvent;
use shared_manifest::RunStatus;

use crate::engine::context::Ctx;
use crate::engine::state::{Prepared, RunReport, RunState, Takeover};
use crate::errors::AppError;
use crate::plan::Plan;

/// Who looks for the earlier run, for its messages and its resume event.
pub(crate) struct Seeker<'a> {
    /// `child` or `verify`: in messages (`earlier verify run unreadable`).
    pub what: &'a str,
    /// The resume event's reason, before the parent's run id (`parent-resume`).
    pub reason: &'a str,
    /// The statuses in which the earlier run is taken as it ended, not resumed.
    pub ended: &'a [RunStatus],
}

/// What a resumed parent finds of its earlier child run.
pub(crate) enum Earlier {
    /// It ended in one of the seeker's `ended` statuses: nothing to run.
    Ended(Box<RunReport>),
    /// It is taken over under its lock and resumes where it stopped.
    Resumed(Prepared),
}

/// Looks up child run `run_id` of a resumed parent, for a child run in `ctx` of `plan`.
/// `None` (a fresh child run) when the id is not a run id, its manifest is gone or
/// unreadable, or its stages no longer match the pipeline.
pub(crate) async fn take_over(
    seeker: Seeker<'_>,
    run: &RunState,
    ctx: &Arc<Ctx>,
    plan: &Arc<Plan>,
    run_id: &str,
) -> Result<Option<Earlier>, AppError> {
    let what = seeker.what;
    // The id comes from the parent's manifest: it must be a directory name, or the paths built
    // from it could leave `.runs`.
    if !crate::record::layout::is_safe_component(run_id) {
        tracing::warn!(
            child = %crate::record::layout::show_id(run_id),
            "the recorded {what} run id is not a run id; starting a new run"
        );
        return Ok(None);
    }
    let dir = ctx.roots.run_dir(&ctx.task, run_id);
    let Ok(manifest) = crate::history::read_manifest(&dir.manifest()) else {
        tracing::warn!(
            child = run_id,
            "earlier {what} run unreadable; starting a new one"
        );
        return Ok(None);
    };
    // With the stages its own stages added by plan patches, from its record: the child
    // resumes with them, and the stages that wrote them are never asked again.
    let secrets = exec::Secrets::new(ctx.secrets.values(std::env::vars_os(), &plan.vars));
    let files = crate::plan::patch_record::PatchFiles {
        path_of: &|index, id| {
            let file = dir.plan_patch(index, id);
            let shown = dir.rel(&file);
            (file, shown)
        },
        secrets: secrets.as_ref(),
    };
    let plan = match plan.replayed(&manifest.plan_patches, Some(&files)) {
        Ok(plan) => Arc::new(plan),
        Err(e) => {
            tracing::warn!(child = run_id, "{e}; starting a new {what} run");
            return Ok(None);
        }
    };
    let ids = plan.pipeline.stages.iter().map(|s| s.id.as_str());
    if !ids.eq(manifest.commands.iter().map(|c| c.id.as_str())) {
        tracing::warn!(
            child = run_id,
            "stages of the {what} pipeline changed; starting a new run"
        );
        return Ok(None);
    }
    if seeker.ended.contains(&manifest.status) {
        return Ok(Some(Earlier::Ended(Box::new(RunReport { dir, manifest }))));
    }
    let context = format!("cannot resume {what} run `{run_id}`");
    let lock = crate::control::lock::acquire(&dir.lock()).map_err(|e| e.into_app(&context))?;
    // Re-read under the lock, as `resume` does.
    let manifest = crate::history::read_manifest(&dir.manifest())
        .map_err(|e| AppError::Conflict(format!("{context}: {e}")))?;
    let event = ResumeEvent {
        timestamp: crate::time::now(),
        actor: "runner".into(),
        reason: format!("{}:{}", seeker.reason, run.dir.run_id),
        outcome: "accepted".into(),
        detail: Some(format!("previous status: {}", manifest.status.as_str())),
    };
    let takeover = Takeover {
        dir,
        manifest,
        event,
        lock,
        stale: Default::default(),
    };
    let prepared =
        (run.children.prepare_resume)(ctx.clone(), plan, takeover, run.depth + 1).await?;
    Ok(Some(Earlier::Resumed(prepared)))
}
