//! Command-line types only (clap derive). Meaning lives in one file per verb beside this one.

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use super::peer_flags::{InertArgs, IssueArgs, TargetArgs};
pub use super::run_flags::RunShapeArgs;

/// Runs pipelines of shell stages from `codex.orchestrator.json` and records every run under
/// `.runs/<task>/cli/<run-id>/`.
#[derive(Debug, Parser)]
#[command(
    name = "codex-orchestrator",
    version,
    about = super::help::ABOUT,
    long_about = super::help::LONG_ABOUT
)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More diagnostics on stderr: -v what was resolved (config, roots, modes, the run), -vv
    /// also every manifest write and its batch size. `CODEX_ORCHESTRATOR_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less on stderr: no progress lines and no warnings; errors and the end summary's
    /// failures stay.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// The config file (default: the first `codex.orchestrator.json` from the current
    /// directory up to the repository root). Its directory is the repo root unless
    /// `CODEX_ORCHESTRATOR_ROOT` says otherwise.
    #[arg(short = 'f', long = "config", global = true, value_name = "PATH")]
    pub config: Option<std::path::PathBuf>,
    /// Colour status words and failures: `auto` (a terminal, unless `NO_COLOR` is set or
    /// `CLICOLOR=0`; `CLICOLOR_FORCE=1` forces it), `always`, `never`.
    #[arg(long, value_enum, global = true, default_value_t, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    /// Colour on a terminal, unless the environment says no.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline (default: `defaultPipeline`, else `diagnostics`).
    #[command(after_help = super::help::ENV_RUNNING)]
    Start(StartArgs),
    /// Show a pipeline's stages and graph without running anything (`--run`/`--last`: a run's,
    /// with the stages its plan patches added).
    #[command(after_help = super::help::ENV_QUERY)]
    Plan(PlanArgs),
    /// Run a standalone plan file (JSON: `plan_id`, `globals`, `steps` run as argv without a
    /// shell, `${VAR}` substituted from --var and the environment).
    #[command(after_help = super::help::ENV_RUNNING)]
    RunPlan(RunPlanArgs),
    /// From inside a command stage: add stages to the running pipeline when the stage exits
    /// successfully (a plan patch, checked at once; exit 2 and nothing added when refused).
    #[command(after_help = super::help::PLAN_PATCH)]
    PlanPatch(PlanPatchArgs),
    /// Show a run's status from its manifest.
    #[command(after_help = super::help::ENV_QUERY)]
    Status(StatusArgs),
    /// Query the run history (`.runs/index.sqlite`, rebuilt from the manifests when needed).
    Runs(RunsArgs),
    /// Export a run as a report for other tools.
    Report(ReportArgs),
    /// Continue a failed, cancelled or crashed run: re-run every stage that is not done.
    #[command(after_help = super::help::ENV_RUNNING)]
    Resume(ResumeArgs),
    /// Cancel a running run from another terminal.
    #[command(after_help = super::help::ENV_QUERY)]
    Cancel(CancelArgs),
    /// Approve a run's approval stage that is waiting for a decision.
    Approve(DecideArgs),
    /// Reject a run's approval stage that is waiting for a decision (the stage fails).
    Reject(DecideArgs),
    /// Pause a running run: no new stage starts; running stages finish (`unpause` continues).
    Pause(PauseArgs),
    /// Let a paused run start stages again (the `resume` action of `control.json`; `resume`
    /// is the verb that continues a stopped run).
    Unpause(PauseArgs),
    /// Run one command as a one-stage run (same manifest and logs); its exit code passes through.
    Exec(ExecArgs),
    /// `docs-review`, then `implementation-gate` if the review succeeded.
    #[command(after_help = super::help::ENV_RUNNING)]
    Flow(FlowArgs),
    /// Print the version (also `--version`, `-V`, and `-v` alone, as the peer).
    Version,
    /// Serve a live web dashboard of the runs, with a JSON API, until Ctrl-C.
    Serve(ServeArgs),
    /// Recompute every digest of a run's evidence bundle; exit 0 only when all match.
    VerifyEvidence(VerifyEvidenceArgs),
    /// A stage's output, byte for byte as it wrote it (`--follow` while it runs).
    #[command(after_help = super::help::ENV_QUERY)]
    Logs(LogsArgs),
    /// The config's pipelines with their titles and stages.
    #[command(after_help = super::help::ENV_QUERY)]
    List(ListArgs),
    /// Shell completions for bash, zsh, fish or PowerShell, on stdout.
    Completions(CompletionsArgs),
    /// The man page (roff), on stdout: `codex-orchestrator man > codex-orchestrator.1`.
    Man,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human-readable text (where it goes: see the option's description).
    #[default]
    Text,
    /// One JSON object on stdout.
    Json,
}

