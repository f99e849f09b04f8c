//! Approval stages end to end: approve, reject, an actor not allowed, timeouts with each
//! `onTimeout`, a decision made while no runner holds the run, two approvers at once, and the
//! waiting state in `status`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::control_util::{
    assert_valid, awaiting_approval, events, finish, kill9, kill_leftovers, ms_between, spawn,
    the_run, ts, wait_for_record,
};
use crate::harness::TestEnv;

/// `build`, then the approval `gate` (approvers alice and bob), then `deploy`.
fn gated(extra: &str) -> TestEnv {
    TestEnv::new().config(&format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
          {{"kind":"command","id":"build","command":"echo built"}},
          {{"kind":"approval","id":"gate","title":"Release gate","prompt":"Ship build 42?","approvers":["alice","bob"]{extra}}},
          {{"kind":"command","id":"deploy","command":"echo deployed > deployed"}}]}}]}}"#
    ))
}

fn start_bg(env: &TestEnv) -> (std::process::Child, String) {
    let child = spawn(env, &["start", "p", "--format", "json"]);
    let id = the_run(env);
    (child, id)
}

#[test]
fn approve_records_the_peers_fields_and_the_run_goes_on() {
    let env = gated("");
    let (child, id) = start_bg(&env);
    let waiting = awaiting_approval(&env, &id, 1);
    assert_valid(&env, &waiting);
    assert_eq!(
        waiting["commands"][2]["status"], "pending",
        "dependents wait"
    );
    let ok = env.cli([
        "approve", "--run", &id, "--stage", "gate", "--actor", "alice", "--reason", "lgtm",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(ok.stderr.contains("approved stage `gate`"), "{}", ok.stderr);
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.path().join("deployed").exists());
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "succeeded");
    let approvals = m["approvals"].as_array().expect("approvals");
    assert_eq!(approvals.len(), 1);
    let keys: Vec<&str> = approvals[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        ["actor", "timestamp", "reason"],
        "exactly the peer's fields"
    );
    assert_eq!(approvals[0]["actor"], "alice");
    assert_eq!(approvals[0]["reason"], "lgtm");
    assert_eq!(
        m["approval_decisions"],
        json!([{"stage": "gate", "stage_index": 2, "request": 1, "decision": "approved", "source": "cli"}])
    );
    let gate = &m["commands"][1];
    assert_eq!(gate["status"], "succeeded");
    assert_eq!(gate["kind"], "command");
    assert_eq!(gate["command"], Value::Null);
    assert_eq!(gate["summary"], "Approved by alice: lgtm");
    assert_eq!(gate["approval"]["state"], "approved");
    assert_eq!(gate["approval"]["prompt"], "Ship build 42?");
    let names: Vec<String> = events(&env, &id)
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_owned())
        .collect();
    let requested = names.iter().position(|n| n == "approval_requested");
    let decided = names.iter().position(|n| n == "approval_decided");
    assert!(
        requested.is_some() && decided > requested,
        "approval_requested then approval_decided: {names:?}"
    );
    let ev = events(&env, &id);
    let decided = ev
        .iter()
        .find(|e| e["event"] == "approval_decided")
        .expect("decided");
    assert_eq!(decided["payload"]["actor"], "alice");
    assert_eq!(decided["payload"]["decision"], "approved");
    assert_eq!(decided["payload"]["source"], "cli");
    // Decided: approving again is a conflict.
    let again = env.cli(["approve", "--run", &id, "--stage", "gate", "--actor", "bob"]);
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(again.stderr.contains("not waiting"), "{}", again.stderr);
}

