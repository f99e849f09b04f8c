//! `start --dry-run` and `plan --resolved`: every stage resolved as the runner resolves it
//! (argv, cwd, environment with sources, timeout, retries, failure policy, executor), nothing
//! run or written, exit 0; the values of the inherited environment never printed.

use serde_json::Value;

use crate::harness::TestEnv;

const CFG: &str = r#"{"pipelines":[
  {"id":"p","title":"Release","vars":{"WHO":"world","OUT":"build"},"stages":[
    {"kind":"command","id":"prep","command":"mkdir -p \"$OUT\" && touch ran-prep"},
    {"kind":"command","id":"compile","command":"echo \"hello $WHO\" > out.txt; echo $$","cwd":"${OUT}",
     "env":{"WHO":"stage","LEVEL":"3"},"timeoutMs":90000,
     "retries":{"count":2,"delayMs":250,"backoff":"exponential","maxDelayMs":1000},"onFailure":"continue"},
    {"kind":"command","id":"lint","command":"touch ran-lint","dependsOn":["prep"],"allowFailure":true},
    {"kind":"command","id":"remote","command":"python3 train.py","dependsOn":["compile"],
     "executor":{"kind":"ray","address":"http://127.0.0.1:8265","workingDir":"ml","numCpus":2,"env":{"RAY_X":"1"}}},
    {"kind":"subpipeline","id":"docs","pipeline":"docs","dependsOn":["compile"]}]},
  {"id":"docs","stages":[{"kind":"command","id":"render","command":"touch ran-render"}]}]}"#;

/// Variables whose presence depends on the machine (node on PATH, the peer installed), left
/// out of snapshots.
const MACHINE_VARS: [&str; 2] = [
    "CODEX_ORCHESTRATOR_NODE_BIN",
    "CODEX_ORCHESTRATOR_PACKAGE_ROOT",
];

const SECRET: &str = "s3cr3t-value-42";

fn env() -> TestEnv {
    TestEnv::new()
        .config(CFG)
        .env("DEPLOY_TOKEN", SECRET)
        .env("CODEX_ORCHESTRATOR_STAGE_TIMEOUT_MS", "60000")
}

fn without_machine_vars(mut v: Value) -> Value {
    for p in v["pipelines"].as_array_mut().expect("pipelines") {
        for s in p["stages"].as_array_mut().expect("stages") {
            if let Some(env) = s.get_mut("env").and_then(Value::as_object_mut) {
                for k in MACHINE_VARS {
                    env.shift_remove(k);
                }
            }
        }
    }
    v
}

/// Nothing of a run exists: no `.runs`, no `out`, no stage effect.
fn assert_nothing_written(env: &TestEnv) {
    let mut entries: Vec<String> = std::fs::read_dir(env.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["codex.orchestrator.json"], "nothing written");
}

