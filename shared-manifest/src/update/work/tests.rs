//! `Manifest::apply` for loop and delivery updates: the record follows the tables, the stall
//! and budget rules hold, and refused updates change nothing.

use super::*;
use crate::document::Document;
use crate::schema::ChildRun;
use crate::state::CommandStatus;
use crate::update::ManifestUpdate;

fn manifest(status: &str) -> Manifest {
    crate::update::tests::manifest_of(status, &["fix"])
}

fn settings(max: u32) -> LoopSettings {
    LoopSettings {
        verify: "gate".into(),
        max_iterations: max,
        max_wall_clock_ms: None,
        stop_when_unchanged: true,
    }
}

fn up(change: LoopChange) -> ManifestUpdate {
    ManifestUpdate::Loop(Box::new(LoopUpdate {
        index: 1,
        at: "T".into(),
        change,
    }))
}

fn snap(tree: &str) -> LoopChange {
    LoopChange::SnapshotTaken(SnapshotRecord {
        kind: "git".into(),
        head: None,
        branch: None,
        tree: tree.into(),
        dirty: None,
        taken_at: "T".into(),
        diff: None,
    })
}

fn build() -> LoopChange {
    LoopChange::BuildEnded(BuildRecord {
        started_at: "T".into(),
        completed_at: "T".into(),
        outcome: "exited".into(),
        succeeded: true,
        exit_code: Some(0),
        signal: None,
        summary: "ok".into(),
        duration_ms: 1,
        log_path: "b.ndjson".into(),
        attempts: 1,
    })
}

fn child(id: &str) -> LoopChange {
    LoopChange::VerifyStarted(ChildRun {
        run_id: id.into(),
        pipeline_id: "gate".into(),
        status: RunStatus::InProgress,
        manifest: format!("{id}/manifest.json"),
    })
}

fn apply_all(m: &mut Manifest, changes: Vec<LoopChange>) {
    for c in changes {
        let shown = format!("{c:?}");
        m.apply(up(c)).unwrap_or_else(|e| panic!("{shown}: {e}"));
    }
}

fn rec(m: &Manifest) -> &LoopRecord {
    m.commands[0].loop_record.as_ref().expect("a loop record")
}

fn began(start: LoopStart) -> LoopChange {
    LoopChange::Began {
        command: "make fix".into(),
        start,
    }
}

fn iteration(before: &str, after: &str, id: &str) -> Vec<LoopChange> {
    vec![
        snap(before),
        LoopChange::BuildStarted {
            feedback: None,
            log_path: "b.ndjson".into(),
        },
        build(),
        snap(after),
        child(id),
    ]
}

#[test]
fn two_iterations_then_passed_are_recorded() {
    let mut m = manifest("in_progress");
    apply_all(
        &mut m,
        vec![began(LoopStart::Fresh {
            settings: settings(3),
            deadline: None,
        })],
    );
    assert_eq!(m.commands[0].status, CommandStatus::Running);
    assert_eq!(
        m.commands[0].summary.as_deref(),
        Some("iteration 1/3: snapshot before the build")
    );
    let mut first = iteration("t0", "t1", "v1");
    first.push(LoopChange::VerifyEnded {
        status: RunStatus::Failed,
    });
    first.push(LoopChange::FeedbackWritten(FeedbackRef {
        from_iteration: 1,
        json: "f1.json".into(),
        markdown: "f1.md".into(),
    }));
    first.push(LoopChange::NextIteration);
    apply_all(&mut m, first);
    assert_eq!(
        m.commands[0].summary.as_deref(),
        Some("iteration 2/3: snapshot before the build")
    );
    let mut second = iteration("t1", "t2", "v2");
    second.push(LoopChange::VerifyEnded {
        status: RunStatus::Succeeded,
    });
    apply_all(&mut m, second);
    let r = rec(&m);
    assert_eq!(r.state(), LoopPhase::Passed);
    assert_eq!(r.result, Some(LoopResult::Passed));
    assert_eq!(r.iterations.len(), 2);
    assert_eq!(r.iterations[0].end.as_deref(), Some("failed"));
    assert_eq!(r.iterations[0].changed, Some(true));
    assert_eq!(r.iterations[1].end.as_deref(), Some("passed"));
    assert_eq!(
        r.iterations[1].verify.as_ref().map(|v| v.run_id.as_str()),
        Some("v2")
    );
    assert_eq!(m.commands[0].sub_run_id.as_deref(), Some("v2"));
    let children: Vec<(&str, RunStatus)> = m
        .child_runs
        .iter()
        .map(|c| (c.run_id.as_str(), c.status))
        .collect();
    assert_eq!(
        children,
        [("v1", RunStatus::Failed), ("v2", RunStatus::Succeeded)]
    );
    assert_eq!(rec(&m).progress(), "iteration 2/3: passed");
}

