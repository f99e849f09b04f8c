//! Choosing what a run runs: `--only` (with and without `--no-deps`), `--skip`, `--from`,
//! their record (sidecar `selection`, stages `skipped` with outcome `not_selected`, events and
//! progress), their errors (exit 2, nothing written), and a resume keeping the selection.
//! Also `--fail-fast` / `--no-fail-fast` over each stage's `onFailure`.

use serde_json::Value;

use crate::harness::{read_lines, redact_manifest, TestEnv};

/// `setup -> build -> test -> package`, `setup -> lint -> test`, `docs` alone. Every stage
/// leaves a file named after it, so what really ran is visible on disk.
const GRAPH: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"setup","command":"touch ran-setup"},
  {"kind":"command","id":"build","command":"touch ran-build","dependsOn":["setup"]},
  {"kind":"command","id":"lint","command":"touch ran-lint","dependsOn":["setup"]},
  {"kind":"command","id":"test","command":"touch ran-test","dependsOn":["build","lint"]},
  {"kind":"command","id":"package","command":"touch ran-package","dependsOn":["test"]},
  {"kind":"command","id":"docs","command":"touch ran-docs","dependsOn":[]}]}]}"#;

const IDS: [&str; 6] = ["setup", "build", "lint", "test", "package", "docs"];

/// The stages that ran (their files exist), in stage order.
fn ran(env: &TestEnv) -> Vec<&'static str> {
    IDS.into_iter()
        .filter(|id| env.path().join(format!("ran-{id}")).exists())
        .collect()
}

/// `(id, status, outcome, skip_reason)` of every stage of the merged record.
fn stages(m: &Value) -> Vec<(String, String, String, String)> {
    m["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
            (s("id"), s("status"), s("outcome"), s("skip_reason"))
        })
        .collect()
}

/// Runs `start p --format json` with `flags`; returns the env, the exit code and the record.
fn start(flags: &[&str]) -> (TestEnv, i32, Value) {
    let env = TestEnv::new().config(GRAPH);
    let out = env.start("p", flags);
    assert!(out.code == 0 || out.code == 1, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    (env, out.code, m)
}

#[test]
fn only_runs_the_stages_and_what_they_depend_on() {
    let (env, code, m) = start(&["--only", "test"]);
    assert_eq!(code, 0);
    assert_eq!(ran(&env), ["setup", "build", "lint", "test"]);
    assert_eq!(
        m["status"], "succeeded",
        "the run follows the selected stages"
    );
    let redacted = redact_manifest(&env, &m);
    insta::assert_json_snapshot!(
        "only_test_record",
        serde_json::json!({
            "selection": redacted["selection"],
            "fail_fast": redacted["fail_fast"],
            "stages": stages(&m),
        })
    );
    // The peer's file says `skipped`; the reason and outcome are ours, in the sidecar.
    let main = env.main_file(m["run_id"].as_str().expect("id"));
    assert_eq!(main["commands"][4]["status"], "skipped");
    assert_eq!(
        main["commands"][4]["summary"],
        "Skipped: not selected (--only test)"
    );
    assert!(
        main.get("selection").is_none(),
        "extension fields stay in the sidecar"
    );
    // events.jsonl: one step_skipped per stage left out, before any stage starts.
    let events = read_lines(
        &env.run_dir(m["run_id"].as_str().expect("id"))
            .join("events.jsonl"),
    );
    let names: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["event"] == "step_skipped" || e["event"] == "step_started")
        .map(|e| {
            (
                e["event"].as_str().expect("event"),
                e["payload"]["stage_id"].as_str().expect("stage"),
            )
        })
        .collect();
    assert_eq!(
        &names[..2],
        [("step_skipped", "package"), ("step_skipped", "docs")]
    );
    for e in events.iter().filter(|e| e["event"] == "step_skipped") {
        assert_eq!(
            e["payload"]["reason"],
            "Skipped: not selected (--only test)"
        );
        assert_eq!(e["payload"]["outcome"], "not_selected");
    }
}

