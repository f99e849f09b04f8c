//! Changes to a manifest, applied by the persister in order. `apply` is pure and synchronous and
//! every status change goes through the transition tables in `state`.

use crate::document::{ApplyError, Document};
use crate::schema::{
    ChildRun, CommandRecord, Manifest, ProcessRecord, ResumeEvent, RuntimeFallback, RuntimeMode,
};
use crate::state::{CommandEvent, CommandStatus, RunEvent, RunStatus};

/// One change to a manifest.
#[derive(Debug, Clone)]
pub enum ManifestUpdate {
    /// The runner starts executing stages.
    RunStarted {
        /// When.
        at: String,
    },
    /// `resume` takes the run over: records the event and puts every stage that did not
    /// succeed or get skipped back to `pending`, clearing its stale result.
    RunResumed {
        /// When.
        at: String,
        /// The resume record.
        event: ResumeEvent,
        /// Pid of the new runner.
        runner_pid: u32,
        /// The runtime mode resolved again for this runner; replaces the recorded decision.
        runtime: RuntimeRecord,
    },
    /// The runner is alive.
    Heartbeat {
        /// When.
        at: String,
    },
    /// An attempt of a stage starts (`attempt` 1 starts the stage, later ones are retries).
    StageStarted {
        /// Stage index.
        index: usize,
        /// When.
        at: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// Stage log, repo-relative.
        log_path: Option<String>,
        /// The command with variables resolved (what actually runs).
        command: Option<String>,
        /// The attempt's process, recorded in the same write as the start (one manifest write
        /// per start) so a later resume can find survivors; `None` when it never spawned.
        process: Option<ProcessRecord>,
    },
    /// A stage reached a terminal status after running.
    StageFinished(Box<StageFinish>),
    /// A pending stage will not run (its dependencies failed, or the run was cancelled).
    StageNotRun {
        /// Stage index.
        index: usize,
        /// When.
        at: String,
        /// `Skip` (dependency failed) or `Fail` (cancelled before it could start).
        event: CommandEvent,
        /// Why, recorded in `skip_reason` and `summary`.
        reason: String,
    },
    /// A sub-pipeline stage started its child run.
    SubRunStarted {
        /// Stage index.
        index: usize,
        /// When.
        at: String,
        /// The child run.
        child: ChildRun,
    },
    /// A child run changed status.
    ChildRunUpdated {
        /// Child run id.
        run_id: String,
        /// New status.
        status: RunStatus,
    },
    /// The run reached a terminal status.
    RunFinished {
        /// When.
        at: String,
        /// `Succeed`, `Fail` or `Cancel`.
        event: RunEvent,
        /// `stage:<id>:failed`, `run-canceled`, ...
        status_detail: Option<String>,
        /// Summary lines.
        summary: Option<String>,
    },
    /// The metrics line was appended.
    MetricsRecorded,
}

/// A runtime-mode decision as the manifest records it (`runtime_mode_requested`,
/// `runtime_mode`, `runtime_provider`, `runtime_fallback`, `runtime_mode_source`).
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeRecord {
    /// What was asked for.
    pub requested: RuntimeMode,
    /// What runs; the provider follows from it.
    pub mode: RuntimeMode,
    /// The fallback record (`occurred: false` when none).
    pub fallback: RuntimeFallback,
    /// Which source decided.
    pub source: String,
}

/// The result of a stage that ran.
#[derive(Debug, Clone)]
pub struct StageFinish {
    /// Stage index.
    pub index: usize,
    /// When.
    pub at: String,
    /// `Succeed`, `Fail` or `Skip` (failure under `allowFailure`).
    pub event: CommandEvent,
    /// Exit code of the final attempt.
    pub exit_code: Option<i32>,
    /// Summary by the peer's rule.
    pub summary: Option<String>,
    /// Error file, repo-relative.
    pub error_file: Option<String>,
    /// `exited`, `signaled`, `timed_out`, `cancelled`, `spawn_failed`.
    pub outcome: Option<String>,
    /// Signal name.
    pub signal: Option<String>,
    /// Wall time of the stage.
    pub duration_ms: Option<u64>,
    /// Bytes written to stdout by the final attempt.
    pub stdout_bytes: Option<u64>,
    /// Bytes written to stderr by the final attempt.
    pub stderr_bytes: Option<u64>,
    /// Processes killed after holding the pipes.
    pub leaked_processes: bool,
    /// Chunk events over the in-memory cap, when a cap is set.
    pub dropped_chunk_events: Option<u64>,
}

impl Manifest {
    fn stage(&mut self, index: usize) -> Result<&mut CommandRecord, ApplyError> {
        self.command_mut(index)
            .ok_or_else(|| ApplyError(format!("no stage with index {index}")))
    }

    fn run_to(&mut self, event: RunEvent) -> Result<(), ApplyError> {
        let next = self.status.on(event).ok_or_else(|| {
            ApplyError(format!(
                "illegal run transition: {} on {event:?}",
                self.status.as_str()
            ))
        })?;
        self.status = next;
        Ok(())
    }
}

fn stage_to(stage: &mut CommandRecord, event: CommandEvent) -> Result<(), ApplyError> {
    let next = stage.status.on(event).ok_or_else(|| {
        ApplyError(format!(
            "illegal transition of stage `{}`: {} on {event:?}",
            stage.id,
            stage.status.as_str()
        ))
    })?;
    stage.status = next;
    Ok(())
}

