//! The lifecycle of one run: create its directory and manifest, hand the manifest to its
//! persister, run the scheduler, then record the terminal state durably (manifest, summary,
//! metrics) before returning. Sub-pipeline stages come back here for their child runs through
//! [`CHILD_RUNS`].

use std::sync::Arc;

use exec::RunnerLog;
use serde_json::{json, Value};
use shared_manifest::atomic::{create_dir_all_durable, write_atomic_relaxed};
use shared_manifest::schema::{self, BudgetRecord, Manifest};
use shared_manifest::{CommandStatus, ManifestUpdate, Persister, RunEvent, RunStatus, Targets};

use crate::control::slots::Admission;
use crate::engine::context::{Ctx, Stop};
use crate::engine::schedule::{self, Finished};
use crate::engine::state::{
    BoxFuture, ChildRuns, EarlierAttempts, Prepared, RunReport, RunState, Takeover,
};
use crate::errors::AppError;
use crate::plan::Plan;
use crate::record::layout::{new_resume_token, new_run_id, RunDir};
use crate::report::events::EventLog;

/// Creates the run: directory (durably), initial manifest (`in_progress`), resume token, mcp
/// stub, logs. Nothing is written before this point. Sub-pipelines' child runs come here: they
/// run inside their parent's run slot.
///
/// The run directory appears whole: it is built under `.runs/<task>/.staging/<run-id>/`
/// (stage-log folder, lock, first manifest written durably), then renamed into
/// `.runs/<task>/cli/`. A runner that dies before the rename leaves no run folder without a
/// manifest in `cli/`, only a staging folder, which the next run of the task sweeps (see
/// [`sweep_staging`]); one that fails before it removes its staging folder itself.
pub async fn prepare(
    ctx: Arc<Ctx>,
    plan: Arc<Plan>,
    parent_run_id: Option<String>,
    depth: usize,
) -> Result<Prepared, AppError> {
    prepare_admitted(ctx, plan, parent_run_id, depth, Admission::Free).await
}

