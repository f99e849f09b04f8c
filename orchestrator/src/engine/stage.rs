//! One command stage: resolve its command, cwd and environment, run its attempts through its
//! executor (`exec::Executor`: a local process group or a Ray job; retries with backoff), then
//! record its end: the error file, the manifest, the event stream and the reporter.
//! `run_command` reads as those three steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use exec::{CancelRequest, ExecResult, ExecSpec, Executor, LogEvent, Outcome, StageLog, Started};
use serde_json::{json, Map, Value};
use shared_manifest::schema::ProcessRecord;
use shared_manifest::{CommandEvent, ManifestUpdate, StageFinish, Synced};

use crate::config::{CommandStage, Stage};
use crate::engine::patch::Patch;
use crate::engine::stage_end::{record_end_patched, StageEnd};
use crate::engine::state::{Resolved, RunState};
use crate::errors::AppError;
use crate::record::artifacts::{put_capped, ErrorFile};

/// Runs command stage `index` (0-based position) to its end.
pub async fn run_command(
    run: Arc<RunState>,
    pos: usize,
    stage: Stage,
    cmd: CommandStage,
) -> Result<StageEnd, AppError> {
    crate::engine::crash::test_panic_point(&stage.id);
    let started = Instant::now();
    let mut resolved = match run.resolve(&cmd) {
        Ok(v) => v,
        Err(message) => {
            // Checked at plan time; only a variable that vanished from the environment since
            // then can get here. Recorded as a stage error rather than a crash.
            return finish_unstarted(&run, pos, &stage, message).await;
        }
    };
    let executor = match crate::engine::executor::for_stage(&run, &stage, &cmd) {
        Ok(e) => e,
        Err(message) => return finish_unstarted(&run, pos, &stage, message).await,
    };
    // Where the stage may write a plan patch, and what `plan-patch` run inside it needs to
    // check one at once (in a child run too: its record keeps the patch, and a resume of the
    // parent replays it into the child, see `subpipeline.rs`).
    resolved.2.extend(patch_env(&run, pos + 1, &stage));
    let mut began = begin(&run, pos + 1, &stage, &cmd, resolved)?;
    // What its result depends on, for a later `resume` to compare (with its start's write).
    run.persister
        .send(ManifestUpdate::StageExtension {
            index: pos + 1,
            key: crate::engine::fingerprint::KEY,
            value: crate::engine::fingerprint::stage(&run.plan().vars, &cmd),
        })
        .await?;
    let first = run.first_attempt(pos, executor.attempts_outlive_the_runner());
    let start = stage_start_record(began.index, began.log_rel.clone(), began.shown.clone());
    let (result, attempts) =
        run_attempts(&run, &stage, &mut began, executor.as_ref(), first, start).await?;
    // Only an attempt that succeeded may extend the plan; a refused patch fails the stage.
    let patch = if result.succeeded() {
        crate::engine::patch::check(&run, pos + 1, &stage).await?
    } else {
        Patch::Absent
    };
    record(
        &run,
        &stage,
        &cmd,
        began,
        (result, patch),
        attempts,
        started.elapsed(),
    )
    .await
}

/// The variables a command stage gets for its plan patch: the file, and what `plan-patch`
/// needs to check a patch at once (the stage's id, the pipeline's `maxDynamicStages`, the
/// runner's own executable to call it with).
fn patch_env(run: &RunState, index: usize, stage: &Stage) -> Vec<(String, String)> {
    use crate::env_vars as ev;
    let path = run.dir.plan_patch(index, &stage.id);
    let mut env = vec![
        (
            ev::PLAN_PATCH_PATH.into(),
            path.to_string_lossy().into_owned(),
        ),
        (ev::STAGE_ID.into(), stage.id.clone()),
        (
            ev::MAX_DYNAMIC_STAGES.into(),
            run.plan().max_dynamic_stages().to_string(),
        ),
    ];
    if let Ok(exe) = std::env::current_exe() {
        env.push((ev::BIN.into(), exe.to_string_lossy().into_owned()));
    }
    env
}

