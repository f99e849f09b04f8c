//! Our extension records for the build -> verify -> feedback loop (a stage's `loop`) and for
//! delivery (the run's `delivery`): what was done, in the detail a reviewer and a resume need.
//! Their phases move only through the tables in `loop_state` and `delivery_state`.

use serde::{Deserialize, Serialize};

use crate::delivery_state::DeliveryPhase;
use crate::loop_state::{LoopPhase, LoopResult, LoopStep};
use crate::state::RunStatus;

/// How many changed files a snapshot's diff names in the manifest (the feedback file names
/// more).
pub const DIFF_FILES_RECORDED: usize = 50;

/// A loop stage: its settings, where it is, and every iteration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoopRecord {
    /// The verify pipeline.
    pub verify: String,
    /// `maxIterations`: iterations per round.
    pub max_iterations: u32,
    /// `maxWallClockMs`: the wall-clock budget of a round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_clock_ms: Option<u64>,
    /// `stopWhenUnchanged`.
    pub stop_when_unchanged: bool,
    /// The current (or last) iteration, from 1.
    pub iteration: u32,
    /// The last iteration this round may run.
    pub limit: u32,
    /// Rounds started: 1, plus one per resume after an `exhausted`, `timeout` or `stalled` end.
    pub round: u32,
    /// When this round's wall-clock budget runs out (kept across crashes and cancels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// The step it is in, or was in when it ended.
    pub phase: LoopStep,
    /// How it ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<LoopResult>,
    /// The newest feedback files (from the last failed verify or build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackRef>,
    /// Every iteration so far, in order.
    pub iterations: Vec<IterationRecord>,
}

impl LoopRecord {
    /// Its phase in the loop's transition table.
    pub fn state(&self) -> LoopPhase {
        LoopPhase::of(self.phase, self.result)
    }

    /// `iteration 2/5: verifying`, as status and progress show it.
    pub fn progress(&self) -> String {
        let doing = match self.result {
            None => self.phase.doing().to_owned(),
            Some(r) => r.detail().trim_start_matches("loop-").to_owned(),
        };
        format!("iteration {}/{}: {doing}", self.iteration, self.limit)
    }

    /// The current iteration's record.
    pub fn current(&self) -> Option<&IterationRecord> {
        self.iterations
            .iter()
            .rev()
            .find(|i| i.iteration == self.iteration)
    }

    /// The current iteration's record, to change.
    pub fn current_mut(&mut self) -> Option<&mut IterationRecord> {
        let n = self.iteration;
        self.iterations.iter_mut().rev().find(|i| i.iteration == n)
    }

    /// True when some iteration's verify run failed (what makes an unchanged build a stall).
    pub fn had_failed_verify(&self) -> bool {
        self.iterations
            .iter()
            .any(|i| i.verify.as_ref().and_then(|v| v.verdict.as_deref()) == Some("failed"))
    }
}

/// One iteration of a loop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IterationRecord {
    /// Its number, from 1.
    pub iteration: u32,
    /// The round it belongs to.
    pub round: u32,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// The feedback its build was given (`CODEX_ORCHESTRATOR_FEEDBACK_PATH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<FeedbackRef>,
    /// The snapshot before the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<SnapshotRecord>,
    /// How many times its build was started (more than 1: re-run after a crash).
    #[serde(default)]
    pub builds_started: u32,
    /// The build's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildRecord>,
    /// The snapshot after the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<SnapshotRecord>,
    /// Whether the build changed the tree (`after` differs from `before`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<bool>,
    /// The verify child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyRecord>,
    /// How the iteration ended: `passed`, `failed` (verify failed, on to the next),
    /// `exhausted`, `timeout`, `stalled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// A snapshot of the working tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// `git` or `files`.
    pub kind: String,
    /// `HEAD`'s commit (git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// `HEAD`'s branch (git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The tree digest: a git tree id, or `sha256:<hex>` outside git.
    pub tree: String,
    /// Whether the tree differs from `HEAD`'s (git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dirty: Option<bool>,
    /// When it was taken.
    pub taken_at: String,
    /// What changed since the previous snapshot of the loop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<DiffRecord>,
}

