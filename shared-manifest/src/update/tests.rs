//! `Manifest::apply` for the run-control updates: pauses, approvals, run slots, budgets and
//! resource locks, legal and illegal.

use super::*;
use crate::document::Document;

/// A manifest with stages `a` (approval-capable) and `b`, status `status`.
fn manifest(status: &str) -> Manifest {
    manifest_of(status, &["a", "b"])
}

/// A manifest with pending command stages `ids` (indexes from 1), status `status`: the
/// fixture of the update tests here and in `work/tests.rs`.
pub(in crate::update) fn manifest_of(status: &str, ids: &[&str]) -> Manifest {
    let stages: Vec<serde_json::Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({
                "index": i + 1, "id": id, "title": id, "command": null, "kind": "command",
                "status": "pending", "started_at": null, "completed_at": null, "exit_code": null,
                "summary": null, "log_path": null, "error_file": null, "sub_run_id": null,
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "version": 1, "task_id": "t", "task_slug": "t", "run_id": "r", "parent_run_id": null,
        "pipeline_id": "p", "pipeline_title": "P", "runner": "codex-cli",
        "approval_policy": null, "status": status, "status_detail": null,
        "started_at": "T0", "completed_at": null, "updated_at": "T0", "heartbeat_at": null,
        "heartbeat_interval_seconds": 5, "heartbeat_stale_after_seconds": 30,
        "artifact_root": "x", "compat_path": "x", "log_path": "x", "summary": null,
        "metrics_recorded": false, "resume_token": "tok", "resume_events": [], "approvals": [],
        "commands": stages, "child_runs": [],
        "run_summary_path": null, "plan_target_id": null, "runtime_mode_requested": "cli",
        "runtime_mode": "cli", "runtime_provider": "CliRuntimeProvider",
        "runtime_fallback": null, "instructions_hash": null, "instructions_sources": [],
    }))
    .expect("a valid manifest")
}

fn request(n: u32) -> ApprovalRecord {
    ApprovalRecord {
        request: n,
        prompt: "Ship it?".into(),
        approvers: Some(vec!["alice".into()]),
        requested_at: "T1".into(),
        deadline: Some("T9".into()),
        on_timeout: "reject".into(),
        decision_file: "approvals/01-a.1.json".into(),
        state: ApprovalState::Waiting,
        actor: None,
        reason: None,
        source: None,
        decided_at: None,
    }
}

fn decided(decision: ApprovalState, actor: &str, reason: Option<&str>) -> ManifestUpdate {
    ManifestUpdate::ApprovalDecided(Box::new(ApprovalDecided {
        index: 1,
        at: "T2".into(),
        decided_at: "T2".into(),
        decision,
        actor: actor.into(),
        reason: reason.map(str::to_owned),
        source: "cli".into(),
        summary: format!("decided by {actor}"),
        duration_ms: 7,
    }))
}

fn pause(seq: u64, reason: Option<&str>) -> ManifestUpdate {
    ManifestUpdate::RunPaused {
        record: PauseRecord {
            at: "T1".into(),
            control_seq: seq,
            requested_by: Some("ops".into()),
            reason: reason.map(str::to_owned),
            request_id: None,
            intent_id: None,
        },
        line: "Run paused by control request.".into(),
    }
}

#[test]
fn pause_records_the_peers_detail_and_unpause_clears_it() {
    let mut m = manifest("in_progress");
    m.apply(pause(3, None)).expect("pause");
    assert_eq!(m.phase(), RunPhase::Paused);
    assert_eq!(
        m.status,
        RunStatus::InProgress,
        "the peer's schema has no paused"
    );
    assert_eq!(m.status_detail.as_deref(), Some("paused"));
    assert_eq!(m.paused.as_ref().map(|p| p.control_seq), Some(3));
    assert!(
        m.apply(pause(4, None)).is_err(),
        "paused twice is not a transition"
    );
    m.apply(ManifestUpdate::RunUnpaused {
        at: "T2".into(),
        line: "Run resumed by control request.".into(),
    })
    .expect("unpause");
    assert_eq!(m.phase(), RunPhase::Running);
    assert_eq!(m.status_detail, None);
    assert!(m.paused.is_none());
    assert_eq!(
        m.summary.as_deref(),
        Some("Run paused by control request.\nRun resumed by control request.")
    );
    let mut with_reason = manifest("in_progress");
    with_reason
        .apply(pause(1, Some("deploy freeze")))
        .expect("pause");
    assert_eq!(with_reason.status_detail.as_deref(), Some("deploy freeze"));
}

