//! `plan` and `status`.

use serde_json::Value;

use crate::harness::TestEnv;

const CFG: &str = r#"{"pipelines":[
  {"id":"p","title":"P","stages":[
    {"kind":"command","id":"a","title":"A","command":"echo a; exit 1","env":{"K":"v"},"allowFailure":true,"summaryHint":"h"},
    {"kind":"subpipeline","id":"s","title":"S","pipeline":"q","optional":true},
    {"kind":"command","id":"b","title":"B","command":"exit 2"}]},
  {"id":"q","stages":[{"kind":"command","id":"qq","command":"true"}]}]}"#;

#[test]
fn plan_json_lists_stages_in_order_and_runs_nothing() {
    let env = TestEnv::new().config(CFG);
    let out = env.cli(["plan", "p", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!env.runs_exists(), "plan runs nothing");
    let mut j = out.json();
    assert_eq!(
        j["pipeline"]["source"], "user",
        "the peer's name for a repo config"
    );
    j["config_path"] = Value::String("[CONFIG]".into());
    insta::assert_json_snapshot!("plan_json", j);
}

#[test]
fn plan_text_shows_levels() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"d","stages":[
      {"kind":"command","id":"a","command":"true"},
      {"kind":"command","id":"b","command":"true","dependsOn":["a"]},
      {"kind":"command","id":"c","command":"true","dependsOn":["a"]},
      {"kind":"command","id":"d","command":"true","dependsOn":["b","c"]}],"concurrency":2}]}"#,
    );
    let out = env.cli(["plan", "d"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    insta::assert_snapshot!(env.redact(&out.stdout), @r"
    Pipeline: d (d)
    Config: [TMP]/codex.orchestrator.json (repo)
    Concurrency: 2 (pipeline)
    Target: d:a
    Level 0:
      01 a — true
    Level 1:
      02 b — true after a
      03 c — true after a
    Level 2:
      04 d — true after b, c
    ");
}

#[test]
fn status_reads_the_manifest() {
    let env = TestEnv::new().config(CFG);
    let run = env.start("p", &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let id = run.run_id();
    let out = env.cli(["status", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["status"], "failed");
    assert_eq!(j["status_detail"], "stage:b:failed");
    // As on the peer: staleness and age are only told for a run in progress.
    assert_eq!(j["activity"]["stale"], Value::Null);
    assert_eq!(j["activity"]["age_seconds"], Value::Null);
    assert_eq!(j["activity"]["stale_threshold_seconds"], 30);
    assert_eq!(j["activity"]["observed_source"], "manifest");
    let statuses: Vec<&str> = j["commands"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["status"].as_str().expect("s"))
        .collect();
    assert_eq!(statuses, ["skipped", "succeeded", "failed"]);
    let text = env.cli(["status", "--run", &id]);
    assert_eq!(text.code, 0);
    insta::assert_snapshot!(env.redact(&text.stdout), @r"
    Run: [RUN_ID]
    Pipeline: p (P)
    Status: failed (stage:b:failed)
    Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
    Commands:
      [skipped] A — Exited with code 1
      [succeeded] S — Sub-pipeline q succeeded
      [failed] B — Exited with code 2
    ");
}

#[test]
fn status_of_an_unknown_run_is_a_conflict() {
    let env = TestEnv::new().config(CFG);
    let out = env.cli(["status", "--run", "2026-01-01T00-00-00-000Z-deadbeef"]);
    assert_eq!(out.code, 3);
    assert!(
        out.stderr
            .starts_with("error: run `2026-01-01T00-00-00-000Z-deadbeef` not found"),
        "{}",
        out.stderr
    );
}

#[test]
fn status_flags_a_stale_in_progress_run() {
    let env = TestEnv::new().config(CFG);
    let run = env.start("p", &[]);
    let id = run.run_id();
    let path = env.run_dir(&id).join("manifest.json");
    let mut m: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    m["status"] = "in_progress".into();
    m["heartbeat_at"] = "2020-01-01T00:00:00.000Z".into();
    std::fs::write(&path, serde_json::to_string_pretty(&m).expect("json")).expect("write");
    // Every sign of activity is old: the heartbeat file and the runner log too.
    let dir = env.run_dir(&id);
    std::fs::write(dir.join(".heartbeat"), "2020-01-01T00:00:00.000Z\n").expect("write");
    let touched = std::process::Command::new("touch")
        .args(["-d", "2020-01-01T00:00:00Z"])
        .arg(dir.join("runner.ndjson"))
        .status()
        .expect("touch");
    assert!(touched.success());
    let j = env.cli(["status", "--run", &id, "--format", "json"]).json();
    assert_eq!(j["activity"]["stale"], true);
    assert_eq!(j["activity"]["abandoned"], true);
    assert!(j["activity"]["age_seconds"]
        .as_u64()
        .is_some_and(|a| a > 30));
    let text = env.cli(["status", "--run", &id]).stdout;
    assert!(text.contains("stale"), "{text}");
}
