//! Cross-checks over a whole config: values a process cannot take (NUL bytes, environment keys
//! with `=`, strings over the kernel's limit for one argument, control characters in ids),
//! unique ids, references that exist, no cycles between stages or between sub-pipelines.
//! Runs after the per-field walk in `load`, so every such input is refused before anything
//! runs instead of failing a stage after earlier ones ran.

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
    check_values(config)?;
    let ids = config.pipeline_ids();
    // Positions by id: the checks below look up every sub-pipeline reference.
    let position: std::collections::HashMap<&str, usize> =
        ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
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
        if !position.contains_key(d.as_str()) {
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
            if let Some(pipeline) = s.kind.child_pipeline() {
                if !position.contains_key(pipeline) {
                    let hint = did_you_mean(pipeline, &ids)
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    return Err(err(
                        ploc.with("stage", &s.id).field(child_field(&s.kind)),
                        format!(
                            "unknown pipeline `{pipeline}` (known: {}){hint}",
                            list(&ids)
                        ),
                    ));
                }
            }
        }
        p.graph().map_err(|e| {
            let hint = match &e {
                crate::graph::GraphError::Unknown { missing, stage } => {
                    let ids: Vec<&str> = p
                        .stages
                        .iter()
                        .map(|s| s.id.as_str())
                        .filter(|id| id != stage)
                        .collect();
                    did_you_mean(missing, &ids)
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default()
                }
                _ => String::new(),
            };
            err(
                ploc.with("stage", e.stage()).field("dependsOn"),
                format!("{e}{hint}"),
            )
        })?;
    }
    // Sub-pipelines and loops' verify pipelines: pipeline -> pipelines it runs as child
    // runs; a cycle would recurse forever (a loop whose verify pipeline contains the loop).
    let edges: Vec<Vec<usize>> = config
        .pipelines
        .iter()
        .map(|p| {
            p.stages
                .iter()
                .filter_map(|s| {
                    let child = s.kind.child_pipeline()?;
                    position.get(child).copied()
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
            .find(|s| s.kind.child_pipeline() == Some(names[1]));
        let what = if via.is_some_and(|s| matches!(s.kind, StageKind::Loop(_))) {
            "a loop's verify pipeline runs the loop again"
        } else {
            "sub-pipelines form a cycle"
        };
        return Err(err(
            Loc::root()
                .with("pipeline", names[0])
                .with("stage", via.map_or("?", |s| s.id.as_str()))
                .field(via.map_or("pipeline", |s| child_field(&s.kind))),
            format!("{what}: {}", names.join(" -> ")),
        ));
    }
    Ok(())
}

/// The longest single argument or environment string the kernel takes (Linux
/// `MAX_ARG_STRLEN`, 32 pages, including the terminating NUL): longer ones fail the spawn
/// with "Argument list too long".
pub(super) const MAX_ARG_BYTES: usize = 32 * 4096 - 1;

/// Values that would make the stage's spawn fail, or the record and the terminal unreadable.
fn check_values(config: &Config) -> Result<(), ConfigError> {
    let err = |loc: Loc, message: &str| ConfigError::Invalid {
        path: config.path.clone(),
        location: loc.render(),
        message: message.to_owned(),
    };
    const NUL: &str = "contains a NUL byte, which no command, path or environment can hold";
    for p in &config.pipelines {
        // Ids with control characters are shown escaped, never sent to the terminal raw.
        if p.id.chars().any(char::is_control) {
            return Err(err(
                Loc::root()
                    .with("pipeline", p.id.escape_debug())
                    .field("id"),
                "contains control characters",
            ));
        }
        let ploc = Loc::root().with("pipeline", &p.id);
        for (name, value) in &p.vars {
            if value.contains('\0') {
                return Err(err(ploc.field(&format!("vars.{name}")), NUL));
            }
        }
        for s in &p.stages {
            if s.id.chars().any(char::is_control) {
                return Err(err(
                    ploc.with("stage", s.id.escape_debug()).field("id"),
                    "contains control characters",
                ));
            }
            // A loop's build is a command stage's body: the same limits, its fields under
            // `build.`.
            let (c, pre) = match &s.kind {
                StageKind::Command(c) => (c, ""),
                StageKind::Loop(l) => (&l.build, "build."),
                StageKind::Subpipeline { .. } | StageKind::Approval(_) => continue,
            };
            let sloc = ploc.with("stage", &s.id);
            let field = |name: &str| sloc.field(&format!("{pre}{name}"));
            if c.command.contains('\0') {
                return Err(err(field("command"), NUL));
            }
            if c.command.len() > MAX_ARG_BYTES {
                return Err(err(
                    field("command"),
                    &format!(
                        "is {} bytes, over the {MAX_ARG_BYTES} a process takes in one argument (put it in a script)",
                        c.command.len()
                    ),
                ));
            }
            for (i, a) in c.args.iter().flatten().enumerate() {
                if a.contains('\0') {
                    return Err(err(sloc.field(&format!("args[{i}]")), NUL));
                }
                if a.len() > MAX_ARG_BYTES {
                    return Err(err(
                        sloc.field(&format!("args[{i}]")),
                        &format!(
                            "is {} bytes, over the {MAX_ARG_BYTES} a process takes in one argument",
                            a.len()
                        ),
                    ));
                }
            }
            if c.cwd.as_deref().is_some_and(|d| d.contains('\0')) {
                return Err(err(field("cwd"), NUL));
            }
            for (k, v) in &c.env {
                let floc = field(&format!("env.{}", k.escape_debug()));
                if k.is_empty() {
                    return Err(err(floc, "an environment variable needs a name"));
                }
                if k.contains('=') {
                    return Err(err(
                        floc,
                        "`=` cannot be part of an environment variable's name",
                    ));
                }
                if k.contains('\0') || v.contains('\0') {
                    return Err(err(floc, NUL));
                }
                if k.len() + 1 + v.len() > MAX_ARG_BYTES {
                    return Err(err(
                        floc,
                        &format!(
                            "is over the {MAX_ARG_BYTES} bytes a process takes in one environment variable"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The field that names a stage's child pipeline.
fn child_field(kind: &StageKind) -> &'static str {
    match kind {
        StageKind::Loop(_) => "verify",
        _ => "pipeline",
    }
}
