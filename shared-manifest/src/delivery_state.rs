//! Delivery of a run that passed its gates, as an explicit transition table: an evidence
//! bundle, a commit pushed to a branch, a pull request, and optionally the wait for its CI.
//!
//! The table exists for the bug class this guards against: a run that passed verification and
//! opened its pull request recorded as failed because a transition was missing. Here every
//! (phase, event) pair is either listed or refused, delivery is recorded apart from the run,
//! and [`outcome`] is the one rule that combines the two: a delivery never rewrites the run's
//! verdict; a failed delivery of a passed run is its own outcome (and exit code).

use serde::{Deserialize, Serialize};

use crate::state::RunStatus;

/// Where one delivery stands (the record's `phase`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryPhase {
    /// Not started.
    Pending,
    /// Writing the evidence bundle.
    Bundling,
    /// Turning the work tree into a commit (without touching the user's branch or index).
    Committing,
    /// Pushing the commit to the remote branch.
    Pushing,
    /// Opening the pull request.
    OpeningPr,
    /// Waiting for the pull request's checks.
    WaitingForCi,
    /// Done.
    Delivered,
    /// The work tree had no change to commit: nothing was pushed.
    NoChange,
    /// Failed (the error is recorded); the run's own status is not touched.
    Failed,
    /// Not attempted: the run did not succeed, or `--no-deliver`.
    Skipped,
}

impl DeliveryPhase {
    /// Every phase, for exhaustive tests.
    pub const ALL: [DeliveryPhase; 10] = [
        DeliveryPhase::Pending,
        DeliveryPhase::Bundling,
        DeliveryPhase::Committing,
        DeliveryPhase::Pushing,
        DeliveryPhase::OpeningPr,
        DeliveryPhase::WaitingForCi,
        DeliveryPhase::Delivered,
        DeliveryPhase::NoChange,
        DeliveryPhase::Failed,
        DeliveryPhase::Skipped,
    ];

    /// True once nothing more will happen to it (until a resume retries a failed one).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeliveryPhase::Delivered
                | DeliveryPhase::NoChange
                | DeliveryPhase::Failed
                | DeliveryPhase::Skipped
        )
    }

    /// The record's `status`: `pending`, `in_progress`, `succeeded`, `no_change`, `failed`,
    /// `skipped`.
    pub fn status(self) -> &'static str {
        match self {
            DeliveryPhase::Pending => "pending",
            DeliveryPhase::Bundling
            | DeliveryPhase::Committing
            | DeliveryPhase::Pushing
            | DeliveryPhase::OpeningPr
            | DeliveryPhase::WaitingForCi => "in_progress",
            DeliveryPhase::Delivered => "succeeded",
            DeliveryPhase::NoChange => "no_change",
            DeliveryPhase::Failed => "failed",
            DeliveryPhase::Skipped => "skipped",
        }
    }
}

/// What can happen to a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryEvent {
    /// Not attempted.
    Skip,
    /// A bundle delivery starts.
    Bundle,
    /// The bundle is written.
    Bundled,
    /// A git or github delivery starts.
    Commit,
    /// The work tree equals `HEAD`'s tree: nothing to push.
    NoChange,
    /// The commit exists; it is pushed next.
    Push,
    /// Pushed (a git delivery is done).
    Pushed,
    /// Pushed; a pull request is opened next (github).
    OpenPr,
    /// The pull request is open (done, unless CI is waited for).
    PrOpened,
    /// The pull request is open and its checks are waited for.
    WaitForCi,
    /// Every check passed.
    CiPassed,
    /// The repository has no checks for the pull request: not a failure.
    CiNotConfigured,
    /// A check failed.
    CiFailed,
    /// The checks did not finish within the wait.
    CiTimedOut,
    /// A step failed (git, gh, the file system).
    Error,
    /// A resume retries a delivery that failed or was cut short; every step is idempotent.
    Retry,
}

impl DeliveryEvent {
    /// Every event, for exhaustive tests.
    pub const ALL: [DeliveryEvent; 16] = [
        DeliveryEvent::Skip,
        DeliveryEvent::Bundle,
        DeliveryEvent::Bundled,
        DeliveryEvent::Commit,
        DeliveryEvent::NoChange,
        DeliveryEvent::Push,
        DeliveryEvent::Pushed,
        DeliveryEvent::OpenPr,
        DeliveryEvent::PrOpened,
        DeliveryEvent::WaitForCi,
        DeliveryEvent::CiPassed,
        DeliveryEvent::CiNotConfigured,
        DeliveryEvent::CiFailed,
        DeliveryEvent::CiTimedOut,
        DeliveryEvent::Error,
        DeliveryEvent::Retry,
    ];
}

