//! `start`: the happy path, failures, allowFailure, stage sets, sub-pipelines, env and cwd, and
//! the files of the compatibility contract.

use serde_json::Value;

use crate::harness::{assert_valid_manifest, read_json, read_lines, redact_manifest, TestEnv};

const BASIC: &str = r#"{"pipelines":[{"id":"p","title":"P pipe","stages":[
  {"kind":"command","id":"hello","title":"Say hello","command":"echo hi; echo err >&2"},
  {"kind":"command","id":"second","title":"Second","command":"printf 'done'","summaryHint":"Second ok"}
]}]}"#;

#[test]
fn happy_path_writes_the_whole_contract() {
    let env = TestEnv::new().config(BASIC);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let j = out.json();
    assert_eq!(j["status"], "succeeded");
    let run_id = out.run_id();
    insta::assert_json_snapshot!("happy_stdout", crate::harness::redact_manifest(&env, &j));
    let m = env.manifest(&run_id);
    assert_valid_manifest(&m);
    insta::assert_json_snapshot!("happy_manifest", redact_manifest(&env, &m));
    let dir = env.run_dir(&run_id);
    for f in [
        "runner.ndjson",
        "events.jsonl",
        ".heartbeat",
        ".resume-token",
        "run-summary.json",
        "manifest.ext.json",
        "commands/01-hello.ndjson",
        "commands/02-second.ndjson",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    // One line each, newline-terminated, as the peer writes them.
    assert_eq!(
        std::fs::read_to_string(dir.join(".resume-token")).expect("token"),
        format!("{}\n", m["resume_token"].as_str().expect("token"))
    );
    let heartbeat = std::fs::read_to_string(dir.join(".heartbeat")).expect("heartbeat");
    assert_eq!(
        heartbeat,
        format!("{}\n", m["heartbeat_at"].as_str().expect("heartbeat_at"))
    );
    // A plain success has no summary, as on the peer.
    assert_eq!(m["summary"], Value::Null);
    // The stage log: the peer's event sequence, byte-exact output.
    let lines = read_lines(&dir.join("commands/01-hello.ndjson"));
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().expect("type"))
        .collect();
    assert_eq!(types.first(), Some(&"command:start"));
    assert_eq!(types.get(1), Some(&"exec:begin"));
    assert_eq!(&types[types.len() - 2..], ["exec:end", "command:end"]);
    let stdout: String = lines
        .iter()
        .filter(|l| l["type"] == "exec:chunk" && l["stream"] == "stdout")
        .map(|l| l["data"].as_str().expect("data"))
        .collect();
    assert_eq!(stdout, "hi\n");
    let keys: Vec<&String> = lines[0].as_object().expect("obj").keys().collect();
    assert_eq!(
        keys,
        ["type", "command", "timestamp", "index"],
        "timestamp and index last"
    );
    // mcp stub and metrics
    let stub = read_json(
        &env.path()
            .join(".runs/0101/mcp")
            .join(&run_id)
            .join("manifest.json"),
    );
    assert_eq!(
        stub["manifest"],
        format!(".runs/0101/cli/{run_id}/manifest.json")
    );
    let metrics = read_lines(&env.path().join(".runs/0101/metrics.json"));
    assert_eq!(metrics.len(), 1);
    assert_eq!(metrics[0]["run_id"], run_id.as_str());
    assert_eq!(metrics[0]["commands_passed"], 2);
    // events.jsonl
    let events = read_lines(&dir.join("events.jsonl"));
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect();
    assert_eq!(
        names,
        [
            "run_started",
            "step_started",
            "tool_called",
            "tool_called",
            "step_completed",
            "step_started",
            "tool_called",
            "tool_called",
            "step_completed",
            "run_completed"
        ]
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
    // no temp files left behind
    for e in std::fs::read_dir(&dir).expect("dir").flatten() {
        assert!(
            !e.file_name().to_string_lossy().ends_with(".tmp"),
            "leftover temp file"
        );
    }
}

const FAILING: &str = r#"{"pipelines":[{"id":"p","title":"P pipe","stages":[
  {"kind":"command","id":"hello","title":"Say hello","command":"echo hi"},
  {"kind":"command","id":"soft","title":"Soft fail","command":"echo oops >&2; exit 3","allowFailure":true},
  {"kind":"command","id":"hard","title":"Hard fail","command":"printf 'no newline'; echo boom >&2; exit 5"},
  {"kind":"command","id":"after","title":"After","command":"touch after-ran"}
]}]}"#;

