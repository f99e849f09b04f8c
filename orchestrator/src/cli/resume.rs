//! `resume --run <id>`: take a failed, cancelled or abandoned run over under its lock and run
//! every stage that is not done, appending to its logs and events.

use std::sync::{Arc, Mutex};

use exec::CancelRequest;
use serde_json::json;
use shared_manifest::schema::{Manifest, ResumeEvent};

use crate::cli::{Format, ResumeArgs};
use crate::control::slots::Admission;
use crate::engine::context::{Ctx, ExecKnobs};
use crate::engine::run;
use crate::engine::state::StaleDecision;
use crate::errors::AppError;
use crate::modes::{resolve_execution, resolve_runtime, ExecutionInputs, RuntimeInputs};
use crate::plan;
use crate::report::progress::Reporter;

/// Runs `resume`; returns the exit code.
pub async fn resume(args: ResumeArgs) -> Result<i32, AppError> {
    let located = super::run_ref::locate(&args.run, args.task.as_deref(), false)?;
    let (roots, path) = (located.roots, located.manifest);
    let manifest = read_manifest(&path)?;
    // The token is checked before anything is locked or written.
    if let Some(token) = &args.token {
        if token.trim() != manifest.resume_token {
            return Err(AppError::Conflict("Resume token mismatch.".into()));
        }
    }
    let mut cli_vars = plan::parse_cli_vars(&args.vars)?;
    let chosen = match super::run_plan::recorded_plan(&roots, &manifest) {
        // A run of a plan file is resumed from that file, its `${VAR}`s substituted again
        // from the recorded `--var`s (a new `--var` wins) and the environment.
        Some(path) => {
            cli_vars = super::run_plan::vars_for_resume(&manifest, &cli_vars);
            super::setup::Chosen {
                config: super::run_plan::load(&path, &cli_vars)?,
                package: None,
                required: false,
            }
        }
        None => super::setup::load_config(&roots, false, args.repo_config_required.as_deref())?,
    };
    let config = Arc::new(chosen.config);
    let pipeline = config.pipeline(&manifest.pipeline_id).ok_or_else(|| {
        AppError::Conflict(format!(
            "cannot resume run `{}`: pipeline `{}` is no longer in `{}`",
            manifest.run_id,
            manifest.pipeline_id,
            config.path.display()
        ))
    })?;
    let secrets = super::setup::secret_names(&config, &args.secrets)?;
    // The stages plan patches added while it ran, from the record (a patch recorded masked:
    // from the file its stage wrote): the stages that wrote them are never asked again. With
    // the run's recorded selection.
    let base = plan::build(&config, pipeline, &cli_vars, args.concurrency)?;
    let patch_dir = run_dir_of(&roots, &path, &manifest)?;
    let patch_secrets = exec::Secrets::new(secrets.values(std::env::vars_os(), &base.vars));
    let files = plan::patch_record::PatchFiles {
        path_of: &|index, id| {
            let file = patch_dir.plan_patch(index, id);
            let shown = patch_dir.rel(&file);
            (file, shown)
        },
        secrets: patch_secrets.as_ref(),
    };
    let mut plan = base.of_run(&manifest, Some(&files)).map_err(|e| {
        AppError::Conflict(format!(
            "cannot resume run `{}` of pipeline `{}`: {e}",
            manifest.run_id, manifest.pipeline_id
        ))
    })?;
    let ids: Vec<&str> = plan.pipeline.stages.iter().map(|s| s.id.as_str()).collect();
    let recorded: Vec<&str> = manifest.commands.iter().map(|c| c.id.as_str()).collect();
    if ids != recorded {
        return Err(AppError::Conflict(format!(
            "cannot resume run `{}`: the stages of pipeline `{}` changed since it ran (now {}, recorded {})",
            manifest.run_id,
            manifest.pipeline_id,
            ids.join(", "),
            recorded.join(", ")
        )));
    }
    if let Some(t) = args.target.id() {
        plan.retarget(t)?;
    }
    // A selection given to `resume` replaces the run's; without one the run's stays (the
    // stages it left out stay out). Either applies to the stages not done yet.
    let request = args.shape.selection();
    if !request.is_empty() {
        plan.select(&request)?;
    }
    let now = crate::time::now();
    // Resolved again with the peer's precedence (flag > env > config > the recorded request >
    // default), before anything is locked or written: a bad value is a usage error (exit 2).
    // `prepare_resume` records the new decision in the manifest.
    let runtime = resolve_runtime(
        &RuntimeInputs::with_env(
            args.runtime_mode.clone(),
            config.runtime_mode.clone(),
            Some(manifest.runtime_mode_requested.as_str().to_owned()),
        ),
        &now,
    )?;
    let execution = resolve_execution(
        &ExecutionInputs::with_env(
            None,
            false,
            plan.target_stage().and_then(|s| s.plan.clone()),
        ),
        &now,
    )?;
    let knobs = ExecKnobs::from_env()?;
    if !args.no_deliver {
        crate::delivery::preflight::check(&config, &plan.pipeline, &roots.repo)?;
    }
    let dir = run_dir_of(&roots, &path, &manifest)?;
    // A runner that takes no lock (the peer) may be working on it: a fresh heartbeat says so.
    // Refused before anything is killed or written.
    // Checked before our lock is taken: that rewrites the lock file, which says whether the
    // heartbeat was left by a runner of ours that died.
    let activity = crate::control::activity::observe(&path, &manifest);
    if activity.live && !activity.lock_held {
        return Err(AppError::Conflict(format!(
            "cannot resume run `{}`: it is still running: its heartbeat is {}s old (live until {}s), written by a runner that holds no lock (such as the peer)",
            manifest.run_id,
            activity
                .observed_at
                .as_deref()
                .and_then(crate::time::parse)
                .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
                .map_or(0, |d| d.as_secs()),
            activity.stale_threshold_seconds
        )));
    }
    let lock = crate::control::lock::acquire(&dir.lock())
        .map_err(|e| e.into_app(&format!("cannot resume run `{}`", manifest.run_id)))?;
    // Re-read under the lock: the run may have moved on while we waited for nothing.
    let manifest = read_manifest(&path)?;
    run_dir_of(&roots, &path, &manifest)?;
    // A runner killed after the terminal manifest write left its bookkeeping unfinished; that
    // needs no stage, so it is completed here; then the run is resumed as asked (a succeeded
    // one runs nothing, as on the peer).
    let (manifest, repairs) = crate::engine::repair::complete(&dir, manifest).await?;
    if !repairs.is_empty() {
        crate::console::err_line(&format!(
            "note: run `{}` had ended {} but its runner stopped before finishing its records; repaired: {}",
            manifest.run_id,
            manifest.status.as_str(),
            repairs.describe()
        ));
    }
    let (stale, stale_note) = decide_stale(&args, &manifest, &plan, &roots)?;
    super::common::note_runtime_fallback(&runtime);
    let peer_env = super::setup::peer_env(
        &roots,
        &config,
        &plan.pipeline.id,
        chosen.package,
        runtime.mode.as_str(),
        chosen.required,
    );
    let (cancel, _) = tokio::sync::watch::channel(CancelRequest::None);
    let ctx = Arc::new(Ctx {
        roots,
        config: config.clone(),
        task: manifest.task_id.clone(),
        cli_vars,
        peer_env,
        manifest_keys: Default::default(),
        concurrency_flag: args.concurrency,
        approval_policy: manifest.approval_policy.clone(),
        runtime,
        execution,
        exec: knobs,
        reporter: Reporter::new(args.progress.request()),
        cancel,
        fatal: Mutex::new(None),
        deliver: !args.no_deliver,
        stop: Mutex::new(None),
        max_wall_clock: args.control.max_wall_clock,
        secrets,
        // `--fail-fast` / `--no-fail-fast` given here, else the run's (kept by its resumes).
        fail_fast: args.shape.fail_fast().or(manifest.fail_fast),
    });
    crate::control::signals::spawn_listener(ctx.cancel.clone())
        .map_err(|e| AppError::Usage(format!("cannot install signal handlers: {e}")))?;
    // A resume executes stages: it needs a run slot like a start (`maxConcurrentRuns`). It
    // waits before taking the run over, so nothing is recorded while it waits.
    let slot = match crate::engine::queue::admit(&ctx, args.control.no_wait)? {
        Admission::Free => None,
        Admission::Slot(slot) => Some(slot),
        Admission::Queued(slots, ticket) => {
            match crate::engine::queue::wait_quiet(&ctx, &slots, ticket, &manifest.run_id).await? {
                Some(slot) => Some(slot),
                None => {
                    crate::console::err_line(&format!(
                        "run {}: interrupted while waiting for a run slot; nothing was resumed",
                        manifest.run_id
                    ));
                    return Ok(ctx
                        .cancel_signal()
                        .map_or(crate::exit::RUN_FAILED, crate::exit::interrupted));
                }
            }
        }
    };
    let event = ResumeEvent {
        timestamp: now,
        actor: args.actor.clone().unwrap_or_else(|| "cli".into()),
        reason: args
            .reason
            .clone()
            .unwrap_or_else(|| "manual-resume".into()),
        outcome: "accepted".into(),
        detail: Some(format!(
            "previous status: {}{stale_note}",
            manifest.status.as_str()
        )),
    };
    let takeover = crate::engine::state::Takeover {
        dir,
        manifest,
        event,
        lock,
        stale,
    };
    let mut prepared = run::prepare_resume(ctx.clone(), plan.into_shared(), takeover, 0).await?;
    if let Some(slot) = slot {
        prepared.admission = Admission::Slot(slot);
    }
    let (report, code) = super::common::finish_run(&ctx, prepared, None).await?;
    match args.format {
        Format::Json => print_json(&report),
        Format::Text => {
            crate::report::output::line(super::common::run_text(&report, "Run resumed").trim_end())
        }
    }
    Ok(code)
}