#[test]
fn dry_run_json_resolves_every_stage_and_writes_nothing() {
    let env = env();
    let args = [
        "start",
        "p",
        "--dry-run",
        "--skip",
        "lint",
        "--var",
        "WHO=you",
        "--format",
        "json",
    ];
    let out = env.cli(args);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_nothing_written(&env);
    assert!(!out.stdout.contains(SECRET) && !out.stderr.contains(SECRET));
    let v = out.json();
    let keys: Vec<&str> = v["inherited_env"]["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k.as_str().expect("key"))
        .collect();
    assert!(
        keys.contains(&"DEPLOY_TOKEN"),
        "inherited keys are named: {keys:?}"
    );
    // What the stage process would get: the stage's `env` wins over the variables.
    let compile = &v["pipelines"][0]["stages"][1];
    assert_eq!(compile["env"]["WHO"]["value"], "stage");
    assert_eq!(
        compile["argv"][2], "echo \"hello $WHO\" > out.txt; echo $$",
        "as written"
    );
    let redacted: Value =
        serde_json::from_str(&env.redact(&without_machine_vars(v).to_string())).expect("json");
    insta::assert_json_snapshot!("dry_run_json", redacted);
}

#[test]
fn dry_run_text_and_plan_resolved_say_the_same() {
    let env = env();
    let out = env.cli([
        "start",
        "p",
        "--dry-run",
        "--only",
        "compile",
        "--fail-fast",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_nothing_written(&env);
    assert!(!out.stdout.contains(SECRET));
    let mut text = env.redact(&out.stdout);
    for k in MACHINE_VARS {
        text = text.replace(&format!(" {k}"), "");
    }
    insta::assert_snapshot!("dry_run_text", text);
    // `plan --resolved` is the same view, in both formats.
    for format in ["text", "json"] {
        let dry = env.cli([
            "start",
            "p",
            "--dry-run",
            "--only",
            "compile",
            "--fail-fast",
            "--format",
            format,
        ]);
        let plan = env.cli([
            "plan",
            "p",
            "--resolved",
            "--only",
            "compile",
            "--fail-fast",
            "--format",
            format,
        ]);
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        assert_eq!(dry.stdout, plan.stdout, "{format}");
    }
    assert_nothing_written(&env);
}

#[test]
fn dry_run_checks_like_start() {
    let env = env();
    // An undefined variable in a cwd, an unknown stage, a bad Ray override: exit 2 as `start`.
    let bad_cwd = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"true","cwd":"${NOPE}"}]}]}"#,
    );
    let out = bad_cwd.cli(["start", "p", "--dry-run"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("stage `a`") && out.stderr.contains("cwd"),
        "{}",
        out.stderr
    );
    let out = env.cli(["start", "p", "--dry-run", "--only", "nope"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let ray = env
        .command(["start", "p", "--dry-run"])
        .env("CODEX_ORCHESTRATOR_RAY_ADDRESS", "not a url")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&ray.stderr);
    assert_eq!(ray.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("CODEX_ORCHESTRATOR_RAY_ADDRESS"),
        "{stderr}"
    );
    assert_nothing_written(&env);
    assert!(!bad_cwd.runs_exists());
}

#[test]
fn dry_run_masks_secret_values_as_a_run_does() {
    let env = TestEnv::new()
        .config(
            r#"{"secrets":["*_TOKEN"],"pipelines":[{"id":"p","vars":{"API_TOKEN":"hunter2-long"},"stages":[
              {"kind":"command","id":"a","command":"curl -H hunter2-long -u s3cr3t-value-42 x",
               "env":{"NOTE":"uses hunter2-long","MY_TOKEN":"tok-value-9"}}]}]}"#,
        )
        .env("DEPLOY_PASS", SECRET);
    for format in ["text", "json"] {
        let out = env.cli([
            "start",
            "p",
            "--dry-run",
            "--secret",
            "DEPLOY_PASS",
            "--format",
            format,
        ]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for value in ["hunter2-long", SECRET, "tok-value-9"] {
            assert!(
                !out.stdout.contains(value),
                "{format}: {value} shown:\n{}",
                out.stdout
            );
        }
        if format == "json" {
            let v = out.json();
            let a = &v["pipelines"][0]["stages"][0];
            assert_eq!(a["command"], "curl -H *** -u *** x");
            assert_eq!(a["env"]["API_TOKEN"]["value"], "***");
            assert_eq!(a["env"]["MY_TOKEN"]["value"], "***");
            assert_eq!(a["env"]["NOTE"]["value"], "uses ***");
            assert_eq!(v["pipelines"][0]["variables"]["API_TOKEN"], "***");
        } else {
            assert!(
                out.stdout.contains("command: curl -H *** -u *** x"),
                "{}",
                out.stdout
            );
        }
    }
    assert!(!env.runs_exists());
}

#[test]
fn dry_run_shows_an_argv_stage_as_it_is_started() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"printf","args":["%s\n","a b; rm -rf x"]}]}]}"#,
    );
    let out = env.cli(["start", "p", "--dry-run", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let a = &out.json()["pipelines"][0]["stages"][0];
    assert_eq!(
        a["argv"],
        serde_json::json!(["printf", "%s\n", "a b; rm -rf x"]),
        "no shell"
    );
    let text = env.cli(["start", "p", "--dry-run"]);
    assert!(
        text.stdout
            .contains("argv (no shell): printf | %s\n | a b; rm -rf x"),
        "{}",
        text.stdout
    );
    assert!(!env.runs_exists());
}
