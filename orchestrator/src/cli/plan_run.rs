//! `plan --run RUN` / `plan --last`: the graph of a run as it stands. The run's pipeline is
//! built from the config as `resume` builds it (a plan-file run from its plan file, with the
//! `--var`s it recorded), the plan patches its manifest records are replayed onto it
//! (`Plan::of_run`), and it is shown as `plan` shows a pipeline, each added stage marked with
//! the stage that added it and when. The run's recorded concurrency, target and stage
//! selection are shown, not asked for: `--run` refuses the flags that would choose them.

use serde_json::{json, Value};
use shared_manifest::schema::{Manifest, PlanPatchRecord};

use crate::cli::{Format, PlanArgs};
use crate::errors::AppError;
use crate::{exit, plan};

/// Runs `plan --run` / `plan --last`; returns the exit code.
pub(super) fn plan_of_run(args: &PlanArgs) -> Result<i32, AppError> {
    let named = super::run_ref::RunRef {
        id: None,
        run: args.run.clone(),
        last: args.last,
    };
    let located = super::run_ref::locate(&named, args.task.as_deref(), false)?;
    let manifest = shared_manifest::read_manifest(&located.manifest)
        .map_err(|e| AppError::Conflict(e.describe()))?;
    let cannot = |why: String| {
        AppError::Conflict(format!(
            "cannot show the plan of run `{}`: {why}",
            manifest.run_id
        ))
    };
    let vars = recorded_vars(&manifest);
    let config = match super::run_plan::recorded_plan(&located.roots, &manifest) {
        Some(path) => super::run_plan::load(&path, &vars)?,
        None => {
            super::setup::load_config(
                &located.roots,
                args.strict,
                args.repo_config_required.as_deref(),
            )?
            .config
        }
    };
    let pipeline = config.pipeline(&manifest.pipeline_id).ok_or_else(|| {
        cannot(format!(
            "pipeline `{}` is not in `{}`",
            manifest.pipeline_id,
            config.path.display()
        ))
    })?;
    // Without the checks `build` makes before a run (variables of every `cwd`, Ray address,
    // spawn sizes): they are about running it, and this only shows it.
    let base = plan::build_one(&config, pipeline, &vars, None)?;
    // From the record alone: a patch recorded masked shows masked (`***`).
    let mut grown = base.of_run(&manifest, None).map_err(|e| match e.error {
        plan::patch_record::ReplayCause::Invalid(error) => cannot(format!(
            "the plan patch recorded from stage `{}` no longer applies to pipeline `{}`: {error}",
            e.added_by, manifest.pipeline_id
        )),
        cause => cannot(format!(
            "the plan patch recorded from stage `{}` {cause}",
            e.added_by
        )),
    })?;
    let ids: Vec<&str> = grown
        .pipeline
        .stages
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    let recorded: Vec<&str> = manifest.commands.iter().map(|c| c.id.as_str()).collect();
    if ids != recorded {
        return Err(cannot(format!(
            "the stages of pipeline `{}` changed since it ran (now {}, recorded {})",
            manifest.pipeline_id,
            ids.join(", "),
            recorded.join(", ")
        )));
    }
    if let Some(t) = &manifest.plan_target_id {
        // Recorded as `<pipeline>:<stage>` of a stage the ids above say is there.
        grown.retarget(t)?;
    }
    if let Some(n) = manifest.concurrency {
        if n != grown.concurrency {
            // Started with `--concurrency` (or a resume was): the cap it ran with.
            grown.concurrency = n;
            grown.concurrency_source = "run";
        }
    }
    let added = manifest.added_stages();
    let added_at = |i: usize| added.get(grown.pipeline.stages[i].id.as_str()).copied();
    match args.format {
        Format::Json => {
            let mut out = grown.to_json(&config);
            annotate(&mut out, &manifest, &added_at);
            crate::report::output::json(&out);
        }
        Format::Text => {
            let mut text = format!("Run: {} ({})\n", manifest.run_id, manifest.status.as_str());
            if !manifest.plan_patches.is_empty() {
                text.push_str(&format!(
                    "Plan patches: {} ({} stage(s) added)\n",
                    manifest.plan_patches.len(),
                    added.len()
                ));
            }
            text.push_str(&grown.to_text_marked(&config, |i| {
                added_at(i).map(|p| format!("added by {} at {}", p.added_by, p.at))
            }));
            crate::report::output::line(text.trim_end());
        }
    }
    Ok(exit::OK)
}

/// The `--var`s the run was started with (as recorded: a secret stays masked, so it is
/// shown masked and never looked up).
fn recorded_vars(manifest: &Manifest) -> Vec<(String, String)> {
    manifest
        .variables
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        .collect()
}

/// Adds to `plan --format json`'s object what a run says: `run` (id, task, status),
/// `plan_patches` (each patch: which stage, when, which stages), and on every stage
/// `added_by` / `added_at` (`null` for the config's own stages).
fn annotate<'m>(
    out: &mut Value,
    manifest: &Manifest,
    added_at: &dyn Fn(usize) -> Option<&'m PlanPatchRecord>,
) {
    if let Some(stages) = out.get_mut("stages").and_then(Value::as_array_mut) {
        for (i, stage) in stages.iter_mut().enumerate() {
            let p = added_at(i);
            stage["added_by"] = json!(p.map(|p| &p.added_by));
            stage["added_at"] = json!(p.map(|p| &p.at));
        }
    }
    out["run"] = json!({
        "run_id": manifest.run_id,
        "task_id": manifest.task_id,
        "status": manifest.status.as_str(),
    });
    out["plan_patches"] = manifest
        .plan_patches
        .iter()
        .map(|p| json!({"added_by": p.added_by, "at": p.at, "stage_ids": p.stage_ids}))
        .collect();
}
