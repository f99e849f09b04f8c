//! `Manifest::apply` for the loop stage (`LoopUpdate`) and for delivery (`DeliveryUpdate`).
//! Every change of a loop's phase goes through [`LoopPhase::on`] and every change of a
//! delivery's through [`DeliveryPhase::on`]; the stall and budget rules live here too, so the
//! record can never say something the tables do not allow.

use super::stage_to;
use crate::delivery_state::{DeliveryEvent, DeliveryPhase};
use crate::document::ApplyError;
use crate::loop_state::{LoopEvent, LoopPhase, LoopResult, LoopStep};
use crate::schema::{ChildRun, CommandRecord, Manifest, ProcessRecord};
use crate::state::{CommandEvent, RunStatus};
use crate::work_record::{
    BuildRecord, CiRecord, DeliveryRecord, FeedbackRef, IterationRecord, LoopRecord,
    SnapshotRecord, VerifyRecord,
};

/// A change to a loop stage.
#[derive(Debug, Clone)]
pub struct LoopUpdate {
    /// Stage index.
    pub index: usize,
    /// When.
    pub at: String,
    /// What happened.
    pub change: LoopChange,
}

/// The loop's settings (from the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopSettings {
    /// The verify pipeline.
    pub verify: String,
    /// `maxIterations` (at least 1).
    pub max_iterations: u32,
    /// `maxWallClockMs`.
    pub max_wall_clock_ms: Option<u64>,
    /// `stopWhenUnchanged`.
    pub stop_when_unchanged: bool,
}

/// How a loop stage starts.
#[derive(Debug, Clone)]
pub enum LoopStart {
    /// Its first start: iteration 1 of round 1.
    Fresh {
        /// Settings.
        settings: LoopSettings,
        /// The round's wall-clock deadline.
        deadline: Option<String>,
    },
    /// A resume of a loop that was running or interrupted: same iteration, same step, same
    /// budget.
    Resume,
    /// A resume of a loop that ended exhausted, timed out or stalled: a new round, numbered on.
    NewRound {
        /// Settings (the config may have changed).
        settings: LoopSettings,
        /// The round's wall-clock deadline.
        deadline: Option<String>,
    },
}

/// Why a loop stops before passing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopStop {
    /// The iteration budget is spent (after the last feedback).
    BudgetSpent,
    /// The wall-clock budget ran out.
    Timeout,
    /// Cancelled: resumable in its step.
    Cancelled,
    /// The runner failed: resumable in its step.
    Error,
}

/// What happened to a loop stage.
#[derive(Debug, Clone)]
pub enum LoopChange {
    /// The stage starts (`pending` -> `running`).
    Began {
        /// The build command (the stage's `command`).
        command: String,
        /// How.
        start: LoopStart,
    },
    /// A snapshot was taken: before the build, or after it. After it, the stall rule decides
    /// between verifying and `stalled` ([`LoopRecord::stalls`]).
    SnapshotTaken(SnapshotRecord),
    /// The build starts (again, after a crash), with this feedback.
    BuildStarted {
        /// The feedback given to it.
        feedback: Option<FeedbackRef>,
        /// Its log, repo-relative (also the stage's `log_path`).
        log_path: String,
    },
    /// The build's process, for a later resume to find survivors.
    BuildSpawned(ProcessRecord),
    /// The build ended.
    BuildEnded(BuildRecord),
    /// The verify child run started (or was taken over by a resume).
    VerifyStarted(ChildRun),
    /// The verify child run ended `succeeded` or `failed`.
    VerifyEnded {
        /// Its status.
        status: RunStatus,
    },
    /// Feedback was written for the next build.
    FeedbackWritten(FeedbackRef),
    /// On to the next iteration (iterations are left).
    NextIteration,
    /// The loop stops without passing.
    Stopped(LoopStop),
}

/// A change to the run's deliveries.
#[derive(Debug, Clone)]
pub enum DeliveryUpdate {
    /// The deliveries the run will make, in config order, all pending. A resume that finds the
    /// same kinds recorded keeps them (and their results).
    Planned {
        /// Their kinds.
        kinds: Vec<String>,
    },
    /// One delivery moves on.
    Step {
        /// Its position in `delivery[]`.
        position: usize,
        /// When.
        at: String,
        /// What happened.
        event: DeliveryEvent,
        /// What it learned on the way (set fields only).
        patch: Box<DeliveryPatch>,
    },
}