#[test]
fn a_paused_run_can_end_and_a_resume_drops_the_pause() {
    let mut m = manifest("in_progress");
    m.apply(pause(1, None)).expect("pause");
    m.apply(ManifestUpdate::RunFinished {
        at: "T3".into(),
        event: RunEvent::Cancel,
        status_detail: Some("run-canceled".into()),
        summary: None,
    })
    .expect("a paused run can be cancelled");
    assert_eq!(m.status, RunStatus::Cancelled);
    assert!(m.paused.is_none(), "no pause outlives the phase");
    let mut crashed = manifest("in_progress");
    crashed.apply(pause(1, None)).expect("pause");
    crashed
        .apply(ManifestUpdate::RunResumed {
            at: "T4".into(),
            event: ResumeEvent {
                timestamp: "T4".into(),
                actor: "cli".into(),
                reason: "r".into(),
                outcome: "accepted".into(),
                detail: None,
            },
            runner_pid: 1,
            rerun: Vec::new(),
            runtime: RuntimeRecord {
                requested: RuntimeMode::Cli,
                mode: RuntimeMode::Cli,
                fallback: crashed.runtime_fallback.clone().unwrap_or(RuntimeFallback {
                    occurred: false,
                    code: None,
                    reason: None,
                    from_mode: None,
                    to_mode: None,
                    checked_at: "T4".into(),
                }),
                source: "default".into(),
            },
            plan_target_id: None,
            selection: None,
            fail_fast: None,
        })
        .expect("resume");
    assert_eq!(crashed.phase(), RunPhase::Running);
}

#[test]
fn approve_records_the_peers_fields_and_ours() {
    let mut m = manifest("in_progress");
    m.apply(ManifestUpdate::ApprovalRequested {
        index: 1,
        at: "T1".into(),
        record: request(1),
    })
    .expect("request");
    let a = &m.commands[0];
    assert_eq!(
        a.status,
        CommandStatus::Running,
        "waiting is running to the peer"
    );
    assert!(a.awaiting_approval());
    assert_eq!(a.summary.as_deref(), Some("Waiting for approval: Ship it?"));
    m.apply(decided(ApprovalState::Approved, "alice", Some("lgtm")))
        .expect("decide");
    assert_eq!(m.commands[0].status, CommandStatus::Succeeded);
    assert!(!m.commands[0].awaiting_approval());
    assert_eq!(
        serde_json::to_value(&m.approvals).expect("json"),
        serde_json::json!([{"actor": "alice", "timestamp": "T2", "reason": "lgtm"}]),
        "exactly the peer's three fields"
    );
    assert_eq!(m.approval_decisions.len(), 1);
    let d = &m.approval_decisions[0];
    assert_eq!((d.stage.as_str(), d.stage_index, d.request), ("a", 1, 1));
    assert_eq!(
        (d.decision, d.source.as_str()),
        (ApprovalState::Approved, "cli")
    );
    let rec = m.commands[0].approval.as_ref().expect("record");
    assert_eq!(rec.state, ApprovalState::Approved);
    assert_eq!(rec.actor.as_deref(), Some("alice"));
}

#[test]
fn reject_fails_the_stage_and_a_second_decision_is_refused() {
    let mut m = manifest("in_progress");
    m.apply(ManifestUpdate::ApprovalRequested {
        index: 1,
        at: "T1".into(),
        record: request(1),
    })
    .expect("request");
    m.apply(decided(ApprovalState::Rejected, "bob", None))
        .expect("decide");
    assert_eq!(m.commands[0].status, CommandStatus::Failed);
    assert_eq!(m.commands[0].outcome.as_deref(), Some("rejected"));
    let err = m
        .apply(decided(ApprovalState::Approved, "alice", None))
        .expect_err("decided already");
    assert!(err.0.contains("not waiting"), "{err}");
    assert_eq!(m.approvals.len(), 1, "nothing recorded by the refused one");
    assert!(m.apply(decided(ApprovalState::Waiting, "x", None)).is_err());
}

