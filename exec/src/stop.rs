//! When to signal a stage's process group: the enforced timeout, the grace between SIGTERM and
//! SIGKILL, cancellation (graceful, immediate, or escalating) and the wait for processes that
//! still hold the pipes after the main process exited. A pure state machine over instants:
//! `child.rs` sends the signals, this file only decides, so every timing rule is tested here
//! without processes or sleeps.

use std::time::Duration;

use tokio::time::Instant;

use crate::spec::CancelRequest;

/// After the leak kill, how long to keep draining what the killed processes left in the pipes
/// before giving up on them. Anything still holding a pipe then is outside the group (a
/// `setsid` daemon), which no group signal reaches: the runner stops reading instead of hanging.
pub(crate) const LEAK_DRAIN: Duration = Duration::from_millis(200);

/// What to do to the stage now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// SIGTERM to the group.
    Term,
    /// SIGKILL to the group.
    Kill,
    /// Stop reading stdout and stderr (close our ends).
    Detach,
}

/// The stop decisions of one attempt.
#[derive(Debug)]
pub(crate) struct Stopper {
    grace: Duration,
    leak_timeout: Duration,
    /// When the timeout fires; cleared once it fired, on cancellation and on exit.
    timeout_at: Option<Instant>,
    /// When SIGKILL follows an earlier SIGTERM.
    kill_at: Option<Instant>,
    /// Next step of the leak wait (kill, then detach).
    leak_at: Option<Instant>,
    exited: bool,
    leak_killed: bool,
    /// The timeout fired while the main process was running.
    pub(crate) timed_out: bool,
    /// A cancellation stopped the main process (it was still running when asked).
    pub(crate) cancelled: bool,
    /// Processes of the group held the pipes past `leak_timeout` and were killed.
    pub(crate) leaked: bool,
}

impl Stopper {
    /// An attempt started at `start`, limited to `timeout`.
    pub(crate) fn new(
        start: Instant,
        timeout: Option<Duration>,
        grace: Duration,
        leak_timeout: Duration,
    ) -> Stopper {
        Stopper {
            grace,
            leak_timeout,
            // A timeout past what the clock can hold never fires.
            timeout_at: timeout.and_then(|t| start.checked_add(t)),
            kill_at: None,
            leak_at: None,
            exited: false,
            leak_killed: false,
            timed_out: false,
            cancelled: false,
            leaked: false,
        }
    }

    /// The earliest instant at which [`Stopper::expire`] has something to do.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [self.timeout_at, self.kill_at, self.leak_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The main process exited (it has been reaped). `pipes_open` when stdout or stderr is still
    /// held by someone: the leak wait starts.
    pub(crate) fn exited(&mut self, now: Instant, pipes_open: bool) {
        self.exited = true;
        self.timeout_at = None;
        // While a SIGTERM's grace runs, the processes still holding the pipes are the ones
        // cleaning up after it (`sh` dies on SIGTERM at once, its children may take the whole
        // grace): they get the grace, not the shorter leak wait, and the SIGKILL at its end
        // starts the final drain (see `expire`).
        if pipes_open && self.kill_at.is_none() {
            self.leak_at = Some(now + self.leak_timeout);
        }
    }

    /// After a SIGKILL once the main process is gone: drain what the killed processes left,
    /// then stop reading (only a process outside the group can still hold the pipes).
    fn drain_then_detach(&mut self, now: Instant) {
        if self.exited && !self.leak_killed {
            self.leak_killed = true;
            self.leak_at = Some(now + LEAK_DRAIN);
        }
    }