/// [`prepare`] for a run admitted under `maxConcurrentRuns`: a run that holds its slot starts
/// at once; one in line for a slot is recorded `queued` (durably: `status` shows it) and
/// starts in [`execute`] when its turn comes.
pub async fn prepare_admitted(
    ctx: Arc<Ctx>,
    plan: Arc<Plan>,
    parent_run_id: Option<String>,
    depth: usize,
    admission: Admission,
) -> Result<Prepared, AppError> {
    let run_id = new_run_id();
    let dir = ctx.roots.run_dir(&ctx.task, &run_id);
    if depth == 0 {
        sweep_staging(&dir);
    }
    let staging = dir.staging_dir();
    // A run in line for a slot is recorded `queued`: it starts in [`execute`].
    let started = !matches!(admission, Admission::Queued(..));
    let staged = stage_run_dir(&ctx, &plan, &dir, parent_run_id, started).await;
    let (manifest, lock) = match staged {
        Ok(v) => v,
        Err(e) => {
            // Ours alone (a fresh random name): nothing else can be using it.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let plan_len = plan.pipeline.stages.len();
    // The first manifest is durable already: this persister writes on the next change.
    let persister = Persister::spawn(
        manifest,
        Targets::manifest(dir.manifest(), Some(dir.heartbeat())),
    );
    let token = persister.inspect(|m| m.resume_token.clone()).await?;
    // The token is durable in the manifest; `.resume-token` is a convenience copy for
    // scripts, so it is written atomically without fsync (rebuilt when missing or damaged,
    // see `record::artifacts::heal_side_files`).
    write_atomic_relaxed(&dir.resume_token(), format!("{token}\n").as_bytes())?;
    crate::record::artifacts::write_mcp_stub(&dir)?;
    // A new directory: every request in its control.json is for this runner.
    let mut prepared = assemble(
        ctx,
        plan,
        dir,
        persister,
        depth,
        (
            vec![false; plan_len],
            vec![EarlierAttempts::default(); plan_len],
        ),
        (lock, 0),
    )?;
    prepared.admission = admission;
    Ok(prepared)
}

/// Builds the run's directory under its staging name (folders, lock, first manifest, all
/// durable) and renames it into place; returns the manifest as written and the held lock.
async fn stage_run_dir(
    ctx: &Ctx,
    plan: &Plan,
    dir: &RunDir,
    parent_run_id: Option<String>,
    started: bool,
) -> Result<(Manifest, crate::control::lock::RunLock), AppError> {
    let staging = dir.staging_dir();
    // `errors/` is created on the first failure (see artifacts::ErrorFile).
    let commands = staging.join("commands");
    create_dir_all_durable(&commands).map_err(|e| AppError::storage(&commands, e))?;
    // A fresh directory: the lock is free, but take it so `resume` and `cancel` see a holder
    // (a `flock` belongs to the open file, so it survives the rename).
    let lock = crate::control::lock::acquire(&staging.join("run.lock"))
        .map_err(|e| e.into_app("cannot create the run"))?;
    let now = crate::time::now();
    let manifest = initial_manifest(ctx, plan, dir, parent_run_id, new_resume_token(), &now);
    let first = Persister::spawn(
        manifest,
        Targets::manifest(
            staging.join("manifest.json"),
            Some(staging.join(".heartbeat")),
        ),
    );
    // One update either way, so that the first manifest is written before the rename (a run
    // in line for a slot stays `queued`, as `initial_manifest` made it).
    let first_update = if started {
        ManifestUpdate::RunStarted { at: now }
    } else {
        ManifestUpdate::Heartbeat { at: now }
    };
    first.send(first_update).await?;
    let manifest = first.close().await?;
    let cli = dir.dir.parent().unwrap_or(&dir.task_dir).to_owned();
    create_dir_all_durable(&cli).map_err(|e| AppError::storage(&cli, e))?;
    std::fs::rename(&staging, &dir.dir).map_err(|e| AppError::storage(&dir.dir, e))?;
    shared_manifest::atomic::fsync_dir(&cli).map_err(|e| AppError::storage(&cli, e))?;
    Ok((manifest, lock))
}

/// How old a staging folder without a lock file must be before it is taken for a runner's
/// remains: the lock is taken right after the folder is made, so a live runner is past that
/// window within milliseconds.
const STAGING_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes what runners that died before their first manifest left in `.runs/<task>/.staging/`
/// (best effort: a folder still locked, or too young to tell, is left alone). Cheap: the
/// staging folder is empty unless a runner died there.
pub fn sweep_staging(dir: &RunDir) {
    let Some(root) = dir.staging_dir().parent().map(std::path::Path::to_owned) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(&root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let remains = match crate::control::lock::try_acquire(&path.join("run.lock")) {
            // Held by us now: its runner is gone. Removed while held; dropped after.
            Some(Ok(_held)) => std::fs::remove_dir_all(&path).is_ok(),
            Some(Err(_)) => false,
            None => {
                entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > STAGING_GRACE)
                    && std::fs::remove_dir_all(&path).is_ok()
            }
        };
        if remains {
            tracing::info!(path = %path.display(), "removed the staging folder of a runner that died");
        }
    }
}

/// Opens the run's logs and bundles everything its stages share.
fn assemble(
    ctx: Arc<Ctx>,
    plan: Arc<Plan>,
    dir: RunDir,
    persister: Persister<Manifest>,
    depth: usize,
    (done, earlier): (Vec<bool>, Vec<EarlierAttempts>),
    (lock, control_seq): (crate::control::lock::RunLock, u64),
) -> Result<Prepared, AppError> {
    // From here on stages can run: a panic must find the run to stop and record it.
    let crash = crate::engine::crash::register(&persister, &dir);
    let events = EventLog::open(&dir.events(), &ctx.task, &dir.run_id)
        .map_err(|e| AppError::storage(&dir.events(), e))?;
    let runner_log = RunnerLog::open(&dir.runner_log())?;
    let state = Arc::new(RunState {
        ctx,
        dir,
        plan_now: std::sync::RwLock::new(plan),
        patching: tokio::sync::Mutex::new(()),
        persister,
        events,
        runner_log,
        depth,
        done,
        earlier,
        lock,
        control_seq,
        children: &CHILD_RUNS,
        crash,
    });
    Ok(Prepared {
        state,
        admission: Admission::Free,
    })
}

/// Takes over an existing run for `resume`: the caller holds the lock and has checked the token
/// and the stages; survivors of a crashed runner are killed, leftover temp files removed, the
/// resume recorded, and stages that are not done put back to pending. `depth` is 0 for a
/// top-level run, more for a child run resumed with its parent.
pub async fn prepare_resume(
    ctx: Arc<Ctx>,
    plan: Arc<Plan>,
    takeover: Takeover,
    depth: usize,
) -> Result<Prepared, AppError> {
    let Takeover {
        dir,
        mut manifest,
        event,
        lock,
        stale,
    } = takeover;
    // The layout the config asks for now; the persister removes a sidecar it no longer needs.
    manifest.extensions = ctx.config.record.extensions;
    // The peer leaves titles out when the config has none, against its own schema; the record
    // we write gets them (the config's defaults, the ids), so it validates.
    if manifest.pipeline_title.is_empty() {
        manifest.pipeline_title = plan.pipeline.title.clone();
    }
    for (c, s) in manifest.commands.iter_mut().zip(&plan.pipeline.stages) {
        if c.title.is_empty() {
            c.title = s.title.clone();
        }
    }
    let killed = crate::engine::resume::kill_survivors(&manifest, &ctx.roots);
    if killed > 0 {
        crate::console::err_line(&format!(
            "note: killed {killed} process group(s) left running by the previous runner"
        ));
    }
    // Then whatever is left that carries the run's id: processes outside the recorded groups.
    let marked = crate::engine::resume::kill_marked(&manifest, &ctx.roots);
    if marked > 0 {
        crate::console::err_line(&format!(
            "note: killed {marked} more process(es) of the previous runner's stages (found by {})",
            crate::env_vars::RUN_ID
        ));
    }
    shared_manifest::atomic::remove_stale_temps(&dir.dir)
        .map_err(|e| AppError::storage(&dir.dir, e))?;
    // The redirect stub may be missing (a runner killed before writing it) or damaged (a power
    // cut): rebuilt from the manifest, with the token copy and the heartbeat file.
    let healed = crate::record::heal::heal(&dir, &manifest)?;
    if !healed.is_empty() {
        tracing::info!(?healed, "side files rebuilt on resume");
    }
    let done = manifest
        .commands
        .iter()
        .map(|c| crate::engine::resume::is_done(c) && !stale.rerun.contains(&c.index))
        .collect();
    // Read before `RunResumed` puts interrupted stages back to pending.
    let earlier = manifest
        .commands
        .iter()
        .map(|c| EarlierAttempts {
            attempts: c.attempts.unwrap_or(0),
            interrupted: c.status == CommandStatus::Running,
        })
        .collect();
    // Requests already in control.json were for an earlier runner (the peer re-applies them;
    // we do not: a resumed run is not paused or cancelled again by what stopped it).
    let control_seq = crate::control::control_file::current_seq(&dir.control());
    let persister = Persister::spawn(
        manifest,
        Targets::manifest(dir.manifest(), Some(dir.heartbeat())),
    );
    persister
        .send(ManifestUpdate::RunResumed {
            at: crate::time::now(),
            event,
            runner_pid: std::process::id(),
            runtime: ctx.runtime.record(),
            plan_target_id: plan.target_id(),
            rerun: stale.rerun.clone(),
            selection: plan.selection.as_ref().map(|s| s.record(&plan.pipeline)),
            fail_fast: ctx.fail_fast,
        })
        .await?;
    if let Some(state) = stale.recovered_state {
        persister
            .send(ManifestUpdate::RunExtension {
                key: crate::engine::fingerprint::REPO_KEY,
                value: serde_json::json!({ "stopped": state, "recovered": true }),
            })
            .await?;
    }
    for (index, changes) in stale.reused {
        persister
            .send(ManifestUpdate::StageExtension {
                index,
                key: crate::engine::fingerprint::STALE_KEY,
                value: serde_json::json!({ "at": crate::time::now(), "changes": changes }),
            })
            .await?;
    }
    persister.flush().await?;
    assemble(
        ctx,
        plan,
        dir,
        persister,
        depth,
        (done, earlier),
        (lock, control_seq),
    )
}

fn initial_manifest(
    ctx: &Ctx,
    plan: &Plan,
    dir: &RunDir,
    parent_run_id: Option<String>,
    token: String,
    now: &str,
) -> Manifest {
    let p = &plan.pipeline;
    // Secret values in a command's text or a variable are masked here as in the stage's
    // output (a stage's own `env` is added when it starts: `stage.rs`).
    let secrets = exec::Secrets::new(ctx.secrets.values(std::env::vars_os(), &plan.vars));
    let shown = |text: &str| match &secrets {
        Some(s) => s.redact_str(text).0,
        None => text.to_owned(),
    };
    let commands = p
        .stages
        .iter()
        .enumerate()
        .map(|(i, _)| crate::engine::records::pending(ctx, plan, i, &shown))
        .collect();
    let variables = (!ctx.cli_vars.is_empty()).then(|| {
        ctx.cli_vars
            .iter()
            .map(|(k, v)| {
                let v = if ctx.secrets.matches(k.as_bytes()) {
                    exec::redact::MASK.to_owned()
                } else {
                    shown(v)
                };
                (k.clone(), Value::String(v))
            })
            .collect()
    });
    Manifest {
        version: 1,
        task_id: ctx.task.clone(),
        task_slug: Some(ctx.task.clone()),
        run_id: dir.run_id.clone(),
        parent_run_id,
        pipeline_id: p.id.clone(),
        pipeline_title: p.title.clone(),
        runner: "codex-cli".into(),
        approval_policy: ctx.approval_policy.clone(),
        status: RunStatus::Queued,
        status_detail: None,
        started_at: now.to_owned(),
        completed_at: None,
        updated_at: now.to_owned(),
        heartbeat_at: Some(now.to_owned()),
        heartbeat_interval_seconds: schema::HEARTBEAT_INTERVAL_SECONDS,
        heartbeat_stale_after_seconds: schema::HEARTBEAT_STALE_AFTER_SECONDS,
        artifact_root: dir.rel(&dir.dir),
        compat_path: dir.rel(&dir.mcp_dir()),
        log_path: dir.rel(&dir.runner_log()),
        workspace_path: Some(ctx.roots.repo.to_string_lossy().into_owned()),
        summary: None,
        metrics_recorded: false,
        resume_token: token,
        resume_events: Vec::new(),
        approvals: Vec::new(),
        commands,
        child_runs: Vec::new(),
        run_summary_path: Some(dir.rel(&dir.run_summary())),
        plan_target_id: plan.target_id(),
        runtime_mode_requested: ctx.runtime.requested,
        runtime_mode: ctx.runtime.mode,
        runtime_provider: ctx.runtime.mode.provider().to_owned(),
        runtime_fallback: Some(ctx.runtime.fallback.clone()),
        cloud_fallback: ctx.execution.cloud_fallback.clone(),
        instructions_hash: None,
        instructions_sources: Vec::new(),
        schema_version: Some(schema::SCHEMA_VERSION),
        runner_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        runner_pid: Some(std::process::id()),
        concurrency: Some(plan.concurrency),
        execution_mode: Some(ctx.execution.requested.clone()),
        runtime_mode_source: Some(ctx.runtime.source.to_owned()),
        variables,
        approval_decisions: Vec::new(),
        paused: None,
        queue: None,
        wall_clock_budgets: Vec::new(),
        delivery: Vec::new(),
        plan_patches: Vec::new(),
        config_path: Some(ctx.roots.rel(&ctx.config.path)),
        config_source: Some(ctx.config.source.as_str().to_owned()),
        selection: plan.selection.as_ref().map(|s| s.record(p)),
        fail_fast: ctx.fail_fast,
        other: ctx.manifest_keys.clone(),
        extensions: ctx.config.record.extensions,
    }
}

/// The peer's summary line for a run whose config is the package's fallback (its wording, as
/// readers match it).
pub const PACKAGE_CONFIG_NOTICE: &str = "Using packaged fallback codex.orchestrator.json (compatibility path). Run `codex-orchestrator init codex` to pin repo-local config.";

/// How sub-pipeline stages start their child runs: this module's functions.
pub static CHILD_RUNS: ChildRuns = ChildRuns {
    prepare: |ctx, plan, parent, depth| Box::pin(prepare(ctx, plan, parent, depth)),
    prepare_resume: |ctx, plan, takeover, depth| {
        Box::pin(prepare_resume(ctx, plan, takeover, depth))
    },
    execute,
};

/// Runs a prepared run to its end and records the terminal state durably.
///
/// Returns a boxed `Send` future: a run contains sub-pipeline runs, so the future type is
/// recursive and must be named to be spawned.
pub fn execute(prepared: Prepared) -> BoxFuture<Result<RunReport, AppError>> {
    Box::pin(execute_inner(prepared))
}

async fn execute_inner(prepared: Prepared) -> Result<RunReport, AppError> {
    let run = prepared.state.clone();
    let result = run_to_end(prepared).await;
    if let Err(e) = &result {
        // The run could not be carried to its end (the record cannot be written, the lock was
        // lost...): the stream still ends with the peer's `run_failed`, so a watcher of
        // `events.jsonl` is told, not left waiting. `events.jsonl` is appended, not created,
        // so this works where the manifest's temp files cannot be created.
        run.emit(
            "run_failed",
            json!({
                "pipeline_id": run.plan().pipeline.id,
                "message": with_causes(e),
                "stage_id": Value::Null,
                "status_detail": Value::Null,
            }),
        );
    }
    result
}

/// `e` and each of its sources, joined by `: ` (one line, as an event's message).
fn with_causes(e: &AppError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The run from admission to its recorded end.
async fn run_to_end(prepared: Prepared) -> Result<RunReport, AppError> {
    let Prepared {
        state: run,
        admission,
    } = prepared;
    let heartbeat = spawn_heartbeat(run.persister.clone());
    let storage_watch = spawn_storage_watch(run.persister.clone(), run.ctx.clone());
    // Held until the run has ended: the slot frees when this function returns (or the process
    // dies).
    let _slot = match admission {
        Admission::Free => None,
        Admission::Slot(slot) => Some(slot),
        Admission::Queued(slots, ticket) => {
            run.emit("run_queued", json!({ "max_concurrent_runs": slots.max() }));
            match crate::engine::queue::wait_recorded(&run, &slots, ticket).await? {
                Some(slot) => {
                    run.persister
                        .send(ManifestUpdate::RunStarted {
                            at: crate::time::now(),
                        })
                        .await?;
                    run.persister.flush().await?;
                    Some(slot)
                }
                None => {
                    // Interrupted while in line: no stage started; recorded `cancelled`.
                    heartbeat.abort();
                    storage_watch.abort();
                    return finalize(run, Finished::default()).await;
                }
            }
        }
    };
    run.emit(
        "run_started",
        json!({
            "pipeline_id": run.plan().pipeline.id,
            "pipeline_title": run.plan().pipeline.title,
            "status": "in_progress",
            "manifest_path": run.dir.manifest().to_string_lossy(),
            "log_path": run.dir.runner_log().to_string_lossy(),
        }),
    );
    run.ctx.reporter.run_started(
        &run.label(),
        &run.dir.run_id,
        &run.plan().pipeline.id,
        &run.dir.rel(&run.dir.manifest()),
        run.plan().pipeline.stages.len(),
    );
    let budget = start_budget(&run).await?;
    let finished = schedule::run_stages(run.clone()).await;
    heartbeat.abort();
    storage_watch.abort();
    if let Some(b) = budget {
        b.abort();
    }
    finalize(run, finished).await
}

/// The wall-clock budget of a top-level run (`--max-wall-clock`, else the pipeline's
/// `maxWallClockMs`), counted from now: every runner gets a fresh one (a resume too), recorded
/// in `wall_clock_budgets`. When it runs out, the run is stopped (`Stop::Budget`: running stages
/// get SIGTERM, grace, SIGKILL; nothing new starts; recorded `failed`, `run-timeout`). Time
/// spent waiting for an approval or paused counts; time in line for a run slot does not.
/// A sub-pipeline's child run lives inside its parent's budget.
async fn start_budget(
    run: &Arc<RunState>,
) -> Result<Option<tokio::task::JoinHandle<()>>, AppError> {
    if run.depth > 0 {
        return Ok(None);
    }
    let chosen = match (run.ctx.max_wall_clock, run.plan().pipeline.max_wall_clock) {
        (Some(flag), _) => Some((flag, "flag")),
        (None, Some(pipeline)) => Some((pipeline, "pipeline")),
        (None, None) => None,
    };
    let Some((limit, source)) = chosen else {
        return Ok(None);
    };
    let now = std::time::SystemTime::now();
    run.persister
        .send(ManifestUpdate::BudgetStarted(BudgetRecord {
            limit_ms: crate::time::millis(limit),
            source: source.to_owned(),
            started_at: crate::time::format(now),
            deadline: crate::time::format(crate::time::deadline(now, limit)),
        }))
        .await?;
    let ctx = run.ctx.clone();
    let run_id = run.dir.run_id.clone();
    Ok(Some(tokio::spawn(async move {
        tokio::time::sleep(limit).await;
        if ctx.stop_with(Stop::Budget { limit, source }) {
            ctx.reporter.run_note(
                "",
                &run_id,
                &format!(
                    "wall-clock budget of {} exceeded: stopping the run",
                    humantime::format_duration(limit)
                ),
            );
        }
    })))
}

/// Heartbeats every `heartbeat_interval_seconds` while the run is in progress; aborted at the
/// end of the run. A failed send means the persister already ended with an error, which the
/// run reports on its next flush.
fn spawn_heartbeat(persister: Persister<Manifest>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = std::time::Duration::from_secs(schema::HEARTBEAT_INTERVAL_SECONDS);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tick.tick().await;
            if persister
                .send(ManifestUpdate::Heartbeat {
                    at: crate::time::now(),
                })
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// Stops the run on the persister's first failed write, as it happens: without this, the
/// failure surfaces only at the next send or flush, typically when a running stage ends, so a
/// long stage would run to its end (and new ones could start) with nothing being recorded.
/// `fail_fatally` takes the scheduler's cancellation path: no new stage starts, running ones get
/// SIGTERM, grace, SIGKILL. It holds the context and a handle, not the run state, so aborting
/// it at the end of the run never delays the release of the run lock.
fn spawn_storage_watch(
    persister: Persister<Manifest>,
    ctx: Arc<Ctx>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let error = persister.failed().await;
        ctx.fail_fatally(error.into());
    })
}

async fn finalize(run: Arc<RunState>, f: Finished) -> Result<RunReport, AppError> {
    let ctx = &run.ctx;
    // Succeeded or failed is a function of the stages' recorded statuses (`run_outcome`, the
    // rule the state-machine tests check), read from the manifest the persister owns; the
    // scheduler only supplies which failure came first, for `status_detail`.
    // A look, not a barrier: the terminal write below makes all of it durable at once.
    let stages: Vec<(String, CommandStatus)> = run
        .persister
        .peek(|m| {
            m.commands
                .iter()
                .map(|c| (c.id.clone(), c.status))
                .collect()
        })
        .await?;
    let statuses: Vec<CommandStatus> = stages.iter().map(|(_, s)| *s).collect();
    let (event, detail) = if ctx.has_fatal() {
        let detail = if ctx.fatal_is_internal() {
            "internal-error"
        } else {
            "storage-error"
        };
        (RunEvent::Fail, Some(detail.to_owned()))
    } else if let Some(stop) = ctx.stop_reason() {
        (RunEvent::Fail, Some(stop.detail()))
    } else if ctx.cancel_signal().is_some() {
        (RunEvent::Cancel, Some("run-canceled".to_owned()))
    } else {
        let failed = shared_manifest::run_outcome(&statuses) == RunEvent::Fail;
        match (failed, &f.first_failure) {
            (false, None) => (RunEvent::Succeed, None),
            (true, Some(first)) => (RunEvent::Fail, Some(first.clone())),
            // The stages say failed but the scheduler saw no failure: name the first one.
            (true, None) => {
                let first = stages.iter().find(|(_, s)| *s == CommandStatus::Failed);
                let id = first.map_or("unknown", |(id, _)| id.as_str());
                (RunEvent::Fail, Some(format!("stage:{id}:failed")))
            }
            // A failure was seen but no stage is recorded failed: the record and the run
            // disagree, which is a bug; never report that as a success.
            (false, Some(_)) => (RunEvent::Fail, Some("internal-error".to_owned())),
        }
    };
    // The peer's summary: null for a plain success; the package-config fallback, then a
    // runtime fallback, are its first lines.
    let mut lines = Vec::new();
    if ctx.config.source == crate::config::ConfigSource::Package {
        lines.push(PACKAGE_CONFIG_NOTICE.to_owned());
    }
    let fallback = &ctx.runtime.fallback;
    if fallback.occurred {
        lines.push(format!(
            "Runtime fallback ({}): {}",
            fallback.code.as_deref().unwrap_or("unknown"),
            fallback.reason.as_deref().unwrap_or("no reason given")
        ));
    }
    lines.extend(f.notes.iter().cloned());
    let stop = ctx.stop_reason().filter(|_| !ctx.has_fatal());
    if let Some(stop) = &stop {
        lines.push(stop.line());
    } else if let Some(sig) = ctx.cancel_signal() {
        // A control.json request cancels with SIGTERM semantics; say who asked.
        if f.control_cancel {
            lines.push("Run cancellation requested in control.json.".to_owned());
        } else {
            lines.push(format!("Run cancelled by {}.", exec::signal_name(sig)));
        }
    }
    lines.extend(f.failure_lines.iter().cloned());
    let summary = (!lines.is_empty()).then(|| lines.join("\n"));
    // Where the run stopped, for a later `resume` to tell what changed since (after every
    // stage's own outputs). Git runs in its own thread: a snapshot may take a while.
    // Top-level runs only: `resume` compares a child run through its parent stage.
    let roots = ctx.roots.clone();
    let top = run.depth == 0;
    if let Ok(Some(state)) = tokio::task::spawn_blocking(move || {
        top.then(|| crate::engine::fingerprint::repo_state(&roots))
            .flatten()
    })
    .await
    {
        run.persister
            .send(ManifestUpdate::RunExtension {
                key: crate::engine::fingerprint::REPO_KEY,
                value: serde_json::json!({ "stopped": state }),
            })
            .await?;
    }
    let at = crate::time::now();
    run.persister
        .send(ManifestUpdate::RunFinished {
            at,
            event,
            status_detail: detail,
            summary,
        })
        .await?;
    // Only a top-level run that succeeded delivers, after its verdict is recorded; a failed
    // delivery is recorded apart and never changes that verdict.
    // The plan as it ends (a plan patch may have added stages since the run started).
    let plan = run.plan();
    if run.depth == 0 && event == RunEvent::Succeed && !plan.pipeline.delivery.is_empty() {
        let deliverer = crate::delivery::Deliverer {
            dir: &run.dir,
            task: &ctx.task,
            persister: &run.persister,
            events: &run.events,
            reporter: &ctx.reporter,
            config: &ctx.config,
            plan: &plan,
        };
        let skip = (!ctx.deliver).then_some("skipped: --no-deliver");
        crate::delivery::deliver(&deliverer, skip).await?;
    }
    let status = match event {
        RunEvent::Succeed => "succeeded",
        RunEvent::Cancel => "cancelled",
        _ => "failed",
    };
    // The terminal state is durable before the summary and metrics are written, and they are
    // built from exactly that state: a crash in between leaves an honest manifest that only
    // lacks `metrics_recorded`.
    // Rendered from the record where it lives rather than from a copy of it (a record of
    // thousands of stages is megabytes).
    let (dir, mode) = (run.dir.clone(), ctx.execution.mode);
    let (summary_bytes, metrics_line) = run
        .persister
        .inspect(move |m| {
            (
                crate::record::artifacts::run_summary_bytes(&dir, m, mode),
                crate::record::artifacts::metrics_line(m),
            )
        })
        .await?;
    crate::record::artifacts::save_run_summary(&run.dir, &summary_bytes)?;
    drop(summary_bytes);
    crate::record::artifacts::append_metrics_line(&run.dir, &metrics_line)?;
    run.persister.send(ManifestUpdate::MetricsRecorded).await?;
    let manifest = run.persister.clone().close().await?;
    let snapshot = &manifest;
    if let Some(sig) = ctx.cancel_signal().filter(|_| event == RunEvent::Cancel) {
        run.emit(
            "run_cancelled",
            json!({
                "pipeline_id": run.plan().pipeline.id,
                "signal": exec::signal_name(sig),
                "interrupted": snapshot.commands.iter().filter(|c| c.outcome.as_deref() == Some("cancelled")).map(|c| c.id.clone()).collect::<Vec<_>>(),
            }),
        );
    }
    if ctx.has_fatal() {
        // A runner error (storage, a bug), not a stage failure: the peer's `run_failed`.
        run.emit(
            "run_failed",
            json!({
                "pipeline_id": run.plan().pipeline.id,
                "message": ctx.fatal_message(),
                "stage_id": Value::Null,
                "status_detail": snapshot.status_detail,
            }),
        );
    } else {
        // Every run that ends, failed and cancelled ones too, ends with `run_completed`.
        run.emit(
            "run_completed",
            json!({
                "pipeline_id": run.plan().pipeline.id,
                "status": status,
                "manifest_path": run.dir.manifest().to_string_lossy(),
                "run_summary_path": run.dir.rel(&run.dir.run_summary()),
                "metrics_path": run.dir.metrics().to_string_lossy(),
                "summary": snapshot.summary,
                "status_detail": snapshot.status_detail,
            }),
        );
    }
    // `events.jsonl` and `runner.ndjson` are not fsynced: like `.heartbeat`, they are streams
    // for watchers, and the record (manifest, stage logs, error files) does not depend on them.
    ctx.reporter.run_finished(&run.label(), &manifest);
    Ok(RunReport {
        dir: run.dir.clone(),
        manifest,
    })
}
