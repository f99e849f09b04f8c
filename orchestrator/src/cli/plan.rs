//! `plan [pipeline]` (or `plan --file PLAN`): the stages, their graph and the concurrency,
//! without running anything; with `--resolved`, what `start --dry-run` prints (see
//! `resolved.rs`); with `--run RUN` / `--last`, a run's graph as it grew (see `plan_run.rs`).

use crate::cli::{Format, PlanArgs};
use crate::errors::AppError;
use crate::record::layout::Roots;
use crate::{exit, plan};

/// Runs `plan`; returns the exit code.
pub fn plan(args: PlanArgs) -> Result<i32, AppError> {
    if args.run.is_some() || args.last {
        return super::plan_run::plan_of_run(&args);
    }
    if args.resolved {
        // Exactly what `start --dry-run` checks and prints, from the same inputs.
        let mut start = super::StartArgs::for_pipeline("", args.task.clone(), args.format);
        start.pipeline = args.pipeline.clone();
        start.vars = args.vars.clone();
        start.concurrency = args.concurrency;
        start.strict = args.strict;
        start.target = args.target.clone();
        start.repo_config_required = args.repo_config_required.clone();
        *start.shape = args.shape.clone();
        // A plan file replaces the config, as for `run-plan`.
        let config = match &args.file {
            Some(file) => Some(super::run_plan::load(
                file,
                &plan::parse_cli_vars(&args.vars)?,
            )?),
            None => None,
        };
        return super::resolved::dry_run(&start, config);
    }
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let vars = plan::parse_cli_vars(&args.vars)?;
    let config = match &args.file {
        Some(file) => super::run_plan::load(file, &vars)?,
        None => {
            super::setup::load_config(&roots, args.strict, args.repo_config_required.as_deref())?
                .config
        }
    };
    let pipeline = plan::select(&config, args.pipeline.as_deref())?;
    let mut plan = plan::build(&config, pipeline, &vars, args.concurrency)?;
    if let Some(t) = args.target.id() {
        plan.retarget(t)?;
    }
    plan.select(&args.shape.selection())?;
    match args.format {
        Format::Json => crate::report::output::json(&plan.to_json(&config)),
        Format::Text => crate::report::output::line(plan.to_text(&config).trim_end()),
    }
    Ok(exit::OK)
}