/// The `--format json` object of a resume.
fn print_json(report: &crate::engine::state::RunReport) {
    // The same keys as `start`'s object, plus the number of resumes.
    let mut json = super::common::run_json(report);
    json["resume_events"] = json!(report.manifest.resume_events.len());
    crate::report::output::json(&json);
}

/// The run's manifest (merged with its sidecar); unreadable is a run-state conflict (exit 3).
/// The run's directory, from ids of the manifest that were checked to name where it was found.
fn run_dir_of(
    roots: &crate::record::layout::Roots,
    path: &std::path::Path,
    m: &Manifest,
) -> Result<crate::record::layout::RunDir, AppError> {
    roots
        .run_dir_of(path, &m.task_id, &m.run_id)
        .map_err(|why| {
            AppError::Conflict(format!(
                "`{}` is not a valid manifest for this run ({why}); refusing to resume it",
                roots.rel(path)
            ))
        })
}

fn read_manifest(path: &std::path::Path) -> Result<Manifest, AppError> {
    shared_manifest::read_manifest(path).map_err(|e| AppError::Conflict(e.describe()))
}

/// Fail-closed resume: compares what each succeeded stage depends on with where the run
/// stopped (`engine::fingerprint`). Nothing changed: resume as usual. Something changed:
/// refuse (exit 3, each stage and its changes on stderr), or with `--rerun-changed` run those
/// stages and their dependents again, or with `--allow-stale` keep them and say so. Returns the
/// decision and the note for the resume event's `detail`.
fn decide_stale(
    args: &ResumeArgs,
    manifest: &Manifest,
    plan: &crate::plan::Plan,
    roots: &crate::record::layout::Roots,
) -> Result<(StaleDecision, String), AppError> {
    use crate::engine::fingerprint;
    let mut decision = StaleDecision::default();
    let fingerprinted = manifest
        .commands
        .iter()
        .any(|c| c.other.contains_key(fingerprint::KEY));
    let stopped = manifest
        .other
        .get(fingerprint::REPO_KEY)
        .is_some_and(|r| r.get("stopped").is_some());
    if fingerprinted && !stopped {
        // Its runner crashed before recording where it stopped: from now on, this is where.
        decision.recovered_state = fingerprint::repo_state(roots);
    }
    let stale = fingerprint::check(manifest, plan, roots);
    if stale.is_empty() {
        return Ok((decision, String::new()));
    }
    let described: Vec<String> = stale.iter().map(fingerprint::Stale::describe).collect();
    if args.rerun_changed {
        decision.rerun = fingerprint::with_dependents(plan, &stale);
        let ids: Vec<&str> = decision
            .rerun
            .iter()
            .map(|&i| plan.pipeline.stages[i - 1].id.as_str())
            .collect();
        crate::console::err_line(&format!(
            "note: running again what changed since the run stopped ({}), and its dependents: {}",
            described.join("; "),
            ids.join(", ")
        ));
        return Ok((
            decision,
            format!("; rerun-changed: {}", described.join("; ")),
        ));
    }
    if args.allow_stale {
        decision.reused = stale.iter().map(|s| (s.index, s.changes.clone())).collect();
        crate::console::err_line(&format!(
            "note: keeping results although what they depend on changed since the run stopped (--allow-stale): {}",
            described.join("; ")
        ));
        return Ok((decision, format!("; allow-stale: {}", described.join("; "))));
    }
    for d in &described {
        crate::console::err_line(&format!("  {d}"));
    }
    Err(AppError::Conflict(format!(
        "cannot resume run `{}`: what {} succeeded stage(s) depend on changed since the run stopped ({}); --rerun-changed runs them again, --allow-stale keeps their results",
        manifest.run_id,
        stale.len(),
        described.join("; ")
    )))
}
