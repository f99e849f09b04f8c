//! Run and stage state machines as explicit transition tables.
//!
//! Every status change in a manifest goes through [`RunPhase::on`] or [`StagePhase::on`]; a
//! pair that is not in the table is an error the run reports, never a silent overwrite. This is
//! the guard against the peer's class of bug where a missing transition recorded a passed run as
//! failed.
//!
//! The phases are finer than the statuses the peer's schema can spell: a run can be `Paused`
//! and a stage `AwaitingApproval`. Each phase projects onto the peer's enum ([`RunPhase::status`],
//! [`StagePhase::status`]: paused is `in_progress`, awaiting approval is `running`, as the peer
//! itself records a paused run) and the detail lives in our extension fields (`paused`, a
//! stage's `approval`), from which [`RunPhase::of`] and [`StagePhase::of`] read it back.

use serde::{Deserialize, Serialize};

/// Status of a run (the peer's enum).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, nothing started yet.
    Queued,
    /// A runner owns the run and stages may be running.
    InProgress,
    /// Every stage ended succeeded or skipped.
    Succeeded,
    /// A stage failed (or the runner could not continue).
    Failed,
    /// Cancelled by a signal or `cancel`.
    Cancelled,
}

/// What can happen to a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunEvent {
    /// A runner starts executing stages.
    Start,
    /// All stages done without a blocking failure.
    Succeed,
    /// A blocking failure.
    Fail,
    /// Cancelled.
    Cancel,
    /// `resume` takes the run over (after a failure, a cancel or a crashed runner).
    Resume,
    /// A `pause` request: no new stage starts until `Unpause`.
    Pause,
    /// A `resume` request of the control protocol (our `unpause`): stages start again.
    Unpause,
}

impl RunEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [RunEvent; 7] = [
        RunEvent::Start,
        RunEvent::Succeed,
        RunEvent::Fail,
        RunEvent::Cancel,
        RunEvent::Resume,
        RunEvent::Pause,
        RunEvent::Unpause,
    ];
}

/// A run's state in the detail the runner needs: the peer's statuses, with `in_progress` split
/// into running and paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunPhase {
    /// Created and waiting for a run slot (`maxConcurrentRuns`); no stage started.
    Queued,
    /// A runner owns the run and starts stages.
    Running,
    /// A runner owns the run but starts no new stage (a `pause` request); running stages go on.
    Paused,
    /// Every stage ended succeeded or skipped.
    Succeeded,
    /// A stage failed, or the run was stopped as failed (budget, `fail` request, runner error).
    Failed,
    /// Cancelled by a signal or a `cancel` request.
    Cancelled,
}

impl RunPhase {
    /// Every phase, for exhaustive tests.
    pub const ALL: [RunPhase; 6] = [
        RunPhase::Queued,
        RunPhase::Running,
        RunPhase::Paused,
        RunPhase::Succeeded,
        RunPhase::Failed,
        RunPhase::Cancelled,
    ];

    /// The transition table of a run. `None`: the event is illegal in this phase.
    pub fn on(self, event: RunEvent) -> Option<RunPhase> {
        use RunEvent as E;
        use RunPhase as P;
        match (self, event) {
            (P::Queued, E::Start) => Some(P::Running),
            // Interrupted while waiting for a slot, or a runner error before it got one.
            (P::Queued, E::Cancel) => Some(P::Cancelled),
            (P::Queued, E::Fail) => Some(P::Failed),
            // The runner of a queued run died; `resume` takes a slot and runs it.
            (P::Queued, E::Resume) => Some(P::Running),
            (P::Running, E::Succeed) => Some(P::Succeeded),
            (P::Running, E::Fail) => Some(P::Failed),
            (P::Running, E::Cancel) => Some(P::Cancelled),
            // A crashed runner leaves `in_progress`; resume takes it over.
            (P::Running, E::Resume) => Some(P::Running),
            (P::Running, E::Pause) => Some(P::Paused),
            (P::Paused, E::Unpause) => Some(P::Running),
            // A pause holds back stages not started yet; a run with none left still ends, and
            // a paused run can be stopped.
            (P::Paused, E::Succeed) => Some(P::Succeeded),
            (P::Paused, E::Fail) => Some(P::Failed),
            (P::Paused, E::Cancel) => Some(P::Cancelled),
            // A pause belongs to the runner that honoured it: a resumed run runs.
            (P::Paused, E::Resume) => Some(P::Running),
            (P::Failed | P::Cancelled, E::Resume) => Some(P::Running),
            // As on the peer, resuming a succeeded run is accepted and recorded; every stage is
            // done, so it runs nothing and succeeds again.
            (P::Succeeded, E::Resume) => Some(P::Running),
            _ => None,
        }
    }

