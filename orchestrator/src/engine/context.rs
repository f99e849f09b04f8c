//! What every run of one invocation shares (a parent run and its sub-pipeline runs): roots,
//! config, task, variables, resolved modes, exec knobs, the cancellation channel and the
//! reporter. Read-only after construction except for the cancellation state, which has one
//! owner each (the watch sender; the fatal-error slot).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec::CancelRequest;
use tokio::sync::watch;

use crate::config::{Config, Durability, OnFailure, SecretNames, Stage};
use crate::engine::peer_env::PeerEnv;
use crate::errors::AppError;
use crate::modes::{ExecutionDecision, RuntimeDecision};
use crate::record::layout::Roots;
use crate::report::progress::Reporter;

/// Shared by all runs of one invocation.
#[derive(Debug)]
pub struct Ctx {
    /// Repo, runs and out directories.
    pub roots: Roots,
    /// The validated config.
    pub config: Arc<Config>,
    /// Task id.
    pub task: String,
    /// `--var` values.
    pub cli_vars: Vec<(String, String)>,
    /// The peer's stage variables (package root, node, runtime mode, ...).
    pub peer_env: PeerEnv,
    /// Peer manifest keys this invocation sets on the runs it creates (the `--issue-*` fields).
    pub manifest_keys: serde_json::Map<String, serde_json::Value>,
    /// `--concurrency`.
    pub concurrency_flag: Option<u32>,
    /// `--approval-policy`.
    pub approval_policy: Option<String>,
    /// Resolved runtime mode.
    pub runtime: RuntimeDecision,
    /// Resolved execution mode.
    pub execution: ExecutionDecision,
    /// Exec knobs.
    pub exec: ExecKnobs,
    /// Progress output.
    pub reporter: Reporter,
    /// Cancellation level seen by every running stage. Senders: the signal task and a run that
    /// hits a fatal storage error (which must stop its stages too).
    pub cancel: watch::Sender<CancelRequest>,
    /// The first fatal error (storage), which decides the exit code over the run outcome.
    pub fatal: Mutex<Option<AppError>>,
    /// Deliver a run that succeeded (pipeline `delivery`); `--no-deliver` clears it.
    pub deliver: bool,
    /// Why the runner stopped the run on its own (budget, `fail` request), when it did.
    pub stop: Mutex<Option<Stop>>,
    /// `--max-wall-clock`: overrides the pipeline's `maxWallClockMs`.
    pub max_wall_clock: Option<Duration>,
    /// Secret variables: the config's `secrets` and `--secret`.
    pub secrets: SecretNames,
    /// `--fail-fast` (true) / `--no-fail-fast` (false): every stage's `onFailure` of every
    /// run of the invocation is `abort` / `continue`; `None`: each stage's own.
    pub fail_fast: Option<bool>,
}

/// Why the runner stops a run on its own: neither a signal nor an error. Running stages are
/// stopped like on a cancel (SIGTERM, grace, SIGKILL) and the run is recorded `failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The wall-clock budget ran out.
    Budget {
        /// The budget.
        limit: Duration,
        /// `flag` or `pipeline`.
        source: &'static str,
    },
    /// A `fail` request in `control.json`.
    ControlFail {
        /// `status_detail`: the request's reason, else `control_failed` (the peer's).
        detail: String,
        /// The summary line (the peer's wording).
        line: String,
    },
}

impl Stop {
    /// `status_detail` of the run.
    pub fn detail(&self) -> String {
        match self {
            Stop::Budget { .. } => "run-timeout".to_owned(),
            Stop::ControlFail { detail, .. } => detail.clone(),
        }
    }

    /// The run's summary line.
    pub fn line(&self) -> String {
        match self {
            Stop::Budget { limit, source } => format!(
                "Run exceeded its wall-clock budget of {} ({}).",
                humantime::format_duration(*limit),
                if *source == "flag" {
                    format!("--max-wall-clock, {}ms", crate::time::millis(*limit))
                } else {
                    format!("maxWallClockMs {}", crate::time::millis(*limit))
                }
            ),
            Stop::ControlFail { line, .. } => line.clone(),
        }
    }

    /// What a stage stopped by it says in front of its summary.
    pub fn stage_note(&self) -> String {
        match self {
            Stop::Budget { limit, .. } => format!(
                "Stopped: the run's wall-clock budget of {} ran out",
                humantime::format_duration(*limit)
            ),
            Stop::ControlFail { .. } => "Stopped: the run was failed by a control request".into(),
        }
    }
}

/// Exec settings from the environment.
#[derive(Debug, Clone, Copy)]
pub struct ExecKnobs {
    /// Timeout for stages without `timeoutMs` (`CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS`).
    pub default_timeout: Option<Duration>,
    /// SIGTERM -> SIGKILL grace (`CODEX_ORCHESTRATOR_KILL_GRACE_MS`, default 5 s).
    pub kill_grace: Duration,
    /// Retained chunk events per stage (`CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS`, default 0:
    /// logs on disk are complete, memory stays bounded).
    pub max_chunk_events: usize,
    /// `CODEX_ORCHESTRATOR_DURABILITY`, when set: wins over the config's `durability`.
    pub durability: Option<Durability>,
}

