//! Every environment variable the orchestrator reads or sets, in one place (the peer's names).

/// Task id, first choice after `--task`.
pub const MCP_RUNNER_TASK_ID: &str = "MCP_RUNNER_TASK_ID";
/// Task id, second choice.
pub const TASK_ID: &str = "CODEX_ORCHESTRATOR_TASK_ID";
/// Task id, last choice before the default.
pub const TASK: &str = "TASK";
/// Repo root (default: the current directory).
pub const ROOT: &str = "CODEX_ORCHESTRATOR_ROOT";
/// Runs directory (default `<root>/.runs`).
pub const RUNS_DIR: &str = "CODEX_ORCHESTRATOR_RUNS_DIR";
/// Out directory (default `<root>/out`).
pub const OUT_DIR: &str = "CODEX_ORCHESTRATOR_OUT_DIR";
/// Config file path (default `<root>/codex.orchestrator.json`).
pub const REPO_CONFIG_PATH: &str = "CODEX_ORCHESTRATOR_REPO_CONFIG_PATH";
/// Set for stages: the run id.
pub const RUN_ID: &str = "CODEX_ORCHESTRATOR_RUN_ID";
/// Set for stages: the pipeline id.
pub const PIPELINE_ID: &str = "CODEX_ORCHESTRATOR_PIPELINE_ID";
/// Set for stages: absolute manifest path.
pub const MANIFEST_PATH: &str = "CODEX_ORCHESTRATOR_MANIFEST_PATH";
/// Set for stages: absolute run directory.
pub const RUN_DIR: &str = "CODEX_ORCHESTRATOR_RUN_DIR";
/// Set for command stages: where the stage may write a plan patch (stages to add to the
/// running pipeline), read when it exits successfully. `plan-patch` writes it too.
pub const PLAN_PATCH_PATH: &str = "CODEX_ORCHESTRATOR_PLAN_PATCH_PATH";
/// Set for command stages: the stage's id (`plan-patch` names the stage that adds).
pub const STAGE_ID: &str = "CODEX_ORCHESTRATOR_STAGE_ID";
/// Set for command stages: the pipeline's `maxDynamicStages` (`plan-patch` checks against it).
pub const MAX_DYNAMIC_STAGES: &str = "CODEX_ORCHESTRATOR_MAX_DYNAMIC_STAGES";
/// Set for command stages: the runner's own executable, so a stage can call it
/// (`"$CODEX_ORCHESTRATOR_BIN" plan-patch --file F`) whatever the `PATH`.
pub const BIN: &str = "CODEX_ORCHESTRATOR_BIN";
/// Set for stages: the peer's package root (also read: where to find it first).
pub const PACKAGE_ROOT: &str = "CODEX_ORCHESTRATOR_PACKAGE_ROOT";
/// Set for stages: the `node` binary.
pub const NODE_BIN: &str = "CODEX_ORCHESTRATOR_NODE_BIN";
/// Set for stages: the runtime mode in effect.
pub const RUNTIME_MODE_ACTIVE: &str = "CODEX_ORCHESTRATOR_RUNTIME_MODE_ACTIVE";
/// Set for stages: the runtime mode in effect (the peer's other spelling).
pub const CODEX_RUNTIME_MODE: &str = "CODEX_RUNTIME_MODE";
/// Set for stages: the peer's app-server session id (empty: no app server here).
pub const APPSERVER_SESSION_ID: &str = "CODEX_ORCHESTRATOR_APPSERVER_SESSION_ID";
/// `1`/`true`/`yes`/`on`: refuse the package's fallback config (set for stages as `1`/`0`).
pub const REPO_CONFIG_REQUIRED: &str = "CODEX_ORCHESTRATOR_REPO_CONFIG_REQUIRED";
/// Set for stages: `<repo>/design.config.yaml`.
pub const DESIGN_CONFIG_PATH: &str = "DESIGN_CONFIG_PATH";
/// Set to `1` for stages of the design pipeline unless already set.
pub const DESIGN_PIPELINE: &str = "DESIGN_PIPELINE";
/// Default stage timeout in milliseconds for stages without `timeoutMs`.
pub const STAGE_TIMEOUT_MS: &str = "CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS";
/// Cap on chunk events kept in memory per stage (the peer's knob; default 500).
pub const EXEC_EVENT_MAX_CHUNKS: &str = "CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS";
/// `batched` (default) | `strict`: when a stage's end is made durable (over config
/// `durability`).
pub const DURABILITY: &str = "CODEX_ORCHESTRATOR_DURABILITY";
/// Grace in milliseconds between SIGTERM and SIGKILL when stopping a stage.
pub const KILL_GRACE_MS: &str = "CODEX_ORCHESTRATOR_KILL_GRACE_MS";
/// At most this many runs of the `.runs` directory execute at once (overrides the config's
/// `maxConcurrentRuns`).
pub const MAX_CONCURRENT_RUNS: &str = "CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS";
/// Runtime mode (`cli` | `appserver`); set for stages to the mode in effect.
pub const RUNTIME_MODE: &str = "CODEX_ORCHESTRATOR_RUNTIME_MODE";
/// `0`/`false`/`off` forbids the appserver -> cli fallback.
pub const RUNTIME_FALLBACK: &str = "CODEX_ORCHESTRATOR_RUNTIME_FALLBACK";
/// Execution mode (`mcp` | `cloud`).
pub const EXECUTION_MODE: &str = "CODEX_ORCHESTRATOR_EXECUTION_MODE";
/// `0`/`false`/`off` forbids the cloud -> mcp fallback.
pub const CLOUD_FALLBACK: &str = "CODEX_ORCHESTRATOR_CLOUD_FALLBACK";
/// Address of the Ray head for every Ray stage, over the config's `executor.address`.
pub const RAY_ADDRESS: &str = "CODEX_ORCHESTRATOR_RAY_ADDRESS";
/// Set for stages on a remote executor: its kind (`ray`). Also how a resume tells a Ray job's
/// processes on this machine (a single-node cluster) from survivors of a crashed runner.
pub const EXECUTOR: &str = "CODEX_ORCHESTRATOR_EXECUTOR";
/// Log filter for the runner's own diagnostics.
pub const LOG: &str = "CODEX_ORCHESTRATOR_LOG";
/// Tests only, debug builds only: a panic when the stage with this id starts (see
/// `engine::crash::test_panic_point`).
pub const TEST_PANIC: &str = "CODEX_ORCHESTRATOR_TEST_PANIC";
/// Tests only, debug builds only: `<point>:<file>` holds the runner at `point` while `file`
/// exists (see `engine::crash::test_hold_point`).
pub const TEST_HOLD: &str = "CODEX_ORCHESTRATOR_TEST_HOLD";
/// The token `serve` requires on every request (as `--token`).
pub const SERVE_TOKEN: &str = "CODEX_ORCHESTRATOR_SERVE_TOKEN";
/// Set and not empty: no colour codes in diagnostics (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";

