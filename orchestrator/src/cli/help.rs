//! Help texts too long for a doc comment: the program's description and, per verb, the
//! environment variables it reads (shown under `--help`, so nobody needs the README to find
//! them). The names come from `env_vars`; a test checks every one listed here exists there.

/// The top-level description (`codex-orchestrator --help`).
pub const ABOUT: &str = "Run pipelines of shell stages from codex.orchestrator.json, with a \
crash-safe record of every run under .runs/<task>/cli/<run-id>/ (a drop-in for the Node \
codex-orchestrator's runner)";

/// The longer description (`--help`).
pub const LONG_ABOUT: &str = "Run pipelines of shell stages from codex.orchestrator.json, with a \
crash-safe record of every run under .runs/<task>/cli/<run-id>/.

A pipeline is a list (or graph, with dependsOn) of stages; each stage is a shell command run \
in its own process group, its output logged byte for byte. The config is found by walking up \
from the current directory to the repository root; -f names one.

Start with `codex-orchestrator list`, then `start <pipeline>`; `status`, `logs` and `resume` \
take a run id, a unique prefix of one, or `latest`.";

/// Read by every verb.
macro_rules! common {
    () => {
        "  CODEX_ORCHESTRATOR_ROOT               repo root (default: where the config was found)
  CODEX_ORCHESTRATOR_REPO_CONFIG_PATH   the config file (default: found walking up)
  CODEX_ORCHESTRATOR_RUNS_DIR           runs directory (default <root>/.runs)
  CODEX_ORCHESTRATOR_LOG                diagnostics filter (e.g. debug, shared_manifest=debug)
  NO_COLOR, CLICOLOR, CLICOLOR_FORCE    colour (see --color)"
    };
}

/// Read by the verbs that run stages.
macro_rules! running {
    () => {
        "  MCP_RUNNER_TASK_ID, CODEX_ORCHESTRATOR_TASK_ID, TASK   task id (in that order; default 0101)
  CODEX_ORCHESTRATOR_OUT_DIR            out directory (default <root>/out)
  CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS   timeout of stages without timeoutMs
  CODEX_ORCHESTRATOR_KILL_GRACE_MS      SIGTERM -> SIGKILL grace (default 5000)
  CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS   chunk events kept in memory per stage
  CODEX_ORCHESTRATOR_RUNTIME_MODE, CODEX_ORCHESTRATOR_EXECUTION_MODE   modes
  CODEX_ORCHESTRATOR_RUNTIME_FALLBACK, CODEX_ORCHESTRATOR_CLOUD_FALLBACK   0/false: no fallback
  CODEX_ORCHESTRATOR_FAILURE_OUTPUT     default of --failure-output
  TERM                                  dumb or unset: plain progress lines"
    };
}

/// `after_help` of the verbs that run stages.
pub const ENV_RUNNING: &str = concat!("Environment:\n", running!(), "\n", common!());

/// `after_help` of the verbs that read runs or the config only.
pub const ENV_QUERY: &str = concat!(
    "Environment:\n",
    "  MCP_RUNNER_TASK_ID, CODEX_ORCHESTRATOR_TASK_ID, TASK   task searched first for a run\n",
    common!()
);

/// `after_help` of `plan-patch`.
pub const PLAN_PATCH: &str = "Run it from a command stage, e.g. \
`\"$CODEX_ORCHESTRATOR_BIN\" plan-patch --file more.json`. The patch is checked at once against \
the pipeline as the run's record stands (the same checks as a patch file); refused: exit 2, \
one error line, nothing added. Accepted: merged into the stage's patch file, so several calls \
add all their stages (a later one may depend on an earlier one's); the runner adds them when \
the stage exits successfully (checked again then), and a failed attempt adds nothing.

Environment (set by the runner for every command stage):
  CODEX_ORCHESTRATOR_PLAN_PATCH_PATH    the stage's patch file (written here)
  CODEX_ORCHESTRATOR_STAGE_ID           the stage that adds the stages
  CODEX_ORCHESTRATOR_MANIFEST_PATH      the run's record (the pipeline as it stands)
  CODEX_ORCHESTRATOR_MAX_DYNAMIC_STAGES the pipeline's maxDynamicStages
  CODEX_ORCHESTRATOR_BIN                this program, to call it by";

/// Every variable name the texts mention (checked against `env_vars` by a test).
pub fn mentioned() -> Vec<&'static str> {
    [ENV_RUNNING, ENV_QUERY, PLAN_PATCH]
        .iter()
        .flat_map(|t| t.split(|c: char| !(c.is_ascii_uppercase() || c == '_')))
        .filter(|w| w.len() > 3 && w.contains('_') || *w == "TASK" || *w == "TERM")
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_variable_named_in_help_is_one_we_read() {
        let source = include_str!("../env_vars.rs");
        for name in super::mentioned() {
            assert!(
                source.contains(&format!("\"{name}\"")),
                "`{name}` is in --help but not in env_vars.rs"
            );
        }
    }
}
