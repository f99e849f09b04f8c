//! Standalone plan files (`run-plan PATH`, `plan --file PATH`): `plan_id`, `version`,
//! `globals`, `metadata` and `steps` whose `command` + `args` run as argv without a shell.
//!
//! A plan file is not validated by rules of its own. This module checks only what the config
//! has no word for (the plan's field names and types, `${VAR}` substitution, seconds), then
//! translates the plan into the config's own JSON (one pipeline, one command stage per step,
//! in argv mode) and hands it to the config walk and cross-checks (`load::from_value`): one
//! definition of a valid stage for both. Errors of that walk speak of pipelines, stages and
//! `dependsOn`; `relabel` renames them into the plan's words (plan, step, `depends_on`).
//!
//! `${NAME}` placeholders in `command`, `args`, `cwd` and `env` values are substituted here,
//! at load time, from `--var` first and then the environment; nothing else rewrites them
//! later, and no shell ever sees a value, so a value cannot inject anything.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::error::{ConfigError, Loc};
use super::json_get::{kind_of, show, Fields};
use super::model::{Config, ConfigSource};
use super::suggest::did_you_mean;
use super::vars::{self, VarError};

#[cfg(test)]
mod props;
mod relabel;

const TOP_KEYS: &[&str] = &[
    "plan_id",
    "version",
    "globals",
    "metadata",
    "steps",
    "description",
    "$schema",
];
const GLOBAL_KEYS: &[&str] = &["max_concurrency", "default_timeout_sec"];
const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "command",
    "args",
    "cwd",
    "env",
    "depends_on",
    "timeout_sec",
    "retries",
    "retry_delay_sec",
    "critical",
    "on_failure",
];
const ON_FAILURE: &[&str] = &["abort", "skip_dependents", "continue"];
/// The largest count (`max_concurrency`, `retries`) a plan file may give.
const MAX_COUNT: u64 = u32::MAX as u64;