#[test]
fn only_without_dependencies() {
    let (env, code, m) = start(&["--only", "test,docs", "--no-deps"]);
    assert_eq!(code, 0);
    assert_eq!(ran(&env), ["test", "docs"], "dependencies taken as done");
    assert_eq!(
        m["selection"],
        serde_json::json!({"only": ["test", "docs"], "no_deps": true, "selected": ["test", "docs"]})
    );
    let reasons: Vec<String> = stages(&m)
        .into_iter()
        .filter(|s| s.1 == "skipped")
        .map(|s| s.3)
        .collect();
    assert_eq!(
        reasons,
        vec!["Skipped: not selected (--only test,docs --no-deps)"; 4]
    );
    // Repeating the flag is the same as a list.
    let (env, _, m) = start(&["--only", "test", "--only", "docs", "--no-deps"]);
    assert_eq!(ran(&env), ["test", "docs"]);
    assert_eq!(m["selection"]["only"], serde_json::json!(["test", "docs"]));
}

#[test]
fn skip_leaves_out_exactly_the_named_stages() {
    let (env, code, m) = start(&["--skip", "lint,docs"]);
    assert_eq!(code, 0);
    assert_eq!(
        ran(&env),
        ["setup", "build", "test", "package"],
        "test ran although lint, which it depends on, was skipped"
    );
    assert_eq!(
        m["selection"],
        serde_json::json!({"skip": ["lint", "docs"], "selected": ["setup", "build", "test", "package"]})
    );
    let s = stages(&m);
    assert_eq!(
        s[2],
        (
            "lint".into(),
            "skipped".into(),
            "not_selected".into(),
            "Skipped: not selected (--skip lint,docs)".into()
        )
    );
}

#[test]
fn from_runs_the_stage_its_dependents_and_what_they_need_that_it_does_not() {
    // From `build`: test and package depend on it; test also needs lint, which build does
    // not need (it has not run); setup is what build needs (it ran before).
    let (env, code, m) = start(&["--from", "build"]);
    assert_eq!(code, 0);
    assert_eq!(ran(&env), ["build", "lint", "test", "package"]);
    assert_eq!(m["selection"]["from"], "build");
    assert_eq!(
        m["selection"]["selected"],
        serde_json::json!(["build", "lint", "test", "package"])
    );
    let (env, _, m) = start(&["--from", "test", "--skip", "package"]);
    assert_eq!(ran(&env), ["test"]);
    assert_eq!(
        stages(&m)[4].3,
        "Skipped: not selected (--from test --skip package)"
    );
}

