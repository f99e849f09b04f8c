//! What a run or a stage is waiting for, as `status` (and `serve`, through the same view)
//! shows it: a pause, a place in line for a run slot, an approval decision, resource locks.
//! Read from the extension records the runner keeps (`paused`, `queue`, a stage's `approval`
//! and `locks`).

use serde_json::{json, Value};
use shared_manifest::schema::{CommandRecord, Manifest};
use shared_manifest::{CommandStatus, RunPhase};

/// The run's phase as we spell it: `queued`, `running`, `paused`, or its terminal status.
pub fn phase(m: &Manifest) -> &'static str {
    match m.phase() {
        RunPhase::Queued => "queued",
        RunPhase::Running => "running",
        RunPhase::Paused => "paused",
        RunPhase::Succeeded => "succeeded",
        RunPhase::Failed => "failed",
        RunPhase::Cancelled => "cancelled",
    }
}

/// What stage `c` waits for, while its run is not over: `approval`, `locks`, or nothing.
pub fn stage_wait(m: &Manifest, c: &CommandRecord) -> Option<&'static str> {
    if m.status.is_terminal() {
        return None;
    }
    if c.awaiting_approval() {
        return Some("approval");
    }
    let waits_for_locks = c.status == CommandStatus::Pending
        && c.locks.as_ref().is_some_and(|l| l.waiting_since.is_some());
    waits_for_locks.then_some("locks")
}

/// The keys `status --format json` adds for run control: `phase`, `paused`, `queue`.
pub fn run_json(m: &Manifest) -> Value {
    json!({ "phase": phase(m), "paused": m.paused, "queue": m.queue })
}

/// The keys a command of `status --format json` gets: `waiting`, `approval`, `locks`.
pub fn stage_json(m: &Manifest, c: &CommandRecord) -> Value {
    json!({ "waiting": stage_wait(m, c), "approval": c.approval, "locks": c.locks })
}

/// Lines under the run's status: the pause in force, the place in line.
pub fn run_lines(m: &Manifest) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(p) = &m.paused {
        let by = p
            .requested_by
            .as_deref()
            .map(|b| format!(" by {b}"))
            .unwrap_or_default();
        out.push(format!(
            "Paused: since {}{by}; no new stage starts (`codex-orchestrator unpause --run {}` continues)",
            p.at, m.run_id
        ));
    }
    if let (Some(q), RunPhase::Queued) = (&m.queue, m.phase()) {
        out.push(format!(
            "Queued: place {} in line for one of {} run slots (maxConcurrentRuns), since {}",
            q.position, q.max_concurrent_runs, q.enqueued_at
        ));
    }
    out
}

/// A stage's line in `status`: `[waiting for approval] ...` while it waits, else its status.
pub fn stage_line(m: &Manifest, c: &CommandRecord) -> String {
    let summary = |s: Option<&str>| {
        s.and_then(|s| s.lines().next())
            .map(|s| format!(" — {s}"))
            .unwrap_or_default()
    };
    match (stage_wait(m, c), &c.approval, &c.locks) {
        (Some("approval"), Some(a), _) => {
            let who = a
                .approvers
                .as_ref()
                .map_or("anyone".to_owned(), |l| l.join(", "));
            let until = a
                .deadline
                .as_deref()
                .map(|d| format!("; {} at {d}", a.on_timeout))
                .unwrap_or_default();
            format!(
                "  [waiting for approval] {} — {} (approvers: {who}{until})",
                c.title, a.prompt
            )
        }
        (Some("locks"), _, Some(l)) => format!(
            "  [waiting for lock {}] {} (since {})",
            l.names.join(", "),
            c.title,
            l.waiting_since.as_deref().unwrap_or("?")
        ),
        _ => format!(
            "  [{}] {}{}",
            c.status.as_str(),
            c.title,
            summary(c.summary.as_deref())
        ),
    }
}
