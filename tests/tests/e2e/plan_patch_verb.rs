//! `plan-patch --file F` from inside a stage: checked at once (exit 2 and nothing added when
//! refused, the stage sees the code), several calls add all their stages, and outside a stage
//! it is a usage error.

use serde_json::{json, Value};

use crate::harness::TestEnv;

/// A config whose `plan` stage runs `script` and `after` waits for it; `files` are written
/// into the repo first.
fn env_with(script: &str, files: &[(&str, Value)]) -> TestEnv {
    let env = TestEnv::new().config(
        &json!({"pipelines": [{"id": "p", "concurrency": 4, "stages": [
            {"kind": "command", "id": "plan", "command": script},
            {"kind": "command", "id": "after", "command": "true", "dependsOn": ["plan"]}
        ]}]})
        .to_string(),
    );
    for (name, value) in files {
        std::fs::write(env.path().join(name), value.to_string()).expect("write patch");
    }
    env
}

#[test]
fn a_planner_calling_plan_patch_twice_adds_the_stages_of_both_calls() {
    let shards = json!({"stages": [
        {"kind": "command", "id": "shard-1", "command": "echo 1 > shard-1.out"},
        {"kind": "command", "id": "shard-2", "command": "echo 2 > shard-2.out"}
    ]});
    // The second call's stage depends on the first call's; it comes on stdin.
    let last = json!({"stages": [
        {"kind": "command", "id": "final", "command": "cat shard-1.out shard-2.out > final.out",
         "dependsOn": ["shard-1", "shard-2"]}
    ]});
    let script = r#""$CODEX_ORCHESTRATOR_BIN" plan-patch --file shards.json 2> first.err && "$CODEX_ORCHESTRATOR_BIN" plan-patch --file - --format json < last.json > accepted.json"#;
    let env = env_with(script, &[("shards.json", shards), ("last.json", last)]);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let all: Vec<(String, String)> = ["plan", "after", "shard-1", "shard-2", "final"]
        .iter()
        .map(|s| (s.to_string(), "succeeded".to_owned()))
        .collect();
    assert_eq!(crate::harness::stage_statuses(&m), all);
    assert_eq!(
        std::fs::read_to_string(env.path().join("final.out")).expect("final.out"),
        "1\n2\n"
    );
    // One patch, as the stage left it when it exited: both calls' stages.
    let patches = m["plan_patches"].as_array().expect("plan_patches");
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0]["added_by"], "plan");
    assert_eq!(
        patches[0]["stage_ids"],
        json!(["shard-1", "shard-2", "final"])
    );
    assert_eq!(m["commands"][2]["depends_on"], json!(["plan"]));
    // What each call said it accepted.
    let first = std::fs::read_to_string(env.path().join("first.err")).expect("first.err");
    assert!(
        first.contains("plan patch accepted: stage `plan` adds 2 stage(s) when it exits successfully: shard-1, shard-2"),
        "{first}"
    );
    let accepted: Value = serde_json::from_str(
        &std::fs::read_to_string(env.path().join("accepted.json")).expect("accepted.json"),
    )
    .expect("one JSON object");
    assert_eq!(accepted["stage_id"], "plan");
    assert_eq!(accepted["pipeline_id"], "p");
    assert_eq!(accepted["run_id"], out.run_id());
    assert_eq!(accepted["added"], json!(["final"]));
    assert_eq!(accepted["stages"][0]["id"], "final");
    assert_eq!(accepted["pending"], json!(["shard-1", "shard-2", "final"]));
}