/// What changed between two snapshots.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DiffRecord {
    /// The tree digest compared against.
    pub against: String,
    /// Files changed.
    pub files_changed: u64,
    /// Lines added (git).
    pub insertions: u64,
    /// Lines removed (git).
    pub deletions: u64,
    /// The first [`DIFF_FILES_RECORDED`] changed files.
    pub files: Vec<FileChangeRecord>,
    /// True when more files changed than `files` names.
    #[serde(default)]
    pub truncated: bool,
}

/// One changed file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileChangeRecord {
    /// Path from the top of the work tree.
    pub path: String,
    /// `added`, `modified`, `deleted`, `type-changed`.
    pub status: String,
    /// Lines added (git, text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insertions: Option<u64>,
    /// Lines removed (git, text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletions: Option<u64>,
}

/// The result of an iteration's build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub completed_at: String,
    /// `exited`, `signaled`, `timed_out`, `cancelled`, `spawn_failed`.
    pub outcome: String,
    /// Whether it succeeded (exit code 0).
    pub succeeded: bool,
    /// Exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Summary by the peer's rule.
    pub summary: String,
    /// Wall time.
    pub duration_ms: u64,
    /// Its log, repo-relative.
    pub log_path: String,
    /// Attempts (`retries`).
    pub attempts: u32,
}

/// An iteration's verify child run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyRecord {
    /// The child run.
    pub run_id: String,
    /// Its pipeline.
    pub pipeline_id: String,
    /// Its manifest, repo-relative.
    pub manifest: String,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Its status.
    pub status: RunStatus,
    /// `passed` or `failed`, once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<String>,
}

/// Feedback files for a build: JSON, and the same as Markdown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedbackRef {
    /// The iteration whose failures they describe.
    pub from_iteration: u32,
    /// The JSON file, repo-relative.
    pub json: String,
    /// The Markdown twin, repo-relative.
    pub markdown: String,
}

/// One delivery of a run (the run's `delivery[]`, in config order).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeliveryRecord {
    /// `bundle`, `git` or `github`.
    pub kind: String,
    /// Where it stands.
    pub phase: DeliveryPhase,
    /// `pending`, `in_progress`, `succeeded`, `no_change`, `failed`, `skipped` (from `phase`).
    pub status: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The evidence directory (bundle), repo-relative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_dir: Option<String>,
    /// The in-toto statement (bundle), repo-relative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// The tree digest delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// The remote pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// The branch pushed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The commit pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Its parent (`HEAD` when the run ended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Whether the push happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pushed: Option<bool>,
    /// The pull request's base branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Whether it was opened as a draft.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<bool>,
    /// The pull request's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The pull request's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u64>,
    /// The checks, when waited for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiRecord>,
}

impl DeliveryRecord {
    /// A delivery not started yet.
    pub fn pending(kind: &str) -> DeliveryRecord {
        DeliveryRecord {
            kind: kind.to_owned(),
            phase: DeliveryPhase::Pending,
            status: DeliveryPhase::Pending.status().to_owned(),
            started_at: None,
            completed_at: None,
            error: None,
            evidence_dir: None,
            statement: None,
            tree: None,
            remote: None,
            branch: None,
            commit: None,
            parent: None,
            pushed: None,
            base: None,
            draft: None,
            url: None,
            number: None,
            ci: None,
        }
    }
}

/// The checks of a pull request, as waited for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CiRecord {
    /// `passed`, `failed`, `none` (no checks configured), `timed_out`.
    pub status: String,
    /// How long it waited.
    pub waited_ms: u64,
    /// What `gh pr checks` said last (trimmed, capped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}