/// A command whose log is open: what runs, where, and how it is recorded.
pub(crate) struct Began {
    /// 1-based stage index.
    pub(crate) index: usize,
    /// The command as the shell gets it (argv mode: the argv quoted for `sh`).
    pub(crate) command: String,
    /// Argv mode: the program and its arguments, run without a shell.
    pub(crate) argv: Option<(String, Vec<String>)>,
    /// The command as records and displays show it (secret values masked).
    pub(crate) shown: String,
    /// The secret values to mask in the command's output.
    pub(crate) secrets: Option<exec::Secrets>,
    pub(crate) cwd: std::path::PathBuf,
    pub(crate) env: Vec<(String, String)>,
    /// Its timeout: `timeoutMs`, else the run-wide default.
    pub(crate) timeout: Option<Duration>,
    pub(crate) log: StageLog,
    /// The log's path relative to the repo, as the record spells it.
    pub(crate) log_rel: String,
}

/// What an attempt's start records in the manifest, given the attempt number, whether it is
/// the first this runner starts, and its local process (`None` when it runs elsewhere or never
/// started): a command stage's `StageStarted`, a loop build's process. Shared with the task
/// that sends it once the attempt has started.
pub(crate) type StartRecord =
    Arc<dyn Fn(u32, bool, Option<ProcessRecord>) -> Option<ManifestUpdate> + Send + Sync>;

/// The `StageStarted` record of a command stage's attempt.
fn stage_start_record(index: usize, log_rel: String, command: String) -> StartRecord {
    Arc::new(move |attempt, first, process| {
        Some(ManifestUpdate::StageStarted {
            index,
            at: crate::time::now(),
            attempt,
            log_path: first.then(|| log_rel.clone()),
            command: first.then(|| command.clone()),
            process,
        })
    })
}

/// Opens the stage's log and announces its start (events, progress, log).
fn begin(
    run: &RunState,
    index: usize,
    stage: &Stage,
    cmd: &CommandStage,
    (command, cwd, env): Resolved,
) -> Result<Began, AppError> {
    let ctx = &run.ctx;
    let log_abs = run.dir.stage_log(index, &stage.id);
    let log_rel = run.dir.rel(&log_abs);
    run.emit(
        "step_started",
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "command",
            "status": "running", "log_path": log_rel,
        }),
    );
    let timeout = cmd.timeout.or(ctx.exec.default_timeout);
    let began = open_log(run, index, &log_abs, cmd, (command, cwd, env), timeout)?;
    ctx.reporter.stage_started(
        &run.label(),
        index,
        run.plan().pipeline.stages.len(),
        &stage.id,
        &began.shown,
    );
    Ok(began)
}

/// Opens (appends to) a command's log at `log_abs` and writes its start: the path every
/// command of a run goes through, stages and loop builds alike.
pub(crate) fn open_log(
    run: &RunState,
    index: usize,
    log_abs: &std::path::Path,
    cmd: &CommandStage,
    (command, cwd, env): Resolved,
    timeout: Option<Duration>,
) -> Result<Began, AppError> {
    let log_rel = run.dir.rel(log_abs);
    let mut log = StageLog::open(log_abs, index, run.runner_log.clone(), log_rel.clone())?;
    // The values of the secret variables this command gets (the runner's environment under
    // its own), masked in its output by exec and in the command text here.
    let secrets = exec::Secrets::new(run.ctx.secrets.values(std::env::vars_os(), &env));
    let shown = match &secrets {
        Some(s) => s.redact_str(&command).0,
        None => command.clone(),
    };
    log.write(&LogEvent::CommandStart {
        command: shown.clone(),
    })?;
    if let Some(t) = timeout {
        log.write_runner_only(&LogEvent::CommandConfig {
            timeout_ms: crate::time::millis(t),
        })?;
    }
    Ok(Began {
        index,
        command,
        argv: cmd.args.clone().map(|args| (cmd.command.clone(), args)),
        shown,
        secrets,
        cwd,
        env,
        timeout,
        log,
        log_rel,
    })
}

