//! The manifest as serde types: every field the peer's `schemas/manifest.json` requires, in the
//! peer's order and with its types, plus our optional extension fields, plus every key we do
//! not know (written by the peer or another tool), kept as it was.
//!
//! This is the merged view of a run's record. On disk the peer's keys go to `manifest.json`
//! and everything else to the sidecar `manifest.ext.json` (see `sidecar.rs`); our schemas
//! `schemas/manifest.ext.schema.json` (sidecar) and `schemas/manifest.schema.json` (the inline
//! layout, a superset of the peer's schema) describe them. Extension fields are `Option` and
//! skipped when absent so a reader never sees a `null` it does not expect.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::sidecar::Extensions;
use crate::state::{CommandStatus, RunStatus};

/// Version of our manifest layout, bumped when a field is added.
pub const SCHEMA_VERSION: u32 = 1;
/// Seconds between heartbeats while a run is in progress (the peer's value).
pub const HEARTBEAT_INTERVAL_SECONDS: u64 = 5;
/// Age after which a heartbeat is considered stale (the peer's value).
pub const HEARTBEAT_STALE_AFTER_SECONDS: u64 = 30;

/// `manifest.json` of one run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Peer layout version (always 1).
    pub version: u32,
    /// Task the run belongs to.
    pub task_id: String,
    /// Task slug (the peer writes the task id).
    pub task_slug: Option<String>,
    /// `YYYY-MM-DDTHH-MM-SS-mmmZ-<8 hex>`.
    pub run_id: String,
    /// Run that started this one as a sub-pipeline.
    pub parent_run_id: Option<String>,
    /// Pipeline id.
    pub pipeline_id: String,
    /// Pipeline title.
    // The peer leaves it out for a pipeline without a `title` (against its own schema): read
    // as empty; a resume fills it in from the config.
    #[serde(default)]
    pub pipeline_title: String,
    /// Always `codex-cli`.
    pub runner: String,
    /// `--approval-policy`, recorded only.
    pub approval_policy: Option<String>,
    /// Run status.
    pub status: RunStatus,
    /// Machine-readable reason for the status (`stage:<id>:failed`, `run-canceled`, ...).
    pub status_detail: Option<String>,
    /// When the run started.
    pub started_at: String,
    /// When the run reached a terminal state.
    pub completed_at: Option<String>,
    /// Last change to this document.
    pub updated_at: String,
    /// Last heartbeat.
    pub heartbeat_at: Option<String>,
    /// Seconds between heartbeats.
    pub heartbeat_interval_seconds: u64,
    /// Age after which the heartbeat is stale.
    pub heartbeat_stale_after_seconds: u64,
    /// Run directory, repo-relative.
    pub artifact_root: String,
    /// `.runs/<task>/mcp/<run>`, repo-relative.
    pub compat_path: String,
    /// `runner.ndjson`, repo-relative.
    pub log_path: String,
    /// Absolute repo root the run executed in.
    #[serde(default)]
    pub workspace_path: Option<String>,
    /// Human summary; one line per failed stage.
    pub summary: Option<String>,
    /// True once the metrics line for the run was appended.
    pub metrics_recorded: bool,
    /// Secret that `resume --token` must match (also in `.resume-token`).
    pub resume_token: String,
    /// Every resume of this run.
    pub resume_events: Vec<ResumeEvent>,
    /// Approvals (recorded, never requested by shell stages).
    pub approvals: Vec<Approval>,
    /// One entry per stage, in stage order.
    pub commands: Vec<CommandRecord>,
    /// Sub-pipeline runs started by this run.
    pub child_runs: Vec<ChildRun>,
    /// `run-summary.json`, repo-relative.
    pub run_summary_path: Option<String>,
    /// `<pipeline>:<first stage>`.
    pub plan_target_id: Option<String>,
    /// Requested runtime mode.
    pub runtime_mode_requested: RuntimeMode,
    /// Runtime mode in effect.
    pub runtime_mode: RuntimeMode,
    /// Provider of the runtime mode in effect.
    pub runtime_provider: String,
    /// Whether the requested runtime mode fell back.
    pub runtime_fallback: Option<RuntimeFallback>,
    /// Requested cloud execution that fell back to mcp.
    #[serde(default)]
    pub cloud_fallback: Option<CloudFallback>,
    /// Hash of agent instructions (none for shell stages).
    pub instructions_hash: Option<String>,
    /// Sources of agent instructions (none for shell stages).
    pub instructions_sources: Vec<String>,

    // ---- extensions (optional; in the sidecar by default) ----
    /// Our manifest layout version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// Version of the binary that last wrote the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_version: Option<String>,
    /// Pid of the runner that last owned the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_pid: Option<u32>,
    /// Cap on parallel stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Execution mode resolved for the run and where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_mode: Option<ModeDecision>,
    /// Which source decided `runtime_mode_requested`: `flag`, `env`, `config`, `manifest` (a
    /// resume keeping the recorded request) or `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_mode_source: Option<String>,
    /// Variables given with `--var` (names and values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variables: Option<Map<String, Value>>,
    /// What the peer's closed `approvals[]` cannot say about each of its entries (same order):
    /// the stage, the decision and where it came from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approval_decisions: Vec<ApprovalDecision>,
    /// The pause in force (a `pause` request of `control.json`); absent when running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<PauseRecord>,
    /// The wait for a run slot (`maxConcurrentRuns`), when the run had to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueRecord>,
    /// The wall-clock budget of each runner that ran the run (start, then every resume).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wall_clock_budgets: Vec<BudgetRecord>,
    /// The run's deliveries (pipeline `delivery`), in config order; recorded apart from the
    /// run's status, which a delivery never changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub delivery: Vec<crate::work_record::DeliveryRecord>,
    /// The config file the run's pipeline was read from (repo-relative inside the repo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// Whose config that is: `repo`, `package` (the peer package's, used because the repo has
    /// none), `inline` (`exec`) or `plan-file` (`run-plan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_source: Option<String>,
    /// The plan patches applied while the run went on, in order: which stage added which
    /// stages, when, and the stages as validated (a resume adds them again from here).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub plan_patches: Vec<PlanPatchRecord>,
    /// The stages the run's runner was asked to run (`--only`, `--skip`, `--from` of `start`,
    /// or of the last `resume` given any); absent: all. The others are recorded `skipped`
    /// with the outcome `not_selected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<SelectionRecord>,
    /// `--fail-fast` (true: every stage's `onFailure` is `abort`) or `--no-fail-fast` (false:
    /// `continue`) for this run; absent: each stage's own `onFailure`. Kept by a resume not
    /// given either flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,

    /// Keys we do not know, written by the peer or another tool: kept, so a resume never
    /// drops them.
    #[serde(flatten)]
    pub other: Map<String, Value>,
    /// Where the extension fields are written; not a key of the record.
    #[serde(skip)]
    pub extensions: Extensions,
}