    /// The peer's status for this phase.
    pub fn status(self) -> RunStatus {
        match self {
            RunPhase::Queued => RunStatus::Queued,
            RunPhase::Running | RunPhase::Paused => RunStatus::InProgress,
            RunPhase::Succeeded => RunStatus::Succeeded,
            RunPhase::Failed => RunStatus::Failed,
            RunPhase::Cancelled => RunStatus::Cancelled,
        }
    }

    /// The phase of a recorded run: its status, and whether a pause is recorded.
    pub fn of(status: RunStatus, paused: bool) -> RunPhase {
        match status {
            RunStatus::Queued => RunPhase::Queued,
            RunStatus::InProgress if paused => RunPhase::Paused,
            RunStatus::InProgress => RunPhase::Running,
            RunStatus::Succeeded => RunPhase::Succeeded,
            RunStatus::Failed => RunPhase::Failed,
            RunStatus::Cancelled => RunPhase::Cancelled,
        }
    }
}

impl RunStatus {
    /// Every status, for exhaustive tests.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::InProgress,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// True for `succeeded`, `failed` and `cancelled`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// The status as the manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::InProgress => "in_progress",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }
}

/// Status of one stage (the peer's enum).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CommandStatus {
    /// Not started.
    Pending,
    /// An attempt is running.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended badly (including timeouts and cancellation).
    Failed,
    /// Did not count: failed under `allowFailure`, or not run because a dependency failed.
    Skipped,
}

/// What can happen to a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandEvent {
    /// An attempt starts.
    Start,
    /// A failed attempt is retried (stays running).
    Retry,
    /// The final attempt succeeded.
    Succeed,
    /// The final attempt failed.
    Fail,
    /// Failed under `allowFailure`, or never run because of its dependencies.
    Skip,
    /// Resume puts an unfinished stage back to pending.
    Reset,
    /// An approval stage asks for a decision and waits for it.
    AwaitApproval,
}

impl CommandEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [CommandEvent; 7] = [
        CommandEvent::Start,
        CommandEvent::Retry,
        CommandEvent::Succeed,
        CommandEvent::Fail,
        CommandEvent::Skip,
        CommandEvent::Reset,
        CommandEvent::AwaitApproval,
    ];
}

/// A stage's state in the detail the runner needs: the peer's statuses, plus waiting for an
/// approval decision (recorded `running`, with the stage's `approval` record saying `waiting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StagePhase {
    /// Not started.
    Pending,
    /// An attempt is running.
    Running,
    /// An approval stage waits for a decision (or its deadline).
    AwaitingApproval,
    /// Ended well (an approval: approved).
    Succeeded,
    /// Ended badly (an approval: rejected, or stopped while waiting).
    Failed,
    /// Did not count: failed under `allowFailure`, or not run because a dependency failed.
    Skipped,
}

impl StagePhase {
    /// Every phase, for exhaustive tests.
    pub const ALL: [StagePhase; 6] = [
        StagePhase::Pending,
        StagePhase::Running,
        StagePhase::AwaitingApproval,
        StagePhase::Succeeded,
        StagePhase::Failed,
        StagePhase::Skipped,
    ];

    /// The transition table of a stage. `None`: the event is illegal in this phase.
    pub fn on(self, event: CommandEvent) -> Option<StagePhase> {
        use CommandEvent as E;
        use StagePhase as S;
        match (self, event) {
            (S::Pending, E::Start) => Some(S::Running),
            (S::Pending, E::Skip) => Some(S::Skipped),
            // A stage cancelled before it started is recorded as failed by the run's cancel.
            (S::Pending, E::Fail) => Some(S::Failed),
            (S::Pending, E::AwaitApproval) => Some(S::AwaitingApproval),
            (S::Running, E::Retry) => Some(S::Running),
            (S::Running, E::Succeed) => Some(S::Succeeded),
            (S::Running, E::Fail) => Some(S::Failed),
            (S::Running, E::Skip) => Some(S::Skipped),
            // Approved; rejected, or stopped while waiting (cancel, budget).
            (S::AwaitingApproval, E::Succeed) => Some(S::Succeeded),
            (S::AwaitingApproval, E::Fail) => Some(S::Failed),
            // Resume re-runs what did not succeed; `running` (or waiting) is what a crashed
            // runner left; a stage skipped because a dependency failed never ran and may run now;
            // a succeeded stage runs again when what it depends on changed (`--rerun-changed`).
            (
                S::Failed | S::Running | S::AwaitingApproval | S::Skipped | S::Succeeded,
                E::Reset,
            ) => Some(S::Pending),
            _ => None,
        }
    }

