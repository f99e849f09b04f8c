//! The `loop` stage kind and pipeline-level `delivery`, read from the config file with the
//! same rules as every other field (types, unknown keys with hints, errors naming the
//! pipeline, stage and field).

use std::time::Duration;

use serde_json::{Map, Value};

use super::{kind_of, Fields, Walker};
use crate::config::delivery::{
    Delivery, GitDelivery, GithubDelivery, DEFAULT_BRANCH, DEFAULT_CHECKS_GRACE,
    DEFAULT_CI_TIMEOUT, DEFAULT_MESSAGE,
};
use crate::config::error::{list, ConfigError, Loc};
use crate::config::model::{CommandStage, LoopStage};
use crate::config::suggest::did_you_mean;

/// Keys of a `loop` stage (beyond the common ones).
pub(super) const LOOP_KEYS: &[&str] = &[
    "build",
    "verify",
    "maxIterations",
    "maxWallClockMs",
    "stopWhenUnchanged",
];
/// Keys of a loop's `build` object.
pub(super) const BUILD_KEYS: &[&str] = &["command", "cwd", "env", "timeoutMs", "summaryHint"];
/// Delivery kinds.
const DELIVERY_KINDS: &[&str] = &["bundle", "git", "github"];
/// Keys of each delivery kind.
pub(super) const BUNDLE_KEYS: &[&str] = &["kind"];
pub(super) const GIT_KEYS: &[&str] = &["kind", "remote", "branch", "message"];
pub(super) const GITHUB_KEYS: &[&str] = &[
    "kind",
    "remote",
    "branch",
    "message",
    "base",
    "title",
    "body",
    "draft",
    "waitForCi",
    "ciTimeoutMs",
    "checksGraceMs",
];
/// `maxIterations` when not given.
pub(crate) const DEFAULT_MAX_ITERATIONS: u32 = 3;

