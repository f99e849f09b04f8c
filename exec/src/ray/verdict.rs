//! How a followed Ray job's attempt ended: the wrapper's exit record when it arrived (it is
//! authoritative), otherwise what the head says of the job, and what the runner itself did
//! (a stop for a cancellation or for its own timeout backstop).

use std::time::Duration;

use tokio::time::Instant;

use super::api::{JobDetails, JobStatus};
use super::records::Exit;
use crate::outcome::{Outcome, RemoteInfo};

/// How following ended.
pub(crate) enum End {
    /// The wrapper's exit record arrived.
    Exit(Exit),
    /// The job is terminal and its log has no exit record.
    Terminal(JobDetails),
    /// The head does not answer, or forgot the job.
    Lost(String),
    /// Stopped by us and not terminal within the stop wait (ray-project/ray#58353 for a
    /// PENDING job): given up on.
    Abandoned,
}

/// What the follow loop knows about the stop.
#[derive(Default)]
pub(crate) struct Stop {
    /// We asked the job to stop because the run was cancelled.
    pub(crate) cancelled: bool,
    /// We stopped it because the runner-side timeout fired.
    pub(crate) timed_out: bool,
    /// When following gives up after the stop.
    pub(crate) give_up_at: Option<Instant>,
}

/// The attempt's outcome from how following the job `remote` (limited to `timeout`) ended.
/// `any_record`: the wrapper wrote something (the command started); `head_answered`: the head
/// still knew the job after its exit record (a stop from outside, not a head going away).
pub(crate) fn outcome(
    remote: &RemoteInfo,
    timeout: Option<Duration>,
    end: End,
    stop: &Stop,
    any_record: bool,
    head_answered: bool,
) -> Outcome {
    let unreachable = |detail: String| format!("Ray unreachable at {}: {detail}", remote.address);
    let after = timeout.unwrap_or_default();
    match end {
        End::Exit(x) => {
            if !x.started {
                return match x.error {
                    Some(message) => Outcome::SpawnFailed { message },
                    None => Outcome::Cancelled {
                        signal: None,
                        code: None,
                    },
                };
            }
            if x.timed_out || (stop.timed_out && x.stopped) {
                return Outcome::TimedOut {
                    after,
                    signal: x.signal,
                    code: x.code,
                };
            }
            if (x.parent_lost || (x.stopped && !head_answered)) && !stop.cancelled {
                return Outcome::Lost {
                    message: unreachable(format!(
                        "job `{}` lost its supervisor (was the head or the node stopped?)",
                        remote.submission_id
                    )),
                };
            }
            if x.stopped && stop.cancelled {
                return Outcome::Cancelled {
                    signal: x.signal,
                    code: x.code,
                };
            }
            if x.stopped {
                // Stopped from outside the runner (the dashboard, `ray job stop`).
                return Outcome::Signaled {
                    signal: x.stop_signal.unwrap_or(15),
                };
            }
            match (x.signal, x.code) {
                (Some(signal), _) => Outcome::Signaled { signal },
                (None, Some(code)) => Outcome::Exited { code },
                (None, None) => Outcome::Lost {
                    message: unreachable("the exit record has no status".to_owned()),
                },
            }
        }
        End::Abandoned => {
            tracing::warn!(
                job = %remote.submission_id,
                "the Ray job did not end after it was stopped (a PENDING job stops only once it starts, ray-project/ray#58353)"
            );
            if stop.timed_out {
                Outcome::TimedOut {
                    after,
                    signal: None,
                    code: None,
                }
            } else {
                Outcome::Cancelled {
                    signal: None,
                    code: None,
                }
            }
        }
        End::Lost(message) => Outcome::Lost { message },
        End::Terminal(job) => {
            if stop.timed_out {
                return Outcome::TimedOut {
                    after,
                    signal: None,
                    code: None,
                };
            }
            if job.status == JobStatus::Stopped && stop.cancelled {
                return Outcome::Cancelled {
                    signal: None,
                    code: None,
                };
            }
            let message = job
                .message
                .as_deref()
                .and_then(|m| m.lines().next())
                .unwrap_or("no message")
                .to_owned();
            let what = job.error_type.as_deref().unwrap_or(job.status.as_str());
            if any_record {
                // The command started, and the wrapper died before it could say how it
                // ended (killed, out of memory, node lost).
                Outcome::Lost {
                    message: unreachable(format!(
                        "job `{}` ended {} without the wrapper's exit record ({what}: {message})",
                        remote.submission_id,
                        job.status.as_str()
                    )),
                }
            } else {
                Outcome::SpawnFailed {
                    message: format!(
                        "Ray job `{}` ended {} before the command started ({what}: {message}; exit code {})",
                        remote.submission_id,
                        job.status.as_str(),
                        job.driver_exit_code
                            .map_or_else(|| "none".to_owned(), |c| c.to_string())
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> RemoteInfo {
        RemoteInfo {
            kind: "ray",
            address: "http://h:8265".into(),
            submission_id: "r--s--1".into(),
            node: None,
            host: None,
            working_dir_sha256: None,
            attached: false,
            status: None,
        }
    }

    fn exit(json: &str) -> End {
        End::Exit(serde_json::from_str(json).expect("exit record"))
    }

    fn job(json: &str) -> End {
        End::Terminal(serde_json::from_str(json).expect("job details"))
    }

    fn decide(end: End, stop: &Stop, any_record: bool, head_answered: bool) -> Outcome {
        outcome(
            &remote(),
            Some(Duration::from_millis(1500)),
            end,
            stop,
            any_record,
            head_answered,
        )
    }

    #[test]
    fn the_exit_record_decides_when_there_is_one() {
        let none = Stop::default();
        let cancelled = Stop {
            cancelled: true,
            ..Stop::default()
        };
        let ran = r#""started":true,"records":4"#;
        let cases = [
            (
                exit(&format!(r#"{{"code":3,{ran}}}"#)),
                &none,
                true,
                Outcome::Exited { code: 3 },
            ),
            (
                exit(&format!(r#"{{"signal":9,{ran}}}"#)),
                &none,
                true,
                Outcome::Signaled { signal: 9 },
            ),
            (
                exit(&format!(r#"{{"signal":15,"timed_out":true,{ran}}}"#)),
                &none,
                true,
                Outcome::TimedOut {
                    after: Duration::from_millis(1500),
                    signal: Some(15),
                    code: None,
                },
            ),
            (
                exit(&format!(
                    r#"{{"code":143,"stopped":true,"stop_signal":15,{ran}}}"#
                )),
                &cancelled,
                true,
                Outcome::Cancelled {
                    signal: None,
                    code: Some(143),
                },
            ),
            // Stopped from the dashboard: the head still answers.
            (
                exit(&format!(
                    r#"{{"signal":15,"stopped":true,"stop_signal":15,{ran}}}"#
                )),
                &none,
                true,
                Outcome::Signaled { signal: 15 },
            ),
            (
                exit(r#"{"started":false,"error":"cannot copy the working directory: disk full"}"#),
                &none,
                true,
                Outcome::SpawnFailed {
                    message: "cannot copy the working directory: disk full".into(),
                },
            ),
        ];
        for (end, stop, answered, want) in cases {
            assert_eq!(decide(end, stop, true, answered), want);
        }
    }

    #[test]
    fn a_head_that_went_away_is_a_lost_attempt() {
        let none = Stop::default();
        let stopped = r#"{"signal":15,"stopped":true,"stop_signal":15,"started":true}"#;
        let Outcome::Lost { message } = decide(exit(stopped), &none, true, false) else {
            panic!("lost")
        };
        assert!(message
            .starts_with("Ray unreachable at http://h:8265: job `r--s--1` lost its supervisor"));
        let lost = r#"{"code":null,"stopped":true,"parent_lost":true,"started":true}"#;
        assert!(matches!(
            decide(exit(lost), &none, true, true),
            Outcome::Lost { .. }
        ));
        let gone = End::Lost("Ray unreachable at http://h:8265: cannot connect".into());
        assert_eq!(
            decide(gone, &none, true, false),
            Outcome::Lost {
                message: "Ray unreachable at http://h:8265: cannot connect".into()
            }
        );
    }

    #[test]
    fn without_an_exit_record_the_job_status_decides() {
        let none = Stop::default();
        let cancelled = Stop {
            cancelled: true,
            ..Stop::default()
        };
        let timed_out = Stop {
            timed_out: true,
            ..Stop::default()
        };
        let stopped = r#"{"status":"STOPPED","message":"Job was intentionally stopped."}"#;
        assert_eq!(
            decide(job(stopped), &cancelled, false, true),
            Outcome::Cancelled {
                signal: None,
                code: None
            }
        );
        assert!(matches!(
            decide(job(stopped), &timed_out, true, true),
            Outcome::TimedOut { .. }
        ));
        let setup = r#"{"status":"FAILED","error_type":"RUNTIME_ENV_SETUP_FAILURE","message":"Failed to set up runtime environment.\nmore","driver_exit_code":null}"#;
        assert_eq!(
            decide(job(setup), &none, false, true),
            Outcome::SpawnFailed {
                message: "Ray job `r--s--1` ended FAILED before the command started (RUNTIME_ENV_SETUP_FAILURE: Failed to set up runtime environment.; exit code none)".into()
            }
        );
        let killed = r#"{"status":"FAILED","error_type":"JOB_ENTRYPOINT_COMMAND_ERROR","message":"killed","driver_exit_code":137}"#;
        assert!(matches!(
            decide(job(killed), &none, true, true),
            Outcome::Lost { .. }
        ));
        assert_eq!(
            decide(End::Abandoned, &cancelled, false, true),
            Outcome::Cancelled {
                signal: None,
                code: None
            }
        );
    }
}