#[test]
fn a_failing_selected_stage_fails_the_run_and_progress_names_the_stages_left_out() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"exit 3"},
          {"kind":"command","id":"b","command":"true"}]}]}"#,
    );
    let out = env.cli(["start", "p", "--only", "a"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("[02/02] b: skipped — Skipped: not selected (--only a)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("2 stages: 0 succeeded, 1 failed, 1 skipped, 0 not run"),
        "{}",
        out.stderr
    );
}

#[test]
fn unknown_stage_ids_are_usage_errors_and_nothing_is_written() {
    let env = TestEnv::new().config(GRAPH);
    let cases: &[(&[&str], &str)] = &[
        (
            &["--only", "tset"],
            "error: --only `tset`: pipeline `p` has no such stage (did you mean `test`?); its stages: `setup`, `build`, `lint`, `test`, `package`, `docs`",
        ),
        (&["--skip", "biuld"], "error: --skip `biuld`: pipeline `p` has no such stage (did you mean `build`?)"),
        (&["--from", "nothing-like-it"], "error: --from `nothing-like-it`: pipeline `p` has no such stage; its stages:"),
        (&["--only", "test,"], "error: --only: an empty stage id"),
        (
            &["--skip", "setup,build,lint,test,package,docs"],
            "error: --skip setup,build,lint,test,package,docs leaves no stage of pipeline `p` to run",
        ),
        (&["--only", "test", "--from", "build"], "cannot be used with"),
        (&["--no-deps"], "--only <ID,...>"),
    ];
    for (flags, expected) in cases {
        for verb in ["start", "plan"] {
            let mut args = vec![verb, "p"];
            args.extend_from_slice(flags);
            let out = env.cli(&args);
            assert_eq!(out.code, 2, "{verb} {flags:?}: {}", out.stderr);
            assert!(
                out.stderr.contains(expected),
                "{verb} {flags:?}: expected {expected:?} in:\n{}",
                out.stderr
            );
        }
    }
    assert!(!env.runs_exists(), "nothing written");
    assert!(ran(&env).is_empty(), "nothing ran");
}

#[test]
fn plan_shows_the_selection() {
    let env = TestEnv::new().config(GRAPH);
    let out = env.cli(["plan", "p", "--only", "build", "--format", "json"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan = out.json();
    let runs: Vec<bool> = plan["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| s["runs"].as_bool().expect("runs"))
        .collect();
    assert_eq!(runs, [true, true, false, false, false, false]);
    assert_eq!(
        plan["selection"]["selected"],
        serde_json::json!(["setup", "build"])
    );
    let text = env.cli(["plan", "p", "--only", "build"]);
    assert!(
        text.stdout
            .contains("lint — touch ran-lint after setup (not selected)"),
        "{}",
        text.stdout
    );
    // Without a selection the plan object has no selection keys.
    let plain = env.cli(["plan", "p", "--format", "json"]).json();
    assert!(plain.get("selection").is_none() && plain["stages"][0].get("runs").is_none());
}

#[test]
fn a_resume_keeps_the_selection() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"touch ran-a"},
          {"kind":"command","id":"b","command":"test -f fixed && touch ran-b"},
          {"kind":"command","id":"c","command":"touch ran-c"}]}]}"#,
    );
    let out = env.start("p", &["--only", "b"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let resumed = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(env.path().join("ran-b").exists());
    assert!(!env.path().join("ran-c").exists(), "c stays left out");
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(
        stages(&m)[2],
        (
            "c".into(),
            "skipped".into(),
            "not_selected".into(),
            "Skipped: not selected (--only b)".into()
        )
    );
    assert_eq!(m["selection"]["selected"], serde_json::json!(["a", "b"]));
}

/// `a` fails; `b` depends on it, `c` does not. Each stage's own policy is `policy`.
fn policy_config(policy: &str) -> String {
    format!(
        r#"{{"pipelines":[{{"id":"p","concurrency":1,"stages":[
          {{"kind":"command","id":"a","command":"touch ran-a; exit 1","onFailure":"{policy}"}},
          {{"kind":"command","id":"b","command":"touch ran-b","dependsOn":["a"]}},
          {{"kind":"command","id":"c","command":"touch ran-c","dependsOn":[]}},
          {{"kind":"command","id":"d","command":"touch ran-d; exit 1","dependsOn":[],"allowFailure":true}}]}}]}}"#
    )
}

fn ran_of(env: &TestEnv) -> Vec<&'static str> {
    ["a", "b", "c", "d"]
        .into_iter()
        .filter(|id| env.path().join(format!("ran-{id}")).exists())
        .collect()
}

#[test]
fn fail_fast_and_no_fail_fast_override_every_stage_policy() {
    // Without a flag each stage's own policy holds.
    for (policy, flags, expect_ran, fail_fast) in [
        ("continue", &[][..], &["a", "b", "c", "d"][..], Value::Null),
        (
            "continue",
            &["--fail-fast"][..],
            &["a"][..],
            Value::Bool(true),
        ),
        (
            "skip-dependents",
            &["--fail-fast"][..],
            &["a"][..],
            Value::Bool(true),
        ),
        ("abort", &[][..], &["a"][..], Value::Null),
        (
            "abort",
            &["--no-fail-fast"][..],
            &["a", "b", "c", "d"][..],
            Value::Bool(false),
        ),
        (
            "skip-dependents",
            &["--no-fail-fast"][..],
            &["a", "b", "c", "d"][..],
            Value::Bool(false),
        ),
        // The last of the two flags wins.
        (
            "abort",
            &["--fail-fast", "--no-fail-fast"][..],
            &["a", "b", "c", "d"][..],
            Value::Bool(false),
        ),
    ] {
        let env = TestEnv::new().config(&policy_config(policy));
        let out = env.start("p", flags);
        assert_eq!(
            out.code, 1,
            "{policy} {flags:?}: the run fails: {}",
            out.stderr
        );
        assert_eq!(ran_of(&env), expect_ran, "{policy} {flags:?}");
        let m = env.manifest(&out.run_id());
        assert_eq!(m["fail_fast"], fail_fast, "{policy} {flags:?}: recorded");
        assert_eq!(m["status_detail"], "stage:a:failed");
        if expect_ran.contains(&"d") {
            // allowFailure keeps its meaning under either flag: a warning, not a failure.
            assert_eq!(m["commands"][3]["status"], "skipped", "{policy} {flags:?}");
        }
    }
}