/// Runs attempts, numbered from `first`, until one succeeds, the retries are used up or the
/// run is cancelled; returns the last attempt's result and its number. `start` says what each
/// attempt's start records.
pub(crate) async fn run_attempts(
    run: &RunState,
    stage: &Stage,
    b: &mut Began,
    executor: &dyn Executor,
    first: u32,
    start: StartRecord,
) -> Result<(ExecResult, u32), AppError> {
    let ctx = &run.ctx;
    let mut attempt = first;
    loop {
        // Only what this attempt writes counts as its plan patch (in a child run too).
        crate::engine::patch::clear(run, b.index, stage)?;
        let result = run_attempt(run, b, executor, attempt, first, &start).await?;
        let cancelled = matches!(result.outcome, Outcome::Cancelled { .. }) || ctx.stopping();
        // The retries are this runner's: a resumed stage gets them all again.
        if result.succeeded() || cancelled || attempt - first >= stage.retries.count {
            return Ok((result, attempt));
        }
        attempt += 1;
        let delay = stage.retries.delay_before(attempt);
        b.log.write(&LogEvent::CommandRetry {
            attempt,
            delay_ms: crate::time::millis(delay),
        })?;
        run.emit(
            "step_retry",
            json!({
                "stage_id": stage.id, "stage_index": b.index, "attempt": attempt,
                "delay_ms": crate::time::millis(delay), "previous_exit_code": result.exit_code(),
            }),
        );
        ctx.reporter
            .stage_retry(&run.label(), b.index, &stage.id, attempt, delay);
        if !sleep_unless_cancelled(delay, ctx.cancel.subscribe()).await {
            // Cancelled while waiting to retry: the stage was interrupted before it had
            // used its attempts, which the record must say (not a plain failure of the
            // last attempt). The attempt that was about to start never did.
            let (signal, code) = (None, result.exit_code());
            let result = ExecResult {
                outcome: Outcome::Cancelled { signal, code },
                ..result
            };
            return Ok((result, attempt - 1));
        }
    }
}

/// Starts one attempt through `executor` and waits for it. Its start and where it runs (its
/// process group, or its job on a cluster) go to the manifest while the stage runs.
async fn run_attempt(
    run: &RunState,
    b: &mut Began,
    executor: &dyn Executor,
    attempt: u32,
    first: u32,
    start_record: &StartRecord,
) -> Result<ExecResult, AppError> {
    let ctx = &run.ctx;
    let mut spec = match &b.argv {
        None => ExecSpec::new(b.command.clone(), b.cwd.clone(), b.index),
        Some((program, args)) => {
            let mut spec = ExecSpec::new(program.clone(), b.cwd.clone(), b.index);
            spec.args = Some(args.clone());
            spec
        }
    };
    spec.env = b.env.clone();
    spec.timeout = b.timeout;
    spec.kill_grace = ctx.exec.kill_grace;
    spec.attempt = attempt;
    spec.max_chunk_events = ctx.exec.max_chunk_events;
    spec.secrets = b.secrets.clone();
    // Not a barrier: the start reaches the manifest with the persister's next paced write, so a
    // quick stage's start and end share one write. Crash recovery does not wait for it: exec
    // logged the process group (or the job) to runner.ndjson when it started.
    let first = attempt == first;
    // The peer's `tool_called` pair around each attempt: `started` with the command, then
    // `succeeded`/`failed` with `exit <code>`.
    let tool_called = |status: &str, message: String| {
        run.emit(
            "tool_called",
            json!({
                "tool_name": "exec", "status": status, "message": message, "attempt": attempt,
                "stage_id": run.plan().pipeline.stages[b.index - 1].id, "stage_index": b.index,
            }),
        );
    };
    tool_called("started", b.shown.clone());
    let mut cancel = ctx.cancel.subscribe();
    let running = executor.start(&spec, &mut b.log, &mut cancel).await?;
    let mut updates = Vec::new();
    let recorded = match running.started() {
        None => None,
        Some(place) => {
            let mut process = None;
            match place {
                Started::Process(p) => {
                    process = Some(ProcessRecord {
                        pid: p.pid,
                        pgid: p.pgid,
                        started_at: p.started_at.clone(),
                        start_ticks: p.start_ticks,
                    });
                }
                Started::Remote(r) => updates.push(ManifestUpdate::StageExecutor {
                    index: b.index,
                    record: crate::engine::executor::record(&r),
                }),
            }
            let persister = run.persister.clone();
            let start = start_record(attempt, first, process);
            Some(tokio::spawn(async move {
                if let Some(start) = start {
                    persister.send(start).await?;
                }
                for u in updates {
                    persister.send(u).await?;
                }
                Ok::<(), shared_manifest::PersistError>(())
            }))
        }
    };
    let result = running.wait(&mut b.log, cancel).await?;
    tool_called(
        if result.succeeded() {
            "succeeded"
        } else {
            "failed"
        },
        format!(
            "exit {}",
            result
                .exit_code()
                .map_or_else(|| "null".to_owned(), |c| c.to_string())
        ),
    );
    // The start lands before the stage's result, always; without a start it is sent now.
    match recorded {
        Some(task) => {
            if let Ok(sent) = task.await {
                sent?;
            }
        }
        None => {
            if let Some(start) = start_record(attempt, first, None) {
                run.persister.send(start).await?;
            }
        }
    }
    Ok(result)
}

