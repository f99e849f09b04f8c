//! The two mode resolvers, one helper each, with the peer's precedence and trimming rules.
//!
//! Execution mode (`mcp` | `cloud`): `--cloud` / `--execution-mode` flag > the target stage's
//! hints (`plan.requires_cloud`/`requiresCloud` false wins, then `plan.executionMode`, then
//! `plan.metadata.executionMode`, then `plan.metadata.mode`), then
//! `CODEX_ORCHESTRATOR_EXECUTION_MODE`, then the default `mcp`. `cloud` has no backend here: it falls back to `mcp` (recorded) unless
//! `CODEX_ORCHESTRATOR_CLOUD_FALLBACK` forbids it.
//!
//! Runtime mode (`cli` | `appserver`): `--runtime-mode` > `CODEX_ORCHESTRATOR_RUNTIME_MODE` >
//! config `runtimeMode` > the manifest (on resume) > default `cli`. `appserver` falls back to
//! `cli` (recorded) unless `CODEX_ORCHESTRATOR_RUNTIME_FALLBACK` forbids it.
//! Values are trimmed and lower-cased; a blank value counts as unset.

use serde_json::Value;
use shared_manifest::schema::{
    CloudFallback, CloudIssue, ModeDecision, RuntimeFallback, RuntimeMode,
};

/// A mode request that cannot be honoured. Exit 2, before any run directory exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// A value that is not a mode.
    #[error("{source_name} is `{value}`, expected one of: {expected}")]
    Invalid {
        /// Where the value came from (`--runtime-mode`, `CODEX_ORCHESTRATOR_RUNTIME_MODE`, ...).
        source_name: String,
        /// The value.
        value: String,
        /// The accepted values.
        expected: &'static str,
    },
    /// `--cloud` together with `--execution-mode mcp`.
    #[error("--cloud conflicts with --execution-mode mcp")]
    CloudConflict,
    /// The fallback was forbidden.
    #[error("{mode} mode is not available here and {var} forbids falling back")]
    FallbackForbidden {
        /// The requested mode.
        mode: &'static str,
        /// The variable that forbade it.
        var: &'static str,
    },
}

/// Inputs of the runtime-mode resolver.
#[derive(Debug, Clone, Default)]
pub struct RuntimeInputs {
    /// `--runtime-mode`.
    pub flag: Option<String>,
    /// `CODEX_ORCHESTRATOR_RUNTIME_MODE`.
    pub env: Option<String>,
    /// Config `runtimeMode`.
    pub config: Option<String>,
    /// The manifest's `runtime_mode_requested` (resume only).
    pub manifest: Option<String>,
    /// `CODEX_ORCHESTRATOR_RUNTIME_FALLBACK`.
    pub fallback_env: Option<String>,
}

impl RuntimeInputs {
    /// The flag, config and manifest values plus the environment's.
    pub fn with_env(
        flag: Option<String>,
        config: Option<String>,
        manifest: Option<String>,
    ) -> Self {
        RuntimeInputs {
            flag,
            env: std::env::var(crate::env_vars::RUNTIME_MODE).ok(),
            config,
            manifest,
            fallback_env: std::env::var(crate::env_vars::RUNTIME_FALLBACK).ok(),
        }
    }
}

/// The resolved runtime mode.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeDecision {
    /// What was asked for.
    pub requested: RuntimeMode,
    /// What runs.
    pub mode: RuntimeMode,
    /// Which source decided (`flag`, `env`, `config`, `manifest`, `default`).
    pub source: &'static str,
    /// The manifest's `runtime_fallback`.
    pub fallback: RuntimeFallback,
}

impl RuntimeDecision {
    /// The decision as the manifest records it.
    pub fn record(&self) -> shared_manifest::RuntimeRecord {
        shared_manifest::RuntimeRecord {
            requested: self.requested,
            mode: self.mode,
            fallback: self.fallback.clone(),
            source: self.source.to_owned(),
        }
    }
}

fn clean(v: Option<&str>) -> Option<String> {
    v.map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty())
}

