//! Tests of the split between `manifest.json` and `manifest.ext.json` and of the merged read.

use super::*;
use crate::document::{Document, Sidecar};
use serde_json::json;

/// A manifest with every kind of key: peer keys, our extensions (top level and per command),
/// and keys of another tool, some the peer's schema defines (`issue_provider`) and some not.
pub(crate) fn full() -> Value {
    let commands = json!([
        {"index": 1, "id": "a", "title": "A", "command": "true", "kind": "command",
         "status": "succeeded", "started_at": null, "completed_at": null, "exit_code": 0,
         "summary": null, "log_path": null, "error_file": null, "sub_run_id": null,
         "depends_on": [], "attempts": 1, "outcome": "exited", "duration_ms": 3,
         "peer_only_note": {"k": 1}},
        {"index": 2, "id": "b", "title": "B", "command": "true", "kind": "command",
         "status": "pending", "started_at": null, "completed_at": null, "exit_code": null,
         "summary": null, "log_path": null, "error_file": null, "sub_run_id": null,
         "depends_on": ["a"], "timeout_ms": 1000}
    ]);
    let mut m = json!({
        "version": 1, "task_id": "t", "task_slug": "t", "run_id": "r1", "parent_run_id": null,
        "pipeline_id": "p", "pipeline_title": "P", "runner": "codex-cli",
        "approval_policy": null, "status": "in_progress", "status_detail": null,
        "started_at": "2026-01-01T00:00:00.000Z", "completed_at": null,
        "updated_at": "2026-01-01T00:00:01.000Z", "heartbeat_at": "2026-01-01T00:00:01.000Z",
        "heartbeat_interval_seconds": 5, "heartbeat_stale_after_seconds": 30,
        "artifact_root": "a", "compat_path": "c", "log_path": "l", "workspace_path": "/w",
        "summary": null, "metrics_recorded": false, "resume_token": "x",
        "resume_events": [], "approvals": []
    });
    let rest = json!({
        "commands": commands,
        "child_runs": [], "run_summary_path": null, "plan_target_id": "p:a",
        "runtime_mode_requested": "cli", "runtime_mode": "cli",
        "runtime_provider": "CliRuntimeProvider", "runtime_fallback": null,
        "instructions_hash": null, "instructions_sources": [],
        "schema_version": 1, "runner_pid": 42, "concurrency": 2,
        "issue_provider": "linear", "other_tool": [1, 2]
    });
    let obj = m.as_object_mut().expect("object");
    for (k, v) in rest.as_object().expect("object") {
        obj.insert(k.clone(), v.clone());
    }
    m
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn the_main_file_holds_exactly_the_peer_keys() {
    let (main, ext) = split(full());
    for k in keys(&main) {
        assert!(PEER_KEYS.contains(&k), "{k} is not a peer key");
    }
    assert!(
        main.get("issue_provider").is_some(),
        "a peer key of another tool stays"
    );
    for c in main["commands"].as_array().expect("commands") {
        for k in keys(c) {
            assert!(
                PEER_COMMAND_KEYS.contains(&k),
                "{k} is not a peer command key"
            );
        }
    }
    assert_eq!(
        keys(&ext),
        [
            "run_id",
            "updated_at",
            "schema_version",
            "runner_pid",
            "concurrency",
            "other_tool",
            "commands"
        ]
    );
    assert_eq!(
        ext["commands"][0],
        json!({"index": 1, "id": "a", "depends_on": [], "attempts": 1, "outcome": "exited",
               "duration_ms": 3, "peer_only_note": {"k": 1}})
    );
    assert_eq!(
        ext["commands"][1],
        json!({"index": 2, "id": "b", "depends_on": ["a"], "timeout_ms": 1000})
    );
}

#[test]
fn merging_the_split_gives_every_key_back() {
    let (main, ext) = split(full());
    let merged = merge(main, Some(ext));
    let mut want = full();
    let mut got = merged.clone();
    // Key order differs (sidecar keys come after the main file's); values do not.
    sort(&mut want);
    sort(&mut got);
    assert_eq!(got, want);
}

fn sort(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let mut entries: Vec<_> = std::mem::take(o).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut x) in entries {
                sort(&mut x);
                o.insert(k, x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort),
        _ => {}
    }
}

#[test]
fn the_main_file_wins_and_unmatched_sidecar_stages_are_ignored() {
    let main = json!({"run_id": "r", "status": "failed",
        "commands": [{"index": 1, "id": "a", "status": "failed"}]});
    let ext = json!({"run_id": "r", "status": "succeeded", "attempts_total": 3,
        "commands": [{"index": 1, "id": "a", "status": "succeeded", "attempts": 2},
                     {"index": 1, "id": "renamed", "attempts": 9},
                     {"index": 7, "id": "gone", "attempts": 9}]});
    let m = merge(main, Some(ext));
    assert_eq!(m["status"], "failed");
    assert_eq!(m["attempts_total"], 3);
    assert_eq!(
        m["commands"],
        json!([{"index": 1, "id": "a", "status": "failed", "attempts": 2}])
    );
}

