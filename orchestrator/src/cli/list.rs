//! `list [--format json]`: the config's pipelines, their titles and stages, so nobody has to
//! open the JSON to find what can be started.

use serde_json::json;

use crate::cli::{Format, ListArgs};
use crate::config::{Config, StageKind};
use crate::errors::AppError;
use crate::exit;
use crate::record::layout::Roots;

/// Runs `list`; returns the exit code.
pub fn list(args: ListArgs) -> Result<i32, AppError> {
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let config = super::setup::load_config(&roots, false, None)?.config;
    match args.format {
        Format::Json => crate::report::output::json(&to_json(&config, &roots)),
        Format::Text => crate::report::output::line(to_text(&config).trim_end()),
    }
    Ok(exit::OK)
}

/// What a stage does, in one word and its detail.
fn kind(kind: &StageKind) -> (&'static str, String) {
    match kind {
        StageKind::Command(c) => (
            "command",
            c.shell_text().lines().next().unwrap_or_default().to_owned(),
        ),
        StageKind::Subpipeline { pipeline, .. } => ("subpipeline", pipeline.clone()),
        StageKind::Approval(a) => ("approval", a.prompt.clone()),
        StageKind::Loop(l) => (
            "loop",
            format!(
                "build `{}`, verify {}",
                l.build.command.lines().next().unwrap_or_default(),
                l.verify
            ),
        ),
    }
}

fn to_json(config: &Config, roots: &Roots) -> serde_json::Value {
    let pipelines: Vec<_> = config
        .pipelines
        .iter()
        .map(|p| {
            let stages: Vec<_> = p
                .stages
                .iter()
                .map(|s| {
                    let (k, detail) = kind(&s.kind);
                    let mut v = json!({"id": s.id, "title": s.title, "kind": k});
                    let key = match k {
                        "command" => "command",
                        "approval" => "prompt",
                        _ => "pipeline",
                    };
                    v[key] = json!(detail);
                    v
                })
                .collect();
            json!({
                "id": p.id,
                "title": p.title,
                "description": p.description,
                "default": config.default_pipeline.as_deref() == Some(p.id.as_str()),
                "stages": stages,
            })
        })
        .collect();
    json!({
        "config": roots.rel(&config.path),
        "default_pipeline": config.default_pipeline,
        "pipelines": pipelines,
    })
}

fn to_text(config: &Config) -> String {
    let mut out = String::new();
    for p in &config.pipelines {
        let default = if config.default_pipeline.as_deref() == Some(p.id.as_str()) {
            " (default)"
        } else {
            ""
        };
        out.push_str(&format!("{} — {}{default}\n", p.id, p.title));
        for (i, s) in p.stages.iter().enumerate() {
            let (k, detail) = kind(&s.kind);
            let what = match k {
                "command" => detail,
                "approval" => format!("waits for approval: {detail}"),
                _ => format!("runs pipeline `{detail}`"),
            };
            out.push_str(&format!("  [{:02}] {} — {what}\n", i + 1, s.id));
        }
    }
    out
}
