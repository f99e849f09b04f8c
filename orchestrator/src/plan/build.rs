//! Turning a validated pipeline into a `Plan`: the stage graph, the concurrency cap and the
//! runner variables, with every `${NAME}` of a `cwd` checked before anything runs (commands
//! are the shell's: the runner never reads or rewrites them).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::error::Loc;
use crate::config::vars;
use crate::config::{CommandStage, Config, ConfigError, ExecutorConfig, Pipeline, StageKind};
use crate::errors::AppError;
use crate::graph::StageGraph;

use super::selection::Selection;

/// A pipeline ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The pipeline.
    pub pipeline: Pipeline,
    /// Who waits for whom.
    pub graph: StageGraph,
    /// Cap on parallel stages.
    pub concurrency: usize,
    /// Where the concurrency came from (`flag`, `pipeline`, `default`).
    pub concurrency_source: &'static str,
    /// Runner variables exported to every stage: the pipeline's `vars`, each overridden by a
    /// `--var` of the same name, then the other `--var`s, in the order given.
    pub vars: Vec<(String, String)>,
    /// The plan target (position of a stage): `--target`, else the default (see `target`).
    pub target: Option<usize>,
    /// Stages added by plan patches while the run went on (the last ones of the pipeline).
    pub dynamic: usize,
    /// Stages whose plan patch was applied: a stage's patch is applied once (a stage run
    /// again by a resume is never asked again).
    pub patched_by: Vec<String>,
    /// The stages `--only`/`--skip`/`--from` selected; `None`: every stage runs.
    pub selection: Option<Selection>,
}