#[test]
fn a_resume_keeps_no_fail_fast() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"test -f fixed"},
          {"kind":"command","id":"b","command":"test -f fixed && touch ran-b"},
          {"kind":"command","id":"c","command":"touch ran-c"}]}]}"#,
    );
    let out = env.start("p", &["--no-fail-fast"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        env.path().join("ran-c").exists(),
        "c ran after the failures"
    );
    std::fs::remove_file(env.path().join("ran-c")).expect("rm");
    // Resumed still failing: `a` fails again, and `b` still runs after it (no-fail-fast kept).
    let id = out.run_id();
    let again = env.cli(["resume", "--run", &id, "--format", "json"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    let m = env.manifest(&id);
    assert_eq!(m["fail_fast"], false);
    let b = &m["commands"][1];
    assert_eq!(b["status"], "failed", "b ran again after a failed again");
    assert!(
        !env.path().join("ran-c").exists(),
        "c succeeded before: not run again"
    );
}

#[test]
fn a_resume_given_a_selection_decides_the_stages_not_done_anew() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"touch ran-a"},
          {"kind":"command","id":"b","command":"exit 1"},
          {"kind":"command","id":"c","command":"touch ran-c"}]}]}"#,
    );
    let out = env.start("p", &["--only", "b", "--no-deps"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let id = out.run_id();
    // b keeps failing; the resume leaves it out and runs c, which the start left out.
    let resumed = env.cli(["resume", &id, "--only", "c", "--no-deps"]);
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert_eq!(ran_of(&env), ["c"], "a stays out: neither selection has it");
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded", "what was selected succeeded");
    assert_eq!(
        m["selection"],
        serde_json::json!({"only": ["c"], "no_deps": true, "selected": ["c"]}),
        "the resumed runner's selection is the one recorded"
    );
    let s = stages(&m);
    assert_eq!(
        s[1],
        (
            "b".into(),
            "skipped".into(),
            "not_selected".into(),
            "Skipped: not selected (--only c --no-deps)".into()
        )
    );
    assert_eq!(s[0].3, "Skipped: not selected (--only c --no-deps)");
    assert_eq!(s[2].1, "succeeded");
    // A bad id on resume is a usage error before anything is locked or written.
    let before = std::fs::read(env.run_dir(&id).join("manifest.json")).expect("read");
    let bad = env.cli(["resume", &id, "--skip", "zz"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("--skip `zz`: pipeline `p` has no such stage"),
        "{}",
        bad.stderr
    );
    let after = std::fs::read(env.run_dir(&id).join("manifest.json")).expect("read");
    assert_eq!(before, after, "nothing written");
}

#[test]
fn a_resume_given_fail_fast_replaces_the_recorded_policy() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"exit 1"},
          {"kind":"command","id":"b","command":"touch ran-b; exit 1"},
          {"kind":"command","id":"c","command":"touch ran-c"}]}]}"#,
    );
    let out = env.start("p", &["--no-fail-fast"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(ran_of(&env), ["b", "c"], "b and c ran after a failed");
    let id = out.run_id();
    std::fs::remove_file(env.path().join("ran-b")).expect("rm");
    std::fs::remove_file(env.path().join("ran-c")).expect("rm");
    // Under the recorded `--no-fail-fast` b would run again after a; `--fail-fast` stops at a.
    let again = env.cli(["resume", &id, "--fail-fast"]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    assert!(ran_of(&env).is_empty(), "nothing ran after a failed again");
    let m = env.manifest(&id);
    assert_eq!(m["fail_fast"], true, "the flag given to resume is recorded");
    assert_eq!(m["commands"][2]["status"], "succeeded", "c was done");
}
