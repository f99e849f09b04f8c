//! Command-line types only (clap derive). Meaning lives in `commands/`.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Runs pipelines of shell stages from `codex.orchestrator.json` and records every run under
/// `.runs/<task>/cli/<run-id>/`.
#[derive(Debug, Parser)]
#[command(name = "codex-orchestrator", version, about)]
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
    /// More diagnostics on stderr (-v, -vv). `CODEX_ORCHESTRATOR_LOG` overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline (default: `defaultPipeline`, else `diagnostics`).
    Start(StartArgs),
    /// Show a pipeline's stages and graph without running anything.
    Plan(PlanArgs),
    /// Show a run's status from its manifest.
    Status(StatusArgs),
    /// Continue a failed, cancelled or crashed run: re-run every stage that is not done.
    Resume(ResumeArgs),
    /// Cancel a running run from another terminal.
    Cancel(CancelArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Human text on stderr.
    #[default]
    Text,
    /// One JSON object on stdout.
    Json,
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Pipeline id.
    pub pipeline: Option<String>,
    /// Task id (default: `MCP_RUNNER_TASK_ID`, `CODEX_ORCHESTRATOR_TASK_ID`, `TASK`, `0101`).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format.
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
    /// Stage whose plan hints decide the execution mode (default: the first stage).
    #[arg(long)]
    pub target: Option<String>,
    /// Record this run as a child of another run.
    #[arg(long)]
    pub parent_run: Option<String>,
    /// Recorded in the manifest; shell stages never ask for approval.
    #[arg(long)]
    pub approval_policy: Option<String>,
    /// Live progress display (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_interactive")]
    pub interactive: bool,
    /// Plain progress lines.
    #[arg(long)]
    pub no_interactive: bool,
    /// Cap on stages running at once (default: pipeline `concurrency`; 1 without `dependsOn`,
    /// the number of cores with it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Define a variable for `${NAME}` (repeatable): `--var NAME=VALUE`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Unknown config keys are errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
}

/// `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Pipeline id.
    pub pipeline: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Variables, as for `start`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Cap on stages running at once, as for `start`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
    /// Unknown config keys are errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
    /// Accepted for compatibility; the plan does not depend on the task.
    #[arg(long)]
    pub task: Option<String>,
}

/// `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Run id.
    #[arg(long)]
    pub run: String,
    /// Task id (default as for `start`; other tasks are searched when the run is not found).
    #[arg(long)]
    pub task: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run id.
    #[arg(long)]
    pub run: String,
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
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// `cli` or `appserver`, as for `start`.
    #[arg(long)]
    pub runtime_mode: Option<String>,
    /// Variables, as for `start`.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Cap on stages running at once, as for `start`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Option<u32>,
}

/// `cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Run id.
    #[arg(long)]
    pub run: String,
    /// Task id (default: search every task).
    #[arg(long)]
    pub task: Option<String>,
}