fn forbids(v: Option<&str>) -> bool {
    matches!(
        clean(v).as_deref(),
        Some("0" | "false" | "off" | "no" | "never" | "disabled")
    )
}

/// The runtime-mode resolver.
pub fn resolve_runtime(i: &RuntimeInputs, now: &str) -> Result<RuntimeDecision, ModeError> {
    let candidates = [
        ("flag", "--runtime-mode", i.flag.as_deref()),
        ("env", crate::env_vars::RUNTIME_MODE, i.env.as_deref()),
        ("config", "config runtimeMode", i.config.as_deref()),
        (
            "manifest",
            "manifest runtime_mode_requested",
            i.manifest.as_deref(),
        ),
    ];
    let mut requested = (RuntimeMode::Cli, "default");
    for (source, name, raw) in candidates {
        let Some(v) = clean(raw) else { continue };
        let mode = match v.as_str() {
            "cli" => RuntimeMode::Cli,
            "appserver" => RuntimeMode::Appserver,
            _ => {
                return Err(ModeError::Invalid {
                    source_name: name.to_owned(),
                    value: raw.unwrap_or_default().to_owned(),
                    expected: "cli, appserver",
                })
            }
        };
        requested = (mode, source);
        break;
    }
    let (requested, source) = requested;
    let mut fallback = RuntimeFallback {
        occurred: false,
        code: None,
        reason: None,
        from_mode: None,
        to_mode: None,
        checked_at: now.to_owned(),
    };
    let mode = match requested {
        RuntimeMode::Cli => RuntimeMode::Cli,
        RuntimeMode::Appserver => {
            if forbids(i.fallback_env.as_deref()) {
                return Err(ModeError::FallbackForbidden {
                    mode: "appserver",
                    var: crate::env_vars::RUNTIME_FALLBACK,
                });
            }
            fallback.occurred = true;
            fallback.code = Some("appserver-unavailable".into());
            fallback.reason = Some("shell stages have no app-server runtime; ran with cli".into());
            fallback.from_mode = Some("appserver".into());
            fallback.to_mode = Some("cli".into());
            RuntimeMode::Cli
        }
    };
    Ok(RuntimeDecision {
        requested,
        mode,
        source,
        fallback,
    })
}

/// Inputs of the execution-mode resolver.
#[derive(Debug, Clone, Default)]
pub struct ExecutionInputs {
    /// `--execution-mode`.
    pub flag: Option<String>,
    /// `--cloud`.
    pub cloud_flag: bool,
    /// The target stage's `plan` object.
    pub stage_plan: Option<Value>,
    /// `CODEX_ORCHESTRATOR_EXECUTION_MODE`.
    pub env: Option<String>,
    /// `CODEX_ORCHESTRATOR_CLOUD_FALLBACK`.
    pub fallback_env: Option<String>,
}

impl ExecutionInputs {
    /// The flags and the target stage's hints plus the environment's values.
    pub fn with_env(flag: Option<String>, cloud_flag: bool, stage_plan: Option<Value>) -> Self {
        ExecutionInputs {
            flag,
            cloud_flag,
            stage_plan,
            env: std::env::var(crate::env_vars::EXECUTION_MODE).ok(),
            fallback_env: std::env::var(crate::env_vars::CLOUD_FALLBACK).ok(),
        }
    }
}

/// The resolved execution mode.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionDecision {
    /// What was asked for (`mcp` | `cloud`) and by which source.
    pub requested: ModeDecision,
    /// What runs: always `mcp` here.
    pub mode: &'static str,
    /// Recorded when cloud was requested.
    pub cloud_fallback: Option<CloudFallback>,
}

fn parse_exec(name: &str, raw: &str) -> Result<Option<&'static str>, ModeError> {
    match clean(Some(raw)).as_deref() {
        None => Ok(None),
        Some("mcp") => Ok(Some("mcp")),
        Some("cloud") => Ok(Some("cloud")),
        Some(_) => Err(ModeError::Invalid {
            source_name: name.to_owned(),
            value: raw.to_owned(),
            expected: "mcp, cloud",
        }),
    }
}