#[test]
fn failing_stage_fails_the_run_and_leaves_later_stages_pending() {
    let env = TestEnv::new().config(FAILING);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_id = out.run_id();
    let m = env.manifest(&run_id);
    assert_valid_manifest(&m);
    assert_eq!(m["status"], "failed");
    assert_eq!(m["status_detail"], "stage:hard:failed");
    assert_eq!(m["summary"], "Stage 'Hard fail' failed with exit code 5.");
    let cmds = m["commands"].as_array().expect("commands");
    let statuses: Vec<&str> = cmds
        .iter()
        .map(|c| c["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["succeeded", "skipped", "failed", "pending"]);
    assert_eq!(cmds[2]["summary"], "Exited with code 5 — boom");
    assert_eq!(cmds[1]["exit_code"], 3);
    assert!(
        !env.path().join("after-ran").exists(),
        "a stage after a failure must not run"
    );
    // error files
    let soft = read_json(&env.run_dir(&run_id).join("errors/02-soft.json"));
    assert_eq!(soft["reason"], "command-allow-failure");
    assert_eq!(soft["details"]["non_fatal_fallback"], true);
    assert_eq!(soft["details"]["stderr"], "oops");
    let hard = read_json(&env.run_dir(&run_id).join("errors/03-hard.json"));
    assert_eq!(hard["reason"], "command-failed");
    assert_eq!(hard["details"]["exit_code"], 5);
    assert_eq!(
        cmds[2]["error_file"],
        format!(".runs/0101/cli/{run_id}/errors/03-hard.json")
    );
    // allowFailure leaves a command:fallback line in runner.ndjson
    let runner = read_lines(&env.run_dir(&run_id).join("runner.ndjson"));
    let fallback: Vec<&Value> = runner
        .iter()
        .filter(|l| l["type"] == "command:fallback")
        .collect();
    assert_eq!(fallback.len(), 1);
    assert_eq!(fallback[0]["fallback"], "allow_failure");
    assert_eq!(fallback[0]["exit_code"], 3);
    insta::assert_json_snapshot!("failing_manifest", redact_manifest(&env, &m));
    let events = read_lines(&env.run_dir(&run_id).join("events.jsonl"));
    // As on the peer, a failed run ends with `run_completed` (`run_failed` is for runner
    // errors).
    let last = events.last().expect("event");
    assert_eq!(last["event"], "run_completed");
    assert_eq!(last["payload"]["status"], "failed");
    assert!(events.iter().all(|e| e["event"] != "run_failed"));
}

#[test]
fn stage_sets_expand_in_place() {
    let env = TestEnv::new().config(r#"{"stageSets":{"checks":[
        {"kind":"command","id":"a","command":"true"},{"kind":"command","id":"b","command":"true"}]},
      "pipelines":[{"id":"p","stages":[{"kind":"command","id":"first","command":"true"},{"kind":"stage-set","ref":"checks"},{"kind":"command","id":"last","command":"true"}]}]}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let ids: Vec<&str> = m["commands"]
        .as_array()
        .expect("c")
        .iter()
        .map(|c| c["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["first", "a", "b", "last"]);
    assert_eq!(m["commands"][1]["title"], "a", "title defaults to the id");
}

#[test]
fn subpipeline_runs_as_a_child_run() {
    let env = TestEnv::new().config(r#"{"pipelines":[
      {"id":"p","title":"Parent","stages":[{"kind":"subpipeline","id":"sub","title":"Sub","pipeline":"q"},{"kind":"command","id":"after","command":"true"}]},
      {"id":"q","title":"Child","stages":[{"kind":"command","id":"qq","command":"echo child"}]}]}"#);
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_id = out.run_id();
    let m = env.manifest(&run_id);
    assert_valid_manifest(&m);
    let sub = &m["commands"][0];
    assert_eq!(sub["kind"], "subpipeline");
    assert_eq!(sub["command"], Value::Null);
    assert_eq!(sub["status"], "succeeded");
    let child_id = sub["sub_run_id"].as_str().expect("sub_run_id");
    assert_eq!(m["child_runs"][0]["run_id"], child_id);
    assert_eq!(m["child_runs"][0]["status"], "succeeded");
    assert_eq!(m["child_runs"][0]["pipeline_id"], "q");
    let child = env.manifest(child_id);
    assert_valid_manifest(&child);
    assert_eq!(child["parent_run_id"], run_id.as_str());
    assert_eq!(child["status"], "succeeded");
    assert_eq!(
        read_lines(&env.path().join(".runs/0101/metrics.json")).len(),
        2,
        "one line per run, child included"
    );
}

#[test]
fn failing_subpipeline_fails_the_parent_unless_optional() {
    let cfg = |optional: bool| {
        format!(
            r#"{{"pipelines":[
      {{"id":"p","stages":[{{"kind":"subpipeline","id":"sub","pipeline":"q","optional":{optional}}},{{"kind":"command","id":"after","command":"true"}}]}},
      {{"id":"q","stages":[{{"kind":"command","id":"bad","command":"exit 4"}}]}}]}}"#
        )
    };
    let env = TestEnv::new().config(&cfg(false));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 1);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["status_detail"], "subpipeline:sub:failed");
    assert_eq!(m["child_runs"][0]["status"], "failed");
    assert_eq!(m["commands"][1]["status"], "pending");
    let env = TestEnv::new().config(&cfg(true));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    assert_eq!(m["commands"][0]["status"], "skipped");
    assert_eq!(m["commands"][1]["status"], "succeeded");
}

