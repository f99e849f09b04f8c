//! Plan patches: stages a running stage adds to its own pipeline, written as JSON
//! (`{"stages": [...]}`, each in the config's stage format) to the file named by
//! `CODEX_ORCHESTRATOR_PLAN_PATCH_PATH`.
//!
//! A patch is validated by the config's own walk and cross-checks (`load::from_value`): the
//! pipeline as it stands, each of its stages reduced to its id (so new stages may depend on
//! any of them, and reusing an id is a duplicate), followed by the patch's stages. So a
//! patched stage is valid exactly when the same stage in a config would be, and the graph
//! checks (unknown ids, cycles, duplicates) are the config's. New stages only ever depend on
//! others; nothing that exists gains a dependency, so no edge can lead into a stage that
//! already ran.

use std::path::Path;

use serde_json::{json, Value};

use super::error::{ConfigError, Loc};
use super::json_get::invalid;
use super::model::{Pipeline, Stage};
use super::suggest::did_you_mean;

/// Default of `maxDynamicStages`: stages one patch, and all patches of a run together, may
/// add.
pub const DEFAULT_MAX_DYNAMIC_STAGES: usize = 1000;

/// Keys of a patch.
const PATCH_KEYS: &[&str] = &["stages"];

/// A validated patch.
#[derive(Debug, Clone)]
pub struct Patch {
    /// The stages it adds, validated, in its order.
    pub stages: Vec<Stage>,
    /// Their JSON as validated (a stage without `dependsOn` given the adding stage), which
    /// the record keeps so a resume can add them again.
    pub raw: Vec<Value>,
}

/// The pipeline a patch extends, as far as validating it needs: its id, its stages' ids in
/// order, how many of them patches added, and `maxDynamicStages`. The runner takes it from
/// its plan; `plan-patch`, inside a stage, from the run's record and environment.
#[derive(Debug, Clone)]
pub struct Standing {
    /// The pipeline's id.
    pub pipeline_id: String,
    /// Its stages' ids, in order.
    pub stage_ids: Vec<String>,
    /// Stages plan patches already added to the run.
    pub added_before: usize,
    /// Caps the stages of one patch and of all patches of the run (`maxDynamicStages`).
    pub max: usize,
}

impl Standing {
    /// `pipeline` as it stands, `added_before` of its stages added by patches, `max` the cap.
    pub fn of(pipeline: &Pipeline, added_before: usize, max: usize) -> Standing {
        Standing {
            pipeline_id: pipeline.id.clone(),
            stage_ids: pipeline.stages.iter().map(|s| s.id.clone()).collect(),
            added_before,
            max,
        }
    }
}

/// Validates patch `text` (from `file`, named in errors) written by stage `added_by` of the
/// pipeline `standing` describes.
pub fn parse(
    file: &Path,
    text: &str,
    standing: &Standing,
    added_by: &str,
) -> Result<Patch, ConfigError> {
    let stages = stages_of(file, text)?;
    from_stages(file, &stages, standing, added_by)
}

/// The stages of patch `text` (from `file`), its envelope checked (`{"stages": [...]}`) but
/// not the stages themselves (`from_stages` does that).
pub fn stages_of(file: &Path, text: &str) -> Result<Vec<Value>, ConfigError> {
    let invalid = |loc: Loc, message: String| invalid(file, &loc, message);
    let value = super::json::parse_file_text(file, text)?;
    let root = Loc::root();
    let Some(obj) = value.as_object() else {
        return Err(invalid(
            root,
            "expected an object `{\"stages\": [...]}`".into(),
        ));
    };
    for key in obj.keys() {
        if !PATCH_KEYS.contains(&key.as_str()) {
            let hint = did_you_mean(key, PATCH_KEYS)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            return Err(invalid(root.field(key), format!("unknown key{hint}")));
        }
    }
    match obj.get("stages") {
        Some(Value::Array(stages)) => Ok(stages.clone()),
        _ => Err(invalid(
            root.field("stages"),
            "missing or not an array (a patch adds `stages`)".into(),
        )),
    }
}