#[test]
fn a_refused_patch_is_exit_2_at_once_and_adds_nothing() {
    let good = json!({"stages": [{"kind": "command", "id": "ok", "command": "echo ok > ok.out"}]});
    let cases = [
        (
            json!({"stages": [{"kind": "command", "id": "bad", "command": "true", "dependsOn": ["ghost"]}]}),
            "error: `bad.json`: pipeline `p`, stage `bad`, field `dependsOn`: depends on `ghost`",
        ),
        // The id an earlier call of the same stage added.
        (
            json!({"stages": [{"kind": "command", "id": "ok", "command": "true"}]}),
            "duplicate stage id",
        ),
        // An existing stage's id.
        (
            json!({"stages": [{"kind": "command", "id": "after", "command": "true"}]}),
            "duplicate stage id",
        ),
        (
            json!({"stages": [
                {"kind": "command", "id": "x", "command": "true", "dependsOn": ["y"]},
                {"kind": "command", "id": "y", "command": "true", "dependsOn": ["x"]}]}),
            "cycle: x -> y -> x",
        ),
        (json!({"stagez": []}), "did you mean `stages`"),
    ];
    // The refused call comes second: the stage sees its code and exits 0 on its own, so only
    // the first call's stage is added.
    let script = r#""$CODEX_ORCHESTRATOR_BIN" plan-patch --file good.json 2>/dev/null; "$CODEX_ORCHESTRATOR_BIN" plan-patch --file bad.json 2> bad.err; echo $? > code.txt"#;
    for (bad, want) in cases {
        let env = env_with(script, &[("good.json", good.clone()), ("bad.json", bad)]);
        let out = env.start("p", &[]);
        assert_eq!(out.code, 0, "{want}: {}", out.stderr);
        assert_eq!(
            std::fs::read_to_string(env.path().join("code.txt")).expect("code.txt"),
            "2\n",
            "{want}"
        );
        let err = std::fs::read_to_string(env.path().join("bad.err")).expect("bad.err");
        assert_eq!(err.lines().count(), 1, "{want}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(want),
            "{want}: {err}"
        );
        let m = env.manifest(&out.run_id());
        let all: Vec<(String, String)> = ["plan", "after", "ok"]
            .iter()
            .map(|s| (s.to_string(), "succeeded".to_owned()))
            .collect();
        assert_eq!(crate::harness::stage_statuses(&m), all, "{want}");
        assert_eq!(m["plan_patches"][0]["stage_ids"], json!(["ok"]), "{want}");
    }
}

#[test]
fn plan_patch_outside_a_stage_is_a_usage_error() {
    let env = TestEnv::new();
    let patch = json!({"stages": [{"kind": "command", "id": "a", "command": "true"}]});
    std::fs::write(env.path().join("p.json"), patch.to_string()).expect("write");
    let before: Vec<_> = std::fs::read_dir(env.path()).expect("ls").collect();
    let out = env.cli(["plan-patch", "--file", "p.json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: plan-patch: not inside a stage of a run (`CODEX_ORCHESTRATOR_PLAN_PATCH_PATH` is not set)"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    // Nothing written, no `.runs`.
    let after: Vec<_> = std::fs::read_dir(env.path()).expect("ls").collect();
    assert_eq!(before.len(), after.len());
    // A patch path without the rest of a stage's variables is refused too, and not written.
    let target = env.path().join("patch.json");
    let out = env
        .command(["plan-patch", "--file", "p.json"])
        .env("CODEX_ORCHESTRATOR_PLAN_PATCH_PATH", &target)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is set but `CODEX_ORCHESTRATOR_MAX_DYNAMIC_STAGES` is not"),
        "{stderr}"
    );
    assert!(!target.exists());
    // `--file` is required.
    assert_eq!(env.cli(["plan-patch"]).code, 2);
}

#[test]
fn plan_patch_checks_max_dynamic_stages_at_once() {
    let two = json!({"stages": [
        {"kind": "command", "id": "a", "command": "true"},
        {"kind": "command", "id": "b", "command": "true"}]});
    let env = TestEnv::new().config(
        &json!({"pipelines": [{"id": "p", "maxDynamicStages": 1, "stages": [
            {"kind": "command", "id": "plan",
             "command": r#""$CODEX_ORCHESTRATOR_BIN" plan-patch --file two.json 2> two.err; echo $? > code.txt"#}
        ]}]})
        .to_string(),
    );
    std::fs::write(env.path().join("two.json"), two.to_string()).expect("write");
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(env.path().join("code.txt")).expect("code"),
        "2\n"
    );
    let err = std::fs::read_to_string(env.path().join("two.err")).expect("err");
    assert!(
        err.contains("adds 2 stages, over the 1 one patch may add (`maxDynamicStages`)"),
        "{err}"
    );
    let m = env.manifest(&out.run_id());
    assert_eq!(
        crate::harness::stage_statuses(&m),
        [("plan".to_owned(), "succeeded".to_owned())]
    );
}
