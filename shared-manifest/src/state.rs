//! Run and stage state machines as explicit transition tables.
//!
//! Every status change in a manifest goes through [`RunStatus::on`] or [`CommandStatus::on`]; a
//! pair that is not in the table is an error the run reports, never a silent overwrite. This is
//! the guard against the peer's class of bug where a missing transition recorded a passed run as
//! failed.

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

    /// The transition table. `None`: the event is illegal in this state.
    pub fn on(self, event: RunEvent) -> Option<RunStatus> {
        use RunEvent as E;
        use RunStatus as S;
        match (self, event) {
            (S::Queued, E::Start) => Some(S::InProgress),
            (S::Queued, E::Cancel) => Some(S::Cancelled),
            (S::InProgress, E::Succeed) => Some(S::Succeeded),
            (S::InProgress, E::Fail) => Some(S::Failed),
            (S::InProgress, E::Cancel) => Some(S::Cancelled),
            // A crashed runner leaves `in_progress`; resume takes it over.
            (S::InProgress, E::Resume) => Some(S::InProgress),
            (S::Failed | S::Cancelled, E::Resume) => Some(S::InProgress),
            // A succeeded run is final: there is nothing left to resume.
            _ => None,
        }
    }

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

    /// The transition table. `None`: the event is illegal in this state.
    pub fn on(self, event: CommandEvent) -> Option<CommandStatus> {
        use CommandEvent as E;
        use CommandStatus as S;
        match (self, event) {
            (S::Pending, E::Start) => Some(S::Running),
            (S::Pending, E::Skip) => Some(S::Skipped),
            // A stage cancelled before it started is recorded as failed by the run's cancel.
            (S::Pending, E::Fail) => Some(S::Failed),
            (S::Running, E::Retry) => Some(S::Running),
            (S::Running, E::Succeed) => Some(S::Succeeded),
            (S::Running, E::Fail) => Some(S::Failed),
            (S::Running, E::Skip) => Some(S::Skipped),
            // Resume re-runs what did not succeed; `running` is what a crashed runner left; a
            // stage skipped because a dependency failed never ran and may run now.
            (S::Failed | S::Running | S::Skipped, E::Reset) => Some(S::Pending),
            _ => None,
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    const RUN_EVENTS: [RunEvent; 5] = [
        RunEvent::Start,
        RunEvent::Succeed,
        RunEvent::Fail,
        RunEvent::Cancel,
        RunEvent::Resume,
    ];
    const CMD_EVENTS: [CommandEvent; 6] = [
        CommandEvent::Start,
        CommandEvent::Retry,
        CommandEvent::Succeed,
        CommandEvent::Fail,
        CommandEvent::Skip,
        CommandEvent::Reset,
    ];

    /// The run table spelled out once more, as data: every pair not listed must be rejected.
    #[test]
    fn run_table_is_exactly_the_listed_transitions() {
        use RunEvent as E;
        use RunStatus as S;
        let listed = [
            (S::Queued, E::Start, S::InProgress),
            (S::Queued, E::Cancel, S::Cancelled),
            (S::InProgress, E::Succeed, S::Succeeded),
            (S::InProgress, E::Fail, S::Failed),
            (S::InProgress, E::Cancel, S::Cancelled),
            (S::InProgress, E::Resume, S::InProgress),
            (S::Failed, E::Resume, S::InProgress),
            (S::Cancelled, E::Resume, S::InProgress),
        ];
        for from in RunStatus::ALL {
            for ev in RUN_EVENTS {
                let expected = listed
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == ev)
                    .map(|t| t.2);
                assert_eq!(from.on(ev), expected, "{from:?} + {ev:?}");
            }
        }
    }

    #[test]
    fn command_table_is_exactly_the_listed_transitions() {
        use CommandEvent as E;
        use CommandStatus as S;
        let listed = [
            (S::Pending, E::Start, S::Running),
            (S::Pending, E::Skip, S::Skipped),
            (S::Pending, E::Fail, S::Failed),
            (S::Running, E::Retry, S::Running),
            (S::Running, E::Succeed, S::Succeeded),
            (S::Running, E::Fail, S::Failed),
            (S::Running, E::Skip, S::Skipped),
            (S::Failed, E::Reset, S::Pending),
            (S::Running, E::Reset, S::Pending),
            (S::Skipped, E::Reset, S::Pending),
        ];
        for from in CommandStatus::ALL {
            for ev in CMD_EVENTS {
                let expected = listed
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == ev)
                    .map(|t| t.2);
                assert_eq!(from.on(ev), expected, "{from:?} + {ev:?}");
            }
        }
    }

    #[test]
    fn succeeded_is_final_and_skipped_only_resets() {
        for ev in RUN_EVENTS {
            assert_eq!(RunStatus::Succeeded.on(ev), None);
        }
        for ev in CMD_EVENTS {
            assert_eq!(CommandStatus::Succeeded.on(ev), None);
            let expected = (ev == CommandEvent::Reset).then_some(CommandStatus::Pending);
            assert_eq!(CommandStatus::Skipped.on(ev), expected);
        }
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
            let end = RunStatus::InProgress.on(ev).expect("in_progress accepts succeed and fail");
            proptest::prop_assert!(end.is_terminal());
        }
    }
}