/// One stage of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandRecord {
    /// 1-based stage index.
    pub index: usize,
    /// Stage id.
    pub id: String,
    /// Stage title.
    // The peer leaves it out for a stage without a `title` (against its own schema): read as
    // empty; a resume fills it in from the config.
    #[serde(default)]
    pub title: String,
    /// The resolved shell command (`null` for sub-pipelines).
    pub command: Option<String>,
    /// `command` or `subpipeline`.
    pub kind: StageKind,
    /// Stage status.
    pub status: CommandStatus,
    /// When the (first) attempt started.
    pub started_at: Option<String>,
    /// When the stage reached a terminal state.
    pub completed_at: Option<String>,
    /// Exit code of the final attempt.
    pub exit_code: Option<i32>,
    /// Summary by the peer's rule.
    pub summary: Option<String>,
    /// `commands/NN-<slug>.ndjson`, repo-relative.
    pub log_path: Option<String>,
    /// `errors/NN-<slug>.json`, repo-relative, when the stage failed.
    pub error_file: Option<String>,
    /// Run id of the sub-pipeline's child run.
    pub sub_run_id: Option<String>,

    // ---- extensions (optional; in the sidecar by default) ----
    // The records only some stages have (an approval, locks, a remote executor, a loop) are
    // boxed: inline they would make every stage record ~0.6 KB larger, and a run of thousands
    // of plain stages keeps all its records in memory. Boxes change nothing on disk.
    /// Stage ids this stage waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Attempts made so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// How the final attempt ended: `exited`, `signaled`, `timed_out`, `cancelled`,
    /// `spawn_failed`, `lost` (a remote executor lost the attempt), `dependency_failed`,
    /// `not_selected` (left out by the run's stage selection); an approval stage's `approved`
    /// or `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Signal that ended the final attempt (`SIGTERM`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Wall time of the stage, all attempts included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Enforced timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Why the stage was skipped without running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// The stage's process, so a later runner can find survivors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessRecord>,
    /// Bytes the final attempt wrote to stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_bytes: Option<u64>,
    /// Bytes the final attempt wrote to stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_bytes: Option<u64>,
    /// True when processes still held the pipes after the stage exited and were killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaked_processes: Option<bool>,
    /// With `CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS` set: output chunk events of the final
    /// attempt that were not kept in memory (the stage log still has every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_chunk_events: Option<u64>,
    /// With secrets configured (`secrets`, `--secret`): secret values the final attempt's
    /// output held, each masked as `***` in the log and everything derived from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redactions: Option<u64>,
    /// An approval stage's request and decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Box<ApprovalRecord>>,
    /// The resource locks the stage holds while it runs, and how long it waited for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locks: Option<Box<LockRecord>>,
    /// Where a stage that ran on a remote executor (Ray) ran; absent for local stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<Box<ExecutorRecord>>,
    /// A loop stage's iterations and where it is (`loop`).
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub loop_record: Option<Box<crate::work_record::LoopRecord>>,

    /// Keys we do not know, written by the peer or another tool: kept.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CommandRecord {
    /// True while the stage is an approval waiting for its decision.
    pub fn awaiting_approval(&self) -> bool {
        self.status == CommandStatus::Running
            && self
                .approval
                .as_ref()
                .is_some_and(|a| a.state == ApprovalState::Waiting)
    }
}