#[test]
fn reject_fails_the_stage_and_its_on_failure_applies() {
    // skip-dependents: `deploy` is skipped, the independent `notes` still runs.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","concurrency":2,"stages":[
          {"kind":"approval","id":"gate","prompt":"Ship?","onFailure":"skip-dependents","dependsOn":[]},
          {"kind":"command","id":"deploy","command":"touch deployed","dependsOn":["gate"]},
          {"kind":"command","id":"notes","command":"sleep 0.5; touch notes","dependsOn":[]}]}]}"#,
    );
    let (child, id) = start_bg(&env);
    awaiting_approval(&env, &id, 0);
    // Without --stage: the one approval waiting.
    let no = env.cli([
        "reject",
        "--run",
        &id,
        "--actor",
        "carol",
        "--reason",
        "not today",
    ]);
    assert_eq!(no.code, 0, "{}", no.stderr);
    let out = finish(child);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "stage:gate:failed");
    assert_eq!(m["commands"][0]["status"], "failed");
    assert_eq!(m["commands"][0]["summary"], "Rejected by carol: not today");
    assert_eq!(m["commands"][1]["status"], "skipped");
    assert_eq!(m["commands"][2]["status"], "succeeded");
    assert!(!env.path().join("deployed").exists());
    assert!(env.path().join("notes").exists());
    assert_eq!(
        m["approvals"][0]["actor"], "carol",
        "anyone may decide without approvers"
    );
    assert_eq!(m["approval_decisions"][0]["decision"], "rejected");
}

#[test]
fn an_actor_not_allowed_is_refused_and_nothing_is_recorded() {
    let env = gated("");
    let (child, id) = start_bg(&env);
    awaiting_approval(&env, &id, 1);
    let before = env.manifest(&id);
    let no = env.cli(["approve", "--run", &id, "--actor", "mallory"]);
    assert_eq!(no.code, 2, "{}", no.stderr);
    assert!(
        no.stderr
            .contains("`mallory` may not decide stage `gate` (approvers: `alice`, `bob`)"),
        "{}",
        no.stderr
    );
    assert!(
        !env.run_dir(&id).join("approvals").exists(),
        "no decision file"
    );
    let blank = env.cli(["approve", "--run", &id, "--actor", " "]);
    assert_eq!(blank.code, 2, "{}", blank.stderr);
    let unknown = env.cli([
        "approve", "--run", &id, "--stage", "nope", "--actor", "alice",
    ]);
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    let command = env.cli([
        "approve", "--run", &id, "--stage", "build", "--actor", "alice",
    ]);
    assert_eq!(command.code, 2, "{}", command.stderr);
    assert!(
        command.stderr.contains("not an approval stage"),
        "{}",
        command.stderr
    );
    let not_yet = env.cli([
        "approve", "--run", &id, "--stage", "deploy", "--actor", "alice",
    ]);
    assert_eq!(not_yet.code, 2, "a command stage: {}", not_yet.stderr);
    let after = env.manifest(&id);
    assert_eq!(before["approvals"], after["approvals"]);
    assert_eq!(after["commands"][1]["approval"]["state"], "waiting");
    let ok = env.cli(["approve", "--run", &id, "--actor", "bob"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(finish(child).code, 0);
    let m = env.manifest(&id);
    assert_eq!(m["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["approvals"][0]["actor"], "bob");
    assert_eq!(m["commands"][1]["summary"], "Approved by bob.");
}

#[test]
fn a_stage_not_reached_yet_is_not_waiting() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"slow","command":"sleep 1"},
          {"kind":"approval","id":"gate","prompt":"Ship?","timeoutMs":100,"onTimeout":"approve"}]}]}"#,
    );
    let (child, id) = start_bg(&env);
    let early = env.cli([
        "approve", "--run", &id, "--stage", "gate", "--actor", "alice",
    ]);
    assert_eq!(early.code, 3, "{}", early.stderr);
    assert!(early.stderr.contains("not reached yet"), "{}", early.stderr);
    let none = env.cli(["approve", "--run", &id, "--actor", "alice"]);
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(
        none.stderr.contains("no approval waiting"),
        "{}",
        none.stderr
    );
    assert_eq!(finish(child).code, 0);
}

