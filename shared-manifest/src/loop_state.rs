//! The phases of a loop stage (build -> verify -> feedback) as an explicit transition table,
//! like the run and stage machines in `state`.
//!
//! One iteration walks `snapshot-before -> building -> snapshot-after -> verifying`, then either
//! ends the loop (`Passed`, or `Stalled` when the build changed nothing after a failed verify) or
//! goes through `feedback` to the next iteration (or `Exhausted` when the iteration budget is
//! spent). `Timeout` (the wall-clock budget) ends it from any active step. A cancel or a runner
//! error *interrupts* it: the step it was in is kept, so a resume continues exactly there, as
//! it does after a crash (which leaves the step active). The terminal verdicts `Exhausted`,
//! `TimedOut` and `Stalled` fail the stage; a resume of the run starts a new round of
//! iterations after them (with a new budget) rather than repeating any completed iteration.
//!
//! On disk the phase is two fields of the stage's `loop` record: `phase` (the step) and
//! `result` (absent while the loop runs); [`LoopPhase::of`] reads them back.

use serde::{Deserialize, Serialize};

use crate::state::CommandEvent;

/// A step of one iteration, as the record's `phase` spells it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum LoopStep {
    /// Not started.
    #[serde(rename = "pending")]
    Pending,
    /// Taking the snapshot before the build.
    #[serde(rename = "snapshot-before")]
    SnapshotBefore,
    /// The build command runs.
    #[serde(rename = "building")]
    Building,
    /// Taking the snapshot after the build.
    #[serde(rename = "snapshot-after")]
    SnapshotAfter,
    /// The verify pipeline runs as a child run.
    #[serde(rename = "verifying")]
    Verifying,
    /// The verify run failed: its failures are written for the next build.
    #[serde(rename = "feedback")]
    Feedback,
}

impl LoopStep {
    /// Every step, for exhaustive tests.
    pub const ALL: [LoopStep; 6] = [
        LoopStep::Pending,
        LoopStep::SnapshotBefore,
        LoopStep::Building,
        LoopStep::SnapshotAfter,
        LoopStep::Verifying,
        LoopStep::Feedback,
    ];

    /// What the loop is doing, for progress lines (`iteration 2/5: verifying`).
    pub fn doing(self) -> &'static str {
        match self {
            LoopStep::Pending => "starting",
            LoopStep::SnapshotBefore => "snapshot before the build",
            LoopStep::Building => "building",
            LoopStep::SnapshotAfter => "snapshot after the build",
            LoopStep::Verifying => "verifying",
            LoopStep::Feedback => "writing feedback",
        }
    }
}

/// How a loop ended (the record's `result`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum LoopResult {
    /// The verify run passed: the stage succeeded.
    Passed,
    /// Every iteration of the budget ran and the last verify failed (`loop-exhausted`).
    Exhausted,
    /// The wall-clock budget ran out (`loop-timeout`).
    Timeout,
    /// The build changed nothing after a failed verify (`loop-stalled`).
    Stalled,
    /// Cancelled (a signal, `cancel`): interrupted, resumable where it stopped.
    Cancelled,
    /// The runner failed (storage, internal error): interrupted, resumable where it stopped.
    Error,
}

impl LoopResult {
    /// The stage's `outcome` and the tail of the run's `status_detail` (`loop-exhausted`).
    pub fn detail(self) -> &'static str {
        match self {
            LoopResult::Passed => "loop-passed",
            LoopResult::Exhausted => "loop-exhausted",
            LoopResult::Timeout => "loop-timeout",
            LoopResult::Stalled => "loop-stalled",
            LoopResult::Cancelled => "cancelled",
            LoopResult::Error => "loop-error",
        }
    }
}

/// What can happen to a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopEvent {
    /// The stage starts its first iteration.
    Start,
    /// A snapshot was taken and recorded.
    Snapshotted,
    /// The build ended (whatever its exit code: a failing build is fed back, not a stop).
    Built,
    /// The build changed nothing after a failed verify, with `stopWhenUnchanged`.
    Unchanged,
    /// The verify run succeeded.
    VerifyPassed,
    /// The verify run failed.
    VerifyFailed,
    /// The feedback is written and iterations are left.
    NextIteration,
    /// The feedback is written and the iteration budget is spent.
    BudgetSpent,
    /// The wall-clock budget ran out.
    Timeout,
    /// Cancelled, or the runner failed: the step is kept for a resume.
    Interrupt,
    /// A runner takes the loop over where the record says it was (after a crash or an
    /// interruption).
    Resume,
    /// A resume of a loop that ended exhausted, timed out or stalled: a new round of
    /// iterations, numbered on from the last.
    NewRound,
}

impl LoopEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [LoopEvent; 12] = [
        LoopEvent::Start,
        LoopEvent::Snapshotted,
        LoopEvent::Built,
        LoopEvent::Unchanged,
        LoopEvent::VerifyPassed,
        LoopEvent::VerifyFailed,
        LoopEvent::NextIteration,
        LoopEvent::BudgetSpent,
        LoopEvent::Timeout,
        LoopEvent::Interrupt,
        LoopEvent::Resume,
        LoopEvent::NewRound,
    ];
}

