//! An iteration's build: the loop's `build` command run through the same path as every command
//! stage (`stage::open_log`, `stage::run_attempts`: the executor, retries, timeouts, the
//! process record for crash recovery), with `CODEX_ORCHESTRATOR_ITERATION` and, after a failed
//! iteration, `CODEX_ORCHESTRATOR_FEEDBACK_PATH` (and its Markdown twin) in its environment.
//! Each iteration has its own log, `commands/NN-<slug>.iteration-K.ndjson`; a build re-run
//! after a crash appends to it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use exec::{LogEvent, Outcome};
use shared_manifest::work_record::{BuildRecord, LoopRecord};
use shared_manifest::{LoopChange, LoopUpdate, ManifestUpdate};

use crate::config::{LoopStage, Stage};
use crate::engine::stage::{open_log, outcome_name, run_attempts, StartRecord};
use crate::engine::state::RunState;
use crate::env_vars as ev;
use crate::errors::AppError;

/// How a build ended, as the loop needs it.
#[derive(Debug)]
pub(crate) enum Built {
    /// It ran to an end (success or failure: both are fed back).
    Done(BuildRecord),
    /// The run is stopping (a signal, `cancel`, a fatal error): the build is half-done.
    Stopped,
    /// The loop's wall-clock budget ran out while it ran.
    OutOfTime,
}

/// Runs iteration `rec.iteration`'s build of loop stage `index`.
pub(crate) async fn run_build(
    run: &Arc<RunState>,
    index: usize,
    stage: &Stage,
    spec: &LoopStage,
    rec: &LoopRecord,
    deadline: Option<Instant>,
) -> Result<Built, AppError> {
    let ctx = &run.ctx;
    let iteration = rec.iteration;
    let log_abs = run.dir.loop_build_log(index, &stage.id, iteration);
    let log_rel = run.dir.rel(&log_abs);
    let feedback = rec.feedback.clone();
    run.persister
        .send(loop_update(
            index,
            LoopChange::BuildStarted {
                feedback: feedback.clone(),
                log_path: log_rel.clone(),
            },
        ))
        .await?;
    // Durable before the build starts: a resume must know it started (and runs it again).
    run.persister.flush().await?;
    let (command, cwd, mut env) = match run.resolve(&spec.build) {
        Ok(v) => v,
        // Checked at plan time; only a variable that vanished since can get here.
        Err(message) => return Ok(Built::Done(unstarted(&log_rel, message))),
    };
    env.push((ev::ITERATION.into(), iteration.to_string()));
    if let Some(f) = &feedback {
        let abs = |rel: &str| ctx.roots.repo.join(rel).to_string_lossy().into_owned();
        env.push((ev::FEEDBACK_PATH.into(), abs(&f.json)));
        env.push((ev::FEEDBACK_MARKDOWN_PATH.into(), abs(&f.markdown)));
    }
    // The loop's deadline bounds the build too: whichever comes first.
    let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    let own = spec.build.timeout.or(ctx.exec.default_timeout);
    let timeout = match (own, remaining) {
        (Some(a), Some(b)) => Some(a.min(b).max(Duration::from_millis(1))),
        (a, b) => a.or(b.map(|r| r.max(Duration::from_millis(1)))),
    };
    let started_at = crate::time::now();
    let started = Instant::now();
    let mut began = open_log(
        run,
        index,
        &log_abs,
        &spec.build,
        (command, cwd, env),
        timeout,
    )?;
    let start: StartRecord = Arc::new(move |_, _, process| {
        process.map(|p| loop_update(index, LoopChange::BuildSpawned(p)))
    });
    // A re-run after a crash numbers its attempts on in the same log.
    let first = rec.current().map_or(1, |i| i.builds_started + 1);
    // The build runs where the loop snapshots and verifies: on this machine (the executor the
    // command path picks for a stage without `executor` is the local one).
    let executor =
        crate::engine::executor::for_stage(run, stage, &spec.build).map_err(AppError::Internal)?;
    let (result, last) =
        run_attempts(run, stage, &mut began, executor.as_ref(), first, start).await?;
    let attempts = last - first + 1;
    began.log.write(&LogEvent::CommandEnd {
        exit_code: result.exit_code(),
        signal: result.signal(),
        duration_ms: crate::time::millis(result.duration),
    })?;
    began.log.flush()?;
    let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
    if matches!(result.outcome, Outcome::Cancelled { .. }) || ctx.stopping() {
        return Ok(Built::Stopped);
    }
    if out_of_time && !result.succeeded() {
        return Ok(Built::OutOfTime);
    }
    Ok(Built::Done(BuildRecord {
        started_at,
        completed_at: crate::time::now(),
        outcome: outcome_name(&result.outcome).to_owned(),
        succeeded: result.succeeded(),
        exit_code: result.exit_code(),
        signal: result.signal(),
        summary: exec::summarize(&result, spec.build.summary_hint.as_deref()),
        duration_ms: crate::time::millis(started.elapsed()),
        log_path: log_rel,
        attempts,
    }))
}

/// A build whose command could not even be prepared: recorded (and fed back) as failed.
fn unstarted(log_rel: &str, message: String) -> BuildRecord {
    let now = crate::time::now();
    BuildRecord {
        started_at: now.clone(),
        completed_at: now,
        outcome: "spawn_failed".into(),
        succeeded: false,
        exit_code: None,
        signal: None,
        summary: message,
        duration_ms: 0,
        log_path: log_rel.to_owned(),
        attempts: 0,
    }
}

/// A loop update of stage `index`, now.
pub(crate) fn loop_update(index: usize, change: LoopChange) -> ManifestUpdate {
    ManifestUpdate::Loop(Box::new(LoopUpdate {
        index,
        at: crate::time::now(),
        change,
    }))
}