/// Fields a delivery step records; `None` leaves a field as it was.
#[derive(Debug, Clone, Default)]
pub struct DeliveryPatch {
    /// Why it failed or was skipped.
    pub error: Option<String>,
    /// Evidence directory.
    pub evidence_dir: Option<String>,
    /// The in-toto statement.
    pub statement: Option<String>,
    /// Tree digest.
    pub tree: Option<String>,
    /// Remote.
    pub remote: Option<String>,
    /// Branch.
    pub branch: Option<String>,
    /// Commit.
    pub commit: Option<String>,
    /// Its parent.
    pub parent: Option<String>,
    /// Pushed.
    pub pushed: Option<bool>,
    /// Base branch.
    pub base: Option<String>,
    /// Draft.
    pub draft: Option<bool>,
    /// PR URL.
    pub url: Option<String>,
    /// PR number.
    pub number: Option<u64>,
    /// Checks.
    pub ci: Option<CiRecord>,
}

impl LoopRecord {
    /// True when a snapshot after the build with tree `after` stalls the loop: the build
    /// changed nothing, after a failed verify, with `stopWhenUnchanged`.
    pub fn stalls(&self, after: &str) -> bool {
        let unchanged = self
            .current()
            .and_then(|i| i.before.as_ref())
            .is_some_and(|b| b.tree == after);
        self.stop_when_unchanged && unchanged && self.had_failed_verify()
    }

    /// Moves through the loop table; `why` says what an interruption was.
    fn go(&mut self, event: LoopEvent, why: LoopResult) -> Result<LoopPhase, ApplyError> {
        let from = self.state();
        let next = from
            .on(event)
            .ok_or_else(|| ApplyError(format!("illegal loop transition: {from:?} on {event:?}")))?;
        self.phase = next.step(self.phase);
        self.result = next.result(why);
        Ok(next)
    }

    fn in_step(&self, step: LoopStep, what: &str) -> Result<(), ApplyError> {
        if self.state() == LoopPhase::Active(step) {
            Ok(())
        } else {
            Err(ApplyError(format!(
                "a loop {what} in phase {:?}",
                self.state()
            )))
        }
    }

    fn iteration_mut(&mut self) -> Result<&mut IterationRecord, ApplyError> {
        let n = self.iteration;
        self.current_mut()
            .ok_or_else(|| ApplyError(format!("no record of loop iteration {n}")))
    }

    fn begin_iteration(&mut self, at: &str) {
        self.iterations.push(IterationRecord {
            iteration: self.iteration,
            round: self.round,
            started_at: at.to_owned(),
            completed_at: None,
            feedback: None,
            before: None,
            builds_started: 0,
            build: None,
            after: None,
            changed: None,
            verify: None,
            end: None,
        });
    }

    fn end_iteration(&mut self, at: &str, end: &str) -> Result<(), ApplyError> {
        let it = self.iteration_mut()?;
        it.completed_at = Some(at.to_owned());
        it.end = Some(end.to_owned());
        Ok(())
    }

    fn settle(&mut self, s: LoopSettings) {
        self.verify = s.verify;
        self.max_iterations = s.max_iterations;
        self.max_wall_clock_ms = s.max_wall_clock_ms;
        self.stop_when_unchanged = s.stop_when_unchanged;
    }
}

fn loop_of(stage: &mut CommandRecord) -> Result<&mut LoopRecord, ApplyError> {
    let id = stage.id.clone();
    stage
        .loop_record
        .as_deref_mut()
        .ok_or_else(|| ApplyError(format!("stage `{id}` has no loop record")))
}

