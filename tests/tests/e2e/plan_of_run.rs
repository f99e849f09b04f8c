//! `plan --run RUN` / `plan --last`: the graph of a run as it stands, with the stages its plan
//! patches added marked with the stage that added them and when (text and JSON); a run that
//! did not grow shows what `plan <pipeline>` shows.

use serde_json::{json, Value};

use crate::harness::TestEnv;

/// A planner that adds three stages: two checks after it and a merge after both (fanning in
/// with `after`, a stage of the config). Its patch is [`PATCH`], which the test writes.
const GROWING: &str = r#"{"pipelines":[{"id":"p","title":"Grows","concurrency":4,"stages":[
  {"kind":"command","id":"plan","command":"cp patch.json \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\""},
  {"kind":"command","id":"after","command":"true","dependsOn":["plan"]}]}]}"#;

const PATCH: &str = r#"{"stages":[
  {"kind":"command","id":"check-a","command":"echo a"},
  {"kind":"command","id":"check-b","command":"echo b"},
  {"kind":"command","id":"merge","command":"echo merged","dependsOn":["check-a","check-b","after"]}]}"#;

fn growing() -> TestEnv {
    let env = TestEnv::new().config(GROWING);
    std::fs::write(env.path().join("patch.json"), PATCH).expect("patch");
    env
}

/// Null stays null (a config stage has no `added_at`); a time becomes `[TS]`.
fn ts() -> insta::internals::Redaction {
    insta::dynamic_redaction(|v, _| {
        if v.as_str().is_some() {
            insta::internals::Content::from("[TS]")
        } else {
            v
        }
    })
}

#[test]
fn plan_of_a_run_shows_the_stages_a_planner_added_and_who_added_them() {
    let env = growing();
    let run = env.start("p", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let id = run.run_id();

    let text = env.cli(["plan", "--last"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    insta::assert_snapshot!(env.redact(&text.stdout), @r#"
    Run: [RUN_ID] (succeeded)
    Plan patches: 1 (3 stage(s) added)
    Pipeline: p (Grows)
    Config: [TMP]/codex.orchestrator.json (repo)
    Concurrency: 4 (pipeline)
    Target: p:plan
    Level 0:
      01 plan — cp patch.json "$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH"
    Level 1:
      02 after — true after plan
      03 check-a — echo a after plan [added by plan at [TS]]
      04 check-b — echo b after plan [added by plan at [TS]]
    Level 2:
      05 merge — echo merged after after, check-a, check-b [added by plan at [TS]]
    "#);

    let j = env.cli(["plan", "--last", "--format", "json"]);
    assert_eq!(j.code, 0, "{}", j.stderr);
    let j = j.json();
    let added: Vec<(&str, &Value)> = j["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| (s["id"].as_str().expect("id"), &s["added_by"]))
        .collect();
    assert_eq!(
        added,
        [
            ("plan", &Value::Null),
            ("after", &Value::Null),
            ("check-a", &json!("plan")),
            ("check-b", &json!("plan")),
            ("merge", &json!("plan")),
        ]
    );
    // Each added stage says when: the time its patch was recorded.
    let m = env.manifest(&id);
    assert_eq!(j["stages"][4]["added_at"], m["plan_patches"][0]["at"]);
    assert_eq!(j["run"]["run_id"], id.as_str());
    insta::assert_json_snapshot!("plan_of_run_json", j, {
        ".config_path" => "[CONFIG]",
        ".run.run_id" => "[RUN_ID]",
        ".stages[].added_at" => ts(),
        ".plan_patches[].at" => "[TS]",
    });

    // The run named by a prefix of its id, or `--run latest`: the same.
    let prefix = &id[..id.len() - 4];
    for name in [prefix, "latest"] {
        let again = env.cli(["plan", "--run", name, "--format", "json"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(again.json(), j, "plan --run {name}");
    }
}

#[test]
fn plan_of_a_run_without_patches_is_the_plan_of_its_pipeline() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"d","stages":[
      {"kind":"command","id":"a","command":"true"},
      {"kind":"command","id":"b","command":"true","dependsOn":["a"],"env":{"K":"v"}},
      {"kind":"command","id":"c","command":"true","dependsOn":["a"]},
      {"kind":"command","id":"d","command":"true","dependsOn":["b","c"]}]}]}"#,
    );
    let run = env.start("d", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let of_pipeline = env.cli(["plan", "d", "--format", "json"]).json();
    let mut of_run = env.cli(["plan", "--last", "--format", "json"]).json();
    assert_eq!(of_run["plan_patches"], json!([]));
    assert_eq!(of_run["run"]["status"], "succeeded");
    let obj = of_run.as_object_mut().expect("object");
    obj.remove("run");
    obj.remove("plan_patches");
    for s in of_run["stages"].as_array_mut().expect("stages") {
        let s = s.as_object_mut().expect("stage");
        assert_eq!(s.remove("added_by"), Some(Value::Null));
        assert_eq!(s.remove("added_at"), Some(Value::Null));
    }
    assert_eq!(of_run, of_pipeline);

    let text_of_pipeline = env.cli(["plan", "d"]).stdout;
    let text_of_run = env.cli(["plan", "--last"]).stdout;
    let (first, rest) = text_of_run.split_once('\n').expect("lines");
    assert_eq!(env.redact(first), "Run: [RUN_ID] (succeeded)");
    assert_eq!(rest, text_of_pipeline);
}

#[test]
fn plan_of_a_run_refuses_what_the_run_decided_and_says_when_it_cannot_be_shown() {
    let env = growing();
    // No run yet.
    let none = env.cli(["plan", "--last"]);
    assert_eq!(none.code, 3, "{}", none.stderr);
    assert!(
        none.stderr.starts_with("error: no runs yet"),
        "{}",
        none.stderr
    );
    assert_eq!(env.start("p", &[]).code, 0);
    // The run decides its pipeline, variables, target and selection.
    for extra in [
        &["p"][..],
        &["--file", "plan.json"],
        &["--var", "X=1"],
        &["--only", "plan"],
        &["--target", "plan"],
        &["--resolved"],
        &["--run", "latest"],
    ] {
        let mut args = vec!["plan", "--last"];
        args.extend_from_slice(extra);
        let out = env.cli(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("cannot be used with"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // The config lost a stage since the run: its graph cannot be drawn from it.
    std::fs::write(
        env.path().join("codex.orchestrator.json"),
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"plan","command":"true"}]}]}"#,
    )
    .expect("config");
    let changed = env.cli(["plan", "--last"]);
    assert_eq!(changed.code, 3, "{}", changed.stderr);
    assert!(
        changed.stderr.contains("cannot show the plan of run")
            && changed.stderr.contains("no longer applies to pipeline `p`"),
        "{}",
        changed.stderr
    );
    assert_eq!(changed.stderr.lines().count(), 1, "{}", changed.stderr);
}
