//! Asking a running run to stop, for `cancel --run` and `serve`'s cancel button alike: SIGTERM
//! to the runner holding the run's lock, which stops its stages (SIGTERM, grace, SIGKILL) and
//! records the run `cancelled` through its own persister. Nobody else touches the manifest.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Why a cancel request could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// Nobody holds the run's lock: it ended, or its runner died.
    #[error("run `{run}` has no live runner to cancel")]
    NoRunner {
        /// The run id.
        run: String,
    },
    /// The lock is held but its file does not name a process.
    #[error("run `{run}` is locked but its runner is unknown")]
    UnknownRunner {
        /// The run id.
        run: String,
    },
    /// The recorded pid now belongs to another process (or none).
    #[error("run `{run}`: the recorded runner (pid {pid}) is gone")]
    Gone {
        /// The run id.
        run: String,
        /// The recorded pid.
        pid: i32,
    },
    /// The signal could not be sent.
    #[error("cannot signal runner pid {pid}")]
    Signal {
        /// The runner's pid.
        pid: i32,
        /// Why.
        #[source]
        source: nix::errno::Errno,
    },
}

/// Sends SIGTERM to the runner of run `run`, whose manifest is at `manifest`; returns the
/// runner's pid. The run is recorded `cancelled` by that runner, not here.
pub fn request(manifest: &Path, run: &str) -> Result<i32, CancelError> {
    let lock = manifest.with_file_name("run.lock");
    let holder = crate::control::lock::holder(&lock)
        .ok_or_else(|| CancelError::NoRunner {
            run: run.to_owned(),
        })?
        .ok_or_else(|| CancelError::UnknownRunner {
            run: run.to_owned(),
        })?;
    // Identity check: the pid must still be the process that took the lock (without a
    // recorded start time, the signal below fails on its own if the pid is gone).
    if holder.start_ticks.is_some() && !holder.is_live() {
        return Err(CancelError::Gone {
            run: run.to_owned(),
            pid: holder.pid,
        });
    }
    kill(Pid::from_raw(holder.pid), Signal::SIGTERM).map_err(|source| CancelError::Signal {
        pid: holder.pid,
        source,
    })?;
    Ok(holder.pid)
}

impl CancelError {
    /// The message and its cause on one line.
    pub fn one_line(&self) -> String {
        match self {
            CancelError::Signal { source, .. } => format!("{self}: {source}"),
            _ => self.to_string(),
        }
    }
}
