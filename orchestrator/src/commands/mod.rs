//! The verbs: glue from parsed arguments to the library, returning an exit code.

pub mod cancel;
pub mod exec;
pub mod flow;
pub mod plan;
pub mod report;
pub mod resume;
pub mod runs;
pub mod start;
pub mod status;

use crate::env_vars;
use crate::errors::AppError;

/// Task id from the environment: `MCP_RUNNER_TASK_ID` > `CODEX_ORCHESTRATOR_TASK_ID` > `TASK`.
pub(crate) fn task_from_env() -> Option<String> {
    [
        env_vars::MCP_RUNNER_TASK_ID,
        env_vars::TASK_ID,
        env_vars::TASK,
    ]
    .iter()
    .find_map(|n| env_vars::non_blank(n))
}

/// `--task` > environment > `0101`, checked to be usable as a directory name.
pub(crate) fn task_id(flag: Option<&str>) -> Result<String, AppError> {
    let task = flag
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .or_else(task_from_env)
        .unwrap_or_else(|| "0101".to_owned());
    if !crate::run_layout::is_safe_component(&task) {
        return Err(AppError::Usage(format!(
            "task id `{task}` cannot be used as a directory name"
        )));
    }
    Ok(task)
}

/// The roots and the manifest path of run `run` (searching every task without `task`), after
/// checking the id is usable as a directory name.
pub(crate) fn locate_run(
    run: &str,
    task: Option<&str>,
) -> Result<(crate::run_layout::Roots, std::path::PathBuf), AppError> {
    let roots = crate::run_layout::Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    if !crate::run_layout::is_safe_component(run) {
        return Err(AppError::Usage(format!("--run `{run}` is not a run id")));
    }
    let path = status::find_manifest(&roots, task, run)?;
    Ok((roots, path))
}