#[test]
fn an_inline_manifest_ignores_a_left_over_sidecar() {
    let main = json!({"run_id": "r", "schema_version": 1, "runner_pid": 2, "commands": []});
    let ext = json!({"run_id": "r", "runner_pid": 1, "concurrency": 4, "commands": []});
    assert_eq!(merge(main.clone(), Some(ext)), main);
}

/// A manifest document in `layout`, from [`full`].
fn manifest(layout: Extensions) -> Manifest {
    let mut m: Manifest = serde_json::from_value(full()).expect("a manifest");
    m.extensions = layout;
    m
}

#[test]
fn unknown_keys_survive_the_typed_manifest() {
    let m = manifest(Extensions::Sidecar);
    assert_eq!(m.other["issue_provider"], "linear");
    assert_eq!(m.other["other_tool"], json!([1, 2]));
    assert_eq!(m.commands[0].other["peer_only_note"], json!({"k": 1}));
    let back = serde_json::to_value(&m).expect("serialize");
    assert_eq!(back["issue_provider"], "linear");
    assert_eq!(back["commands"][0]["peer_only_note"], json!({"k": 1}));
}

fn write(dir: &Path, m: &Manifest) -> PathBuf {
    let path = dir.join("manifest.json");
    let r = m.clone().render().expect("render");
    std::fs::write(&path, &r.main).expect("main");
    match r.sidecar {
        Sidecar::Write(b) => std::fs::write(sidecar_path(&path), b).expect("sidecar"),
        Sidecar::Remove => {
            let _ = std::fs::remove_file(sidecar_path(&path));
        }
        Sidecar::Keep => {}
    }
    path
}

#[test]
fn both_layouts_read_back_as_the_same_manifest() {
    for layout in [Extensions::Sidecar, Extensions::Inline] {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = manifest(layout);
        let path = write(dir.path(), &written);
        assert_eq!(
            sidecar_path(&path).exists(),
            layout == Extensions::Sidecar,
            "{layout:?}"
        );
        let main: Value = serde_json::from_slice(&std::fs::read(&path).expect("r")).expect("j");
        assert_eq!(
            main.get("runner_pid").is_some(),
            layout == Extensions::Inline,
            "{layout:?}"
        );
        let read = read_manifest(&path).expect("read");
        assert_eq!(read, written, "{layout:?}");
        assert_eq!(read.extensions, layout);
    }
}

#[test]
fn switching_to_inline_then_back_never_reads_stale_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = manifest(Extensions::Sidecar);
    let path = write(dir.path(), &m);
    // Inline now; the old sidecar is still there (as after a crash before its removal).
    m.extensions = Extensions::Inline;
    m.runner_pid = Some(7);
    std::fs::write(&path, m.clone().render().expect("render").main).expect("main");
    assert!(sidecar_path(&path).exists());
    assert_eq!(read_manifest(&path).expect("read").runner_pid, Some(7));
    // Back to the sidecar layout.
    m.extensions = Extensions::Sidecar;
    m.runner_pid = Some(8);
    write(dir.path(), &m);
    assert_eq!(read_manifest(&path).expect("read").runner_pid, Some(8));
}

#[test]
fn a_peer_manifest_without_sidecar_reads_as_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (main, _) = split(full());
    let path = dir.path().join("manifest.json");
    std::fs::write(&path, serde_json::to_vec(&main).expect("json")).expect("w");
    let m = read_manifest(&path).expect("read");
    assert_eq!(m.runner_pid, None);
    assert_eq!(m.other["issue_provider"], "linear");
    assert_eq!(m.extensions, Extensions::Sidecar);
}

#[test]
fn a_broken_or_foreign_sidecar_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), &manifest(Extensions::Sidecar));
    std::fs::write(sidecar_path(&path), "{\"run_id\": ").expect("w");
    let e = read_manifest(&path).expect_err("torn sidecar");
    assert!(e.to_string().contains("manifest.ext.json"), "{e}");
    assert!(
        e.one_line()
            .starts_with("manifest.ext.json is not a valid manifest"),
        "{}",
        e.one_line()
    );
    std::fs::write(
        sidecar_path(&path),
        r#"{"run_id": "other", "commands": []}"#,
    )
    .expect("w");
    let e = read_manifest(&path).expect_err("foreign sidecar");
    assert_eq!(
        e.one_line(),
        "manifest.ext.json belongs to another run (`other`)"
    );
    std::fs::remove_file(&path).expect("rm");
    let e = read_manifest(&path).expect_err("no manifest");
    assert!(e.one_line().starts_with("cannot read manifest.json"), "{e}");
}

#[test]
fn the_heartbeat_file_is_one_line() {
    let m = manifest(Extensions::Sidecar);
    assert_eq!(m.heartbeat().as_deref(), Some("2026-01-01T00:00:01.000Z\n"));
}

#[test]
fn layouts_parse_from_the_config_value() {
    assert_eq!(Extensions::parse(" Inline "), Some(Extensions::Inline));
    assert_eq!(Extensions::parse("sidecar"), Some(Extensions::Sidecar));
    assert_eq!(Extensions::parse("both"), None);
}