/// Progress and failure output, shared by every verb that runs stages.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ProgressArgs {
    /// Live progress display (default: when stderr is a terminal that can redraw; plain lines
    /// on a pipe, a file, `TERM=dumb` or without `TERM`).
    #[arg(long, visible_alias = "ui", overrides_with = "no_interactive")]
    pub interactive: bool,
    /// Plain progress lines, one per stage transition.
    #[arg(long, overrides_with = "interactive")]
    pub no_interactive: bool,
    /// A failed stage's output under its line and in the end summary: `tail` (its last lines
    /// of stderr, of stdout when stderr is empty), `full`, or `never`.
    #[arg(long, value_enum, value_name = "WHEN", env = crate::env_vars::FAILURE_OUTPUT)]
    pub failure_output: Option<crate::report::display::FailureOutput>,
    /// Lines shown by `--failure-output tail` [default: 20].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000), allow_negative_numbers = true)]
    pub failure_output_lines: Option<u32>,
}

impl ProgressArgs {
    /// What the flags ask for; `None` when neither is given (decided by the terminal).
    pub fn choice(self) -> Option<bool> {
        match (self.interactive, self.no_interactive) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// What the flags ask of the display.
    pub fn request(self) -> crate::report::display::Request {
        let default = crate::report::display::Request::default();
        crate::report::display::Request {
            interactive: self.choice(),
            failure_output: self.failure_output.unwrap_or(default.failure_output),
            failure_lines: self
                .failure_output_lines
                .map_or(default.failure_lines, |n| n as usize),
        }
    }
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Pipeline id.
    pub pipeline: Option<String>,
    /// Task id (default: `MCP_RUNNER_TASK_ID`, `CODEX_ORCHESTRATOR_TASK_ID`, `TASK`, `0101`).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format. text: progress on stderr, the peer's result lines on stdout
    /// (`--dry-run`: the plan on stdout); json: progress on stderr, the result on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// `mcp` or `cloud` (cloud falls back to mcp: there is no cloud backend).
    #[arg(long)]
    pub execution_mode: Option<String>,
    /// Request cloud execution (falls back to mcp).
    #[arg(long)]
    pub cloud: bool,
    /// `cli` or `appserver` (appserver falls back to cli).
    #[arg(long)]
    pub runtime_mode: Option<String>,
    /// The plan target (recorded as `plan_target_id`; its `plan` hints decide the execution
    /// mode).
    #[command(flatten)]
    pub target: TargetArgs,
    /// Issue fields recorded in the manifest.
    #[command(flatten)]
    pub issue: IssueArgs,
    /// Peer flags with no effect here.
    #[command(flatten)]
    pub inert: InertArgs,
    /// Record this run as a child of another run.
    #[arg(long)]
    pub parent_run: Option<String>,
    /// Recorded in the manifest; shell stages never ask for approval.
    #[arg(long)]
    pub approval_policy: Option<String>,
    /// Progress display.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Cap on stages running at once (default: pipeline `concurrency`; 1 without `dependsOn`,
    /// the number of cores with it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub concurrency: Option<u32>,
    /// Define a variable for `${NAME}` (repeatable): `--var NAME=VALUE`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A variable whose value is secret (repeatable; a name or a `*` pattern such as
    /// `*_TOKEN`), on top of the config's `secrets`: its value is masked as `***` in
    /// everything the run records or prints.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Unknown config keys are errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
    /// Write a JUnit XML report of the run to this file when it ends.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<std::path::PathBuf>,
    /// Skip the pipeline's `delivery` even when the run succeeds (recorded as skipped).
    #[arg(long)]
    pub no_deliver: bool,
    /// Which stages run and what a failure does.
    #[command(flatten)]
    pub shape: Box<RunShapeArgs>,
    /// Check everything and print what would run (each command as it reaches `sh -c`, its
    /// cwd, environment, timeout, retries, executor), then exit 0; nothing is run or written.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse the peer package's fallback config when the repo has none (`=false` to allow it;
    /// default: `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub repo_config_required: Option<String>,
    /// Wall-clock budget and run slots.
    #[command(flatten)]
    pub control: RunControlArgs,
}

/// Options of `start` and `resume` about how long and when a run may execute.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct RunControlArgs {
    /// Wall-clock budget of the run (`30m`, `1h30m`, `90s`): when it runs out, running stages
    /// are stopped and the run fails with `run-timeout` (overrides `maxWallClockMs`).
    #[arg(long, value_name = "DURATION", value_parser = parse_budget)]
    pub max_wall_clock: Option<std::time::Duration>,
    /// When every run slot is taken (`maxConcurrentRuns`), fail at once (exit 3) instead of
    /// waiting in line.
    #[arg(long)]
    pub no_wait: bool,
}