#[test]
fn stages_get_the_peer_environment_env_and_cwd() {
    let env = TestEnv::new().config(r#"{"pipelines":[{"id":"p","stages":[
      {"kind":"command","id":"envs","command":"env | grep -E '^(CODEX_ORCHESTRATOR_|MCP_RUNNER|FOO=)' | sort > envs.txt; pwd > ../pwd.txt; cat < /dev/stdin > stdin.txt","cwd":"sub","env":{"FOO":"bar","N":7}}]}]}"#);
    std::fs::create_dir(env.path().join("sub")).expect("mkdir");
    let out = env.start("p", &["--task", "t-42"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_id = out.run_id();
    let envs = std::fs::read_to_string(env.path().join("sub/envs.txt")).expect("envs");
    let root = env.path().canonicalize().expect("canon");
    let get = |k: &str| {
        envs.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
    };
    assert_eq!(get("FOO").as_deref(), Some("bar"));
    assert_eq!(get("MCP_RUNNER_TASK_ID").as_deref(), Some("t-42"));
    assert_eq!(get("CODEX_ORCHESTRATOR_TASK_ID").as_deref(), Some("t-42"));
    assert_eq!(get("CODEX_ORCHESTRATOR_RUN_ID"), Some(run_id.clone()));
    assert_eq!(get("CODEX_ORCHESTRATOR_PIPELINE_ID").as_deref(), Some("p"));
    let manifest_path = get("CODEX_ORCHESTRATOR_MANIFEST_PATH").expect("manifest path");
    assert!(
        manifest_path.starts_with('/')
            && manifest_path.ends_with(&format!(".runs/t-42/cli/{run_id}/manifest.json")),
        "{manifest_path}"
    );
    assert!(get("CODEX_ORCHESTRATOR_RUNS_DIR")
        .expect("runs")
        .ends_with(".runs"));
    assert!(get("CODEX_ORCHESTRATOR_OUT_DIR")
        .expect("out")
        .ends_with("out"));
    assert!(get("CODEX_ORCHESTRATOR_ROOT").is_some());
    let pwd = std::fs::read_to_string(env.path().join("pwd.txt")).expect("pwd");
    assert_eq!(
        std::path::Path::new(pwd.trim())
            .canonicalize()
            .expect("canon"),
        root.join("sub")
    );
    assert_eq!(
        std::fs::read_to_string(env.path().join("sub/stdin.txt")).expect("stdin"),
        "",
        "stdin is closed"
    );
    assert!(env
        .path()
        .join(".runs/t-42/cli")
        .join(&run_id)
        .join("manifest.json")
        .is_file());
}

#[test]
fn two_runs_of_one_task_are_kept_apart() {
    let env = TestEnv::new().config(BASIC);
    let a = env.start("p", &[]);
    let b = env.start("p", &[]);
    assert_eq!((a.code, b.code), (0, 0));
    assert_ne!(a.run_id(), b.run_id());
    assert!(env.run_dir(&a.run_id()).join("manifest.json").is_file());
    assert!(env.run_dir(&b.run_id()).join("manifest.json").is_file());
    let metrics = read_lines(&env.path().join(".runs/0101/metrics.json"));
    let ids: Vec<&str> = metrics
        .iter()
        .map(|l| l["run_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, [a.run_id().as_str(), b.run_id().as_str()]);
}

#[test]
fn task_id_comes_from_the_environment_in_the_peer_order() {
    let env = TestEnv::new()
        .config(BASIC)
        .env("TASK", "from-task")
        .env("CODEX_ORCHESTRATOR_TASK_ID", "from-co");
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(env
        .path()
        .join(".runs/from-co/cli")
        .join(out.run_id())
        .is_dir());
}

#[test]
fn summary_follows_the_peer_rule_from_the_end_of_the_output() {
    let long = "x".repeat(300);
    let env = TestEnv::new().config(&format!(
        r#"{{"pipelines":[{{"id":"p","stages":[
      {{"kind":"command","id":"long","command":"printf '{long}'"}},
      {{"kind":"command","id":"hint","command":"echo ignored","summaryHint":"Hinted"}},
      {{"kind":"command","id":"quiet","command":"true"}},
      {{"kind":"command","id":"err","command":"echo only-err >&2"}}]}}]}}"#
    ));
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let m = env.manifest(&out.run_id());
    let s = |i: usize| {
        m["commands"][i]["summary"]
            .as_str()
            .expect("summary")
            .to_owned()
    };
    // The peer keeps the first 240 characters; we keep the last (deliberate difference).
    assert_eq!(s(0), format!("…{}", "x".repeat(240)));
    assert_eq!(s(1), "Hinted");
    assert_eq!(s(2), "Command completed with code 0");
    assert_eq!(s(3), "only-err");
}

