//! What `start`, `plan`, `resume` and `flow` decide before a run: which config file to read
//! (the repository's, or the peer package's when the repository has none, as the peer does),
//! and the peer's stage variables (package root, node, runtime mode, repo-config policy).

use crate::config::package::{self, Package};
use crate::config::{Config, ConfigSource, SecretNames, StageKind};
use crate::engine::peer_env::PeerEnv;
use crate::errors::AppError;
use crate::record::layout::Roots;

/// A loaded config and the package it came from, when it is the package's.
#[derive(Debug)]
pub(crate) struct Chosen {
    /// The validated config.
    pub(crate) config: Config,
    /// The package whose config it is (the fallback), else `None`.
    pub(crate) package: Option<Package>,
    /// `--repo-config-required` / `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`, as decided.
    pub(crate) required: bool,
}

/// Loads the repo config, or the package's when the repo has none and it is not `required`
/// (the flag's value, if given). Warnings go to stderr; using the package's config is said
/// there too.
pub(crate) fn load_config(
    roots: &Roots,
    strict: bool,
    required_flag: Option<&str>,
) -> Result<Chosen, AppError> {
    let required = package::repo_config_required(required_flag).map_err(AppError::Usage)?;
    let located = match &roots.config {
        // A file named with -f is read as it is: no fallback hides a typo in its name.
        crate::record::layout::ConfigSource::Flag(p) => Ok((p.clone(), None)),
        _ => package::locate_config(&roots.config_path(), &roots.repo, required),
    };
    let (path, package) = match located {
        Ok(found) => found,
        // Nothing found walking up, and no package to fall back to: say where we looked.
        Err(e @ crate::config::ConfigError::Missing { .. }) => {
            return Err(match roots.config_missing() {
                Some(looked) => AppError::Usage(format!(
                    "{looked}, and no peer package config to fall back to; pass -f/--config PATH or set {}",
                    crate::env_vars::REPO_CONFIG_PATH
                )),
                None => e.into(),
            });
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(config = %path.display(), repo = %roots.repo.display(), "config chosen");
    let loaded = crate::config::load(&path, strict)?;
    for w in &loaded.warnings {
        crate::console::err_line(&format!("warning: {w}"));
    }
    let mut config = loaded.config;
    if let Some(p) = &package {
        config.source = ConfigSource::Package;
        crate::console::err_line(&format!(
            "note: no codex.orchestrator.json in `{}`; using the peer package's config `{}` (package found via {})",
            roots.repo.display(),
            path.display(),
            p.source.as_str()
        ));
    }
    Ok(Chosen {
        config,
        package,
        required,
    })
}

/// The peer's stage variables for a run of `pipeline_id` in `config`. The package is the one
/// the config came from, else one found without starting a process, else (only when a stage
/// that may run mentions `CODEX_ORCHESTRATOR_PACKAGE_ROOT`) one that `npm root -g` knows.
pub(crate) fn peer_env(
    roots: &Roots,
    config: &Config,
    pipeline_id: &str,
    package: Option<Package>,
    runtime_mode: &str,
    required: bool,
) -> PeerEnv {
    let package = package
        .or_else(|| package::find_local(&roots.repo))
        .or_else(|| {
            mentions(config, pipeline_id, crate::env_vars::PACKAGE_ROOT)
                .then(|| package::find(&roots.repo))
                .flatten()
        });
    PeerEnv::new(&roots.repo, package, runtime_mode, required)
}

/// True when a command stage of `pipeline_id` or of a sub-pipeline it runs mentions `name`
/// in its command, `cwd` or `env`.
pub(crate) fn mentions(config: &Config, pipeline_id: &str, name: &str) -> bool {
    let Some(root) = config.pipeline(pipeline_id) else {
        return false;
    };
    config.reachable(root).iter().any(|p| {
        p.stages.iter().any(|s| match &s.kind {
            StageKind::Command(c) => {
                c.command.contains(name)
                    || c.cwd.as_deref().is_some_and(|d| d.contains(name))
                    || c.env.iter().any(|(k, v)| k == name || v.contains(name))
            }
            StageKind::Loop(l) => {
                let c = &l.build;
                c.command.contains(name)
                    || c.cwd.as_deref().is_some_and(|d| d.contains(name))
                    || c.env.iter().any(|(k, v)| k == name || v.contains(name))
            }
            StageKind::Subpipeline { .. } | StageKind::Approval(_) => false,
        })
    })
}

/// The run's secret variables: the config's `secrets`, then `--secret` (checked like them).
pub(crate) fn secret_names(config: &Config, flags: &[String]) -> Result<SecretNames, AppError> {
    let flags =
        SecretNames::parse(flags).map_err(|why| AppError::Usage(format!("--secret: {why}")))?;
    Ok(config.secrets.with(&flags))
}
