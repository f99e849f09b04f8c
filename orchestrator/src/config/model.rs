//! The validated configuration: built only by `load`, so a value of these types is always a
//! config that passed every check (known kinds, unique ids, existing references, no cycles).

use super::secrets::SecretNames;
use std::path::PathBuf;
use std::time::Duration;

use super::executor::ExecutorConfig;
use crate::graph::{GraphError, Node, StageGraph};

/// A loaded and validated `codex.orchestrator.json`.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Whose config it is: the repository's, or the peer package's fallback.
    pub source: ConfigSource,
    /// `defaultPipeline`.
    pub default_pipeline: Option<String>,
    /// `runtimeMode`, trimmed and lower-cased (`cli` | `appserver`).
    pub runtime_mode: Option<String>,
    /// Pipelines in file order, stage sets expanded.
    pub pipelines: Vec<Pipeline>,
    /// `maxConcurrentRuns`: at most this many runs of the repository's `.runs` execute stages
    /// at once (`CODEX_ORCHESTRATOR_MAX_CONCURRENT_RUNS` overrides).
    pub max_concurrent_runs: Option<usize>,
    /// How runs are recorded (`manifestExtensions`).
    pub record: RecordSettings,
    /// `secrets`: variables whose values are masked in everything recorded or printed.
    pub secrets: SecretNames,
}

/// How a run's record is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordSettings {
    /// `manifestExtensions`: our extension fields in `manifest.ext.json` (default) or inline.
    pub extensions: shared_manifest::Extensions,
    /// `durability` (overridden by `CODEX_ORCHESTRATOR_DURABILITY`).
    pub durability: Durability,
}

/// When a stage's end is made durable (see the README's durability section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Group commit: a stage's end (its log, then the manifest that records it) is made
    /// durable by the persister's next paced write; its dependents do not wait for it.
    #[default]
    Batched,
    /// Each stage's end is durable before its dependents start.
    Strict,
}

impl Durability {
    /// Parses `batched` | `strict` (trimmed, case-insensitive).
    pub fn parse(s: &str) -> Option<Durability> {
        match s.trim().to_ascii_lowercase().as_str() {
            "batched" => Some(Durability::Batched),
            "strict" => Some(Durability::Strict),
            _ => None,
        }
    }
}

/// Whose config a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfigSource {
    /// The repository's `codex.orchestrator.json` (or `CODEX_ORCHESTRATOR_REPO_CONFIG_PATH`).
    #[default]
    Repo,
    /// The peer package's own config, used because the repository has none.
    Package,
    /// Built in memory (`exec`).
    Inline,
    /// A standalone plan file (`run-plan`), translated into a one-pipeline config.
    PlanFile,
}

