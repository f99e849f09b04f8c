//! The manifest's record of a stage before it runs: built for every stage of a new run
//! (`run.rs`) and for the stages a plan patch adds while it runs (`patch.rs`).

use shared_manifest::schema::{CommandRecord, StageKind as ManifestKind};
use shared_manifest::CommandStatus;

use crate::config::StageKind;
use crate::engine::context::Ctx;
use crate::plan::Plan;

/// Stage `i` of `plan`, pending; `shown` masks secret values in its command text.
pub fn pending(ctx: &Ctx, plan: &Plan, i: usize, shown: &dyn Fn(&str) -> String) -> CommandRecord {
    let p = &plan.pipeline;
    let s = &p.stages[i];
    let (command, kind, timeout) = match &s.kind {
        StageKind::Command(c) => (
            Some(shown(&c.shell_text())),
            ManifestKind::Command,
            c.timeout
                .or(ctx.exec.default_timeout)
                .map(crate::time::millis),
        ),
        StageKind::Subpipeline { .. } => (None, ManifestKind::Subpipeline, None),
        // The peer's schema knows commands and sub-pipelines: a loop is recorded as the
        // command it runs (its build), its iterations in our `loop` extension.
        StageKind::Loop(l) => (
            Some(shown(&l.build.command)),
            ManifestKind::Command,
            l.build
                .timeout
                .or(ctx.exec.default_timeout)
                .map(crate::time::millis),
        ),
        // The peer's schema knows command and subpipeline stages only: an approval is a
        // command stage without a command, its `approval` record says what it is.
        StageKind::Approval(a) => (
            None,
            ManifestKind::Command,
            a.timeout.map(crate::time::millis),
        ),
    };
    CommandRecord {
        index: i + 1,
        id: s.id.clone(),
        title: s.title.clone(),
        command,
        kind,
        status: CommandStatus::Pending,
        started_at: None,
        completed_at: None,
        exit_code: None,
        summary: None,
        log_path: None,
        error_file: None,
        sub_run_id: None,
        depends_on: Some(
            plan.graph.deps[i]
                .iter()
                .map(|&j| p.stages[j].id.clone())
                .collect(),
        ),
        attempts: None,
        outcome: None,
        signal: None,
        duration_ms: None,
        timeout_ms: timeout,
        skip_reason: None,
        process: None,
        stdout_bytes: None,
        stderr_bytes: None,
        leaked_processes: None,
        dropped_chunk_events: None,
        redactions: None,
        approval: None,
        locks: None,
        executor: None,
        loop_record: None,
        other: serde_json::Map::new(),
    }
}
