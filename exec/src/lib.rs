//! Running one stage's process: own process group, stdin closed, stdout and stderr drained
//! concurrently, byte-exact ndjson logs, bounded in-memory capture, enforced timeouts and
//! cancellation that leaves no process of the group behind.
//!
//! The orchestrator builds an [`ExecSpec`], opens a [`StageLog`] (which also writes to the run's
//! [`RunnerLog`]) and runs the attempt through an [`Executor`] ([`Local`] process groups, or
//! [`ray::RayExecutor`] jobs on a Ray cluster); it gets an [`ExecResult`] whose [`Outcome`] says
//! how the attempt ended, and [`summarize`] turns it into a one-line summary (the peer's rule,
//! from the output's end).
//!
//! Processes that leave the group on purpose (`setsid` daemons) are beyond what a process group
//! can reach: they are not killed, only cut off from the stage's pipes after the leak wait so
//! they cannot hang the run.

mod capture;
mod child;
mod chunk;
mod emit;
pub mod errors;
mod executor;
pub mod logread;
pub mod ndjson;
pub mod outcome;
pub mod ray;
pub mod redact;
pub mod spec;
mod stop;
mod summary;
pub mod text;
mod unix;

#[doc(hidden)]
pub use child::log_output_for_bench;
pub use child::run;
pub use errors::ExecError;
pub use executor::{Attempt, BoxFuture, Executor, Local, Started};
pub use ndjson::{LogEvent, RunnerLog, StageLog};
pub use outcome::{Capture, ChunkRecord, ExecResult, Outcome, ProcessInfo, RemoteInfo};
pub use redact::Secrets;
pub use spec::{
    shell_words, CancelRequest, ExecSpec, DEFAULT_KILL_GRACE, DEFAULT_LEAK_TIMEOUT,
    DEFAULT_TAIL_BYTES,
};
pub use summary::summarize;
pub use unix::{process_group_and_start, process_start_ticks, signal_name};

/// Now as the logs write it: RFC 3339 UTC with milliseconds (`2026-11-22T07:39:12.703Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