#[test]
fn a_timeout_decides_by_on_timeout() {
    // No `onTimeout` is `reject`.
    for (on_timeout, approved) in [("", false), ("reject", false), ("approve", true)] {
        let extra = if on_timeout.is_empty() {
            r#","timeoutMs":400"#.to_owned()
        } else {
            format!(r#","timeoutMs":400,"onTimeout":"{on_timeout}""#)
        };
        let env = gated(&extra);
        let out = env.start("p", &[]);
        assert_eq!(
            out.code,
            if approved { 0 } else { 1 },
            "{on_timeout:?}: {}",
            out.stderr
        );
        let m = env.manifest(&out.run_id());
        assert_valid(&env, &m);
        let gate = &m["commands"][1];
        let (status, verb) = if approved {
            ("succeeded", "Approved")
        } else {
            ("failed", "Rejected")
        };
        assert_eq!(gate["status"], status, "{on_timeout:?}");
        assert_eq!(
            gate["summary"],
            format!("{verb} by timeout: no decision within 400ms")
        );
        assert_eq!(m["approvals"][0]["actor"], "timeout");
        assert_eq!(m["approval_decisions"][0]["source"], "timeout");
        assert_eq!(env.path().join("deployed").exists(), approved);
        if !approved {
            assert_eq!(
                m["commands"][2]["status"], "pending",
                "abort: deploy never ran"
            );
        }
        let waited = ms_between(ts(&gate["started_at"]), ts(&gate["completed_at"]));
        assert!((350..5000).contains(&waited), "waited {waited}ms");
    }
}

#[test]
fn a_decision_made_while_no_runner_holds_the_run_is_honoured_by_resume() {
    let env = gated("");
    let (child, id) = start_bg(&env);
    awaiting_approval(&env, &id, 1);
    kill9(child);
    let ok = env.cli([
        "approve",
        "--run",
        &id,
        "--actor",
        "alice",
        "--reason",
        "ok while down",
    ]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert!(
        ok.stderr.contains("no runner holds the run"),
        "{}",
        ok.stderr
    );
    let decided_at = std::time::SystemTime::now();
    // Durable and create-only: a second decision for the same request loses.
    let late = env.cli(["reject", "--run", &id, "--actor", "bob"]);
    assert_eq!(late.code, 3, "{}", late.stderr);
    assert!(
        late.stderr.contains("already decided: approved by `alice`"),
        "{}",
        late.stderr
    );
    std::thread::sleep(Duration::from_millis(300));
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["approvals"].as_array().map(Vec::len), Some(1));
    assert_eq!(m["approvals"][0]["actor"], "alice");
    assert!(
        ms_between(ts(&m["approvals"][0]["timestamp"]), decided_at) >= 0,
        "the time of the decision, not of the resume"
    );
    assert_eq!(
        m["commands"][1]["approval"]["request"], 1,
        "the same request"
    );
    assert!(env.path().join("deployed").exists());
    kill_leftovers(&id);
}

#[test]
fn a_resumed_wait_keeps_its_original_deadline() {
    let env = gated(r#","timeoutMs":2500,"onTimeout":"approve""#);
    let (child, id) = start_bg(&env);
    let waiting = awaiting_approval(&env, &id, 1);
    let deadline = waiting["commands"][1]["approval"]["deadline"].clone();
    kill9(child);
    std::thread::sleep(Duration::from_millis(800));
    let out = env.cli(["resume", "--run", &id]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    let approval = &m["commands"][1]["approval"];
    assert_eq!(approval["deadline"], deadline, "kept across the resume");
    assert_eq!(approval["source"], "timeout");
    // Decided at the original deadline, not 2.5 s after the resume.
    let late = ms_between(ts(&deadline), ts(&approval["decided_at"]));
    assert!(
        (0..1500).contains(&late),
        "decided {late}ms after the deadline"
    );
}

#[test]
fn two_approvers_at_once_exactly_one_wins() {
    let env = gated("");
    let (child, id) = start_bg(&env);
    awaiting_approval(&env, &id, 1);
    let a = spawn(&env, &["approve", "--run", &id, "--actor", "alice"]);
    let b = spawn(
        &env,
        &["reject", "--run", &id, "--actor", "bob", "--reason", "no"],
    );
    let (a, b) = (finish(a), finish(b));
    let mut codes = [a.code, b.code];
    codes.sort_unstable();
    assert_eq!(codes, [0, 3], "alice: {}\nbob: {}", a.stderr, b.stderr);
    let loser = if a.code == 3 { &a } else { &b };
    assert!(loser.stderr.contains("already decided"), "{}", loser.stderr);
    let out = finish(child);
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["approvals"].as_array().map(Vec::len), Some(1));
    let winner = if a.code == 0 { "alice" } else { "bob" };
    assert_eq!(m["approvals"][0]["actor"], winner);
    assert_eq!(out.code, if winner == "alice" { 0 } else { 1 });
}

#[test]
fn waiting_shows_in_status_and_watch_and_the_heartbeat_goes_on() {
    let env = gated("");
    let (child, id) = start_bg(&env);
    let first = awaiting_approval(&env, &id, 1);
    let text = env.cli(["status", "--run", &id]);
    assert!(
        text.stdout.contains(
            "[waiting for approval] Release gate — Ship build 42? (approvers: alice, bob)"
        ),
        "{}",
        text.stdout
    );
    let json = env.cli(["status", "--run", &id, "--format", "json"]);
    let v: Value = serde_json::from_str(&json.stdout).expect("json");
    assert_eq!(v["commands"][1]["waiting"], "approval");
    assert_eq!(v["commands"][1]["approval"]["prompt"], "Ship build 42?");
    assert_eq!(v["activity"]["runner_alive"], true);
    let watch = spawn(
        &env,
        &[
            "status",
            "--run",
            &id,
            "--watch",
            "--interval",
            "0.2",
            "--format",
            "json",
        ],
    );
    // The heartbeat (every 5 s) keeps going while the run waits.
    let beat = first["heartbeat_at"].clone();
    wait_for_record(&env, &id, "a later heartbeat", |m| {
        m["heartbeat_at"] != beat && m["commands"][1]["approval"]["state"] == "waiting"
    });
    assert_eq!(
        env.cli(["approve", "--run", &id, "--actor", "alice"]).code,
        0
    );
    let run = finish(child);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Off a terminal the progress lines say what the stage waits for and how to decide.
    let expected = format!(
        "[02/03] gate: waiting for approval — Ship build 42? (approvers: alice, bob; \
         `codex-orchestrator approve --run {id} --stage gate --actor NAME`)"
    );
    assert!(
        run.stderr.lines().any(|l| l == expected),
        "{expected}\nnot in:\n{}",
        run.stderr
    );
    let watched = finish(watch);
    let lines: Vec<Value> = watched
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("ndjson"))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["commands"][1]["waiting"] == "approval"),
        "{}",
        watched.stdout
    );
    assert_eq!(
        lines.last().map(|l| l["status"].clone()),
        Some(json!("succeeded"))
    );
}