impl Walker {
    /// The fields of a `loop` stage at `loc`.
    pub(super) fn loop_stage(
        &mut self,
        obj: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<LoopStage, ConfigError> {
        let build = match obj.get("build") {
            None | Some(Value::Null) => {
                return Err(self.err(
                    &loc.field("build"),
                    "missing (a loop needs the command that builds: a string, or an object with `command`)",
                ))
            }
            Some(Value::String(s)) if !s.trim().is_empty() => CommandStage {
                command: s.clone(),
                args: None,
                cwd: None,
                env: Vec::new(),
                timeout: None,
                allow_failure: false,
                summary_hint: None,
                executor: None,
            },
            Some(Value::String(_)) => {
                return Err(self.err(&loc.field("build"), "must not be empty"))
            }
            Some(Value::Object(b)) => self.build_body(b, loc)?,
            Some(other) => {
                return Err(self.err(
                    &loc.field("build"),
                    format!(
                        "expected a command (string) or an object with `command`, found {}",
                        kind_of(other)
                    ),
                ))
            }
        };
        let verify = self.req_string(
            obj,
            "verify",
            loc,
            "a loop names the pipeline that verifies each iteration",
        )?;
        let max_iterations = match self.opt_u64(obj, "maxIterations", loc, 1)? {
            None => DEFAULT_MAX_ITERATIONS,
            Some(n) => u32::try_from(n)
                .map_err(|_| self.err(&loc.field("maxIterations"), "is too large"))?,
        };
        let max_wall_clock = self
            .opt_u64(obj, "maxWallClockMs", loc, 1)?
            .map(Duration::from_millis);
        Ok(LoopStage {
            build,
            verify,
            max_iterations,
            max_wall_clock,
            stop_when_unchanged: self
                .opt_bool(obj, "stopWhenUnchanged", loc)?
                .unwrap_or(true),
        })
    }

    fn build_body(
        &mut self,
        b: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<CommandStage, ConfigError> {
        let bloc = loc.field("build");
        if b.contains_key("allowFailure") {
            return Err(self.err(
                &loc.field("build.allowFailure"),
                "not for a loop's build: a failing build is fed back to the next iteration anyway",
            ));
        }
        for key in b.keys() {
            if !BUILD_KEYS.contains(&key.as_str()) {
                let hint = did_you_mean(key, BUILD_KEYS)
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                let at = loc.field(&format!("build.{key}"));
                if self.strict {
                    return Err(self.err(&at, format!("unknown key{hint}")));
                }
                self.warnings.push(format!(
                    "`{}`: {}: unknown key, ignored{hint}",
                    self.path.display(),
                    at.render()
                ));
            }
        }
        let command = self.req_string(b, "command", &bloc, "the build's shell command")?;
        Ok(CommandStage {
            command,
            // A build is shell text (argv mode is for command stages).
            args: None,
            cwd: self.opt_string(b, "cwd", &bloc)?,
            env: self.string_map(b, "env", &bloc)?,
            timeout: self
                .opt_u64(b, "timeoutMs", &bloc, 1)?
                .map(Duration::from_millis),
            allow_failure: false,
            summary_hint: self.opt_string(b, "summaryHint", &bloc)?,
            // A build changes the work tree the loop snapshots and verifies: it runs here.
            executor: None,
        })
    }

    /// A pipeline's `delivery`: one object or an array of them, in order.
    pub(super) fn deliveries(
        &mut self,
        v: Option<&Value>,
        loc: &Loc,
    ) -> Result<Vec<Delivery>, ConfigError> {
        let items: Vec<&Value> = match v {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().collect(),
            Some(o @ Value::Object(_)) => vec![o],
            Some(other) => {
                return Err(self.err(
                    &loc.field("delivery"),
                    format!(
                        "expected an object or an array of objects, found {}",
                        kind_of(other)
                    ),
                ))
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let dloc = loc.with("delivery", format!("#{}", i + 1));
            let obj = self.object(item, &dloc)?;
            let kind = self.req_string(obj, "kind", &dloc, "one of: bundle, git, github")?;
            let d = match kind.as_str() {
                "bundle" => {
                    self.unknown_keys(obj, BUNDLE_KEYS, &dloc)?;
                    Delivery::Bundle
                }
                "git" => {
                    self.unknown_keys(obj, GIT_KEYS, &dloc)?;
                    Delivery::Git(self.git_delivery(obj, &dloc)?)
                }
                "github" => {
                    self.unknown_keys(obj, GITHUB_KEYS, &dloc)?;
                    let git = self.git_delivery(obj, &dloc)?;
                    let ms = |w: &Walker, key: &str, default: Duration| {
                        w.opt_u64(obj, key, &dloc, 0)
                            .map(|v| v.map_or(default, Duration::from_millis))
                    };
                    Delivery::Github(GithubDelivery {
                        git,
                        base: self.opt_string(obj, "base", &dloc)?,
                        title: self.opt_string(obj, "title", &dloc)?,
                        body: self.opt_string(obj, "body", &dloc)?,
                        draft: self.opt_bool(obj, "draft", &dloc)?.unwrap_or(false),
                        wait_for_ci: self.opt_bool(obj, "waitForCi", &dloc)?.unwrap_or(false),
                        ci_timeout: ms(self, "ciTimeoutMs", DEFAULT_CI_TIMEOUT)?,
                        checks_grace: ms(self, "checksGraceMs", DEFAULT_CHECKS_GRACE)?,
                    })
                }
                other => {
                    let hint = did_you_mean(other, DELIVERY_KINDS)
                        .map(|k| format!("; did you mean `{k}`?"))
                        .unwrap_or_default();
                    return Err(self.err(
                        &dloc.field("kind"),
                        format!(
                            "unknown delivery kind `{other}` (one of: {}){hint}",
                            list(DELIVERY_KINDS)
                        ),
                    ));
                }
            };
            out.push(d);
        }
        Ok(out)
    }

    fn git_delivery(
        &mut self,
        obj: &Map<String, Value>,
        loc: &Loc,
    ) -> Result<GitDelivery, ConfigError> {
        let remote = self.req_string(
            obj,
            "remote",
            loc,
            "the git remote to push to, such as `origin`",
        )?;
        Ok(GitDelivery {
            remote,
            branch: self
                .opt_string(obj, "branch", loc)?
                .unwrap_or_else(|| DEFAULT_BRANCH.to_owned()),
            message: self
                .opt_string(obj, "message", loc)?
                .unwrap_or_else(|| DEFAULT_MESSAGE.to_owned()),
        })
    }
}
