//! Plan patches beside a stage selection: a stage a patch adds runs whatever the run's
//! `--only`/`--skip`/`--from` (the selection named the config's stages), live and after a
//! `resume` of the run (which replays the patch with the recorded selection).

use serde_json::{json, Value};

use crate::harness::TestEnv;

/// `plan` adds `wait` (held until the test's `go` file exists) and `last` after it; `after`
/// is a stage of the config the run skips.
const CONFIG: &str = r#"{"pipelines":[{"id":"p","concurrency":4,"stages":[
  {"kind":"command","id":"plan","command":"cp patch.json \"$CODEX_ORCHESTRATOR_PLAN_PATCH_PATH\""},
  {"kind":"command","id":"after","command":"true","dependsOn":["plan"]}]}]}"#;

const PATCH: &str = r#"{"stages":[
  {"kind":"command","id":"wait","command":"while [ ! -f go ]; do sleep 0.05; done"},
  {"kind":"command","id":"last","command":"echo last > last.out","dependsOn":["wait"]}]}"#;

fn statuses(m: &Value) -> Value {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| json!([c["id"], c["status"]]))
        .collect()
}

#[test]
fn resume_of_a_grown_run_with_a_selection_runs_the_added_stages() {
    let env = TestEnv::new().config(CONFIG);
    std::fs::write(env.path().join("patch.json"), PATCH).expect("patch");
    let mut child = env
        .command(["start", "p", "--skip", "after", "--format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // The added `wait` runs (the selection does not leave it out); the runner dies meanwhile.
    let id = crate::harness::wait_for_running_stage(&env, "wait");
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    std::fs::write(env.path().join("go"), "").expect("go");
    let out = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&id);
    assert_eq!(
        statuses(&m),
        json!([
            ["plan", "succeeded"],
            ["after", "skipped"],
            ["wait", "succeeded"],
            ["last", "succeeded"]
        ])
    );
    assert_eq!(m["commands"][1]["outcome"], "not_selected");
    assert_eq!(
        std::fs::read_to_string(env.path().join("last.out")).expect("last ran"),
        "last\n"
    );
    // `plan --run` shows the same: the skipped stage left out, the added ones in.
    let plan = env.cli(["plan", "--run", &id, "--format", "json"]).json();
    let runs: Vec<(&str, &Value)> = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| (s["id"].as_str().expect("id"), &s["runs"]))
        .collect();
    assert_eq!(
        runs,
        [
            ("plan", &json!(true)),
            ("after", &json!(false)),
            ("wait", &json!(true)),
            ("last", &json!(true))
        ]
    );
}