/// Set for a loop's build: the iteration, from 1.
pub const ITERATION: &str = "CODEX_ORCHESTRATOR_ITERATION";
/// Set for a loop's build from the second iteration on: the feedback file (JSON).
pub const FEEDBACK_PATH: &str = "CODEX_ORCHESTRATOR_FEEDBACK_PATH";
/// Set with `FEEDBACK_PATH`: the same feedback as Markdown.
pub const FEEDBACK_MARKDOWN_PATH: &str = "CODEX_ORCHESTRATOR_FEEDBACK_MARKDOWN_PATH";
/// Names the runner sets for a loop's build, beyond [`STAGE_VARIABLES`].
pub const LOOP_BUILD_VARIABLES: &[&str] = &[ITERATION, FEEDBACK_PATH, FEEDBACK_MARKDOWN_PATH];

/// Names the runner sets for every stage (a stage's `cwd` may use them).
pub const STAGE_VARIABLES: &[&str] = &[
    MCP_RUNNER_TASK_ID,
    TASK_ID,
    RUN_ID,
    PIPELINE_ID,
    MANIFEST_PATH,
    RUN_DIR,
    RUNS_DIR,
    OUT_DIR,
    ROOT,
    PACKAGE_ROOT,
    NODE_BIN,
    RUNTIME_MODE,
    RUNTIME_MODE_ACTIVE,
    CODEX_RUNTIME_MODE,
    APPSERVER_SESSION_ID,
    REPO_CONFIG_REQUIRED,
    DESIGN_CONFIG_PATH,
];

/// `--failure-output`'s default: `tail`, `full` or `never`.
pub const FAILURE_OUTPUT: &str = "CODEX_ORCHESTRATOR_FAILURE_OUTPUT";
/// The terminal type: `dumb` or unset means no live display (plain lines).
pub const TERM: &str = "TERM";
/// `0`: no colour (unless forced).
pub const CLICOLOR: &str = "CLICOLOR";
/// Non-empty and not `0`: colour even off a terminal (`NO_COLOR` still wins).
pub const CLICOLOR_FORCE: &str = "CLICOLOR_FORCE";

/// A variable's value, with blank treated as unset (the peer's rule).
pub fn non_blank(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}