impl Manifest {
    pub(super) fn apply_loop(&mut self, u: LoopUpdate) -> Result<(), ApplyError> {
        let LoopUpdate { index, at, change } = u;
        let stage = self.stage(index)?;
        let mut child = None;
        match change {
            LoopChange::Began { command, start } => {
                // Decide the record first: a refused update leaves the stage as it was.
                let rec = match start {
                    LoopStart::Fresh { settings, deadline } => {
                        if stage.loop_record.is_some() {
                            return Err(ApplyError(format!(
                                "stage `{}` already has a loop record",
                                stage.id
                            )));
                        }
                        let mut rec = LoopRecord {
                            verify: String::new(),
                            max_iterations: settings.max_iterations,
                            max_wall_clock_ms: None,
                            stop_when_unchanged: true,
                            iteration: 1,
                            limit: settings.max_iterations.max(1),
                            round: 1,
                            deadline,
                            phase: LoopStep::Pending,
                            result: None,
                            feedback: None,
                            iterations: Vec::new(),
                        };
                        rec.settle(settings);
                        rec.go(LoopEvent::Start, LoopResult::Error)?;
                        rec.begin_iteration(&at);
                        rec
                    }
                    LoopStart::Resume => {
                        let mut rec = loop_of(stage)?.clone();
                        rec.go(LoopEvent::Resume, LoopResult::Error)?;
                        rec
                    }
                    LoopStart::NewRound { settings, deadline } => {
                        let mut rec = loop_of(stage)?.clone();
                        rec.go(LoopEvent::NewRound, LoopResult::Error)?;
                        rec.settle(settings);
                        rec.round += 1;
                        rec.iteration += 1;
                        rec.limit = rec.iteration + rec.max_iterations.max(1) - 1;
                        rec.deadline = deadline;
                        rec.begin_iteration(&at);
                        rec
                    }
                };
                stage_to(stage, CommandEvent::Start)?;
                stage.started_at = Some(at.clone());
                stage.command = Some(command);
                stage.loop_record = Some(Box::new(rec));
            }
            LoopChange::SnapshotTaken(snap) => {
                let rec = loop_of(stage)?;
                match rec.state() {
                    LoopPhase::Active(LoopStep::SnapshotBefore) => {
                        rec.go(LoopEvent::Snapshotted, LoopResult::Error)?;
                        rec.iteration_mut()?.before = Some(snap);
                    }
                    LoopPhase::Active(LoopStep::SnapshotAfter) => {
                        let stalls = rec.stalls(&snap.tree);
                        let event = if stalls {
                            LoopEvent::Unchanged
                        } else {
                            LoopEvent::Snapshotted
                        };
                        rec.go(event, LoopResult::Error)?;
                        let it = rec.iteration_mut()?;
                        it.changed = it.before.as_ref().map(|b| b.tree != snap.tree);
                        it.after = Some(snap);
                        if stalls {
                            rec.end_iteration(&at, "stalled")?;
                        }
                    }
                    other => return Err(ApplyError(format!("a loop snapshot in phase {other:?}"))),
                }
            }
            LoopChange::BuildStarted { feedback, log_path } => {
                let rec = loop_of(stage)?;
                rec.in_step(LoopStep::Building, "build started")?;
                let it = rec.iteration_mut()?;
                it.builds_started += 1;
                it.feedback = feedback;
                stage.log_path = Some(log_path);
            }
            LoopChange::BuildSpawned(process) => {
                loop_of(stage)?.in_step(LoopStep::Building, "build process")?;
                stage.process = Some(process);
            }
            LoopChange::BuildEnded(build) => {
                let rec = loop_of(stage)?;
                rec.go(LoopEvent::Built, LoopResult::Error)?;
                // The build's record is the iteration's; `Built` moved the step on, so find the
                // iteration by number.
                rec.iteration_mut()?.build = Some(build);
            }
            LoopChange::VerifyStarted(c) => {
                let rec = loop_of(stage)?;
                rec.in_step(LoopStep::Verifying, "verify run")?;
                rec.iteration_mut()?.verify = Some(VerifyRecord {
                    run_id: c.run_id.clone(),
                    pipeline_id: c.pipeline_id.clone(),
                    manifest: c.manifest.clone(),
                    started_at: at.clone(),
                    completed_at: None,
                    status: c.status,
                    verdict: None,
                });
                stage.sub_run_id = Some(c.run_id.clone());
                child = Some(c);
            }
            LoopChange::VerifyEnded { status } => {
                let rec = loop_of(stage)?;
                let (event, verdict) = match status {
                    RunStatus::Succeeded => (LoopEvent::VerifyPassed, "passed"),
                    RunStatus::Failed => (LoopEvent::VerifyFailed, "failed"),
                    other => {
                        return Err(ApplyError(format!(
                            "a verify run that is {} has no verdict",
                            other.as_str()
                        )))
                    }
                };
                rec.go(event, LoopResult::Error)?;
                let it = rec.iteration_mut()?;
                let v = it
                    .verify
                    .as_mut()
                    .ok_or_else(|| ApplyError("a verdict without a verify run".into()))?;
                v.status = status;
                v.verdict = Some(verdict.to_owned());
                v.completed_at = Some(at.clone());
                let run_id = v.run_id.clone();
                if status == RunStatus::Succeeded {
                    rec.end_iteration(&at, "passed")?;
                }
                if let Some(c) = self.child_runs.iter_mut().find(|c| c.run_id == run_id) {
                    c.status = status;
                }
                let stage = self.stage(index)?;
                let progress = stage.loop_record.as_deref().map(LoopRecord::progress);
                stage.summary = progress;
                self.updated_at = at;
                return Ok(());
            }
            LoopChange::FeedbackWritten(f) => {
                let rec = loop_of(stage)?;
                rec.in_step(LoopStep::Feedback, "feedback")?;
                rec.feedback = Some(f);
            }
            LoopChange::NextIteration => {
                let rec = loop_of(stage)?;
                if rec.iteration >= rec.limit {
                    return Err(ApplyError(format!(
                        "loop iteration {} is the last of the budget ({})",
                        rec.iteration, rec.limit
                    )));
                }
                rec.go(LoopEvent::NextIteration, LoopResult::Error)?;
                rec.end_iteration(&at, "failed")?;
                rec.iteration += 1;
                rec.begin_iteration(&at);
            }
            LoopChange::Stopped(stop) => {
                let rec = loop_of(stage)?;
                let (event, why, end) = match stop {
                    LoopStop::BudgetSpent => {
                        (LoopEvent::BudgetSpent, LoopResult::Error, Some("exhausted"))
                    }
                    LoopStop::Timeout => (LoopEvent::Timeout, LoopResult::Error, Some("timeout")),
                    LoopStop::Cancelled => (LoopEvent::Interrupt, LoopResult::Cancelled, None),
                    LoopStop::Error => (LoopEvent::Interrupt, LoopResult::Error, None),
                };
                rec.go(event, why)?;
                if let Some(end) = end {
                    rec.end_iteration(&at, end)?;
                }
            }
        }
        let progress = stage.loop_record.as_deref().map(LoopRecord::progress);
        if stage.status == crate::state::CommandStatus::Running {
            // While the stage runs its summary says where the loop is; its end replaces it.
            stage.summary = progress;
        }
        if let Some(c) = child {
            match self.child_runs.iter_mut().find(|k| k.run_id == c.run_id) {
                Some(known) => *known = c,
                None => self.child_runs.push(c),
            }
        }
        self.updated_at = at;
        Ok(())
    }