impl DeliveryPhase {
    /// The transition table of a delivery. `None`: the event is illegal in this phase.
    pub fn on(self, event: DeliveryEvent) -> Option<DeliveryPhase> {
        use DeliveryEvent as E;
        use DeliveryPhase as P;
        match (self, event) {
            (P::Pending, E::Skip) => Some(P::Skipped),
            (P::Pending, E::Bundle) => Some(P::Bundling),
            (P::Bundling, E::Bundled) => Some(P::Delivered),
            (P::Pending, E::Commit) => Some(P::Committing),
            (P::Committing, E::NoChange) => Some(P::NoChange),
            (P::Committing, E::Push) => Some(P::Pushing),
            (P::Pushing, E::Pushed) => Some(P::Delivered),
            (P::Pushing, E::OpenPr) => Some(P::OpeningPr),
            (P::OpeningPr, E::PrOpened) => Some(P::Delivered),
            (P::OpeningPr, E::WaitForCi) => Some(P::WaitingForCi),
            (P::WaitingForCi, E::CiPassed | E::CiNotConfigured) => Some(P::Delivered),
            (P::WaitingForCi, E::CiFailed | E::CiTimedOut) => Some(P::Failed),
            (
                P::Bundling | P::Committing | P::Pushing | P::OpeningPr | P::WaitingForCi,
                E::Error,
            ) => Some(P::Failed),
            // A runner that died mid-way left a step in progress; a failure may be retried.
            (
                P::Bundling
                | P::Committing
                | P::Pushing
                | P::OpeningPr
                | P::WaitingForCi
                | P::Failed,
                E::Retry,
            ) => Some(P::Pending),
            _ => None,
        }
    }
}

/// What a run and its deliveries come to, together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished (the run, or one of its deliveries).
    InProgress,
    /// The run succeeded and every delivery succeeded (or had nothing to do, or was skipped).
    Succeeded,
    /// The run succeeded (its gates passed) and a delivery failed.
    DeliveryFailed,
    /// The run failed.
    Failed,
    /// The run was cancelled.
    Cancelled,
}

