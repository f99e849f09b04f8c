//! What the plan says about loop stages and deliveries, and the check of delivery templates
//! (`${TASK}`, `${RUN_ID}`, `${PIPELINE}` and the runner variables) before anything runs.

use serde_json::{json, Value};

use crate::config::delivery::{expand, Delivery, TEMPLATE_NAMES};
use crate::config::error::Loc;
use crate::config::{Config, ConfigError, LoopStage, Pipeline, Stage};
use crate::errors::AppError;

/// Every template of `pipeline`'s deliveries expands with the names it may use.
pub(crate) fn check_delivery_templates(
    config: &Config,
    pipeline: &Pipeline,
    vars: &[(String, String)],
) -> Result<(), AppError> {
    let fixed: Vec<(&str, &str)> = TEMPLATE_NAMES.iter().map(|n| (*n, "x")).collect();
    for (i, d) in pipeline.delivery.iter().enumerate() {
        let mut templates: Vec<(&str, &str)> = Vec::new();
        if let Some(g) = d.git() {
            templates.push(("branch", &g.branch));
            templates.push(("message", &g.message));
        }
        if let Delivery::Github(g) = d {
            templates.extend(g.title.as_deref().map(|t| ("title", t)));
            templates.extend(g.body.as_deref().map(|t| ("body", t)));
        }
        for (field, text) in templates {
            if let Err(e) = expand(text, &fixed, vars) {
                return Err(AppError::Config(ConfigError::Invalid {
                    path: config.path.clone(),
                    location: Loc::root()
                        .with("pipeline", &pipeline.id)
                        .with("delivery", format!("#{}", i + 1))
                        .field(field)
                        .render(),
                    message: match e {
                        crate::config::vars::VarError::Undefined(name) => format!(
                            "undefined variable `${{{name}}}`: a delivery template may use `${{TASK}}`, `${{RUN_ID}}`, `${{PIPELINE}}` and the runner variables (`vars`, `--var`)"
                        ),
                        other => other.to_string(),
                    },
                }));
            }
        }
    }
    Ok(())
}

/// A loop stage in `plan --format json`.
pub(crate) fn loop_json(
    index: usize,
    s: &Stage,
    l: &LoopStage,
    vars: &[(String, String)],
) -> Value {
    let b = &l.build;
    json!({
        "index": index,
        "id": s.id,
        "title": s.title,
        "kind": "loop",
        "build": {
            "command": b.command,
            "cwd": b.cwd,
            "env": b.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
            "timeoutMs": b.timeout.map(crate::time::millis),
            "summaryHint": b.summary_hint,
            "variables": vars.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>(),
        },
        "verify": l.verify,
        "maxIterations": l.max_iterations,
        "maxWallClockMs": l.max_wall_clock.map(crate::time::millis),
        "stopWhenUnchanged": l.stop_when_unchanged,
    })
}

/// A pipeline's deliveries in `plan --format json`.
pub(crate) fn delivery_json(deliveries: &[Delivery]) -> Value {
    deliveries
        .iter()
        .map(|d| {
            let mut v = json!({ "kind": d.kind() });
            if let Some(g) = d.git() {
                v["remote"] = json!(g.remote);
                v["branch"] = json!(g.branch);
                v["message"] = json!(g.message);
            }
            if let Delivery::Github(g) = d {
                v["base"] = json!(g.base);
                v["title"] = json!(g.title);
                v["draft"] = json!(g.draft);
                v["waitForCi"] = json!(g.wait_for_ci);
                v["ciTimeoutMs"] = json!(crate::time::millis(g.ci_timeout));
            }
            v
        })
        .collect()
}
