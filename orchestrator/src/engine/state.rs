//! The state a run's stages share while it runs (`RunState`), what a run is before and after it
//! executes (`Prepared`, `RunReport`), and the table through which a sub-pipeline stage starts
//! its child run. It uses none of its sibling modules but the leaf `crash` (the panic hook's
//! registry): the lifecycle (`run`), the scheduler and the stages all use it, so imports point
//! one way.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use exec::RunnerLog;
use serde_json::Value;
use shared_manifest::schema::{Manifest, ResumeEvent};
use shared_manifest::Persister;

use crate::config::{CommandStage, ExecutorConfig};
use crate::control::lock::RunLock;
use crate::engine::context::Ctx;
use crate::engine::peer_env::PeerEnv;
use crate::env_vars as ev;
use crate::errors::AppError;
use crate::plan::Plan;
use crate::record::layout::{Roots, RunDir};
use crate::report::events::EventLog;

/// A boxed `Send` future: a run contains sub-pipeline runs, so the lifecycle's futures are
/// recursive and must be named to be spawned.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starting and running a child run belongs to the run lifecycle (`run.rs`), which sits above
/// the scheduler and the stages. A sub-pipeline stage reaches it through this table, filled in
/// by `run.rs`: calls go round (run -> schedule -> sub-pipeline -> run), imports do not.
#[derive(Debug)]
pub struct ChildRuns {
    /// `run::prepare`: a new child run (context, plan, parent run id, depth).
    pub prepare: fn(Arc<Ctx>, Arc<Plan>, Option<String>, usize) -> PreparedFuture,
    /// `run::prepare_resume`: an earlier child run taken over under its lock.
    pub prepare_resume: fn(Arc<Ctx>, Arc<Plan>, Takeover, usize) -> PreparedFuture,
    /// `run::execute`: runs a prepared run to its end.
    pub execute: fn(Prepared) -> BoxFuture<Result<RunReport, AppError>>,
}

/// An existing run taken over by `resume`: the caller holds its lock and has checked it.
#[derive(Debug)]
pub struct Takeover {
    /// Its paths.
    pub dir: RunDir,
    /// Its manifest, read under the lock.
    pub manifest: Manifest,
    /// The `resume_events` entry this takeover adds.
    pub event: ResumeEvent,
    /// The run's lock, held from now on by this runner.
    pub lock: RunLock,
    /// What `resume` decided about succeeded stages whose dependencies changed.
    pub stale: StaleDecision,
}

/// Succeeded stages whose dependencies changed since the run stopped, and what to do.
#[derive(Debug, Clone, Default)]
pub struct StaleDecision {
    /// Stages to run again (1-based): the changed ones and their dependents.
    pub rerun: Vec<usize>,
    /// Stages reused anyway (`--allow-stale`): 1-based index and what changed.
    pub reused: Vec<(usize, Vec<String>)>,
    /// The repository state to record as where the run stopped, when the stopped runner did
    /// not (it crashed): taken when `resume` found the run.
    pub recovered_state: Option<serde_json::Value>,
}

/// What preparing a run returns.
pub type PreparedFuture = BoxFuture<Result<Prepared, AppError>>;

/// A stage's command, working directory and environment with variables resolved.
pub type Resolved = (String, PathBuf, Vec<(String, String)>);

/// Deepest nesting shown by indentation in progress lines (see [`RunState::label`]).
pub const MAX_INDENT: usize = 4;