/// A positive duration with units (`30m`, `1h 30m`, `500ms`).
fn parse_budget(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| {
        format!("{e} (expected a duration with a unit, such as `30m`, `1h30m`, `90s`)")
    })?;
    if d.is_zero() {
        return Err("the budget must be more than zero".into());
    }
    Ok(d)
}

/// `run-plan`.
#[derive(Debug, Args)]
pub struct RunPlanArgs {
    /// The plan file.
    #[arg(value_name = "PATH")]
    pub path: std::path::PathBuf,
    /// Substitute `${NAME}` in the plan's `command`, `args`, `cwd` and `env` (repeatable;
    /// before the environment): `--var NAME=VALUE`. Also exported into every step's
    /// environment.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Secret variables, as for `start`.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Task id (default: `MCP_RUNNER_TASK_ID`, `CODEX_ORCHESTRATOR_TASK_ID`, `TASK`, `0101`).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format. text: progress on stderr, the peer's result lines on stdout; json:
    /// progress on stderr, the result on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Cap on steps running at once (default: `globals.max_concurrency`, else the number of
    /// cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub concurrency: Option<u32>,
    /// `mcp` or `cloud`, as for `start`.
    #[arg(long)]
    pub execution_mode: Option<String>,
    /// `cli` or `appserver`, as for `start`.
    #[arg(long)]
    pub runtime_mode: Option<String>,
    /// Record this run as a child of another run.
    #[arg(long)]
    pub parent_run: Option<String>,
    /// Progress display, as for `start`.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Write a JUnit XML report of the run to this file when it ends.
    #[arg(long, value_name = "PATH")]
    pub junit: Option<std::path::PathBuf>,
    /// Wall-clock budget and run slots, as for `start`.
    #[command(flatten)]
    pub control: RunControlArgs,
    /// Which steps run and what a failure does, as for `start` (step ids are stage ids).
    #[command(flatten)]
    pub shape: Box<RunShapeArgs>,
    /// Check the plan and print what would run (each step's argv or command, cwd,
    /// environment, timeout, retries), then exit 0; nothing is run or written.
    #[arg(long)]
    pub dry_run: bool,
}

