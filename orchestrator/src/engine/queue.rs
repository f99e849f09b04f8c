//! Admission of a run under `maxConcurrentRuns`: take a run slot at once, or wait in line for
//! one (`control::slots`). A `start` that has to wait is recorded `queued` with its place in
//! line, which it keeps up to date, and starts when a slot frees; interrupted while it waits,
//! it is recorded `cancelled`. A `resume` waits the same way before it takes the run over.

use std::time::{Duration, Instant};

use serde_json::json;
use shared_manifest::ManifestUpdate;

use crate::config::Config;
use crate::control::slots::{Admission, Slot, Slots, Ticket, Turn};
use crate::engine::context::Ctx;
use crate::engine::state::RunState;
use crate::errors::AppError;

/// Pause between looks at the line: a slot freed is taken within this.
const POLL: Duration = Duration::from_millis(50);

/// The slot count: `CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS`, else the config's
/// `maxConcurrentRuns`; `None`: no limit.
pub fn slot_limit(config: &Config) -> Result<Option<usize>, AppError> {
    let name = crate::env_vars::MAX_CONCURRENT_RUNS;
    match crate::env_vars::non_blank(name) {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(AppError::Usage(format!(
                "{name} is `{v}`, expected a whole number >= 1"
            ))),
        },
        None => Ok(config.max_concurrent_runs),
    }
}

/// Takes a slot now, or a place in line; with `no_wait`, a run that would have to wait is a
/// conflict (exit 3) and leaves nothing in line.
pub fn admit(ctx: &Ctx, no_wait: bool) -> Result<Admission, AppError> {
    let Some(max) = slot_limit(&ctx.config)? else {
        return Ok(Admission::Free);
    };
    let slots = Slots::new(&ctx.roots.runs, max);
    let io = |e| AppError::storage(&ctx.roots.runs.join(crate::control::slots::DIR), e);
    if no_wait {
        return match slots.try_take_now().map_err(io)? {
            Some(slot) => Ok(Admission::Slot(slot)),
            None => Err(AppError::Conflict(format!(
                "all {max} run slots are taken (maxConcurrentRuns) and --no-wait was given"
            ))),
        };
    }
    let ticket = slots.join().map_err(io)?;
    match slots.try_take(&ticket).map_err(io)? {
        Turn::Slot(slot) => Ok(Admission::Slot(slot)),
        Turn::InLine(_) => Ok(Admission::Queued(slots, ticket)),
    }
}

/// Waits in line for a run that is recorded `queued`, recording its place when it changes;
/// `None` when the run is stopped first (a signal). On a slot, records how long it waited.
pub async fn wait_recorded(
    run: &RunState,
    slots: &Slots,
    ticket: Ticket,
) -> Result<Option<Slot>, AppError> {
    let started = Instant::now();
    let mut last = 0;
    let slot = wait(&run.ctx, slots, &ticket, Some(run), |position| {
        let changed = position != last;
        last = position;
        changed.then(|| {
            run.ctx.reporter.run_note(
                &run.label(),
                &run.dir.run_id,
                &format!(
                    "queued: {} in line for one of {} run slots (maxConcurrentRuns)",
                    ordinal(position),
                    slots.max()
                ),
            );
            ManifestUpdate::RunQueued {
                at: crate::time::now(),
                position,
                max_concurrent_runs: slots.max(),
            }
        })
    })
    .await?;
    // Stamped while the ticket still holds its place in line: the next in line can take a
    // slot only once the ticket is gone, so the grant stamps of a `.runs` follow the line's
    // order whatever the scheduler does between here and the write.
    let granted = (crate::time::now(), crate::time::millis(started.elapsed()));
    drop(ticket);
    if slot.is_some() {
        let (at, waited) = granted;
        run.persister
            .send(ManifestUpdate::SlotTaken {
                at,
                waited_ms: waited,
            })
            .await?;
        run.emit("run_dequeued", json!({ "waited_ms": waited }));
    }
    Ok(slot)
}

/// Waits in line before a `resume` takes its run over (nothing is recorded: the run is not
/// this runner's yet); `None` when interrupted.
pub async fn wait_quiet(
    ctx: &Ctx,
    slots: &Slots,
    ticket: Ticket,
    run_id: &str,
) -> Result<Option<Slot>, AppError> {
    let mut last = 0;
    let slot = wait(ctx, slots, &ticket, None, |position| {
        if position != last {
            last = position;
            ctx.reporter.run_note(
                "",
                run_id,
                &format!(
                    "waiting to resume: {} in line for one of {} run slots (maxConcurrentRuns)",
                    ordinal(position),
                    slots.max()
                ),
            );
        }
        None
    })
    .await?;
    drop(ticket);
    Ok(slot)
}

/// Looks at the line every [`POLL`] until the ticket gets a slot or the run stops. `moved` is
/// told the place in line at each look; what it returns is recorded through `run`'s persister
/// (the first one durably: `status` must see the run in line).
async fn wait(
    ctx: &Ctx,
    slots: &Slots,
    ticket: &Ticket,
    run: Option<&RunState>,
    mut moved: impl FnMut(usize) -> Option<ManifestUpdate>,
) -> Result<Option<Slot>, AppError> {
    let io = |e| AppError::storage(&ctx.roots.runs.join(crate::control::slots::DIR), e);
    let mut cancel = ctx.cancel.subscribe();
    let mut first = true;
    loop {
        if ctx.stopping() {
            return Ok(None);
        }
        match slots.try_take(ticket).map_err(io)? {
            Turn::Slot(slot) => return Ok(Some(slot)),
            Turn::InLine(position) => {
                if let (Some(update), Some(run)) = (moved(position), run) {
                    run.persister.send(update).await?;
                    if first {
                        run.persister.flush().await?;
                        first = false;
                    }
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            _ = cancel.changed() => {}
        }
    }
}

/// `1st`, `2nd`, `3rd`, `4th`, ...
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ordinals() {
        let got: Vec<String> = [1, 2, 3, 4, 11, 12, 13, 21, 22, 101]
            .iter()
            .map(|&n| super::ordinal(n))
            .collect();
        assert_eq!(
            got,
            ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]
        );
    }
}