#[test]
fn a_decision_needs_a_waiting_stage() {
    let mut m = manifest("in_progress");
    assert!(m
        .apply(decided(ApprovalState::Approved, "alice", None))
        .is_err());
    // A stage that already runs as a command cannot start waiting for approval.
    m.apply(ManifestUpdate::StageStarted {
        index: 2,
        at: "T1".into(),
        attempt: 1,
        log_path: None,
        command: None,
        process: None,
    })
    .expect("start");
    let mut r = request(1);
    r.decision_file = "x".into();
    assert!(m
        .apply(ManifestUpdate::ApprovalRequested {
            index: 2,
            at: "T1".into(),
            record: r,
        })
        .is_err());
    assert!(
        m.commands[1].approval.is_none(),
        "a refused request leaves no record"
    );
}

#[test]
fn a_waiting_approval_is_reset_by_resume_and_keeps_its_request() {
    let mut m = manifest("in_progress");
    m.apply(ManifestUpdate::ApprovalRequested {
        index: 1,
        at: "T1".into(),
        record: request(1),
    })
    .expect("request");
    let stage = &mut m.commands[0];
    stage_to(stage, CommandEvent::Reset).expect("resume resets a waiting stage");
    assert_eq!(stage.status, CommandStatus::Pending);
    let kept = stage.approval.as_ref().expect("kept for the resume");
    assert_eq!((kept.request, kept.deadline.as_deref()), (1, Some("T9")));
}

#[test]
fn queue_records_the_place_in_line_then_the_wait() {
    let mut m = manifest("queued");
    for position in [3, 2, 1] {
        m.apply(ManifestUpdate::RunQueued {
            at: format!("T{position}"),
            position,
            max_concurrent_runs: 2,
        })
        .expect("queued");
    }
    let q = m.queue.clone().expect("queue");
    assert_eq!((q.enqueued_at.as_str(), q.position), ("T3", 1));
    m.apply(ManifestUpdate::SlotTaken {
        at: "T5".into(),
        waited_ms: 1500,
    })
    .expect("slot");
    m.apply(ManifestUpdate::RunStarted { at: "T5".into() })
        .expect("start");
    assert_eq!(m.status, RunStatus::InProgress);
    assert_eq!(m.queue.as_ref().and_then(|q| q.waited_ms), Some(1500));
    assert!(m
        .apply(ManifestUpdate::RunQueued {
            at: "T6".into(),
            position: 1,
            max_concurrent_runs: 2
        })
        .is_err());
    assert!(m
        .apply(ManifestUpdate::SlotTaken {
            at: "T6".into(),
            waited_ms: 0
        })
        .is_err());
}

#[test]
fn a_queued_run_interrupted_is_cancelled() {
    let mut m = manifest("queued");
    m.apply(ManifestUpdate::RunFinished {
        at: "T1".into(),
        event: RunEvent::Cancel,
        status_detail: Some("run-canceled".into()),
        summary: None,
    })
    .expect("cancel while queued");
    assert_eq!(m.status, RunStatus::Cancelled);
}

#[test]
fn locks_are_recorded_before_the_start_only() {
    let mut m = manifest("in_progress");
    let names = vec!["db".to_owned(), "deploy".to_owned()];
    m.apply(ManifestUpdate::LocksWaiting {
        index: 2,
        at: "T1".into(),
        names: names.clone(),
    })
    .expect("wait");
    assert_eq!(
        m.commands[1]
            .locks
            .as_ref()
            .and_then(|l| l.waiting_since.clone()),
        Some("T1".into())
    );
    m.apply(ManifestUpdate::LocksAcquired {
        index: 2,
        at: "T2".into(),
        names: names.clone(),
        waited_ms: 1000,
    })
    .expect("acquired");
    let l = m.commands[1].locks.clone().expect("locks");
    assert_eq!((l.waiting_since, l.waited_ms), (None, Some(1000)));
    m.apply(ManifestUpdate::StageStarted {
        index: 2,
        at: "T2".into(),
        attempt: 1,
        log_path: None,
        command: None,
        process: None,
    })
    .expect("start");
    assert!(m
        .apply(ManifestUpdate::LocksWaiting {
            index: 2,
            at: "T3".into(),
            names
        })
        .is_err());
}