/// A loop's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoopPhase {
    /// Not started.
    Pending,
    /// Running this step.
    Active(LoopStep),
    /// Stopped in this step by a cancel or an error; a resume continues here.
    Interrupted(LoopStep),
    /// The verify run passed.
    Passed,
    /// The iteration budget is spent.
    Exhausted,
    /// The wall-clock budget ran out.
    TimedOut,
    /// The build changed nothing after a failed verify.
    Stalled,
}

/// The steps an iteration runs through (every step but `Pending`).
const STEPS: [LoopStep; 5] = [
    LoopStep::SnapshotBefore,
    LoopStep::Building,
    LoopStep::SnapshotAfter,
    LoopStep::Verifying,
    LoopStep::Feedback,
];

impl LoopPhase {
    /// Every phase, for exhaustive tests.
    pub fn all() -> Vec<LoopPhase> {
        let mut v = vec![LoopPhase::Pending];
        v.extend(STEPS.iter().map(|&s| LoopPhase::Active(s)));
        v.extend(STEPS.iter().map(|&s| LoopPhase::Interrupted(s)));
        v.extend([
            LoopPhase::Passed,
            LoopPhase::Exhausted,
            LoopPhase::TimedOut,
            LoopPhase::Stalled,
        ]);
        v
    }

    /// The transition table of a loop. `None`: the event is illegal in this phase.
    pub fn on(self, event: LoopEvent) -> Option<LoopPhase> {
        use LoopEvent as E;
        use LoopPhase as P;
        use LoopStep as S;
        match (self, event) {
            (P::Pending, E::Start) => Some(P::Active(S::SnapshotBefore)),
            (P::Active(S::SnapshotBefore), E::Snapshotted) => Some(P::Active(S::Building)),
            (P::Active(S::Building), E::Built) => Some(P::Active(S::SnapshotAfter)),
            (P::Active(S::SnapshotAfter), E::Snapshotted) => Some(P::Active(S::Verifying)),
            (P::Active(S::SnapshotAfter), E::Unchanged) => Some(P::Stalled),
            (P::Active(S::Verifying), E::VerifyPassed) => Some(P::Passed),
            (P::Active(S::Verifying), E::VerifyFailed) => Some(P::Active(S::Feedback)),
            (P::Active(S::Feedback), E::NextIteration) => Some(P::Active(S::SnapshotBefore)),
            (P::Active(S::Feedback), E::BudgetSpent) => Some(P::Exhausted),
            (P::Active(s), E::Timeout) if s != S::Pending => Some(P::TimedOut),
            (P::Active(s), E::Interrupt) if s != S::Pending => Some(P::Interrupted(s)),
            // A crashed runner left the step active; an interrupted one recorded it: either
            // way the loop goes on in that step (a half-done build runs again).
            (P::Active(s) | P::Interrupted(s), E::Resume) if s != S::Pending => Some(P::Active(s)),
            (P::Exhausted | P::TimedOut | P::Stalled, E::NewRound) => {
                Some(P::Active(S::SnapshotBefore))
            }
            // Passed is final: the stage succeeded and a resume never runs it again.
            _ => None,
        }
    }

    /// The phase of a recorded loop: its `phase` (step) and `result`.
    pub fn of(step: LoopStep, result: Option<LoopResult>) -> LoopPhase {
        match (step, result) {
            (LoopStep::Pending, None | Some(LoopResult::Cancelled | LoopResult::Error)) => {
                LoopPhase::Pending
            }
            (s, None) => LoopPhase::Active(s),
            (s, Some(LoopResult::Cancelled | LoopResult::Error)) => LoopPhase::Interrupted(s),
            (_, Some(LoopResult::Passed)) => LoopPhase::Passed,
            (_, Some(LoopResult::Exhausted)) => LoopPhase::Exhausted,
            (_, Some(LoopResult::Timeout)) => LoopPhase::TimedOut,
            (_, Some(LoopResult::Stalled)) => LoopPhase::Stalled,
        }
    }

    /// The step the record keeps for this phase: the active or interrupted step; for a verdict,
    /// `previous` (the step the loop was in when it ended).
    pub fn step(self, previous: LoopStep) -> LoopStep {
        match self {
            LoopPhase::Pending => LoopStep::Pending,
            LoopPhase::Active(s) | LoopPhase::Interrupted(s) => s,
            _ => previous,
        }
    }

    /// The result the record keeps for this phase (`interrupted` needs to say why, so it takes
    /// `why`: `Cancelled` or `Error`).
    pub fn result(self, why: LoopResult) -> Option<LoopResult> {
        match self {
            LoopPhase::Pending | LoopPhase::Active(_) => None,
            LoopPhase::Interrupted(_) => Some(why),
            LoopPhase::Passed => Some(LoopResult::Passed),
            LoopPhase::Exhausted => Some(LoopResult::Exhausted),
            LoopPhase::TimedOut => Some(LoopResult::Timeout),
            LoopPhase::Stalled => Some(LoopResult::Stalled),
        }
    }

