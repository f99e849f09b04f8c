//! The peer's command-line contract on our binary alone: every peer flag accepted (with its
//! meaning, or a note that it has no effect), `version`, the plan target, `flow`'s parent and
//! `failed_stage`, and the text blocks scripts scrape. Side-by-side checks with the peer itself
//! are in `compat.rs`.

use serde_json::Value;

use crate::harness::TestEnv;

const TWO: &str = r#"{"pipelines":[{"id":"p","title":"P","stages":[
  {"kind":"command","id":"a","title":"A","command":"true"},
  {"kind":"command","id":"b","title":"B","command":"true","plan":{"aliases":["bee"]}}]}]}"#;

#[test]
fn version_prints_the_bare_version() {
    let env = TestEnv::new();
    for args in [&["version"][..], &["--version"], &["-V"], &["-v"]] {
        let out = env.cli(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(
            out.stdout,
            format!("{}\n", env!("CARGO_PKG_VERSION")),
            "{args:?}"
        );
    }
}

#[test]
fn start_accepts_every_peer_flag() {
    let env = TestEnv::new().config(TWO);
    let out = env.cli([
        "start",
        "p",
        "--format",
        "json",
        "--task",
        "t1",
        "--target-stage",
        "bee",
        "--issue-provider",
        "linear",
        "--issue-id",
        "123",
        "--issue-identifier",
        "ABC-1",
        "--issue-updated-at",
        "2024-01-02T03:04:05Z",
        "--auto-issue-log",
        "--repo-config-required",
        "--goal",
        "g",
        "--multi-agent=auto",
        "--collab",
        "--validator",
        "none",
        "--max-iterations",
        "3",
        "--max-minutes",
        "5",
        "--roles",
        "single",
        "--ui",
        "--no-interactive",
        "--approval-policy",
        "never",
        "--execution-mode",
        "mcp",
        "--runtime-mode",
        "cli",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let notes: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("no effect here"))
        .collect();
    assert_eq!(
        notes,
        [
            "note: --auto-issue-log has no effect here (the peer's doctor issue log is not part of this runner)",
            "note: --goal, --multi-agent, --collab, --validator, --max-iterations, --max-minutes, --roles have no effect here (the peer's rlm agent loop is not part of this runner)",
        ]
    );
    let id = out.run_id();
    let m = crate::harness::merged(
        &env.path()
            .join(".runs/t1/cli")
            .join(&id)
            .join("manifest.json"),
    );
    assert_eq!(m["plan_target_id"], "p:b", "--target-stage by alias");
    assert_eq!(m["approval_policy"], "never");
    for (k, v) in [
        ("issue_provider", "linear"),
        ("issue_id", "123"),
        ("issue_identifier", "ABC-1"),
        ("issue_updated_at", "2024-01-02T03:04:05Z"),
    ] {
        assert_eq!(m[k], v, "{k}");
    }
    crate::harness::assert_valid_record_files(&env.path().join(".runs/t1/cli").join(&id));
}

#[test]
fn issue_keys_are_written_as_null_when_not_given_and_targets_default() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"true","plan":{"runnable":false}},
          {"kind":"command","id":"b","command":"true"}]}]}"#,
    );
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let main = env.main_file(&out.run_id());
    for k in [
        "issue_provider",
        "issue_id",
        "issue_identifier",
        "issue_updated_at",
    ] {
        assert_eq!(main[k], Value::Null, "{k}: the peer always writes it");
    }
    assert_eq!(main["plan_target_id"], "p:b", "the first runnable stage");
}