impl ConfigSource {
    /// The peer's name for it in `plan` (`pipeline.source`): `user` for a repo config,
    /// `default` for the package's.
    pub fn peer_name(self) -> &'static str {
        match self {
            ConfigSource::Repo => "user",
            ConfigSource::Package => "default",
            ConfigSource::Inline => "inline",
            ConfigSource::PlanFile => "plan-file",
        }
    }
    /// Our name for it (the manifest's `config_source`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Repo => "repo",
            ConfigSource::Package => "package",
            ConfigSource::Inline => "inline",
            ConfigSource::PlanFile => "plan-file",
        }
    }

    /// The source named by a manifest's `config_source`.
    pub fn parse(s: &str) -> Option<ConfigSource> {
        [
            ConfigSource::Repo,
            ConfigSource::Package,
            ConfigSource::Inline,
            ConfigSource::PlanFile,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

impl Config {
    /// The pipeline with this id.
    pub fn pipeline(&self, id: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.id == id)
    }
    /// Every pipeline by id: for walks over many pipelines (a chain of thousands of
    /// sub-pipelines must not cost a scan of the list per step).
    pub fn by_id(&self) -> std::collections::HashMap<&str, &Pipeline> {
        self.pipelines.iter().map(|p| (p.id.as_str(), p)).collect()
    }
    /// The pipelines `root` runs, itself included, each once (the config has no cycles).
    pub fn reachable<'c>(&'c self, root: &'c Pipeline) -> Vec<&'c Pipeline> {
        let by_id = self.by_id();
        let mut seen = std::collections::HashSet::new();
        let mut todo = vec![root];
        let mut out = Vec::new();
        while let Some(p) = todo.pop() {
            if !seen.insert(p.id.as_str()) {
                continue;
            }
            out.push(p);
            for s in &p.stages {
                // Sub-pipelines and loops' verify pipelines: both run as child runs.
                if let Some(child) = s.kind.child_pipeline().and_then(|c| by_id.get(c)) {
                    todo.push(child);
                }
            }
        }
        out
    }
    /// Ids of every pipeline, in file order.
    pub fn pipeline_ids(&self) -> Vec<&str> {
        self.pipelines.iter().map(|p| p.id.as_str()).collect()
    }
}

/// One pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Id.
    pub id: String,
    /// Title (defaults to the id).
    pub title: String,
    /// Description.
    pub description: Option<String>,
    /// Stages in file order (stage sets expanded in place).
    pub stages: Vec<Stage>,
    /// `concurrency`: cap on parallel stages.
    pub concurrency: Option<usize>,
    /// `vars`: pipeline variables, in file order.
    pub vars: Vec<(String, String)>,
    /// `executor`: where its command stages run unless a stage says otherwise.
    pub executor: Option<ExecutorConfig>,
    /// `delivery`: what a succeeded run hands over, in order.
    pub delivery: Vec<crate::config::delivery::Delivery>,
    /// `maxWallClockMs`: the run's wall-clock budget (`--max-wall-clock` overrides).
    pub max_wall_clock: Option<Duration>,
    /// `maxDynamicStages`: stages one plan patch, and all patches of a run together, may add
    /// (default [`super::plan_patch::DEFAULT_MAX_DYNAMIC_STAGES`]).
    pub max_dynamic_stages: Option<usize>,
    /// `inputs`: globs of the files its stages read; `resume` compares only those (empty:
    /// the whole work tree).
    pub inputs: Vec<String>,
}

impl Pipeline {
    /// True when any stage declares `dependsOn` (the pipeline opts into the graph).
    pub fn uses_graph(&self) -> bool {
        self.stages.iter().any(|s| s.depends_on.is_some())
    }

    /// Its stage graph: unknown ids, self-dependencies and cycles are errors.
    pub fn graph(&self) -> Result<StageGraph, GraphError> {
        let nodes: Vec<Node<'_>> = self
            .stages
            .iter()
            .map(|s| Node {
                id: &s.id,
                depends_on: s.depends_on.as_deref(),
            })
            .collect();
        StageGraph::build(&nodes)
    }
}

/// One stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Id, unique in its pipeline.
    pub id: String,
    /// Title (defaults to the id).
    pub title: String,
    /// What it does.
    pub kind: StageKind,
    /// `dependsOn`, when given; otherwise the stage depends on the one before it.
    pub depends_on: Option<Vec<String>>,
    /// `onFailure`.
    pub on_failure: OnFailure,
    /// `retries`.
    pub retries: RetryPolicy,
    /// `plan` metadata (execution hints), kept as JSON.
    pub plan: Option<serde_json::Value>,
    /// `locks`: resource lock names held while the stage runs, sorted and unique.
    pub locks: Vec<String>,
}

/// What a stage does.
#[derive(Debug, Clone)]
pub enum StageKind {
    /// A shell command.
    Command(CommandStage),
    /// A child run of another pipeline.
    Subpipeline {
        /// The pipeline to run.
        pipeline: String,
        /// A failure of the child does not fail this run.
        optional: bool,
    },
    /// A human checkpoint: the run waits here for an approve or reject decision.
    Approval(ApprovalStage),
    /// Build, verify, feed back, until the verify pipeline passes or a budget is spent.
    Loop(LoopStage),
}

impl StageKind {
    /// The pipeline this stage runs as a child run, if it runs one (a sub-pipeline, or a
    /// loop's verify pipeline).
    pub fn child_pipeline(&self) -> Option<&str> {
        match self {
            StageKind::Command(_) | StageKind::Approval(_) => None,
            StageKind::Subpipeline { pipeline, .. } => Some(pipeline),
            StageKind::Loop(l) => Some(&l.verify),
        }
    }
}