    pub(super) fn apply_delivery(&mut self, u: DeliveryUpdate) -> Result<(), ApplyError> {
        match u {
            DeliveryUpdate::Planned { kinds } => {
                let same = self.delivery.len() == kinds.len()
                    && self.delivery.iter().zip(&kinds).all(|(d, k)| d.kind == *k);
                if !same {
                    self.delivery = kinds.iter().map(|k| DeliveryRecord::pending(k)).collect();
                }
            }
            DeliveryUpdate::Step {
                position,
                at,
                event,
                patch,
            } => {
                let starts = matches!(event, DeliveryEvent::Bundle | DeliveryEvent::Commit);
                if starts && self.status != RunStatus::Succeeded {
                    return Err(ApplyError(format!(
                        "a run that is {} delivers nothing",
                        self.status.as_str()
                    )));
                }
                let d = self
                    .delivery
                    .get_mut(position)
                    .ok_or_else(|| ApplyError(format!("no delivery at position {position}")))?;
                let from = d.phase;
                let next = from.on(event).ok_or_else(|| {
                    ApplyError(format!(
                        "illegal transition of delivery `{}`: {from:?} on {event:?}",
                        d.kind
                    ))
                })?;
                d.phase = next;
                d.status = next.status().to_owned();
                if starts {
                    d.started_at = Some(at.clone());
                }
                if event == DeliveryEvent::Retry {
                    d.completed_at = None;
                    d.error = None;
                }
                if next.is_terminal() {
                    d.completed_at = Some(at.clone());
                }
                patch_record(d, *patch);
                if next == DeliveryPhase::Delivered || next == DeliveryPhase::NoChange {
                    d.error = None;
                }
                self.updated_at = at;
            }
        }
        Ok(())
    }
}

fn patch_record(d: &mut DeliveryRecord, p: DeliveryPatch) {
    fn set<T>(slot: &mut Option<T>, v: Option<T>) {
        if v.is_some() {
            *slot = v;
        }
    }
    set(&mut d.error, p.error);
    set(&mut d.evidence_dir, p.evidence_dir);
    set(&mut d.statement, p.statement);
    set(&mut d.tree, p.tree);
    set(&mut d.remote, p.remote);
    set(&mut d.branch, p.branch);
    set(&mut d.commit, p.commit);
    set(&mut d.parent, p.parent);
    set(&mut d.pushed, p.pushed);
    set(&mut d.base, p.base);
    set(&mut d.draft, p.draft);
    set(&mut d.url, p.url);
    set(&mut d.number, p.number);
    set(&mut d.ci, p.ci);
}

#[cfg(test)]
mod tests;
