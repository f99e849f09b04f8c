//! `start [pipeline]`: validate everything, create the run, execute it, print the result and
//! map the outcome to the exit code.

use std::sync::{Arc, Mutex};

use exec::CancelRequest;

use crate::cli::Format;
pub use crate::cli::StartArgs;
use crate::engine::context::{Ctx, ExecKnobs};
use crate::engine::run;
use crate::errors::AppError;
use crate::modes::{resolve_execution, resolve_runtime, ExecutionInputs, RuntimeInputs};
use crate::plan;
use crate::record::layout::Roots;
use crate::report::progress::Reporter;

/// Runs `start` (`--dry-run` is `resolved::dry_run`'s, see `entry.rs`); returns the exit code.
pub async fn start(args: StartArgs) -> Result<i32, AppError> {
    let launched = launch(&args, None).await?;
    print(&launched, args.format);
    Ok(launched.code)
}

/// Prints a finished run as `start` does: the JSON object, or the peer's text block.
pub(crate) fn print(launched: &Launched, format: Format) {
    match format {
        Format::Json => crate::report::output::json(&launched.json),
        Format::Text => crate::report::output::line(
            super::common::run_text(&launched.report, "Run started").trim_end(),
        ),
    }
}

/// A finished run, as `start`, `exec` and `flow` report it.
#[derive(Debug)]
pub struct Launched {
    /// The exit code of the run.
    pub code: i32,
    /// The `--format json` object (the peer's keys).
    pub json: serde_json::Value,
    /// The run.
    pub report: crate::engine::state::RunReport,
}

/// Validates, creates and executes a run of `args.pipeline` from the repo config, or from
/// `config` when given (`exec` builds a one-stage config in memory).
pub async fn launch(
    args: &StartArgs,
    config: Option<crate::config::Config>,
) -> Result<Launched, AppError> {
    launch_with(args, config, Hooks::default()).await
}

/// Called once a run's directory exists (see [`Hooks`]).
pub type OnPrepared = Box<dyn FnOnce(&crate::record::layout::RunDir) + Send>;

/// What a verb built on `start` changes about it (`exec`).
#[derive(Default)]
pub struct Hooks {
    /// Progress output instead of the one `args.progress` asks for.
    pub reporter: Option<Reporter>,
    /// Called once the run's directory exists, before any stage starts.
    pub on_prepared: Option<OnPrepared>,
}

/// Everything a run is made of, checked, before anything is written: what `start` runs and
/// what `start --dry-run` prints.
#[derive(Debug)]
pub struct Inputs {
    /// Repo, runs and out directories.
    pub roots: Roots,
    /// The validated config.
    pub config: Arc<crate::config::Config>,
    /// Task id.
    pub task: String,
    /// `--var` values.
    pub cli_vars: Vec<(String, String)>,
    /// The plan, with its target and stage selection.
    pub plan: plan::Plan,
    /// Resolved runtime mode.
    pub runtime: crate::modes::RuntimeDecision,
    /// Resolved execution mode.
    pub execution: crate::modes::ExecutionDecision,
    /// Exec knobs from the environment.
    pub knobs: ExecKnobs,
    /// The peer's stage variables.
    pub peer_env: crate::engine::peer_env::PeerEnv,
    /// `--fail-fast` / `--no-fail-fast`.
    pub fail_fast: Option<bool>,
    /// Secret variables: the config's `secrets` and `--secret`.
    pub secrets: crate::config::SecretNames,
}