#[test]
fn an_unknown_target_is_a_usage_error() {
    let env = TestEnv::new().config(TWO);
    let out = env.cli(["start", "p", "--target", "nope"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim(),
        "error: --target `nope`: pipeline `p` has no such stage or alias (stages: `a`, `b`)"
    );
    assert!(!env.runs_exists());
    let unknown = env.cli(["start", "p", "--bogus-flag"]);
    assert_eq!(unknown.code, 2, "unknown flags stay errors");
    let typo = env.cli(["start", "p", "--fromat", "json"]);
    assert_eq!(typo.code, 2);
    assert!(typo.stderr.contains("'--format'"), "{}", typo.stderr);
}

#[test]
fn plan_shows_the_peer_target_and_items() {
    let env = TestEnv::new().config(TWO);
    let out = env.cli(["plan", "p", "--format", "json", "--target-stage", "p:bee"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["targetId"], "p:b");
    assert_eq!(j["plan"]["targetId"], "p:b");
    let selected: Vec<bool> = j["plan"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["selected"].as_bool().expect("bool"))
        .collect();
    assert_eq!(selected, [false, true]);
    assert_eq!(
        j["plan"]["items"][1]["metadata"]["aliases"],
        serde_json::json!(["bee"])
    );
    assert_eq!(j["stages"][0]["env"], Value::Null);
}

#[test]
fn resume_with_a_target_records_it() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[
          {"kind":"command","id":"a","command":"test -f fixed"},
          {"kind":"command","id":"b","command":"true"}]}]}"#,
    );
    let id = env.start("p", &[]).run_id();
    assert_eq!(env.manifest(&id)["plan_target_id"], "p:a");
    std::fs::write(env.path().join("fixed"), "").expect("fix");
    let out = env.cli(["resume", "--run", &id, "--target", "b", "--ui"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(env.manifest(&id)["plan_target_id"], "p:b");
}

const FLOW: &str = r#"{"pipelines":[
  {"id":"docs-review","stages":[{"kind":"command","id":"review","command":"test ! -f fail-docs"}]},
  {"id":"implementation-gate","stages":[
    {"kind":"command","id":"build","command":"true"},
    {"kind":"command","id":"gate","command":"test ! -f fail-impl"}]}]}"#;

#[test]
fn flow_links_its_runs_and_names_the_failed_stage() {
    let env = TestEnv::new().config(FLOW);
    let out = env.cli([
        "flow",
        "--format",
        "json",
        "--approval-policy",
        "never",
        "--runtime-mode",
        "cli",
        "--execution-mode",
        "mcp",
        "--target",
        "gate",
        "--no-interactive",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    let keys: Vec<&str> = j
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "status",
            "failed_stage",
            "docs_review",
            "implementation_gate",
            "issue_log",
            "issue_log_error"
        ]
    );
    assert_eq!(j["failed_stage"], Value::Null);
    let review = j["docs_review"]["run_id"].as_str().expect("review id");
    let gate = j["implementation_gate"]["run_id"]
        .as_str()
        .expect("gate id");
    let gm = env.manifest(gate);
    assert_eq!(
        gm["parent_run_id"], review,
        "the gate's parent is the review"
    );
    assert_eq!(gm["plan_target_id"], "implementation-gate:gate");
    assert_eq!(gm["approval_policy"], "never");
    assert_eq!(
        env.manifest(review)["plan_target_id"],
        "docs-review:review",
        "not its stage"
    );

    std::fs::write(env.path().join("fail-impl"), "").expect("w");
    let failed = env.cli(["flow", "--format", "json"]);
    assert_eq!(failed.code, 1);
    assert_eq!(failed.json()["failed_stage"], "implementation-gate");
    std::fs::write(env.path().join("fail-docs"), "").expect("w");
    let text = env.cli(["flow"]);
    assert_eq!(text.code, 1);
    let lines: Vec<&str> = text.stdout.lines().collect();
    assert!(lines[0].starts_with("Docs-review run: "), "{}", text.stdout);
    assert_eq!(lines[1], "Status: failed");
    assert_eq!(lines.last(), Some(&"Flow halted: docs-review failed."));
    let nowhere = env.cli(["flow", "--target", "nope"]);
    assert_eq!(nowhere.code, 2);
    assert!(nowhere
        .stderr
        .contains("no such stage in `docs-review` or `implementation-gate`"));
}

#[test]
fn text_mode_prints_the_peer_block_on_stdout() {
    let env = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"boom","title":"Step boom","command":"exit 7"}]}]}"#,
    );
    let out = env.cli(["start", "p"]);
    assert_eq!(out.code, 1);
    insta::assert_snapshot!(env.redact(&out.stdout), @r"
    Run started: [RUN_ID]
    Status: failed
    Manifest: .runs/0101/cli/[RUN_ID]/manifest.json
    Log: .runs/0101/cli/[RUN_ID]/runner.ndjson
    Runtime: cli (requested cli) via CliRuntimeProvider
    Summary:
      Stage 'Step boom' failed with exit code 7.
    ");
    assert!(
        !out.stderr.contains("Run started:"),
        "progress stays on stderr"
    );
}