/// The fields of a `loop` stage.
#[derive(Debug, Clone)]
pub struct LoopStage {
    /// The command that builds (an agent, a fixer): a command stage's body.
    pub build: CommandStage,
    /// The pipeline run as a child run after each build; the loop ends when it succeeds.
    pub verify: String,
    /// Iterations before giving up (`maxIterations`, at least 1, default 3).
    pub max_iterations: u32,
    /// Wall-clock budget of the loop (`maxWallClockMs`).
    pub max_wall_clock: Option<Duration>,
    /// Stop (`loop-stalled`) when a build changes nothing after a failed verify.
    pub stop_when_unchanged: bool,
}

/// The fields of an approval stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalStage {
    /// What the approver is asked.
    pub prompt: String,
    /// Who may decide (actor names); `None`: anyone.
    pub approvers: Option<Vec<String>>,
    /// How long to wait for a decision.
    pub timeout: Option<Duration>,
    /// What the timeout decides.
    pub on_timeout: OnTimeout,
}

/// What an approval's timeout decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnTimeout {
    /// The stage is rejected (fails).
    #[default]
    Reject,
    /// The stage is approved (succeeds).
    Approve,
}

impl OnTimeout {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnTimeout::Reject => "reject",
            OnTimeout::Approve => "approve",
        }
    }
}

/// The fields of a command stage.
#[derive(Debug, Clone)]
pub struct CommandStage {
    /// Shell text (may contain `${NAME}` variables); with `args`, the program to run.
    pub command: String,
    /// `args`: argv mode. The program `command` runs with these arguments as they are, without
    /// a shell (no quoting, no expansion, no injection through a value).
    pub args: Option<Vec<String>>,
    /// Working directory relative to the repo root (may contain variables).
    pub cwd: Option<String>,
    /// Extra environment, in file order (values may contain variables).
    pub env: Vec<(String, String)>,
    /// Enforced timeout.
    pub timeout: Option<Duration>,
    /// A failure marks the stage `skipped` and the run goes on.
    pub allow_failure: bool,
    /// Summary used on success.
    pub summary_hint: Option<String>,
    /// Where it runs: its own `executor`, else its pipeline's; `None` is local.
    pub executor: Option<ExecutorConfig>,
}

impl CommandStage {
    /// What runs, as shell text: the command, or in argv mode the program and its arguments
    /// quoted for `sh` (what the record and progress show; `sh -c` of it runs the same argv).
    pub fn shell_text(&self) -> String {
        match &self.args {
            None => self.command.clone(),
            Some(args) => exec::shell_words(std::iter::once(&self.command).chain(args)),
        }
    }
}

/// What a failure of a stage does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Nothing new starts; running stages finish; the run fails.
    #[default]
    Abort,
    /// Its dependents (transitively) are skipped; independent branches go on.
    SkipDependents,
    /// Dependents still run.
    Continue,
}

impl OnFailure {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Abort => "abort",
            OnFailure::SkipDependents => "skip-dependents",
            OnFailure::Continue => "continue",
        }
    }
}

/// `retries`: how often and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub count: u32,
    /// Delay before the first retry.
    pub delay: Duration,
    /// Exponential: the delay doubles per retry.
    pub exponential: bool,
    /// Cap on the delay.
    pub max_delay: Option<Duration>,
}

impl RetryPolicy {
    /// Delay before attempt `attempt` (2 = first retry).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let retry = attempt.saturating_sub(2);
        let delay = if self.exponential {
            let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
            self.delay.saturating_mul(factor)
        } else {
            self.delay
        };
        match self.max_delay {
            Some(cap) => delay.min(cap),
            None => delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delays_double_and_cap() {
        let p = RetryPolicy {
            count: 5,
            delay: Duration::from_millis(100),
            exponential: true,
            max_delay: Some(Duration::from_millis(350)),
        };
        let d: Vec<u128> = (2..=6).map(|a| p.delay_before(a).as_millis()).collect();
        assert_eq!(d, [100, 200, 350, 350, 350]);
        let fixed = RetryPolicy {
            exponential: false,
            max_delay: None,
            ..p
        };
        assert_eq!(fixed.delay_before(5).as_millis(), 100);
    }
}