/// `plan-patch`.
#[derive(Debug, Args)]
pub struct PlanPatchArgs {
    /// The patch: `{"stages": [...]}`, each stage in the config's format (`dependsOn` onto
    /// existing or new stages; none: after this stage). `-` reads it from stdin.
    #[arg(long, value_name = "PATH")]
    pub file: std::path::PathBuf,
    /// Output format (`json`: the accepted stages on stdout).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Pipeline id.
    #[arg(conflicts_with = "file")]
    pub pipeline: Option<String>,
    /// Show a plan file (as `run-plan` reads it) instead of a pipeline of the config.
    #[arg(long, value_name = "PATH")]
    pub file: Option<std::path::PathBuf>,
    /// Show the graph of a run as it stands: its pipeline with the stages plan patches added,
    /// each marked with the stage that added it (run id, a unique prefix, or `latest`).
    #[arg(long, value_name = "RUN", conflicts_with_all = RUN_CONFLICTS)]
    pub run: Option<String>,
    /// The same as `--run latest`: the newest run (of `--task` when given).
    #[arg(long, conflicts_with_all = RUN_CONFLICTS, conflicts_with = "run")]
    pub last: bool,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Variables, as for `start`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Cap on stages running at once, as for `start`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub concurrency: Option<u32>,
    /// Unknown config keys are errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
    /// Accepted for compatibility; the plan does not depend on the task.
    #[arg(long)]
    pub task: Option<String>,
    /// The plan target, as for `start`.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Refuse the peer package's fallback config when the repo has none (`=false` to allow it;
    /// default: `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub repo_config_required: Option<String>,
    /// Stage selection and failure policy, as for `start`.
    #[command(flatten)]
    pub shape: RunShapeArgs,
    /// What `start` would run, resolved: each command as it reaches `sh -c`, its cwd,
    /// environment, timeout, retries and executor (as `start --dry-run` prints it).
    #[arg(long)]
    pub resolved: bool,
}

/// What `plan --run` / `--last` cannot be given with: the run decides its pipeline, its
/// variables, concurrency, target and selection (they are recorded).
const RUN_CONFLICTS: [&str; 13] = [
    "pipeline",
    "file",
    "resolved",
    "vars",
    "concurrency",
    "target",
    "target_stage",
    "only",
    "skip",
    "from",
    "no_deps",
    "fail_fast",
    "no_fail_fast",
];

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run (default: the newest).
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Task id (default as for `start`; other tasks are searched when the run is not found).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Keep watching until the run ends, printing on every change (ndjson with --format json).
    #[arg(long)]
    pub watch: bool,
    /// Seconds between polls with --watch (at least 0.1 is used; finite, at most a day).
    #[arg(long, default_value = "1", value_parser = super::values::seconds, value_name = "SECONDS", allow_negative_numbers = true)]
    pub interval: std::time::Duration,
}

/// `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run.
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Must match the run's resume token when given.
    #[arg(long)]
    pub token: Option<String>,
    /// Who resumes (recorded in `resume_events`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Why (recorded in `resume_events`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format. text: progress on stderr, the peer's result lines on stdout; json:
    /// progress on stderr, the result on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// `cli` or `appserver`, as for `start`.
    #[arg(long)]
    pub runtime_mode: Option<String>,
    /// The plan target, as for `start` (default: the one recorded).
    #[command(flatten)]
    pub target: TargetArgs,
    /// Variables, as for `start`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Secret variables, as for `start`.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Cap on stages running at once, as for `start`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..), allow_negative_numbers = true)]
    pub concurrency: Option<u32>,
    /// Progress display, as for `start`.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Refuse the peer package's fallback config when the repo has none (`=false` to allow it;
    /// default: `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub repo_config_required: Option<String>,
    /// Skip the pipeline's `delivery`, as for `start`.
    #[arg(long)]
    pub no_deliver: bool,
    /// Wall-clock budget (a fresh one for this runner) and run slots, as for `start`.
    #[command(flatten)]
    pub control: RunControlArgs,
    /// Run again the succeeded stages whose command, config, named variables or files changed
    /// since the run stopped, and the stages that depend on them (default: refuse, exit 3).
    #[arg(long, conflicts_with = "allow_stale")]
    pub rerun_changed: bool,
    /// Keep the results of succeeded stages although what they depend on changed since the
    /// run stopped; recorded in `resume_events` and on each such stage (`reused_stale`).
    #[arg(long)]
    pub allow_stale: bool,
    /// Stage selection and failure policy, as for `start`, for the stages not done yet
    /// (default: the ones the run was started or last resumed with).
    #[command(flatten)]
    pub shape: Box<RunShapeArgs>,
}

