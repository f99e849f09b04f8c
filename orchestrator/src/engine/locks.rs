//! A stage's wait for its resource locks (`control::resource_locks`), before it starts. The
//! wait is shown (progress, `status`) and recorded (`locks.waiting_since`, then `waited_ms`);
//! a stage that takes its locks at once records only `waited_ms: 0`, in the same write as its
//! start. A run stopped while a stage waits leaves that stage not started.

use std::time::{Duration, Instant};

use serde_json::json;
use shared_manifest::ManifestUpdate;

use crate::config::Stage;
use crate::control::resource_locks::{try_acquire_all, HeldLocks};
use crate::engine::state::RunState;
use crate::errors::AppError;

/// Pause between attempts while a lock is held elsewhere. Short: the holder may be a stage of a
/// few milliseconds.
const RETRY: Duration = Duration::from_millis(25);
/// How long a stage's start may wait to share a write (as `stage.rs` defers its start).
const RECORD_DEFER: Duration = Duration::from_millis(100);

/// What a stage got.
#[derive(Debug)]
pub enum Acquired {
    /// Its locks (`None`: it has none); held until dropped.
    Held(Option<HeldLocks>),
    /// The run stopped while it waited: it does not start.
    Stopped,
}

/// Takes the locks of stage `pos`, waiting as long as needed. A stage without locks gets
/// nothing to hold at once. `on_wait` is called once, when the stage starts to wait (the
/// scheduler gives its seat to other stages meanwhile).
pub async fn acquire(
    run: &RunState,
    pos: usize,
    stage: &Stage,
    on_wait: impl FnOnce(),
) -> Result<Acquired, AppError> {
    let mut on_wait = Some(on_wait);
    if stage.locks.is_empty() {
        return Ok(Acquired::Held(None));
    }
    let index = pos + 1;
    let runs = &run.ctx.roots.runs;
    let io = |e| AppError::storage(&runs.join(crate::control::resource_locks::DIR), e);
    let started = Instant::now();
    let mut announced = false;
    let mut cancel = run.ctx.cancel.subscribe();
    loop {
        if run.ctx.stopping() {
            return Ok(Acquired::Stopped);
        }
        if let Some(held) = try_acquire_all(runs, &stage.locks).map_err(io)? {
            let waited = crate::time::millis(started.elapsed());
            let update = ManifestUpdate::LocksAcquired {
                index,
                at: crate::time::now(),
                names: stage.locks.clone(),
                waited_ms: waited,
            };
            if announced {
                run.persister.send(update).await?;
                run.emit(
                    "locks_acquired",
                    json!({ "stage_id": stage.id, "stage_index": index, "locks": stage.locks, "waited_ms": waited }),
                );
            } else {
                run.persister.send_deferred(update, RECORD_DEFER).await?;
            }
            return Ok(Acquired::Held(Some(held)));
        }
        if !announced {
            announced = true;
            if let Some(f) = on_wait.take() {
                f();
            }
            run.persister
                .send(ManifestUpdate::LocksWaiting {
                    index,
                    at: crate::time::now(),
                    names: stage.locks.clone(),
                })
                .await?;
            run.emit(
                "locks_waiting",
                json!({ "stage_id": stage.id, "stage_index": index, "locks": stage.locks }),
            );
            run.ctx.reporter.stage_waiting(
                &run.label(),
                (index, run.plan().pipeline.stages.len()),
                &stage.id,
                &format!("lock {}", stage.locks.join(", ")),
            );
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            _ = cancel.changed() => {}
        }
    }
}