/// Everything a running run's stages share.
#[derive(Debug)]
pub struct RunState {
    /// Invocation-wide context.
    pub ctx: Arc<Ctx>,
    /// Paths of this run.
    pub dir: RunDir,
    /// What runs: replaced (never changed in place) when a plan patch adds stages, so a
    /// stage that holds the plan it started with keeps a consistent one. Read through
    /// [`RunState::plan`]; only [`RunState::patching`]'s holder replaces it.
    pub plan_now: std::sync::RwLock<Arc<Plan>>,
    /// Held while a plan patch is validated, recorded and merged: one at a time, so each is
    /// checked against the plan it extends and recorded in that order.
    pub patching: tokio::sync::Mutex<()>,
    /// The one writer of the manifest.
    pub persister: Persister<Manifest>,
    /// `events.jsonl`.
    pub events: EventLog,
    /// `runner.ndjson`.
    pub runner_log: RunnerLog,
    /// Nesting depth (0 for the top-level run), for the reporter.
    pub depth: usize,
    /// Stages already done before this runner started (a resume), by position.
    pub done: Vec<bool>,
    /// What earlier runners of this run recorded of each stage's attempts, by position (all
    /// zero for a new run): an executor whose attempts outlive the runner goes on from there.
    pub earlier: Vec<EarlierAttempts>,
    /// One runner per run: held until the run state is dropped.
    pub lock: RunLock,
    /// `control_seq` of `control.json` when this runner took the run: only later requests
    /// are for it.
    pub control_seq: u64,
    /// How a sub-pipeline stage starts its child run.
    pub children: &'static ChildRuns,
    /// Known to the panic hook while the run state lives.
    pub crash: crate::engine::crash::Registration,
}

/// A run's end, as the command needs it.
#[derive(Debug)]
pub struct RunReport {
    /// Its paths.
    pub dir: RunDir,
    /// The final manifest.
    pub manifest: Manifest,
}

impl RunState {
    /// The plan as it stands (with the stages plan patches added so far).
    pub fn plan(&self) -> Arc<Plan> {
        // A poisoned lock only means a panic elsewhere; the plan inside is whole (it is
        // only ever replaced).
        match self.plan_now.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the plan (the holder of [`RunState::patching`] only).
    pub fn set_plan(&self, plan: Arc<Plan>) {
        match self.plan_now.write() {
            Ok(mut p) => *p = plan,
            Err(poisoned) => *poisoned.into_inner() = plan,
        }
    }

    /// Appends an event; a failure to write the stream is fatal to the run (storage).
    pub fn emit(&self, event: &str, payload: Value) {
        if let Err(e) = self.events.emit(event, payload) {
            self.ctx
                .fail_fatally(AppError::storage(self.events.path(), e));
        }
    }

    /// Prefix for progress lines: indented by nesting depth up to [`MAX_INDENT`] levels, then
    /// the depth is spelled out. Lines stay as short at depth 5000 as at depth 5, so a deep
    /// chain of sub-pipelines prints output linear in its depth, not in its square.
    pub fn label(&self) -> String {
        match self.depth {
            0 => String::new(),
            d if d <= MAX_INDENT => format!("{}{}: ", "  ".repeat(d), self.plan().pipeline.id),
            d => format!(
                "{}[depth {d}] {}: ",
                "  ".repeat(MAX_INDENT),
                self.plan().pipeline.id
            ),
        }
    }

    /// The first attempt number of stage `pos` in this runner: 1, except on an executor whose
    /// attempts outlive the runner (a Ray job). There the numbers go on across resumes, since
    /// an attempt's id on the cluster is never reused, and an attempt that an earlier runner
    /// left running (it crashed) is the first one here again, so it is attached to.
    pub fn first_attempt(&self, pos: usize, outlives_runner: bool) -> u32 {
        match self.earlier.get(pos) {
            Some(e) if outlives_runner && e.interrupted && e.attempts > 0 => e.attempts,
            Some(e) if outlives_runner => e.attempts + 1,
            _ => 1,
        }
    }

    /// The variables the runner sets for every stage of this run (the peer's names).
    pub fn run_env(&self) -> Vec<(String, String)> {
        let ctx = &self.ctx;
        run_env(
            &ctx.roots,
            &ctx.task,
            &self.dir,
            &self.plan().pipeline.id,
            &ctx.peer_env,
        )
    }

    /// A stage's command, cwd and environment (see [`resolve`]).
    pub fn resolve(&self, cmd: &CommandStage) -> Result<Resolved, String> {
        resolve(
            env_layers(self.run_env(), &self.plan().vars, cmd),
            &self.ctx.roots.repo,
            cmd,
        )
    }
}

/// The variables the runner sets for every stage of run `dir` of `pipeline_id` (the peer's
/// names).
pub fn run_env(
    roots: &Roots,
    task: &str,
    dir: &RunDir,
    pipeline_id: &str,
    peer_env: &PeerEnv,
) -> Vec<(String, String)> {
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut env = vec![
        (ev::MCP_RUNNER_TASK_ID.into(), task.to_owned()),
        (ev::TASK_ID.into(), task.to_owned()),
        (ev::RUN_ID.into(), dir.run_id.clone()),
        (ev::PIPELINE_ID.into(), pipeline_id.to_owned()),
        (ev::MANIFEST_PATH.into(), s(&dir.manifest())),
        (ev::RUN_DIR.into(), s(&dir.dir)),
        (ev::RUNS_DIR.into(), s(&roots.runs)),
        (ev::OUT_DIR.into(), s(&roots.out)),
        (ev::ROOT.into(), s(&roots.repo)),
    ];
    env.extend(peer_env.for_pipeline(pipeline_id));
    env
}

/// Where a stage's environment comes from, lowest first (a later value of a name wins):
/// the run's variables, the runner variables (`vars`, `--var`), a Ray executor's `env`, the
/// stage's `env` (literal). All of it on top of the runner's own environment.
pub fn env_layers(
    run_env: Vec<(String, String)>,
    vars: &[(String, String)],
    cmd: &CommandStage,
) -> Vec<(EnvLayer, Vec<(String, String)>)> {
    let mut layers = vec![
        (EnvLayer::Runner, run_env),
        (EnvLayer::Variables, vars.to_vec()),
    ];
    if let Some(ExecutorConfig::Ray(ray)) = &cmd.executor {
        // Below the stage's own `env`: the executor's is the shared default.
        let mut env = vec![(ev::EXECUTOR.into(), "ray".into())];
        env.extend(ray.env.iter().cloned());
        layers.push((EnvLayer::Executor, env));
    }
    layers.push((EnvLayer::Stage, cmd.env.clone()));
    layers
}

/// One source of a stage's environment (see [`env_layers`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvLayer {
    /// Set by the runner for every stage (run id, paths, the peer's variables).
    Runner,
    /// The pipeline's `vars` and `--var`.
    Variables,
    /// A Ray executor's `env`.
    Executor,
    /// The stage's `env`.
    Stage,
}

