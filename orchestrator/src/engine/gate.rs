//! What the scheduler asks before it starts stages: the peer's `control.json` requests,
//! honoured with the peer's rule (only a `control_seq` above the last one seen; the first look
//! compares with the sequence found when this runner took the run). The scheduler looks when a
//! stage ends and, while stages run, every second (as the peer polls), so a `cancel` or `fail`
//! does not wait for a long stage to end.
//!
//! - `pause`: no new stage starts, running stages go on; recorded (`status_detail` the reason
//!   or `paused`, our `paused` record, the peer's summary line and events).
//! - `resume`: stages start again (our verb for it is `unpause`).
//! - `cancel`: the run stops as on SIGTERM and is recorded `cancelled`.
//! - `fail`: the run stops the same way and is recorded `failed`, `status_detail` the reason or
//!   `control_failed` (the peer records this but goes on; see README).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;
use shared_manifest::schema::PauseRecord;
use shared_manifest::ManifestUpdate;

use crate::control::control_file::{newer_than, Action, Request};
use crate::engine::context::Stop;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// How often a paused run looks for its `resume`.
const PAUSED_POLL: Duration = Duration::from_millis(200);
/// How often a running run looks for new requests between stage ends (the peer polls every
/// second).
const RUNNING_POLL: Duration = Duration::from_secs(1);

/// The scheduler's view of the control requests; owned by the scheduler.
#[derive(Debug)]
pub struct Gate {
    path: PathBuf,
    seen: u64,
    paused: bool,
    cancelled: bool,
    /// Summary lines of what was honoured (pauses, resumes), in order.
    notes: Vec<String>,
}

impl Gate {
    /// The gate of `run`, knowing the requests that were there when the runner took it.
    pub fn new(run: &RunState) -> Gate {
        Gate {
            path: run.dir.control(),
            seen: run.control_seq,
            paused: false,
            cancelled: false,
            notes: Vec::new(),
        }
    }

    /// Applies a request newer than the last one seen, if there is one; then says whether new
    /// stages may start. A failure to record is fatal to the run (storage).
    pub async fn check(&mut self, run: &RunState) -> bool {
        if let Some(req) = newer_than(&self.path, self.seen) {
            self.seen = req.seq;
            if let Err(e) = self.apply(run, &req).await {
                run.ctx.fail_fatally(e);
            }
        }
        !self.paused && !run.ctx.stopping()
    }

    /// True while a pause is in force.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// True when a `cancel` request stopped the run.
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }

    /// The summary lines of the pauses and resumes honoured.
    pub fn into_notes(self) -> Vec<String> {
        self.notes
    }

    /// Resolves when the scheduler should look again.
    pub async fn tick(&self) {
        let every = if self.paused {
            PAUSED_POLL
        } else {
            RUNNING_POLL
        };
        tokio::time::sleep(every).await;
    }

    async fn apply(&mut self, run: &RunState, req: &Request) -> Result<(), AppError> {
        if req.confirm_nonce {
            // The peer's rule: a confirmation nonce has no business in the file; refuse it.
            run.emit(
                "security_violation",
                json!({
                    "kind": "confirm_nonce_present",
                    "summary": "confirm_nonce present in control action",
                    "severity": "high", "related_request_id": req.request_id,
                    "details_redacted": true,
                }),
            );
            return Ok(());
        }
        let rel = run.dir.rel(&self.path);
        match req.action {
            // An action this runner does not know: the sequence moved, nothing else.
            None => {}
            Some(Action::Pause) if !self.paused => {
                let line = format!("Run paused by control request{}.", req.trace());
                run.persister
                    .send(ManifestUpdate::RunPaused {
                        record: PauseRecord {
                            at: crate::time::now(),
                            control_seq: req.seq,
                            requested_by: req.requested_by.clone(),
                            reason: req.reason.clone(),
                            request_id: req.request_id.clone(),
                            intent_id: req.intent_id.clone(),
                        },
                        line: line.clone(),
                    })
                    .await?;
                run.persister.flush().await?;
                self.paused = true;
                self.notes.push(line);
                let mut requested = req.payload();
                requested["reason"] = json!(req.reason);
                run.emit("pause_requested", requested);
                let mut paused = req.payload();
                paused["reason"] = json!("control_request");
                run.emit("run_paused", paused);
                run.ctx.reporter.run_note(
                    &run.label(),
                    &run.dir.run_id,
                    &format!(
                        "paused by a request in `{rel}`: no new stage starts (`codex-orchestrator unpause --run {}` continues)",
                        run.dir.run_id
                    ),
                );
            }
            Some(Action::Resume) if self.paused => {
                let line = format!("Run resumed by control request{}.", req.trace());
                run.persister
                    .send(ManifestUpdate::RunUnpaused {
                        at: crate::time::now(),
                        line: line.clone(),
                    })
                    .await?;
                run.persister.flush().await?;
                self.paused = false;
                self.notes.push(line);
                run.emit("run_resumed", req.payload());
                run.ctx.reporter.run_note(
                    &run.label(),
                    &run.dir.run_id,
                    "resumed: stages start again",
                );
            }
            // Pause while paused, resume while running: nothing to do (the peer's rule).
            Some(Action::Pause | Action::Resume) => {}
            Some(Action::Cancel) => {
                crate::console::err_line(&format!("cancel requested in `{rel}`: stopping the run"));
                let mut payload = req.payload();
                if req.requested_by.is_none() {
                    payload["requested_by"] = json!("control.json");
                }
                run.emit("run_canceled", payload);
                run.ctx
                    .cancel_gracefully(nix::sys::signal::Signal::SIGTERM as i32);
                self.cancelled = true;
            }
            Some(Action::Fail) => {
                crate::console::err_line(&format!("fail requested in `{rel}`: stopping the run"));
                let stop = Stop::ControlFail {
                    detail: req
                        .reason
                        .clone()
                        .filter(|r| !r.trim().is_empty())
                        .unwrap_or_else(|| "control_failed".into()),
                    line: format!("Run failed by control request{}.", req.trace()),
                };
                if run.ctx.stop_with(stop) {
                    let mut payload = req.payload();
                    payload["reason"] = json!("control_request");
                    run.emit("fail_requested", payload);
                }
            }
        }
        Ok(())
    }
}
