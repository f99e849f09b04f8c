//! `plan [pipeline]` (or `plan --file PLAN`): the stages, their graph and the concurrency,
//! without running anything.

use crate::cli::{Format, PlanArgs};
use crate::errors::AppError;
use crate::record::layout::Roots;
use crate::{exit, plan};

/// Runs `plan`; returns the exit code.
pub fn plan(args: PlanArgs) -> Result<i32, AppError> {
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
    match args.format {
        Format::Json => crate::report::output::json(&plan.to_json(&config)),
        Format::Text => crate::report::output::line(plan.to_text(&config).trim_end()),
    }
    Ok(exit::OK)
}
