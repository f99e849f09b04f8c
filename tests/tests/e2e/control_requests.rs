//! The peer's `control.json` actions, written by the test exactly as the peer's control server
//! writes them: `pause` (no new stage starts, running ones finish), `resume` (stages start
//! again), `fail` (stopped and recorded failed), with the `control_seq` rule; and our `pause` /
//! `unpause` verbs, which write the same file.

use std::time::Duration;

use serde_json::{json, Value};

use crate::control_util::{
    assert_valid, events, finish, ms_between, spawn, the_run, ts, wait_for_record,
};
use crate::harness::TestEnv;

/// `a` runs until `go` exists, then `b` and `c` (strictly in order).
fn three() -> TestEnv {
    TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"while [ ! -f go ]; do sleep 0.05; done"},
          {"kind":"command","id":"b","command":"date +%s%N > b.ran"},
          {"kind":"command","id":"c","command":"touch c.ran"}]}]}"#,
    )
}

/// The peer's `ControlStateStore` output for one action.
fn peer_control(env: &TestEnv, id: &str, seq: u64, action: &str, reason: Option<&str>) {
    let doc = json!({
        "run_id": id,
        "control_seq": seq,
        "latest_action": {
            "request_id": format!("req-{seq}"),
            "intent_id": format!("intent-{seq}"),
            "requested_by": "tester",
            "requested_at": "2026-01-01T00:00:00.000Z",
            "action": action,
            "reason": reason,
            "transport": null,
            "actor_id": null,
            "actor_source": null,
            "transport_principal": null,
        },
        "feature_toggles": null,
        "transport_mutation": null,
    });
    // The peer writes the file in place; a temp file and a rename keep the test's own write
    // whole (the runner also copes with a torn one: it looks again later).
    let dir = env.run_dir(id);
    std::fs::write(
        dir.join("control.tmp"),
        serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .expect("write");
    std::fs::rename(dir.join("control.tmp"), dir.join("control.json")).expect("rename");
}

fn event_names(env: &TestEnv, id: &str) -> Vec<String> {
    events(env, id)
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn pause_holds_new_stages_and_resume_lets_them_start() {
    let env = three();
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let id = the_run(&env);
    wait_for_record(&env, &id, "`a` running", |m| {
        m["commands"][0]["status"] == "running"
    });
    peer_control(&env, &id, 1, "pause", None);
    // `a` is running: it finishes, then nothing new starts.
    std::fs::write(env.path().join("go"), "").expect("go");
    let paused = wait_for_record(&env, &id, "the pause", |m| {
        m["commands"][0]["status"] == "succeeded" && !m["paused"].is_null()
    });
    assert_valid(&env, &paused);
    assert_eq!(
        paused["status"], "in_progress",
        "the peer's status for a paused run"
    );
    assert_eq!(paused["status_detail"], "paused");
    assert_eq!(paused["paused"]["control_seq"], 1);
    assert_eq!(paused["paused"]["requested_by"], "tester");
    assert_eq!(
        paused["summary"],
        "Run paused by control request (intent_id=intent-1, request_id=req-1)."
    );
    let status = env.cli(["status", "--run", &id, "--format", "json"]);
    let v: Value = serde_json::from_str(&status.stdout).expect("json");
    assert_eq!(v["phase"], "paused");
    std::thread::sleep(Duration::from_millis(700));
    let still = crate::control_util::manifest_now(&env, &id).expect("manifest");
    assert_eq!(
        still["commands"][1]["status"], "pending",
        "no stage starts while paused"
    );
    assert!(!env.path().join("b.ran").exists());
    let resumed_at = std::time::SystemTime::now();
    peer_control(&env, &id, 2, "resume", None);
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["status_detail"], Value::Null);
    assert!(m["paused"].is_null());
    assert!(
        ms_between(resumed_at, ts(&m["commands"][1]["started_at"])) >= 0,
        "b started after the resume"
    );
    assert_eq!(
        m["summary"],
        "Run paused by control request (intent_id=intent-1, request_id=req-1).\nRun resumed by control request (intent_id=intent-2, request_id=req-2)."
    );
    let names = event_names(&env, &id);
    for e in ["pause_requested", "run_paused", "run_resumed"] {
        assert!(names.contains(&e.to_owned()), "{e} in {names:?}");
    }
    let ev = events(&env, &id);
    let paused = ev
        .iter()
        .find(|e| e["event"] == "run_paused")
        .expect("run_paused");
    assert_eq!(paused["payload"]["reason"], "control_request");
    assert_eq!(paused["payload"]["request_id"], "req-1");
    let requested = ev
        .iter()
        .find(|e| e["event"] == "pause_requested")
        .expect("pause_requested");
    assert_eq!(requested["payload"]["requested_by"], "tester");
}

#[test]
fn fail_stops_the_run_and_records_it_failed_with_the_peers_detail() {
    for (reason, detail) in [
        (Some("because-fail"), "because-fail"),
        (None, "control_failed"),
    ] {
        let env = TestEnv::new()
            .config(
                r#"{"pipelines":[{"id":"p","concurrency":2,"stages":[
                  {"kind":"command","id":"a","command":"touch a.ran"},
                  {"kind":"command","id":"long","command":"sleep 30","dependsOn":["a"]},
                  {"kind":"command","id":"b","command":"sleep 3","dependsOn":["a"]},
                  {"kind":"command","id":"c","command":"touch c.ran","dependsOn":["b"]}]}]}"#,
            )
            .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "300");
        let child = spawn(&env, &["start", "p", "--format", "json"]);
        let id = the_run(&env);
        wait_for_record(&env, &id, "`long` running", |m| {
            m["commands"][1]["status"] == "running"
        });
        peer_control(&env, &id, 1, "fail", reason);
        let out = finish(child);
        // Seen within a second, while `b` still runs: `long` is stopped, `c` never starts.
        assert_eq!(out.code, 1, "{}", out.stderr);
        let m = env.manifest(&id);
        assert_valid(&env, &m);
        assert_eq!(m["status"], "failed");
        assert_eq!(m["status_detail"], detail);
        assert_eq!(m["commands"][1]["status"], "failed");
        assert_eq!(m["commands"][1]["outcome"], "cancelled");
        assert!(
            m["commands"][1]["summary"]
                .as_str()
                .is_some_and(|s| s.starts_with("Stopped: the run was failed by a control request")),
            "{}",
            m["commands"][1]["summary"]
        );
        assert_eq!(m["commands"][3]["status"], "pending");
        assert!(!env.path().join("c.ran").exists());
        assert!(
            m["summary"].as_str().is_some_and(|s| s.starts_with(
                "Run failed by control request (intent_id=intent-1, request_id=req-1)."
            )),
            "{}",
            m["summary"]
        );
        assert!(event_names(&env, &id).contains(&"fail_requested".to_owned()));
    }
}

