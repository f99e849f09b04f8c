//! Cross-checks over a whole config: unique ids, references that exist, no cycles between
//! stages or between sub-pipelines. Runs after the per-field walk in `load`.

use std::collections::HashSet;

use super::error::list;
use super::error::{ConfigError, Loc};
use super::model::{Config, StageKind};
use super::suggest::did_you_mean;
use crate::graph::find_cycle;

pub(crate) fn check(config: &Config) -> Result<(), ConfigError> {
    let err = |loc: Loc, message: String| ConfigError::Invalid {
        path: config.path.clone(),
        location: loc.render(),
        message,
    };
    let ids = config.pipeline_ids();
    let mut seen = HashSet::new();
    for p in &config.pipelines {
        if !seen.insert(p.id.as_str()) {
            return Err(err(
                Loc::root().with("pipeline", &p.id).field("id"),
                "duplicate pipeline id".into(),
            ));
        }
    }
    if let Some(d) = &config.default_pipeline {
        if config.pipeline(d).is_none() {
            return Err(err(
                Loc::root().field("defaultPipeline"),
                format!("unknown pipeline `{d}` (known: {})", list(&ids)),
            ));
        }
    }
    for p in &config.pipelines {
        let ploc = Loc::root().with("pipeline", &p.id);
        let mut stage_ids = HashSet::new();
        for s in &p.stages {
            if !stage_ids.insert(s.id.as_str()) {
                return Err(err(
                    ploc.with("stage", &s.id).field("id"),
                    "duplicate stage id (ids must be unique in a pipeline, stage sets included)"
                        .into(),
                ));
            }
            if let StageKind::Subpipeline { pipeline, .. } = &s.kind {
                if config.pipeline(pipeline).is_none() {
                    let hint = did_you_mean(pipeline, &ids)
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    return Err(err(
                        ploc.with("stage", &s.id).field("pipeline"),
                        format!(
                            "unknown pipeline `{pipeline}` (known: {}){hint}",
                            list(&ids)
                        ),
                    ));
                }
            }
        }
        p.graph().map_err(|e| {
            err(
                ploc.with("stage", e.stage()).field("dependsOn"),
                e.to_string(),
            )
        })?;
    }
    // Sub-pipelines: pipeline -> pipelines it runs; a cycle would recurse forever.
    let edges: Vec<Vec<usize>> = config
        .pipelines
        .iter()
        .map(|p| {
            p.stages
                .iter()
                .filter_map(|s| match &s.kind {
                    StageKind::Subpipeline { pipeline, .. } => {
                        ids.iter().position(|i| i == pipeline)
                    }
                    StageKind::Command(_) => None,
                })
                .collect()
        })
        .collect();
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<&str> = cycle.iter().map(|&i| ids[i]).collect();
        let first = &config.pipelines[cycle[0]];
        let via = first
            .stages
            .iter()
            .find(|s| matches!(&s.kind, StageKind::Subpipeline { pipeline, .. } if pipeline == names[1]))
            .map(|s| s.id.as_str())
            .unwrap_or("?");
        return Err(err(
            Loc::root()
                .with("pipeline", names[0])
                .with("stage", via)
                .field("pipeline"),
            format!("sub-pipelines form a cycle: {}", names.join(" -> ")),
        ));
    }
    Ok(())
}
