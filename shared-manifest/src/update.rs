//! Changes to a manifest, applied by the persister in order. `apply` is pure and synchronous and
//! every status change goes through the transition tables in `state`.

use crate::document::{pretty_to, ApplyError, Document, SidecarMode};
use crate::render::Part;
use crate::schema::{
    Approval, ApprovalDecision, ApprovalRecord, ApprovalState, BudgetRecord, ChildRun,
    CommandRecord, ExecutorRecord, LockRecord, Manifest, PauseRecord, PlanPatchRecord,
    ProcessRecord, QueueRecord, ResumeEvent, RuntimeFallback, RuntimeMode, SelectionRecord,
    SCHEMA_VERSION,
};
use crate::sidecar::Extensions;
use crate::state::{CommandEvent, CommandStatus, RunEvent, RunPhase, RunStatus, StagePhase};
use serde_json::Value;

mod work;
pub use work::{
    DeliveryPatch, DeliveryUpdate, LoopChange, LoopSettings, LoopStart, LoopStop, LoopUpdate,
};

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
        /// The plan target resolved again (`--target` on resume, else the default), as the
        /// peer recomputes `plan_target_id`; `None` keeps the recorded one.
        plan_target_id: Option<String>,
        /// Succeeded stages (1-based) to run again: what they depend on changed since the run
        /// stopped (`resume --rerun-changed`), or they depend on such a stage.
        rerun: Vec<usize>,
        /// The stage selection of this runner (the one `resume` was given, else the recorded
        /// one); replaces the recorded one. Stages left out by the previous runner's selection
        /// go back to pending: the scheduler records again those this one leaves out.
        selection: Option<SelectionRecord>,
        /// `--fail-fast` / `--no-fail-fast` of this runner (given to `resume`, else the
        /// recorded one); replaces the recorded one.
        fail_fast: Option<bool>,
    },
    /// An extension key of one stage's record (`fingerprint`, `reused_stale`), replacing an
    /// earlier value.
    StageExtension {
        /// Stage index.
        index: usize,
        /// The key.
        key: &'static str,
        /// Its value.
        value: Value,
    },
    /// An extension key of the run's record (`repo_state`), replacing an earlier value.
    RunExtension {
        /// The key.
        key: &'static str,
        /// Its value.
        value: Value,
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
    /// Where a stage's current attempt runs on a remote executor (sent when it starts and
    /// again when it ends, with the node and the final status).
    StageExecutor {
        /// Stage index.
        index: usize,
        /// The record, replacing an earlier one.
        record: ExecutorRecord,
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
    /// A plan patch added stages to the running pipeline: their records (pending), appended
    /// after the existing ones, and the patch.
    StagesAdded {
        /// The new stages' records, indexes following the last one.
        records: Vec<CommandRecord>,
        /// The patch.
        patch: PlanPatchRecord,
    },
    /// A pending stage will not run because the run's stage selection left it out
    /// (`--only`, `--skip`, `--from`): `skipped`, outcome `not_selected`. A resume keeps it so.
    StageNotSelected {
        /// Stage index.
        index: usize,
        /// When.
        at: String,
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
    /// A queued run's place in line for a run slot (recorded when it joins and when it moves).
    RunQueued {
        /// When.
        at: String,
        /// Place in line, 1 = next.
        position: usize,
        /// The slot count.
        max_concurrent_runs: usize,
    },
    /// A queued run got its run slot (`RunStarted` follows).
    SlotTaken {
        /// When.
        at: String,
        /// How long it waited in line.
        waited_ms: u64,
    },
    /// A runner's wall-clock budget starts counting.
    BudgetStarted(BudgetRecord),
    /// A `pause` request is honoured: no new stage starts.
    RunPaused {
        /// The request.
        record: PauseRecord,
        /// The summary line (the peer's wording).
        line: String,
    },
    /// A paused run goes on.
    RunUnpaused {
        /// When.
        at: String,
        /// The summary line (the peer's wording).
        line: String,
    },
    /// An approval stage asks for its decision and waits.
    ApprovalRequested {
        /// Stage index.
        index: usize,
        /// When (the stage's start).
        at: String,
        /// The request; its `state` is `waiting`.
        record: ApprovalRecord,
    },
    /// An approval stage got its decision: recorded in the peer's `approvals[]` and ours, and
    /// the stage ends (approved: succeeded; rejected: failed).
    ApprovalDecided(Box<ApprovalDecided>),
    /// A stage waits for resource locks held elsewhere.
    LocksWaiting {
        /// Stage index.
        index: usize,
        /// Since when.
        at: String,
        /// The locks, sorted.
        names: Vec<String>,
    },
    /// A stage holds its resource locks (it starts next).
    LocksAcquired {
        /// Stage index.
        index: usize,
        /// When.
        at: String,
        /// The locks, sorted.
        names: Vec<String>,
        /// How long it waited for them.
        waited_ms: u64,
    },
    /// A loop stage moves on (see `update/work.rs`).
    Loop(Box<LoopUpdate>),
    /// A delivery moves on (see `update/work.rs`).
    Delivery(Box<DeliveryUpdate>),
}

/// The decision of an approval stage.
#[derive(Debug, Clone)]
pub struct ApprovalDecided {
    /// Stage index.
    pub index: usize,
    /// When it is recorded (the stage's end).
    pub at: String,
    /// When the decision was made (its file's time; earlier than `at` when it was made while
    /// no runner held the run).
    pub decided_at: String,
    /// `Approved` or `Rejected`.
    pub decision: ApprovalState,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// `cli`, `dashboard`, `timeout`, ...
    pub source: String,
    /// The stage's summary (`Rejected by <actor>: <reason>`, ...).
    pub summary: String,
    /// How long the stage waited.
    pub duration_ms: u64,
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
    /// Secret values masked in the final attempt's output, when the stage had secrets.
    pub redactions: Option<u64>,
}

impl Manifest {
    fn stage(&mut self, index: usize) -> Result<&mut CommandRecord, ApplyError> {
        self.command_mut(index)
            .ok_or_else(|| ApplyError(format!("no stage with index {index}")))
    }

    /// Moves the run through its table; the pause record follows the phase (set by the
    /// caller when pausing, dropped on leaving `Paused`).
    fn run_to(&mut self, event: RunEvent) -> Result<RunPhase, ApplyError> {
        let from = self.phase();
        let next = from
            .on(event)
            .ok_or_else(|| ApplyError(format!("illegal run transition: {from:?} on {event:?}")))?;
        self.status = next.status();
        if next != RunPhase::Paused {
            self.paused = None;
        }
        Ok(next)
    }

    /// Appends a line to the summary (the peer's `appendSummary`).
    fn append_summary(&mut self, line: String) {
        self.summary = Some(match self.summary.take() {
            Some(s) if !s.is_empty() => format!("{s}\n{line}"),
            _ => line,
        });
    }
}

fn stage_to(stage: &mut CommandRecord, event: CommandEvent) -> Result<(), ApplyError> {
    let from = StagePhase::of(stage.status, stage.awaiting_approval());
    let next = from.on(event).ok_or_else(|| {
        ApplyError(format!(
            "illegal transition of stage `{}`: {from:?} on {event:?}",
            stage.id
        ))
    })?;
    stage.status = next.status();
    Ok(())
}

/// The stage must not have started: locks are taken before a stage starts.
fn pending(stage: &mut CommandRecord) -> Result<&mut CommandRecord, ApplyError> {
    if stage.status == CommandStatus::Pending {
        Ok(stage)
    } else {
        Err(ApplyError(format!(
            "stage `{}` waits for locks but is {}",
            stage.id,
            stage.status.as_str()
        )))
    }
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
                plan_target_id,
                rerun,
                selection,
                fail_fast,
            } => {
                self.run_to(RunEvent::Resume)?;
                for index in rerun {
                    let stage = self.stage(index)?;
                    if stage.status == CommandStatus::Succeeded {
                        stage_to(stage, CommandEvent::Reset)?;
                    }
                }
                if plan_target_id.is_some() {
                    self.plan_target_id = plan_target_id;
                }
                self.selection = selection;
                self.fail_fast = fail_fast;
                self.runtime_mode_requested = runtime.requested;
                self.runtime_mode = runtime.mode;
                self.runtime_provider = runtime.mode.provider().to_owned();
                self.runtime_fallback = Some(runtime.fallback);
                self.runtime_mode_source = Some(runtime.source);
                for stage in &mut self.commands {
                    let never_ran = stage.status == CommandStatus::Skipped
                        && matches!(
                            stage.outcome.as_deref(),
                            Some("dependency_failed" | "not_selected")
                        );
                    if matches!(stage.status, CommandStatus::Failed | CommandStatus::Running)
                        || never_ran
                    {
                        stage_to(stage, CommandEvent::Reset)?;
                    }
                    if let Some(locks) = &mut stage.locks {
                        // A wait of the previous runner is over; the next one is recorded anew.
                        locks.waiting_since = None;
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
                        stage.executor = None;
                    }
                }
                self.resume_events.push(event);
                self.completed_at = None;
                self.status_detail = None;
                self.summary = None;
                self.metrics_recorded = false;
                self.runner_pid = Some(runner_pid);
                // This runner writes the record from now on, in its layout (a run the peer
                // wrote has no version yet; a newer layout keeps its number).
                self.schema_version = Some(
                    self.schema_version
                        .map_or(SCHEMA_VERSION, |v| v.max(SCHEMA_VERSION)),
                );
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
            ManifestUpdate::StageExtension { index, key, value } => {
                self.stage(index)?.other.insert(key.to_owned(), value);
            }
            ManifestUpdate::RunExtension { key, value } => {
                self.other.insert(key.to_owned(), value);
            }
            ManifestUpdate::StageExecutor { index, record } => {
                self.stage(index)?.executor = Some(Box::new(record));
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
                stage.redactions = done.redactions;
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
            ManifestUpdate::StagesAdded { records, patch } => {
                for (k, r) in records.iter().enumerate() {
                    let want = self.commands.len() + k + 1;
                    if r.index != want {
                        return Err(ApplyError(format!(
                            "added stage `{}` has index {}, expected {want}",
                            r.id, r.index
                        )));
                    }
                }
                self.updated_at = patch.at.clone();
                self.commands.extend(records);
                self.plan_patches.push(patch);
            }
            ManifestUpdate::StageNotSelected { index, at, reason } => {
                let stage = self.stage(index)?;
                stage_to(stage, CommandEvent::Skip)?;
                stage.completed_at = Some(at.clone());
                stage.summary = Some(reason.clone());
                stage.skip_reason = Some(reason);
                stage.outcome = Some("not_selected".to_owned());
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
            ManifestUpdate::RunQueued {
                at,
                position,
                max_concurrent_runs,
            } => {
                if self.status != RunStatus::Queued {
                    return Err(ApplyError(format!(
                        "a run that is {} cannot wait for a run slot",
                        self.status.as_str()
                    )));
                }
                match &mut self.queue {
                    Some(q) => {
                        q.position = position;
                        q.max_concurrent_runs = max_concurrent_runs;
                    }
                    None => {
                        self.queue = Some(QueueRecord {
                            enqueued_at: at.clone(),
                            position,
                            max_concurrent_runs,
                            started_at: None,
                            waited_ms: None,
                        })
                    }
                }
                self.updated_at = at;
            }
            ManifestUpdate::SlotTaken { at, waited_ms } => {
                let queue = self
                    .queue
                    .as_mut()
                    .filter(|_| self.status == RunStatus::Queued)
                    .ok_or_else(|| {
                        ApplyError("a run slot was taken by a run not in line".into())
                    })?;
                queue.started_at = Some(at.clone());
                queue.waited_ms = Some(waited_ms);
                self.updated_at = at;
            }
            ManifestUpdate::BudgetStarted(budget) => {
                self.updated_at = budget.started_at.clone();
                self.wall_clock_budgets.push(budget);
            }
            ManifestUpdate::RunPaused { record, line } => {
                self.run_to(RunEvent::Pause)?;
                // The peer's wording: the request's reason, else `paused`.
                self.status_detail = Some(record.reason.clone().unwrap_or_else(|| "paused".into()));
                self.append_summary(line);
                self.updated_at = record.at.clone();
                self.paused = Some(record);
            }
            ManifestUpdate::RunUnpaused { at, line } => {
                self.run_to(RunEvent::Unpause)?;
                self.status_detail = None;
                self.append_summary(line);
                self.updated_at = at;
            }
            ManifestUpdate::ApprovalRequested { index, at, record } => {
                let stage = self.stage(index)?;
                // Waiting is what the record says from now on: the phase reads it.
                let previous = stage.approval.replace(Box::new(ApprovalRecord {
                    state: ApprovalState::Waiting,
                    ..record
                }));
                if let Err(e) = stage_to(stage, CommandEvent::AwaitApproval) {
                    stage.approval = previous;
                    return Err(e);
                }
                // Read back through the phase: `running` to the peer, awaiting to us.
                stage.status = StagePhase::AwaitingApproval.status();
                stage.started_at = Some(at.clone());
                stage.summary = stage
                    .approval
                    .as_ref()
                    .map(|a| format!("Waiting for approval: {}", a.prompt));
                self.updated_at = at;
            }
            ManifestUpdate::ApprovalDecided(d) => {
                let d = *d;
                let stage = self.stage(d.index)?;
                if !stage.awaiting_approval() {
                    return Err(ApplyError(format!(
                        "stage `{}` got a decision but is not waiting for one",
                        stage.id
                    )));
                }
                let event = match d.decision {
                    ApprovalState::Approved => CommandEvent::Succeed,
                    ApprovalState::Rejected => CommandEvent::Fail,
                    ApprovalState::Waiting => {
                        return Err(ApplyError("`waiting` is not a decision".into()))
                    }
                };
                stage_to(stage, event)?;
                let approval = stage
                    .approval
                    .as_mut()
                    .expect("awaiting_approval checked the record");
                approval.state = d.decision;
                approval.actor = Some(d.actor.clone());
                approval.reason = d.reason.clone();
                approval.source = Some(d.source.clone());
                approval.decided_at = Some(d.decided_at.clone());
                let request = approval.request;
                stage.completed_at = Some(d.at.clone());
                stage.summary = Some(d.summary);
                stage.outcome = Some(d.decision.as_str().to_owned());
                stage.duration_ms = Some(d.duration_ms);
                let (stage_id, stage_index) = (stage.id.clone(), stage.index);
                self.approvals.push(Approval {
                    actor: d.actor,
                    timestamp: d.decided_at,
                    reason: d.reason,
                });
                self.approval_decisions.push(ApprovalDecision {
                    stage: stage_id,
                    stage_index,
                    request,
                    decision: d.decision,
                    source: d.source,
                });
                self.updated_at = d.at;
            }
            ManifestUpdate::LocksWaiting { index, at, names } => {
                let stage = pending(self.stage(index)?)?;
                stage.locks = Some(Box::new(LockRecord {
                    names,
                    waiting_since: Some(at.clone()),
                    waited_ms: None,
                    acquired_at: None,
                }));
                self.updated_at = at;
            }
            ManifestUpdate::LocksAcquired {
                index,
                at,
                names,
                waited_ms,
            } => {
                let stage = pending(self.stage(index)?)?;
                stage.locks = Some(Box::new(LockRecord {
                    names,
                    waiting_since: None,
                    waited_ms: Some(waited_ms),
                    acquired_at: Some(at.clone()),
                }));
                self.updated_at = at;
            }
            ManifestUpdate::Loop(u) => self.apply_loop(*u)?,
            ManifestUpdate::Delivery(u) => self.apply_delivery(*u)?,
        }
        Ok(())
    }

    /// `.heartbeat` holds the time as one line, as the peer writes it.
    fn heartbeat(&self) -> Option<String> {
        self.heartbeat_at.as_ref().map(|t| format!("{t}\n"))
    }

    /// Sidecar layout: the peer's keys to `manifest.json`, the rest to `manifest.ext.json`.
    /// Inline: one file, and no sidecar left behind.
    fn sidecar(&self) -> SidecarMode {
        match self.extensions {
            Extensions::Inline => SidecarMode::Remove,
            Extensions::Sidecar => SidecarMode::Write,
        }
    }

    fn render_main(&mut self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        match self.extensions {
            Extensions::Inline => pretty_to(out, &*self),
            Extensions::Sidecar => crate::render::write_part(self, Part::Main, out),
        }
    }

    fn render_sidecar(&mut self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        crate::render::write_part(self, Part::Ext, out)
    }
}

#[cfg(test)]
mod tests;