#[test]
fn requests_older_than_the_runner_are_not_for_it() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"true"},
          {"kind":"command","id":"b","command":"test -f fixed"}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1);
    let id = out.run_id();
    // A pause left in the file from before: the resumed run must not pause for it.
    peer_control(&env, &id, 3, "pause", None);
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let resumed = env.cli(["resume", "--run", &id]);
    assert_eq!(
        resumed.code, 0,
        "not paused by the old request: {}",
        resumed.stderr
    );
    let m = env.manifest(&id);
    assert!(m["paused"].is_null());
    assert!(!event_names(&env, &id).contains(&"run_paused".to_owned()));
}

#[test]
fn pause_and_unpause_verbs_write_the_peers_file() {
    let env = three();
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let id = the_run(&env);
    let p = env.cli([
        "pause",
        "--run",
        &id,
        "--actor",
        "ops",
        "--reason",
        "deploy freeze",
    ]);
    assert_eq!(p.code, 0, "{}", p.stderr);
    let control: Value = crate::harness::read_json(&env.run_dir(&id).join("control.json"));
    assert_eq!(control["control_seq"], 1);
    assert_eq!(control["latest_action"]["action"], "pause");
    assert_eq!(control["latest_action"]["requested_by"], "ops");
    assert_eq!(control["run_id"], id.as_str());
    std::fs::write(env.path().join("go"), "").expect("go");
    let paused = wait_for_record(&env, &id, "the pause", |m| !m["paused"].is_null());
    assert_eq!(paused["status_detail"], "deploy freeze");
    let text = env.cli(["status", "--run", &id]);
    assert!(text.stdout.contains("Paused: since"), "{}", text.stdout);
    let twice = env.cli(["pause", "--run", &id]);
    assert_eq!(twice.code, 3, "{}", twice.stderr);
    let u = env.cli(["unpause", "--run", &id]);
    assert_eq!(u.code, 0, "{}", u.stderr);
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let control: Value = crate::harness::read_json(&env.run_dir(&id).join("control.json"));
    assert_eq!(control["control_seq"], 2);
    assert_eq!(control["latest_action"]["action"], "resume");
    let ended = env.cli(["pause", "--run", &id]);
    assert_eq!(ended.code, 3, "{}", ended.stderr);
    assert!(ended.stderr.contains("already ended"), "{}", ended.stderr);
    let not_paused = env.cli(["unpause", "--run", &id]);
    assert_eq!(not_paused.code, 3);
}

/// Time paused counts against the run's wall-clock budget (README: "Time spent waiting for an
/// approval or paused counts"): a run paused past its budget ends `failed`/`run-timeout`
/// while still paused, the stages that never started stay pending, and the runner exits
/// instead of waiting for a resume that may never come.
#[test]
fn a_paused_run_still_runs_out_of_its_budget() {
    let env = three();
    let child = spawn(
        &env,
        &["start", "p", "--format", "json", "--max-wall-clock", "2s"],
    );
    let id = the_run(&env);
    wait_for_record(&env, &id, "`a` running", |m| {
        m["commands"][0]["status"] == "running"
    });
    peer_control(&env, &id, 1, "pause", None);
    std::fs::write(env.path().join("go"), "").expect("go");
    wait_for_record(&env, &id, "the pause", |m| {
        m["commands"][0]["status"] == "succeeded" && !m["paused"].is_null()
    });
    // No resume is ever sent: only the budget can end the run.
    let out = finish(child);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "run-timeout");
    assert_eq!(m["commands"][1]["status"], "pending", "nothing started");
    assert_eq!(m["commands"][2]["status"], "pending");
    assert!(!env.path().join("b.ran").exists());
    let budget = &m["wall_clock_budgets"][0];
    assert_eq!(budget["limit_ms"], 2000);
    let over = ms_between(ts(&budget["deadline"]), ts(&m["completed_at"]));
    assert!(
        (0..5000).contains(&over),
        "ended {over}ms after the deadline"
    );
}