#[test]
fn timeout_is_enforced_and_recorded() {
    let env = TestEnv::new()
        .config(r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"slow","command":"sleep 30","timeoutMs":300}]}]}"#)
        .env("CODEX_ORCHESTRATOR_KILL_GRACE_MS", "200");
    let started = std::time::Instant::now();
    let out = env.start("p", &[]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the timeout must stop the stage"
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    let run_id = out.run_id();
    let m = env.manifest(&run_id);
    assert_valid_manifest(&m);
    assert_eq!(m["commands"][0]["status"], "failed");
    assert!(
        m["commands"][0]["summary"]
            .as_str()
            .expect("s")
            .starts_with("Timed out after 300ms"),
        "{}",
        m["commands"][0]["summary"]
    );
    let err = read_json(&env.run_dir(&run_id).join("errors/01-slow.json"));
    assert_eq!(err["details"]["failure_reason"], "timed_out");
    assert_eq!(err["details"]["timed_out"], true);
}

#[test]
fn chunk_event_cap_records_what_it_dropped() {
    // About 5 chunks of 64 KiB; only 2 are kept in memory, the log keeps them all.
    let env = TestEnv::new()
        .config(
            r#"{"pipelines":[{"id":"p","stages":[
  {"kind":"command","id":"big","command":"head -c 300000 /dev/zero | tr '\\0' a"},
  {"kind":"command","id":"quiet","command":"true"}]}]}"#,
        )
        .env("CODEX_ORCHESTRATOR_EXEC_EVENT_MAX_CHUNKS", "2");
    let out = env.start("p", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let run_id = out.run_id();
    let m = env.manifest(&run_id);
    assert_valid_manifest(&m);
    let chunks = read_lines(&env.run_dir(&run_id).join("commands/01-big.ndjson"))
        .iter()
        .filter(|l| l["type"] == "exec:chunk")
        .count() as u64;
    assert!(chunks >= 5, "{chunks} chunks");
    assert_eq!(m["commands"][0]["dropped_chunk_events"], chunks - 2);
    assert_eq!(m["commands"][0]["stdout_bytes"], 300_000);
    assert_eq!(m["commands"][1]["dropped_chunk_events"], 0);
    // Without the knob nothing is retained and nothing is reported.
    let plain = TestEnv::new().config(
        r#"{"pipelines":[{"id":"p","stages":[{"kind":"command","id":"a","command":"echo x"}]}]}"#,
    );
    let out = plain.start("p", &[]);
    let m = plain.manifest(&out.run_id());
    assert!(m["commands"][0].get("dropped_chunk_events").is_none());
}