/// Reads and checks everything `args` asks for (config, pipeline, variables, target,
/// selection, modes, knobs); writes nothing. `config` replaces the repo config (`exec`).
pub fn inputs(args: &StartArgs, config: Option<crate::config::Config>) -> Result<Inputs, AppError> {
    let roots = Roots::from_env()
        .map_err(|e| AppError::Usage(format!("cannot determine the current directory: {e}")))?;
    let task = super::common::task_id(args.task.as_deref())?;
    let chosen = match config {
        Some(config) => super::setup::Chosen {
            config,
            package: None,
            required: crate::config::package::repo_config_required(
                args.repo_config_required.as_deref(),
            )
            .map_err(AppError::Usage)?,
        },
        None => {
            super::setup::load_config(&roots, args.strict, args.repo_config_required.as_deref())?
        }
    };
    let config = Arc::new(chosen.config);
    let pipeline = plan::select(&config, args.pipeline.as_deref())?;
    let cli_vars = plan::parse_cli_vars(&args.vars)?;
    let secrets = super::setup::secret_names(&config, &args.secrets)?;
    let mut plan = plan::build(&config, pipeline, &cli_vars, args.concurrency)?;
    if let Some(t) = args.target.id() {
        plan.retarget(t)?;
    }
    plan.select(&args.shape.selection())?;
    for note in args.inert.notes() {
        crate::console::err_line(&note);
    }
    let now = crate::time::now();
    let runtime = resolve_runtime(
        &RuntimeInputs::with_env(args.runtime_mode.clone(), config.runtime_mode.clone(), None),
        &now,
    )?;
    let target = plan.target_stage();
    let execution = resolve_execution(
        &ExecutionInputs::with_env(
            args.execution_mode.clone(),
            args.cloud,
            target.and_then(|s| s.plan.clone()),
        ),
        &now,
    )?;
    let knobs = ExecKnobs::from_env()?;
    if !args.no_deliver {
        crate::delivery::preflight::check(&config, &plan.pipeline, &roots.repo)?;
    }
    if let Some(parent) = &args.parent_run {
        super::common::check_run_flag("--parent-run", parent)?;
        if crate::history::find_manifest(&roots.runs, parent).is_none() {
            return Err(AppError::Usage(format!(
                "--parent-run `{parent}`: no run with this id under `{}`",
                roots.runs.display()
            )));
        }
    }
    if let Some(junit) = &args.junit {
        super::common::check_junit_path(junit)?;
    }
    super::common::note_runtime_fallback(&runtime);
    if execution.cloud_fallback.is_some() {
        crate::console::err_line("note: cloud execution is not available; running in mcp mode (recorded in cloud_fallback)");
    }
    let peer_env = super::setup::peer_env(
        &roots,
        &config,
        &plan.pipeline.id,
        chosen.package,
        runtime.mode.as_str(),
        chosen.required,
    );
    Ok(Inputs {
        roots,
        config,
        task,
        cli_vars,
        plan,
        runtime,
        execution,
        knobs,
        peer_env,
        fail_fast: args.shape.fail_fast(),
        secrets,
    })
}

/// [`launch`] with hooks.
pub async fn launch_with(
    args: &StartArgs,
    config: Option<crate::config::Config>,
    hooks: Hooks,
) -> Result<Launched, AppError> {
    let Inputs {
        roots,
        config,
        task,
        cli_vars,
        plan,
        runtime,
        execution,
        knobs,
        peer_env,
        fail_fast,
        secrets,
    } = inputs(args, config)?;
    let (cancel, _) = tokio::sync::watch::channel(CancelRequest::None);
    let ctx = Arc::new(Ctx {
        roots,
        config,
        task,
        cli_vars,
        peer_env,
        manifest_keys: args.issue.manifest_keys(),
        concurrency_flag: args.concurrency,
        approval_policy: args.approval_policy.clone(),
        runtime,
        execution,
        exec: knobs,
        reporter: hooks
            .reporter
            .unwrap_or_else(|| Reporter::new(args.progress.request())),
        cancel,
        fatal: Mutex::new(None),
        deliver: !args.no_deliver,
        stop: Mutex::new(None),
        max_wall_clock: args.control.max_wall_clock,
        secrets,
        fail_fast,
    });
    crate::control::signals::spawn_listener(ctx.cancel.clone())
        .map_err(|e| AppError::Usage(format!("cannot install signal handlers: {e}")))?;
    // A run slot now, or a place in line (`maxConcurrentRuns`); `--no-wait` refuses to wait.
    let admission = crate::engine::queue::admit(&ctx, args.control.no_wait)?;
    let prepared = run::prepare_admitted(
        ctx.clone(),
        plan.into_shared(),
        args.parent_run.clone(),
        0,
        admission,
    )
    .await?;
    if let Some(f) = hooks.on_prepared {
        f(prepared.dir());
    }
    let (report, code) = super::common::finish_run(&ctx, prepared, args.junit.as_deref()).await?;
    let json = super::common::run_json(&report);
    Ok(Launched { code, json, report })
}