    /// The next action due at `now`, if any; call until `None`.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Action> {
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.timeout_at = None;
            self.timed_out = true;
            self.kill_at = now.checked_add(self.grace);
            return Some(Action::Term);
        }
        if self.kill_at.is_some_and(|t| t <= now) {
            self.kill_at = None;
            self.drain_then_detach(now);
            return Some(Action::Kill);
        }
        if self.leak_at.is_some_and(|t| t <= now) {
            if self.leak_killed {
                self.leak_at = None;
                return Some(Action::Detach);
            }
            self.leak_killed = true;
            self.leaked = true;
            self.leak_at = Some(now + LEAK_DRAIN);
            return Some(Action::Kill);
        }
        None
    }

    /// The orchestrator's cancellation level is now `request`.
    pub(crate) fn cancel(&mut self, request: CancelRequest, now: Instant) -> Option<Action> {
        match request {
            CancelRequest::None => None,
            // Once the main process exited there is nothing to stop gracefully: the leak wait
            // already bounds what is left.
            CancelRequest::Graceful { .. } if self.exited => None,
            CancelRequest::Graceful { .. } => {
                if self.timed_out || self.cancelled {
                    // Already stopping: SIGTERM went out, SIGKILL is scheduled. A second request
                    // must not push the SIGKILL back.
                    return None;
                }
                self.cancelled = true;
                self.timeout_at = None;
                self.kill_at = now.checked_add(self.grace);
                Some(Action::Term)
            }
            CancelRequest::Immediate { .. } => {
                if !self.exited && !self.timed_out {
                    self.cancelled = true;
                }
                if self.exited && self.leak_at.is_some() && !self.leak_killed {
                    // The leak wait was running: what is killed now held the pipes past `sh`.
                    self.leaked = true;
                }
                self.timeout_at = None;
                self.kill_at = None;
                self.drain_then_detach(now);
                Some(Action::Kill)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn drain(s: &mut Stopper, now: Instant) -> Vec<Action> {
        std::iter::from_fn(|| s.expire(now)).collect()
    }

    fn stopper(t0: Instant, timeout: Option<Duration>) -> Stopper {
        Stopper::new(t0, timeout, 5 * S, S / 2)
    }

    #[test]
    fn timeout_terms_then_kills_after_the_grace() {
        let t0 = Instant::now();
        let mut s = stopper(t0, Some(10 * S));
        assert_eq!(s.next_deadline(), Some(t0 + 10 * S));
        assert!(drain(&mut s, t0 + 9 * S).is_empty());
        assert_eq!(drain(&mut s, t0 + 10 * S), [Action::Term]);
        assert!(s.timed_out && !s.cancelled);
        assert_eq!(s.next_deadline(), Some(t0 + 15 * S));
        assert_eq!(drain(&mut s, t0 + 15 * S), [Action::Kill]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn late_wakeup_runs_every_due_step_in_order() {
        let t0 = Instant::now();
        let mut s = Stopper::new(t0, Some(S), Duration::ZERO, S);
        assert_eq!(drain(&mut s, t0 + 3 * S), [Action::Term, Action::Kill]);
    }

    #[test]
    fn exit_before_the_timeout_disarms_it() {
        let t0 = Instant::now();
        let mut s = stopper(t0, Some(S));
        s.exited(t0 + S / 2, false);
        assert_eq!(s.next_deadline(), None);
        assert!(drain(&mut s, t0 + 10 * S).is_empty());
        assert!(!s.timed_out && !s.leaked);
    }

    #[test]
    fn pipes_held_after_exit_are_killed_then_abandoned() {
        let t0 = Instant::now();
        let mut s = stopper(t0, None);
        s.exited(t0, true);
        assert_eq!(s.next_deadline(), Some(t0 + S / 2));
        assert_eq!(drain(&mut s, t0 + S / 2), [Action::Kill]);
        assert!(s.leaked);
        assert_eq!(s.next_deadline(), Some(t0 + S / 2 + LEAK_DRAIN));
        assert_eq!(drain(&mut s, t0 + S), [Action::Detach]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn processes_cleaning_up_after_sigterm_get_the_whole_grace() {
        // `sh` dies on SIGTERM at once; its child cleans up with the pipes open.
        let t0 = Instant::now();
        let mut s = stopper(t0, Some(S));
        assert_eq!(drain(&mut s, t0 + S), [Action::Term]);
        s.exited(t0 + S + S / 10, true);
        // Not the leak wait (0.5 s): the SIGKILL comes at the end of the 5 s grace.
        assert_eq!(s.next_deadline(), Some(t0 + 6 * S));
        assert!(drain(&mut s, t0 + 5 * S).is_empty());
        assert_eq!(drain(&mut s, t0 + 6 * S), [Action::Kill]);
        assert!(s.timed_out && !s.leaked);
        // Then a short drain, and the pipes are abandoned to whatever left the group.
        assert_eq!(s.next_deadline(), Some(t0 + 6 * S + LEAK_DRAIN));
        assert_eq!(drain(&mut s, t0 + 7 * S), [Action::Detach]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn immediate_cancel_during_the_grace_after_exit_still_detaches() {
        let t0 = Instant::now();
        let mut s = stopper(t0, None);
        assert_eq!(
            s.cancel(CancelRequest::Graceful { signal: 2 }, t0),
            Some(Action::Term)
        );
        s.exited(t0 + S / 10, true);
        assert_eq!(
            s.cancel(CancelRequest::Immediate { signal: 2 }, t0 + S),
            Some(Action::Kill)
        );
        assert_eq!(s.next_deadline(), Some(t0 + S + LEAK_DRAIN));
        assert_eq!(drain(&mut s, t0 + 2 * S), [Action::Detach]);
        assert_eq!(s.next_deadline(), None);
    }

    #[test]
    fn graceful_cancel_terms_then_kills_and_disarms_the_timeout() {
        let t0 = Instant::now();
        let mut s = stopper(t0, Some(2 * S));
        assert_eq!(
            s.cancel(CancelRequest::Graceful { signal: 2 }, t0 + S),
            Some(Action::Term)
        );
        assert!(s.cancelled);
        assert_eq!(s.next_deadline(), Some(t0 + 6 * S));
        // Repeating the request does not postpone the SIGKILL.
        assert_eq!(
            s.cancel(CancelRequest::Graceful { signal: 2 }, t0 + 3 * S),
            None
        );
        assert_eq!(drain(&mut s, t0 + 6 * S), [Action::Kill]);
        assert!(!s.timed_out);
    }

    #[test]
    fn graceful_then_immediate_kills_at_once() {
        let t0 = Instant::now();
        let mut s = stopper(t0, None);
        assert_eq!(
            s.cancel(CancelRequest::Graceful { signal: 2 }, t0),
            Some(Action::Term)
        );
        assert_eq!(
            s.cancel(CancelRequest::Immediate { signal: 2 }, t0 + S),
            Some(Action::Kill)
        );
        assert_eq!(s.next_deadline(), None);
        assert!(s.cancelled);
    }

    #[test]
    fn cancel_during_timeout_grace_keeps_timed_out() {
        let t0 = Instant::now();
        let mut s = stopper(t0, Some(S));
        assert_eq!(drain(&mut s, t0 + S), [Action::Term]);
        assert_eq!(
            s.cancel(CancelRequest::Graceful { signal: 15 }, t0 + 2 * S),
            None
        );
        assert_eq!(s.next_deadline(), Some(t0 + 6 * S));
        assert_eq!(
            s.cancel(CancelRequest::Immediate { signal: 15 }, t0 + 2 * S),
            Some(Action::Kill)
        );
        assert!(s.timed_out && !s.cancelled);
    }

    #[test]
    fn cancel_after_exit_is_not_a_cancellation() {
        let t0 = Instant::now();
        let mut s = stopper(t0, None);
        s.exited(t0, true);
        assert_eq!(s.cancel(CancelRequest::Graceful { signal: 2 }, t0), None);
        // Immediate still kills the pipe holders now rather than after the leak timeout.
        assert_eq!(
            s.cancel(CancelRequest::Immediate { signal: 2 }, t0),
            Some(Action::Kill)
        );
        assert!(!s.cancelled && s.leaked);
        assert_eq!(s.cancel(CancelRequest::None, t0), None);
    }
}
