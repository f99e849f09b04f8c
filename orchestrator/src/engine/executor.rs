//! Picking the executor of a command stage: its config's `executor` (its own, else its
//! pipeline's, else local) turned into an `exec::Executor`, and how a remote attempt's
//! whereabouts are recorded. Everything else about running an attempt is behind the trait, in
//! `exec`.

use std::collections::BTreeMap;
use std::sync::Arc;

use exec::ray::{RayExecutor, RaySettings};
use exec::{Executor, Local, RemoteInfo};
use shared_manifest::schema::ExecutorRecord;

use crate::config::{CommandStage, ExecutorConfig, Stage};
use crate::engine::state::RunState;

/// The executor of `stage` in `run`. `Err` is a sentence for the stage's record (only an
/// address overridden through the environment after the plan checked it can fail here).
pub fn for_stage(
    run: &RunState,
    stage: &Stage,
    cmd: &CommandStage,
) -> Result<Arc<dyn Executor>, String> {
    let ray = match &cmd.executor {
        None | Some(ExecutorConfig::Local) => return Ok(Arc::new(Local)),
        Some(ExecutorConfig::Ray(ray)) => ray,
    };
    let address = crate::config::executor::ray_address(ray)?;
    let ctx = &run.ctx;
    let metadata: BTreeMap<&'static str, String> = [
        ("codex_orchestrator.run_id", run.dir.run_id.clone()),
        ("codex_orchestrator.stage_id", stage.id.clone()),
        (
            "codex_orchestrator.pipeline_id",
            run.plan().pipeline.id.clone(),
        ),
        ("codex_orchestrator.task_id", ctx.task.clone()),
    ]
    .into_iter()
    .collect();
    let settings = RaySettings {
        address,
        num_cpus: ray.num_cpus,
        num_gpus: ray.num_gpus,
        resources: ray.resources.iter().cloned().collect(),
        working_dir: ray.working_dir.as_ref().map(|w| ctx.roots.repo.join(w)),
        excludes: ray.excludes.clone(),
        // The run's own records must not be shipped (they change while it runs).
        skip: vec![ctx.roots.runs.clone()],
        submission_prefix: format!("{}--{}", run.dir.run_id, stage.id),
        metadata,
    };
    Ok(Arc::new(RayExecutor::new(settings)?))
}

/// The manifest's record of where a remote attempt runs.
pub fn record(r: &RemoteInfo) -> ExecutorRecord {
    ExecutorRecord {
        kind: r.kind.to_owned(),
        address: r.address.clone(),
        submission_id: r.submission_id.clone(),
        node: r.node.clone(),
        host: r.host.clone(),
        working_dir_sha256: r.working_dir_sha256.clone(),
        attached: r.attached,
        status: r.status.clone(),
    }
}
