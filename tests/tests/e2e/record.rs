//! The record's files: `manifest.json` holds exactly the peer's keys (it validates against the
//! peer's closed schema as published; every test checks that for every run it writes, see
//! `harness.rs`), our extension fields live in `manifest.ext.json`, `manifestExtensions:
//! "inline"` puts them back into one file, and keys written by other tools survive a resume.

use serde_json::{json, Value};

use crate::harness::{assert_valid_record_files, peer_schema, read_json, TestEnv};

/// Fails at `gate` until `ok.flag` exists.
const FLAKY: &str = r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"one","command":"echo one"},
  {"kind":"command","id":"gate","command":"test -f ok.flag"},
  {"kind":"command","id":"after","command":"echo after"}]}]}"#;

fn with_layout(config: &str, layout: &str) -> String {
    config.replacen('{', &format!(r#"{{"manifestExtensions":"{layout}","#), 1)
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().expect("object").keys().cloned().collect()
}

#[test]
fn our_split_knows_exactly_the_peer_schemas_keys() {
    let Some(peer) = peer_schema() else {
        eprintln!("SKIPPED: the peer is not installed (run .ci/run or bench/run.sh)");
        return;
    };
    assert_eq!(
        keys(&peer["properties"]),
        shared_manifest::sidecar::PEER_KEYS,
        "top level"
    );
    assert_eq!(
        keys(&peer["properties"]["commands"]["items"]["properties"]),
        shared_manifest::sidecar::PEER_COMMAND_KEYS,
        "per command"
    );
}

#[test]
fn the_sidecar_schema_describes_every_extension_field() {
    let ours = crate::harness::our_schema();
    let ext = crate::harness::ext_schema();
    let marked = |props: &Value| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = props
            .as_object()
            .expect("properties")
            .iter()
            .filter(|(_, p)| p["x-extension"] == true)
            .map(|(k, p)| {
                let mut p = p.clone();
                p.as_object_mut().expect("object").remove("x-extension");
                (k.clone(), p)
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let listed = |props: &Value, join: &[&str]| -> Vec<(String, Value)> {
        let mut v: Vec<(String, Value)> = props
            .as_object()
            .expect("properties")
            .iter()
            .filter(|(k, _)| !join.contains(&k.as_str()) && k.as_str() != "commands")
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        listed(&ext["properties"], &["run_id", "updated_at"]),
        marked(&ours["properties"]),
        "top level: manifest.ext.schema.json and manifest.schema.json's x-extension fields"
    );
    assert_eq!(
        listed(
            &ext["properties"]["commands"]["items"]["properties"],
            &["index", "id"]
        ),
        marked(&ours["properties"]["commands"]["items"]["properties"]),
        "per stage"
    );
}

#[test]
fn extension_fields_live_in_the_sidecar() {
    let env = TestEnv::new().config(FLAKY);
    std::fs::write(env.path().join("ok.flag"), "").expect("flag");
    let id = env.start("p", &[]).run_id();
    let main = env.main_file(&id);
    let side = read_json(&env.run_dir(&id).join("manifest.ext.json"));
    for k in [
        "schema_version",
        "runner_pid",
        "concurrency",
        "execution_mode",
    ] {
        assert!(main.get(k).is_none(), "{k} is not in manifest.json");
        assert!(side.get(k).is_some(), "{k} is in the sidecar");
    }
    assert!(main["commands"][0].get("attempts").is_none());
    assert_eq!(side["run_id"], main["run_id"]);
    assert_eq!(
        side["updated_at"], main["updated_at"],
        "written in one batch"
    );
    let gate = &side["commands"][1];
    assert_eq!(
        keys(gate),
        [
            "index",
            "id",
            "depends_on",
            "attempts",
            "outcome",
            "duration_ms",
            "process",
            "stdout_bytes",
            "stderr_bytes",
            "fingerprint"
        ]
    );
    assert_eq!(
        (&gate["id"], &gate["attempts"], &gate["outcome"]),
        (&json!("gate"), &json!(1), &json!("exited"))
    );
    // Our readers see both files as one record.
    let status = env.cli(["status", "--run", &id, "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert_eq!(status.json()["commands"][1]["attempts"], 1);
    let merged = env.manifest(&id);
    assert_eq!(merged["commands"][1]["outcome"], "exited");
    assert_eq!(merged["status"], "succeeded");
}

#[test]
fn inline_puts_everything_in_one_file() {
    let env = TestEnv::new().config(&with_layout(FLAKY, "inline"));
    std::fs::write(env.path().join("ok.flag"), "").expect("flag");
    let id = env.start("p", &[]).run_id();
    assert!(!env.run_dir(&id).join("manifest.ext.json").exists());
    let main = env.main_file(&id);
    assert_eq!(main["schema_version"], 1);
    assert_eq!(main["commands"][1]["attempts"], 1);
    assert_eq!(main["commands"][1]["depends_on"], json!(["one"]));
    assert_eq!(
        env.manifest(&id),
        main,
        "the merged view is the file itself"
    );
    let status = env.cli(["status", "--run", &id, "--format", "json"]);
    assert_eq!(status.json()["commands"][1]["attempts"], 1);
}

#[test]
fn a_bad_layout_is_a_config_error() {
    let env = TestEnv::new().config(&with_layout(FLAKY, "both"));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("field `manifestExtensions`: `both` is not one of: sidecar, inline"),
        "{}",
        out.stderr
    );
    assert!(!env.runs_exists());
}

/// A failed run of [`FLAKY`] in `layout`, then `ok.flag` so that a resume succeeds.
fn failed_run(env: &TestEnv) -> String {
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    std::fs::write(env.path().join("ok.flag"), "").expect("flag");
    out.run_id()
}

#[test]
fn resume_switches_the_layout_the_config_asks_for() {
    for (before, after) in [("sidecar", "inline"), ("inline", "sidecar")] {
        let env = TestEnv::new().config(&with_layout(FLAKY, before));
        let id = failed_run(&env);
        std::fs::write(
            env.path().join("codex.orchestrator.json"),
            with_layout(FLAKY, after),
        )
        .expect("config");
        let r = env.cli(["resume", "--run", &id, "--format", "json"]);
        assert_eq!(r.code, 0, "{before} -> {after}: {}", r.stderr);
        let side = env.run_dir(&id).join("manifest.ext.json");
        assert_eq!(side.exists(), after == "sidecar", "{before} -> {after}");
        let m = env.manifest(&id);
        assert_eq!(m["status"], "succeeded");
        // Attempts of the first runner survive the move between files.
        assert_eq!(m["commands"][0]["attempts"], 1, "{before} -> {after}");
        assert_eq!(m["commands"][1]["attempts"], 1, "{before} -> {after}");
        assert_eq!(m["resume_events"].as_array().map(Vec::len), Some(1));
    }
}

#[test]
fn resume_keeps_keys_written_by_other_tools() {
    let env = TestEnv::new().config(FLAKY);
    let id = failed_run(&env);
    let dir = env.run_dir(&id);
    // Another tool adds keys: one the peer's schema defines (it stays in manifest.json) and
    // one it does not (only valid in the sidecar), at the top level and on a stage.
    let mut main = env.main_file(&id);
    main["issue_provider"] = json!("linear");
    main["commands"][0]["acme_stage_note"] = json!({"reviewed": true});
    main["acme_top_note"] = json!([1, 2, 3]);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&main).expect("json"),
    )
    .expect("write");
    let mut side = read_json(&dir.join("manifest.ext.json"));
    side["acme_sidecar_note"] = json!("kept");
    std::fs::write(
        dir.join("manifest.ext.json"),
        serde_json::to_string_pretty(&side).expect("json"),
    )
    .expect("write");
    let r = env.cli(["resume", "--run", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = env.manifest(&id);
    assert_eq!(m["status"], "succeeded");
    assert_eq!(m["issue_provider"], "linear");
    assert_eq!(m["acme_top_note"], json!([1, 2, 3]));
    assert_eq!(m["acme_sidecar_note"], "kept");
    assert_eq!(
        m["commands"][0]["acme_stage_note"],
        json!({"reviewed": true})
    );
    // Written back where they belong: manifest.json is valid against the peer's schema again.
    let main = env.main_file(&id);
    assert_eq!(main["issue_provider"], "linear");
    assert!(main.get("acme_top_note").is_none());
    assert!(main["commands"][0].get("acme_stage_note").is_none());
    assert_valid_record_files(&dir);
}
