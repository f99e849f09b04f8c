//! Reading `codex.orchestrator.json` into a validated [`Config`]: JSON syntax (with line and
//! column), types of every field the peer reads, stage-set expansion (one level), unknown keys
//! (warnings with a hint, errors under `--strict`), then the cross-checks in `validate`.
//!
//! The walk is over `serde_json::Value` rather than derived serde types so that every error can
//! name the pipeline, stage and field, which derived errors cannot do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::error::{list, ConfigError, Loc};
use super::executor::ExecutorConfig;
use super::json_get::kind_of;
use super::json_get::Fields;
use super::model::{
    CommandStage, Config, ConfigSource, Durability, OnFailure, Pipeline, RecordSettings,
    RetryPolicy, Stage, StageKind,
};
use super::secrets::SecretNames;

mod control;
use super::suggest::did_you_mean;
use super::validate;

mod loops;

const TOP_KEYS: &[&str] = &[
    "pipelines",
    "stageSets",
    "defaultPipeline",
    "runtimeMode",
    "manifestExtensions",
    "durability",
    "$schema",
    "version",
    "description",
    "metadata",
    "maxConcurrentRuns",
    "secrets",
];
const PIPELINE_KEYS: &[&str] = &[
    "id",
    "title",
    "description",
    "stages",
    "guardrailsRequired",
    "tags",
    "metadata",
    "plan",
    "session",
    "concurrency",
    "vars",
    "executor",
    "delivery",
    "maxWallClockMs",
    "maxDynamicStages",
    "inputs",
];
const STAGE_COMMON_KEYS: &[&str] = &[
    "kind",
    "id",
    "title",
    "description",
    "plan",
    "tags",
    "metadata",
    "session",
    "dependsOn",
    "onFailure",
    "retries",
    "locks",
];
const COMMAND_KEYS: &[&str] = &[
    "command",
    "args",
    "cwd",
    "env",
    "timeoutMs",
    "allowFailure",
    "summaryHint",
    "executor",
];
const SUBPIPELINE_KEYS: &[&str] = &["pipeline", "optional"];
const STAGE_SET_KEYS: &[&str] = &["kind", "ref"];
const RETRY_KEYS: &[&str] = &["count", "delayMs", "backoff", "maxDelayMs"];
const KINDS: &[&str] = &["command", "subpipeline", "approval", "loop", "stage-set"];

/// Every list of keys the loader knows, by where it applies: what the unknown-key checks
/// compare against, and what `schemas/config.schema.json` must define (a test holds the two
/// together). Stage lists include the keys common to every stage.
pub fn key_lists() -> Vec<(&'static str, Vec<&'static str>)> {
    let stage = |own: &[&'static str]| -> Vec<&'static str> {
        STAGE_COMMON_KEYS.iter().chain(own).copied().collect()
    };
    vec![
        ("top", TOP_KEYS.to_vec()),
        ("pipeline", PIPELINE_KEYS.to_vec()),
        ("stage.command", stage(COMMAND_KEYS)),
        ("stage.subpipeline", stage(SUBPIPELINE_KEYS)),
        ("stage.approval", stage(control::APPROVAL_KEYS)),
        ("stage.loop", stage(loops::LOOP_KEYS)),
        ("stage.stage-set", STAGE_SET_KEYS.to_vec()),
        ("loop.build", loops::BUILD_KEYS.to_vec()),
        ("retries", RETRY_KEYS.to_vec()),
        ("executor.local", super::executor::LOCAL_KEYS.to_vec()),
        ("executor.ray", super::executor::RAY_KEYS.to_vec()),
        ("delivery.bundle", loops::BUNDLE_KEYS.to_vec()),
        ("delivery.git", loops::GIT_KEYS.to_vec()),
        ("delivery.github", loops::GITHUB_KEYS.to_vec()),
    ]
}

/// The largest config file read (16 MiB, hundreds of times a large real config): a bigger
/// one is refused before it is read, as is anything but a regular file (a FIFO would block,
/// `/dev/zero` would never end).
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// A loaded config and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    /// The config.
    pub config: Config,
    /// Warnings (unknown keys with hints).
    pub warnings: Vec<String>,
}

/// Reads and validates the config at `path`. `strict` turns unknown keys into errors.
pub fn load(path: &Path, strict: bool) -> Result<Loaded, ConfigError> {
    let text = crate::files::read_regular_text(path, MAX_CONFIG_BYTES).map_err(|source| {
        ConfigError::Read {
            path: path.to_owned(),
            source,
        }
    })?;
    parse(path, &text, strict)
}