/// `verify-evidence`.
#[derive(Debug, Args)]
pub struct VerifyEvidenceArgs {
    /// The run directory (`.runs/<task>/cli/<run-id>`) whose `evidence/` to check.
    pub run_dir: std::path::PathBuf,
    /// Output format: text on stderr, or one JSON object on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `approve` and `reject`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The run.
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// The approval stage (may be left out when exactly one approval is waiting).
    #[arg(long)]
    pub stage: Option<String>,
    /// Who decides (checked against the stage's `approvers`; recorded in `approvals[]`).
    #[arg(long)]
    pub actor: String,
    /// Why (recorded in `approvals[]`; a rejected stage's summary says it).
    #[arg(long)]
    pub reason: Option<String>,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format: text on stderr, or one JSON object on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `pause` and `unpause`.
#[derive(Debug, Args)]
pub struct PauseArgs {
    /// The run.
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Who asks (`requested_by` in `control.json`; default `cli`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Why (`reason` in `control.json`; a paused run's `status_detail`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
}

/// `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run.
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
}

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on; an address other than loopback needs a token.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR:PORT")]
    pub bind: String,
    /// Open the dashboard in the desktop's browser.
    #[arg(long)]
    pub open: bool,
    /// Require this token on every request (default: `CODEX_ORCHESTRATOR_SERVE_TOKEN`).
    #[arg(long)]
    pub token: Option<String>,
}

/// `runs`.
#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Which query.
    #[command(subcommand)]
    pub command: RunsCommand,
}

/// The run history queries.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recorded runs, newest first.
    List(RunsListArgs),
    /// One run and its stages.
    Show(RunsShowArgs),
    /// Per pipeline and stage: runs, pass rate, p50/p95 duration, passes after a retry.
    Stats(RunsStatsArgs),
    /// Two runs' stages side by side, differences marked.
    Diff(RunsDiffArgs),
    /// Rebuild the index from every `.runs/*/cli/*/manifest.json`.
    Reindex(RunsReindexArgs),
}

/// Run statuses a filter accepts.
const RUN_STATUSES: [&str; 5] = ["queued", "in_progress", "succeeded", "failed", "cancelled"];

