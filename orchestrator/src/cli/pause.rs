//! `pause --run ID` and `unpause --run ID`: write the peer's `pause` / `resume` action into the
//! run's `control.json` (as the peer's control server does), which its runner honours between
//! stages. `unpause` is our name for the protocol's `resume` action, because `resume` is the
//! verb that continues a stopped run. The runner records both; this verb only asks.

use shared_manifest::RunStatus;

use crate::cli::PauseArgs;
use crate::control::control_file::{self, Action};
use crate::errors::AppError;
use crate::exit;

/// Runs `pause` (`Action::Pause`) or `unpause` (`Action::Resume`); returns the exit code.
pub fn pause(args: PauseArgs, action: Action) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&args.run, args.task.as_deref(), false)?;
    let (roots, manifest) = (located.roots, located.manifest);
    let m = crate::history::read_manifest(&manifest).map_err(|e| {
        AppError::Conflict(format!(
            "cannot read `{}`: {}",
            manifest.display(),
            e.one_line()
        ))
    })?;
    let verb = if action == Action::Pause {
        "pause"
    } else {
        "unpause"
    };
    if m.status.is_terminal() {
        return Err(AppError::Conflict(format!(
            "cannot {verb} run `{}`: it already ended ({})",
            m.run_id,
            m.status.as_str()
        )));
    }
    // Requests older than a runner are not for it (control_seq rule): without a live runner
    // (ours holding the lock, or the peer keeping its heartbeat fresh; both read control.json)
    // the request would never be honoured.
    if !crate::control::activity::observe(&manifest, &m).live {
        return Err(AppError::Conflict(format!(
            "cannot {verb} run `{}`: no runner holds it (`codex-orchestrator resume --run {}` continues it)",
            m.run_id, m.run_id
        )));
    }
    let control = manifest.with_file_name("control.json");
    let pending_pause =
        control_file::newer_than(&control, 0).is_some_and(|r| r.action == Some(Action::Pause));
    match action {
        Action::Pause if m.paused.is_some() => {
            return Err(AppError::Conflict(format!(
                "run `{}` is already paused",
                m.run_id
            )))
        }
        Action::Resume if m.paused.is_none() && !pending_pause => {
            return Err(AppError::Conflict(format!(
                "run `{}` is not paused",
                m.run_id
            )))
        }
        _ => {}
    }
    if m.status == RunStatus::Queued && action == Action::Pause {
        crate::console::err_line(&format!(
            "note: run {} is waiting for a run slot; it pauses before its first stage",
            m.run_id
        ));
    }
    let seq = control_file::request(
        &control,
        &m.run_id,
        action,
        args.actor.as_deref().unwrap_or("cli"),
        args.reason.as_deref(),
    )
    .map_err(|e| match e {
        control_file::ControlError::Write(w) => AppError::Write(w),
        control_file::ControlError::Io { path, source } => AppError::storage(&path, source),
    })?;
    let what = if action == Action::Pause {
        "pause requested: no new stage starts once the runner sees it (within a second); running stages finish"
    } else {
        "unpause requested: the runner starts stages again"
    };
    crate::console::err_line(&format!(
        "run {}: {what} (`{}`, control_seq {seq})",
        m.run_id,
        roots.rel(&control)
    ));
    Ok(exit::OK)
}
