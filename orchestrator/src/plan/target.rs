//! The plan target and the plan items, as the peer's planner computes them from each stage's
//! `plan` hints. The target is recorded as the manifest's `plan_target_id`, its hints decide
//! the execution mode, and `plan --format json` shows the items.
//!
//! Hints read from a stage's `plan` object: `aliases`, `defaultTarget` (or `default`,
//! `primary`), `requiresCloud` (or `requires_cloud`), `executionMode` (`cloud` means requires
//! cloud, `mcp` means not), `cloudEnvId` (or `cloud_env_id`), `runnable` (default true).

use serde_json::{json, Map, Value};

use crate::config::{Pipeline, Stage, StageKind};

/// The hints of one stage.
#[derive(Debug, Clone, Default, PartialEq)]
struct Hints {
    aliases: Vec<String>,
    default_target: bool,
    requires_cloud: bool,
    execution_mode: Option<String>,
    cloud_env_id: Option<String>,
    runnable: bool,
}

fn hints(stage: &Stage) -> Hints {
    let empty = Map::new();
    let plan = stage
        .plan
        .as_ref()
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let truthy = |v: Option<&Value>| match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    };
    let string = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| plan.get(*k).and_then(Value::as_str))
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let execution_mode = string(&["executionMode"]).map(str::to_lowercase);
    // An explicit boolean wins; else the execution mode decides (`cloud` / `mcp`).
    let requires_cloud = ["requiresCloud", "requires_cloud"]
        .iter()
        .find_map(|k| plan.get(*k).and_then(Value::as_bool))
        .unwrap_or(execution_mode.as_deref() == Some("cloud"));
    // The peer's `defaultTarget ?? default ?? primary`: the first one present decides.
    let default_target = ["defaultTarget", "default", "primary"]
        .iter()
        .find(|k| !matches!(plan.get(**k), None | Some(Value::Null)))
        .is_some_and(|k| truthy(plan.get(*k)));
    Hints {
        aliases: plan
            .get("aliases")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        default_target,
        requires_cloud,
        execution_mode,
        cloud_env_id: string(&["cloudEnvId", "cloud_env_id"]).map(str::to_owned),
        runnable: plan
            .get("runnable")
            .and_then(Value::as_bool)
            .unwrap_or(true),
    }
}

/// The stage an explicit target names: `<pipeline>:<stage>` exactly, else the part after the
/// last `:` as a stage id or alias, case-insensitively. `None` when nothing matches.
pub fn find(pipeline: &Pipeline, target: &str) -> Option<usize> {
    let exact = pipeline
        .stages
        .iter()
        .position(|s| format!("{}:{}", pipeline.id, s.id) == target);
    exact.or_else(|| {
        let name = target.rsplit(':').next().unwrap_or(target).to_lowercase();
        pipeline.stages.iter().position(|s| {
            s.id.to_lowercase() == name || hints(s).aliases.iter().any(|a| a.to_lowercase() == name)
        })
    })
}

/// The default target: the first stage marked `defaultTarget`, else the first runnable one,
/// else the first stage.
pub fn default(pipeline: &Pipeline) -> Option<usize> {
    let all: Vec<Hints> = pipeline.stages.iter().map(hints).collect();
    all.iter()
        .position(|h| h.default_target)
        .or_else(|| all.iter().position(|h| h.runnable))
        .or_else(|| (!all.is_empty()).then_some(0))
}

/// `<pipeline>:<stage>` of stage `index`.
pub fn target_id(pipeline: &Pipeline, index: usize) -> String {
    format!("{}:{}", pipeline.id, pipeline.stages[index].id)
}

/// The peer's `plan` object: `{items, notes, targetId}`, one item per stage.
pub fn plan_object(pipeline: &Pipeline, target: Option<usize>) -> Value {
    let items: Vec<Value> = pipeline
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let h = hints(s);
            let mut metadata = Map::new();
            metadata.insert("pipelineId".into(), json!(pipeline.id));
            metadata.insert("stageId".into(), json!(s.id));
            let kind = match s.kind {
                StageKind::Command(_) => "command",
                StageKind::Subpipeline { .. } => "subpipeline",
                StageKind::Approval(_) => "approval",
                StageKind::Loop(_) => "loop",
            };
            metadata.insert("stageKind".into(), json!(kind));
            metadata.insert("index".into(), json!(i));
            if !h.aliases.is_empty() {
                metadata.insert("aliases".into(), json!(h.aliases));
            }
            if h.default_target {
                metadata.insert("defaultTarget".into(), json!(true));
            }
            if let Some(m) = &h.execution_mode {
                metadata.insert("executionMode".into(), json!(m));
            }
            if let Some(c) = &h.cloud_env_id {
                metadata.insert("cloudEnvId".into(), json!(c));
            }
            metadata.insert("requiresCloud".into(), json!(h.requires_cloud));
            json!({
                "id": target_id(pipeline, i),
                "description": s.title,
                "requires_cloud": h.requires_cloud,
                "requiresCloud": h.requires_cloud,
                "runnable": h.runnable,
                "metadata": metadata,
                "selected": target == Some(i),
            })
        })
        .collect();
    let mut plan = Map::new();
    plan.insert("items".into(), Value::Array(items));
    // The peer leaves `notes` out when the pipeline has no description.
    if let Some(d) = &pipeline.description {
        plan.insert("notes".into(), json!(d));
    }
    plan.insert(
        "targetId".into(),
        json!(target.map(|i| target_id(pipeline, i))),
    );
    Value::Object(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(plans: &[Option<Value>]) -> Pipeline {
        let text = json!({"pipelines": [{"id": "p", "stages": plans.iter().enumerate().map(|(i, p)| {
            let mut s = json!({"kind": "command", "id": format!("s{i}"), "command": "true"});
            if let Some(p) = p { s["plan"] = p.clone(); }
            s
        }).collect::<Vec<_>>()}]});
        crate::config::parse(std::path::Path::new("c.json"), &text.to_string(), false)
            .expect("valid")
            .config
            .pipelines
            .remove(0)
    }

    #[test]
    fn default_target_then_first_runnable_then_first() {
        let p = pipeline(&[
            Some(json!({"runnable": false})),
            None,
            Some(json!({"primary": true})),
        ]);
        assert_eq!(default(&p), Some(2));
        let p = pipeline(&[Some(json!({"runnable": false})), None]);
        assert_eq!(default(&p), Some(1));
        let p = pipeline(&[Some(json!({"runnable": false}))]);
        assert_eq!(default(&p), Some(0));
    }

    #[test]
    fn explicit_targets_by_id_suffix_and_alias() {
        let p = pipeline(&[None, Some(json!({"aliases": ["Bee"]}))]);
        assert_eq!(find(&p, "p:s1"), Some(1));
        assert_eq!(find(&p, "S1"), Some(1));
        assert_eq!(find(&p, "other:bee"), Some(1));
        assert_eq!(find(&p, "nope"), None);
    }

    #[test]
    fn requires_cloud_from_a_boolean_or_the_mode() {
        let p = pipeline(&[
            Some(json!({"executionMode": "Cloud"})),
            Some(json!({"executionMode": "cloud", "requiresCloud": false})),
            Some(json!({"requires_cloud": true})),
        ]);
        let plan = plan_object(&p, Some(0));
        let rc: Vec<bool> = plan["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["requiresCloud"].as_bool().expect("bool"))
            .collect();
        assert_eq!(rc, [true, false, true]);
        assert_eq!(plan["items"][0]["metadata"]["executionMode"], "cloud");
        assert_eq!(plan["targetId"], "p:s0");
        assert!(plan.get("notes").is_none());
    }
}