/// Records the stage's end from its last attempt: log, error file, manifest, events, progress.
async fn record(
    run: &RunState,
    stage: &Stage,
    cmd: &CommandStage,
    mut b: Began,
    (result, patch): (ExecResult, Patch<'_>),
    attempts: u32,
    duration: Duration,
) -> Result<StageEnd, AppError> {
    let ctx = &run.ctx;
    let index = b.index;
    b.log.write(&LogEvent::CommandEnd {
        exit_code: result.exit_code(),
        signal: result.signal(),
        duration_ms: crate::time::millis(result.duration),
    })?;
    let (mut event, mut summary) = classify(run, cmd, &result);
    let (patch_refused, accepted) = match patch {
        Patch::Absent => (None, None),
        Patch::Refused(why) => (Some(why), None),
        Patch::Accepted(a) => (None, Some(*a)),
    };
    if let Some(why) = &patch_refused {
        // The command succeeded but what it asked to add is invalid: the stage fails, with
        // the validation error as its summary, and nothing was added.
        event = CommandEvent::Fail;
        summary = why.clone();
    }
    let failure_reason = failure_reason(&result);
    if event == CommandEvent::Skip {
        // The peer's one `agent_message` that is not output (output is never copied into
        // events.jsonl: the stage log holds the one copy).
        let message = match (result.timed_out(), b.timeout) {
            (true, Some(t)) => format!(
                "Non-fatal fallback applied after timeout ({}ms).",
                crate::time::millis(t)
            ),
            _ => "Non-fatal fallback applied after command failure.".to_owned(),
        };
        run.emit(
            "agent_message",
            json!({
                "message": message, "level": "warn", "stage_id": stage.id,
                "stage_index": index, "source": "system",
            }),
        );
        b.log.write_runner_only(&LogEvent::CommandFallback {
            reason: failure_reason.to_owned(),
            exit_code: result.exit_code(),
            signal: result.signal(),
            timeout_ms: result
                .timed_out()
                .then(|| b.timeout.map(crate::time::millis))
                .flatten(),
        })?;
    }
    // In the kernel before the record of the end is sent: a kill -9 never leaves a record
    // that claims more than the log holds. The fsync is the persister's (group commit).
    b.log.flush_buffer()?;
    let mut sync = Synced::default();
    sync.file_in_dir(run.dir.stage_log(index, &stage.id));
    let error_file = if result.succeeded() {
        None
    } else {
        let path = ErrorFile {
            run: &run.dir,
            task_id: &ctx.task,
            index,
            stage_id: &stage.id,
            command: &b.shown,
            reason: if event == CommandEvent::Skip {
                "command-allow-failure"
            } else {
                "command-failed"
            },
            details: error_details(
                &result,
                failure_reason,
                event == CommandEvent::Skip,
                b.timeout,
            ),
        }
        .write()?;
        let rel = run.dir.rel(&path);
        sync.file_in_dir(path);
        Some(rel)
    };
    if let Some(remote) = &result.remote {
        // Where the final attempt ran, now with its node and final status; in the same
        // write as the stage's end.
        run.persister
            .send(ManifestUpdate::StageExecutor {
                index,
                record: crate::engine::executor::record(remote),
            })
            .await?;
    }
    let status = record_end_patched(
        run,
        accepted,
        StageFinish {
            index,
            at: crate::time::now(),
            event,
            exit_code: result.exit_code(),
            summary: Some(summary.clone()),
            error_file,
            outcome: Some(outcome_name(&result.outcome).to_owned()),
            signal: result.signal(),
            duration_ms: Some(crate::time::millis(duration)),
            stdout_bytes: Some(result.stdout.total_bytes),
            stderr_bytes: Some(result.stderr.total_bytes),
            leaked_processes: result.leaked_processes,
            // 0 = the knob is unset: no chunk events are retained, so none count as dropped.
            dropped_chunk_events: (ctx.exec.max_chunk_events > 0)
                .then_some(result.dropped_chunk_events),
            redactions: b.secrets.is_some().then_some(result.redactions),
        },
        json!({
            "stage_id": stage.id, "stage_index": index, "title": stage.title, "kind": "command",
            "status": Value::Null, "exit_code": result.exit_code(), "summary": summary,
            "log_path": b.log_rel, "sub_run_id": Value::Null, "attempts": attempts,
        }),
        sync,
    )
    .await?;
    ctx.reporter.stage_finished(
        &run.label(),
        (index, run.plan().pipeline.stages.len()),
        &stage.id,
        status,
        duration,
        &summary,
    );
    if event == CommandEvent::Fail {
        ctx.reporter.stage_failed(
            &run.label(),
            index,
            &stage.id,
            &summary,
            &run.dir.stage_log(index, &stage.id),
            &b.log_rel,
            &result,
        );
    }
    let detail_kind = match (&result.outcome, &result.remote) {
        (Outcome::SpawnFailed { .. }, _) => "error",
        // The cluster or the job was lost: its own detail, apart from a command that failed.
        (Outcome::Lost { .. }, Some(r)) => match r.kind {
            "ray" => "ray-unreachable",
            _ => "executor-unreachable",
        },
        (Outcome::Lost { .. }, None) => "executor-unreachable",
        _ => "failed",
    };
    Ok(StageEnd {
        event,
        detail: format!("stage:{}:{detail_kind}", stage.id),
        failure_line: (event == CommandEvent::Fail).then(|| match &patch_refused {
            Some(_) => format!(
                "Stage '{}' wrote a plan patch that was refused.",
                stage.title
            ),
            None => failure_line(stage, &result.outcome),
        }),
    })
}

/// The stage's event (succeeded, failed, or skipped under `allowFailure`) and its summary.
fn classify(run: &RunState, cmd: &CommandStage, result: &ExecResult) -> (CommandEvent, String) {
    let cancelled = matches!(result.outcome, Outcome::Cancelled { .. });
    let mut summary = exec::summarize(result, cmd.summary_hint.as_deref());
    if cancelled {
        // Says why: a signal, the run's budget, a `fail` request.
        summary = format!("{} — {summary}", run.ctx.stop_note());
    }
    if !result.succeeded() {
        if let Some(hint) = run.ctx.peer_env.missing_package_hint(&cmd.command) {
            summary = format!("{summary} ({hint})");
        }
    }
    let event = if result.succeeded() {
        CommandEvent::Succeed
    } else if cmd.allow_failure && !cancelled {
        CommandEvent::Skip
    } else {
        CommandEvent::Fail
    };
    (event, summary)
}

/// The run summary's line for a failed stage.
fn failure_line(stage: &Stage, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited { code } => {
            format!("Stage '{}' failed with exit code {code}.", stage.title)
        }
        Outcome::TimedOut { after, .. } => format!(
            "Stage '{}' timed out after {}ms.",
            stage.title,
            crate::time::millis(*after)
        ),
        Outcome::Cancelled { .. } => format!("Stage '{}' was cancelled.", stage.title),
        Outcome::Signaled { signal } => format!(
            "Stage '{}' was terminated by {}.",
            stage.title,
            exec::signal_name(*signal)
        ),
        Outcome::SpawnFailed { message } => {
            format!("Stage '{}' could not start: {message}.", stage.title)
        }
        Outcome::Lost { message } => format!("Stage '{}' failed: {message}.", stage.title),
    }
}