/// Mode requested by a stage's `plan` hints, the peer's way.
fn stage_hint(plan: &Value) -> Option<&'static str> {
    let flag = |v: Option<&Value>| v.and_then(Value::as_bool);
    let requires = flag(plan.get("requires_cloud")).or_else(|| flag(plan.get("requiresCloud")));
    if requires == Some(false) {
        return Some("mcp");
    }
    if requires == Some(true) {
        return Some("cloud");
    }
    let text = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| parse_exec("", s).ok().flatten())
    };
    let meta = plan.get("metadata");
    text(plan.get("executionMode"))
        .or_else(|| text(meta.and_then(|m| m.get("executionMode"))))
        .or_else(|| text(meta.and_then(|m| m.get("mode"))))
}

/// The execution-mode resolver.
pub fn resolve_execution(i: &ExecutionInputs, now: &str) -> Result<ExecutionDecision, ModeError> {
    let flag = match &i.flag {
        Some(raw) => parse_exec("--execution-mode", raw)?,
        None => None,
    };
    if i.cloud_flag && flag == Some("mcp") {
        return Err(ModeError::CloudConflict);
    }
    let env = match &i.env {
        Some(raw) => parse_exec(crate::env_vars::EXECUTION_MODE, raw)?,
        None => None,
    };
    let (mode, source) = if i.cloud_flag {
        ("cloud", "flag")
    } else if let Some(m) = flag {
        (m, "flag")
    } else if let Some(m) = i.stage_plan.as_ref().and_then(stage_hint) {
        (m, "stage")
    } else if let Some(m) = env {
        (m, "env")
    } else {
        ("mcp", "default")
    };
    let requested = ModeDecision {
        mode: mode.to_owned(),
        source: source.to_owned(),
    };
    if mode == "mcp" {
        return Ok(ExecutionDecision {
            requested,
            mode: "mcp",
            cloud_fallback: None,
        });
    }
    if forbids(i.fallback_env.as_deref()) {
        return Err(ModeError::FallbackForbidden {
            mode: "cloud",
            var: crate::env_vars::CLOUD_FALLBACK,
        });
    }
    let reason = "cloud execution has no backend in this runner; ran in mcp mode".to_owned();
    Ok(ExecutionDecision {
        requested,
        mode: "mcp",
        cloud_fallback: Some(CloudFallback {
            mode_requested: "cloud".into(),
            mode_used: "mcp".into(),
            reason: reason.clone(),
            issues: vec![CloudIssue {
                code: "cloud-unavailable".into(),
                message: reason,
            }],
            checked_at: now.to_owned(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rt(
        flag: Option<&str>,
        env: Option<&str>,
        config: Option<&str>,
        manifest: Option<&str>,
    ) -> Result<RuntimeDecision, ModeError> {
        let s = |v: Option<&str>| v.map(str::to_owned);
        resolve_runtime(
            &RuntimeInputs {
                flag: s(flag),
                env: s(env),
                config: s(config),
                manifest: s(manifest),
                fallback_env: None,
            },
            "t",
        )
    }

    #[test]
    fn runtime_record_carries_the_source_and_the_fallback() {
        let d = rt(None, None, None, Some(" AppServer ")).expect("resolves");
        let r = d.record();
        assert_eq!(
            (r.requested, r.mode, r.source.as_str()),
            (RuntimeMode::Appserver, RuntimeMode::Cli, "manifest")
        );
        assert!(r.fallback.occurred);
        assert_eq!(
            rt(None, None, None, None).expect("default").record().source,
            "default"
        );
    }

    #[test]
    fn runtime_precedence_flag_env_config_manifest_default() {
        let src = |r: Result<RuntimeDecision, ModeError>| r.map(|d| (d.requested, d.source));
        assert_eq!(
            src(rt(Some("appserver"), Some("cli"), Some("cli"), Some("cli"))),
            Ok((RuntimeMode::Appserver, "flag"))
        );
        assert_eq!(
            src(rt(None, Some("appserver"), Some("cli"), Some("cli"))),
            Ok((RuntimeMode::Appserver, "env"))
        );
        assert_eq!(
            src(rt(None, None, Some("appserver"), Some("cli"))),
            Ok((RuntimeMode::Appserver, "config"))
        );
        assert_eq!(
            src(rt(None, None, None, Some("appserver"))),
            Ok((RuntimeMode::Appserver, "manifest"))
        );
        assert_eq!(
            src(rt(None, None, None, None)),
            Ok((RuntimeMode::Cli, "default"))
        );
    }

    #[test]
    fn runtime_blank_is_unset_and_values_are_trimmed_and_lowercased() {
        let d = rt(None, Some("   "), Some("  AppServer "), None).expect("valid");
        assert_eq!((d.requested, d.source), (RuntimeMode::Appserver, "config"));
        assert_eq!(d.mode, RuntimeMode::Cli);
        assert!(d.fallback.occurred);
        assert_eq!(d.fallback.to_mode.as_deref(), Some("cli"));
    }

    #[test]
    fn invalid_runtime_from_env_names_the_variable() {
        let e = rt(None, Some("turbo"), None, None).expect_err("invalid");
        assert!(
            e.to_string().contains("CODEX_ORCHESTRATOR_RUNTIME_MODE"),
            "{e}"
        );
    }

    #[test]
    fn runtime_fallback_can_be_forbidden() {
        let i = RuntimeInputs {
            flag: Some("appserver".into()),
            fallback_env: Some("0".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve_runtime(&i, "t"),
            Err(ModeError::FallbackForbidden { .. })
        ));
    }

    fn ex(i: ExecutionInputs) -> Result<(String, String), ModeError> {
        resolve_execution(&i, "t").map(|d| (d.requested.mode, d.requested.source))
    }

    #[test]
    fn execution_mode_cases_from_the_peer() {
        let pair = |m: &str, s: &str| Ok((m.to_owned(), s.to_owned()));
        assert_eq!(
            ex(ExecutionInputs {
                cloud_flag: true,
                flag: Some("mcp".into()),
                ..Default::default()
            }),
            Err(ModeError::CloudConflict)
        );
        assert_eq!(
            ex(ExecutionInputs {
                stage_plan: Some(json!({"executionMode": " Cloud "})),
                ..Default::default()
            }),
            pair("cloud", "stage")
        );
        assert_eq!(
            ex(ExecutionInputs {
                stage_plan: Some(json!({"executionMode": "cloud", "requires_cloud": false})),
                ..Default::default()
            }),
            pair("mcp", "stage")
        );
        assert_eq!(
            ex(ExecutionInputs {
                stage_plan: Some(json!({"metadata": {"executionMode": "mcp", "mode": "cloud"}})),
                ..Default::default()
            }),
            pair("mcp", "stage")
        );
        assert_eq!(
            ex(ExecutionInputs {
                flag: Some("mcp".into()),
                stage_plan: Some(json!({"requiresCloud": true})),
                ..Default::default()
            }),
            pair("mcp", "flag")
        );
        assert_eq!(ex(ExecutionInputs::default()), pair("mcp", "default"));
        assert_eq!(
            ex(ExecutionInputs {
                env: Some(" CLOUD ".into()),
                ..Default::default()
            }),
            pair("cloud", "env")
        );
    }

    #[test]
    fn cloud_falls_back_to_mcp_or_fails_when_forbidden() {
        let d = resolve_execution(
            &ExecutionInputs {
                cloud_flag: true,
                ..Default::default()
            },
            "t",
        )
        .expect("falls back");
        assert_eq!(d.mode, "mcp");
        assert!(d.cloud_fallback.is_some());
        let forbidden = ExecutionInputs {
            cloud_flag: true,
            fallback_env: Some("false".into()),
            ..Default::default()
        };
        assert!(matches!(
            resolve_execution(&forbidden, "t"),
            Err(ModeError::FallbackForbidden { .. })
        ));
    }
}