/// The one rule combining a run's status with its deliveries. The run's status is never
/// changed by a delivery: only a succeeded run delivers, and its failure is `DeliveryFailed`.
pub fn outcome(run: RunStatus, deliveries: &[DeliveryPhase]) -> Outcome {
    match run {
        RunStatus::Succeeded if deliveries.iter().any(|d| !d.is_terminal()) => Outcome::InProgress,
        RunStatus::Succeeded if deliveries.contains(&DeliveryPhase::Failed) => {
            Outcome::DeliveryFailed
        }
        RunStatus::Succeeded => Outcome::Succeeded,
        RunStatus::Failed => Outcome::Failed,
        RunStatus::Cancelled => Outcome::Cancelled,
        RunStatus::Queued | RunStatus::InProgress => Outcome::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loop_state::{LoopEvent, LoopPhase};
    use crate::state::{assert_exactly_listed, run_outcome, RunPhase, StagePhase};

    #[test]
    fn delivery_table_is_exactly_the_listed_transitions() {
        use DeliveryEvent as E;
        use DeliveryPhase as P;
        let mut listed = vec![
            (P::Pending, E::Skip, P::Skipped),
            (P::Pending, E::Bundle, P::Bundling),
            (P::Bundling, E::Bundled, P::Delivered),
            (P::Pending, E::Commit, P::Committing),
            (P::Committing, E::NoChange, P::NoChange),
            (P::Committing, E::Push, P::Pushing),
            (P::Pushing, E::Pushed, P::Delivered),
            (P::Pushing, E::OpenPr, P::OpeningPr),
            (P::OpeningPr, E::PrOpened, P::Delivered),
            (P::OpeningPr, E::WaitForCi, P::WaitingForCi),
            (P::WaitingForCi, E::CiPassed, P::Delivered),
            (P::WaitingForCi, E::CiNotConfigured, P::Delivered),
            (P::WaitingForCi, E::CiFailed, P::Failed),
            (P::WaitingForCi, E::CiTimedOut, P::Failed),
            (P::Failed, E::Retry, P::Pending),
        ];
        for working in [
            P::Bundling,
            P::Committing,
            P::Pushing,
            P::OpeningPr,
            P::WaitingForCi,
        ] {
            listed.push((working, E::Error, P::Failed));
            listed.push((working, E::Retry, P::Pending));
        }
        assert_exactly_listed(
            DeliveryPhase::ALL,
            &DeliveryEvent::ALL,
            DeliveryPhase::on,
            &listed,
        );
    }

    #[test]
    fn delivered_no_change_and_skipped_are_final() {
        for p in [
            DeliveryPhase::Delivered,
            DeliveryPhase::NoChange,
            DeliveryPhase::Skipped,
        ] {
            assert!(p.is_terminal());
            for ev in DeliveryEvent::ALL {
                assert_eq!(p.on(ev), None, "{p:?} + {ev:?}");
            }
        }
    }

    fn drive<P: Copy + std::fmt::Debug, E: Copy + std::fmt::Debug>(
        mut p: P,
        on: impl Fn(P, E) -> Option<P>,
        events: &[E],
    ) -> P {
        for &ev in events {
            p = on(p, ev).unwrap_or_else(|| panic!("{p:?} refused {ev:?}"));
        }
        p
    }

    /// The path the engine this project absorbs got wrong: verification passed, the pull
    /// request was opened, the repository has no CI configured. Every machine on the way
    /// accepts its step, and the whole ends `succeeded`.
    #[test]
    fn verification_passed_delivery_done_ci_not_configured_ends_succeeded() {
        use DeliveryEvent as D;
        use LoopEvent as L;
        // The loop: one iteration whose verify passes.
        let lp = drive(
            LoopPhase::Pending,
            LoopPhase::on,
            &[
                L::Start,
                L::Snapshotted,
                L::Built,
                L::Snapshotted,
                L::VerifyPassed,
            ],
        );
        assert_eq!(lp, LoopPhase::Passed);
        // Its stage ends succeeded ...
        let stage = drive(
            StagePhase::Pending,
            StagePhase::on,
            &[
                crate::state::CommandEvent::Start,
                lp.stage_event().expect("ended"),
            ],
        );
        assert_eq!(stage, StagePhase::Succeeded);
        // ... so does the run ...
        let ev = run_outcome(&[stage.status()]);
        let run = drive(
            RunPhase::Queued,
            RunPhase::on,
            &[crate::state::RunEvent::Start, ev],
        );
        assert_eq!(run, RunPhase::Succeeded);
        // ... then the github delivery: push, pull request, wait for CI: none configured.
        let delivery = drive(
            DeliveryPhase::Pending,
            DeliveryPhase::on,
            &[
                D::Commit,
                D::Push,
                D::OpenPr,
                D::WaitForCi,
                D::CiNotConfigured,
            ],
        );
        assert_eq!(delivery, DeliveryPhase::Delivered);
        assert_eq!(delivery.status(), "succeeded");
        assert_eq!(outcome(run.status(), &[delivery]), Outcome::Succeeded);
        // With a bundle before it, the same.
        let bundle = drive(
            DeliveryPhase::Pending,
            DeliveryPhase::on,
            &[D::Bundle, D::Bundled],
        );
        assert_eq!(
            outcome(run.status(), &[bundle, delivery]),
            Outcome::Succeeded
        );
    }

    /// A failed delivery never turns the run's verdict: the run stays succeeded and the
    /// outcome says the delivery failed.
    #[test]
    fn a_failed_delivery_keeps_the_runs_verdict() {
        use DeliveryEvent as D;
        let failed = drive(
            DeliveryPhase::Pending,
            DeliveryPhase::on,
            &[D::Commit, D::Push, D::Error],
        );
        assert_eq!(
            outcome(RunStatus::Succeeded, &[failed]),
            Outcome::DeliveryFailed
        );
        let ci_red = drive(
            DeliveryPhase::Pending,
            DeliveryPhase::on,
            &[D::Commit, D::Push, D::OpenPr, D::WaitForCi, D::CiFailed],
        );
        assert_eq!(
            outcome(RunStatus::Succeeded, &[ci_red]),
            Outcome::DeliveryFailed
        );
        let nothing = drive(
            DeliveryPhase::Pending,
            DeliveryPhase::on,
            &[D::Commit, D::NoChange],
        );
        assert_eq!(
            outcome(RunStatus::Succeeded, &[nothing]),
            Outcome::Succeeded
        );
        let skipped = drive(DeliveryPhase::Pending, DeliveryPhase::on, &[D::Skip]);
        assert_eq!(outcome(RunStatus::Failed, &[skipped]), Outcome::Failed);
        assert_eq!(outcome(RunStatus::Cancelled, &[]), Outcome::Cancelled);
        assert_eq!(
            outcome(RunStatus::Succeeded, &[DeliveryPhase::Pushing]),
            Outcome::InProgress
        );
    }

    /// Every combination: the outcome is `Succeeded` only for a succeeded run whose deliveries
    /// all ended well, and a run that did not succeed is never reported as succeeded.
    #[test]
    fn outcome_is_total_and_never_upgrades_a_failed_run() {
        for run in RunStatus::ALL {
            for a in DeliveryPhase::ALL {
                for b in DeliveryPhase::ALL {
                    let o = outcome(run, &[a, b]);
                    let good = |d: DeliveryPhase| {
                        matches!(
                            d,
                            DeliveryPhase::Delivered
                                | DeliveryPhase::NoChange
                                | DeliveryPhase::Skipped
                        )
                    };
                    let expect_ok = run == RunStatus::Succeeded && good(a) && good(b);
                    assert_eq!(o == Outcome::Succeeded, expect_ok, "{run:?} {a:?} {b:?}");
                    if run != RunStatus::Succeeded {
                        assert_ne!(o, Outcome::DeliveryFailed);
                    }
                }
            }
        }
    }
}