impl ExecKnobs {
    /// Reads the knobs; a malformed value is a usage error naming the variable.
    pub fn from_env() -> Result<ExecKnobs, AppError> {
        use crate::env_vars as ev;
        let num = |name: &str| -> Result<Option<u64>, AppError> {
            match ev::non_blank(name) {
                None => Ok(None),
                Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
                    AppError::Usage(format!("{name} is `{v}`, expected a whole number"))
                }),
            }
        };
        Ok(ExecKnobs {
            default_timeout: num(ev::STAGE_TIMEOUT_MS)?
                .filter(|&n| n > 0)
                .map(Duration::from_millis),
            kill_grace: num(ev::KILL_GRACE_MS)?
                .map_or(exec::DEFAULT_KILL_GRACE, Duration::from_millis),
            max_chunk_events: num(ev::EXEC_EVENT_MAX_CHUNKS)?.map_or(0, |n| n as usize),
            durability: match ev::non_blank(ev::DURABILITY) {
                None => None,
                Some(v) => Some(Durability::parse(&v).ok_or_else(|| {
                    AppError::Usage(format!(
                        "{} is `{v}`, expected `batched` or `strict`",
                        ev::DURABILITY
                    ))
                })?),
            },
        })
    }
}

impl Ctx {
    /// When stage ends are made durable: the environment, else the config.
    pub fn durability(&self) -> Durability {
        self.exec
            .durability
            .unwrap_or(self.config.record.durability)
    }

    /// What a failure of `stage` does to the rest of its run: `--fail-fast` / `--no-fail-fast`
    /// when given, else the stage's `onFailure`. (`allowFailure` never gets here: such a
    /// failure is a skip, not a failure.)
    pub fn on_failure(&self, stage: &Stage) -> OnFailure {
        match self.fail_fast {
            Some(true) => OnFailure::Abort,
            Some(false) => OnFailure::Continue,
            None => stage.on_failure,
        }
    }

    /// Records a fatal error (the first one wins) and stops every running stage.
    pub fn fail_fatally(&self, error: AppError) {
        let mut slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.cancel_gracefully(0);
    }

    /// Asks every running stage to stop gracefully (SIGTERM, grace, SIGKILL) unless a stop was
    /// already asked for; `signal` is what `cancel_signal` reports (0: none, a fatal error).
    pub fn cancel_gracefully(&self, signal: i32) {
        self.cancel.send_if_modified(|c| {
            if *c == CancelRequest::None {
                *c = CancelRequest::Graceful { signal };
                true
            } else {
                false
            }
        });
    }

    /// True once a fatal error was recorded.
    pub fn has_fatal(&self) -> bool {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The recorded fatal error in one line (its causes after `: `), if there is one.
    pub fn fatal_message(&self) -> Option<String> {
        let slot = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|e| {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        })
    }

    /// True when the recorded fatal error is a bug of the runner, not a storage failure.
    pub fn fatal_is_internal(&self) -> bool {
        self.fatal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(AppError::is_internal)
    }

    /// The signal that cancelled the invocation, if a signal did.
    pub fn cancel_signal(&self) -> Option<i32> {
        match *self.cancel.borrow() {
            CancelRequest::None => None,
            CancelRequest::Graceful { signal } | CancelRequest::Immediate { signal } => {
                (signal != 0).then_some(signal)
            }
        }
    }

    /// A context for one child run that can be stopped on its own (a loop's verify run at the
    /// loop's deadline): the same settings, its own cancellation and fatal-error slot. The
    /// parent's cancellation reaches it through the task this returns, which the caller aborts
    /// when the child run is over; the child's fatal error is the caller's to pass on.
    pub fn for_child(&self) -> (Arc<Ctx>, tokio::task::JoinHandle<()>) {
        let (cancel, _) = watch::channel(*self.cancel.borrow());
        let child = Arc::new(Ctx {
            roots: self.roots.clone(),
            config: self.config.clone(),
            task: self.task.clone(),
            cli_vars: self.cli_vars.clone(),
            peer_env: self.peer_env.clone(),
            manifest_keys: self.manifest_keys.clone(),
            concurrency_flag: self.concurrency_flag,
            approval_policy: self.approval_policy.clone(),
            runtime: self.runtime.clone(),
            execution: self.execution.clone(),
            exec: self.exec,
            reporter: self.reporter.clone(),
            cancel,
            fatal: Mutex::new(None),
            deliver: false,
            // The budget is the top-level run's; its stop reaches the child as a cancel.
            stop: Mutex::new(None),
            max_wall_clock: None,
            secrets: self.secrets.clone(),
            fail_fast: self.fail_fast,
        });
        let mut parent = self.cancel.subscribe();
        let to = child.clone();
        let forward = tokio::spawn(async move {
            // Every level the parent reaches (graceful, then immediate) reaches the child.
            while parent.changed().await.is_ok() {
                let level = *parent.borrow_and_update();
                to.cancel.send_if_modified(|c| {
                    let escalate = level != CancelRequest::None && *c != level;
                    if escalate {
                        *c = level;
                    }
                    escalate
                });
            }
        });
        (child, forward)
    }

    /// Stops the run for `stop` (first cause wins: nothing happens when the run is already
    /// stopping for a signal, an error or another stop). Returns true when it took effect.
    pub fn stop_with(&self, stop: Stop) -> bool {
        let mut slot = self.stop.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() || self.stopping() {
            return false;
        }
        *slot = Some(stop);
        drop(slot);
        self.cancel_gracefully(0);
        true
    }

    /// Why the runner stopped the run on its own, if it did.
    pub fn stop_reason(&self) -> Option<Stop> {
        self.stop.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// What a stage interrupted by the run's stop says in front of its own summary.
    pub fn stop_note(&self) -> String {
        if let Some(stop) = self.stop_reason() {
            return stop.stage_note();
        }
        match self.cancel_signal() {
            Some(sig) => format!("Cancelled by {}", exec::signal_name(sig)),
            None => "Cancelled".to_owned(),
        }
    }

    /// True when stages must stop (signal or fatal error).
    pub fn stopping(&self) -> bool {
        *self.cancel.borrow() != CancelRequest::None
    }
}
