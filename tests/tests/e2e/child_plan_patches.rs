//! Plan patches from the stages of a sub-pipeline's child run: they extend the child's
//! pipeline, are recorded in the child's record, and a resume of the parent replays them into
//! the child it takes over (the child's planner is never asked again).

use serde_json::{json, Value};

use crate::harness::TestEnv;

fn all_succeeded(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter()
        .map(|s| (s.to_string(), "succeeded".to_owned()))
        .collect()
}

/// Pipeline `p` runs sub-pipeline `child` then `after`; the child's `plan` stage adds the
/// stages of `patch.json` (through `plan-patch`) and counts its runs in `planner.count`.
fn env_with(patch: &Value) -> TestEnv {
    env_planning(
        patch,
        json!({"kind": "command", "id": "plan",
            "command": r#"echo run >> planner.count; "$CODEX_ORCHESTRATOR_BIN" plan-patch --file patch.json"#}),
    )
}

/// [`env_with`] with the child's `plan` stage as given.
fn env_planning(patch: &Value, plan: Value) -> TestEnv {
    let env = TestEnv::new().config(
        &json!({"pipelines": [
            {"id": "p", "stages": [
                {"kind": "subpipeline", "id": "sub", "pipeline": "child"},
                {"kind": "command", "id": "after", "command": "echo after > after.out"}
            ]},
            {"id": "child", "concurrency": 4, "stages": [
                plan,
                {"kind": "command", "id": "tail", "command": "true", "dependsOn": ["plan"]}
            ]}
        ]})
        .to_string(),
    );
    std::fs::write(env.path().join("patch.json"), patch.to_string()).expect("patch");
    env
}

#[test]
fn a_child_runs_planner_extends_the_child_pipeline() {
    let patch = json!({"stages": [
        {"kind": "command", "id": "shard-1", "command": "echo 1 > shard-1.out"},
        {"kind": "command", "id": "shard-2", "command": "echo 2 > shard-2.out"},
        {"kind": "command", "id": "final", "command": "cat shard-1.out shard-2.out > final.out",
         "dependsOn": ["shard-1", "shard-2"]}
    ]});
    let env = env_with(&patch);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let parent = env.manifest(&out.run_id());
    assert_eq!(
        crate::harness::stage_statuses(&parent),
        all_succeeded(&["sub", "after"])
    );
    assert!(parent.get("plan_patches").is_none_or(Value::is_null));
    let child_id = parent["commands"][0]["sub_run_id"]
        .as_str()
        .expect("child run");
    let child = env.manifest(child_id);
    assert_eq!(
        crate::harness::stage_statuses(&child),
        all_succeeded(&["plan", "tail", "shard-1", "shard-2", "final"])
    );
    let patches = child["plan_patches"]
        .as_array()
        .expect("child plan_patches");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["added_by"], "plan");
    assert_eq!(
        patches[0]["stage_ids"],
        json!(["shard-1", "shard-2", "final"])
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("final.out")).expect("final.out"),
        "1\n2\n"
    );
    assert!(
        out.stderr.contains("stage `plan` added 3 stage(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn kill_9_after_a_child_patch_then_resume_of_the_parent_runs_the_added_child_stages() {
    let patch = json!({"stages": [
        {"kind": "command", "id": "wait", "command": "while [ ! -f go ]; do sleep 0.05; done; echo waited > wait.out"},
        {"kind": "command", "id": "last", "command": "echo last > last.out", "dependsOn": ["wait"]}
    ]});
    let env = env_with(&patch);
    let mut runner = env
        .command(["start", "p", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // The child's record shows the added stage running.
    let child_id = crate::harness::wait_for_running_stage(&env, "wait");
    runner.kill().expect("kill -9");
    runner.wait().expect("reaped");
    std::fs::write(env.path().join("go"), "").expect("go");
    let parent_id = crate::harness::run_dirs(&env.path().join(".runs"))
        .iter()
        .map(|d| crate::harness::merged(&d.join("manifest.json")))
        .find(|m| m["pipeline_id"] == "p")
        .and_then(|m| m["run_id"].as_str().map(str::to_owned))
        .expect("the parent run");
    let out = env.cli(["resume", "--run", &parent_id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let parent = env.manifest(&parent_id);
    assert_eq!(
        crate::harness::stage_statuses(&parent),
        all_succeeded(&["sub", "after"])
    );
    // The same child run was taken over, with its added stages, and finished them.
    assert_eq!(parent["commands"][0]["sub_run_id"], child_id.as_str());
    let child = env.manifest(&child_id);
    assert_eq!(
        crate::harness::stage_statuses(&child),
        all_succeeded(&["plan", "tail", "wait", "last"])
    );
    assert_eq!(child["plan_patches"].as_array().expect("patches").len(), 1);
    // The child's planner ran once: the resume replayed its recorded patch.
    assert_eq!(
        std::fs::read_to_string(env.path().join("planner.count")).expect("count"),
        "run\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("last.out")).expect("last"),
        "last\n"
    );
    assert_eq!(crate::harness::run_dirs(&env.path().join(".runs")).len(), 2);
}

#[test]
fn a_child_stage_s_failed_attempt_adds_nothing() {
    // The first attempt hands in a patch, then fails; the retry succeeds without one.
    let patch = json!({"stages": [{"kind": "command", "id": "extra", "command": "true"}]});
    let plan = json!({"kind": "command", "id": "plan", "retries": {"count": 1},
        "command": r#"if [ -f once ]; then exit 0; fi; touch once; "$CODEX_ORCHESTRATOR_BIN" plan-patch --file patch.json && exit 1"#});
    let env = env_planning(&patch, plan);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let parent = env.manifest(&out.run_id());
    let child_id = parent["commands"][0]["sub_run_id"]
        .as_str()
        .expect("child run");
    let child = env.manifest(child_id);
    assert!(env.path().join("once").exists());
    assert_eq!(
        crate::harness::stage_statuses(&child),
        all_succeeded(&["plan", "tail"])
    );
    assert!(
        child.get("plan_patches").is_none_or(Value::is_null),
        "{child}"
    );
}