/// Parses `--var NAME=VALUE` arguments.
pub fn parse_cli_vars(raw: &[String]) -> Result<Vec<(String, String)>, AppError> {
    raw.iter()
        .map(|v| {
            let (name, value) = v
                .split_once('=')
                .ok_or_else(|| AppError::Usage(format!("--var `{v}`: expected NAME=VALUE")))?;
            if !vars::is_name(name) {
                return Err(AppError::Usage(format!(
                    "--var `{v}`: `{name}` is not a valid variable name (letters, digits and `_`, not starting with a digit)"
                )));
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Picks the pipeline: the argument, else `defaultPipeline`, else `diagnostics`.
pub fn select<'c>(config: &'c Config, arg: Option<&str>) -> Result<&'c Pipeline, AppError> {
    let id = arg
        .or(config.default_pipeline.as_deref())
        .unwrap_or("diagnostics");
    config.pipeline(id).ok_or_else(|| {
        let ids = config.pipeline_ids();
        AppError::Usage(format!(
            "`{}`: unknown pipeline `{id}` (known: {})",
            config.path.display(),
            crate::config::error::list(&ids)
        ))
    })
}

/// Builds the plan of `pipeline` and checks it and every sub-pipeline it runs (the variables
/// of every `cwd`, what each stage's process will be handed), so nothing fails later.
pub fn build(
    config: &Config,
    pipeline: &Pipeline,
    cli_vars: &[(String, String)],
    concurrency_flag: Option<u32>,
) -> Result<Plan, AppError> {
    let reachable = config.reachable(pipeline);
    check_cwd_vars(config, &reachable, cli_vars)?;
    check_ray_address(&reachable)?;
    super::limits::check_spawn_sizes(config, &reachable, cli_vars)?;
    build_one(config, pipeline, cli_vars, concurrency_flag)
}

/// The plan of a sub-pipeline's child run: [`build`] without the checks, which the top-level
/// plan already made for every pipeline it runs (checking again at each level would cost a
/// chain of N sub-pipelines N^2).
pub fn build_one(
    config: &Config,
    pipeline: &Pipeline,
    cli_vars: &[(String, String)],
    concurrency_flag: Option<u32>,
) -> Result<Plan, AppError> {
    let vars = runner_vars(pipeline, cli_vars);
    super::work::check_delivery_templates(config, pipeline, &vars)?;
    let graph = pipeline.graph().map_err(|e| {
        AppError::Config(ConfigError::Invalid {
            path: config.path.clone(),
            location: Loc::root()
                .with("pipeline", &pipeline.id)
                .with("stage", e.stage())
                .field("dependsOn")
                .render(),
            message: e.to_string(),
        })
    })?;
    let (concurrency, concurrency_source) = match (concurrency_flag, pipeline.concurrency) {
        (Some(n), _) => (n as usize, "flag"),
        (None, Some(n)) => (n, "pipeline"),
        // Configs written for the peer keep its strictly sequential behaviour; a pipeline that
        // opts into `dependsOn` gets one stage per core.
        (None, None) if pipeline.uses_graph() => (
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            "default",
        ),
        (None, None) => (1, "default"),
    };
    Ok(Plan {
        pipeline: pipeline.clone(),
        graph,
        concurrency,
        concurrency_source,
        vars,
        target: super::target::default(pipeline),
        dynamic: 0,
        patched_by: Vec::new(),
        selection: None,
    })
}

/// The pipeline's `vars` with `--var` values laid over them (a `--var` wins over the pipeline
/// value of the same name, and one given twice keeps its last value).
pub fn runner_vars(pipeline: &Pipeline, cli: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pipeline.vars.clone();
    for (name, value) in cli {
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.clone(),
            None => out.push((name.clone(), value.clone())),
        }
    }
    out
}

/// Checks every `${NAME}` of every `cwd` in `reachable` (a pipeline and the sub-pipelines it
/// runs): a name must be a runner variable, a key of the stage's `env`, one the runner sets for
/// every stage, or in the environment. Commands and `env` values are not read (the shell's, and
/// literal).
fn check_cwd_vars(
    config: &Config,
    reachable: &[&Pipeline],
    cli: &[(String, String)],
) -> Result<(), AppError> {
    for p in reachable {
        let vars = runner_vars(p, cli);
        for s in &p.stages {
            let (c, extra): (&CommandStage, &[&str]) = match &s.kind {
                StageKind::Command(c) => (c, &[]),
                StageKind::Loop(l) => (&l.build, crate::env_vars::LOOP_BUILD_VARIABLES),
                StageKind::Subpipeline { .. } | StageKind::Approval(_) => continue,
            };
            let Some(cwd) = &c.cwd else { continue };
            let look = |name: &str| {
                let defined = vars.iter().chain(&c.env).any(|(n, _)| n == name)
                    || crate::env_vars::STAGE_VARIABLES.contains(&name)
                    || extra.contains(&name)
                    || std::env::var_os(name).is_some();
                defined.then(String::new)
            };
            if let Err(e) = vars::expand_cwd(cwd, look) {
                let field = if matches!(s.kind, StageKind::Loop(_)) {
                    "build.cwd"
                } else {
                    "cwd"
                };
                return Err(AppError::Config(ConfigError::Invalid {
                    path: config.path.clone(),
                    location: Loc::root()
                        .with("pipeline", &p.id)
                        .with("stage", &s.id)
                        .field(field)
                        .render(),
                    message: e.to_string(),
                }));
            }
        }
    }
    Ok(())
}

impl Plan {
    /// This plan with the stages of a validated plan patch by `added_by` appended (their
    /// graph was checked with the pipeline as it stands, see `config::plan_patch`).
    pub fn extended(
        &self,
        added_by: &str,
        stages: &[crate::config::Stage],
    ) -> Result<Plan, crate::graph::GraphError> {
        let mut next = self.clone();
        next.pipeline.stages.extend(stages.iter().cloned());
        next.graph = next.pipeline.graph()?;
        next.dynamic += stages.len();
        next.patched_by.push(added_by.to_owned());
        Ok(next)
    }

    /// The most stages plan patches may add to a run of this plan (`maxDynamicStages`).
    pub fn max_dynamic_stages(&self) -> usize {
        self.pipeline
            .max_dynamic_stages
            .unwrap_or(crate::config::plan_patch::DEFAULT_MAX_DYNAMIC_STAGES)
    }

    /// Makes the stage `target` names the plan target (`--target`); a name that matches no
    /// stage is a usage error (the peer silently keeps the default, which hides typos).
    pub fn retarget(&mut self, target: &str) -> Result<(), AppError> {
        self.target = Some(super::target::find(&self.pipeline, target).ok_or_else(|| {
            let ids: Vec<&str> = self.pipeline.stages.iter().map(|s| s.id.as_str()).collect();
            AppError::Usage(format!(
                "--target `{target}`: pipeline `{}` has no such stage or alias (stages: {})",
                self.pipeline.id,
                crate::config::error::list(&ids)
            ))
        })?);
        Ok(())
    }

    /// Applies a stage selection (see `selection.rs`); an unknown stage id or a selection
    /// that leaves nothing to run is a usage error.
    pub fn select(&mut self, request: &super::selection::Request) -> Result<(), AppError> {
        self.selection = Selection::decide(&self.pipeline, &self.graph, request)?;
        Ok(())
    }

    /// True when the stage at `pos` runs (it is selected, or there is no selection).
    pub fn runs(&self, pos: usize) -> bool {
        self.selection.as_ref().is_none_or(|s| s.runs(pos))
    }

    /// `<pipeline>:<stage>` of the plan target (the manifest's `plan_target_id`).
    pub fn target_id(&self) -> Option<String> {
        self.target
            .map(|i| super::target::target_id(&self.pipeline, i))
    }

    /// The plan target's stage.
    pub fn target_stage(&self) -> Option<&crate::config::Stage> {
        self.target.map(|i| &self.pipeline.stages[i])
    }

    /// The `plan --format json` object: the peer's keys (`pipeline`, `stages`, `plan`,
    /// `targetId`) in its order, then ours (the graph, and per stage its position in it).
    pub fn to_json(&self, config: &Config) -> Value {
        let p = &self.pipeline;
        let stages: Vec<Value> = p
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let deps: Vec<&str> = self.graph.deps[i].iter().map(|&j| p.stages[j].id.as_str()).collect();
                let mut v = match &s.kind {
                    StageKind::Command(c) => json!({
                        "index": i + 1,
                        "id": s.id,
                        "title": s.title,
                        "kind": "command",
                        "command": c.shell_text(),
                        "cwd": c.cwd,
                        // The peer writes `null` for a stage without `env`.
                        "env": (!c.env.is_empty()).then(|| c.env.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<serde_json::Map<_, _>>()),
                        "allowFailure": c.allow_failure,
                        "summaryHint": c.summary_hint,
                        "timeoutMs": c.timeout.map(crate::time::millis),
                    }),
                    StageKind::Subpipeline { pipeline, optional } => json!({
                        "index": i + 1,
                        "id": s.id,
                        "title": s.title,
                        "kind": "subpipeline",
                        "pipeline": pipeline,
                        "optional": optional,
                    }),
                    StageKind::Approval(a) => json!({
                        "index": i + 1,
                        "id": s.id,
                        "title": s.title,
                        "kind": "approval",
                        "prompt": a.prompt,
                        "approvers": a.approvers,
                        "timeoutMs": a.timeout.map(crate::time::millis),
                        "onTimeout": a.on_timeout.as_str(),
                    }),
                    StageKind::Loop(l) => super::work::loop_json(i + 1, s, l, &self.stage_vars(&l.build)),
                };
                let obj = v.as_object_mut().expect("built as an object");
                obj.insert("dependsOn".into(), json!(deps));
                obj.insert("level".into(), json!(self.graph.levels[i]));
                obj.insert("onFailure".into(), json!(s.on_failure.as_str()));
                obj.insert("retries".into(), json!(s.retries.count));
                if let Some(sel) = &self.selection {
                    obj.insert("runs".into(), json!(sel.runs(i)));
                }
                if let StageKind::Command(c) = &s.kind {
                    let vars: serde_json::Map<String, Value> = self
                        .stage_vars(c)
                        .into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    obj.insert("variables".into(), Value::Object(vars));
                    // Argv mode: the program and its arguments as they are handed over.
                    if let Some(args) = &c.args {
                        obj.insert("argv".into(), json!(std::iter::once(&c.command).chain(args).collect::<Vec<_>>()));
                    }
                }
                if !s.locks.is_empty() {
                    obj.insert("locks".into(), json!(s.locks));
                }
                v
            })
            .collect();
        let levels: Vec<Vec<&str>> = self
            .graph
            .by_level()
            .iter()
            .map(|l| l.iter().map(|&i| p.stages[i].id.as_str()).collect())
            .collect();
        let edges: Vec<[&str; 2]> = self
            .graph
            .deps
            .iter()
            .enumerate()
            .flat_map(|(i, d)| {
                d.iter()
                    .map(move |&j| [p.stages[j].id.as_str(), p.stages[i].id.as_str()])
            })
            .collect();
        let mut out = json!({
            "pipeline": {
                "id": p.id,
                "title": p.title,
                "description": p.description,
                "source": config.source.peer_name(),
            },
            "stages": stages,
            "plan": super::target::plan_object(p, self.target),
            "targetId": self.target_id(),
            "config_path": config.path.to_string_lossy(),
            "graph": {
                "concurrency": self.concurrency,
                "concurrency_source": self.concurrency_source,
                "levels": levels,
                "edges": edges,
            },
        });
        if let Some(budget) = p.max_wall_clock {
            out["pipeline"]["maxWallClockMs"] = json!(crate::time::millis(budget));
        }
        if !p.delivery.is_empty() {
            out["delivery"] = super::work::delivery_json(&p.delivery);
        }
        if let Some(sel) = &self.selection {
            out["selection"] = json!(sel.record(p));
        }
        out
    }

    /// Human rendering for `plan` without `--format json`.
    pub fn to_text(&self, config: &Config) -> String {
        self.to_text_marked(config, |_| None)
    }

    /// [`Plan::to_text`] with `mark(position)`, when it says something, at the end of that
    /// stage's line (`plan --run`: which stage added it).
    pub fn to_text_marked(
        &self,
        config: &Config,
        mark: impl Fn(usize) -> Option<String>,
    ) -> String {
        let p = &self.pipeline;
        let mut out = format!(
            "Pipeline: {} ({})\nConfig: {} ({})\nConcurrency: {} ({})\n",
            p.id,
            p.title,
            config.path.display(),
            config.source.as_str(),
            self.concurrency,
            self.concurrency_source
        );
        if let Some(t) = self.target_id() {
            out.push_str(&format!("Target: {t}\n"));
        }
        for (level, stages) in self.graph.by_level().iter().enumerate() {
            out.push_str(&format!("Level {level}:\n"));
            for &i in stages {
                let s = &p.stages[i];
                let what = match &s.kind {
                    StageKind::Command(c) => c.shell_text(),
                    StageKind::Subpipeline { pipeline, .. } => format!("(sub-pipeline {pipeline})"),
                    StageKind::Approval(a) => format!("(approval: {})", a.prompt),
                    StageKind::Loop(l) => format!(
                        "(loop: build `{}`, verify with {}, at most {} iterations)",
                        l.build.command, l.verify, l.max_iterations
                    ),
                };
                let deps: Vec<&str> = self.graph.deps[i]
                    .iter()
                    .map(|&j| p.stages[j].id.as_str())
                    .collect();
                let after = if deps.is_empty() {
                    String::new()
                } else {
                    format!(" after {}", deps.join(", "))
                };
                let left_out = if self.runs(i) { "" } else { " (not selected)" };
                let mark = mark(i).map(|m| format!(" [{m}]")).unwrap_or_default();
                out.push_str(&format!(
                    "  {:02} {} — {}{}{left_out}{mark}\n",
                    i + 1,
                    s.id,
                    what,
                    after
                ));
                if let StageKind::Command(c) = &s.kind {
                    let vars = self.stage_vars(c);
                    if !vars.is_empty() {
                        let list: Vec<String> =
                            vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        out.push_str(&format!("      vars: {}\n", list.join(" ")));
                    }
                }
            }
        }
        out
    }

    /// The variables a command stage gets beyond the run's own: the runner variables, then
    /// its `env` (a name in both shows the stage's value, which is what the shell sees).
    pub fn stage_vars(&self, c: &crate::config::CommandStage) -> Vec<(String, String)> {
        let mut out = self.vars.clone();
        for (k, v) in &c.env {
            match out.iter_mut().find(|(n, _)| n == k) {
                Some(slot) => slot.1 = v.clone(),
                None => out.push((k.clone(), v.clone())),
            }
        }
        out
    }

    /// Shared, read-only.
    pub fn into_shared(self) -> Arc<Plan> {
        Arc::new(self)
    }
}

/// With a Ray stage in the pipelines a run may run, `CODEX_ORCHESTRATOR_RAY_ADDRESS` (which
/// overrides every Ray stage's address) must be an address: a usage error before anything
/// runs, not a stage failure later.
fn check_ray_address(reachable: &[&Pipeline]) -> Result<(), AppError> {
    for p in reachable {
        for s in &p.stages {
            if let StageKind::Command(c) = &s.kind {
                if let Some(ExecutorConfig::Ray(ray)) = &c.executor {
                    crate::config::executor::ray_address(ray).map_err(AppError::Usage)?;
                }
            }
        }
    }
    Ok(())
}
