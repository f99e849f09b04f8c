//! `cancel --run <id>` from another terminal: SIGTERM to the runner holding the run's lock (see
//! `control::cancel`, which `serve`'s cancel button uses too).

use crate::cli::CancelArgs;
use crate::errors::AppError;
use crate::exit;

/// Runs `cancel`; returns the exit code.
pub fn cancel(args: CancelArgs) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&args.run, args.task.as_deref(), false)?;
    let pid = crate::control::cancel::request(&located.manifest, &located.run_id)
        .map_err(|e| AppError::Conflict(e.one_line()))?;
    crate::console::err_line(&format!(
        "cancel requested: sent SIGTERM to runner pid {pid} of run {}",
        located.run_id
    ));
    Ok(exit::OK)
}