/// An approval stage's request and, once made, its decision.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalRecord {
    /// Which request of this stage, from 1: a resume asks again (request + 1) only after a
    /// decided request; an undecided one is waited for again, deadline and all.
    pub request: u32,
    /// What the approver is asked.
    pub prompt: String,
    /// Who may decide; absent: anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    /// When the decision was first asked for.
    pub requested_at: String,
    /// The absolute deadline (`timeoutMs` after the request), kept across resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// `reject` or `approve`: what the deadline decides.
    pub on_timeout: String,
    /// Where the decision is dropped (create-only), repo-relative.
    pub decision_file: String,
    /// `waiting`, `approved` or `rejected`.
    pub state: ApprovalState,
    /// Who decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How the decision arrived: `cli`, `dashboard`, `timeout`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// When it was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
}

/// Where an approval stands.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// No decision yet.
    Waiting,
    /// Approved: the stage succeeded.
    Approved,
    /// Rejected: the stage failed.
    Rejected,
}

impl ApprovalState {
    /// The state as the record spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Waiting => "waiting",
            ApprovalState::Approved => "approved",
            ApprovalState::Rejected => "rejected",
        }
    }
}

/// Our side of one entry of the peer's `approvals[]` (same position).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApprovalDecision {
    /// Stage id.
    pub stage: String,
    /// 1-based stage index.
    pub stage_index: usize,
    /// Which request of the stage it answered.
    pub request: u32,
    /// `approved` or `rejected`.
    pub decision: ApprovalState,
    /// `cli`, `dashboard`, `timeout`, ...
    pub source: String,
}

/// A pause in force.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PauseRecord {
    /// When the runner honoured it.
    pub at: String,
    /// `control_seq` of the request.
    pub control_seq: u64,
    /// `requested_by` of the request.
    #[serde(default)]
    pub requested_by: Option<String>,
    /// `reason` of the request.
    #[serde(default)]
    pub reason: Option<String>,
    /// `request_id` of the request.
    #[serde(default)]
    pub request_id: Option<String>,
    /// `intent_id` of the request.
    #[serde(default)]
    pub intent_id: Option<String>,
}

/// A run's wait for a run slot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueRecord {
    /// When it joined the line.
    pub enqueued_at: String,
    /// Its place in line when last recorded (1: next).
    pub position: usize,
    /// The slot count it waited under.
    pub max_concurrent_runs: usize,
    /// When it got a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// How long it waited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
}

/// One plan patch: stages a running stage added to the run's pipeline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanPatchRecord {
    /// The stage that wrote it.
    pub added_by: String,
    /// When it was applied.
    pub at: String,
    /// Ids of the stages it added, in order.
    pub stage_ids: Vec<String>,
    /// The stages as validated, in the config's stage format, secret values masked.
    pub stages: Vec<Value>,
    /// Whether masking changed `stages`: a resume then reads the real ones from the patch
    /// file the stage wrote, and refuses when it cannot.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub masked: bool,
}

/// The stage selection of a run, as asked for and as it came out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SelectionRecord {
    /// `--only`: these stages (and, unless `no_deps`, what they depend on).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
    /// `--no-deps`: `only` without the stages it depends on.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_deps: bool,
    /// `--skip`: never these stages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// `--from`: this stage, what depends on it, and what those need that it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The stages that run, in stage order.
    pub selected: Vec<String>,
}

/// The wall-clock budget of one runner of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BudgetRecord {
    /// The budget.
    pub limit_ms: u64,
    /// `flag` (`--max-wall-clock`) or `pipeline` (`maxWallClockMs`).
    pub source: String,
    /// When it started counting (the runner began to execute stages).
    pub started_at: String,
    /// When it runs out.
    pub deadline: String,
}