#[test]
fn an_unchanged_build_stalls_only_after_a_failed_verify() {
    let mut m = manifest("in_progress");
    apply_all(
        &mut m,
        vec![began(LoopStart::Fresh {
            settings: settings(3),
            deadline: None,
        })],
    );
    // Iteration 1 changes nothing: no verify has failed yet, so it is verified.
    apply_all(&mut m, iteration("t0", "t0", "v1"));
    assert_eq!(rec(&m).state(), LoopPhase::Active(LoopStep::Verifying));
    apply_all(
        &mut m,
        vec![
            LoopChange::VerifyEnded {
                status: RunStatus::Failed,
            },
            LoopChange::NextIteration,
            snap("t0"),
            LoopChange::BuildStarted {
                feedback: None,
                log_path: "b".into(),
            },
            build(),
            snap("t0"),
        ],
    );
    let r = rec(&m);
    assert_eq!(r.state(), LoopPhase::Stalled);
    assert_eq!(r.iterations[1].end.as_deref(), Some("stalled"));
    assert_eq!(r.iterations[1].changed, Some(false));
}

#[test]
fn the_budget_rule_and_a_new_round() {
    let mut m = manifest("in_progress");
    apply_all(
        &mut m,
        vec![began(LoopStart::Fresh {
            settings: settings(1),
            deadline: None,
        })],
    );
    let mut only = iteration("t0", "t1", "v1");
    only.push(LoopChange::VerifyEnded {
        status: RunStatus::Failed,
    });
    apply_all(&mut m, only);
    // The last iteration of the budget cannot go on.
    let before = m.clone();
    assert!(m.apply(up(LoopChange::NextIteration)).is_err());
    assert_eq!(m, before, "a refused update changes nothing");
    apply_all(&mut m, vec![LoopChange::Stopped(LoopStop::BudgetSpent)]);
    assert_eq!(rec(&m).state(), LoopPhase::Exhausted);
    assert_eq!(rec(&m).progress(), "iteration 1/1: exhausted");
    // The run is resumed: a new round numbers on, with a new budget.
    m.commands[0].status = CommandStatus::Pending;
    apply_all(
        &mut m,
        vec![began(LoopStart::NewRound {
            settings: settings(2),
            deadline: Some("D".into()),
        })],
    );
    let r = rec(&m);
    assert_eq!((r.iteration, r.limit, r.round), (2, 3, 2));
    assert_eq!(r.iterations.len(), 2);
    assert_eq!(r.iterations[1].round, 2);
    assert_eq!(r.state(), LoopPhase::Active(LoopStep::SnapshotBefore));
}