impl Document for Manifest {
    type Update = ManifestUpdate;

    fn apply(&mut self, update: ManifestUpdate) -> Result<(), ApplyError> {
        match update {
            ManifestUpdate::RunStarted { at } => {
                self.run_to(RunEvent::Start)?;
                self.heartbeat_at = Some(at.clone());
                self.updated_at = at;
            }
            ManifestUpdate::RunResumed {
                at,
                event,
                runner_pid,
                runtime,
            } => {
                self.run_to(RunEvent::Resume)?;
                self.runtime_mode_requested = runtime.requested;
                self.runtime_mode = runtime.mode;
                self.runtime_provider = runtime.mode.provider().to_owned();
                self.runtime_fallback = Some(runtime.fallback);
                self.runtime_mode_source = Some(runtime.source);
                for stage in &mut self.commands {
                    let never_ran = stage.status == CommandStatus::Skipped
                        && stage.outcome.as_deref() == Some("dependency_failed");
                    if matches!(stage.status, CommandStatus::Failed | CommandStatus::Running)
                        || never_ran
                    {
                        stage_to(stage, CommandEvent::Reset)?;
                    }
                    if stage.status == CommandStatus::Pending {
                        // Stale results of the previous attempt must not survive the resume.
                        stage.completed_at = None;
                        stage.exit_code = None;
                        stage.summary = None;
                        stage.error_file = None;
                        stage.outcome = None;
                        stage.signal = None;
                        stage.skip_reason = None;
                        stage.process = None;
                    }
                }
                self.resume_events.push(event);
                self.completed_at = None;
                self.status_detail = None;
                self.summary = None;
                self.metrics_recorded = false;
                self.runner_pid = Some(runner_pid);
                self.heartbeat_at = Some(at.clone());
                self.updated_at = at;
            }
            ManifestUpdate::Heartbeat { at } => {
                self.heartbeat_at = Some(at.clone());
                self.updated_at = at;
            }
            ManifestUpdate::StageStarted {
                index,
                at,
                attempt,
                log_path,
                command,
                process,
            } => {
                let stage = self.stage(index)?;
                if attempt <= 1 || stage.status == CommandStatus::Pending {
                    stage_to(stage, CommandEvent::Start)?;
                    stage.started_at = Some(at.clone());
                } else {
                    stage_to(stage, CommandEvent::Retry)?;
                }
                stage.attempts = Some(attempt);
                if log_path.is_some() {
                    stage.log_path = log_path;
                }
                if command.is_some() {
                    stage.command = command;
                }
                if process.is_some() {
                    stage.process = process;
                }
                self.updated_at = at;
            }
            ManifestUpdate::StageFinished(done) => {
                let stage = self.stage(done.index)?;
                stage_to(stage, done.event)?;
                stage.completed_at = Some(done.at.clone());
                stage.exit_code = done.exit_code;
                stage.summary = done.summary;
                stage.error_file = done.error_file;
                stage.outcome = done.outcome;
                stage.signal = done.signal;
                stage.duration_ms = done.duration_ms;
                stage.stdout_bytes = done.stdout_bytes;
                stage.stderr_bytes = done.stderr_bytes;
                stage.leaked_processes = done.leaked_processes.then_some(true);
                stage.dropped_chunk_events = done.dropped_chunk_events;
                self.updated_at = done.at;
            }
            ManifestUpdate::StageNotRun {
                index,
                at,
                event,
                reason,
            } => {
                let stage = self.stage(index)?;
                stage_to(stage, event)?;
                stage.completed_at = Some(at.clone());
                stage.summary = Some(reason.clone());
                stage.skip_reason = Some(reason);
                stage.outcome = Some(match event {
                    CommandEvent::Fail => "cancelled".to_owned(),
                    _ => "dependency_failed".to_owned(),
                });
                self.updated_at = at;
            }
            ManifestUpdate::SubRunStarted { index, at, child } => {
                let stage = self.stage(index)?;
                stage_to(stage, CommandEvent::Start)?;
                stage.started_at = Some(at.clone());
                stage.sub_run_id = Some(child.run_id.clone());
                // A resumed child run starts again under the same id: one entry per child run.
                match self
                    .child_runs
                    .iter_mut()
                    .find(|c| c.run_id == child.run_id)
                {
                    Some(known) => *known = child,
                    None => self.child_runs.push(child),
                }
                self.updated_at = at;
            }
            ManifestUpdate::ChildRunUpdated { run_id, status } => {
                let child = self
                    .child_runs
                    .iter_mut()
                    .find(|c| c.run_id == run_id)
                    .ok_or_else(|| ApplyError(format!("no child run `{run_id}`")))?;
                child.status = status;
            }
            ManifestUpdate::RunFinished {
                at,
                event,
                status_detail,
                summary,
            } => {
                self.run_to(event)?;
                self.status_detail = status_detail;
                self.summary = summary;
                self.completed_at = Some(at.clone());
                self.heartbeat_at = Some(at.clone());
                self.updated_at = at;
            }
            ManifestUpdate::MetricsRecorded => self.metrics_recorded = true,
        }
        Ok(())
    }

    fn heartbeat(&self) -> Option<String> {
        self.heartbeat_at.clone()
    }
}