#[test]
fn plan_shows_approvals_locks_and_the_budget() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","maxWallClockMs":60000,"stages":[
          {"kind":"approval","id":"gate","prompt":"Ship?","approvers":["alice"],"timeoutMs":5000},
          {"kind":"command","id":"deploy","command":"true","locks":["prod","db"]}]}]}"#,
    );
    let out = env.cli(["plan", "p", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).expect("json");
    let gate = &v["stages"][0];
    assert_eq!(gate["kind"], "approval");
    assert_eq!(gate["prompt"], "Ship?");
    assert_eq!(gate["approvers"], json!(["alice"]));
    assert_eq!(gate["timeoutMs"], 5000);
    assert_eq!(gate["onTimeout"], "reject");
    assert_eq!(v["stages"][1]["locks"], json!(["db", "prod"]), "sorted");
    assert_eq!(v["pipeline"]["maxWallClockMs"], 60000);
    let text = env.cli(["plan", "p"]);
    assert!(
        text.stdout.contains("gate — (approval: Ship?)"),
        "{}",
        text.stdout
    );
    assert!(!env.runs_exists());
}

#[test]
fn a_waiting_approval_takes_no_place_of_the_concurrency_cap() {
    // Concurrency 1, the approval first in the plan: the independent stage still runs (and
    // its dependent too) while the approval waits.
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","concurrency":1,"stages":[
          {"kind":"approval","id":"gate","prompt":"Ship?","dependsOn":[]},
          {"kind":"command","id":"work","command":"echo w > worked","dependsOn":[]},
          {"kind":"command","id":"more","command":"echo m > more","dependsOn":["work"]}]}]}"#,
    );
    let (child, id) = start_bg(&env);
    awaiting_approval(&env, &id, 0);
    let m = wait_for_record(&env, &id, "the other stages to finish", |m| {
        m["commands"][1]["status"] == "succeeded" && m["commands"][2]["status"] == "succeeded"
    });
    assert_eq!(m["commands"][0]["status"], "running", "still waiting");
    assert!(env.path().join("more").exists());
    let ok = env.cli(["approve", "--run", &id, "--actor", "alice"]);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
}