/// Reads the plan file at `path` and validates it; `vars` (`--var`) come before `env` (the
/// process environment) for `${NAME}`.
pub fn load(
    path: &Path,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let text =
        crate::files::read_regular_text(path, super::load::MAX_CONFIG_BYTES).map_err(|source| {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
    parse(path, &text, vars, env)
}

/// Validates plan text (the file is only named in messages).
pub fn parse(
    path: &Path,
    text: &str,
    vars: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let value = super::json::parse_file_text(path, text)?;
    let t = Translator { path, vars, env };
    let config_json = t.plan(&value)?;
    let loaded = super::load::from_value(path, &config_json, true).map_err(relabel::relabel)?;
    let mut config = loaded.config;
    config.source = ConfigSource::PlanFile;
    Ok(config)
}

/// Turns a plan into config JSON, checking the plan's own fields on the way.
struct Translator<'a> {
    path: &'a Path,
    vars: &'a [(String, String)],
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Fields for Translator<'_> {
    fn file(&self) -> &Path {
        self.path
    }
}

impl Translator<'_> {
    /// Plan files are read strictly: an unknown field is an error (a typo such as
    /// `depend_on` would otherwise drop an edge of the graph silently).
    fn known(
        &self,
        obj: &Map<String, Value>,
        known: &[&str],
        loc: &Loc,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        for key in obj.keys() {
            if !known.contains(&key.as_str()) {
                let hint = did_you_mean(key, known)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(self.err(
                    &loc.field(&format!("{prefix}{key}")),
                    format!("unknown field{hint}"),
                ));
            }
        }
        Ok(())
    }

    /// A duration in seconds (`timeout_sec`, ...) as whole milliseconds, at least `min_ms`.
    fn seconds(
        &self,
        v: Option<&Value>,
        floc: &Loc,
        min_ms: u64,
    ) -> Result<Option<u64>, ConfigError> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let bad = || {
            let floor = if min_ms == 0 {
                "a number of seconds >= 0"
            } else {
                "a number of seconds > 0"
            };
            self.err(floc, format!("expected {floor}, found {}", show(v)))
        };
        let secs = v
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(bad)?;
        // Over a year is surely a mistake, and keeps the milliseconds far from overflow.
        if secs > 366.0 * 86_400.0 {
            return Err(self.err(floc, format!("{secs} seconds is over a year")));
        }
        let ms = (secs * 1000.0).round() as u64;
        if ms < min_ms {
            return Err(bad());
        }
        Ok(Some(ms))
    }

    /// `text` with every `${NAME}` replaced: `--var` first, then the environment.
    fn substitute(&self, text: &str, loc: &Loc) -> Result<String, ConfigError> {
        let look = |name: &str| {
            self.vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .or_else(|| (self.env)(name))
        };
        vars::expand_cwd(text, look).map_err(|e| match e {
            VarError::Undefined(name) => self.err(
                loc,
                format!("undefined variable `${{{name}}}` (pass --var {name}=VALUE or set it in the environment)"),
            ),
            VarError::Unterminated => self.err(loc, "unterminated `${` (a variable is `${NAME}`)"),
        })
    }

    fn plan(&self, v: &Value) -> Result<Value, ConfigError> {
        let root = Loc::root();
        let obj = self.object(v, &root)?;
        self.known(obj, TOP_KEYS, &root, "")?;
        let plan_id = match self.opt_string(obj, "plan_id", &root)? {
            Some(id) if !id.trim().is_empty() => id,
            Some(_) => {
                return Err(self.err(
                    &root.field("plan_id"),
                    "must not be empty (it is the run's pipeline id)",
                ))
            }
            None => {
                return Err(self.err(&root.field("plan_id"), "missing (every plan needs an id)"))
            }
        };
        let ploc = root.with("plan", &plan_id);
        match obj.get("version") {
            None | Some(Value::Null | Value::String(_) | Value::Number(_)) => {}
            Some(other) => {
                return Err(self.err(
                    &ploc.field("version"),
                    format!("expected a string or a number, found {}", kind_of(other)),
                ))
            }
        }
        if let Some(m) = obj.get("metadata").filter(|m| !m.is_null()) {
            self.object(m, &ploc.field("metadata"))?;
        }
        let description = self.opt_string(obj, "description", &ploc)?;
        let (mut concurrency, mut default_timeout) = (None, None);
        if let Some(g) = obj.get("globals").filter(|g| !g.is_null()) {
            let g = self.object(g, &ploc.field("globals"))?;
            self.known(g, GLOBAL_KEYS, &ploc, "globals.")?;
            let field = |k: &str| ploc.field(&format!("globals.{k}"));
            concurrency = self.opt_u64_at(
                g.get("max_concurrency"),
                &field("max_concurrency"),
                1,
                MAX_COUNT,
            )?;
            default_timeout = self.seconds(
                g.get("default_timeout_sec"),
                &field("default_timeout_sec"),
                1,
            )?;
        }
        let steps = match obj.get("steps") {
            Some(Value::Array(a)) if !a.is_empty() => a,
            Some(Value::Array(_)) => {
                return Err(self.err(
                    &ploc.field("steps"),
                    "empty (a plan needs at least one step)",
                ))
            }
            Some(other) => {
                return Err(self.err(
                    &ploc.field("steps"),
                    format!("expected an array, found {}", kind_of(other)),
                ))
            }
            None => {
                return Err(self.err(
                    &ploc.field("steps"),
                    "missing (a plan needs at least one step)",
                ))
            }
        };
        let stages = steps
            .iter()
            .enumerate()
            .map(|(i, s)| self.step(s, i, &ploc, default_timeout))
            .collect::<Result<Vec<_>, _>>()?;
        let mut pipeline = json!({ "id": plan_id, "title": plan_id, "stages": stages });
        if let Some(d) = description {
            pipeline["description"] = json!(d);
        }
        if let Some(c) = concurrency {
            pipeline["concurrency"] = json!(c);
        }
        Ok(json!({ "pipelines": [pipeline], "defaultPipeline": plan_id }))
    }

    fn step(
        &self,
        v: &Value,
        i: usize,
        ploc: &Loc,
        default_timeout: Option<u64>,
    ) -> Result<Value, ConfigError> {
        let loc0 = ploc.with("step", format!("#{}", i + 1));
        let obj = self.object(v, &loc0)?;
        let id = self.req_string(obj, "id", &loc0, "every step needs an id")?;
        let loc = ploc.with("step", &id);
        self.known(obj, STEP_KEYS, &loc, "")?;
        let mut stage = Map::new();
        stage.insert("kind".into(), json!("command"));
        stage.insert("id".into(), json!(id));
        if let Some(name) = self.opt_string(obj, "name", &loc)? {
            stage.insert("title".into(), json!(name));
        }
        if let Some(d) = self.opt_string(obj, "description", &loc)? {
            stage.insert("description".into(), json!(d));
        }
        let command = match self.opt_string(obj, "command", &loc)? {
            Some(c) => self.substitute(&c, &loc.field("command"))?,
            None => {
                return Err(self.err(
                    &loc.field("command"),
                    "missing (a step needs the program to run)",
                ))
            }
        };
        stage.insert("command".into(), json!(command));
        let args = match obj.get("args") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    let aloc = loc.field(&format!("args[{k}]"));
                    match a {
                        Value::String(s) => self.substitute(s, &aloc),
                        // Numbers and booleans are arguments as they are written.
                        Value::Number(n) => Ok(n.to_string()),
                        Value::Bool(b) => Ok(b.to_string()),
                        other => Err(self.err(
                            &aloc,
                            format!("expected a string, found {}", kind_of(other)),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(self.err(
                    &loc.field("args"),
                    format!("expected an array of strings, found {}", kind_of(other)),
                ))
            }
        };
        // Always argv mode, even without arguments: a step's command is a program, never
        // shell text.
        stage.insert("args".into(), json!(args));
        if let Some(cwd) = self.opt_string(obj, "cwd", &loc)? {
            stage.insert(
                "cwd".into(),
                json!(self.substitute(&cwd, &loc.field("cwd"))?),
            );
        }
        if let Some(env) = obj.get("env").filter(|e| !e.is_null()) {
            let env = self.object(env, &loc.field("env"))?;
            let mut out = Map::new();
            for (k, v) in env {
                let floc = loc.field(&format!("env.{k}"));
                let Value::String(s) = v else {
                    return Err(self.err(&floc, format!("expected a string, found {}", kind_of(v))));
                };
                out.insert(k.clone(), json!(self.substitute(s, &floc)?));
            }
            stage.insert("env".into(), Value::Object(out));
        }
        // Every step says what it waits for: a step without `depends_on` waits for nothing
        // (in a config, a stage without `dependsOn` waits for the one before it).
        let depends_on = match obj.get("depends_on") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|d| {
                    d.as_str().map(str::to_owned).ok_or_else(|| {
                        self.err(
                            &loc.field("depends_on"),
                            format!("expected step ids (strings), found {}", kind_of(d)),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(other) => {
                return Err(self.err(
                    &loc.field("depends_on"),
                    format!("expected an array of step ids, found {}", kind_of(other)),
                ))
            }
        };
        stage.insert("dependsOn".into(), json!(depends_on));
        let timeout = self.seconds(obj.get("timeout_sec"), &loc.field("timeout_sec"), 1)?;
        if let Some(ms) = timeout.or(default_timeout) {
            stage.insert("timeoutMs".into(), json!(ms));
        }
        let retries = self.opt_u64_at(obj.get("retries"), &loc.field("retries"), 0, MAX_COUNT)?;
        let delay = self.seconds(obj.get("retry_delay_sec"), &loc.field("retry_delay_sec"), 0)?;
        if retries.is_some() || delay.is_some() {
            stage.insert(
                "retries".into(),
                json!({ "count": retries.unwrap_or(0), "delayMs": delay.unwrap_or(0) }),
            );
        }
        let critical = self.opt_bool(obj, "critical", &loc)?.unwrap_or(true);
        let on_failure = match self.opt_string(obj, "on_failure", &loc)? {
            None => None,
            Some(s) if ON_FAILURE.contains(&s.as_str()) => Some(s),
            Some(other) => {
                let hint = did_you_mean(&other, ON_FAILURE)
                    .map(|k| format!("; did you mean `{k}`?"))
                    .unwrap_or_default();
                return Err(self.err(
                    &loc.field("on_failure"),
                    format!("`{other}` is not one of: abort, skip_dependents, continue{hint}"),
                ));
            }
        };
        if !critical {
            // A non-critical failure is the config's `allowFailure`: recorded `skipped` with
            // its summary, and its dependents run. Skipping them would need the failure to
            // count, which is what `critical: false` says it must not.
            if on_failure.as_deref() == Some("skip_dependents") {
                return Err(self.err(
                    &loc.field("on_failure"),
                    "`skip_dependents` has no effect on a step with `critical: false` (its failure does not count, so its dependents run); drop one of the two",
                ));
            }
            stage.insert("allowFailure".into(), json!(true));
        }
        if let Some(f) = on_failure {
            stage.insert("onFailure".into(), json!(f.replace('_', "-")));
        }
        Ok(Value::Object(stage))
    }
}
