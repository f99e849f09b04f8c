//! `cancel --run <id>` from another terminal: SIGTERM to the runner holding the run's lock, which
//! stops its stages (SIGTERM, grace, SIGKILL) and records the run `cancelled`.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::CancelArgs;
use crate::errors::AppError;
use crate::exit;

/// Runs `cancel`; returns the exit code.
pub fn cancel(args: CancelArgs) -> Result<i32, AppError> {
    let (_, manifest) = super::common::locate_run(&args.run, args.task.as_deref())?;
    let lock = manifest.with_file_name("run.lock");
    let Some(holder) = crate::control::lock::holder(&lock) else {
        return Err(AppError::Conflict(format!(
            "run `{}` has no live runner to cancel",
            args.run
        )));
    };
    let holder = holder.ok_or_else(|| {
        AppError::Conflict(format!(
            "run `{}` is locked but its runner is unknown",
            args.run
        ))
    })?;
    // Identity check: the pid must still be the process that took the lock (without a
    // recorded start time, the signal below fails on its own if the pid is gone).
    if holder.start_ticks.is_some() && !holder.is_live() {
        return Err(AppError::Conflict(format!(
            "run `{}`: the recorded runner (pid {}) is gone",
            args.run, holder.pid
        )));
    }
    kill(Pid::from_raw(holder.pid), Signal::SIGTERM)
        .map_err(|e| AppError::Conflict(format!("cannot signal runner pid {}: {e}", holder.pid)))?;
    eprintln!(
        "cancel requested: sent SIGTERM to runner pid {} of run {}",
        holder.pid, args.run
    );
    Ok(exit::OK)
}
