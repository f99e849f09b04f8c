//! Replaying a run's recorded plan patches (`plan_patches` of its manifest) onto the plan
//! built from its config: what a `resume` of a run that grew starts from, and what a parent's
//! resume does to its child run before taking it over. Each patch is validated again (the
//! config's checks, `config::plan_patch`) against the plan as the earlier patches left it;
//! the stages that wrote them are never asked again (`Plan::patched_by`). `Plan::of_run` adds
//! the stage selection the run recorded: what `resume` runs and `plan --run` shows.

use shared_manifest::schema::{Manifest, PlanPatchRecord, SelectionRecord};

use crate::config::plan_patch::{self, Standing};
use crate::config::ConfigError;

use super::patch_record::{PatchFiles, ReplayCause};
use super::{Plan, Selection};

/// A recorded patch that cannot be replayed.
#[derive(Debug, thiserror::Error)]
#[error("the plan patch recorded from stage `{added_by}` {error}")]
pub struct ReplayError {
    /// The stage that wrote it.
    pub added_by: String,
    /// Why (in the message: the caller words it into its own error).
    pub error: ReplayCause,
}

impl Plan {
    /// This plan with `patches` (a run's record, in order) applied. With `files` (a resume,
    /// which runs them) a patch recorded masked is read from its file (`patch_record`);
    /// without (a display), its recorded stages show masked.
    pub fn replayed(
        &self,
        patches: &[PlanPatchRecord],
        files: Option<&PatchFiles>,
    ) -> Result<Plan, ReplayError> {
        let mut plan = self.clone();
        for (k, patch) in patches.iter().enumerate() {
            let source = std::path::PathBuf::from(format!("plan_patches[{k}]"));
            let fail = |error: ConfigError| ReplayError {
                added_by: patch.added_by.clone(),
                error: ReplayCause::Invalid(error),
            };
            let standing = Standing::of(&plan.pipeline, plan.dynamic, plan.max_dynamic_stages());
            let stages = match files {
                Some(files) if patch.masked => {
                    let index = plan
                        .pipeline
                        .stages
                        .iter()
                        .position(|s| s.id == patch.added_by)
                        .map_or(0, |i| i + 1);
                    files
                        .real_stages(patch, index, &standing)
                        .map_err(|error| ReplayError {
                            added_by: patch.added_by.clone(),
                            error,
                        })?
                }
                _ => patch.stages.clone(),
            };
            let validated = plan_patch::from_stages(&source, &stages, &standing, &patch.added_by)
                .map_err(fail)?;
            plan = plan
                .extended(&patch.added_by, &validated.stages)
                .map_err(|e| {
                    fail(ConfigError::Invalid {
                        path: source.clone(),
                        location: "stages".into(),
                        message: e.to_string(),
                    })
                })?;
        }
        Ok(plan)
    }

    /// The plan of the recorded run `manifest`: this plan (its pipeline built from the
    /// config) with the run's patches replayed and the stage selection it recorded. That
    /// selection names the config's stages only: a stage a patch added runs, as it did while
    /// the run went on (a selection never leaves out what a patch adds).
    /// `files`: as [`Plan::replayed`].
    pub fn of_run(
        &self,
        manifest: &Manifest,
        files: Option<&PatchFiles>,
    ) -> Result<Plan, ReplayError> {
        self.with_record(manifest.selection.as_ref(), &manifest.plan_patches, files)
    }

    /// [`Plan::of_run`] from the two parts of the record it reads.
    fn with_record(
        &self,
        selection: Option<&SelectionRecord>,
        patches: &[PlanPatchRecord],
        files: Option<&PatchFiles>,
    ) -> Result<Plan, ReplayError> {
        let mut grown = self.replayed(patches, files)?;
        grown.selection = selection.map(|record| Selection::from_record(&self.pipeline, record));
        Ok(grown)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    fn plan() -> Plan {
        let text = r#"{"pipelines":[{"id":"p","stages":[
            {"kind":"command","id":"plan","command":"true"},
            {"kind":"command","id":"after","command":"true","dependsOn":["plan"]}]}]}"#;
        let config = crate::config::parse(Path::new("c.json"), text, true)
            .expect("valid")
            .config;
        crate::plan::build(&config, &config.pipelines[0], &[], None).expect("plan")
    }

    fn record(added_by: &str, stages: serde_json::Value) -> PlanPatchRecord {
        let stages: Vec<serde_json::Value> = stages.as_array().expect("array").clone();
        PlanPatchRecord {
            added_by: added_by.into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            stage_ids: stages
                .iter()
                .map(|s| s["id"].as_str().expect("id").to_owned())
                .collect(),
            stages,
            masked: false,
        }
    }

    #[test]
    fn the_recorded_selection_leaves_added_stages_in() {
        let selection = SelectionRecord {
            only: Vec::new(),
            no_deps: false,
            skip: vec!["after".into()],
            from: None,
            selected: vec!["plan".into()],
        };
        let patches = [record(
            "plan",
            json!([{"kind":"command","id":"a","command":"true"}]),
        )];
        let grown = plan()
            .with_record(Some(&selection), &patches, None)
            .expect("applies");
        let ids: Vec<&str> = grown
            .pipeline
            .stages
            .iter()
            .map(|s| s.id.as_str())
            .collect();
        assert_eq!(ids, ["plan", "after", "a"]);
        let runs: Vec<bool> = (0..3).map(|i| grown.runs(i)).collect();
        assert_eq!(
            runs,
            [true, false, true],
            "plan, after (skipped), a (added)"
        );
        assert!(plan()
            .with_record(None, &patches, None)
            .expect("applies")
            .selection
            .is_none());
    }
}