/// A stage that failed before its process could start.
async fn finish_unstarted(
    run: &RunState,
    pos: usize,
    stage: &Stage,
    message: String,
) -> Result<StageEnd, AppError> {
    let index = pos + 1;
    run.persister
        .send(ManifestUpdate::StageStarted {
            index,
            at: crate::time::now(),
            attempt: 1,
            log_path: None,
            command: None,
            process: None,
        })
        .await?;
    run.persister
        .send(ManifestUpdate::StageFinished(Box::new(StageFinish {
            index,
            at: crate::time::now(),
            event: CommandEvent::Fail,
            exit_code: None,
            summary: Some(message.clone()),
            error_file: None,
            outcome: Some("spawn_failed".into()),
            signal: None,
            duration_ms: Some(0),
            stdout_bytes: None,
            stderr_bytes: None,
            leaked_processes: false,
            dropped_chunk_events: None,
            redactions: None,
        })))
        .await?;
    if run.ctx.durability() == crate::config::Durability::Strict {
        run.persister.flush().await?;
    }
    Ok(StageEnd {
        event: CommandEvent::Fail,
        detail: format!("stage:{}:error", stage.id),
        failure_line: Some(format!(
            "Stage '{}' could not start: {message}.",
            stage.title
        )),
    })
}

/// Waits `delay`; false when the run was cancelled meanwhile.
async fn sleep_unless_cancelled(
    delay: Duration,
    mut cancel: tokio::sync::watch::Receiver<CancelRequest>,
) -> bool {
    if *cancel.borrow_and_update() != CancelRequest::None {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = cancel.changed() => false,
    }
}

