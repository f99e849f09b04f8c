//! `POST /api/runs/{id}/approvals`: the dashboard decides a waiting approval stage through the
//! path of the `approve` / `reject` verbs (recorded with source `dashboard`), under the same
//! rules: an actor not in `approvers` is refused (400) and nothing is written, the first
//! decision wins and a second one is a conflict (409), other origins are refused (403).

use serde_json::{json, Value};

use super::http::{request_with_body, Response};
use super::Server;
use crate::control_util::{assert_valid, awaiting_approval, finish, spawn, the_run};
use crate::harness::TestEnv;

/// `build`, the approval `gate` (approvers alice and bob), then `deploy`.
const CONFIG: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"build","command":"echo built"},
  {"kind":"approval","id":"gate","title":"Release gate","prompt":"Ship build 42?","approvers":["alice","bob"]},
  {"kind":"command","id":"deploy","command":"echo deployed > deployed"}]}]}"#;

fn post(server: &Server, run: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    request_with_body(
        server.addr,
        "POST",
        &format!("/api/runs/{run}/approvals"),
        &h,
        body.as_bytes(),
    )
}

fn error(r: &Response) -> String {
    r.json()["error"]
        .as_str()
        .expect("an error message")
        .to_owned()
}

#[test]
fn the_dashboard_decides_like_the_verbs_under_the_same_rules() {
    let env = TestEnv::new().config(CONFIG);
    let child = spawn(&env, &["start", "p", "--format", "json"]);
    let id = the_run(&env);
    awaiting_approval(&env, &id, 1);
    let server = Server::start(&env, &[]);
    let own = format!("http://{}", server.addr);
    let same_origin = [("Origin", own.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let decisions = env.run_dir(&id).join("approvals");

    // The run page learns what waits and what it asks.
    let stages = server.get(&format!("/api/runs/{id}/stages")).json();
    let gate = &stages["stages"][1];
    assert_eq!(gate["waiting"], "approval");
    assert_eq!(gate["approval"]["prompt"], "Ship build 42?");
    assert_eq!(gate["approval"]["approvers"], json!(["alice", "bob"]));
    assert_eq!(stages["stages"][0]["waiting"], Value::Null);

    // Refused before anything is written: another origin, an actor who may not decide, a
    // blank actor, an unknown stage, a decision that is neither, a body that is not one.
    let approve = r#"{"stage":"gate","decision":"approve","actor":"alice"}"#;
    let r = post(
        &server,
        &id,
        approve,
        &[("Origin", "http://attacker.example")],
    );
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post(
        &server,
        &id,
        r#"{"stage":"gate","decision":"approve","actor":"mallory"}"#,
        &same_origin,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        error(&r).contains("`mallory` may not decide stage `gate` (approvers: `alice`, `bob`)"),
        "{}",
        r.text()
    );
    for (body, why) in [
        (
            r#"{"decision":"approve","actor":"  "}"#,
            "must not be empty",
        ),
        (
            r#"{"stage":"nope","decision":"approve","actor":"alice"}"#,
            "no stage `nope`",
        ),
        (
            r#"{"stage":"build","decision":"approve","actor":"alice"}"#,
            "not an approval stage",
        ),
        (
            r#"{"stage":"gate","decision":"maybe","actor":"alice"}"#,
            "`approve` or `reject`",
        ),
        (r#"{"stage":"gate","actor":"alice"}"#, "decision"),
        ("not json", ""),
    ] {
        let r = post(&server, &id, body, &same_origin);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["status"], 400, "{body}: errors are JSON");
        assert!(error(&r).contains(why), "{body}: {}", r.text());
    }
    assert!(!decisions.exists(), "no decision file after the refusals");
    let m = env.manifest(&id);
    assert_eq!(m["approvals"], json!([]), "nothing recorded");
    assert_eq!(m["commands"][1]["approval"]["state"], "waiting");
    assert_eq!(
        post(
            &server,
            "2026-01-01T00-00-00-000Z-deadbeef",
            approve,
            &same_origin
        )
        .status,
        404
    );

    // Approve (no stage named: the one waiting), as a fetch from the page sends it.
    let r = post(
        &server,
        &id,
        r#"{"decision":"approve","actor":"alice","reason":"looks good"}"#,
        &same_origin,
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["stage_id"], &v["decision"], &v["actor"], &v["source"]),
        (
            &json!("gate"),
            &json!("approved"),
            &json!("alice"),
            &json!("dashboard")
        )
    );
    assert_eq!(v["runner_alive"], true);

    // A second decision for the same request loses, whoever sends it.
    let r = post(
        &server,
        &id,
        r#"{"stage":"gate","decision":"reject","actor":"bob"}"#,
        &same_origin,
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        error(&r).contains("already decided") || error(&r).contains("not waiting"),
        "{}",
        r.text()
    );

    // The runner records it and the run goes on.
    let out = finish(child);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env.path().join("deployed").exists(), "deploy ran");
    let m = env.manifest(&id);
    assert_valid(&env, &m);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(
        m["approvals"],
        json!([{"actor": "alice", "timestamp": v["timestamp"], "reason": "looks good"}])
    );
    assert_eq!(
        m["approval_decisions"],
        json!([{"stage": "gate", "stage_index": 2, "request": 1, "decision": "approved", "source": "dashboard"}])
    );
    assert_eq!(m["commands"][1]["summary"], "Approved by alice: looks good");
    // Decided and recorded: still a conflict, and the stage no longer waits.
    assert_eq!(post(&server, &id, approve, &same_origin).status, 409);
    let stages = server.get(&format!("/api/runs/{id}/stages")).json();
    assert_eq!(stages["stages"][1]["waiting"], Value::Null);
    assert_eq!(stages["stages"][1]["approval"]["source"], "dashboard");
}