/// A stage's resource locks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockRecord {
    /// Lock names, sorted (the order they are taken in).
    pub names: Vec<String>,
    /// Since when the stage waits for them (while it waits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<String>,
    /// How long it waited before it got them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
    /// When it got them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquired_at: Option<String>,
}

/// Where a stage's attempt ran on a remote executor (a Ray cluster).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecutorRecord {
    /// The executor kind: `ray`.
    pub kind: String,
    /// The cluster address used (`http://127.0.0.1:8265`).
    pub address: String,
    /// The job's id on the cluster: `<run-id>--<stage-id>--<attempt>`, sanitised.
    pub submission_id: String,
    /// The node the command ran on (Ray's node id), once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// That node's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// sha256 of the working-directory package shipped with the job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir_sha256: Option<String>,
    /// The job was started by an earlier runner of this run and attached to on resume.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attached: bool,
    /// The job's final status on the cluster (`SUCCEEDED`, `FAILED`, `STOPPED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Identity of a stage process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessRecord {
    /// Pid of `sh`.
    pub pid: u32,
    /// Process group.
    pub pgid: i32,
    /// Spawn time.
    pub started_at: String,
    /// `/proc/<pid>/stat` start time in clock ticks, to tell reused pids apart.
    pub start_ticks: Option<u64>,
}

/// Stage kinds as the manifest records them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// A shell command.
    Command,
    /// A child run of another pipeline.
    Subpipeline,
}

/// A sub-pipeline run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ChildRun {
    /// Child run id.
    pub run_id: String,
    /// Child pipeline.
    pub pipeline_id: String,
    /// Child status.
    pub status: RunStatus,
    /// Child manifest, repo-relative.
    pub manifest: String,
}

/// One resume of the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResumeEvent {
    /// When.
    pub timestamp: String,
    /// Who (`--actor`).
    pub actor: String,
    /// Why (`--reason`).
    pub reason: String,
    /// `accepted` or `blocked`.
    pub outcome: String,
    /// Extra detail.
    #[serde(default)]
    pub detail: Option<String>,
}

/// One approval.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Approval {
    /// Who approved.
    pub actor: String,
    /// When.
    pub timestamp: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `cli` or `appserver`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeMode {
    /// Shell stages run by this binary.
    Cli,
    /// The peer's app-server runtime (not available here; falls back to `cli`).
    Appserver,
}

impl RuntimeMode {
    /// The peer's provider name for the mode.
    pub fn provider(self) -> &'static str {
        match self {
            RuntimeMode::Cli => "CliRuntimeProvider",
            RuntimeMode::Appserver => "AppServerRuntimeProvider",
        }
    }
    /// The mode as the peer spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeMode::Cli => "cli",
            RuntimeMode::Appserver => "appserver",
        }
    }
}

/// A runtime-mode fallback.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RuntimeFallback {
    /// Whether the requested mode was replaced.
    pub occurred: bool,
    /// Machine code of the reason.
    pub code: Option<String>,
    /// Human reason.
    pub reason: Option<String>,
    /// Requested mode.
    pub from_mode: Option<String>,
    /// Mode used instead.
    pub to_mode: Option<String>,
    /// When the decision was taken.
    pub checked_at: String,
}

/// A cloud execution request that ran in `mcp` mode instead.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudFallback {
    /// Always `cloud`.
    pub mode_requested: String,
    /// Always `mcp`.
    pub mode_used: String,
    /// Why.
    pub reason: String,
    /// Problems found.
    pub issues: Vec<CloudIssue>,
    /// When.
    pub checked_at: String,
}

/// One cloud preflight problem.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudIssue {
    /// Machine code.
    pub code: String,
    /// Human message.
    pub message: String,
}

/// A resolved mode and the source that decided it (`flag`, `env`, `config`, `manifest`,
/// `stage`, `default`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModeDecision {
    /// The mode.
    pub mode: String,
    /// Where it came from.
    pub source: String,
}

impl Manifest {
    /// The run's phase: its status, and whether a pause is recorded.
    pub fn phase(&self) -> crate::state::RunPhase {
        crate::state::RunPhase::of(self.status, self.paused.is_some())
    }

    /// The command record with this 1-based index.
    pub fn command_mut(&mut self, index: usize) -> Option<&mut CommandRecord> {
        self.commands.iter_mut().find(|c| c.index == index)
    }

    /// For each stage a plan patch added (by id), the patch that added it (which stage, when).
    pub fn added_stages(&self) -> std::collections::HashMap<&str, &PlanPatchRecord> {
        self.plan_patches
            .iter()
            .flat_map(|p| p.stage_ids.iter().map(move |id| (id.as_str(), p)))
            .collect()
    }
}