    /// What ends the loop's stage: `Succeed` when the verify passed, `Fail` for every other
    /// stop (interruptions included); `None` while the loop runs.
    pub fn stage_event(self) -> Option<CommandEvent> {
        match self {
            LoopPhase::Pending | LoopPhase::Active(_) => None,
            LoopPhase::Passed => Some(CommandEvent::Succeed),
            _ => Some(CommandEvent::Fail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{assert_exactly_listed, StagePhase};

    /// The table spelled out once more, as data: every pair not listed must be rejected.
    fn listed() -> Vec<(LoopPhase, LoopEvent, LoopPhase)> {
        use LoopEvent as E;
        use LoopPhase as P;
        use LoopStep as S;
        let mut t = vec![
            (P::Pending, E::Start, P::Active(S::SnapshotBefore)),
            (
                P::Active(S::SnapshotBefore),
                E::Snapshotted,
                P::Active(S::Building),
            ),
            (
                P::Active(S::Building),
                E::Built,
                P::Active(S::SnapshotAfter),
            ),
            (
                P::Active(S::SnapshotAfter),
                E::Snapshotted,
                P::Active(S::Verifying),
            ),
            (P::Active(S::SnapshotAfter), E::Unchanged, P::Stalled),
            (P::Active(S::Verifying), E::VerifyPassed, P::Passed),
            (
                P::Active(S::Verifying),
                E::VerifyFailed,
                P::Active(S::Feedback),
            ),
            (
                P::Active(S::Feedback),
                E::NextIteration,
                P::Active(S::SnapshotBefore),
            ),
            (P::Active(S::Feedback), E::BudgetSpent, P::Exhausted),
        ];
        for s in STEPS {
            t.push((P::Active(s), E::Timeout, P::TimedOut));
            t.push((P::Active(s), E::Interrupt, P::Interrupted(s)));
            t.push((P::Active(s), E::Resume, P::Active(s)));
            t.push((P::Interrupted(s), E::Resume, P::Active(s)));
        }
        for p in [P::Exhausted, P::TimedOut, P::Stalled] {
            t.push((p, E::NewRound, P::Active(S::SnapshotBefore)));
        }
        t
    }

    #[test]
    fn loop_table_is_exactly_the_listed_transitions() {
        let listed = listed();
        let pairs =
            assert_exactly_listed(LoopPhase::all(), &LoopEvent::ALL, LoopPhase::on, &listed);
        // 15 phases (pending, 5 active, 5 interrupted, 4 verdicts) x 12 events, every pair.
        assert_eq!(pairs, 15 * 12);
    }

    #[test]
    fn passed_is_final() {
        for ev in LoopEvent::ALL {
            assert_eq!(LoopPhase::Passed.on(ev), None, "{ev:?}");
        }
    }

    /// Every phase reads back from what the record keeps of it.
    #[test]
    fn phases_round_trip_through_the_record() {
        for p in LoopPhase::all() {
            for why in [LoopResult::Cancelled, LoopResult::Error] {
                for previous in LoopStep::ALL {
                    let back = LoopPhase::of(p.step(previous), p.result(why));
                    assert_eq!(back, p, "{p:?} (why {why:?}, previous {previous:?})");
                }
            }
        }
    }

    /// A passing loop ends its stage succeeded and every other end fails it; the stage
    /// machine accepts both from `running`.
    #[test]
    fn loop_ends_map_onto_the_stage_machine() {
        for p in LoopPhase::all() {
            match p.stage_event() {
                None => assert!(matches!(p, LoopPhase::Pending | LoopPhase::Active(_))),
                Some(ev) => {
                    let end = StagePhase::Running.on(ev).expect("running accepts the end");
                    assert_eq!(
                        end == StagePhase::Succeeded,
                        p == LoopPhase::Passed,
                        "{p:?}"
                    );
                }
            }
        }
    }

    /// Walks the happy path of two iterations and the ways out, as the engine drives them.
    #[test]
    fn two_iterations_then_pass() {
        use LoopEvent as E;
        let mut p = LoopPhase::Pending;
        let walk = [
            E::Start,
            E::Snapshotted,
            E::Built,
            E::Snapshotted,
            E::VerifyFailed,
            E::NextIteration,
            E::Snapshotted,
            E::Built,
            E::Snapshotted,
            E::VerifyPassed,
        ];
        for ev in walk {
            p = p.on(ev).unwrap_or_else(|| panic!("{p:?} refused {ev:?}"));
        }
        assert_eq!(p, LoopPhase::Passed);
        assert_eq!(p.stage_event(), Some(CommandEvent::Succeed));
    }

    /// Interrupted in any step, resumed in that same step: nothing before it runs again.
    #[test]
    fn an_interruption_resumes_in_its_step() {
        for s in STEPS {
            let stopped = LoopPhase::Active(s)
                .on(LoopEvent::Interrupt)
                .expect("interrupt");
            assert_eq!(stopped.stage_event(), Some(CommandEvent::Fail));
            assert_eq!(stopped.on(LoopEvent::Resume), Some(LoopPhase::Active(s)));
            assert_eq!(
                stopped.on(LoopEvent::NewRound),
                None,
                "no new round: not a verdict"
            );
        }
    }
}
