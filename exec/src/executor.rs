//! The executor seam: the one interface through which the orchestrator runs every attempt of
//! a command stage, whatever runs it. [`Local`] is a process group on this machine (the code
//! in `child.rs`); [`RayExecutor`](crate::ray::RayExecutor) is a job on a Ray cluster.
//!
//! An attempt goes through the same steps everywhere:
//! - **start** ([`Executor::start`]): spawn it, or submit it; for an executor whose attempts
//!   outlive the runner, *attach* to the attempt an earlier (crashed) runner of the same run
//!   already started, instead of starting it twice;
//! - **stream** ([`Attempt::wait`]): its stdout and stderr go into the stage's ndjson log as
//!   `exec:chunk` events, byte-exact and with the streams apart, as they come;
//! - **wait with timeout**: `spec.timeout` is enforced (stop, grace, kill) and the end is
//!   logged as `exec:end`;
//! - **stop with grace**: the `cancel` channel asks for a stop (graceful: TERM, grace, KILL;
//!   immediate: KILL) at any point, before or during the attempt.
//!
//! Both halves only fail (`Err`) when the runner cannot write its own logs; every way the
//! command or the executor can fail is an [`Outcome`](crate::Outcome) in the result.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

use crate::child::LocalAttempt;
use crate::errors::ExecError;
use crate::ndjson::StageLog;
use crate::outcome::{ExecResult, ProcessInfo, RemoteInfo};
use crate::spec::{CancelRequest, ExecSpec};

/// A boxed `Send` future: the trait is used as `dyn Executor`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs attempts of command stages.
pub trait Executor: Send + Sync + Debug {
    /// `local` or `ray`.
    fn kind(&self) -> &'static str;

    /// True when an attempt keeps running after the runner dies (a job on a cluster), so a
    /// resumed run must attach to it rather than start it again, and attempt numbers go on
    /// across resumes (a remote attempt's id is never reused). False for local process
    /// groups: a resume kills what a crashed runner left and starts again from attempt 1.
    fn attempts_outlive_the_runner(&self) -> bool {
        false
    }

    /// Starts attempt `spec.attempt` (or attaches to it, see the module doc) and logs
    /// `exec:begin`. `cancel` is watched while starting takes time (an upload): a stop
    /// requested meanwhile ends the attempt before it runs.
    fn start<'a>(
        &'a self,
        spec: &'a ExecSpec,
        log: &'a mut StageLog,
        cancel: &'a mut watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<Box<dyn Attempt>, ExecError>>;
}

/// Where a started attempt runs, for the record (a resume needs it to find what is left).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A local process group.
    Process(ProcessInfo),
    /// A job on a cluster.
    Remote(RemoteInfo),
}

/// An attempt after its start.
pub trait Attempt: Send {
    /// Where it runs; `None` when it never started (the spawn or the submission failed, or it
    /// was cancelled first).
    fn started(&self) -> Option<Started>;

    /// Streams its output into `log` until it ends, under its timeout, stopping it when
    /// `cancel` asks, and logs `exec:end`.
    fn wait<'a>(
        self: Box<Self>,
        log: &'a mut StageLog,
        cancel: watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>>;
}

/// Process groups on this machine: `sh -c` in its own group, stdin closed (see `child.rs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Executor for Local {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn start<'a>(
        &'a self,
        spec: &'a ExecSpec,
        log: &'a mut StageLog,
        _cancel: &'a mut watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<Box<dyn Attempt>, ExecError>> {
        // Spawning does not wait; a cancellation that is already asked for acts at the start
        // of `wait`, before any output is read.
        let started = crate::child::start(spec, log).map(|a| Box::new(a) as Box<dyn Attempt>);
        Box::pin(std::future::ready(started))
    }
}

impl Attempt for LocalAttempt {
    fn started(&self) -> Option<Started> {
        match self {
            LocalAttempt::Running(r) => Some(Started::Process(r.process.clone())),
            LocalAttempt::Ended(_) => None,
        }
    }

    fn wait<'a>(
        self: Box<Self>,
        log: &'a mut StageLog,
        cancel: watch::Receiver<CancelRequest>,
    ) -> BoxFuture<'a, Result<ExecResult, ExecError>> {
        Box::pin(LocalAttempt::wait(*self, log, cancel))
    }
}
