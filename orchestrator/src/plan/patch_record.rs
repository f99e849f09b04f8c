//! What a plan patch's record keeps of its stages, and where a replay reads them back.
//!
//! The record (`plan_patches[].stages`) is written with the run's secret values masked
//! (`***`), as every other record is: a stage's shell expands `$TOKEN` into the patch it
//! writes, and the record must not keep the value. A record that masking changed is marked
//! `masked`; replaying it would run `***`, so a resume reads that patch's stages from the file
//! the stage wrote (`commands/NN-<slug>.patch.json`, left in place after it was applied), and
//! uses them only when masking them gives exactly the recorded stages. Otherwise (the file is
//! gone or changed, or the secret's value is not the one the run had) it refuses: a masked
//! command is never run. A record without a mask replays from the record, file or not.

use std::path::PathBuf;

use serde_json::Value;
use shared_manifest::schema::PlanPatchRecord;

use crate::config::plan_patch::{self, Standing};

use crate::config::ConfigError;

/// `stages` with every string in them masked by `secrets`; whether anything was masked.
pub fn masked(stages: &[Value], secrets: Option<&exec::Secrets>) -> (Vec<Value>, bool) {
    let Some(secrets) = secrets else {
        return (stages.to_vec(), false);
    };
    let mut any = false;
    let out = stages
        .iter()
        .map(|s| mask_value(s, secrets, &mut any))
        .collect();
    (out, any)
}

fn mask_value(v: &Value, secrets: &exec::Secrets, any: &mut bool) -> Value {
    match v {
        Value::String(text) => {
            let (shown, count) = secrets.redact_str(text);
            *any |= count > 0;
            Value::String(shown)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|i| mask_value(i, secrets, any)).collect())
        }
        Value::Object(obj) => Value::Object(
            obj.iter()
                .map(|(k, i)| (k.clone(), mask_value(i, secrets, any)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Where a resume finds the patch files of the run it replays, and the secret values the
/// record was masked with.
pub struct PatchFiles<'a> {
    /// The patch file of stage `index` (1-based) `id`: its path, and the path as errors show it.
    pub path_of: &'a (dyn Fn(usize, &str) -> (PathBuf, String) + Sync),
    /// The run's secret values, as the runner masks them.
    pub secrets: Option<&'a exec::Secrets>,
}

impl PatchFiles<'_> {
    /// The real stages of the masked `record`, written by stage `index`, from its file:
    /// validated against `standing` and, masked, equal to the recorded stages.
    pub(super) fn real_stages(
        &self,
        record: &PlanPatchRecord,
        index: usize,
        standing: &Standing,
    ) -> Result<Vec<Value>, ReplayCause> {
        let (path, shown) = (self.path_of)(index, &record.added_by);
        let refuse = |why: String| ReplayCause::Unreplayable {
            file: shown.clone(),
            why,
        };
        let text =
            match crate::files::read_regular_text(&path, crate::config::load::MAX_CONFIG_BYTES) {
                Ok(text) => text,
                Err(e) if e.is_not_found() => return Err(refuse("is missing".into())),
                Err(e) => return Err(refuse(format!("cannot be read ({e})"))),
            };
        let patch = plan_patch::parse(&path, &text, standing, &record.added_by)
            .map_err(|e| refuse(format!("is no longer a valid patch ({e})")))?;
        if masked(&patch.raw, self.secrets).0 != record.stages {
            return Err(refuse(
                "differs from the record (changed, or the secret values are not the run's)".into(),
            ));
        }
        Ok(patch.raw)
    }
}

/// Why a recorded patch cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayCause {
    /// It no longer applies to the plan.
    #[error("no longer applies: {0}")]
    Invalid(ConfigError),
    /// Its record is masked and its file cannot stand in for it (`patch_record`).
    #[error("has secret values masked (`***`) in the record, and its file `{file}` {why}: a masked command is never replayed")]
    Unreplayable {
        /// The patch file, as shown.
        file: String,
        /// What is wrong with it.
        why: String,
    },
}
