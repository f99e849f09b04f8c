//! `run-plan PATH`: a standalone plan file, translated into a one-pipeline config
//! (`config::plan_file`) and run by `start`'s own path: same engine, same record under
//! `.runs/<task>/cli/<run-id>/`, pipeline id = `plan_id`. Also the plan-file loading that
//! `plan --file` and `resume` of such a run share.

use std::path::{Path, PathBuf};

use crate::cli::{RunPlanArgs, StartArgs};
use crate::config::Config;
use crate::errors::AppError;

/// Runs `run-plan`; returns the exit code.
pub async fn run_plan(args: RunPlanArgs) -> Result<i32, AppError> {
    let vars = crate::plan::parse_cli_vars(&args.vars)?;
    let config = load(&args.path, &vars)?;
    let start = StartArgs {
        pipeline: Some(config.pipelines[0].id.clone()),
        task: args.task,
        format: args.format,
        execution_mode: args.execution_mode,
        cloud: false,
        runtime_mode: args.runtime_mode,
        target: Default::default(),
        issue: Default::default(),
        inert: Default::default(),
        parent_run: args.parent_run,
        approval_policy: None,
        progress: args.progress,
        concurrency: args.concurrency,
        vars: args.vars,
        secrets: args.secrets,
        // Plan files are always read strictly.
        strict: true,
        junit: args.junit,
        repo_config_required: None,
        // A plan file has no `delivery`: nothing to skip.
        no_deliver: false,
        control: args.control,
        shape: args.shape,
        dry_run: args.dry_run,
    };
    if start.dry_run {
        return super::resolved::dry_run(&start, Some(config));
    }
    let launched = super::start::launch(&start, Some(config)).await?;
    super::start::print(&launched, start.format);
    Ok(launched.code)
}

/// Loads and validates the plan file at `path` (relative to the current directory), with
/// `vars` before the environment for `${NAME}`. The config's path is absolute, so the run
/// records where the plan was (`config_path`) and a resume finds it again.
pub(crate) fn load(path: &Path, vars: &[(String, String)]) -> Result<Config, AppError> {
    let path = absolute(path)?;
    let env = |name: &str| std::env::var(name).ok();
    Ok(crate::config::plan_file::load(&path, vars, &env)?)
}

fn absolute(path: &Path) -> Result<PathBuf, AppError> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let cwd = std::env::current_dir()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    Ok(cwd.join(path))
}

/// The plan file a run was started from (`config_source` `plan-file`), when it was.
pub(crate) fn recorded_plan(
    roots: &crate::record::layout::Roots,
    manifest: &shared_manifest::schema::Manifest,
) -> Option<PathBuf> {
    let source = manifest.config_source.as_deref()?;
    if crate::config::ConfigSource::parse(source) != Some(crate::config::ConfigSource::PlanFile) {
        return None;
    }
    // Recorded repo-relative when inside the repo, absolute otherwise.
    manifest.config_path.as_deref().map(|p| roots.repo.join(p))
}

/// The `--var`s a resumed plan run substitutes: those recorded at its start (but secrets,
/// recorded masked), each replaced by a `--var` of the same name given to `resume`, then the
/// new ones.
pub(crate) fn vars_for_resume(
    manifest: &shared_manifest::schema::Manifest,
    cli: &[(String, String)],
) -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = manifest
        .variables
        .iter()
        .flatten()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
        // A secret is recorded masked: it must come again (`--var` or the environment).
        .filter(|(_, v)| v != exec::redact::MASK)
        .filter(|(k, _)| !cli.iter().any(|(n, _)| n == k))
        .collect();
    vars.extend(cli.iter().cloned());
    vars
}