impl EnvLayer {
    /// Its name in `start --dry-run`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvLayer::Runner => "runner",
            EnvLayer::Variables => "variables",
            EnvLayer::Executor => "executor",
            EnvLayer::Stage => "stage",
        }
    }
}

/// A stage's command, cwd and environment. The command is passed on exactly as written; the
/// environment is `layers` in order. `${NAME}` in `cwd` is looked up in that environment,
/// then in the runner's own; the cwd is relative to `repo`.
pub fn resolve(
    layers: Vec<(EnvLayer, Vec<(String, String)>)>,
    repo: &std::path::Path,
    cmd: &CommandStage,
) -> Result<Resolved, String> {
    let env: Vec<(String, String)> = layers.into_iter().flat_map(|(_, l)| l).collect();
    let cwd = match &cmd.cwd {
        Some(c) => {
            let look = |name: &str| {
                env.iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .or_else(|| std::env::var(name).ok())
            };
            let expanded =
                crate::config::vars::expand_cwd(c, look).map_err(|e| format!("cwd `{c}`: {e}"))?;
            repo.join(expanded)
        }
        None => repo.to_owned(),
    };
    // In argv mode the shell text is what the record and progress show; the program and its
    // arguments reach the executor apart (see `stage.rs`).
    Ok((cmd.shell_text(), cwd, env))
}

/// A stage's attempts as an earlier runner of the run recorded them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EarlierAttempts {
    /// Attempts started.
    pub attempts: u32,
    /// The last one was running when that runner stopped (it crashed or was killed).
    pub interrupted: bool,
}

/// A run whose directory and manifest exist, not yet executed.
pub struct Prepared {
    /// What its stages share.
    pub(crate) state: Arc<RunState>,
    /// Its run slot, or its place in line for one (`maxConcurrentRuns`).
    pub(crate) admission: crate::control::slots::Admission,
}

impl Prepared {
    /// The run's paths.
    pub fn dir(&self) -> &RunDir {
        &self.state.dir
    }
}