fn failure_reason(r: &ExecResult) -> &'static str {
    match r.outcome {
        Outcome::Exited { .. } => "command_failed",
        Outcome::TimedOut { .. } => "timed_out",
        Outcome::Signaled { .. } => "signal",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::SpawnFailed { .. } => "spawn_failed",
        Outcome::Lost { .. } => "executor_lost",
    }
}

pub(crate) fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Exited { .. } => "exited",
        Outcome::Signaled { .. } => "signaled",
        Outcome::TimedOut { .. } => "timed_out",
        Outcome::Cancelled { .. } => "cancelled",
        Outcome::SpawnFailed { .. } => "spawn_failed",
        Outcome::Lost { .. } => "lost",
    }
}

/// The `details` of an error file, with the peer's keys first.
fn error_details(
    r: &ExecResult,
    reason: &str,
    fallback: bool,
    timeout: Option<Duration>,
) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("exit_code".into(), json!(r.exit_code()));
    d.insert("sandbox_state".into(), json!("unsandboxed"));
    put_capped(&mut d, "stderr", exec::text::clean(&r.stderr.tail).trim());
    d.insert("failure_reason".into(), json!(reason));
    if fallback {
        d.insert("non_fatal_fallback".into(), json!(true));
    }
    if let Some(sig) = r.signal() {
        d.insert("signal".into(), json!(sig));
    }
    if r.timed_out() {
        d.insert("timed_out".into(), json!(true));
        d.insert("timeout_ms".into(), json!(timeout.map(crate::time::millis)));
    }
    if r.stderr.truncated {
        d.insert("stderr_truncated".into(), json!(true));
    }
    put_capped(&mut d, "stdout", exec::text::clean(&r.stdout.tail).trim());
    if r.stdout.truncated {
        d.insert("stdout_truncated".into(), json!(true));
    }
    if let Outcome::SpawnFailed { message } | Outcome::Lost { message } = &r.outcome {
        d.insert("error".into(), json!(message));
    }
    if let Some(remote) = &r.remote {
        d.insert(
            "executor".into(),
            json!({
                "kind": remote.kind, "address": remote.address,
                "submission_id": remote.submission_id, "node": remote.node,
            }),
        );
    }
    d
}