    /// The peer's status for this phase.
    pub fn status(self) -> CommandStatus {
        match self {
            StagePhase::Pending => CommandStatus::Pending,
            StagePhase::Running | StagePhase::AwaitingApproval => CommandStatus::Running,
            StagePhase::Succeeded => CommandStatus::Succeeded,
            StagePhase::Failed => CommandStatus::Failed,
            StagePhase::Skipped => CommandStatus::Skipped,
        }
    }

    /// The phase of a recorded stage: its status, and whether its approval is waiting.
    pub fn of(status: CommandStatus, awaiting_approval: bool) -> StagePhase {
        match status {
            CommandStatus::Pending => StagePhase::Pending,
            CommandStatus::Running if awaiting_approval => StagePhase::AwaitingApproval,
            CommandStatus::Running => StagePhase::Running,
            CommandStatus::Succeeded => StagePhase::Succeeded,
            CommandStatus::Failed => StagePhase::Failed,
            CommandStatus::Skipped => StagePhase::Skipped,
        }
    }
}

impl CommandStatus {
    /// Every status, for exhaustive tests.
    pub const ALL: [CommandStatus; 5] = [
        CommandStatus::Pending,
        CommandStatus::Running,
        CommandStatus::Succeeded,
        CommandStatus::Failed,
        CommandStatus::Skipped,
    ];

    /// True for `succeeded`, `failed` and `skipped`.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CommandStatus::Succeeded | CommandStatus::Failed | CommandStatus::Skipped
        )
    }

    /// The status as the manifest spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Pending => "pending",
            CommandStatus::Running => "running",
            CommandStatus::Succeeded => "succeeded",
            CommandStatus::Failed => "failed",
            CommandStatus::Skipped => "skipped",
        }
    }
}

/// A run's terminal status as a function of its stages' terminal statuses: any failed stage
/// fails the run, otherwise it succeeded. (Cancellation is decided by the runner, not by the
/// stages, and is applied with [`RunEvent::Cancel`].)
pub fn run_outcome(stages: &[CommandStatus]) -> RunEvent {
    if stages.contains(&CommandStatus::Failed) {
        RunEvent::Fail
    } else {
        RunEvent::Succeed
    }
}