/// Validates config text (the file is only named in messages).
pub fn parse(path: &Path, text: &str, strict: bool) -> Result<Loaded, ConfigError> {
    let value = super::json::parse_file_text(path, text)?;
    from_value(path, &value, strict)
}

/// Validates a config already parsed as JSON (the plan-file translation builds one: a plan
/// file is checked by the same walk and cross-checks as a config file).
pub(crate) fn from_value(path: &Path, value: &Value, strict: bool) -> Result<Loaded, ConfigError> {
    let mut w = Walker {
        path: path.to_owned(),
        warnings: Vec::new(),
        strict,
    };
    let config = w.config(value)?;
    validate::check(&config)?;
    Ok(Loaded {
        config,
        warnings: w.warnings,
    })
}

struct Walker {
    path: PathBuf,
    warnings: Vec<String>,
    strict: bool,
}

impl Fields for Walker {
    fn file(&self) -> &Path {
        &self.path
    }
}

impl Walker {
    fn unknown_keys(
        &mut self,
        obj: &Map<String, Value>,
        known: &[&str],
        loc: &Loc,
    ) -> Result<(), ConfigError> {
        for key in obj.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let hint = did_you_mean(key, known)
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            let loc = loc.field(key);
            if self.strict {
                return Err(self.err(&loc, format!("unknown key{hint}")));
            }
            self.warnings.push(format!(
                "`{}`: {}: unknown key, ignored{hint}",
                self.path.display(),
                loc.render()
            ));
        }
        Ok(())
    }

    /// An optional array of strings (`args`).
    fn opt_strings(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
    ) -> Result<Option<Vec<String>>, ConfigError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.err(
                        &loc.field(&format!("{key}[{i}]")),
                        format!("expected a string, found {}", kind_of(other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.err(
                &loc.field(key),
                format!("expected an array of strings, found {}", kind_of(other)),
            )),
        }
    }

    fn string_map(
        &self,
        obj: &Map<String, Value>,
        key: &str,
        loc: &Loc,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let map = self.object(v, &loc.field(key))?;
        let mut out = Vec::with_capacity(map.len());
        for (k, v) in map {
            // The peer passes numbers and booleans through as their text; so do we.
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(self.err(
                        &loc.field(&format!("{key}.{k}")),
                        format!("expected a string, found {}", kind_of(other)),
                    ))
                }
            };
            out.push((k.clone(), s));
        }
        Ok(out)
    }

    fn config(&mut self, v: &Value) -> Result<Config, ConfigError> {
        let root = Loc::root();
        let obj = self.object(v, &root)?;
        self.unknown_keys(obj, TOP_KEYS, &root)?;
        let default_pipeline = self.opt_string(obj, "defaultPipeline", &root)?;
        let runtime_mode = match self.opt_string(obj, "runtimeMode", &root)? {
            None => None,
            Some(raw) => {
                let mode = raw.trim().to_lowercase();
                if mode != "cli" && mode != "appserver" {
                    return Err(self.err(
                        &root.field("runtimeMode"),
                        format!("`{raw}` is not one of: cli, appserver"),
                    ));
                }
                Some(mode)
            }
        };
        let mut record = RecordSettings::default();
        if let Some(raw) = self.opt_string(obj, "manifestExtensions", &root)? {
            record.extensions = shared_manifest::Extensions::parse(&raw).ok_or_else(|| {
                self.err(
                    &root.field("manifestExtensions"),
                    format!("`{raw}` is not one of: sidecar, inline"),
                )
            })?;
        }
        if let Some(raw) = self.opt_string(obj, "durability", &root)? {
            record.durability = Durability::parse(&raw).ok_or_else(|| {
                self.err(
                    &root.field("durability"),
                    format!("`{raw}` is not one of: batched, strict"),
                )
            })?;
        }
        let secrets = self.secrets(obj.get("secrets"))?;
        let stage_sets = self.stage_sets(obj.get("stageSets"))?;
        let pipelines_v = match obj.get("pipelines") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.err(
                    &root.field("pipelines"),
                    format!("expected an array, found {}", kind_of(other)),
                ))
            }
            None => {
                return Err(self.err(
                    &root.field("pipelines"),
                    "missing (the config defines no pipelines)",
                ))
            }
        };
        let mut pipelines = Vec::with_capacity(pipelines_v.len());
        for (i, p) in pipelines_v.iter().enumerate() {
            pipelines.push(self.pipeline(p, i, &stage_sets)?);
        }
        let max_concurrent_runs = self
            .opt_u64(obj, "maxConcurrentRuns", &root, 1)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(Config {
            source: ConfigSource::Repo,
            path: self.path.clone(),
            default_pipeline,
            runtime_mode,
            pipelines,
            record,
            max_concurrent_runs,
            secrets,
        })
    }

    /// `secrets`: an array of variable names and `*` patterns.
    fn secrets(&self, v: Option<&Value>) -> Result<SecretNames, ConfigError> {
        let loc = Loc::root().field("secrets");
        let items = match v {
            None | Some(Value::Null) => return Ok(SecretNames::default()),
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.err(
                    &loc,
                    format!(
                        "expected an array of variable names, found {}",
                        kind_of(other)
                    ),
                ))
            }
        };
        let mut names = Vec::with_capacity(items.len());
        for item in items {
            match item.as_str() {
                Some(s) => names.push(s),
                None => {
                    return Err(self.err(
                        &loc,
                        format!("expected variable names (strings), found {}", kind_of(item)),
                    ))
                }
            }
        }
        SecretNames::parse(names).map_err(|why| self.err(&loc, why))
    }

    fn stage_sets(&mut self, v: Option<&Value>) -> Result<Vec<(String, Vec<Value>)>, ConfigError> {
        let loc = Loc::root().field("stageSets");
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(Vec::new());
        };
        let map = self.object(v, &loc)?;
        let mut out = Vec::new();
        for (name, stages) in map {
            let set_loc = Loc::root().with("stage set", name);
            let Value::Array(stages) = stages else {
                return Err(self.err(
                    &set_loc,
                    format!("expected an array of stages, found {}", kind_of(stages)),
                ));
            };
            for (i, s) in stages.iter().enumerate() {
                if s.get("kind").and_then(Value::as_str) == Some("stage-set") {
                    return Err(self.err(
                        &set_loc.with("stage", i + 1),
                        "stage sets cannot include stage-set references (one level only)",
                    ));
                }
            }
            out.push((name.clone(), stages.clone()));
        }
        Ok(out)
    }

    fn pipeline(
        &mut self,
        v: &Value,
        i: usize,
        sets: &[(String, Vec<Value>)],
    ) -> Result<Pipeline, ConfigError> {
        let loc0 = Loc::root().with("pipeline", format!("#{}", i + 1));
        let obj = self.object(v, &loc0)?;
        let id = self.req_string(obj, "id", &loc0, "every pipeline needs an id")?;
        let loc = Loc::root().with("pipeline", &id);
        self.unknown_keys(obj, PIPELINE_KEYS, &loc)?;
        let title = self
            .opt_string(obj, "title", &loc)?
            .unwrap_or_else(|| id.clone());
        let description = self.opt_string(obj, "description", &loc)?;
        let concurrency = self
            .opt_u64(obj, "concurrency", &loc, 1)?
            .map(|n| n as usize);
        let vars = self.string_map(obj, "vars", &loc)?;
        let max_wall_clock = self.opt_millis(obj, "maxWallClockMs", &loc)?;
        let max_dynamic_stages = self
            .opt_u64(obj, "maxDynamicStages", &loc, 0)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let inputs = self.inputs(obj.get("inputs"), &loc.field("inputs"))?;
        for (name, _) in &vars {
            if !crate::config::vars::is_name(name) {
                return Err(self.err(
                    &loc.field(&format!("vars.{name}")),
                    "variable names are letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        let stages_v = match obj.get("stages") {
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.err(
                    &loc.field("stages"),
                    format!("expected an array, found {}", kind_of(other)),
                ))
            }
            None => {
                return Err(self.err(
                    &loc.field("stages"),
                    "missing (a pipeline needs at least one stage)",
                ))
            }
        };
        let mut stages = Vec::new();
        for (si, s) in stages_v.iter().enumerate() {
            let sloc = loc.with("stage", format!("#{}", si + 1));
            let sobj = self.object(s, &sloc)?;
            match sobj.get("kind") {
                Some(Value::String(k)) if k == "stage-set" => {
                    self.unknown_keys(sobj, STAGE_SET_KEYS, &sloc)?;
                    let r =
                        self.req_string(sobj, "ref", &sloc, "a stage-set stage names a stage set")?;
                    let Some((_, set)) = sets.iter().find(|(n, _)| *n == r) else {
                        let names: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
                        let hint = did_you_mean(&r, &names)
                            .map(|n| format!("; did you mean `{n}`?"))
                            .unwrap_or_default();
                        return Err(self.err(
                            &sloc.field("ref"),
                            format!("unknown stage set `{r}` (known: {}){hint}", list(&names)),
                        ));
                    };
                    for (k, shared) in set.iter().enumerate() {
                        let set_loc = loc
                            .with("stage set", &r)
                            .with("stage", format!("#{}", k + 1));
                        stages.push(self.stage(shared, &set_loc, &loc)?);
                    }
                }
                _ => stages.push(self.stage(s, &sloc, &loc)?),
            }
        }
        if stages.is_empty() {
            return Err(self.err(
                &loc.field("stages"),
                "empty (a pipeline needs at least one stage)",
            ));
        }
        let executor = self.executor(obj, &loc)?;
        for s in &mut stages {
            let StageKind::Command(c) = &mut s.kind else {
                continue;
            };
            // The pipeline's executor is the default of its command stages.
            if let Some(default) = &executor {
                c.executor.get_or_insert_with(|| default.clone());
            }
            if matches!(c.executor, Some(ExecutorConfig::Ray(_))) && c.cwd.is_some() {
                return Err(self.err(
                    &loc.with("stage", &s.id).field("cwd"),
                    "a Ray stage runs in its shipped working directory on the node; set `executor.workingDir` instead of `cwd`",
                ));
            }
        }
        let delivery = self.deliveries(obj.get("delivery"), &loc)?;
        Ok(Pipeline {
            id,
            title,
            description,
            stages,
            concurrency,
            vars,
            executor,
            delivery,
            max_wall_clock,
            max_dynamic_stages,
            inputs,
        })
    }

    /// `inputs`: globs (relative to the repo root) of the files the pipeline's stages read.
    fn inputs(&self, v: Option<&Value>, loc: &Loc) -> Result<Vec<String>, ConfigError> {
        let items = match v {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a,
            Some(other) => {
                return Err(self.err(
                    loc,
                    format!("expected an array of globs, found {}", kind_of(other)),
                ))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(glob) = item.as_str() else {
                return Err(self.err(
                    loc,
                    format!("expected globs (strings), found {}", kind_of(item)),
                ));
            };
            globset::Glob::new(glob)
                .map_err(|e| self.err(loc, format!("`{glob}` is not a glob: {}", e.kind())))?;
            out.push(glob.to_owned());
        }
        Ok(out)
    }

    fn stage(&mut self, v: &Value, loc0: &Loc, ploc: &Loc) -> Result<Stage, ConfigError> {
        let obj = self.object(v, loc0)?;
        let id = self.req_string(obj, "id", loc0, "every stage needs an id")?;
        let loc = ploc.with("stage", &id);
        let kind = match obj.get("kind") {
            None | Some(Value::Null) => {
                return Err(self.err(
                    &loc.field("kind"),
                    format!("missing (one of: {})", list(KINDS)),
                ))
            }
            Some(Value::String(k)) => k.clone(),
            Some(other) => {
                return Err(self.err(
                    &loc.field("kind"),
                    format!("expected a string, found {}", kind_of(other)),
                ))
            }
        };
        let title = self
            .opt_string(obj, "title", &loc)?
            .unwrap_or_else(|| id.clone());
        let depends_on = match obj.get("dependsOn") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => {
                let mut ids = Vec::with_capacity(a.len());
                for d in a {
                    match d.as_str() {
                        Some(s) => ids.push(s.to_owned()),
                        None => {
                            return Err(self.err(
                                &loc.field("dependsOn"),
                                format!("expected stage ids (strings), found {}", kind_of(d)),
                            ))
                        }
                    }
                }
                Some(ids)
            }
            Some(other) => {
                return Err(self.err(
                    &loc.field("dependsOn"),
                    format!("expected an array of stage ids, found {}", kind_of(other)),
                ))
            }
        };
        let on_failure = match self.opt_string(obj, "onFailure", &loc)?.as_deref() {
            None | Some("abort") => OnFailure::Abort,
            Some("skip-dependents") => OnFailure::SkipDependents,
            Some("continue") => OnFailure::Continue,
            Some(other) => {
                return Err(self.err(
                    &loc.field("onFailure"),
                    format!("`{other}` is not one of: abort, skip-dependents, continue"),
                ))
            }
        };
        let retries = self.retries(obj.get("retries"), &loc)?;
        let locks = self.locks(obj, &loc)?;
        let plan = match obj.get("plan") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(other) => {
                return Err(self.err(
                    &loc.field("plan"),
                    format!("expected an object, found {}", kind_of(other)),
                ))
            }
        };
        let kind = match kind.as_str() {
            "command" => {
                let known: Vec<&str> = STAGE_COMMON_KEYS
                    .iter()
                    .chain(COMMAND_KEYS)
                    .copied()
                    .collect();
                self.unknown_keys(obj, &known, &loc)?;
                let command = self.req_string(
                    obj,
                    "command",
                    &loc,
                    "a command stage needs a shell command",
                )?;
                let timeout = self
                    .opt_u64(obj, "timeoutMs", &loc, 1)?
                    .map(Duration::from_millis);
                StageKind::Command(CommandStage {
                    command,
                    args: self.opt_strings(obj, "args", &loc)?,
                    cwd: self.opt_string(obj, "cwd", &loc)?,
                    env: self.string_map(obj, "env", &loc)?,
                    timeout,
                    allow_failure: self.opt_bool(obj, "allowFailure", &loc)?.unwrap_or(false),
                    summary_hint: self.opt_string(obj, "summaryHint", &loc)?,
                    executor: self.executor(obj, &loc)?,
                })
            }
            "subpipeline" => {
                let known: Vec<&str> = STAGE_COMMON_KEYS
                    .iter()
                    .chain(SUBPIPELINE_KEYS)
                    .copied()
                    .collect();
                self.unknown_keys(obj, &known, &loc)?;
                StageKind::Subpipeline {
                    pipeline: self.req_string(
                        obj,
                        "pipeline",
                        &loc,
                        "a subpipeline stage names the pipeline to run",
                    )?,
                    optional: self.opt_bool(obj, "optional", &loc)?.unwrap_or(false),
                }
            }
            "loop" => {
                let known: Vec<&str> = STAGE_COMMON_KEYS
                    .iter()
                    .chain(loops::LOOP_KEYS)
                    .copied()
                    .collect();
                self.unknown_keys(obj, &known, &loc)?;
                StageKind::Loop(self.loop_stage(obj, &loc)?)
            }
            "approval" => {
                let known: Vec<&str> = STAGE_COMMON_KEYS
                    .iter()
                    .chain(control::APPROVAL_KEYS)
                    .copied()
                    .collect();
                self.unknown_keys(obj, &known, &loc)?;
                StageKind::Approval(self.approval(obj, &loc)?)
            }
            "stage-set" => {
                return Err(self.err(
                    &loc.field("kind"),
                    "stage-set references are only allowed directly in a pipeline's stages",
                ))
            }
            other => {
                let hint = did_you_mean(other, KINDS)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(self.err(
                    &loc.field("kind"),
                    format!("unknown kind `{other}` (one of: {}){hint}", list(KINDS)),
                ));
            }
        };
        Ok(Stage {
            id,
            title,
            kind,
            depends_on,
            on_failure,
            retries,
            plan,
            locks,
        })
    }

    /// `executor` of a pipeline or a command stage (see `executor.rs`).
    fn executor(
        &self,
        obj: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<Option<ExecutorConfig>, ConfigError> {
        match obj.get("executor") {
            None | Some(Value::Null) => Ok(None),
            Some(v) => super::executor::parse(v, loc, &self.path).map(Some),
        }
    }

    fn retries(&self, v: Option<&Value>, loc: &Loc) -> Result<RetryPolicy, ConfigError> {
        let floc = loc.field("retries");
        match v {
            None | Some(Value::Null) => Ok(RetryPolicy::default()),
            Some(Value::Number(n)) => match n.as_u64().and_then(|c| u32::try_from(c).ok()) {
                Some(count) => Ok(RetryPolicy { count, ..RetryPolicy::default() }),
                None => Err(self.err(&floc, format!("expected a count >= 0, found {n}"))),
            },
            Some(Value::Object(o)) => {
                for key in o.keys() {
                    let known = RETRY_KEYS;
                    if !known.contains(&key.as_str()) {
                        let hint = did_you_mean(key, known).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
                        return Err(self.err(&loc.field(&format!("retries.{key}")), format!("unknown key{hint}")));
                    }
                }
                let count = self.opt_u64(o, "count", &floc, 0)?.unwrap_or(0);
                let count = u32::try_from(count).map_err(|_| self.err(&floc, "count is too large"))?;
                let delay = Duration::from_millis(self.opt_u64(o, "delayMs", &floc, 0)?.unwrap_or(0));
                let max_delay = self.opt_u64(o, "maxDelayMs", &floc, 0)?.map(Duration::from_millis);
                let exponential = match self.opt_string(o, "backoff", &floc)?.as_deref() {
                    None | Some("fixed") => false,
                    Some("exponential") => true,
                    Some(other) => return Err(self.err(&loc.field("retries.backoff"), format!("`{other}` is not one of: fixed, exponential"))),
                };
                Ok(RetryPolicy { count, delay, exponential, max_delay })
            }
            Some(other) => Err(self.err(&floc, format!("expected a count or an object {{count, delayMs, backoff, maxDelayMs}}, found {}", kind_of(other)))),
        }
    }
}