/// `runs list`.
#[derive(Debug, Args)]
pub struct RunsListArgs {
    /// Only runs of this task.
    #[arg(long)]
    pub task: Option<String>,
    /// Only runs of this pipeline.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_parser = RUN_STATUSES)]
    pub status: Option<String>,
    /// Only runs started since: an RFC 3339 time, a date, or a duration back from now (`7d`).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,
    /// At most this many runs, newest first (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `runs show`.
#[derive(Debug, Args)]
pub struct RunsShowArgs {
    /// The run (default: the newest).
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `runs stats`.
#[derive(Debug, Args)]
pub struct RunsStatsArgs {
    /// Only this pipeline.
    #[arg(long)]
    pub pipeline: Option<String>,
    /// Only runs started since: an RFC 3339 time, a date, or a duration back from now (`7d`).
    #[arg(long, value_name = "TIME|DURATION")]
    pub since: Option<String>,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `runs diff`.
#[derive(Debug, Args)]
pub struct RunsDiffArgs {
    /// First run: an id, a unique prefix or `latest`.
    pub a: String,
    /// Second run: an id, a unique prefix or `latest`.
    pub b: String,
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `runs reindex`.
#[derive(Debug, Args)]
pub struct RunsReindexArgs {
    /// Output format: text or one JSON object, on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Which report.
    #[command(subcommand)]
    pub command: ReportCommand,
}

/// Report formats.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// A run as JUnit XML (one test suite, one test case per stage).
    Junit(ReportJunitArgs),
}

/// `report junit`.
#[derive(Debug, Args)]
pub struct ReportJunitArgs {
    /// The run.
    #[command(flatten)]
    pub run: super::run_ref::RunRef,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
    /// Write the report to this file instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub out: Option<std::path::PathBuf>,
}

/// `exec`: its options and command, parsed as the peer does (see `exec --help` and
/// `exec_args.rs`; clap cannot express "every `--x` before `--` is an option").
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct ExecArgs {
    /// `[--json [compact|pretty] | --jsonl] [--cwd PATH] [--task ID] [--] CMD ARGS...`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    pub raw: Vec<String>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: text on stdout, or one JSON object (`config`, `default_pipeline`,
    /// `pipelines[]` with `id`, `title`, `description`, `default`, `stages[]`).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: `bash` (source it, or put it in bash-completion's directory), `zsh` (as
    /// `_codex-orchestrator` in `$fpath`), `fish` (in `~/.config/fish/completions/`),
    /// `powershell` (dot-source it from `$PROFILE`), `elvish`.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// `[RUN] [STAGE]`: the run (id, unique prefix or `latest`; default the newest) and the
    /// stage (id or 1-based index; default every stage). With `--run`/`--last`, only STAGE.
    #[arg(value_name = "RUN|STAGE", num_args = 0..=2)]
    pub names: Vec<String>,
    /// The run, as the positional RUN.
    #[arg(long, value_name = "RUN", conflicts_with = "last")]
    pub run: Option<String>,
    /// The newest run (of `--task` when given).
    #[arg(long)]
    pub last: bool,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
    /// Only this stream, on stdout (default: stdout to stdout, stderr to stderr).
    #[arg(long, value_enum)]
    pub stream: Option<LogStream>,
    /// Keep printing new output until the stage ends.
    #[arg(long, short = 'F')]
    pub follow: bool,
}

/// `logs --stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// `flow`.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Task id, as for `start`.
    #[arg(long)]
    pub task: Option<String>,
    /// Recorded as the `docs-review` run's `parent_run_id` (the gate's parent is the review).
    #[arg(long)]
    pub parent_run: Option<String>,
    /// Recorded in both runs' manifests, as for `start`.
    #[arg(long)]
    pub approval_policy: Option<String>,
    /// `mcp` or `cloud`, as for `start`.
    #[arg(long)]
    pub execution_mode: Option<String>,
    /// Request cloud execution, as for `start`.
    #[arg(long)]
    pub cloud: bool,
    /// `cli` or `appserver`, as for `start`.
    #[arg(long)]
    pub runtime_mode: Option<String>,
    /// The plan target: a stage of `docs-review` or `implementation-gate` (scope it with a
    /// `docs-review:` / `implementation-gate:` prefix); applied to the run that has it.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Peer flags with no effect here.
    #[command(flatten)]
    pub inert: InertArgs,
    /// Output format. text: progress on stderr, the peer's result lines on stdout; json:
    /// progress on stderr, the result on stdout.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Variables, as for `start`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Secret variables, as for `start`.
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Progress display, as for `start`.
    #[command(flatten)]
    pub progress: ProgressArgs,
    /// Refuse the peer package's fallback config when the repo has none (`=false` to allow it;
    /// default: `CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED`).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub repo_config_required: Option<String>,
}

impl StartArgs {
    /// `start <pipeline>` with every other option at its default (for `exec` and `flow`).
    pub fn for_pipeline(pipeline: &str, task: Option<String>, format: Format) -> StartArgs {
        StartArgs {
            pipeline: Some(pipeline.to_owned()),
            task,
            format,
            execution_mode: None,
            cloud: false,
            runtime_mode: None,
            target: TargetArgs::default(),
            issue: IssueArgs::default(),
            inert: InertArgs::default(),
            parent_run: None,
            approval_policy: None,
            progress: ProgressArgs::default(),
            concurrency: None,
            vars: Vec::new(),
            secrets: Vec::new(),
            strict: false,
            junit: None,
            no_deliver: false,
            repo_config_required: None,
            control: RunControlArgs::default(),
            shape: Box::default(),
            dry_run: false,
        }
    }
}
