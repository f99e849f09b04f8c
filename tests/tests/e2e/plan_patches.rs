//! Dynamic plans: a stage extends the running pipeline by writing a plan patch to
//! `CODEX_ORCHESTRATOR_PLAN_PATCH_PATH`; the patch is validated like config, recorded
//! (`plan_patches`, `plan_update`), run, and replayed by `resume`.

use serde_json::{json, Value};

use crate::harness::{read_lines, TestEnv};

/// A config whose `plan` stage writes `patch` (JSON) as its plan patch and counts its runs
/// in `planner.count`; `after` is a stage of the config that runs after it.
fn planner_config(patch: &Value) -> String {
    let write = format!(
        "echo run >> planner.count; printf '%s' '{}' > \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\"",
        patch.to_string().replace('\'', "'\\''")
    );
    json!({"pipelines": [{"id": "p", "concurrency": 4, "stages": [
        {"kind": "command", "id": "plan", "command": write},
        {"kind": "command", "id": "after", "command": "true", "dependsOn": ["plan"]}
    ]}]})
    .to_string()
}

#[test]
fn a_planner_adds_three_stages_fanning_in_to_a_final_one() {
    let patch = json!({"stages": [
        {"kind": "command", "id": "shard-1", "command": "echo 1 > shard-1.out"},
        {"kind": "command", "id": "shard-2", "command": "echo 2 > shard-2.out"},
        {"kind": "command", "id": "shard-3", "command": "echo 3 > shard-3.out"},
        {"kind": "command", "id": "final", "command": "cat shard-1.out shard-2.out shard-3.out > final.out",
         "dependsOn": ["shard-1", "shard-2", "shard-3"]}
    ]});
    let env = TestEnv::new().config(&planner_config(&patch));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let id = out.run_id();
    let m = env.manifest(&id);
    let all: Vec<(String, String)> = ["plan", "after", "shard-1", "shard-2", "shard-3", "final"]
        .iter()
        .map(|s| (s.to_string(), "succeeded".to_owned()))
        .collect();
    assert_eq!(crate::harness::stage_statuses(&m), all);
    assert_eq!(
        std::fs::read_to_string(env.path().join("final.out")).expect("final.out"),
        "1\n2\n3\n"
    );
    // Shards wait for the stage that added them; the final one for the three shards.
    assert_eq!(m["commands"][2]["depends_on"], json!(["plan"]));
    assert_eq!(
        m["commands"][5]["depends_on"],
        json!(["shard-1", "shard-2", "shard-3"])
    );
    assert_eq!(m["commands"][5]["index"], 6);
    // Recorded: which stage added what, when.
    let patches = m["plan_patches"].as_array().expect("plan_patches");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0]["added_by"], "plan");
    assert_eq!(
        patches[0]["stage_ids"],
        json!(["shard-1", "shard-2", "shard-3", "final"])
    );
    assert!(patches[0]["at"].is_string());
    // Streamed as `plan_update`, before any added stage started.
    let events = read_lines(&env.run_dir(&id).join("events.jsonl"));
    let update = events
        .iter()
        .position(|e| e["event"] == "plan_update")
        .expect("a plan_update event");
    assert_eq!(events[update]["payload"]["added_by"], "plan");
    assert_eq!(events[update]["payload"]["stage_ids"][3], "final");
    let first_shard = events
        .iter()
        .position(|e| e["event"] == "step_started" && e["payload"]["stage_id"] == "shard-1")
        .expect("shard-1 started");
    assert!(update < first_shard);
    // `status` shows the grown run.
    let status = env.cli(["status", "--run", &id, "--format", "json"]).json();
    assert_eq!(status["commands"].as_array().expect("commands").len(), 6);
    assert!(
        out.stderr.contains("stage `plan` added 4 stage(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_patch_fails_its_stage_and_adds_nothing() {
    let patch = json!({"stages": [
        {"kind": "command", "id": "ok", "command": "true"},
        {"kind": "command", "id": "bad", "command": "true", "dependsOn": ["ghost"]}
    ]});
    let env = TestEnv::new().config(&planner_config(&patch));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(
        crate::harness::stage_statuses(&m),
        [
            ("plan".to_owned(), "failed".to_owned()),
            ("after".to_owned(), "pending".to_owned())
        ]
    );
    let summary = m["commands"][0]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("plan patch refused")
            && summary.contains("stage `bad`, field `dependsOn`: depends on `ghost`"),
        "{summary}"
    );
    assert!(m.get("plan_patches").is_none_or(Value::is_null), "{m}");
    assert_eq!(m["status_detail"], "stage:plan:failed");
}