#[test]
fn budgets_accumulate_one_per_runner() {
    let mut m = manifest("in_progress");
    for start in ["T1", "T5"] {
        m.apply(ManifestUpdate::BudgetStarted(BudgetRecord {
            limit_ms: 1000,
            source: "flag".into(),
            started_at: start.into(),
            deadline: "later".into(),
        }))
        .expect("budget");
    }
    let starts: Vec<&str> = m
        .wall_clock_budgets
        .iter()
        .map(|b| b.started_at.as_str())
        .collect();
    assert_eq!(starts, ["T1", "T5"]);
}

#[test]
fn added_stages_follow_the_last_index_and_record_their_patch() {
    let mut m = manifest("in_progress");
    let mut added: CommandRecord = m.commands[0].clone();
    added.id = "c".into();
    added.index = 3;
    let patch = |ids: &[&str]| PlanPatchRecord {
        added_by: "a".into(),
        at: "T2".into(),
        stage_ids: ids.iter().map(|s| s.to_string()).collect(),
        stages: Vec::new(),
        masked: false,
    };
    m.apply(ManifestUpdate::StagesAdded {
        records: vec![added.clone()],
        patch: patch(&["c"]),
    })
    .expect("added");
    assert_eq!(m.commands.len(), 3);
    assert_eq!(m.plan_patches.len(), 1);
    assert_eq!(m.updated_at, "T2");
    // An index that does not follow the last one is refused and changes nothing.
    added.id = "d".into();
    added.index = 9;
    let err = m
        .apply(ManifestUpdate::StagesAdded {
            records: vec![added],
            patch: patch(&["d"]),
        })
        .expect_err("bad index");
    assert!(err.to_string().contains("expected 4"), "{err}");
    assert_eq!(m.commands.len(), 3);
    assert_eq!(m.plan_patches.len(), 1);
}

#[test]
fn a_stage_left_out_by_the_selection_is_skipped_until_a_resume_decides_again() {
    let mut m = manifest("in_progress");
    let selection = SelectionRecord {
        only: vec!["b".into()],
        no_deps: true,
        skip: Vec::new(),
        from: None,
        selected: vec!["b".into()],
    };
    m.apply(ManifestUpdate::StageNotSelected {
        index: 1,
        at: "T1".into(),
        reason: "Skipped: not selected (--only b)".into(),
    })
    .expect("a pending stage can be left out");
    let a = &m.commands[0];
    assert_eq!(a.status, CommandStatus::Skipped);
    assert_eq!(a.outcome.as_deref(), Some("not_selected"));
    assert_eq!(
        a.skip_reason.as_deref(),
        Some("Skipped: not selected (--only b)")
    );
    assert_eq!(a.summary, a.skip_reason);
    // Only a pending stage can be left out.
    assert!(m
        .apply(ManifestUpdate::StageNotSelected {
            index: 1,
            at: "T2".into(),
            reason: "again".into(),
        })
        .is_err());
    m.apply(ManifestUpdate::RunFinished {
        at: "T3".into(),
        event: RunEvent::Cancel,
        status_detail: Some("run-canceled".into()),
        summary: None,
    })
    .expect("end");
    m.apply(ManifestUpdate::RunResumed {
        at: "T4".into(),
        event: ResumeEvent {
            timestamp: "T4".into(),
            actor: "cli".into(),
            reason: "r".into(),
            outcome: "accepted".into(),
            detail: None,
        },
        runner_pid: 1,
        runtime: RuntimeRecord {
            requested: RuntimeMode::Cli,
            mode: RuntimeMode::Cli,
            fallback: RuntimeFallback {
                occurred: false,
                code: None,
                reason: None,
                from_mode: None,
                to_mode: None,
                checked_at: "T4".into(),
            },
            source: "default".into(),
        },
        plan_target_id: None,
        rerun: Vec::new(),
        selection: Some(selection.clone()),
        fail_fast: Some(false),
    })
    .expect("resume");
    // Back to pending: the resumed runner's scheduler records again what its selection
    // leaves out (it may have been given another one).
    assert_eq!(m.commands[0].status, CommandStatus::Pending);
    assert_eq!(m.commands[0].outcome, None);
    assert_eq!(m.commands[0].skip_reason, None);
    assert_eq!(m.commands[1].status, CommandStatus::Pending);
    assert_eq!(
        m.selection.as_ref(),
        Some(&selection),
        "the runner's selection"
    );
    assert_eq!(m.fail_fast, Some(false), "the runner's failure policy");
}