#[test]
fn an_interrupted_loop_resumes_in_its_step() {
    let mut m = manifest("in_progress");
    apply_all(
        &mut m,
        vec![began(LoopStart::Fresh {
            settings: settings(3),
            deadline: None,
        })],
    );
    apply_all(&mut m, iteration("t0", "t1", "v1"));
    apply_all(&mut m, vec![LoopChange::Stopped(LoopStop::Cancelled)]);
    assert_eq!(rec(&m).state(), LoopPhase::Interrupted(LoopStep::Verifying));
    assert_eq!(rec(&m).result, Some(LoopResult::Cancelled));
    // A new round is only for verdicts.
    m.commands[0].status = CommandStatus::Pending;
    let before = m.clone();
    let refused = m.apply(up(began(LoopStart::NewRound {
        settings: settings(3),
        deadline: None,
    })));
    assert!(refused.is_err());
    assert_eq!(m, before, "the stage did not start");
    apply_all(&mut m, vec![began(LoopStart::Resume)]);
    let r = rec(&m);
    assert_eq!(r.state(), LoopPhase::Active(LoopStep::Verifying));
    assert_eq!(r.iteration, 1);
    assert_eq!(r.iterations.len(), 1, "no iteration was added or repeated");
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut m = manifest("in_progress");
    apply_all(
        &mut m,
        vec![began(LoopStart::Fresh {
            settings: settings(3),
            deadline: None,
        })],
    );
    for wrong in [
        child("v"),
        build(),
        LoopChange::VerifyEnded {
            status: RunStatus::Succeeded,
        },
        LoopChange::NextIteration,
        LoopChange::BuildStarted {
            feedback: None,
            log_path: "b".into(),
        },
    ] {
        let before = m.clone();
        let shown = format!("{wrong:?}");
        assert!(m.apply(up(wrong)).is_err(), "{shown}");
        assert_eq!(m, before, "{shown}");
    }
    // A second fresh start of the same stage is refused too.
    m.commands[0].status = CommandStatus::Pending;
    assert!(m
        .apply(up(began(LoopStart::Fresh {
            settings: settings(3),
            deadline: None,
        })))
        .is_err());
}

fn step(position: usize, event: DeliveryEvent, patch: DeliveryPatch) -> ManifestUpdate {
    ManifestUpdate::Delivery(Box::new(DeliveryUpdate::Step {
        position,
        at: "T".into(),
        event,
        patch: Box::new(patch),
    }))
}

#[test]
fn deliveries_follow_their_table_and_only_for_a_succeeded_run() {
    let mut m = manifest("in_progress");
    let planned = ManifestUpdate::Delivery(Box::new(DeliveryUpdate::Planned {
        kinds: vec!["bundle".into(), "github".into()],
    }));
    m.apply(planned.clone()).expect("planned");
    assert!(
        m.apply(step(0, DeliveryEvent::Bundle, DeliveryPatch::default()))
            .is_err(),
        "a run still in progress delivers nothing"
    );
    m.status = RunStatus::Succeeded;
    use DeliveryEvent as E;
    for (pos, ev) in [
        (0, E::Bundle),
        (0, E::Bundled),
        (1, E::Commit),
        (1, E::Push),
        (1, E::OpenPr),
    ] {
        m.apply(step(pos, ev, DeliveryPatch::default()))
            .expect("step");
    }
    m.apply(step(
        1,
        E::PrOpened,
        DeliveryPatch {
            url: Some("https://example.com/pr/7".into()),
            number: Some(7),
            ..DeliveryPatch::default()
        },
    ))
    .expect("opened");
    let d: Vec<(&str, &str)> = m
        .delivery
        .iter()
        .map(|d| (d.kind.as_str(), d.status.as_str()))
        .collect();
    assert_eq!(d, [("bundle", "succeeded"), ("github", "succeeded")]);
    assert_eq!(m.delivery[1].number, Some(7));
    assert!(m.delivery[1].completed_at.is_some());
    // Planned again (a resume) keeps what was recorded.
    m.apply(planned).expect("planned again");
    assert_eq!(
        m.delivery[1].url.as_deref(),
        Some("https://example.com/pr/7")
    );
    // Delivered is final.
    assert!(m
        .apply(step(1, E::Retry, DeliveryPatch::default()))
        .is_err());
}