#[test]
fn a_patch_creating_a_cycle_or_reusing_an_id_is_refused() {
    for (patch, want) in [
        (
            json!({"stages": [
                {"kind": "command", "id": "x", "command": "true", "dependsOn": ["y"]},
                {"kind": "command", "id": "y", "command": "true", "dependsOn": ["x"]}]}),
            "cycle: x -> y -> x",
        ),
        (
            json!({"stages": [{"kind": "command", "id": "after", "command": "true"}]}),
            "duplicate stage id",
        ),
        (
            json!({"stages": [{"kind": "command", "id": "z", "comand": "true"}]}),
            "did you mean `command`",
        ),
    ] {
        let env = TestEnv::new().config(&planner_config(&patch));
        let out = env.start("p", &[]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        let m = env.manifest(&out.run_id());
        assert_eq!(m["commands"].as_array().expect("commands").len(), 2);
        let summary = m["commands"][0]["summary"].as_str().expect("summary");
        assert!(summary.contains(want), "{want}: {summary}");
    }
}

#[test]
fn max_dynamic_stages_caps_a_patch() {
    let patch = json!({"stages": [
        {"kind": "command", "id": "a", "command": "true"},
        {"kind": "command", "id": "b", "command": "true"}]});
    let config: Value = serde_json::from_str(&planner_config(&patch)).expect("json");
    let mut config = config;
    config["pipelines"][0]["maxDynamicStages"] = json!(1);
    let env = TestEnv::new().config(&config.to_string());
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let summary = m["commands"][0]["summary"].as_str().expect("summary");
    assert!(
        summary.contains("over the 1 one patch may add (`maxDynamicStages`)"),
        "{summary}"
    );
}

#[test]
fn kill_9_after_a_patch_then_resume_runs_the_added_stages_without_the_planner() {
    // The added `wait` stage holds the run until `go` exists; the runner is killed meanwhile.
    let patch = json!({"stages": [
        {"kind": "command", "id": "wait", "command": "while [ ! -f go ]; do sleep 0.05; done; echo waited > wait.out"},
        {"kind": "command", "id": "last", "command": "echo last > last.out", "dependsOn": ["wait"]}
    ]});
    let env = TestEnv::new().config(&planner_config(&patch));
    let mut child = env
        .command(["start", "p", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    let id = crate::harness::wait_for_running_stage(&env, "wait");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    std::fs::write(env.path().join("go"), "").expect("go");
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    let all: Vec<(String, String)> = ["plan", "after", "wait", "last"]
        .iter()
        .map(|s| (s.to_string(), "succeeded".to_owned()))
        .collect();
    assert_eq!(crate::harness::stage_statuses(&m), all);
    // The planner ran once: the resume replayed its recorded patch.
    assert_eq!(
        std::fs::read_to_string(env.path().join("planner.count")).expect("count"),
        "run\n"
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("last.out")).expect("last"),
        "last\n"
    );
    assert_eq!(m["plan_patches"].as_array().expect("patches").len(), 1);
}

/// A config whose `plan` stage runs `wait`, then writes a patch adding `z` after `b`, then runs
/// `then`; `b` (no dependency on `plan`, so both run at once) runs `b` and fails under
/// `onFailure: skip-dependents`.
fn late_dependent_config(wait: &str, then: &str, b: &str) -> String {
    let patch = json!({"stages": [
        {"kind": "command", "id": "z", "command": "touch z.ran", "dependsOn": ["b"]}
    ]});
    let plan = format!(
        "{wait}; printf '%s' '{}' > \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\"; {then}",
        patch.to_string().replace('\'', "'\\''")
    );
    json!({"pipelines": [{"id": "p", "concurrency": 4, "stages": [
        {"kind": "command", "id": "plan", "command": plan, "dependsOn": []},
        {"kind": "command", "id": "b", "command": format!("{b}; exit 1"), "dependsOn": [],
         "onFailure": "skip-dependents"}
    ]}]})
    .to_string()
}

/// The run fails (exit 1, not a panic), `z` is recorded skipped because `b` failed, and it
/// never ran.
fn assert_z_skipped(env: &TestEnv, out: &crate::harness::Run) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        crate::harness::stage_statuses(&m),
        vec![s("plan", "succeeded"), s("b", "failed"), s("z", "skipped")]
    );
    assert_eq!(
        m["commands"][2]["skip_reason"], "Skipped: dependency `b` failed.",
        "{m:#}"
    );
    assert!(!env.path().join("z.ran").exists());
    crate::harness::assert_valid_manifest(&m);
}

#[test]
fn a_stage_added_after_its_dependency_failed_under_skip_dependents_is_skipped() {
    // `b` has failed (and its end is durable, strict) before the planner writes its patch.
    let config = late_dependent_config(
        "while [ ! -f b.failed ]; do sleep 0.01; done; sleep 0.2",
        "true",
        "touch b.failed",
    );
    for _ in 0..3 {
        let env = TestEnv::new()
            .config(&config)
            .env("CODEX_ORCHESTRATOR_DURABILITY", "strict");
        let out = env.start("p", &[]);
        assert_z_skipped(&env, &out);
    }
}

#[test]
fn a_dependency_failing_while_its_added_dependent_is_merged_never_panics() {
    // `b` fails as the planner's patch is being merged: the scheduler may join `b` after the
    // plan grew but before it joins the planner. Every order ends the same way.
    let config = late_dependent_config(
        "true",
        "touch go",
        "while [ ! -f go ]; do sleep 0.002; done",
    );
    for _ in 0..6 {
        let env = TestEnv::new()
            .config(&config)
            .env("CODEX_ORCHESTRATOR_DURABILITY", "strict");
        let out = env.start("p", &[]);
        assert_z_skipped(&env, &out);
    }
}