/// Test support for the transition tables (run, stage, delivery, loop): `on` allows exactly
/// the `listed` transitions, and refuses every other pair of `phases` and `events`. Returns
/// the pairs checked, so a table's test can say it saw them all.
#[cfg(test)]
pub(crate) fn assert_exactly_listed<P, E>(
    phases: impl IntoIterator<Item = P>,
    events: &[E],
    on: impl Fn(P, E) -> Option<P>,
    listed: &[(P, E, P)],
) -> usize
where
    P: Copy + PartialEq + std::fmt::Debug,
    E: Copy + PartialEq + std::fmt::Debug,
{
    let mut pairs = 0;
    for from in phases {
        for &ev in events {
            let expected = listed
                .iter()
                .find(|(f, e, _)| *f == from && *e == ev)
                .map(|t| t.2);
            assert_eq!(on(from, ev), expected, "{from:?} + {ev:?}");
            pairs += 1;
        }
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The run table spelled out once more, as data: every pair not listed must be rejected.
    #[test]
    fn run_table_is_exactly_the_listed_transitions() {
        use RunEvent as E;
        use RunPhase as P;
        let listed = [
            (P::Queued, E::Start, P::Running),
            (P::Queued, E::Cancel, P::Cancelled),
            (P::Queued, E::Fail, P::Failed),
            (P::Queued, E::Resume, P::Running),
            (P::Running, E::Succeed, P::Succeeded),
            (P::Running, E::Fail, P::Failed),
            (P::Running, E::Cancel, P::Cancelled),
            (P::Running, E::Resume, P::Running),
            (P::Running, E::Pause, P::Paused),
            (P::Paused, E::Unpause, P::Running),
            (P::Paused, E::Succeed, P::Succeeded),
            (P::Paused, E::Fail, P::Failed),
            (P::Paused, E::Cancel, P::Cancelled),
            (P::Paused, E::Resume, P::Running),
            (P::Failed, E::Resume, P::Running),
            (P::Cancelled, E::Resume, P::Running),
            (P::Succeeded, E::Resume, P::Running),
        ];
        assert_exactly_listed(RunPhase::ALL, &RunEvent::ALL, RunPhase::on, &listed);
    }

    #[test]
    fn stage_table_is_exactly_the_listed_transitions() {
        use CommandEvent as E;
        use StagePhase as S;
        let listed = [
            (S::Pending, E::Start, S::Running),
            (S::Pending, E::Skip, S::Skipped),
            (S::Pending, E::Fail, S::Failed),
            (S::Pending, E::AwaitApproval, S::AwaitingApproval),
            (S::Running, E::Retry, S::Running),
            (S::Running, E::Succeed, S::Succeeded),
            (S::Running, E::Fail, S::Failed),
            (S::Running, E::Skip, S::Skipped),
            (S::AwaitingApproval, E::Succeed, S::Succeeded),
            (S::AwaitingApproval, E::Fail, S::Failed),
            (S::AwaitingApproval, E::Reset, S::Pending),
            (S::Failed, E::Reset, S::Pending),
            (S::Running, E::Reset, S::Pending),
            (S::Skipped, E::Reset, S::Pending),
            (S::Succeeded, E::Reset, S::Pending),
        ];
        assert_exactly_listed(StagePhase::ALL, &CommandEvent::ALL, StagePhase::on, &listed);
    }

    #[test]
    fn succeeded_only_resumes_and_only_resets_leave_a_finished_stage() {
        for ev in RunEvent::ALL {
            let expected = (ev == RunEvent::Resume).then_some(RunPhase::Running);
            assert_eq!(RunPhase::Succeeded.on(ev), expected);
        }
        for ev in CommandEvent::ALL {
            let expected = (ev == CommandEvent::Reset).then_some(StagePhase::Pending);
            assert_eq!(StagePhase::Succeeded.on(ev), expected);
            let expected = (ev == CommandEvent::Reset).then_some(StagePhase::Pending);
            assert_eq!(StagePhase::Skipped.on(ev), expected);
        }
    }

    /// A phase read back from its projection and its detail flag is the phase itself, and
    /// every recorded status reads back as a phase that projects onto it.
    #[test]
    fn phases_round_trip_through_the_record() {
        for p in RunPhase::ALL {
            assert_eq!(RunPhase::of(p.status(), p == RunPhase::Paused), p);
        }
        for s in RunStatus::ALL {
            assert_eq!(RunPhase::of(s, false).status(), s);
        }
        for p in StagePhase::ALL {
            assert_eq!(
                StagePhase::of(p.status(), p == StagePhase::AwaitingApproval),
                p
            );
        }
        for s in CommandStatus::ALL {
            assert_eq!(StagePhase::of(s, false).status(), s);
        }
    }

    /// The new phases never leak a status the peer's schema lacks, and never pass for done.
    #[test]
    fn paused_and_awaiting_approval_are_in_progress_to_the_peer() {
        assert_eq!(RunPhase::Paused.status(), RunStatus::InProgress);
        assert!(!RunPhase::Paused.status().is_terminal());
        assert_eq!(RunPhase::Queued.status(), RunStatus::Queued);
        assert_eq!(
            StagePhase::AwaitingApproval.status(),
            CommandStatus::Running
        );
        assert!(!StagePhase::AwaitingApproval.status().is_terminal());
    }

    proptest::proptest! {
        /// Any mix of terminal stage statuses maps to exactly one run outcome, and the run fails
        /// if and only if some stage failed.
        #[test]
        fn run_outcome_follows_stages(stages in proptest::collection::vec(0u8..3, 0..40)) {
            let stages: Vec<CommandStatus> = stages.iter().map(|s| match s {
                0 => CommandStatus::Succeeded, 1 => CommandStatus::Failed, _ => CommandStatus::Skipped,
            }).collect();
            let ev = run_outcome(&stages);
            let any_failed = stages.contains(&CommandStatus::Failed);
            proptest::prop_assert_eq!(ev == RunEvent::Fail, any_failed);
            for from in [RunPhase::Running, RunPhase::Paused] {
                let end = from.on(ev).expect("running and paused accept succeed and fail");
                proptest::prop_assert!(end.status().is_terminal());
            }
        }
    }
}