/// Validates patch stages already parsed (a resume replays the recorded ones this way;
/// `plan-patch` validates the stages of all its calls together).
pub fn from_stages(
    file: &Path,
    stages: &[Value],
    standing: &Standing,
    added_by: &str,
) -> Result<Patch, ConfigError> {
    let (added_before, max) = (standing.added_before, standing.max);
    let invalid = |loc: Loc, message: String| invalid(file, &loc, message);
    let root = Loc::root();
    if stages.len() > max {
        return Err(invalid(
            root.field("stages"),
            format!(
                "adds {} stages, over the {max} one patch may add (`maxDynamicStages`)",
                stages.len()
            ),
        ));
    }
    if added_before + stages.len() > max {
        return Err(invalid(
            root.field("stages"),
            format!(
                "adds {} stages to the {added_before} added before, over the {max} a run may add (`maxDynamicStages`)",
                stages.len()
            ),
        ));
    }
    let mut raw = Vec::with_capacity(stages.len());
    for (i, s) in stages.iter().enumerate() {
        let mut s = s.clone();
        if let Some(obj) = s.as_object_mut() {
            // Only command stages: a sub-pipeline or an approval added while the run goes on
            // would need the config's other pipelines and its approvers, which a patch does
            // not carry.
            match obj.get("kind").and_then(Value::as_str) {
                Some("command") => {}
                Some(other) => {
                    let id = obj.get("id").and_then(Value::as_str).unwrap_or("?");
                    return Err(invalid(
                        root.with("stage", id).field("kind"),
                        format!("a plan patch adds command stages only, not `{other}`"),
                    ));
                }
                None => {}
            }
            // A new stage without `dependsOn` waits for the stage that added it (in a config
            // it would wait for the stage before it, which here means nothing in particular).
            if obj.get("dependsOn").is_none_or(Value::is_null) {
                obj.insert("dependsOn".into(), json!([added_by]));
            }
        } else {
            return Err(invalid(
                root.with("stage", format!("#{}", i + 1)),
                "expected an object (a stage in the config's format)".into(),
            ));
        }
        raw.push(s);
    }
    // The pipeline as it stands, each stage reduced to its id, then the new stages.
    let mut all: Vec<Value> = standing
        .stage_ids
        .iter()
        .map(|id| json!({"kind": "command", "id": id, "command": "true", "dependsOn": []}))
        .collect();
    all.extend(raw.iter().cloned());
    let config = json!({"pipelines": [{"id": standing.pipeline_id, "stages": all}]});
    let loaded = super::load::from_value(file, &config, true)?;
    let Some(mut validated) = loaded.config.pipelines.into_iter().next() else {
        return Err(invalid(
            root,
            "the patch's pipeline vanished in validation".into(),
        ));
    };
    let stages = validated
        .stages
        .split_off(standing.stage_ids.len().min(validated.stages.len()));
    Ok(Patch { stages, raw })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline() -> Pipeline {
        let text = r#"{"pipelines":[{"id":"p","stages":[
            {"kind":"command","id":"plan","command":"true"},
            {"kind":"command","id":"other","command":"true"}]}]}"#;
        crate::config::parse(Path::new("c.json"), text, true)
            .expect("valid")
            .config
            .pipelines
            .remove(0)
    }

    fn patch(text: &str) -> Result<Patch, String> {
        parse(
            Path::new("patch.json"),
            text,
            &Standing::of(&pipeline(), 0, 5),
            "plan",
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_fan_in_patch_is_added_with_its_graph() {
        let p = patch(
            r#"{"stages":[
            {"kind":"command","id":"a","command":"true"},
            {"kind":"command","id":"b","command":"true"},
            {"kind":"command","id":"final","command":"true","dependsOn":["a","b","other"]}]}"#,
        )
        .expect("valid");
        let ids: Vec<&str> = p.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "final"]);
        assert_eq!(
            p.stages[0].depends_on.as_deref(),
            Some(&["plan".to_owned()][..])
        );
        assert_eq!(p.raw[0]["dependsOn"], json!(["plan"]));
    }

    #[test]
    fn bad_patches_are_refused_with_the_config_s_errors() {
        for (text, want) in [
            (r#"[]"#, "expected an object"),
            (r#"{"stagez":[]}"#, "unknown key (did you mean `stages`?)"),
            (
                r#"{"stages":[{"kind":"command","id":"plan","command":"true"}]}"#,
                "duplicate stage id",
            ),
            (
                r#"{"stages":[{"kind":"command","id":"a","command":"true","dependsOn":["ghost"]}]}"#,
                "depends on `ghost`",
            ),
            (
                r#"{"stages":[{"kind":"command","id":"a","command":"true","dependsOn":["b"]},{"kind":"command","id":"b","command":"true","dependsOn":["a"]}]}"#,
                "cycle: a -> b -> a",
            ),
            (
                r#"{"stages":[{"kind":"command","id":"a"}]}"#,
                "field `command`: missing",
            ),
            (
                r#"{"stages":[{"kind":"command","id":"a","command":"true","timeoutMs":"x"}]}"#,
                "field `timeoutMs`",
            ),
            (
                r#"{"stages":[{"kind":"subpipeline","id":"a","pipeline":"p"}]}"#,
                "command stages only",
            ),
            (
                r#"{"stages":[{"kind":"command","id":"a","command":"true","comand":"x"}]}"#,
                "did you mean `command`",
            ),
            (
                &format!(
                    r#"{{"stages":[{}]}}"#,
                    [r#"{"kind":"command","id":"x","command":"true"}"#; 6].join(",")
                ),
                "over the 5 one patch may add",
            ),
        ] {
            let got = patch(text).expect_err(text);
            assert!(got.contains(want), "{text}: {got}");
        }
        let total = parse(
            Path::new("patch.json"),
            r#"{"stages":[{"kind":"command","id":"a","command":"true"},{"kind":"command","id":"b","command":"true"}]}"#,
            &Standing::of(&pipeline(), 4, 5),
            "plan",
        )
        .expect_err("over the total");
        assert!(
            total.to_string().contains("to the 4 added before"),
            "{total}"
        );
    }
}
