//! Replaying a run's recorded plan patches (`plan_patches` of its manifest) onto the plan
//! built from its config: what a `resume` of a run that grew starts from, and what a parent's
//! resume does to its child run before taking it over. Each patch is validated again (the
//! config's checks, `config::plan_patch`) against the plan as the earlier patches left it;
//! the stages that wrote them are never asked again (`Plan::patched_by`).

use shared_manifest::schema::PlanPatchRecord;

use crate::config::plan_patch::{self, Standing};
use crate::config::ConfigError;

use super::Plan;

/// A recorded patch that no longer applies to the plan.
#[derive(Debug, thiserror::Error)]
#[error("the plan patch recorded from stage `{added_by}` no longer applies: {error}")]
pub struct ReplayError {
    /// The stage that wrote it.
    pub added_by: String,
    /// Why it does not apply (in the message: the caller words it into its own error).
    pub error: ConfigError,
}

impl Plan {
    /// This plan with `patches` (a run's record, in order) applied.
    pub fn replayed(&self, patches: &[PlanPatchRecord]) -> Result<Plan, ReplayError> {
        let mut plan = self.clone();
        for (k, patch) in patches.iter().enumerate() {
            let source = std::path::PathBuf::from(format!("plan_patches[{k}]"));
            let fail = |error: ConfigError| ReplayError {
                added_by: patch.added_by.clone(),
                error,
            };
            let standing = Standing::of(&plan.pipeline, plan.dynamic, plan.max_dynamic_stages());
            let validated =
                plan_patch::from_stages(&source, &patch.stages, &standing, &patch.added_by)
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
}
